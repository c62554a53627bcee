//! `/v1/incidents`: open an incident (revoking its tokens), read its report, amend its record.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use knowmind_api::{
    Incident, IncidentEntry, IncidentReport, Issued, OpenIncident, OpenedIncident, Page,
};

use super::{AppState, Caller};
use knowmind_axum::{ApiError, ApiJson, ApiQuery, Authenticated};

/// `{id}` of an incident route.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct IncidentPath {
    /// The incident id (`inc_` and 16 base62 characters).
    id: String,
}

/// `GET /v1/incidents/{id}` options.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportFormat {
    /// `json` (the default) or `md`: the record as Markdown, for a data protection officer.
    #[serde(default)]
    format: Option<String>,
}

/// Open an incident
///
/// For a token believed compromised: in one transaction its family is revoked (reason
/// `compromised`) and the incident opened at this moment of awareness, with the GDPR Art. 33
/// deadline 72 hours later; with `replace`, each token gets a replacement (plaintext in this
/// answer only). Audited as `incident.opened`.
#[utoipa::path(post, path = "/v1/incidents", operation_id = "openIncident", tag = "incidents",
    request_body = OpenIncident,
    responses((status = 201, description = "The incident, and the replacements", body = OpenedIncident)))]
pub(super) async fn open(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    ApiJson(body): ApiJson<OpenIncident>,
) -> Result<Response, ApiError> {
    let (incident, replacements) = app
        .store()
        .open_incident(&who.workspace_id, body, &context)
        .await?;
    let replacements = replacements
        .into_iter()
        .map(|(record, token)| Issued {
            token: token.expose_secret().to_owned(),
            record,
        })
        .collect();
    Ok(super::no_store(
        StatusCode::CREATED,
        OpenedIncident {
            incident,
            replacements,
        },
    ))
}

/// The workspace's incidents
///
/// Newest first; `overdue` marks those still open past their deadline.
#[utoipa::path(get, path = "/v1/incidents", operation_id = "listIncidents", tag = "incidents",
    responses((status = 200, description = "The incidents", body = Page<Incident>)))]
pub(super) async fn list(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<axum::Json<Page<Incident>>, ApiError> {
    Ok(axum::Json(Page {
        items: app.store().list_incidents(&who.workspace_id).await?,
        next_cursor: None,
    }))
}

/// An incident's report
///
/// The incident, the calls made with its tokens in its window, the addresses and endpoints
/// first seen in it, the tokens' own changes, OAuth connections made or used in it, and the
/// record. `?format=md` gives the record as Markdown.
#[utoipa::path(get, path = "/v1/incidents/{id}", operation_id = "getIncident", tag = "incidents",
    params(IncidentPath, ReportFormat),
    responses((status = 200, description = "The report", body = IncidentReport)))]
pub(super) async fn report(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Path(path): Path<IncidentPath>,
    ApiQuery(format): ApiQuery<ReportFormat>,
) -> Result<Response, ApiError> {
    let report = app
        .store()
        .incident_report(&who.workspace_id, &path.id)
        .await?;
    match format.format.as_deref() {
        None | Some("json") => Ok(axum::Json(report).into_response()),
        Some("md") => {
            let mut response = report.to_markdown().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/markdown; charset=utf-8"),
            );
            Ok(response)
        }
        Some(_) => Err(ApiError::bad_request("format: json or md")),
    }
}

/// Amend an incident's record
///
/// Records the Art. 33(3) facts, the notification decision and its reason, or a note, and moves
/// the status on. Earlier entries stay. Audited as `incident.updated`.
#[utoipa::path(post, path = "/v1/incidents/{id}/entries", operation_id = "amendIncident", tag = "incidents",
    params(IncidentPath),
    request_body = IncidentEntry,
    responses((status = 200, description = "The incident as it is now", body = Incident)))]
pub(super) async fn amend(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Caller(context): Caller,
    Path(path): Path<IncidentPath>,
    ApiJson(body): ApiJson<IncidentEntry>,
) -> Result<axum::Json<Incident>, ApiError> {
    Ok(axum::Json(
        app.store()
            .amend_incident(&who.workspace_id, &path.id, body, &context)
            .await?,
    ))
}
