//! knowmind tokens for axum services: the [`RequireScope`] layer and the [`Authenticated`]
//! extractor protect routes, verifying presented tokens in process against a
//! [`token_store::Store`] ([`Guard::new`]) or through a knowmind server's verification endpoint
//! ([`Guard::remote`] with a [`RemoteVerifier`]). Refusals are RFC 9457 problem documents
//! ([`ApiError`]), the same whatever the reason for a 401; [`ApiJson`] and [`ApiQuery`] reject
//! bad input the same way.
//!
//! This crate depends on `token-store`, `axum` and an HTTP client only: a service that embeds it
//! pulls in no command-line parser, no metrics library and no server of its own.
//!
//! ```no_run
//! # async fn example(store: token_store::Store) {
//! use axum::{Router, routing::get};
//! use knowmind_axum::{Authenticated, Guard, RequireScope};
//! use token_core::Scope;
//!
//! async fn list_things(Authenticated(who): Authenticated) -> String {
//!     format!("hello, token {}", who.token_id)
//! }
//!
//! let guard = Guard::new(store);
//! let app: Router = Router::new()
//!     .route("/things", get(list_things))
//!     .route_layer(RequireScope::new(guard, Scope::Read));
//! # }
//! ```

mod extract;
mod guard;
mod layer;
mod problem;
mod remote;

pub use extract::{ApiJson, ApiQuery, OptionalJson};
pub use guard::{
    Access, Guard, RefusalObserver, TOKEN_EXPIRATION_HEADER, TOKEN_ROTATION_DUE_HEADER, bearer,
    peer_ip,
};
pub use layer::{Authenticated, RequireScope, RequireScopeService};
pub use problem::ApiError;
pub use remote::{RemoteError, RemoteVerifier};
