//! The usage writer: a background task that commits queued records in groups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use token_core::TokenId;
use tokio::sync::{mpsc, oneshot};

use super::anomalies::Baselines;
use super::tables::{move_to_index, write_batch};
use super::{UsageConfig, UsageRecord};
use crate::Audit;
use crate::error::Error;

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
    /// Starts the background task on the current tokio runtime, writing to `audit`'s database
    /// (and its chain, for the anomalies it detects).
    pub fn spawn(audit: &Audit, config: &UsageConfig) -> UsageWriter {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(run(audit.clone(), rx, config.clone()));
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
pub(super) type LastUses = HashMap<TokenId, (OffsetDateTime, Option<IpAddr>)>;

/// A token's stored last use is refreshed when a use is this much newer, or comes from another
/// address: "last used" to the minute, without an upsert for every call.
pub(super) const LAST_USE_PRECISION: time::Duration = time::Duration::MINUTE;

/// What the writer keeps between batches.
pub(super) struct Memory {
    /// The last use stored for each token.
    pub(super) last_uses: LastUses,
    /// What it knows of the tokens' baselines.
    pub(super) baselines: Baselines,
}

async fn run(audit: Audit, mut rx: mpsc::Receiver<Message>, config: UsageConfig) {
    let db = &audit.db;
    let batch_max = config.batch.max(1);
    let linger = config.linger;
    let mut messages = Vec::with_capacity(batch_max);
    let mut memory = Memory {
        last_uses: LastUses::new(),
        baselines: Baselines::default(),
    };
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
        let ok = write_with_retry(&audit, &config, &records, &mut memory).await;
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
            match move_to_index(db).await {
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

async fn write_with_retry(
    audit: &Audit,
    config: &UsageConfig,
    records: &[UsageRecord],
    memory: &mut Memory,
) -> bool {
    if records.is_empty() {
        return true;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=4 {
        match write_batch(audit, config, records, memory).await {
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
