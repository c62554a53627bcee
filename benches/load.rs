//! Load test over loopback: two routes — the notes read route (an SQLite query) and a handler
//! that does no database work — served without the auth layer, with authentication only, and
//! with authentication and usage recording (the shipped `RequireScope`); the notes route also
//! with usage recording but anomaly detection off (its own store and tokens), so that what
//! detection costs is measured in the same run.
//! Interleaved rounds, by `wrk` in another process presenting 10,000 distinct hot tokens in turn.
//! Reports requests/s, p50/p99, server CPU per request and the median ratios; then throughput on
//! PostgreSQL and cold verification latency.
//!
//! `cargo bench -p knowmind-benches --bench load` (needs `wrk`; PostgreSQL figures when
//! `KNOWMIND_TEST_DATABASE_URL` is set); figures in `docs/BENCHMARKS.md`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use audit::Context;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use knowmind_axum::{Authenticated, Guard, RequireScope};
use knowmind_server::notes::{NoteInput, Notes};
use token_core::Scope;
use token_store::testing::Fixture;
use token_store::{NewMember, NewToken, Role, Store, StoreOptions};

#[path = "process_cpu.rs"]
mod process_cpu;
use process_cpu::cpu_seconds;
#[path = "wrk.rs"]
mod wrk;
use wrk::{WRK_CPU, median};

