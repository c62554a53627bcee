//! `knowmind token`: issue, list, view, usage, rotate and revoke.

use std::io::{IsTerminal, Write};

use knowmind_api::{
    CreateToken, Issued, ListTokens, Origin, RevokeToken, Revoked, RotateToken, StateFilter,
    TokenDetail, TokenRecord, Usage,
};
use reqwest::Method;
use serde_json::json;
use token_core::{Scopes, TokenId};

use crate::cli::{Cli, CreateArgs, StateArg, TokenCommand};
use crate::client::{Client, NO_QUERY};
use crate::credentials::{Credential, Source};
use crate::error::CliError;
use crate::output::{self, Style, relative, table, when};
use crate::{config, connect, now, print_json, scopes_text, warn_about_token};

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
            let path = token_path(id)?;
            let body = RotateToken {
                grace_period: grace.clone(),
                expires_in: expires_in.clone(),
                expires_at: None,
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
                            match grace {
                                Some(g) => format!(
                                    "keeps working for a grace period that ends {}",
                                    when(Some(now() + g), now())
                                ),
                                None => "stopped working now".to_owned(),
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

async fn create(client: &Client, style: Style, args: &CreateArgs) -> Result<(), CliError> {
    let scopes: Scopes = args
        .scopes
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
        .parse()
        .map_err(|e: token_core::Error| CliError::usage(format!("--scope: {e}")))?;
    if let Some(text) = &args.expires_in {
        positive_duration("--expires-in", text)?;
    }
    let expires_at =
        args.expires_at
            .as_deref()
            .map(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    CliError::usage(format!(
                        "--expires-at must be an RFC 3339 time like 2027-01-01T00:00:00Z, got {t:?}"
                    ))
                })
            })
            .transpose()?;
    if let Some(at) = expires_at
        && at <= now()
    {
        return Err(CliError::usage(format!(
            "--expires-at must be in the future, got {}",
            args.expires_at.as_deref().unwrap_or_default()
        )));
    }
    let body = CreateToken {
        name: args.name.clone(),
        scopes,
        description: args.description.clone().unwrap_or_default(),
        client: args.client.clone().unwrap_or_default(),
        expires_in: args.expires_in.clone(),
        expires_at,
        owner_id: None,
    };
    let created: Issued = client
        .call(Method::POST, "/v1/tokens", NO_QUERY, Some(&body))
        .await?;
    if style.json {
        print_json(&created);
    } else {
        crate::print_secret(&created.token)?;
        if !style.quiet {
            eprintln!(
                "Created {} ({}; scopes {}; expires {}). The token above is shown this once.",
                created.record.id,
                args.name,
                scopes_text(created.record.scopes),
                relative(created.record.expires_at, now())
            );
            if created.record.expires_at.is_none() {
                eprintln!(
                    "note: this token never expires; if it leaks it works until someone revokes it \
                     (--expires-in 90d next time)"
                );
            }
        }
    }
    Ok(())
}

/// `token list --due` / `--expiring-within`.
struct Only {
    due: bool,
    expiring_within: Option<String>,
}

async fn list(
    client: &Client,
    style: Style,
    state: StateArg,
    limit: Option<usize>,
    only: Only,
) -> Result<(), CliError> {
    let state = match state {
        StateArg::Active => StateFilter::Active,
        StateArg::Expired => StateFilter::Expired,
        StateArg::Revoked => StateFilter::Revoked,
        StateArg::All => StateFilter::All,
    };
    let (items, more): (Vec<TokenRecord>, _) = client
        .all_pages(
            "/v1/tokens",
            |cursor| ListTokens {
                state: Some(state),
                due: only.due.then_some(knowmind_api::DueFilter::Rotation),
                expiring_within: only.expiring_within.clone(),
                limit: Some(500),
                cursor,
                ..ListTokens::default()
            },
            limit,
        )
        .await?;
    if let Some(more) = more {
        style.warn(&format!(
            "showing the newest {}; {more} match (raise --limit, or leave it out for all)",
            items.len()
        ));
    }
    if style.json {
        print_json(&items);
        return Ok(());
    }
    let now = now();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            let mut name = t.name.clone();
            if t.origin == Origin::SelfRotated {
                name.push_str(" (self-rotated)");
            }
            vec![
                t.id.to_string(),
                name,
                scopes_text(t.scopes),
                t.client.clone(),
                relative(crate::real_end(t, now), now),
                relative(t.last_used_at, now),
                if crate::grace_end(t, now).is_some() {
                    "active (rotated, grace)".to_owned()
                } else {
                    t.state.to_string()
                },
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table_dropping(
            &[
                "ID",
                "NAME",
                "SCOPES",
                "FOR",
                "EXPIRES",
                "LAST USED",
                "STATE"
            ],
            &rows,
            output::width(),
            &["FOR", "LAST USED", "SCOPES"],
        )
    );
    Ok(())
}

async fn view(client: &Client, style: Style, id: &str) -> Result<(), CliError> {
    let detail: TokenDetail = client
        .get(&format!("/v1/tokens/{}", token_path(id)?), NO_QUERY)
        .await?;
    if style.json {
        print_json(&detail);
        return Ok(());
    }
    let now = now();
    let record = &detail.record;
    // A rotated token works until its grace period ends: that is its real end.
    let in_grace = record.revoked_reason.as_deref() == Some("rotated")
        && record.revoked_at.is_some_and(|at| at > now);
    let state = if in_grace {
        format!(
            "{} (rotated; its grace period ends {})",
            record.state,
            when(record.revoked_at, now)
        )
    } else {
        record.state.to_string()
    };
    let mut lines = vec![
        ("id", record.id.to_string()),
        ("name", record.name.clone()),
        ("for", record.client.clone()),
        ("scopes", scopes_text(record.scopes)),
        ("state", state),
        (
            "created",
            format!(
                "{} by {}",
                when(Some(record.created_at), now),
                record.created_by
            ),
        ),
        (
            "expires",
            if in_grace {
                format!(
                    "{} — but its grace period ends first",
                    when(record.expires_at, now)
                )
            } else if record.expires_at.is_none() {
                "never (rotate it with an expiry: `knowmind token rotate <id> --expires-in 90d`)"
                    .to_owned()
            } else {
                when(record.expires_at, now)
            },
        ),
        (
            "last used",
            match (&record.last_used_at, &record.last_used_ip) {
                (None, _) => "never".to_owned(),
                (Some(at), Some(ip)) => format!("{} from {ip}", when(Some(*at), now)),
                (Some(at), None) => when(Some(*at), now),
            },
        ),
    ];
    if !record.description.is_empty() {
        lines.insert(2, ("about", record.description.clone()));
    }
    if let Some(to) = record.rotated_to {
        lines.push(("rotated to", to.to_string()));
    }
    if let (Some(reason), false) = (&record.revoked_reason, in_grace) {
        lines.push((
            "revoked",
            format!(
                "{} by {}: {reason}",
                when(record.revoked_at, now),
                record.revoked_by.as_deref().unwrap_or("-")
            ),
        ));
    }
    for (label, value) in lines {
        outln!("{label:<10} {value}");
    }
    if detail.family.len() > 1 {
        outln!("family     (oldest first; revoking any of them revokes the rest)");
        for member in &detail.family {
            outln!(
                "  {} {} {} ({}; {}, created {} by {})",
                if member.id == record.id { "*" } else { " " },
                member.id,
                member.name,
                member.state,
                member.origin.as_str().replace('_', "-"),
                relative(Some(member.created_at), now),
                member.created_by,
            );
        }
    }
    Ok(())
}

async fn usage(
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
