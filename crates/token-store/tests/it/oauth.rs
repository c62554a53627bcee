//! OAuth connectors in the store, on every backend: the grant's life from consent to removal,
//! what a second instance sees, client credentials, and what the database holds.

use audit::{Action, EventFilter};
use base64ct::Encoding;
use knowmind_api::{RegisterClient, Registration};
use knowmind_db::Backend;
use secrecy::SecretString;
use sha2::Digest;
use time::Duration;
use token_core::{Scope, Scopes, Token};
use token_store::{AuthorizationRequest, ClientCredentials, Consent, Error, StoreOptions};

use crate::*;

const REDIRECT: &str = "https://connector.example/cb";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc-7636-0123456789";

fn challenge() -> String {
    base64ct::Base64UrlUnpadded::encode_string(&sha2::Sha256::digest(VERIFIER.as_bytes()))
}

fn new_client(confidential: bool, client_credentials: bool) -> RegisterClient {
    RegisterClient {
        name: "Sync".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: Scopes::of(&[Scope::Read, Scope::Write]),
        confidential,
        client_credentials,
    }
}

fn public(id: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: id.to_owned(),
        secret: None,
    }
}

fn request(client: &str, scopes: &[Scope]) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: client.to_owned(),
        redirect_uri: REDIRECT.into(),
        scopes: Scopes::of(scopes),
        code_challenge: challenge(),
    }
}

