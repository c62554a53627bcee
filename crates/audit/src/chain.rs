//! The hash chain: each event's hash covers the previous hash and all of the event's fields, so
//! changing, removing or reordering any stored event breaks every hash after it.

use hmac::Mac;
use knowmind_db::Connection;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::Error;
use knowmind_api::{Break, BreakReason, ChainReport, Checkpoint, Event, WorkspaceChainReport};

use crate::event::{Context, NewEvent, bounded};
use crate::key::AuditKey;
use knowmind_db::{Arg, Db, Sql, from_micros, to_micros};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends `event` inside the caller's transaction, so that the event is written if and only if
/// the change it records is. Returns its sequence number. With a key, the event's hash is an
/// HMAC (version 2); without, plain SHA-256 (version 1).
///
/// Taking the next sequence number updates the single `audit_head` row, which locks it until the
/// transaction ends: concurrent writers (other connections, other server instances) wait their
/// turn, so the chain never forks.
pub(crate) async fn append(
    conn: &mut Connection,
    key: Option<&AuditKey>,
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
        hash_version: if key.is_some() { KEYED } else { UNKEYED },
        hash: String::new(),
    };
    let hash = event_hash(&stored, key).ok_or(Error::KeyRequired)?;
    sqlx::query(
        "INSERT INTO audit_events (seq, at_us, workspace_id, actor_kind, actor_id, action, \
         target_kind, target_id, client_ip, user_agent, request_id, outcome, details, prev_hash, \
         hash, hash_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
    .bind(i64::from(stored.hash_version))
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(hash.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// `hash_version` of events hashed with plain SHA-256: written before the chain was keyed.
pub const UNKEYED: u8 = 1;
/// `hash_version` of events hashed with HMAC-SHA-256 under the audit key.
pub const KEYED: u8 = 2;

/// The hash of `event` by its `hash_version`: SHA-256 (version 1) or HMAC-SHA-256 under `key`
/// (version 2) over a domain tag, the previous hash, the sequence number and every field, each
/// length-prefixed (absent fields have their own marker), so no two different events encode
/// alike. `None` for a keyed event without the key, or an unknown version.
pub(crate) fn event_hash(event: &Event, key: Option<&AuditKey>) -> Option<String> {
    match event.hash_version {
        UNKEYED => {
            let mut h = Sha256::new();
            encode(event, b"knowmind-audit-v1\0", |bytes| h.update(bytes));
            Some(hex::encode(h.finalize()))
        }
        KEYED => {
            let mut mac = key?.mac();
            encode(event, b"knowmind-audit-v2\0", |bytes| mac.update(bytes));
            Some(hex::encode(mac.finalize().into_bytes()))
        }
        _ => None,
    }
}

fn encode(event: &Event, tag: &[u8], mut update: impl FnMut(&[u8])) {
    update(tag);
    update(event.prev_hash.as_bytes());
    update(&event.seq.to_be_bytes());
    update(&to_micros(event.at).to_be_bytes());
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
            None => update(&u64::MAX.to_be_bytes()),
            Some(text) => {
                update(&(text.len() as u64).to_be_bytes());
                update(text.as_bytes());
            }
        }
    }
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
    prev_hash, hash, hash_version FROM audit_events";

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
        hash_version: u8::try_from(row.try_get::<i64, _>("hash_version")?)
            .map_err(|_| Error::Corrupt("hash version"))?,
        hash: row.try_get("hash")?,
    })
}

