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

/// A workspace's rules for its tokens (`GET/PUT /v1/workspace/policy`). A PUT replaces the whole
/// policy: a field left out takes its default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The longest a new or rotated token may live (`90d`); `null`: no maximum. At least `1h`.
    /// With a maximum, every token must expire.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub max_lifetime: Option<String>,
    /// Whether every new or rotated token must have an expiry.
    #[serde(default)]
    pub require_expiry: bool,
    /// After how long a token is due for rotation: `90d` (the `standard` preset), `30d`
    /// (`regulated`, for finance and health), or any duration.
    #[serde(default = "default_rotation_interval")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]+[smhdw]$"))]
    pub rotation_interval: String,
}

fn default_rotation_interval() -> String {
    "90d".to_owned()
}

impl Default for WorkspacePolicy {
    fn default() -> Self {
        WorkspacePolicy {
            reuse_detection: ReuseDetection::default(),
            oauth_registration: false,
            max_lifetime: None,
            require_expiry: false,
            rotation_interval: default_rotation_interval(),
        }
    }
}
