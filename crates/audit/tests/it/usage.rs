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
    }
}

#[tokio::test]
async fn committed_records_answer_which_calls_from_where() {
    for t in backends().await {
        let writer = UsageWriter::spawn(t.db.clone(), &UsageConfig::default());
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
        let rest = audit.usage(tok, page.next_cursor, 3).await.unwrap();
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
            audit::db::from_micros(row.get("at_us")).unwrap(),
            T0 + Duration::minutes(9)
        );
    }
}

#[tokio::test]
async fn flush_waits_for_everything_queued() {
    for t in backends().await {
        let writer = UsageWriter::spawn(t.db.clone(), &UsageConfig::default());
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
    let t = audit::testing::sqlite().await.unwrap();
    audit::migrate(&t.db).await.unwrap();
    let config = UsageConfig {
        queue: 8,
        ..UsageConfig::default()
    };
    let writer = UsageWriter::spawn(t.db.clone(), &config);
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
        let writer = UsageWriter::spawn(t.db.clone(), &UsageConfig::default());
        let tok = token_id(5);
        for days in [0, 30, 89, 91, 200] {
            let mut r = record(tok, 0, "192.0.2.1", "/", UsageOutcome::Accepted);
            r.at = T0 - Duration::days(days);
            writer.record(r).unwrap();
        }
        writer.flush().await.unwrap();
        let audit = Audit::new(t.db.clone());
        let pruned = audit.prune_usage(T0, Duration::days(90)).await.unwrap();
        assert_eq!(pruned, 2, "{}", t.name);
        assert_eq!(audit.usage_summary(tok).await.unwrap().total, 3);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn best_effort_records_leave_half_the_queue_to_reserved_ones() {
    let t = audit::testing::sqlite().await.unwrap();
    audit::migrate(&t.db).await.unwrap();
    let writer = UsageWriter::spawn(
        t.db.clone(),
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
        let writer = UsageWriter::spawn(t.db.clone(), &UsageConfig::default());
        let tok = token_id(7);
        let last = || async {
            let row =
                sqlx::query("SELECT at_us, client_ip FROM token_last_use WHERE token_id = $1")
                    .bind(tok.as_str())
                    .fetch_one(t.db.pool())
                    .await
                    .unwrap();
            let at = audit::db::from_micros(row.get("at_us")).unwrap();
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
