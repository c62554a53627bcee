//! The API contract, fuzzed from outside: schemathesis reads the served `/openapi.json` and runs
//! every check against the real binary (SQLite), once with a token holding every scope and once
//! with a read token. Only the operations that revoke or replace the caller's own token are left
//! out (`tests/contract/`: the configuration, and the hook that keeps the run's tokens alive).
//!
//! `KNOWMIND_SCHEMATHESIS` names the `schemathesis` executable (CI installs it into a virtual
//! environment); without it the test says it skipped, unless `KNOWMIND_REQUIRE_SCHEMATHESIS=1`.

use std::path::PathBuf;

use crate::binary::start;
use crate::*;

#[allow(clippy::print_stderr)] // a skipped run says so in the test output
fn schemathesis() -> Option<PathBuf> {
    match std::env::var_os("KNOWMIND_SCHEMATHESIS") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var("KNOWMIND_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
                "KNOWMIND_REQUIRE_SCHEMATHESIS=1 but KNOWMIND_SCHEMATHESIS is not set"
            );
            eprintln!("contract: skipped (set KNOWMIND_SCHEMATHESIS to a schemathesis executable)");
            None
        }
    }
}

async fn issue(addr: SocketAddr, admin: &str, name: &str, scopes: &[&str]) -> String {
    let body = serde_json::json!({ "name": name, "scopes": scopes });
    let (status, reply, _) = http(addr, "POST", "/v1/tokens", Some(admin), Some(&body)).await;
    assert_eq!(status, 201, "{reply}");
    reply["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[allow(clippy::print_stderr)] // the summary of each run, for the CI log
async fn schemathesis_finds_nothing() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Every check includes sending bad credentials on purpose: the failure limit would turn
    // those 401s into 429s for the rest of the minute.
    let server = start(
        &dir.path().join("data"),
        &[("KNOWMIND_AUTH_FAILURES_PER_MINUTE", "0")],
    )
    .await;
    let bootstrap = std::fs::read_to_string(server.data.join("bootstrap-token")).unwrap();
    let bootstrap = bootstrap.trim();
    let full = issue(
        server.addr,
        bootstrap,
        "contract-full",
        &["read", "write", "admin", "introspect"],
    )
    .await;
    let read = issue(server.addr, bootstrap, "contract-read", &["read"]).await;
    let protected = [bootstrap, &full, &read]
        .map(|t| t[4..20].to_owned())
        .join(",");
    let contract = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract");
    for (who, token) in [("every scope", &full), ("read", &read)] {
        let output = tokio::process::Command::new(&schemathesis)
            .current_dir(&contract)
            .args(["--config-file", "schemathesis.toml", "run"])
            .arg(format!("http://{}/openapi.json", server.addr))
            .args([
                "--checks",
                "all",
                "--exclude-operation-id",
                "revokeSelf",
                "--exclude-operation-id",
                "rotateSelf",
                "--workers",
                "1",
                "--no-color",
            ])
            .env("KNOWMIND_CONTRACT_TOKEN", token)
            .env("KNOWMIND_PROTECTED_IDS", &protected)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &contract)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let summary: String = text
            .lines()
            .skip_while(|l| !l.contains("SUMMARY") && !l.contains("FAILURES"))
            .map(|l| format!("{}\n", l.chars().take(300).collect::<String>()))
            .take(120)
            .collect();
        assert!(
            output.status.success(),
            "schemathesis as a {who} token: {}\n{summary}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains("Stateful"),
            "the stateful phase ran:\n{summary}"
        );
        assert!(!text.contains(token.as_str()), "the token is not printed");
        eprintln!("contract, {who} token:\n{summary}");
    }
    let (clean, log) = server.stop().await;
    assert!(clean, "{log}");
    for secret in [bootstrap, &full, &read] {
        assert!(
            !log.contains(&secret[20..]),
            "no secret in the server's log"
        );
    }
}
