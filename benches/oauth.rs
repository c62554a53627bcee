//! What a connector's token requests cost with production hashing (scrypt `ln=14`), on SQLite in
//! process: a refresh (refresh token checked by SHA-256, one new access token hashed by scrypt,
//! the rotation written with its audit event) and the first verification of an access token on
//! an instance that has never seen it (one lookup, one scrypt). Both are held to the 50 ms
//! cold-verification budget (docs/SECURITY.md, "OAuth connectors").
//!
//! `cargo bench -p knowmind-benches --bench oauth`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64ct::Encoding;
use criterion::{Criterion, criterion_group, criterion_main};
use knowmind_api::RegisterClient;
use knowmind_db::Db;
use sha2::Digest;
use token_core::{HashParams, Scope, Token};
use token_store::testing::Fixture;
use token_store::{
    AuthorizationRequest, Call, ClientCredentials, Consent, Store, StoreOptions, SystemClock,
};

const REDIRECT: &str = "https://connector.example/cb";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc-7636-0123456789";

/// Production hashing on the real clock, both instances with the one audit key.
fn options(key: &Arc<audit::AuditKey>, base: StoreOptions) -> StoreOptions {
    StoreOptions {
        clock: Arc::new(SystemClock),
        hash_params: HashParams::DEFAULT,
        failures_per_minute: 0,
        audit_key: Some(key.clone()),
        ..base
    }
}

/// A store with production hashing, a public client Ada approved, and its first tokens.
async fn connected(path: &str, key: &Arc<audit::AuditKey>) -> (Store, String, Token) {
    let db = Db::connect(path, &Default::default()).await.unwrap();
    let fixture = Fixture::on(db, |base| options(key, base)).await.unwrap();
    let store = fixture.store.clone();
    let ctx = audit::Context::system();
    let client = store
        .register_client(
            &fixture.workspace,
            &fixture.owner,
            RegisterClient {
                name: "bench".into(),
                redirect_uris: vec![REDIRECT.into()],
                scopes: Scope::Read.into(),
                confidential: false,
                client_credentials: false,
            },
            &ctx,
        )
        .await
        .unwrap()
        .client;
    let ada = store
        .get_member(&fixture.workspace, &fixture.owner)
        .await
        .unwrap();
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: REDIRECT.into(),
        scopes: Scope::Read.into(),
        code_challenge: base64ct::Base64UrlUnpadded::encode_string(&sha2::Sha256::digest(
            VERIFIER.as_bytes(),
        )),
    };
    let code = store
        .answer_authorization(&ada, &request, Consent::Approve, &ctx)
        .await
        .unwrap()
        .unwrap();
    let issued = store
        .exchange_code(
            &credentials(&client.id),
            code.expose_secret(),
            REDIRECT,
            VERIFIER,
            &ctx,
        )
        .await
        .unwrap();
    (store, client.id, issued.refresh.unwrap())
}

fn credentials(id: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: id.to_owned(),
        secret: None,
    }
}

fn oauth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let path = path.to_str().unwrap().to_owned();
    let key = Arc::new(audit::AuditKey::generate().unwrap());
    let (store, client, first) = rt.block_on(connected(&path, &key));
    // A second instance on the same file: it has never cached a token the first one issued.
    let other = rt.block_on(async {
        let db = Db::connect(&path, &Default::default()).await.unwrap();
        Store::with_db(db, options(&key, StoreOptions::default()))
            .await
            .unwrap()
    });
    let ctx = audit::Context::system();
    let mut group = c.benchmark_group("oauth");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let mut current = first;
    group.bench_function("refresh", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let next = rt
                    .block_on(store.refresh(
                        &credentials(&client),
                        current.expose_secret(),
                        None,
                        &ctx,
                    ))
                    .unwrap();
                timed += start.elapsed();
                current = next.refresh.unwrap();
            }
            timed
        });
    });
    group.bench_function("uncached_access_verify", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let next = rt
                    .block_on(store.refresh(
                        &credentials(&client),
                        current.expose_secret(),
                        None,
                        &ctx,
                    ))
                    .unwrap();
                current = next.refresh.unwrap();
                let call = Call::default();
                let start = Instant::now();
                let verified = rt
                    .block_on(other.verify(next.access.expose_secret(), Scope::Read.into(), &call))
                    .unwrap();
                timed += start.elapsed();
                drop(verified);
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(benches, oauth);
criterion_main!(benches);
