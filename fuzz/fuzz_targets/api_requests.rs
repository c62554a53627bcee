//! The token routes of the real router, with fuzzed bodies, queries and Authorization headers:
//! every answer is below 500 (a client's mistake is never a server error), and an error is a
//! problem document with a `code` and a `detail`.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use knowmind_axum::Guard;
use knowmind_server::api::{AppState, router};
use knowmind_server::metrics::Metrics;
use knowmind_server::notes::Notes;
use libfuzzer_sys::fuzz_target;
use token_core::{HashParams, Scope};
use token_store::{NewMember, NewToken, Role, Store, StoreOptions};
use tower::ServiceExt;

struct Target {
    runtime: tokio::runtime::Runtime,
    app: Router,
    admin: String,
    victim: String,
    _dir: tempfile_dir::Dir,
}

/// A temporary directory removed at exit (the target lives for the whole run).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("knowmind-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (app, admin, victim) = runtime.block_on(async {
            let options = StoreOptions {
                hash_params: HashParams::insecure_for_tests(),
                failures_per_minute: 0,
                reported_failures_per_minute: 0,
                ..StoreOptions::default()
            };
            let store = Store::open(&dir.join("fuzz.db").to_string_lossy(), options)
                .await
                .unwrap();
            let owner = NewMember {
                name: "Fuzz".into(),
                email: "fuzz@example.org".into(),
                role: Role::Owner,
            };
            let context = audit::Context::system();
            let (ws, owner) = store
                .create_workspace("fuzz", owner, &context)
                .await
                .unwrap();
            let token = |name: &str, scope: Scope| NewToken {
                owner_id: owner.id.clone(),
                name: name.into(),
                description: String::new(),
                client: String::new(),
                scopes: scope.into(),
                expires_at: None,
                allowed_networks: Default::default(),
            };
            let (_, admin) = store
                .create_token(&ws.id, token("admin", Scope::Admin), &context)
                .await
                .unwrap();
            let (victim, _) = store
                .create_token(&ws.id, token("victim", Scope::Read), &context)
                .await
                .unwrap();
            let metrics = Arc::new(Metrics::default());
            let state = AppState {
                store: store.clone(),
                guard: Guard::with_options(store.clone(), None, Some(metrics.clone())),
                notes: Notes::open(store.db().clone()).await.unwrap(),
                metrics,
                public_url: None,
                github_keys: None,
            };
            let app = router(state, std::time::Duration::from_secs(30));
            (app, admin.expose_secret().to_owned(), victim.id.to_string())
        });
        Target {
            runtime,
            app,
            admin,
            victim,
            _dir: tempfile_dir::Dir(dir),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let t = target();
    // Never the admin token's own self routes: the run must keep its admin token.
    let (method, path) = match selector % 8 {
        0 => ("POST", "/v1/tokens".to_owned()),
        1 => ("PATCH", format!("/v1/tokens/{}", t.victim)),
        2 => ("POST", format!("/v1/tokens/{}/rotate", t.victim)),
        3 => ("POST", "/v1/tokens/verify".to_owned()),
        4 => ("PUT", "/v1/workspace/policy".to_owned()),
        5 => ("GET", "/v1/tokens".to_owned()),
        6 => ("POST", format!("/v1/tokens/{}/revoke", t.victim)),
        _ => ("GET", "/v1/audit/events".to_owned()),
    };
    // Bit 3: the rest is an Authorization header; bit 4: the rest is a query string;
    // otherwise it is the JSON body, sent with the admin token.
    let mut request = Request::builder().method(method);
    let body = if selector & 0x08 != 0 {
        let Ok(value) = axum::http::HeaderValue::from_bytes(rest) else {
            return;
        };
        request = request.uri(&path).header(header::AUTHORIZATION, value);
        Body::empty()
    } else if selector & 0x10 != 0 {
        let Ok(query) = std::str::from_utf8(rest) else {
            return;
        };
        let Ok(uri) = format!("{path}?{query}").parse::<axum::http::Uri>() else {
            return;
        };
        request = request
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", t.admin));
        Body::empty()
    } else {
        request = request
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Bearer {}", t.admin))
            .header(header::CONTENT_TYPE, "application/json");
        Body::from(rest.to_vec())
    };
    let Ok(request) = request.body(body) else {
        return;
    };
    let (status, body) = t.runtime.block_on(async {
        let response = t.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    assert!(
        status.as_u16() < 500,
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() {
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            problem["code"].is_string() && problem["detail"].is_string(),
            "{problem}"
        );
    }
});
