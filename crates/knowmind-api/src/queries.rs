//! Query strings of the API, as types: the server parses them, the CLI writes them.

use token_core::Scope;

use crate::TokenState;

/// `GET /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTokens {
    /// `active`, `expired`, `revoked` or `all` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateFilter>,
    /// Name contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Carries this scope (as issued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Expires before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_before: Option<String>,
    /// Not used since this RFC 3339 time (never-used tokens included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_before: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A state filter: one state, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
pub struct RevokeToken {
    /// Why (up to 200 characters). A first word `compromised` or `leaked` always revokes the
    /// whole family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Revoke only this token, not the tokens rotated from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_this: bool,
}

/// Paging alone (`GET /v1/tokens/{id}/usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–1,000 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/audit/events` and `/v1/audit/events/export`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    /// Events by this actor (member or token id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Events by or about this token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Events of this kind, e.g. `token.revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// At or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The previous page's `next_cursor` (not for the export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–1,000 (default 100; not for the export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyEvents {
    /// Check events after this sequence number (the previous report's `last_seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many events (default and maximum 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
