//! `POST /oauth/introspect` (RFC 7662), for resource servers.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use token_core::{Scope, Scopes, Token, TokenKind};
use token_store::Call;

use super::{OAuthError, Params, client_credentials, scope_text};
use crate::api::AppState;

/// `POST /oauth/introspect` (RFC 7662), for resource servers: authenticated with an
/// `introspect` token (`Authorization: Bearer`, any token of the workspace can be asked about)
/// or as a confidential client (only its own tokens). An unknown, expired, revoked or
/// out-of-reach token is `{"active": false}` and nothing more.
pub(super) async fn introspect(
    State(app): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&parts.headers, &body)?;
    let peer = knowmind_axum::peer_ip(&parts.extensions);
    let client_ip = app.guard.client_ip(&parts.headers, peer);
    let call_of = |workspace: String, reported_by| Call {
        client_ip,
        method: Cow::Borrowed("POST"),
        route: Cow::Borrowed("/oauth/introspect"),
        user_agent: None,
        request_id: None,
        workspace: Some(workspace),
        reported_by,
    };
    // Who asks, and what they may ask about: a workspace, and a client to confine it to.
    let (workspace, only_client, reported_by) =
        if let Some(presented) = knowmind_axum::bearer(&parts.headers) {
            let call = Call {
                client_ip,
                method: Cow::Borrowed("POST"),
                route: Cow::Borrowed("/oauth/introspect"),
                ..Call::default()
            };
            let verified = app
                .store
                .verify(presented, Scope::Introspect.into(), &call)
                .await
                .map_err(|_| {
                    OAuthError::new(
                        "invalid_client",
                        "an introspect token or client credentials are required",
                    )
                })?;
            let principal = verified.principal().clone();
            verified.finish(200);
            (principal.workspace_id, None, Some(principal.token_id))
        } else {
            let (credentials, _) = client_credentials(&parts.headers, &params)?;
            if credentials.secret.is_none() {
                return Err(OAuthError::new(
                    "invalid_client",
                    "introspection needs an introspect token or a confidential client",
                ));
            }
            let client = app.store.authenticate_oauth_client(&credentials).await?;
            (client.workspace_id, Some(client.id), None)
        };
    let inactive = || axum::Json(json!({ "active": false })).into_response();
    let presented = params.require("token")?;
    let Ok(parsed) = presented.parse::<Token>() else {
        return Ok(inactive());
    };
    let issuer = app.base_url(&parts.headers);
    let answer = match parsed.kind() {
        TokenKind::OAuthRefresh => {
            let Some(state) = app.store.refresh_token_state(presented).await? else {
                return Ok(inactive());
            };
            if state.workspace_id != workspace
                || only_client.as_ref().is_some_and(|c| *c != state.client_id)
            {
                return Ok(inactive());
            }
            json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": state.client_id,
                "scope": scope_text(state.scopes),
                "sub": state.member_id,
                "exp": state.expires_at.unix_timestamp(),
                "iss": issuer,
            })
        }
        TokenKind::OAuthAccess | TokenKind::Api => {
            let call = call_of(workspace, reported_by);
            let Ok(verified) = app.store.verify(presented, Scopes::default(), &call).await else {
                return Ok(inactive());
            };
            let p = verified.principal().clone();
            if only_client.is_some() && p.oauth_client_id != only_client {
                // Not this client's token: nothing to say, and nothing was used.
                drop(verified);
                return Ok(inactive());
            }
            if !verified.allowed_networks().is_empty() {
                // RFC 7662 has no field for the end client's address, and the address seen here
                // is the resource server's: an allow-listed token cannot be judged, so it is not
                // active here (`/v1/tokens/verify` takes the client's address).
                verified.finish(403);
                return Ok(inactive());
            }
            verified.finish(200);
            let mut answer = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": scope_text(p.scopes),
                "sub": p.owner_id,
                "workspace_id": p.workspace_id,
                "token_id": p.token_id,
                "iss": issuer,
            });
            if let Some(client) = &p.oauth_client_id {
                answer["client_id"] = json!(client);
            }
            if let Some(exp) = p.expires_at {
                answer["exp"] = json!(exp.unix_timestamp());
            }
            answer
        }
        TokenKind::ClientSecret => return Ok(inactive()),
    };
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
