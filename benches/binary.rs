//! The real `knowmind-server` binary under `wrk`, beside a bare axum server: each server pinned to
//! CPU 0, wrk on CPU 1, interleaved rounds, medians and the ratio of each target to bare axum
//! measured in the same run.
//!
//! Targets: `GET /healthz` (no auth, no database), `POST /v1/tokens/verify` (a cached introspect
//! token verifying a cached token: what every `RemoteVerifier` call costs) and `GET
//! /v1/notes?limit=10` (a cached read token and an SQLite query), on a server with default
//! settings (access log on, to a file) and on one with the access log off.
//!
//! Then `RemoteVerifier` in this process (pinned to the other CPU) against the binary: verified
//! calls per second and CPU per call on both sides, with its cache and without.
//!
//! `cargo build --release -p knowmind-server && cargo bench -p knowmind-benches --bench binary`
//! (needs `wrk` and `taskset`; `KNOWMIND_BINARY_ROUNDS` sets the rounds, 5 by default); figures in
//! `docs/BENCHMARKS.md`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

#[path = "wrk.rs"]
mod wrk;
use wrk::{median, wrk};

/// The CPU the servers run on (wrk has the other).
const SERVER_CPU: &str = "0";
const SECONDS: u32 = 3;

fn rounds() -> usize {
    std::env::var("KNOWMIND_BINARY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The comparison: axum 0.8's "hello", in a process of its own (this bench, re-run).
fn bare_axum(addr: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

/// One HTTP/1.1 exchange on a fresh connection: status and JSON body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

struct Server {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
    /// Files holding the tokens wrk presents (never on a command line).
    read_token: PathBuf,
    verify_body: PathBuf,
    introspect_token: PathBuf,
}

/// Starts the binary with `env` on CPU 0, waits for it, and sets up what the targets need: a
/// read token, an introspect token and twenty notes.
fn start(binary: &Path, dir: &Path, name: &'static str, env: &[(&str, &str)]) -> Server {
    let data = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    let addr = free_addr();
    let child = Command::new("taskset")
        .args(["-c", SERVER_CPU])
        .arg(binary)
        .args(["serve", "--listen", &addr.to_string()])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .env_remove("KNOWMIND_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if data.join("owner-enrolment-link").exists() && TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let admin = std::fs::read_to_string(data.join("bootstrap-token"))
        .unwrap()
        .trim()
        .to_owned();
    let issue = |scopes: Value| {
        let (status, created) = http(
            addr,
            "POST",
            "/v1/tokens",
            &admin,
            Some(json!({"name": format!("bench-{scopes}"), "scopes": scopes, "expires_in": "1d"})),
        );
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    };
    let (reader, writer, introspect) = (
        issue(json!(["read"])),
        issue(json!(["write"])),
        issue(json!(["introspect"])),
    );
    for i in 0..20 {
        let note = json!({"title": format!("note {i}"), "body": "x".repeat(200)});
        assert_eq!(http(addr, "POST", "/v1/notes", &writer, Some(note)).0, 201);
    }
    let secret = |file: &str, text: String| {
        let path = dir.join(format!("{name}-{file}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    Server {
        name,
        addr,
        child,
        log,
        verify_body: secret(
            "verify.json",
            json!({"token": reader, "scopes": ["read"]}).to_string(),
        ),
        read_token: secret("read-token", reader),
        introspect_token: secret("introspect-token", introspect),
    }
}

/// The Lua script every target uses: an optional bearer token and body, each read from a file.
const SCRIPT: &str = r#"
local function read(var)
  local name = os.getenv(var)
  if not name or name == "" then return nil end
  local f = io.open(name)
  local text = f:read("*a")
  f:close()
  return text
end
local token = read("KNOWMIND_TOKEN_FILE")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
local body = read("KNOWMIND_BODY_FILE")
if body then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
"#;

/// User plus system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// `RemoteVerifier` from this process, pinned to wrk's CPU, asking `server` (default settings) on
/// CPU 0: 16 concurrent callers for [`SECONDS`], three rounds each, without the cache (every
/// call a request) and with it (one token, answered from the cache).
fn remote_verifier(server: &Server) {
    use knowmind_axum::RemoteVerifier;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let me = std::process::id().to_string();
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", wrk::WRK_CPU, &me])
        .output()
        .unwrap();
    assert!(
        pinned.status.success(),
        "taskset could not pin the verifier"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let introspect = std::fs::read_to_string(&server.introspect_token).unwrap();
    let presented: Arc<str> = std::fs::read_to_string(&server.read_token).unwrap().into();
    println!(
        "\nRemoteVerifier in another process (client on CPU {}, server on CPU {SERVER_CPU}):",
        wrk::WRK_CPU
    );
    for (name, ttl) in [
        ("uncached", Duration::ZERO),
        ("cached", Duration::from_secs(60)),
    ] {
        let verifier = RemoteVerifier::new(
            &format!("http://{}", server.addr),
            secrecy::SecretString::from(introspect.clone()),
            ttl,
        )
        .unwrap();
        let call = Arc::new(token_store::Call {
            method: "GET".into(),
            route: "/v1/things".into(),
            client_ip: Some([127, 0, 0, 1].into()),
            ..Default::default()
        });
        let mut rates = Vec::new();
        let mut client_cpu = Vec::new();
        let mut server_cpu = Vec::new();
        let mut errors = 0;
        for _ in 0..3 {
            let calls = Arc::new(AtomicU64::new(0));
            let refused = Arc::new(AtomicU64::new(0));
            let (server_before, client_before) = (
                cpu_seconds(server.child.id()),
                cpu_seconds(std::process::id()),
            );
            let started = std::time::Instant::now();
            runtime.block_on(async {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS.into());
                let mut callers = tokio::task::JoinSet::new();
                for _ in 0..16 {
                    let (verifier, presented, call, calls, refused) = (
                        verifier.clone(),
                        presented.clone(),
                        call.clone(),
                        calls.clone(),
                        refused.clone(),
                    );
                    callers.spawn(async move {
                        while tokio::time::Instant::now() < deadline {
                            let verified = verifier
                                .verify(&presented, token_core::Scope::Read.into(), &call)
                                .await;
                            // A refusal (a busy server answers 503) is counted apart.
                            let counter = if verified.is_ok() { &calls } else { &refused };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                callers.join_all().await;
            });
            let n = calls.load(Ordering::Relaxed) as f64;
            errors += refused.load(Ordering::Relaxed);
            rates.push(n / started.elapsed().as_secs_f64());
            client_cpu.push((cpu_seconds(std::process::id()) - client_before) * 1e6 / n);
            server_cpu.push((cpu_seconds(server.child.id()) - server_before) * 1e6 / n);
        }
        println!(
            "  {name:<9} {:>9.0} verified calls/s (median of 3), client CPU {:>6.2} µs/call, server CPU {:>6.1} µs/call, {errors} refused",
            median(rates),
            median(client_cpu),
            median(server_cpu)
        );
    }
}

struct Target {
    name: String,
    url: String,
    pid: u32,
    env: Vec<(&'static str, String)>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--bare-axum") {
        bare_axum(&args[i + 1]);
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("binary: skipped (wrk is not installed: apt-get install wrk)");
        return;
    }
    let me = std::env::current_exe().unwrap();
    // target/release/deps/binary-… → target/release/knowmind-server
    let binary = me
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("knowmind-server");
    if !binary.exists() {
        println!(
            "binary: skipped ({} is missing: cargo build --release -p knowmind-server first)",
            binary.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bench.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let bare_addr = free_addr();
    let bare = Command::new("taskset")
        .args(["-c", SERVER_CPU])
        .arg(&me)
        .args(["--bare-axum", &bare_addr.to_string()])
        .spawn()
        .unwrap();
    let logged = start(&binary, dir.path(), "default", &[]);
    let quiet = start(
        &binary,
        dir.path(),
        "no-access-log",
        &[("KNOWMIND_ACCESS_LOG", "off")],
    );
    while TcpStream::connect(bare_addr).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut targets = vec![Target {
        name: "bare axum /healthz".into(),
        url: format!("http://{bare_addr}/healthz"),
        pid: bare.id(),
        env: Vec::new(),
    }];
    for s in [&logged, &quiet] {
        targets.push(Target {
            name: format!("{} /healthz", s.name),
            url: format!("http://{}/healthz", s.addr),
            pid: s.child.id(),
            env: Vec::new(),
        });
        targets.push(Target {
            name: format!("{} verify", s.name),
            url: format!("http://{}/v1/tokens/verify", s.addr),
            pid: s.child.id(),
            env: vec![
                ("KNOWMIND_TOKEN_FILE", path(&s.introspect_token)),
                ("KNOWMIND_BODY_FILE", path(&s.verify_body)),
            ],
        });
        targets.push(Target {
            name: format!("{} notes", s.name),
            url: format!("http://{}/v1/notes?limit=10", s.addr),
            pid: s.child.id(),
            env: vec![("KNOWMIND_TOKEN_FILE", path(&s.read_token))],
        });
    }
    let run = |t: &Target, seconds: u32| {
        let env: Vec<(&str, &str)> = t.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let before = cpu_seconds(t.pid);
        let report = wrk(&t.url, &script, &env, seconds);
        let cpu_us = (cpu_seconds(t.pid) - before) * 1e6 / report.requests;
        (report, cpu_us)
    };
    for t in &targets {
        run(t, 1); // warm-up: caches, connections, page cache
    }
    println!(
        "binary: servers on CPU {SERVER_CPU}, wrk on CPU {}",
        wrk::WRK_CPU
    );
    println!(
        "round | target                        | req/s  | p50 µs | p99 µs | server CPU µs/req"
    );
    let n = targets.len();
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds() {
        for k in 0..n {
            let i = (round + k) % n; // rotate the order every round
            let (report, cpu_us) = run(&targets[i], SECONDS);
            println!(
                "{:>5} | {:<29} | {:>6.0} | {:>6.0} | {:>6.0} | {:>5.1}",
                round + 1,
                targets[i].name,
                report.rps,
                report.p50_us,
                report.p99_us,
                cpu_us
            );
            rps[i].push(report.rps);
            cpu[i].push(cpu_us);
            p99[i].push(report.p99_us);
        }
    }
    println!("\nmedians over {} rounds:", rounds());
    for (i, t) in targets.iter().enumerate() {
        let per_round: Vec<f64> = (0..rounds()).map(|r| rps[i][r] / rps[0][r]).collect();
        println!(
            "  {:<29} {:>7.0} req/s  p99 {:>5.0} µs  server CPU {:>5.1} µs/req  ÷ bare axum: {:.3} (per-round median)",
            t.name,
            median(rps[i].clone()),
            median(p99[i].clone()),
            median(cpu[i].clone()),
            median(per_round)
        );
    }
    for s in [&logged, &quiet] {
        let bytes = std::fs::metadata(&s.log).map_or(0, |m| m.len());
        println!("  {}: {bytes} bytes of log written", s.name);
    }
    remote_verifier(&logged);
    for mut child in [bare, logged.child, quiet.child] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
