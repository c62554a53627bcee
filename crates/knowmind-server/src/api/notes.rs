//! `/v1/notes`: the workspace's content (`read` to see, `write` to change).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use crate::notes::{Note, NoteInput};
use knowmind_api::Page;
use knowmind_axum::ApiError;
use knowmind_axum::Authenticated;
use knowmind_axum::{ApiJson, ApiQuery};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<Note>>, ApiError> {
    let (items, next_cursor) = app
        .notes
        .list(
            &who.workspace_id,
            query.cursor.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(axum::Json(Page { items, next_cursor }))
}

pub(super) async fn get_one(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<axum::Json<Note>, ApiError> {
    Ok(axum::Json(app.notes.get(&who.workspace_id, &id).await?))
}

pub(super) async fn create(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiJson(input): ApiJson<NoteInput>,
) -> Result<(StatusCode, axum::Json<Note>), ApiError> {
    let by = format!("token:{}", who.token_id);
    let note = app
        .notes
        .create(&who.workspace_id, &input, &by, app.store().now())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(note)))
}

pub(super) async fn replace(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NoteInput>,
) -> Result<axum::Json<Note>, ApiError> {
    let note = app
        .notes
        .update(&who.workspace_id, &id, &input, app.store().now())
        .await?;
    Ok(axum::Json(note))
}

pub(super) async fn remove(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.notes.delete(&who.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
