//! The dashboard: server-rendered pages for the people of a workspace, under `/dashboard`.
//!
//! Pages are askama templates compiled into the binary; the stylesheet and the small script
//! (progressive enhancement: local times, copy buttons) are embedded too. Every page works
//! without JavaScript. Each action calls the same store function, with the same audit event, as
//! the API: there is one way to revoke a token.
//!
//! Cross-cutting concerns live in one layer each: [`headers`] (Content-Security-Policy and the
//! other security headers on every response), [`csrf`] (every state-changing request), and
//! [`session`] (who is signed in, as an extractor).

mod account;
mod audit_log;
mod csrf;
mod headers;
mod incidents;
mod members;
mod oauth;
mod render;
mod session;
mod settings;
mod sign_in;
mod tokens;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AppState;

pub(crate) use render::{Chrome, PageError};
pub(crate) use session::Viewer;

/// The dashboard's routes, to nest under `/dashboard`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/tokens") }))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-in/code", get(sign_in::code_form).post(sign_in::code))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/enrol/{link}", get(sign_in::enrol_form))
        .route("/enrol", post(sign_in::enrol))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/new", get(tokens::new))
        .route("/tokens/{id}", get(tokens::show))
        .route(
            "/tokens/{id}/revoke",
            get(tokens::confirm_revoke).post(tokens::revoke),
        )
        .route(
            "/tokens/{id}/rotate",
            get(tokens::confirm_rotate).post(tokens::rotate),
        )
        .route("/members", get(members::list))
        .route("/members/invite", post(members::invite))
        .route("/members/{id}/role", post(members::set_role))
        .route("/members/{id}/remove", post(members::remove))
        .route(
            "/members/second-factor",
            post(members::require_second_factor),
        )
        .route("/oauth/authorize", get(oauth::consent).post(oauth::decide))
        .route("/oauth/clients", get(oauth::clients).post(oauth::register))
        .route("/oauth/clients/{id}", get(oauth::client))
        .route("/oauth/clients/{id}/remove", post(oauth::remove))
        .route("/connections", get(oauth::connections))
        .route("/connections/{id}/revoke", post(oauth::revoke_connection))
        .route("/incidents", get(incidents::list).post(incidents::open))
        .route("/incidents/new", get(incidents::new))
        .route("/incidents/{id}", get(incidents::show))
        .route("/incidents/{id}/report.md", get(incidents::markdown))
        .route("/incidents/{id}/record", post(incidents::amend))
        .route("/settings", get(settings::show))
        .route("/settings/policy", post(settings::save_policy))
        .route("/settings/policy/apply", post(settings::apply_policy))
        .route("/settings/webhooks", post(settings::add_webhook))
        .route("/settings/webhooks/{id}", get(settings::deliveries))
        .route(
            "/settings/webhooks/{id}/remove",
            post(settings::remove_webhook),
        )
        .route("/audit", get(audit_log::list))
        .route("/audit/export", get(audit_log::export))
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/totp", post(account::start_totp))
        .route("/account/totp/confirm", post(account::confirm_totp))
        .route("/account/totp/remove", post(account::remove_totp))
        .route("/account/sessions/{id}/end", post(account::end_session))
        .fallback(|| async { PageError::not_found() })
        .layer(axum::middleware::from_fn(csrf::protect))
        .layer(axum::middleware::from_fn(headers::secure))
}

const STYLE: &str = include_str!("../../assets/style.css");
const SCRIPT: &str = include_str!("../../assets/app.js");

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
