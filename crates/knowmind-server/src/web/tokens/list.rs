//! The token list: filters, sort, paging.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use time::{Duration, OffsetDateTime};
use token_core::{Scope, TokenId};
use token_store::{TokenFilter, TokenState};

use crate::api::AppState;

use crate::web::render::{html, when, when_or};
use crate::web::{Chrome, PageError, Viewer};

/// Tokens a page lists.
const PAGE: u32 = 50;

#[derive(serde::Deserialize, Default)]
pub(crate) struct ListQuery {
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
        ..TokenFilter::default()
    })
}

pub(crate) async fn list(
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
