//! `/v1/tokens`: issue, list, inspect, change, revoke, rotate, usage, and verification for other
//! services.

use std::borrow::Cow;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use token_core::{Scope, Scopes, Token, TokenId, parse_duration};
use token_store::{
    Call, NewToken, Origin, Principal, Reach, Refusal, Revocation, Revoked, Rotation, TokenFilter,
    TokenRecord, TokenState, TokenUpdate,
};

use super::{AppState, Caller, no_store, optional_json, parse_time};
use knowmind_axum::ApiError;
use knowmind_axum::Authenticated;
use knowmind_axum::{ApiJson, ApiQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRequest {
    name: String,
    scopes: Scopes,
    #[serde(default)]
    description: String,
    /// The device or application the token is for.
    #[serde(default)]
    client: String,
    expires_in: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// Defaults to the owner of the token making the request.
    owner_id: Option<String>,
}

/// A new token: its plaintext, once, and its record.
#[derive(Serialize)]
struct Issued {
    token: String,
    #[serde(flatten)]
    record: TokenRecord,
}

fn issued(status: StatusCode, record: TokenRecord, token: &Token) -> Response {
    no_store(
        status,
        Issued {
            token: token.expose_secret().to_owned(),
            record,
        },
    )
}

/// `expires_in` (like `90d`) or `expires_at`, not both.
fn expiry(
    now: OffsetDateTime,
    expires_in: Option<&str>,
    expires_at: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => Err(ApiError::invalid("give expires_in or expires_at, not both")),
        (Some(text), None) => {
            let duration = parse_duration(text).map_err(|e| ApiError::invalid(e.to_string()))?;
            if duration.is_zero() {
                return Err(ApiError::invalid("expires_in must be longer than zero"));
            }
            Ok(Some(now + duration))
        }
        (None, at) => Ok(at),
    }
}

fn token_id(text: &str) -> Result<TokenId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("token"))
}

