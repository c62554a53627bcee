//! Protect your own axum service's routes with knowmind tokens when it cannot reach the knowmind
//! database: it asks a knowmind server (`POST /v1/tokens/verify`, with an `introspect` token) and
//! caches valid answers for a few seconds. For the example the knowmind server runs in the same
//! process; in production it is `knowmind-server serve` elsewhere.
//!
//! `cargo run -p knowmind-examples --example protect_axum_remote`
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use audit::Context;
use axum::Router;
use axum::routing::get;
use knowmind_axum::RemoteVerifier;
use knowmind_axum::{Authenticated, Guard, RequireScope};
use knowmind_server::api::{AppState, router};
use knowmind_server::metrics::Metrics;
use knowmind_server::notes::Notes;
use secrecy::SecretString;
use token_core::{Scope, Scopes};
use token_store::{NewMember, NewToken, Role, Store, StoreOptions};

async fn serve(app: Router) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. A knowmind server (in process here).
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("knowmind.db").to_string_lossy(),
        StoreOptions::default(),
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        store: store.clone(),
        guard: Guard::with_options(store.clone(), None, Some(metrics.clone())),
        notes: Notes::open(store.db().clone()).await?,
        metrics,
        public_url: None,
        github_keys: None,
    };
    let knowmind = serve(router(state, Duration::from_secs(30))).await?;

    // Tokens: one for the resource service to verify with, one for its client.
    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (workspace, ada) = store
        .create_workspace("acme", owner, &Context::system())
        .await?;
    let new = |name: &str, scopes: Scopes| NewToken {
        owner_id: ada.id.clone(),
        name: name.into(),
        description: String::new(),
        client: String::new(),
        scopes,
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (_, introspect) = store
        .create_token(
            &workspace.id,
            new("things-service", Scope::Introspect.into()),
            &Context::system(),
        )
        .await?;
    let (_, client_token) = store
        .create_token(
            &workspace.id,
            new("client", Scope::Read.into()),
            &Context::system(),
        )
        .await?;

    // 2. Your service, verifying through the knowmind server.
    let remote = RemoteVerifier::new(
        &format!("http://{knowmind}"),
        SecretString::from(introspect.expose_secret().to_owned()),
        Duration::from_secs(5),
    )?;
    let guard = Guard::remote(remote);
    let app = Router::new()
        .route(
            "/things",
            get(|Authenticated(who): Authenticated| async move {
                format!("things for token {}", who.token_id)
            }),
        )
        .route_layer(RequireScope::new(guard.clone(), Scope::Read))
        .merge(
            Router::new()
                .route("/things", axum::routing::post(|| async { "created" }))
                .route_layer(RequireScope::new(guard, Scope::Write)),
        );
    let service = serve(app).await?;

    // 3. A client calls your service.
    let client = reqwest::Client::new();
    let read = client
        .get(format!("http://{service}/things"))
        .bearer_auth(client_token.expose_secret())
        .send()
        .await?;
    println!("GET  /things -> {} {}", read.status(), read.text().await?);
    let write = client
        .post(format!("http://{service}/things"))
        .bearer_auth(client_token.expose_secret())
        .send()
        .await?;
    println!(
        "POST /things -> {} (the token has read only)",
        write.status()
    );
    let forged = client
        .get(format!("http://{service}/things"))
        .bearer_auth("kmt_forged")
        .send()
        .await?;
    println!("GET  /things with a forged token -> {}", forged.status());
    Ok(())
}
