//! `knowmind incident`: open one for a compromised token (revoked at once, replaced on request),
//! list them, read a report, amend the GDPR Art. 33 record.

use knowmind_api::{
    Incident, IncidentEntry, IncidentReport, IncidentStatus, OpenIncident, OpenedIncident, Page,
    TokenDetail,
};
use reqwest::Method;

use crate::cli::{Cli, IncidentCommand};
use crate::client::NO_QUERY;
use crate::commands::oauth::id_segment;
use crate::commands::token::token_path;
use crate::error::CliError;
use crate::output::{self, Style, when};
use crate::{connect, now, print_json};

pub(crate) async fn run(
    cli: &Cli,
    style: Style,
    command: &IncidentCommand,
) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let now = now();
    match command {
        IncidentCommand::Open {
            id,
            since,
            replace,
            summary,
        } => {
            let since = since
                .as_deref()
                .map(|text| {
                    time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| {
                        CliError::usage(format!("--since: {text:?} is not an RFC 3339 time"))
                    })
                })
                .transpose()?;
            let path = token_path(id)?;
            let token_id = if path == "self" {
                client
                    .get::<TokenDetail>("/v1/tokens/self", NO_QUERY)
                    .await?
                    .record
                    .id
            } else {
                path.parse()
                    .map_err(|_| CliError::usage(format!("{id:?} is not a token id")))?
            };
            let body = OpenIncident {
                token_ids: vec![token_id],
                since,
                replace: *replace,
                summary: summary.clone().unwrap_or_default(),
            };
            let opened: OpenedIncident = client
                .call(Method::POST, "/v1/incidents", NO_QUERY, Some(&body))
                .await?;
            if style.json {
                print_json(&opened);
                return Ok(());
            }
            for replacement in &opened.replacements {
                crate::print_secret(&replacement.token)?;
            }
            if !style.quiet {
                let i = &opened.incident;
                eprintln!(
                    "Opened {}: {} revoked (with every token rotated from it). The GDPR Art. 33 deadline is {}.",
                    i.id,
                    token_id,
                    when(Some(i.deadline), now)
                );
                for replacement in &opened.replacements {
                    eprintln!(
                        "Replacement {} ({}) is on stdout, shown this once: deploy it now.",
                        replacement.record.id, replacement.record.name
                    );
                }
                eprintln!(
                    "Next: `knowmind incident report {}` for what was unusual, then record the assessment with `knowmind incident amend {} …`.",
                    i.id, i.id
                );
            }
        }
        IncidentCommand::List => {
            let page: Page<Incident> = client.get("/v1/incidents", NO_QUERY).await?;
            if style.json {
                print_json(&page.items);
            } else if page.items.is_empty() {
                outln!("No incidents.");
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.clone(),
                            i.status.to_string(),
                            if i.overdue {
                                format!("⚠ overdue since {}", when(Some(i.deadline), now))
                            } else {
                                when(Some(i.deadline), now)
                            },
                            i.tokens
                                .iter()
                                .map(|t| t.token_id.to_string())
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table_dropping(
                        &["ID", "STATUS", "DEADLINE", "TOKENS"],
                        &rows,
                        output::width(),
                        &["TOKENS"]
                    )
                );
            }
        }
        IncidentCommand::Report { id, format } => {
            let id = id_segment(id, "inc_", "incident")?;
            let report: IncidentReport =
                client.get(&format!("/v1/incidents/{id}"), NO_QUERY).await?;
            match (format.as_str(), style.json) {
                ("json", _) | (_, true) => print_json(&report),
                ("md", false) => outln!("{}", report.to_markdown()),
                (other, false) => {
                    return Err(CliError::usage(format!(
                        "--format: md or json, not {other:?}"
                    )));
                }
            }
        }
        IncidentCommand::Amend {
            id,
            status,
            nature,
            data_subjects,
            records,
            dpo_contact,
            consequences,
            measures,
            decision_reason,
            note,
        } => {
            let id = id_segment(id, "inc_", "incident")?;
            let status = status
                .as_deref()
                .map(|s| {
                    s.replace('-', "_")
                        .parse::<IncidentStatus>()
                        .map_err(|e| CliError::usage(format!("--status: {e}")))
                })
                .transpose()?;
            let entry = IncidentEntry {
                status,
                nature: nature.clone(),
                data_subjects: data_subjects.clone(),
                records: records.clone(),
                dpo_contact: dpo_contact.clone(),
                consequences: consequences.clone(),
                measures: measures.clone(),
                decision_reason: decision_reason.clone(),
                note: note.clone(),
            };
            if entry == IncidentEntry::default() {
                return Err(CliError::usage(
                    "say what to record (--status, --nature, --note, …)",
                ));
            }
            let incident: Incident = client
                .call(
                    Method::POST,
                    &format!("/v1/incidents/{id}/entries"),
                    NO_QUERY,
                    Some(&entry),
                )
                .await?;
            if style.json {
                print_json(&incident);
            } else if !style.quiet {
                eprintln!("Recorded. {} is {}.", incident.id, incident.status);
            }
        }
    }
    Ok(())
}
