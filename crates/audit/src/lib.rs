//! knowmind's security log.
//!
//! - **Audit events** record every state change (token created, rotated, revoked, updated;
//!   member and workspace changes). [`Audit::append`] writes an event *inside the caller's
//!   transaction*, so the change and its record commit together or not at all. The table is
//!   append-only (database triggers refuse `UPDATE` and `DELETE`) and tamper-evident: each event
//!   carries the hash of the previous one, keyed with an [`AuditKey`] kept outside the database
//!   (HMAC-SHA-256), so that someone who can write to the database cannot recompute it;
//!   [`Audit::verify`] walks the chain and names the first bad sequence number, and a
//!   [`SignedCheckpoint`] kept elsewhere also exposes a removed tail.
//! - **Usage records** answer "which calls ran on this token, from where": one per verification
//!   of a known token, written in batches by a [`UsageWriter`].
//!
//! Both live in the database shared with `token-store` ([`knowmind_db::Db`]): SQLite by default,
//! PostgreSQL with the `postgres` feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), audit::Error> {
//! use audit::{Action, Audit, Context, NewEvent};
//! use knowmind_db::{Db, DbOptions};
//! use time::macros::datetime;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::connect(dir.path().join("k.db").to_str().unwrap(), &DbOptions::default()).await?;
//! audit::migrate(&db).await?;
//! let key = std::sync::Arc::new(audit::AuditKey::generate()?);
//! let audit = Audit::with_key(db.clone(), key);
//!
//! // A change and its event in one transaction.
//! let mut tx = db.begin_write().await?;
//! let event = NewEvent { workspace_id: Some("ws_1".into()), action: Action::WorkspaceCreated,
//!     target_kind: Some("workspace"), target_id: Some("ws_1".into()),
//!     outcome: audit::Outcome::Success, details: serde_json::json!({"name": "acme"}) };
//! audit.append(&mut tx, &Context::system(), &event, datetime!(2026-11-27 12:00 UTC)).await?;
//! tx.commit().await.map_err(audit::Error::from)?;
//!
//! let report = audit.verify(&[]).await?;
//! assert!(report.is_intact());
//! assert_eq!(report.events, 1);
//! # Ok(()) }
//! ```

mod chain;
mod error;
mod event;
mod key;
mod usage;

use std::sync::Arc;

use knowmind_db::Connection;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::TokenId;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use chain::{GENESIS, KEYED, UNKEYED};
pub use error::Error;
pub use event::{Actor, Context, NewEvent, expected_hash};
pub use key::{AuditKey, SignedCheckpoint};
pub use knowmind_api::{
    Action, Anomaly, AnomalyKind, Break, BreakReason, ChainReport, Checkpoint, Event, Outcome,
    Page, Severity, WorkspaceChainReport,
};
pub use usage::{
    AnomalyConfig, Committed, IpUse, LAST_USE_AT, LAST_USE_COLUMNS, RouteUse, StoredUsage,
    UsageConfig, UsageOutcome, UsageRecord, UsageRecordView, UsageSlot, UsageSummary, UsageWriter,
    last_use_join, network_of,
};

use knowmind_db::{Arg, Backend, Db, Sql, to_micros};

/// Creates or upgrades the audit tables.
///
/// # Errors
/// [`Error::Database`] if a migration fails.
pub async fn migrate(db: &Db) -> Result<(), Error> {
    Ok(db
        .migrate(
            &sqlx::migrate!("migrations/sqlite"),
            &sqlx::migrate!("migrations/postgres"),
        )
        .await?)
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

/// Writes, reads and verifies the security log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    db: Db,
    key: Option<Arc<AuditKey>>,
}

impl Audit {
    /// An audit log over `db` (already migrated) whose events are hashed without a key: anyone
    /// who can write to the database can rewrite it consistently. For tools that only read an
    /// unkeyed log; services use [`Audit::with_key`].
    pub fn new(db: Db) -> Self {
        Audit { db, key: None }
    }

    /// An audit log over `db` whose new events are keyed with `key` (HMAC-SHA-256). Events
    /// written before a key was used keep verifying; after the first keyed event, every event
    /// must be keyed.
    pub fn with_key(db: Db, key: Arc<AuditKey>) -> Self {
        Audit { db, key: Some(key) }
    }

