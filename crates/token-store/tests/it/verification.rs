use std::time::Instant;

use audit::{Action, EventFilter, UsageOutcome};
use time::Duration;
use token_core::{HashParams, Scope, Token};
use token_store::{Error, Refusal, StoreOptions};

use crate::*;

/// Presents `token` to `store` every few milliseconds until it is refused; how long that took, or
/// `None` if it was still accepted after `limit`.
async fn refused_within(
    store: &token_store::Store,
    token: &Token,
    limit: std::time::Duration,
) -> Option<std::time::Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if store
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .is_err()
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    None
}

async fn refusal(env: &Env, presented: &str) -> Refusal {
    match env
        .store
        .verify(presented, Scope::Read.into(), &call("/v1/notes"))
        .await
    {
        Err(Error::Unauthorized(r)) => r,
        other => panic!("{}: expected a refusal, got {other:?}", env.name),
    }
}

#[tokio::test]
async fn each_refusal_has_its_reason_inside_and_one_face_outside() {
    for env in envs().await {
        let (record, token) = env.create("r", &[Scope::Read]).await;
        let wrong_secret = token_core::checksummed(&format!("{}{}", record.id, "A".repeat(32)));
        let unknown = Token::generate(&mut token_core::rand::rngs::SysRng).unwrap();

        assert_eq!(refusal(&env, "kmt_garbage").await, Refusal::Malformed);
        assert_eq!(refusal(&env, "").await, Refusal::Malformed);
        assert_eq!(
            refusal(&env, unknown.expose_secret()).await,
            Refusal::NotFound,
            "{}",
            env.name
        );
        assert_eq!(
            refusal(&env, &wrong_secret).await,
            Refusal::WrongSecret,
            "{}",
            env.name
        );

        let mut expiring = env.new_token("short", &[Scope::Read]);
        expiring.expires_at = Some(T0 + Duration::minutes(5));
        let (_, short) = env
            .store
            .create_token(&env.ws, expiring, &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::minutes(5));
        assert_eq!(
            refusal(&env, short.expose_secret()).await,
            Refusal::Expired,
            "{}",
            env.name
        );

        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        assert_eq!(
            refusal(&env, token.expose_secret()).await,
            Refusal::Revoked,
            "{}",
            env.name
        );

        let faces: std::collections::HashSet<String> = [
            Refusal::Malformed,
            Refusal::NotFound,
            Refusal::WrongSecret,
            Refusal::Expired,
            Refusal::Revoked,
        ]
        .into_iter()
        .map(|r| Error::Unauthorized(r).to_string())
        .collect();
        assert_eq!(faces.len(), 1, "every refusal reads the same: {faces:?}");

        // Known ids leave usage records with the precise outcome; unknown ids leave none.
        let outcomes = env.outcomes(record.id).await;
        assert_eq!(
            outcomes,
            [UsageOutcome::Revoked, UsageOutcome::WrongSecret],
            "{}",
            env.name
        );
        assert!(
            env.store
                .audit()
                .usage(unknown.id(), None, 10)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}

#[tokio::test]
async fn scopes_are_enforced_with_the_missing_one_named() {
    for env in envs().await {
        let (record, token) = env.create("reader", &[Scope::Read]).await;
        let err = env
            .store
            .verify(
                token.expose_secret(),
                Scope::Write.into(),
                &call("/v1/notes"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Forbidden { missing } if missing == Scope::Write.into()),
            "{}",
            env.name
        );
        let (_, writer) = env.create("writer", &[Scope::Write]).await;
        assert!(
            env.store
                .verify(
                    writer.expose_secret(),
                    Scope::Read.into(),
                    &call("/v1/notes")
                )
                .await
                .is_ok(),
            "write implies read"
        );
        let (_, admin) = env.create("admin", &[Scope::Admin]).await;
        assert!(
            env.store
                .verify(
                    admin.expose_secret(),
                    Scope::Read.into(),
                    &call("/v1/notes")
                )
                .await
                .is_err(),
            "admin implies nothing"
        );
        env.store.usage_writer().flush().await.unwrap();
        let usage = env.store.audit().usage(record.id, None, 10).await.unwrap();
        assert_eq!(
            usage.items[0].record.outcome,
            UsageOutcome::InsufficientScope
        );
        assert_eq!(usage.items[0].record.status, Some(403));
    }
}

#[tokio::test]
async fn accepted_calls_are_recorded_with_status_ip_and_route() {
    for env in envs().await {
        let (record, token) = env.create("app", &[Scope::Read]).await;
        let verified = env
            .store
            .verify(
                token.expose_secret(),
                Scope::Read.into(),
                &call("/v1/notes"),
            )
            .await
            .unwrap();
        assert_eq!(verified.principal().workspace_id, env.ws);
        assert_eq!(verified.principal().owner_id, env.ada);
        verified.finish(200);
        env.clock.advance(Duration::seconds(5));
        let mut other = call("/v1/notes/{id}");
        other.client_ip = Some("2001:db8::1".parse().unwrap());
        drop(
            env.store
                .verify(token.expose_secret(), Scope::Read.into(), &other)
                .await
                .unwrap(),
        );
        env.store.usage_writer().flush().await.unwrap();

        let usage = env.store.audit().usage(record.id, None, 10).await.unwrap();
        let rows: Vec<_> = usage
            .items
            .iter()
            .map(|u| {
                (
                    u.record.route.as_str(),
                    u.record.status,
                    u.record.client_ip.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("/v1/notes/{id}", None, "2001:db8::1".to_owned()),
                ("/v1/notes", Some(200), "203.0.113.9".to_owned())
            ],
            "{}",
            env.name
        );
        let summary = env.store.audit().usage_summary(record.id).await.unwrap();
        assert_eq!(
            (summary.total, summary.ips.len(), summary.routes.len()),
            (2, 2, 2)
        );
        let stored = env.store.get_token(&env.ws, record.id).await.unwrap();
        assert_eq!(
            stored.last_used_at,
            Some(T0 + Duration::seconds(5)),
            "{}",
            env.name
        );
        assert_eq!(stored.last_used_ip.as_deref(), Some("2001:db8::1"));
    }
}

#[tokio::test]
async fn revocation_on_this_process_takes_effect_immediately() {
    for env in envs().await {
        let (record, token) = env.create("cached", &[Scope::Read]).await;
        for _ in 0..3 {
            env.store
                .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
                .await
                .unwrap();
        }
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        assert_eq!(
            refusal(&env, token.expose_secret()).await,
            Refusal::Revoked,
            "{}",
            env.name
        );
    }
}

#[tokio::test]
async fn another_instance_sees_a_revocation_within_the_staleness_bound() {
    for env in envs().await {
        let (record, token) = env.create("shared", &[Scope::Read]).await;
        // Instance B: same database, same clock, one-second staleness bound, and no
        // notifications reach it in time to matter (the clock, not the listener, is tested here).
        let b = env.second_instance(options(&env.clock)).await;
        b.verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::SECOND);
        let refused = b
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(Refusal::Revoked))),
            "{}: {refused:?}",
            env.name
        );

        // With a zero bound, every request re-reads the token's state.
        let (record, token) = env.create("strict", &[Scope::Read]).await;
        let strict = env
            .second_instance(StoreOptions {
                max_staleness: Duration::ZERO,
                ..options(&env.clock)
            })
            .await;
        strict
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        let refused = strict
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(Refusal::Revoked))),
            "{}",
            env.name
        );
    }
}

