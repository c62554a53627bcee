//! Where the token comes from, in this order:
//!
//! 1. `KNOWMIND_TOKEN` (CI);
//! 2. `KNOWMIND_TOKEN_FILE` (a mounted secret; setting both is an error; one trailing newline is
//!    stripped, nothing else);
//! 3. `token_command` in the config file (a secret manager; its standard output is the token);
//! 4. `token` in the config file.
//!
//! A token is never taken from a command-line argument.

use std::process::{Command, Stdio};

use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::error::CliError;

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `KNOWMIND_TOKEN`.
    Env,
    /// `KNOWMIND_TOKEN_FILE`.
    File,
    /// `token_command` in the config file.
    Command,
    /// `token` in the config file.
    Config,
}

impl Source {
    /// How `auth status` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Env => "KNOWMIND_TOKEN",
            Source::File => "KNOWMIND_TOKEN_FILE",
            Source::Command => "token_command in the config file",
            Source::Config => "the config file",
        }
    }
}

/// A token and where it came from.
pub struct Credential {
    /// The token.
    pub token: SecretString,
    /// Its source.
    pub source: Source,
}

impl Credential {
    /// `kmt_<id>…`, or a short marker when the text is not a token.
    pub fn masked(&self) -> String {
        match self.token.expose_secret().parse::<token_core::Token>() {
            Ok(token) => token.masked(),
            Err(_) => "(not a knowmind token)".to_owned(),
        }
    }
}

/// Finds the token, or explains how to provide one.
///
/// # Errors
/// Both `KNOWMIND_TOKEN` and `KNOWMIND_TOKEN_FILE` set; an unreadable file; a failing
/// `token_command`; no token anywhere.
pub fn resolve(config: &Config) -> Result<Credential, CliError> {
    let env = std::env::var("KNOWMIND_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let file = std::env::var_os("KNOWMIND_TOKEN_FILE").filter(|f| !f.is_empty());
    match (env, file) {
        (Some(_), Some(_)) => Err(CliError::usage(
            "KNOWMIND_TOKEN and KNOWMIND_TOKEN_FILE are both set",
        )
        .hint("unset one of them")),
        (Some(token), None) => Ok(Credential {
            token: SecretString::from(token),
            source: Source::Env,
        }),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::new(format!(
                    "cannot read KNOWMIND_TOKEN_FILE ({}): {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            let token = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            Ok(Credential {
                token: SecretString::from(token),
                source: Source::File,
            })
        }
        (None, None) => {
            if let Some(command) = &config.token_command {
                return run_token_command(command);
            }
            match &config.token {
                Some(token) => Ok(Credential {
                    token: SecretString::from(token.clone()),
                    source: Source::Config,
                }),
                None => Err(CliError::auth_refused("no token configured").hint(
                    "run `knowmind auth login`, or set KNOWMIND_TOKEN (CI) or KNOWMIND_TOKEN_FILE",
                )),
            }
        }
    }
}

fn run_token_command(command: &str) -> Result<Credential, CliError> {
    let output = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| CliError::new(format!("cannot run token_command: {e}")))?;
    if !output.status.success() {
        return Err(
            CliError::new(format!("token_command failed ({})", output.status))
                .hint("run it yourself to see why"),
        );
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| CliError::new("token_command printed something that is not text"))?;
    let token = text.trim_end_matches(['\n', '\r']).to_owned();
    if token.is_empty() {
        return Err(CliError::new("token_command printed nothing"));
    }
    Ok(Credential {
        token: SecretString::from(token),
        source: Source::Command,
    })
}
