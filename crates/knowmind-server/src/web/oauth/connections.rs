//! A member's own connections (remembered consents), which they can revoke.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{ConnectionRow, Done, connection_rows};
use crate::api::AppState;

use crate::web::render::html;
use crate::web::{Chrome, PageError, Viewer};

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    chrome: Chrome,
    connections: Vec<ConnectionRow>,
}

/// `GET /dashboard/connections`: the applications the signed-in member connected.
pub(in crate::web) async fn connections(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let member = &viewer.signed_in.member;
    let list = app
        .store
        .list_connections(viewer.workspace(), Some(&member.id), None, false)
        .await?;
    let names = [(member.id.clone(), member.name.clone())];
    let notice = (done.done == "revoked")
        .then(|| "The connection is revoked; the application's tokens stopped working.".to_owned());
    let page = ConnectionsPage {
        chrome: Chrome::of(&viewer, "Connected applications", "connections").with_notice(notice),
        connections: connection_rows(list, &names),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /dashboard/connections/{id}/revoke`: a member revokes their own connection; an admin
/// any in the workspace.
pub(in crate::web) async fn revoke_connection(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let only = (!viewer.signed_in.is_admin()).then(|| viewer.signed_in.member.id.clone());
    let connection = app
        .store
        .revoke_connection(viewer.workspace(), &id, only.as_deref(), &viewer.context)
        .await?;
    let back = if connection.member_id == viewer.signed_in.member.id {
        "/dashboard/connections?done=revoked".to_owned()
    } else {
        format!("/dashboard/oauth/clients/{}", connection.client_id)
    };
    Ok(Redirect::to(&back).into_response())
}
