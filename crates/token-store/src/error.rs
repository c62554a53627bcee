//! The one error type of this crate.

use std::fmt;

use token_core::Scopes;

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
    /// Verification capacity (the scrypt pool or the usage writer) is exhausted: try again soon.
    #[error("too busy to verify the token now")]
    Busy,
    /// The database or the audit log failed; nothing was written.
    #[error(transparent)]
    Storage(#[from] audit::Error),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Storage(audit::Error::from(e))
    }
}

impl From<token_core::Error> for Error {
    fn from(e: token_core::Error) -> Self {
        match e {
            token_core::Error::UnknownScope { .. } => Error::invalid("scopes", e.to_string()),
            token_core::Error::MissingScopes { missing } => Error::Forbidden { missing },
            other => Error::Storage(audit::Error::Invalid {
                field: "token",
                reason: other.to_string(),
            }),
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
}

impl Refusal {
    /// A stable code: `MALFORMED`, `NOT_FOUND`, `WRONG_SECRET`, `REVOKED`, `EXPIRED`.
    pub const fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "MALFORMED",
            Refusal::NotFound => "NOT_FOUND",
            Refusal::WrongSecret => "WRONG_SECRET",
            Refusal::Revoked => "REVOKED",
            Refusal::Expired => "EXPIRED",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
