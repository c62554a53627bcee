//! Members signing in: enrolment links, passwords, sessions, removal.

use audit::{Action, Actor, Context, EventFilter};
use time::Duration;
use token_core::{Password, Scope, Scopes};
use token_store::{BearerSecret, Error, NewToken, Role, TokenState};

use crate::*;

const PASSWORD: &str = "violet submarine orchestra 42";

fn from(ip: &str) -> Context {
    Context {
        client_ip: Some(ip.parse().unwrap()),
        user_agent: Some("browser/1".into()),
        ..Context::system()
    }
}

async fn actions(env: &Env, action: Action) -> Vec<audit::Event> {
    let filter = EventFilter {
        workspace_id: Some(env.ws.clone()),
        action: Some(action),
        ..EventFilter::default()
    };
    env.store
        .audit()
        .events(&filter, None, 100)
        .await
        .unwrap()
        .items
}

/// Enrols the fixture's owner (who has no password yet) and returns the link's secret text.
async fn enrol_owner(env: &Env) -> String {
    let (enrolment, secret) = env
        .store
        .invite(
            &env.ws,
            "ada@example.org",
            Role::Member,
            &Context::of(Actor::Operator),
        )
        .await
        .unwrap();
    // An existing member keeps their role; the link sets their password.
    assert_eq!(enrolment.member_id.as_deref(), Some(env.ada.as_str()));
    assert_eq!(enrolment.role, Role::Owner);
    let text = secret.expose_secret().to_owned();
    let member = env
        .store
        .enrol(&secret, "Ada Lovelace", PASSWORD.into(), &from("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(member.id, env.ada);
    assert_eq!(member.name, "Ada Lovelace");
    text
}

/// Signs in to the fixture's workspace as `email` with `password`, from `ip`.
async fn sign_in(
    env: &Env,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<(token_store::SignedIn, BearerSecret), Error> {
    let ws = workspace_name(env).await;
    env.store
        .sign_in(&ws, email, Password::presented(password.into()), &from(ip))
        .await
}

async fn workspace_name(env: &Env) -> String {
    env.store.get_workspace(&env.ws).await.unwrap().name
}

#[tokio::test]
async fn an_enrolment_link_works_once_and_is_stored_hashed() {
    for env in envs().await {
        let link = enrol_owner(&env).await;
        let again = BearerSecret::parse(&link).unwrap();
        let err = env
            .store
            .enrol(&again, "Mallory", PASSWORD.into(), &Context::system())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotFound {
                    what: "enrolment link"
                }
            ),
            "{}: {err}",
            env.name
        );
        // Neither the link's secret nor the password is anywhere in the database.
        let bytes = env.database_bytes().await;
        assert!(!contains(&bytes, &link), "{}", env.name);
        assert!(!contains(&bytes, PASSWORD), "{}", env.name);
        assert!(
            contains(&bytes, "Ada Lovelace"),
            "{}: the scan covers the data",
            env.name
        );
        // Inviting someone who can already sign in is refused.
        let err = env
            .store
            .invite(&env.ws, "ada@example.org", Role::Admin, &env.ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{}: {err}", env.name);
        assert_eq!(actions(&env, Action::MemberInvited).await.len(), 1);
        assert_eq!(actions(&env, Action::MemberEnrolled).await.len(), 1);
    }
}

#[tokio::test]
async fn an_invitation_creates_the_member_and_expires_after_a_day() {
    for env in envs().await {
        let (_, late) = env
            .store
            .invite(&env.ws, "late@example.org", Role::Member, &env.ctx())
            .await
            .unwrap();
        let (enrolment, secret) = env
            .store
            .invite(&env.ws, "Bob@Example.org", Role::Admin, &env.ctx())
            .await
            .unwrap();
        assert_eq!(enrolment.email, "bob@example.org");
        assert_eq!(enrolment.member_id, None);
        // A weak password is refused and the link stays usable.
        let err = env
            .store
            .enrol(
                &secret,
                "Bob",
                "bob@example.org!".into(),
                &Context::system(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "password",
                    ..
                }
            ),
            "{}: {err}",
            env.name
        );
        let bob = env
            .store
            .enrol(&secret, "Bob", PASSWORD.into(), &Context::system())
            .await
            .unwrap();
        assert_eq!(bob.role, Role::Admin);
        assert_eq!(bob.email, "bob@example.org");
        env.clock.advance(Duration::hours(24));
        let err = env.store.enrolment(&late).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{}: {err}", env.name);
    }
}

#[tokio::test]
async fn sign_in_opens_a_session_that_ends_on_idle_lifetime_and_sign_out() {
    for env in envs().await {
        enrol_owner(&env).await;
        let sign_in = || async { sign_in(&env, "ADA@example.org ", PASSWORD, "192.0.2.7").await };
        let (signed_in, secret) = sign_in().await.unwrap();
        assert_eq!(signed_in.member.id, env.ada);
        assert_eq!(signed_in.session.client_ip.as_deref(), Some("192.0.2.7"));
        let bytes = env.database_bytes().await;
        assert!(
            !contains(&bytes, secret.expose_secret()),
            "{}: session ids are stored hashed",
            env.name
        );
        // Used within the idle timeout, it lives on; its last use moves.
        env.clock.advance(Duration::minutes(50));
        let seen = env.store.session(&secret).await.unwrap();
        assert_eq!(seen.member.id, env.ada);
        env.clock.advance(Duration::minutes(50));
        env.store.session(&secret).await.unwrap();
        // Idle for an hour: ended.
        env.clock.advance(Duration::minutes(61));
        assert!(matches!(
            env.store.session(&secret).await,
            Err(Error::NotSignedIn)
        ));
        // The absolute lifetime ends even a busy session.
        let (_, busy) = sign_in().await.unwrap();
        for _ in 0..12 {
            env.clock.advance(Duration::minutes(59));
            env.store.session(&busy).await.unwrap();
        }
        env.clock.advance(Duration::minutes(59));
        assert!(
            matches!(env.store.session(&busy).await, Err(Error::NotSignedIn)),
            "{}",
            env.name
        );
        // Signing out ends it at once.
        let (signed_in, secret) = sign_in().await.unwrap();
        env.store.sign_out(&signed_in, &env.ctx()).await.unwrap();
        assert!(matches!(
            env.store.session(&secret).await,
            Err(Error::NotSignedIn)
        ));
        assert_eq!(
            actions(&env, Action::MemberSignedIn).await.len(),
            3,
            "{}",
            env.name
        );
        assert_eq!(
            actions(&env, Action::MemberSignedOut).await.len(),
            1,
            "{}",
            env.name
        );
    }
}

#[tokio::test]
async fn failed_sign_ins_look_alike_are_audited_and_limited_per_account() {
    for env in envs().await {
        enrol_owner(&env).await;
        let ws = workspace_name(&env).await;
        let try_as = |email: &'static str, password: &'static str, ip: &'static str| {
            let ws = ws.clone();
            let store = env.store.clone();
            async move {
                store
                    .sign_in(&ws, email, Password::presented(password.into()), &from(ip))
                    .await
                    .map(|_| ())
            }
        };
        for (email, password) in [
            ("ada@example.org", "wrong password here"),
            ("nobody@example.org", PASSWORD),
        ] {
            let err = try_as(email, password, "198.51.100.1").await.unwrap_err();
            assert_eq!(err.to_string(), "the email or password is wrong");
        }
        let denied = actions(&env, Action::MemberSignedIn).await;
        assert_eq!(
            denied.len(),
            1,
            "{}: the unknown email has no workspace event",
            env.name
        );
        assert_eq!(denied[0].details["reason"], "wrong_password");
        assert_eq!(denied[0].outcome, "denied");
        // Ten failures for one account from ten addresses lock it, for minutes.
        for i in 2..=10 {
            let ip: &'static str = Box::leak(format!("198.51.100.{i}").into_boxed_str());
            try_as("ada@example.org", "wrong password here", ip)
                .await
                .unwrap_err();
        }
        let err = try_as("ada@example.org", PASSWORD, "192.0.2.50")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { .. }),
            "{}: {err}",
            env.name
        );
        env.clock.advance(Duration::minutes(5));
        try_as("ada@example.org", PASSWORD, "192.0.2.50")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    for env in envs().await {
        enrol_owner(&env).await;
        let (here, here_secret) = sign_in(&env, "ada@example.org", PASSWORD, "192.0.2.1")
            .await
            .unwrap();
        let (_, elsewhere) = sign_in(&env, "ada@example.org", PASSWORD, "192.0.2.2")
            .await
            .unwrap();
        assert_eq!(env.store.list_sessions(&env.ada).await.unwrap().len(), 2);
        let err = env
            .store
            .change_password(
                &here,
                Password::presented("not my password".into()),
                "a new tangerine voyage".into(),
                &env.ctx(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SignInRefused), "{}: {err}", env.name);
        let ended = env
            .store
            .change_password(
                &here,
                Password::presented(PASSWORD.into()),
                "a new tangerine voyage".into(),
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(ended, 1);
        env.store.session(&here_secret).await.unwrap();
        assert!(matches!(
            env.store.session(&elsewhere).await,
            Err(Error::NotSignedIn)
        ));
        assert!(
            sign_in(&env, "ada@example.org", PASSWORD, "192.0.2.1")
                .await
                .is_err()
        );
        sign_in(
            &env,
            "ada@example.org",
            "a new tangerine voyage",
            "192.0.2.1",
        )
        .await
        .unwrap();
        let changed = actions(&env, Action::MemberPasswordChanged).await;
        assert_eq!(changed.iter().filter(|e| e.outcome == "success").count(), 1);
        assert_eq!(
            changed[1].details["reason"], "wrong_password",
            "the refused try is audited"
        );
    }
}

