//! The `knowmind` command line: safe local credential storage, token management and the audit
//! log, over the knowmind server's HTTP API. Responses are read into `knowmind-api`'s types, the
//! same ones the server answers with.
//!
//! Results go to standard output (`--json` for machines), everything else to standard error.
//! Exit codes: 0 ok, 1 error, 2 usage, 3 cancelled or confirmation needed, 4 token refused.
//!
//! This crate is a user interface: printing to stdout and stderr is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!`, except that a closed pipe (`knowmind auth status | head -2`) ends the process
/// quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(e);
        }
    }};
}

pub mod cli;
pub mod client;
mod commands;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod output;
mod scan;

use clap::CommandFactory;
use knowmind_api::TokenDetail;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use token_core::Scopes;

use crate::cli::{AuthCommand, Cli, Command};
use crate::client::{Client, NO_QUERY};
use crate::config::Config;
use crate::credentials::Credential;
use crate::error::CliError;
use crate::output::Style;

/// Warn when the token in use expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command, as one line with a hint and an exit code.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    // An empty variable counts as unset.
    let cli = Cli {
        server: cli.server.filter(|s| !s.trim().is_empty()),
        ..cli
    };
    let style = Style::new(cli.json, cli.quiet, cli.no_color);
    if style.quiet {
        credentials::token_file_reported(); // --quiet: no warnings, this one included
    }
    match &cli.command {
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "knowmind", &mut script);
            outln!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        Command::Doctor { fix } => doctor::run(&cli, style, *fix).await,
        Command::Scan(args) => commands::scan::run(&cli, style, args).await,
        Command::Hook(command) => commands::hook::run(style, command),
        Command::Auth(AuthCommand::Login { with_token }) => {
            commands::auth::login(&cli, style, *with_token).await
        }
        Command::Auth(AuthCommand::Token) => commands::auth::print_token(&cli),
        Command::Auth(AuthCommand::Switch) => commands::auth::switch(&cli, style),
        Command::Auth(AuthCommand::Status) => commands::auth::status(&cli, style).await,
        Command::Auth(AuthCommand::Logout { revoke }) => {
            commands::auth::logout(&cli, style, *revoke).await
        }
        Command::Token(command) => commands::token::run(&cli, style, command).await,
        Command::Audit(command) => commands::audit::run(&cli, style, command).await,
        Command::Policy(command) => commands::policy::run(&cli, style, command).await,
        Command::Oauth(command) => commands::oauth::run(&cli, style, command).await,
        Command::Webhook(command) => commands::webhook::run(&cli, style, command).await,
        Command::Incident(command) => commands::incident::run(&cli, style, command).await,
    }
}

/// Standard output failed: a closed pipe ends the run quietly (exit 0: the reader had what it
/// wanted); anything else is said on standard error.
pub(crate) fn stdout_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("knowmind: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// Prints a secret shown once (a new token) on stdout. If it cannot be written — a closed pipe
/// — the run fails (exit 1) and says so: the secret exists on the server and nobody has it.
pub(crate) fn print_secret(secret: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{secret}").map_err(|e| {
        CliError::new(format!(
            "the new token could not be written to standard output: {e}"
        ))
        .hint("it exists on the server but nobody has it: revoke it and try again")
    })
}

/// The clock: the CLI is a binary, and this is its one reading of it.
#[allow(clippy::disallowed_methods)] // the CLI's one allowed call site
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The server: `--server`/`KNOWMIND_SERVER`, else the saved default.
fn server(cli: &Cli, config: &Config) -> Result<String, CliError> {
    cli.server
        .as_deref()
        .or(config.default.as_deref())
        .map(config::normalize)
        .ok_or_else(|| {
            CliError::usage("no server configured").hint(
                "pass --server URL, set KNOWMIND_SERVER, or run `knowmind auth login --server URL`",
            )
        })
}

/// A client with the resolved credential.
fn connect(cli: &Cli) -> Result<(Client, Credential, Config), CliError> {
    let config = config::load()?;
    let server = server(cli, &config)?;
    let credential = credentials::resolve(&config, &server)?;
    let client = Client::new(
        &server,
        SecretString::from(credential.token.expose_secret().to_owned()),
        cli.allow_insecure_http,
    )?
    .with_refused_hint(credential.refused_hint());
    Ok((client, credential, config))
}

/// Warns on stderr when the token in use expires soon (from the last response's
/// `Knowmind-Token-Expiration`).
fn warn_expiry(client: &Client, style: Style) {
    if let Some(at) = client.token_expires_at.get() {
        let left = at - now();
        if left < time::Duration::days(EXPIRY_WARNING_DAYS) {
            style.warn(&format!(
                "the token in use expires {}; rotate it with `knowmind token rotate self`",
                crate::output::when(Some(at), now())
            ));
        }
    }
}

/// After a command: warns when the token in use expires soon or is due for rotation under the
/// workspace's policy, as the server dates it (one extra request for its record; skipped with
/// `--quiet`).
async fn warn_about_token(client: &Client, style: Style) {
    if style.quiet {
        return;
    }
    warn_expiry(client, style);
    let Ok(me) = client.get::<TokenDetail>("/v1/tokens/self", NO_QUERY).await else {
        return;
    };
    let now = now();
    if let Some(end) = grace_end(&me.record, now) {
        style.warn(&format!(
            "the token in use was rotated and stops working {}; use its successor{}",
            crate::output::when(Some(end), now),
            me.record
                .rotated_to
                .map(|to| format!(" ({to})"))
                .unwrap_or_default()
        ));
    } else if let Some(due) = me.record.rotation_due_at.filter(|due| *due <= now) {
        style.warn(&format!(
            "the token in use was due for rotation {} (the workspace's rotation interval); rotate it with `knowmind token rotate self`",
            crate::output::when(Some(due), now)
        ));
    }
}

/// The end of a rotated token's grace period, if it is in one: its real end, sooner than its
/// expiry.
pub(crate) fn grace_end(
    record: &knowmind_api::TokenRecord,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    record
        .revoked_at
        .filter(|at| record.revoked_reason.as_deref() == Some("rotated") && *at > now)
}

/// When a token really stops working: the end of its grace period, or its expiry.
pub(crate) fn real_end(
    record: &knowmind_api::TokenRecord,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    match (grace_end(record, now), record.expires_at) {
        (Some(grace), Some(expiry)) => Some(grace.min(expiry)),
        (grace, expiry) => grace.or(expiry),
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `read,write`.
fn scopes_text(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A time in RFC 3339, for JSON output.
fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
