//! Webhooks end to end: a local receiver checks signatures and counts what it gets; the server
//! retries what fails, delivers each event once with two instances on one PostgreSQL, and a
//! kill -9 between a change and its delivery loses nothing.

use std::sync::Mutex;

use axum::routing::post;
use time::Duration;
use token_core::Scope;

use crate::*;

/// What the receiver was sent.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    event: String,
    signature: String,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> (Receiver, String) {
        let receiver = Receiver {
            fail_first: Arc::new(Mutex::new(fail_first)),
            ..Receiver::default()
        };
        let state = receiver.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let text = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    state.seen.lock().unwrap().push(Received {
                        id: text("knowmind-webhook-id"),
                        event: text("knowmind-event"),
                        signature: text("knowmind-signature"),
                        body,
                    });
                    let mut fail = state.fail_first.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_each_event_once_it_recovers_signed_and_with_one_id() {
    let s = server().await;
    let (receiver, url) = Receiver::start(2).await;
    let created = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&s.admin),
            Some(serde_json::json!({"url": url, "events": ["token.revoked"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    let hook_id = created.json["id"].as_str().unwrap().to_owned();
    let listed = s
        .call(Method::GET, "/v1/webhooks", Some(&s.admin), None)
        .await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    let token = s.issue(&[Scope::Read]).await;
    let revoked = s
        .call(Method::POST, "/v1/tokens/self/revoke", Some(&token), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let http = knowmind_server::webhooks::client(true).unwrap();
    let round = || knowmind_server::webhooks::round(&s.store, &http);
    assert_eq!(round().await.unwrap(), 1);
    assert_eq!(round().await.unwrap(), 0, "the retry waits");
    s.clock.advance(Duration::seconds(31));
    assert_eq!(round().await.unwrap(), 1);
    s.clock.advance(Duration::seconds(121));
    assert_eq!(round().await.unwrap(), 1);
    s.clock.advance(Duration::hours(1));
    assert_eq!(round().await.unwrap(), 0, "delivered: never sent again");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    for got in &seen {
        assert_eq!(got.id, seen[0].id, "one id on every retry");
        assert_eq!(got.event, "token.revoked");
        let t: i64 = got.signature[2..got.signature.find(',').unwrap()]
            .parse()
            .unwrap();
        let at = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        assert!(token_store::verify_signature(
            &secret,
            &got.signature,
            got.body.as_bytes(),
            at,
            Duration::minutes(5)
        ));
        assert!(!token_store::verify_signature(
            "whsec_wrong",
            &got.signature,
            got.body.as_bytes(),
            at,
            Duration::minutes(5)
        ));
        let body: Value = serde_json::from_str(&got.body).unwrap();
        assert_eq!(body["type"], "token.revoked");
        assert!(!got.body.contains(&token), "the token itself never travels");
    }
    let log = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{hook_id}/deliveries"),
            Some(&s.admin),
            None,
        )
        .await;
    let delivery = &log.json["items"][0];
    assert_eq!(delivery["state"], "delivered", "{}", log.text);
    let statuses: Vec<_> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64())
        .collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)], "{}", log.text);
    // Bad requests are plain 422s, and removal is audited.
    let bad = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&s.admin),
            Some(serde_json::json!({"url": "http://example.org/hook"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let removed = s
        .call(
            Method::POST,
            &format!("/v1/webhooks/{hook_id}/remove"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_event_exactly_once() {
    let clock = Arc::new(ManualClock::new(token_store::testing::T0));
    let key = Arc::new(audit::AuditKey::generate().unwrap());
    let options = || StoreOptions {
        audit_key: Some(key.clone()),
        ..store_options(&clock)
    };
    let Some(TwoInstances {
        a,
        b,
        ws,
        owner,
        _pg,
    }) = two_instances("shared", options).await
    else {
        return;
    };
    let (receiver, hook_url) = Receiver::start(0).await;
    let new = knowmind_api::NewWebhook {
        url: hook_url,
        events: vec!["token.revoked".into()],
        description: String::new(),
    };
    a.create_webhook(&ws.id, new, &Context::system())
        .await
        .unwrap();
    for i in 0..30 {
        let (record, _) = a
            .create_token(
                &ws.id,
                NewToken {
                    owner_id: owner.id.clone(),
                    name: format!("t{i}"),
                    description: String::new(),
                    client: String::new(),
                    scopes: Scope::Read.into(),
                    expires_at: None,
                    allowed_networks: Default::default(),
                },
                &Context::system(),
            )
            .await
            .unwrap();
        a.revoke_token(
            &ws.id,
            record.id,
            &Revocation::default(),
            &Context::system(),
        )
        .await
        .unwrap();
    }
    let http = knowmind_server::webhooks::client(true).unwrap();
    loop {
        let (x, y) = tokio::join!(
            knowmind_server::webhooks::round(&a, &http),
            knowmind_server::webhooks::round(&b, &http)
        );
        if x.unwrap() + y.unwrap() == 0 {
            break;
        }
    }
    let seen = receiver.seen();
    let ids: std::collections::HashSet<_> = seen.iter().map(|r| r.id.clone()).collect();
    assert_eq!(seen.len(), 30, "every event sent once: {seen:?}");
    assert_eq!(ids.len(), 30);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_kill_9_between_a_change_and_its_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (receiver, url) = Receiver::start(0).await;
    // Deliveries paused: the first round would come an hour after start.
    let paused = binary::start(
        &data,
        &[
            ("KNOWMIND_WEBHOOK_INTERVAL", "1h"),
            ("KNOWMIND_WEBHOOK_ALLOW_INTERNAL", "true"),
        ],
    )
    .await;
    let admin = paused.bootstrap_token();
    let (status, created, _) = http(
        paused.addr,
        "POST",
        "/v1/webhooks",
        Some(&admin),
        Some(&serde_json::json!({"url": url, "events": ["token.created", "token.revoked"]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, token, _) = http(
        paused.addr,
        "POST",
        "/v1/tokens",
        Some(&admin),
        Some(&serde_json::json!({"name": "doomed", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let id = token["id"].as_str().unwrap().to_owned();
    let (status, _, _) = http(
        paused.addr,
        "POST",
        &format!("/v1/tokens/{id}/revoke"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    paused.kill().await;
    assert!(
        receiver.seen().is_empty(),
        "nothing was sent before the kill"
    );
    let running = binary::start(
        &data,
        &[
            ("KNOWMIND_WEBHOOK_INTERVAL", "1s"),
            ("KNOWMIND_WEBHOOK_ALLOW_INTERNAL", "true"),
        ],
    )
    .await;
    let mut events = Vec::new();
    for _ in 0..200 {
        events = receiver.seen().iter().map(|r| r.event.clone()).collect();
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    events.sort();
    assert_eq!(
        events,
        ["token.created", "token.revoked"],
        "{}",
        running.log.display()
    );
    running.stop().await;
}

/// A name that resolves to an internal address is not called when the server does not allow
/// internal endpoints, whatever it resolved to when it was registered.
#[tokio::test]
async fn deliveries_never_reach_internal_addresses_through_a_name() {
    let s = server().await;
    let (receiver, url) = Receiver::start(0).await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let created = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&s.admin),
            Some(serde_json::json!({"url": by_name, "events": ["token.revoked"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token = s.issue(&[Scope::Read]).await;
    s.call(Method::POST, "/v1/tokens/self/revoke", Some(&token), None)
        .await;
    let public_only = knowmind_server::webhooks::client(false).unwrap();
    assert_eq!(
        knowmind_server::webhooks::round(&s.store, &public_only)
            .await
            .unwrap(),
        1
    );
    assert!(
        receiver.seen().is_empty(),
        "nothing reached the loopback receiver"
    );
    let hook_id = created.json["id"].as_str().unwrap();
    let log = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{hook_id}/deliveries"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        log.json["items"][0]["attempts"][0]["error"], "could not connect",
        "{}",
        log.text
    );
}
