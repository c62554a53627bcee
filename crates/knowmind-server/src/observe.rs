//! Cross-cutting request handling, in one middleware: a request id, a cap on header size, the
//! body limit, the request timeout, a panic turned into a 500, the 401's pointer to the
//! protected-resource metadata, `nosniff`, metrics for every request, and an access-log line for
//! the requests [`AccessLog`] selects. Log lines carry method, route template, status, latency
//! and request id — never headers, so the `Authorization` header cannot reach a log. Lines are
//! written off the request path (see `serve::init_tracing`).
//!
//! One middleware rather than a tower layer each: axum wraps every route in each layer given to
//! the router, and each wrap costs boxed clones on every request. Seven layers cost the
//! production stack a third of its `/healthz` throughput (docs/BENCHMARKS.md).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;

use crate::api::MAX_BODY_BYTES;
use crate::metrics::Metrics;
use knowmind_axum::ApiError;

/// Largest total size of request headers accepted (names and values).
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// What the middleware needs, shared by every request.
#[derive(Debug)]
pub(crate) struct Edge {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    pub(crate) public_url: Option<Arc<str>>,
    pub(crate) ids: RequestIds,
}

/// Request ids: a random prefix per process and a counter (`req_` + 16 base62 characters +
/// the counter in hex). They only need to be unique, not unguessable (they are echoed to the
/// client and logged); one random id per request cost a `getrandom` system call each.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let prefix = token_core::random_id(&mut token_core::rand::rngs::SysRng, "req_")
            .unwrap_or_else(|_| "req_".to_owned());
        RequestIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}{n:x}", self.prefix))
            .unwrap_or(HeaderValue::from_static("req_"))
    }
}

/// Refuses requests with more than [`MAX_HEADER_BYTES`] of headers (431), runs the rest under the
/// body limit, the timeout (408) and a panic guard (500), then names the request, counts and logs.
pub(crate) async fn observe(
    State(edge): State<Arc<Edge>>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    // The client's request id if it sent a reasonable one (a proxy's, say), or a new one;
    // handlers read it from the header for the audit log. A long one is replaced rather than
    // written to every log line.
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) if id.len() <= MAX_REQUEST_ID_BYTES => id.clone(),
        _ => {
            let id = edge.ids.next();
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let host = req.headers().get(header::HOST).cloned();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let mut response = if header_bytes > MAX_HEADER_BYTES {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
        )
        .into_response()
    } else {
        // Extractors see a body that fails past the limit, which they answer 413 (axum finds
        // the `LengthLimitError` under at most two wrappings: do not wrap the body again).
        let req = req.map(|body| Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)));
        match tokio::time::timeout(edge.timeout, AssertUnwindSafe(next.run(req)).catch_unwind())
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => {
                tracing::error!("handler panicked");
                ApiError::internal().into_response()
            }
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "TIMEOUT",
                format!("the request took longer than {:?}", edge.timeout),
            )
            .into_response(),
        }
    };
    resource_metadata_hint(&edge, host, &mut response);
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID, request_id.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    edge.metrics
        .request(&method, route, status, elapsed.as_secs_f64());
    if edge.metrics.access_log.selects(status) {
        tracing::info!(
            method = %method,
            route,
            status,
            latency_us = elapsed.as_micros() as u64,
            request_id = request_id.to_str().unwrap_or(""),
            "request"
        );
    }
    response
}

/// A 401 from the API names the protected-resource metadata (RFC 9728 §5.1), where an OAuth
/// client (a Model Context Protocol client, say) learns which authorization server to ask.
fn resource_metadata_hint(edge: &Edge, host: Option<HeaderValue>, response: &mut Response) {
    if response.status() != StatusCode::UNAUTHORIZED
        || !response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer"))
    {
        return;
    }
    let challenge = format!(
        "Bearer realm=\"knowmind\", resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        crate::api::base_url(edge.public_url.as_deref(), host.as_ref())
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
}

/// Which requests get an access-log line (`--access-log`): `all` (the default), `errors`
/// (status 400 and above), `1/N` (one request in N, and every error), or `off`. Metrics count
/// every request whatever this says.
#[derive(Debug)]
pub struct AccessLog {
    every: u32,
    errors: bool,
    seen: AtomicU32,
}

impl AccessLog {
    /// Whether a request answered `status` gets a line.
    fn selects(&self, status: u16) -> bool {
        if status >= 400 && self.errors {
            return true;
        }
        match self.every {
            0 => false,
            1 => true,
            n => self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(n),
        }
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            every: 1,
            errors: true,
            seen: AtomicU32::new(0),
        }
    }
}

