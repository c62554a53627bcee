//! Signing in and out, and enrolling through a one-time link.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use token_core::Password;
use token_store::{BearerSecret, Enrolment};

use crate::api::AppState;

use super::render::{Message, html, when};
use super::session::{clear_session_cookie, form_token, request_context, session_cookie};
use super::{Chrome, PageError, Viewer};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
    next: String,
    workspace: String,
    email: String,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct SignInQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    workspace: String,
}

/// Only paths inside the dashboard are followed after sign-in: never another site.
fn safe_next(next: &str) -> &str {
    // Visible ASCII only: a control character would make an invalid `Location`.
    if next.starts_with("/dashboard/")
        && !next.starts_with("/dashboard//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        next
    } else {
        "/dashboard/tokens"
    }
}

/// The workspace to prefill: the one asked for, or the server's only one.
async fn default_workspace(app: &AppState, asked: String) -> String {
    if !asked.is_empty() {
        return asked;
    }
    match app.store.list_workspaces().await {
        Ok(all) if all.len() == 1 => all.into_iter().next().map(|w| w.name).unwrap_or_default(),
        _ => String::new(),
    }
}

fn with_cookie(mut response: Response, cookie: Option<header::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub(super) async fn form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let (csrf, cookie) = form_token(&headers)?;
    let page = SignInPage {
        chrome: Chrome::anonymous("Sign in", csrf),
        error: None,
        next: safe_next(&query.next).to_owned(),
        workspace: default_workspace(&app, query.workspace).await,
        email: String::new(),
    };
    Ok(with_cookie(html(StatusCode::OK, &page), cookie))
}

