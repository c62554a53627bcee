//! Webhooks, on every backend: the audit log as outbox, signed deliveries retried on a
//! schedule, time-based notices written once; on PostgreSQL, two instances never duplicate a
//! delivery or a notice.

use std::collections::HashSet;

use audit::{Action, EventFilter};
use knowmind_api::{DeliveryState, NewWebhook};
use time::Duration;
use token_core::Scope;
use token_store::{DeliveryOutcome, Error, Revocation, verify_signature};

use crate::*;

fn hook(url: &str) -> NewWebhook {
    NewWebhook {
        url: url.into(),
        ..NewWebhook::default()
    }
}

/// Issues a token named `name` and revokes it: one `token.revoked` event. Returns its id.
async fn revoke_one(env: &Env, name: &str) -> token_core::TokenId {
    let (record, _) = env.create(name, &[Scope::Read]).await;
    env.store
        .revoke_token(&env.ws, record.id, &Revocation::default(), &env.ctx())
        .await
        .unwrap();
    record.id
}

fn answered(status: u16) -> DeliveryOutcome {
    DeliveryOutcome {
        status: Some(status),
        error: None,
        duration_ms: 3,
    }
}

#[tokio::test]
async fn a_revocation_is_delivered_signed_and_retried_until_it_is_accepted() {
    for env in envs().await {
        let name = env.name;
        let created = env
            .store
            .create_webhook(&env.ws, hook("https://hooks.example.org/k"), &env.ctx())
            .await
            .unwrap();
        assert!(created.secret.starts_with("whsec_"));
        assert!(!format!("{created:?}").contains(&created.secret), "{name}");
        let revoked = revoke_one(&env, "laptop").await;
        assert_eq!(env.store.fan_out_webhooks().await.unwrap(), 1, "{name}");
        assert_eq!(
            env.store.fan_out_webhooks().await.unwrap(),
            0,
            "{name}: once"
        );
        let claimed = env.store.claim_deliveries(10).await.unwrap();
        assert_eq!(claimed.len(), 1, "{name}");
        let delivery = &claimed[0];
        assert_eq!(delivery.event_type, "token.revoked");
        assert_eq!(delivery.attempt, 1);
        assert!(!format!("{delivery:?}").contains(&created.secret), "{name}");
        let body: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap();
        assert_eq!(body["id"], delivery.id.as_str());
        assert_eq!(body["data"]["target_id"], revoked.to_string());
        let now = env.store.now();
        let signed = delivery.signature(now.unix_timestamp());
        assert!(verify_signature(
            &created.secret,
            &signed,
            delivery.payload.as_bytes(),
            now,
            Duration::minutes(5)
        ));
        // Leased: nobody else gets it meanwhile.
        assert!(env.store.claim_deliveries(10).await.unwrap().is_empty());
        env.store
            .record_attempt(delivery, &answered(503))
            .await
            .unwrap();
        assert!(
            env.store.claim_deliveries(10).await.unwrap().is_empty(),
            "{name}: the retry waits 30 s"
        );
        env.clock.advance(Duration::seconds(31));
        let retry = env.store.claim_deliveries(10).await.unwrap();
        assert_eq!(retry.len(), 1, "{name}");
        assert_eq!(
            (retry[0].id.as_str(), retry[0].attempt),
            (delivery.id.as_str(), 2)
        );
        env.store
            .record_attempt(&retry[0], &answered(204))
            .await
            .unwrap();
        let log = env
            .store
            .webhook_deliveries(&env.ws, &created.webhook.id, 10)
            .await
            .unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].state, DeliveryState::Delivered, "{name}");
        let statuses: Vec<_> = log[0].attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Some(503), Some(204)], "{name}");
        // The secret is sealed in the database, never stored in clear.
        assert!(
            !contains(&env.database_bytes().await, &created.secret),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_given_up_on_after_more_than_a_day() {
    for env in envs().await {
        let name = env.name;
        let created = env
            .store
            .create_webhook(&env.ws, hook("https://down.example.org/"), &env.ctx())
            .await
            .unwrap();
        revoke_one(&env, "laptop").await;
        env.store.fan_out_webhooks().await.unwrap();
        let started = env.store.now();
        let mut attempts = 0;
        loop {
            let claimed = env.store.claim_deliveries(10).await.unwrap();
            if let Some(delivery) = claimed.first() {
                attempts += 1;
                let refused = DeliveryOutcome {
                    status: None,
                    error: Some("connection refused".into()),
                    duration_ms: 1,
                };
                env.store.record_attempt(delivery, &refused).await.unwrap();
            }
            let log = env
                .store
                .webhook_deliveries(&env.ws, &created.webhook.id, 1)
                .await
                .unwrap();
            if log[0].state == DeliveryState::Failed {
                break;
            }
            env.clock.advance(Duration::minutes(10));
            assert!(
                env.store.now() - started < Duration::days(3),
                "{name}: never gave up"
            );
        }
        assert_eq!(attempts, 11, "{name}");
        assert!(env.store.now() - started > Duration::days(1), "{name}");
        let hooks = env.store.list_webhooks(&env.ws).await.unwrap();
        assert_eq!((hooks[0].pending, hooks[0].failed), (0, 1), "{name}");
    }
}

#[tokio::test]
async fn bad_endpoints_are_refused_and_removal_drops_what_is_pending() {
    for env in envs().await {
        let name = env.name;
        for bad in ["http://hooks.example.org/", "https://169.254.169.254/"] {
            assert!(
                matches!(
                    env.store
                        .create_webhook(&env.ws, hook(bad), &env.ctx())
                        .await,
                    Err(Error::Invalid { field: "url", .. })
                ),
                "{name}: {bad}"
            );
        }
        let unknown = NewWebhook {
            events: vec!["token.exploded".into()],
            ..hook("https://hooks.example.org/")
        };
        assert!(
            env.store
                .create_webhook(&env.ws, unknown, &env.ctx())
                .await
                .is_err()
        );
        let created = env
            .store
            .create_webhook(&env.ws, hook("https://hooks.example.org/"), &env.ctx())
            .await
            .unwrap();
        revoke_one(&env, "laptop").await;
        env.store.fan_out_webhooks().await.unwrap();
        env.store
            .remove_webhook(&env.ws, &created.webhook.id, &env.ctx())
            .await
            .unwrap();
        assert!(
            env.store.claim_deliveries(10).await.unwrap().is_empty(),
            "{name}"
        );
        assert!(env.store.list_webhooks(&env.ws).await.unwrap().is_empty());
        assert!(matches!(
            env.store
                .remove_webhook(&env.ws, &created.webhook.id, &env.ctx())
                .await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn expiry_and_rotation_notices_are_written_once_at_each_threshold() {
    for env in envs().await {
        let name = env.name;
        let mut soon = env.new_token("soon", &[Scope::Read]);
        soon.expires_at = Some(env.store.now() + Duration::days(10));
        env.store
            .create_token(&env.ws, soon, &env.ctx())
            .await
            .unwrap();
        assert_eq!(
            env.store.write_token_notices().await.unwrap(),
            1,
            "{name}: 14 days"
        );
        assert_eq!(
            env.store.write_token_notices().await.unwrap(),
            0,
            "{name}: once"
        );
        env.clock.advance(Duration::days(4)); // 6 days left
        assert_eq!(
            env.store.write_token_notices().await.unwrap(),
            1,
            "{name}: 7 days"
        );
        env.clock.advance(Duration::days(5) + Duration::hours(12)); // 12 hours left
        assert_eq!(
            env.store.write_token_notices().await.unwrap(),
            1,
            "{name}: 1 day"
        );
        let filter = EventFilter {
            workspace_id: Some(env.ws.clone()),
            action: Some(Action::TokenExpiring),
            ..Default::default()
        };
        let days: Vec<i64> = env
            .store
            .audit()
            .events(&filter, None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.details["days"].as_i64().unwrap())
            .collect();
        assert_eq!(days, [1, 7, 14], "{name}");
        // A token older than the rotation interval is due, once.
        env.create("old", &[Scope::Read]).await;
        env.clock.advance(Duration::days(91));
        assert_eq!(env.store.write_token_notices().await.unwrap(), 1, "{name}");
        assert_eq!(env.store.write_token_notices().await.unwrap(), 0, "{name}");
    }
}

#[tokio::test]
async fn two_instances_never_duplicate_a_delivery_or_a_notice() {
    for env in envs().await {
        if env.name != "postgres" {
            continue; // one SQLite database has one server
        }
        let other = env.second_instance(env.instance_options()).await;
        env.store
            .create_webhook(&env.ws, hook("https://hooks.example.org/"), &env.ctx())
            .await
            .unwrap();
        for i in 0..20 {
            let mut new = env.new_token(&format!("t{i}"), &[Scope::Read]);
            new.expires_at = Some(env.store.now() + Duration::days(3));
            let (record, _) = env
                .store
                .create_token(&env.ws, new, &env.ctx())
                .await
                .unwrap();
            env.store
                .revoke_token(&env.ws, record.id, &Revocation::default(), &env.ctx())
                .await
                .unwrap();
        }
        let mut live = env.new_token("live", &[Scope::Read]);
        live.expires_at = Some(env.store.now() + Duration::days(3));
        env.store
            .create_token(&env.ws, live, &env.ctx())
            .await
            .unwrap();
        let (a, b) = tokio::join!(env.store.write_token_notices(), other.write_token_notices());
        assert_eq!(
            a.unwrap() + b.unwrap(),
            1,
            "one notice for the one live token"
        );
        let (a, b) = tokio::join!(env.store.fan_out_webhooks(), other.fan_out_webhooks());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a + b, 21, "20 revocations and the notice: {a} + {b}");
        let mut seen = HashSet::new();
        loop {
            let (a, b) = tokio::join!(env.store.claim_deliveries(3), other.claim_deliveries(3));
            let (a, b) = (a.unwrap(), b.unwrap());
            if a.is_empty() && b.is_empty() {
                break;
            }
            for delivery in a.iter().chain(&b) {
                assert!(
                    seen.insert(delivery.id.clone()),
                    "claimed twice: {}",
                    delivery.id
                );
            }
            for delivery in &a {
                env.store
                    .record_attempt(delivery, &answered(200))
                    .await
                    .unwrap();
            }
            for delivery in &b {
                other
                    .record_attempt(delivery, &answered(200))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(seen.len(), 21);
        other.close().await;
    }
}

#[tokio::test]
async fn one_busy_endpoint_cannot_take_every_claim() {
    for env in envs().await {
        let name = env.name;
        let busy = env
            .store
            .create_webhook(&env.ws, hook("https://busy.example.org/"), &env.ctx())
            .await
            .unwrap();
        for i in 0..8 {
            revoke_one(&env, &format!("t{i}")).await;
        }
        env.store.fan_out_webhooks().await.unwrap();
        let quiet = env
            .store
            .create_webhook(&env.ws, hook("https://quiet.example.org/"), &env.ctx())
            .await
            .unwrap();
        revoke_one(&env, "last").await;
        env.store.fan_out_webhooks().await.unwrap();
        let claimed = env.store.claim_deliveries(20).await.unwrap();
        let to = |id: &str| claimed.iter().filter(|d| d.endpoint_id == id).count();
        assert_eq!(to(&busy.webhook.id), 3, "{name}: a fair share");
        assert_eq!(to(&quiet.webhook.id), 1, "{name}");
        // An attempt recorded after its lease ran out (another instance took it) changes
        // nothing.
        env.clock.advance(Duration::seconds(61));
        let again = env.store.claim_deliveries(20).await.unwrap();
        assert!(!again.is_empty());
        env.store
            .record_attempt(&claimed[0], &answered(200))
            .await
            .unwrap();
        let log = env
            .store
            .webhook_deliveries(&env.ws, &claimed[0].endpoint_id, 50)
            .await
            .unwrap();
        let first = log.iter().find(|d| d.id == claimed[0].id).unwrap();
        assert_eq!(
            first.state,
            DeliveryState::Pending,
            "{name}: the lease had passed"
        );
    }
}
