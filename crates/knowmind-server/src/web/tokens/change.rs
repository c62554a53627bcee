//! Revoking and rotating a token, each after a confirmation page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::Duration;
use token_store::{Revocation, Rotation, TokenRecord};

use crate::api::AppState;

use super::{ShownPage, already_submitted, visible};
use crate::web::render::{html, when};
use crate::web::{Chrome, PageError, Viewer};

#[derive(Template)]
#[template(path = "token_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    heading: &'static str,
    action: &'static str,
    explanation: &'static str,
    scopes: String,
    form_id: String,
    error: Option<String>,
    record: TokenRecord,
}

fn confirm_page(
    viewer: &Viewer,
    record: TokenRecord,
    action: &'static str,
    error: Option<String>,
) -> Result<ConfirmPage, PageError> {
    let (heading, explanation) = match action {
        "revoke" => (
            "Revoke",
            "Every call with this token is refused as soon as you confirm, on every server. \
             Tokens rotated from it are revoked with it. This cannot be undone.",
        ),
        _ => (
            "Rotate",
            "A new token with the same name, scopes and lifetime replaces this one; it is shown \
             once. Put it where the old one is used before the old one stops working.",
        ),
    };
    Ok(ConfirmPage {
        chrome: Chrome::of(viewer, format!("{heading} {}", record.name), "tokens"),
        heading,
        action,
        explanation,
        scopes: record.scopes.to_string(),
        form_id: token_store::BearerSecret::random()?
            .expose_secret()
            .to_owned(),
        error,
        record,
    })
}

pub(crate) async fn confirm_revoke(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let record = visible(&app, &viewer, &id).await?;
    Ok(html(
        StatusCode::OK,
        &confirm_page(&viewer, record, "revoke", None)?,
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn revoke(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    let record = visible(&app, &viewer, &id).await?;
    app.store
        .revoke_token(
            viewer.workspace(),
            record.id,
            &Revocation::family(form.reason),
            &viewer.context,
        )
        .await?;
    Ok(Redirect::to(&format!("/dashboard/tokens/{}?done=revoked", record.id)).into_response())
}

/// Rotation hands the new secret to whoever rotates: only the token's owner may, or an admin
/// could take over someone else's token under its name. Admins revoke others' tokens instead.
fn own(viewer: &Viewer, record: &TokenRecord) -> Result<(), PageError> {
    if record.owner_id == viewer.signed_in.member.id {
        Ok(())
    } else {
        Err(PageError::Status(
            StatusCode::FORBIDDEN,
            "Only a token's owner can rotate it (the new token is shown to whoever rotates). \
             You can revoke it."
                .into(),
        ))
    }
}

pub(crate) async fn confirm_rotate(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let record = visible(&app, &viewer, &id).await?;
    own(&viewer, &record)?;
    Ok(html(
        StatusCode::OK,
        &confirm_page(&viewer, record, "rotate", None)?,
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct RotateForm {
    #[serde(default)]
    grace: String,
    #[serde(default)]
    form_id: String,
}

pub(crate) async fn rotate(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<Response, PageError> {
    let record = visible(&app, &viewer, &id).await?;
    own(&viewer, &record)?;
    let grace = match form.grace.as_str() {
        "0" | "" => Duration::ZERO,
        text => match token_core::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                let page = confirm_page(&viewer, record, "rotate", Some(e.to_string()))?;
                return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
            }
        },
    };
    if !app
        .store
        .claim_form(&viewer.signed_in.member.id, &form.form_id)
        .await?
    {
        return Err(already_submitted());
    }
    let rotation = Rotation {
        grace: Some(grace),
        ..Rotation::default()
    };
    let (new, token) = match app
        .store
        .rotate_token(viewer.workspace(), record.id, rotation, &viewer.context)
        .await
    {
        Ok(done) => done,
        Err(
            e @ (token_store::Error::Invalid { .. }
            | token_store::Error::PolicyViolation { .. }
            | token_store::Error::NotActive { .. }
            | token_store::Error::AlreadyRotated { .. }),
        ) => {
            let page = confirm_page(&viewer, record, "rotate", Some(e.to_string()))?;
            return Ok(html(StatusCode::CONFLICT, &page));
        }
        Err(e) => return Err(e.into()),
    };
    let grace_note = if grace.is_zero() {
        "stopped working now.".to_owned()
    } else {
        format!("keeps working until {}.", when(app.store.now() + grace))
    };
    let page = ShownPage {
        chrome: Chrome::of(&viewer, "Token rotated", "tokens"),
        heading: "Token rotated",
        record: new,
        secret: token.expose_secret().to_owned(),
        replaced: Some(record.id),
        grace_note,
    };
    Ok(html(StatusCode::CREATED, &page))
}
