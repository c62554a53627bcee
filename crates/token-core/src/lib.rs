//! knowmind API tokens: the format, generation, hashing, scopes and expiry.
//!
//! A token looks like `kmt_` + 16-character public **id** + 32-character **secret** + 6-character
//! **checksum**, all base62 (see `docs/TOKEN-FORMAT.md`). It is generated from a CSPRNG, shown
//! once, and stored only as a salted scrypt hash ([`TokenHash`], a PHC string). Parsing
//! ([`Token`]'s `FromStr`) is the only way in from text: it checks prefix, length, alphabet and
//! checksum without I/O, so garbage is refused in nanoseconds.
//!
//! Nothing here reads the clock or does I/O: expiry checks take `now` as an argument, and the
//! [`Clock`] that provides it is injected (the real one is `token_store::SystemClock`).
//!
//! ```
//! use token_core::{Grant, HashParams, Scope, Scopes, Token, TokenHash};
//! use time::macros::datetime;
//!
//! # fn main() -> Result<(), token_core::Error> {
//! let mut rng = rand::rngs::SysRng;
//! let params = HashParams::DEFAULT;
//!
//! // Issue: show `token.expose_secret()` to the user once, store only `stored.as_phc()`.
//! let token = Token::generate(&mut rng)?;
//! let stored = TokenHash::new(&token, &params, &mut rng)?;
//! let phc: String = stored.as_phc().to_owned();
//!
//! // Later, a request presents the token text.
//! let presented: Token = token.expose_secret().parse()?;
//! let stored: TokenHash = phc.parse()?;
//! stored.verify(&presented)?;
//!
//! // And the grant recorded with the token is checked against the request.
//! let grant = Grant { scopes: Scope::Write.into(), expires_at: Some(datetime!(2030-01-01 0:00 UTC)) };
//! grant.check(Scopes::of(&[Scope::Read]), datetime!(2026-11-27 12:00 UTC))?;
//! # Ok(())
//! # }
//! ```

mod base62;
mod clock;
mod error;
mod grant;
mod hash;
mod networks;
#[cfg(feature = "openapi")]
mod openapi;
mod password;
mod scope;
mod token;

pub use clock::Clock;
#[cfg(any(test, feature = "test-util"))]
pub use clock::ManualClock;
pub use error::{Error, Malformed};
pub use grant::{Grant, is_expired, parse_duration};
pub use hash::{HASH_LEN, HashParams, SALT_LEN, TokenHash};
pub use networks::{Network, Networks};
#[cfg(feature = "openapi")]
pub use openapi::TOKEN_ID_PATTERN;
pub use password::Password;
pub use scope::{Scope, Scopes};
#[cfg(any(test, feature = "test-util"))]
pub use token::checksummed;
pub use token::{
    CHECKSUM_LEN, ID_LEN, PREFIX, SECRET_LEN, TOKEN_LEN, TOKEN_REGEX, Token, TokenId, TokenKind,
    random_id,
};

/// Re-exported so that callers name the same `time` and `rand` this crate was built with.
pub use {rand, time};