#[derive(serde::Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn submit(
    State(app): State<AppState>,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let context = request_context(&parts, &app);
    let password = Password::presented(form.password);
    match app
        .store
        .sign_in(form.workspace.trim(), &form.email, password, &context)
        .await
    {
        Ok((signed_in, secret)) => {
            let target = if signed_in.session.awaiting_second_factor {
                format!(
                    "/dashboard/sign-in/code?next={}",
                    form_urlencoded::byte_serialize(safe_next(&form.next).as_bytes())
                        .collect::<String>()
                )
            } else {
                safe_next(&form.next).to_owned()
            };
            let mut response = Redirect::to(&target).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&secret));
            Ok(response)
        }
        Err(e @ (token_store::Error::SignInRefused | token_store::Error::RateLimited { .. })) => {
            let status = if matches!(e, token_store::Error::SignInRefused) {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            let (csrf, cookie) = form_token(&parts.headers)?;
            let page = SignInPage {
                chrome: Chrome::anonymous("Sign in", csrf),
                error: Some(match e {
                    token_store::Error::RateLimited { retry_after_secs } => format!(
                        "Too many failed attempts. Try again in {retry_after_secs} seconds."
                    ),
                    _ => "The workspace, email or password is wrong.".into(),
                }),
                next: safe_next(&form.next).to_owned(),
                workspace: form.workspace,
                email: form.email,
            };
            Ok(with_cookie(html(status, &page), cookie))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn sign_out(
    State(app): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    app.store
        .sign_out(&viewer.signed_in, &viewer.context)
        .await?;
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie());
    Ok(response)
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    chrome: Chrome,
    enrolment: Enrolment,
    expires: String,
    link: String,
    name: String,
    error: Option<String>,
}

fn link_gone() -> PageError {
    PageError::Status(
        StatusCode::NOT_FOUND,
        "This enrolment link is unknown, used or expired. Ask an owner or admin of your \
         workspace for a new one."
            .into(),
    )
}

async fn open_link(app: &AppState, link: &str) -> Result<(BearerSecret, Enrolment), PageError> {
    let secret = BearerSecret::parse(link).ok_or_else(link_gone)?;
    match app.store.enrolment(&secret).await {
        Ok(enrolment) => Ok((secret, enrolment)),
        Err(token_store::Error::NotFound { .. }) => Err(link_gone()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn enrol_form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(link): Path<String>,
) -> Result<Response, PageError> {
    let (secret, enrolment) = open_link(&app, &link).await?;
    let (csrf, cookie) = form_token(&headers)?;
    let page = EnrolPage {
        chrome: Chrome::anonymous("Join", csrf),
        expires: when(enrolment.expires_at),
        name: String::new(),
        enrolment,
        link: secret.expose_secret().to_owned(),
        error: None,
    };
    Ok(with_cookie(html(StatusCode::OK, &page), cookie))
}

#[derive(serde::Deserialize)]
pub(super) struct EnrolForm {
    #[serde(default)]
    link: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn enrol(
    State(app): State<AppState>,
    parts: Parts,
    Form(form): Form<EnrolForm>,
) -> Result<Response, PageError> {
    let (secret, enrolment) = open_link(&app, &form.link).await?;
    let context = request_context(&parts, &app);
    match app
        .store
        .enrol(&secret, &form.name, form.password, &context)
        .await
    {
        Ok(_) => {
            let page = Message {
                chrome: Chrome::anonymous("Welcome", String::new()),
                heading: format!("Welcome to {}", enrolment.workspace_name),
                message: "Your password is set. Sign in with your email and the new password."
                    .into(),
                link: Some((
                    format!(
                        "/dashboard/sign-in?workspace={}",
                        form_urlencoded::byte_serialize(enrolment.workspace_name.as_bytes())
                            .collect::<String>()
                    ),
                    "Sign in".into(),
                )),
            };
            Ok(html(StatusCode::OK, &page))
        }
        Err(e @ token_store::Error::Invalid { .. }) => {
            let (csrf, cookie) = form_token(&parts.headers)?;
            let page = EnrolPage {
                chrome: Chrome::anonymous("Join", csrf),
                expires: when(enrolment.expires_at),
                enrolment,
                link: secret.expose_secret().to_owned(),
                name: form.name,
                error: Some(e.to_string()),
            };
            Ok(with_cookie(
                html(StatusCode::UNPROCESSABLE_ENTITY, &page),
                cookie,
            ))
        }
        Err(token_store::Error::NotFound { .. }) => Err(link_gone()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "sign_in_code.html")]
struct CodePage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
}

/// The session waiting for its second factor, from the cookie; or back to the sign-in form.
async fn pending(app: &AppState, headers: &HeaderMap) -> Result<BearerSecret, PageError> {
    let secret = super::session::cookie(headers, super::session::SESSION_COOKIE)
        .and_then(BearerSecret::parse)
        .ok_or(PageError::SignIn {
            next: String::new(),
        })?;
    match app.store.pending_session(&secret).await {
        Ok(_) => Ok(secret),
        Err(token_store::Error::NotSignedIn) => Err(PageError::SignIn {
            next: String::new(),
        }),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn code_form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let secret = pending(&app, &headers).await?;
    let page = CodePage {
        chrome: Chrome::anonymous("Enter your code", secret.csrf_token()),
        next: safe_next(&query.next).to_owned(),
        error: None,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn code(
    State(app): State<AppState>,
    parts: Parts,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    let secret = pending(&app, &parts.headers).await?;
    let context = request_context(&parts, &app);
    let error = match app
        .store
        .complete_sign_in(&secret, &form.code, &context)
        .await
    {
        Ok(_) => return Ok(Redirect::to(safe_next(&form.next)).into_response()),
        Err(token_store::Error::SignInRefused) => (
            StatusCode::UNAUTHORIZED,
            "That code is not right. Try the code your app shows now.".to_owned(),
        ),
        Err(token_store::Error::RateLimited { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
        ),
        Err(token_store::Error::NotSignedIn) => {
            return Err(PageError::SignIn {
                next: String::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let page = CodePage {
        chrome: Chrome::anonymous("Enter your code", secret.csrf_token()),
        next: safe_next(&form.next).to_owned(),
        error: Some(error.1),
    };
    Ok(html(error.0, &page))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_dashboard_paths_are_followed() {
        assert_eq!(safe_next("/dashboard/tokens/abc"), "/dashboard/tokens/abc");
        for evil in [
            "/dashboard/\u{1}",
            "/dashboard/a b",
            "https://evil.example/",
            "//evil.example",
            "/dashboard//evil.example",
            "/\\evil",
            "/v1/tokens",
            "",
        ] {
            assert_eq!(safe_next(evil), "/dashboard/tokens", "{evil}");
        }
    }
}
