//! Tokens on the wire: the record, how it came to be and where it stands, and the requests that
//! issue, change and rotate one.

use std::fmt;

use time::OffsetDateTime;
use token_core::{Networks, Scopes, TokenId};

use crate::named;

/// Where a token stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenState {
    /// Usable.
    Active,
    /// Past its expiry time.
    Expired,
    /// Revoked (including a rotated token whose grace period has ended).
    Revoked,
}

named!(TokenState, "state", {
    Active => "active",
    Expired => "expired",
    Revoked => "revoked",
});

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Origin {
    /// Issued by a member, an admin token or the system.
    Issued,
    /// Rotated from its predecessor by someone else (a member or an admin token).
    Rotated,
    /// Rotated by its predecessor itself (`POST /v1/tokens/self/rotate`): whoever held the old
    /// token made this one. A successor its owner did not create stands out by this.
    SelfRotated,
}

named!(Origin, "origin", {
    Issued => "issued",
    Rotated => "rotated",
    SelfRotated => "self_rotated",
});

impl Origin {
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

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Who issued it (`member:…`, `token:…`, `system`, `operator`).
    pub created_by: String,
    /// When it stops working; `null` = never.
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
    /// For an OAuth access token (`kmo_`): the connector it was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// The networks it may be used from (CIDR); empty: anywhere. A call from elsewhere is
    /// refused like an unknown token and recorded as `address_not_allowed`.
    #[serde(default)]
    pub allowed_networks: Networks,
    /// A canary: it never authorizes anything, and any use of it raises a `token.canary_used`
    /// security event (it is planted where a leak would be found first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// For a token rotated with a verified hand-over: where the hand-over stands (its successor
    /// is `rotated_to`; it stops working at `revoked_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<HandoverState>,
    /// When it is due for rotation under the workspace's policy (its creation plus the rotation
    /// interval); none once it is rotated or revoked, and for OAuth access tokens.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub rotation_due_at: Option<OffsetDateTime>,
}

/// Where a rotation's verified hand-over stands, on the old token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HandoverState {
    /// Waiting for the new token's first use; the old one works until the deadline.
    Pending,
    /// The new token was used: the old one works for the overlap, then stops.
    Overlap,
    /// The overlap ended: the old token is revoked.
    Done,
    /// The new token was never used before the deadline: the old token stopped then.
    TimedOut,
}

named!(HandoverState, "handover", {
    Pending => "pending",
    Overlap => "overlap",
    Done => "done",
    TimedOut => "timed_out",
});

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// For an OAuth access token: the connector (OAuth client) making the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// When it is due for rotation under its workspace's policy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub rotation_due_at: Option<OffsetDateTime>,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoked {
    /// The named token, as it is now.
    #[serde(flatten)]
    pub token: TokenRecord,
    /// Every token this call revoked (the named one first, if it was live), each with its own
    /// `token.revoked` audit event. Empty when everything was already revoked.
    pub revoked: Vec<TokenId>,
}

/// A token's record with its family: every token it was rotated from or into, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenDetail {
    /// The token.
    #[serde(flatten)]
    pub record: TokenRecord,
    /// Its family, oldest first (itself included).
    pub family: Vec<Relative>,
}

/// A token of a family, as its lineage shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relative {
    /// Its id.
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub state: TokenState,
    /// How it came to be.
    pub origin: Origin,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who issued it.
    pub created_by: String,
    /// When it was (or will be) revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub revoked_reason: Option<String>,
    /// The token it replaced.
    pub rotated_from: Option<TokenId>,
    /// The token that replaced it.
    pub rotated_to: Option<TokenId>,
}

impl From<&TokenRecord> for Relative {
    fn from(t: &TokenRecord) -> Self {
        Relative {
            id: t.id,
            name: t.name.clone(),
            state: t.state,
            origin: t.origin,
            created_at: t.created_at,
            created_by: t.created_by.clone(),
            revoked_at: t.revoked_at,
            revoked_reason: t.revoked_reason.clone(),
            rotated_from: t.rotated_from,
            rotated_to: t.rotated_to,
        }
    }
}

