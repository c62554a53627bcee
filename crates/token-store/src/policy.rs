//! A workspace's policy: the rules it sets for its tokens. Changing it is audited.

use audit::{Action, Context, NewEvent, Outcome};
use serde_json::json;
use sqlx::Row;

use crate::error::Error;
use crate::model::WorkspacePolicy;
use crate::store::{Store, changed};

impl Store {
    /// The policy of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace.
    pub async fn workspace_policy(&self, workspace_id: &str) -> Result<WorkspacePolicy, Error> {
        let row =
            sqlx::query("SELECT reuse_detection, oauth_registration FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_optional(self.inner.db.pool())
                .await?
                .ok_or(Error::NotFound { what: "workspace" })?;
        policy_of(&row)
    }

    /// Replaces the policy of a workspace; a `workspace.policy_changed` event records what
    /// changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Conflict`] when OAuth dynamic
    /// registration is turned on while another workspace has it.
    pub async fn set_workspace_policy(
        &self,
        workspace_id: &str,
        policy: WorkspacePolicy,
        context: &Context,
    ) -> Result<WorkspacePolicy, Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let current =
            sqlx::query("SELECT reuse_detection, oauth_registration FROM workspaces WHERE id = $1")
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
            "UPDATE workspaces SET reuse_detection = $1, oauth_registration = $2 WHERE id = $3",
        )
        .bind(policy.reuse_detection.as_str())
        .bind(i64::from(policy.oauth_registration))
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
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(policy)
    }
}

fn policy_of(row: &sqlx::any::AnyRow) -> Result<WorkspacePolicy, Error> {
    let reuse: String = row.try_get("reuse_detection")?;
    Ok(WorkspacePolicy {
        reuse_detection: reuse.parse()?,
        oauth_registration: row.try_get::<i64, _>("oauth_registration")? != 0,
    })
}
