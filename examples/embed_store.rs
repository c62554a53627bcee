//! Embed knowmind's token store in your own service: issue, verify, rotate, revoke, and read the
//! audit log and usage records — on a SQLite file (a `postgres://` URL works the same).
//!
//! `cargo run -p knowmind-examples --example embed_store`
#![allow(clippy::print_stdout)]

use std::error::Error;

use audit::{Actor, Context};
use time::Duration;
use token_core::{Scope, Scopes};
use token_store::{Call, NewMember, NewToken, Revocation, Role, Rotation, Store, StoreOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let url = dir.path().join("knowmind.db");
    let store = Store::open(&url.to_string_lossy(), StoreOptions::default()).await?;

    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (workspace, ada) = store
        .create_workspace("acme", owner, &Context::system())
        .await?;
    let as_ada = Context::of(Actor::Member(ada.id.clone()));

    let new = NewToken {
        owner_id: ada.id.clone(),
        name: "ci-deploy".into(),
        description: "deploys from CI".into(),
        client: "github-actions".into(),
        scopes: Scopes::of(&[Scope::Read, Scope::Write]),
        expires_at: Some(store_now() + Duration::days(90)),
        allowed_networks: Default::default(),
    };
    let (record, token) = store.create_token(&workspace.id, new, &as_ada).await?;
    println!(
        "issued {} ({}), expires {:?}",
        token.masked(),
        record.name,
        record.expires_at
    );

    // In a request handler: verify for the scope the route needs, then report the status.
    let call = Call {
        client_ip: Some("203.0.113.7".parse()?),
        method: "POST".into(),
        route: "/v1/notes".into(),
        user_agent: Some("deploy-bot/2.1".into()),
        request_id: Some("req-1".into()),
        ..Call::default()
    };
    let verified = store
        .verify(token.expose_secret(), Scope::Write.into(), &call)
        .await?;
    println!(
        "verified: token {} of workspace {}",
        verified.principal().token_id,
        verified.principal().workspace_id
    );
    verified.finish(201);
    match store
        .verify(token.expose_secret(), Scope::Admin.into(), &call)
        .await
    {
        Err(e) => println!("admin route: {e}"),
        Ok(_) => return Err("a read/write token must not pass an admin route".into()),
    }

    // Rotate with a one-hour grace period, then revoke the new token: revocation takes the
    // family, so the old token (still in its grace period) dies with it.
    let rotation = Rotation {
        grace: Some(Duration::hours(1)),
        expires_at: None,
        allowed_networks: None,
        handover: None,
    };
    let (rotated, new_token) = store
        .rotate_token(&workspace.id, record.id, rotation, &as_ada)
        .await?;
    println!(
        "rotated to {} (the old one keeps working for an hour)",
        new_token.masked()
    );
    let revoked = store
        .revoke_token(
            &workspace.id,
            rotated.id,
            &Revocation::family("example finished"),
            &as_ada,
        )
        .await?;
    println!("revoked {} token(s) of the family", revoked.revoked.len());
    match store
        .verify(new_token.expose_secret(), Scope::Read.into(), &call)
        .await
    {
        Err(e) => println!("revoked token: {e}"),
        Ok(_) => return Err("a revoked token must be refused".into()),
    }

    // The security log: every change, hash-chained; and who used the token, from where.
    store.usage_writer().flush().await?;
    let report = store.audit().verify(&[]).await?;
    println!(
        "audit chain: {} events, intact: {}, head {}",
        report.events,
        report.is_intact(),
        report.head.hash
    );
    let events = store.audit().events(&Default::default(), None, 10).await?;
    for e in events.items.iter().rev() {
        println!(
            "  #{} {} {} by {}:{}",
            e.seq,
            e.action,
            e.target_id.as_deref().unwrap_or("-"),
            e.actor_kind,
            e.actor_id.as_deref().unwrap_or("-")
        );
    }
    let usage = store.audit().usage_summary(record.id).await?;
    for ip in &usage.ips {
        println!(
            "  {} call(s) from {}",
            ip.count,
            ip.ip.as_deref().unwrap_or("?")
        );
    }
    store.close().await;
    Ok(())
}

/// The example's one reading of the clock (libraries take `now` from their `Clock`).
fn store_now() -> time::OffsetDateTime {
    use token_core::Clock;
    token_store::SystemClock.now()
}
