//! Usage records: every verification of a known token id, accepted or refused, so that "which
//! calls ran on this token, from which IPs, on which endpoints" has an exact answer.
//!
//! Records go through a [`UsageWriter`]: a background task that commits whatever has queued up
//! in one transaction (group commit). Callers enqueue without waiting, or wait for the commit of
//! their record; a full queue is refused at once ([`Error::Busy`]) instead of growing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Row;
use time::OffsetDateTime;
use token_core::TokenId;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Arg, Backend, Db, Sql, from_micros, to_micros};
use crate::error::Error;
use crate::event::bounded;

/// The result of one verification, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageOutcome {
    /// The token was accepted.
    Accepted,
    /// The secret did not match the stored hash.
    WrongSecret,
    /// The token is revoked.
    Revoked,
    /// The token has expired.
    Expired,
    /// The token lacks a scope the call needs.
    InsufficientScope,
    /// The server was too busy to verify.
    Busy,
}

impl UsageOutcome {
    const ALL: [UsageOutcome; 6] = [
        UsageOutcome::Accepted,
        UsageOutcome::WrongSecret,
        UsageOutcome::Revoked,
        UsageOutcome::Expired,
        UsageOutcome::InsufficientScope,
        UsageOutcome::Busy,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Accepted => "accepted",
            UsageOutcome::WrongSecret => "wrong_secret",
            UsageOutcome::Revoked => "revoked",
            UsageOutcome::Expired => "expired",
            UsageOutcome::InsufficientScope => "insufficient_scope",
            UsageOutcome::Busy => "busy",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(Error::Corrupt("unknown usage outcome"))
    }
}

/// One verification, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// When.
    pub at: OffsetDateTime,
    /// Which token (by id; never the token).
    pub token_id: TokenId,
    /// The token's workspace.
    pub workspace_id: Option<String>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// HTTP method (or another verb for non-HTTP callers).
    pub method: Cow<'static, str>,
    /// The route template (`/v1/notes/{id}`), not the raw path, so records group by endpoint.
    pub route: Cow<'static, str>,
    /// The response status, when known.
    pub status: Option<u16>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// What the verification concluded.
    pub outcome: UsageOutcome,
    /// The introspect token of the resource server that reported the call (`POST
    /// /v1/tokens/verify`): address, route and user agent are its report, not knowmind's own
    /// observation. `None` when knowmind saw the call itself.
    pub reported_by: Option<TokenId>,
}

/// A stored usage record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredUsage {
    /// Row id; also the paging cursor.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: UsageRecordView,
}

/// The fields of a stored usage record, in serialisable form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRecordView {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Which token.
    pub token_id: TokenId,
    /// The client's address.
    pub client_ip: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Response status.
    pub status: Option<u16>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Outcome.
    pub outcome: UsageOutcome,
    /// The resource server (its introspect token) that reported address, route and user agent;
    /// `null` when knowmind observed the call itself.
    pub reported_by: Option<TokenId>,
}

/// Where a token was used from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpUse {
    /// The client address (`null` when unknown).
    pub ip: Option<String>,
    /// First use from it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last use from it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many calls.
    pub count: i64,
}

/// Which endpoint a token called.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteUse {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// First call.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last call.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many calls.
    pub count: i64,
}

/// Distinct addresses and endpoints of one token, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageSummary {
    /// Every call since the token's first use (pruning removes old records, not these counts).
    pub total: i64,
    /// By client address.
    pub ips: Vec<IpUse>,
    /// By endpoint.
    pub routes: Vec<RouteUse>,
}

/// Settings of the usage writer.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// Records that may wait in memory; beyond that, [`UsageWriter::record`] says busy.
    pub queue: usize,
    /// Most records committed in one transaction.
    pub batch: usize,
    /// How long records are kept by [`crate::Audit::prune_usage`]'s default (90 days).
    pub retention: time::Duration,
    /// How long the writer waits for more records before committing a partial batch (50 ms).
    pub linger: Duration,
    /// New records are appended to a table without a per-token index and moved, sorted by
    /// token, into the indexed one once this many have accumulated (65,536)…
    pub index_records: usize,
    /// …or once the first of them has waited this long (60 s; checked when the next batch is
    /// written, so an idle writer leaves a few records where they are). Readers see both tables;
    /// these bound how much of the unindexed one a usage query scans.
    pub index_interval: Duration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            queue: 65_536,
            batch: 8_192,
            retention: time::Duration::days(90),
            linger: Duration::from_millis(50),
            index_records: 65_536,
            index_interval: Duration::from_secs(60),
        }
    }
}

