//! Token families over the API: a stolen token that rotates itself dies with its owner's
//! revocation; rotation never extends a token's life; lineage and policy are visible.

use serde_json::json;
use time::Duration;

use crate::*;

async fn create(s: &Server, body: Value) -> (String, String) {
    let created = s
        .call(Method::POST, "/v1/tokens", Some(&s.admin), Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    (
        created.json["id"].as_str().unwrap().to_owned(),
        created.json["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_thiefs_self_rotated_successor_dies_with_the_owners_revocation() {
    let s = server().await;
    // 1. An admin creates `laptop` (read). Someone steals it.
    let (id, stolen) = create(
        &s,
        json!({"name": "laptop", "scopes": ["read"], "expires_in": "1h"}),
    )
    .await;
    // 2. The thief rotates it, keeping the stolen one alive for an hour.
    s.clock.advance(Duration::minutes(1));
    let rotated = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&stolen),
            Some(json!({"grace_period": "1h"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let successor = rotated.json["token"].as_str().unwrap().to_owned();
    let successor_id = rotated.json["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated.json["origin"], "self_rotated");
    assert_eq!(rotated.json["rotated_from"], id.as_str());
    // The list marks it, so the owner can spot a successor they did not make.
    let list = s
        .call(Method::GET, "/v1/tokens?name=laptop", Some(&s.admin), None)
        .await;
    let origins: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["origin"].as_str().unwrap())
        .collect();
    assert_eq!(origins, ["self_rotated", "issued"]);
    // The record shows the family.
    let view = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    let family: Vec<(&str, &str)> = view.json["family"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(
        family,
        [
            (id.as_str(), "issued"),
            (successor_id.as_str(), "self_rotated")
        ]
    );
    // 3. The owner revokes the token they know about.
    let revoked = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/revoke"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.json["revoked"], json!([id, successor_id]));
    // 4. Both are refused.
    for token in [&stolen, &successor] {
        assert_eq!(
            s.call(Method::GET, "/v1/notes", Some(token), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn only_this_is_explicit_and_compromised_always_takes_the_family() {
    let s = server().await;
    let (id, token) = create(&s, json!({"name": "ci", "scopes": ["read"]})).await;
    let rotated = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&token),
            Some(json!({"grace_period": "1h"})),
        )
        .await;
    let successor = rotated.json["token"].as_str().unwrap().to_owned();
    let spared = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/revoke"),
            Some(&s.admin),
            Some(json!({"only_this": true, "reason": "retired"})),
        )
        .await;
    assert_eq!(spared.json["revoked"], json!([id]), "{}", spared.text);
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&successor), None)
            .await
            .status,
        StatusCode::OK,
        "asked for explicitly: the successor lives"
    );
    let (id, token) = create(&s, json!({"name": "ci2", "scopes": ["read"]})).await;
    let rotated = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&token),
            Some(json!({"grace_period": "1h"})),
        )
        .await;
    let successor = rotated.json["token"].as_str().unwrap().to_owned();
    let all = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/revoke"),
            Some(&s.admin),
            Some(json!({"only_this": true, "reason": "compromised"})),
        )
        .await;
    assert_eq!(all.json["revoked"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&successor), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let bad = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/revoke"),
            Some(&s.admin),
            Some(json!({"only_this": "perhaps"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
}

#[tokio::test]
async fn a_token_cannot_extend_its_own_life_by_rotating() {
    let s = server().await;
    let (_, short) = create(
        &s,
        json!({"name": "short", "scopes": ["read"], "expires_in": "1h"}),
    )
    .await;
    for body in [
        json!({"expires_in": "36500d"}),
        json!({"expires_at": "9999-12-31T23:59:59Z"}),
        json!({"expires_in": "2h"}),
    ] {
        let refused = s
            .call(
                Method::POST,
                "/v1/tokens/self/rotate",
                Some(&short),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.text
        );
        assert_eq!(refused.json["code"], "LIFETIME_EXCEEDED");
        assert!(
            refused.json["detail"].as_str().unwrap().contains("1h"),
            "{}",
            refused.text
        );
    }
    // The same lifetime (the default) or less is fine.
    s.clock.advance(Duration::minutes(30));
    let kept = s
        .call(Method::POST, "/v1/tokens/self/rotate", Some(&short), None)
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.text);
    assert_eq!(kept.json["expires_at"], "2026-11-27T13:30:00Z");
    let next = kept.json["token"].as_str().unwrap().to_owned();
    let shorter = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&next),
            Some(json!({"expires_in": "10m"})),
        )
        .await;
    assert_eq!(shorter.status, StatusCode::CREATED, "{}", shorter.text);
    // An admin choosing an explicit expiry for another token may lengthen it.
    let id = shorter.json["id"].as_str().unwrap();
    let admin = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/rotate"),
            Some(&s.admin),
            Some(json!({"expires_in": "30d"})),
        )
        .await;
    assert_eq!(admin.status, StatusCode::CREATED, "{}", admin.text);
}

#[tokio::test]
async fn the_workspace_policy_is_read_changed_and_audited() {
    let s = server().await;
    let policy = s
        .call(Method::GET, "/v1/workspace/policy", Some(&s.admin), None)
        .await;
    assert_eq!(
        policy.json,
        json!({
            "reuse_detection": "alert",
            "oauth_registration": false,
            "max_lifetime": null,
            "require_expiry": false,
            "role_scopes": {
                "owner": ["read", "write", "admin", "introspect"],
                "admin": ["read", "write", "admin", "introspect"],
                "member": ["read", "write", "introspect"],
            },
            "write_requires_allowlist": false,
            "revoke_unused_after": null,
            "rotation_interval": "90d"
        })
    );
    let changed = s
        .call(
            Method::PUT,
            "/v1/workspace/policy",
            Some(&s.admin),
            Some(json!({"reuse_detection": "revoke_family"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let bad = s
        .call(
            Method::PUT,
            "/v1/workspace/policy",
            Some(&s.admin),
            Some(json!({"reuse_detection": "shrug"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let events = s
        .call(
            Method::GET,
            "/v1/audit/events?action=workspace.policy_changed",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(events.json["items"].as_array().unwrap().len(), 1);

    // Now a reused rotated token takes its family down.
    let (_, token) = create(&s, json!({"name": "strict", "scopes": ["read"]})).await;
    let rotated = s
        .call(Method::POST, "/v1/tokens/self/rotate", Some(&token), None)
        .await;
    let successor = rotated.json["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&successor), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_allow_list_holds_over_http_and_the_policy_check_applies_over_http() {
    let s = server().await;
    // The test peer is 203.0.113.5.
    let (away_id, away) = create(
        &s,
        json!({"name": "away", "scopes": ["read"], "allowed_networks": ["192.0.2.0/24"]}),
    )
    .await;
    let (_, home) = create(
        &s,
        json!({"name": "home", "scopes": ["read"], "allowed_networks": ["203.0.113.0/24", "::1"]}),
    )
    .await;
    let refused = s.call(Method::GET, "/v1/notes", Some(&away), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    let unknown = s
        .call(Method::GET, "/v1/notes", Some("kmt_not-a-token"), None)
        .await;
    assert_eq!(
        refused.json, unknown.json,
        "refused like any unusable token"
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&home), None)
            .await
            .status,
        StatusCode::OK
    );
    s.store.usage_writer().flush().await.unwrap();
    let usage = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{away_id}/usage"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        usage.json["recent"][0]["outcome"], "address_not_allowed",
        "{}",
        usage.text
    );
    let record = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{away_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(record.json["allowed_networks"], json!(["192.0.2.0/24"]));
    let bad = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "x", "scopes": ["read"], "allowed_networks": ["10.0.0.1/8"]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("did you mean 10.0.0.0/8"), "{}", bad.text);

    // Write tokens need an allow-list; a 30-day maximum applies to tokens made before it.
    let set = s
        .call(
            Method::PUT,
            "/v1/workspace/policy",
            Some(&s.admin),
            Some(json!({"reuse_detection": "alert", "write_requires_allowlist": true, "max_lifetime": "30d"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let refused = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "w", "scopes": ["write"], "expires_in": "7d"})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.json["code"], "POLICY_VIOLATION", "{}", refused.text);
    assert!(
        refused.text.contains("write_requires_allowlist"),
        "{}",
        refused.text
    );
    let check = s
        .call(
            Method::GET,
            "/v1/workspace/policy/check",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.text);
    assert_eq!(check.json["applied"], false);
    let findings = check.json["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["token_id"] == away_id.as_str()
            && f["rule"] == "max_lifetime"
            && f["action"] == "set_expiry"),
        "{}",
        check.text
    );
    let applied = s
        .call(
            Method::POST,
            "/v1/workspace/policy/apply",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text);
    assert_eq!(applied.json["applied"], true);
    let record = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{away_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(record.json["expires_at"].is_string(), "{}", record.text);
    let again = s
        .call(
            Method::GET,
            "/v1/workspace/policy/check",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(again.json["findings"], json!([]), "{}", again.text);
}

#[tokio::test]
async fn a_rotation_with_handover_keeps_the_old_token_until_the_new_one_is_used() {
    let s = server().await;
    let (id, old) = create(&s, json!({"name": "laptop", "scopes": ["read"]})).await;
    for (body, why) in [
        (
            json!({"handover_overlap": "5m"}),
            "an overlap without a deadline",
        ),
        (
            json!({"handover_deadline": "1d", "grace_period": "1h"}),
            "a grace period beside a hand-over",
        ),
        (
            json!({"handover_deadline": "31d"}),
            "a deadline over 30 days",
        ),
        (json!({"handover_deadline": "soon"}), "a malformed deadline"),
    ] {
        let refused = s
            .call(
                Method::POST,
                &format!("/v1/tokens/{id}/rotate"),
                Some(&s.admin),
                Some(body),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            refused.text
        );
    }
    let rotated = s
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/rotate"),
            Some(&s.admin),
            Some(json!({"handover_deadline": "1d", "handover_overlap": "10m"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let new = rotated.json["token"].as_str().unwrap().to_owned();
    let state = || async {
        s.call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await
        .json
    };
    assert_eq!(state().await["handover"], "pending");
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&old), None)
            .await
            .status,
        StatusCode::OK,
        "the old token works while the new one is unused"
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );
    let overlap = state().await;
    assert_eq!(overlap["handover"], "overlap", "{overlap}");
    // The test clock stands still: the old token ends 10 minutes after the first use.
    assert_eq!(overlap["revoked_at"], "2026-11-27T12:10:00Z", "{overlap}");
    let events = s
        .call(
            Method::GET,
            "/v1/audit/events?action=token.handover_completed",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        events.json["items"][0]["details"]["new_token_first_used_from"], "203.0.113.5",
        "{}",
        events.text
    );
}

#[tokio::test]
async fn anyone_can_kill_a_leaked_token_and_learns_nothing_about_it() {
    let s = server().await;
    let (id, leaked) = create(&s, json!({"name": "leaked", "scopes": ["read"]})).await;
    let rotated = s
        .call(Method::POST, "/v1/tokens/self/rotate", Some(&leaked), None)
        .await;
    let successor = rotated.json["token"].as_str().unwrap().to_owned();
    let report = |credentials: Vec<String>| json!({"credentials": credentials, "source": "https://gist.example.org/abc"});
    let mut near = successor.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    // No token needed; the answer is the same for a live token and for nonsense.
    let live = s
        .call(
            Method::POST,
            "/v1/credentials/revoke",
            None,
            Some(report(vec![successor.clone(), near.clone()])),
        )
        .await;
    let nonsense = s
        .call(
            Method::POST,
            "/v1/credentials/revoke",
            None,
            Some(report(vec!["kmt_nothing".into(), near])),
        )
        .await;
    assert_eq!(live.status, StatusCode::ACCEPTED, "{}", live.text);
    assert_eq!((nonsense.status, &nonsense.json), (live.status, &live.json));
    let new_id = &successor[4..20];
    let mut record = Value::Null;
    for _ in 0..100 {
        record = s
            .call(
                Method::GET,
                &format!("/v1/tokens/{new_id}"),
                Some(&s.admin),
                None,
            )
            .await
            .json;
        if record["state"] == "revoked" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(record["state"], "revoked", "{record}");
    assert_eq!(
        record["revoked_reason"], "leaked: found at https://gist.example.org/abc",
        "{record}"
    );
    // The family went with it: the old token in its grace period too.
    let old = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(old.json["state"], "revoked", "{}", old.text);
    // Too many, or too often, is refused.
    let too_many = s
        .call(
            Method::POST,
            "/v1/credentials/revoke",
            None,
            Some(report(vec!["x".into(); 1_001])),
        )
        .await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut limited = None;
    for _ in 0..70 {
        let reply = s
            .call(
                Method::POST,
                "/v1/credentials/revoke",
                None,
                Some(report(vec!["kmt_x".into()])),
            )
            .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
    }
    assert!(limited.is_some(), "60 reports an hour per address");
}

#[tokio::test]
async fn githubs_signed_alerts_revoke_live_tokens_and_unsigned_ones_change_nothing() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;
    let mut s = server().await;
    // Our own key pair stands in for GitHub's.
    let mut seed = [0u8; 32];
    token_core::rand::TryRng::try_fill_bytes(&mut token_core::rand::rngs::SysRng, &mut seed)
        .unwrap();
    let signing = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let list = json!({"public_keys": [{"key_identifier": "gh-1", "key": pem, "is_current": true}]});
    let keys = knowmind_server::secret_scanning::GithubKeys::from_json(&list.to_string()).unwrap();
    let metrics = Arc::new(Metrics::default());
    s.app = router(
        AppState {
            store: s.store.clone(),
            guard: Guard::with_options(s.store.clone(), None, Some(metrics.clone())),
            notes: Notes::open(s.store.db().clone()).await.unwrap(),
            metrics,
            public_url: None,
            github_keys: Some(Arc::new(keys)),
        },
        std::time::Duration::from_secs(30),
    )
    .layer(MockConnectInfo(SocketAddr::from(PEER)));
    let (id, live) = create(&s, json!({"name": "in-a-repo", "scopes": ["read"]})).await;
    let body = json!([
        {"token": live, "type": "knowmind_token", "url": "https://github.com/acme/app/blob/main/.env", "source": "content"},
        {"token": "kmt_not-a-token", "type": "knowmind_token", "url": "https://github.com/x/y", "source": "content"},
    ])
    .to_string();
    let post = |signature: Option<String>, body: String| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/secret-scanning/github")
            .header(header::CONTENT_TYPE, "application/json")
            .header("github-public-key-identifier", "gh-1");
        if let Some(signature) = signature {
            request = request.header("github-public-key-signature", signature);
        }
        request.body(Body::from(body)).unwrap()
    };
    let signed = |body: &str| {
        let signature: p256::ecdsa::Signature = signing.sign(body.as_bytes());
        <base64ct::Base64 as base64ct::Encoding>::encode_string(signature.to_der().as_bytes())
    };
    // Unsigned, or signed over another body: refused, nothing revoked.
    assert_eq!(
        s.send(post(None, body.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = s.send(post(Some(signed("[]")), body.clone())).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let record = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(record.json["state"], "active");
    // Signed: the live token is revoked with where it was found, and the answer labels each.
    let answer = s.send(post(Some(signed(&body)), body.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json[0]["label"], "true_positive", "{}", answer.text);
    assert_eq!(answer.json[0]["token_raw"], live.as_str());
    assert_eq!(answer.json[1]["label"], "false_positive");
    let record = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(record.json["state"], "revoked");
    assert!(
        record.json["revoked_reason"]
            .as_str()
            .unwrap()
            .contains("https://github.com/acme/app/blob/main/.env"),
        "{}",
        record.text
    );
    // Reported again, already revoked: still a true positive.
    let again = s.send(post(Some(signed(&body)), body.clone())).await;
    assert_eq!(again.json[0]["label"], "true_positive");
}

#[tokio::test]
async fn a_canary_made_over_the_api_is_refused_like_nothing_and_reaches_the_webhooks() {
    let s = server().await;
    let hook = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&s.admin),
            Some(json!({"url": "https://hooks.example.org/k"})),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    let created = s
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"name": "old-backup", "scopes": ["admin"], "canary": true, "expires_in": "1d"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["canary"], true);
    assert!(
        created.json["expires_at"].is_null(),
        "a canary never expires"
    );
    let canary = created.json["token"].as_str().unwrap();
    let used = s
        .call(Method::GET, "/v1/tokens/self", Some(canary), None)
        .await;
    let unknown = s
        .call(Method::GET, "/v1/tokens/self", Some("kmt_nonsense"), None)
        .await;
    assert_eq!(used.status, StatusCode::UNAUTHORIZED);
    assert_eq!(used.json, unknown.json, "the holder cannot tell");
    s.store.fan_out_webhooks().await.unwrap();
    let claimed = s.store.claim_deliveries(10).await.unwrap();
    assert!(
        claimed.iter().any(|d| d.event_type == "token.canary_used"),
        "{claimed:?}"
    );
    // A high-severity anomaly of the token and of the workspace.
    let id = created.json["id"].as_str().unwrap();
    for path in [
        format!("/v1/tokens/{id}/anomalies"),
        "/v1/anomalies".to_owned(),
    ] {
        let listed = s.call(Method::GET, &path, Some(&s.admin), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        assert_eq!(listed.json["items"][0]["kind"], "canary", "{}", listed.text);
        assert_eq!(listed.json["items"][0]["severity"], "high");
    }
    let own = s
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}/usage"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(own.json["anomalies"][0]["kind"], "canary", "{}", own.text);
}

#[tokio::test]
async fn an_incident_over_the_api_revokes_replaces_reports_and_records() {
    let s = server().await;
    let (id, leaked) = create(
        &s,
        json!({"name": "deploy-v3", "scopes": ["read", "write"]}),
    )
    .await;
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&leaked), None)
            .await
            .status,
        StatusCode::OK
    );
    s.store.usage_writer().flush().await.unwrap();
    let opened = s
        .call(
            Method::POST,
            "/v1/incidents",
            Some(&s.admin),
            Some(json!({"token_ids": [id], "replace": true, "summary": "pasted in a chat"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    assert_eq!(opened.headers["cache-control"], "no-store");
    let incident = opened.json["id"].as_str().unwrap().to_owned();
    let replacement = opened.json["replacements"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(opened.json["replacements"][0]["name"], "deploy-v4");
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&leaked), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&replacement), None)
            .await
            .status,
        StatusCode::OK
    );
    let report = s
        .call(
            Method::GET,
            &format!("/v1/incidents/{incident}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.json["status"], "open");
    assert!(
        !report.text.contains(&replacement),
        "the plaintext is shown once"
    );
    let md = s
        .call(
            Method::GET,
            &format!("/v1/incidents/{incident}?format=md"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(md.text.starts_with("# Security incident"), "{}", md.text);
    assert!(md.text.contains("pasted in a chat"));
    let amended = s
        .call(
            Method::POST,
            &format!("/v1/incidents/{incident}/entries"),
            Some(&s.admin),
            Some(json!({"status": "assessed", "dpo_contact": "dpo@example.org"})),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.text);
    assert_eq!(amended.json["status"], "assessed");
    let events = s
        .call(
            Method::GET,
            "/v1/audit/events?action=incident.opened",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(events.json["items"].as_array().unwrap().len(), 1);
    let missing = s
        .call(
            Method::GET,
            "/v1/incidents/inc_AAAAAAAAAAAAAAAA",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