#[tokio::test]
async fn a_member_cannot_hold_an_admin_token_and_removal_revokes_everything() {
    for env in envs().await {
        let (_, secret) = env
            .store
            .invite(&env.ws, "carol@example.org", Role::Member, &env.ctx())
            .await
            .unwrap();
        let carol = env
            .store
            .enrol(&secret, "Carol", PASSWORD.into(), &Context::system())
            .await
            .unwrap();
        let mut new = NewToken {
            owner_id: carol.id.clone(),
            ..env.new_token("carol-admin", &[Scope::Admin])
        };
        let err = env
            .store
            .create_token(&env.ws, new.clone(), &env.ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "scopes",
                    ..
                }
            ),
            "{}: {err}",
            env.name
        );
        new.scopes = Scopes::of(&[Scope::Read, Scope::Write]);
        let (record, token) = env
            .store
            .create_token(&env.ws, new, &env.ctx())
            .await
            .unwrap();
        env.store
            .verify(
                token.expose_secret(),
                Scope::Read.into(),
                &call("/v1/notes"),
            )
            .await
            .unwrap()
            .finish(200);
        let (_, session) = sign_in(&env, "carol@example.org", PASSWORD, "192.0.2.3")
            .await
            .unwrap();
        let revoked = env
            .store
            .remove_member(&env.ws, &carol.id, &env.ctx())
            .await
            .unwrap();
        assert_eq!(revoked, vec![record.id]);
        assert_eq!(
            env.store.get_token(&env.ws, record.id).await.unwrap().state,
            TokenState::Revoked
        );
        assert!(
            env.store
                .verify(
                    token.expose_secret(),
                    Scope::Read.into(),
                    &call("/v1/notes")
                )
                .await
                .is_err()
        );
        assert!(matches!(
            env.store.session(&session).await,
            Err(Error::NotSignedIn)
        ));
        assert!(
            env.store
                .list_members(&env.ws)
                .await
                .unwrap()
                .iter()
                .all(|m| m.id != carol.id)
        );
        let removed = actions(&env, Action::MemberRemoved).await;
        assert_eq!(removed.len(), 1);
        assert_eq!(
            removed[0].details["tokens_revoked"][0],
            record.id.to_string()
        );
        // The last owner stays.
        let err = env
            .store
            .remove_member(&env.ws, &env.ada, &env.ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{}: {err}", env.name);
    }
}

