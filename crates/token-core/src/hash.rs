//! Salted scrypt hashes of tokens — and of members' passwords, with the same parameters and
//! format — stored as PHC strings: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (salt and
//! hash in unpadded standard base64).

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64Unpadded, Encoding};
use rand::TryCryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::password::Password;
use crate::token::Token;

/// Bytes of random salt per hash.
pub const SALT_LEN: usize = 16;
/// Bytes of scrypt output we store.
pub const HASH_LEN: usize = 32;

/// Validated scrypt parameters.
///
/// Memory per hash is `128 · r · 2^ln` bytes. [`HashParams::new`] accepts only parameters between
/// [`HashParams::MIN_MEMORY`] and [`HashParams::MAX_MEMORY`], with `p` at most
/// [`HashParams::MAX_P`]. The default, [`HashParams::DEFAULT`], and the measurements behind it are
/// in `docs/SECURITY.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashParams {
    log_n: u8,
    r: u32,
    p: u32,
}

impl HashParams {
    /// The production default: `ln=14, r=8, p=1`, 16 MiB per hash (see `docs/SECURITY.md`).
    pub const DEFAULT: HashParams = HashParams {
        log_n: 14,
        r: 8,
        p: 1,
    };
    /// Least memory per hash that [`HashParams::new`] accepts: 16 MiB.
    pub const MIN_MEMORY: u64 = 16 << 20;
    /// Most memory per hash accepted anywhere, including from a stored hash: 256 MiB. A row that
    /// asks for more is refused instead of being allowed to make us allocate gigabytes.
    pub const MAX_MEMORY: u64 = 256 << 20;
    /// Largest parallelism factor accepted anywhere (work grows linearly with `p`).
    pub const MAX_P: u32 = 4;

    /// Parameters for production use.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] if memory per hash is below [`HashParams::MIN_MEMORY`], or the
    /// parameters are outside the accepted maximum.
    pub fn new(log_n: u8, r: u32, p: u32) -> Result<Self, Error> {
        let params = Self::bounded(log_n, r, p).map_err(|e| match e {
            Error::HashTooCostly => Error::InvalidParams("more than 256 MiB per hash or p > 4"),
            other => other,
        })?;
        if params.memory_bytes() < Self::MIN_MEMORY {
            return Err(Error::InvalidParams("less than 16 MiB of memory per hash"));
        }
        Ok(params)
    }

    /// Deliberately weak parameters (`ln=4`, 16 KiB) so that test suites can hash thousands of
    /// tokens. Only with the `test-util` feature (or in this crate's own tests).
    #[cfg(any(test, feature = "test-util"))]
    pub const fn insecure_for_tests() -> Self {
        HashParams {
            log_n: 4,
            r: 8,
            p: 1,
        }
    }

    /// Any parameters within the maximum, with no minimum: what a stored hash may carry (old rows
    /// hashed with weaker parameters still verify, and are then re-hashed).
    fn bounded(log_n: u8, r: u32, p: u32) -> Result<Self, Error> {
        if log_n == 0 || r == 0 || p == 0 {
            return Err(Error::InvalidParams("ln, r and p must be positive"));
        }
        if log_n > 32 || p > Self::MAX_P {
            return Err(Error::HashTooCostly);
        }
        let memory = 128u64
            .checked_mul(u64::from(r))
            .and_then(|m| m.checked_mul(1u64 << log_n))
            .ok_or(Error::HashTooCostly)?;
        if memory > Self::MAX_MEMORY {
            return Err(Error::HashTooCostly);
        }
        Ok(HashParams { log_n, r, p })
    }

    /// log2 of scrypt's N.
    pub const fn log_n(&self) -> u8 {
        self.log_n
    }

    /// scrypt's block size factor r.
    pub const fn r(&self) -> u32 {
        self.r
    }

    /// scrypt's parallelism factor p.
    pub const fn p(&self) -> u32 {
        self.p
    }

    /// Memory one hash needs, in bytes: `128 · r · 2^ln`.
    pub const fn memory_bytes(&self) -> u64 {
        128 * (self.r as u64) * (1u64 << self.log_n)
    }

    fn scrypt_params(&self) -> Result<scrypt::Params, Error> {
        scrypt::Params::new(self.log_n, self.r, self.p)
            .map_err(|_| Error::InvalidParams("rejected by scrypt"))
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for HashParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ln={},r={},p={}", self.log_n, self.r, self.p)
    }
}

/// A stored token (or password) hash: scrypt parameters, salt and output, written as a PHC
/// string.
///
/// Parsing ([`FromStr`]) validates the shape and caps the parameters; the string form is
/// [`TokenHash::as_phc`]. `Debug` shows the parameters only.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash {
    params: HashParams,
    salt: Vec<u8>,
    hash: Vec<u8>,
    phc: String,
}

impl TokenHash {
    /// Hashes the token's id and secret with a fresh random salt.
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails; [`Error::InvalidParams`] if scrypt rejects `params`.
    pub fn new<R: TryCryptoRng + ?Sized>(
        token: &Token,
        params: &HashParams,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::of_input(token.hash_input(), params, rng)
    }

