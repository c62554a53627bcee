use axum::http::Method;
use knowmind_axum::Access;
use knowmind_server::api::routes;
use serde_json::json;
use time::Duration;
use token_core::Scope;

use crate::*;

/// A token granting every scope except `scope` (and not write, for read routes: write implies it).
fn all_but(scope: Scope) -> Vec<Scope> {
    Scope::ALL
        .into_iter()
        .filter(|s| *s != scope && !(scope == Scope::Read && *s == Scope::Write))
        .collect()
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "AAAAAAAAAAAAAAAA")
}

fn method(m: &Method) -> Method {
    m.clone()
}

#[tokio::test]
async fn every_route_enforces_its_access_rule() {
    let s = unlimited_server().await; // dozens of deliberate failures from one address
    let mut unauthorized_bodies = std::collections::HashSet::new();
    for route in routes() {
        let path = concrete(&route.path);
        let anonymous = s.call(method(&route.method), &path, None, None).await;
        match route.access {
            // GitHub's alerts need no token, but do need GitHub's signature.
            Access::Public if route.path == "/v1/secret-scanning/github" => {
                assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "unsigned");
                continue;
            }
            Access::Public => {
                assert_ne!(
                    anonymous.status,
                    StatusCode::UNAUTHORIZED,
                    "{route:?} must be public"
                );
                continue;
            }
            _ => {
                assert_eq!(
                    anonymous.status,
                    StatusCode::UNAUTHORIZED,
                    "{route:?} without a token"
                );
                unauthorized_bodies.insert(anonymous.text.clone());
            }
        }
        let garbage = s
            .call(
                method(&route.method),
                &path,
                Some("kmt_not-a-real-token"),
                None,
            )
            .await;
        assert_eq!(
            garbage.status,
            StatusCode::UNAUTHORIZED,
            "{route:?} with garbage"
        );
        unauthorized_bodies.insert(garbage.text.clone());
        if let Access::Scope(scope) = route.access {
            let token = s.issue(&all_but(scope)).await;
            let refused = s
                .call(method(&route.method), &path, Some(&token), Some(json!({})))
                .await;
            assert_eq!(
                refused.status,
                StatusCode::FORBIDDEN,
                "{route:?} without {scope}"
            );
            assert_eq!(refused.json["code"], "INSUFFICIENT_SCOPE");
            assert!(
                refused.json["detail"]
                    .as_str()
                    .unwrap()
                    .ends_with(scope.as_str()),
                "{}",
                refused.text
            );
        }
    }
    assert_eq!(
        unauthorized_bodies.len(),
        1,
        "every 401 has the same body: {unauthorized_bodies:?}"
    );
}

