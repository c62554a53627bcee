//! `/v1/workspace`: the workspace's policy.

use axum::extract::State;
use token_store::WorkspacePolicy;

use super::{AppState, Caller};
use knowmind_axum::ApiError;
use knowmind_axum::ApiJson;
use knowmind_axum::Authenticated;

pub(super) async fn policy(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<WorkspacePolicy>, ApiError> {
    Ok(axum::Json(
        app.store().workspace_policy(&who.workspace_id).await?,
    ))
}

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
