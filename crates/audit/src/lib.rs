//! knowmind's security log.
//!
//! - **Audit events** record every state change (token created, rotated, revoked, updated;
//!   member and workspace changes). [`append`] writes an event *inside the caller's
//!   transaction*, so the change and its record commit together or not at all. The table is
//!   append-only (database triggers refuse `UPDATE` and `DELETE`) and tamper-evident: each event
//!   carries the hash of the previous one, [`Audit::verify`] walks the chain and names the first
//!   bad sequence number, and a [`Checkpoint`] kept elsewhere also exposes a removed tail.
//! - **Usage records** answer "which calls ran on this token, from where": one per verification
//!   of a known token, written in batches by a [`UsageWriter`].
//!
//! Both live in the database shared with `token-store` ([`db::Db`]): SQLite by default,
//! PostgreSQL with the `postgres` feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), audit::Error> {
//! use audit::{Action, Audit, Context, NewEvent, db::{Db, DbOptions}};
//! use time::macros::datetime;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::connect(dir.path().join("k.db").to_str().unwrap(), &DbOptions::default()).await?;
//! audit::migrate(&db).await?;
//! let audit = Audit::new(db.clone());
//!
//! // A change and its event in one transaction.
//! let mut tx = db.begin_write().await?;
//! let event = NewEvent { workspace_id: Some("ws_1".into()), action: Action::WorkspaceCreated,
//!     target_kind: Some("workspace"), target_id: Some("ws_1".into()),
//!     outcome: audit::Outcome::Success, details: serde_json::json!({"name": "acme"}) };
//! audit::append(&mut tx, &Context::system(), &event, datetime!(2026-11-27 12:00 UTC)).await?;
//! tx.commit().await.map_err(audit::Error::from)?;
//!
//! let report = audit.verify(None).await?;
//! assert!(report.is_intact());
//! assert_eq!(report.events, 1);
//! # Ok(()) }
//! ```

mod chain;
pub mod db;
mod error;
mod event;
#[cfg(feature = "test-util")]
pub mod testing;
mod usage;

use time::OffsetDateTime;
use token_core::TokenId;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use chain::{Break, BreakReason, ChainReport, Checkpoint, GENESIS, append};
pub use error::{DbError, Error};
pub use event::{Action, Actor, Context, Event, NewEvent, Outcome};
pub use usage::{
    Committed, IpUse, RouteUse, StoredUsage, UsageConfig, UsageOutcome, UsageRecord,
    UsageRecordView, UsageSlot, UsageSummary, UsageWriter,
};

use crate::db::{Arg, Backend, Db, Sql, to_micros};

/// Creates or upgrades the audit tables.
///
/// # Errors
/// [`Error::Database`] if a migration fails.
pub async fn migrate(db: &Db) -> Result<(), Error> {
    db.migrate(
        &sqlx::migrate!("migrations/sqlite"),
        &sqlx::migrate!("migrations/postgres"),
    )
    .await
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events of this workspace.
    pub workspace_id: Option<String>,
    /// Events by this actor (member or token id).
    pub actor_id: Option<String>,
    /// Events by or about this token.
    pub token: Option<TokenId>,
    /// Events of this kind.
    pub action: Option<Action>,
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
}

/// One page of results and the cursor for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Reads and verifies the security log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    db: Db,
}

