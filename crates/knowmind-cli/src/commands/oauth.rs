//! `knowmind oauth`: the workspace's OAuth clients (connectors) and its members' connections.

use knowmind_api::{Connection, OAuthClient, Page, Registration, RemoveClient};
use reqwest::Method;

use crate::cli::{Cli, ClientsCommand, ConnectionsCommand, OauthCommand};
use crate::client::{NO_BODY, NO_QUERY};
use crate::commands::token::confirm;
use crate::error::CliError;
use crate::output::{self, Style, relative, table};
use crate::{connect, now, print_json, warn_about_token};

/// Why a client deserves a look, if it does.
fn attention(client: &OAuthClient) -> Option<&'static str> {
    if client.removed_at.is_some() {
        return None;
    }
    match (client.registration, client.ever_approved) {
        (Registration::Dynamic, false) => Some("self-registered, never approved"),
        (Registration::Dynamic, true) => Some("self-registered"),
        (Registration::Admin, false) if !client.client_credentials => Some("never approved"),
        _ => None,
    }
}

/// A path segment that can be a client or connection id, or a usage error.
pub(crate) fn id_segment<'a>(id: &'a str, prefix: &str, what: &str) -> Result<&'a str, CliError> {
    if id.starts_with(prefix)
        && id.len() <= 40
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(CliError::usage(format!(
            "{id:?} is not a {what} id ({prefix}…)"
        )))
    }
}

pub(crate) async fn run(cli: &Cli, style: Style, command: &OauthCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let now = now();
    match command {
        OauthCommand::Clients(ClientsCommand::List { all }) => {
            let page: Page<OAuthClient> = client
                .get("/v1/oauth/clients", &[("include_removed", all.to_string())])
                .await?;
            if style.json {
                print_json(&page.items);
            } else if page.items.is_empty() {
                outln!("No OAuth clients.");
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.name.clone(),
                            if c.removed_at.is_some() {
                                "removed".into()
                            } else {
                                attention(c).map_or_else(|| "ok".into(), |why| format!("⚠ {why}"))
                            },
                            c.connected_members.to_string(),
                            c.tokens_outstanding.to_string(),
                            relative(c.last_used_at, now),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "NAME",
                            "STATUS",
                            "MEMBERS",
                            "LIVE TOKENS",
                            "LAST USED"
                        ],
                        &rows,
                        output::width()
                    )
                );
            }
        }
        OauthCommand::Clients(ClientsCommand::Show { id }) => {
            let id = id_segment(id, "cli_", "client")?;
            let found: OAuthClient = client
                .get(&format!("/v1/oauth/clients/{id}"), NO_QUERY)
                .await?;
            let connections: Page<Connection> = client
                .get(
                    "/v1/oauth/connections",
                    &[
                        ("client_id", id.to_owned()),
                        ("include_revoked", "true".to_owned()),
                    ],
                )
                .await?;
            if style.json {
                print_json(
                    &serde_json::json!({ "client": found, "connections": connections.items }),
                );
            } else {
                outln!("{} ({})", found.name, found.id);
                if let Some(why) = attention(&found) {
                    outln!("  ⚠ {why}");
                }
                outln!(
                    "  registered by {}, {}",
                    found
                        .registered_by
                        .as_deref()
                        .unwrap_or("itself (dynamic registration)"),
                    relative(Some(found.created_at), now)
                );
                outln!("  redirect URIs: {}", found.redirect_uris.join(", "));
                outln!("  scopes: {}", found.scopes);
                outln!(
                    "  {} member(s) connected, {} live token(s), last used {}{}",
                    found.connected_members,
                    found.tokens_outstanding,
                    relative(found.last_used_at, now),
                    found
                        .last_used_ip
                        .as_deref()
                        .map(|ip| format!(" from {ip}"))
                        .unwrap_or_default()
                );
                if found.removed_at.is_some() {
                    outln!("  removed {}", relative(found.removed_at, now));
                }
                for c in &connections.items {
                    outln!(
                        "  connection {} member {} scopes {} {}",
                        c.id,
                        c.member_id,
                        c.scopes,
                        if c.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "live"
                        }
                    );
                }
            }
        }
        OauthCommand::Clients(ClientsCommand::Remove { id, reason, yes }) => {
            let id = id_segment(id, "cli_", "client")?;
            if !yes {
                let found: OAuthClient = client
                    .get(&format!("/v1/oauth/clients/{id}"), NO_QUERY)
                    .await?;
                confirm(&format!(
                    "Remove {:?} ({id}) and revoke its {} live token(s) and {} connection(s)?",
                    found.name, found.tokens_outstanding, found.connected_members
                ))?;
            }
            let body = RemoveClient {
                reason: reason.clone(),
            };
            let removed: OAuthClient = client
                .call(
                    Method::POST,
                    &format!("/v1/oauth/clients/{id}/remove"),
                    NO_QUERY,
                    Some(&body),
                )
                .await?;
            if style.json {
                print_json(&removed);
            } else {
                outln!(
                    "Removed {} ({}); its tokens no longer work.",
                    removed.name,
                    removed.id
                );
            }
        }
        OauthCommand::Connections(ConnectionsCommand::List { client: only, all }) => {
            let mut query = vec![("include_revoked", all.to_string())];
            if let Some(only) = only {
                query.push(("client_id", id_segment(only, "cli_", "client")?.to_owned()));
            }
            let page: Page<Connection> = client.get("/v1/oauth/connections", &query).await?;
            if style.json {
                print_json(&page.items);
            } else if page.items.is_empty() {
                outln!("No connections.");
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.client_name.clone(),
                            c.member_id.clone(),
                            c.scopes.to_string(),
                            if c.revoked_at.is_some() {
                                "revoked".into()
                            } else {
                                "live".into()
                            },
                            relative(c.last_used_at, now),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    table(
                        &["ID", "CLIENT", "MEMBER", "SCOPES", "STATE", "LAST USED"],
                        &rows,
                        output::width()
                    )
                );
            }
        }
        OauthCommand::Connections(ConnectionsCommand::Revoke { id, yes }) => {
            let id = id_segment(id, "con_", "connection")?;
            if !yes {
                confirm(&format!("Revoke connection {id} and its tokens?"))?;
            }
            let revoked: Connection = client
                .call(
                    Method::POST,
                    &format!("/v1/oauth/connections/{id}/revoke"),
                    NO_QUERY,
                    NO_BODY,
                )
                .await?;
            if style.json {
                print_json(&revoked);
            } else {
                outln!("Revoked {} ({}).", revoked.id, revoked.client_name);
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}
