use time::Duration;
use token_core::Scope;
use token_store::{Error, MemberUpdate, NewMember, Role, TokenFilter, TokenState, TokenUpdate};

use crate::*;

#[tokio::test]
async fn create_returns_the_plaintext_once_and_stores_the_record() {
    for env in envs().await {
        let (record, token) = env.create("ci-deploy", &[Scope::Read, Scope::Write]).await;
        assert_eq!(record.id, token.id());
        assert_eq!(record.state, TokenState::Active, "{}", env.name);
        let stored = env.store.get_token(&env.ws, record.id).await.unwrap();
        assert_eq!(stored, record, "{}", env.name);
        assert_eq!(stored.created_by, format!("member:{}", env.ada));
        assert_eq!(stored.client, "laptop");
        assert_eq!(stored.scopes.to_string(), "read,write");
        // The record serialises without any secret or hash.
        let json = serde_json::to_string(&stored).unwrap();
        assert!(!json.contains(&token.expose_secret()[20..52]), "{json}");
        assert!(!json.contains("scrypt"), "{json}");
    }
}

#[tokio::test]
async fn other_workspaces_cannot_see_a_token() {
    for env in envs().await {
        let (record, _) = env.create("mine", &[Scope::Read]).await;
        let bob = NewMember {
            name: "Bob".into(),
            email: "bob@example.org".into(),
            role: Role::Owner,
        };
        let (other, _) = env
            .store
            .create_workspace("other", bob, &Context::system())
            .await
            .unwrap();
        let err = env.store.get_token(&other.id, record.id).await.unwrap_err();
        assert!(
            matches!(err, Error::NotFound { what: "token" }),
            "{}: {err}",
            env.name
        );
        let err = env
            .store
            .revoke_token(
                &other.id,
                record.id,
                &Revocation::family(""),
                &Context::system(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{}", env.name);
        assert!(
            env.store
                .list_tokens(&other.id, &TokenFilter::default(), None, 50)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}

#[tokio::test]
async fn list_filters_by_state_name_scope_and_times() {
    for env in envs().await {
        let (read, _) = env.create("Reader", &[Scope::Read]).await;
        env.clock.advance(Duration::seconds(1));
        let mut expiring = env.new_token("expiring-soon", &[Scope::Write]);
        expiring.expires_at = Some(T0 + Duration::hours(1));
        let (soon, _) = env
            .store
            .create_token(&env.ws, expiring, &env.ctx())
            .await
            .unwrap();
        env.clock.advance(Duration::seconds(1));
        let (admin, _) = env.create("admin_100%", &[Scope::Admin]).await;
        env.clock.advance(Duration::seconds(1));
        let (gone, _) = env.create("gone", &[Scope::Read]).await;
        env.store
            .revoke_token(
                &env.ws,
                gone.id,
                &Revocation::family("left the team"),
                &env.ctx(),
            )
            .await
            .unwrap();

        let ids = |filter: TokenFilter| {
            let (store, ws) = (env.store.clone(), env.ws.clone());
            async move {
                let page = store.list_tokens(&ws, &filter, None, 50).await.unwrap();
                page.items.iter().map(|t| t.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(TokenFilter::default()).await,
            [gone.id, admin.id, soon.id, read.id],
            "{}",
            env.name
        );
        let active = TokenFilter {
            state: Some(TokenState::Active),
            ..Default::default()
        };
        assert_eq!(ids(active.clone()).await, [admin.id, soon.id, read.id]);
        let revoked = TokenFilter {
            state: Some(TokenState::Revoked),
            ..Default::default()
        };
        assert_eq!(ids(revoked.clone()).await, [gone.id]);
        env.clock.advance(Duration::hours(2));
        let expired = TokenFilter {
            state: Some(TokenState::Expired),
            ..Default::default()
        };
        assert_eq!(ids(expired).await, [soon.id], "{}", env.name);
        assert_eq!(ids(active).await, [admin.id, read.id]);
        // Revoked and expired tokens stay listed, with why.
        let listed = env.store.get_token(&env.ws, gone.id).await.unwrap();
        assert_eq!(listed.revoked_reason.as_deref(), Some("left the team"));
        assert_eq!(listed.revoked_by, Some(format!("member:{}", env.ada)));

        let by_name = TokenFilter {
            name: Some("READ".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_name).await, [read.id]);
        let percent = TokenFilter {
            name: Some("100%".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(percent).await,
            [admin.id],
            "LIKE wildcards in the filter are literal"
        );
        // As a wildcard, `_` would match "rea" in "Reader"; as a literal, nothing.
        let underscore = TokenFilter {
            name: Some("r_a".into()),
            ..Default::default()
        };
        assert!(ids(underscore).await.is_empty(), "{}", env.name);
        let by_scope = TokenFilter {
            scope: Some(Scope::Read),
            ..Default::default()
        };
        assert_eq!(ids(by_scope).await, [gone.id, read.id]);
        let expiring = TokenFilter {
            expires_before: Some(T0 + Duration::days(1)),
            ..Default::default()
        };
        assert_eq!(ids(expiring).await, [soon.id]);
        let unused = TokenFilter {
            last_used_before: Some(T0),
            ..Default::default()
        };
        assert_eq!(
            ids(unused).await.len(),
            4,
            "never-used tokens count as unused"
        );
    }
}

#[tokio::test]
async fn pages_follow_the_cursor() {
    for env in envs().await {
        let mut created = Vec::new();
        for i in 0..7 {
            created.push(env.create(&format!("t{i}"), &[Scope::Read]).await.0.id);
            if i % 2 == 0 {
                env.clock.advance(Duration::seconds(1)); // some share a timestamp, some do not
            }
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = env
                .store
                .list_tokens(&env.ws, &TokenFilter::default(), cursor.as_deref(), 3)
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|t| t.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut expected = created.clone();
        expected.sort();
        let mut got = seen.clone();
        got.sort();
        assert_eq!(got, expected, "{}: every token exactly once", env.name);
        let bad = env
            .store
            .list_tokens(&env.ws, &TokenFilter::default(), Some("garbage"), 3)
            .await;
        assert!(matches!(
            bad,
            Err(Error::Invalid {
                field: "cursor",
                ..
            })
        ));
    }
}

#[tokio::test]
async fn update_and_revoke_are_audited_and_revoke_is_idempotent() {
    for env in envs().await {
        let (record, _) = env.create("old-name", &[Scope::Read]).await;
        let before = env.events().await;
        let update = TokenUpdate {
            name: Some("new-name".into()),
            description: Some("now documented".into()),
        };
        let updated = env
            .store
            .update_token(&env.ws, record.id, update, &env.ctx())
            .await
            .unwrap();
        assert_eq!(updated.name, "new-name");
        assert_eq!(
            env.store
                .get_token(&env.ws, record.id)
                .await
                .unwrap()
                .description,
            "now documented"
        );
        let revoked = env
            .store
            .revoke_token(&env.ws, record.id, &Revocation::family(""), &env.ctx())
            .await
            .unwrap();
        assert_eq!(revoked.token.state, TokenState::Revoked);
        assert_eq!(revoked.token.revoked_reason.as_deref(), Some("revoked"));
        assert_eq!(revoked.revoked, [record.id]);
        let again = env
            .store
            .revoke_token(&env.ws, record.id, &Revocation::family("again"), &env.ctx())
            .await
            .unwrap();
        assert!(
            again.revoked.is_empty(),
            "{}: nothing left to revoke",
            env.name
        );
        assert_eq!(
            again.token.revoked_reason.as_deref(),
            Some("revoked"),
            "{}: the first revocation stands",
            env.name
        );
        assert_eq!(
            env.events().await,
            before + 2,
            "{}: update + one revoke",
            env.name
        );
        let events = env
            .store
            .audit()
            .events(
                &audit::EventFilter {
                    token: Some(record.id),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .unwrap();
        let actions: Vec<_> = events.items.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["token.revoked", "token.updated", "token.created"]);
        assert_eq!(events.items[1].details["name"]["to"], "new-name");
        assert!(env.store.audit().verify(&[]).await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn members_are_added_updated_and_unique_by_email() {
    for env in envs().await {
        env.clock.advance(Duration::seconds(1));
        let bob = NewMember {
            name: "Bob".into(),
            email: "Bob@Example.org".into(),
            role: Role::Member,
        };
        let bob = env
            .store
            .add_member(&env.ws, bob, &env.ctx())
            .await
            .unwrap();
        assert_eq!(bob.email, "bob@example.org");
        let dup = NewMember {
            name: "Bobby".into(),
            email: "bob@example.org".into(),
            role: Role::Admin,
        };
        let err = env
            .store
            .add_member(&env.ws, dup, &env.ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{}: {err}", env.name);
        let promoted = env
            .store
            .update_member(
                &env.ws,
                &bob.id,
                MemberUpdate {
                    role: Some(Role::Admin),
                    ..Default::default()
                },
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(promoted.role, Role::Admin);
        let members = env.store.list_members(&env.ws).await.unwrap();
        assert_eq!(
            members.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::Owner, Role::Admin]
        );
        let ghost = NewMember {
            name: "Ghost".into(),
            email: "g@example.org".into(),
            role: Role::Member,
        };
        assert!(matches!(
            env.store.add_member("ws_nope", ghost, &env.ctx()).await,
            Err(Error::NotFound { .. })
        ));
        let actions: Vec<_> = env
            .store
            .audit()
            .events(&Default::default(), None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.action.clone())
            .collect();
        assert_eq!(
            actions,
            [
                "member.updated",
                "member.added",
                "member.added",
                "workspace.created"
            ],
            "{}",
            env.name
        );
    }
}
