//! Rotating and revoking tokens: by an admin, or by the token itself. Revocation takes the
//! token's family unless asked not to.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{Issued, RevokeToken, Revoked, RotateToken};
use knowmind_axum::{ApiError, Authenticated, OptionalJson};
use token_core::{TokenId, parse_duration};
use token_store::{Principal, Reach, Revocation, Rotation};

use super::tokens::{TokenPath, expiry, issued};
use super::{AppState, Caller};

/// Revoke a token
///
/// Revokes the token and, unless `only_this` is set, every live token of its family (the tokens
/// rotated from it and into it). A reason whose first word is `compromised` or `leaked` always
/// takes the family. The body is optional.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", operation_id = "revokeToken", tag = "tokens",
    params(TokenPath), request_body(content = Option<RevokeToken>),
    responses((status = 200, description = "The token as it is now, and every token this call revoked", body = Revoked)))]
pub(super) async fn revoke(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<TokenPath>,
    OptionalJson(body): OptionalJson<RevokeToken>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let revocation = Revocation {
        reason: body.reason.unwrap_or_default(),
        reach: if body.only_this {
            Reach::OnlyThis
        } else {
            Reach::Family
        },
    };
    let revoked = app
        .store()
        .revoke_token(&who.workspace_id, path.id()?, &revocation, &context)
        .await?;
    Ok(axum::Json(revoked))
}

/// Revoke the presented token
///
/// Revokes the presented token and its family: the caller's own credential stops working.
#[utoipa::path(post, path = "/v1/tokens/self/revoke", operation_id = "revokeSelf", tag = "self",
    responses((status = 200, description = "The token as it is now, and every token this call revoked", body = Revoked)))]
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
    body: RotateToken,
) -> Result<Response, ApiError> {
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
    let duration = |field: &str, text: &str| {
        parse_duration(text).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
    };
    let handover = match (
        body.handover_deadline.as_deref(),
        body.handover_overlap.as_deref(),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "handover_overlap needs handover_deadline: a hand-over must have a deadline",
            ));
        }
        (Some(deadline), overlap) => Some(token_store::Handover {
            deadline: duration("handover_deadline", deadline)?,
            overlap: overlap
                .map(|o| duration("handover_overlap", o))
                .transpose()?
                .unwrap_or(token_store::Handover::DEFAULT_OVERLAP),
        }),
    };
    let rotation = Rotation {
        grace,
        expires_at,
        allowed_networks: body.allowed_networks,
        handover,
    };
    let (record, token) = store
        .rotate_token(&who.workspace_id, id, rotation, context)
        .await?;
    Ok(issued(StatusCode::CREATED, record, &token))
}

/// Rotate a token
///
/// Issues its successor (the plaintext is in this response only). The old token keeps working
/// for `grace_period`, then is revoked; or, with `handover_deadline`, until the successor has
/// been used and `handover_overlap` (5 minutes) has passed, at the latest until the deadline.
/// The new token never gets more lifetime than the old one had. The body is optional.
#[utoipa::path(post, path = "/v1/tokens/{id}/rotate", operation_id = "rotateToken", tag = "tokens",
    params(TokenPath), request_body(content = Option<RotateToken>),
    responses((status = 201, description = "The successor, with its plaintext", body = Issued)))]
pub(super) async fn rotate(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<TokenPath>,
    OptionalJson(body): OptionalJson<RotateToken>,
) -> Result<Response, ApiError> {
    rotate_token(&app, &who, path.id()?, &context, body).await
}

/// Rotate the presented token
///
/// As `rotateToken`, on the presented token: the caller's credential is replaced.
#[utoipa::path(post, path = "/v1/tokens/self/rotate", operation_id = "rotateSelf", tag = "self",
    request_body(content = Option<RotateToken>),
    responses((status = 201, description = "The successor, with its plaintext", body = Issued)))]
pub(super) async fn rotate_self(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    OptionalJson(body): OptionalJson<RotateToken>,
) -> Result<Response, ApiError> {
    rotate_token(&app, &who, who.token_id, &context, body).await
}
