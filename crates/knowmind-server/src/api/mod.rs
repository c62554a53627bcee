//! The HTTP API. [`routes`] is the single list of what the server serves and what each route
//! requires; the router, `/openapi.json` and the scope-enforcement tests are all built from it.

mod audit_log;
mod introspection;
mod notes;
mod ops;
mod rotation;
mod tokens;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use audit::{Actor, Context};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use token_core::Scope;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

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
}

impl AppState {
    fn store(&self) -> &token_store::Store {
        &self.store
    }
}

/// One route: method, path template, what it requires, and a one-line summary.
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, e.g. `/v1/tokens/{id}`.
    pub path: &'static str,
    /// What the presented token must grant.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
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

fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        summary,
        handler,
    }
}

/// Every route the server serves.
pub fn routes() -> Vec<RouteSpec> {
    use Method as M;
    vec![
        spec(
            M::POST,
            "/v1/tokens",
            ADMIN,
            "Issue a token; the plaintext is in this response only",
            || post(tokens::create),
        ),
        spec(
            M::GET,
            "/v1/tokens",
            ADMIN,
            "List tokens (filters, cursor paging)",
            || get(tokens::list),
        ),
        spec(
            M::POST,
            "/v1/tokens/verify",
            INTROSPECT,
            "Verify a token on behalf of a resource server (always 200)",
            || post(introspection::introspect),
        ),
        spec(
            M::GET,
            "/v1/tokens/self",
            Access::AnyToken,
            "The presented token's own record",
            || get(tokens::get_self),
        ),
        spec(
            M::POST,
            "/v1/tokens/self/rotate",
            Access::AnyToken,
            "Rotate the presented token",
            || post(rotation::rotate_self),
        ),
        spec(
            M::DELETE,
            "/v1/tokens/self",
            Access::AnyToken,
            "Revoke the presented token",
            || delete(rotation::revoke_self),
        ),
        spec(M::GET, "/v1/tokens/{id}", ADMIN, "A token's record", || {
            get(tokens::get_one)
        }),
        spec(
            M::PATCH,
            "/v1/tokens/{id}",
            ADMIN,
            "Rename a token or change its description",
            || patch(tokens::update),
        ),
        spec(
            M::DELETE,
            "/v1/tokens/{id}",
            ADMIN,
            "Revoke a token",
            || delete(rotation::revoke),
        ),
        spec(
            M::POST,
            "/v1/tokens/{id}/rotate",
            ADMIN,
            "Rotate a token (optional grace period)",
            || post(rotation::rotate),
        ),
        spec(
            M::GET,
            "/v1/tokens/{id}/usage",
            Access::AnyToken,
            "Where and how a token was used (admin, or the token itself)",
            || get(tokens::usage),
        ),
        spec(
            M::GET,
            "/v1/workspace/policy",
            ADMIN,
            "The workspace's policy (reuse detection)",
            || get(workspace::policy),
        ),
        spec(
            M::PUT,
            "/v1/workspace/policy",
            ADMIN,
            "Replace the workspace's policy (audited)",
            || put(workspace::set_policy),
        ),
        spec(
            M::GET,
            "/v1/audit/events",
            ADMIN,
            "Audit events (filters, cursor paging)",
            || get(audit_log::events),
        ),
        spec(
            M::GET,
            "/v1/audit/events/export",
            ADMIN,
            "All matching audit events as JSON Lines, streamed",
            || get(audit_log::export),
        ),
        spec(
            M::GET,
            "/v1/audit/verify",
            ADMIN,
            "Verify this workspace's audit events (bounded; page with `after`)",
            || get(audit_log::verify),
        ),
        spec(M::GET, "/v1/notes", READ, "List notes", || get(notes::list)),
        spec(M::GET, "/v1/notes/{id}", READ, "A note", || {
            get(notes::get_one)
        }),
        spec(M::POST, "/v1/notes", WRITE, "Create a note", || {
            post(notes::create)
        }),
        spec(M::PUT, "/v1/notes/{id}", WRITE, "Replace a note", || {
            put(notes::replace)
        }),
        spec(M::DELETE, "/v1/notes/{id}", WRITE, "Delete a note", || {
            delete(notes::remove)
        }),
        spec(M::GET, "/healthz", Access::Public, "Liveness", || {
            get(ops::healthz)
        }),
        spec(
            M::GET,
            "/readyz",
            Access::Public,
            "Readiness (the database answers)",
            || get(ops::readyz),
        ),
        spec(
            M::GET,
            "/metrics",
            Access::Public,
            "Prometheus metrics",
            || get(ops::metrics),
        ),
        spec(
            M::GET,
            "/openapi.json",
            Access::Public,
            "This API's OpenAPI document",
            || get(ops::openapi),
        ),
    ]
}

/// The whole API, with limits, timeouts, request ids, logging and metrics.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let guarded =
            (route.handler)().route_layer(RequireScope::access(state.guard.clone(), route.access));
        router = router.route(route.path, guarded);
    }
    let metrics = state.metrics.clone();
    router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::observe::observe,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

#[derive(Clone, Copy, Debug)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = token_core::random_id(&mut token_core::rand::rngs::SysRng, "req_").ok()?;
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The audit context of an authenticated request: the token, the client address, the user agent
/// and the request id.
struct Caller(Context);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let peer = knowmind_axum::peer_ip(parts).await;
        let text = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Caller(Context {
            actor: Actor::Token(principal.token_id),
            client_ip: state.guard.client_ip(&parts.headers, peer),
            user_agent: text(header::USER_AGENT),
            request_id: text(header::HeaderName::from_static("x-request-id")),
        }))
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

/// Parses an optional JSON body: empty means the default.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(e.to_string()),
        _ => ApiError::bad_request(format!("malformed JSON: {e}")),
    })
}

/// An RFC 3339 time from a query parameter.
fn parse_time(field: &str, text: &str) -> Result<time::OffsetDateTime, ApiError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
        |_| {
            ApiError::bad_request(format!(
                "{field} must be an RFC 3339 time, like 2026-11-27T12:00:00Z"
            ))
        },
    )
}
