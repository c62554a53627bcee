//! A workspace's policy: the rules it sets for its tokens — what reuse of a rotated token does,
//! whether connectors may register themselves, and the lifetime rules every new or rotated token
//! must meet. Changing it is audited.

use audit::{Action, Context, NewEvent, Outcome};
use serde_json::json;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::model::WorkspacePolicy;
use crate::store::{Store, changed};

const POLICY_COLUMNS: &str = "reuse_detection, oauth_registration, policy_max_lifetime_s, \
     policy_require_expiry, policy_rotation_interval_s";

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
    /// changed. Tokens that break new lifetime rules keep working until they are rotated.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Invalid`] for a malformed or
    /// out-of-range duration; [`Error::Conflict`] when OAuth dynamic registration is turned on
    /// while another workspace has it.
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
        let policy = WorkspacePolicy {
            max_lifetime: max_lifetime.map(text_of),
            rotation_interval: text_of(rotation),
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
             policy_rotation_interval_s = $5 WHERE id = $6",
        )
        .bind(policy.reuse_detection.as_str())
        .bind(i64::from(policy.oauth_registration))
        .bind(max_lifetime.map(|d| d.whole_seconds()))
        .bind(i64::from(policy.require_expiry))
        .bind(rotation.whole_seconds())
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
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// The workspace's rotation interval.
    pub(crate) async fn rotation_interval(&self, workspace_id: &str) -> Result<Duration, Error> {
        let row = sqlx::query("SELECT policy_rotation_interval_s FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(self.inner.db.pool())
            .await?
            .ok_or(Error::NotFound { what: "workspace" })?;
        Ok(Duration::seconds(
            row.try_get("policy_rotation_interval_s")?,
        ))
    }

    /// Refuses a new or rotated token's expiry that the workspace's policy does not allow:
    /// none where one is required (a maximum lifetime requires one too), or further away than
    /// the maximum.
    pub(crate) async fn check_lifetime(
        &self,
        workspace_id: &str,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let row = sqlx::query(
            "SELECT policy_max_lifetime_s, policy_require_expiry FROM workspaces WHERE id = $1",
        )
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound { what: "workspace" })?;
        let max: Option<i64> = row.try_get("policy_max_lifetime_s")?;
        let max = max.map(Duration::seconds);
        let required = row.try_get::<i64, _>("policy_require_expiry")? != 0;
        match (expires_at, max) {
            (None, Some(max)) => Err(Error::PolicyViolation {
                rule: "max_lifetime",
                detail: format!("a token here must expire within {}", text_of(max)),
            }),
            (None, None) if required => Err(Error::PolicyViolation {
                rule: "require_expiry",
                detail: "a token here must have an expiry".to_owned(),
            }),
            // A second of slack: "90d" from a client's clock is not a violation.
            (Some(at), Some(max)) if at - now > max + Duration::SECOND => {
                Err(Error::PolicyViolation {
                    rule: "max_lifetime",
                    detail: format!("a token here may live at most {}", text_of(max)),
                })
            }
            _ => Ok(()),
        }
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
fn text_of(d: Duration) -> String {
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
    let max: Option<i64> = row.try_get("policy_max_lifetime_s")?;
    Ok(WorkspacePolicy {
        reuse_detection: reuse.parse()?,
        oauth_registration: row.try_get::<i64, _>("oauth_registration")? != 0,
        max_lifetime: max.map(|s| text_of(Duration::seconds(s))),
        require_expiry: row.try_get::<i64, _>("policy_require_expiry")? != 0,
        rotation_interval: text_of(Duration::seconds(
            row.try_get("policy_rotation_interval_s")?,
        )),
    })
}
