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

#[tokio::test]
async fn bootstrap_issue_read_refuse_revoke_and_trace_usage_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bin = env!("CARGO_BIN_EXE_knowmind-server");
    let mut server = tokio::process::Command::new(bin)
        .args(["serve", "--listen", &addr.to_string()])
        .env("KNOWMIND_DATA_DIR", &data)
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
    let routes: Vec<String> = usage["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["route"].as_str().unwrap()
            )
        })
        .collect();
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
