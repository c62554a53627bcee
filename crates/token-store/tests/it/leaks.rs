use std::process::Command;

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
        let found = haystack
            .windows(secret.len())
            .any(|w| w == secret.as_bytes());
        assert!(!found, "{what} contains a plaintext token or secret");
    }
}

#[tokio::test]
async fn no_plaintext_token_reaches_the_database_files() {
    for env in envs().await {
        let secrets = lifecycle(&env).await;
        match env.store.db().backend() {
            Backend::Sqlite => {
                let dir = env.test_db.dir.as_ref().unwrap().path();
                let mut scanned = 0;
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let bytes = std::fs::read(&path).unwrap();
                    scanned += bytes.len();
                    assert_absent(&bytes, &secrets, &path.display().to_string());
                }
                assert!(
                    scanned > 10_000,
                    "the scan must cover real files ({scanned} bytes)"
                );
            }
            Backend::Postgres => {
                let url = std::env::var(knowmind_db::testing::POSTGRES_URL_VAR).unwrap();
                let schema = env.test_db.db.schema().unwrap();
                let dump = Command::new("pg_dump")
                    .args(["--data-only", "--schema", schema, &url])
                    .output()
                    .unwrap();
                assert!(
                    dump.status.success(),
                    "{}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                assert!(
                    String::from_utf8_lossy(&dump.stdout).contains("scan-me"),
                    "the dump holds the data"
                );
                assert_absent(&dump.stdout, &secrets, "pg_dump");
            }
        }
    }
}
