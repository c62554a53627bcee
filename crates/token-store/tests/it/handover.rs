//! Rotation with verified hand-over, on every backend: the old token dies at the deadline when
//! the new one is never used, or an overlap after the new one's first use; on PostgreSQL, two
//! instances move each hand-over once.

use audit::EventFilter;
use knowmind_api::HandoverState;
use time::Duration;
use token_core::{Scope, Token};
use token_store::testing::options;
use token_store::{Error, Handover, Refusal, Rotation, Store};

use crate::*;

fn handover(deadline: Duration) -> Rotation {
    Rotation {
        handover: Some(Handover {
            deadline,
            overlap: Handover::DEFAULT_OVERLAP,
        }),
        ..Rotation::default()
    }
}

async fn works(store: &Store, token: &Token) -> Result<(), Error> {
    store
        .verify(
            token.expose_secret(),
            Scope::Read.into(),
            &call("/v1/notes"),
        )
        .await
        .map(drop)
}

async fn actions(env: &Env, action: audit::Action) -> Vec<serde_json::Value> {
    let filter = EventFilter {
        workspace_id: Some(env.ws.clone()),
        action: Some(action),
        ..Default::default()
    };
    env.store
        .audit()
        .events(&filter, None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.details)
        .collect()
}

#[tokio::test]
async fn a_new_token_never_used_leaves_the_old_one_dead_at_the_deadline() {
    for env in envs().await {
        let name = env.name;
        let (old, old_token) = env.create("laptop", &[Scope::Read]).await;
        let (new, _) = env
            .store
            .rotate_token(&env.ws, old.id, handover(Duration::hours(1)), &env.ctx())
            .await
            .unwrap();
        let pending = env.store.get_token(&env.ws, old.id).await.unwrap();
        assert_eq!(pending.handover, Some(HandoverState::Pending), "{name}");
        env.clock.advance(Duration::minutes(59));
        works(&env.store, &old_token).await.unwrap();
        assert_eq!(
            env.store.sweep_handovers().await.unwrap(),
            token_store::HandoverSweep::default(),
            "{name}: nothing to do before the deadline"
        );
        env.clock.advance(Duration::minutes(2));
        assert!(
            matches!(
                works(&env.store, &old_token).await,
                Err(Error::Unauthorized(Refusal::Revoked))
            ),
            "{name}"
        );
        let sweep = env.store.sweep_handovers().await.unwrap();
        assert_eq!((sweep.done, sweep.timed_out), (0, 1), "{name}");
        assert_eq!(
            env.store.sweep_handovers().await.unwrap(),
            token_store::HandoverSweep::default(),
            "{name}: once"
        );
        let timed_out = actions(&env, audit::Action::TokenHandoverTimedOut).await;
        assert_eq!(timed_out.len(), 1, "{name}");
        assert_eq!(timed_out[0]["new_token_id"], new.id.to_string(), "{name}");
        let old = env.store.get_token(&env.ws, old.id).await.unwrap();
        assert_eq!(old.handover, Some(HandoverState::TimedOut), "{name}");
        // Revoked for another reason while pending: the hand-over is over, not pending forever.
        let (other, _) = env.create("desktop", &[Scope::Read]).await;
        env.store
            .rotate_token(&env.ws, other.id, handover(Duration::hours(1)), &env.ctx())
            .await
            .unwrap();
        env.store
            .revoke_token(
                &env.ws,
                other.id,
                &token_store::Revocation::default(),
                &env.ctx(),
            )
            .await
            .unwrap();
        let other = env.store.get_token(&env.ws, other.id).await.unwrap();
        assert_eq!(other.handover, None, "{name}");
    }
}

