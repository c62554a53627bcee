//! The HTTP API. [`routes()`] is the single list of what the server serves and what each route
//! requires; the router, `/openapi.json` ([`document`]) and the scope-enforcement tests are all
//! built from it.

pub(crate) mod audit_log;
mod incidents;
mod introspection;
mod leaks;
mod notes;
mod oauth;
mod openapi;
mod ops;
mod rotation;
mod tokens;
mod webhooks;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use audit::{Actor, Context};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use token_core::Scope;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::metrics::Metrics;
use crate::notes::Notes;
use knowmind_axum::ApiError;
use knowmind_axum::{Access, Authenticated, Guard, RequireScope};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The token store.
    pub store: token_store::Store,
    /// Authentication.
    pub guard: Guard,
    /// Notes storage.
    pub notes: Notes,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The dashboard's address as people reach it, for the links it shows (enrolment links);
    /// without it, the address the browser used (`https` unless it is localhost).
    /// (`Arc`: the state is cloned for every request.)
    pub public_url: Option<Arc<str>>,
    /// The keys GitHub's secret-scanning alerts are signed with; none: the route is off.
    pub github_keys: Option<Arc<crate::secret_scanning::GithubKeys>>,
}

impl AppState {
    fn store(&self) -> &token_store::Store {
        &self.store
    }

    /// The server's address as people and clients reach it: `--public-url`, or else the
    /// origin the request addressed (`http` only for a loopback host). Links the dashboard
    /// shows and the OAuth issuer are built from it.
    pub(crate) fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        base_url(self.public_url.as_deref(), headers.get(header::HOST))
    }
}

/// The server's address: `public_url`, or else the origin `host` names (`http` only for a
/// loopback host; a host with characters no host name has counts as `localhost`).
pub(crate) fn base_url(public_url: Option<&str>, host: Option<&HeaderValue>) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let local =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    format!("{}://{host}", if local { "http" } else { "https" })
}

/// One route: method, path, what the presented token must grant, the handler, and its part of the
/// OpenAPI document. Method and path come from the handler's `#[utoipa::path]`, so the router and
/// the document are built from one description.
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, e.g. `/v1/tokens/{id}`.
    pub path: String,
    /// What the presented token must grant.
    pub access: Access,
    /// Error statuses this operation can answer, with their `code`s, beyond those its access,
    /// body, query and path parameters imply (see `openapi::errors`).
    errors: &'static [(u16, &'static [&'static str])],
    operation: utoipa::openapi::path::Operation,
    schemas: Vec<(String, RefOr<Schema>)>,
    handler: MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

const ADMIN: Access = Access::Scope(Scope::Admin);
const READ: Access = Access::Scope(Scope::Read);
const WRITE: Access = Access::Scope(Scope::Write);
const INTROSPECT: Access = Access::Scope(Scope::Introspect);

/// A route from what `utoipa_axum::routes!` made of one handler.
#[allow(
    clippy::expect_used,
    reason = "a handler without exactly one `#[utoipa::path]` operation is a programming error \
              that every test of the router finds"
)]
fn route(
    access: Access,
    errors: &'static [(u16, &'static [&'static str])],
    (schemas, paths, handler): UtoipaMethodRouter<AppState>,
) -> RouteSpec {
    let (path, item) = paths
        .paths
        .into_iter()
        .next()
        .expect("routes! describes one path");
    let (method, operation) = [
        (Method::GET, item.get),
        (Method::POST, item.post),
        (Method::PUT, item.put),
        (Method::PATCH, item.patch),
        (Method::DELETE, item.delete),
    ]
    .into_iter()
    .find_map(|(method, operation)| Some((method, operation?)))
    .expect("routes! describes one operation");
    RouteSpec {
        method,
        path,
        access,
        errors,
        operation,
        schemas,
        handler,
    }
}

const NONE: &[(u16, &[&str])] = &[];
const NOT_FOUND: (u16, &[&str]) = (404, &["NOT_FOUND"]);
const CONFLICT: (u16, &[&str]) = (409, &["CONFLICT", "TOKEN_NOT_ACTIVE"]);

/// Every route the server serves.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(
            ADMIN,
            &[
                NOT_FOUND,
                CONFLICT,
                (422, &["INVALID_INPUT", "POLICY_VIOLATION"]),
            ],
            routes!(tokens::create),
        ),
        route(ADMIN, NONE, routes!(tokens::list)),
        route(INTROSPECT, NONE, routes!(introspection::introspect)),
        route(Access::AnyToken, NONE, routes!(tokens::get_self)),
        route(
            Access::AnyToken,
            &[
                CONFLICT,
                (
                    422,
                    &["INVALID_INPUT", "LIFETIME_EXCEEDED", "POLICY_VIOLATION"],
                ),
            ],
            routes!(rotation::rotate_self),
        ),
        route(Access::AnyToken, NONE, routes!(rotation::revoke_self)),
        route(ADMIN, NONE, routes!(tokens::get_one)),
        route(ADMIN, &[CONFLICT], routes!(tokens::update)),
        route(ADMIN, NONE, routes!(rotation::revoke)),
        route(
            ADMIN,
            &[
                CONFLICT,
                (
                    422,
                    &["INVALID_INPUT", "LIFETIME_EXCEEDED", "POLICY_VIOLATION"],
                ),
            ],
            routes!(rotation::rotate),
        ),
        route(
            Access::AnyToken,
            &[(403, &["INSUFFICIENT_SCOPE"])],
            routes!(tokens::usage),
        ),
        route(ADMIN, &[NOT_FOUND], routes!(tokens::anomalies)),
        route(ADMIN, NONE, routes!(tokens::workspace_anomalies)),
        route(ADMIN, NONE, routes!(workspace::policy)),
        route(
            ADMIN,
            &[(409, &["CONFLICT"])],
            routes!(workspace::set_policy),
        ),
        route(ADMIN, NONE, routes!(workspace::check_policy)),
        route(ADMIN, &[NOT_FOUND], routes!(incidents::open)),
        route(ADMIN, NONE, routes!(incidents::list)),
        route(ADMIN, &[NOT_FOUND], routes!(incidents::report)),
        route(ADMIN, &[NOT_FOUND], routes!(incidents::amend)),
        route(ADMIN, NONE, routes!(webhooks::list)),
        route(ADMIN, &[(409, &["CONFLICT"])], routes!(webhooks::create)),
        route(ADMIN, &[NOT_FOUND], routes!(webhooks::remove)),
        route(ADMIN, &[NOT_FOUND], routes!(webhooks::deliveries)),
        route(ADMIN, NONE, routes!(workspace::apply_policy)),
        route(ADMIN, NONE, routes!(oauth::list_clients)),
        route(ADMIN, NONE, routes!(oauth::register)),
        route(ADMIN, &[NOT_FOUND], routes!(oauth::get_client)),
        route(ADMIN, &[NOT_FOUND], routes!(oauth::remove_client)),
        route(ADMIN, NONE, routes!(oauth::list_connections)),
        route(ADMIN, &[NOT_FOUND], routes!(oauth::revoke_connection)),
        route(ADMIN, NONE, routes!(audit_log::events)),
        route(ADMIN, NONE, routes!(audit_log::export)),
        route(ADMIN, NONE, routes!(audit_log::verify)),
        route(READ, NONE, routes!(notes::list)),
        route(READ, NONE, routes!(notes::get_one)),
        route(WRITE, NONE, routes!(notes::create)),
        route(WRITE, NONE, routes!(notes::replace)),
        route(WRITE, NONE, routes!(notes::remove)),
        route(
            Access::Public,
            &[(429, &["RATE_LIMITED"])],
            routes!(leaks::revoke_credentials),
        ),
        route(
            Access::Public,
            &[(400, &["BAD_REQUEST"]), (401, &["UNAUTHORIZED"])],
            routes!(leaks::github),
        ),
        route(Access::Public, NONE, routes!(ops::healthz)),
        route(
            Access::Public,
            &[(503, &["NOT_READY"])],
            routes!(ops::readyz),
        ),
        route(Access::Public, NONE, routes!(ops::metrics)),
        route(Access::Public, NONE, routes!(ops::openapi)),
    ]
}

