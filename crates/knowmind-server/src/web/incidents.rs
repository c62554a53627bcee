//! Incidents on the dashboard, for owners and admins: the button on a token's page that opens
//! one (revoking the token and, if asked, showing its replacement once), the list with overdue
//! ones flagged, and an incident's report with its Markdown export. Every action is the store
//! call the API makes.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use knowmind_api::{Incident, IncidentEntry, IncidentReport, IncidentStatus, OpenIncident};

use crate::api::AppState;

use super::render::{html, when};
use super::{Chrome, PageError, Viewer};

#[derive(Template)]
#[template(path = "incidents.html")]
struct ListPage {
    chrome: Chrome,
    incidents: Vec<(Incident, String)>,
}

/// `GET /dashboard/incidents`.
pub(super) async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let incidents = app
        .store
        .list_incidents(viewer.workspace())
        .await?
        .into_iter()
        .map(|i| {
            let deadline = when(i.deadline);
            (i, deadline)
        })
        .collect();
    let page = ListPage {
        chrome: Chrome::of(&viewer, "Incidents", "incidents"),
        incidents,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub(super) struct NewQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "incident_new.html")]
struct NewPage {
    chrome: Chrome,
    token_id: String,
    token_name: String,
}

/// `GET /dashboard/incidents/new?token=…`: what opening one will do, and the button.
pub(super) async fn new(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NewQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let id = query.token.parse().map_err(|_| PageError::not_found())?;
    let record = app.store.get_token(viewer.workspace(), id).await?;
    let page = NewPage {
        chrome: Chrome::of(&viewer, "Open an incident", "incidents"),
        token_id: record.id.to_string(),
        token_name: record.name,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub(super) struct OpenForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    replace: Option<String>,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    chrome: Chrome,
    report: IncidentReport,
    deadline: String,
    opened: String,
    /// A replacement's plaintext, on the page that opened the incident only.
    replacements: Vec<(String, String)>,
    /// The record's fields as last recorded: (form name, label, value).
    facts: Vec<(&'static str, &'static str, String)>,
    statuses: &'static [IncidentStatus],
    /// The amendments, oldest first: when, by whom, what.
    entries: Vec<(String, String, String)>,
    /// Why the last amendment was refused, shown above the form.
    error: Option<String>,
}

/// `POST /dashboard/incidents`: revoke, open, and show the replacements once.
pub(super) async fn open(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<OpenForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let id = form.token.parse().map_err(|_| PageError::not_found())?;
    let open = OpenIncident {
        token_ids: vec![id],
        since: None,
        replace: form.replace.is_some(),
        summary: form.summary,
    };
    let (incident, replacements) = app
        .store
        .open_incident(viewer.workspace(), open, &viewer.context)
        .await?;
    let replacements = replacements
        .into_iter()
        .map(|(record, token)| (record.name, token.expose_secret().to_owned()))
        .collect();
    let page = incident_page(&app, &viewer, &incident.id, replacements).await?;
    Ok(html(StatusCode::CREATED, &page))
}

async fn incident_page(
    app: &AppState,
    viewer: &Viewer,
    id: &str,
    replacements: Vec<(String, String)>,
) -> Result<IncidentPage, PageError> {
    let report = app.store.incident_report(viewer.workspace(), id).await?;
    let facts: Vec<_> = IncidentEntry::FACTS
        .iter()
        .map(|(name, label)| {
            let value = report.latest(|e| e.fact(name)).unwrap_or_default();
            (*name, *label, value.to_owned())
        })
        .collect();
    let entries = report
        .entries
        .iter()
        .map(|e| {
            let mut what: Vec<String> = e
                .entry
                .status
                .map(|s| format!("status → {s}"))
                .into_iter()
                .chain(e.entry.note.clone())
                .collect();
            let facts = IncidentEntry::FACTS
                .iter()
                .filter(|(name, _)| e.entry.fact(name).is_some())
                .count();
            if facts > 0 {
                what.push(format!("{facts} fact(s) recorded"));
            }
            (when(e.at), e.by.clone(), what.join("; "))
        })
        .collect();
    Ok(IncidentPage {
        chrome: Chrome::of(viewer, "Incident", "incidents"),
        deadline: when(report.incident.deadline),
        opened: when(report.incident.opened_at),
        report,
        replacements,
        facts,
        statuses: &IncidentStatus::ALL[1..],
        entries,
        error: None,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct ShowQuery {
    #[serde(default)]
    done: String,
}

/// `GET /dashboard/incidents/{id}`.
pub(super) async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let mut page = incident_page(&app, &viewer, &id, Vec::new()).await?;
    if query.done == "recorded" {
        page.chrome = page
            .chrome
            .with_notice(Some("Recorded. Earlier entries stay in the record.".into()));
    }
    Ok(html(StatusCode::OK, &page))
}

/// `GET /dashboard/incidents/{id}/report.md`: the record for the data protection officer.
pub(super) async fn markdown(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let report = app.store.incident_report(viewer.workspace(), &id).await?;
    let mut response = report.to_markdown().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.md\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `POST /dashboard/incidents/{id}/record`: amends the record with the fields that changed
/// (and the status, if one is chosen); earlier entries stay.
pub(super) async fn amend(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let report = app.store.incident_report(viewer.workspace(), &id).await?;
    let mut entry = serde_json::Map::new();
    for (name, _) in IncidentEntry::FACTS {
        let value = form.get(name).map(|v| v.trim()).unwrap_or_default();
        if !value.is_empty() && Some(value) != report.latest(|e| e.fact(name)) {
            entry.insert(name.to_owned(), value.into());
        }
    }
    for name in ["status", "note"] {
        if let Some(value) = form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            entry.insert(name.to_owned(), value.into());
        }
    }
    let outcome = if entry.is_empty() {
        Err("Nothing changed: fill in or change a field first.".to_owned())
    } else if let Ok(entry) = serde_json::from_value::<IncidentEntry>(entry.into()) {
        match app
            .store
            .amend_incident(viewer.workspace(), &id, entry, &viewer.context)
            .await
        {
            Ok(_) => Ok(()),
            Err(e @ token_store::Error::Invalid { .. }) => Err(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    } else {
        Err("Choose a status from the list.".to_owned())
    };
    match outcome {
        Ok(()) => Ok(
            Redirect::to(&format!("/dashboard/incidents/{id}?done=recorded#record"))
                .into_response(),
        ),
        Err(message) => {
            let mut page = incident_page(&app, &viewer, &id, Vec::new()).await?;
            page.error = Some(message);
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}