    /// Hashes a member's password with a fresh random salt, exactly as tokens are hashed.
    ///
    /// # Errors
    /// As [`TokenHash::new`].
    pub fn of_password<R: TryCryptoRng + ?Sized>(
        password: &Password,
        params: &HashParams,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::of_input(password.hash_input(), params, rng)
    }

    fn of_input<R: TryCryptoRng + ?Sized>(
        input: &[u8],
        params: &HashParams,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut salt = vec![0u8; SALT_LEN];
        rng.try_fill_bytes(&mut salt).map_err(|_| Error::Rng)?;
        let mut hash = vec![0u8; HASH_LEN];
        scrypt::scrypt(input, &salt, &params.scrypt_params()?, &mut hash)
            .map_err(|_| Error::InvalidParams("rejected by scrypt"))?;
        let phc = format!(
            "$scrypt${params}${}${}",
            Base64Unpadded::encode_string(&salt),
            Base64Unpadded::encode_string(&hash)
        );
        Ok(TokenHash {
            params: *params,
            salt,
            hash,
            phc,
        })
    }

    /// Checks `token` against this hash in constant time.
    ///
    /// # Errors
    /// [`Error::Mismatch`] if the token is not the one that was hashed.
    pub fn verify(&self, token: &Token) -> Result<(), Error> {
        self.verify_input(token.hash_input())
    }

    /// Checks a password against this hash in constant time.
    ///
    /// # Errors
    /// [`Error::Mismatch`] if it is not the password that was hashed.
    pub fn verify_password(&self, password: &Password) -> Result<(), Error> {
        self.verify_input(password.hash_input())
    }

    fn verify_input(&self, input: &[u8]) -> Result<(), Error> {
        let mut computed = Zeroizing::new(vec![0u8; self.hash.len()]);
        scrypt::scrypt(
            input,
            &self.salt,
            &self.params.scrypt_params()?,
            &mut computed,
        )
        .map_err(|_| Error::MalformedHash("unusable output length"))?;
        if bool::from(computed.as_slice().ct_eq(&self.hash)) {
            Ok(())
        } else {
            Err(Error::Mismatch)
        }
    }

    /// Whether this hash should be replaced by one made with `current` (after a successful
    /// verification, when the plaintext is at hand): true when its parameters differ.
    pub fn needs_rehash(&self, current: &HashParams) -> bool {
        self.params != *current
    }

    /// The parameters this hash was made with.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// The PHC string to store.
    pub fn as_phc(&self) -> &str {
        &self.phc
    }
}

impl FromStr for TokenHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let mut parts = s.split('$');
        let (Some(""), Some(alg), Some(param_text), Some(salt_b64), Some(hash_b64), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::MalformedHash(
                "expected $scrypt$<params>$<salt>$<hash>",
            ));
        };
        if alg != "scrypt" {
            return Err(Error::MalformedHash("algorithm is not scrypt"));
        }
        let params = parse_params(param_text)?;
        let salt = Base64Unpadded::decode_vec(salt_b64)
            .map_err(|_| Error::MalformedHash("salt is not unpadded base64"))?;
        if !(SALT_LEN..=64).contains(&salt.len()) {
            return Err(Error::MalformedHash("salt must be 16 to 64 bytes"));
        }
        let hash = Base64Unpadded::decode_vec(hash_b64)
            .map_err(|_| Error::MalformedHash("hash is not unpadded base64"))?;
        // Exactly our length: scrypt's output is a PBKDF2 stream, so a truncated hash would be a
        // prefix of the real one and still verify, with fewer bits to guess.
        if hash.len() != HASH_LEN {
            return Err(Error::MalformedHash("hash must be 32 bytes"));
        }
        Ok(TokenHash {
            params,
            salt,
            hash,
            phc: s.to_owned(),
        })
    }
}

fn parse_params(text: &str) -> Result<HashParams, Error> {
    let (mut log_n, mut r, mut p) = (None, None, None);
    for pair in text.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or(Error::MalformedHash("parameters must be key=value"))?;
        let slot = match key {
            "ln" => &mut log_n,
            "r" => &mut r,
            "p" => &mut p,
            _ => return Err(Error::MalformedHash("unknown scrypt parameter")),
        };
        if slot.is_some() {
            return Err(Error::MalformedHash("repeated scrypt parameter"));
        }
        let number: u32 = value
            .parse()
            .map_err(|_| Error::MalformedHash("scrypt parameter is not a number"))?;
        *slot = Some(number);
    }
    let (Some(log_n), Some(r), Some(p)) = (log_n, r, p) else {
        return Err(Error::MalformedHash("ln, r and p are all required"));
    };
    let log_n = u8::try_from(log_n).map_err(|_| Error::HashTooCostly)?;
    HashParams::bounded(log_n, r, p)
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHash")
            .field("params", &format_args!("{}", self.params))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
