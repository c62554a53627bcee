//! Errors as RFC 9457 problem documents (`application/problem+json`) with a stable `code`: the one
//! place they are built, for the knowmind server and every service that embeds this crate.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use token_core::Scopes;

/// An error response. Every 4xx names what the client got wrong; a 5xx never carries internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `INSUFFICIENT_SCOPE`.
    pub code: &'static str,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 401, the same whatever the reason (unknown, wrong, revoked, expired or malformed token).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid token is required: send `Authorization: Bearer kmt_…`",
        )
    }

    /// 403 naming the missing scopes.
    pub fn forbidden(missing: Scopes) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_SCOPE",
            format!("this token lacks the required scope: {missing}"),
        )
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// 422 for a well-formed request with an unacceptable value.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT", detail)
    }

    /// 400 for a request that cannot be understood.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", detail)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many failed authentications from this address; a token this server has \
                 already verified still works, others must wait",
            )
        }
    }

    /// 503 with `Retry-After`: verification capacity is exhausted for the moment.
    pub fn busy() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "the server is busy; try again shortly",
            )
        }
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; it has been logged",
        )
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = knowmind_api::Problem {
            kind: format!("urn:knowmind:problem:{}", self.code.to_lowercase()),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"knowmind\""),
            );
        }
        response
    }
}

impl From<audit::Error> for ApiError {
    fn from(e: audit::Error) -> Self {
        ApiError::from(token_store::Error::from(e))
    }
}

impl From<knowmind_db::Error> for ApiError {
    fn from(e: knowmind_db::Error) -> Self {
        ApiError::from(token_store::Error::from(e))
    }
}

impl From<token_store::Error> for ApiError {
    fn from(e: token_store::Error) -> Self {
        use token_store::Error as E;
        match e {
            E::NotFound { what } => ApiError::not_found(what),
            // Cursors come from query strings: like any other malformed query value, a 400.
            E::Invalid {
                field: "cursor", ..
            } => ApiError::bad_request(e.to_string()),
            E::Invalid { .. } => ApiError::invalid(e.to_string()),
            E::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", detail),
            E::NotActive { state } => ApiError::new(
                StatusCode::CONFLICT,
                "TOKEN_NOT_ACTIVE",
                format!("the token is {state}"),
            ),
            E::AlreadyRotated { .. } => {
                ApiError::new(StatusCode::CONFLICT, "TOKEN_NOT_ACTIVE", e.to_string())
            }
            E::Unauthorized(_) | E::SignInRefused | E::NotSignedIn => ApiError::unauthorized(),
            E::Forbidden { missing } => ApiError::forbidden(missing),
            E::PolicyViolation { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "POLICY_VIOLATION",
                e.to_string(),
            ),
            E::LifetimeExceeded { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "LIFETIME_EXCEEDED",
                e.to_string(),
            ),
            E::RateLimited { retry_after_secs } => ApiError::rate_limited(retry_after_secs),
            // Outside the OAuth endpoints (which answer in RFC 6749's own format), an OAuth
            // refusal is a request the API cannot accept as given: a bad client registration.
            E::OAuth { description, .. } => ApiError::invalid(description),
            E::Busy => ApiError::busy(),
            E::Storage(ref storage) if storage.is_pool_timeout() => ApiError::busy(),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_failures_are_500s_and_say_nothing() {
        for e in [
            token_store::Error::System("the operating system's random generator failed"),
            token_store::Error::HandOver {
                reason: "random".into(),
            },
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(api.code, "INTERNAL");
            assert!(!api.detail.contains("random"), "{}", api.detail);
        }
        let lifetime = ApiError::from(token_store::Error::LifetimeExceeded {
            max: time::Duration::hours(1),
        });
        assert_eq!(
            (lifetime.status, lifetime.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "LIFETIME_EXCEEDED")
        );
        assert!(lifetime.detail.contains("1h"), "{}", lifetime.detail);
    }
}
