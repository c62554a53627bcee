//! The account page: who you are, your active sessions (sign out any of them), and changing
//! your password.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use token_core::Password;
use token_store::Member;

use crate::api::AppState;

use super::render::{html, when};
use super::{Chrome, PageError, Viewer};

struct SessionRow {
    id: String,
    created: String,
    last_seen: String,
    ip: String,
    user_agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    member: Member,
    sessions: Vec<SessionRow>,
    has_second_factor: bool,
    required: bool,
    error: Option<String>,
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    error: Option<String>,
    notice: Option<String>,
) -> Result<AccountPage, PageError> {
    let sessions = app.store.list_sessions(&viewer.signed_in.member.id).await?;
    Ok(AccountPage {
        chrome: Chrome::of(viewer, "Account", "account").with_notice(notice),
        member: viewer.signed_in.member.clone(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == viewer.signed_in.session.id,
                created: when(s.created_at),
                last_seen: when(s.last_seen_at),
                ip: s.client_ip.unwrap_or_else(|| "unknown".into()),
                user_agent: s.user_agent.unwrap_or_default(),
                id: s.id,
            })
            .collect(),
        has_second_factor: viewer.signed_in.has_second_factor,
        required: viewer.signed_in.second_factor_required,
        error,
    })
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

pub(super) async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let notice = match done.done.as_str() {
        "password" => Some("Your password is changed; your other sessions are signed out.".into()),
        "session" => Some("That session is signed out.".into()),
        "required" => Some(
            "Your workspace requires two-factor authentication: set up an authenticator app to \
             continue."
                .into(),
        ),
        "totp_off" => Some("Two-factor authentication is off.".into()),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &page(&app, &viewer, None, notice).await?,
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

pub(super) async fn change_password(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let current = Password::presented(form.current);
    match app
        .store
        .change_password(&viewer.signed_in, current, form.new, &viewer.context)
        .await
    {
        Ok(_) => Ok(Redirect::to("/dashboard/account?done=password").into_response()),
        Err(e @ (token_store::Error::Invalid { .. } | token_store::Error::SignInRefused)) => {
            let message = match e {
                token_store::Error::SignInRefused => "The current password is wrong.".to_owned(),
                other => other.to_string(),
            };
            let page = page(&app, &viewer, Some(message), None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn end_session(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    app.store
        .end_session(&viewer.signed_in, &id, &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/account?done=session").into_response())
}

#[derive(Template)]
#[template(path = "totp_setup.html")]
struct TotpPage {
    chrome: Chrome,
    qr: Option<String>,
    key: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryPage {
    chrome: Chrome,
    codes: Vec<String>,
}

/// The `otpauth` URI as an inline SVG QR code (the SVG has no script or style attributes).
fn qr_svg(uri: &str) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| {
        PageError::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot draw the QR code.".into(),
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    // Inline in the page: drop the XML declaration.
    Ok(svg
        .find("<svg")
        .map_or(svg.clone(), |start| svg[start..].to_owned()))
}

#[derive(serde::Deserialize)]
pub(super) struct PasswordOnly {
    #[serde(default)]
    password: String,
}

pub(super) async fn start_totp(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordOnly>,
) -> Result<Response, PageError> {
    let password = Password::presented(form.password);
    let setup = match app
        .store
        .start_totp(&viewer.signed_in, password, &viewer.context)
        .await
    {
        Ok(setup) => setup,
        Err(token_store::Error::SignInRefused) => {
            let page = page(&app, &viewer, Some("The password is wrong.".into()), None).await?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e @ (token_store::Error::Conflict(_) | token_store::Error::Invalid { .. })) => {
            let page = page(&app, &viewer, Some(e.to_string()), None).await?;
            return Ok(html(StatusCode::CONFLICT, &page));
        }
        Err(e) => return Err(e.into()),
    };
    let page = TotpPage {
        chrome: Chrome::of(&viewer, "Set up an authenticator app", "account"),
        qr: Some(qr_svg(setup.expose_uri())?),
        key: setup.expose_base32().to_string(),
        error: None,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    code: String,
}

pub(super) async fn confirm_totp(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    match app
        .store
        .confirm_totp(&viewer.signed_in, &form.code, &viewer.context)
        .await
    {
        Ok(codes) => {
            let page = RecoveryPage {
                chrome: Chrome::of(&viewer, "Recovery codes", "account"),
                codes: codes.iter().map(|c| c.to_string()).collect(),
            };
            Ok(html(StatusCode::OK, &page))
        }
        Err(e @ token_store::Error::Invalid { .. }) => {
            let page = TotpPage {
                chrome: Chrome::of(&viewer, "Set up an authenticator app", "account"),
                qr: None,
                key: String::new(),
                error: Some(format!(
                    "{e}. If the app has no knowmind entry, go back to your account and start again."
                )),
            };
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn remove_totp(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordOnly>,
) -> Result<Response, PageError> {
    match app
        .store
        .remove_totp(
            &viewer.signed_in,
            Password::presented(form.password),
            &viewer.context,
        )
        .await
    {
        Ok(()) => Ok(Redirect::to("/dashboard/account?done=totp_off").into_response()),
        Err(token_store::Error::SignInRefused) => {
            let page = page(&app, &viewer, Some("The password is wrong.".into()), None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}
