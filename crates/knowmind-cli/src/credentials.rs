//! Where the token comes from, in this order:
//!
//! 1. `KNOWMIND_TOKEN` (CI);
//! 2. `KNOWMIND_TOKEN_FILE` (a mounted secret; setting both is an error; one trailing newline is
//!    stripped, nothing else);
//! 3. `token_command` in the config file (a secret manager; its standard output is the token);
//! 4. `token` in the config file.
//!
//! A token is never taken from a command-line argument, and never sent unless it has a knowmind
//! token's shape.
#![allow(clippy::print_stderr)] // the token file's warning, once

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
    /// What fixes a token the server refused, from where it came.
    pub fn refused_hint(&self) -> &'static str {
        match self.source {
            Source::Env => {
                "KNOWMIND_TOKEN holds it and wins over everything else: put a valid token there, or unset it"
            }
            Source::File => "the file KNOWMIND_TOKEN_FILE names holds it: put a valid token there",
            Source::Command => "token_command printed it: check what your secret manager holds",
            Source::Config => "run `knowmind auth login` with a valid token",
        }
    }

    /// `kmt_<id>…`, or a short marker when the text is not a token.
    pub fn masked(&self) -> String {
        match self.token.expose_secret().parse::<token_core::Token>() {
            Ok(token) => token.masked(),
            Err(_) => "(not a knowmind token)".to_owned(),
        }
    }
}

/// Finds the token, or explains how to provide one. What is found must have a knowmind token's
/// shape (prefix, length, alphabet, checksum) before it is sent anywhere.
///
/// # Errors
/// Both `KNOWMIND_TOKEN` and `KNOWMIND_TOKEN_FILE` set; an unreadable file; a failing
/// `token_command`; no token anywhere; something that is not a knowmind token (exit 2).
pub fn resolve(config: &Config, server: &str) -> Result<Credential, CliError> {
    let credential = find(config, server)?;
    if let Err(e) = credential
        .token
        .expose_secret()
        .parse::<token_core::Token>()
    {
        // The parse error never repeats the input.
        return Err(CliError::usage(format!(
            "{} does not hold a knowmind token ({e}); nothing was sent",
            credential.source.describe()
        ))
        .hint(match credential.source {
            Source::Env => "set KNOWMIND_TOKEN to the whole kmt_… token",
            Source::File => {
                "the file must hold the whole kmt_… token (one trailing newline is fine)"
            }
            Source::Command => "token_command must print the whole kmt_… token",
            Source::Config => "run `knowmind auth login` again",
        }));
    }
    Ok(credential)
}

/// Whether this process runs in a container, where mounted secrets are often 0644 by default.
fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// Set once the loose token file has been reported (by `doctor`, or as a warning): it is said
/// once per run.
static TOKEN_FILE_REPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Notes that the loose token file was reported; later reads say nothing more.
pub fn token_file_reported() {
    TOKEN_FILE_REPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A warning when the token file is readable by group or others outside a container (inside
/// one, Kubernetes mounts secrets 0644 by default: no warning there).
pub fn token_file_warning(path: &std::path::Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(path).ok()?.mode();
        if mode & 0o077 != 0 && !in_container() {
            return Some(format!(
                "KNOWMIND_TOKEN_FILE ({}) has mode {:o}: others on this machine can read the token; `chmod 600` it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

fn find(config: &Config, server: &str) -> Result<Credential, CliError> {
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
            if let Some(warning) = token_file_warning(std::path::Path::new(&path))
                && !TOKEN_FILE_REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!("warning: {warning}");
            }
            let token = text.strip_suffix('\n').unwrap_or(&text);
            let token = token.strip_suffix('\r').unwrap_or(token).to_owned();
            Ok(Credential {
                token: SecretString::from(token),
                source: Source::File,
            })
        }
        (None, None) => {
            // Only what was saved for this very server: a token is never sent elsewhere.
            let entry = config.entry(server);
            if let Some(command) = entry.and_then(|e| e.token_command.as_ref()) {
                return run_token_command(command);
            }
            match entry.and_then(|e| e.token.as_ref()) {
                Some(token) => Ok(Credential {
                    token: SecretString::from(token.clone()),
                    source: Source::Config,
                }),
                None => {
                    let others: Vec<&str> = config.servers.keys().map(String::as_str).collect();
                    let mut error = CliError::new(format!("no token is saved for {server}"));
                    error = if others.is_empty() {
                        error.hint(format!(
                            "run `knowmind auth login --server {server}`, or set KNOWMIND_TOKEN (CI) or KNOWMIND_TOKEN_FILE"
                        ))
                    } else {
                        error.hint(format!(
                            "tokens are saved for {} only; run `knowmind auth login --server {server}` or `knowmind auth switch --server …`",
                            others.join(", ")
                        ))
                    };
                    Err(error)
                }
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