enum Message {
    Record(UsageRecord, Option<oneshot::Sender<bool>>),
    Flush(oneshot::Sender<()>),
}

/// Queues usage records for a background task that commits them in batches.
///
/// Cloning is cheap; every clone feeds the same task. The task ends when every clone is dropped,
/// after committing what was queued.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for UsageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageWriter")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}

/// Room for one record in the writer's queue, reserved by [`UsageWriter::reserve`].
pub struct UsageSlot(mpsc::OwnedPermit<Message>);

impl UsageSlot {
    /// Queues `record` in the reserved room; never fails.
    pub fn record(self, record: UsageRecord) {
        self.0.send(Message::Record(record, None));
    }

    /// Queues `record` in the reserved room and returns a handle that resolves once it is
    /// committed.
    pub fn record_committed(self, record: UsageRecord) -> Committed {
        let (done, wait) = oneshot::channel();
        self.0.send(Message::Record(record, Some(done)));
        Committed(wait)
    }
}

impl std::fmt::Debug for UsageSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageSlot")
    }
}

/// Resolves when a record has been committed.
#[derive(Debug)]
pub struct Committed(oneshot::Receiver<bool>);

impl Committed {
    /// Waits for the commit.
    ///
    /// # Errors
    /// [`Error::Closed`] if the record could not be written (the database kept failing) or the
    /// writer stopped first.
    pub async fn wait(self) -> Result<(), Error> {
        match self.0.await {
            Ok(true) => Ok(()),
            _ => Err(Error::Closed),
        }
    }
}

impl UsageWriter {
    /// Starts the background task on the current tokio runtime.
    pub fn spawn(db: Db, config: &UsageConfig) -> UsageWriter {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(run(db, rx, config.clone()));
        UsageWriter {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues `record` without waiting.
    ///
    /// # Errors
    /// [`Error::Busy`] when the queue is full; [`Error::Closed`] when the writer has stopped.
    pub fn record(&self, record: UsageRecord) -> Result<(), Error> {
        self.send(Message::Record(record, None))
    }

    /// Queues `record` only while the queue is less than half full, keeping the other half for
    /// records that must not be lost (accepted calls, see [`UsageWriter::reserve`]). For records
    /// an attacker can cause at will — refusals of a known token id — so that a flood of them
    /// cannot push legitimate calls into "busy". Returns whether it was queued; drops are counted
    /// ([`UsageWriter::dropped`]).
    pub fn record_if_room(&self, record: UsageRecord) -> bool {
        let queued = self.tx.capacity() * 2 > self.tx.max_capacity()
            && self.send(Message::Record(record, None)).is_ok();
        if !queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// How many records [`UsageWriter::record_if_room`] has dropped since the writer started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `record` and returns a handle that resolves once it is committed.
    ///
    /// # Errors
    /// As [`UsageWriter::record`].
    pub fn record_committed(&self, record: UsageRecord) -> Result<Committed, Error> {
        let (done, wait) = oneshot::channel();
        self.send(Message::Record(record, Some(done)))?;
        Ok(Committed(wait))
    }

    /// Reserves room for one record, to be filled in later (when the response status is known).
    /// Dropping the slot unused gives the room back.
    ///
    /// # Errors
    /// [`Error::Busy`] when the queue is full; [`Error::Closed`] when the writer has stopped.
    pub fn reserve(&self) -> Result<UsageSlot, Error> {
        self.tx
            .clone()
            .try_reserve_owned()
            .map(UsageSlot)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Busy,
                mpsc::error::TrySendError::Closed(_) => Error::Closed,
            })
    }

    /// Waits until everything queued before this call is committed (or given up on).
    ///
    /// # Errors
    /// [`Error::Closed`] when the writer has stopped.
    pub async fn flush(&self) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Flush(done))
            .await
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)
    }

    fn send(&self, message: Message) -> Result<(), Error> {
        self.tx.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Busy,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }
}

/// What this writer last stored as each token's last use.
type LastUses = HashMap<TokenId, (OffsetDateTime, Option<IpAddr>)>;

/// A token's stored last use is refreshed when a use is this much newer, or comes from another
/// address: "last used" to the minute, without an upsert for every call.
const LAST_USE_PRECISION: time::Duration = time::Duration::MINUTE;

