//! A workspace's lifetime rules, on every backend: every path that issues a token meets them.

use time::Duration;
use token_core::{Scope, Scopes};
use token_store::{Error, NewToken, Rotation, WorkspacePolicy};

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
        let mut long_lived = env.new_token("long-lived", &[Scope::Read]);
        long_lived.expires_at = Some(env.store.now() + Duration::days(200));
        let (long_lived, _) = env
            .store
            .create_token(&env.ws, long_lived, &env.ctx())
            .await
            .unwrap();
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
        let (month, _) = env
            .store
            .create_token(&env.ws, new, &env.ctx())
            .await
            .unwrap();
        // The old never-expiring token keeps working; it cannot be rotated into one that lives
        // longer than the maximum, and a rotation that keeps its lifetime gets the maximum.
        let too_long = Rotation {
            expires_at: Some(Some(now + Duration::days(120))),
            ..Rotation::default()
        };
        assert_eq!(
            rule(
                env.store
                    .rotate_token(&env.ws, old.id, too_long, &env.ctx())
                    .await
            ),
            "max_lifetime"
        );
        for (before, after) in [(old.id, "never expired"), (long_lived.id, "200 days")] {
            let (kept, _) = env
                .store
                .rotate_token(&env.ws, before, Rotation::default(), &env.ctx())
                .await
                .unwrap();
            assert_eq!(
                kept.expires_at.map(|at| (at - now).whole_days()),
                Some(90),
                "{name}: a rotation keeping a lifetime of {after} gets the maximum"
            );
        }
        let within = Rotation {
            expires_at: Some(Some(now + Duration::days(60))),
            ..Rotation::default()
        };
        assert!(
            env.store
                .rotate_token(&env.ws, month.id, within, &env.ctx())
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
        // The metrics gauge's counts agree (this database holds one workspace).
        assert_eq!(
            env.store.token_counts().await.unwrap(),
            token_store::TokenCounts {
                rotation_due: 2,
                expiring_soon: 1,
            },
            "{name}"
        );
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

#[tokio::test]
async fn role_scopes_and_the_write_allow_list_rule_hold_on_every_issuing_path() {
    for env in envs().await {
        let name = env.name;
        let policy = WorkspacePolicy {
            role_scopes: knowmind_api::RoleScopes {
                admin: Scopes::of(&[Scope::Read, Scope::Write]),
                ..Default::default()
            },
            write_requires_allowlist: true,
            ..WorkspacePolicy::default()
        };
        // The test environment's owner is an owner: make the token's owner an admin.
        let admin = env.add_member(knowmind_api::Role::Admin).await;
        env.store
            .set_workspace_policy(&env.ws, policy, &env.ctx())
            .await
            .unwrap();
        let of_admin = |scopes: &[Scope], networks: &str| NewToken {
            owner_id: admin.clone(),
            allowed_networks: networks.parse().unwrap(),
            ..env.new_token("t", scopes)
        };
        let refused = env
            .store
            .create_token(&env.ws, of_admin(&[Scope::Admin], ""), &env.ctx())
            .await;
        match &refused {
            Err(Error::PolicyViolation { rule, detail }) => {
                assert_eq!(*rule, "role_scopes", "{name}");
                assert!(detail.contains("admin"), "{name}: {detail}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            rule(
                env.store
                    .create_token(&env.ws, of_admin(&[Scope::Write], ""), &env.ctx())
                    .await
            ),
            "write_requires_allowlist",
            "{name}"
        );
        let (writer, _) = env
            .store
            .create_token(
                &env.ws,
                of_admin(&[Scope::Write], "198.51.100.0/24"),
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(writer.allowed_networks.to_string(), "198.51.100.0/24");
        // Rotation keeps the allow-list; an admin may replace it, not with nothing.
        let (rotated, _) = env
            .store
            .rotate_token(&env.ws, writer.id, Rotation::default(), &env.ctx())
            .await
            .unwrap();
        assert_eq!(rotated.allowed_networks, writer.allowed_networks, "{name}");
        let emptied = Rotation {
            allowed_networks: Some(Default::default()),
            ..Rotation::default()
        };
        assert_eq!(
            rule(
                env.store
                    .rotate_token(&env.ws, rotated.id, emptied, &env.ctx())
                    .await
            ),
            "write_requires_allowlist",
            "{name}"
        );
        // A read token needs no list.
        env.store
            .create_token(&env.ws, of_admin(&[Scope::Read], ""), &env.ctx())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_token_rotating_itself_may_narrow_its_allow_list_but_not_widen_it() {
    for env in envs().await {
        let name = env.name;
        let new = NewToken {
            allowed_networks: "10.0.0.0/8".parse().unwrap(),
            ..env.new_token("self", &[Scope::Read])
        };
        let (record, _) = env
            .store
            .create_token(&env.ws, new, &env.ctx())
            .await
            .unwrap();
        let itself = audit::Context::of(audit::Actor::Token(record.id));
        let wider = Rotation {
            allowed_networks: Some("0.0.0.0/1".parse().unwrap()),
            ..Rotation::default()
        };
        assert!(
            matches!(
                env.store
                    .rotate_token(&env.ws, record.id, wider, &itself)
                    .await,
                Err(Error::Invalid { .. })
            ),
            "{name}"
        );
        let narrower = Rotation {
            allowed_networks: Some("10.1.0.0/16".parse().unwrap()),
            ..Rotation::default()
        };
        let (next, _) = env
            .store
            .rotate_token(&env.ws, record.id, narrower, &itself)
            .await
            .unwrap();
        assert_eq!(next.allowed_networks.to_string(), "10.1.0.0/16", "{name}");
    }
}

#[tokio::test]
async fn applying_a_policy_expires_narrows_and_revokes_what_breaks_it_audited() {
    for env in envs().await {
        let name = env.name;
        let member = env.add_member(knowmind_api::Role::Member).await;
        let of_member = |name: &str, scopes: &[Scope]| NewToken {
            owner_id: member.clone(),
            ..env.new_token(name, scopes)
        };
        let create = |new: NewToken| {
            let store = env.store.clone();
            let ws = env.ws.clone();
            let ctx = env.ctx();
            async move { store.create_token(&ws, new, &ctx).await.unwrap() }
        };
        let (unused, _) = create(of_member("unused", &[Scope::Read])).await;
        env.clock.advance(Duration::days(40));
        let (forever, _) = create(of_member("forever", &[Scope::Read])).await;
        let (wide, wide_token) = create(of_member(
            "wide",
            &[Scope::Read, Scope::Write, Scope::Introspect],
        ))
        .await;
        let (only_write, _) = create(of_member("only-write", &[Scope::Write])).await;
        // `wide` is in use (and so in this instance's cache) before the policy changes.
        let verified = env
            .store
            .verify(
                wide_token.expose_secret(),
                Scope::Write.into(),
                &call("/v1/notes"),
            )
            .await
            .unwrap();
        drop(verified);
        let policy = WorkspacePolicy {
            max_lifetime: Some("90d".into()),
            role_scopes: knowmind_api::RoleScopes {
                member: Scopes::of(&[Scope::Read, Scope::Introspect]),
                ..Default::default()
            },
            revoke_unused_after: Some("30d".into()),
            ..WorkspacePolicy::default()
        };
        env.store
            .set_workspace_policy(&env.ws, policy, &env.ctx())
            .await
            .unwrap();
        let events_before = env.events().await;
        let dry = env.store.check_policy(&env.ws).await.unwrap();
        assert!(!dry.applied);
        assert_eq!(
            env.events().await,
            events_before,
            "{name}: a dry run writes nothing"
        );
        let of = |id| {
            dry.findings
                .iter()
                .filter(|f| f.token_id == id)
                .map(|f| (f.rule.as_str(), f.action))
                .collect::<Vec<_>>()
        };
        use knowmind_api::PolicyAction as A;
        assert_eq!(
            of(unused.id),
            [
                ("revoke_unused_after", A::Revoke),
                ("max_lifetime", A::SetExpiry)
            ],
            "{name}"
        );
        assert_eq!(of(forever.id), [("max_lifetime", A::SetExpiry)], "{name}");
        assert_eq!(
            of(wide.id),
            [
                ("role_scopes", A::NarrowScopes),
                ("max_lifetime", A::SetExpiry)
            ],
            "{name}"
        );
        assert_eq!(
            of(only_write.id),
            [("role_scopes", A::Revoke), ("max_lifetime", A::SetExpiry)],
            "{name}"
        );
        let applied = env
            .store
            .apply_policy(&env.ws, None, &env.ctx())
            .await
            .unwrap();
        assert!(applied.applied);
        assert_eq!(applied.findings.len(), dry.findings.len(), "{name}");
        let now = env.store.now();
        let get = |id| {
            let store = env.store.clone();
            let ws = env.ws.clone();
            async move { store.get_token(&ws, id).await.unwrap() }
        };
        let unused = get(unused.id).await;
        assert_eq!(
            unused.revoked_reason.as_deref(),
            Some("policy: revoke_unused_after")
        );
        let forever = get(forever.id).await;
        assert_eq!(forever.expires_at, Some(now + Duration::days(90)), "{name}");
        let wide = get(wide.id).await;
        assert_eq!(
            wide.scopes,
            Scopes::of(&[Scope::Read, Scope::Introspect]),
            "{name}"
        );
        assert!(get(only_write.id).await.revoked_at.is_some(), "{name}");
        // The narrowed token, cached before, is refused what it lost at once.
        assert!(
            matches!(
                env.store
                    .verify(
                        wide_token.expose_secret(),
                        Scope::Write.into(),
                        &call("/v1/notes")
                    )
                    .await,
                Err(Error::Forbidden { .. })
            ),
            "{name}"
        );
        // Each change is an event, and a summary records the run.
        let filter = audit::EventFilter {
            workspace_id: Some(env.ws.clone()),
            ..Default::default()
        };
        let events = env
            .store
            .audit()
            .events(&filter, None, 50)
            .await
            .unwrap()
            .items;
        let actions: Vec<String> = events
            .iter()
            .filter(|e| e.seq > events_before)
            .map(|e| e.action.clone())
            .collect();
        assert_eq!(
            actions[0], "workspace.policy_applied",
            "{name}: {actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| *a == "token.revoked").count(),
            2,
            "{name}: {actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| *a == "token.updated").count(),
            3,
            "{name}: forever's expiry, wide's narrowing and expiry: {actions:?}"
        );
        // Nothing is left to apply.
        assert!(
            env.store
                .check_policy(&env.ws)
                .await
                .unwrap()
                .findings
                .is_empty(),
            "{name}"
        );
    }
}