const TOKENS: usize = 10_000;
/// Rounds per variant; `KNOWMIND_LOAD_ROUNDS` overrides it (for a quick profile).
fn rounds() -> usize {
    std::env::var("KNOWMIND_LOAD_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(30)
}
const SECONDS_PER_RUN: u32 = 2;

#[derive(Clone)]
struct App {
    notes: Notes,
    workspace: String,
}

async fn list_for(app: &App, workspace: &str) -> Response {
    match app.notes.list(workspace, None, 10).await {
        Ok((notes, _)) => axum::Json(notes).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_open(State(app): State<App>) -> Response {
    let workspace = app.workspace.clone();
    list_for(&app, &workspace).await
}

async fn list_authenticated(State(app): State<App>, Authenticated(who): Authenticated) -> Response {
    list_for(&app, &who.workspace_id).await
}

/// The route without database work: what is left of a request is HTTP, routing and (in the
/// authenticated variants) the layer, so its cost is not hidden behind a query.
const PING: &str = "/v1/ping";

async fn ping_open() -> Response {
    axum::Json(serde_json::json!({ "ok": true })).into_response()
}

async fn ping_authenticated(Authenticated(who): Authenticated) -> Response {
    axum::Json(serde_json::json!({ "ok": !who.workspace_id.is_empty() })).into_response()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// An SQLite database `name` in `dir`.
async fn sqlite(dir: &Path, name: &str) -> knowmind_db::Db {
    knowmind_db::Db::connect(&dir.join(name).to_string_lossy(), &Default::default())
        .await
        .unwrap()
}

/// A store on `db` (anomaly detection as `anomalies` says) with 20 notes and [`TOKENS`] read
/// tokens written to `token_file`.
async fn prepared(db: knowmind_db::Db, anomalies: bool, token_file: &Path) -> (Store, App) {
    let fixture = load_fixture(db, anomalies).await;
    let (notes, workspace) = populate(&fixture, TOKENS, token_file).await;
    (fixture.store.clone(), App { notes, workspace })
}

/// Both routes behind the shipped layer: authentication and usage recording.
async fn shipped(store: &Store, app: App) -> SocketAddr {
    serve(
        Router::new()
            .route("/v1/notes", get(list_authenticated))
            .route(PING, get(ping_authenticated))
            .route_layer(RequireScope::new(
                Guard::with_options(store.clone(), None, None),
                Scope::Read,
            ))
            .with_state(app),
    )
    .await
}

/// The shared fixture's workspace with 20 notes and `n` read tokens (returned as text, in a file
/// for wrk).
async fn populate(fixture: &Fixture, n: usize, token_file: &Path) -> (Notes, String) {
    let store = &fixture.store;
    let notes = Notes::open(store.db().clone()).await.unwrap();
    for i in 0..20 {
        let input: NoteInput = serde_json::from_value(
            serde_json::json!({"title": format!("note {i}"), "body": "x".repeat(200)}),
        )
        .unwrap();
        notes
            .create(&fixture.workspace, &input, "load", store.now())
            .await
            .unwrap();
    }
    let mut lines = String::new();
    for i in 0..n {
        let (_, token) = fixture
            .issue(&format!("load-{i}"), &[Scope::Read])
            .await
            .unwrap();
        lines.push_str(token.expose_secret());
        lines.push('\n');
    }
    std::fs::write(token_file, lines).unwrap();
    (notes, fixture.workspace.clone())
}

/// The shared fixture on `db`, on the real clock. Tokens are issued with the fixture's cheap
/// parameters only to create 10,000 of them quickly: a hot token is cached when issued and never
/// hashed again on this path. Cold verification is measured below with the production ones.
/// `anomalies`: whether the usage writer detects anomalies.
async fn load_fixture(db: knowmind_db::Db, anomalies: bool) -> Fixture {
    Fixture::on(db, |mut options| {
        options.usage.anomalies.enabled = anomalies;
        StoreOptions {
            clock: std::sync::Arc::new(token_store::SystemClock),
            failures_per_minute: 0,
            ..options
        }
    })
    .await
    .unwrap()
}

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
}

async fn wrk(
    addr: SocketAddr,
    path: &str,
    token_file: &Path,
    seconds: u32,
    settle: impl std::future::Future<Output = ()>,
) -> Run {
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tokens.lua"));
    let cpu_before = cpu_seconds();
    let report = tokio::task::spawn_blocking({
        let token_file = token_file.to_owned();
        let path = path.to_owned();
        // On its own CPU (see `pin_server`), so that the client never takes the server's.
        move || {
            wrk::wrk(
                &format!("http://{addr}{path}"),
                script,
                &[
                    ("KNOWMIND_TOKENS", &token_file.to_string_lossy()),
                    ("KNOWMIND_PATH", &path),
                ],
                seconds,
            )
        }
    })
    .await
    .unwrap();
    settle.await; // e.g. the usage writer committing what this run queued
    let cpu = cpu_seconds() - cpu_before;
    Run {
        rps: report.rps,
        p50_us: report.p50_us,
        p99_us: report.p99_us,
        cpu_us_per_request: cpu * 1_000_000.0 / report.requests,
    }
}

/// Pins every thread of this process away from [`WRK_CPU`]: with both on the same CPUs, how much
/// CPU the server got depended on the scheduler from one run to the next, and the variants'
/// ratios moved by ±0.05 between runs. Returns the CPUs the server runs on.
fn pin_server() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        cpus >= 2,
        "the load test needs 2 CPUs: one for wrk, the rest for the server"
    );
    let server: Vec<String> = (0..cpus)
        .filter(|c| c.to_string() != WRK_CPU)
        .map(|c| c.to_string())
        .collect();
    let list = server.join(",");
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &list, &std::process::id().to_string()])
        .output()
        .expect("taskset (util-linux) is needed to keep wrk and the server on separate CPUs")
        .status;
    assert!(status.success(), "taskset could not pin the server");
    list
}

/// One way of serving a route: its server, the tokens `wrk` presents to it, and the store whose
/// usage writer is flushed after each run.
#[derive(Clone, Copy)]
struct Way<'a> {
    name: &'a str,
    addr: SocketAddr,
    tokens: &'a Path,
    store: &'a Store,
}

async fn run(way: Way<'_>, path: &str, seconds: u32) -> Run {
    let flush = async { way.store.usage_writer().flush().await.unwrap() };
    wrk(way.addr, path, way.tokens, seconds, flush).await
}

