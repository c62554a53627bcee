//! token-store's conformance story, run against SQLite always and PostgreSQL when
//! `KNOWMIND_TEST_DATABASE_URL` is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod accounts;
mod atomicity;
mod family;
mod handover;
mod incidents;
mod leaks;
mod lifecycle;
mod oauth;
mod policy;
mod rotation;
mod validation;
mod verification;
mod webhooks;

use std::sync::Arc;

use audit::Context;
use knowmind_db::testing::TestDb;
use knowmind_db::{Backend, Db};
use token_core::{ManualClock, Scope, Scopes, Token};
pub use token_store::Revocation;
use token_store::testing::Fixture;
pub use token_store::testing::{T0, options};
use token_store::{Call, NewToken, Store, StoreOptions, TokenRecord};

/// A fresh store on one backend, with a workspace "acme" owned by Ada.
pub struct Env {
    pub name: &'static str,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub ws: String,
    pub ada: String,
    pub test_db: TestDb,
    /// The audit key the store was opened with: every instance of one deployment shares it.
    pub audit_key: Option<Arc<audit::AuditKey>>,
}

pub async fn envs() -> Vec<Env> {
    let mut all = Vec::new();
    for test_db in knowmind_db::testing::databases().await.unwrap() {
        let mut audit_key = None;
        let f = Fixture::on(test_db.db.clone(), |o| {
            audit_key = o.audit_key.clone();
            o
        })
        .await
        .unwrap();
        all.push(Env {
            audit_key,
            name: test_db.name,
            store: f.store,
            clock: f.clock,
            ws: f.workspace,
            ada: f.owner,
            test_db,
        });
    }
    all
}

impl Env {
    pub fn ctx(&self) -> Context {
        Context::of(audit::Actor::Member(self.ada.clone()))
    }

    pub fn new_token(&self, name: &str, scopes: &[Scope]) -> NewToken {
        NewToken {
            owner_id: self.ada.clone(),
            name: name.into(),
            description: format!("{name} token"),
            client: "laptop".into(),
            scopes: Scopes::of(scopes),
            expires_at: None,
            allowed_networks: Default::default(),
        }
    }

    pub async fn create(&self, name: &str, scopes: &[Scope]) -> (TokenRecord, Token) {
        self.store
            .create_token(&self.ws, self.new_token(name, scopes), &self.ctx())
            .await
            .unwrap()
    }

    /// The outcomes of a token's recorded uses, newest first (after flushing the writer).
    pub async fn outcomes(&self, id: token_core::TokenId) -> Vec<audit::UsageOutcome> {
        self.store.usage_writer().flush().await.unwrap();
        self.store
            .audit()
            .usage(id, None, 100)
            .await
            .unwrap()
            .items
            .iter()
            .map(|u| u.record.outcome)
            .collect()
    }

    /// Adds a member with `role` to the workspace; returns its id.
    pub async fn add_member(&self, role: token_store::Role) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let member = token_store::NewMember {
            name: format!("{role} {n}"),
            email: format!("{role}-{n}@example.org"),
            role,
        };
        self.store
            .add_member(&self.ws, member, &self.ctx())
            .await
            .unwrap()
            .id
    }

    /// Options for another instance of this deployment: the same clock and audit key.
    pub fn instance_options(&self) -> StoreOptions {
        StoreOptions {
            audit_key: self.audit_key.clone(),
            ..options(&self.clock)
        }
    }

    /// Another store instance on the same database: a second server.
    pub async fn second_instance(&self, options: StoreOptions) -> Store {
        let db = match self.test_db.db.backend() {
            Backend::Sqlite => {
                let path = self
                    .test_db
                    .dir
                    .as_ref()
                    .unwrap()
                    .path()
                    .join("knowmind.db");
                Db::connect(&path.to_string_lossy(), &Default::default())
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let url = std::env::var(knowmind_db::testing::POSTGRES_URL_VAR).unwrap();
                knowmind_db::testing::postgres_schema(&url, self.test_db.db.schema().unwrap())
                    .await
                    .unwrap()
            }
        };
        Store::with_db(db, options).await.unwrap()
    }

    /// Everything the database holds, as bytes: the SQLite files, or a `pg_dump` of the
    /// schema's data.
    pub async fn database_bytes(&self) -> Vec<u8> {
        self.store.usage_writer().flush().await.unwrap();
        match self.store.db().backend() {
            Backend::Sqlite => {
                let dir = self.test_db.dir.as_ref().unwrap().path();
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(dir).unwrap() {
                    bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                bytes
            }
            Backend::Postgres => {
                let url = std::env::var(knowmind_db::testing::POSTGRES_URL_VAR).unwrap();
                let schema = self.test_db.db.schema().unwrap();
                let dump = std::process::Command::new("pg_dump")
                    .args(["--data-only", "--schema", schema, &url])
                    .output()
                    .unwrap();
                assert!(
                    dump.status.success(),
                    "{}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                dump.stdout
            }
        }
    }

    /// How many audit events there are.
    pub async fn events(&self) -> i64 {
        self.store.audit().checkpoint().await.unwrap().seq
    }
}

/// Whether `haystack` holds `needle`'s bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub fn call(route: &'static str) -> Call {
    Call {
        client_ip: Some("203.0.113.9".parse().unwrap()),
        method: "GET".into(),
        route: route.into(),
        user_agent: Some("it/1".into()),
        ..Call::default()
    }
}
