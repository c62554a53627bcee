//! The database the knowmind libraries share: connecting to SQLite (one machine, the default) or
//! PostgreSQL (several instances sharing the load), running each crate's migrations, write
//! transactions, and the small helpers that let one SQL text serve both backends.
//!
//! Queries use sqlx's `Any` driver: fixed statements write placeholders `$1, $2, …`, which
//! PostgreSQL and sqlx's SQLite driver both accept; statements built at run time use [`Sql`].
//! Times are stored as UTC microseconds since the Unix epoch ([`to_micros`], [`from_micros`]).
//! This is the crate below `audit` and `token-store`; it knows nothing of tokens or events.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), knowmind_db::Error> {
//! use knowmind_db::{Db, DbOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::connect(dir.path().join("k.db").to_str().unwrap(), &DbOptions::default()).await?;
//! let mut tx = db.begin_write().await?;
//! sqlx::query("CREATE TABLE t (x BIGINT)").execute(&mut *tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

mod db;
mod error;
mod sql;
#[cfg(feature = "test-util")]
pub mod testing;
mod time;

pub use db::{Backend, Connection, Db, DbOptions, Tx};
pub use error::{DbError, Error};
pub use sql::{Arg, Sql};
pub use time::{from_micros, to_micros};
