//! `/v1/tokens`: issue, list, read and change tokens, and their security log. Rotation and
//! revocation are in `rotation.rs`, verification for other services in `introspection.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{
    Anomaly, CreateToken, Issued, ListAnomalies, ListTokens, Page, PageQuery, Relative,
    TokenDetail, TokenRecord, UpdateToken, Usage,
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

/// The `{id}` of the token routes.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TokenPath {
    /// The token's id (16 base62 characters; `self` is a route of its own).
    #[param(pattern = r"^[0-9A-Za-z]{16}$")]
    id: String,
}

impl TokenPath {
    /// The id; one that cannot be a token's is a token that does not exist.
    pub(super) fn id(&self) -> Result<TokenId, ApiError> {
        self.id.parse().map_err(|_| ApiError::not_found("token"))
    }
}

/// Issue a token
///
/// The plaintext token is in this response only (`Cache-Control: no-store`); knowmind keeps its
/// scrypt hash.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "createToken", tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "The new token, with its plaintext", body = Issued)))]
pub(super) async fn create(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let store = app.store();
    let expires_at = expiry(store.now(), body.expires_in.as_deref(), body.expires_at)?;
    let new = NewToken {
        owner_id: body.owner_id.unwrap_or_else(|| who.owner_id.clone()),
        name: body.name,
        description: body.description,
        client: body.client,
        scopes: body.scopes,
        expires_at,
        allowed_networks: body.allowed_networks,
    };
    let (record, token) = if body.canary {
        store
            .create_canary_token(&who.workspace_id, new, &context)
            .await?
    } else {
        store.create_token(&who.workspace_id, new, &context).await?
    };
    Ok(issued(StatusCode::CREATED, record, &token))
}

/// List tokens
///
/// The workspace's tokens, newest first, filtered and paged with `cursor`.
#[utoipa::path(get, path = "/v1/tokens", operation_id = "listTokens", tag = "tokens",
    params(ListTokens),
    responses((status = 200, description = "A page of tokens", body = Page<TokenRecord>)))]
pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListTokens>,
) -> Result<axum::Json<Page<TokenRecord>>, ApiError> {
    let time = |field, text: Option<String>| text.map(|t| parse_time(field, &t)).transpose();
    let filter = TokenFilter {
        state: query.state.and_then(|s| s.state()),
        name: query
            .name
            .map(|n| knowmind_api::text::optional_line("name", &n, 100))
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        scope: query.scope,
        expires_before: time("expires_before", query.expires_before)?,
        last_used_before: time("last_used_before", query.last_used_before)?,
        rotation_due: query.due == Some(knowmind_api::DueFilter::Rotation),
        expiring_within: query
            .expiring_within
            .map(|text| expiring_window(&text))
            .transpose()?,
        ..TokenFilter::default()
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

/// A token's record and family
#[utoipa::path(get, path = "/v1/tokens/{id}", operation_id = "getToken", tag = "tokens",
    params(TokenPath),
    responses((status = 200, description = "The token and every token of its family", body = TokenDetail)))]
pub(super) async fn get_one(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<TokenPath>,
) -> Result<axum::Json<TokenDetail>, ApiError> {
    Ok(axum::Json(
        detail(&app, &who.workspace_id, path.id()?).await?,
    ))
}

/// The presented token's record and family
#[utoipa::path(get, path = "/v1/tokens/self", operation_id = "getSelf", tag = "self",
    responses((status = 200, description = "The presented token and its family", body = TokenDetail)))]
pub(super) async fn get_self(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<TokenDetail>, ApiError> {
    Ok(axum::Json(
        detail(&app, &who.workspace_id, who.token_id).await?,
    ))
}

/// Rename a token or change its description
#[utoipa::path(patch, path = "/v1/tokens/{id}", operation_id = "updateToken", tag = "tokens",
    params(TokenPath), request_body = UpdateToken,
    responses((status = 200, description = "The token as it is now", body = TokenRecord)))]
pub(super) async fn update(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<TokenPath>,
    ApiJson(body): ApiJson<UpdateToken>,
) -> Result<axum::Json<TokenRecord>, ApiError> {
    let update = TokenUpdate {
        name: body.name,
        description: body.description,
    };
    let record = app
        .store()
        .update_token(&who.workspace_id, path.id()?, update, &context)
        .await?;
    Ok(axum::Json(record))
}

/// A token's security log
///
/// Where and how a token was used: every address and endpoint with counts, and the recent
/// calls, newest first. For an admin token, or for the token itself.
#[utoipa::path(get, path = "/v1/tokens/{id}/usage", operation_id = "getTokenUsage", tag = "tokens",
    params(TokenPath, PageQuery),
    responses((status = 200, description = "The token's usage", body = Usage)))]
pub(super) async fn usage(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<TokenPath>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Usage>, ApiError> {
    let id = path.id()?;
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
    // Admins only: a thief holding the token must not learn whether it was noticed.
    let anomalies = if who.scopes.contains(Scope::Admin) {
        audit
            .anomalies(Some(&who.workspace_id), Some(id), None, None, 50)
            .await?
            .items
    } else {
        Vec::new()
    };
    Ok(axum::Json(Usage {
        token_id: id,
        summary,
        anomalies,
        recent: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A token's anomalies
///
/// What was unusual in the token's use — a new network, endpoint or client after its learning
/// period, two networks within minutes, a canary's use — newest first. For admin tokens only
/// (not for the token itself: whoever holds it must not learn whether it was noticed).
#[utoipa::path(get, path = "/v1/tokens/{id}/anomalies", operation_id = "getTokenAnomalies",
    tag = "tokens", params(TokenPath, PageQuery),
    responses((status = 200, description = "A page of the token's anomalies", body = Page<Anomaly>)))]
pub(super) async fn anomalies(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<TokenPath>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Page<Anomaly>>, ApiError> {
    let id = path.id()?;
    let store = app.store();
    store.get_token(&who.workspace_id, id).await?; // 404 for other workspaces' tokens
    let page = store
        .audit()
        .anomalies(
            Some(&who.workspace_id),
            Some(id),
            None,
            query.cursor.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(axum::Json(page))
}

/// The workspace's anomalies
///
/// What was unusual in the use of any of the workspace's tokens, newest first.
#[utoipa::path(get, path = "/v1/anomalies", operation_id = "listAnomalies", tag = "tokens",
    params(ListAnomalies),
    responses((status = 200, description = "A page of anomalies", body = Page<Anomaly>)))]
pub(super) async fn workspace_anomalies(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListAnomalies>,
) -> Result<axum::Json<Page<Anomaly>>, ApiError> {
    let since = query
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    let page = app
        .store()
        .audit()
        .anomalies(
            Some(&who.workspace_id),
            None,
            since,
            query.cursor.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(axum::Json(page))
}

/// `expiring_within`: a duration (`14d`); a well-formed one beyond 100 years takes in every
/// token that expires (it is a window, not a lifetime).
fn expiring_window(text: &str) -> Result<time::Duration, ApiError> {
    match token_core::parse_duration(text) {
        Ok(window) => Ok(window),
        Err(_)
            // The unit first: it makes the last character one byte, so the slice below stays
            // on a character boundary whatever the text (schemathesis found the panic).
            if text.len() > 1
                && text.ends_with(['s', 'm', 'h', 'd', 'w'])
                && text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(time::Duration::days(100 * 366))
        }
        Err(e) => Err(ApiError::bad_request(format!("expiring_within: {e}"))),
    }
}
