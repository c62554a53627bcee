//! A flood of wrong secrets for one known token id, with the production scrypt parameters, while
//! a legitimate client keeps presenting a cached valid token. Shows that scrypt work stays bounded
//! by the pool (refusals beyond it are "busy", at once), what that costs in peak memory, and how
//! the legitimate client's latency holds up.
//!
//! `cargo bench -p knowmind-benches --bench flood`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use token_core::{Scope, Token};
use token_store::{Call, Error, Refusal, StoreOptions};

const FLOOD_SECONDS: u64 = 6;
const ATTACKERS: usize = 32;

fn vm_hwm_kib() -> u64 {
    read_status("VmHWM:")
}

fn vm_rss_kib() -> u64 {
    read_status("VmRSS:")
}

fn read_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = knowmind_db::Db::connect(
        dir.path().join("flood.db").to_str().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    // The shared fixture on the real clock with production hashing and a small scrypt pool.
    let fixture = token_store::testing::Fixture::on(db, |options| StoreOptions {
        clock: std::sync::Arc::new(token_store::SystemClock),
        hash_params: token_core::HashParams::DEFAULT,
        hash_threads: 2,
        hash_queue: 4,
        failures_per_minute: 0,
        ..options
    })
    .await
    .unwrap();
    let store = fixture.store.clone();
    let (victim, _) = fixture.issue("victim", &[Scope::Read]).await.unwrap();
    let (_, legit) = fixture.issue("legit", &[Scope::Read]).await.unwrap();
    let call = Call {
        method: "GET".into(),
        route: "/v1/notes".into(),
        ..Call::default()
    };

    // Baseline latency of the cached valid token, alone.
    let mut alone = Vec::new();
    for _ in 0..20_000 {
        let t = Instant::now();
        store
            .verify(legit.expose_secret(), Scope::Read.into(), &call)
            .await
            .unwrap()
            .finish(200);
        alone.push(t.elapsed());
    }
    store.usage_writer().flush().await.unwrap();
    alone.sort();
    let rss_before = vm_rss_kib();

    let wrong = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(FLOOD_SECONDS);
    let mut attackers = Vec::new();
    for a in 0..ATTACKERS {
        let (store, wrong, busy) = (store.clone(), wrong.clone(), busy.clone());
        let body = format!("{}{:0>32}", victim.id, a);
        let forged: Token = token_core::checksummed(&body).parse().unwrap();
        let forged = forged.expose_secret().to_owned();
        attackers.push(tokio::spawn(async move {
            let call = Call {
                method: "GET".into(),
                route: "/v1/notes".into(),
                ..Call::default()
            };
            while Instant::now() < deadline {
                match store.verify(&forged, Scope::Read.into(), &call).await {
                    Err(Error::Unauthorized(Refusal::WrongSecret)) => {
                        wrong.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(Error::Busy) => {
                        // An attacker retries at once; yield so the runtime is not monopolised.
                        tokio::task::yield_now().await;
                        busy.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("unexpected {other:?}"),
                };
            }
        }));
    }
    // The legitimate client calls every 200 µs (tokio's timer rounds up to 1 ms, so a few
    // hundred calls a second), every call timed.
    let mut during = Vec::new();
    let mut legit_busy = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        match store
            .verify(legit.expose_secret(), Scope::Read.into(), &call)
            .await
        {
            Ok(v) => {
                v.finish(200);
                during.push(t.elapsed());
            }
            Err(Error::Busy) => legit_busy += 1,
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    for a in attackers {
        a.await.unwrap();
    }
    during.sort();
    let wrong = wrong.load(Ordering::Relaxed);
    let busy = busy.load(Ordering::Relaxed);
    println!(
        "flood: {ATTACKERS} attackers, {FLOOD_SECONDS} s, scrypt ln=14,r=8,p=1 (16 MiB), pool of 2 threads + 4 queued"
    );
    println!(
        "flood: wrong secrets checked with scrypt: {wrong} ({:.1}/s; the pool's ceiling is 2 / 24 ms = ~83/s)",
        wrong as f64 / FLOOD_SECONDS as f64
    );
    println!("flood: refused at once as busy: {busy}");
    println!(
        "flood: refusal usage records dropped to keep room for accepted calls: {}; legitimate calls refused as busy: {legit_busy}",
        store.usage_writer().dropped()
    );
    println!(
        "flood: RSS before {} MiB, peak (VmHWM) {} MiB",
        rss_before / 1024,
        vm_hwm_kib() / 1024
    );
    println!(
        "flood: legitimate cached verifications: alone p50 {:?} p99 {:?}; during flood p50 {:?} p99 {:?} ({} calls)",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len()
    );
    store.close().await;
}
