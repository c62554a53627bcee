//! A workspace's policy: the rules it sets for its tokens — what reuse of a rotated token does,
//! whether connectors may register themselves, and the rules every new or rotated token must
//! meet (lifetime, scopes by role, an address allow-list for write tokens). Changing it is
//! audited; existing tokens are judged and brought into line by [`check`].

mod check;

use audit::{Action, Context, NewEvent, Outcome};
use serde_json::json;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use knowmind_api::{Role, RoleScopes};
use token_core::{Networks, Scope, Scopes};

use crate::error::Error;
use crate::model::WorkspacePolicy;
use crate::store::{Store, changed};

pub(super) const POLICY_COLUMNS: &str = "reuse_detection, oauth_registration, policy_max_lifetime_s, \
     policy_require_expiry, policy_rotation_interval_s, policy_owner_scopes, policy_admin_scopes, \
     policy_member_scopes, policy_write_needs_allowlist, policy_revoke_unused_after_s";

/// The rules of a policy that judge tokens, as durations and sets.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) require_expiry: bool,
    pub(crate) rotation_interval: Duration,
    pub(crate) role_scopes: RoleScopes,
    pub(crate) write_needs_allowlist: bool,
    pub(crate) revoke_unused_after: Option<Duration>,
}

/// A new or rotated token, as the policy judges it.
pub(crate) struct Proposed<'a> {
    pub(crate) scopes: Scopes,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) networks: &'a Networks,
}

