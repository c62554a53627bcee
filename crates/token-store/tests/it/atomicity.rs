use token_core::Scope;
use token_store::{Error, Rotation, TokenFilter, TokenState};

use crate::*;

/// Makes every audit insert fail, as a full disk or a broken log would.
async fn break_audit(env: &Env) {
    use sqlx::Executor;
    let sql = match env.store.db().backend() {
        Backend::Sqlite => {
            "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events \
                           BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS \
                              $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$; \
                              CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events \
                              FOR EACH ROW EXECUTE FUNCTION audit_broken();"
        }
    };
    env.store.db().pool().execute(sql).await.unwrap();
}

#[tokio::test]
async fn a_change_whose_event_cannot_be_written_does_not_happen() {
    for env in envs().await {
        let (kept, token) = env.create("kept", &[Scope::Read]).await;
        break_audit(&env).await;

        let created = env
            .store
            .create_token(&env.ws, env.new_token("new", &[Scope::Read]), &env.ctx())
            .await;
        assert!(matches!(created, Err(Error::Storage(_))), "{}", env.name);
        let listed = env
            .store
            .list_tokens(&env.ws, &TokenFilter::default(), None, 50)
            .await
            .unwrap();
        assert_eq!(
            listed.items.len(),
            1,
            "{}: no token without its event",
            env.name
        );

        let revoked = env
            .store
            .revoke_token(&env.ws, kept.id, &Revocation::family(""), &env.ctx())
            .await;
        assert!(revoked.is_err(), "{}", env.name);
        assert_eq!(
            env.store.get_token(&env.ws, kept.id).await.unwrap().state,
            TokenState::Active
        );
        // Not revoked means still usable, including from the cache.
        assert!(
            env.store
                .verify(token.expose_secret(), Scope::Read.into(), &call("/x"))
                .await
                .is_ok()
        );

        let rotated = env
            .store
            .rotate_token(&env.ws, kept.id, Rotation::default(), &env.ctx())
            .await;
        assert!(rotated.is_err(), "{}", env.name);
        let after = env.store.get_token(&env.ws, kept.id).await.unwrap();
        assert_eq!(
            (after.state, after.rotated_to),
            (TokenState::Active, None),
            "{}",
            env.name
        );
        let listed = env
            .store
            .list_tokens(&env.ws, &TokenFilter::default(), None, 50)
            .await
            .unwrap();
        assert_eq!(
            listed.items.len(),
            1,
            "{}: the rotation's new token was rolled back too",
            env.name
        );

        let update = token_store::TokenUpdate {
            name: Some("renamed".into()),
            description: None,
        };
        assert!(
            env.store
                .update_token(&env.ws, kept.id, update, &env.ctx())
                .await
                .is_err()
        );
        assert_eq!(
            env.store.get_token(&env.ws, kept.id).await.unwrap().name,
            "kept"
        );
    }
}
