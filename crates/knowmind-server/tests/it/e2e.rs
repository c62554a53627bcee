use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary on SQLite in `data` with `args` after `serve --listen`, and waits
/// until it has bootstrapped and listens.
async fn start(data: &std::path::Path, args: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bin = env!("CARGO_BIN_EXE_knowmind-server");
    let server = tokio::process::Command::new(bin)
        .args(["serve", "--listen", &addr.to_string()])
        .args(args)
        .env("KNOWMIND_DATA_DIR", data)
        .env("KNOWMIND_LOG_FORMAT", "json")
        .env_remove("KNOWMIND_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The server listens, then bootstraps (the link file is written last), then serves.
    let mut up = false;
    for _ in 0..400 {
        if data.join("owner-enrolment-link").exists()
            && tokio::net::TcpStream::connect(addr).await.is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the server did not start");
    (server, addr)
}

#[tokio::test]
async fn bootstrap_issue_read_refuse_revoke_and_trace_usage_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, addr) = start(&data, &[]).await;
    let bin = env!("CARGO_BIN_EXE_knowmind-server");

    // Bootstrap: the admin token is in a 0600 file, never in the log.
    let token_file = data.join("bootstrap-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(admin.parse::<token_core::Token>().is_ok());
    // Beside it, the owner's one-time enrolment link for the dashboard, 0600 too.
    let link_file = data.join("owner-enrolment-link");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&link_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let link = std::fs::read_to_string(&link_file)
        .unwrap()
        .trim()
        .to_owned();
    let link_secret = link
        .strip_prefix(&format!("http://{addr}/dashboard/enrol/"))
        .unwrap_or_else(|| panic!("{link}"))
        .to_owned();
    let (status, _, page) = http(
        addr,
        "GET",
        &format!("/dashboard/enrol/{link_secret}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("owner@localhost"), "{page}");

    let (status, created, _) = http(
        addr,
        "POST",
        "/v1/tokens",
        Some(&admin),
        Some(&json!({"name": "reader", "scopes": ["read"], "expires_in": "7d"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let reader = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, notes, raw) = http(addr, "GET", "/v1/notes", Some(&reader), None).await;
    assert_eq!(status, 200, "{notes}");
    assert!(raw.to_lowercase().contains("knowmind-token-expiration:"));
    let (status, refused, _) = http(
        addr,
        "POST",
        "/v1/notes",
        Some(&reader),
        Some(&json!({"title": "nope"})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("INSUFFICIENT_SCOPE"))
    );
    let (status, _, _) = http(
        addr,
        "POST",
        &format!("/v1/tokens/{id}/revoke"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = http(addr, "GET", "/v1/notes", Some(&reader), None).await;
    assert_eq!(status, 401);

    // Usage: every call of the reader, with address and route.
    let mut usage = Value::Null;
    for _ in 0..50 {
        let (_, u, _) = http(
            addr,
            "GET",
            &format!("/v1/tokens/{id}/usage"),
            Some(&admin),
            None,
        )
        .await;
        if u["total"].as_i64() == Some(3) {
            usage = u;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(usage["total"], 3, "{usage}");
    assert_eq!(usage["ips"][0]["ip"], "127.0.0.1");
    let routes = endpoints(&usage["routes"]);
    assert!(
        routes.contains(&"GET /v1/notes".to_owned())
            && routes.contains(&"POST /v1/notes".to_owned()),
        "{routes:?}"
    );
    let outcomes: Vec<&str> = usage["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["revoked", "insufficient_scope", "accepted"]);

    // SIGTERM: drains and exits 0.
    let pid = server.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(
        log.contains("bootstrap-token"),
        "the log says where the token is"
    );
    for secret in [&admin, &reader] {
        assert!(
            !log.contains(&secret[20..52]),
            "a token's secret reached the log"
        );
    }
    assert!(
        !log.contains(&link_secret),
        "the enrolment link reached the log"
    );
    assert!(
        log.contains("/dashboard/enrol/{link}"),
        "the route template is logged instead"
    );

    // The other commands on the same data directory.
    let verify = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["broken"], Value::Null);
    // Tamper with one event behind the database's back: `audit verify` must fail.
    {
        use sqlx::Executor;
        let db = knowmind_db::Db::connect(
            &data.join("knowmind.db").to_string_lossy(),
            &Default::default(),
        )
        .await
        .unwrap();
        db.pool()
            .execute("DROP TRIGGER audit_events_no_update")
            .await
            .unwrap();
        db.pool()
            .execute("UPDATE audit_events SET details = '{}' WHERE seq = 2")
            .await
            .unwrap();
        db.close().await;
    }
    let tampered = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(
        tampered.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&tampered.stderr)
    );
    let report: Value = serde_json::from_slice(&tampered.stdout).unwrap();
    assert_eq!(report["broken"]["seq"], 2);
    let init = std::process::Command::new(bin)
        .args(["init", "--workspace", "second"])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let printed = String::from_utf8(init.stdout).unwrap();
    assert!(
        printed.trim().parse::<token_core::Token>().is_ok(),
        "stdout is the token and nothing else"
    );
    assert!(!String::from_utf8_lossy(&init.stderr).contains(&printed.trim()[20..52]));
    let invite = std::process::Command::new(bin)
        .args([
            "invite",
            "--workspace",
            "second",
            "--email",
            "Ann@Example.org",
            "--role",
            "admin",
        ])
        .args(["--public-url", "https://km.example.org/"])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8(invite.stdout).unwrap(),
        String::from_utf8(invite.stderr).unwrap(),
    );
    assert!(invite.status.success(), "{err}");
    let secret = out
        .trim()
        .strip_prefix("https://km.example.org/dashboard/enrol/")
        .unwrap_or_else(|| panic!("stdout is the link and nothing else: {out}"));
    assert_eq!(secret.len(), 64);
    assert!(
        err.contains("ann@example.org (admin)") && !err.contains(secret),
        "{err}"
    );
    let again = std::process::Command::new(bin)
        .args(["init", "--workspace", "second"])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("second"));
}

#[test]
fn invalid_configuration_fails_fast_naming_the_setting() {
    let bin = env!("CARGO_BIN_EXE_knowmind-server");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args)
            .env("KNOWMIND_DATA_DIR", dir.path())
            .env_remove("KNOWMIND_DATABASE_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["serve", "--max-staleness", "soon"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--max-staleness"), "{err}");
    let (code, err) = run(&["serve"], &[("KNOWMIND_LISTEN", "not-an-address")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--listen"), "{err}");
    let (code, err) = run(
        &["migrate"],
        &[
            ("KNOWMIND_DATABASE_URL", "mysql://x"),
            ("KNOWMIND_DATABASE_URL_FILE", "/nonexistent"),
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("not both"), "{err}");
    let secret_file = dir.path().join("db-url");
    std::fs::write(&secret_file, "mysql://user:hunter2@db/x\n").unwrap();
    let (code, err) = run(
        &["migrate"],
        &[("KNOWMIND_DATABASE_URL_FILE", secret_file.to_str().unwrap())],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("KNOWMIND_DATABASE_URL"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the URL's password must not be echoed: {err}"
    );
    let (code, help) = {
        let out = std::process::Command::new(bin)
            .args(["serve", "--help"])
            .env("KNOWMIND_DATABASE_URL", "postgres://u:hunter2@h/d")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    assert!(
        help.contains("KNOWMIND_DATABASE_URL") && !help.contains("hunter2"),
        "{help}"
    );
}

/// `METHOD route` of each endpoint in a list of them.
fn endpoints(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["route"].as_str().unwrap()
            )
        })
        .collect()
}

/// A token's anomalies, as its admin reads them.
async fn anomalies(addr: SocketAddr, id: &str, admin: &str) -> Vec<Value> {
    let (status, page, _) = http(
        addr,
        "GET",
        &format!("/v1/tokens/{id}/anomalies"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The compromise scenario of docs/INCIDENT-RESPONSE.md, against the real binary behind a
/// trusted proxy header (so that calls can come from several addresses): a token used from one
/// address through its learning period, then from a new address on an endpoint it never used.
#[tokio::test]
async fn an_unusual_use_is_raised_once_and_the_incident_lists_exactly_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, addr) = start(
        &data,
        &[
            "--trusted-proxy-header",
            "x-forwarded-for",
            "--anomaly-learning-calls",
            "20",
            "--access-log",
            "errors",
        ],
    )
    .await;
    let admin = std::fs::read_to_string(data.join("bootstrap-token"))
        .unwrap()
        .trim()
        .to_owned();
    let (status, created, _) = http(
        addr,
        "POST",
        "/v1/tokens",
        Some(&admin),
        Some(&json!({"name": "deploy-2026-11", "scopes": ["read", "write"], "expires_in": "30d"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let from = |ip: &'static str| [("x-forwarded-for", ip)];

    // Normal use, from the office, through the learning period.
    for _ in 0..20 {
        let (status, _, _) = http_with(
            addr,
            "GET",
            "/v1/notes",
            Some(&token),
            None,
            &from("192.0.2.10"),
        )
        .await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        anomalies(addr, &id, &admin).await.is_empty(),
        "learning raises nothing"
    );
    // The window starts after the last of those calls (their times are the server's).
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = http(
            addr,
            "GET",
            &format!("/v1/tokens/{id}/usage?limit=1"),
            Some(&admin),
            None,
        )
        .await
        .1;
        if usage["total"] == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(usage["total"], 20, "{usage}");
    let window_start = time::OffsetDateTime::parse(
        usage["recent"][0]["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
        + time::Duration::microseconds(1);

    // Then someone else: a new address, writing, which the token never did.
    for _ in 0..3 {
        let (status, _, _) = http_with(
            addr,
            "POST",
            "/v1/notes",
            Some(&token),
            Some(&json!({"title": "pwned"})),
            &from("203.0.113.50"),
        )
        .await;
        assert_eq!(status, 201);
    }
    for _ in 0..100 {
        if anomalies(addr, &id, &admin).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The holder's calls and these overlap: two networks within minutes, raised too (high).
    // Once more from there: still raised once per value.
    http_with(
        addr,
        "GET",
        "/v1/notes",
        Some(&token),
        None,
        &from("203.0.113.51"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let raised = anomalies(addr, &id, &admin).await;
    let mut kinds: Vec<(String, String)> = raised
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (
                "concurrent_networks".to_owned(),
                "192.0.2.0/24, 203.0.113.0/24".to_owned()
            ),
            ("new_endpoint".to_owned(), "POST /v1/notes".to_owned()),
            ("new_network".to_owned(), "203.0.113.0/24".to_owned()),
        ],
        "{raised:?}"
    );
    assert!(raised.iter().all(|a| a["client_ip"] == "203.0.113.50"));
    // The workspace list and the token's security log show them too.
    let (_, all, _) = http(addr, "GET", "/v1/anomalies", Some(&admin), None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let (_, usage, _) = http(
        addr,
        "GET",
        &format!("/v1/tokens/{id}/usage"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(usage["anomalies"].as_array().unwrap().len(), 3, "{usage}");
    // And the security log has the events (a default webhook event).
    let (_, events, _) = http(
        addr,
        "GET",
        "/v1/audit/events?action=token.anomaly",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 3, "{events}");

    // One step: revoke, open the incident, replace.
    let since = window_start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, opened, _) = http(
        addr,
        "POST",
        "/v1/incidents",
        Some(&admin),
        Some(&json!({"token_ids": [id], "since": since, "replace": true, "summary": "writes from an unknown address"})),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    let incident = opened["id"].as_str().unwrap().to_owned();
    let at = |field: &str| {
        time::OffsetDateTime::parse(
            opened[field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(at("deadline") - at("opened_at"), time::Duration::hours(72));
    // (From the thief's address: a refused call from a third one would be listed too.)
    let (status, _, _) = http_with(
        addr,
        "GET",
        "/v1/notes",
        Some(&token),
        None,
        &from("203.0.113.50"),
    )
    .await;
    assert_eq!(status, 401, "the leaked token is dead");
    let replacement = opened["replacements"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = http(addr, "GET", "/v1/notes", Some(&replacement), None).await;
    assert_eq!(status, 200, "the replacement reads");
    let (status, _, _) = http(
        addr,
        "POST",
        "/v1/notes",
        Some(&replacement),
        Some(&json!({"title": "back to work"})),
    )
    .await;
    assert_eq!(status, 201, "and writes: the same scopes");

    // The report: exactly the new address and endpoint, and the anomalies.
    let (status, report, _) = http(
        addr,
        "GET",
        &format!("/v1/incidents/{incident}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let mut unknown: Vec<&str> = report["unknown_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    unknown.sort_unstable();
    assert_eq!(unknown, ["203.0.113.50", "203.0.113.51"], "{report}");
    assert_eq!(
        endpoints(&report["unknown_endpoints"]),
        ["POST /v1/notes"],
        "{report}"
    );
    assert_eq!(report["anomalies"].as_array().unwrap().len(), 3);
    let (status, _, md) = http(
        addr,
        "GET",
        &format!("/v1/incidents/{incident}?format=md"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for expected in [
        "# Security incident",
        "used from a new network: `203.0.113.0/24`",
        "used on an endpoint it had never called: `POST /v1/notes`",
        "A new address, `203.0.113.50`",
    ] {
        assert!(md.contains(expected), "{expected} missing from\n{md}");
    }

    // No secret reached the log.
    server.start_kill().unwrap();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    for secret in [&token, &replacement, &admin] {
        assert!(!log.contains(&secret[20..]), "a secret in the server log");
    }
    // `--access-log errors`: a line for the refused call, none for the others.
    let requests: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(!requests.is_empty(), "{log}");
    assert!(
        requests
            .iter()
            .all(|l| l["fields"]["status"].as_u64().is_some_and(|s| s >= 400)),
        "{log}"
    );
}
