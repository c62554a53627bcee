//! Per-token baselines: learning, then each new value raised once, on every backend and with
//! two writers (instances) sharing the database.

use std::net::IpAddr;

use audit::{
    Action, AnomalyConfig, AnomalyKind, Audit, EventFilter, UsageConfig, UsageOutcome, UsageRecord,
    UsageWriter,
};
use sqlx::Row;
use time::Duration;

use crate::*;

fn learning_after(calls: i64) -> UsageConfig {
    UsageConfig {
        anomalies: AnomalyConfig {
            learning_calls: calls,
            ..AnomalyConfig::default()
        },
        ..UsageConfig::default()
    }
}

fn call(
    token: TokenId,
    minutes: i64,
    ip: &str,
    method: &'static str,
    route: &'static str,
) -> UsageRecord {
    UsageRecord {
        at: T0 + Duration::minutes(minutes),
        token_id: token,
        workspace_id: Some("ws_a".into()),
        client_ip: Some(ip.parse::<IpAddr>().unwrap()),
        method: method.into(),
        route: route.into(),
        status: Some(200),
        user_agent: Some("deploy-bot/1.2".into()),
        outcome: UsageOutcome::Accepted,
        reported_by: None,
    }
}

async fn raised(audit: &Audit, token: TokenId) -> Vec<(AnomalyKind, String)> {
    let mut all: Vec<_> = audit
        .anomalies(Some("ws_a"), Some(token), None, None, 1_000)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| (a.kind, a.value))
        .collect();
    all.sort_by(|a, b| a.1.cmp(&b.1));
    all
}

#[tokio::test]
async fn after_learning_each_new_value_is_raised_once() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let writer = UsageWriter::spawn(&audit, &learning_after(5));
        let tok = token_id(1);
        // Learning: five calls from one network, on two endpoints.
        for i in 0..5 {
            let mut r = call(tok, i * 60, "192.0.2.10", "GET", "/v1/notes");
            if i == 3 {
                r.route = "/v1/notes/{id}".into();
            }
            writer.record(r).unwrap();
        }
        writer.flush().await.unwrap();
        // Refused calls teach nothing and raise nothing: someone guessing secrets from
        // elsewhere, or the holder probing a route its scopes do not allow.
        for outcome in [UsageOutcome::WrongSecret, UsageOutcome::InsufficientScope] {
            let mut refused = call(tok, 400, "203.0.113.66", "DELETE", "/v1/notes/{id}");
            refused.outcome = outcome;
            refused.user_agent = Some("sqlmap/1.7".into());
            writer.record(refused).unwrap();
        }
        // Known network (another address in the same /24), known endpoint, later client version.
        let mut same = call(tok, 500, "192.0.2.200", "GET", "/v1/notes/{id}");
        same.user_agent = Some("deploy-bot/2.0".into());
        writer.record(same).unwrap();
        writer.flush().await.unwrap();
        assert_eq!(raised(&audit, tok).await, [], "{}", t.name);

        // Then a new network, a new endpoint and a new client, twice each, over two batches.
        for batch in 0..2 {
            for i in 0..2 {
                let mut r = call(
                    tok,
                    600 + batch * 10 + i,
                    "198.51.100.7",
                    "DELETE",
                    "/v1/notes/{id}",
                );
                r.user_agent = Some("python-requests/2.31".into());
                writer.record(r).unwrap();
            }
            writer.flush().await.unwrap();
        }
        assert_eq!(
            raised(&audit, tok).await,
            [
                (AnomalyKind::NewNetwork, "198.51.100.0/24".to_owned()),
                (AnomalyKind::NewEndpoint, "DELETE /v1/notes/{id}".to_owned()),
                (AnomalyKind::NewUserAgent, "python-requests".to_owned()),
            ],
            "{}",
            t.name
        );
        let anomalies = audit
            .anomalies(Some("ws_a"), None, None, None, 10)
            .await
            .unwrap()
            .items;
        assert!(
            anomalies
                .iter()
                .all(|a| a.client_ip.as_deref() == Some("198.51.100.7")
                    && a.at == T0 + Duration::minutes(600))
        );
        // Each is also a token.anomaly event in the chain, with the details.
        let events = audit
            .events(
                &EventFilter {
                    token: Some(tok),
                    action: Some(Action::TokenAnomaly),
                    ..EventFilter::default()
                },
                None,
                100,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(events.len(), 3, "{}", t.name);
        assert!(events.iter().all(|e| e.details["severity"] == "medium"
            || e.details["kind"] == "new_user_agent"));
        assert!(
            audit.verify(&[]).await.unwrap().broken.is_none(),
            "{}: the chain holds",
            t.name
        );
        // Other workspaces see none of it; paging walks the list.
        assert!(
            audit
                .anomalies(Some("ws_b"), None, None, None, 10)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let first = audit
            .anomalies(Some("ws_a"), None, None, None, 2)
            .await
            .unwrap();
        let rest = audit
            .anomalies(Some("ws_a"), None, None, first.next_cursor.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(first.items.len() + rest.items.len(), 3);
        assert!(rest.next_cursor.is_none());
    }
}

/// A learning token's count is kept by the writer and saved when it first meets the token, when
/// learning ends, and at most once a minute between: a busy learning token does not cost an
/// upsert per batch, and learning still ends at exactly the configured call.
#[tokio::test]
async fn learning_counts_are_saved_sparingly_and_end_learning_exactly() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let writer = UsageWriter::spawn(&audit, &learning_after(10));
        let tok = token_id(7);
        let stored = || async {
            sqlx::query("SELECT calls FROM token_learning WHERE token_id = $1")
                .bind(tok.as_str())
                .fetch_one(t.db.pool())
                .await
                .unwrap()
                .get::<i64, _>("calls")
        };
        let at_seconds = |seconds: i64, ip: &str| {
            let mut r = call(tok, 0, ip, "GET", "/v1/notes");
            r.at = T0 + Duration::seconds(seconds);
            writer.record(r).unwrap();
        };
        // Five calls in five batches within a minute: saved once, when first met.
        for s in 0..5 {
            at_seconds(s, "192.0.2.10");
            writer.flush().await.unwrap();
        }
        assert_eq!(stored().await, 1, "{}", t.name);
        // A minute later the count is saved again.
        at_seconds(90, "192.0.2.10");
        writer.flush().await.unwrap();
        assert_eq!(stored().await, 6, "{}", t.name);
        // Calls 7 to 10 end learning; the tenth is saved with it, and a new network on the
        // tenth call is still learnt quietly.
        for s in 91..94 {
            at_seconds(s, "192.0.2.10");
            writer.flush().await.unwrap();
        }
        assert_eq!(stored().await, 6, "{}", t.name);
        at_seconds(95, "198.51.100.1");
        writer.flush().await.unwrap();
        assert_eq!(stored().await, 10, "{}", t.name);
        assert_eq!(raised(&audit, tok).await, [], "{}", t.name);
        // The eleventh call, from a network never seen (ten minutes later: not a second holder),
        // is judged.
        at_seconds(700, "203.0.113.5");
        writer.flush().await.unwrap();
        assert_eq!(
            raised(&audit, tok).await,
            [(AnomalyKind::NewNetwork, "203.0.113.0/24".to_owned())],
            "{}",
            t.name
        );
        assert_eq!(
            stored().await,
            10,
            "learnt tokens are not counted: {}",
            t.name
        );
    }
}