impl std::str::FromStr for AccessLog {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (every, errors) = match text {
            "all" => (1, true),
            "errors" => (0, true),
            "off" => (0, false),
            _ => match text.strip_prefix("1/").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => (n, true),
                _ => {
                    return Err(format!(
                        "{text:?}: say all, errors, off, or 1/N (one request in N, and every error)"
                    ));
                }
            },
        };
        Ok(AccessLog {
            every,
            errors,
            seen: AtomicU32::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    #[allow(clippy::unused_async)]
    async fn panics() -> &'static str {
        panic!("a bug")
    }

    /// A router with the middleware, and routes that panic, hang, read a JSON body and refuse.
    fn app() -> Router {
        let edge = Arc::new(Edge {
            metrics: Arc::new(Metrics::default()),
            timeout: Duration::from_millis(200),
            public_url: None,
            ids: RequestIds::new(),
        });
        Router::new()
            .route("/panics", get(panics))
            .route(
                "/hangs",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route(
                "/echo",
                post(|axum::Json(v): axum::Json<serde_json::Value>| async move { axum::Json(v) }),
            )
            .route(
                "/bytes",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/form",
                post(
                    |axum::Form(f): axum::Form<std::collections::HashMap<String, String>>| async move {
                        f.len().to_string()
                    },
                ),
            )
            .route(
                "/refuses",
                get(|| async { ApiError::unauthorized().into_response() }),
            )
            .layer(axum::middleware::from_fn_with_state(edge, observe))
    }

    async fn send(request: axum::http::Request<Body>) -> Response {
        app().oneshot(request).await.unwrap()
    }

    fn get_request(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path)
            .header(header::HOST, "127.0.0.1:9")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn the_middleware_guards_names_and_marks_every_answer() {
        // A panic is a 500 in the API's format; a hang is a 408 after the timeout.
        let panicked = send(get_request("/panics")).await;
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            panicked.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let hung = send(get_request("/hangs")).await;
        assert_eq!(hung.status(), StatusCode::REQUEST_TIMEOUT);
        // Every answer carries a request id (a new one, or the client's) and nosniff.
        for answer in [&panicked, &hung] {
            assert!(
                answer.headers()[X_REQUEST_ID]
                    .to_str()
                    .unwrap()
                    .starts_with("req_")
            );
            assert_eq!(answer.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert_ne!(
            panicked.headers()[X_REQUEST_ID],
            hung.headers()[X_REQUEST_ID]
        );
        let mut theirs = get_request("/panics");
        theirs
            .headers_mut()
            .insert(X_REQUEST_ID, HeaderValue::from_static("proxy-42"));
        assert_eq!(send(theirs).await.headers()[X_REQUEST_ID], "proxy-42");
        // A body past the limit is refused with 413; one within it is read.
        let body = |bytes: usize| {
            axum::http::Request::post("/echo")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!("\"{}\"", "x".repeat(bytes))))
                .unwrap()
        };
        assert_eq!(
            send(body(MAX_BODY_BYTES)).await.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(send(body(1_000)).await.status(), StatusCode::OK);
        for (path, kind) in [
            ("/bytes", "application/octet-stream"),
            ("/form", "application/x-www-form-urlencoded"),
        ] {
            let over = axum::http::Request::post(path)
                .header(header::CONTENT_TYPE, kind)
                .body(Body::from(format!("a={}", "x".repeat(MAX_BODY_BYTES))))
                .unwrap();
            assert_eq!(
                send(over).await.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}"
            );
        }
        // A client's request id is kept when reasonable, replaced when long.
        let mut long = get_request("/panics");
        long.headers_mut().insert(
            X_REQUEST_ID,
            HeaderValue::from_str(&"r".repeat(MAX_REQUEST_ID_BYTES + 1)).unwrap(),
        );
        let answer = send(long).await;
        assert!(
            answer.headers()[X_REQUEST_ID]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        // A 401 names where an OAuth client learns how to get a token.
        let refused = send(get_request("/refuses")).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(
            refused.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(
                    "resource_metadata=\"http://127.0.0.1:9/.well-known/oauth-protected-resource\""
                ),
            "{:?}",
            refused.headers()
        );
        // Headers past the cap: 431, before any handler.
        let mut big = get_request("/panics");
        big.headers_mut().insert(
            "x-padding",
            HeaderValue::from_str(&"p".repeat(MAX_HEADER_BYTES)).unwrap(),
        );
        assert_eq!(
            send(big).await.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    fn picked(policy: &str, statuses: &[u16]) -> usize {
        let log: AccessLog = policy.parse().unwrap();
        statuses.iter().filter(|s| log.selects(**s)).count()
    }

    #[test]
    fn the_policy_picks_the_lines() {
        let ok = [200u16; 100];
        assert_eq!(picked("all", &ok), 100);
        assert_eq!(picked("off", &ok), 0);
        assert_eq!(picked("off", &[500, 401]), 0);
        assert_eq!(picked("errors", &ok), 0);
        assert_eq!(picked("errors", &[200, 401, 404, 500, 302]), 3);
        assert_eq!(picked("1/10", &ok), 10);
        assert_eq!(picked("1/10", &[401; 7]), 7, "every error");
        assert_eq!(picked("1/1", &ok), 100);
        for bad in ["", "on", "1/0", "1/", "2/3", "1/-1", "ALL"] {
            let refused = bad.parse::<AccessLog>().unwrap_err();
            assert!(refused.contains("1/N"), "{bad}: {refused}");
        }
    }
}