#[tokio::test]
async fn the_old_token_stops_an_overlap_after_the_new_ones_first_use() {
    for env in envs().await {
        let name = env.name;
        let (old, old_token) = env.create("laptop", &[Scope::Read]).await;
        let (new, new_token) = env
            .store
            .rotate_token(&env.ws, old.id, handover(Duration::days(7)), &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::hours(3));
        works(&env.store, &old_token).await.unwrap();
        let first_use = env.store.now();
        works(&env.store, &new_token).await.unwrap();
        let overlapping = env.store.get_token(&env.ws, old.id).await.unwrap();
        assert_eq!(overlapping.handover, Some(HandoverState::Overlap), "{name}");
        assert_eq!(
            overlapping.revoked_at,
            Some(first_use + Handover::DEFAULT_OVERLAP),
            "{name}: the deadline is brought forward"
        );
        let completed = actions(&env, audit::Action::TokenHandoverCompleted).await;
        assert_eq!(completed.len(), 1, "{name}");
        assert_eq!(completed[0]["new_token_id"], new.id.to_string());
        assert_eq!(completed[0]["new_token_first_used_from"], "203.0.113.9");
        // More uses of the new token change nothing.
        works(&env.store, &new_token).await.unwrap();
        assert_eq!(
            actions(&env, audit::Action::TokenHandoverCompleted)
                .await
                .len(),
            1
        );
        // In-flight work with the old token finishes within the overlap, then it stops.
        env.clock.advance(Duration::minutes(4));
        works(&env.store, &old_token).await.unwrap();
        env.clock.advance(Duration::minutes(2));
        assert!(
            matches!(
                works(&env.store, &old_token).await,
                Err(Error::Unauthorized(Refusal::Revoked))
            ),
            "{name}"
        );
        works(&env.store, &new_token).await.unwrap();
        let sweep = env.store.sweep_handovers().await.unwrap();
        assert_eq!((sweep.done, sweep.timed_out), (1, 0), "{name}");
        let revoked = actions(&env, audit::Action::TokenRevoked).await;
        assert!(
            revoked
                .iter()
                .any(|d| d["reason"] == "handover" && d["replaced_by"] == new.id.to_string()),
            "{name}: {revoked:?}"
        );
        let done = env.store.get_token(&env.ws, old.id).await.unwrap();
        assert_eq!(done.handover, Some(HandoverState::Done), "{name}");
        // Limits: a deadline is required to be sane, and a hand-over has no grace period.
        let (other, _) = env.create("other", &[Scope::Read]).await;
        for bad in [
            handover(Duration::seconds(10)),
            handover(Duration::days(31)),
            Rotation {
                grace: Some(Duration::hours(1)),
                ..handover(Duration::days(1))
            },
        ] {
            assert!(
                matches!(
                    env.store
                        .rotate_token(&env.ws, other.id, bad, &env.ctx())
                        .await,
                    Err(Error::Invalid { .. })
                ),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn two_instances_complete_and_sweep_each_handover_once() {
    for env in envs().await {
        if env.name != "postgres" {
            continue; // one SQLite database has one server
        }
        let other = env.second_instance(options(&env.clock)).await;
        let mut tokens = Vec::new();
        for i in 0..10 {
            let (old, old_token) = env.create(&format!("device-{i}"), &[Scope::Read]).await;
            // Both instances have the old token cached, as busy servers would.
            works(&env.store, &old_token).await.unwrap();
            works(&other, &old_token).await.unwrap();
            let (_, new_token) = env
                .store
                .rotate_token(&env.ws, old.id, handover(Duration::days(1)), &env.ctx())
                .await
                .unwrap();
            tokens.push((old_token, new_token));
        }
        // The first uses of each new token race on both instances.
        for (_, new_token) in &tokens {
            let (a, b) = tokio::join!(works(&env.store, new_token), works(&other, new_token));
            a.unwrap();
            b.unwrap();
        }
        assert_eq!(
            actions(&env, audit::Action::TokenHandoverCompleted)
                .await
                .len(),
            10,
            "each hand-over completed once"
        );
        env.clock.advance(Duration::minutes(6));
        // The instance that did not complete a hand-over refuses the old token too.
        for (old_token, _) in &tokens {
            for store in [&env.store, &other] {
                assert!(matches!(
                    works(store, old_token).await,
                    Err(Error::Unauthorized(Refusal::Revoked))
                ));
            }
        }
        let (a, b) = tokio::join!(env.store.sweep_handovers(), other.sweep_handovers());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.done + b.done, 10, "{a:?} {b:?}");
        let revoked = actions(&env, audit::Action::TokenRevoked).await;
        assert_eq!(
            revoked.iter().filter(|d| d["reason"] == "handover").count(),
            10
        );
        other.close().await;
    }
}