#[tokio::test]
async fn two_networks_within_minutes_are_raised_once_per_pair() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let writer = UsageWriter::spawn(&audit, &learning_after(1));
        let tok = token_id(2);
        // Learnt: the office and home, hours apart (a laptop going home is not an anomaly).
        writer
            .record(call(tok, 0, "192.0.2.1", "GET", "/v1/notes"))
            .unwrap();
        writer.flush().await.unwrap();
        writer
            .record(call(tok, 10, "192.0.2.1", "GET", "/v1/notes"))
            .unwrap();
        writer.flush().await.unwrap();
        writer
            .record(call(tok, 300, "198.51.100.1", "GET", "/v1/notes"))
            .unwrap();
        writer.flush().await.unwrap();
        let first_raised = raised(&audit, tok).await;
        assert_eq!(
            first_raised,
            [(AnomalyKind::NewNetwork, "198.51.100.0/24".to_owned())]
        );
        // Then both at once, alternating, across batches: one concurrent-use anomaly.
        for i in 0..6 {
            let ip = if i % 2 == 0 {
                "192.0.2.1"
            } else {
                "198.51.100.1"
            };
            writer
                .record(call(tok, 400 + i, ip, "GET", "/v1/notes"))
                .unwrap();
            if i % 2 == 1 {
                writer.flush().await.unwrap();
            }
        }
        assert_eq!(
            raised(&audit, tok).await,
            [
                (
                    AnomalyKind::ConcurrentNetworks,
                    "192.0.2.0/24, 198.51.100.0/24".to_owned()
                ),
                (AnomalyKind::NewNetwork, "198.51.100.0/24".to_owned()),
            ],
            "{}",
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_seeing_the_same_new_value_raise_it_once() {
    for t in backends().await {
        let second = second_pool(&t).await;
        let tok = token_id(3);
        let mut tasks = Vec::new();
        for db in [t.db.clone(), second] {
            tasks.push(tokio::spawn(async move {
                let writer = UsageWriter::spawn(&Audit::new(db), &learning_after(3));
                for i in 0..3 {
                    writer
                        .record(call(tok, i, "192.0.2.1", "GET", "/v1/notes"))
                        .unwrap();
                }
                writer.flush().await.unwrap();
                for i in 0..20 {
                    writer
                        .record(call(tok, 100 + i, "203.0.113.9", "GET", "/v1/notes"))
                        .unwrap();
                    writer.flush().await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let audit = Audit::new(t.db.clone());
        assert_eq!(
            raised(&audit, tok).await,
            [(AnomalyKind::NewNetwork, "203.0.113.0/24".to_owned())],
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn a_canary_use_is_a_high_severity_anomaly() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let tok = token_id(4);
        let mut r = call(tok, 0, "::ffff:203.0.113.5", "GET", "/v1/notes");
        r.outcome = UsageOutcome::Canary;
        audit.record_canary_use(&r).await.unwrap();
        let all = audit
            .anomalies(Some("ws_a"), Some(tok), None, None, 10)
            .await
            .unwrap()
            .items;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].kind, AnomalyKind::Canary);
        assert_eq!(all[0].severity, audit::Severity::High);
        assert_eq!(all[0].value, "203.0.113.0/24");
        assert_eq!(all[0].client_ip.as_deref(), Some("203.0.113.5"));
    }
}

#[tokio::test]
async fn two_holders_behind_two_instances_are_seen() {
    for t in backends().await {
        let tok = token_id(5);
        let a = UsageWriter::spawn(&Audit::new(t.db.clone()), &learning_after(1));
        let b = UsageWriter::spawn(&Audit::new(second_pool(&t).await), &learning_after(1));
        // Learnt on both networks, hours apart.
        a.record(call(tok, 0, "192.0.2.1", "GET", "/v1/notes"))
            .unwrap();
        a.flush().await.unwrap();
        a.record(call(tok, 1, "192.0.2.1", "GET", "/v1/notes"))
            .unwrap();
        a.flush().await.unwrap();
        b.record(call(tok, 300, "198.51.100.1", "GET", "/v1/notes"))
            .unwrap();
        b.flush().await.unwrap();
        // Then the holder keeps using instance A while someone else uses instance B.
        for i in 0..4 {
            a.record(call(tok, 400 + 2 * i, "192.0.2.1", "GET", "/v1/notes"))
                .unwrap();
            a.flush().await.unwrap();
            b.record(call(tok, 401 + 2 * i, "198.51.100.1", "GET", "/v1/notes"))
                .unwrap();
            b.flush().await.unwrap();
        }
        let audit = Audit::new(t.db.clone());
        let pairs: Vec<_> = raised(&audit, tok)
            .await
            .into_iter()
            .filter(|(kind, _)| *kind == AnomalyKind::ConcurrentNetworks)
            .collect();
        assert_eq!(
            pairs,
            [(
                AnomalyKind::ConcurrentNetworks,
                "192.0.2.0/24, 198.51.100.0/24".to_owned()
            )],
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn a_holder_inventing_clients_raises_ten_an_hour_at_most() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let writer = UsageWriter::spawn(&audit, &learning_after(1));
        let tok = token_id(6);
        writer
            .record(call(tok, 0, "192.0.2.1", "GET", "/v1/notes"))
            .unwrap();
        writer.flush().await.unwrap();
        let agent = |i: usize| format!("agent{i}/1.0");
        for i in 0..25 {
            let mut r = call(tok, 10, "192.0.2.1", "GET", "/v1/notes");
            r.user_agent = Some(agent(i));
            writer.record(r).unwrap();
            if i % 7 == 0 {
                writer.flush().await.unwrap();
            }
        }
        writer.flush().await.unwrap();
        assert_eq!(raised(&audit, tok).await.len(), 10, "{}", t.name);
        // An hour later the budget is back; the 15 learnt silently stay learnt.
        let mut r = call(tok, 71, "192.0.2.1", "GET", "/v1/notes");
        r.user_agent = Some(agent(3));
        writer.record(r).unwrap();
        let mut r = call(tok, 72, "192.0.2.1", "GET", "/v1/notes");
        r.user_agent = Some(agent(99));
        writer.record(r).unwrap();
        writer.flush().await.unwrap();
        assert_eq!(raised(&audit, tok).await.len(), 11, "{}", t.name);
    }
}
