//! The audit log on the wire: events, and what verifying the chain found.

use time::OffsetDateTime;

use crate::named;

/// What happened: the `action` of an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Action {
    /// A workspace was created (with its owner).
    #[serde(rename = "workspace.created")]
    WorkspaceCreated,
    /// A workspace's policy (how it treats its tokens) changed.
    #[serde(rename = "workspace.policy_changed")]
    WorkspacePolicyChanged,
    /// A workspace's policy was applied to its existing tokens (each change is its own
    /// `token.updated` or `token.revoked` event).
    #[serde(rename = "workspace.policy_applied")]
    WorkspacePolicyApplied,
    /// A member joined a workspace.
    #[serde(rename = "member.added")]
    MemberAdded,
    /// A member's name, email or role changed.
    #[serde(rename = "member.updated")]
    MemberUpdated,
    /// A member left or was removed; their tokens were revoked and their sessions ended.
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// A one-time enrolment link was issued (an invitation, or an owner's way in).
    #[serde(rename = "member.invited")]
    MemberInvited,
    /// Someone used an enrolment link and set their password.
    #[serde(rename = "member.enrolled")]
    MemberEnrolled,
    /// A sign-in to the dashboard: `success`, or `denied` with the reason in the details.
    #[serde(rename = "member.signed_in")]
    MemberSignedIn,
    /// A member signed out.
    #[serde(rename = "member.signed_out")]
    MemberSignedOut,
    /// A member ended one of their other sessions.
    #[serde(rename = "member.session_ended")]
    MemberSessionEnded,
    /// A member changed their password (their other sessions ended).
    #[serde(rename = "member.password_changed")]
    MemberPasswordChanged,
    /// A member added a second factor (an authenticator app, with recovery codes).
    #[serde(rename = "member.factor_added")]
    MemberFactorAdded,
    /// A member removed their second factor.
    #[serde(rename = "member.factor_removed")]
    MemberFactorRemoved,
    /// A token was issued.
    #[serde(rename = "token.created")]
    TokenCreated,
    /// A token's name or description changed.
    #[serde(rename = "token.updated")]
    TokenUpdated,
    /// A token was revoked.
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// A token was replaced by a new one.
    #[serde(rename = "token.rotated")]
    TokenRotated,
    /// A rotation's new token was used for the first time: the old token stops after the
    /// overlap (target: the old token).
    #[serde(rename = "token.handover_completed")]
    TokenHandoverCompleted,
    /// A rotation's new token was never used before the hand-over's deadline: the old token
    /// stopped at the deadline (target: the old token).
    #[serde(rename = "token.handover_timed_out")]
    TokenHandoverTimedOut,
    /// Someone holding a canary token used it: it was planted where a leak would be found
    /// first, so this is a leak (details: address, endpoint, user agent).
    #[serde(rename = "token.canary_used")]
    TokenCanaryUsed,
    /// A token was used in a way its own history had never shown: a new network, a new
    /// endpoint, a new client, or two networks within minutes (details: kind, severity, value,
    /// and the call). Raised once per new value, after the token's learning period.
    #[serde(rename = "token.anomaly")]
    TokenAnomaly,
    /// A token expires soon (14, 7 or 1 days: `details.days`); written once per threshold.
    #[serde(rename = "token.expiring")]
    TokenExpiring,
    /// A token passed its workspace's rotation interval without being rotated; written once.
    #[serde(rename = "token.rotation_due")]
    TokenRotationDue,
    /// A token's stored hash was upgraded to the current scrypt parameters.
    #[serde(rename = "token.rehashed")]
    TokenRehashed,
    /// A revoked token was presented again by someone holding its secret: it is still in
    /// someone's hands.
    #[serde(rename = "token.reuse")]
    TokenReuse,
    /// An OAuth client (connector) was registered, by an admin or by itself.
    #[serde(rename = "oauth.client_registered")]
    OAuthClientRegistered,
    /// An OAuth client was removed: every grant and token of it revoked.
    #[serde(rename = "oauth.client_removed")]
    OAuthClientRemoved,
    /// A member approved (`success`) or denied (`denied`) a connector's request.
    #[serde(rename = "oauth.consent")]
    OAuthConsent,
    /// Tokens were issued to a connector (code exchange, refresh or client credentials).
    #[serde(rename = "oauth.token_issued")]
    OAuthTokenIssued,
    /// An OAuth token was revoked by its client (RFC 7009).
    #[serde(rename = "oauth.token_revoked")]
    OAuthTokenRevoked,
    /// A connection (a member's remembered consent) was revoked with its tokens.
    #[serde(rename = "oauth.connection_revoked")]
    OAuthConnectionRevoked,
    /// A used refresh token or authorization code was presented again: someone else may hold
    /// it, so the whole grant was revoked.
    #[serde(rename = "oauth.reuse_detected")]
    OAuthReuseDetected,
    /// An incident was opened: its tokens revoked, the GDPR Art. 33 clock started.
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    /// An incident's record was amended (facts, decision, status).
    #[serde(rename = "incident.updated")]
    IncidentUpdated,
    /// An open incident's GDPR Art. 33 deadline is near (24 or 4 hours left: `details.hours`).
    #[serde(rename = "incident.deadline_near")]
    IncidentDeadlineNear,
    /// A webhook endpoint was registered.
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    /// A webhook endpoint was removed (its pending deliveries are dropped).
    #[serde(rename = "webhook.removed")]
    WebhookRemoved,
}