fn oauth_error(result: Result<token_store::IssuedTokens, Error>) -> &'static str {
    match result {
        Err(Error::OAuth { error, .. }) => error,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

/// A public client registered by Ada, approved by `member` for `read`, and its first tokens.
async fn connected(
    env: &Env,
    member: &knowmind_api::Member,
) -> (knowmind_api::OAuthClient, token_store::IssuedTokens) {
    let client = env
        .store
        .register_client(&env.ws, &env.ada, new_client(false, false), &env.ctx())
        .await
        .unwrap()
        .client;
    let code = env
        .store
        .answer_authorization(
            member,
            &request(&client.id, &[Scope::Read]),
            Consent::Approve,
            &env.ctx(),
        )
        .await
        .unwrap()
        .unwrap();
    let issued = env
        .store
        .exchange_code(
            &public(&client.id),
            code.expose_secret(),
            REDIRECT,
            VERIFIER,
            &env.ctx(),
        )
        .await
        .unwrap();
    (client, issued)
}

async fn events(env: &Env, action: Action) -> usize {
    let filter = EventFilter {
        action: Some(action),
        ..Default::default()
    };
    env.store
        .audit()
        .events(&filter, None, 100)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_lives_from_consent_to_removal_on_every_instance() {
    for env in envs().await {
        let name = env.name;
        let ada = env.store.get_member(&env.ws, &env.ada).await.unwrap();
        let client = env
            .store
            .register_client(&env.ws, &env.ada, new_client(false, false), &env.ctx())
            .await
            .unwrap()
            .client;
        assert_eq!(client.registration, Registration::Admin, "{name}");
        assert!(!client.ever_approved);
        let b = env
            .second_instance(StoreOptions {
                max_staleness: Duration::HOUR,
                ..options(&env.clock)
            })
            .await;
        b.revocations_listened().await;

        // Denied: audited, no code.
        let denied = env
            .store
            .answer_authorization(
                &ada,
                &request(&client.id, &[Scope::Read]),
                Consent::Deny,
                &env.ctx(),
            )
            .await
            .unwrap();
        assert!(denied.is_none());
        // Approved: a code, exchanged once.
        let code = env
            .store
            .answer_authorization(
                &ada,
                &request(&client.id, &[Scope::Read]),
                Consent::Approve,
                &env.ctx(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(events(&env, Action::OAuthConsent).await, 2, "{name}");
        let issued = env
            .store
            .exchange_code(
                &public(&client.id),
                code.expose_secret(),
                REDIRECT,
                VERIFIER,
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(issued.scopes, Scopes::from(Scope::Read));
        let access = issued.access.expose_secret().to_owned();
        // Instance B verifies it (and caches it for an hour).
        let verified = b
            .verify(&access, Scope::Read.into(), &call("/v1/notes"))
            .await
            .unwrap();
        assert_eq!(
            verified.principal().oauth_client_id.as_deref(),
            Some(client.id.as_str())
        );
        assert_eq!(verified.principal().owner_id, env.ada);
        drop(verified);
        assert!(matches!(
            b.verify(&access, Scope::Write.into(), &call("/v1/notes"))
                .await,
            Err(Error::Forbidden { .. })
        ));
        // It is not among people's tokens, and cannot be rotated into one.
        let listed = env
            .store
            .list_tokens(&env.ws, &Default::default(), None, 100)
            .await
            .unwrap();
        assert!(
            listed.items.iter().all(|t| t.id != issued.access.id()),
            "{name}"
        );
        assert!(matches!(
            env.store
                .rotate_token(&env.ws, issued.access.id(), Default::default(), &env.ctx())
                .await,
            Err(Error::Invalid { .. })
        ));

        // A refresh may narrow, not widen.
        let refresh = issued.refresh.unwrap();
        let wider = env
            .store
            .refresh(
                &public(&client.id),
                refresh.expose_secret(),
                Some(Scopes::of(&[Scope::Read, Scope::Write])),
                &env.ctx(),
            )
            .await;
        assert_eq!(oauth_error(wider), "invalid_scope");
        let next = env
            .store
            .refresh(
                &public(&client.id),
                refresh.expose_secret(),
                None,
                &env.ctx(),
            )
            .await
            .unwrap();
        let state = env
            .store
            .refresh_token_state(next.refresh.as_ref().unwrap().expose_secret())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (state.client_id.as_str(), state.member_id.as_str()),
            (client.id.as_str(), env.ada.as_str())
        );
        assert!(
            env.store
                .refresh_token_state(refresh.expose_secret())
                .await
                .unwrap()
                .is_none()
        );

        // Removing the client reaches instance B at once, through its hour-long cache.
        let removed = env
            .store
            .remove_client(&env.ws, &client.id, "unknown connector", &env.ctx())
            .await
            .unwrap();
        assert!(removed.removed_at.is_some());
        let mut refused = false;
        for _ in 0..100 {
            if b.verify(&access, Scope::Read.into(), &call("/v1/notes"))
                .await
                .is_err()
            {
                refused = true;
                break;
            }
            if env.store.db().backend() == Backend::Sqlite {
                // No notifications on SQLite: a second process trusts its cache until it is
                // stale; this instance (the one that removed) refuses at once.
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if env.store.db().backend() == Backend::Postgres {
            assert!(refused, "instance B never saw the removal");
        }
        assert!(
            env.store
                .verify(
                    next.access.expose_secret(),
                    Scope::Read.into(),
                    &call("/v1/notes")
                )
                .await
                .is_err()
        );
        let after = env
            .store
            .refresh(
                &public(&client.id),
                next.refresh.unwrap().expose_secret(),
                None,
                &env.ctx(),
            )
            .await;
        assert_eq!(oauth_error(after), "invalid_client", "{name}");
        assert_eq!(events(&env, Action::OAuthClientRemoved).await, 1);
        assert_eq!(events(&env, Action::OAuthTokenIssued).await, 2);

        // Nothing secret in the database.
        let bytes = env.database_bytes().await;
        for secret in [
            access.as_str(),
            refresh.expose_secret(),
            code.expose_secret(),
        ] {
            assert!(
                !contains(&bytes, secret),
                "{name}: a secret is stored in clear"
            );
        }
        b.close().await;
    }
}

#[tokio::test]
async fn client_credentials_act_for_the_registering_member_and_need_the_secret() {
    for env in envs().await {
        let registered = env
            .store
            .register_client(&env.ws, &env.ada, new_client(true, true), &env.ctx())
            .await
            .unwrap();
        let id = registered.client.id.clone();
        let shown = format!("{registered:?}");
        let secret = registered.client_secret.unwrap();
        assert!(!shown.contains(&secret), "Debug hides the client secret");
        assert!(
            secret
                .parse::<Token>()
                .is_ok_and(|t| t.kind() == token_core::TokenKind::ClientSecret)
        );
        let with = |secret: Option<&str>| ClientCredentials {
            client_id: id.clone(),
            secret: secret.map(|s| SecretString::from(s.to_owned())),
        };
        assert_eq!(
            oauth_error(
                env.store
                    .client_credentials(&with(None), None, &env.ctx())
                    .await
            ),
            "invalid_client"
        );
        let mut wrong = secret.clone();
        wrong.replace_range(10..11, if &secret[10..11] == "A" { "B" } else { "A" });
        assert_eq!(
            oauth_error(
                env.store
                    .client_credentials(&with(Some(&wrong)), None, &env.ctx())
                    .await
            ),
            "invalid_client"
        );
        let issued = env
            .store
            .client_credentials(&with(Some(&secret)), Some(Scope::Read.into()), &env.ctx())
            .await
            .unwrap();
        assert!(issued.refresh.is_none());
        let verified = env
            .store
            .verify(
                issued.access.expose_secret(),
                Scope::Read.into(),
                &call("/v1/notes"),
            )
            .await
            .unwrap();
        assert_eq!(verified.principal().owner_id, env.ada);

        // `admin` cannot be registered; a public client cannot use client credentials.
        let admin = RegisterClient {
            scopes: Scopes::of(&[Scope::Admin]),
            ..new_client(true, true)
        };
        assert!(matches!(
            env.store
                .register_client(&env.ws, &env.ada, admin, &env.ctx())
                .await,
            Err(Error::OAuth {
                error: "invalid_client_metadata",
                ..
            })
        ));
        assert!(matches!(
            env.store
                .register_client(&env.ws, &env.ada, new_client(false, true), &env.ctx())
                .await,
            Err(Error::OAuth {
                error: "invalid_client_metadata",
                ..
            })
        ));
        let public_client = env
            .store
            .register_client(&env.ws, &env.ada, new_client(false, false), &env.ctx())
            .await
            .unwrap()
            .client;
        assert_eq!(
            oauth_error(
                env.store
                    .client_credentials(&public(&public_client.id), None, &env.ctx())
                    .await
            ),
            "unauthorized_client"
        );
    }
}

#[tokio::test]
async fn only_one_workspace_accepts_self_registration() {
    for env in envs().await {
        let policy = token_store::WorkspacePolicy {
            oauth_registration: true,
            ..Default::default()
        };
        env.store
            .set_workspace_policy(&env.ws, policy.clone(), &env.ctx())
            .await
            .unwrap();
        let owner = token_store::NewMember {
            name: "Bo".into(),
            email: "bo@example.org".into(),
            role: token_store::Role::Owner,
        };
        let (other, bo) = env
            .store
            .create_workspace("other", owner, &audit::Context::system())
            .await
            .unwrap();
        let ctx = audit::Context::of(audit::Actor::Member(bo.id));
        assert!(matches!(
            env.store
                .set_workspace_policy(&other.id, policy, &ctx)
                .await,
            Err(Error::Conflict(_))
        ));
        let registered = env
            .store
            .register_dynamic_client(new_client(false, false), &audit::Context::system())
            .await
            .unwrap();
        assert_eq!(registered.client.workspace_id, env.ws);
        assert_eq!(registered.client.registration, Registration::Dynamic);
    }
}

#[tokio::test]
async fn removing_a_member_revokes_their_connections_and_tokens() {
    for env in envs().await {
        let name = env.name;
        let (_, bo) = {
            let member = token_store::NewMember {
                name: "Bo".into(),
                email: "bo@example.org".into(),
                role: token_store::Role::Member,
            };
            let added = env
                .store
                .add_member(&env.ws, member, &env.ctx())
                .await
                .unwrap();
            ((), added)
        };
        let (client, issued) = connected(&env, &bo).await;
        env.store
            .remove_member(&env.ws, &bo.id, &env.ctx())
            .await
            .unwrap();
        assert!(
            env.store
                .verify(
                    issued.access.expose_secret(),
                    Scope::Read.into(),
                    &call("/v1/notes")
                )
                .await
                .is_err()
        );
        let after = env
            .store
            .refresh(
                &public(&client.id),
                issued.refresh.unwrap().expose_secret(),
                None,
                &env.ctx(),
            )
            .await;
        assert_eq!(oauth_error(after), "invalid_grant", "{name}");
        let live = env
            .store
            .list_connections(&env.ws, Some(&bo.id), None, false)
            .await
            .unwrap();
        assert!(
            live.is_empty(),
            "{name}: the connection died with the member"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_token_outlives_a_removal_that_races_refreshes() {
    for env in envs().await {
        let name = env.name;
        let ada = env.store.get_member(&env.ws, &env.ada).await.unwrap();
        let (client, first) = connected(&env, &ada).await;
        // A connector refreshing as fast as it can, while an admin removes it.
        let store = env.store.clone();
        let id = client.id.clone();
        let ctx = env.ctx();
        let mut current = first.refresh.unwrap();
        let refresher = tokio::spawn(async move {
            let mut issued = Vec::new();
            while let Ok(next) = store
                .refresh(&public(&id), current.expose_secret(), None, &ctx)
                .await
            {
                issued.push(next.access);
                current = next.refresh.unwrap();
            }
            issued
        });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        env.store
            .remove_client(&env.ws, &client.id, "compromised", &env.ctx())
            .await
            .unwrap();
        let issued = refresher.await.unwrap();
        assert!(!issued.is_empty(), "{name}: the refresher ran");
        for access in std::iter::once(&first.access).chain(&issued) {
            assert!(
                env.store
                    .verify(
                        access.expose_secret(),
                        Scope::Read.into(),
                        &call("/v1/notes")
                    )
                    .await
                    .is_err(),
                "{name}: {access:?} outlived the removal"
            );
        }
    }
}

#[tokio::test]
async fn the_workspace_policy_limits_what_connectors_are_granted() {
    for env in envs().await {
        let name = env.name;
        let ada = env.store.get_member(&env.ws, &env.ada).await.unwrap();
        let (client, issued) = connected(&env, &ada).await;
        let policy = token_store::WorkspacePolicy {
            write_requires_allowlist: true,
            ..Default::default()
        };
        env.store
            .set_workspace_policy(&env.ws, policy, &env.ctx())
            .await
            .unwrap();
        // A connector has no address to list: it may ask for read, not write.
        let asked_write = env
            .store
            .answer_authorization(
                &ada,
                &request(&client.id, &[Scope::Read, Scope::Write]),
                Consent::Approve,
                &env.ctx(),
            )
            .await;
        match asked_write {
            Err(Error::OAuth { error, description }) => {
                assert_eq!(error, "invalid_scope", "{name}");
                assert!(
                    description.contains("write_requires_allowlist"),
                    "{name}: {description}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        // Read still works, and so does refreshing a read grant.
        let refreshed = env
            .store
            .refresh(
                &public(&client.id),
                issued.refresh.as_ref().unwrap().expose_secret(),
                None,
                &env.ctx(),
            )
            .await;
        assert!(refreshed.is_ok(), "{name}: {refreshed:?}");
        // Members limited to read by role cannot hand a connector write either.
        let policy = token_store::WorkspacePolicy {
            role_scopes: knowmind_api::RoleScopes {
                owner: Scope::Read.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        env.store
            .set_workspace_policy(&env.ws, policy, &env.ctx())
            .await
            .unwrap();
        assert!(
            matches!(
                env.store
                    .answer_authorization(
                        &ada,
                        &request(&client.id, &[Scope::Write]),
                        Consent::Approve,
                        &env.ctx(),
                    )
                    .await,
                Err(Error::OAuth {
                    error: "invalid_scope",
                    ..
                })
            ),
            "{name}"
        );
    }
}
