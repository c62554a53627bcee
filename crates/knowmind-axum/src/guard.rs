//! The [`Guard`]: how a presented token is verified (in process, or through a knowmind server),
//! where the client's address comes from, and what a refusal looks like.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use token_core::{Scope, Scopes};
use token_store::{Call, SharedPrincipal, Store};
use tower::Service;

use crate::layer::Authenticated;
use crate::problem::ApiError;
use crate::remote::RemoteVerifier;

/// Response header carrying the token's expiry (RFC 3339), on every authenticated response of a
/// token that expires.
pub const TOKEN_EXPIRATION_HEADER: &str = "knowmind-token-expiration";

/// Response header carrying when the token is due for rotation under its workspace's policy
/// (RFC 3339), on every authenticated response of a token that will be due (not yet rotated;
/// OAuth access tokens, which live an hour, have none).
pub const TOKEN_ROTATION_DUE_HEADER: &str = "knowmind-token-rotation-due";

/// What a route asks of the presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health checks, metrics, the OpenAPI document).
    Public,
    /// Any valid token (routes acting on the token itself).
    AnyToken,
    /// A valid token with this scope.
    Scope(Scope),
}

impl Access {
    fn required(self) -> Scopes {
        match self {
            Access::Scope(scope) => scope.into(),
            Access::Public | Access::AnyToken => Scopes::EMPTY,
        }
    }
}

/// Everything authentication needs, shared by every protected route. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    verifier: Verifier,
    trusted_proxy_header: Option<HeaderName>,
    observer: Option<Arc<dyn RefusalObserver>>,
}

impl std::fmt::Debug for GuardInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("verifier", &self.verifier)
            .field("trusted_proxy_header", &self.trusted_proxy_header)
            .finish_non_exhaustive()
    }
}

/// Told of every refusal, by kind — `unauthorized`, `insufficient_scope`, `rate_limited`, `busy`
/// or `error` — for metrics. (The knowmind server counts them in Prometheus; this crate does not
/// depend on any metrics library.)
pub trait RefusalObserver: Send + Sync + 'static {
    /// One refusal of kind `kind`.
    fn refused(&self, kind: &'static str);
}

/// Where tokens are verified.
#[derive(Debug)]
enum Verifier {
    /// In process, on the knowmind database (usage is recorded with the response status).
    Local(Store),
    /// Through a knowmind server's `/v1/tokens/verify` (usage is recorded there).
    Remote(RemoteVerifier),
    /// In process without usage records: the load test's "authentication only" variant, so that
    /// it differs from the shipped layer by the record alone (feature `bench-internals`).
    #[cfg(feature = "bench-internals")]
    Unrecorded(Store),
}

impl Guard {
    /// A guard verifying in process against `store` (whose options set the failure limits): the
    /// client address is the peer address.
    pub fn new(store: Store) -> Self {
        Guard::with_options(store, None, None)
    }

    /// A guard verifying through a knowmind server, for services without access to its database.
    pub fn remote(verifier: RemoteVerifier) -> Self {
        Guard::build(Verifier::Remote(verifier), None, None)
    }

    /// A local guard with the header a trusted reverse proxy puts the client address in (its
    /// rightmost entry is used), and an observer of refusals (for metrics).
    pub fn with_options(
        store: Store,
        trusted_proxy_header: Option<HeaderName>,
        observer: Option<Arc<dyn RefusalObserver>>,
    ) -> Self {
        Guard::build(Verifier::Local(store), trusted_proxy_header, observer)
    }

    /// A local guard that records no usage: for the load test only (feature `bench-internals`).
    #[cfg(feature = "bench-internals")]
    pub fn unrecorded_for_benchmarks(store: Store) -> Self {
        Guard::build(Verifier::Unrecorded(store), None, None)
    }

