//! The `knowmind` command line: safe local credential storage, token management and the audit
//! log, over the knowmind server's HTTP API.
//!
//! Results go to standard output (`--json` for machines), everything else to standard error.
//! Exit codes: 0 ok, 1 error, 2 usage, 3 cancelled or confirmation needed, 4 token refused.
//!
//! This crate is a user interface: printing to stdout and stderr is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod client;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod output;

use std::io::{IsTerminal, Read, Write};

use clap::CommandFactory;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::OffsetDateTime;
use token_core::{Clock, SystemClock};

use crate::cli::{
    AuditCommand, AuthCommand, Cli, Command, PolicyCommand, ReuseDetectionArg, StateArg,
    TokenCommand,
};
use crate::client::Client;
use crate::config::Config;
use crate::credentials::{Credential, Source};
use crate::error::CliError;
use crate::output::{Style, relative, table};

/// Warn when the token in use expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 14;
/// Recommended rotation age of a token, in days.
pub const ROTATION_DAYS: i64 = 90;

const NONE: Option<&Value> = None;

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command, as one line with a hint and an exit code.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let style = Style::new(cli.json, cli.quiet, cli.no_color);
    match &cli.command {
        Command::Completion { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "knowmind",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Doctor { fix } => doctor::run(&cli, style, *fix).await,
        Command::Auth(AuthCommand::Login { with_token }) => login(&cli, style, *with_token).await,
        Command::Auth(AuthCommand::Token) => {
            let config = config::load()?;
            let credential = credentials::resolve(&config)?;
            println!("{}", credential.token.expose_secret());
            Ok(())
        }
        Command::Auth(AuthCommand::Status) => status(&cli, style).await,
        Command::Auth(AuthCommand::Logout { revoke }) => logout(&cli, style, *revoke).await,
        Command::Token(command) => token(&cli, style, command).await,
        Command::Audit(command) => audit(&cli, style, command).await,
        Command::Policy(command) => policy(&cli, style, command).await,
    }
}

/// The clock: the CLI is a binary, and this is its one reading of it.
pub fn now() -> OffsetDateTime {
    SystemClock.now()
}

/// The server: `--server`/`KNOWMIND_SERVER`, else the saved one.
fn server(cli: &Cli, config: &Config) -> Result<String, CliError> {
    cli.server
        .clone()
        .or_else(|| config.server.clone())
        .ok_or_else(|| {
            CliError::usage("no server configured").hint(
                "pass --server URL, set KNOWMIND_SERVER, or run `knowmind auth login --server URL`",
            )
        })
}

/// A client with the resolved credential.
fn connect(cli: &Cli) -> Result<(Client, Credential, Config), CliError> {
    let config = config::load()?;
    let credential = credentials::resolve(&config)?;
    let client = Client::new(
        &server(cli, &config)?,
        SecretString::from(credential.token.expose_secret().to_owned()),
    )?;
    Ok((client, credential, config))
}

/// Warns on stderr when the token in use expires soon (from the last response's
/// `Knowmind-Token-Expiration`).
fn warn_expiry(client: &Client, style: Style) {
    if let Some(at) = client.token_expires_at.get() {
        let left = at - now();
        if left < time::Duration::days(EXPIRY_WARNING_DAYS) {
            style.warn(&format!(
                "the token in use expires {} ({at}); rotate it with `knowmind token rotate self`",
                relative(Some(at), now())
            ));
        }
    }
}

