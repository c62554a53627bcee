//! `knowmind audit`: list, export and verify the workspace's audit log.

use std::io::Write;

use knowmind_api::{Event, ListEvents, WorkspaceChainReport};
use reqwest::Method;

use crate::cli::{AuditCommand, Cli};
use crate::client::{NO_BODY, NO_QUERY};
use crate::commands::token::token_path;
use crate::error::CliError;
use crate::output::{self, Style, relative};
use crate::{connect, now, print_json, rfc3339, warn_about_token};

pub(crate) async fn run(cli: &Cli, style: Style, command: &AuditCommand) -> Result<(), CliError> {
    let (client, credential, _) = connect(cli)?;
    match command {
        AuditCommand::List {
            token,
            action,
            since,
            limit,
            all,
        } => {
            let since = since
                .as_deref()
                .map(|since| {
                    token_core::parse_duration(since)
                        .map_err(|e| CliError::usage(format!("--since: {e}")))
                        .map(|period| rfc3339(now() - period))
                })
                .transpose()?
                .flatten();
            // `self` is the token in use, named by its id (events are filtered by id).
            let token = match token.as_deref().map(token_path).transpose()?.as_deref() {
                Some("self") => credential.masked().get(4..20).map(str::to_owned),
                other => other.map(str::to_owned),
            };
            if let Some(action) = action {
                action
                    .parse::<knowmind_api::Action>()
                    .map_err(|e| CliError::usage(format!("--action: {e}")))?;
            }
            let limit = if *all {
                None
            } else {
                Some(limit.unwrap_or(200))
            };
            let (items, more): (Vec<Event>, _) = client
                .all_pages(
                    "/v1/audit/events",
                    |cursor| ListEvents {
                        token: token.clone(),
                        action: action.clone(),
                        since: since.clone(),
                        limit: Some(500),
                        cursor,
                        ..ListEvents::default()
                    },
                    limit,
                )
                .await?;
            if let Some(more) = more {
                style.warn(&format!(
                    "showing the newest {} events; {more} match (--limit N, or --all)",
                    items.len()
                ));
            }
            if style.json {
                print_json(&items);
            } else {
                let now = now();
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            relative(Some(e.at), now),
                            e.action.clone(),
                            e.target_id.clone().unwrap_or_else(|| "-".into()),
                            format!("{}:{}", e.actor_kind, e.actor_id.as_deref().unwrap_or("-")),
                            e.client_ip.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table_dropping(
                        &["SEQ", "WHEN", "ACTION", "TARGET", "ACTOR", "FROM"],
                        &rows,
                        output::width(),
                        &["FROM", "SEQ"],
                    )
                );
            }
        }
        AuditCommand::Export { output } => {
            let response = client
                .send(Method::GET, "/v1/audit/events/export", NO_QUERY, NO_BODY)
                .await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| CliError::new(format!("export interrupted: {e}")))?;
            match output {
                Some(path) => std::fs::write(path, &bytes)
                    .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?,
                None => {
                    if let Err(e) = std::io::stdout().write_all(&bytes) {
                        crate::stdout_failed(e);
                    }
                }
            }
            if !style.quiet {
                eprintln!(
                    "Exported {} events.",
                    bytes.iter().filter(|&&b| b == b'\n').count()
                );
            }
        }
        AuditCommand::Verify => {
            let report: WorkspaceChainReport = client.get("/v1/audit/verify", NO_QUERY).await?;
            if style.json {
                print_json(&report);
            } else if let Some(broken) = &report.broken {
                outln!(
                    "BROKEN at #{}: {}",
                    broken.seq,
                    serde_json::to_value(broken.reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                );
            } else {
                outln!(
                    "intact: {} events of this workspace checked, up to #{}{}",
                    report.events,
                    report.last_seq,
                    if report.more {
                        " (more follow: the server checks 10,000 per request)"
                    } else {
                        ""
                    }
                );
            }
            if report.broken.is_some() {
                return Err(CliError::new("the audit log's hash chain is broken")
                    .hint("see docs/SECURITY.md, 'The audit log'"));
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}
