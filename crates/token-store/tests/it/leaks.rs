use token_core::Scope;
use token_store::Rotation;

use crate::*;

/// Runs a whole lifecycle and returns every plaintext token and secret it produced.
async fn lifecycle(env: &Env) -> Vec<String> {
    let (record, token) = env.create("scan-me", &[Scope::Read, Scope::Write]).await;
    env.store
        .verify(
            token.expose_secret(),
            Scope::Read.into(),
            &call("/v1/notes"),
        )
        .await
        .unwrap()
        .finish(200);
    let (_, rotated) = env
        .store
        .rotate_token(&env.ws, record.id, Rotation::default(), &env.ctx())
        .await
        .unwrap();
    env.store
        .verify(
            token.expose_secret(),
            Scope::Read.into(),
            &call("/v1/notes"),
        )
        .await
        .unwrap_err();
    env.store
        .verify(
            rotated.expose_secret(),
            Scope::Read.into(),
            &call("/v1/notes"),
        )
        .await
        .unwrap()
        .finish(200);
    env.store
        .revoke_token(
            &env.ws,
            rotated.id(),
            &Revocation::family("done"),
            &env.ctx(),
        )
        .await
        .unwrap();
    env.store.usage_writer().flush().await.unwrap();
    let mut secrets = Vec::new();
    for t in [&token, &rotated] {
        secrets.push(t.expose_secret().to_owned());
        secrets.push(t.expose_secret()[20..52].to_owned()); // the secret part alone
    }
    secrets
}

fn assert_absent(haystack: &[u8], secrets: &[String], what: &str) {
    for secret in secrets {
        assert!(
            !contains(haystack, secret),
            "{what}: the database contains a plaintext token or secret"
        );
    }
}

#[tokio::test]
async fn no_plaintext_token_reaches_the_database_files() {
    for env in envs().await {
        let secrets = lifecycle(&env).await;
        let bytes = env.database_bytes().await;
        assert!(
            contains(&bytes, "scan-me"),
            "{}: the scan must cover the data ({} bytes)",
            env.name,
            bytes.len()
        );
        assert_absent(&bytes, &secrets, env.name);
    }
}
