//! Workspaces, their members and their policy on the wire.

use time::OffsetDateTime;
use token_core::{Scope, Scopes, TokenId};

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
    /// The scopes a token may carry, by its owner's role.
    #[serde(default)]
    pub role_scopes: RoleScopes,
    /// Whether a token with the `write` scope must carry an address allow-list
    /// (`allowed_networks`). OAuth connectors, which cannot, are then granted `read` only.
    #[serde(default)]
    pub write_requires_allowlist: bool,
    /// Tokens not used for this long (`90d`; a never-used token counts from its creation) are
    /// revoked when the policy is applied; `null` (the default): never.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub revoke_unused_after: Option<String>,
}

/// A named set of lifetime rules: the dashboard and the CLI offer the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyPreset {
    /// Rotate every 90 days; no maximum lifetime, no expiry required.
    Standard,
    /// Finance, health: rotate every 30 days; every token expires, within 90 days.
    Regulated,
}

impl PolicyPreset {
    /// Sets the preset's rotation interval, maximum lifetime and expiry rule; the rest of the
    /// policy stays.
    pub fn apply(self, policy: &mut WorkspacePolicy) {
        let (interval, max, required) = match self {
            PolicyPreset::Standard => ("90d", None, false),
            PolicyPreset::Regulated => ("30d", Some("90d"), true),
        };
        policy.rotation_interval = interval.to_owned();
        policy.max_lifetime = max.map(str::to_owned);
        policy.require_expiry = required;
    }
}

/// The scopes a token may carry, by its owner's role. A member never holds `admin`, whatever
/// this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleScopes {
    /// An owner's tokens (default: every scope).
    #[serde(default = "Scopes::all")]
    pub owner: Scopes,
    /// An admin's tokens (default: every scope).
    #[serde(default = "Scopes::all")]
    pub admin: Scopes,
    /// A member's tokens (default: `read`, `write`, `introspect`).
    #[serde(default = "member_scopes")]
    pub member: Scopes,
}

fn member_scopes() -> Scopes {
    Scopes::of(&[Scope::Read, Scope::Write, Scope::Introspect])
}

impl RoleScopes {
    /// The scopes allowed to `role`.
    pub fn of(&self, role: Role) -> Scopes {
        match role {
            Role::Owner => self.owner,
            Role::Admin => self.admin,
            Role::Member => self.member,
        }
    }
}

impl Default for RoleScopes {
    fn default() -> Self {
        RoleScopes {
            owner: Scopes::all(),
            admin: Scopes::all(),
            member: member_scopes(),
        }
    }
}

/// What `knowmind policy check` reports: the live tokens that do not comply with the
/// workspace's policy, and what applying it does (or did) to each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyCheck {
    /// Whether the actions were carried out (`POST …/apply`) or only described (a dry run).
    pub applied: bool,
    /// One per rule a token breaks, oldest token first.
    pub findings: Vec<PolicyFinding>,
}

/// A token that breaks a rule of the policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyFinding {
    /// The token.
    pub token_id: TokenId,
    /// Its name.
    pub name: String,
    /// The rule: `max_lifetime`, `require_expiry`, `role_scopes`, `write_requires_allowlist`
    /// or `revoke_unused_after`.
    pub rule: String,
    /// How it breaks the rule.
    pub detail: String,
    /// What applying the policy does.
    pub action: PolicyAction,
    /// The expiry it gets (`set_expiry`).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_expires_at: Option<OffsetDateTime>,
    /// The scopes it keeps (`narrow_scopes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_scopes: Option<Scopes>,
}

/// What applying a policy does to a token that breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PolicyAction {
    /// It gets an expiry: the policy's maximum lifetime from now (or, when only an expiry is
    /// required, the rotation interval from now), so nothing stops working at once.
    SetExpiry,
    /// It loses the scopes its owner's role may no longer hold.
    NarrowScopes,
    /// It is revoked (unused too long, or none of its scopes is allowed any more).
    Revoke,
    /// Nothing automatic: a person must act (rotate it with an allow-list).
    None,
}

named!(PolicyAction, "action", {
    SetExpiry => "set_expiry",
    NarrowScopes => "narrow_scopes",
    Revoke => "revoke",
    None => "none",
});

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
            role_scopes: RoleScopes::default(),
            write_requires_allowlist: false,
            revoke_unused_after: None,
        }
    }
}
