//! The one error type of this crate.

use time::OffsetDateTime;

use crate::scope::Scopes;

/// Everything that can go wrong in `token-core`.
///
/// No variant ever carries a token, a secret or a hash: the messages are safe to log and to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The presented string is not a well-formed knowmind token.
    #[error("malformed token: {0}")]
    MalformedToken(Malformed),
    /// A token id is not 16 base62 characters.
    #[error("malformed token id: expected 16 characters from 0-9, A-Z, a-z")]
    MalformedTokenId,
    /// A scope name is not one of `read`, `write`, `admin`, `introspect`.
    #[error("unknown scope {name:?}: expected one of read, write, admin, introspect")]
    UnknownScope {
        /// The offending name, shortened (and redacted if it looks like a token).
        name: String,
    },
    /// scrypt parameters are out of the accepted range.
    #[error("invalid scrypt parameters: {0}")]
    InvalidParams(&'static str),
    /// A stored hash is not a well-formed `$scrypt$` PHC string.
    #[error("malformed stored hash: {0}")]
    MalformedHash(&'static str),
    /// A stored hash asks for more memory or work than we accept (a hostile or corrupt row).
    #[error("stored hash parameters exceed the accepted maximum")]
    HashTooCostly,
    /// The token does not match the stored hash.
    #[error("token does not match the stored hash")]
    Mismatch,
    /// The token's expiry time has passed.
    #[error("token expired at {at}")]
    Expired {
        /// When it expired.
        at: OffsetDateTime,
    },
    /// The token lacks scopes that the operation requires.
    #[error("token lacks the required scope: {missing}")]
    MissingScopes {
        /// The required scopes the token does not grant.
        missing: Scopes,
    },
    /// A duration is not a number followed by `s`, `m`, `h`, `d` or `w` (e.g. `90d`).
    #[error(
        "invalid duration {0:?}: expected a whole number and a unit, like 30m, 12h, 90d or 2w, \
         at most 100 years"
    )]
    InvalidDuration(String),
    /// An allow-list entry is not an address or a CIDR network.
    #[error("invalid network {network:?}: {why}")]
    InvalidNetwork {
        /// The offending entry, shortened (and redacted if it looks like a token).
        network: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An allow-list entry has bits set after its prefix (`192.0.2.7/24`).
    #[error("network {network:?} has bits set after its prefix: did you mean {meant}?")]
    HostBitsSet {
        /// The entry as written.
        network: String,
        /// The network it probably means.
        meant: String,
    },
    /// An allow-list is longer than allowed.
    #[error("at most {max} networks")]
    TooManyNetworks {
        /// The most networks a list may hold.
        max: usize,
    },
    /// A password is shorter or longer than allowed.
    #[error("a password must be {min} to {max} characters long")]
    PasswordLength {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the random number generator failed")]
    Rng,
}

/// How a presented token string is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// It does not start with `kmt_` (or another kind's prefix: `kmo_`, `kmr_`, `kmc_`).
    #[error("it does not start with kmt_ (or kmo_, kmr_, kmc_)")]
    WrongPrefix,
    /// It is not 58 characters long.
    #[error("expected 58 characters, got {len}")]
    WrongLength {
        /// The length that was presented, in bytes.
        len: usize,
    },
    /// A character after the prefix is outside `0-9A-Za-z`.
    #[error("character {position} is not in 0-9, A-Z, a-z")]
    InvalidCharacter {
        /// Zero-based byte offset of the first bad character.
        position: usize,
    },
    /// The last six characters are not the checksum of the rest (a typo or a truncated copy).
    #[error("checksum mismatch")]
    ChecksumMismatch,
}

impl From<Malformed> for Error {
    fn from(m: Malformed) -> Self {
        Error::MalformedToken(m)
    }
}
