//! `knowmind webhook`: the workspace's webhook endpoints and their delivery logs.

use knowmind_api::{Delivery, NewWebhook, Page, Webhook, WebhookCreated};
use reqwest::Method;

use crate::cli::{Cli, WebhookCommand};
use crate::client::{NO_BODY, NO_QUERY};
use crate::commands::oauth::id_segment;
use crate::commands::token::confirm;
use crate::error::CliError;
use crate::output::{self, Style, when};
use crate::{connect, now, print_json, warn_about_token};

pub(crate) async fn run(cli: &Cli, style: Style, command: &WebhookCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let now = now();
    match command {
        WebhookCommand::Add {
            url,
            events,
            description,
        } => {
            let body = NewWebhook {
                url: url.clone(),
                events: events.clone(),
                description: description.clone().unwrap_or_default(),
            };
            let created: WebhookCreated = client
                .call(Method::POST, "/v1/webhooks", NO_QUERY, Some(&body))
                .await?;
            if style.json {
                print_json(&created);
            } else {
                crate::print_secret(&created.secret)?;
                if !style.quiet {
                    eprintln!(
                        "Registered {} for {} ({}). The signing secret above is shown this once: \
                         check each delivery's Knowmind-Signature with it.",
                        created.webhook.id,
                        created.webhook.url,
                        created.webhook.events.join(", ")
                    );
                }
            }
        }
        WebhookCommand::List => {
            let page: Page<Webhook> = client.get("/v1/webhooks", NO_QUERY).await?;
            if style.json {
                print_json(&page.items);
            } else if page.items.is_empty() {
                outln!("No webhook endpoints. Add one with `knowmind webhook add URL`.");
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|w| {
                        vec![
                            w.id.clone(),
                            w.url.clone(),
                            w.events.join(" "),
                            w.pending.to_string(),
                            w.failed.to_string(),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table_dropping(
                        &["ID", "URL", "EVENTS", "PENDING", "FAILED"],
                        &rows,
                        output::width(),
                        &["EVENTS"],
                    )
                );
            }
        }
        WebhookCommand::Deliveries { id, limit } => {
            let id = id_segment(id, "whk_", "webhook")?;
            let page: Page<Delivery> = client
                .get(
                    &format!("/v1/webhooks/{id}/deliveries"),
                    &[("limit", limit.to_string())],
                )
                .await?;
            if style.json {
                print_json(&page.items);
            } else if page.items.is_empty() {
                outln!("Nothing delivered to {id} yet.");
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|d| {
                        let last = d.attempts.last().map_or_else(
                            || "not tried yet".to_owned(),
                            |a| match (a.status, &a.error) {
                                (Some(status), _) => format!("{status} in {} ms", a.duration_ms),
                                (None, Some(error)) => error.clone(),
                                (None, None) => "no answer".to_owned(),
                            },
                        );
                        vec![
                            d.id.clone(),
                            d.event_type.clone(),
                            match d.next_attempt_at {
                                Some(next) => {
                                    format!("{} (next {})", d.state, when(Some(next), now))
                                }
                                None => d.state.to_string(),
                            },
                            d.attempts.len().to_string(),
                            last,
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table_dropping(
                        &["DELIVERY", "EVENT", "STATE", "ATTEMPTS", "LAST ANSWER"],
                        &rows,
                        output::width(),
                        &["LAST ANSWER"],
                    )
                );
            }
        }
        WebhookCommand::Remove { id, yes } => {
            let id = id_segment(id, "whk_", "webhook")?;
            if !yes {
                confirm(&format!(
                    "Remove webhook endpoint {id}? Nothing more is sent to it."
                ))?;
            }
            client
                .send(
                    Method::POST,
                    &format!("/v1/webhooks/{id}/remove"),
                    NO_QUERY,
                    NO_BODY,
                )
                .await?;
            if !style.quiet {
                eprintln!("Removed {id}.");
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}