impl Audit {
    /// An audit log over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Audit { db }
    }

    /// Appends an event in a transaction of its own: for security events that accompany no
    /// state change (a revoked token presented again, say).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record(
        &self,
        context: &Context,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<i64, Error> {
        let mut tx = self.db.begin_write().await?;
        let seq = append(&mut tx, context, event, at).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events matching `filter`, newest first, older than the cursor `before`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn events(
        &self,
        filter: &EventFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<Event>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let mut sql = filtered(self.db.backend(), filter);
        if let Some(before) = before {
            sql.push(" AND seq < ").bind(Arg::Int(before));
        }
        sql.push(" ORDER BY seq DESC LIMIT ").bind(Arg::Int(limit));
        let rows = sql.query().fetch_all(self.db.pool()).await?;
        let items = rows
            .iter()
            .map(chain::event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match items.last() {
            Some(last) if items.len() as i64 == limit => Some(last.seq),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Writes every event matching `filter` as JSON Lines, oldest first; returns how many.
    ///
    /// # Errors
    /// [`Error::Database`], or [`Error::Closed`] if `out` fails.
    pub async fn export_jsonl<W: AsyncWrite + Unpin>(
        &self,
        filter: &EventFilter,
        out: &mut W,
    ) -> Result<u64, Error> {
        let mut after = 0;
        let mut written = 0;
        loop {
            let mut sql = filtered(self.db.backend(), filter);
            sql.push(" AND seq > ")
                .bind(Arg::Int(after))
                .push(" ORDER BY seq LIMIT 1000");
            let rows = sql.query().fetch_all(self.db.pool()).await?;
            if rows.is_empty() {
                break;
            }
            let mut buf = Vec::new();
            for row in &rows {
                let event = chain::event_from_row(row)?;
                after = event.seq;
                serde_json::to_writer(&mut buf, &event)
                    .map_err(|_| Error::Corrupt("event not serialisable"))?;
                buf.push(b'\n');
                written += 1;
            }
            out.write_all(&buf).await.map_err(|_| Error::Closed)?;
        }
        out.flush().await.map_err(|_| Error::Closed)?;
        Ok(written)
    }

    /// Walks the whole chain. With a `checkpoint` taken earlier, also detects that events up
    /// to it were removed or rewritten.
    ///
    /// # Errors
    /// [`Error::Database`] (a broken chain is a report, not an error).
    pub async fn verify(&self, checkpoint: Option<&Checkpoint>) -> Result<ChainReport, Error> {
        chain::verify(&self.db, checkpoint).await
    }

    /// The current head of the chain, to keep outside the database.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn checkpoint(&self) -> Result<Checkpoint, Error> {
        chain::checkpoint_of(&self.db).await
    }

    /// A token's usage records, newest first, older than the cursor `before`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn usage(
        &self,
        token: TokenId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<StoredUsage>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let items = usage::records(&self.db, token, before, limit).await?;
        let next_cursor = match items.last() {
            Some(last) if items.len() as i64 == limit => Some(last.id),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Distinct client addresses and endpoints of a token, with first/last seen and counts. The
    /// counts cover every call since the token's first use: pruning removes old records, not
    /// these.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn usage_summary(&self, token: TokenId) -> Result<UsageSummary, Error> {
        usage::summary(&self.db, token).await
    }

    /// Deletes usage records older than `retention` before `now`; returns how many. Records not
    /// yet moved to the indexed table are moved (and counted in the summary) first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn prune_usage(
        &self,
        now: OffsetDateTime,
        retention: time::Duration,
    ) -> Result<u64, Error> {
        usage::prune(&self.db, now - retention).await
    }
}

fn filtered(backend: Backend, filter: &EventFilter) -> Sql {
    let mut sql = Sql::new(backend, chain::SELECT_EVENT);
    sql.push(" WHERE 1 = 1");
    if let Some(ws) = &filter.workspace_id {
        sql.push(" AND workspace_id = ").bind(Arg::Text(ws.clone()));
    }
    if let Some(actor) = &filter.actor_id {
        sql.push(" AND actor_id = ").bind(Arg::Text(actor.clone()));
    }
    if let Some(token) = filter.token {
        sql.push(" AND (actor_id = ")
            .bind(Arg::Text(token.to_string()))
            .push(" OR target_id = ")
            .bind(Arg::Text(token.to_string()))
            .push(")");
    }
    if let Some(action) = filter.action {
        sql.push(" AND action = ")
            .bind(Arg::Text(action.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        sql.push(" AND at_us >= ").bind(Arg::Int(to_micros(since)));
    }
    if let Some(until) = filter.until {
        sql.push(" AND at_us < ").bind(Arg::Int(to_micros(until)));
    }
    sql
}