/// A new token, with its plaintext: in the response that created it, and nowhere else.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Issued {
    /// The token itself, `kmt_…`: shown this once.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub record: TokenRecord,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"[REDACTED]")
            .field("record", &self.record)
            .finish()
    }
}

/// `POST /v1/tokens`: a token to issue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    /// Name, 1–100 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::name))]
    pub name: String,
    /// At least one of `read`, `write`, `admin`, `introspect`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::granted_scopes))]
    pub scopes: Scopes,
    /// What it is for, up to 1,000 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::description))]
    pub description: String,
    /// The device or application it is for, up to 100 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::client))]
    pub client: String,
    /// Lifetime, like `90d` (at most 100 years); or `expires_at`; neither means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub expires_in: Option<String>,
    /// Expiry as an RFC 3339 time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// The member it belongs to; default: the owner of the token making the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The networks it may be used from (CIDR, IPv4 and IPv6, at most 32); empty or left out:
    /// anywhere. Set when the token is issued or rotated, never widened in place.
    #[serde(default, skip_serializing_if = "Networks::is_empty")]
    pub allowed_networks: Networks,
    /// Make a canary token: it never authorizes anything (its scopes and expiry are ignored; it
    /// never expires), and any use of it is refused like an unknown token and raises a
    /// `token.canary_used` security event. Plant it where a leak would be found first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

/// `PATCH /v1/tokens/{id}`: a new name or description.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateToken {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::new_name))]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::new_description))]
    pub description: Option<String>,
}

/// `POST /v1/tokens/{id}/rotate` and `/v1/tokens/self/rotate` (an empty body is all defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotateToken {
    /// Keep the old token working this long, like `1h` (at most 7 days); default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub grace_period: Option<String>,
    /// Lifetime of the new token, like `30d`; default: the old token's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub expires_in: Option<String>,
    /// Expiry of the new token as an RFC 3339 time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// The new token's networks; left out: the old token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Networks>,
    /// Rotate with a verified hand-over: the old token keeps working until the new one is first
    /// used, then for `handover_overlap`, and at the latest until this deadline (`7d`; 1m to
    /// 30d). Not with `grace_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub handover_deadline: Option<String>,
    /// How long the old token keeps working after the new one's first use (default `5m`, at
    /// most `1h`); only with `handover_deadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::duration))]
    pub handover_overlap: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for state in TokenState::ALL {
            assert_eq!(state.as_str().parse::<TokenState>().unwrap(), *state);
            assert_eq!(
                serde_json::to_string(state).unwrap(),
                format!("\"{state}\"")
            );
        }
        let err = "gone".parse::<TokenState>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid state: expected one of active, expired, revoked"
        );
        assert_eq!(
            serde_json::to_string(&Origin::SelfRotated).unwrap(),
            "\"self_rotated\""
        );
    }

    #[test]
    fn the_plaintext_never_shows_in_debug() {
        let record: TokenRecord = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef", "workspace_id": "ws", "owner_id": "mem", "name": "n",
            "description": "", "client": "", "scopes": ["read"],
            "created_at": "2026-11-29T12:00:00Z", "created_by": "system", "expires_at": null,
            "revoked_at": null, "revoked_reason": null, "revoked_by": null, "rotated_from": null,
            "rotated_to": null, "family_id": "0123456789abcdef", "origin": "issued",
            "last_used_at": null, "last_used_ip": null, "state": "active"
        }))
        .unwrap();
        let issued = Issued {
            token: "kmt_secret-looking-text".into(),
            record,
        };
        assert!(!format!("{issued:?}").contains("secret-looking"));
    }
}

/// Tokens someone found where they should not be (`POST /v1/credentials/revoke`).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportedCredentials {
    /// The tokens, as found (1 to 1,000).
    pub credentials: Vec<String>,
    /// Where they were found (a URL, a file), kept with the revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl fmt::Debug for ReportedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportedCredentials")
            .field(
                "credentials",
                &format_args!("[{} REDACTED]", self.credentials.len()),
            )
            .field("source", &self.source)
            .finish()
    }
}
