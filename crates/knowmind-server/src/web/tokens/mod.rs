//! Token pages: the list with filters ([`list`]), creating a token, shown once ([`create`]),
//! a token's security log and lifecycle ([`security_log`]), rotating and revoking ([`change`]).
//! Members see and act on their own tokens; owners and admins on every token of the workspace.

mod change;
mod create;
mod list;
mod security_log;

use askama::Template;
use axum::http::StatusCode;
use token_core::TokenId;
use token_store::TokenRecord;

use crate::api::AppState;

use super::{Chrome, PageError, Viewer};

pub(super) use change::{confirm_revoke, confirm_rotate, revoke, rotate};
pub(super) use create::{create, new};
pub(super) use list::list;
pub(super) use security_log::show;

#[derive(Template)]
#[template(path = "token_shown.html")]
pub(super) struct ShownPage {
    pub(super) chrome: Chrome,
    pub(super) heading: &'static str,
    pub(super) record: TokenRecord,
    pub(super) secret: String,
    pub(super) replaced: Option<TokenId>,
    pub(super) grace_note: String,
}

/// The page a form shows when it was submitted before: its secret was shown then, and only then.
pub(super) fn already_submitted() -> PageError {
    PageError::Status(
        StatusCode::CONFLICT,
        "This form was already submitted. A token is shown only once, right after it is \
         made; if you did not copy it, revoke that token and create another."
            .into(),
    )
}

/// A token the viewer may see: their own, or any of the workspace's for owners and admins.
/// Anything else is "not found", like a token of another workspace.
pub(super) async fn visible(
    app: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<TokenRecord, PageError> {
    let id: TokenId = id.parse().map_err(|_| PageError::not_found())?;
    let record = app.store.get_token(viewer.workspace(), id).await?;
    if record.owner_id == viewer.signed_in.member.id || viewer.signed_in.is_admin() {
        Ok(record)
    } else {
        Err(PageError::not_found())
    }
}