    fn build(
        verifier: Verifier,
        trusted_proxy_header: Option<HeaderName>,
        observer: Option<Arc<dyn RefusalObserver>>,
    ) -> Self {
        Guard {
            inner: Arc::new(GuardInner {
                verifier,
                trusted_proxy_header,
                observer,
            }),
        }
    }

    /// The client address of a request: the peer, or — when a trusted proxy header is
    /// configured and present — the rightmost entry of its last occurrence, which is what our
    /// own proxy appended (entries to its left came from the client and prove nothing). If that
    /// entry does not parse (`ip`, `ip:port` or `[v6]:port`), the peer address.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let Some(name) = &self.inner.trusted_proxy_header else {
            return peer;
        };
        let Some(last) = headers.get_all(name).iter().next_back() else {
            return peer;
        };
        last.to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|entry| forwarded_address(entry.trim()))
            .or(peer)
    }

    /// Authenticates `req` for `access`, runs `inner` with [`Authenticated`] in the request's
    /// extensions, and records the call with the response status.
    pub(crate) async fn authenticate<S>(
        self,
        access: Access,
        req: Request,
        mut inner: S,
    ) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        if access == Access::Public {
            return match inner.call(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let peer = peer_ip(req.extensions());
        let client_ip = self.client_ip(req.headers(), peer);
        // A missing or garbled header costs nothing: refused, not counted against the address.
        let Some(presented) = bearer(req.headers()) else {
            self.fail(client_ip, "missing_or_malformed_header");
            return ApiError::unauthorized().into_response();
        };
        let store = match &self.inner.verifier {
            Verifier::Local(store) => store,
            Verifier::Remote(remote) => {
                // Boxed: an HTTP client's future is large, and would otherwise be part of every
                // request's future, local or remote.
                let call = call_of(&req, client_ip);
                return match Box::pin(remote.verify(presented, access.required(), &call)).await {
                    Ok(principal) => serve(principal.into(), req, inner).await,
                    Err(e) => {
                        if e.status == axum::http::StatusCode::UNAUTHORIZED {
                            self.fail(client_ip, "remote_refusal");
                        } else if e.status == axum::http::StatusCode::TOO_MANY_REQUESTS {
                            self.count("rate_limited");
                        }
                        e.into_response()
                    }
                };
            }
            // The load test's "authentication only": no record, so no call to describe either.
            #[cfg(feature = "bench-internals")]
            Verifier::Unrecorded(store) => {
                return match store.verify_unrecorded(presented, access.required()).await {
                    Ok(principal) => serve(principal, req, inner).await,
                    Err(e) => self.refuse(e, client_ip),
                };
            }
        };
        let call = call_of(&req, client_ip);
        let verified = match store.verify(presented, access.required(), &call).await {
            Ok(verified) => verified,
            Err(e) => return self.refuse(e, client_ip),
        };
        let response = serve(verified.shared_principal(), req, inner).await;
        verified.finish(response.status().as_u16());
        response
    }

    /// The response to a failed local verification, counted (and limited when unauthorized).
    fn refuse(&self, e: token_store::Error, client_ip: Option<IpAddr>) -> Response {
        match e {
            token_store::Error::Unauthorized(refusal) => {
                self.fail(client_ip, refusal.code());
                ApiError::unauthorized().into_response()
            }
            e => {
                self.count(match &e {
                    token_store::Error::Forbidden { .. } => "insufficient_scope",
                    token_store::Error::Busy => "busy",
                    token_store::Error::RateLimited { .. } => "rate_limited",
                    _ => "error",
                });
                ApiError::from(e).into_response()
            }
        }
    }

    fn fail(&self, client_ip: Option<IpAddr>, reason: &str) {
        tracing::info!(reason, client_ip = ?client_ip, "authentication failed");
        self.count("unauthorized");
    }

    fn count(&self, outcome: &'static str) {
        if let Some(observer) = &self.inner.observer {
            observer.refused(outcome);
        }
    }
}

