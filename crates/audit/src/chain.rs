//! The hash chain: each event's hash covers the previous hash and all of the event's fields, so
//! changing, removing or reordering any stored event breaks every hash after it.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::db::{Db, from_micros, to_micros};
use crate::error::Error;
use crate::event::{Context, Event, NewEvent, bounded};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A point in the chain to keep outside the database: verifying against it also catches a
/// removed tail, which the chain alone cannot show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The last sequence number (0 for an empty log).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// What [`crate::Audit::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// How many events were checked.
    pub events: u64,
    /// The last event checked (the head when intact).
    pub head: Checkpoint,
    /// The first problem, if any.
    pub broken: Option<Break>,
}

impl ChainReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    /// The first bad sequence number.
    pub seq: i64,
    /// What is wrong there.
    pub reason: BreakReason,
}

/// What is wrong at a [`Break`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// The event's contents do not match its hash (edited).
    HashMismatch,
    /// The event does not follow the previous one (reordered or replaced).
    PrevHashMismatch,
    /// The event with this sequence number is missing (deleted).
    Missing,
    /// The log ends before this sequence number, which the head or the checkpoint says exists.
    Truncated,
    /// The event at the checkpoint's sequence number has another hash (history rewritten).
    CheckpointMismatch,
}

/// Appends `event` inside the caller's transaction, so that the event is written if and only if
/// the change it records is. Returns its sequence number.
///
/// Taking the next sequence number updates the single `audit_head` row, which locks it until the
/// transaction ends: concurrent writers (other connections, other server instances) wait their
/// turn, so the chain never forks.
///
/// # Errors
/// [`Error::Database`]; the caller's transaction should then be rolled back (dropping it does).
pub async fn append(
    conn: &mut AnyConnection,
    context: &Context,
    event: &NewEvent,
    at: OffsetDateTime,
) -> Result<i64, Error> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let stored = Event {
        seq,
        at: from_micros(to_micros(at))?,
        workspace_id: event.workspace_id.clone(),
        actor_kind: context.actor.kind().to_owned(),
        actor_id: context.actor.id(),
        action: event.action.as_str().to_owned(),
        target_kind: event.target_kind.map(str::to_owned),
        target_id: event.target_id.clone(),
        client_ip: context.client_ip.map(|ip| ip.to_string()),
        user_agent: bounded(context.user_agent.as_deref(), 256),
        request_id: bounded(context.request_id.as_deref(), 128),
        outcome: event.outcome.as_str().to_owned(),
        details: event.details.clone(),
        prev_hash,
        hash: String::new(),
    };
    let hash = event_hash(&stored);
    sqlx::query(
        "INSERT INTO audit_events (seq, at_us, workspace_id, actor_kind, actor_id, action, \
         target_kind, target_id, client_ip, user_agent, request_id, outcome, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(seq)
    .bind(to_micros(stored.at))
    .bind(stored.workspace_id.as_deref())
    .bind(stored.actor_kind.as_str())
    .bind(stored.actor_id.as_deref())
    .bind(stored.action.as_str())
    .bind(stored.target_kind.as_deref())
    .bind(stored.target_id.as_deref())
    .bind(stored.client_ip.as_deref())
    .bind(stored.user_agent.as_deref())
    .bind(stored.request_id.as_deref())
    .bind(stored.outcome.as_str())
    .bind(stored.details.to_string())
    .bind(stored.prev_hash.as_str())
    .bind(hash.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(hash.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// SHA-256 over a domain tag, the previous hash, the sequence number and every field, each
/// length-prefixed (absent fields have their own marker), so no two different events encode
/// alike.
pub(crate) fn event_hash(event: &Event) -> String {
    let mut h = Sha256::new();
    h.update(b"knowmind-audit-v1\0");
    h.update(event.prev_hash.as_bytes());
    h.update(event.seq.to_be_bytes());
    h.update(to_micros(event.at).to_be_bytes());
    let details = event.details.to_string();
    let fields: [Option<&str>; 11] = [
        event.workspace_id.as_deref(),
        Some(&event.actor_kind),
        event.actor_id.as_deref(),
        Some(&event.action),
        event.target_kind.as_deref(),
        event.target_id.as_deref(),
        event.client_ip.as_deref(),
        event.user_agent.as_deref(),
        event.request_id.as_deref(),
        Some(&event.outcome),
        Some(&details),
    ];
    for field in fields {
        match field {
            None => h.update(u64::MAX.to_be_bytes()),
            Some(text) => {
                h.update((text.len() as u64).to_be_bytes());
                h.update(text.as_bytes());
            }
        }
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Reads events with `seq` in `(after, after + limit]`, in order.
pub(crate) async fn read_range(db: &Db, after: i64, limit: i64) -> Result<Vec<Event>, Error> {
    let rows = sqlx::query(&format!(
        "{SELECT_EVENT} WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(event_from_row).collect()
}

pub(crate) const SELECT_EVENT: &str = "SELECT seq, at_us, workspace_id, actor_kind, actor_id, \
    action, target_kind, target_id, client_ip, user_agent, request_id, outcome, details, \
    prev_hash, hash FROM audit_events";

pub(crate) fn event_from_row(row: &sqlx::any::AnyRow) -> Result<Event, Error> {
    let details: String = row.try_get("details")?;
    Ok(Event {
        seq: row.try_get("seq")?,
        at: from_micros(row.try_get("at_us")?)?,
        workspace_id: row.try_get("workspace_id")?,
        actor_kind: row.try_get("actor_kind")?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        target_kind: row.try_get("target_kind")?,
        target_id: row.try_get("target_id")?,
        client_ip: row.try_get("client_ip")?,
        user_agent: row.try_get("user_agent")?,
        request_id: row.try_get("request_id")?,
        outcome: row.try_get("outcome")?,
        details: serde_json::from_str(&details)
            .map_err(|_| Error::Corrupt("details are not JSON"))?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Walks the whole chain (in pages) and reports the first problem.
pub(crate) async fn verify(db: &Db, checkpoint: Option<&Checkpoint>) -> Result<ChainReport, Error> {
    const PAGE: i64 = 1_000;
    // Read the head first: events appended while we walk must not look like a truncation.
    let head_at_start = checkpoint_of(db).await?.seq;
    let mut expected_seq = 1;
    let mut running = GENESIS.to_owned();
    let mut count = 0u64;
    let mut broken = None;
    'walk: loop {
        let page = read_range(db, expected_seq - 1, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let reason = if event.seq != expected_seq {
                // The row for `expected_seq` is gone (or moved): report the first missing number.
                Some(BreakReason::Missing)
            } else if event.prev_hash != running {
                Some(BreakReason::PrevHashMismatch)
            } else if event_hash(event) != event.hash {
                Some(BreakReason::HashMismatch)
            } else if checkpoint.is_some_and(|c| c.seq == event.seq && c.hash != event.hash) {
                Some(BreakReason::CheckpointMismatch)
            } else {
                None
            };
            if let Some(reason) = reason {
                broken = Some(Break {
                    seq: expected_seq,
                    reason,
                });
                break 'walk;
            }
            running.clone_from(&event.hash);
            expected_seq += 1;
            count += 1;
        }
    }
    let last = expected_seq - 1;
    // The head row and the checkpoint both say how long the log must at least be.
    let claimed = checkpoint.map_or(head_at_start, |c| c.seq.max(head_at_start));
    if broken.is_none() && claimed > last {
        broken = Some(Break {
            seq: last + 1,
            reason: BreakReason::Truncated,
        });
    }
    Ok(ChainReport {
        events: count,
        head: Checkpoint {
            seq: last,
            hash: running,
        },
        broken,
    })
}

/// The current head.
pub(crate) async fn checkpoint_of(db: &Db) -> Result<Checkpoint, Error> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    Ok(Checkpoint {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}
