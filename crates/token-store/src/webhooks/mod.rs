//! Webhooks: endpoints a workspace registers to hear about its tokens (expiring, due for
//! rotation, handed over, revoked, …), signed, retried for more than a day, and durable.
//!
//! The outbox is the audit log: every change is an audit event written in the change's own
//! transaction, so a crash between a change and its delivery loses nothing. Each endpoint keeps a
//! cursor into the log; [`Store::fan_out_webhooks`] turns the events after it into deliveries
//! (one per endpoint and event, idempotent under a unique key), [`Store::claim_deliveries`]
//! leases the due ones to one instance (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock
//! on SQLite), and [`Store::record_attempt`] writes each attempt and schedules the retry.
//! Time-based events (a token expiring in 14, 7 or 1 days, a token due for rotation) are
//! written by [`Store::write_token_notices`], once each, whichever instance gets there first.
//!
//! Sending is the caller's (the server's worker): the store hands out the payload, the endpoint
//! and its secret, and records what happened.

mod notices;
mod outbox;

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_api::{Delivery, DeliveryAttempt, DeliveryState, NewWebhook, Webhook, WebhookCreated};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

pub use outbox::{ClaimedDelivery, DeliveryOutcome, verify_signature};

use crate::accounts::BearerSecret;
use crate::error::Error;
use crate::store::{Store, new_id};
use crate::validate;

/// The events an endpoint gets when it names none: the token lifecycle people act on.
pub const DEFAULT_EVENTS: [Action; 10] = [
    Action::TokenCanaryUsed,
    Action::TokenAnomaly,
    Action::IncidentOpened,
    Action::IncidentDeadlineNear,
    Action::TokenExpiring,
    Action::TokenRotationDue,
    Action::TokenHandoverCompleted,
    Action::TokenHandoverTimedOut,
    Action::TokenRevoked,
    Action::TokenReuse,
];

/// The most endpoints one workspace may have.
const MAX_ENDPOINTS: i64 = 20;

const ENDPOINT_COLUMNS: &str = "e.id, e.workspace_id, e.url, e.events, e.description, \
     e.created_at_us, e.created_by, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
      AND d.state = 'pending') AS pending, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
      AND d.state = 'failed') AS failed";

