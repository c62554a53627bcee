//! The OAuth 2.1 authorization server's protocol endpoints: `/oauth/authorize` (which hands over
//! to the dashboard's consent page), `/oauth/token`, `/oauth/revoke` (RFC 7009),
//! `/oauth/introspect` (RFC 7662), `/oauth/register` (RFC 7591) and the discovery documents
//! (RFC 8414, RFC 9728). Errors here are RFC 6749 §5.2 JSON (`error`, `error_description`), not
//! problem documents, because that is what OAuth clients read.

use std::borrow::Cow;

use audit::{Actor, Context};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64ct::Encoding;
use knowmind_api::RegisterClient;
use secrecy::SecretString;
use serde_json::json;
use token_core::{Scope, Scopes, Token, TokenKind};
use token_store::{Call, ClientCredentials, IssuedTokens, requested_scopes};

use crate::api::AppState;

/// The protocol routes, merged into the server's router at the root.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/register", post(register))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
}

/// An RFC 6749 §5.2 error response.
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate` for a client that authenticated with HTTP Basic (§5.2).
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }
}

impl From<token_store::Error> for OAuthError {
    fn from(e: token_store::Error) -> Self {
        use token_store::Error as E;
        match e {
            E::OAuth { error, description } => OAuthError::new(error, description),
            E::RateLimited { .. } => OAuthError {
                status: StatusCode::TOO_MANY_REQUESTS,
                ..OAuthError::new(
                    "temporarily_unavailable",
                    "too many requests from this address; wait",
                )
            },
            E::Busy => OAuthError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..OAuthError::new("temporarily_unavailable", "the server is busy; try again")
            },
            E::Invalid { .. } | E::NotFound { .. } => {
                OAuthError::new("invalid_request", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "oauth: storage failure");
                OAuthError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..OAuthError::new("server_error", "internal error; it has been logged")
                }
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"knowmind\""),
            );
        }
        response
    }
}

/// The largest form body the OAuth endpoints read.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The most parameters an OAuth form may carry (the token request needs seven).
const MAX_PARAMS: usize = 32;

/// A form body (`application/x-www-form-urlencoded`), each parameter at most once (RFC 6749
/// §3.2: a repeated parameter is an error, not a choice).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !form {
            return Err(OAuthError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        if body.len() > MAX_FORM_BYTES {
            return Err(OAuthError::new(
                "invalid_request",
                "the body is larger than an OAuth request needs (16 KiB)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(body) {
            if params.len() == MAX_PARAMS {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("more than {MAX_PARAMS} parameters"),
                ));
            }
            if !seen.insert(key.clone()) {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("the parameter {key:?} appears more than once"),
                ));
            }
            params.push((key.into_owned(), value.into_owned()));
        }
        Ok(Params(params))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn require(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key).ok_or_else(|| {
            OAuthError::new(
                "invalid_request",
                format!("the {key} parameter is required"),
            )
        })
    }
}

/// The client's credentials: HTTP Basic (`client_secret_basic`), or `client_id` and
/// `client_secret` in the form (`client_secret_post`), or `client_id` alone (a public client).
/// Using two methods at once is an error (RFC 6749 §2.3).
fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<(ClientCredentials, bool), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    if let Some((_, encoded)) = basic {
        if params.get("client_secret").is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not two",
            ));
        }
        let decoded = base64ct::Base64::decode_vec(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(OAuthError {
                basic_challenge: true,
                ..OAuthError::new("invalid_client", "malformed HTTP Basic credentials")
            });
        };
        // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let client_id = unescape(id);
        if params
            .get("client_id")
            .is_some_and(|form| form != client_id)
        {
            return Err(OAuthError::new(
                "invalid_request",
                "client_id in the form differs from the one in the Authorization header",
            ));
        }
        return Ok((
            ClientCredentials {
                client_id,
                secret: Some(SecretString::from(unescape(secret))),
            },
            true,
        ));
    }
    let client_id = params.require("client_id")?.to_owned();
    Ok((
        ClientCredentials {
            client_id,
            secret: params
                .get("client_secret")
                .map(|s| SecretString::from(s.to_owned())),
        },
        false,
    ))
}

/// The audit context of a request made by a client.
fn client_context(
    app: &AppState,
    parts_headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    client_id: &str,
) -> Context {
    let text = |name: &str| {
        parts_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Context {
        actor: Actor::Client(client_id.to_owned()),
        client_ip: app.guard.client_ip(parts_headers, peer),
        user_agent: text("user-agent"),
        request_id: text("x-request-id"),
    }
}

/// A request a client makes: its form, its credentials (and whether they came as HTTP Basic),
/// and the audit context that names it.
struct ClientRequest {
    params: Params,
    credentials: ClientCredentials,
    basic: bool,
    context: Context,
}

impl ClientRequest {
    fn read(app: &AppState, parts: &Parts, body: &Bytes) -> Result<Self, OAuthError> {
        let params = Params::parse(&parts.headers, body)?;
        let (credentials, basic) = client_credentials(&parts.headers, &params)?;
        let context = client_context(
            app,
            &parts.headers,
            knowmind_axum::peer_ip(&parts.extensions),
            &credentials.client_id,
        );
        Ok(ClientRequest {
            params,
            credentials,
            basic,
            context,
        })
    }

    /// The store's refusal, with the Basic challenge for a client that authenticated so.
    fn refused(&self, e: token_store::Error) -> OAuthError {
        let mut error = OAuthError::from(e);
        error.basic_challenge = self.basic && error.error == "invalid_client";
        error
    }
}

/// `GET /oauth/authorize`: the consent page is part of the dashboard (it needs the member's
/// session, its CSRF protection and its headers), so the request goes there unchanged.
async fn authorize(RawQuery(query): RawQuery) -> Redirect {
    Redirect::to(&format!(
        "/dashboard/oauth/authorize?{}",
        query.unwrap_or_default()
    ))
}

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
async fn token(
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
async fn revoke(
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

/// `POST /oauth/introspect` (RFC 7662), for resource servers: authenticated with an
/// `introspect` token (`Authorization: Bearer`, any token of the workspace can be asked about)
/// or as a confidential client (only its own tokens). An unknown, expired, revoked or
/// out-of-reach token is `{"active": false}` and nothing more.
async fn introspect(
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

fn scope_text(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

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
async fn register(
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

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
async fn metadata(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, OAuthError> {
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
async fn resource_metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
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