named!(Action, "action", {
    WorkspaceCreated => "workspace.created",
    WorkspacePolicyChanged => "workspace.policy_changed",
    WorkspacePolicyApplied => "workspace.policy_applied",
    MemberAdded => "member.added",
    MemberUpdated => "member.updated",
    MemberRemoved => "member.removed",
    MemberInvited => "member.invited",
    MemberEnrolled => "member.enrolled",
    MemberSignedIn => "member.signed_in",
    MemberSignedOut => "member.signed_out",
    MemberSessionEnded => "member.session_ended",
    MemberPasswordChanged => "member.password_changed",
    MemberFactorAdded => "member.factor_added",
    MemberFactorRemoved => "member.factor_removed",
    TokenCreated => "token.created",
    TokenUpdated => "token.updated",
    TokenRevoked => "token.revoked",
    TokenRotated => "token.rotated",
    TokenHandoverCompleted => "token.handover_completed",
    TokenHandoverTimedOut => "token.handover_timed_out",
    TokenCanaryUsed => "token.canary_used",
    TokenAnomaly => "token.anomaly",
    TokenExpiring => "token.expiring",
    TokenRotationDue => "token.rotation_due",
    TokenRehashed => "token.rehashed",
    TokenReuse => "token.reuse",
    OAuthClientRegistered => "oauth.client_registered",
    OAuthClientRemoved => "oauth.client_removed",
    OAuthConsent => "oauth.consent",
    OAuthTokenIssued => "oauth.token_issued",
    OAuthTokenRevoked => "oauth.token_revoked",
    OAuthConnectionRevoked => "oauth.connection_revoked",
    OAuthReuseDetected => "oauth.reuse_detected",
    IncidentOpened => "incident.opened",
    IncidentUpdated => "incident.updated",
    IncidentDeadlineNear => "incident.deadline_near",
    WebhookCreated => "webhook.created",
    WebhookRemoved => "webhook.removed",
});

/// How it ended: the `outcome` of an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Outcome {
    /// The change was made.
    Success,
    /// It was attempted and refused.
    Denied,
}

named!(Outcome, "outcome", {
    Success => "success",
    Denied => "denied",
});

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The workspace it concerns.
    pub workspace_id: Option<String>,
    /// `system`, `member`, `token` or `operator`.
    pub actor_kind: String,
    /// The member or token id.
    pub actor_id: Option<String>,
    /// What happened, e.g. `token.revoked`.
    pub action: String,
    /// The kind of thing acted on.
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// `success` or `denied`.
    pub outcome: String,
    /// Further details.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// Hash of the previous event (64 hex digits; zeros before the first).
    pub prev_hash: String,
    /// How `hash` was made: 1 = SHA-256 (before the chain was keyed), 2 = HMAC-SHA-256 under
    /// the audit key.
    pub hash_version: u8,
    /// This event's hash, covering `prev_hash` and every field above.
    pub hash: String,
}

/// A point in the chain to keep outside the database: verifying against it also catches a
/// removed tail, which the chain alone cannot show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// The last sequence number (0 for an empty log).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// What verifying the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What verifying one workspace's events found (`GET /v1/audit/verify`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceChainReport {
    /// How many of the workspace's events were checked.
    pub events: u64,
    /// The last sequence number checked; pass it back as `after` to continue.
    pub last_seq: i64,
    /// Whether more of the workspace's events follow (the check stopped at its limit).
    pub more: bool,
    /// The first problem, if any.
    pub broken: Option<Break>,
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Break {
    /// The first bad sequence number.
    pub seq: i64,
    /// What is wrong there.
    pub reason: BreakReason,
}

/// What is wrong at a [`Break`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// An event hashed without the key follows one hashed with it: someone rewrote keyed
    /// events as unkeyed ones, which anyone with database access could compute.
    Downgraded,
}
