//! The audit log page: the workspace's events, filtered and paged, the result of checking
//! their chain, and their export as JSON Lines. Owners and admins only.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use knowmind_api::ExportEvents;

use crate::api::AppState;
use crate::api::audit_log::event_filter;

use super::render::{html, when};
use super::{Chrome, PageError, Viewer};

#[derive(serde::Deserialize, Default)]
pub(super) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
}

impl AuditQuery {
    /// As the API's query: empty fields are absent; a `datetime-local` value (no zone) is UTC.
    fn as_api(&self) -> ExportEvents {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let time = |s: &str| {
            some(s).map(|t| match t.len() {
                16 => format!("{t}:00Z"),
                19 => format!("{t}Z"),
                _ => t,
            })
        };
        ExportEvents {
            actor: some(&self.actor),
            token: some(&self.token),
            action: some(&self.action),
            since: time(&self.since),
            until: time(&self.until),
        }
    }

    fn link(&self, base: &str, cursor: Option<&str>) -> String {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("actor", self.actor.as_str()),
            ("action", &self.action),
            ("token", &self.token),
            ("since", &self.since),
            ("until", &self.until),
            ("cursor", cursor.unwrap_or("")),
        ] {
            if !value.is_empty() {
                url.append_pair(key, value);
            }
        }
        format!("{base}?{}", url.finish())
    }
}

struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    filter: AuditQuery,
    actions: Vec<&'static str>,
    chain: String,
    chain_ok: bool,
    events: Vec<Row>,
    next: Option<String>,
    export: String,
    error: Option<String>,
}

pub(super) async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let audit = app.store.audit();
    let report = audit
        .verify_workspace(viewer.workspace(), 0, 10_000)
        .await
        .map_err(|e| PageError::from(token_store::Error::from(e)))?;
    let (chain, chain_ok) = match &report.broken {
        None if report.more => (
            format!(
                "The chain of the first {} events checks out; run `knowmind-server audit verify` \
                 to check everything.",
                report.events
            ),
            true,
        ),
        None => (
            format!(
                "All {} events of this workspace check out: none was altered.",
                report.events
            ),
            true,
        ),
        Some(broken) => (
            format!(
                "The chain is broken at event #{}: {:?}. Someone altered the log; run \
                 `knowmind-server audit verify` and keep the database as evidence.",
                broken.seq, broken.reason
            ),
            false,
        ),
    };
    let mut error = None;
    let (events, next) = match event_filter(&query.as_api(), viewer.workspace()) {
        Ok(filter) => {
            let cursor = Some(query.cursor.as_str()).filter(|c| !c.is_empty());
            match audit.events(&filter, cursor, 100).await {
                Ok(page) => (page.items, page.next_cursor),
                Err(audit::Error::Invalid { .. }) => {
                    error = Some("That page of events does not exist.".to_owned());
                    (Vec::new(), None)
                }
                Err(e) => return Err(PageError::from(token_store::Error::from(e))),
            }
        }
        Err(message) => {
            error = Some(format!("Cannot filter: {message}."));
            (Vec::new(), None)
        }
    };
    let page = AuditPage {
        chrome: Chrome::of(&viewer, "Audit log", "audit"),
        actions: audit::Action::ALL.iter().map(|a| a.as_str()).collect(),
        chain,
        chain_ok,
        events: events
            .into_iter()
            .map(|e| Row {
                seq: e.seq,
                at: when(e.at),
                actor: match e.actor_id {
                    Some(id) => format!("{} {id}", e.actor_kind),
                    None => e.actor_kind,
                },
                action: e.action,
                target: match (e.target_kind, e.target_id) {
                    (Some(kind), Some(id)) => format!("{kind} {id}"),
                    _ => String::new(),
                },
                outcome: e.outcome,
                ip: e.client_ip.unwrap_or_default(),
                details: e.details.to_string(),
            })
            .collect(),
        next: next.map(|c| query.link("/dashboard/audit", Some(&c))),
        export: query.link("/dashboard/audit/export", None),
        error,
        filter: query,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(status, &page))
}

/// The matching events as JSON Lines, streamed, as a download.
pub(super) async fn export(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let filter = event_filter(&query.as_api(), viewer.workspace())
        .map_err(|message| PageError::Status(StatusCode::BAD_REQUEST, message))?;
    let mut response = crate::api::audit_log::jsonl(app.store.audit().clone(), filter);
    response.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"audit.jsonl\""),
    );
    Ok(response.into_response())
}
