//! `knowmind token`: issue, list, view, usage, rotate and revoke.

mod create;
mod list;
mod usage;
mod view;

use std::io::{IsTerminal, Write};

use knowmind_api::{Issued, RevokeToken, Revoked, RotateToken, TokenDetail};
use reqwest::Method;
use serde_json::json;
use token_core::TokenId;

use crate::cli::{Cli, TokenCommand};
use crate::client::{Client, NO_QUERY};
use crate::credentials::{Credential, Source};
use crate::error::CliError;
use crate::output::{Style, when};
use crate::{config, connect, now, print_json, warn_about_token};

use self::create::create;
use self::list::{Only, list};
use self::usage::usage;
use self::view::view;

pub(crate) async fn run(cli: &Cli, style: Style, command: &TokenCommand) -> Result<(), CliError> {
    let (client, credential, mut config) = connect(cli)?;
    match command {
        TokenCommand::Create(args) => create(&client, style, args).await?,
        TokenCommand::List {
            state,
            limit,
            due,
            expiring_within,
        } => {
            if let Some(text) = expiring_within {
                positive_duration("--expiring-within", text)?;
            }
            let only = Only {
                due: *due,
                expiring_within: expiring_within.clone(),
            };
            list(&client, style, *state, *limit, only).await?;
        }
        TokenCommand::View { id } => view(&client, style, id).await?,
        TokenCommand::Usage { id, limit, all } => {
            let limit = if *all {
                None
            } else {
                Some(limit.unwrap_or(20))
            };
            usage(&client, &credential, style, id, limit).await?;
        }
        TokenCommand::Rotate {
            id,
            grace,
            expires_in,
            allow_from: networks,
            handover,
            overlap,
        } => {
            if let Some(text) = grace {
                let grace = token_core::parse_duration(text)
                    .map_err(|e| CliError::usage(format!("--grace: {e}")))?;
                if grace > time::Duration::days(7) {
                    return Err(CliError::usage(format!(
                        "--grace is at most 7 days, got {text:?}"
                    )));
                }
            }
            if let Some(text) = expires_in {
                positive_duration("--expires-in", text)?;
            }
            if let Some(text) = handover {
                positive_duration("--handover", text)?;
            }
            if let Some(text) = overlap {
                token_core::parse_duration(text)
                    .map_err(|e| CliError::usage(format!("--overlap: {e}")))?;
            }
            let path = token_path(id)?;
            let body = RotateToken {
                grace_period: grace.clone(),
                expires_in: expires_in.clone(),
                expires_at: None,
                allowed_networks: (!networks.is_empty())
                    .then(|| allow_from(networks))
                    .transpose()?,
                handover_deadline: handover.clone(),
                handover_overlap: overlap.clone(),
            };
            let rotated: Issued = client
                .call(
                    Method::POST,
                    &format!("/v1/tokens/{path}/rotate"),
                    NO_QUERY,
                    Some(&body),
                )
                .await?;
            let in_use = path == "self" || credential.masked().get(4..20) == Some(path.as_str());
            if in_use && credential.source == Source::Config {
                config.entry_mut(client.server()).token = Some(rotated.token.clone());
                config::save(&config)?;
                if !style.quiet {
                    eprintln!(
                        "Rotated the token in use; the saved credential now holds {}.",
                        rotated.record.id
                    );
                }
                if style.json {
                    print_json(&json!({
                        "id": rotated.record.id,
                        "rotated_from": rotated.record.rotated_from,
                        "saved": true,
                    }));
                }
            } else {
                if style.json {
                    print_json(&rotated);
                } else {
                    crate::print_secret(&rotated.token)?;
                    if !style.quiet {
                        let grace = grace
                            .as_deref()
                            .and_then(|g| token_core::parse_duration(g).ok())
                            .filter(|g| g.is_positive());
                        let old = rotated.record.rotated_from.map(|id| id.to_string());
                        eprintln!(
                            "New token {} ({}) on stdout, shown this once; the old one {} {}.",
                            rotated.record.id,
                            rotated.record.name,
                            old.as_deref().unwrap_or("-"),
                            match (handover, grace) {
                                (Some(deadline), _) => format!(
                                    "keeps working until the new one has been used, then for {}; \
                                     if the new one is never used, it stops in {deadline}",
                                    overlap.as_deref().unwrap_or("5m")
                                ),
                                (None, Some(g)) => format!(
                                    "keeps working for a grace period that ends {}",
                                    when(Some(now() + g), now())
                                ),
                                (None, None) => "stopped working now".to_owned(),
                            }
                        );
                    }
                }
                if in_use {
                    style.warn(&format!(
                        "the token in use came from {}; put the new token there",
                        credential.source.describe()
                    ));
                }
            }
        }
        TokenCommand::Revoke {
            ids,
            yes,
            reason,
            only_this,
        } => {
            let paths = ids
                .iter()
                .map(|id| token_path(id))
                .collect::<Result<Vec<_>, _>>()?;
            if !yes {
                let mut targets = Vec::with_capacity(paths.len());
                for path in &paths {
                    targets.push(describe_target(&client, &credential, path).await);
                }
                confirm(&format!(
                    "Revoke {} token(s)?\n  {}\n",
                    paths.len(),
                    targets.join("\n  ")
                ))?;
            }
            let body = RevokeToken {
                reason: reason.clone(),
                only_this: *only_this,
            };
            let mut all = Vec::new();
            for path in &paths {
                let done: Revoked = client
                    .call(
                        Method::POST,
                        &format!("/v1/tokens/{path}/revoke"),
                        NO_QUERY,
                        Some(&body),
                    )
                    .await?;
                if style.json {
                    all.push(done);
                } else if !style.quiet {
                    let id = done.token.id;
                    let others: Vec<String> = done
                        .revoked
                        .iter()
                        .filter(|r| **r != id)
                        .map(TokenId::to_string)
                        .collect();
                    if others.is_empty() {
                        eprintln!("Revoked {id} ({}).", done.token.name);
                    } else {
                        eprintln!(
                            "Revoked {id} ({}) and {} token(s) of its family: {}.",
                            done.token.name,
                            others.len(),
                            others.join(", ")
                        );
                    }
                }
            }
            if style.json {
                // One JSON document, whatever the number of tokens.
                print_json(&all);
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}

/// `self` or a token id, as a path segment.
pub(crate) fn token_path(id: &str) -> Result<String, CliError> {
    if id == "self" {
        return Ok("self".to_owned());
    }
    // Also the `kmt_<id>…` form `auth status` prints.
    let bare = id
        .strip_prefix(token_core::PREFIX)
        .map_or(id, |rest| rest.trim_end_matches('…'));
    bare.parse::<TokenId>()
        .map(|id| id.to_string())
        .map_err(|_| {
            // Never echo it: it may be a whole token, pasted with a space or in capitals.
            CliError::usage(
                "that is not a token id (16 letters and digits, or kmt_<id>…) or `self`",
            )
        })
}

/// A revocation target as the confirmation names it: its name and id (when the token in use may
/// read it), and whether it is the token this command runs with.
async fn describe_target(client: &Client, credential: &Credential, path: &str) -> String {
    let in_use = path == "self" || credential.masked().get(4..20) == Some(path);
    let route = if path == "self" {
        "/v1/tokens/self".to_owned()
    } else {
        format!("/v1/tokens/{path}")
    };
    let label = match client.get::<TokenDetail>(&route, NO_QUERY).await {
        Ok(detail) => format!("{} ({})", detail.record.name, detail.record.id),
        Err(_) => path.to_owned(),
    };
    if in_use {
        format!("{label} — the token this command is using; it stops working too")
    } else {
        label
    }
}

/// `--allow-from` values (each may hold several, comma-separated), checked before anything is
/// sent (exit 2, naming the bad network).
fn allow_from(values: &[String]) -> Result<token_core::Networks, CliError> {
    token_core::Networks::parse_all(values.iter().flat_map(|v| v.split(',')))
        .map_err(|e| CliError::usage(format!("--allow-from: {e}")))
}

/// A duration flag's value, checked before anything is sent: a whole number and a unit, more
/// than zero (exit 2, naming the flag).
fn positive_duration(flag: &str, text: &str) -> Result<time::Duration, CliError> {
    let duration =
        token_core::parse_duration(text).map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    if duration.is_zero() {
        return Err(CliError::usage(format!(
            "{flag} must be longer than zero, got {text:?}"
        )));
    }
    Ok(duration)
}

/// Asks `question` on the terminal (y/N); without a terminal, refuses (`--yes` is needed).
pub(crate) fn confirm(question: &str) -> Result<(), CliError> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(
            CliError::cancelled("refusing to go on without confirmation")
                .hint("pass --yes when not on a terminal"),
        );
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::cancelled("cancelled"))
    }
}
