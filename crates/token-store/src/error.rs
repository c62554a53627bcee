//! The one error type of this crate.

use std::fmt;

use token_core::{Scopes, TokenId};

use crate::model::TokenState;

/// Everything that can go wrong in `token-store`. No message ever contains a token, secret or
/// hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such workspace, member or token (in this workspace).
    #[error("{what} not found")]
    NotFound {
        /// `workspace`, `member` or `token`.
        what: &'static str,
    },
    /// An argument is invalid; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The change conflicts with the current state (an email already in the workspace, a token
    /// rotated by someone else a moment ago).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The token is revoked or expired, so it cannot be rotated.
    #[error("the token is {state}")]
    NotActive {
        /// Its state.
        state: TokenState,
    },
    /// The token was rotated already; only its successor can be rotated.
    #[error("the token was already rotated into {successor}; rotate that one")]
    AlreadyRotated {
        /// The token that replaced it.
        successor: TokenId,
    },
    /// The presented token is not usable. The message is the same whatever the reason; the
    /// reason itself ([`Refusal`]) is for logs and the usage record.
    #[error("the token was refused")]
    Unauthorized(Refusal),
    /// The token is valid but lacks scopes the operation needs.
    #[error("the token lacks the required scope: {missing}")]
    Forbidden {
        /// The required scopes it does not grant.
        missing: Scopes,
    },
    /// A rotation asked for more lifetime than the token had. Rotation renews a credential; it
    /// must not let a token (or whoever stole it) extend its own life.
    #[error(
        "a rotation cannot give a token more lifetime than it had: at most {} from now \
         (its original lifetime), and an expiry is required",
        describe_lifetime(*.max)
    )]
    LifetimeExceeded {
        /// The longest lifetime allowed: the token's original one.
        max: time::Duration,
    },
    /// The workspace's policy forbids this token (no expiry where one is required, a lifetime
    /// over the maximum); nothing was written.
    #[error("{detail} (workspace policy: {rule})")]
    PolicyViolation {
        /// `require_expiry` or `max_lifetime`.
        rule: &'static str,
        /// What the rule asks for.
        detail: String,
    },
    /// A sign-in failed: no such workspace or email, no password set, or a wrong one — the
    /// same answer for each (the audit log says which).
    #[error("the email or password is wrong")]
    SignInRefused,
    /// The browser's session is unknown, ended, expired or idle for too long: sign in again.
    #[error("not signed in, or the session has ended")]
    NotSignedIn,
    /// Verification capacity (the scrypt pool or the usage writer) is exhausted: try again soon.
    #[error("too busy to verify the token now")]
    Busy,
    /// Too many failed verifications or sign-ins from this source (client address, account or
    /// reporting resource server); work for it is refused until the window ends.
    #[error("too many failed authentications; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the source may try again.
        retry_after_secs: u64,
    },
    /// The first token of a new workspace could not be handed over (written to its file, say);
    /// nothing was committed.
    #[error("the token could not be handed over: {reason}")]
    HandOver {
        /// Why.
        reason: String,
    },
    /// An OAuth request was refused, with the RFC 6749 §5.2 (or RFC 7591 §3.2.2) error code
    /// the client is told and a description meant for its developer.
    #[error("{error}: {description}")]
    OAuth {
        /// `invalid_grant`, `invalid_client`, `invalid_request`, `invalid_scope`,
        /// `unauthorized_client`, `invalid_redirect_uri`, `invalid_client_metadata`, …
        error: &'static str,
        /// What went wrong, never with a secret in it.
        description: String,
    },
    /// The operating system failed us (its random generator, a thread that would not start).
    /// Nothing was written; the fault is not the caller's.
    #[error("system failure: {0}")]
    System(&'static str),
    /// The database or the audit log failed; nothing was written.
    #[error("storage failure: {0}")]
    Storage(StorageError),
}

