//! knowmind's HTTP API, as a library: the router ([`api::router`]), its state, the
//! authentication layer other axum services can embed ([`auth::RequireScope`] and
//! [`auth::Authenticated`]), and the commands of the `knowmind-server` binary.
//!
//! Errors are RFC 9457 problem documents with a stable `code`; `Authorization: Bearer kmt_…` is the
//! only way a token is accepted; the route table ([`api::routes`]) says what every route needs.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod notes;
pub mod observe;
pub mod remote;
pub mod secret_file;
pub mod serve;