/// Walks the whole chain (in pages) and reports the first problem.
pub(crate) async fn verify(
    db: &Db,
    key: Option<&AuditKey>,
    checkpoints: &[Checkpoint],
) -> Result<ChainReport, Error> {
    const PAGE: i64 = 1_000;
    // Read the head first: events appended while we walk must not look like a truncation.
    let head_at_start = checkpoint_of(db).await?.seq;
    let mut expected_seq = 1;
    let mut running = GENESIS.to_owned();
    let mut count = 0u64;
    let mut keyed_since = None;
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
            } else {
                check_event(event, key, &mut keyed_since)?.or_else(|| {
                    checkpoints
                        .iter()
                        .any(|c| c.seq == event.seq && c.hash != event.hash)
                        .then_some(BreakReason::CheckpointMismatch)
                })
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
    // The head row and the checkpoints all say how long the log must at least be.
    let claimed = checkpoints
        .iter()
        .map(|c| c.seq)
        .fold(head_at_start, i64::max);
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

/// Checks one event's own hash, and that no unkeyed event follows a keyed one (`keyed_since`
/// is the first keyed sequence number seen so far).
///
/// # Errors
/// [`Error::KeyRequired`] for a keyed event when `key` is `None`.
fn check_event(
    event: &Event,
    key: Option<&AuditKey>,
    keyed_since: &mut Option<i64>,
) -> Result<Option<BreakReason>, Error> {
    if event.hash_version == KEYED {
        if key.is_none() {
            return Err(Error::KeyRequired);
        }
        keyed_since.get_or_insert(event.seq);
    } else if keyed_since.is_some() {
        return Ok(Some(BreakReason::Downgraded));
    }
    let ok =
        event_hash(event, key).is_some_and(|h| h.as_bytes().ct_eq(event.hash.as_bytes()).into());
    Ok((!ok).then_some(BreakReason::HashMismatch))
}

/// Checks the events of one workspace after `after`, at most `limit` of them: each event's own
/// hash, that it follows the event before it (whichever workspace that one belongs to: only its
/// hash is read), and that no unkeyed event follows a keyed one.
pub(crate) async fn verify_workspace(
    db: &Db,
    key: Option<&AuditKey>,
    workspace: &str,
    after: i64,
    limit: i64,
) -> Result<WorkspaceChainReport, Error> {
    let first_keyed: Option<i64> =
        sqlx::query("SELECT MIN(seq) AS s FROM audit_events WHERE hash_version = $1")
            .bind(i64::from(KEYED))
            .fetch_one(db.pool())
            .await?
            .try_get("s")?;
    let rows = sqlx::query(&format!(
        "{SELECT_EVENT} WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(workspace)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db.pool())
    .await?;
    let more = rows.len() as i64 > limit;
    let events = rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = WorkspaceChainReport {
        events: 0,
        last_seq: after,
        more,
        broken: None,
    };
    for chunk in events.chunks(500) {
        let previous = previous_hashes(db, chunk).await?;
        for event in chunk {
            let mut keyed_since = first_keyed.filter(|&k| k < event.seq);
            let expected_prev = if event.seq == 1 {
                Some(GENESIS)
            } else {
                previous.get(&(event.seq - 1)).map(String::as_str)
            };
            let reason = match expected_prev {
                None => Some(BreakReason::Missing),
                Some(prev) if prev != event.prev_hash => Some(BreakReason::PrevHashMismatch),
                Some(_) => check_event(event, key, &mut keyed_since)?,
            };
            if let Some(reason) = reason {
                let seq = if reason == BreakReason::Missing {
                    event.seq - 1
                } else {
                    event.seq
                };
                report.broken = Some(Break { seq, reason });
                report.more = false;
                return Ok(report);
            }
            report.events += 1;
            report.last_seq = event.seq;
        }
    }
    Ok(report)
}

/// The hashes of the events just before each of `events`.
async fn previous_hashes(
    db: &Db,
    events: &[Event],
) -> Result<std::collections::HashMap<i64, String>, Error> {
    let mut sql = Sql::new(
        db.backend(),
        "SELECT seq, hash FROM audit_events WHERE seq IN (",
    );
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Arg::Int(event.seq - 1));
    }
    sql.push(")");
    sql.query()
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get("seq")?, row.try_get("hash")?)))
        .collect()
}

/// Whether the log still holds `checkpoint`: the event at its sequence number has its hash, and
/// — if that event is keyed — no unkeyed event follows. Cheap (two indexed reads): for start-up.
pub(crate) async fn holds(db: &Db, checkpoint: &Checkpoint) -> Result<bool, Error> {
    if checkpoint.seq == 0 {
        return Ok(true);
    }
    let row = sqlx::query("SELECT hash, hash_version FROM audit_events WHERE seq = $1")
        .bind(checkpoint.seq)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let hash: String = row.try_get("hash")?;
    let version: i64 = row.try_get("hash_version")?;
    if !bool::from(hash.as_bytes().ct_eq(checkpoint.hash.as_bytes())) {
        return Ok(false);
    }
    if version != i64::from(KEYED) {
        return Ok(true);
    }
    let downgraded: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE seq > $1 AND hash_version <> $2")
            .bind(checkpoint.seq)
            .bind(i64::from(KEYED))
            .fetch_one(db.pool())
            .await?
            .try_get("n")?;
    Ok(downgraded == 0)
}

/// Checks that `key` is the key the log's newest keyed event was written with.
pub(crate) async fn check_key(db: &Db, key: &AuditKey) -> Result<(), Error> {
    let row = sqlx::query(&format!(
        "{SELECT_EVENT} WHERE seq = (SELECT MAX(seq) FROM audit_events WHERE hash_version = $1)"
    ))
    .bind(i64::from(KEYED))
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let event = event_from_row(&row)?;
    match event_hash(&event, Some(key)) {
        Some(hash) if bool::from(hash.as_bytes().ct_eq(event.hash.as_bytes())) => Ok(()),
        _ => Err(Error::KeyMismatch),
    }
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn event(version: u8) -> Event {
        Event {
            seq: 7,
            at: datetime!(2026-11-29 12:00:00.123456 UTC),
            workspace_id: Some("ws_a".into()),
            actor_kind: "member".into(),
            actor_id: Some("mem_1".into()),
            action: "token.revoked".into(),
            target_kind: Some("token".into()),
            target_id: Some("0123456789abcdef".into()),
            client_ip: Some("192.0.2.7".into()),
            user_agent: None,
            request_id: Some("req_1".into()),
            outcome: "success".into(),
            details: serde_json::json!({"reason": "leaked"}),
            prev_hash: "ab".repeat(32),
            hash_version: version,
            hash: String::new(),
        }
    }

    /// Known answers (computed independently with Python's `hashlib` and `hmac` over the same
    /// encoding): a refactor must not change how stored events are hashed, or every stored
    /// chain breaks.
    #[test]
    fn event_hashes_known_answers() {
        let key = AuditKey::from_hex(&"07".repeat(32)).unwrap();
        assert_eq!(
            event_hash(&event(UNKEYED), None).unwrap(),
            "c822a8f2c05245d1eda27e0c0af88cf1cf9899b7513701e0126951ce8b8f6d11"
        );
        assert_eq!(
            event_hash(&event(KEYED), Some(&key)).unwrap(),
            "a9341e7ea10ff6beea6cc1384d51ff3ad3dca4ae0ab05656578ddc760f82fec3"
        );
        assert_eq!(event_hash(&event(KEYED), None), None, "keyed needs the key");
        assert_eq!(event_hash(&event(3), Some(&key)), None, "unknown version");
    }
}
