//! What a scan found, for people (grouped by file), for scripts (JSON) and for code-scanning
//! UIs (SARIF 2.1.0). None of them holds a token's secret: only its prefix and public id.

use serde_json::{Value, json};
use token_core::TokenKind;

use super::Finding;

/// The kind as JSON names it.
fn kind_code(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Api => "api_token",
        TokenKind::OAuthAccess => "oauth_access_token",
        TokenKind::OAuthRefresh => "oauth_refresh_token",
        TokenKind::ClientSecret => "oauth_client_secret",
    }
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Api => "API token",
        TokenKind::OAuthAccess => "OAuth access token",
        TokenKind::OAuthRefresh => "OAuth refresh token",
        TokenKind::ClientSecret => "OAuth client secret",
    }
}

/// Grouped by file: `path`, then `line:column  kmt_<id>…  kind [commits]`.
pub(crate) fn human(findings: &[Finding], state: impl Fn(&Finding) -> Option<String>) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for f in findings {
        if current != Some(f.path.as_str()) {
            out.push_str(&format!("{}\n", f.path));
            current = Some(&f.path);
        }
        out.push_str(&format!(
            "  {}:{}  {}  {}",
            f.line,
            f.column,
            f.shown(),
            kind_name(f.kind)
        ));
        if let Some(state) = state(f) {
            out.push_str(&format!(" ({state})"));
        }
        if !f.commits.is_empty() {
            let shown: Vec<&str> = f.commits.iter().map(|c| &c[..c.len().min(12)]).collect();
            out.push_str(&format!(
                "  in commit{} {}",
                if shown.len() == 1 { "" } else { "s" },
                shown.join(", ")
            ));
        }
        out.push('\n');
    }
    out
}

/// One JSON object per finding.
pub(crate) fn json(findings: &[Finding], state: impl Fn(&Finding) -> Option<String>) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                let mut v = json!({
                    "token_id": f.token_id,
                    "kind": kind_code(f.kind),
                    "path": f.path,
                    "line": f.line,
                    "column": f.column,
                });
                if !f.commits.is_empty() {
                    v["commits"] = json!(f.commits);
                }
                if let Some(state) = state(f) {
                    v["state"] = json!(state);
                }
                v
            })
            .collect(),
    )
}

/// A SARIF 2.1.0 log with one run: one rule, one result per finding.
pub(crate) fn sarif(findings: &[Finding]) -> Value {
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut message = format!(
                "A knowmind {} ({}) is in this file. Remove it and revoke it: anyone who can read \
                 this file can use it.",
                kind_name(f.kind),
                f.shown()
            );
            if !f.commits.is_empty() {
                message.push_str(&format!(" It is in commit {}.", f.commits.join(", ")));
            }
            json!({
                "ruleId": "knowmind/token",
                "level": "error",
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path.trim_start_matches("./")},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }],
                "partialFingerprints": {"knowmindTokenId/v1": f.token_id.to_string()},
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "knowmind",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": [{
                    "id": "knowmind/token",
                    "name": "KnowmindToken",
                    "shortDescription": {"text": "A knowmind token in a file"},
                    "fullDescription": {"text": "A knowmind token (API token, OAuth token or client secret) with a valid checksum. Tokens are as powerful as passwords: never commit one. A token that was ever committed must be revoked, because the commit stays in every clone."},
                    "help": {"text": "Remove the token, then revoke it (`knowmind token revoke ID`, or `knowmind scan --revoke`) and issue a new one kept in a secret manager or an untracked .env file."},
                    "defaultConfiguration": {"level": "error"},
                    "properties": {"tags": ["security", "secret"]},
                }],
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}
