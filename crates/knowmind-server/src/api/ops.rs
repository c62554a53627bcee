//! Operations: health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sqlx::Executor;

use super::{AppState, routes};
use knowmind_axum::Access;

pub(super) async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    match app.store().db().pool().execute("SELECT 1").await {
        Ok(_) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "database unreachable" })),
            )
                .into_response()
        }
    }
}

pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

pub(super) async fn openapi() -> axum::Json<Value> {
    axum::Json(document())
}

/// The OpenAPI 3.1 document, generated from the route table: paths, methods, path parameters,
/// the scope each operation needs, and the error responses every operation shares.
pub(super) fn document() -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let (security, scope) = match route.access {
            Access::Public => (json!([]), Value::Null),
            Access::AnyToken => (json!([{ "bearer": [] }]), json!("any")),
            Access::Scope(scope) => (
                json!([{ "bearer": [scope.as_str()] }]),
                json!(scope.as_str()),
            ),
        };
        let mut responses = json!({ "200": { "description": "success" } });
        if route.access != Access::Public {
            for (code, text) in [
                (
                    "401",
                    "missing or unusable token (same body whatever the reason)",
                ),
                (
                    "403",
                    "the token lacks the required scope (named in the body)",
                ),
                (
                    "429",
                    "too many failed authentications from this address (Retry-After)",
                ),
                ("503", "verification capacity exhausted (Retry-After)"),
            ] {
                responses[code] = json!({ "description": text, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
            }
        }
        let operation = json!({
            "summary": route.summary,
            "parameters": parameters,
            "security": security,
            "x-knowmind-scope": scope,
            "responses": responses,
        });
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "knowmind", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "a knowmind token, kmt_…" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "code": { "type": "string" }
                    }
                }
            }
        }
    })
}