    /// Whether new events are keyed.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// Appends `event` inside the caller's transaction, so that the event is written if and
    /// only if the change it records is. Returns its sequence number.
    ///
    /// Taking the next sequence number locks the chain's head row until the transaction ends:
    /// concurrent writers (other connections, other server instances) take turns, so the chain
    /// never forks.
    ///
    /// # Errors
    /// [`Error::Database`]; the caller's transaction should then be rolled back (dropping it
    /// does).
    pub async fn append(
        &self,
        conn: &mut Connection,
        context: &Context,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<i64, Error> {
        chain::append(conn, self.key.as_deref(), context, event, at).await
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
        let seq = self.append(&mut tx, context, event, at).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events matching `filter`, newest first, after `cursor` (the previous page's
    /// `next_cursor`).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn events(
        &self,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Event>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let mut sql = filtered(self.db.backend(), filter);
        if let Some(before) = cursor.map(parse_cursor).transpose()? {
            sql.push(" AND seq < ").bind(Arg::Int(before));
        }
        sql.push(" ORDER BY seq DESC LIMIT ").bind(Arg::Int(limit));
        let rows = sql.query().fetch_all(self.db.pool()).await?;
        let items = rows
            .iter()
            .map(chain::event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(items, limit_len(limit), |last| {
            last.seq.to_string()
        }))
    }

    /// Events of `workspace_id` after sequence number `after`, oldest first, at most `limit`
    /// (1 to 1,000): how webhooks read the log as their outbox.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn events_after(
        &self,
        workspace_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let mut sql = filtered(
            self.db.backend(),
            &EventFilter {
                workspace_id: Some(workspace_id.to_owned()),
                ..EventFilter::default()
            },
        );
        sql.push(" AND seq > ")
            .bind(Arg::Int(after))
            .push(" ORDER BY seq LIMIT ")
            .bind(Arg::Int(limit));
        let rows = sql.query().fetch_all(self.db.pool()).await?;
        rows.iter().map(chain::event_from_row).collect()
    }

    /// The sequence number of the newest event (0 for an empty log), read through `conn`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn head_seq(conn: &mut knowmind_db::Connection) -> Result<i64, Error> {
        let row = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get("seq")?)
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

    /// Walks the whole chain. With `checkpoints` taken earlier (and kept outside the
    /// database), also detects that events up to each were removed or rewritten.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::KeyRequired`] for a keyed chain without the key (a broken
    /// chain is a report, not an error).
    pub async fn verify(&self, checkpoints: &[Checkpoint]) -> Result<ChainReport, Error> {
        chain::verify(&self.db, self.key.as_deref(), checkpoints).await
    }

