//! A workspace's lifetime rules, on every backend: every path that issues a token meets them.

use time::Duration;
use token_core::Scope;
use token_store::{Error, Rotation, WorkspacePolicy};

use crate::*;

fn rule(result: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match result {
        Err(Error::PolicyViolation { rule, .. }) => rule,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[tokio::test]
async fn the_regulated_preset_holds_on_create_and_rotate() {
    for env in envs().await {
        let name = env.name;
        let (old, _) = env.create("never-expires", &[Scope::Read]).await;
        let regulated = WorkspacePolicy {
            max_lifetime: Some("90d".into()),
            require_expiry: true,
            rotation_interval: "30d".into(),
            ..WorkspacePolicy::default()
        };
        let set = env
            .store
            .set_workspace_policy(&env.ws, regulated, &env.ctx())
            .await
            .unwrap();
        assert_eq!(set.rotation_interval, "30d");
        assert_eq!(
            env.store.workspace_policy(&env.ws).await.unwrap(),
            set,
            "{name}"
        );
        let now = env.store.now();
        let mut new = env.new_token("ci", &[Scope::Read]);
        assert_eq!(
            rule(
                env.store
                    .create_token(&env.ws, new.clone(), &env.ctx())
                    .await
            ),
            "max_lifetime",
            "{name}: no expiry"
        );
        new.expires_at = Some(now + Duration::days(100));
        assert_eq!(
            rule(
                env.store
                    .create_token(&env.ws, new.clone(), &env.ctx())
                    .await
            ),
            "max_lifetime",
            "{name}: too long"
        );
        new.expires_at = Some(now + Duration::days(30));
        assert!(
            env.store
                .create_token(&env.ws, new, &env.ctx())
                .await
                .is_ok()
        );
        // The old never-expiring token keeps working, but cannot be rotated into another one.
        assert_eq!(
            rule(
                env.store
                    .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
                    .await
            ),
            "max_lifetime"
        );
        let within = Rotation {
            expires_at: Some(Some(now + Duration::days(60))),
            ..Rotation::default()
        };
        assert!(
            env.store
                .rotate_token(&env.ws, old.id, within, &env.ctx())
                .await
                .is_ok(),
            "{name}"
        );
        // Expiry required, no maximum.
        let required = WorkspacePolicy {
            require_expiry: true,
            ..WorkspacePolicy::default()
        };
        env.store
            .set_workspace_policy(&env.ws, required, &env.ctx())
            .await
            .unwrap();
        assert_eq!(
            rule(
                env.store
                    .create_token(&env.ws, env.new_token("x", &[Scope::Read]), &env.ctx())
                    .await
            ),
            "require_expiry"
        );
        // Out-of-range settings are refused.
        for bad in [
            WorkspacePolicy {
                max_lifetime: Some("30m".into()),
                ..WorkspacePolicy::default()
            },
            WorkspacePolicy {
                rotation_interval: "0d".into(),
                ..WorkspacePolicy::default()
            },
            WorkspacePolicy {
                rotation_interval: "soon".into(),
                ..WorkspacePolicy::default()
            },
        ] {
            assert!(matches!(
                env.store
                    .set_workspace_policy(&env.ws, bad, &env.ctx())
                    .await,
                Err(Error::Invalid { .. })
            ));
        }
    }
}

#[tokio::test]
async fn tokens_due_for_rotation_or_expiring_soon_are_listed() {
    for env in envs().await {
        let name = env.name;
        let regulated = WorkspacePolicy {
            rotation_interval: "30d".into(),
            ..WorkspacePolicy::default()
        };
        env.store
            .set_workspace_policy(&env.ws, regulated, &env.ctx())
            .await
            .unwrap();
        let (old, _) = env.create("old", &[Scope::Read]).await;
        let mut soon = env.new_token("soon", &[Scope::Read]);
        soon.expires_at = Some(env.store.now() + Duration::days(40));
        let (soon, _) = env
            .store
            .create_token(&env.ws, soon, &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::days(31));
        let (fresh, _) = env.create("fresh", &[Scope::Read]).await;
        let ids = |filter: token_store::TokenFilter| {
            let store = env.store.clone();
            let ws = env.ws.clone();
            async move {
                store
                    .list_tokens(&ws, &filter, None, 100)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|t| t.id)
                    .collect::<Vec<_>>()
            }
        };
        let due = ids(token_store::TokenFilter {
            rotation_due: true,
            ..Default::default()
        })
        .await;
        assert!(
            due.contains(&old.id) && due.contains(&soon.id),
            "{name}: {due:?}"
        );
        assert!(!due.contains(&fresh.id), "{name}");
        let expiring = ids(token_store::TokenFilter {
            expiring_within: Some(Duration::days(14)),
            ..Default::default()
        })
        .await;
        assert_eq!(expiring, vec![soon.id], "{name}: expires in 9 days");
        let later = ids(token_store::TokenFilter {
            expiring_within: Some(Duration::days(7)),
            ..Default::default()
        })
        .await;
        assert!(later.is_empty(), "{name}");
        // A rotated token is no longer due; its successor is new.
        env.store
            .rotate_token(&env.ws, old.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        let due = ids(token_store::TokenFilter {
            rotation_due: true,
            ..Default::default()
        })
        .await;
        assert!(!due.contains(&old.id), "{name}");
    }
}
