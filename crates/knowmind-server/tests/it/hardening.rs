//! The review's findings that need the real binary: connection timeouts and caps, the first
//! start on PostgreSQL, the way back in, and an audit chain that cannot be re-forged.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::{self, FreshDatabase};
use crate::*;

/// Reads until the peer closes (or `limit` passes); returns when it closed, if it did.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_headers_idle_connections_and_connection_floods_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = binary::start(
        dir.path(),
        &[
            ("KNOWMIND_HEADER_READ_TIMEOUT", "1s"),
            ("KNOWMIND_MAX_CONNECTIONS", "4"),
        ],
    )
    .await;
    let addr = server.addr;

    // One header byte at a time: cut off after the header-read timeout, not kept for ever.
    let mut dribble = TcpStream::connect(addr).await.unwrap();
    let request =
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let start = Instant::now();
    let mut cut_off = false;
    for byte in request {
        if dribble.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let closed = cut_off
        || closed_within(&mut dribble, Duration::from_secs(10))
            .await
            .is_some();
    assert!(closed, "a dribbling client kept its connection");
    assert!(start.elapsed() < Duration::from_secs(10));

    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle keep-alive connection stayed open"
    );

    // The cap: with four silent connections open, a fifth is served only once the header
    // timeout has closed one of them.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let opened = Instant::now();
    let (status, _, _) = http(addr, "GET", "/healthz", None, None).await;
    let served_after = opened.elapsed();
    assert_eq!(status, 200);
    let mut first_closed = None;
    for conn in &mut silent {
        if let Some(at) = closed_within(conn, Duration::from_secs(5)).await {
            first_closed.get_or_insert(at);
        }
    }
    assert!(
        served_after >= Duration::from_millis(700),
        "the fifth connection was served at once ({served_after:?}): no cap"
    );
    let (ok, _) = server.stop().await;
    assert!(ok);
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = binary::start(
        dir.path(),
        &[
            ("KNOWMIND_MAX_CONNECTIONS_PER_ADDRESS", "2"),
            ("KNOWMIND_HEADER_READ_TIMEOUT", "5s"),
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third connection from the same address is closed at once, not queued for seconds.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let closed = closed_within(&mut third, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "a third connection from one address was kept"
    );
    // Once one is released, the address is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = http(server.addr, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn every_response_says_nosniff_and_metrics_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = binary::start(dir.path(), &[]).await;
    for i in 0..50 {
        let raw = format!("X{i}ZZY /v1/tokens HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let (status, _) = raw_http(server.addr, raw.as_bytes()).await;
        assert!((400..500).contains(&status), "{status}");
    }
    let (_, _, text) = http(server.addr, "GET", "/metrics", None, None).await;
    assert!(
        text.to_lowercase()
            .contains("x-content-type-options: nosniff")
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("knowmind_http_requests_total{"))
        .count();
    assert!(series <= 4, "{text}");
    assert!(!text.contains("X1ZZY"), "an invented method became a label");
    // The token and incident gauges are counts, with no labels at all.
    for gauge in [
        "knowmind_tokens_rotation_due ",
        "knowmind_tokens_expiring_soon ",
        "knowmind_incidents_overdue ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(gauge)),
            "{gauge}missing: {text}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_first_start_on_postgres_creates_its_data_directory_and_hands_the_token_over() {
    let Some(db) = FreshDatabase::create().await else {
        println!("skipped: KNOWMIND_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not-yet-there");
    let server = binary::start(&data, &[("KNOWMIND_DATABASE_URL", db.url.as_str())]).await;
    let admin = server.bootstrap_token();
    let (status, _, _) = http(server.addr, "GET", "/v1/tokens", Some(&admin), None).await;
    assert_eq!(status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    let (ok, log) = server.stop().await;
    assert!(ok, "{log}");
    assert!(
        !log.contains("_sqlx_migrations"),
        "the migrations table notice is printed: {log}"
    );
}

#[tokio::test]
async fn a_token_that_cannot_be_handed_over_commits_nothing_and_the_operator_gets_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("bootstrap-token")).unwrap(); // a directory: cannot be written
    let (code, _, err) = binary::command(&data, &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bootstrap-token"), "{err}");
    let (code, _, err) = binary::command(&data, &["admin-token", "--workspace", "default"], &[]);
    assert_eq!(code, Some(1), "no workspace was committed: {err}");
    assert!(err.contains("no workspace"), "{err}");

    // Once the file can be written, the first start works.
    std::fs::remove_dir(data.join("bootstrap-token")).unwrap();
    let server = binary::start(&data, &[]).await;
    let first = server.bootstrap_token();
    assert!(server.stop().await.0);
    // The bootstrap token is lost; an operator with shell access issues another.
    let (code, out, err) = binary::command(&data, &["admin-token", "--workspace", "default"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let second = out.trim().to_owned();
    assert!(second.parse::<token_core::Token>().is_ok());
    assert_ne!(second, first);
    assert!(
        !err.contains(&second[20..52]),
        "the secret is on stdout only"
    );
    let server = binary::start(&data, &[]).await;
    let (status, events, _) = http(
        server.addr,
        "GET",
        "/v1/audit/events?action=token.created",
        Some(&second),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(events["items"][0]["actor_kind"], "operator");
    server.stop().await;
}

/// Someone with write access to the database (and without the audit key) deletes an event,
/// renumbers the rest and recomputes every hash: `audit verify` fails, against the chain's own
/// keyed hashes and against the checkpoints written outside the database.
#[tokio::test]
async fn the_audit_chain_cannot_be_reforged_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = binary::start(&data, &[]).await;
    let admin = server.bootstrap_token();
    for i in 0..5 {
        let (status, _, _) = http(
            server.addr,
            "POST",
            "/v1/tokens",
            Some(&admin),
            Some(&json!({"name": format!("t{i}"), "scopes": ["read"]})),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert!(server.stop().await.0); // writes a checkpoint on the way out
    let (code, report, err) = binary::command(&data, &["audit", "verify"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report["checkpoints"].as_u64().unwrap() >= 1, "{report}");

    // The attacker's copy: event 3 deleted, the rest renumbered and re-hashed with the
    // unkeyed algorithm (the only one they can compute).
    let forge = |from_seq: i64| {
        let copy = dir.path().join(format!("copy-{from_seq}"));
        copy_dir(&data, &copy);
        async move {
            reforge(&copy.join("knowmind.db").to_string_lossy(), from_seq).await;
            copy
        }
    };
    // Everything from event 3 on, rewritten: the first forged event follows a keyed one.
    let copy = forge(3).await;
    let (code, report, _) = binary::command(&copy, &["audit", "verify"], &[]);
    assert_eq!(code, Some(1), "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["broken"]["seq"], 3, "{report}");
    assert_eq!(report["broken"]["reason"], "downgraded", "{report}");
    // The whole chain rewritten, so that no keyed event is left to betray it: the checkpoints
    // kept outside the database do.
    let copy = forge(1).await;
    let (code, report, _) = binary::command(&copy, &["audit", "verify"], &[]);
    assert_eq!(code, Some(1), "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    let reason = report["broken"]["reason"].as_str().unwrap();
    assert!(
        ["checkpoint_mismatch", "truncated"].contains(&reason),
        "{report}"
    );
    // And a server refuses to start on it, rather than append keyed events to a forged past.
    let (code, _, err) = binary::command(&copy, &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no longer holds checkpoint"), "{err}");
    // A forged checkpoint file (signed with another key) is reported, too.
    let checkpoints = data.join("checkpoints");
    let file = std::fs::read_dir(&checkpoints)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    forged["mac"] = json!("00".repeat(32));
    std::fs::write(&file, forged.to_string()).unwrap();
    let (code, report, _) = binary::command(&data, &["audit", "verify"], &[]);
    assert_eq!(code, Some(1), "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["badly_signed_checkpoints"].as_array().unwrap().len(),
        1
    );
    // And a server given another key refuses to start rather than write an unverifiable log.
    let other_key = dir.path().join("other-key");
    std::fs::write(&other_key, format!("{}\n", "ab".repeat(32))).unwrap();
    let (code, _, err) = binary::command(
        &data,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("KNOWMIND_AUDIT_KEY_FILE", other_key.to_str().unwrap())],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("audit key"), "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Drops the triggers, deletes event 3, renumbers the later ones, and recomputes every hash from
/// `from_seq` on with plain SHA-256.
async fn reforge(path: &str, from_seq: i64) {
    use sqlx::{Executor, Row};
    let db = knowmind_db::Db::connect(path, &Default::default())
        .await
        .unwrap();
    let pool = db.pool();
    pool.execute("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;")
        .await
        .unwrap();
    pool.execute("DELETE FROM audit_events WHERE seq = 3")
        .await
        .unwrap();
    pool.execute("UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 3")
        .await
        .unwrap();
    pool.execute("UPDATE audit_events SET seq = -seq WHERE seq < 0")
        .await
        .unwrap();
    let audit = audit::Audit::new(db.clone());
    let mut prev = if from_seq == 1 {
        audit::GENESIS.to_owned()
    } else {
        sqlx::query("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(from_seq - 1)
            .fetch_one(pool)
            .await
            .unwrap()
            .get("hash")
    };
    let events = audit
        .events(&Default::default(), None, 1_000)
        .await
        .unwrap()
        .items;
    let mut events: Vec<_> = events.into_iter().filter(|e| e.seq >= from_seq).collect();
    events.sort_by_key(|e| e.seq);
    for mut event in events {
        event.prev_hash = prev.clone();
        event.hash_version = audit::UNKEYED;
        let hash = audit::expected_hash(&event, None).unwrap();
        sqlx::query(
            "UPDATE audit_events SET prev_hash = $1, hash = $2, hash_version = 1 WHERE seq = $3",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(event.seq)
        .execute(pool)
        .await
        .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_events), hash = $1")
        .bind(&prev)
        .execute(pool)
        .await
        .unwrap();
    db.close().await;
}