/// After a command: warns when the token in use expires soon or is older than the rotation
/// policy (one extra request for its record; skipped with `--quiet`).
async fn warn_about_token(client: &Client, style: Style) {
    if style.quiet {
        return;
    }
    warn_expiry(client, style);
    if let Ok(me) = client
        .json::<Value>(Method::GET, "/v1/tokens/self", NONE)
        .await
        && time_of(&me["created_at"])
            .is_some_and(|created| now() - created > time::Duration::days(ROTATION_DAYS))
    {
        style.warn(&format!("the token in use is older than {ROTATION_DAYS} days; rotate it with `knowmind token rotate self`"));
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn login(cli: &Cli, style: Style, with_token: bool) -> Result<(), CliError> {
    let mut config = config::load()?;
    let server = server(cli, &config)?;
    let text = if with_token || !std::io::stdin().is_terminal() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
        input.trim().to_owned()
    } else {
        rpassword::prompt_password("Paste the token (input hidden): ")
            .map_err(|e| CliError::new(format!("cannot read the token: {e}")))?
            .trim()
            .to_owned()
    };
    let token: token_core::Token = text.parse().map_err(|e: token_core::Error| {
        CliError::usage(format!("that is not a knowmind token: {e}"))
            .hint("tokens look like kmt_ followed by 54 letters and digits")
    })?;
    let client = Client::new(
        &server,
        SecretString::from(token.expose_secret().to_owned()),
    )?;
    let me: Value = client.json(Method::GET, "/v1/tokens/self", NONE).await?;
    config.server = Some(server.clone());
    config.token = Some(token.expose_secret().to_owned());
    config.token_command = None;
    config::save(&config)?;
    if !style.quiet {
        eprintln!(
            "Logged in to {server} with {} ({}; scopes {}). Saved in {}.",
            token.masked(),
            me["name"].as_str().unwrap_or("?"),
            scopes_of(&me),
            config::path()?.display()
        );
    }
    if std::env::var_os("KNOWMIND_TOKEN").is_some() {
        style.warn("KNOWMIND_TOKEN is set and takes precedence over the saved token");
    }
    Ok(())
}

fn scopes_of(record: &Value) -> String {
    record["scopes"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn time_of(value: &Value) -> Option<OffsetDateTime> {
    value
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
}

async fn status(cli: &Cli, style: Style) -> Result<(), CliError> {
    let (client, credential, _) = connect(cli)?;
    let me: Value = client.json(Method::GET, "/v1/tokens/self", NONE).await?;
    let now = now();
    let created = time_of(&me["created_at"]);
    let expires = time_of(&me["expires_at"]);
    let rotation_due = created.map(|c| c + time::Duration::days(ROTATION_DAYS));
    if style.json {
        print_json(&json!({
            "server": client.server(),
            "source": credential.source.describe(),
            "token": credential.masked(),
            "token_id": me["id"],
            "name": me["name"],
            "workspace": me["workspace_id"],
            "scopes": me["scopes"],
            "expires_at": me["expires_at"],
            "created_at": me["created_at"],
            "rotation_due": rotation_due.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        }));
    } else {
        println!("server:       {}", client.server());
        println!(
            "token:        {} ({})",
            credential.masked(),
            me["name"].as_str().unwrap_or("?")
        );
        println!("from:         {}", credential.source.describe());
        println!(
            "workspace:    {}",
            me["workspace_id"].as_str().unwrap_or("?")
        );
        println!("scopes:       {}", scopes_of(&me));
        println!(
            "expires:      {}",
            expires.map_or("never".to_owned(), |e| format!(
                "{} ({e})",
                relative(Some(e), now)
            ))
        );
        println!(
            "rotation due: {}",
            rotation_due.map_or("?".to_owned(), |r| relative(Some(r), now))
        );
    }
    if rotation_due.is_some_and(|r| r < now) {
        style.warn(&format!("the token is older than {ROTATION_DAYS} days; rotate it with `knowmind token rotate self`"));
    }
    warn_expiry(&client, style);
    Ok(())
}

async fn logout(cli: &Cli, style: Style, revoke: bool) -> Result<(), CliError> {
    let mut config = config::load()?;
    if revoke {
        let (client, _, _) = connect(cli)?;
        let _: Value = client.json(Method::DELETE, "/v1/tokens/self", NONE).await?;
        if !style.quiet {
            eprintln!("Revoked the token on {}.", client.server());
        }
    }
    config.token = None;
    config::save(&config)?;
    if !style.quiet {
        eprintln!("Forgot the saved token.");
    }
    if std::env::var_os("KNOWMIND_TOKEN").is_some()
        || std::env::var_os("KNOWMIND_TOKEN_FILE").is_some()
    {
        style.warn("KNOWMIND_TOKEN or KNOWMIND_TOKEN_FILE is still set in this environment");
    }
    Ok(())
}

/// `self` or a token id, as a path segment.
fn token_path(id: &str) -> Result<String, CliError> {
    if id == "self" {
        return Ok("self".to_owned());
    }
    id.parse::<token_core::TokenId>()
        .map(|id| id.to_string())
        .map_err(|_| {
            CliError::usage(format!(
                "{id:?} is not a token id (16 letters and digits) or `self`"
            ))
        })
}

async fn token(cli: &Cli, style: Style, command: &TokenCommand) -> Result<(), CliError> {
    let (client, credential, mut config) = connect(cli)?;
    match command {
        TokenCommand::Create(args) => {
            let body = json!({
                "name": args.name,
                "scopes": args.scopes.iter().flat_map(|s| s.split(',')).map(str::trim).collect::<Vec<_>>(),
                "expires_in": args.expires_in,
                "expires_at": args.expires_at,
                "description": args.description.clone().unwrap_or_default(),
                "client": args.client.clone().unwrap_or_default(),
            });
            let created: Value = client.json(Method::POST, "/v1/tokens", Some(&body)).await?;
            if style.json {
                print_json(&created);
            } else {
                println!("{}", created["token"].as_str().unwrap_or_default());
                if !style.quiet {
                    eprintln!(
                        "Created {} ({}; scopes {}; expires {}). The token above is shown this once.",
                        created["id"].as_str().unwrap_or("?"),
                        args.name,
                        scopes_of(&created),
                        relative(time_of(&created["expires_at"]), now())
                    );
                }
            }
        }
        TokenCommand::List { state } => {
            let state = match state {
                StateArg::Active => "active",
                StateArg::Expired => "expired",
                StateArg::Revoked => "revoked",
                StateArg::All => "all",
            };
            let page: Value = client
                .json(
                    Method::GET,
                    &format!("/v1/tokens?state={state}&limit=500"),
                    NONE,
                )
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if style.json {
                print_json(&Value::Array(items));
            } else {
                let now = now();
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|t| {
                        let mut name = t["name"].as_str().unwrap_or("").to_owned();
                        if t["origin"] == "self_rotated" {
                            name.push_str(" (self-rotated)");
                        }
                        vec![
                            t["id"].as_str().unwrap_or("").to_owned(),
                            name,
                            scopes_of(t),
                            t["client"].as_str().unwrap_or("").to_owned(),
                            relative(time_of(&t["expires_at"]), now),
                            relative(time_of(&t["last_used_at"]), now),
                            t["state"].as_str().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
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
                        1,
                        output::width()
                    )
                );
            }
        }
        TokenCommand::View { id } => {
            let record: Value = client
                .json(
                    Method::GET,
                    &format!("/v1/tokens/{}", token_path(id)?),
                    NONE,
                )
                .await?;
            if style.json {
                print_json(&record);
            } else {
                let now = now();
                for (label, value) in [
                    ("id", record["id"].as_str().unwrap_or("").to_owned()),
                    ("name", record["name"].as_str().unwrap_or("").to_owned()),
                    ("for", record["client"].as_str().unwrap_or("").to_owned()),
                    ("scopes", scopes_of(&record)),
                    ("state", record["state"].as_str().unwrap_or("").to_owned()),
                    ("created", relative(time_of(&record["created_at"]), now)),
                    ("expires", relative(time_of(&record["expires_at"]), now)),
                    (
                        "last used",
                        format!(
                            "{} from {}",
                            relative(time_of(&record["last_used_at"]), now),
                            record["last_used_ip"].as_str().unwrap_or("-")
                        ),
                    ),
                ] {
                    println!("{label:<10} {value}");
                }
                let family = record["family"].as_array().cloned().unwrap_or_default();
                if family.len() > 1 {
                    println!("family     (oldest first; revoking any of them revokes the rest)");
                    for member in &family {
                        let this = member["id"] == record["id"];
                        println!(
                            "  {} {} {} ({}; {}, created {} by {})",
                            if this { "*" } else { " " },
                            member["id"].as_str().unwrap_or(""),
                            member["name"].as_str().unwrap_or(""),
                            member["state"].as_str().unwrap_or(""),
                            member["origin"].as_str().unwrap_or("").replace('_', "-"),
                            relative(time_of(&member["created_at"]), now),
                            member["created_by"].as_str().unwrap_or("?"),
                        );
                    }
                }
            }
        }
        TokenCommand::Usage { id } => {
            // There is no `/v1/tokens/self/usage`: the token in use is named by its id.
            let path = match token_path(id)?.as_str() {
                "self" => credential
                    .masked()
                    .get(4..20)
                    .unwrap_or_default()
                    .to_owned(),
                other => other.to_owned(),
            };
            let usage: Value = client
                .json(Method::GET, &format!("/v1/tokens/{path}/usage"), NONE)
                .await?;
            if style.json {
                print_json(&usage);
            } else {
                let now = now();
                let ips: Vec<Vec<String>> = usage["ips"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|i| {
                        vec![
                            i["ip"].as_str().unwrap_or("?").to_owned(),
                            i["count"].to_string(),
                            relative(time_of(&i["first_seen"]), now),
                            relative(time_of(&i["last_seen"]), now),
                        ]
                    })
                    .collect();
                println!(
                    "{}\n",
                    table(
                        &["ADDRESS", "CALLS", "FIRST SEEN", "LAST SEEN"],
                        &ips,
                        0,
                        output::width()
                    )
                );
                let routes: Vec<Vec<String>> = usage["routes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        vec![
                            format!(
                                "{} {}",
                                r["method"].as_str().unwrap_or(""),
                                r["route"].as_str().unwrap_or("")
                            ),
                            r["count"].to_string(),
                            relative(time_of(&r["first_seen"]), now),
                            relative(time_of(&r["last_seen"]), now),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["ENDPOINT", "CALLS", "FIRST SEEN", "LAST SEEN"],
                        &routes,
                        0,
                        output::width()
                    )
                );
            }
        }
        TokenCommand::Rotate {
            id,
            grace,
            expires_in,
        } => {
            let path = token_path(id)?;
            let body = json!({ "grace_period": grace, "expires_in": expires_in });
            let rotated: Value = client
                .json(
                    Method::POST,
                    &format!("/v1/tokens/{path}/rotate"),
                    Some(&body),
                )
                .await?;
            let new_token = rotated["token"].as_str().unwrap_or_default().to_owned();
            let in_use = path == "self" || credential.masked().get(4..20) == Some(path.as_str());
            if in_use && credential.source == Source::Config {
                config.token = Some(new_token.clone());
                config::save(&config)?;
                if !style.quiet {
                    eprintln!(
                        "Rotated the token in use; the saved credential now holds {}.",
                        rotated["id"].as_str().unwrap_or("?")
                    );
                }
                if style.json {
                    print_json(
                        &json!({ "id": rotated["id"], "rotated_from": rotated["rotated_from"], "saved": true }),
                    );
                }
            } else {
                if style.json {
                    print_json(&rotated);
                } else {
                    println!("{new_token}");
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
                if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                    return Err(
                        CliError::cancelled("refusing to revoke without confirmation")
                            .hint("pass --yes when not on a terminal"),
                    );
                }
                eprint!(
                    "Revoke {} token(s): {}? [y/N] ",
                    paths.len(),
                    paths.join(", ")
                );
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| CliError::new(e.to_string()))?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::cancelled("cancelled"));
                }
            }
            let mut params = Vec::new();
            if let Some(reason) = reason {
                params.push(format!("reason={}", urlencode(reason)));
            }
            if *only_this {
                params.push("only_this=true".to_owned());
            }
            let query = if params.is_empty() {
                String::new()
            } else {
                format!("?{}", params.join("&"))
            };
            for path in &paths {
                let record: Value = client
                    .json(Method::DELETE, &format!("/v1/tokens/{path}{query}"), NONE)
                    .await?;
                if style.json {
                    print_json(&record);
                } else if !style.quiet {
                    let id = record["id"].as_str().unwrap_or("?");
                    let others: Vec<&str> = record["revoked"]
                        .as_array()
                        .map(|all| {
                            all.iter()
                                .filter_map(Value::as_str)
                                .filter(|r| *r != id)
                                .collect()
                        })
                        .unwrap_or_default();
                    if others.is_empty() {
                        eprintln!("Revoked {id} ({}).", record["name"].as_str().unwrap_or("?"));
                    } else {
                        eprintln!(
                            "Revoked {id} ({}) and {} token(s) of its family: {}.",
                            record["name"].as_str().unwrap_or("?"),
                            others.len(),
                            others.join(", ")
                        );
                    }
                }
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn audit(cli: &Cli, style: Style, command: &AuditCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    match command {
        AuditCommand::List {
            token,
            action,
            since,
        } => {
            let mut query = vec!["limit=200".to_owned()];
            if let Some(token) = token {
                query.push(format!("token={}", token_path(token)?));
            }
            if let Some(action) = action {
                query.push(format!("action={}", urlencode(action)));
            }
            if let Some(since) = since {
                let period = token_core::parse_duration(since)
                    .map_err(|e| CliError::usage(e.to_string()))?;
                let from = (now() - period)
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| CliError::new(e.to_string()))?;
                query.push(format!("since={}", urlencode(&from)));
            }
            let page: Value = client
                .json(
                    Method::GET,
                    &format!("/v1/audit/events?{}", query.join("&")),
                    NONE,
                )
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if style.json {
                print_json(&Value::Array(items));
            } else {
                let now = now();
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|e| {
                        vec![
                            e["seq"].to_string(),
                            relative(time_of(&e["at"]), now),
                            e["action"].as_str().unwrap_or("").to_owned(),
                            e["target_id"].as_str().unwrap_or("-").to_owned(),
                            format!(
                                "{}:{}",
                                e["actor_kind"].as_str().unwrap_or(""),
                                e["actor_id"].as_str().unwrap_or("-")
                            ),
                            e["client_ip"].as_str().unwrap_or("-").to_owned(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["SEQ", "WHEN", "ACTION", "TARGET", "ACTOR", "FROM"],
                        &rows,
                        4,
                        output::width()
                    )
                );
            }
        }
        AuditCommand::Export { output } => {
            let response = client
                .send(Method::GET, "/v1/audit/events/export", NONE)
                .await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| CliError::new(format!("export interrupted: {e}")))?;
            match output {
                Some(path) => std::fs::write(path, &bytes)
                    .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?,
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| CliError::new(e.to_string()))?,
            }
            if !style.quiet {
                eprintln!(
                    "Exported {} events.",
                    bytes.iter().filter(|&&b| b == b'\n').count()
                );
            }
        }
        AuditCommand::Verify => {
            let report: Value = client.json(Method::GET, "/v1/audit/verify", NONE).await?;
            if style.json {
                print_json(&report);
            } else if report["broken"].is_null() {
                println!(
                    "intact: {} events of this workspace checked, up to #{}{}",
                    report["events"],
                    report["last_seq"],
                    if report["more"] == true {
                        " (more follow: the server checks 10,000 per request)"
                    } else {
                        ""
                    }
                );
            } else {
                println!(
                    "BROKEN at #{}: {}",
                    report["broken"]["seq"],
                    report["broken"]["reason"].as_str().unwrap_or("?")
                );
            }
            if !report["broken"].is_null() {
                return Err(CliError::new("the audit log's hash chain is broken")
                    .hint("see docs/SECURITY.md, 'The audit log'"));
            }
        }
    }
    warn_about_token(&client, style).await;
    Ok(())
}

async fn policy(cli: &Cli, style: Style, command: &PolicyCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let policy: Value = match command {
        PolicyCommand::Show => {
            client
                .json(Method::GET, "/v1/workspace/policy", NONE)
                .await?
        }
        PolicyCommand::Set { reuse_detection } => {
            let body = json!({
                "reuse_detection": match reuse_detection {
                    ReuseDetectionArg::Alert => "alert",
                    ReuseDetectionArg::RevokeFamily => "revoke_family",
                }
            });
            client
                .json(Method::PUT, "/v1/workspace/policy", Some(&body))
                .await?
        }
    };
    if style.json {
        print_json(&policy);
    } else {
        println!(
            "reuse detection: {}",
            match policy["reuse_detection"].as_str() {
                Some("revoke_family") => "revoke the family when a rotated token is reused",
                _ => "alert only (a token.reuse security event)",
            }
        );
    }
    warn_about_token(&client, style).await;
    Ok(())
}
