//! `/v1/webhooks`: the workspace's webhook endpoints and each one's delivery log, for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::{Delivery, NewWebhook, Page, Webhook};

use super::{AppState, Caller, no_store};
use knowmind_axum::{ApiError, ApiJson, ApiQuery, Authenticated};

/// `{id}` of a webhook route.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct WebhookPath {
    /// The endpoint id (`whk_` and 16 base62 characters).
    id: String,
}

/// `GET /v1/webhooks/{id}/deliveries` options.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListDeliveries {
    /// How many, newest first (1 to 200; default 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// The workspace's webhook endpoints
///
/// Oldest first, each with how many deliveries are pending and how many failed.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    responses((status = 200, description = "The endpoints (one page: every one)", body = Page<Webhook>)))]
pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<Page<Webhook>>, ApiError> {
    Ok(axum::Json(Page {
        items: app.store().list_webhooks(&who.workspace_id).await?,
        next_cursor: None,
    }))
}

/// Register a webhook endpoint
///
/// The signing secret is in this response only (`Cache-Control: no-store`). Events from now on
/// are POSTed to the URL, signed (`Knowmind-Signature`), each with an id for idempotency
/// (`Knowmind-Webhook-Id`), and retried for more than a day. Audited as `webhook.created`.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = NewWebhook,
    responses((status = 201, description = "The endpoint, with its secret", body = knowmind_api::WebhookCreated)))]
pub(super) async fn create(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<Response, ApiError> {
    let created = app
        .store()
        .create_webhook(&who.workspace_id, body, &context)
        .await?;
    Ok(no_store(StatusCode::CREATED, created))
}

/// Remove a webhook endpoint
///
/// Nothing more is delivered to it; pending deliveries are dropped, the log stays. Audited as
/// `webhook.removed`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/remove", operation_id = "removeWebhook", tag = "webhooks",
    params(WebhookPath),
    responses((status = 204, description = "Removed")))]
pub(super) async fn remove(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<WebhookPath>,
) -> Result<StatusCode, ApiError> {
    app.store()
        .remove_webhook(&who.workspace_id, &path.id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery log
///
/// Its deliveries, newest first, each with every attempt: when, the status the endpoint
/// answered or why it did not, and how long it took.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    params(WebhookPath, ListDeliveries),
    responses((status = 200, description = "The deliveries", body = Page<Delivery>)))]
pub(super) async fn deliveries(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<WebhookPath>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<axum::Json<Page<Delivery>>, ApiError> {
    Ok(axum::Json(Page {
        items: app
            .store()
            .webhook_deliveries(&who.workspace_id, &path.id, query.limit.unwrap_or(50))
            .await?,
        next_cursor: None,
    }))
}