#[tokio::test]
async fn a_read_token_is_refused_on_every_write_and_admin_route() {
    let s = server().await;
    let read = s.issue(&[Scope::Read]).await;
    let mut checked = 0;
    for route in routes() {
        if matches!(
            route.access,
            Access::Scope(Scope::Write | Scope::Admin | Scope::Introspect)
        ) {
            let reply = s
                .call(
                    method(&route.method),
                    &concrete(&route.path),
                    Some(&read),
                    Some(json!({})),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{route:?}: {}",
                reply.text
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 33, "29 admin, 3 write and 1 introspect routes");
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&read), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn notes_follow_read_and_write() {
    let s = server().await;
    let writer = s.issue(&[Scope::Write]).await;
    let reader = s.issue(&[Scope::Read]).await;
    let created = s
        .call(
            Method::POST,
            "/v1/notes",
            Some(&writer),
            Some(json!({"title": "plan", "body": "ship it"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let got = s
        .call(Method::GET, &format!("/v1/notes/{id}"), Some(&reader), None)
        .await;
    assert_eq!(got.json["body"], "ship it");
    let replaced = s
        .call(
            Method::PUT,
            &format!("/v1/notes/{id}"),
            Some(&writer),
            Some(json!({"title": "plan v2"})),
        )
        .await;
    assert_eq!(replaced.json["title"], "plan v2");
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&reader), None)
            .await
            .json["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.call(
            Method::DELETE,
            &format!("/v1/notes/{id}"),
            Some(&writer),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.call(Method::GET, &format!("/v1/notes/{id}"), Some(&reader), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bad = s
        .call(
            Method::POST,
            "/v1/notes",
            Some(&writer),
            Some(json!({"title": ""})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_revoked_token_is_refused_immediately() {
    let s = server().await;
    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "ci", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token = created.json["token"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    let revoked = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/revoke"),
            Some(&s.admin),
            Some(json!({"reason": "leaked"})),
        )
        .await;
    assert_eq!(revoked.json["state"], "revoked");
    assert_eq!(revoked.json["revoked_reason"], "leaked");
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rotation_replaces_the_token_with_or_without_grace() {
    let s = server().await;
    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "svc", "scopes": ["read"], "expires_in": "30d"})),
        )
        .await;
    let (old, id) = (
        created.json["token"].as_str().unwrap().to_owned(),
        created.json["id"].as_str().unwrap().to_owned(),
    );
    let rotated = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/rotate"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let new = rotated.json["token"].as_str().unwrap().to_owned();
    assert_eq!(rotated.json["rotated_from"], id.as_str());
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&old), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );

    // Rotating itself, with a grace period: the old one works until the grace ends.
    let graced = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&new),
            Some(json!({"grace_period": "1h"})),
        )
        .await;
    assert_eq!(graced.status, StatusCode::CREATED, "{}", graced.text);
    let newest = graced.json["token"].as_str().unwrap().to_owned();
    s.clock.advance(Duration::minutes(59));
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );
    s.clock.advance(Duration::minutes(2));
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&new), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&newest), None)
            .await
            .status,
        StatusCode::OK
    );
    let twice = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/rotate"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.json["code"], "TOKEN_NOT_ACTIVE");
}

