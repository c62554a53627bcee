//! Rotating and revoking tokens: by an admin, or by the token itself. Revocation takes the
//! token's family unless asked not to.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{RevokeToken, Revoked, RotateToken};
use knowmind_axum::{ApiError, ApiQuery, Authenticated};
use token_core::{TokenId, parse_duration};
use token_store::{Principal, Reach, Revocation, Rotation};

use super::tokens::{expiry, issued, token_id};
use super::{AppState, Caller, optional_json};

pub(super) async fn revoke(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RevokeToken>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let revocation = Revocation {
        reason: query.reason.unwrap_or_default(),
        reach: if query.only_this {
            Reach::OnlyThis
        } else {
            Reach::Family
        },
    };
    let revoked = app
        .store()
        .revoke_token(&who.workspace_id, token_id(&id)?, &revocation, &context)
        .await?;
    Ok(axum::Json(revoked))
}

pub(super) async fn revoke_self(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
) -> Result<axum::Json<Revoked>, ApiError> {
    let revoked = app
        .store()
        .revoke_token(
            &who.workspace_id,
            who.token_id,
            &Revocation::family("revoked by its holder"),
            &context,
        )
        .await?;
    Ok(axum::Json(revoked))
}

async fn rotate_token(
    app: &AppState,
    who: &Principal,
    id: TokenId,
    context: &audit::Context,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: RotateToken = optional_json(body)?;
    let store = app.store();
    let grace = body
        .grace_period
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let expires_at = match (body.expires_in.as_deref(), body.expires_at) {
        (None, None) => None, // keep the old token's lifetime
        (expires_in, expires_at) => Some(expiry(store.now(), expires_in, expires_at)?),
    };
    let rotation = Rotation { grace, expires_at };
    let (record, token) = store
        .rotate_token(&who.workspace_id, id, rotation, context)
        .await?;
    Ok(issued(StatusCode::CREATED, record, &token))
}

pub(super) async fn rotate(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    rotate_token(&app, &who, token_id(&id)?, &context, &body).await
}

pub(super) async fn rotate_self(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    rotate_token(&app, &who, who.token_id, &context, &body).await
}