    /// Whether the log still holds `checkpoint` (taken earlier and kept outside the database):
    /// the event at its sequence number has its hash and no unkeyed event follows a keyed one.
    /// Two indexed reads, for start-up; [`Audit::verify`] checks everything.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn holds(&self, checkpoint: &Checkpoint) -> Result<bool, Error> {
        chain::holds(&self.db, checkpoint).await
    }

    /// Checks, cheaply, that this log's key is the one its newest keyed event was written with:
    /// run it at start-up, so that an instance with the wrong key refuses to start instead of
    /// writing events that will never verify.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`]; [`Error::Database`].
    pub async fn check_key(&self) -> Result<(), Error> {
        match &self.key {
            Some(key) => chain::check_key(&self.db, key).await,
            None => Ok(()),
        }
    }

    /// Checks one workspace's events after sequence number `after`, at most `limit` (1 to
    /// 10,000) of them: each event's own hash and its link to the event before it. Bounded and
    /// confined to the workspace, for its admins; [`Audit::verify`] walks everything.
    ///
    /// # Errors
    /// As [`Audit::verify`].
    pub async fn verify_workspace(
        &self,
        workspace: &str,
        after: i64,
        limit: u32,
    ) -> Result<WorkspaceChainReport, Error> {
        let limit = i64::from(limit.clamp(1, 10_000));
        chain::verify_workspace(&self.db, self.key.as_deref(), workspace, after, limit).await
    }

    /// The current head, signed with the audit key, taken `at`.
    ///
    /// # Errors
    /// [`Error::KeyRequired`] without a key; [`Error::Database`].
    pub async fn signed_checkpoint(&self, at: OffsetDateTime) -> Result<SignedCheckpoint, Error> {
        let key = self.key.as_deref().ok_or(Error::KeyRequired)?;
        Ok(SignedCheckpoint::sign(key, self.checkpoint().await?, at))
    }

    /// The current head of the chain, to keep outside the database.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn checkpoint(&self) -> Result<Checkpoint, Error> {
        chain::checkpoint_of(&self.db).await
    }

    /// The tokens that events after sequence number `after` revoked, rotated or updated (a
    /// policy may shorten an expiry or narrow scopes) (at most 1,000
    /// events are read per round trip), and the last sequence number read: how other processes'
    /// caches learn of revocations from the log.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn token_changes_since(&self, after: i64) -> Result<(Vec<TokenId>, i64), Error> {
        let mut ids = Vec::new();
        let mut last = after;
        loop {
            let rows = sqlx::query(
                "SELECT seq, action, target_id FROM audit_events WHERE seq > $1 \
                 ORDER BY seq LIMIT 1000",
            )
            .bind(last)
            .fetch_all(self.db.pool())
            .await?;
            for row in &rows {
                last = row.try_get("seq")?;
                let action: String = row.try_get("action")?;
                if matches!(
                    action.parse::<Action>(),
                    Ok(Action::TokenRevoked
                        | Action::TokenRotated
                        | Action::TokenUpdated
                        | Action::TokenHandoverCompleted
                        | Action::TokenHandoverTimedOut)
                ) {
                    let target: Option<String> = row.try_get("target_id")?;
                    ids.extend(target.and_then(|t| t.parse::<TokenId>().ok()));
                }
            }
            if rows.len() < 1000 {
                return Ok((ids, last));
            }
        }
    }

    /// A token's usage records, newest first, after `cursor` (the previous page's
    /// `next_cursor`).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn usage(
        &self,
        token: TokenId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<StoredUsage>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let before = cursor.map(parse_cursor).transpose()?;
        let items = usage::records(&self.db, token, before, limit).await?;
        Ok(Page::of(items, limit_len(limit), |last| {
            last.id.to_string()
        }))
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

    /// A token's calls per hour since `since`: `(start of the hour, calls)`, oldest first; hours
    /// without calls are left out.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn usage_per_hour(
        &self,
        token: TokenId,
        since: OffsetDateTime,
    ) -> Result<Vec<(OffsetDateTime, i64)>, Error> {
        usage::hourly(&self.db, token, since)
            .await?
            .into_iter()
            .map(|(hour, calls)| Ok((knowmind_db::from_micros(hour)?, calls)))
            .collect()
    }

    /// Anomalies of `workspace_id` (all workspaces with `None`), of one token if `token` is
    /// given, at or after `since`, newest first, after `cursor` (the previous page's
    /// `next_cursor`); `limit` is 1 to 1,000.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a cursor this API did not hand out; [`Error::Database`].
    pub async fn anomalies(
        &self,
        workspace_id: Option<&str>,
        token: Option<TokenId>,
        since: Option<OffsetDateTime>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Anomaly>, Error> {
        let limit = i64::from(limit.clamp(1, 1_000));
        let before = cursor.map(parse_cursor).transpose()?;
        let mut conn = self.db.pool().acquire().await?;
        let items = usage::anomalies(
            &mut conn,
            self.db.backend(),
            workspace_id,
            token,
            since,
            before,
            limit,
        )
        .await?;
        Ok(Page::of(items, limit_len(limit), |last| last.id.clone()))
    }

    /// Records the use of a canary token, `record`: an anomaly of kind `canary` and a
    /// `token.canary_used` event, in one transaction of their own.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record_canary_use(&self, record: &UsageRecord) -> Result<(), Error> {
        let value = record
            .client_ip
            .map_or_else(|| "an unknown address".to_owned(), usage::network_of);
        let mut tx = self.db.begin_write().await?;
        usage::raise_anomaly(
            &mut tx,
            self.db.backend(),
            self.key.as_deref(),
            record,
            AnomalyKind::Canary,
            &value,
        )
        .await?;
        tx.commit().await?;
        Ok(())
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

/// A cursor this crate handed out: the position (sequence number or record id) of the last item
/// of the previous page.
fn parse_cursor(cursor: &str) -> Result<i64, Error> {
    knowmind_api::cursor_number(cursor).ok_or_else(|| Error::Invalid {
        field: "cursor",
        reason: "not a cursor returned by this API".into(),
    })
}

fn limit_len(limit: i64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
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
