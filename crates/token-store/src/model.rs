//! What the store holds and what its operations take.

use std::borrow::Cow;
use std::net::IpAddr;

pub use knowmind_api::{
    Member, Origin, Page, Principal, ReuseDetection, Revoked, Role, TokenRecord, TokenState,
    Workspace, WorkspacePolicy,
};
use time::{Duration, OffsetDateTime};
use token_core::{Scopes, TokenId};

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
    /// The standing of a token record.
    pub fn of_record(record: &TokenRecord) -> Standing {
        Standing::of(record.revoked_at, record.revoked_reason.as_deref())
    }

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

/// The state at `now` of a token that stands so and expires then: revocation wins, then
/// expiry (a token is valid while `now < expires_at`). The one place this rule is written; the
/// SQL filters say the same.
pub fn state_at(
    now: OffsetDateTime,
    standing: Standing,
    expires_at: Option<OffsetDateTime>,
) -> TokenState {
    if standing.is_revoked(now) {
        TokenState::Revoked
    } else if token_core::is_expired(expires_at, now) {
        TokenState::Expired
    } else {
        TokenState::Active
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
    /// The networks it may be used from; empty: anywhere.
    pub allowed_networks: token_core::Networks,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Keep the old token working this long (at most 7 days); `None` revokes it at once.
    pub grace: Option<Duration>,
    /// Expiry of the new token. `None` keeps the old token's lifetime (same length, from now).
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// The new token's networks; `None` keeps the old token's.
    pub allowed_networks: Option<token_core::Networks>,
    /// Retire the old token only once the new one has been used (instead of `grace`).
    pub handover: Option<Handover>,
}

/// A rotation's verified hand-over: the old token works until the new one is first used, then
/// for `overlap`, and at the latest until `deadline` from the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// When the old token stops if the new one is never used (1 minute to 30 days).
    pub deadline: Duration,
    /// How long the old token keeps working after the new one's first use (at most an hour).
    pub overlap: Duration,
}

impl Handover {
    /// The overlap when none is given: long enough for in-flight work to finish.
    pub const DEFAULT_OVERLAP: Duration = Duration::minutes(5);
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
    /// Owned by this member.
    pub owner_id: Option<String>,
    /// Device or application (`client`) contains this (case-insensitive).
    pub client: Option<String>,
    /// Only live tokens older than the workspace's rotation interval, not yet rotated.
    pub rotation_due: bool,
    /// Only live tokens that expire within this much time from now.
    pub expiring_within: Option<Duration>,
}

/// How many live API tokens, in all workspaces, need attention soon: for a metrics gauge
/// (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Past their workspace's rotation interval, not yet rotated.
    pub rotation_due: u64,
    /// Expiring within 14 days.
    pub expiring_soon: u64,
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
