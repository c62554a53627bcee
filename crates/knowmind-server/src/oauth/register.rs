//! `POST /oauth/register`: dynamic client registration (RFC 7591), when a workspace allows it.

use audit::{Actor, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use knowmind_api::RegisterClient;
use serde_json::json;
use token_core::Scope;
use token_store::requested_scopes;

use super::{OAuthError, client_context, scope_text};
use crate::api::AppState;

/// RFC 7591 client metadata, as much of it as knowmind uses; the rest is ignored (§2).
#[derive(serde::Deserialize)]
struct Metadata {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /oauth/register` (RFC 7591): a connector registers itself, when a workspace allows
/// it. It shows up as unverified on the OAuth Clients page.
pub(super) async fn register(
    State(app): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let metadata_error = |d: &str| OAuthError::new("invalid_client_metadata", d);
    let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| {
        metadata_error(&format!(
            "the body must be a JSON object of client metadata: {e}"
        ))
    })?;
    let auth_method = metadata
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    let confidential = match auth_method {
        "none" => false,
        "client_secret_basic" | "client_secret_post" => true,
        other => {
            return Err(metadata_error(&format!(
                "token_endpoint_auth_method {other:?} is not supported: none, \
                 client_secret_basic or client_secret_post"
            )));
        }
    };
    let grant_types = metadata
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(metadata_error(&format!(
            "grant type {bad:?} is not available to self-registered clients"
        )));
    }
    if metadata
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return Err(metadata_error("only the code response type is supported"));
    }
    let scopes = match metadata.scope.as_deref() {
        Some(text) => requested_scopes(text)?,
        None => Scope::Read.into(),
    };
    let name = metadata
        .client_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "Unnamed connector".to_owned());
    let peer = knowmind_axum::peer_ip(&parts.extensions);
    let context = Context {
        actor: Actor::System,
        ..client_context(&app, &parts.headers, peer, "")
    };
    let registered = app
        .store
        .register_dynamic_client(
            RegisterClient {
                name,
                redirect_uris: metadata.redirect_uris.clone(),
                scopes,
                confidential,
                client_credentials: false,
            },
            &context,
        )
        .await
        .map_err(|e| match e {
            token_store::Error::OAuth {
                error: "access_denied",
                description,
            } => OAuthError {
                status: StatusCode::FORBIDDEN,
                ..OAuthError::new("access_denied", description)
            },
            other => OAuthError::from(other),
        })?;
    let client = &registered.client;
    let mut body = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at.unix_timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
        "scope": scope_text(client.scopes),
    });
    if let Some(secret) = &registered.client_secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