#[tokio::test]
async fn the_plaintext_appears_only_in_create_and_rotate_responses() {
    let s = server().await;
    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "secretive", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(
        created.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let token = created.json["token"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    let secret = token[20..52].to_owned();
    s.call(Method::GET, "/v1/notes", Some(&token), None).await;
    let mut seen = Vec::new();
    for (m, path, as_token) in [
        (Method::GET, format!("/v1/tokens/{id}"), &s.admin),
        (Method::GET, "/v1/tokens".to_owned(), &s.admin),
        (
            Method::GET,
            "/v1/tokens?state=all&name=secret".to_owned(),
            &s.admin,
        ),
        (Method::GET, "/v1/tokens/self".to_owned(), &token),
        (Method::GET, format!("/v1/tokens/{id}/usage"), &token),
        (Method::GET, "/v1/audit/events".to_owned(), &s.admin),
        (Method::GET, "/v1/audit/events/export".to_owned(), &s.admin),
        (Method::GET, "/metrics".to_owned(), &s.admin),
        (Method::PATCH, format!("/v1/tokens/{id}"), &s.admin),
        (Method::POST, format!("/v1/tokens/{id}/revoke"), &s.admin),
    ] {
        let body = (m == Method::PATCH).then(|| json!({"description": "renamed"}));
        let reply = s.call(m.clone(), &path, Some(as_token), body).await;
        assert!(reply.status.is_success(), "{m} {path}: {}", reply.text);
        seen.push(reply.text);
    }
    for text in &seen {
        assert!(
            !text.contains(&secret),
            "a response other than create/rotate carries the secret"
        );
    }
    assert!(seen[0].contains(&id), "the id, however, is everywhere");
}

#[tokio::test]
async fn responses_say_when_the_token_expires_and_when_it_is_due_for_rotation() {
    let s = server().await;
    let token = s
        .issue_with(&[Scope::Read], Some(datetime!(2027-01-01 00:00 UTC)))
        .await;
    let reply = s.call(Method::GET, "/v1/notes", Some(&token), None).await;
    assert_eq!(
        reply.headers.get("knowmind-token-expiration").unwrap(),
        "2027-01-01T00:00:00Z"
    );
    // Issued at the test clock's 2026-11-27 12:00; the default interval is 90 days.
    assert_eq!(
        reply.headers.get("knowmind-token-rotation-due").unwrap(),
        "2027-02-25T12:00:00Z"
    );
    let me = s
        .call(Method::GET, "/v1/tokens/self", Some(&token), None)
        .await;
    assert_eq!(
        me.json["rotation_due_at"], "2027-02-25T12:00:00Z",
        "{}",
        me.text
    );
    let forever = s.issue(&[Scope::Read]).await;
    assert!(
        s.call(Method::GET, "/v1/notes", Some(&forever), None)
            .await
            .headers
            .get("knowmind-token-expiration")
            .is_none()
    );
}

#[tokio::test]
async fn usage_lists_calls_with_address_and_route_for_admins_and_the_token_itself() {
    let s = server().await;
    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "app", "scopes": ["read"]})),
        )
        .await;
    let (token, id) = (
        created.json["token"].as_str().unwrap().to_owned(),
        created.json["id"].as_str().unwrap().to_owned(),
    );
    s.call(Method::GET, "/v1/notes", Some(&token), None).await;
    s.call(Method::GET, "/v1/notes/note_missing", Some(&token), None)
        .await;
    s.call(
        Method::POST,
        "/v1/notes",
        Some(&token),
        Some(json!({"title": "x"})),
    )
    .await;
    s.store.usage_writer().flush().await.unwrap();
    let usage = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}/usage"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    assert_eq!(usage.json["ips"][0]["ip"], "203.0.113.5");
    let routes: Vec<(String, i64)> = usage.json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["route"].as_str().unwrap()
                ),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    for expected in ["GET /v1/notes", "GET /v1/notes/{id}", "POST /v1/notes"] {
        assert!(
            routes.iter().any(|(r, n)| r == expected && *n == 1),
            "{expected} in {routes:?}"
        );
    }
    let statuses: Vec<_> = usage.json["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [403, 404, 200],
        "newest first, with the response status"
    );
    let other = s.issue(&[Scope::Read]).await;
    let refused = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}/usage"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.call(
            Method::GET,
            &format!("/v1/tokens/{id}/usage"),
            Some(&s.admin),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn introspection_answers_every_code_and_respects_workspaces() {
    let s = server().await;
    let introspector = s.issue(&[Scope::Introspect]).await;
    let ask = |token: String, scopes: Value| {
        let s = &s;
        let introspector = introspector.clone();
        async move {
            let body = json!({"token": token, "scopes": scopes, "client_ip": "198.51.100.20", "method": "GET", "route": "/things"});
            let reply = s
                .call(
                    Method::POST,
                    "/v1/tokens/verify",
                    Some(&introspector),
                    Some(body),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            reply.json
        }
    };
    let reader = s.issue(&[Scope::Read]).await;
    let valid = ask(reader.clone(), json!(["read"])).await;
    assert_eq!(
        (valid["valid"].as_bool(), valid["code"].as_str()),
        (Some(true), Some("VALID"))
    );
    assert_eq!(valid["scopes"], json!(["read"]));
    assert_eq!(
        ask(reader.clone(), json!(["write"])).await["code"],
        "INSUFFICIENT_SCOPE"
    );
    assert_eq!(
        ask("kmt_nonsense".into(), json!([])).await["code"],
        "NOT_FOUND"
    );
    let short = s
        .issue_with(&[Scope::Read], Some(datetime!(2026-11-27 13:00 UTC)))
        .await;
    s.clock.advance(Duration::hours(2));
    assert_eq!(ask(short, json!([])).await["code"], "EXPIRED");
    let doomed = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "doomed", "scopes": ["read"]})),
        )
        .await;
    let doomed_id = doomed.json["id"].as_str().unwrap().to_owned();
    s.call(
        Method::POST,
        &format!("/v1/tokens/{doomed_id}/revoke"),
        Some(&s.admin),
        None,
    )
    .await;
    let revoked = ask(doomed.json["token"].as_str().unwrap().to_owned(), json!([])).await;
    assert_eq!(
        (revoked["valid"].as_bool(), revoked["code"].as_str()),
        (Some(false), Some("REVOKED"))
    );

    // Another workspace's valid token is, to this introspector, unknown.
    let bob = NewMember {
        name: "Bob".into(),
        email: "bob@example.org".into(),
        role: Role::Owner,
    };
    let (other_ws, bob) = s
        .store
        .create_workspace("other", bob, &Context::system())
        .await
        .unwrap();
    let new = NewToken {
        owner_id: bob.id,
        name: "theirs".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (_, theirs) = s
        .store
        .create_token(&other_ws.id, new, &Context::system())
        .await
        .unwrap();
    let answer = ask(theirs.expose_secret().to_owned(), json!([])).await;
    assert_eq!(answer["code"], "NOT_FOUND");
    assert!(answer.get("workspace").is_none());
}

