//! knowmind-server: router tests without sockets, hostile input, end to end over a real socket
//! with the real binary, and two instances on one PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub,
    clippy::print_stdout
)]

mod binary;
mod browser;
mod contract;
mod crash;
mod dashboard;
mod e2e;
mod embedding;
mod family;
mod hardening;
mod hostile;
mod instances;
mod oauth;
mod openapi;
mod routes;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use audit::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use knowmind_axum::Guard;
use knowmind_server::api::{AppState, router};
use knowmind_server::metrics::Metrics;
use knowmind_server::notes::Notes;
use serde_json::Value;
use time::macros::datetime;
use token_core::{HashParams, ManualClock, Scope, Scopes};
use token_store::testing::Fixture;
use token_store::{NewMember, NewToken, Revocation, Role, Store, StoreOptions};
use tower::ServiceExt;

pub const PEER: ([u8; 4], u16) = ([203, 0, 113, 5], 40_000);

pub struct Server {
    pub app: Router,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub ws: String,
    pub owner: String,
    pub admin: String,
    pub fixture: Fixture,
    pub _db: knowmind_db::testing::TestDb,
}

pub async fn app_for(store: Store) -> Router {
    let metrics = Arc::new(Metrics::default());
    let notes = Notes::open(store.db().clone()).await.unwrap();
    let guard = Guard::with_options(store.clone(), None, Some(metrics.clone()));
    router(
        AppState {
            store,
            guard,
            notes,
            metrics,
            public_url: None,
            github_keys: None,
        },
        std::time::Duration::from_secs(30),
    )
    .layer(MockConnectInfo(SocketAddr::from(PEER)))
}

pub use token_store::testing::options as store_options;

/// Two instances of one deployment on one fresh PostgreSQL schema, each opened with
/// `options()`, and a workspace `name` owned by Ada; `None` (the test skips) without PostgreSQL.
pub struct TwoInstances {
    pub a: Store,
    pub b: Store,
    pub ws: token_store::Workspace,
    pub owner: token_store::Member,
    pub _pg: knowmind_db::testing::TestDb,
}

pub async fn two_instances(name: &str, options: impl Fn() -> StoreOptions) -> Option<TwoInstances> {
    let Some(pg) = knowmind_db::testing::postgres().await.unwrap() else {
        println!("skipped: KNOWMIND_TEST_DATABASE_URL is not set");
        return None;
    };
    let schema = pg.db.schema().unwrap().to_owned();
    let url = std::env::var(knowmind_db::testing::POSTGRES_URL_VAR).unwrap();
    let a = Store::with_db(pg.db.clone(), options()).await.unwrap();
    let b = Store::with_db(
        knowmind_db::testing::postgres_schema(&url, &schema)
            .await
            .unwrap(),
        options(),
    )
    .await
    .unwrap();
    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (ws, owner) = a
        .create_workspace(name, owner, &Context::system())
        .await
        .unwrap();
    Some(TwoInstances {
        a,
        b,
        ws,
        owner,
        _pg: pg,
    })
}

pub async fn server_on(test_db: knowmind_db::testing::TestDb) -> Server {
    server_with(test_db, |options| options).await
}

/// A server whose store options `adjust` changes (failure limits, say).
pub async fn server_with(
    test_db: knowmind_db::testing::TestDb,
    adjust: impl FnOnce(StoreOptions) -> StoreOptions,
) -> Server {
    let fixture = Fixture::on(test_db.db.clone(), adjust).await.unwrap();
    let mut server = Server {
        app: app_for(fixture.store.clone()).await,
        store: fixture.store.clone(),
        clock: fixture.clock.clone(),
        ws: fixture.workspace.clone(),
        owner: fixture.owner.clone(),
        admin: String::new(),
        fixture,
        _db: test_db,
    };
    server.admin = server.issue(&[Scope::Admin]).await;
    server
}

pub async fn server() -> Server {
    server_on(knowmind_db::testing::sqlite().await.unwrap()).await
}

/// A server without failure limits, for tests that fail on purpose many times from one address.
pub async fn unlimited_server() -> Server {
    server_with(knowmind_db::testing::sqlite().await.unwrap(), |options| {
        StoreOptions {
            failures_per_minute: 0,
            ..options
        }
    })
    .await
}

impl Server {
    /// A token with `scopes`, issued directly through the store.
    pub async fn issue(&self, scopes: &[Scope]) -> String {
        self.issue_with(scopes, None).await
    }

    pub async fn issue_with(
        &self,
        scopes: &[Scope],
        expires_at: Option<time::OffsetDateTime>,
    ) -> String {
        let name = format!("fixture-{}", Scopes::of(scopes));
        let (_, token) = self
            .fixture
            .issue_expiring(&name, scopes, expires_at)
            .await
            .unwrap();
        token.expose_secret().to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

/// Serves `app` on a real socket on 127.0.0.1.
pub async fn spawn(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// A minimal HTTP/1.1 client over a real socket: sends `raw` as is and reads the reply to EOF.
/// Status 0 when there is no reply (the connection was refused, reset or closed).
pub async fn raw_http(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    if stream.write_all(raw).await.is_err() {
        return (0, String::new());
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A well-formed request over a real socket.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, String) {
    http_with(addr, method, path, token, body, &[]).await
}

/// [`http`] with more request headers.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\nuser-agent: e2e/1.0\r\n"
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(token) = token {
        raw.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() {
        raw.push_str("content-type: application/json\r\n");
    }
    raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let (status, text) = raw_http(addr, raw.as_bytes()).await;
    let body_text = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(&body_text).unwrap_or(Value::Null),
        text,
    )
}
