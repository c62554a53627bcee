//! What the store holds and what its operations take.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use time::{Duration, OffsetDateTime};
use token_core::{Scopes, TokenId};

use crate::error::Error;

/// A tenant: members and tokens belong to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
pub enum Role {
    /// Created the workspace; can do everything.
    Owner,
    /// Manages tokens, members and the audit log.
    Admin,
    /// Uses the workspace.
    Member,
}

impl Role {
    /// `owner`, `admin` or `member`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(Error::invalid("role", "expected owner, admin or member")),
        }
    }
}

/// A person (or service account) in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// A member to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// Display name (1–100 characters).
    pub name: String,
    /// Email address.
    pub email: String,
    /// Role.
    pub role: Role,
}

/// Changes to a member; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New role.
    pub role: Option<Role>,
}

/// Where a token stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Usable.
    Active,
    /// Past its expiry time.
    Expired,
    /// Revoked (including a rotated token whose grace period has ended).
    Revoked,
}

impl TokenState {
    /// `active`, `expired` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }

    /// The state at `now` of a token with this revocation and expiry time. Revocation wins.
    pub fn at(now: OffsetDateTime, standing: Standing, expires_at: Option<OffsetDateTime>) -> Self {
        if standing.is_revoked(now) {
            TokenState::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason a rotation records on the token it replaces, whose `revoked_at` is then the end
/// of its grace period.
pub const ROTATED: &str = "rotated";

/// Where a token stands with respect to revocation. A rotation's grace period ends at a
/// wall-clock deadline, like an expiry; every other revocation holds at once and for good,
/// whatever any clock says — an instance whose clock lags, or a clock set back, cannot revive a
/// revoked token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not revoked.
    Live,
    /// Rotated: usable until this time (the end of the grace period), revoked from then on.
    GraceUntil(OffsetDateTime),
    /// Revoked.
    Revoked,
}

impl Standing {
    /// The standing of a token with these stored revocation fields.
    pub fn of(revoked_at: Option<OffsetDateTime>, revoked_reason: Option<&str>) -> Standing {
        match revoked_at {
            None => Standing::Live,
            Some(at) if revoked_reason == Some(ROTATED) => Standing::GraceUntil(at),
            Some(_) => Standing::Revoked,
        }
    }

    /// Whether the token is revoked at `now`.
    pub fn is_revoked(self, now: OffsetDateTime) -> bool {
        match self {
            Standing::Live => false,
            Standing::GraceUntil(end) => end <= now,
            Standing::Revoked => true,
        }
    }

    /// The same rule in SQL, for a `tokens` row aliased `t`: the row is *not* revoked at the
    /// bound time `now` (append the bound value after this text).
    pub(crate) const SQL_UNREVOKED_AT: &'static str =
        "(t.revoked_at_us IS NULL OR (t.revoked_reason = 'rotated' AND t.revoked_at_us > ";
}

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// The public id.
    pub id: TokenId,
    /// The workspace.
    pub workspace_id: String,
    /// The member it belongs to.
    pub owner_id: String,
    /// Name, e.g. `ci-deploy`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The device or application it is for (`laptop-ada`, `github-actions`).
    pub client: String,
    /// Scopes as issued.
    pub scopes: Scopes,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who issued it (`member:…`, `token:…`, `system`).
    pub created_by: String,
    /// When it stops working; `None` = never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was (or, during a rotation grace period, will be) revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub revoked_reason: Option<String>,
    /// By whom.
    pub revoked_by: Option<String>,
    /// The token this one replaced.
    pub rotated_from: Option<TokenId>,
    /// The token that replaced this one.
    pub rotated_to: Option<TokenId>,
    /// The first token of its family (itself unless it came from a rotation): a token and every
    /// token rotated from it, transitively, form one family, and revocation takes the family.
    pub family_id: TokenId,
    /// How it came to be: issued, or rotated — by the token itself or by someone else.
    pub origin: Origin,
    /// Last accepted use.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// From where.
    pub last_used_ip: Option<String>,
    /// State when this record was read.
    pub state: TokenState,
}

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Issued by a member, an admin token or the system.
    Issued,
    /// Rotated from its predecessor by someone else (a member or an admin token).
    Rotated,
    /// Rotated by its predecessor itself (`POST /v1/tokens/self/rotate`): whoever held the old
    /// token made this one. A successor its owner did not create stands out by this.
    SelfRotated,
}