#[tokio::test]
async fn setting_the_wall_clock_back_does_not_extend_a_cached_token() {
    for env in envs().await {
        let (record, token) = env.create("stepped", &[Scope::Read]).await;
        let b = env.second_instance(options(&env.clock)).await;
        let verified = b
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        // Debug output of an accepted token never shows its stored hash.
        let shown = format!("{verified:?}");
        assert!(
            !shown.contains("$scrypt$") && shown.contains("[REDACTED]"),
            "{shown}"
        );
        drop(verified);
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        // An hour back on the wall clock, two seconds forward in real time: still stale.
        env.clock.step_wall_clock(-Duration::HOUR);
        env.clock.advance(Duration::seconds(2));
        let refused = b
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(_))),
            "{}: {refused:?}",
            env.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_other_instances_of_revocations() {
    for env in envs()
        .await
        .into_iter()
        .filter(|e| e.test_db.db.backend() == Backend::Postgres)
    {
        let (record, token) = env.create("notified", &[Scope::Read]).await;
        // B trusts its cache for an hour: only the notification can make it refuse.
        let b = env
            .second_instance(StoreOptions {
                max_staleness: Duration::HOUR,
                ..options(&env.clock)
            })
            .await;
        b.revocations_listened().await;
        b.verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        let delay = refused_within(&b, &token, std::time::Duration::from_secs(5)).await;
        let delay = delay.unwrap_or_else(|| panic!("instance B never saw the revocation"));
        println!("revocation reached instance B after {:?}", delay);
    }
}

