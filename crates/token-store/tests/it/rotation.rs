use time::Duration;
use token_core::Scope;
use token_store::{Error, Refusal, Rotation, TokenState};

use crate::*;

#[tokio::test]
async fn rotation_without_grace_replaces_the_token_at_once() {
    for env in envs().await {
        let mut new = env.new_token("deploy", &[Scope::Read, Scope::Write]);
        new.expires_at = Some(T0 + Duration::days(90));
        let (old, old_token) = env
            .store
            .create_token(&env.ws, new, &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::days(10));
        let (fresh, fresh_token) = env
            .store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();

        assert_ne!(fresh.id, old.id);
        assert_ne!(fresh_token.expose_secret(), old_token.expose_secret());
        assert_eq!(
            (
                fresh.name.as_str(),
                fresh.scopes,
                fresh.owner_id.as_str(),
                fresh.client.as_str()
            ),
            (
                old.name.as_str(),
                old.scopes,
                old.owner_id.as_str(),
                old.client.as_str()
            )
        );
        assert_eq!(
            fresh.expires_at,
            Some(T0 + Duration::days(100)),
            "{}: same lifetime, from now",
            env.name
        );
        assert_eq!(fresh.rotated_from, Some(old.id));
        let old_now = env.store.get_token(&env.ws, old.id).await.unwrap();
        assert_eq!(old_now.state, TokenState::Revoked);
        assert_eq!(old_now.rotated_to, Some(fresh.id));
        assert_eq!(old_now.revoked_reason.as_deref(), Some("rotated"));

        let refused = env
            .store
            .verify(
                old_token.expose_secret(),
                Scope::Read.into(),
                &call("/v1/notes"),
            )
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(Refusal::Revoked))),
            "{}: {refused:?}",
            env.name
        );
        assert!(
            env.store
                .verify(
                    fresh_token.expose_secret(),
                    Scope::Write.into(),
                    &call("/v1/notes")
                )
                .await
                .is_ok()
        );

        let again = env
            .store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await;
        assert!(
            matches!(again, Err(Error::AlreadyRotated { successor }) if successor == fresh.id),
            "{}: {again:?}",
            env.name
        );
        let event = &env
            .store
            .audit()
            .events(&Default::default(), None, 1)
            .await
            .unwrap()
            .items[0];
        assert_eq!(
            event.action, "token.reuse",
            "{}: the revoked token presented again",
            env.name
        );
        let rotated = env
            .store
            .audit()
            .events(
                &audit::EventFilter {
                    action: Some(audit::Action::TokenRotated),
                    ..Default::default()
                },
                None,
                1,
            )
            .await
            .unwrap();
        assert_eq!(
            rotated.items[0].details["new_token_id"],
            fresh.id.to_string()
        );
    }
}

#[tokio::test]
async fn rotation_with_grace_keeps_the_old_token_until_the_grace_ends() {
    for env in envs().await {
        let (old, old_token) = env.create("service", &[Scope::Read]).await;
        // Use it first so it is cached: rotation must still take effect on this process.
        assert!(
            env.store
                .verify(old_token.expose_secret(), Scope::Read.into(), &call("/a"))
                .await
                .is_ok()
        );
        let rotation = Rotation {
            grace: Some(Duration::hours(1)),
            expires_at: None,
            allowed_networks: None,
            handover: None,
        };
        let (fresh, fresh_token) = env
            .store
            .rotate_token(&env.ws, old.id, rotation, &env.ctx())
            .await
            .unwrap();
        assert_eq!(fresh.expires_at, None);

        env.clock.advance(Duration::minutes(59));
        assert!(
            env.store
                .verify(old_token.expose_secret(), Scope::Read.into(), &call("/a"))
                .await
                .is_ok(),
            "{}",
            env.name
        );
        assert_eq!(
            env.store.get_token(&env.ws, old.id).await.unwrap().state,
            TokenState::Active
        );
        env.clock.advance(Duration::minutes(1));
        let refused = env
            .store
            .verify(old_token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(Refusal::Revoked))),
            "{}: {refused:?}",
            env.name
        );
        assert_eq!(
            env.store.get_token(&env.ws, old.id).await.unwrap().state,
            TokenState::Revoked
        );
        assert!(
            env.store
                .verify(fresh_token.expose_secret(), Scope::Read.into(), &call("/a"))
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn a_token_in_its_grace_period_can_be_revoked_at_once_and_not_rotated_twice() {
    for env in envs().await {
        let (old, old_token) = env.create("svc", &[Scope::Read]).await;
        let rotation = Rotation {
            grace: Some(Duration::days(1)),
            expires_at: None,
            allowed_networks: None,
            handover: None,
        };
        env.store
            .rotate_token(&env.ws, old.id, rotation.clone(), &env.ctx())
            .await
            .unwrap();
        let twice = env
            .store
            .rotate_token(&env.ws, old.id, rotation, &env.ctx())
            .await;
        assert!(
            matches!(twice, Err(Error::AlreadyRotated { .. })),
            "{}: a rotated token is not rotated again (its successor is): {twice:?}",
            env.name
        );
        env.store
            .revoke_token(&env.ws, old.id, &Revocation::family("leaked"), &env.ctx())
            .await
            .unwrap();
        let refused = env
            .store
            .verify(old_token.expose_secret(), Scope::Read.into(), &call("/a"))
            .await;
        assert!(
            matches!(refused, Err(Error::Unauthorized(Refusal::Revoked))),
            "{}",
            env.name
        );
    }
}

#[tokio::test]
async fn rotation_carries_the_name_pattern_forward() {
    for env in envs().await {
        let name = env.name;
        let (old, _) = env.create("laptop-2026-11", &[Scope::Read]).await;
        env.clock.advance(Duration::days(90)); // 2027-02-25
        let (new, _) = env
            .store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        assert_eq!(new.name, "laptop-2027-02", "{name}");
        let (versioned, _) = env.create("deploy-v3", &[Scope::Read]).await;
        let (next, _) = env
            .store
            .rotate_token(&env.ws, versioned.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        assert_eq!(next.name, "deploy-v4", "{name}");
    }
}