/// What the usage record says of a request: address, method, route template, user agent and
/// request id.
fn call_of(req: &Request, client_ip: Option<IpAddr>) -> Call {
    Call {
        client_ip,
        method: method_name(req.method()),
        route: req
            .extensions()
            .get::<MatchedPath>()
            .map_or(Cow::Borrowed("?"), |p| Cow::Owned(p.as_str().to_owned())),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        workspace: None,
        reported_by: None,
    }
}

/// Runs `inner` with the principal in the request's extensions, and adds the token's expiry and
/// rotation date to the response.
async fn serve<S>(principal: SharedPrincipal, mut req: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let expires_at = principal.expires_at;
    let rotation_due_at = principal.rotation_due_at;
    req.extensions_mut().insert(Authenticated(principal));
    let mut response = match inner.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    for (name, at) in [
        (TOKEN_EXPIRATION_HEADER, expires_at),
        (TOKEN_ROTATION_DUE_HEADER, rotation_due_at),
    ] {
        if let Some(value) = at
            .and_then(|at| at.format(&Rfc3339).ok())
            .and_then(|text| HeaderValue::from_str(&text).ok())
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The peer's address, when the server was started with connection info (or a test mocks it
/// with `MockConnectInfo`), from a request's extensions.
pub fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// An address as a proxy writes it: `ip`, `ip:port` or `[v6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The token of `Authorization: Bearer <token>`: exactly one header, the `Bearer` scheme (any
/// case), printable ASCII. `None` for anything else.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None; // two Authorization headers: ambiguous, refuse
    }
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

fn method_name(method: &Method) -> Cow<'static, str> {
    match *method {
        Method::GET => Cow::Borrowed("GET"),
        Method::POST => Cow::Borrowed("POST"),
        Method::PUT => Cow::Borrowed("PUT"),
        Method::PATCH => Cow::Borrowed("PATCH"),
        Method::DELETE => Cow::Borrowed("DELETE"),
        ref other => Cow::Owned(other.as_str().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn guard_with_proxy_header() -> Guard {
        Guard::build(
            Verifier::Remote(
                RemoteVerifier::new(
                    "http://127.0.0.1:9",
                    secrecy::SecretString::from("x".to_owned()),
                    std::time::Duration::ZERO,
                )
                .unwrap(),
            ),
            Some(HeaderName::from_static("x-forwarded-for")),
            None,
        )
    }

    #[test]
    fn the_client_address_is_the_rightmost_forwarded_entry_or_the_peer() {
        let guard = guard_with_proxy_header();
        let peer: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let with = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            guard.client_ip(&map, peer).map(|ip| ip.to_string())
        };
        assert_eq!(with(&["198.51.100.7"]).as_deref(), Some("198.51.100.7"));
        assert_eq!(
            with(&["1.1.1.1, 198.51.100.7"]).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(with(&["203.0.113.9:41234"]).as_deref(), Some("203.0.113.9"));
        assert_eq!(with(&["[2001:db8::1]:443"]).as_deref(), Some("2001:db8::1"));
        // The spoof from the review: a parsable entry to the left of one that does not parse
        // must not be picked; the peer is used instead.
        assert_eq!(
            with(&["10.0.1.5, 203.0.113.9:41234"]).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            with(&["198.51.100.7, garbage"]).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            with(&["198.51.100.7", "unknown"]).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(with(&[]).as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer(&headers(&["Bearer kmt_x"])), Some("kmt_x"));
        assert_eq!(bearer(&headers(&["bearer   kmt_x "])), Some("kmt_x"));
        assert_eq!(bearer(&headers(&["BEARER kmt_x"])), Some("kmt_x"));
        for bad in [
            &[][..],
            &["Basic a2s6"],
            &["Bearer"],
            &["Bearer "],
            &["kmt_x"],
            &["Bearer a", "Bearer b"],
        ] {
            assert_eq!(bearer(&headers(bad)), None, "{bad:?}");
        }
        let mut binary = HeaderMap::new();
        binary.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(bearer(&binary), None);
    }
}
