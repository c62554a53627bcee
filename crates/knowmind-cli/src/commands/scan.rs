//! `knowmind scan`: tokens in files, in what is staged, or in a repository's history; printed
//! for people, as JSON or as SARIF; optionally checked against the server or revoked.

use std::collections::HashMap;
use std::path::PathBuf;

use knowmind_api::TokenDetail;
use reqwest::Method;
use token_core::{TokenId, TokenKind};

use crate::cli::{Cli, ScanArgs, ScanFormat};
use crate::client::NO_QUERY;
use crate::error::{CliError, exit};
use crate::output::Style;
use crate::scan::{Finding, files, git, report};
use crate::{connect, print_json};

pub(crate) async fn run(cli: &Cli, style: Style, args: &ScanArgs) -> Result<(), CliError> {
    let repo = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    let (findings, what) = if args.staged || args.git_history {
        let scanned = if args.staged {
            git::scan_staged(&repo, args.binary)?
        } else {
            git::scan_history(&repo, args.binary)?
        };
        (
            scanned.findings,
            format!("{} blobs, {} bytes", scanned.blobs, scanned.bytes),
        )
    } else {
        let paths = if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths.clone()
        };
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            return Err(CliError::usage(format!(
                "{} does not exist",
                missing.display()
            )));
        }
        let options = files::Options {
            no_ignore: args.no_ignore,
            binary: args.binary,
        };
        let scanned = files::scan(&paths, options);
        for (path, why) in &scanned.unreadable {
            style.warn(&format!("could not read {path}: {why}"));
        }
        (
            scanned.findings,
            format!("{} files, {} bytes", scanned.files, scanned.bytes),
        )
    };
    let states = if args.check_live && !findings.is_empty() {
        check_live(cli, &findings).await?
    } else {
        HashMap::new()
    };
    let state = |f: &Finding| states.get(&f.token_id).cloned();
    let format = if style.json {
        ScanFormat::Json
    } else {
        args.format
    };
    match format {
        ScanFormat::Json => print_json(&report::json(&findings, state)),
        ScanFormat::Sarif => print_json(&report::sarif(&findings)),
        ScanFormat::Human if findings.is_empty() => {
            if !style.quiet {
                eprintln!("No knowmind tokens found ({what}).");
            }
        }
        ScanFormat::Human => {
            if args.staged {
                eprintln!(
                    "knowmind: commit blocked: {} knowmind token{} in the staged files.",
                    findings.len(),
                    if findings.len() == 1 { "" } else { "s" }
                );
            }
            outln!("{}", report::human(&findings, state).trim_end());
            if !style.quiet {
                eprintln!("{}", advice(args.staged, args.git_history));
            }
        }
    }
    if args.revoke && !findings.is_empty() {
        revoke(cli, &findings).await?;
        if !style.quiet {
            let others = findings
                .iter()
                .filter(|f| !matches!(f.kind, TokenKind::Api | TokenKind::OAuthAccess))
                .count();
            eprintln!(
                "Sent {} token{} to the server to be revoked (those still live are revoked, with reason `leaked`).",
                findings.len(),
                if findings.len() == 1 { "" } else { "s" }
            );
            if others > 0 {
                style.warn(&format!(
                    "{others} of them are OAuth refresh tokens or client secrets, which that endpoint does not revoke: revoke the connection (`knowmind oauth connections revoke`) or remove the client (`knowmind oauth clients remove`)"
                ));
            }
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(CliError::reported())
    }
}

/// What to do about what was found.
fn advice(staged: bool, history: bool) -> &'static str {
    if staged {
        "Remove each token from the file and stage it again (`git add`); keep tokens in a secret \
         manager or an untracked .env file. If a token was ever committed, pushed or pasted \
         anywhere, revoke it: `knowmind token revoke ID` (or `knowmind scan --staged --revoke`). \
         `git commit --no-verify` skips this check: don't."
    } else if history {
        "These tokens are in the repository's history: deleting the file or the commit does not \
         remove them from clones, forks or caches. Revoke each one (`knowmind scan --git-history \
         --revoke`, or `knowmind token revoke ID`), issue a new one, then rewrite the history if \
         you must."
    } else {
        "Remove each token from the file and revoke it if the file was ever shared or committed \
         (`knowmind token revoke ID`, or `knowmind scan --revoke`)."
    }
}

/// Each found token's state on the server, by id (the ids only are sent).
async fn check_live(cli: &Cli, findings: &[Finding]) -> Result<HashMap<TokenId, String>, CliError> {
    let (client, _, _) = connect(cli)?;
    let mut states = HashMap::new();
    for f in findings {
        if states.contains_key(&f.token_id) {
            continue;
        }
        let state = match client
            .get::<TokenDetail>(&format!("/v1/tokens/{}", f.token_id), NO_QUERY)
            .await
        {
            Ok(detail) => detail.record.state.to_string(),
            Err(e) if e.code() == exit::AUTH_REFUSED => return Err(e),
            Err(_) => "unknown to this workspace".to_owned(),
        };
        states.insert(f.token_id, state);
    }
    Ok(states)
}

/// Sends the tokens to the public revocation endpoint.
async fn revoke(cli: &Cli, findings: &[Finding]) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let mut tokens: Vec<&str> = findings.iter().map(Finding::expose_secret).collect();
    tokens.sort_unstable();
    tokens.dedup();
    for chunk in tokens.chunks(1_000) {
        let body = serde_json::json!({ "credentials": chunk });
        client
            .send(
                Method::POST,
                "/v1/credentials/revoke",
                NO_QUERY,
                Some(&body),
            )
            .await?;
    }
    Ok(())
}