impl Origin {
    /// `issued`, `rotated` or `self_rotated`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Issued => "issued",
            Origin::Rotated => "rotated",
            Origin::SelfRotated => "self_rotated",
        }
    }

    /// The origin of a token created by `created_by` (`token:…`, `member:…`, `system`) from
    /// `rotated_from`.
    pub fn of(created_by: &str, rotated_from: Option<TokenId>) -> Origin {
        match rotated_from {
            None => Origin::Issued,
            Some(old) if created_by.strip_prefix("token:") == Some(old.as_str()) => {
                Origin::SelfRotated
            }
            Some(_) => Origin::Rotated,
        }
    }
}

/// How far a revocation reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The token and every live token of its family: its successors (tokens rotated from it,
    /// transitively) and predecessors still in a rotation grace period. The default.
    #[default]
    Family,
    /// Only the named token. Ignored for the reasons `compromised` and `leaked`, which always
    /// take the family.
    OnlyThis,
}

/// A revocation to make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocation {
    /// Why (up to 200 characters; empty means `revoked`). `compromised` and `leaked` always
    /// revoke the whole family.
    pub reason: String,
    /// How far it reaches.
    pub reach: Reach,
}

impl Revocation {
    /// Revokes the token's family, for `reason`.
    pub fn family(reason: impl Into<String>) -> Self {
        Revocation {
            reason: reason.into(),
            reach: Reach::Family,
        }
    }

    /// Revokes only the named token (unless `reason` is `compromised` or `leaked`).
    pub fn only_this(reason: impl Into<String>) -> Self {
        Revocation {
            reason: reason.into(),
            reach: Reach::OnlyThis,
        }
    }
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Revoked {
    /// The named token, as it is now.
    #[serde(flatten)]
    pub token: TokenRecord,
    /// Every token this call revoked (the named one first, if it was live), each with its own
    /// `token.revoked` audit event. Empty when everything was already revoked.
    pub revoked: Vec<TokenId>,
}

/// What presenting a token of a family after its rotation grace has ended does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
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

impl ReuseDetection {
    /// `alert` or `revoke_family`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReuseDetection::Alert => "alert",
            ReuseDetection::RevokeFamily => "revoke_family",
        }
    }
}

impl FromStr for ReuseDetection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "alert" => Ok(ReuseDetection::Alert),
            "revoke_family" => Ok(ReuseDetection::RevokeFamily),
            _ => Err(Error::invalid(
                "reuse_detection",
                "expected alert or revoke_family",
            )),
        }
    }
}

/// A workspace's rules for its tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePolicy {
    /// What reuse of a rotated token does.
    pub reuse_detection: ReuseDetection,
}

impl TokenRecord {
    /// Where it stands with respect to revocation.
    pub fn standing(&self) -> Standing {
        Standing::of(self.revoked_at, self.revoked_reason.as_deref())
    }
}

/// A token to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The member it belongs to.
    pub owner_id: String,
    /// Name (1–100 characters).
    pub name: String,
    /// What it is for (up to 1,000 characters).
    pub description: String,
    /// The device or application it is for (up to 100 characters).
    pub client: String,
    /// At least one scope.
    pub scopes: Scopes,
    /// Expiry, in the future; `None` = never.
    pub expires_at: Option<OffsetDateTime>,
}

/// Changes to a token's descriptive fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// How to rotate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Keep the old token working this long (at most 7 days); `None` revokes it at once.
    pub grace: Option<Duration>,
    /// Expiry of the new token. `None` keeps the old token's lifetime (same length, from now).
    pub expires_at: Option<Option<OffsetDateTime>>,
}

/// Which tokens [`crate::Store::list_tokens`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// State (default: all).
    pub state: Option<TokenState>,
    /// Name contains this (case-insensitive).
    pub name: Option<String>,
    /// Carries this scope (as issued).
    pub scope: Option<token_core::Scope>,
    /// Expires before this time.
    pub expires_before: Option<OffsetDateTime>,
    /// Not used since this time (never-used tokens included).
    pub last_used_before: Option<OffsetDateTime>,
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The call a token is presented for: recorded with the usage record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// HTTP method (or another verb).
    pub method: Cow<'static, str>,
    /// Route template, e.g. `/v1/notes/{id}`: usually a `&'static str`, so copying it is free.
    pub route: Cow<'static, str>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Only tokens of this workspace are considered: any other is refused as unknown, with no
    /// usage record, security event or cache entry (introspection by a resource server).
    pub workspace: Option<String>,
    /// The introspect token of the resource server that reported this call: the address, route
    /// and user agent above are its report, not knowmind's own observation, and failures count
    /// against its budget rather than the address's.
    pub reported_by: Option<TokenId>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The token.
    pub token_id: TokenId,
    /// Its workspace.
    pub workspace_id: String,
    /// The member it belongs to.
    pub owner_id: String,
    /// Its scopes, as issued.
    pub scopes: Scopes,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}
