//! Cross-cutting request handling: a cap on header size, one log line and metrics per request.
//! Log lines carry method, route template, status, latency, request id and client address —
//! never headers, so the `Authorization` header cannot reach a log.

use std::sync::Arc;
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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
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
    metrics.request(&method, &route, status, elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        route,
        status,
        latency_us = elapsed.as_micros() as u64,
        request_id,
        "request"
    );
    response
}
