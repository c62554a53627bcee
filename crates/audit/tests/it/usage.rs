use std::net::IpAddr;

use audit::{Audit, UsageConfig, UsageOutcome, UsageRecord, UsageWriter};
use sqlx::Row;
use time::Duration;

use crate::*;

fn record(
    token: TokenId,
    minutes: i64,
    ip: &str,
    route: &'static str,
    outcome: UsageOutcome,
) -> UsageRecord {
    UsageRecord {
        at: T0 + Duration::minutes(minutes),
        token_id: token,
        workspace_id: Some("ws_a".into()),
        client_ip: Some(ip.parse::<IpAddr>().unwrap()),
        method: "GET".into(),
        route: route.into(),
        status: Some(if outcome == UsageOutcome::Accepted {
            200
        } else {
            401
        }),
        user_agent: Some("curl/8".into()),
        outcome,
        reported_by: None,
    }
}

#[tokio::test]
async fn committed_records_answer_which_calls_from_where() {
    for t in backends().await {
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &UsageConfig::default());
        let tok = token_id(1);
        let records = [
            record(tok, 0, "192.0.2.1", "/v1/notes", UsageOutcome::Accepted),
            record(
                tok,
                5,
                "192.0.2.1",
                "/v1/notes/{id}",
                UsageOutcome::Accepted,
            ),
            record(tok, 9, "2001:db8::7", "/v1/notes", UsageOutcome::Accepted),
            record(
                tok,
                12,
                "198.51.100.3",
                "/v1/notes",
                UsageOutcome::WrongSecret,
            ),
            record(
                token_id(2),
                1,
                "192.0.2.99",
                "/v1/notes",
                UsageOutcome::Accepted,
            ),
        ];
        let mut waits = Vec::new();
        for r in records {
            waits.push(writer.record_committed(r).unwrap());
        }
        for w in waits {
            w.wait().await.unwrap();
        }
        let audit = Audit::new(t.db.clone());
        let summary = audit.usage_summary(tok).await.unwrap();
        assert_eq!(summary.total, 4, "{}", t.name);
        let ips: Vec<_> = summary
            .ips
            .iter()
            .map(|i| (i.ip.clone().unwrap(), i.count))
            .collect();
        assert_eq!(
            ips,
            [
                ("198.51.100.3".to_owned(), 1),
                ("2001:db8::7".to_owned(), 1),
                ("192.0.2.1".to_owned(), 2)
            ]
        );
        let first = summary
            .ips
            .iter()
            .find(|i| i.ip.as_deref() == Some("192.0.2.1"))
            .unwrap();
        assert_eq!(
            (first.first_seen, first.last_seen),
            (T0, T0 + Duration::minutes(5))
        );
        let routes: Vec<_> = summary
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.count))
            .collect();
        assert_eq!(
            routes,
            [("/v1/notes", 3), ("/v1/notes/{id}", 1)],
            "{}",
            t.name
        );

        let page = audit.usage(tok, None, 3).await.unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.items[0].record.outcome, UsageOutcome::WrongSecret);
        let rest = audit
            .usage(tok, page.next_cursor.as_deref(), 3)
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.next_cursor, None);

        // The last accepted use is kept per token, from the latest accepted record.
        let row = sqlx::query("SELECT at_us, client_ip FROM token_last_use WHERE token_id = $1")
            .bind(tok.as_str())
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(
            row.get::<String, _>("client_ip"),
            "2001:db8::7",
            "{}",
            t.name
        );
        assert_eq!(
            knowmind_db::from_micros(row.get("at_us")).unwrap(),
            T0 + Duration::minutes(9)
        );
    }
}

