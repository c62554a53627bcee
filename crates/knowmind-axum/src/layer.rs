//! The [`RequireScope`] layer and the [`Authenticated`] extractor.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use token_core::Scope;
use token_store::SharedPrincipal;
use tower::{Layer, Service};

use crate::guard::{Access, Guard};
use crate::problem::ApiError;

/// The principal of the token that authenticated this request. Available in handlers behind
/// [`RequireScope`]; elsewhere it rejects with 401. Shared with the cache entry of the token:
/// cloning it copies a reference count.
#[derive(Debug, Clone)]
pub struct Authenticated(pub SharedPrincipal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A layer that lets a request through only with a valid token granting a scope.
#[derive(Clone, Debug)]
pub struct RequireScope {
    guard: Guard,
    access: Access,
}

impl RequireScope {
    /// Requires a valid token with `scope`.
    pub fn new(guard: Guard, scope: Scope) -> Self {
        RequireScope {
            guard,
            access: Access::Scope(scope),
        }
    }

    /// Requires what `access` says.
    pub fn access(guard: Guard, access: Access) -> Self {
        RequireScope { guard, access }
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = RequireScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            guard: self.guard.clone(),
            access: self.access,
            inner,
        }
    }
}

/// The service [`RequireScope`] wraps routes in.
#[derive(Clone, Debug)]
pub struct RequireScopeService<S> {
    guard: Guard,
    access: Access,
    inner: S,
}

impl<S> Service<Request> for RequireScopeService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is fresh and may not be ready; the ready one goes into the future.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (guard, access) = (self.guard.clone(), self.access);
        Box::pin(async move { Ok(guard.authenticate(access, req, inner).await) })
    }
}
