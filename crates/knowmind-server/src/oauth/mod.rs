//! The OAuth 2.1 authorization server's protocol endpoints: `/oauth/authorize` (which hands over
//! to the dashboard's consent page), `/oauth/token`, `/oauth/revoke` (RFC 7009),
//! `/oauth/introspect` (RFC 7662), `/oauth/register` (RFC 7591) and the discovery documents
//! (RFC 8414, RFC 9728). Errors here are RFC 6749 §5.2 JSON (`error`, `error_description`), not
//! problem documents, because that is what OAuth clients read.

mod discovery;
mod introspect;
mod register;
mod token;

use audit::{Actor, Context};
use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64ct::Encoding;
use secrecy::SecretString;
use serde_json::json;
use token_core::{Scope, Scopes};
use token_store::ClientCredentials;

use crate::api::AppState;

use self::discovery::{metadata, resource_metadata};
use self::introspect::introspect;
use self::register::register;
use self::token::{revoke, token};

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

fn scope_text(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}
