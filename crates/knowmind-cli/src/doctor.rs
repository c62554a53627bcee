//! `knowmind doctor`: checks this machine's setup, each finding with its fix.

use std::path::Path;
use std::process::Command as Process;

use knowmind_api::TokenDetail;

use crate::cli::Cli;
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::Style;
use crate::{EXPIRY_WARNING_DAYS, config, credentials, now};

struct Report {
    style: Style,
    problems: usize,
    /// Every finding, for `--json`: (ok, what, fix).
    findings: Vec<(bool, String, String)>,
}

impl Report {
    fn ok(&mut self, text: &str) {
        self.findings.push((true, text.to_owned(), String::new()));
        if !self.style.quiet && !self.style.json {
            eprintln!("{} {text}", self.style.paint("32", "✓"));
        }
    }

    fn problem(&mut self, text: &str, fix: &str) {
        self.problems += 1;
        self.findings.push((false, text.to_owned(), fix.to_owned()));
        if !self.style.json {
            eprintln!("{} {text}\n  fix: {fix}", self.style.paint("31", "✗"));
        }
    }
}

/// Runs the checks; exit 1 if any problem remains.
///
/// # Errors
/// When a problem was found (after printing all of them).
pub async fn run(cli: &Cli, style: Style, fix: bool) -> Result<(), CliError> {
    let mut report = Report {
        style,
        problems: 0,
        findings: Vec::new(),
    };
    let path = config::path()?;

    // 1. The config file's permissions.
    let mut changed = false;
    match config::insecurity(&path)? {
        Some(problem) if fix => {
            for done in config::fix()? {
                report.ok(&format!("fixed: {done}"));
                changed = true;
            }
            match config::insecurity(&path)? {
                None => report.ok(&format!(
                    "{} was insecure ({problem}) and is fixed",
                    path.display()
                )),
                Some(left) => report.problem(&left, "fix the file's owner or remove it"),
            }
        }
        Some(problem) if problem.contains("owned by") => report.problem(
            &problem,
            "it is not yours, so neither you nor `doctor --fix` can make it safe: move it away \
             (or ask its owner) and run `knowmind auth login` again",
        ),
        Some(problem) => report.problem(&problem, "run `knowmind doctor --fix`"),
        None => report.ok(&format!("{} is private (or absent)", path.display())),
    }
    let file_reported = report.problems > 0;

    // 2. A token file others can read.
    if let Some(file) = std::env::var_os("KNOWMIND_TOKEN_FILE").filter(|f| !f.is_empty())
        && let Some(warning) = credentials::token_file_warning(Path::new(&file))
    {
        report.problem(
            &warning,
            "chmod 600 it (inside a container this is not reported)",
        );
        credentials::token_file_reported();
    }

    // 3. Tokens where git could pick them up.
    let dir = config::dir()?;
    if dir.exists() && unignored_in_git(&dir, "config.json") {
        report.problem(
            &format!(
                "{} is inside a git work tree and not ignored",
                dir.display()
            ),
            "move it (KNOWMIND_CONFIG_DIR) or add it to .gitignore",
        );
    }
    if let Ok(cwd) = std::env::current_dir() {
        for file in unignored_env_files(&cwd) {
            if holds_token(&file) {
                report.problem(
                    &format!(
                        "{} holds a knowmind token and git does not ignore it",
                        file.display()
                    ),
                    "add it to .gitignore, and rotate the token if it was ever committed",
                );
            }
        }
    }

    // 4. The server and the token.
    let loaded = config::load();
    if let Err(e) = &loaded
        && !file_reported
    {
        // Say what is wrong with the file, not that there is no server.
        report.problem(
            &e.to_string(),
            e.hint_text()
                .unwrap_or("fix the file, or remove it and log in again"),
        );
    }
    let server = cli
        .server
        .clone()
        .or_else(|| loaded.as_ref().ok().and_then(|c| c.default.clone()));
    let Some(server) = server else {
        if loaded.is_ok() {
            report.problem(
                "no server configured",
                "run `knowmind auth login --server URL`",
            );
        }
        return finish(report);
    };
    let health = reqwest::Client::new()
        .get(format!("{}/healthz", server.trim_end_matches('/')))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    match health {
        Ok(r) if r.status().is_success() => report.ok(&format!("the server at {server} answers")),
        Ok(r) => report.problem(
            &format!("the server at {server} answered {}", r.status()),
            "check the server's logs",
        ),
        Err(e) => {
            let why = crate::client::unreachable(&server, &e);
            report.problem(
                &why.to_string(),
                why.hint_text()
                    .unwrap_or("check --server / KNOWMIND_SERVER and the network"),
            );
        }
    }
    if changed {
        // The file was open to others until now: someone may have put a token_command in it.
        // Nothing from it runs in this run; the user looks first.
        report.problem(
            "the token was not checked: the config file was just repaired",
            &format!("read {} and run `knowmind doctor` again", path.display()),
        );
        return finish(report);
    }
    let credential = match loaded
        .as_ref()
        .map(|config| credentials::resolve(config, &server))
    {
        Ok(Ok(credential)) => Some(credential),
        Ok(Err(e)) => {
            report.problem(
                &e.to_string(),
                e.hint_text().unwrap_or("see `knowmind auth --help`"),
            );
            None
        }
        Err(_) => None, // said above
    };
    let client = credential.as_ref().map(|credential| {
        crate::client::Client::new(
            &server,
            secrecy::SecretString::from(
                secrecy::ExposeSecret::expose_secret(&credential.token).to_owned(),
            ),
            cli.allow_insecure_http,
        )
    });
    if let Some(Err(e)) = &client {
        // What every command would refuse (plain http to another machine, say).
        report.problem(
            &e.to_string(),
            e.hint_text().unwrap_or("see `knowmind --help`"),
        );
    }
    if let (Some(Ok(client)), Some(credential)) = (client, credential) {
        match client.get::<TokenDetail>("/v1/tokens/self", NO_QUERY).await {
            Ok(me) => {
                let now = now();
                if let Some(end) = crate::grace_end(&me.record, now) {
                    report.problem(
                        &format!(
                            "the token in use was rotated and stops working {}",
                            crate::output::when(Some(end), now)
                        ),
                        "log in with its successor: `knowmind auth login`",
                    );
                }
                match me.record.expires_at {
                    Some(at) if at - now < time::Duration::days(EXPIRY_WARNING_DAYS) => report
                        .problem(
                            &format!(
                                "the token expires {}",
                                crate::output::relative(Some(at), now)
                            ),
                            "run `knowmind token rotate self`",
                        ),
                    Some(_) if crate::grace_end(&me.record, now).is_some() => {} // said above
                    Some(_) => report.ok("the token is not about to expire"),
                    None => report.problem(
                        "the token never expires",
                        "rotate it with an expiry: `knowmind token rotate self --expires-in 90d`",
                    ),
                }
                if me.record.rotation_due_at.is_some_and(|due| due <= now) {
                    report.problem(
                        "the token is due for rotation under the workspace's policy",
                        "run `knowmind token rotate self`",
                    );
                }
            }
            Err(e) if e.code() == crate::error::exit::AUTH_REFUSED => report.problem(
                &format!("the token from {} is refused", credential.source.describe()),
                credential.refused_hint(),
            ),
            // Not a verdict on the token: the server could not be asked.
            Err(e) => report.problem(
                &format!("the token could not be checked: {e}"),
                e.hint_text().unwrap_or("check the server"),
            ),
        }
    }
    finish(report)
}

