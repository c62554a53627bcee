//! `/v1/tokens`: issue, list, read and change tokens, and their security log. Rotation and
//! revocation are in `rotation.rs`, verification for other services in `introspection.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{
    CreateToken, Issued, ListTokens, Page, PageQuery, Relative, TokenDetail, TokenRecord,
    UpdateToken, Usage,
};
use knowmind_axum::{ApiError, ApiJson, ApiQuery, Authenticated};
use time::OffsetDateTime;
use token_core::{Scope, Token, TokenId, parse_duration};
use token_store::{NewToken, TokenFilter, TokenUpdate};

use super::{AppState, Caller, no_store, parse_time};

/// The response that carries a new token's plaintext: once, never cached.
pub(super) fn issued(status: StatusCode, record: TokenRecord, token: &Token) -> Response {
    no_store(
        status,
        Issued {
            token: token.expose_secret().to_owned(),
            record,
        },
    )
}

/// `expires_in` (like `90d`) or `expires_at`, not both.
pub(super) fn expiry(
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

/// A token id from a path: anything else is a token that does not exist.
pub(super) fn token_id(text: &str) -> Result<TokenId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("token"))
}

pub(super) async fn create(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<CreateToken>,
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

pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListTokens>,
) -> Result<axum::Json<Page<TokenRecord>>, ApiError> {
    let time = |field, text: Option<String>| text.map(|t| parse_time(field, &t)).transpose();
    let filter = TokenFilter {
        state: query.state.and_then(|s| s.state()),
        name: query.name,
        scope: query.scope,
        expires_before: time("expires_before", query.expires_before)?,
        last_used_before: time("last_used_before", query.last_used_before)?,
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
    Ok(axum::Json(page))
}

async fn detail(app: &AppState, workspace: &str, id: TokenId) -> Result<TokenDetail, ApiError> {
    let family = app.store().token_family(workspace, id).await?;
    let record = family
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("token"))?;
    let family = family.iter().map(Relative::from).collect();
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

pub(super) async fn update(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateToken>,
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

pub(super) async fn usage(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Usage>, ApiError> {
    let id = token_id(&id)?;
    if id != who.token_id && !who.scopes.contains(Scope::Admin) {
        return Err(ApiError::forbidden(Scope::Admin.into()));
    }
    let store = app.store();
    store.get_token(&who.workspace_id, id).await?; // 404 for other workspaces' tokens
    let audit = store.audit();
    let summary = audit.usage_summary(id).await?;
    let page = audit
        .usage(id, query.cursor.as_deref(), query.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(Usage {
        token_id: id,
        summary,
        recent: page.items,
        next_cursor: page.next_cursor,
    }))
}
