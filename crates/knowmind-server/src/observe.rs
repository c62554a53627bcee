//! Cross-cutting request handling: a cap on header size, metrics for every request, and an
//! access-log line for the requests [`AccessLog`] selects. Log lines carry method, route
//! template, status, latency and request id — never headers, so the `Authorization` header
//! cannot reach a log. Lines are written off the request path (see `serve::init_tracing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::Metrics;
use knowmind_axum::ApiError;

/// Largest total size of request headers accepted (names and values).
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses requests with more than [`MAX_HEADER_BYTES`] of headers (431), then logs and counts.
pub(crate) async fn observe(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = req.headers().get("x-request-id").cloned();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let response = if header_bytes > MAX_HEADER_BYTES {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.request(&method, route, status, elapsed.as_secs_f64());
    if metrics.access_log.selects(status) {
        tracing::info!(
            method = %method,
            route,
            status,
            latency_us = elapsed.as_micros() as u64,
            request_id = request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
            "request"
        );
    }
    response
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
