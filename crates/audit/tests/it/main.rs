//! audit's conformance story, run against SQLite always and PostgreSQL when
//! `KNOWMIND_TEST_DATABASE_URL` is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod anomalies;
mod chain;
mod events;
mod usage;

use audit::{Action, Actor, Context, NewEvent, Outcome};
use knowmind_db::testing::TestDb;
use knowmind_db::{Backend, Db};
use time::OffsetDateTime;
use time::macros::datetime;
use token_core::TokenId;

pub const T0: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

/// Every backend under test, migrated.
pub async fn backends() -> Vec<TestDb> {
    let all = knowmind_db::testing::databases().await.unwrap();
    for t in &all {
        audit::migrate(&t.db).await.unwrap();
    }
    all
}

/// A second pool on the same database: a second server instance.
pub async fn second_pool(t: &TestDb) -> Db {
    match t.db.backend() {
        Backend::Sqlite => {
            let path = t.dir.as_ref().unwrap().path().join("knowmind.db");
            Db::connect(&path.to_string_lossy(), &Default::default())
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let url = std::env::var(knowmind_db::testing::POSTGRES_URL_VAR).unwrap();
            knowmind_db::testing::postgres_schema(&url, t.db.schema().unwrap())
                .await
                .unwrap()
        }
    }
}

pub fn token_id(n: u8) -> TokenId {
    format!("{:0>16}", format!("tok{n}")).parse().unwrap()
}

pub fn event(workspace: &str, action: Action, target: &str) -> NewEvent {
    NewEvent {
        workspace_id: Some(workspace.to_owned()),
        action,
        target_kind: Some("token"),
        target_id: Some(target.to_owned()),
        outcome: Outcome::Success,
        details: serde_json::json!({ "note": format!("{action} {target}") }),
    }
}

pub fn member(id: &str) -> Context {
    Context {
        actor: Actor::Member(id.to_owned()),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("tests/1.0".into()),
        request_id: Some("req-1".into()),
    }
}

/// Appends `event` in a transaction of its own, at `at`.
pub async fn append(db: &Db, context: &Context, event: &NewEvent, at: OffsetDateTime) -> i64 {
    let mut tx = db.begin_write().await.unwrap();
    let seq = audit::Audit::new(db.clone())
        .append(&mut tx, context, event, at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    seq
}

/// Runs raw SQL (for tamper tests), ignoring the result type.
pub async fn raw(db: &Db, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    db.pool().execute(sql).await.map(|_| ())
}

/// Drops the append-only triggers, as an attacker with database access could.
pub async fn drop_triggers(db: &Db) {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;"
        }
        Backend::Postgres => "DROP TRIGGER audit_events_no_update_delete ON audit_events;",
    };
    raw(db, sql).await.unwrap();
}
