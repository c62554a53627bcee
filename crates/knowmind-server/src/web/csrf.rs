//! Cross-site request forgery: every state-changing dashboard request must come from one of our
//! own pages. Two checks, both required:
//!
//! 1. **Origin.** The browser says where the request came from: `Sec-Fetch-Site` must be
//!    `same-origin`, or else `Origin` must name this host. A request carrying neither (an old
//!    browser, a script) falls through to the second check alone.
//! 2. **Synchronizer token.** The form's `csrf` field must equal the session's token (derived
//!    from the session secret, see `BearerSecret::csrf_token`) or — on the forms shown before
//!    sign-in — the value of the pre-session cookie, which a page of another site can neither
//!    read nor set.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use token_store::BearerSecret;

use super::PageError;
use super::session::{FORM_COOKIE, SESSION_COOKIE, cookie};

/// The largest form the dashboard accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(super) async fn protect(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        return refused("The request came from another site.");
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return PageError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.".into(),
        )
        .into_response();
    };
    let presented = form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    // Either token will do: neither can be read or set by another site, and a stale session
    // cookie must not lock anyone out of the sign-in form.
    let by_session = cookie(&parts.headers, SESSION_COOKIE)
        .and_then(BearerSecret::parse)
        .is_some_and(|session| session.csrf_matches(&presented));
    let by_form = cookie(&parts.headers, FORM_COOKIE)
        .and_then(BearerSecret::parse)
        .is_some_and(|form| {
            !presented.is_empty()
                && bool::from(form.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
        });
    let valid = by_session || by_form;
    if !valid {
        return refused(
            "This form is out of date or did not come from this dashboard. Go back, reload the \
             page and try again.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refused(message: &str) -> Response {
    tracing::info!("dashboard: a state-changing request failed the CSRF checks");
    PageError::Status(StatusCode::FORBIDDEN, message.to_owned()).into_response()
}

/// Whether the browser says the request comes from this origin (or says nothing).
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.as_bytes());
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origin_must_be_this_host() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        // Neither header: the synchronizer token decides alone.
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
    }
}