impl Rules {
    fn of_row(row: &sqlx::any::AnyRow) -> Result<Rules, Error> {
        let seconds = |column: &str| -> Result<Option<Duration>, Error> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(Duration::seconds))
        };
        let scopes = |column: &str| -> Result<Scopes, Error> {
            row.try_get::<String, _>(column)?
                .parse()
                .map_err(|_| Error::corrupt("policy scopes"))
        };
        Ok(Rules {
            max_lifetime: seconds("policy_max_lifetime_s")?,
            require_expiry: row.try_get::<i64, _>("policy_require_expiry")? != 0,
            rotation_interval: Duration::seconds(row.try_get("policy_rotation_interval_s")?),
            role_scopes: RoleScopes {
                owner: scopes("policy_owner_scopes")?,
                admin: scopes("policy_admin_scopes")?,
                member: scopes("policy_member_scopes")?,
            },
            write_needs_allowlist: row.try_get::<i64, _>("policy_write_needs_allowlist")? != 0,
            revoke_unused_after: seconds("policy_revoke_unused_after_s")?,
        })
    }

    /// A rotated token's kept expiry, within the policy: at most its maximum lifetime from now;
    /// where an expiry is required but no maximum set, the rotation interval from now.
    pub(crate) fn fit_expiry(
        &self,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match (expires_at, self.max_lifetime) {
            (Some(at), Some(max)) => Some(at.min(now + max)),
            (None, Some(max)) => Some(now + max),
            (None, None) if self.require_expiry => Some(now + self.rotation_interval),
            (at, _) => at,
        }
    }

    /// The first rule a new or rotated token breaks, as the error that refuses it.
    /// `role`: the owner's (`None`: not a member, which the caller refuses itself).
    pub(crate) fn judge(
        &self,
        token: &Proposed<'_>,
        role: Option<Role>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        match (token.expires_at, self.max_lifetime) {
            (None, Some(max)) => {
                return Err(Error::PolicyViolation {
                    rule: "max_lifetime",
                    detail: format!("a token here must expire within {}", text_of(max)),
                });
            }
            (None, None) if self.require_expiry => {
                return Err(Error::PolicyViolation {
                    rule: "require_expiry",
                    detail: "a token here must have an expiry".to_owned(),
                });
            }
            // A second of slack: "90d" from a client's clock is not a violation.
            (Some(at), Some(max)) if at - now > max + Duration::SECOND => {
                return Err(Error::PolicyViolation {
                    rule: "max_lifetime",
                    detail: format!("a token here may live at most {}", text_of(max)),
                });
            }
            _ => {}
        }
        if let Some(role) = role {
            let allowed = self.role_scopes.of(role);
            let mut extra = token.scopes.without(allowed);
            if role == Role::Member {
                // Never a policy question: refused as invalid where membership is checked.
                extra = extra.without(Scope::Admin.into());
            }
            if !extra.is_empty() {
                return Err(Error::PolicyViolation {
                    rule: "role_scopes",
                    detail: format!(
                        "a token of a workspace {role} here may carry only {}; not {extra}",
                        words(allowed)
                    ),
                });
            }
        }
        if self.write_needs_allowlist
            && token.scopes.contains(Scope::Write)
            && token.networks.is_empty()
        {
            return Err(Error::PolicyViolation {
                rule: "write_requires_allowlist",
                detail: "a token with the write scope here must carry an address allow-list \
                         (allowed_networks)"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Scopes as a sentence names them: `read, write`, or `no scope`.
fn words(scopes: Scopes) -> String {
    if scopes.is_empty() {
        "no scope".to_owned()
    } else {
        scopes.to_string().replace(',', ", ")
    }
}

/// The shortest maximum lifetime a policy may set: an OAuth access token lives an hour.
const SHORTEST_MAXIMUM: Duration = Duration::HOUR;

impl Store {
    /// The policy of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace.
    pub async fn workspace_policy(&self, workspace_id: &str) -> Result<WorkspacePolicy, Error> {
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound { what: "workspace" })?;
        policy_of(&row)
    }

    /// Replaces the policy of a workspace; a `workspace.policy_changed` event records what
    /// changed. Existing tokens are not changed: [`Store::check_policy`] lists those that break
    /// the new rules, and [`Store::apply_policy`] brings them into line.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Invalid`] for a malformed or
    /// out-of-range duration, or for role scopes that give a member `admin` or a role nothing;
    /// [`Error::Conflict`] when OAuth dynamic registration is turned on while another workspace
    /// has it.
    pub async fn set_workspace_policy(
        &self,
        workspace_id: &str,
        policy: WorkspacePolicy,
        context: &Context,
    ) -> Result<WorkspacePolicy, Error> {
        let max_lifetime = policy
            .max_lifetime
            .as_deref()
            .map(|text| duration("max_lifetime", text))
            .transpose()?;
        if max_lifetime.is_some_and(|max| max < SHORTEST_MAXIMUM) {
            return Err(Error::invalid(
                "max_lifetime",
                "must be at least 1h (an OAuth access token lives an hour)",
            ));
        }
        let rotation = duration("rotation_interval", &policy.rotation_interval)?;
        let unused = policy
            .revoke_unused_after
            .as_deref()
            .map(|text| duration("revoke_unused_after", text))
            .transpose()?;
        if unused.is_some_and(|d| d < Duration::DAY) {
            return Err(Error::invalid(
                "revoke_unused_after",
                "must be at least 1d: a token used once a day must not be revoked for it",
            ));
        }
        let roles = policy.role_scopes;
        if roles.member.contains(Scope::Admin) {
            return Err(Error::invalid(
                "role_scopes.member",
                "a member never holds the admin scope",
            ));
        }
        if roles.owner.is_empty() || roles.admin.is_empty() || roles.member.is_empty() {
            return Err(Error::invalid(
                "role_scopes",
                "every role needs at least one scope (revoke or remove members instead)",
            ));
        }
        let policy = WorkspacePolicy {
            max_lifetime: max_lifetime.map(text_of),
            rotation_interval: text_of(rotation),
            revoke_unused_after: unused.map(text_of),
            ..policy
        };
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let current = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound { what: "workspace" })?;
        let current = policy_of(&current)?;
        if policy.oauth_registration && !current.oauth_registration {
            let other = sqlx::query(
                "SELECT name FROM workspaces WHERE oauth_registration = 1 AND id <> $1",
            )
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = other {
                let name: String = other.try_get("name")?;
                return Err(Error::Conflict(format!(
                    "workspace {name:?} already accepts self-registered OAuth clients; the \
                     registration endpoint cannot name a workspace, so only one may"
                )));
            }
        }
        sqlx::query(
            "UPDATE workspaces SET reuse_detection = $1, oauth_registration = $2, \
             policy_max_lifetime_s = $3, policy_require_expiry = $4, \
             policy_rotation_interval_s = $5, policy_owner_scopes = $6, \
             policy_admin_scopes = $7, policy_member_scopes = $8, \
             policy_write_needs_allowlist = $9, policy_revoke_unused_after_s = $10 \
             WHERE id = $11",
        )
        .bind(policy.reuse_detection.as_str())
        .bind(i64::from(policy.oauth_registration))
        .bind(max_lifetime.map(|d| d.whole_seconds()))
        .bind(i64::from(policy.require_expiry))
        .bind(rotation.whole_seconds())
        .bind(roles.owner.to_string())
        .bind(roles.admin.to_string())
        .bind(roles.member.to_string())
        .bind(i64::from(policy.write_requires_allowlist))
        .bind(unused.map(|d| d.whole_seconds()))
        .bind(workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            crate::store::conflict(
                e,
                "another workspace already accepts self-registered OAuth clients; only one may",
            )
        })?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WorkspacePolicyChanged,
            target_kind: Some("workspace"),
            target_id: Some(workspace_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({
                "reuse_detection": changed(
                    current.reuse_detection.as_str(),
                    policy.reuse_detection.as_str(),
                ),
                "oauth_registration": changed(&current.oauth_registration, &policy.oauth_registration),
                "max_lifetime": changed(&current.max_lifetime, &policy.max_lifetime),
                "require_expiry": changed(&current.require_expiry, &policy.require_expiry),
                "rotation_interval": changed(&current.rotation_interval, &policy.rotation_interval),
                "role_scopes": changed(&current.role_scopes, &policy.role_scopes),
                "write_requires_allowlist": changed(
                    &current.write_requires_allowlist,
                    &policy.write_requires_allowlist,
                ),
                "revoke_unused_after": changed(
                    &current.revoke_unused_after,
                    &policy.revoke_unused_after,
                ),
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// The rules of a workspace's policy.
    pub(crate) async fn rules(&self, workspace_id: &str) -> Result<Rules, Error> {
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound { what: "workspace" })?;
        Rules::of_row(&row)
    }

    /// Refuses a new or rotated token that the workspace's `rules` do not allow, before any
    /// scrypt is spent on it: [`Error::PolicyViolation`] naming the rule.
    pub(crate) async fn judge_new_token(
        &self,
        workspace_id: &str,
        rules: &Rules,
        owner_id: &str,
        token: Proposed<'_>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let role = sqlx::query(
            "SELECT role FROM members WHERE id = $1 AND workspace_id = $2 \
             AND removed_at_us IS NULL",
        )
        .bind(owner_id)
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .map(|row| row.try_get::<String, _>("role"))
        .transpose()?
        .map(|role| role.parse::<Role>())
        .transpose()?;
        rules.judge(&token, role, now)
    }
}

/// A policy duration, `90d`: more than zero, at most 100 years.
fn duration(field: &'static str, text: &str) -> Result<Duration, Error> {
    let d = token_core::parse_duration(text).map_err(|e| Error::invalid(field, e.to_string()))?;
    if d.is_zero() {
        return Err(Error::invalid(field, "must be longer than zero"));
    }
    Ok(d)
}

/// A duration as the policy writes it: whole weeks are days (`90d`), else the largest whole
/// unit.
pub(crate) fn text_of(d: Duration) -> String {
    let s = d.whole_seconds();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn policy_of(row: &sqlx::any::AnyRow) -> Result<WorkspacePolicy, Error> {
    let reuse: String = row.try_get("reuse_detection")?;
    let rules = Rules::of_row(row)?;
    Ok(WorkspacePolicy {
        reuse_detection: reuse.parse()?,
        oauth_registration: row.try_get::<i64, _>("oauth_registration")? != 0,
        max_lifetime: rules.max_lifetime.map(text_of),
        require_expiry: rules.require_expiry,
        rotation_interval: text_of(rules.rotation_interval),
        role_scopes: rules.role_scopes,
        write_requires_allowlist: rules.write_needs_allowlist,
        revoke_unused_after: rules.revoke_unused_after.map(text_of),
    })
}
