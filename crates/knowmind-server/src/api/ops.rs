//! Operations: health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use knowmind_axum::ApiError;
use sqlx::Executor;

use super::AppState;

/// How the server is.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    status: &'static str,
}

/// Liveness
///
/// The process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub(super) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness
///
/// The database answers.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "Ready to serve", body = Health)))]
pub(super) async fn readyz(State(app): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    match app.store().db().pool().execute("SELECT 1").await {
        Ok(_) => Ok(axum::Json(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_READY",
                "the database does not answer",
            ))
        }
    }
}

/// Metrics
///
/// Prometheus metrics in the OpenMetrics text format. No token ids in labels.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "The metrics",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// This API's OpenAPI document
///
/// OpenAPI 3.1, generated from the server's own route table and types.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The document", body = Object)))]
pub(super) async fn openapi() -> Response {
    match super::document().to_json() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            ApiError::internal().into_response()
        }
    }
}
