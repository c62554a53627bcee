//! `POST /oauth/token` (the authorization code, refresh token and client credentials grants)
//! and `POST /oauth/revoke` (RFC 7009).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use token_core::{Scope, Scopes};
use token_store::{IssuedTokens, requested_scopes};

use super::{ClientRequest, OAuthError, Params};
use crate::api::AppState;

/// The token endpoint's JSON, never cached (RFC 6749 §5.1).
fn token_response(issued: &IssuedTokens) -> Response {
    let mut body = json!({
        "access_token": issued.access.expose_secret(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scopes.iter().map(Scope::as_str).collect::<Vec<_>>().join(" "),
    });
    if let Some(refresh) = &issued.refresh {
        body["refresh_token"] = json!(refresh.expose_secret());
    }
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn optional_scopes(params: &Params) -> Result<Option<Scopes>, OAuthError> {
    params
        .get("scope")
        .map(requested_scopes)
        .transpose()
        .map_err(OAuthError::from)
}

/// `POST /oauth/token`: the authorization code, refresh token and client credentials grants.
pub(super) async fn token(
    State(app): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let request = ClientRequest::read(&app, &parts, &body)?;
    let (params, credentials, context) = (&request.params, &request.credentials, &request.context);
    let store = &app.store;
    let result = match params.require("grant_type")? {
        "authorization_code" => {
            store
                .exchange_code(
                    credentials,
                    params.require("code")?,
                    params.require("redirect_uri")?,
                    params.require("code_verifier")?,
                    context,
                )
                .await
        }
        "refresh_token" => {
            store
                .refresh(
                    credentials,
                    params.require("refresh_token")?,
                    optional_scopes(params)?,
                    context,
                )
                .await
        }
        "client_credentials" => {
            store
                .client_credentials(credentials, optional_scopes(params)?, context)
                .await
        }
        other => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!(
                    "{other:?} is not supported: use authorization_code (with PKCE), \
                     refresh_token or client_credentials"
                ),
            ));
        }
    };
    match result {
        Ok(issued) => Ok(token_response(&issued)),
        Err(e) => Err(request.refused(e)),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub(super) async fn revoke(
    State(app): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let request = ClientRequest::read(&app, &parts, &body)?;
    let (params, credentials, context) = (&request.params, &request.credentials, &request.context);
    let presented = params.require("token")?;
    match app
        .store
        .revoke_presented(credentials, presented, context)
        .await
    {
        Ok(()) => Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()),
        Err(e) => Err(request.refused(e)),
    }
}
