//! Revocation sync: every `max_staleness / 2` the store asks the audit log which tokens the events
//! appended since the last sync revoked, rotated or updated, and evicts them. The audit log is a gap-free, ordered
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

use audit::Audit;
use token_core::Clock;

use crate::cache::Cache;

/// Starts the sync task, or none when `max_staleness` is zero (every hit is re-read then).
pub(crate) fn spawn(
    audit: Audit,
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
    Some(tokio::spawn(run(audit, cache, clock, every, from_seq)))
}

async fn run(
    audit: Audit,
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut last_seq: i64,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let generation = cache.begin_sync();
        let started = clock.monotonic();
        match audit.token_changes_since(last_seq).await {
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
