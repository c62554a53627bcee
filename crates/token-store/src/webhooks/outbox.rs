//! From the audit log to attempts: fan-out, leases, the record of each attempt, retries.

use hmac::{Hmac, Mac};
use knowmind_db::{Backend, to_micros};
use serde_json::json;
use sha2::Sha256;
use sqlx::Row;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::store::{Store, new_id};

/// Waits before each retry, in seconds: ten retries over 39 hours, so an endpoint that is down
/// for a day still gets every event.
const BACKOFF_SECONDS: [i64; 10] = [
    30, 120, 600, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 43_200,
];

/// How long a claimed delivery is reserved for the instance sending it (longer than a send
/// may take; a crashed sender's deliveries are sent again after it).
const LEASE_SECONDS: i64 = 60;

/// How many deliveries to one endpoint one claim takes at most.
const PER_ENDPOINT: usize = 3;

/// How many audit events one fan-out round reads per endpoint.
const FAN_OUT_BATCH: u32 = 500;

/// A delivery leased to this instance: what to send, where, and the secret to sign it with.
pub struct ClaimedDelivery {
    /// `whd_…`, sent as `Knowmind-Webhook-Id` (the same on every retry).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Where to POST.
    pub url: String,
    /// The event type, sent as `Knowmind-Event`.
    pub event_type: String,
    /// The JSON body.
    pub payload: String,
    /// Which attempt this is (1 for the first).
    pub attempt: i64,
    /// The lease it was claimed under: an attempt is recorded only while it holds.
    lease: i64,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &super::origin(&self.url))
            .field("event_type", &self.event_type)
            .field("attempt", &self.attempt)
            .field("secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl ClaimedDelivery {
    /// The `Knowmind-Signature` header for sending at `timestamp` (Unix seconds):
    /// `t=<timestamp>,v1=<hex HMAC-SHA-256 over "<timestamp>.<body>" with the endpoint's
    /// secret>`, as Stripe signs its webhooks, so a receiver can refuse old replays.
    pub fn signature(&self, timestamp: i64) -> String {
        signature(&self.secret, timestamp, self.payload.as_bytes())
    }
}

fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a `Knowmind-Signature` header as a receiver would: a `v1` HMAC of `"<t>.<body>"`
/// under `secret` (the `whsec_…` text), compared in constant time, with `t` within
/// `tolerance` of `now`.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: time::Duration,
) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if now.unix_timestamp().abs_diff(t) > tolerance.whole_seconds().unsigned_abs() {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    signatures
        .iter()
        .any(|s| subtle::ConstantTimeEq::ct_eq(s.as_slice(), expected.as_slice()).into())
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The endpoint's HTTP status, if it answered (2xx is delivered).
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

impl Store {
    /// Turns the audit events after each live endpoint's cursor into deliveries for the events it
    /// subscribed to, and moves the cursor, in one transaction per batch. When two instances
    /// race, the cursor's conditional update lets one of them through; the other stops.
    /// Returns how many deliveries were queued.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn fan_out_webhooks(&self) -> Result<u64, Error> {
        let endpoints = sqlx::query(
            "SELECT id, workspace_id, events, cursor_seq FROM webhook_endpoints \
             WHERE removed_at_us IS NULL",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut queued = 0;
        for endpoint in &endpoints {
            let id: String = endpoint.try_get("id")?;
            let workspace: String = endpoint.try_get("workspace_id")?;
            let events: String = endpoint.try_get("events")?;
            let wanted: Vec<&str> = events.split(' ').collect();
            let mut cursor: i64 = endpoint.try_get("cursor_seq")?;
            loop {
                let batch = self
                    .inner
                    .audit
                    .events_after(&workspace, cursor, FAN_OUT_BATCH)
                    .await?;
                let Some(last) = batch.last().map(|e| e.seq) else {
                    break;
                };
                let now = self.now();
                let mut tx = self.inner.db.begin_write().await?;
                let moved = sqlx::query(
                    "UPDATE webhook_endpoints SET cursor_seq = $1 \
                     WHERE id = $2 AND cursor_seq = $3 AND removed_at_us IS NULL",
                )
                .bind(last)
                .bind(id.as_str())
                .bind(cursor)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    break; // another instance fanned this batch out, or the endpoint went
                }
                for event in batch
                    .iter()
                    .filter(|e| wanted.iter().any(|w| *w == "*" || *w == e.action))
                {
                    let delivery = new_id("whd_")?;
                    let payload = json!({
                        "id": delivery,
                        "type": event.action,
                        "created_at": event.at.format(&time::format_description::well_known::Rfc3339)
                            .map_err(|_| Error::corrupt("event time"))?,
                        "workspace_id": workspace,
                        "data": event,
                    });
                    queued += sqlx::query(
                        "INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, event_type, \
                         payload, created_at_us, state, next_attempt_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $6) \
                         ON CONFLICT (endpoint_id, event_seq) DO NOTHING",
                    )
                    .bind(delivery.as_str())
                    .bind(id.as_str())
                    .bind(event.seq)
                    .bind(event.action.as_str())
                    .bind(payload.to_string())
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                cursor = last;
                if batch.len() < FAN_OUT_BATCH as usize {
                    break;
                }
            }
        }
        Ok(queued)
    }

    /// Leases up to `limit` due deliveries to this instance for a minute, oldest due first.
    /// Instances claiming at once never get the same delivery (`FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL; SQLite has one writer).
    ///
    /// # Errors
    /// [`Error::Storage`]; a corrupt sealed secret.
    pub async fn claim_deliveries(&self, limit: u32) -> Result<Vec<ClaimedDelivery>, Error> {
        // Without an audit key there are no secrets to sign with (and no endpoints).
        let Some(key) = self.inner.webhook_key.as_deref().copied() else {
            return Ok(Vec::new());
        };
        let now = to_micros(self.now());
        let lease = now + LEASE_SECONDS * 1_000_000;
        let lock = match self.inner.db.backend() {
            Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let limit = usize::try_from(limit.clamp(1, 100)).unwrap_or(100);
        let mut tx = self.inner.db.begin_write().await?;
        // A window of due deliveries, locked; then a fair share of it: at most
        // PER_ENDPOINT per endpoint, so one endpoint that never answers cannot hold up the rest.
        let due = sqlx::query(&format!(
            "SELECT d.id, d.endpoint_id FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_us <= $1 \
             AND (d.leased_until_us IS NULL OR d.leased_until_us <= $1) \
             AND e.removed_at_us IS NULL \
             ORDER BY d.next_attempt_us, d.event_seq LIMIT $2{lock}"
        ))
        .bind(now)
        .bind(i64::try_from(limit * 5).unwrap_or(500))
        .fetch_all(&mut *tx)
        .await?;
        let mut per_endpoint: std::collections::HashMap<String, usize> = Default::default();
        let mut chosen = Vec::new();
        for row in &due {
            let endpoint: String = row.try_get("endpoint_id")?;
            let taken = per_endpoint.entry(endpoint).or_default();
            if *taken < PER_ENDPOINT && chosen.len() < limit {
                *taken += 1;
                chosen.push(row.try_get::<String, _>("id")?);
            }
        }
        let mut claimed = Vec::with_capacity(chosen.len());
        for id in chosen {
            let row = sqlx::query(
                "UPDATE webhook_deliveries SET leased_until_us = $1 WHERE id = $2 \
                 RETURNING endpoint_id, event_type, payload, attempts",
            )
            .bind(lease)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let endpoint_id: String = row.try_get("endpoint_id")?;
            let endpoint =
                sqlx::query("SELECT url, secret_sealed FROM webhook_endpoints WHERE id = $1")
                    .bind(endpoint_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            let sealed: String = endpoint.try_get("secret_sealed")?;
            let Ok(secret) = crate::sealed::open(&key, &endpoint_id, &sealed) else {
                // Sealed under another key (the audit key was replaced): this endpoint cannot
                // be signed for. Its delivery fails; the others go on.
                tracing::warn!(endpoint = %endpoint_id, "a webhook secret cannot be opened; the delivery is given up");
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'failed', leased_until_us = NULL \
                     WHERE id = $1",
                )
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                continue;
            };
            claimed.push(ClaimedDelivery {
                id,
                url: endpoint.try_get("url")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                attempt: row.try_get::<i64, _>("attempts")? + 1,
                lease,
                secret,
                endpoint_id,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt: a 2xx answer delivers; anything else schedules the next retry, or
    /// gives up after the last one (more than a day after the first).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn record_attempt(
        &self,
        delivery: &ClaimedDelivery,
        outcome: &DeliveryOutcome,
    ) -> Result<(), Error> {
        let now = self.now();
        let delivered = outcome.status.is_some_and(|s| (200..300).contains(&s));
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at_us, status, error, \
             duration_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(delivery.id.as_str())
        .bind(delivery.attempt)
        .bind(to_micros(now))
        .bind(outcome.status.map(i64::from))
        .bind(
            outcome
                .error
                .as_deref()
                .map(|e| e.chars().take(200).collect::<String>()),
        )
        .bind(outcome.duration_ms)
        .execute(&mut *tx)
        .await?;
        let retry = usize::try_from(delivery.attempt - 1)
            .ok()
            .and_then(|i| BACKOFF_SECONDS.get(i));
        let (state, next) = match (delivered, retry) {
            (true, _) => ("delivered", now),
            (false, Some(wait)) => ("pending", now + time::Duration::seconds(*wait)),
            (false, None) => ("failed", now),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_us = $3, \
             leased_until_us = NULL, delivered_at_us = $4 \
             WHERE id = $5 AND state = 'pending' AND leased_until_us = $6",
        )
        .bind(state)
        .bind(delivery.attempt)
        .bind(to_micros(next))
        .bind(delivered.then(|| to_micros(now)))
        .bind(delivery.id.as_str())
        .bind(delivery.lease)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_secret_the_body_and_a_fresh_time() {
        let secret = "whsec_test";
        let now = time::macros::datetime!(2026-11-30 12:00 UTC);
        let t = now.unix_timestamp();
        let header = signature(secret.as_bytes(), t, b"{\"a\":1}");
        let tolerance = time::Duration::minutes(5);
        assert!(verify_signature(
            secret,
            &header,
            b"{\"a\":1}",
            now,
            tolerance
        ));
        assert!(!verify_signature(
            secret,
            &header,
            b"{\"a\":2}",
            now,
            tolerance
        ));
        assert!(!verify_signature(
            "whsec_other",
            &header,
            b"{\"a\":1}",
            now,
            tolerance
        ));
        let later = now + time::Duration::minutes(6);
        assert!(!verify_signature(
            secret,
            &header,
            b"{\"a\":1}",
            later,
            tolerance
        ));
        assert!(!verify_signature(
            secret,
            "v1=00",
            b"{\"a\":1}",
            now,
            tolerance
        ));
    }
}
