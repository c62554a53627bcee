//! `/v1/workspace`: the workspace's policy.

use axum::extract::State;
use knowmind_api::PolicyCheck;
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

/// Check the workspace's tokens against its policy
///
/// A dry run: the live tokens that break the policy, and what applying it would do to each
/// (set an expiry, narrow scopes, revoke, or nothing automatic).
#[utoipa::path(get, path = "/v1/workspace/policy/check", operation_id = "checkPolicy", tag = "workspace",
    responses((status = 200, description = "The tokens that break the policy", body = PolicyCheck)))]
pub(super) async fn check_policy(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<PolicyCheck>, ApiError> {
    Ok(axum::Json(
        app.store().check_policy(&who.workspace_id).await?,
    ))
}

/// Apply the policy to the workspace's tokens
///
/// Does what the check describes, in one transaction: each change is a `token.updated` or
/// `token.revoked` event, summed up by `workspace.policy_applied`.
#[utoipa::path(post, path = "/v1/workspace/policy/apply", operation_id = "applyPolicy", tag = "workspace",
    responses((status = 200, description = "What was done", body = PolicyCheck)))]
pub(super) async fn apply_policy(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
) -> Result<axum::Json<PolicyCheck>, ApiError> {
    Ok(axum::Json(
        app.store()
            .apply_policy(&who.workspace_id, None, &context)
            .await?,
    ))
}
