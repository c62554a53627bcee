//! token-store verification paths on SQLite, in process: cached valid token (with and without an
//! address allow-list of eight networks, the caller in the last), malformed token, unknown id
//! (one indexed lookup, no scrypt). Then what the shipped `RequireScope` layer adds to
//! one request through an axum router, without sockets or a database query in the handler.
//!
//! `cargo bench -p knowmind-benches --bench verify`; figures in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use knowmind_db::Db;
use token_core::{HashParams, Scope, Token};
use token_store::testing::Fixture;
use token_store::{Call, Store, StoreOptions, SystemClock};

/// The shared fixture on the real clock with production hashing.
fn setup(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (Store, Token, Token) {
    rt.block_on(async {
        let db = Db::connect(dir.join("bench.db").to_str().unwrap(), &Default::default())
            .await
            .unwrap();
        let fixture = Fixture::on(db, |options| StoreOptions {
            clock: Arc::new(SystemClock),
            hash_params: HashParams::DEFAULT,
            ..options
        })
        .await
        .unwrap();
        let (_, token) = fixture.issue("bench", &[Scope::Read]).await.unwrap();
        let listed = token_store::NewToken {
            owner_id: fixture.owner.clone(),
            name: "bench-allow-list".into(),
            description: String::new(),
            client: String::new(),
            scopes: Scope::Read.into(),
            expires_at: None,
            allowed_networks: "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 198.51.100.0/24, \
                               2001:db8::/32, fd00::/8, 203.0.113.0/24, 127.0.0.0/8"
                .parse()
                .unwrap(),
        };
        let (_, listed) = fixture
            .store
            .create_token(&fixture.workspace, listed, &audit::Context::system())
            .await
            .unwrap();
        (fixture.store, token, listed)
    })
}

/// Polls `future` once, as a request handler already running on the runtime would, and falls
/// back to `block_on` if it has to wait (a database read). The cached and malformed paths
/// complete on the first poll, so this measures the pipeline and not tokio's `block_on`.
fn poll_now<F: Future>(rt: &tokio::runtime::Runtime, future: F) -> F::Output {
    let mut future = pin!(future);
    let polled = {
        let _context = rt.enter(); // once a second a stale entry is re-read from the database
        future
            .as_mut()
            .poll(&mut TaskContext::from_waker(Waker::noop()))
    };
    match polled {
        Poll::Ready(out) => out,
        Poll::Pending => rt.block_on(future),
    }
}

/// Times `iters` calls of `one`, draining the usage writer's queue outside the timed region every
/// 50,000 calls (each accepted call queues a record; a full queue would answer "busy").
fn drained_every_50k(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    iters: u64,
    mut one: impl FnMut(),
) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(50_000);
        let start = Instant::now();
        for _ in 0..chunk {
            one();
        }
        timed += start.elapsed();
        rt.block_on(store.usage_writer().flush()).unwrap();
        left -= chunk;
    }
    timed
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, token, listed) = setup(&rt, dir.path());
    let call = Call {
        method: "GET".into(),
        route: "/v1/notes".into(),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        ..Call::default()
    };
    let presented = token.expose_secret().to_owned();
    let presented_listed = listed.expose_secret().to_owned();
    let unknown = Token::generate(&mut token_core::rand::rngs::SysRng)
        .unwrap()
        .expose_secret()
        .to_owned();
    let mut group = c.benchmark_group("verify_sqlite");

    // Every accepted verification queues a usage record. The writer's throughput is measured on
    // its own (usage_writer bench); here the queue is drained outside the timed region, every
    // 50,000 calls, so the figure is the cost a request pays: parse, cache lookup, scope check,
    // and enqueuing its record. `poll_now` measures the pipeline as a handler on the runtime runs
    // it; the `_block_on` variants add tokio's `block_on` from a non-runtime thread.
    for (name, polled, presented) in [
        ("cached_valid", true, &presented),
        ("cached_valid_allow_list", true, &presented_listed),
        ("cached_valid_block_on", false, &presented),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                drained_every_50k(&rt, &store, iters, || {
                    let verify = store.verify(presented, Scope::Read.into(), &call);
                    let verified = if polled {
                        poll_now(&rt, verify)
                    } else {
                        rt.block_on(verify)
                    };
                    verified.unwrap().finish(200);
                })
            })
        });
    }
    group.bench_function("malformed", |b| {
        b.iter(|| {
            poll_now(
                &rt,
                store.verify("kmt_not-a-token", Scope::Read.into(), &call),
            )
            .unwrap_err()
        })
    });
    group.bench_function("malformed_block_on", |b| {
        b.iter(|| {
            rt.block_on(store.verify("kmt_not-a-token", Scope::Read.into(), &call))
                .unwrap_err()
        })
    });
    // Without a client address: from one address, the failure limiter would refuse the id
    // without a lookup after 20 failures a minute, and this would measure the limiter.
    let anonymous = Call {
        client_ip: None,
        ..call.clone()
    };
    group.bench_function("unknown_id", |b| {
        b.iter(|| {
            let refused = rt
                .block_on(store.verify(&unknown, Scope::Read.into(), &anonymous))
                .unwrap_err();
            assert!(
                matches!(refused, token_store::Error::Unauthorized(_)),
                "{refused:?}"
            );
        })
    });
    group.finish();
    rt.block_on(store.close());
}

/// One request through a router whose handler does no work, with and without `RequireScope`
/// (cached token, usage record queued): the layer's own cost per request, which the HTTP load
/// test can only see through its noise.
fn layer(c: &mut Criterion) {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use knowmind_axum::{Authenticated, Guard, RequireScope};
    use tower::ServiceExt;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, token, _) = setup(&rt, dir.path());
    let bearer = format!("Bearer {}", token.expose_secret());
    let plain = Router::new().route("/v1/notes", get(|| async { "[]" }));
    let guarded = Router::new()
        .route(
            "/v1/notes",
            get(|Authenticated(who): Authenticated| async move {
                if who.workspace_id.is_empty() {
                    ""
                } else {
                    "[]"
                }
            }),
        )
        .route_layer(RequireScope::new(Guard::new(store.clone()), Scope::Read));
    let mut group = c.benchmark_group("router");
    for (name, router) in [("no_auth", plain), ("require_scope", guarded)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                drained_every_50k(&rt, &store, iters, || {
                    let request = Request::get("/v1/notes")
                        .header("authorization", &bearer)
                        .body(Body::empty())
                        .unwrap();
                    let response = poll_now(&rt, router.clone().oneshot(request)).unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                })
            })
        });
    }
    group.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, verify, layer);
criterion_main!(benches);