/// Interleaved rounds of `path` served the `ways` (no auth first), then medians and the ratios to
/// no auth.
async fn compare(ways: &[Way<'_>], path: &str) {
    for way in ways {
        run(*way, path, 2).await; // warm-up
    }
    let n = ways.len();
    let mut results: Vec<Vec<Run>> = ways.iter().map(|_| Vec::new()).collect();
    println!("round | variant          | req/s    | p50 µs | p99 µs | server CPU µs/req");
    for round in 0..rounds() {
        for k in 0..n {
            let v = (round + k) % n; // rotate the order every round
            let run = run(ways[v], path, SECONDS_PER_RUN).await;
            println!(
                "{:>5} | {:<16} | {:>8.0} | {:>6.0} | {:>6.0} | {:>6.1}",
                round + 1,
                ways[v].name,
                run.rps,
                run.p50_us,
                run.p99_us,
                run.cpu_us_per_request
            );
            results[v].push(run);
        }
    }
    println!("\nmedians over {} rounds ({path}):", rounds());
    let med: Vec<(f64, f64, f64, f64)> = results
        .iter()
        .map(|runs| {
            (
                median(runs.iter().map(|r| r.rps).collect()),
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(runs.iter().map(|r| r.p99_us).collect()),
                median(runs.iter().map(|r| r.cpu_us_per_request).collect()),
            )
        })
        .collect();
    for (v, Way { name, .. }) in ways.iter().enumerate() {
        let (rps, p50, p99, cpu) = med[v];
        println!(
            "  {name:<16} {rps:>8.0} req/s  p50 {p50:>5.0} µs  p99 {p99:>6.0} µs  CPU {cpu:>5.1} µs/req  ratio to no auth {:.3}",
            rps / med[0].0
        );
    }
    // Single runs on a shared host vary a lot; the spread of the per-round ratios and the ratio
    // of mean rates (every variant ran in the same slow and fast moments, by rotation) say how
    // far to trust the medians.
    for (v, Way { name, .. }) in ways.iter().enumerate().skip(1) {
        let mut ratios: Vec<f64> = (0..rounds())
            .map(|r| results[v][r].rps / results[0][r].rps)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let mean = |v: usize| results[v].iter().map(|r| r.rps).sum::<f64>() / rounds() as f64;
        println!(
            "  {name:<16} per-round ratio: median {:.3}, quartiles {:.3}–{:.3}; ratio of mean rates {:.3}",
            median(ratios.clone()),
            ratios[ratios.len() / 4],
            ratios[ratios.len() * 3 / 4],
            mean(v) / mean(0)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("load: skipped (wrk is not installed: apt-get install wrk)");
        return;
    }
    let server_cpus = pin_server();
    println!("load: server on CPU {server_cpus}, wrk on CPU {WRK_CPU}");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tokens.txt");
    let started = Instant::now();
    let (store, app) = prepared(sqlite(dir.path(), "load.db").await, true, &token_file).await;
    println!(
        "load: {TOKENS} tokens issued in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Both routes, each served three ways by one router per way.
    let open = serve(
        Router::new()
            .route("/v1/notes", get(list_open))
            .route(PING, get(ping_open))
            .with_state(app.clone()),
    )
    .await;
    // The shipped layer, verifying in process but recording nothing (harness only).
    let auth = serve(
        Router::new()
            .route("/v1/notes", get(list_authenticated))
            .route(PING, get(ping_authenticated))
            .route_layer(RequireScope::new(
                Guard::unrecorded_for_benchmarks(store.clone()),
                Scope::Read,
            ))
            .with_state(app.clone()),
    )
    .await;
    let recorded = shipped(&store, app.clone()).await;
    // Usage recorded without anomaly detection: a store of its own (its writer is configured at
    // start), with its own 10,000 tokens, all as fresh as the others.
    let plain_tokens = dir.path().join("plain-tokens.txt");
    let (plain_store, plain_app) =
        prepared(sqlite(dir.path(), "plain.db").await, false, &plain_tokens).await;
    let undetected = shipped(&plain_store, plain_app).await;
    let way = |name, addr, tokens, store| Way {
        name,
        addr,
        tokens,
        store,
    };
    let ways = [
        way("no auth", open, &token_file, &store),
        way("auth only", auth, &token_file, &store),
        way("auth + usage", recorded, &token_file, &store),
        way("usage, no detect", undetected, &plain_tokens, &plain_store),
    ];
    println!("\nroute /v1/notes?limit=10 (an SQLite query)");
    compare(&ways, "/v1/notes?limit=10").await;
    plain_store.close().await;
    // Without a query the server answers ~70,000 requests/s, beyond what the usage writer
    // commits on one CPU (it answers 503 rather than serve calls unrecorded): this route
    // measures the layer's cost without the record.
    println!("\nroute {PING} (no database work)");
    compare(&ways[..2], PING).await;
    store.close().await;

    // PostgreSQL: the shipped layer, same route.
    if let Some(pg) = knowmind_db::testing::postgres().await.unwrap() {
        let pg_tokens = dir.path().join("pg-tokens.txt");
        let (pg_store, pg_app) = prepared(pg.db.clone(), true, &pg_tokens).await;
        let addr = shipped(&pg_store, pg_app).await;
        let flush = || async { pg_store.usage_writer().flush().await.unwrap() };
        wrk(addr, "/v1/notes?limit=10", &pg_tokens, 2, flush()).await;
        let runs: Vec<Run> = {
            let mut runs = Vec::new();
            for _ in 0..3 {
                runs.push(
                    wrk(
                        addr,
                        "/v1/notes?limit=10",
                        &pg_tokens,
                        SECONDS_PER_RUN,
                        flush(),
                    )
                    .await,
                );
            }
            runs
        };
        println!(
            "\npostgres, auth + usage: median {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, CPU {:.1} µs/req (3 runs)",
            median(runs.iter().map(|r| r.rps).collect()),
            median(runs.iter().map(|r| r.p50_us).collect()),
            median(runs.iter().map(|r| r.p99_us).collect()),
            median(runs.iter().map(|r| r.cpu_us_per_request).collect())
        );
        pg_store.close().await;
    }

    // Cold verification with the production parameters: a fresh instance, empty cache.
    let cold_dir = tempfile::tempdir().unwrap();
    let url = cold_dir
        .path()
        .join("cold.db")
        .to_string_lossy()
        .into_owned();
    let issuer = Store::open(&url, StoreOptions::default()).await.unwrap();
    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (ws, ada) = issuer
        .create_workspace("cold", owner, &Context::system())
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..30 {
        let new = NewToken {
            owner_id: ada.id.clone(),
            name: format!("cold-{i}"),
            description: String::new(),
            client: String::new(),
            scopes: Scope::Read.into(),
            expires_at: None,
            allowed_networks: Default::default(),
        };
        tokens.push(
            issuer
                .create_token(&ws.id, new, &Context::system())
                .await
                .unwrap()
                .1,
        );
    }
    issuer.close().await;
    let fresh = Store::open(&url, StoreOptions::default()).await.unwrap();
    let call = token_store::Call {
        method: "GET".into(),
        route: "/v1/notes".into(),
        ..Default::default()
    };
    let mut cold = Vec::new();
    for token in &tokens {
        let t = Instant::now();
        fresh
            .verify(token.expose_secret(), Scope::Read.into(), &call)
            .await
            .unwrap()
            .finish(200);
        cold.push(t.elapsed().as_secs_f64() * 1_000.0);
    }
    cold.sort_by(f64::total_cmp);
    println!(
        "\ncold verification (lookup + scrypt ln=14,r=8,p=1), 30 tokens: p50 {:.1} ms, max {:.1} ms",
        cold[15], cold[29]
    );
    fresh.close().await;
}