pub(super) async fn create(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let store = app.store();
    let expires_at = expiry(store.now(), body.expires_in.as_deref(), body.expires_at)?;
    let new = NewToken {
        owner_id: body.owner_id.unwrap_or(who.owner_id),
        name: body.name,
        description: body.description,
        client: body.client,
        scopes: body.scopes,
        expires_at,
    };
    let (record, token) = store.create_token(&who.workspace_id, new, &context).await?;
    Ok(issued(StatusCode::CREATED, record, &token))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    name: Option<String>,
    scope: Option<Scope>,
    expires_before: Option<String>,
    last_used_before: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// A page of results.
#[derive(Serialize)]
pub(super) struct Listing<T> {
    pub(super) items: Vec<T>,
    pub(super) next_cursor: Option<String>,
}

pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let state = match query.state.as_deref() {
        None | Some("all") => None,
        Some("active") => Some(TokenState::Active),
        Some("expired") => Some(TokenState::Expired),
        Some("revoked") => Some(TokenState::Revoked),
        Some(_) => {
            return Err(ApiError::bad_request(
                "state must be active, expired, revoked or all",
            ));
        }
    };
    let filter = TokenFilter {
        state,
        name: query.name,
        scope: query.scope,
        expires_before: query
            .expires_before
            .as_deref()
            .map(|t| parse_time("expires_before", t))
            .transpose()?,
        last_used_before: query
            .last_used_before
            .as_deref()
            .map(|t| parse_time("last_used_before", t))
            .transpose()?,
    };
    let page = app
        .store()
        .list_tokens(
            &who.workspace_id,
            &filter,
            query.cursor.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(axum::Json(Listing {
        items: page.items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// A token's record with its family: every token it was rotated from or into, oldest first.
#[derive(Serialize)]
pub(super) struct TokenDetail {
    #[serde(flatten)]
    record: TokenRecord,
    family: Vec<Relative>,
}

/// A token of a family, as its lineage shows it.
#[derive(Serialize)]
struct Relative {
    id: TokenId,
    name: String,
    state: TokenState,
    origin: Origin,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    revoked_reason: Option<String>,
    rotated_from: Option<TokenId>,
    rotated_to: Option<TokenId>,
}

async fn detail(app: &AppState, workspace: &str, id: TokenId) -> Result<TokenDetail, ApiError> {
    let family = app.store().token_family(workspace, id).await?;
    let record = family
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("token"))?;
    let family = family
        .into_iter()
        .map(|t| Relative {
            id: t.id,
            name: t.name,
            state: t.state,
            origin: t.origin,
            created_at: t.created_at,
            created_by: t.created_by,
            revoked_at: t.revoked_at,
            revoked_reason: t.revoked_reason,
            rotated_from: t.rotated_from,
            rotated_to: t.rotated_to,
        })
        .collect();
    Ok(TokenDetail { record, family })
}

pub(super) async fn get_one(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<axum::Json<TokenDetail>, ApiError> {
    Ok(axum::Json(
        detail(&app, &who.workspace_id, token_id(&id)?).await?,
    ))
}

pub(super) async fn get_self(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<TokenDetail>, ApiError> {
    Ok(axum::Json(
        detail(&app, &who.workspace_id, who.token_id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateRequest {
    name: Option<String>,
    description: Option<String>,
}

pub(super) async fn update(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<axum::Json<TokenRecord>, ApiError> {
    let update = TokenUpdate {
        name: body.name,
        description: body.description,
    };
    let record = app
        .store()
        .update_token(&who.workspace_id, token_id(&id)?, update, &context)
        .await?;
    Ok(axum::Json(record))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeQuery {
    reason: Option<String>,
    /// Revoke only this token, not the tokens rotated from it (ignored when the reason is
    /// `compromised` or `leaked`).
    #[serde(default)]
    only_this: bool,
}

pub(super) async fn revoke(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RevokeQuery>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateRequest {
    grace_period: Option<String>,
    expires_in: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

async fn rotate_token(
    app: &AppState,
    who: &Principal,
    id: TokenId,
    context: &audit::Context,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: RotateRequest = optional_json(body)?;
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    cursor: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct Usage {
    token_id: TokenId,
    #[serde(flatten)]
    summary: audit::UsageSummary,
    recent: Vec<audit::StoredUsage>,
    next_cursor: Option<i64>,
}

pub(super) async fn usage(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let id = token_id(&id)?;
    if id != who.token_id && !who.scopes.contains(Scope::Admin) {
        return Err(ApiError::forbidden(Scope::Admin.into()));
    }
    let store = app.store();
    store.get_token(&who.workspace_id, id).await?; // 404 for other workspaces' tokens
    let audit = store.audit();
    let summary = audit.usage_summary(id).await?;
    let page = audit
        .usage(id, query.cursor, query.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(Usage {
        token_id: id,
        summary,
        recent: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A resource server asks whether a token its client presented is good. The token is in the body,
/// never in a URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntrospectRequest {
    token: String,
    /// Scopes the resource server's route needs.
    #[serde(default)]
    scopes: Scopes,
    /// The original call, recorded as reported by this resource server.
    client_ip: Option<IpAddr>,
    method: Option<String>,
    route: Option<String>,
    user_agent: Option<String>,
}

#[derive(Serialize, Default)]
struct Introspection {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<TokenId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Scopes>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    expires_at: Option<OffsetDateTime>,
}

fn answer(code: &'static str) -> Introspection {
    Introspection {
        code,
        ..Introspection::default()
    }
}

pub(super) async fn introspect(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiJson(body): ApiJson<IntrospectRequest>,
) -> Result<axum::Json<impl Serialize>, ApiError> {
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
                code: "VALID",
                token_id: Some(p.token_id),
                workspace: Some(p.workspace_id.clone()),
                owner_id: Some(p.owner_id.clone()),
                scopes: Some(p.scopes),
                expires_at: p.expires_at,
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
