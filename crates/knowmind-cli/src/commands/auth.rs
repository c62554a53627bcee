//! `knowmind auth`: log in, show what is in use, print the token, log out.

use std::io::{IsTerminal, Read};

use knowmind_api::{Revoked, TokenDetail};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::cli::Cli;
use crate::client::{Client, NO_BODY, NO_QUERY};
use crate::error::CliError;
use crate::output::{Style, when};
use crate::{
    config, connect, credentials, now, print_json, rfc3339, scopes_text, server, warn_expiry,
};

pub(crate) async fn login(cli: &Cli, style: Style, with_token: bool) -> Result<(), CliError> {
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
            .map_err(|e| match e.kind() {
                // Ctrl-D or Ctrl-C at the prompt.
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::Interrupted => {
                    CliError::cancelled("cancelled")
                }
                _ => CliError::new(format!("cannot read the token: {e}")),
            })?
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
        cli.allow_insecure_http,
    )?;
    let me: TokenDetail = client.get("/v1/tokens/self", NO_QUERY).await?;
    let entry = config.entry_mut(&server);
    entry.token = Some(token.expose_secret().to_owned());
    let command_wins = entry.token_command.is_some();
    config.default = Some(config::normalize(&server));
    config::save(&config)?;
    if style.json {
        print_json(&json!({
            "server": config::normalize(&server),
            "token": token.masked(),
            "token_id": me.record.id,
            "name": me.record.name,
            "scopes": me.record.scopes,
            "saved_in": config::path()?.display().to_string(),
            "default": true,
            "token_command_takes_precedence": command_wins,
        }));
    } else if !style.quiet {
        eprintln!(
            "Logged in to {server} with {} ({}; scopes {}). Saved in {}.",
            token.masked(),
            me.record.name,
            scopes_text(me.record.scopes),
            config::path()?.display()
        );
    }
    if command_wins {
        style.warn(&format!(
            "token_command is configured for {server} and takes precedence over the saved token; \
             remove it from {} to use this one",
            config::path()?.display()
        ));
    }
    if std::env::var_os("KNOWMIND_TOKEN").is_some() {
        style.warn("KNOWMIND_TOKEN is set and takes precedence over the saved token");
    }
    Ok(())
}

pub(crate) fn switch(cli: &Cli, style: Style) -> Result<(), CliError> {
    let mut config = config::load()?;
    let Some(server) = cli.server.as_deref().map(config::normalize) else {
        return Err(CliError::usage(
            "say which server: `knowmind auth switch --server URL`",
        ));
    };
    if config.entry(&server).is_none() {
        let saved: Vec<&str> = config.servers.keys().map(String::as_str).collect();
        return Err(
            CliError::usage(format!("no token is saved for {server}")).hint(if saved.is_empty() {
                format!("run `knowmind auth login --server {server}`")
            } else {
                format!(
                    "saved: {}; or run `knowmind auth login --server {server}`",
                    saved.join(", ")
                )
            }),
        );
    }
    config.default = Some(server.clone());
    config::save(&config)?;
    if style.json {
        print_json(&json!({ "default": server }));
    } else if !style.quiet {
        eprintln!("Commands now go to {server} unless --server says otherwise.");
    }
    Ok(())
}

pub(crate) fn print_token(cli: &Cli) -> Result<(), CliError> {
    let config = config::load()?;
    let credential = credentials::resolve(&config, &server(cli, &config)?)?;
    outln!("{}", credential.token.expose_secret());
    Ok(())
}

