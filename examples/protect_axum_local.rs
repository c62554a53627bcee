//! Protect your own axum service's routes with knowmind tokens, verifying in process against the
//! knowmind database (here a SQLite file; a `postgres://` URL shared with knowmind-server works the
//! same). Calls are recorded as usage of the token, with your routes and your clients' addresses.
//!
//! `cargo run -p knowmind-examples --example protect_axum_local`
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::net::SocketAddr;

use audit::Context;
use axum::Router;
use axum::routing::get;
use knowmind_axum::{Authenticated, Guard, RequireScope};
use token_core::Scope;
use token_store::{NewMember, NewToken, Role, Store, StoreOptions};

async fn list_things(Authenticated(who): Authenticated) -> String {
    format!("things for token {}", who.token_id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("knowmind.db").to_string_lossy(),
        StoreOptions::default(),
    )
    .await?;

    // Your service: two routes, each needing a scope.
    let guard = Guard::new(store.clone());
    let app = Router::new()
        .route("/things", get(list_things))
        .route_layer(RequireScope::new(guard.clone(), Scope::Read))
        .merge(
            Router::new()
                .route("/things/settings", get(list_things))
                .route_layer(RequireScope::new(guard, Scope::Admin)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // A token for a client (normally issued by knowmind-server or the knowmind CLI).
    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (workspace, ada) = store
        .create_workspace("acme", owner, &Context::system())
        .await?;
    let new = NewToken {
        owner_id: ada.id,
        name: "client".into(),
        description: String::new(),
        client: "example".into(),
        scopes: Scope::Read.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    };
    let (record, token) = store
        .create_token(&workspace.id, new, &Context::system())
        .await?;

    let client = reqwest::Client::new();
    for path in ["/things", "/things/settings"] {
        let response = client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(token.expose_secret())
            .send()
            .await?;
        println!(
            "GET {path} -> {} {}",
            response.status(),
            response.text().await?
        );
    }
    let anonymous = client.get(format!("http://{addr}/things")).send().await?;
    println!("GET /things without a token -> {}", anonymous.status());

    store.usage_writer().flush().await?;
    for route in store.audit().usage_summary(record.id).await?.routes {
        println!("usage: {} {} x{}", route.method, route.route, route.count);
    }
    Ok(())
}
