//! `/v1/oauth`: the workspace's OAuth clients (connectors) and its members' connections, for
//! admins — register, list, inspect, remove (which revokes everything the client holds), and
//! revoke one connection. The protocol endpoints themselves are in `crate::oauth`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{Connection, OAuthClient, Page, RegisterClient, RegisteredClient, RemoveClient};

use super::{AppState, Caller, no_store};
use knowmind_axum::{ApiError, ApiJson, ApiQuery, Authenticated, OptionalJson};

/// `{id}` of a client route.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ClientPath {
    /// The client id (`cli_` and 16 base62 characters).
    id: String,
}

/// `{id}` of a connection route.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ConnectionPath {
    /// The connection id (`con_` and 16 base62 characters).
    id: String,
}

/// `GET /v1/oauth/clients` options.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListClients {
    /// Include removed clients.
    #[serde(default)]
    include_removed: bool,
}

/// `GET /v1/oauth/connections` filters.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListConnections {
    /// Only this client's.
    #[serde(default)]
    client_id: Option<String>,
    /// Only this member's.
    #[serde(default)]
    member_id: Option<String>,
    /// Include revoked connections.
    #[serde(default)]
    include_revoked: bool,
}

/// The workspace's OAuth clients
///
/// Each with who registered it and how, redirect URIs, scopes, members connected, live tokens
/// and last use. Newest first.
#[utoipa::path(get, path = "/v1/oauth/clients", operation_id = "listOAuthClients", tag = "oauth",
    params(ListClients),
    responses((status = 200, description = "The clients (one page: every client)", body = Page<OAuthClient>)))]
pub(super) async fn list_clients(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListClients>,
) -> Result<axum::Json<Page<OAuthClient>>, ApiError> {
    let items = app
        .store()
        .list_clients(&who.workspace_id, query.include_removed)
        .await?;
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Register an OAuth client
///
/// A confidential client's secret is in this response only (`Cache-Control: no-store`).
/// Audited as `oauth.client_registered`.
#[utoipa::path(post, path = "/v1/oauth/clients", operation_id = "registerOAuthClient", tag = "oauth",
    request_body = RegisterClient,
    responses((status = 201, description = "The client, with its secret if it has one", body = RegisteredClient)))]
pub(super) async fn register(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<RegisterClient>,
) -> Result<Response, ApiError> {
    let registered = app
        .store()
        .register_client(&who.workspace_id, &who.owner_id, body, &context)
        .await?;
    Ok(no_store(StatusCode::CREATED, registered))
}

/// One OAuth client
#[utoipa::path(get, path = "/v1/oauth/clients/{id}", operation_id = "getOAuthClient", tag = "oauth",
    params(ClientPath),
    responses((status = 200, description = "The client", body = OAuthClient)))]
pub(super) async fn get_client(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<ClientPath>,
) -> Result<axum::Json<OAuthClient>, ApiError> {
    Ok(axum::Json(
        app.store().get_client(&who.workspace_id, &path.id).await?,
    ))
}

/// Remove an OAuth client
///
/// Every connection, access token and refresh token of it is revoked at once, on every
/// instance. Audited as `oauth.client_removed` with the reason. Idempotent.
#[utoipa::path(post, path = "/v1/oauth/clients/{id}/remove", operation_id = "removeOAuthClient", tag = "oauth",
    params(ClientPath),
    request_body(content = Option<RemoveClient>, description = "Why (optional)"),
    responses((status = 200, description = "The client, removed", body = OAuthClient)))]
pub(super) async fn remove_client(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<ClientPath>,
    OptionalJson(body): OptionalJson<RemoveClient>,
) -> Result<axum::Json<OAuthClient>, ApiError> {
    let reason = body.reason.unwrap_or_default();
    Ok(axum::Json(
        app.store()
            .remove_client(&who.workspace_id, &path.id, &reason, &context)
            .await?,
    ))
}

/// The workspace's OAuth connections
///
/// Each is a member's remembered consent to a client, with its live tokens and last use.
#[utoipa::path(get, path = "/v1/oauth/connections", operation_id = "listOAuthConnections", tag = "oauth",
    params(ListConnections),
    responses((status = 200, description = "The connections (one page: every one)", body = Page<Connection>)))]
pub(super) async fn list_connections(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListConnections>,
) -> Result<axum::Json<Page<Connection>>, ApiError> {
    let items = app
        .store()
        .list_connections(
            &who.workspace_id,
            query.member_id.as_deref(),
            query.client_id.as_deref(),
            query.include_revoked,
        )
        .await?;
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Revoke an OAuth connection
///
/// Its access and refresh tokens stop working at once. Audited as
/// `oauth.connection_revoked`. Idempotent.
#[utoipa::path(post, path = "/v1/oauth/connections/{id}/revoke", operation_id = "revokeOAuthConnection", tag = "oauth",
    params(ConnectionPath),
    responses((status = 200, description = "The connection, revoked", body = Connection)))]
pub(super) async fn revoke_connection(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<ConnectionPath>,
) -> Result<axum::Json<Connection>, ApiError> {
    Ok(axum::Json(
        app.store()
            .revoke_connection(&who.workspace_id, &path.id, None, &context)
            .await?,
    ))
}
