//! `knowmind token usage`: a token's security log, the calls made with it.

use knowmind_api::Usage;

use super::token_path;
use crate::client::Client;
use crate::credentials::Credential;
use crate::error::CliError;
use crate::output::{self, Style, relative, table};
use crate::{now, print_json};

pub(super) async fn usage(
    client: &Client,
    credential: &Credential,
    style: Style,
    id: &str,
    limit: Option<usize>,
) -> Result<(), CliError> {
    // There is no `/v1/tokens/self/usage`: the token in use is named by its id.
    let path = match token_path(id)?.as_str() {
        "self" => credential
            .masked()
            .get(4..20)
            .unwrap_or_default()
            .to_owned(),
        other => other.to_owned(),
    };
    // The summary comes with the first page of calls; older calls follow the cursor.
    let route = format!("/v1/tokens/{path}/usage");
    let page = |cursor: Option<String>| knowmind_api::PageQuery {
        cursor,
        limit: Some(500),
    };
    let mut usage: Usage = client.get(&route, &page(None)).await?;
    let mut recent = std::mem::take(&mut usage.recent);
    while limit.is_none_or(|limit| recent.len() < limit)
        && let Some(cursor) = usage.next_cursor.take()
    {
        let older: Usage = client.get(&route, &page(Some(cursor))).await?;
        recent.extend(older.recent);
        usage.next_cursor = older.next_cursor;
    }
    let beyond = limit.map_or(0, |limit| recent.len().saturating_sub(limit));
    if let Some(limit) = limit {
        recent.truncate(limit);
    }
    if beyond > 0 || usage.next_cursor.is_some() {
        let more = if usage.next_cursor.is_some() {
            format!("at least {} more", beyond.max(1))
        } else {
            format!("{beyond} more")
        };
        style.warn(&format!(
            "showing the newest {} calls; {more} were recorded (--limit N, or --all)",
            recent.len()
        ));
    }
    usage.recent = recent;
    usage.next_cursor = None;
    if style.json {
        print_json(&usage);
        return Ok(());
    }
    let now = now();
    // What was unusual first: it is what someone reading a security log is looking for.
    let anomalies: Vec<Vec<String>> = usage
        .anomalies
        .iter()
        .map(|a| {
            vec![
                relative(Some(a.at), now),
                a.severity.to_string(),
                a.kind.describe().to_owned(),
                a.value.clone(),
                a.client_ip.clone().unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    if !anomalies.is_empty() {
        outln!(
            "{}\n",
            table(
                &["WHEN", "SEVERITY", "ANOMALY", "VALUE", "FROM"],
                &anomalies,
                output::width()
            )
        );
    }
    let ips: Vec<Vec<String>> = usage
        .summary
        .ips
        .iter()
        .map(|i| {
            vec![
                i.ip.clone().unwrap_or_else(|| "?".into()),
                i.count.to_string(),
                relative(Some(i.first_seen), now),
                relative(Some(i.last_seen), now),
            ]
        })
        .collect();
    outln!(
        "{}\n",
        table(
            &["ADDRESS", "CALLS", "FIRST SEEN", "LAST SEEN"],
            &ips,
            output::width()
        )
    );
    let routes: Vec<Vec<String>> = usage
        .summary
        .routes
        .iter()
        .map(|r| {
            vec![
                format!("{} {}", r.method, r.route),
                r.count.to_string(),
                relative(Some(r.first_seen), now),
                relative(Some(r.last_seen), now),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &["ENDPOINT", "CALLS", "FIRST SEEN", "LAST SEEN"],
            &routes,
            output::width()
        )
    );
    let calls: Vec<Vec<String>> = usage
        .recent
        .iter()
        .map(|c| {
            let r = &c.record;
            vec![
                relative(Some(r.at), now),
                format!("{} {}", r.method, r.route),
                r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                r.outcome.to_string(),
                r.client_ip.clone().unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    if !calls.is_empty() {
        outln!(
            "\n{}",
            table(
                &["WHEN", "CALL", "STATUS", "OUTCOME", "FROM"],
                &calls,
                output::width()
            )
        );
    }
    Ok(())
}
