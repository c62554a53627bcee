//! Connecting to SQLite or PostgreSQL, migrations and write transactions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::error::Error;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL, `synchronous=FULL`, foreign keys on).
    Sqlite,
    /// A PostgreSQL server, possibly shared by several instances.
    Postgres,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the write lock.
    pub busy_timeout: Duration,
    /// PostgreSQL: the schema to use (created if missing). `None` uses the server's default
    /// `search_path`. Letters, digits and `_` only.
    pub schema: Option<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

/// One connection (inside a transaction or not): what statements and `audit`'s `append` run on.
pub type Connection = sqlx::AnyConnection;

/// A write transaction: commits with `commit()`, rolls back when dropped.
pub type Tx = Transaction<'static, Any>;

/// A connection pool to the shared database.
///
/// `Debug` shows the backend only: a URL may carry a password.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: Arc<str>,
    schema: Option<Arc<str>>,
}

impl Db {
    /// Connects to `url`: `postgres://…`/`postgresql://…`, `sqlite:…`, or a plain file path
    /// (SQLite; the file is created if missing).
    ///
    /// # Errors
    /// [`Error::BadUrl`] for a URL this build cannot serve; [`Error::Database`] if connecting
    /// fails.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Db, Error> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(url)?;
        let schema = match &options.schema {
            Some(s) if backend == Backend::Postgres => Some(Arc::<str>::from(valid_schema(s)?)),
            _ => None,
        };
        if let (Backend::Postgres, Some(schema)) = (backend, &schema) {
            // The schema must exist before any connection selects it.
            let admin = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect(&url)
                .await?;
            admin
                .execute(
                    format!(
                        "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS {schema}"
                    )
                    .as_str(),
                )
                .await?;
            admin.close().await;
        }
        let busy_ms = options.busy_timeout.as_millis();
        let setup_schema = schema.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let schema = setup_schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            conn.execute(
                                format!(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                                     PRAGMA cache_size = -16384;"
                                )
                                .as_str(),
                            )
                            .await?;
                        }
                        Backend::Postgres => {
                            // `CREATE … IF NOT EXISTS` (the migrator's own table, say) would
                            // otherwise print a NOTICE on every start.
                            conn.execute("SET client_min_messages = warning").await?;
                            if let Some(schema) = schema {
                                conn.execute(format!("SET search_path TO {schema}").as_str())
                                    .await?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Db {
            pool,
            backend,
            url: url.into(),
            schema,
        })
    }

    /// Runs `sqlite` or `postgres` (whichever matches the backend). Each crate brings its own
    /// migrations with version numbers of its own range, so missing versions are ignored.
    ///
    /// # Errors
    /// [`Error::Database`] if a migration fails; it is rolled back.
    pub async fn migrate(&self, sqlite: &Migrator, postgres: &Migrator) -> Result<(), Error> {
        let chosen = match self.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        let migrator = Migrator {
            migrations: chosen.migrations.clone(),
            ignore_missing: true,
            locking: true,
            no_tx: false,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection URL, for a PostgreSQL listener. Contains credentials: never log it.
    pub fn url_secret(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL schema in use, if one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers never deadlock upgrading a read lock.
    ///
    /// # Errors
    /// [`Error::Database`] if no connection or lock can be had in time.
    pub async fn begin_write(&self) -> Result<Tx, Error> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn normalize_url(url: &str) -> Result<(Backend, String), Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if !cfg!(feature = "postgres") {
            return Err(Error::BadUrl(
                "this build has no PostgreSQL support (feature `postgres`)",
            ));
        }
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if !cfg!(feature = "sqlite") {
        return Err(Error::BadUrl(
            "this build has no SQLite support (feature `sqlite`)",
        ));
    }
    if url.is_empty() {
        return Err(Error::BadUrl("empty"));
    }
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Err(Error::BadUrl(
            "expected postgres://, sqlite: or a file path",
        ));
    }
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    // Create the file if it does not exist yet.
    let url = if url.contains("mode=") {
        url
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((Backend::Sqlite, url))
}

fn valid_schema(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(name)
    } else {
        Err(Error::BadUrl("schema names are letters, digits and _"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_understood() {
        assert_eq!(
            normalize_url("data/k.db").unwrap(),
            (Backend::Sqlite, "sqlite://data/k.db?mode=rwc".into())
        );
        assert_eq!(
            normalize_url("sqlite::memory:").unwrap().1,
            "sqlite::memory:?mode=rwc"
        );
        assert_eq!(
            normalize_url("sqlite://x.db?mode=ro").unwrap().1,
            "sqlite://x.db?mode=ro"
        );
        assert!(matches!(
            normalize_url("mysql://localhost/db"),
            Err(Error::BadUrl(_))
        ));
        assert!(matches!(normalize_url(""), Err(Error::BadUrl(_))));
    }

    #[test]
    fn schema_names_are_identifiers() {
        assert!(valid_schema("test_1").is_ok());
        for bad in ["", "1abc", "a;drop table x", "a b", "Ä"] {
            assert!(valid_schema(bad).is_err(), "{bad}");
        }
    }
}