#[tokio::test]
async fn an_authenticator_app_guards_sign_in_and_each_code_works_once() {
    for env in envs().await {
        enrol_owner(&env).await;
        let sign_in = || async {
            sign_in(&env, "ada@example.org", PASSWORD, "192.0.2.1")
                .await
                .unwrap()
        };
        let (signed_in, _) = sign_in().await;
        assert!(!signed_in.session.awaiting_second_factor);
        assert!(matches!(
            env.store
                .start_totp(
                    &signed_in,
                    Password::presented("not it at all".into()),
                    &env.ctx()
                )
                .await,
            Err(Error::SignInRefused)
        ));
        let setup = env
            .store
            .start_totp(&signed_in, Password::presented(PASSWORD.into()), &env.ctx())
            .await
            .unwrap();
        // Nothing changes until a code confirms the app.
        let (plain, _) = sign_in().await;
        assert!(!plain.session.awaiting_second_factor, "{}", env.name);
        let err = env
            .store
            .confirm_totp(&signed_in, "000000", &env.ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "code", .. }),
            "{}: {err}",
            env.name
        );
        let codes = env
            .store
            .confirm_totp(&signed_in, &setup.code_at(env.store.now()), &env.ctx())
            .await
            .unwrap();
        assert_eq!(codes.len(), 10);
        // The secret is sealed in the database, not stored as it is.
        let bytes = env.database_bytes().await;
        assert!(
            !contains(&bytes, setup.expose_base32().as_str()),
            "{}",
            env.name
        );
        assert!(
            !contains(&bytes, &codes[0]),
            "{}: recovery codes are hashed",
            env.name
        );

        // Now the password alone opens a session that opens nothing.
        let (pending, secret) = sign_in().await;
        assert!(pending.session.awaiting_second_factor);
        assert!(matches!(
            env.store.session(&secret).await,
            Err(Error::NotSignedIn)
        ));
        let err = env
            .store
            .complete_sign_in(&secret, "123456", &from("192.0.2.1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SignInRefused), "{}: {err}", env.name);
        env.clock.advance(Duration::seconds(30));
        let code = setup.code_at(env.store.now());
        let done = env
            .store
            .complete_sign_in(&secret, &code, &from("192.0.2.1"))
            .await
            .unwrap();
        assert!(!done.session.awaiting_second_factor);
        env.store.session(&secret).await.unwrap();
        // The same code again is refused (replay), a recovery code works once.
        let (_, second) = sign_in().await;
        assert!(
            env.store
                .complete_sign_in(&second, &code, &from("192.0.2.1"))
                .await
                .is_err()
        );
        env.store
            .complete_sign_in(&second, &codes[3], &from("192.0.2.1"))
            .await
            .unwrap();
        let (_, third) = sign_in().await;
        assert!(
            env.store
                .complete_sign_in(&third, &codes[3], &from("192.0.2.1"))
                .await
                .is_err()
        );
        // A pending session expires after five minutes.
        env.clock.advance(Duration::minutes(6));
        let err = env
            .store
            .complete_sign_in(&third, &setup.code_at(env.store.now()), &from("192.0.2.1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotSignedIn), "{}: {err}", env.name);
        let added = actions(&env, Action::MemberFactorAdded).await;
        assert_eq!(added.iter().filter(|e| e.outcome == "success").count(), 1);
        assert_eq!(
            added.iter().filter(|e| e.outcome == "denied").count(),
            1,
            "the wrong password"
        );
        let signed_ins = actions(&env, Action::MemberSignedIn).await;
        assert!(
            signed_ins
                .iter()
                .any(|e| e.details["second_factor"] == "recovery_code")
        );
        assert!(
            signed_ins
                .iter()
                .any(|e| e.details["reason"] == "wrong_code")
        );
        // Removing it needs the password.
        assert!(
            env.store
                .remove_totp(
                    &done,
                    Password::presented("nope nope nope".into()),
                    &env.ctx()
                )
                .await
                .is_err()
        );
        env.store
            .remove_totp(&done, Password::presented(PASSWORD.into()), &env.ctx())
            .await
            .unwrap();
        let (after, _) = sign_in().await;
        assert!(!after.session.awaiting_second_factor);
        let removed = actions(&env, Action::MemberFactorRemoved).await;
        assert_eq!(removed.iter().filter(|e| e.outcome == "success").count(), 1);
        // A workspace that requires one says so on every session.
        env.store
            .require_second_factor(&env.ws, true, &env.ctx())
            .await
            .unwrap();
        let (required, _) = sign_in().await;
        assert!(required.must_add_second_factor(), "{}", env.name);
    }
}

#[tokio::test]
async fn demoting_a_member_revokes_their_admin_tokens() {
    for env in envs().await {
        let bob = env
            .store
            .add_member(
                &env.ws,
                token_store::NewMember {
                    name: "Bob".into(),
                    email: "bob@example.org".into(),
                    role: Role::Admin,
                },
                &env.ctx(),
            )
            .await
            .unwrap();
        let issue = |scopes: &[Scope]| NewToken {
            owner_id: bob.id.clone(),
            ..env.new_token("bob", scopes)
        };
        let (admin, admin_token) = env
            .store
            .create_token(&env.ws, issue(&[Scope::Admin]), &env.ctx())
            .await
            .unwrap();
        let (read, _) = env
            .store
            .create_token(&env.ws, issue(&[Scope::Read]), &env.ctx())
            .await
            .unwrap();
        env.store
            .update_member(
                &env.ws,
                &bob.id,
                token_store::MemberUpdate {
                    role: Some(Role::Member),
                    ..Default::default()
                },
                &env.ctx(),
            )
            .await
            .unwrap();
        assert_eq!(
            env.store.get_token(&env.ws, admin.id).await.unwrap().state,
            TokenState::Revoked,
            "{}",
            env.name
        );
        assert_eq!(
            env.store.get_token(&env.ws, read.id).await.unwrap().state,
            TokenState::Active
        );
        assert!(
            env.store
                .verify(
                    admin_token.expose_secret(),
                    Scope::Admin.into(),
                    &call("/v1/tokens")
                )
                .await
                .is_err()
        );
        let updated = actions(&env, Action::MemberUpdated).await;
        assert_eq!(
            updated[0].details["tokens_revoked"][0],
            admin.id.to_string()
        );
    }
}

#[tokio::test]
async fn links_cannot_reset_a_password_or_hand_out_more_than_the_inviter_has() {
    for env in envs().await {
        // An admin, and a link for the owner minted before the owner enrolled.
        let (_, admin_link) = env
            .store
            .invite(&env.ws, "adam@example.org", Role::Admin, &env.ctx())
            .await
            .unwrap();
        let adam = env
            .store
            .enrol(&admin_link, "Adam", PASSWORD.into(), &Context::system())
            .await
            .unwrap();
        let as_adam = Context::of(Actor::Member(adam.id.clone()));
        let (_, early) = env
            .store
            .invite(
                &env.ws,
                "ada@example.org",
                Role::Member,
                &Context::of(Actor::Operator),
            )
            .await
            .unwrap();
        // The admin cannot get an owner's key: neither a link for the owner nor a new owner.
        for (email, role) in [
            ("ada@example.org", Role::Member),
            ("new@example.org", Role::Owner),
        ] {
            let err = env
                .store
                .invite(&env.ws, email, role, &as_adam)
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Invalid { field: "role", .. }),
                "{}: {err}",
                env.name
            );
        }
        enrol_owner(&env).await;
        // The link minted before no longer sets the owner's password.
        let err = env
            .store
            .enrol(
                &early,
                "Mallory",
                "a brand new secret phrase".into(),
                &Context::system(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{}: {err}", env.name);
        sign_in(&env, "ada@example.org", PASSWORD, "192.0.2.1")
            .await
            .unwrap();
        // A link the admin handed out dies when the admin is demoted.
        let (_, handed) = env
            .store
            .invite(&env.ws, "eve@example.org", Role::Admin, &as_adam)
            .await
            .unwrap();
        env.store
            .update_member(
                &env.ws,
                &adam.id,
                token_store::MemberUpdate {
                    role: Some(Role::Member),
                    ..Default::default()
                },
                &env.ctx(),
            )
            .await
            .unwrap();
        assert!(env.store.enrolment(&handed).await.is_err(), "{}", env.name);
        // The last owner stays an owner, and a removed member's email cannot be reused.
        let err = env
            .store
            .update_member(
                &env.ws,
                &env.ada,
                token_store::MemberUpdate {
                    role: Some(Role::Admin),
                    ..Default::default()
                },
                &env.ctx(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{}: {err}", env.name);
        env.store
            .remove_member(&env.ws, &adam.id, &env.ctx())
            .await
            .unwrap();
        let err = env
            .store
            .invite(&env.ws, "adam@example.org", Role::Member, &env.ctx())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("removed"), "{}: {err}", env.name);
    }
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_outrun_the_limit() {
    for env in envs().await {
        enrol_owner(&env).await;
        let ws = workspace_name(&env).await;
        let mut tries = tokio::task::JoinSet::new();
        for i in 0..30 {
            let (store, ws) = (env.store.clone(), ws.clone());
            tries.spawn(async move {
                store
                    .sign_in(
                        &ws,
                        "ada@example.org",
                        Password::presented(format!("wrong guess number {i}")),
                        &from("198.51.100.7"),
                    )
                    .await
                    .map(|_| ())
            });
        }
        let results = tries.join_all().await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(Error::SignInRefused)))
            .count();
        assert!(
            refused <= 10,
            "{}: {refused} passwords were tried, the limit is 10",
            env.name
        );
    }
}