/// A lifetime as the API writes durations: whole days, hours, minutes or seconds.
fn describe_lifetime(d: time::Duration) -> String {
    let s = d.whole_seconds();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Error {
    pub(crate) fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        Error::OAuth {
            error,
            description: description.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<knowmind_api::text::TextError> for Error {
    fn from(e: knowmind_api::text::TextError) -> Self {
        Error::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl Error {
    /// The database holds something this crate never wrote.
    pub(crate) fn corrupt(what: &'static str) -> Self {
        Error::Storage(StorageError(audit::Error::Corrupt(what)))
    }
}

/// Why storage failed. Opaque: the database's and the audit log's own types stay out of this
/// crate's API; the message says what happened (never a secret or a URL's password).
pub struct StorageError(audit::Error);

impl StorageError {
    /// Whether no database connection was free in time: the server is overloaded, try again.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(&self.0, audit::Error::Database(db) if db.is_pool_timeout())
    }

    /// Whether a uniqueness constraint refused the statement.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(&self.0, audit::Error::Database(db) if db.is_unique_violation())
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<audit::Error> for Error {
    fn from(e: audit::Error) -> Self {
        match e {
            // A caller's input the audit log refused (a cursor, a filter): the caller's mistake.
            audit::Error::Invalid { field, reason } => Error::Invalid { field, reason },
            e => Error::Storage(StorageError(e)),
        }
    }
}

impl From<knowmind_db::Error> for Error {
    fn from(e: knowmind_db::Error) -> Self {
        Error::Storage(StorageError(audit::Error::from(e)))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Storage(StorageError(audit::Error::from(e)))
    }
}

impl From<knowmind_api::UnknownValue> for Error {
    fn from(e: knowmind_api::UnknownValue) -> Self {
        Error::Invalid {
            field: e.field,
            reason: e.to_string(),
        }
    }
}

impl From<token_core::Error> for Error {
    fn from(e: token_core::Error) -> Self {
        match e {
            token_core::Error::UnknownScope { .. } => Error::invalid("scopes", e.to_string()),
            token_core::Error::MissingScopes { missing } => Error::Forbidden { missing },
            other => Error::Storage(StorageError(audit::Error::Invalid {
                field: "token",
                reason: other.to_string(),
            })),
        }
    }
}

/// Why a presented token was refused. Never shown to the presenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a well-formed knowmind token (prefix, length, alphabet or checksum).
    Malformed,
    /// No token has this id.
    NotFound,
    /// The id exists but the secret does not match.
    WrongSecret,
    /// The token is revoked.
    Revoked,
    /// The token has expired.
    Expired,
    /// The call comes from outside the token's address allow-list.
    AddressNotAllowed,
    /// A canary token, which authorizes nothing, was presented by whoever holds it.
    Canary,
}

impl Refusal {
    /// A stable code: `MALFORMED`, `NOT_FOUND`, `WRONG_SECRET`, `REVOKED`, `EXPIRED`,
    /// `ADDRESS_NOT_ALLOWED`, `CANARY`.
    pub const fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "MALFORMED",
            Refusal::NotFound => "NOT_FOUND",
            Refusal::WrongSecret => "WRONG_SECRET",
            Refusal::Revoked => "REVOKED",
            Refusal::Expired => "EXPIRED",
            Refusal::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
            Refusal::Canary => "CANARY",
        }
    }
}

impl Refusal {
    /// How a refusal is recorded in the token's security log: `None` for refusals that name no
    /// token (malformed, unknown id), which are never recorded.
    pub const fn usage_outcome(self) -> Option<knowmind_api::UsageOutcome> {
        use knowmind_api::UsageOutcome as O;
        match self {
            Refusal::Malformed | Refusal::NotFound => None,
            Refusal::WrongSecret => Some(O::WrongSecret),
            Refusal::Revoked => Some(O::Revoked),
            Refusal::Expired => Some(O::Expired),
            Refusal::AddressNotAllowed => Some(O::AddressNotAllowed),
            Refusal::Canary => Some(O::Canary),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