impl Store {
    /// Registers a webhook endpoint; its signing secret is in the answer only. Events from now
    /// on are delivered (none from before).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not `https` (or `http` to a loopback address), holds
    /// credentials, or points at a link-local address, or an unknown event type;
    /// [`Error::Conflict`] past 20 endpoints; [`Error::Invalid`] too when the server has no
    /// audit key to seal the secret with.
    pub async fn create_webhook(
        &self,
        workspace_id: &str,
        new: NewWebhook,
        context: &Context,
    ) -> Result<WebhookCreated, Error> {
        let url = check_url(&new.url, self.inner.webhook_allow_internal)?;
        let events = check_events(&new.events)?;
        let description = validate::text("description", &new.description, 200)?;
        let key = self.webhook_key()?;
        let id = new_id("whk_")?;
        let secret = format!("whsec_{}", BearerSecret::random()?.expose_secret());
        let sealed = crate::sealed::seal(key, &id, secret.as_bytes())?;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        // The workspace's row lock serialises registrations, so the cap holds on PostgreSQL too.
        sqlx::query("UPDATE workspaces SET id = id WHERE id = $1")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM webhook_endpoints \
             WHERE workspace_id = $1 AND removed_at_us IS NULL",
        )
        .bind(workspace_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if count >= MAX_ENDPOINTS {
            return Err(Error::Conflict(format!(
                "a workspace has at most {MAX_ENDPOINTS} webhook endpoints; remove one first"
            )));
        }
        let cursor = audit::Audit::head_seq(&mut tx).await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, workspace_id, url, events, description, \
             secret_sealed, created_at_us, created_by, cursor_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.as_str())
        .bind(workspace_id)
        .bind(url.as_str())
        .bind(events.join(" "))
        .bind(description.as_str())
        .bind(sealed)
        .bind(to_micros(now))
        .bind(context.actor.to_string())
        .bind(cursor)
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::store::conflict(e, "no such workspace"))?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WebhookCreated,
            target_kind: Some("webhook"),
            target_id: Some(id.clone()),
            outcome: Outcome::Success,
            // The origin only: a path or query may hold the receiver's own secret, and the
            // audit log keeps what it is given forever.
            details: json!({ "origin": origin(&url), "events": events }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(WebhookCreated {
            webhook: Webhook {
                id,
                workspace_id: workspace_id.to_owned(),
                url,
                events,
                description,
                created_at: from_micros(to_micros(now))?,
                created_by: context.actor.to_string(),
                pending: 0,
                failed: 0,
            },
            secret,
        })
    }

    /// The workspace's endpoints, oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<Webhook>, Error> {
        sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e \
             WHERE e.workspace_id = $1 AND e.removed_at_us IS NULL ORDER BY e.created_at_us, e.id"
        ))
        .bind(workspace_id)
        .fetch_all(self.inner.db.pool())
        .await?
        .iter()
        .map(webhook_of)
        .collect()
    }

    /// Removes an endpoint: nothing more is delivered to it (pending deliveries are dropped, the
    /// log of past ones stays).
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for another workspace's endpoint).
    pub async fn remove_webhook(
        &self,
        workspace_id: &str,
        id: &str,
        context: &Context,
    ) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET removed_at_us = $1 \
             WHERE id = $2 AND workspace_id = $3 AND removed_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound { what: "webhook" });
        }
        let dropped = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', leased_until_us = NULL \
             WHERE endpoint_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WebhookRemoved,
            target_kind: Some("webhook"),
            target_id: Some(id.to_owned()),
            outcome: Outcome::Success,
            details: json!({ "pending_dropped": dropped }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first, with their attempts: the delivery log.
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for another workspace's endpoint).
    pub async fn webhook_deliveries(
        &self,
        workspace_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, Error> {
        let pool = self.inner.db.pool();
        sqlx::query("SELECT id FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(pool)
            .await?
            .ok_or(Error::NotFound { what: "webhook" })?;
        let rows = sqlx::query(
            "SELECT id, event_seq, event_type, created_at_us, state, next_attempt_us \
             FROM webhook_deliveries WHERE endpoint_id = $1 \
             ORDER BY event_seq DESC LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(pool)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery_id: String = row.try_get("id")?;
            let state: DeliveryState = row.try_get::<String, _>("state")?.parse()?;
            let attempts = sqlx::query(
                "SELECT attempt, at_us, status, error, duration_ms FROM webhook_attempts \
                 WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(delivery_id.as_str())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|a| {
                Ok(DeliveryAttempt {
                    attempt: a.try_get("attempt")?,
                    at: from_micros(a.try_get("at_us")?)?,
                    status: a
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: a.try_get("error")?,
                    duration_ms: a.try_get("duration_ms")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
            deliveries.push(Delivery {
                id: delivery_id,
                event_seq: row.try_get("event_seq")?,
                event_type: row.try_get("event_type")?,
                created_at: from_micros(row.try_get("created_at_us")?)?,
                next_attempt_at: match state {
                    DeliveryState::Pending => Some(from_micros(row.try_get("next_attempt_us")?)?),
                    _ => None,
                },
                state,
                attempts,
            });
        }
        Ok(deliveries)
    }

    fn webhook_key(&self) -> Result<&[u8; 32], Error> {
        self.inner.webhook_key.as_deref().ok_or_else(|| {
            Error::invalid(
                "webhook",
                "this server has no audit key to seal webhook secrets with",
            )
        })
    }
}

fn webhook_of(row: &AnyRow) -> Result<Webhook, Error> {
    let events: String = row.try_get("events")?;
    let count = |column: &str| -> Result<u64, Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
    };
    Ok(Webhook {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        url: row.try_get("url")?,
        events: events.split(' ').map(str::to_owned).collect(),
        description: row.try_get("description")?,
        created_at: from_micros(row.try_get("created_at_us")?)?,
        created_by: row.try_get("created_by")?,
        pending: count("pending")?,
        failed: count("failed")?,
    })
}

/// A URL's scheme, host and port, for logs and the audit log.
pub(crate) fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "?".to_owned(), |u| u.origin().ascii_serialization())
}

/// Whether a delivery may go to `ip`: link-local addresses (cloud metadata services) never;
/// loopback, private, unique-local and unspecified ones only where the server allows internal
/// endpoints.
pub fn webhook_address_allowed(ip: std::net::IpAddr, allow_internal: bool) -> bool {
    use std::net::IpAddr;
    let ip = ip.to_canonical();
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    let internal = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) // CGNAT 100.64/10
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    };
    !link_local && (allow_internal || !internal)
}

