//! Crash safety: the real server is killed with SIGKILL at random moments while clients create,
//! rotate and revoke tokens and make authenticated calls. After every restart, everything that
//! was acknowledged is there with its audit event, acknowledged revocations hold, the audit chain
//! verifies, and the server started without repair. Usage records of calls served just before a
//! kill may be lost; the largest loss seen is printed (docs/SECURITY.md has the figures).
//!
//! `cargo test` runs a short version. The long run (the figures in docs/SECURITY.md):
//! `KNOWMIND_CRASH_CYCLES=60 cargo test -p knowmind-server --test it crash -- --nocapture`
//! (with `KNOWMIND_TEST_DATABASE_URL` set for the PostgreSQL half).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde_json::json;
use token_core::rand::{RngExt, SeedableRng};

use crate::binary::{self, FreshDatabase};
use crate::*;

/// What clients were told, and so what must survive any crash.
#[derive(Default, Clone)]
struct Acknowledged {
    /// Tokens whose creation (or creation by rotation) was acknowledged: id → plaintext.
    tokens: HashMap<String, String>,
    /// Acknowledged rotations: old id → new id.
    rotations: Vec<(String, String)>,
    /// Tokens an acknowledged revocation named.
    revoked: Vec<String>,
    /// Calls answered 200 with a read token.
    calls: u64,
}

type Shared = Arc<Mutex<Acknowledged>>;