#[tokio::test]
async fn introspection_is_confined_to_its_workspace_and_limited_per_introspector() {
    let s = server_with(knowmind_db::testing::sqlite().await.unwrap(), |options| {
        StoreOptions {
            failures_per_minute: 3,
            reported_failures_per_minute: 6,
            ..options
        }
    })
    .await;
    let introspector = s.issue(&[Scope::Introspect]).await;
    let ask_from = |token: &str, client: &str| {
        let body = json!({"token": token, "client_ip": client, "route": "/things", "user_agent": "their-client/1"});
        s.call(
            Method::POST,
            "/v1/tokens/verify",
            Some(&introspector),
            Some(body),
        )
    };
    let ask = |token: &str| ask_from(token, "127.0.0.1");
    // Another workspace's tokens, valid or revoked: NOT_FOUND, and nothing written there.
    let bob = NewMember {
        name: "Bob".into(),
        email: "bob@example.org".into(),
        role: Role::Owner,
    };
    let (other_ws, bob) = s
        .store
        .create_workspace("other", bob, &Context::system())
        .await
        .unwrap();
    let theirs = |name: &str| NewToken {
        owner_id: bob.id.clone(),
        name: name.into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (live, live_token) = s
        .store
        .create_token(&other_ws.id, theirs("live"), &Context::system())
        .await
        .unwrap();
    let (dead, dead_token) = s
        .store
        .create_token(&other_ws.id, theirs("dead"), &Context::system())
        .await
        .unwrap();
    s.store
        .revoke_token(
            &other_ws.id,
            dead.id,
            &Revocation::family(""),
            &Context::system(),
        )
        .await
        .unwrap();
    let events_before = s.store.audit().checkpoint().await.unwrap().seq;
    for token in [&live_token, &dead_token] {
        let answer = ask(token.expose_secret()).await;
        assert_eq!(answer.json, json!({"valid": false, "code": "NOT_FOUND"}));
    }
    s.store.usage_writer().flush().await.unwrap();
    for id in [live.id, dead.id] {
        let usage = s.store.audit().usage(id, None, 10).await.unwrap();
        assert!(
            usage.items.is_empty(),
            "no usage record in the other workspace"
        );
    }
    assert_eq!(
        s.store.audit().checkpoint().await.unwrap().seq,
        events_before,
        "no security event in the other workspace"
    );
    // Its own workspace's token: the report is recorded as the introspector's.
    let reader = s.issue(&[Scope::Read]).await;
    assert_eq!(ask(&reader).await.json["code"], "VALID");
    s.store.usage_writer().flush().await.unwrap();
    let reader_id: token_core::Token = reader.parse().unwrap();
    let introspector_id: token_core::Token = introspector.parse().unwrap();
    let usage = s
        .store
        .audit()
        .usage(reader_id.id(), None, 10)
        .await
        .unwrap();
    let record = &usage.items[0].record;
    assert_eq!(record.route, "/things");
    assert_eq!(record.reported_by, Some(introspector_id.id()));
    // Failures count against the reported client of this introspector (3 a minute here) and
    // against the introspector as a whole (6), never against an address's own budget. Client
    // 127.0.0.1 has used one (the other workspace's revoked token above needed a lookup; the
    // live one was answered from the cache, at no cost).
    let wrong = token_core::checksummed(&format!("{}{}", &reader[4..20], "Q".repeat(32)));
    for _ in 0..2 {
        assert_eq!(ask(&wrong).await.json["code"], "NOT_FOUND");
    }
    assert_eq!(
        ask(&wrong).await.json["code"],
        "RATE_LIMITED",
        "client A is over"
    );
    // Another client of the same service still has its own budget...
    for _ in 0..3 {
        assert_eq!(
            ask_from(&wrong, "198.51.100.1").await.json["code"],
            "NOT_FOUND"
        );
    }
    // ...until the service's ceiling is reached, for every client.
    assert_eq!(
        ask_from(&wrong, "198.51.100.2").await.json["code"],
        "RATE_LIMITED",
        "the introspector's ceiling"
    );
    // A token it already proved is still answered,
    assert_eq!(ask(&reader).await.json["code"], "VALID");
    // and clients calling knowmind directly, from any address, are untouched.
    let admin_call = s
        .call(Method::GET, "/v1/tokens?limit=1", Some(&s.admin), None)
        .await;
    assert_eq!(admin_call.status, StatusCode::OK);
    let direct = s.call(Method::GET, "/v1/notes", Some(&wrong), None).await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED, "not 429");
}

