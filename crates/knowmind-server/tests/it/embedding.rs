use std::time::Duration;

use axum::routing::get;
use knowmind_axum::RemoteVerifier;
use knowmind_axum::{Authenticated, Guard, RequireScope};
use secrecy::SecretString;
use serde_json::json;
use token_core::Scope;

use crate::*;

async fn whoami(Authenticated(who): Authenticated) -> String {
    format!("token {} of {}", who.token_id, who.workspace_id)
}

/// Another service's routes, protected by `guard`.
fn service(guard: Guard) -> Router {
    Router::new()
        .route("/things", get(whoami))
        .route_layer(RequireScope::new(guard.clone(), Scope::Read))
        .merge(
            Router::new()
                .route("/things/admin", get(whoami))
                .route_layer(RequireScope::new(guard, Scope::Admin)),
        )
}

#[tokio::test]
async fn another_service_protects_its_routes_in_process() {
    let s = server().await;
    let app = spawn(service(Guard::new(s.store.clone()))).await;
    let reader = s.issue(&[Scope::Read]).await;
    let (status, _, raw) = http(app, "GET", "/things", Some(&reader), None).await;
    assert_eq!(status, 200, "{raw}");
    assert!(raw.contains(&format!("token {}", &reader[4..20])));
    assert_eq!(
        http(app, "GET", "/things/admin", Some(&reader), None)
            .await
            .0,
        403
    );
    assert_eq!(http(app, "GET", "/things", None, None).await.0, 401);
    s.store.usage_writer().flush().await.unwrap();
    let usage = s
        .store
        .audit()
        .usage_summary(reader[4..20].parse().unwrap())
        .await
        .unwrap();
    assert_eq!(usage.total, 2, "the other service's calls are recorded too");
    assert!(usage.routes.iter().any(|r| r.route == "/things/admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_service_protects_its_routes_through_the_verify_endpoint() {
    let s = server().await;
    let knowmind = spawn(app_for(s.store.clone()).await).await;
    let introspect = SecretString::from(s.issue(&[Scope::Introspect]).await);
    let remote = RemoteVerifier::new(
        &format!("http://{knowmind}"),
        introspect.clone(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        !format!("{remote:?}").contains(&secrecy::ExposeSecret::expose_secret(&introspect)[20..52])
    );
    let app = spawn(service(Guard::remote(remote))).await;

    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "client", "scopes": ["read"]})),
        )
        .await;
    let (reader, id) = (
        created.json["token"].as_str().unwrap().to_owned(),
        created.json["id"].as_str().unwrap().to_owned(),
    );
    let (status, _, raw) = http(app, "GET", "/things", Some(&reader), None).await;
    assert_eq!(status, 200, "{raw}");
    assert!(raw.contains(&format!("token {id}")));
    assert_eq!(
        http(app, "GET", "/things/admin", Some(&reader), None)
            .await
            .0,
        403
    );
    assert_eq!(
        http(app, "GET", "/things", Some("kmt_garbage"), None)
            .await
            .0,
        401
    );

    // The knowmind server recorded the original call: the service's route, from its caller.
    s.store.usage_writer().flush().await.unwrap();
    let usage = s
        .store
        .audit()
        .usage_summary(id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        usage
            .routes
            .iter()
            .any(|r| r.route == "/things" && r.method == "GET"),
        "{:?}",
        usage.routes
    );
    assert_eq!(usage.ips[0].ip.as_deref(), Some("127.0.0.1"));

    // Valid answers are cached for the TTL; with no TTL a revocation is seen at once.
    s.call(
        Method::POST,
        &format!("/v1/tokens/{id}/revoke"),
        Some(&s.admin),
        None,
    )
    .await;
    assert_eq!(
        http(app, "GET", "/things", Some(&reader), None).await.0,
        200,
        "still cached"
    );
    let uncached =
        RemoteVerifier::new(&format!("http://{knowmind}"), introspect, Duration::ZERO).unwrap();
    let strict = spawn(service(Guard::remote(uncached))).await;
    assert_eq!(
        http(strict, "GET", "/things", Some(&reader), None).await.0,
        401
    );

    // An unreachable knowmind server is 503, not 500 and not a pass.
    let nowhere = RemoteVerifier::new(
        "http://127.0.0.1:9",
        SecretString::from("kmt_x".to_owned()),
        Duration::ZERO,
    )
    .unwrap();
    let down = spawn(service(Guard::remote(nowhere))).await;
    assert_eq!(
        http(down, "GET", "/things", Some(&reader), None).await.0,
        503
    );
}

/// The remote verifier never trusts a cached answer past the token's own expiry. The knowmind
/// server here runs on a clock two days behind the verifier's (the system clock), so a token
/// that expires tomorrow by the server's clock has already expired by the verifier's: it must
/// not be cached at all, while a token without expiry is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_cache_never_outlives_a_tokens_expiry() {
    let s = server().await;
    assert!(s.store.now() < token_core::Clock::now(&token_store::SystemClock));
    let knowmind = spawn(app_for(s.store.clone()).await).await;
    let introspect = SecretString::from(s.issue(&[Scope::Introspect]).await);
    let remote = RemoteVerifier::new(
        &format!("http://{knowmind}"),
        introspect,
        Duration::from_secs(60),
    )
    .unwrap();
    let app = spawn(service(Guard::remote(remote))).await;
    let forever = s.issue(&[Scope::Read]).await;
    let expiring = s
        .issue_with(
            &[Scope::Read],
            Some(time::macros::datetime!(2026-11-28 12:00 UTC)),
        )
        .await;
    for token in [&forever, &expiring] {
        assert_eq!(http(app, "GET", "/things", Some(token), None).await.0, 200);
        let id = &token[4..20];
        let revoked = s
            .call(
                Method::POST,
                &format!("/v1/tokens/{id}/revoke"),
                Some(&s.admin),
                None,
            )
            .await;
        assert_eq!(revoked.status, StatusCode::OK);
    }
    assert_eq!(
        http(app, "GET", "/things", Some(&forever), None).await.0,
        200,
        "cached for the TTL"
    );
    assert_eq!(
        http(app, "GET", "/things", Some(&expiring), None).await.0,
        401,
        "past its expiry: never served from the cache"
    );
}

/// An answer cached for a call from one address says nothing about a call from another: a
/// token allowed from one network is refused from elsewhere even while the remote verifier holds
/// an answer for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_cache_keeps_allow_lists_per_address() {
    let s = server().await;
    let knowmind = spawn(app_for(s.store.clone()).await).await;
    let introspect = SecretString::from(s.issue(&[Scope::Introspect]).await);
    let remote = RemoteVerifier::new(
        &format!("http://{knowmind}"),
        introspect,
        Duration::from_secs(60),
    )
    .unwrap();
    let new = NewToken {
        owner_id: s.fixture.owner.clone(),
        name: "office".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: "203.0.113.0/24".parse().unwrap(),
    };
    let (_, token) = s
        .store
        .create_token(&s.ws, new, &Context::system())
        .await
        .unwrap();
    let from = |ip: &str| token_store::Call {
        client_ip: Some(ip.parse().unwrap()),
        ..token_store::Call::default()
    };
    for _ in 0..2 {
        assert!(
            remote
                .verify(
                    token.expose_secret(),
                    Scope::Read.into(),
                    &from("203.0.113.7")
                )
                .await
                .is_ok()
        );
    }
    let elsewhere = remote
        .verify(
            token.expose_secret(),
            Scope::Read.into(),
            &from("198.51.100.1"),
        )
        .await;
    assert!(
        elsewhere.is_err(),
        "not answered from the cache: {elsewhere:?}"
    );
}
