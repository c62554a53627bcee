//! Token families: revocation follows the rotation chain, is linearizable with rotation, and
//! reuse of a rotated token is detected.

use audit::{Action, Actor, EventFilter};
use time::Duration;
use token_core::{Scope, Token};
use token_store::{
    Call, Error, Origin, Reach, Refusal, ReuseDetection, Rotation, TokenState, WorkspacePolicy,
};

use crate::*;

fn graced(hours: i64) -> Rotation {
    Rotation {
        grace: Some(Duration::hours(hours)),
        expires_at: None,
        allowed_networks: None,
        handover: None,
    }
}

async fn refused(env: &Env, token: &Token) -> bool {
    matches!(
        env.store
            .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await,
        Err(Error::Unauthorized(_))
    )
}

async fn accepted(env: &Env, token: &Token) -> bool {
    env.store
        .verify(token.expose_secret(), Scope::Read.into(), &call("/a"))
        .await
        .is_ok()
}

/// The rotation chain A → B → C, each rotated with a grace period: A by itself, B by Ada.
async fn chain(env: &Env) -> [(token_store::TokenRecord, Token); 3] {
    let a = env.create("laptop", &[Scope::Read]).await;
    env.clock.advance(Duration::minutes(1));
    let by_a = Context::of(Actor::Token(a.0.id));
    let b = env
        .store
        .rotate_token(&env.ws, a.0.id, graced(1), &by_a)
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(1));
    let c = env
        .store
        .rotate_token(&env.ws, b.0.id, graced(1), &env.ctx())
        .await
        .unwrap();
    [a, b, c]
}