/// One client: a random mix of management and authenticated calls until the server goes away.
async fn client(addr: SocketAddr, admin: String, seed: u64, shared: Shared) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = 0;
    while failures < 3 {
        let pick = rng.random_range(0..10);
        let live: Vec<(String, String)> = {
            let acked = shared.lock().unwrap();
            acked
                .tokens
                .iter()
                .filter(|(id, _)| {
                    !acked.revoked.contains(*id) && !acked.rotations.iter().any(|(o, _)| o == *id)
                })
                .map(|(id, t)| (id.clone(), t.clone()))
                .collect()
        };
        let target = (!live.is_empty()).then(|| live[rng.random_range(0..live.len())].clone());
        let status = match (pick, target) {
            (0..=2, _) | (_, None) => {
                let name = format!("crash-{}", rng.random_range(0..1_000_000));
                let (status, body, _) = http(
                    addr,
                    "POST",
                    "/v1/tokens",
                    Some(&admin),
                    Some(&json!({"name": name, "scopes": ["read"]})),
                )
                .await;
                if status == 201 {
                    shared.lock().unwrap().tokens.insert(
                        body["id"].as_str().unwrap().to_owned(),
                        body["token"].as_str().unwrap().to_owned(),
                    );
                }
                status
            }
            (3, Some((id, _))) => {
                let (status, body, _) = http(
                    addr,
                    "POST",
                    &format!("/v1/tokens/{id}/rotate"),
                    Some(&admin),
                    Some(&json!({"grace_period": "1h"})),
                )
                .await;
                if status == 201 {
                    let mut acked = shared.lock().unwrap();
                    let new = body["id"].as_str().unwrap().to_owned();
                    acked
                        .tokens
                        .insert(new.clone(), body["token"].as_str().unwrap().to_owned());
                    acked.rotations.push((id, new));
                }
                status
            }
            (4, Some((id, _))) => {
                let (status, body, _) = http(
                    addr,
                    "POST",
                    &format!("/v1/tokens/{id}/revoke"),
                    Some(&admin),
                    None,
                )
                .await;
                if status == 200 {
                    let mut acked = shared.lock().unwrap();
                    for revoked in body["revoked"].as_array().unwrap() {
                        acked.revoked.push(revoked.as_str().unwrap().to_owned());
                    }
                }
                status
            }
            (_, Some((_, token))) => {
                let (status, _, _) = http(addr, "GET", "/v1/notes", Some(&token), None).await;
                if status == 200 {
                    shared.lock().unwrap().calls += 1;
                }
                status
            }
        };
        if status == 0 {
            failures += 1; // connection refused or reset: the server is gone
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Accepted calls to `/v1/notes` recorded in the database.
async fn recorded_calls(url: &str) -> u64 {
    use sqlx::Row;
    let db = knowmind_db::Db::connect(url, &Default::default())
        .await
        .unwrap();
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT id FROM usage_records WHERE outcome = 'accepted' \
         AND route = '/v1/notes' UNION ALL SELECT id FROM usage_recent \
         WHERE outcome = 'accepted' AND route = '/v1/notes') AS u",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
    .get("n");
    db.close().await;
    u64::try_from(n).unwrap()
}

/// The last lines of a server's log, for a failure message.
fn log_tail(server: &binary::Running) -> String {
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Checks, against the restarted server, everything that was acknowledged.
async fn check(server: &binary::Running, admin: &str, acked: &Acknowledged, cycle: usize) {
    let addr = server.addr;
    let fail = |message: String| -> ! {
        panic!(
            "cycle {cycle}: {message}\n--- server log:\n{}",
            log_tail(server)
        )
    };
    let state = |id: String| async move {
        let (status, body, raw) =
            http(addr, "GET", &format!("/v1/tokens/{id}"), Some(admin), None).await;
        (status, body, raw, id)
    };
    let events = |action: &'static str, id: String| async move {
        let (_, body, _) = http(
            addr,
            "GET",
            &format!("/v1/audit/events?token={id}&action={action}&limit=10"),
            Some(admin),
            None,
        )
        .await;
        body["items"].as_array().map_or(0, Vec::len)
    };
    let record_of = |(status, body, raw, id): (u16, Value, String, String)| {
        if status != 200 {
            fail(format!("acknowledged token {id} is gone: {status} {raw}"));
        }
        body
    };
    for id in acked.tokens.keys() {
        record_of(state(id.clone()).await);
        if events("token.created", id.clone()).await == 0 {
            fail(format!("no token.created event for {id}"));
        }
    }
    for (old, new) in &acked.rotations {
        let record = record_of(state(old.clone()).await);
        if record["rotated_to"] != new.as_str() || events("token.rotated", old.clone()).await != 1 {
            fail(format!("rotation {old} -> {new} lost: {record}"));
        }
    }
    for id in &acked.revoked {
        let record = record_of(state(id.clone()).await);
        if record["state"] != "revoked" || events("token.revoked", id.clone()).await == 0 {
            fail(format!("revocation of {id} lost: {record}"));
        }
        if let Some(token) = acked.tokens.get(id) {
            let (status, _, _) = http(addr, "GET", "/v1/notes", Some(token), None).await;
            if status != 401 {
                fail(format!("revoked {id} answered {status}"));
            }
        }
    }
    let (status, report, _) = http(addr, "GET", "/v1/audit/verify", Some(admin), None).await;
    if status != 200 || report["broken"] != Value::Null {
        fail(format!("the audit chain: {status} {report}"));
    }
}

async fn crash_cycles(backend: &str, data: &std::path::Path, url: Option<&str>, cycles: usize) {
    // Every check presents revoked tokens from one address: no failure limit here.
    let mut env: Vec<(&str, &str)> = vec![("KNOWMIND_AUTH_FAILURES_PER_MINUTE", "0")];
    env.extend(url.map(|u| ("KNOWMIND_DATABASE_URL", u)));
    let db_url = url
        .map(str::to_owned)
        .unwrap_or_else(|| data.join("knowmind.db").to_string_lossy().into_owned());
    let shared: Shared = Arc::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut admin = String::new();
    let (mut max_loss, mut total_loss, mut total_calls, mut recorded_before) = (0, 0, 0, 0);
    for cycle in 0..cycles {
        let server = binary::start(data, &env).await;
        if cycle == 0 {
            admin = server.bootstrap_token();
        } else {
            // Started without repair; now everything acknowledged before the kill must be there.
            let acked = shared.lock().unwrap().clone();
            check(&server, &admin, &acked, cycle).await;
        }
        let calls_before = shared.lock().unwrap().calls;
        let clients: Vec<_> = (0..4)
            .map(|i| {
                tokio::spawn(client(
                    server.addr,
                    admin.clone(),
                    (cycle * 10 + i) as u64,
                    shared.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..400))).await;
        server.kill().await;
        for c in clients {
            c.await.unwrap();
        }
        let recorded = recorded_calls(&db_url).await;
        let calls = shared.lock().unwrap().calls - calls_before;
        let loss = calls.saturating_sub(recorded - recorded_before);
        recorded_before = recorded;
        max_loss = max_loss.max(loss);
        total_loss += loss;
        total_calls += calls;
    }
    let server = binary::start(data, &env).await;
    let acked = shared.lock().unwrap().clone();
    check(&server, &admin, &acked, cycles).await;
    assert!(server.stop().await.0);
    let (code, report, err) = binary::command(data, &["audit", "verify"], &env);
    assert_eq!(code, Some(0), "{report}{err}");
    let acked = shared.lock().unwrap();
    println!(
        "{backend}: {cycles} kills; acknowledged {} tokens, {} rotations, {} revocations, \
         {total_calls} calls; usage records lost: {total_loss} in all, at most {max_loss} at one kill",
        acked.tokens.len(),
        acked.rotations.len(),
        acked.revoked.len(),
    );
    assert!(!acked.tokens.is_empty() && !acked.revoked.is_empty());
}

fn cycles() -> usize {
    std::env::var("KNOWMIND_CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    crash_cycles("sqlite", &dir.path().join("data"), None, cycles()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_postgres_loses_nothing_acknowledged() {
    let Some(db) = FreshDatabase::create().await else {
        println!("skipped: KNOWMIND_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_cycles(
        "postgres",
        &dir.path().join("data"),
        Some(&db.url),
        cycles(),
    )
    .await;
}
