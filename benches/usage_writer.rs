//! Sustained usage-writer throughput: how many usage records per second reach the database,
//! committed, on SQLite and (when `KNOWMIND_TEST_DATABASE_URL` is set) PostgreSQL.
//!
//! `cargo bench -p knowmind-benches --bench usage_writer`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use audit::{UsageConfig, UsageOutcome, UsageRecord, UsageWriter};
use token_core::TokenId;

const RECORDS: usize = 400_000;

async fn run(name: &str, db: audit::db::Db) {
    audit::migrate(&db).await.unwrap();
    let writer = UsageWriter::spawn(db.clone(), &UsageConfig::default());
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
        "usage_writer/{name}: {RECORDS} records committed in {:.2} s = {:.0} records/s (producer waited {busy_waits} times on a full queue)",
        elapsed.as_secs_f64(),
        RECORDS as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe harness=false benches
    }
    let sqlite = audit::testing::sqlite().await.unwrap();
    run("sqlite", sqlite.db.clone()).await;
    match audit::testing::postgres().await.unwrap() {
        Some(pg) => run("postgres", pg.db.clone()).await,
        None => println!("usage_writer/postgres: skipped (KNOWMIND_TEST_DATABASE_URL not set)"),
    }
}
