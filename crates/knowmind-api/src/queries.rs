//! Query strings of the API, as types: the server parses them, the CLI writes them.

use token_core::Scope;

use crate::TokenState;

/// `GET /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ListTokens {
    /// `active`, `expired`, `revoked` or `all` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateFilter>,
    /// Name contains this (case-insensitive; up to 100 characters, one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::filter))]
    pub name: Option<String>,
    /// Carries this scope (as issued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Expires before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub expires_before: Option<String>,
    /// Not used since this RFC 3339 time (never-used tokens included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub last_used_before: Option<String>,
    /// `rotation`: live tokens older than the workspace's rotation interval, not yet rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DueFilter>,
    /// Live tokens that expire within this duration from now (`14d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9]+[smhdw]$"))]
    pub expiring_within: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(pattern = r"^[0-9]{1,18}\.[0-9A-Za-z]{16}$")
    )]
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50); 0 counts as 1, larger sizes as 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64))]
    pub limit: Option<u32>,
}

/// What a token is due for (`GET /v1/tokens?due=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DueFilter {
    /// Older than the workspace's rotation interval.
    Rotation,
}

/// A state filter: one state, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StateFilter {
    /// Usable tokens.
    Active,
    /// Past their expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// Every token.
    All,
}

impl StateFilter {
    /// The one state chosen, or `None` for all.
    pub fn state(self) -> Option<TokenState> {
        match self {
            StateFilter::Active => Some(TokenState::Active),
            StateFilter::Expired => Some(TokenState::Expired),
            StateFilter::Revoked => Some(TokenState::Revoked),
            StateFilter::All => None,
        }
    }
}

/// `DELETE /v1/tokens/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeToken {
    /// Why (up to 200 characters). A first word `compromised` or `leaked` always revokes the
    /// whole family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::reason))]
    pub reason: Option<String>,
    /// Revoke only this token, not the tokens rotated from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_this: bool,
}

/// Paging alone (`GET /v1/tokens/{id}/usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct PageQuery {
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[0-9]{1,18}$"))]
    pub cursor: Option<String>,
    /// Page size, 1–1,000 (default 50); 0 counts as 1, larger sizes as 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64))]
    pub limit: Option<u32>,
}

/// `GET /v1/anomalies`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ListAnomalies {
    /// Anomalies of calls made at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[0-9]{1,18}$"))]
    pub cursor: Option<String>,
    /// Page size, 1–1,000 (default 50); 0 counts as 1, larger sizes as 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64))]
    pub limit: Option<u32>,
}

/// `GET /v1/audit/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ListEvents {
    /// Events by this actor (member or token id; up to 100 characters, one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::filter))]
    pub actor: Option<String>,
    /// Events by or about this token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[0-9A-Za-z]{16}$"))]
    pub token: Option<String>,
    /// Events of this kind, e.g. `token.revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<crate::Action>))]
    pub action: Option<String>,
    /// At or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// Before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub until: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[0-9]{1,18}$"))]
    pub cursor: Option<String>,
    /// Page size, 1–1,000 (default 100; 0 counts as 1, larger sizes as 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64))]
    pub limit: Option<u32>,
}

impl ListEvents {
    /// The filter alone, as the export takes it.
    pub fn filter(&self) -> ExportEvents {
        ExportEvents {
            actor: self.actor.clone(),
            token: self.token.clone(),
            action: self.action.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

/// `GET /v1/audit/events/export`: the filter of [`ListEvents`], without paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ExportEvents {
    /// Events by this actor (member or token id; up to 100 characters, one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::filter))]
    pub actor: Option<String>,
    /// Events by or about this token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[0-9A-Za-z]{16}$"))]
    pub token: Option<String>,
    /// Events of this kind, e.g. `token.revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<crate::Action>))]
    pub action: Option<String>,
    /// At or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// Before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub until: Option<String>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct VerifyEvents {
    /// Check events after this sequence number (the previous report's `last_seq`; below 0
    /// counts as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(minimum = -9_223_372_036_854_775_808_i64, maximum = 9_223_372_036_854_775_807_i64)
    )]
    pub after: Option<i64>,
    /// At most this many events (default and maximum 10,000; 0 counts as 1, more as 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64))]
    pub limit: Option<u32>,
}
