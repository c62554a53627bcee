//! Token pages: the list with filters, creating a token (shown once), a token's security log
//! and lifecycle, rotating and revoking. Members see and act on their own tokens; owners and
//! admins on every token of the workspace.

use std::collections::HashMap;

use askama::Template;
use audit::EventFilter;
use audit::UsageSummary;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::{Duration, OffsetDateTime};
use token_core::{Scope, Scopes, TokenId};
use token_store::{NewToken, Revocation, Rotation, TokenFilter, TokenRecord, TokenState};

use crate::api::AppState;

use super::render::{html, when, when_or};
use super::{Chrome, PageError, Viewer};

/// Tokens a page lists.
const PAGE: u32 = 50;
/// Calls a security-log page lists.
const CALLS: u32 = 50;
/// Days the calls-per-hour chart covers.
const CHART_DAYS: i64 = 7;

#[derive(serde::Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    expiring: String,
    #[serde(default)]
    unused: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

struct Row {
    id: TokenId,
    name: String,
    client: String,
    scopes: String,
    owner: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct ListPage {
    chrome: Chrome,
    filter: ListQuery,
    states: [(&'static str, &'static str); 4],
    scopes: [&'static str; 4],
    sorts: [(&'static str, &'static str); 4],
    owners: Vec<(String, String)>,
    rows: Vec<Row>,
    next: Option<String>,
    error: Option<String>,
}

const SCOPE_NAMES: [&str; 4] = ["read", "write", "admin", "introspect"];

fn days(field: &str, text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .ok()
        .filter(|d| (0..=3_650).contains(d))
        .map(Some)
        .ok_or_else(|| format!("{field} must be a whole number of days from 0 to 3650"))
}

/// The filter a query asks for, as the store takes it; an error names the bad field.
fn filter_of(
    query: &ListQuery,
    viewer: &Viewer,
    now: OffsetDateTime,
) -> Result<TokenFilter, String> {
    let state = match query.state.as_str() {
        "" | "active" => Some(TokenState::Active),
        "all" => None,
        "revoked" => Some(TokenState::Revoked),
        "expired" => Some(TokenState::Expired),
        _ => return Err("unknown state".into()),
    };
    let scope = match query.scope.as_str() {
        "" => None,
        other => Some(other.parse::<Scope>().map_err(|e| e.to_string())?),
    };
    let owner = if viewer.signed_in.is_admin() {
        Some(query.owner.clone()).filter(|o| !o.is_empty())
    } else {
        Some(viewer.signed_in.member.id.clone()) // members see their own tokens only
    };
    let text = |field: &'static str, value: &str| {
        knowmind_api::text::optional_line(field, value.trim(), 100)
            .map(|v| Some(v).filter(|v| !v.is_empty()))
            .map_err(|e| e.to_string())
    };
    Ok(TokenFilter {
        state,
        scope,
        owner_id: owner,
        name: text("name", &query.name)?,
        client: text("device or application", &query.client)?,
        expires_before: days("expiring within", &query.expiring)?.map(|d| now + Duration::days(d)),
        last_used_before: days("unused for", &query.unused)?.map(|d| now - Duration::days(d)),
    })
}

pub(super) async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(mut query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let store = &app.store;
    let now = store.now();
    let members = store.list_members(viewer.workspace()).await?;
    let names: HashMap<String, String> = members
        .iter()
        .map(|m| (m.id.clone(), m.name.clone()))
        .collect();
    if query.state.is_empty() {
        query.state = "active".into();
    }
    let mut error = None;
    let (mut records, next_cursor) = match filter_of(&query, &viewer, now) {
        Ok(filter) => {
            // Newest first pages through everything; another order sorts the first 500.
            let newest = matches!(query.sort.as_str(), "" | "newest");
            let cursor = Some(query.cursor.as_str()).filter(|c| newest && !c.is_empty());
            let limit = if newest { PAGE } else { 500 };
            match store
                .list_tokens(viewer.workspace(), &filter, cursor, limit)
                .await
            {
                Ok(page) => (page.items, page.next_cursor.filter(|_| newest)),
                Err(e @ token_store::Error::Invalid { .. }) => {
                    error = Some(e.to_string());
                    (Vec::new(), None)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(message) => {
            error = Some(format!("Cannot filter: {message}."));
            (Vec::new(), None)
        }
    };
    match query.sort.as_str() {
        "expires" => records.sort_by_key(|t| (t.expires_at.is_none(), t.expires_at)),
        "last_used" => records.sort_by_key(|t| std::cmp::Reverse(t.last_used_at)),
        "name" => records.sort_by_key(|t| t.name.to_lowercase()),
        _ => {}
    }
    let rows = records
        .iter()
        .map(|t| Row {
            id: t.id,
            name: t.name.clone(),
            client: t.client.clone(),
            scopes: t.scopes.to_string(),
            owner: names
                .get(&t.owner_id)
                .cloned()
                .unwrap_or_else(|| t.owner_id.clone()),
            created: when(t.created_at),
            expires: when_or(t.expires_at, "never"),
            last_used: when_or(t.last_used_at, "never"),
            state: t.state.as_str(),
        })
        .collect();
    let next = next_cursor.map(|cursor| {
        let pairs = [
            ("state", query.state.as_str()),
            ("scope", &query.scope),
            ("owner", &query.owner),
            ("name", &query.name),
            ("client", &query.client),
            ("expiring", &query.expiring),
            ("unused", &query.unused),
            ("sort", &query.sort),
            ("cursor", &cursor),
        ];
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            if !value.is_empty() {
                url.append_pair(key, value);
            }
        }
        format!("/dashboard/tokens?{}", url.finish())
    });
    let owners = if viewer.signed_in.is_admin() {
        members.into_iter().map(|m| (m.id, m.name)).collect()
    } else {
        Vec::new()
    };
    let page = ListPage {
        chrome: Chrome::of(&viewer, "Tokens", "tokens"),
        filter: query,
        states: [
            ("active", "active"),
            ("expired", "expired"),
            ("revoked", "revoked"),
            ("all", "all"),
        ],
        scopes: SCOPE_NAMES,
        sorts: [
            ("newest", "newest first"),
            ("expires", "expiring soonest"),
            ("last_used", "recently used"),
            ("name", "name"),
        ],
        owners,
        rows,
        next,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(status, &page))
}

/// What the creation form holds (kept when it is shown again with an error).
#[derive(Default)]
pub(super) struct NewForm {
    name: String,
    client: String,
    description: String,
    scopes: Vec<String>,
    expires: String,
    form_id: String,
}

impl NewForm {
    /// Reads the form's body by hand: the scope checkboxes repeat one key, which serde's form
    /// decoder cannot gather into a list. Unknown keys are ignored, like a form decoder does.
    fn parse(body: &[u8]) -> Self {
        let mut form = NewForm::default();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            match key.as_ref() {
                "name" => form.name = value,
                "client" => form.client = value,
                "description" => form.description = value,
                "scopes" => form.scopes.push(value),
                "expires" => form.expires = value,
                "form_id" => form.form_id = value,
                _ => {}
            }
        }
        form
    }

    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    form_id: String,
    scope_choices: Vec<(&'static str, &'static str, bool)>,
    expiries: [(&'static str, &'static str); 6],
    error: Option<String>,
}

const EXPIRIES: [(&str, &str); 6] = [
    ("7d", "in 7 days"),
    ("30d", "in 30 days"),
    ("90d", "in 90 days (recommended)"),
    ("180d", "in 180 days"),
    ("365d", "in a year"),
    ("never", "never (not recommended)"),
];

fn new_page(viewer: &Viewer, form: NewForm, error: Option<String>) -> Result<NewPage, PageError> {
    let admin = viewer.signed_in.is_admin();
    Ok(NewPage {
        chrome: Chrome::of(viewer, "New token", "tokens"),
        form,
        form_id: token_store::BearerSecret::random()?
            .expose_secret()
            .to_owned(),
        scope_choices: vec![
            ("read", "read data", true),
            ("write", "create and change data", true),
            (
                "admin",
                "manage the workspace's tokens and read its audit log",
                admin,
            ),
            (
                "introspect",
                "let a resource server check other tokens",
                true,
            ),
        ],
        expiries: EXPIRIES,
        error,
    })
}

pub(super) async fn new(viewer: Viewer) -> Result<Response, PageError> {
    let form = NewForm {
        scopes: vec!["read".into()],
        expires: "90d".into(),
        ..NewForm::default()
    };
    Ok(html(StatusCode::OK, &new_page(&viewer, form, None)?))
}

#[derive(Template)]
#[template(path = "token_shown.html")]
struct ShownPage {
    chrome: Chrome,
    heading: &'static str,
    record: TokenRecord,
    secret: String,
    replaced: Option<TokenId>,
    grace_note: String,
}

/// The page a form shows when it was submitted before: its secret was shown then, and only then.
fn already_submitted() -> PageError {
    PageError::Status(
        StatusCode::CONFLICT,
        "This form was already submitted. A token is shown only once, right after it is \
         made; if you did not copy it, revoke that token and create another."
            .into(),
    )
}

pub(super) async fn create(
    State(app): State<AppState>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let form = NewForm::parse(&body);
    let store = &app.store;
    let now = store.now();
    let scopes: Result<Vec<Scope>, _> = form.scopes.iter().map(|s| s.parse::<Scope>()).collect();
    let checked = match (&scopes, form.expires.as_str()) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(s), _) if s.is_empty() => Err("choose at least one scope".to_owned()),
        (Ok(_), "never") => Ok(None),
        (Ok(_), text) => token_core::parse_duration(text)
            .map(|d| Some(now + d))
            .map_err(|e| e.to_string()),
    };
    let expires_at = match checked {
        Ok(expires_at) => expires_at,
        Err(message) => {
            let page = new_page(&viewer, form, Some(message))?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    if !store
        .claim_form(&viewer.signed_in.member.id, &form.form_id)
        .await?
    {
        return Err(already_submitted());
    }
    let new = NewToken {
        owner_id: viewer.signed_in.member.id.clone(),
        name: form.name.clone(),
        description: form.description.clone(),
        client: form.client.clone(),
        scopes: Scopes::of(&scopes.unwrap_or_default()),
        expires_at,
    };
    match store
        .create_token(viewer.workspace(), new, &viewer.context)
        .await
    {
        Ok((record, token)) => {
            let page = ShownPage {
                chrome: Chrome::of(&viewer, "Token created", "tokens"),
                heading: "Token created",
                record,
                secret: token.expose_secret().to_owned(),
                replaced: None,
                grace_note: String::new(),
            };
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(e @ token_store::Error::Invalid { .. }) => {
            let page = new_page(&viewer, form, Some(e.to_string()))?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// A token the viewer may see: their own, or any of the workspace's for owners and admins.
/// Anything else is "not found", like a token of another workspace.
async fn visible(app: &AppState, viewer: &Viewer, id: &str) -> Result<TokenRecord, PageError> {
    let id: TokenId = id.parse().map_err(|_| PageError::not_found())?;
    let record = app.store.get_token(viewer.workspace(), id).await?;
    if record.owner_id == viewer.signed_in.member.id || viewer.signed_in.is_admin() {
        Ok(record)
    } else {
        Err(PageError::not_found())
    }
}

struct Call {
    at: String,
    ip: String,
    reported: bool,
    endpoint: String,
    status: String,
    outcome: String,
    user_agent: String,
}

struct Step {
    at: String,
    action: String,
    actor: String,
    note: String,
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    chrome: Chrome,
    own: bool,
    state: &'static str,
    scopes: String,
    owner: String,
    created: String,
    expires: String,
    revoked: String,
    last_used: Option<String>,
    total: i64,
    summary: UsageSummary,
    ips: Vec<(String, i64, String, String)>,
    routes: Vec<(String, i64, String, String)>,
    chart: String,
    calls: Vec<Call>,
    next_calls: Option<String>,
    lifecycle: Vec<Step>,
    record: TokenRecord,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct CallsQuery {
    #[serde(default)]
    calls: String,
    #[serde(default)]
    done: String,
}

pub(super) async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<CallsQuery>,
) -> Result<Response, PageError> {
    let record = visible(&app, &viewer, &id).await?;
    let store = &app.store;
    let audit = store.audit();
    let now = store.now();
    let summary = audit.usage_summary(record.id).await.map_err(storage)?;
    let cursor = Some(query.calls.as_str()).filter(|c| !c.is_empty());
    let calls = match audit.usage(record.id, cursor, CALLS).await {
        Ok(page) => page,
        Err(audit::Error::Invalid { .. }) => return Err(PageError::not_found()),
        Err(e) => return Err(storage(e)),
    };
    let hourly = audit
        .usage_per_hour(record.id, now - Duration::days(CHART_DAYS))
        .await
        .map_err(storage)?;
    let events = audit
        .events(
            &EventFilter {
                workspace_id: Some(viewer.workspace().to_owned()),
                token: Some(record.id),
                ..EventFilter::default()
            },
            None,
            200,
        )
        .await
        .map_err(storage)?;
    let owner = store
        .get_member(viewer.workspace(), &record.owner_id)
        .await
        .map_or_else(
            |_| record.owner_id.clone(),
            |m| format!("{} ({})", m.name, m.email),
        );
    let lifecycle = events
        .items
        .iter()
        .rev()
        .map(|e| Step {
            at: when(e.at),
            action: e.action.clone(),
            actor: match &e.actor_id {
                Some(id) => format!("{} {id}", e.actor_kind),
                None => e.actor_kind.clone(),
            },
            note: ["reason", "grace_period", "rotated_to", "rotated_from"]
                .iter()
                .filter_map(|k| {
                    e.details
                        .get(*k)
                        .and_then(|v| v.as_str())
                        .map(|v| format!("{k} {v}"))
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let page = TokenPage {
        chrome: Chrome::of(&viewer, record.name.clone(), "tokens").with_notice(
            match query.done.as_str() {
                "revoked" => {
                    Some("The token is revoked. Calls with it are refused from now on.".into())
                }
                _ => None,
            },
        ),
        own: record.owner_id == viewer.signed_in.member.id,
        state: record.state.as_str(),
        scopes: record.scopes.to_string(),
        owner,
        created: when(record.created_at),
        expires: when_or(record.expires_at, "never"),
        revoked: when_or(record.revoked_at, ""),
        last_used: record.last_used_at.map(when),
        total: summary.total,
        ips: summary
            .ips
            .iter()
            .map(|u| {
                (
                    u.ip.clone().unwrap_or_else(|| "unknown".into()),
                    u.count,
                    when(u.first_seen),
                    when(u.last_seen),
                )
            })
            .collect(),
        routes: summary
            .routes
            .iter()
            .map(|u| {
                (
                    format!("{} {}", u.method, u.route),
                    u.count,
                    when(u.first_seen),
                    when(u.last_seen),
                )
            })
            .collect(),
        summary,
        chart: chart(&hourly, now),
        calls: calls
            .items
            .iter()
            .map(|c| Call {
                at: when(c.record.at),
                ip: c
                    .record
                    .client_ip
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
                reported: c.record.reported_by.is_some(),
                endpoint: format!("{} {}", c.record.method, c.record.route),
                status: c.record.status.map(|s| s.to_string()).unwrap_or_default(),
                outcome: c.record.outcome.as_str().to_owned(),
                user_agent: c.record.user_agent.clone().unwrap_or_default(),
            })
            .collect(),
        next_calls: calls
            .next_cursor
            .map(|c| format!("/dashboard/tokens/{}?calls={c}", record.id)),
        lifecycle,
        record,
    };
    Ok(html(StatusCode::OK, &page))
}

fn storage(e: audit::Error) -> PageError {
    PageError::from(token_store::Error::from(e))
}

/// Calls per hour over the last [`CHART_DAYS`] days as an SVG bar chart, one bar per hour,
/// with a tick and label at each UTC midnight. Only numbers go into it.
fn chart(hourly: &[(OffsetDateTime, i64)], now: OffsetDateTime) -> String {
    let hours = CHART_DAYS * 24;
    let end = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    let start = end - Duration::hours(hours - 1);
    let mut counts = vec![0i64; usize::try_from(hours).unwrap_or(0)];
    for (hour, calls) in hourly {
        let index = (*hour - start).whole_hours();
        if let Ok(i) = usize::try_from(index)
            && let Some(slot) = counts.get_mut(i)
        {
            *slot += calls;
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, bar) = (hours * 4, 100i64, 4i64);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {width} {}" role="img" aria-label="Calls per hour, last {CHART_DAYS} days, at most {max} in one hour" xmlns="http://www.w3.org/2000/svg">"#,
        height + 14
    );
    for (i, count) in (0i64..).zip(&counts) {
        if *count > 0 {
            let h = (count * height / max).max(1);
            svg.push_str(&format!(
                r#"<rect class="bar" x="{}" y="{}" width="{}" height="{h}"><title>{count}</title></rect>"#,
                i * bar,
                height - h,
                bar - 1
            ));
        }
        let at = start + Duration::hours(i);
        if at.hour() == 0 {
            svg.push_str(&format!(
                r#"<text x="{}" y="{}">{}-{:02}</text>"#,
                i * bar + 1,
                height + 11,
                u8::from(at.month()),
                at.day()
            ));
        }
    }
    svg.push_str(&format!(
        r#"<text x="{}" y="10" text-anchor="end">max {max}/h</text></svg>"#,
        width - 2
    ));
    svg
}

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

pub(super) async fn confirm_revoke(
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
pub(super) struct RevokeForm {
    #[serde(default)]
    reason: String,
}

pub(super) async fn revoke(
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

pub(super) async fn confirm_rotate(
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
pub(super) struct RotateForm {
    #[serde(default)]
    grace: String,
    #[serde(default)]
    form_id: String,
}

pub(super) async fn rotate(
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