async fn run(db: Db, mut rx: mpsc::Receiver<Message>, config: UsageConfig) {
    let batch_max = config.batch.max(1);
    let linger = config.linger;
    let mut messages = Vec::with_capacity(batch_max);
    let mut stored = LastUses::new();
    // Records this writer appended to `usage_recent` since it last moved them, and when the
    // first of them was written.
    let mut unindexed = 0usize;
    let mut unindexed_since = tokio::time::Instant::now();
    while rx.recv_many(&mut messages, batch_max).await > 0 {
        // Give a trickle of records a moment to become a batch: each commit costs an fsync and
        // rewrites every page it touches, so fewer, larger commits cost less per record.
        if messages.len() < batch_max && !linger.is_zero() {
            tokio::time::sleep(linger).await;
            while messages.len() < batch_max {
                match rx.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
        }
        let mut records = Vec::with_capacity(messages.len());
        let mut waiters = Vec::new();
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Record(record, waiter) => {
                    records.push(record);
                    waiters.extend(waiter);
                }
                Message::Flush(done) => flushes.push(done),
            }
        }
        let ok = write_with_retry(&db, &records, &mut stored).await;
        for waiter in waiters {
            let _ = waiter.send(ok);
        }
        if ok && !records.is_empty() {
            if unindexed == 0 {
                unindexed_since = tokio::time::Instant::now();
            }
            unindexed += records.len();
        }
        if unindexed > 0
            && (unindexed >= config.index_records
                || unindexed_since.elapsed() >= config.index_interval)
        {
            match move_to_index(&db).await {
                Ok(moved) => {
                    tracing::debug!(moved, "usage records moved to the indexed table");
                    unindexed = 0;
                }
                // Nothing is lost: the records stay readable where they are, and the next batch
                // tries again.
                Err(e) => {
                    tracing::warn!(error = %e, "usage records not moved to the indexed table")
                }
            }
        }
        // After any move, so that a flushed writer has nothing in flight.
        for done in flushes {
            let _ = done.send(());
        }
    }
}

const USAGE_COLUMNS: &str = "id, at_us, token_id, workspace_id, client_ip, method, route, status, \
     user_agent, outcome, reported_by";

