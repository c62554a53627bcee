//! A token's page: its security log (calls, addresses, endpoints, calls per hour) and its
//! lifecycle from the audit log.

use askama::Template;
use audit::{EventFilter, UsageSummary};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use knowmind_api::HandoverState;
use time::{Duration, OffsetDateTime};
use token_store::TokenRecord;

use crate::api::AppState;

use super::visible;
use crate::web::render::{html, when, when_or};
use crate::web::{Chrome, PageError, Viewer};

/// Calls a security-log page lists.
const CALLS: u32 = 50;
/// Days the calls-per-hour chart covers.
const CHART_DAYS: i64 = 7;

struct Call {
    at: String,
    ip: String,
    reported: bool,
    endpoint: String,
    status: String,
    outcome: String,
    user_agent: String,
}

struct Unusual {
    at: String,
    severity: &'static str,
    what: &'static str,
    value: String,
    ip: String,
    call: String,
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
    anomalies: Vec<Unusual>,
    calls: Vec<Call>,
    next_calls: Option<String>,
    lifecycle: Vec<Step>,
    record: TokenRecord,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct CallsQuery {
    #[serde(default)]
    calls: String,
    #[serde(default)]
    done: String,
}

pub(crate) async fn show(
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
    let anomalies = audit
        .anomalies(Some(viewer.workspace()), Some(record.id), None, None, 50)
        .await
        .map_err(storage)?
        .items
        .into_iter()
        .map(|a| Unusual {
            at: when(a.at),
            severity: a.severity.as_str(),
            what: a.kind.describe(),
            value: a.value,
            ip: a.client_ip.unwrap_or_else(|| "unknown".into()),
            call: format!("{} {}", a.method, a.route),
        })
        .collect();
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
        anomalies,
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
