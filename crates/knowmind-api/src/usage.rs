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
    /// Its calls, newest first.
    pub recent: Vec<StoredUsage>,
    /// Pass back as `cursor` for older calls; `null` when there are none.
    pub next_cursor: Option<String>,
}