#[tokio::test]
async fn flush_waits_for_everything_queued() {
    for t in backends().await {
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &UsageConfig::default());
        for i in 0..5_000 {
            writer
                .record(record(
                    token_id(3),
                    i % 60,
                    "192.0.2.1",
                    "/v1/notes",
                    UsageOutcome::Accepted,
                ))
                .unwrap();
        }
        writer.flush().await.unwrap();
        let summary = Audit::new(t.db.clone())
            .usage_summary(token_id(3))
            .await
            .unwrap();
        assert_eq!(summary.total, 5_000, "{}", t.name);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_says_busy_instead_of_growing() {
    let t = knowmind_db::testing::sqlite().await.unwrap();
    audit::migrate(&t.db).await.unwrap();
    let config = UsageConfig {
        queue: 8,
        ..UsageConfig::default()
    };
    let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &config);
    // On a single-threaded runtime the writer cannot run until we yield: the ninth record finds
    // the queue full.
    for i in 0..8 {
        writer
            .record(record(
                token_id(4),
                i,
                "192.0.2.1",
                "/",
                UsageOutcome::Accepted,
            ))
            .unwrap();
    }
    let err = writer
        .record(record(
            token_id(4),
            9,
            "192.0.2.1",
            "/",
            UsageOutcome::Accepted,
        ))
        .unwrap_err();
    assert!(matches!(err, audit::Error::Busy), "{err}");
    writer.flush().await.unwrap();
    assert_eq!(
        Audit::new(t.db.clone())
            .usage_summary(token_id(4))
            .await
            .unwrap()
            .total,
        8
    );
}

#[tokio::test]
async fn pruning_keeps_the_retention_window() {
    for t in backends().await {
        // The first three records move to the indexed table; the last two stay where new records
        // land: pruning must reach both.
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &indexing_after(3));
        let tok = token_id(5);
        for batch in [&[0, 91, 30][..], &[200, 89]] {
            for &days in batch {
                let mut r = record(tok, 0, "192.0.2.1", "/", UsageOutcome::Accepted);
                r.at = T0 - Duration::days(days);
                writer.record(r).unwrap();
            }
            writer.flush().await.unwrap();
        }
        assert_eq!(table_counts(&t.db).await, (3, 2), "{}", t.name);
        let audit = Audit::new(t.db.clone());
        let pruned = audit.prune_usage(T0, Duration::days(90)).await.unwrap();
        assert_eq!(pruned, 2, "{}", t.name);
        assert_eq!(table_counts(&t.db).await, (3, 0), "{}", t.name);
        let kept: Vec<_> = all_pages(&audit, tok, 10).await;
        assert!(
            kept.iter().all(|u| T0 - u.record.at < Duration::days(90)),
            "{}",
            t.name
        );
        assert_eq!(kept.len(), 3, "{}", t.name);
        // The counts by address and endpoint still cover every call, first use included.
        let summary = audit.usage_summary(tok).await.unwrap();
        assert_eq!(summary.total, 5, "{}", t.name);
        assert_eq!(summary.ips[0].first_seen, T0 - Duration::days(200));
        assert_eq!(summary.routes[0].count, 5);
    }
}

/// A writer configuration that moves records to the indexed table once `n` are waiting.
fn indexing_after(n: usize) -> UsageConfig {
    UsageConfig {
        index_records: n,
        ..UsageConfig::default()
    }
}

/// How many records sit in the indexed table and in the table new ones land in.
async fn table_counts(db: &knowmind_db::Db) -> (i64, i64) {
    let mut counts = [0; 2];
    for (count, table) in counts.iter_mut().zip(["usage_records", "usage_recent"]) {
        *count = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    }
    (counts[0], counts[1])
}

/// Every usage record of `tok`, newest first, read page by page.
async fn all_pages(audit: &Audit, tok: TokenId, page: u32) -> Vec<audit::StoredUsage> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = audit.usage(tok, cursor.as_deref(), page).await.unwrap();
        all.extend(p.items);
        match p.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

