use std::time::{Duration, Instant};

use token_core::Scope;
use token_store::SystemClock;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_instance_is_refused_by_the_other() {
    let options = || StoreOptions {
        hash_params: HashParams::insecure_for_tests(),
        clock: Arc::new(SystemClock),
        ..StoreOptions::default()
    };
    let Some(TwoInstances {
        a: store_a,
        b: store_b,
        ws,
        owner,
        _pg,
    }) = two_instances("shared", options).await
    else {
        return;
    };
    let new = |scopes: Scopes| NewToken {
        owner_id: owner.id.clone(),
        name: "t".into(),
        description: String::new(),
        client: String::new(),
        scopes,
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (_, admin) = store_a
        .create_token(&ws.id, new(Scope::Admin.into()), &Context::system())
        .await
        .unwrap();
    let (reader_record, reader) = store_a
        .create_token(&ws.id, new(Scope::Read.into()), &Context::system())
        .await
        .unwrap();
    store_b.revocations_listened().await;
    let a = spawn(app_for(store_a).await).await;
    let b = spawn(app_for(store_b).await).await;
    let (status, _, _) = http(b, "GET", "/v1/notes", Some(reader.expose_secret()), None).await;
    assert_eq!(status, 200, "B accepts (and caches) the token");

    let (status, _, _) = http(
        a,
        "POST",
        &format!("/v1/tokens/{}/revoke", reader_record.id),
        Some(admin.expose_secret()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let revoked_at = Instant::now();
    let mut delay = None;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        let (status, _, _) = http(b, "GET", "/v1/notes", Some(reader.expose_secret()), None).await;
        if status == 401 {
            delay = Some(revoked_at.elapsed());
            break;
        }
    }
    let delay = delay.expect("instance B kept accepting a revoked token");
    println!("revocation on A refused by B after {delay:?} (bound: 1 s)");
    assert!(
        delay < Duration::from_secs(1) + Duration::from_millis(500),
        "{delay:?}"
    );
}

/// Two server instances on one PostgreSQL: an admin rotates a token on one while another revokes
/// it on the other, 100 times. Once both have answered and the staleness bound has passed, no
/// token of any of those families works on either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_revoke_racing_on_two_instances_leave_no_live_successor() {
    let options = || StoreOptions {
        hash_params: HashParams::insecure_for_tests(),
        clock: Arc::new(SystemClock),
        failures_per_minute: 0,
        ..StoreOptions::default()
    };
    let Some(TwoInstances {
        a: store_a,
        b: store_b,
        ws,
        owner,
        _pg,
    }) = two_instances("race", options).await
    else {
        return;
    };
    let admin_token = NewToken {
        owner_id: owner.id.clone(),
        name: "admin".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Admin.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (_, admin) = store_a
        .create_token(&ws.id, admin_token, &Context::system())
        .await
        .unwrap();
    let admin = admin.expose_secret().to_owned();
    let a = spawn(app_for(store_a).await).await;
    let b = spawn(app_for(store_b).await).await;
    let mut presented = Vec::new();
    let (mut rotated_first, mut revoked_first) = (0, 0);
    for trial in 0..100 {
        let (status, created, _) = http(
            a,
            "POST",
            "/v1/tokens",
            Some(&admin),
            Some(&serde_json::json!({"name": format!("race-{trial}"), "scopes": ["read"]})),
        )
        .await;
        assert_eq!(status, 201);
        let id = created["id"].as_str().unwrap().to_owned();
        let token = created["token"].as_str().unwrap().to_owned();
        for instance in [a, b] {
            let (status, _, _) = http(instance, "GET", "/v1/notes", Some(&token), None).await;
            assert_eq!(status, 200, "both instances know the token");
        }
        let rotate_path = format!("/v1/tokens/{id}/rotate");
        let revoke_path = format!("/v1/tokens/{id}/revoke");
        let body = serde_json::json!({"grace_period": "1h"});
        let (rotated, revoked) = tokio::join!(
            http(a, "POST", &rotate_path, Some(&admin), Some(&body)),
            http(b, "POST", &revoke_path, Some(&admin), None),
        );
        assert_eq!(revoked.0, 200, "{}", revoked.1);
        match rotated.0 {
            201 => {
                rotated_first += 1;
                let successor = rotated.1["id"].as_str().unwrap();
                let named: Vec<&str> = revoked.1["revoked"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert!(named.contains(&successor), "trial {trial}: {named:?}");
                presented.push(rotated.1["token"].as_str().unwrap().to_owned());
            }
            409 => revoked_first += 1,
            other => panic!("trial {trial}: rotation answered {other}: {}", rotated.1),
        }
        presented.push(token);
    }
    println!("rotation first {rotated_first}, revocation first {revoked_first}");
    tokio::time::sleep(Duration::from_millis(1_200)).await; // the staleness bound (1 s)
    for token in &presented {
        for instance in [a, b] {
            let (status, _, _) = http(instance, "GET", "/v1/notes", Some(token), None).await;
            assert_eq!(status, 401, "a family member still works");
        }
    }
}

/// An incident opened on one instance refuses the token on the other within the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_opened_on_one_instance_is_refused_by_the_other() {
    let options = || StoreOptions {
        hash_params: HashParams::insecure_for_tests(),
        clock: Arc::new(SystemClock),
        ..StoreOptions::default()
    };
    let Some(TwoInstances {
        a,
        b,
        ws,
        owner,
        _pg,
    }) = two_instances("incident", options).await
    else {
        return;
    };
    let new = NewToken {
        owner_id: owner.id.clone(),
        name: "leaky".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (record, token) = a
        .create_token(&ws.id, new, &Context::system())
        .await
        .unwrap();
    let call = token_store::Call::default();
    // B knows (caches) the token.
    b.verify(token.expose_secret(), Scope::Read.into(), &call)
        .await
        .unwrap();
    let open = knowmind_api::OpenIncident {
        token_ids: vec![record.id],
        ..Default::default()
    };
    a.open_incident(&ws.id, open, &Context::system())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        if b.verify(token.expose_secret(), Scope::Read.into(), &call)
            .await
            .is_err()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B still accepts the token a second after the incident"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.close().await;
    b.close().await;
}
