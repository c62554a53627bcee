//! The one error type of this crate.

use std::fmt;

/// What can go wrong talking to the database. Messages never contain a URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed or refused a statement.
    #[error("database error: {0}")]
    Database(DbError),
    /// The database URL is not one this build understands.
    #[error("unsupported database URL: {0}")]
    BadUrl(&'static str),
    /// A stored value cannot be decoded: the database holds something we never wrote.
    #[error("corrupt row: {0}")]
    Corrupt(&'static str),
}

/// A database error, opaque so that the driver's types stay out of every public error enum.
pub struct DbError(sqlx::Error);

impl DbError {
    /// Whether the database refused the statement itself (a constraint, a trigger), as opposed to
    /// a connection or pool failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self.0, sqlx::Error::Database(_))
    }

    /// Whether a uniqueness constraint refused the statement.
    pub fn is_unique_violation(&self) -> bool {
        matches!(&self.0, sqlx::Error::Database(e) if e.is_unique_violation())
    }

    /// Whether the pool had no free connection in time.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self.0, sqlx::Error::PoolTimedOut)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(DbError(e))
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Database(DbError(sqlx::Error::Migrate(Box::new(e))))
    }
}
