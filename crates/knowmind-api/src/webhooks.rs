//! Webhooks on the wire: endpoints a workspace registers, and the log of deliveries to each.

use time::OffsetDateTime;

use crate::named;

/// Registers a webhook endpoint (`POST /v1/webhooks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    /// Where deliveries are POSTed: `https://…`, or `http://` to a loopback address (for
    /// development). No credentials in the URL.
    pub url: String,
    /// The audit event types to deliver (`token.revoked`, `token.expiring`, …), or `["*"]` for
    /// all; left out: the token lifecycle events people act on (`token.expiring`,
    /// `token.rotation_due`, `token.handover_completed`, `token.handover_timed_out`,
    /// `token.revoked`, `token.reuse`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// `whk_` and 16 base62 characters.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives (`*`: all).
    pub events: Vec<String>,
    /// What it is for.
    pub description: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who registered it.
    pub created_by: String,
    /// Deliveries waiting to be sent or retried.
    pub pending: u64,
    /// Deliveries given up on after every retry.
    pub failed: u64,
}

/// A new endpoint with its signing secret, shown this once.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookCreated {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_…`): deliveries carry
    /// `Knowmind-Signature: t=<unix time>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`.
    pub secret: String,
}

impl std::fmt::Debug for WebhookCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCreated")
            .field("webhook", &self.webhook)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryState {
    /// Not yet sent, or to be retried at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every retry failed (over more than a day); not sent again.
    Failed,
}

named!(DeliveryState, "state", {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// One delivery of one event to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `whd_…`: also the `Knowmind-Webhook-Id` header, the same on every retry, for the
    /// receiver to process each event once.
    pub id: String,
    /// The audit event's sequence number.
    pub event_seq: i64,
    /// The audit event's type.
    pub event_type: String,
    /// When the event was queued for this endpoint.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where it stands.
    pub state: DeliveryState,
    /// The next try, while pending.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: i64,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The HTTP status the endpoint answered, if it answered.
    pub status: Option<u16>,
    /// Why it failed without an answer (`timed out`, `connection refused`, …).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}