fn finish(report: Report) -> Result<(), CliError> {
    if report.style.json {
        let findings: Vec<serde_json::Value> = report
            .findings
            .iter()
            .map(|(ok, what, fix)| {
                if *ok {
                    serde_json::json!({ "ok": true, "finding": what })
                } else {
                    serde_json::json!({ "ok": false, "finding": what, "fix": fix })
                }
            })
            .collect();
        crate::print_json(&serde_json::json!({
            "problems": report.problems,
            "findings": findings,
        }));
    }
    if report.problems == 0 {
        Ok(())
    } else if report.style.json {
        Err(CliError::reported()) // the document says it all
    } else {
        Err(CliError::new(format!(
            "{} problem(s) found",
            report.problems
        )))
    }
}

/// Whether `name` in `dir` is inside a git work tree and not ignored.
fn unignored_in_git(dir: &Path, name: &str) -> bool {
    let inside = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output();
    if !inside.is_ok_and(|o| o.status.success()) {
        return false;
    }
    let ignored = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", name])
        .status();
    !ignored.is_ok_and(|s| s.success())
}

/// Every `.env` or `*.env` file of the git work tree around `dir` that git does not ignore
/// (tracked, or untracked and not ignored).
fn unignored_env_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let top = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output();
    let Some(top) = top
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    else {
        return Vec::new();
    };
    let listed = Process::new("git")
        .args([
            "-C",
            &top,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ":(glob)**/.env",
            ":(glob)**/*.env",
        ])
        .output();
    listed
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            o.stdout
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| Path::new(&top).join(String::from_utf8_lossy(p).as_ref()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the file contains something shaped like a knowmind token.
fn holds_token(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|word| word.len() == token_core::TOKEN_LEN && word.starts_with(token_core::PREFIX))
    })
}