pub use openapi::document;

/// The whole API, with limits, timeouts, request ids, logging and metrics.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let mut router = Router::new();
    for route in routes() {
        // Public routes need no layer (it would pass them through): each layer costs every
        // request on the route boxed clones.
        let handler = if route.access == Access::Public {
            route.handler
        } else {
            route
                .handler
                .route_layer(RequireScope::access(state.guard.clone(), route.access))
        };
        router = router.route(&route.path, handler);
    }
    let edge = Arc::new(crate::observe::Edge {
        metrics: state.metrics.clone(),
        timeout: request_timeout,
        public_url: state.public_url.clone(),
        ids: crate::observe::RequestIds::new(),
    });
    router
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/dashboard/") }),
        )
        .nest("/dashboard", crate::web::router())
        .merge(crate::oauth::router())
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        // Everything cross-cutting is this one middleware (see `observe`).
        .layer(axum::middleware::from_fn_with_state(
            edge,
            crate::observe::observe,
        ))
        .with_state(state)
}

/// The audit context of an authenticated request: the token, the client address, the user agent
/// and the request id.
struct Caller(Context);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Caller(context_of(
            parts,
            state,
            Actor::Token(principal.token_id),
        )))
    }
}

/// The audit context of a request on a public route: knowmind acting on what someone sent,
/// with their address.
struct Anonymous(Context);

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Anonymous(context_of(parts, state, Actor::System)))
    }
}

fn context_of(parts: &Parts, state: &AppState, actor: Actor) -> Context {
    let peer = knowmind_axum::peer_ip(&parts.extensions);
    let text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Context {
        actor,
        client_ip: state.guard.client_ip(&parts.headers, peer),
        user_agent: text(header::USER_AGENT),
        request_id: text(header::HeaderName::from_static("x-request-id")),
    }
}

/// A JSON response with `Cache-Control: no-store`: for responses that carry a plaintext token.
fn no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An RFC 3339 time from a query parameter.
fn parse_time(field: &str, text: &str) -> Result<time::OffsetDateTime, ApiError> {
    rfc3339(field, text).map_err(ApiError::bad_request)
}

/// An RFC 3339 time, or an error naming `field`.
pub(crate) fn rfc3339(field: &str, text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{field} must be an RFC 3339 time, like 2026-11-27T12:00:00Z"))
}
