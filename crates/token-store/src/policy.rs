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
        let row = sqlx::query("SELECT reuse_detection FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(self.inner.db.pool())
            .await?
            .ok_or(Error::NotFound { what: "workspace" })?;
        let reuse: String = row.try_get("reuse_detection")?;
        Ok(WorkspacePolicy {
            reuse_detection: reuse.parse()?,
        })
    }

    /// Replaces the policy of a workspace; a `workspace.policy_changed` event records what
    /// changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace.
    pub async fn set_workspace_policy(
        &self,
        workspace_id: &str,
        policy: WorkspacePolicy,
        context: &Context,
    ) -> Result<WorkspacePolicy, Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let current: String = sqlx::query("SELECT reuse_detection FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound { what: "workspace" })?
            .try_get("reuse_detection")?;
        sqlx::query("UPDATE workspaces SET reuse_detection = $1 WHERE id = $2")
            .bind(policy.reuse_detection.as_str())
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WorkspacePolicyChanged,
            target_kind: Some("workspace"),
            target_id: Some(workspace_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({
                "reuse_detection": changed(current.as_str(), policy.reuse_detection.as_str()),
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
