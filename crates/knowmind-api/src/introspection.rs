//! `POST /v1/tokens/verify`: a resource server asks whether a token its client presented is good.

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;
use token_core::{Scopes, TokenId};

/// The question: the token (in the body, never in a URL), the scopes the route needs, and the
/// original call, which is recorded as this resource server's report.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntrospectionRequest {
    /// The token the client presented.
    pub token: String,
    /// Scopes the resource server's route needs.
    #[serde(default)]
    pub scopes: Scopes,
    /// The client's address, as the resource server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::client_ip))]
    pub client_ip: Option<IpAddr>,
    /// The client's method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The resource server's route template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl fmt::Debug for IntrospectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionRequest")
            .field("token", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("client_ip", &self.client_ip)
            .field("method", &self.method)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The answer, always with status 200: `VALID`, `NOT_FOUND` (also a token of another workspace),
/// `EXPIRED`, `REVOKED`, `INSUFFICIENT_SCOPE` or `RATE_LIMITED`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspection {
    /// Whether the token grants the scopes asked for.
    pub valid: bool,
    /// Why, as a stable code.
    pub code: String,
    /// The token, when it is a token of this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<TokenId>,
    /// Its workspace (valid tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Its owner (valid tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Its scopes (valid tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Scopes>,
    /// Its expiry (valid tokens only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// For an OAuth access token (valid tokens only): the connector it was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// When it is due for rotation under its workspace's policy (valid tokens only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub rotation_due_at: Option<OffsetDateTime>,
}
