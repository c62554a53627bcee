//! `/v1/workspace`: the workspace's policy.

use axum::extract::State;
use token_store::WorkspacePolicy;

use super::{AppState, Caller};
use knowmind_axum::ApiError;
use knowmind_axum::ApiJson;
use knowmind_axum::Authenticated;

/// The workspace's policy
#[utoipa::path(get, path = "/v1/workspace/policy", operation_id = "getPolicy", tag = "workspace",
    responses((status = 200, description = "How the workspace treats its tokens", body = WorkspacePolicy)))]
pub(super) async fn policy(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<WorkspacePolicy>, ApiError> {
    Ok(axum::Json(
        app.store().workspace_policy(&who.workspace_id).await?,
    ))
}

/// Replace the workspace's policy
///
/// Audited as `workspace.policy_changed`.
#[utoipa::path(put, path = "/v1/workspace/policy", operation_id = "setPolicy", tag = "workspace",
    request_body = WorkspacePolicy,
    responses((status = 200, description = "The policy as it is now", body = WorkspacePolicy)))]
pub(super) async fn set_policy(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(policy): ApiJson<WorkspacePolicy>,
) -> Result<axum::Json<WorkspacePolicy>, ApiError> {
    Ok(axum::Json(
        app.store()
            .set_workspace_policy(&who.workspace_id, policy, &context)
            .await?,
    ))
}
