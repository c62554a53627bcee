//! Revocation sync: every `max_staleness / 2` the store reads the audit events appended since the
//! last sync and evicts every token they revoke or rotate. The audit log is a gap-free, ordered
//! change log (sequence numbers are taken under a row lock, so they commit in order), and this is
//! one indexed range read however many tokens are cached.
//!
//! A completed sync that started at `P` has evicted every token revoked before `P` from the
//! entries that were cached when it started, so such entries stay fresh until `P + max_staleness`
//! without a database read of their own (see `Cache::get`). If syncs fail, entries fall back to
//! being re-read one by one when older than the bound. On PostgreSQL, LISTEN/NOTIFY
//! (`listener.rs`) usually evicts within milliseconds; the sync is the guarantee.

use std::sync::Arc;
use std::time::Duration;

use audit::db::Db;
use sqlx::Row;
use token_core::{Clock, TokenId};

use crate::cache::Cache;

/// Starts the sync task, or none when `max_staleness` is zero (every hit is re-read then).
pub(crate) fn spawn(
    db: Db,
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    max_staleness: time::Duration,
    from_seq: i64,
) -> Option<tokio::task::JoinHandle<()>> {
    let half = Duration::try_from(max_staleness / 2).ok()?;
    if half.is_zero() {
        return None;
    }
    let every = half.clamp(Duration::from_millis(10), Duration::from_secs(30));
    Some(tokio::spawn(run(db, cache, clock, every, from_seq)))
}

async fn run(db: Db, cache: Arc<Cache>, clock: Arc<dyn Clock>, every: Duration, mut last_seq: i64) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let generation = cache.begin_sync();
        let started = clock.monotonic();
        match changes_since(&db, last_seq).await {
            Ok((ids, seq)) => {
                last_seq = seq;
                cache.finish_sync(generation, started, &ids);
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocation sync failed; cached tokens will be re-read")
            }
        }
    }
}

/// Token ids revoked or rotated after `after`, and the last sequence number read.
async fn changes_since(db: &Db, after: i64) -> Result<(Vec<TokenId>, i64), sqlx::Error> {
    let mut ids = Vec::new();
    let mut last = after;
    loop {
        let rows = sqlx::query(
            "SELECT seq, action, target_id FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(last)
        .fetch_all(db.pool())
        .await?;
        for row in &rows {
            last = row.try_get("seq")?;
            let action: String = row.try_get("action")?;
            if action == "token.revoked" || action == "token.rotated" {
                let target: Option<String> = row.try_get("target_id")?;
                ids.extend(target.and_then(|t| t.parse::<TokenId>().ok()));
            }
        }
        if rows.len() < 1000 {
            return Ok((ids, last));
        }
    }
}
