//! A token's security log on the wire: its calls, and where and how it was used.

use time::OffsetDateTime;
use token_core::TokenId;

use crate::named;

/// The result of one verification, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The call came from outside the token's address allow-list.
    AddressNotAllowed,
    /// A canary token was used: refused, and a security event raised.
    Canary,
}

named!(UsageOutcome, "outcome", {
    Accepted => "accepted",
    WrongSecret => "wrong_secret",
    Revoked => "revoked",
    Expired => "expired",
    InsufficientScope => "insufficient_scope",
    Busy => "busy",
    AddressNotAllowed => "address_not_allowed",
    Canary => "canary",
});

/// A stored usage record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredUsage {
    /// Row id.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: UsageRecordView,
}

/// The fields of a stored usage record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageSummary {
    /// Every call since the token's first use (pruning removes old records, not these counts).
    pub total: i64,
    /// By client address.
    pub ips: Vec<IpUse>,
    /// By endpoint.
    pub routes: Vec<RouteUse>,
}

/// `GET /v1/tokens/{id}/usage`: the summary and a page of the newest calls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// The token.
    pub token_id: TokenId,
    /// Where and how it was used.
    #[serde(flatten)]
    pub summary: UsageSummary,
    /// Its anomalies, newest first (at most 50; `GET /v1/tokens/{id}/anomalies` pages through
    /// all of them); empty unless the caller is an admin.
    pub anomalies: Vec<Anomaly>,
    /// Its calls, newest first.
    pub recent: Vec<StoredUsage>,
    /// Pass back as `cursor` for older calls; `null` when there are none.
    pub next_cursor: Option<String>,
}

/// What was unusual about a token's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum AnomalyKind {
    /// A call from a network (IPv4 /24, IPv6 /48) the token had never been used from.
    NewNetwork,
    /// A call to an endpoint the token had never called.
    NewEndpoint,
    /// A client (the `User-Agent`'s product name) the token had never been used with.
    NewUserAgent,
    /// The token was used from two networks within a few minutes: two holders, or one holder
    /// and a thief (one token per device keeps this from happening in normal use).
    ConcurrentNetworks,
    /// A canary token was used: it was planted where a leak would be found first.
    Canary,
}

named!(AnomalyKind, "kind", {
    NewNetwork => "new_network",
    NewEndpoint => "new_endpoint",
    NewUserAgent => "new_user_agent",
    ConcurrentNetworks => "concurrent_networks",
    Canary => "canary",
});

impl AnomalyKind {
    /// How urgently a person should look.
    pub const fn severity(self) -> Severity {
        match self {
            AnomalyKind::NewUserAgent => Severity::Low,
            AnomalyKind::NewNetwork | AnomalyKind::NewEndpoint => Severity::Medium,
            AnomalyKind::ConcurrentNetworks | AnomalyKind::Canary => Severity::High,
        }
    }

    /// What happened, for people, to follow "the token was".
    pub const fn describe(self) -> &'static str {
        match self {
            AnomalyKind::NewNetwork => "used from a new network",
            AnomalyKind::NewEndpoint => "used on an endpoint it had never called",
            AnomalyKind::NewUserAgent => "used by a new kind of client",
            AnomalyKind::ConcurrentNetworks => "used from two networks within minutes",
            AnomalyKind::Canary => "used, and it is a canary (planted bait)",
        }
    }
}

/// How urgently a person should look at an anomaly.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Worth checking.
    Medium,
    /// Act now.
    High,
}

named!(Severity, "severity", {
    Low => "low",
    Medium => "medium",
    High => "high",
});

/// Something unusual in a token's use, raised once per new value after the token's learning
/// period (`token.anomaly` in the security log), or a canary's use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Anomaly {
    /// Its id (a number, as text), also the paging cursor.
    pub id: String,
    /// When the call was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The token.
    pub token_id: TokenId,
    /// What was unusual.
    pub kind: AnomalyKind,
    /// How urgently to look.
    pub severity: Severity,
    /// The new value: a network (`203.0.113.0/24`), an endpoint (`DELETE /v1/notes/{id}`), a
    /// client name, or for two networks within minutes both of them (`a, b`).
    pub value: String,
    /// The call's address.
    pub client_ip: Option<String>,
    /// The call's method.
    pub method: String,
    /// The call's route template.
    pub route: String,
    /// The call's `User-Agent`.
    pub user_agent: Option<String>,
}