/// Moves every record in `usage_recent` into `usage_records`, sorted by token so that each
/// token's run is written in one pass, and adds them to the per-token counts by address and by
/// endpoint, in one transaction; returns how many. Other writers (other instances on
/// PostgreSQL) may append meanwhile: PostgreSQL moves and counts exactly the rows its `DELETE`
/// removed; SQLite has one writer at a time, so nothing can slip in between its statements.
pub(crate) async fn move_to_index(db: &Db) -> Result<u64, Error> {
    let mut tx = db.begin_write().await?;
    let moved = match db.backend() {
        Backend::Sqlite => {
            let moved = sqlx::query(&format!(
                "INSERT INTO usage_records ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} \
                 FROM usage_recent ORDER BY token_id, id"
            ))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            for count in [COUNT_BY_IP, COUNT_BY_ROUTE] {
                sqlx::query(&count.replace("{source}", "usage_recent"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM usage_recent")
                .execute(&mut *tx)
                .await?;
            moved
        }
        Backend::Postgres => {
            let n: i64 = sqlx::query(&format!(
                "WITH moved AS (DELETE FROM usage_recent RETURNING {USAGE_COLUMNS}), \
                 kept AS (INSERT INTO usage_records ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} \
                 FROM moved ORDER BY token_id, id), \
                 by_ip AS ({}), by_route AS ({}) \
                 SELECT COUNT(*) AS n FROM moved",
                COUNT_BY_IP.replace("{source}", "moved"),
                COUNT_BY_ROUTE.replace("{source}", "moved"),
            ))
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            u64::try_from(n).unwrap_or_default()
        }
    };
    tx.commit().await?;
    Ok(moved)
}

/// Adds the records of `{source}` to each token's counts by client address.
const COUNT_BY_IP: &str = "INSERT INTO usage_by_ip (token_id, client_ip, first_us, last_us, calls) \
     SELECT token_id, COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*) FROM {source} \
     WHERE true GROUP BY token_id, COALESCE(client_ip, '') \
     ON CONFLICT (token_id, client_ip) DO UPDATE SET \
     first_us = CASE WHEN excluded.first_us < usage_by_ip.first_us \
         THEN excluded.first_us ELSE usage_by_ip.first_us END, \
     last_us = CASE WHEN excluded.last_us > usage_by_ip.last_us \
         THEN excluded.last_us ELSE usage_by_ip.last_us END, \
     calls = usage_by_ip.calls + excluded.calls";

/// Adds the records of `{source}` to each token's counts by endpoint.
const COUNT_BY_ROUTE: &str = "INSERT INTO usage_by_route (token_id, method, route, first_us, last_us, calls) \
     SELECT token_id, method, route, MIN(at_us), MAX(at_us), COUNT(*) FROM {source} \
     WHERE true GROUP BY token_id, method, route \
     ON CONFLICT (token_id, method, route) DO UPDATE SET \
     first_us = CASE WHEN excluded.first_us < usage_by_route.first_us \
         THEN excluded.first_us ELSE usage_by_route.first_us END, \
     last_us = CASE WHEN excluded.last_us > usage_by_route.last_us \
         THEN excluded.last_us ELSE usage_by_route.last_us END, \
     calls = usage_by_route.calls + excluded.calls";

async fn write_with_retry(db: &Db, records: &[UsageRecord], stored: &mut LastUses) -> bool {
    if records.is_empty() {
        return true;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=4 {
        match write_batch(db, records, stored).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, attempt, records = records.len(), "usage batch not written");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
    tracing::error!(
        records = records.len(),
        "usage records dropped after repeated failures"
    );
    false
}

/// Rows per statement, largest first. A batch is split greedily into these sizes, so there are only
/// a handful of distinct statement texts and every one stays prepared: statements whose row count
/// followed the batch size were prepared afresh almost every time (measured by the load bench).
/// 256 rows of 10 values stay well under SQLite's 32,766 parameters.
const CHUNK_SIZES: [usize; 4] = [256, 32, 4, 1];

fn fixed_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNK_SIZES
            .iter()
            .copied()
            .find(|&size| size <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

async fn write_batch(db: &Db, records: &[UsageRecord], stored: &mut LastUses) -> Result<(), Error> {
    let mut tx = db.begin_write().await?;
    for chunk in fixed_chunks(records) {
        let mut sql = Sql::new(
            db.backend(),
            "INSERT INTO usage_recent (at_us, token_id, workspace_id, client_ip, method, route, \
             status, user_agent, outcome, reported_by) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Int(to_micros(r.at)))
                .push(", ")
                .bind(Arg::Text(r.token_id.to_string()))
                .push(", ")
                .bind(Arg::OptText(r.workspace_id.clone()))
                .push(", ")
                .bind(Arg::OptText(r.client_ip.map(|ip| ip.to_string())))
                .push(", ")
                .bind(Arg::Text(bounded(Some(&r.method), 16).unwrap_or_default()))
                .push(", ")
                .bind(Arg::Text(bounded(Some(&r.route), 256).unwrap_or_default()))
                .push(", ")
                .bind(Arg::OptInt(r.status.map(i64::from)))
                .push(", ")
                .bind(Arg::OptText(bounded(r.user_agent.as_deref(), 256)))
                .push(", ")
                .bind(Arg::Text(r.outcome.as_str().to_owned()))
                .push(", ")
                .bind(Arg::OptText(r.reported_by.map(|id| id.to_string())))
                .push(")");
        }
        sql.query().execute(&mut *tx).await?;
    }
    // The latest accepted use per token, one row each (PostgreSQL refuses to upsert a row twice
    // in one statement).
    let mut latest: HashMap<TokenId, &UsageRecord> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.outcome == UsageOutcome::Accepted)
    {
        let slot = latest.entry(r.token_id).or_insert(r);
        if r.at >= slot.at {
            *slot = r;
        }
    }
    let latest: Vec<_> = latest
        .into_values()
        .filter(|r| {
            stored
                .get(&r.token_id)
                .is_none_or(|(at, ip)| *ip != r.client_ip || r.at - *at >= LAST_USE_PRECISION)
        })
        .collect();
    for chunk in fixed_chunks(&latest) {
        let mut sql = Sql::new(
            db.backend(),
            "INSERT INTO token_last_use (token_id, at_us, client_ip) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Text(r.token_id.to_string()))
                .push(", ")
                .bind(Arg::Int(to_micros(r.at)))
                .push(", ")
                .bind(Arg::OptText(r.client_ip.map(|ip| ip.to_string())))
                .push(")");
        }
        sql.push(
            " ON CONFLICT (token_id) DO UPDATE SET at_us = excluded.at_us, \
             client_ip = excluded.client_ip WHERE excluded.at_us >= token_last_use.at_us",
        );
        sql.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    if stored.len() > 1_000_000 {
        stored.clear();
    }
    for r in latest {
        stored.insert(r.token_id, (r.at, r.client_ip));
    }
    Ok(())
}

/// A token's usage records, newest first, older than the cursor `before_id`: the newest of the
/// indexed ones and of those not yet moved there, merged.
pub(crate) async fn records(
    db: &Db,
    token: TokenId,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredUsage>, Error> {
    let mut sql = Sql::new(db.backend(), "SELECT ");
    sql.push(USAGE_COLUMNS).push(" FROM (");
    for (i, (table, alias)) in [("usage_records", "indexed"), ("usage_recent", "recent")]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("SELECT * FROM (SELECT ")
            .push(USAGE_COLUMNS)
            .push(" FROM ")
            .push(table)
            .push(" WHERE token_id = ")
            .bind(Arg::Text(token.to_string()));
        if let Some(before) = before_id {
            sql.push(" AND id < ").bind(Arg::Int(before));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(Arg::Int(limit))
            .push(") AS ")
            .push(alias);
    }
    sql.push(") AS newest ORDER BY id DESC LIMIT ")
        .bind(Arg::Int(limit));
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let token_id: String = row.try_get("token_id")?;
            let status: Option<i64> = row.try_get("status")?;
            let outcome: String = row.try_get("outcome")?;
            let reported_by: Option<String> = row.try_get("reported_by")?;
            Ok(StoredUsage {
                id: row.try_get("id")?,
                record: UsageRecordView {
                    at: from_micros(row.try_get("at_us")?)?,
                    token_id: token_id.parse().map_err(|_| Error::Corrupt("token id"))?,
                    client_ip: row.try_get("client_ip")?,
                    method: row.try_get("method")?,
                    route: row.try_get("route")?,
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    user_agent: row.try_get("user_agent")?,
                    outcome: UsageOutcome::parse(&outcome)?,
                    reported_by: reported_by
                        .map(|id| id.parse().map_err(|_| Error::Corrupt("token id")))
                        .transpose()?,
                },
            })
        })
        .collect()
}

/// Distinct addresses and endpoints of a token: the counts kept by the moves plus the records
/// not moved yet.
pub(crate) async fn summary(db: &Db, token: TokenId) -> Result<UsageSummary, Error> {
    let id = token.to_string();
    let ips = sqlx::query(
        "SELECT client_ip, MIN(first_us) AS first_us, MAX(last_us) AS last_us, \
         CAST(SUM(calls) AS BIGINT) AS n FROM ( \
         SELECT client_ip, first_us, last_us, calls FROM usage_by_ip WHERE token_id = $1 \
         UNION ALL SELECT COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*) \
         FROM usage_recent WHERE token_id = $1 GROUP BY COALESCE(client_ip, '') \
         ) AS u GROUP BY client_ip ORDER BY last_us DESC, client_ip",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        let ip: String = row.try_get("client_ip")?;
        Ok(IpUse {
            ip: (!ip.is_empty()).then_some(ip),
            first_seen: from_micros(row.try_get("first_us")?)?,
            last_seen: from_micros(row.try_get("last_us")?)?,
            count: row.try_get("n")?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    let routes = sqlx::query(
        "SELECT method, route, MIN(first_us) AS first_us, MAX(last_us) AS last_us, \
         CAST(SUM(calls) AS BIGINT) AS n FROM ( \
         SELECT method, route, first_us, last_us, calls FROM usage_by_route WHERE token_id = $1 \
         UNION ALL SELECT method, route, MIN(at_us), MAX(at_us), COUNT(*) \
         FROM usage_recent WHERE token_id = $1 GROUP BY method, route \
         ) AS u GROUP BY method, route ORDER BY last_us DESC, method, route",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(RouteUse {
            method: row.try_get("method")?,
            route: row.try_get("route")?,
            first_seen: from_micros(row.try_get("first_us")?)?,
            last_seen: from_micros(row.try_get("last_us")?)?,
            count: row.try_get("n")?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    Ok(UsageSummary {
        total: ips.iter().map(|ip| ip.count).sum(),
        ips,
        routes,
    })
}

/// Deletes usage records older than `before`; returns how many. Records still waiting in
/// `usage_recent` are moved first, so that every pruned record has been counted: the counts by
/// address and endpoint cover every call, and only the individual records expire.
pub(crate) async fn prune(db: &Db, before: OffsetDateTime) -> Result<u64, Error> {
    move_to_index(db).await?;
    let done = sqlx::query("DELETE FROM usage_records WHERE at_us < $1")
        .bind(to_micros(before))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_few_statement_sizes() {
        let items: Vec<u32> = (0..8_192 + 300 + 7).collect();
        let sizes: Vec<usize> = fixed_chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), items.len());
        assert!(sizes.iter().all(|s| CHUNK_SIZES.contains(s)));
        // 8,499 = 33 × 256 + 32 + 4 × 4 + 3 × 1
        assert_eq!(sizes.iter().filter(|&&s| s == 256).count(), 33);
        assert_eq!(&sizes[33..], [32, 4, 4, 4, 4, 1, 1, 1]);
        assert_eq!(fixed_chunks::<u32>(&[]).count(), 0);
    }
}