#[tokio::test]
async fn outdated_hashes_are_upgraded_on_use() {
    for env in envs().await {
        let (record, token) = env.create("legacy", &[Scope::Read]).await;
        let modern = env
            .second_instance(StoreOptions {
                hash_params: HashParams::DEFAULT,
                ..options(&env.clock)
            })
            .await;
        modern
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        let filter = EventFilter {
            action: Some(Action::TokenRehashed),
            ..Default::default()
        };
        let mut events = Vec::new();
        for _ in 0..100 {
            events = env
                .store
                .audit()
                .events(&filter, None, 5)
                .await
                .unwrap()
                .items;
            if !events.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(events.len(), 1, "{}", env.name);
        assert_eq!(events[0].target_id.as_deref(), Some(record.id.as_str()));
        assert_eq!(events[0].details["params"], "ln=14,r=8,p=1");
        // The old instance (test parameters) still verifies against the upgraded hash.
        let fresh = env.second_instance(options(&env.clock)).await;
        fresh
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn reuse_of_a_revoked_token_is_reported_once_a_minute() {
    for env in envs().await {
        let (record, token) = env.create("leaked", &[Scope::Read]).await;
        env.store
            .revoke_token(
                &env.ws,
                record.id,
                &Revocation::family("leaked"),
                &env.ctx(),
            )
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(refusal(&env, token.expose_secret()).await, Refusal::Revoked);
        }
        env.clock.advance(Duration::MINUTE);
        refusal(&env, token.expose_secret()).await;
        let filter = EventFilter {
            action: Some(Action::TokenReuse),
            ..Default::default()
        };
        let events = env
            .store
            .audit()
            .events(&filter, None, 10)
            .await
            .unwrap()
            .items;
        assert_eq!(events.len(), 2, "{}", env.name);
        assert_eq!(events[0].client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(events[0].outcome, "denied");
        assert_eq!(events[0].details["route"], "/v1/notes");
    }
}

#[tokio::test]
async fn a_committed_usage_record_can_be_awaited_and_old_ones_are_pruned() {
    for env in envs().await {
        let (record, token) = env.create("awaited", &[Scope::Read]).await;
        let verified = env
            .store
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        verified
            .finish_committed(204)
            .unwrap()
            .wait()
            .await
            .unwrap();
        let usage = env.store.audit().usage(record.id, None, 10).await.unwrap();
        assert_eq!(usage.items[0].record.status, Some(204), "{}", env.name);

        env.clock.advance(Duration::days(91));
        assert_eq!(
            env.store.prune_usage().await.unwrap(),
            1,
            "{}: 90-day retention",
            env.name
        );
        assert!(
            env.store
                .audit()
                .usage(record.id, None, 10)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let kept = env.store.get_token(&env.ws, record.id).await.unwrap();
        assert_eq!(
            kept.last_used_at,
            Some(T0),
            "{}: pruning keeps the last use",
            env.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_listener_flushes_the_cache() {
    use sqlx::Executor;
    for env in envs()
        .await
        .into_iter()
        .filter(|e| e.test_db.db.backend() == Backend::Postgres)
    {
        let (record, token) = env.create("flushed", &[Scope::Read]).await;
        let b = env
            .second_instance(StoreOptions {
                max_staleness: Duration::HOUR,
                ..options(&env.clock)
            })
            .await;
        b.revocations_listened().await;
        b.verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        // Revoke behind everyone's back: no notification is sent.
        let sql = format!(
            "UPDATE tokens SET revoked_at_us = 0 WHERE id = '{}'",
            record.id
        );
        env.store.db().pool().execute(sql.as_str()).await.unwrap();
        assert!(
            b.verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
                .await
                .is_ok(),
            "B still trusts its cache"
        );
        // Cut B's listener connection: when it reconnects it must assume it missed something.
        let channel = format!("knowmind_tokens_{}", env.test_db.db.schema().unwrap());
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%{channel}%'"
        );
        env.store.db().pool().execute(kill.as_str()).await.unwrap();
        let delay = refused_within(&b, &token, std::time::Duration::from_secs(10)).await;
        let delay = delay
            .unwrap_or_else(|| panic!("the cache was not flushed after the listener reconnected"));
        println!("listener reconnected and flushed after {:?}", delay);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_sync_evicts_tokens_revoked_elsewhere() {
    for env in envs().await {
        let (record, token) = env.create("synced", &[Scope::Read]).await;
        // B's clock never moves, so its own entries never look stale: only the sync, which runs
        // every 50 ms of real time, can evict the token. (No NOTIFY on SQLite.)
        let b = env
            .second_instance(StoreOptions {
                max_staleness: Duration::milliseconds(100),
                ..options(&env.clock)
            })
            .await;
        b.verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await
            .unwrap();
        env.store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        let delay = refused_within(&b, &token, std::time::Duration::from_secs(5)).await;
        let delay = delay
            .unwrap_or_else(|| panic!("{}: the sync never evicted the revoked token", env.name));
        println!("{}: revocation synced after {:?}", env.name, delay);
    }
}

#[tokio::test]
async fn an_allow_list_refuses_calls_from_elsewhere_cached_or_not_with_its_own_outcome() {
    for env in envs().await {
        let name = env.name;
        let new = NewToken {
            allowed_networks: "203.0.113.0/24, 2001:db8::/32".parse().unwrap(),
            ..env.new_token("office", &[Scope::Read])
        };
        let (record, token) = env
            .store
            .create_token(&env.ws, new, &env.ctx())
            .await
            .unwrap();
        let from = |ip: Option<&str>| Call {
            client_ip: ip.map(|ip| ip.parse().unwrap()),
            ..call("/v1/notes")
        };
        let verify = |ip: Option<&'static str>| {
            let store = env.store.clone();
            let secret = token.expose_secret().to_owned();
            async move { store.verify(&secret, Scope::Read.into(), &from(ip)).await }
        };
        // Inside (twice: the second is a cache hit), then outside: refused on the cached path.
        verify(Some("203.0.113.9")).await.unwrap();
        verify(Some("2001:db8::7")).await.unwrap();
        verify(Some("::ffff:203.0.113.10")).await.unwrap();
        for outside in [Some("198.51.100.1"), Some("2001:db9::1"), None] {
            match verify(outside).await {
                Err(Error::Unauthorized(Refusal::AddressNotAllowed)) => {}
                other => panic!("{name}: {outside:?}: {other:?}"),
            }
        }
        // Outside, it reads like any other refusal.
        assert_eq!(
            Error::Unauthorized(Refusal::AddressNotAllowed).to_string(),
            Error::Unauthorized(Refusal::NotFound).to_string()
        );
        // A fresh instance (nothing cached) refuses it too.
        let second = env.second_instance(StoreOptions::default()).await;
        assert!(matches!(
            second
                .verify(
                    token.expose_secret(),
                    Scope::Read.into(),
                    &from(Some("198.51.100.1"))
                )
                .await,
            Err(Error::Unauthorized(Refusal::AddressNotAllowed))
        ));
        second.usage_writer().flush().await.unwrap();
        let outcomes = env.outcomes(record.id).await;
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == UsageOutcome::AddressNotAllowed)
                .count(),
            4,
            "{name}: {outcomes:?}"
        );
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == UsageOutcome::Accepted)
                .count(),
            3,
            "{name}: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn a_canary_authorizes_nothing_looks_unknown_and_raises_an_alarm_once_per_address() {
    for env in envs().await {
        let name = env.name;
        let (record, canary) = env
            .store
            .create_canary_token(
                &env.ws,
                env.new_token("backup-2019", &[Scope::Admin]),
                &env.ctx(),
            )
            .await
            .unwrap();
        assert!(record.canary && record.expires_at.is_none() && record.rotation_due_at.is_none());
        let from = |ip: &str| Call {
            client_ip: Some(ip.parse().unwrap()),
            ..call("/v1/notes")
        };
        for ip in ["198.51.100.7", "198.51.100.7", "203.0.113.1"] {
            // Twice from the first address: the second is answered from the cache.
            match env
                .store
                .verify(canary.expose_secret(), Scope::Read.into(), &from(ip))
                .await
            {
                Err(Error::Unauthorized(Refusal::Canary)) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            Error::Unauthorized(Refusal::Canary).to_string(),
            Error::Unauthorized(Refusal::NotFound).to_string(),
            "the holder cannot tell"
        );
        let outcomes = env.outcomes(record.id).await;
        assert_eq!(outcomes, [UsageOutcome::Canary; 3], "{name}");
        let filter = EventFilter {
            action: Some(Action::TokenCanaryUsed),
            ..Default::default()
        };
        let alarms = env
            .store
            .audit()
            .events(&filter, None, 10)
            .await
            .unwrap()
            .items;
        let addresses: Vec<&str> = alarms
            .iter()
            .map(|e| e.details["client_ip"].as_str().unwrap())
            .collect();
        assert_eq!(
            addresses,
            ["203.0.113.1", "198.51.100.7"],
            "{name}: once per address"
        );
        // Each is a high-severity anomaly of the token, too.
        let anomalies = env
            .store
            .audit()
            .anomalies(Some(&env.ws), Some(record.id), None, None, 10)
            .await
            .unwrap()
            .items;
        let values: Vec<(audit::AnomalyKind, audit::Severity, &str)> = anomalies
            .iter()
            .map(|a| (a.kind, a.severity, a.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                (
                    audit::AnomalyKind::Canary,
                    audit::Severity::High,
                    "203.0.113.0/24"
                ),
                (
                    audit::AnomalyKind::Canary,
                    audit::Severity::High,
                    "198.51.100.0/24"
                ),
            ],
            "{name}"
        );
        // Never rotated, never in the policy's way.
        assert!(matches!(
            env.store
                .rotate_token(
                    &env.ws,
                    record.id,
                    token_store::Rotation::default(),
                    &env.ctx()
                )
                .await,
            Err(Error::Invalid { .. })
        ));
        let strict = token_store::WorkspacePolicy {
            max_lifetime: Some("30d".into()),
            ..Default::default()
        };
        env.store
            .set_workspace_policy(&env.ws, strict, &env.ctx())
            .await
            .unwrap();
        let findings = env.store.check_policy(&env.ws).await.unwrap().findings;
        assert!(!findings.iter().any(|f| f.token_id == record.id), "{name}");
        // A wrong secret for its id is an ordinary refusal, not an alarm.
        let wrong = token_core::checksummed(&format!("{}{}", record.id, "x".repeat(32)));
        assert!(
            env.store
                .verify(&wrong, Scope::Read.into(), &from("192.0.2.1"))
                .await
                .is_err()
        );
        let alarms = env
            .store
            .audit()
            .events(&filter, None, 10)
            .await
            .unwrap()
            .items;
        assert_eq!(alarms.len(), 2, "{name}");
        // Reported as leaked by whoever holds it: the alarm rings, and the bait stays planted.
        let reporter = Context {
            client_ip: Some("192.0.2.99".parse().unwrap()),
            ..Context::system()
        };
        let report = env
            .store
            .revoke_leaked(&[canary.expose_secret().to_owned()], "", true, &reporter)
            .await
            .unwrap();
        assert_eq!((report.revoked, report.genuine.len()), (0, 1), "{name}");
        let alarms = env
            .store
            .audit()
            .events(&filter, None, 10)
            .await
            .unwrap()
            .items;
        assert_eq!(alarms.len(), 3, "{name}: the report rang it");
        let record = env.store.get_token(&env.ws, record.id).await.unwrap();
        assert!(record.revoked_at.is_none(), "{name}");
    }
}
