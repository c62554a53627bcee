//! knowmind's HTTP API and dashboard, as a library: the router ([`api::router`]) and its state,
//! and the commands of the `knowmind-server` binary ([`serve::run`]). The dashboard's pages are
//! served under `/dashboard` by the same router. Its routes are protected with `knowmind-axum`,
//! the crate other axum services embed too.
//!
//! Errors are RFC 9457 problem documents with a stable `code`; `Authorization: Bearer kmt_…` is the
//! only way a token is accepted; the route table ([`api::routes`]) says what every route needs.

pub mod api;
mod bootstrap;
pub mod cli;
mod connections;
pub mod metrics;
pub mod notes;
mod oauth;
pub mod observe;
mod secret_file;
pub mod secret_scanning;
pub mod serve;
mod web;
pub mod webhooks;
