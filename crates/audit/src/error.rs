//! The one error type of this crate.

use knowmind_db::DbError;

/// Everything that can go wrong in `audit`. Messages never contain a token, secret or hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed or refused a statement.
    #[error("database error: {0}")]
    Database(DbError),
    /// The database URL is not one this build understands.
    #[error("unsupported database URL: {0}")]
    BadUrl(&'static str),
    /// A query argument is invalid (an unknown action name, say).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored row cannot be decoded: the database holds something we never wrote.
    #[error("corrupt audit row: {0}")]
    Corrupt(&'static str),
    /// The usage writer's queue is full: the caller should refuse the request quickly (503)
    /// rather than wait without bound.
    #[error("the usage writer is busy")]
    Busy,
    /// The usage writer has stopped.
    #[error("the usage writer has stopped")]
    Closed,
    /// The chain holds events hashed with the audit key, and no key was given.
    #[error("the audit log is keyed: verifying or appending needs the audit key")]
    KeyRequired,
    /// The audit key is not the one the log was written with (or the newest keyed event was
    /// altered).
    #[error(
        "the audit key does not match the one the audit log was written with; every instance \
         sharing a database must use the same key"
    )]
    KeyMismatch,
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
}

impl From<knowmind_db::Error> for Error {
    fn from(e: knowmind_db::Error) -> Self {
        match e {
            knowmind_db::Error::Database(db) => Error::Database(db),
            knowmind_db::Error::BadUrl(why) => Error::BadUrl(why),
            knowmind_db::Error::Corrupt(what) => Error::Corrupt(what),
            _ => Error::Corrupt("unknown database error"),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(DbError::from(e))
    }
}
