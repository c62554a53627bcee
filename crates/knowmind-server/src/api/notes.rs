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

/// `GET /v1/notes`.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^[0-9]{1,18}\.note_[0-9A-Za-z]{16}$")]
    cursor: Option<String>,
    /// Page size, 1–200 (default 50); 0 counts as 1, larger sizes as 200.
    #[param(format = Int64, minimum = 0, maximum = 4_294_967_295_i64)]
    limit: Option<u32>,
}

/// The `{id}` of the note routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct NotePath {
    /// The note's id.
    #[param(pattern = r"^note_[0-9A-Za-z]{16}$")]
    id: String,
}

/// List notes
#[utoipa::path(get, path = "/v1/notes", operation_id = "listNotes", tag = "notes",
    params(ListQuery),
    responses((status = 200, description = "A page of notes, newest first", body = Page<Note>)))]
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

/// A note
#[utoipa::path(get, path = "/v1/notes/{id}", operation_id = "getNote", tag = "notes",
    params(NotePath),
    responses((status = 200, description = "The note", body = Note)))]
pub(super) async fn get_one(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(NotePath { id }): Path<NotePath>,
) -> Result<axum::Json<Note>, ApiError> {
    Ok(axum::Json(app.notes.get(&who.workspace_id, &id).await?))
}

/// Create a note
#[utoipa::path(post, path = "/v1/notes", operation_id = "createNote", tag = "notes",
    request_body = NoteInput,
    responses((status = 201, description = "The new note", body = Note)))]
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

/// Replace a note's title and body
#[utoipa::path(put, path = "/v1/notes/{id}", operation_id = "replaceNote", tag = "notes",
    params(NotePath), request_body = NoteInput,
    responses((status = 200, description = "The note as it is now", body = Note)))]
pub(super) async fn replace(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(NotePath { id }): Path<NotePath>,
    ApiJson(input): ApiJson<NoteInput>,
) -> Result<axum::Json<Note>, ApiError> {
    let note = app
        .notes
        .update(&who.workspace_id, &id, &input, app.store().now())
        .await?;
    Ok(axum::Json(note))
}

/// Delete a note
#[utoipa::path(delete, path = "/v1/notes/{id}", operation_id = "deleteNote", tag = "notes",
    params(NotePath),
    responses((status = 204, description = "Deleted")))]
pub(super) async fn remove(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(NotePath { id }): Path<NotePath>,
) -> Result<StatusCode, ApiError> {
    app.notes.delete(&who.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