pub(crate) async fn status(cli: &Cli, style: Style) -> Result<(), CliError> {
    let (client, credential, config) = connect(cli)?;
    let me: TokenDetail = client.get("/v1/tokens/self", NO_QUERY).await?;
    let me = me.record;
    let saved: Vec<String> = config
        .servers
        .keys()
        .map(|s| {
            let active = config.default.as_deref() == Some(s.as_str());
            format!("{s}{}", if active { " (default)" } else { "" })
        })
        .collect();
    let now = now();
    let grace = crate::grace_end(&me, now);
    // Due when the workspace's policy says, or when the token ends if that comes first.
    let rotation_due = match (crate::real_end(&me, now), me.rotation_due_at) {
        (Some(end), Some(due)) => Some(end.min(due)),
        (end, due) => end.or(due),
    };
    if style.json {
        print_json(&json!({
            "server": client.server(),
            "source": credential.source.describe(),
            "token": credential.masked(),
            "token_id": me.id,
            "name": me.name,
            "workspace": me.workspace_id,
            "scopes": me.scopes,
            "expires_at": me.expires_at.and_then(rfc3339),
            "grace_ends_at": grace.and_then(rfc3339),
            "rotated_to": me.rotated_to,
            "created_at": rfc3339(me.created_at),
            "rotation_due": rotation_due.map(rfc3339),
            "default_server": config.default,
            "saved_servers": config.servers.keys().collect::<Vec<_>>(),
        }));
    } else {
        outln!("server:       {}", client.server());
        outln!("token:        {} ({})", credential.masked(), me.name);
        outln!("from:         {}", credential.source.describe());
        outln!("workspace:    {}", me.workspace_id);
        outln!("scopes:       {}", scopes_text(me.scopes));
        match grace {
            Some(end) => outln!(
                "stops:        {} (rotated{}; this is the end of its grace period)",
                when(Some(end), now),
                me.rotated_to
                    .map(|to| format!(" into {to}"))
                    .unwrap_or_default()
            ),
            None => outln!("expires:      {}", when(me.expires_at, now)),
        }
        if grace.is_none() {
            outln!("rotation due: {}", when(rotation_due, now));
        }
        if !saved.is_empty() {
            outln!("saved for:    {}", saved.join(", "));
        }
    }
    if grace.is_none() && rotation_due.is_some_and(|due| due < now) {
        style.warn("the token is due for rotation under the workspace's policy; rotate it with `knowmind token rotate self`");
    }
    warn_expiry(&client, style);
    Ok(())
}

pub(crate) async fn logout(cli: &Cli, style: Style, revoke: bool) -> Result<(), CliError> {
    let mut config = config::load()?;
    if !revoke && cli.server.is_none() && config.default.is_none() {
        if style.json {
            print_json(&json!({ "server": null, "forgotten": false, "revoked": false }));
        } else if !style.quiet {
            eprintln!("No token is saved; nothing to forget.");
        }
        return Ok(());
    }
    let server = server(cli, &config)?;
    if revoke {
        // The token saved for this server — not one from the environment, which `connect` would
        // prefer: logging out revokes what this machine saved.
        let saved = config
            .entry(&server)
            .and_then(|e| e.token.clone())
            .ok_or_else(|| {
                CliError::usage(format!("no token is saved for {server}; nothing to revoke"))
            })?;
        let client = Client::new(&server, SecretString::from(saved), cli.allow_insecure_http)?;
        let _: Revoked = client
            .call(Method::POST, "/v1/tokens/self/revoke", NO_QUERY, NO_BODY)
            .await?;
        if !style.quiet && !style.json {
            eprintln!("Revoked the token on {}.", client.server());
        }
    }
    let had = config.forget(&server);
    config::save(&config)?;
    if style.json {
        print_json(&json!({ "server": server, "forgotten": had, "revoked": revoke }));
    } else if !style.quiet {
        if had {
            eprintln!("Forgot the token saved for {server}.");
        } else {
            eprintln!("No token was saved for {server}; nothing to forget.");
        }
    }
    if std::env::var_os("KNOWMIND_TOKEN").is_some()
        || std::env::var_os("KNOWMIND_TOKEN_FILE").is_some()
    {
        style.warn("KNOWMIND_TOKEN or KNOWMIND_TOKEN_FILE is still set in this environment");
    }
    Ok(())
}
