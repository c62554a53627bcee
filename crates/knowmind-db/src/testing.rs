//! Test fixtures shared by the knowmind crates (feature `test-util`): a fresh, empty database on
//! every backend under test, so one conformance story runs against each.
//!
//! PostgreSQL is under test when [`POSTGRES_URL_VAR`] is set. Where it must be (CI sets
//! [`REQUIRE_POSTGRES_VAR`]), a missing URL is an error rather than a silent skip; elsewhere a
//! skipped backend says so on standard error.

use crate::db::{Db, DbOptions};
use crate::error::Error;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "KNOWMIND_TEST_DATABASE_URL";

/// When set (to anything), tests that need PostgreSQL fail instead of skipping it.
pub const REQUIRE_POSTGRES_VAR: &str = "KNOWMIND_REQUIRE_POSTGRES";

/// A fresh database; the SQLite file is deleted when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// Which backend, for assertion messages.
    pub name: &'static str,
    /// The database, not yet migrated.
    pub db: Db,
    /// Where the SQLite files live.
    pub dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite database, and a fresh PostgreSQL schema when [`POSTGRES_URL_VAR`] is set.
///
/// # Errors
/// [`Error::Database`] if a database cannot be reached.
pub async fn databases() -> Result<Vec<TestDb>, Error> {
    let mut all = vec![sqlite().await?];
    if let Some(pg) = postgres().await? {
        all.push(pg);
    }
    Ok(all)
}

/// A fresh SQLite database in a temporary directory.
///
/// # Errors
/// [`Error::Database`].
pub async fn sqlite() -> Result<TestDb, Error> {
    let dir = tempfile::tempdir().map_err(|_| Error::BadUrl("no temporary directory"))?;
    let path = dir.path().join("knowmind.db");
    let db = Db::connect(&path.to_string_lossy(), &DbOptions::default()).await?;
    Ok(TestDb {
        name: "sqlite",
        db,
        dir: Some(dir),
    })
}

/// The PostgreSQL URL for tests, if PostgreSQL is under test.
///
/// # Panics
/// When [`REQUIRE_POSTGRES_VAR`] is set and [`POSTGRES_URL_VAR`] is not: a test that must reach
/// PostgreSQL must not pass without it.
#[allow(clippy::print_stderr)] // a skipped backend says so in the test output
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os(REQUIRE_POSTGRES_VAR).is_some() => {
            panic!(
                "{REQUIRE_POSTGRES_VAR} is set but {POSTGRES_URL_VAR} is not: PostgreSQL must be tested"
            )
        }
        _ => {
            eprintln!("PostgreSQL skipped: set {POSTGRES_URL_VAR} to test it too");
            None
        }
    }
}

/// A fresh PostgreSQL schema, if PostgreSQL is under test ([`postgres_url`]).
///
/// # Errors
/// [`Error::Database`] if the server cannot be reached.
pub async fn postgres() -> Result<Option<TestDb>, Error> {
    let Some(url) = postgres_url() else {
        return Ok(None);
    };
    Ok(Some(TestDb {
        name: "postgres",
        db: postgres_schema(&url, &fresh_schema_name()).await?,
        dir: None,
    }))
}

/// A connection to `schema` on the server at `url` (created if missing). Two calls with the same
/// schema see the same tables: two "server instances" sharing one database.
///
/// # Errors
/// [`Error::Database`].
pub async fn postgres_schema(url: &str, schema: &str) -> Result<Db, Error> {
    let options = DbOptions {
        schema: Some(schema.to_owned()),
        ..DbOptions::default()
    };
    Db::connect(url, &options).await
}

/// A schema name no other test uses: `kmt_test_` and 16 random characters.
pub fn fresh_schema_name() -> String {
    token_core::random_id(&mut rand_source(), "kmt_test_")
        .unwrap_or_else(|_| "kmt_test_fallback".to_owned())
        .to_lowercase()
}

fn rand_source() -> token_core::rand::rngs::SysRng {
    token_core::rand::rngs::SysRng
}
