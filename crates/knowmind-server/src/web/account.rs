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
