//! `/v1/audit`: the workspace's audit events, their export, and chain verification.

use audit::{Action, EventFilter};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use knowmind_api::{Event, ExportEvents, ListEvents, Page, VerifyEvents, WorkspaceChainReport};
use token_core::TokenId;
use tokio_util::io::ReaderStream;

use super::AppState;
use knowmind_axum::ApiError;
use knowmind_axum::ApiQuery;
use knowmind_axum::Authenticated;

/// The filter of a query, always confined to the caller's workspace (the API's and the
/// dashboard's). The error says which parameter is wrong.
pub(crate) fn event_filter(query: &ExportEvents, workspace: &str) -> Result<EventFilter, String> {
    let time = super::rfc3339;
    Ok(EventFilter {
        workspace_id: Some(workspace.to_owned()),
        actor_id: query
            .actor
            .as_deref()
            .map(|a| knowmind_api::text::optional_line("actor", a, 100))
            .transpose()
            .map_err(|e| e.to_string())?,
        token: query
            .token
            .as_deref()
            .map(|t| {
                t.parse::<TokenId>()
                    .map_err(|_| "token must be a token id".to_owned())
            })
            .transpose()?,
        action: query
            .action
            .as_deref()
            .map(|a| a.parse::<Action>().map_err(|e| e.to_string()))
            .transpose()?,
        since: query
            .since
            .as_deref()
            .map(|t| time("since", t))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| time("until", t))
            .transpose()?,
    })
}

fn filter(query: &ExportEvents, workspace: &str) -> Result<EventFilter, ApiError> {
    event_filter(query, workspace).map_err(ApiError::bad_request)
}

/// Audit events
///
/// The workspace's security log, newest first, filtered and paged with `cursor`.
#[utoipa::path(get, path = "/v1/audit/events", operation_id = "listEvents", tag = "audit",
    params(ListEvents),
    responses((status = 200, description = "A page of events", body = Page<Event>)))]
pub(super) async fn events(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ListEvents>,
) -> Result<axum::Json<Page<Event>>, ApiError> {
    let filter = filter(&query.filter(), &who.workspace_id)?;
    let page = app
        .store()
        .audit()
        .events(&filter, query.cursor.as_deref(), query.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(page))
}

/// Export audit events
///
/// Every matching event, oldest first, as JSON Lines (one `Event` per line), streamed.
#[utoipa::path(get, path = "/v1/audit/events/export", operation_id = "exportEvents", tag = "audit",
    params(ExportEvents),
    responses((status = 200, description = "One event per line", content_type = "application/jsonl", body = String)))]
pub(super) async fn export(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<ExportEvents>,
) -> Result<Response, ApiError> {
    let filter = filter(&query, &who.workspace_id)?;
    Ok(jsonl(app.store().audit().clone(), filter))
}

/// Every event matching `filter`, oldest first, streamed as JSON Lines.
pub(crate) fn jsonl(audit: audit::Audit, filter: EventFilter) -> Response {
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Err(e) = audit.export_jsonl(&filter, &mut writer).await {
            tracing::warn!(error = %e, "audit export ended early");
        }
    });
    let mut response = Body::from_stream(ReaderStream::new(reader)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    response
}

/// Checks the caller's workspace's events (bounded; page with `after`): each event's hash and
/// its link to the one before. The whole chain is checked by `knowmind-server audit verify`.
/// Verify the workspace's audit events
///
/// Checks each event's hash and its link to the one before, at most `limit` events after
/// `after`; `more` says whether to call again with `after` = `last_seq`.
#[utoipa::path(get, path = "/v1/audit/verify", operation_id = "verifyEvents", tag = "audit",
    params(VerifyEvents),
    responses((status = 200, description = "What the check found", body = WorkspaceChainReport)))]
pub(super) async fn verify(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    ApiQuery(query): ApiQuery<VerifyEvents>,
) -> Result<axum::Json<WorkspaceChainReport>, ApiError> {
    let report = app
        .store()
        .audit()
        .verify_workspace(
            &who.workspace_id,
            query.after.unwrap_or(0).max(0),
            query.limit.unwrap_or(10_000),
        )
        .await?;
    Ok(axum::Json(report))
}
