//! `POST /v1/tokens/verify`: a resource server asks whether a token its client presented is good.
//! The token is in the body, never in a URL; only tokens of the caller's workspace are considered.

use std::borrow::Cow;

use axum::extract::State;
use knowmind_api::{Introspection, IntrospectionRequest};
use knowmind_axum::{ApiError, ApiJson, Authenticated};
use token_core::Token;
use token_store::{Call, Refusal};

use super::AppState;

fn answer(code: &str) -> Introspection {
    Introspection {
        code: code.to_owned(),
        ..Introspection::default()
    }
}

/// Verify a token for a resource server
///
/// For services that accept knowmind tokens without access to the database. Always 200 when the
/// caller's own token is good: `valid`, and a `code` — `VALID`, `NOT_FOUND` (also for another
/// workspace's tokens), `EXPIRED`, `REVOKED`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`. The call is
/// recorded in the token's security log as reported by the caller.
#[utoipa::path(post, path = "/v1/tokens/verify", operation_id = "introspect", tag = "introspection",
    request_body = IntrospectionRequest,
    responses((status = 200, description = "The verdict", body = Introspection)))]
pub(super) async fn introspect(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiJson(body): ApiJson<IntrospectionRequest>,
) -> Result<axum::Json<Introspection>, ApiError> {
    let short =
        |text: Option<String>, max: usize| text.map(|t| t.chars().take(max).collect::<String>());
    // What the resource server reports about its client's call is recorded as its report, and
    // only tokens of its own workspace are considered: any other is unknown, with no side effect.
    let call = Call {
        client_ip: body.client_ip,
        method: short(body.method, 16).map_or(Cow::Borrowed("POST"), Cow::Owned),
        route: short(body.route, 256).map_or(Cow::Borrowed("/v1/tokens/verify"), Cow::Owned),
        user_agent: short(body.user_agent, 256),
        request_id: None,
        workspace: Some(who.workspace_id.clone()),
        reported_by: Some(who.token_id),
    };
    let presented_id = body.token.parse::<Token>().ok().map(|t| t.id());
    let known = |code| Introspection {
        token_id: presented_id,
        ..answer(code)
    };
    let result = match app.store().verify(&body.token, body.scopes, &call).await {
        Ok(verified) => {
            let p = verified.principal();
            let result = Introspection {
                valid: true,
                code: "VALID".into(),
                token_id: Some(p.token_id),
                workspace: Some(p.workspace_id.clone()),
                owner_id: Some(p.owner_id.clone()),
                scopes: Some(p.scopes),
                expires_at: p.expires_at,
                oauth_client_id: p.oauth_client_id.clone(),
                rotation_due_at: p.rotation_due_at,
            };
            verified.finish(200);
            result
        }
        Err(token_store::Error::Unauthorized(Refusal::Revoked)) => known("REVOKED"),
        Err(token_store::Error::Unauthorized(Refusal::Expired)) => known("EXPIRED"),
        Err(token_store::Error::Unauthorized(_)) => answer("NOT_FOUND"),
        Err(token_store::Error::Forbidden { .. }) => known("INSUFFICIENT_SCOPE"),
        Err(token_store::Error::RateLimited { .. }) => answer("RATE_LIMITED"),
        Err(e) => return Err(e.into()),
    };
    Ok(axum::Json(result))
}
