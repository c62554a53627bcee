//! Workspaces, their members and their policy on the wire.

use time::OffsetDateTime;

use crate::named;

/// A tenant: members and tokens belong to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// `ws_` and 16 base62 characters.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Created the workspace; can do everything.
    Owner,
    /// Manages tokens, members and the audit log.
    Admin,
    /// Uses the workspace.
    Member,
}

named!(Role, "role", {
    Owner => "owner",
    Admin => "admin",
    Member => "member",
});

/// A person (or service account) in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// `mem_` and 16 base62 characters.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// Display name.
    pub name: String,
    /// Email, lower-cased; unique within the workspace.
    pub email: String,
    /// Role.
    pub role: Role,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What presenting a token of a family after its rotation grace has ended does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReuseDetection {
    /// A `token.reuse` security event (the default): a stale client cannot lock out the updated
    /// one.
    #[default]
    Alert,
    /// The event, and the family's live tokens are revoked: a thief who rotated a stolen token
    /// loses the successor the moment the old token is presented again, at the price that a
    /// client still holding the old token locks out the updated one.
    RevokeFamily,
}

named!(ReuseDetection, "reuse_detection", {
    Alert => "alert",
    RevokeFamily => "revoke_family",
});

/// A workspace's rules for its tokens (`GET/PUT /v1/workspace/policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspacePolicy {
    /// What reuse of a rotated token does.
    pub reuse_detection: ReuseDetection,
    /// Whether OAuth connectors may register themselves (RFC 7591 dynamic registration, as
    /// Model Context Protocol clients do) into this workspace; they show up as unverified and
    /// still need a member's consent. Off by default, and on for at most one workspace of a
    /// server, since the registration endpoint has no way to name a workspace.
    #[serde(default)]
    pub oauth_registration: bool,
}