/// A deliverable URL: `https` (or, where internal endpoints are allowed, `http` to a loopback
/// address); no credentials (they would sit in the database and in every log of the
/// receiver); an address literal must be public (see [`webhook_address_allowed`]; names are
/// checked when they are resolved, at each delivery); at most 2,000 characters.
fn check_url(text: &str, allow_internal: bool) -> Result<String, Error> {
    let invalid = |why: &str| Error::invalid("url", why);
    if text.len() > 2_000 {
        return Err(invalid("at most 2,000 characters"));
    }
    let url = url::Url::parse(text).map_err(|_| invalid("not an absolute URL"))?;
    let host = url.host().ok_or_else(|| invalid("the URL has no host"))?;
    let ip = match &host {
        url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(*ip)),
        url::Host::Domain(_) => None,
    };
    let loopback = match (&host, ip) {
        (_, Some(ip)) => ip.to_canonical().is_loopback(),
        (url::Host::Domain(name), None) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback && allow_internal => {}
        "http" => return Err(invalid("must be https")),
        _ => return Err(invalid("must be an https URL")),
    }
    if loopback && !allow_internal && ip.is_none() {
        return Err(invalid("must not point at this server's own machine"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not hold credentials: deliveries are signed, check the signature instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    if let Some(ip) = ip
        && !webhook_address_allowed(ip, allow_internal)
    {
        return Err(invalid(
            "must not point at a link-local or internal address (loopback, private networks)",
        ));
    }
    Ok(url.to_string())
}

/// The subscribed event types: known audit actions, or `*`; none means [`DEFAULT_EVENTS`].
fn check_events(events: &[String]) -> Result<Vec<String>, Error> {
    if events.is_empty() {
        return Ok(DEFAULT_EVENTS
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect());
    }
    if events.len() > 64 {
        return Err(Error::invalid("events", "at most 64 event types"));
    }
    if events.iter().any(|e| e == "*") {
        return Ok(vec!["*".to_owned()]);
    }
    let mut checked = Vec::new();
    for event in events {
        let action: Action = event.parse().map_err(|_| {
            Error::invalid(
                "events",
                format!(
                    "unknown event type {:?}; `*` for all",
                    event.chars().take(64).collect::<String>()
                ),
            )
        })?;
        if !checked.iter().any(|c: &String| c == action.as_str()) {
            checked.push(action.as_str().to_owned());
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_urls_are_accepted() {
        assert!(check_url("https://hooks.example.org/knowmind", false).is_ok());
        // Internal endpoints only where the server allows them.
        for internal in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://localhost:3000/",
            "https://10.1.2.3/hook",
            "https://[fd00:ec2::254]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
        ] {
            assert!(check_url(internal, true).is_ok(), "{internal}");
            let err = check_url(internal, false).unwrap_err().to_string();
            assert!(
                err.contains("https") || err.contains("internal") || err.contains("own machine"),
                "{internal}: {err}"
            );
        }
        for (bad, why) in [
            ("http://hooks.example.org/", "https"),
            ("ftp://example.org/", "https"),
            ("https://user:pw@example.org/", "credentials"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://example.org/#x", "fragment"),
            ("not a url", "absolute"),
        ] {
            let err = check_url(bad, true).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn events_are_known_actions_or_all() {
        assert_eq!(check_events(&[]).unwrap().len(), DEFAULT_EVENTS.len());
        assert_eq!(
            check_events(&["*".into(), "token.revoked".into()]).unwrap(),
            ["*"]
        );
        assert_eq!(
            check_events(&["token.revoked".into(), "token.revoked".into()]).unwrap(),
            ["token.revoked"]
        );
        assert!(check_events(&["token.exploded".into()]).is_err());
    }
}
