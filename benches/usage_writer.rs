//! Sustained usage-writer throughput: how many usage records per second reach the database,
//! committed, on SQLite and (when `KNOWMIND_TEST_DATABASE_URL` is set) PostgreSQL. Then the
//! cost of one record at a steady rate like the HTTP load test's: CPU per record, on SQLite.
//!
//! Each figure is measured with anomaly detection on (the default) and off, in the same run, to
//! show what detection costs the writer (it runs there, off the request path).
//!
//! `cargo bench -p knowmind-benches --bench usage_writer`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

#[path = "process_cpu.rs"]
mod process_cpu;

use audit::{UsageConfig, UsageOutcome, UsageRecord, UsageWriter};
use token_core::TokenId;

const RECORDS: usize = 400_000;

fn writer(db: &knowmind_db::Db, anomalies: bool, learning_calls: i64) -> UsageWriter {
    let mut config = UsageConfig::default();
    config.anomalies.enabled = anomalies;
    config.anomalies.learning_calls = learning_calls;
    UsageWriter::spawn(&audit::Audit::new(db.clone()), &config)
}

fn detection(anomalies: bool) -> &'static str {
    if anomalies {
        "detection on"
    } else {
        "detection off"
    }
}

async fn run(name: &str, db: knowmind_db::Db, anomalies: bool) {
    audit::migrate(&db).await.unwrap();
    let writer = writer(&db, anomalies, 100);
    let tokens: Vec<TokenId> = (0..1_000)
        .map(|_| TokenId::generate(&mut token_core::rand::rngs::SysRng).unwrap())
        .collect();
    let start = Instant::now();
    let mut busy_waits = 0u64;
    for i in 0..RECORDS {
        let record = UsageRecord {
            at: time::macros::datetime!(2026-11-27 12:00 UTC)
                + time::Duration::microseconds(i as i64),
            token_id: tokens[i % tokens.len()],
            workspace_id: Some("ws_bench".into()),
            client_ip: Some(std::net::IpAddr::from([10, 0, (i % 250) as u8, 1])),
            method: "GET".into(),
            route: "/v1/notes/{id}".into(),
            status: Some(200),
            user_agent: Some("bench/1.0".into()),
            outcome: UsageOutcome::Accepted,
            reported_by: None,
        };
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match writer.record(r.clone()) {
                Ok(()) => {}
                Err(audit::Error::Busy) => {
                    // The queue is full: the writer sets the pace. Wait as a server would not
                    // (it would answer 503); here we want the sustained rate.
                    busy_waits += 1;
                    record = Some(r);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    writer.flush().await.unwrap();
    let elapsed = start.elapsed();
    println!(
        "usage_writer/{name}, {}: {RECORDS} records committed in {:.2} s = {:.0} records/s (producer waited {busy_waits} times on a full queue)",
        detection(anomalies),
        elapsed.as_secs_f64(),
        RECORDS as f64 / elapsed.as_secs_f64()
    );
}

/// Records per second and distinct tokens of the paced run (the load test's order of magnitude).
const PACED_RATE: usize = 11_000;
const PACED_TOKENS: usize = 10_000;
const PACED_SECONDS: usize = 12;

/// A steady 11,000 records/s over 10,000 tokens for 12 s, after a warm-up that stores three
/// records per token: the process's CPU time per record, which is what recording adds to each
/// request of the HTTP load test. 12 s at this rate is two moves to the indexed table.
/// `learning_calls`: 3 makes every token learnt by the end of the warm-up (the steady state of
/// tokens in use for a while); 100 (the default) keeps every token learning throughout.
async fn paced(db: knowmind_db::Db, anomalies: bool, learning_calls: i64) {
    audit::migrate(&db).await.unwrap();
    let writer = writer(&db, anomalies, learning_calls);
    let tokens: Vec<TokenId> = (0..PACED_TOKENS)
        .map(|_| TokenId::generate(&mut token_core::rand::rngs::SysRng).unwrap())
        .collect();
    let record = |i: usize| UsageRecord {
        at: time::macros::datetime!(2026-11-27 12:00 UTC) + time::Duration::microseconds(i as i64),
        token_id: tokens[i % tokens.len()],
        workspace_id: Some("ws_bench".into()),
        client_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        method: "GET".into(),
        route: "/v1/notes".into(),
        status: Some(200),
        user_agent: None,
        outcome: UsageOutcome::Accepted,
        reported_by: None,
    };
    let warm_up = 3 * PACED_TOKENS;
    for i in 0..warm_up {
        while writer.record(record(i)).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writer.flush().await.unwrap();
    let total = PACED_RATE * PACED_SECONDS;
    let per_tick = PACED_RATE / 1_000;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    let cpu_before = process_cpu::cpu_seconds();
    let start = Instant::now();
    let mut busy = 0u64;
    for i in (warm_up..warm_up + total).step_by(per_tick) {
        ticks.tick().await;
        for j in i..i + per_tick {
            if writer.record(record(j)).is_err() {
                busy += 1;
            }
        }
    }
    writer.flush().await.unwrap();
    let cpu = process_cpu::cpu_seconds() - cpu_before;
    println!(
        "usage_writer/sqlite paced, {}, tokens {}: {total} records at {PACED_RATE}/s over {PACED_TOKENS} tokens in {:.2} s, {:.1} µs of process CPU per record ({busy} refused as busy)",
        detection(anomalies),
        if learning_calls <= 3 {
            "learnt"
        } else {
            "learning"
        },
        start.elapsed().as_secs_f64(),
        cpu * 1e6 / total as f64
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe harness=false benches
    }
    for anomalies in [true, false] {
        let sqlite = knowmind_db::testing::sqlite().await.unwrap();
        run("sqlite", sqlite.db.clone(), anomalies).await;
    }
    for anomalies in [true, false] {
        match knowmind_db::testing::postgres().await.unwrap() {
            Some(pg) => run("postgres", pg.db.clone(), anomalies).await,
            None => {
                println!("usage_writer/postgres: skipped (KNOWMIND_TEST_DATABASE_URL not set)")
            }
        }
    }
    for (anomalies, learning_calls) in [(true, 3), (false, 3), (true, 100)] {
        let sqlite = knowmind_db::testing::sqlite().await.unwrap();
        paced(sqlite.db.clone(), anomalies, learning_calls).await;
    }
}
