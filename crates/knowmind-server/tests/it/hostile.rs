use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;
use token_core::Scope;

use crate::*;

fn with_auth(values: &[&[u8]]) -> Request<Body> {
    let mut request = Request::builder().method(Method::GET).uri("/v1/notes");
    for v in values {
        request = request.header(
            header::AUTHORIZATION,
            header::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn malformed_authorization_headers_get_401_or_431_never_500() {
    let s = unlimited_server().await;
    let token = s.issue(&[Scope::Read]).await;
    let huge = format!("Bearer {}", "A".repeat(64 * 1024));
    let duplicate = format!("Bearer {token}");
    let cases: Vec<(Vec<&[u8]>, StatusCode)> = vec![
        (vec![b""], StatusCode::UNAUTHORIZED),
        (vec![b"Bearer"], StatusCode::UNAUTHORIZED),
        (vec![b"Bearer "], StatusCode::UNAUTHORIZED),
        (vec![b"Basic dXNlcjpwYXNz"], StatusCode::UNAUTHORIZED),
        (vec![b"Token kmt_x"], StatusCode::UNAUTHORIZED),
        (vec![b"Bearer \xff\xfe\xfd"], StatusCode::UNAUTHORIZED),
        (
            vec![huge.as_bytes()],
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            vec![duplicate.as_bytes(), duplicate.as_bytes()],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (values, expected) in cases {
        let reply = s.send(with_auth(&values)).await;
        assert_eq!(
            reply.status,
            expected,
            "{:?}",
            values
                .iter()
                .map(|v| String::from_utf8_lossy(&v[..v.len().min(20)]))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            reply.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
    }
    // The valid token still works after all that.
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_bodies_get_a_clear_4xx_never_500() {
    let s = server().await;
    let post = |body: Body, content_type: Option<&str>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/v1/tokens")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.admin));
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(body).unwrap()
    };
    let json_ct = Some("application/json");
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post(Body::from("{"), json_ct),
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        (
            post(Body::from("not json"), json_ct),
            StatusCode::BAD_REQUEST,
            "expected",
        ),
        (
            post(Body::from(""), json_ct),
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        (
            post(Body::from(vec![0xff, 0xfe, b'{']), json_ct),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            post(Body::from(r#"{"name":"x","scopes":["read"]}"#), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            post(Body::from(r#"{"name":"x","scopes":"read"}"#), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            post(Body::from(r#"{"name":"x","scopes":["root"]}"#), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "root",
        ),
        (
            post(
                Body::from(r#"{"name":"x","scopes":["read"],"admin":true}"#),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            post(Body::from(r#"{"name":42,"scopes":["read"]}"#), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            post(
                Body::from(r#"{"name":"x","scopes":["read"],"expires_in":"soon"}"#),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duration",
        ),
        (
            post(
                Body::from(
                    r#"{"name":"x","scopes":["read"],"expires_in":"1d","expires_at":"2030-01-01T00:00:00Z"}"#,
                ),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not both",
        ),
        (
            post(
                Body::from(r#"{"name":"x","scopes":["read"],"expires_at":"2020-01-01T00:00:00Z"}"#),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "future",
        ),
        (
            post(
                Body::from(format!(
                    r#"{{"name":"{}","scopes":["read"]}}"#,
                    "n".repeat(10_240)
                )),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at most 100",
        ),
        (
            post(
                Body::from(r#"{"name":"bell\u0007","scopes":["read"]}"#),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "control",
        ),
        (
            post(Body::from(r#"{"name":"x","scopes":[]}"#), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scope",
        ),
        (
            post(Body::from(vec![b' '; 300 * 1024]), json_ct),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (request, expected, needle) in cases {
        let reply = s.send(request).await;
        assert_eq!(reply.status, expected, "{}", reply.text);
        assert!(
            reply.json["detail"].as_str().unwrap_or("").contains(needle),
            "{expected}: {}",
            reply.text
        );
    }
    let rotate = s
        .call(
            Method::POST,
            "/v1/tokens/self/rotate",
            Some(&s.admin),
            Some(json!({"grace_period": "forever"})),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.call(Method::GET, "/v1/nothing-here", None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let wrong_method = s
        .call(Method::PUT, "/v1/tokens", Some(&s.admin), None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn costly_failures_limit_an_address_but_never_a_token_it_already_proved() {
    let s = server().await;
    let token = s.issue(&[Scope::Read]).await; // cached when issued
    let wrong = token_core::checksummed(&format!("{}{}", &token[4..20], "B".repeat(32)));
    // Requests without a token, or with garbage that fails the checksum, cost nothing: not
    // counted, however many.
    for _ in 0..50 {
        assert_eq!(
            s.call(Method::GET, "/v1/notes", None, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            s.call(Method::GET, "/v1/notes", Some("kmt_garbage"), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Wrong secrets cost scrypt: 20 are allowed a minute.
    for _ in 0..20 {
        assert_eq!(
            s.call(Method::GET, "/v1/notes", Some(&wrong), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = s.call(Method::GET, "/v1/notes", Some(&wrong), None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json["code"], "RATE_LIMITED");
    let retry: u64 = limited
        .headers
        .get(header::RETRY_AFTER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&retry));
    // A valid token the server has already verified is served to that address all the same:
    // a shared NAT flooded with garbage keeps working for everyone with a good token.
    assert_eq!(
        s.call(Method::GET, "/v1/notes", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    // A token this process has never seen needs a lookup and scrypt: that waits.
    let second = Store::with_db(s.store.db().clone(), store_options(&s.clock))
        .await
        .unwrap();
    let new = NewToken {
        owner_id: s.owner.clone(),
        name: "elsewhere".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (_, uncached) = second
        .create_token(&s.ws, new, &Context::system())
        .await
        .unwrap();
    let waits = s
        .call(
            Method::GET,
            "/v1/notes",
            Some(uncached.expose_secret()),
            None,
        )
        .await;
    assert_eq!(waits.status, StatusCode::TOO_MANY_REQUESTS);
    // The window passes (on the store's monotonic clock): the address may try again.
    s.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        s.call(
            Method::GET,
            "/v1/notes",
            Some(uncached.expose_secret()),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn raw_protocol_garbage_never_crashes_the_server() {
    let s = server().await;
    let token = s.issue(&[Scope::Read]).await;
    let addr = spawn(s.app.clone()).await;
    let big = format!(
        "GET /v1/notes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        "A".repeat(64 * 1024)
    );
    let cases: Vec<Vec<u8>> = vec![
        b"GET /v1/notes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer kmt_\0\0\0\r\nconnection: close\r\n\r\n".to_vec(),
        b"GET /v1/notes HTTP/1.1\r\nhost: x\r\nthis is not a header\r\nconnection: close\r\n\r\n".to_vec(),
        b"BREW /v1/notes HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
        b"POST /v1/notes HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999\r\nconnection: close\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n".to_vec(),
        big.into_bytes(),
    ];
    for raw in cases {
        let (status, text) = raw_http(addr, &raw).await;
        assert!(
            status == 0 || (400..500).contains(&status),
            "got {status}: {}",
            &text[..text.len().min(200)]
        );
    }
    let (status, _, _) = http(addr, "GET", "/v1/notes", Some(&token), None).await;
    assert_eq!(status, 200, "still serving");
}