#[tokio::test]
async fn records_read_the_same_before_and_after_they_move_to_the_index() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let tok = token_id(7);
        // Nothing moves yet: every record waits in the unindexed table.
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &indexing_after(usize::MAX));
        for i in 0..50 {
            let ip = format!("192.0.2.{}", i % 3);
            let route = if i % 2 == 0 {
                "/v1/notes"
            } else {
                "/v1/notes/{id}"
            };
            writer
                .record(record(tok, i, &ip, route, UsageOutcome::Accepted))
                .unwrap();
            writer
                .record(record(token_id(8), i, &ip, route, UsageOutcome::Accepted))
                .unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(table_counts(&t.db).await, (0, 100), "{}", t.name);
        let before = all_pages(&audit, tok, 7).await;
        let summary_before = audit.usage_summary(tok).await.unwrap();
        assert_eq!(before.len(), 50, "{}", t.name);
        assert!(before.windows(2).all(|w| w[0].id > w[1].id), "{}", t.name);
        assert!(before.iter().all(|u| u.record.token_id == tok));

        // A second writer moves everything on its first batch; then more records arrive, so the
        // pages straddle both tables.
        let mover = UsageWriter::spawn(&Audit::new(t.db.clone()), &indexing_after(1));
        mover
            .record_committed(record(
                token_id(9),
                0,
                "192.0.2.1",
                "/",
                UsageOutcome::Accepted,
            ))
            .unwrap()
            .wait()
            .await
            .unwrap();
        mover.flush().await.unwrap(); // the move follows the commit it was triggered by
        assert_eq!(table_counts(&t.db).await, (101, 0), "{}", t.name);
        assert_eq!(all_pages(&audit, tok, 7).await, before, "{}", t.name);
        assert_eq!(audit.usage_summary(tok).await.unwrap(), summary_before);

        for i in 50..60 {
            writer
                .record(record(
                    tok,
                    i,
                    "203.0.113.5",
                    "/v1/notes",
                    UsageOutcome::Accepted,
                ))
                .unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(table_counts(&t.db).await, (101, 10), "{}", t.name);
        let after = all_pages(&audit, tok, 7).await;
        assert_eq!(after.len(), 60, "{}", t.name);
        assert!(after.windows(2).all(|w| w[0].id > w[1].id), "{}", t.name);
        assert!(after[10].id < after[9].id && after[10..] == before[..]);
        let summary = audit.usage_summary(tok).await.unwrap();
        assert_eq!(summary.total, 60);
        assert_eq!(summary.ips[0].ip.as_deref(), Some("203.0.113.5"));
        assert_eq!(summary.ips[0].count, 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_moving_records_concurrently_lose_and_repeat_nothing() {
    for t in backends().await {
        let second = second_pool(&t).await;
        let mut tasks = Vec::new();
        for (n, db) in [t.db.clone(), second].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let writer = UsageWriter::spawn(&Audit::new(db), &indexing_after(40));
                for i in 0..400 {
                    let tok = token_id(20 + (i % 5) as u8);
                    let ip = format!("198.51.100.{n}");
                    writer
                        .record(record(tok, i, &ip, "/v1/notes", UsageOutcome::Accepted))
                        .unwrap();
                    if i % 25 == 0 {
                        writer.flush().await.unwrap();
                    }
                }
                writer.flush().await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let (indexed, recent) = table_counts(&t.db).await;
        assert_eq!(indexed + recent, 800, "{}", t.name);
        assert!(indexed >= 400, "{}: {indexed} moved", t.name);
        let audit = Audit::new(t.db.clone());
        let mut ids = Vec::new();
        for n in 20..25 {
            let pages = all_pages(&audit, token_id(n), 1_000).await;
            assert_eq!(pages.len(), 160, "{}", t.name);
            let summary = audit.usage_summary(token_id(n)).await.unwrap();
            let by_ip: Vec<i64> = summary.ips.iter().map(|ip| ip.count).collect();
            assert_eq!(by_ip, [80, 80], "{}: counted once each", t.name);
            assert_eq!(summary.routes[0].count, 160, "{}", t.name);
            ids.extend(pages.iter().map(|u| u.id));
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 800, "{}: ids are unique across tables", t.name);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn best_effort_records_leave_half_the_queue_to_reserved_ones() {
    let t = knowmind_db::testing::sqlite().await.unwrap();
    audit::migrate(&t.db).await.unwrap();
    let writer = UsageWriter::spawn(
        &Audit::new(t.db.clone()),
        &UsageConfig {
            queue: 8,
            ..UsageConfig::default()
        },
    );
    let refused = |i| {
        record(
            token_id(6),
            i,
            "198.51.100.1",
            "/",
            UsageOutcome::WrongSecret,
        )
    };
    // The writer cannot run until we yield, so the queue only fills.
    let queued = (0..8)
        .filter(|&i| writer.record_if_room(refused(i)))
        .count();
    assert_eq!(queued, 4, "refusals stop at half the queue");
    assert_eq!(writer.dropped(), 4);
    let slots: Vec<_> = (0..4).map(|_| writer.reserve().unwrap()).collect();
    assert!(matches!(writer.reserve(), Err(audit::Error::Busy)));
    for (i, slot) in slots.into_iter().enumerate() {
        slot.record(record(
            token_id(6),
            100 + i as i64,
            "192.0.2.1",
            "/",
            UsageOutcome::Accepted,
        ));
    }
    writer.flush().await.unwrap();
    let summary = Audit::new(t.db.clone())
        .usage_summary(token_id(6))
        .await
        .unwrap();
    assert_eq!(summary.total, 8);
}

#[tokio::test]
async fn last_use_is_kept_to_the_minute_and_at_once_for_a_new_address() {
    for t in backends().await {
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &UsageConfig::default());
        let tok = token_id(7);
        let last = || async {
            let row =
                sqlx::query("SELECT at_us, client_ip FROM token_last_use WHERE token_id = $1")
                    .bind(tok.as_str())
                    .fetch_one(t.db.pool())
                    .await
                    .unwrap();
            let at = knowmind_db::from_micros(row.get("at_us")).unwrap();
            (
                ((at - T0).whole_seconds()),
                row.get::<String, _>("client_ip"),
            )
        };
        let use_at = |seconds: i64, ip: &str| {
            let mut r = record(tok, 0, ip, "/", UsageOutcome::Accepted);
            r.at = T0 + Duration::seconds(seconds);
            writer.record(r).unwrap();
        };
        use_at(0, "192.0.2.1");
        writer.flush().await.unwrap();
        use_at(30, "192.0.2.1");
        writer.flush().await.unwrap();
        assert_eq!(
            last().await,
            (0, "192.0.2.1".to_owned()),
            "{}: within the minute, unchanged",
            t.name
        );
        use_at(61, "192.0.2.1");
        writer.flush().await.unwrap();
        assert_eq!(last().await, (61, "192.0.2.1".to_owned()), "{}", t.name);
        use_at(62, "198.51.100.8");
        writer.flush().await.unwrap();
        assert_eq!(
            last().await,
            (62, "198.51.100.8".to_owned()),
            "{}: a new address at once",
            t.name
        );
        assert_eq!(
            Audit::new(t.db.clone())
                .usage_summary(tok)
                .await
                .unwrap()
                .total,
            4,
            "every use is still recorded"
        );
    }
}

#[tokio::test]
async fn upgrading_from_one_indexed_table_keeps_records_and_their_ids() {
    for t in knowmind_db::testing::databases().await.unwrap() {
        // The schema as first released (migration 0100 only), with records in it.
        let first = |m: sqlx::migrate::Migrator| sqlx::migrate::Migrator {
            migrations: m.migrations.iter().take(1).cloned().collect(),
            ..m
        };
        t.db.migrate(
            &first(sqlx::migrate!("migrations/sqlite")),
            &first(sqlx::migrate!("migrations/postgres")),
        )
        .await
        .unwrap();
        let tok = token_id(30);
        for minutes in 0..3i64 {
            sqlx::query(
                "INSERT INTO usage_records (at_us, token_id, method, route, outcome) \
                 VALUES ($1, $2, 'GET', '/v1/notes', 'accepted')",
            )
            .bind(minutes * 60_000_000)
            .bind(tok.to_string())
            .execute(t.db.pool())
            .await
            .unwrap();
        }
        audit::migrate(&t.db).await.unwrap();
        let audit = Audit::new(t.db.clone());
        let old: Vec<i64> = all_pages(&audit, tok, 10)
            .await
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(old, [3, 2, 1], "{}", t.name);
        let summary = audit.usage_summary(tok).await.unwrap();
        assert_eq!(
            summary.total, 3,
            "{}: the counts start from the old records",
            t.name
        );
        assert_eq!(summary.ips[0].ip, None);
        assert_eq!(
            summary.ips[0].last_seen,
            time::OffsetDateTime::UNIX_EPOCH + Duration::minutes(2)
        );
        let writer = UsageWriter::spawn(&Audit::new(t.db.clone()), &UsageConfig::default());
        writer
            .record(record(
                tok,
                5,
                "192.0.2.1",
                "/v1/notes",
                UsageOutcome::Accepted,
            ))
            .unwrap();
        writer.flush().await.unwrap();
        let ids: Vec<i64> = all_pages(&audit, tok, 10)
            .await
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(
            ids,
            [4, 3, 2, 1],
            "{}: new ids continue after the old ones",
            t.name
        );
        assert_eq!(audit.usage_summary(tok).await.unwrap().total, 4);
    }
}