#[tokio::test]
async fn the_audit_log_is_readable_exportable_and_verifiable() {
    let s = server().await;
    s.call(
        Method::POST,
        "/v1/tokens",
        Some(&s.admin),
        Some(json!({"name": "one", "scopes": ["read"]})),
    )
    .await;
    let events = s
        .call(
            Method::GET,
            "/v1/audit/events?action=token.created&limit=10",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    let items = events.json["items"].as_array().unwrap();
    assert!(items.iter().all(|e| e["action"] == "token.created"));
    assert!(
        items
            .iter()
            .any(|e| e["details"]["name"] == "one" && e["client_ip"] == "203.0.113.5")
    );
    let export = s
        .call(Method::GET, "/v1/audit/events/export", Some(&s.admin), None)
        .await;
    assert_eq!(
        export.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/jsonl"
    );
    let lines: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.len() >= 4,
        "workspace, member, two tokens: {}",
        lines.len()
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );
    let verify = s
        .call(Method::GET, "/v1/audit/verify", Some(&s.admin), None)
        .await;
    assert_eq!(verify.json["broken"], Value::Null);
    // Only this workspace's events are checked, boundedly, paged by `after`.
    let bob = NewMember {
        name: "Bob".into(),
        email: "bob@example.org".into(),
        role: Role::Owner,
    };
    s.store
        .create_workspace("elsewhere", bob, &Context::system())
        .await
        .unwrap();
    let ours = verify.json["events"].as_u64().unwrap();
    let total = s.store.audit().checkpoint().await.unwrap().seq as u64;
    assert!(
        ours < total,
        "{ours} of {total}: another workspace's events are not ours"
    );
    let again = s
        .call(Method::GET, "/v1/audit/verify", Some(&s.admin), None)
        .await;
    assert_eq!(again.json["events"].as_u64(), Some(ours));
    let first = s
        .call(
            Method::GET,
            "/v1/audit/verify?limit=2",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(first.json["events"], 2);
    assert_eq!(first.json["more"], true);
    let after = first.json["last_seq"].as_i64().unwrap();
    let rest = s
        .call(
            Method::GET,
            &format!("/v1/audit/verify?after={after}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(rest.json["events"].as_u64(), Some(ours - 2));
    assert_eq!(rest.json["more"], false);
    let bad = s
        .call(
            Method::GET,
            "/v1/audit/events?action=token.deleted",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json["detail"]
            .as_str()
            .unwrap()
            .contains("token.revoked")
    );
}

#[tokio::test]
async fn operations_endpoints_work_without_a_token() {
    let s = server().await;
    assert_eq!(
        s.call(Method::GET, "/healthz", None, None).await.json["status"],
        "ok"
    );
    assert_eq!(
        s.call(Method::GET, "/readyz", None, None).await.json["status"],
        "ready"
    );
    let reader = s.issue(&[Scope::Read]).await;
    s.call(Method::GET, "/v1/notes", Some(&reader), None).await;
    let metrics = s.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics.text.contains(
            "knowmind_http_requests_total{method=\"GET\",route=\"/v1/notes\",status=\"200\"} 1"
        ),
        "{}",
        metrics.text
    );
    assert!(
        !metrics.text.contains(&reader[4..20]),
        "no token ids as labels"
    );
}

#[tokio::test]
async fn self_routes_act_on_the_presented_token() {
    let s = server().await;
    let token = s.issue(&[Scope::Read]).await;
    let me = s
        .call(Method::GET, "/v1/tokens/self", Some(&token), None)
        .await;
    assert_eq!(me.json["id"], &token[4..20]);
    let gone = s
        .call(Method::POST, "/v1/tokens/self/revoke", Some(&token), None)
        .await;
    assert_eq!(gone.json["state"], "revoked");
    assert_eq!(gone.json["revoked_reason"], "revoked by its holder");
    assert_eq!(
        s.call(Method::GET, "/v1/tokens/self", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn token_listing_filters_and_validates() {
    let s = server().await;
    for (name, scopes) in [("alpha", json!(["read"])), ("beta", json!(["write"]))] {
        let r = s
            .call(
                Method::POST,
                "/v1/tokens",
                Some(&s.admin),
                Some(json!({"name": name, "scopes": scopes, "expires_in": "1d"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let names = |reply: &Reply| {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            &s.call(Method::GET, "/v1/tokens?name=alp", Some(&s.admin), None)
                .await
        ),
        ["alpha"]
    );
    assert_eq!(
        names(
            &s.call(Method::GET, "/v1/tokens?scope=write", Some(&s.admin), None)
                .await
        ),
        ["beta"]
    );
    let soon = s
        .call(
            Method::GET,
            "/v1/tokens?expires_before=2026-11-29T00:00:00Z",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(names(&soon).len(), 2);
    s.clock.advance(Duration::days(2));
    assert_eq!(
        names(
            &s.call(
                Method::GET,
                "/v1/tokens?state=expired",
                Some(&s.admin),
                None
            )
            .await
        )
        .len(),
        2
    );
    for bad in [
        "/v1/tokens?state=zombie",
        "/v1/tokens?scope=root",
        "/v1/tokens?expires_before=tomorrow",
        "/v1/tokens?limit=-1",
        "/v1/tokens?bogus=1",
        "/v1/tokens?cursor=nonsense",
    ] {
        let reply = s.call(Method::GET, bad, Some(&s.admin), None).await;
        assert!(reply.status.is_client_error(), "{bad}: {}", reply.status);
        assert!(reply.json["detail"].is_string(), "{bad}: {}", reply.text);
    }
}

#[tokio::test]
async fn an_expiring_window_beyond_a_century_takes_every_expiring_token() {
    let s = server().await;
    let wide = s
        .call(
            Method::GET,
            "/v1/tokens?expiring_within=5515900645224h",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(wide.status, StatusCode::OK, "{}", wide.text);
    let bad = s
        .call(
            Method::GET,
            "/v1/tokens?expiring_within=soon",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    // Not ASCII: a 400, not a panic.
    for text in ["%C2%AA%C2%BC", "1%C3%A9", "%C3%A9d"] {
        let odd = s
            .call(
                Method::GET,
                &format!("/v1/tokens?expiring_within={text}&due=rotation"),
                Some(&s.admin),
                None,
            )
            .await;
        assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{text}: {}", odd.text);
    }
}