#[tokio::test]
async fn revoking_a_token_revokes_every_token_that_grew_from_it() {
    for env in envs().await {
        let [a, b, c] = chain(&env).await;
        for (_, token) in [&a, &b, &c] {
            assert!(
                accepted(&env, token).await,
                "{}: all usable before",
                env.name
            );
        }
        let before = env.events().await;
        let done = env
            .store
            .revoke_token(&env.ws, a.0.id, &Revocation::family("leaked"), &env.ctx())
            .await
            .unwrap();
        // One event per revoked token, in the same transaction.
        assert_eq!(env.events().await, before + 3, "{}", env.name);
        assert_eq!(done.revoked.len(), 3, "{}: {:?}", env.name, done.revoked);
        assert_eq!(done.revoked[0], a.0.id, "the named token first");
        assert!(done.revoked.contains(&b.0.id) && done.revoked.contains(&c.0.id));
        assert_eq!(done.token.state, TokenState::Revoked);
        for (_, token) in [&a, &b, &c] {
            assert!(refused(&env, token).await, "{}", env.name);
        }
        let events = env
            .store
            .audit()
            .events(
                &EventFilter {
                    action: Some(Action::TokenRevoked),
                    ..EventFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap()
            .items;
        let targets: Vec<_> = events.iter().filter_map(|e| e.target_id.clone()).collect();
        for id in [a.0.id, b.0.id, c.0.id] {
            assert!(
                targets.contains(&id.to_string()),
                "{}: {targets:?}",
                env.name
            );
        }
        let named = events
            .iter()
            .find(|e| e.target_id.as_deref() == Some(a.0.id.as_str()))
            .unwrap();
        assert_eq!(named.details["family_revoked"].as_array().unwrap().len(), 2);
        // Again: nothing left, nothing recorded.
        let events_now = env.events().await;
        let again = env
            .store
            .revoke_token(&env.ws, c.0.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        assert!(again.revoked.is_empty());
        assert_eq!(env.events().await, events_now);
    }
}

#[tokio::test]
async fn revoking_the_newest_token_ends_its_predecessors_grace_too() {
    for env in envs().await {
        let a = env.create("svc", &[Scope::Read]).await;
        let b = env
            .store
            .rotate_token(&env.ws, a.0.id, graced(24), &env.ctx())
            .await
            .unwrap();
        assert!(accepted(&env, &a.1).await, "in its grace period");
        env.store
            .revoke_token(&env.ws, b.0.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        assert!(refused(&env, &a.1).await, "{}", env.name);
        assert!(refused(&env, &b.1).await, "{}", env.name);
    }
}

#[tokio::test]
async fn only_this_spares_the_family_unless_the_token_is_compromised_or_leaked() {
    for env in envs().await {
        let a = env.create("one", &[Scope::Read]).await;
        let b = env
            .store
            .rotate_token(&env.ws, a.0.id, graced(1), &env.ctx())
            .await
            .unwrap();
        let done = env
            .store
            .revoke_token(
                &env.ws,
                a.0.id,
                &Revocation::only_this("retired"),
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(done.revoked, [a.0.id]);
        assert!(refused(&env, &a.1).await);
        assert!(
            accepted(&env, &b.1).await,
            "{}: explicitly spared",
            env.name
        );

        for reason in ["compromised", "Leaked"] {
            let x = env.create("two", &[Scope::Read]).await;
            let y = env
                .store
                .rotate_token(&env.ws, x.0.id, graced(1), &env.ctx())
                .await
                .unwrap();
            let done = env
                .store
                .revoke_token(&env.ws, x.0.id, &Revocation::only_this(reason), &env.ctx())
                .await
                .unwrap();
            assert_eq!(
                done.revoked.len(),
                2,
                "{}: {reason} takes the family",
                env.name
            );
            assert!(refused(&env, &y.1).await);
        }
        assert_eq!(Revocation::only_this("x").reach, Reach::OnlyThis);
    }
}

#[tokio::test]
async fn the_family_shows_the_lineage_and_who_rotated() {
    for env in envs().await {
        let [a, b, c] = chain(&env).await;
        for id in [a.0.id, b.0.id, c.0.id] {
            let family = env.store.token_family(&env.ws, id).await.unwrap();
            let ids: Vec<_> = family.iter().map(|t| t.id).collect();
            assert_eq!(ids, [a.0.id, b.0.id, c.0.id], "{}: oldest first", env.name);
        }
        let family = env.store.token_family(&env.ws, c.0.id).await.unwrap();
        let origins: Vec<_> = family.iter().map(|t| t.origin).collect();
        assert_eq!(
            origins,
            [Origin::Issued, Origin::SelfRotated, Origin::Rotated],
            "{}",
            env.name
        );
        assert!(family.iter().all(|t| t.family_id == a.0.id));
        let listed = env
            .store
            .list_tokens(&env.ws, &Default::default(), None, 10)
            .await
            .unwrap()
            .items;
        let b_listed = listed.iter().find(|t| t.id == b.0.id).unwrap();
        assert_eq!(b_listed.origin, Origin::SelfRotated);
        assert_eq!(b_listed.created_by, format!("token:{}", a.0.id));
    }
}

/// Rotate on one instance and revoke on another, at the same moment, many times: once both
/// have answered, no token of the family may work — on the database and, after the staleness
/// bound, on either instance's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_racing_revocation_never_leaves_a_live_successor() {
    // Many deliberate refusals: from no address, so no failure limit applies.
    let quiet = Call {
        client_ip: None,
        ..call("/race")
    };
    for env in envs().await {
        let other = env.second_instance(options(&env.clock)).await;
        let (mut rotated_first, mut revoked_first) = (0, 0);
        for trial in 0..100 {
            let (record, token) = env.create(&format!("race-{trial}"), &[Scope::Read]).await;
            // Both instances know the token (cached), as busy servers would.
            assert!(
                env.store
                    .verify(token.expose_secret(), Scope::Read.into(), &quiet)
                    .await
                    .is_ok()
            );
            let seen = other
                .verify(token.expose_secret(), Scope::Read.into(), &quiet)
                .await;
            assert!(seen.is_ok(), "{}: {seen:?}", env.name);
            let (ctx, family) = (env.ctx(), Revocation::family(""));
            let rotate = env.store.rotate_token(&env.ws, record.id, graced(1), &ctx);
            let revoke = other.revoke_token(&env.ws, record.id, &family, &ctx);
            let (rotated, revoked) = tokio::join!(rotate, revoke);
            let revoked = revoked.unwrap();
            match &rotated {
                Ok(_) => rotated_first += 1,
                Err(Error::NotActive { .. }) => revoked_first += 1,
                Err(e) => panic!("{}: {e}", env.name),
            }
            let family = env.store.token_family(&env.ws, record.id).await.unwrap();
            assert!(
                family.iter().all(|t| t.state == TokenState::Revoked),
                "{} trial {trial}: {family:?}",
                env.name
            );
            if let Ok((new, _)) = &rotated {
                assert!(
                    revoked.revoked.contains(&new.id),
                    "{}: the revocation names the successor",
                    env.name
                );
            }
            env.clock.advance(Duration::seconds(2)); // past the staleness bound
            for store in [&env.store, &other] {
                let mut presented = vec![token.expose_secret().to_owned()];
                if let Ok((_, new_token)) = &rotated {
                    presented.push(new_token.expose_secret().to_owned());
                }
                for text in presented {
                    assert!(
                        matches!(
                            store.verify(&text, Scope::Read.into(), &quiet).await,
                            Err(Error::Unauthorized(_))
                        ),
                        "{} trial {trial}: a family member still works",
                        env.name
                    );
                }
            }
        }
        println!(
            "{}: rotation first {rotated_first}, revocation first {revoked_first}",
            env.name
        );
    }
}

#[tokio::test]
async fn reuse_of_a_rotated_token_alerts_and_on_request_revokes_the_family() {
    for env in envs().await {
        let policy = env.store.workspace_policy(&env.ws).await.unwrap();
        assert_eq!(policy.reuse_detection, ReuseDetection::Alert, "the default");
        let reuse_events = || async {
            env.store
                .audit()
                .events(
                    &EventFilter {
                        action: Some(Action::TokenReuse),
                        ..EventFilter::default()
                    },
                    None,
                    100,
                )
                .await
                .unwrap()
                .items
        };

        // Alert only: the event, and the successor keeps working.
        let (old, old_token) = env.create("alert", &[Scope::Read]).await;
        let (_, new_token) = env
            .store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        // Someone who knows only the (public) id proves nothing: no reuse is reported.
        let forged = token_core::checksummed(&format!(
            "{}{}",
            &old_token.expose_secret()[4..20],
            "Z".repeat(32)
        ));
        let answer = env
            .store
            .verify(&forged, Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(answer, Err(Error::Unauthorized(Refusal::WrongSecret))),
            "{answer:?}"
        );
        assert!(reuse_events().await.is_empty(), "{}", env.name);
        // The holder of the old secret presenting it: reuse.
        let answer = env
            .store
            .verify(old_token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(matches!(answer, Err(Error::Unauthorized(Refusal::Revoked))));
        let events = reuse_events().await;
        assert_eq!(events.len(), 1, "{}", env.name);
        assert_eq!(events[0].target_id.as_deref(), Some(old.id.as_str()));
        assert_eq!(events[0].details["rotated"], true);
        assert_eq!(events[0].details["reuse_detection"], "alert");
        assert_eq!(events[0].client_ip.as_deref(), Some("203.0.113.9"));
        assert!(accepted(&env, &new_token).await, "{}: alert only", env.name);
        // Presented again within the minute: no second event.
        assert!(refused(&env, &old_token).await);
        assert_eq!(reuse_events().await.len(), 1);

        // Revoke the family.
        env.store
            .set_workspace_policy(
                &env.ws,
                WorkspacePolicy {
                    reuse_detection: ReuseDetection::RevokeFamily,
                    ..WorkspacePolicy::default()
                },
                &env.ctx(),
            )
            .await
            .unwrap();
        let (old, old_token) = env.create("strict", &[Scope::Read]).await;
        let (new, new_token) = env
            .store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        assert!(accepted(&env, &new_token).await);
        assert!(refused(&env, &old_token).await);
        assert!(
            refused(&env, &new_token).await,
            "{}: the family is revoked on reuse",
            env.name
        );
        let new = env.store.get_token(&env.ws, new.id).await.unwrap();
        assert_eq!(new.revoked_reason.as_deref(), Some("reuse_detected"));
        assert_eq!(new.revoked_by.as_deref(), Some("system"));
        let changed = env
            .store
            .audit()
            .events(
                &EventFilter {
                    action: Some(Action::WorkspacePolicyChanged),
                    ..EventFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(changed.len(), 1);
        assert_eq!(
            changed[0].details["reuse_detection"],
            serde_json::json!({"from": "alert", "to": "revoke_family"})
        );
    }
}
