//! The discovery documents: authorization server metadata (RFC 8414) and protected
//! resource metadata (RFC 9728).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::OAuthError;
use crate::api::AppState;

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub(super) async fn metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let issuer = app.base_url(&headers);
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["read", "write"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
        "authorization_response_iss_parameter_supported": true,
        "service_documentation": format!("{issuer}/dashboard/"),
    });
    if app.store.oauth_registration_open().await? {
        document["registration_endpoint"] = json!(format!("{issuer}/oauth/register"));
    }
    Ok(uncached(axum::Json(document).into_response()))
}

/// `GET /.well-known/oauth-protected-resource` (RFC 9728): this server's API is a resource
/// protected by its own authorization server.
pub(super) async fn resource_metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let issuer = app.base_url(&headers);
    uncached(
        axum::Json(json!({
            "resource": issuer,
            "authorization_servers": [issuer],
            "scopes_supported": ["read", "write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "knowmind",
        }))
        .into_response(),
    )
}

/// Discovery documents name endpoints from `--public-url` or, without it, the request's `Host`:
/// no shared cache may keep one and hand it to someone else.
fn uncached(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
