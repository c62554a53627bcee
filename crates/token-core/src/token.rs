//! The token format: a kind's prefix (`kmt_` for API tokens) + id (16) + secret (32) +
//! checksum (6), all base62.

use std::fmt;
use std::str::FromStr;

use rand::TryCryptoRng;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::base62::{ALPHABET, all_base62, checksum, is_base62};
use crate::error::{Error, Malformed};

/// Every API token starts with this; the other kinds have their own prefix ([`TokenKind`]).
pub const PREFIX: &str = "kmt_";
/// Length of the public id, in characters.
pub const ID_LEN: usize = 16;
/// Length of the secret, in characters (32 × log2(62) ≈ 190 bits).
pub const SECRET_LEN: usize = 32;
/// Length of the checksum, in characters.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole token: 58.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// A regular expression that matches exactly the strings of token shape, of every kind
/// (checksum not checked).
pub const TOKEN_REGEX: &str = "km[torc]_[0-9A-Za-z]{54}";

/// What a token is for. Each kind has its own prefix, so that people, scanners and the parser
/// tell them apart, and the same format and checksum, so one parser and one scanner rule serve
/// them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `kmt_`: an API token, issued to a person for a device or application.
    Api,
    /// `kmo_`: an OAuth access token, issued to a connector for a member (or for itself).
    OAuthAccess,
    /// `kmr_`: an OAuth refresh token; it authorizes nothing but getting a new access token.
    OAuthRefresh,
    /// `kmc_`: an OAuth client secret; its id is the client's id.
    ClientSecret,
}

impl TokenKind {
    /// Every kind.
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Api,
        TokenKind::OAuthAccess,
        TokenKind::OAuthRefresh,
        TokenKind::ClientSecret,
    ];

    /// The kind's prefix, four characters.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Api => PREFIX,
            TokenKind::OAuthAccess => "kmo_",
            TokenKind::OAuthRefresh => "kmr_",
            TokenKind::ClientSecret => "kmc_",
        }
    }

    /// Where the checksummed text starts: after the prefix for API tokens (as it always has),
    /// at the prefix for the other kinds, so that changing a token's prefix — one character —
    /// breaks its checksum like any other typo, and a scanner never takes a relabelled token
    /// for a real one.
    const fn checksum_start(self) -> usize {
        match self {
            TokenKind::Api => ID_START,
            _ => 0,
        }
    }

    /// The kind whose prefix `text` starts with.
    pub fn of_text(text: &str) -> Option<TokenKind> {
        Self::ALL
            .into_iter()
            .find(|kind| text.as_bytes().starts_with(kind.prefix().as_bytes()))
    }
}

const ID_START: usize = PREFIX.len();
const SECRET_START: usize = ID_START + ID_LEN;
const CHECKSUM_START: usize = SECRET_START + SECRET_LEN;

/// The public name of a token: 16 base62 characters.
///
/// It is not secret. It names the token in API paths, listings and the audit log, and is the key
/// used to look the token up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Invariant: every constructor checks that all bytes are ASCII base62, hence UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Random id, for tests and fixtures that need an id without a token.
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let mut id = [0u8; ID_LEN];
        fill_base62(rng, &mut id)?;
        Ok(TokenId(id))
    }
}

impl FromStr for TokenId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = s.as_bytes();
        if bytes.len() != ID_LEN || !all_base62(bytes) {
            return Err(Error::MalformedTokenId);
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(bytes);
        Ok(TokenId(id))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.as_str())
    }
}

impl serde::Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A random public identifier: `prefix` followed by 16 base62 characters (≈ 95 bits), for
/// workspaces, members and other records that are named but not secret.
///
/// # Errors
/// [`Error::Rng`] if the generator fails.
pub fn random_id<R: TryCryptoRng + ?Sized>(rng: &mut R, prefix: &str) -> Result<String, Error> {
    let mut chars = [0u8; ID_LEN];
    fill_base62(rng, &mut chars)?;
    let mut id = String::with_capacity(prefix.len() + ID_LEN);
    id.push_str(prefix);
    id.extend(chars.iter().map(|&c| char::from(c)));
    Ok(id)
}

/// `kmt_` + `body` + the checksum of `body` (48 base62 characters): a well-formed token text from
/// chosen parts. For tests that need a token with a given id or secret.
#[cfg(any(test, feature = "test-util"))]
pub fn checksummed(body: &str) -> String {
    let sum = checksum(body.as_bytes());
    format!("{PREFIX}{body}{}", String::from_utf8_lossy(&sum))
}

/// A whole token, id and secret: as powerful as a password.
///
/// The only ways to get one are [`Token::generate`] and parsing ([`FromStr`]), which checks the
/// prefix, length, alphabet and checksum without any I/O. The secret is held in a wiped-on-drop
/// buffer; `Debug` shows only the id, and there is no `Display`, `Clone` or `Serialize`.
pub struct Token {
    kind: TokenKind,
    id: TokenId,
    full: SecretString,
}

impl Token {
    /// A new token from a cryptographically secure generator. Production passes the operating
    /// system's generator (`rand::rngs::SysRng`).
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        Self::generate_kind(rng, TokenKind::Api)
    }

    /// A new token of `kind`.
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails.
    pub fn generate_kind<R: TryCryptoRng + ?Sized>(
        rng: &mut R,
        kind: TokenKind,
    ) -> Result<Self, Error> {
        let mut buf = Zeroizing::new([0u8; TOKEN_LEN]);
        buf[..ID_START].copy_from_slice(kind.prefix().as_bytes());
        fill_base62(rng, &mut buf[ID_START..CHECKSUM_START])?;
        let sum = checksum(&buf[kind.checksum_start()..CHECKSUM_START]);
        buf[CHECKSUM_START..].copy_from_slice(&sum);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&buf[ID_START..SECRET_START]);
        // Invariant: the buffer holds only ASCII, so this never fails.
        let text = std::str::from_utf8(&buf[..]).map_err(|_| Error::Rng)?;
        Ok(Token {
            kind,
            id: TokenId(id),
            full: SecretString::from(text.to_owned()),
        })
    }

    /// What the token is for.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The token's public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The whole token text, secret included. Show it once, send it in an `Authorization`
    /// header, write it to a 0600 file; never log it.
    pub fn expose_secret(&self) -> &str {
        self.full.expose_secret()
    }

    /// `kmt_<id>…`: enough to recognise the token, useless to an attacker.
    pub fn masked(&self) -> String {
        format!("{}{}…", self.kind.prefix(), self.id)
    }

    /// The bytes the stored hash covers: id and secret (48 ASCII characters), and for kinds
    /// other than API tokens the prefix too, so that a token relabelled as another kind — its
    /// checksum recomputed, which anyone can do — does not match its stored hash. API tokens
    /// keep the input they have always had, so existing hashes stay valid.
    pub(crate) fn hash_input(&self) -> &[u8] {
        let start = if self.kind == TokenKind::Api {
            ID_START
        } else {
            0
        };
        &self.full.expose_secret().as_bytes()[start..CHECKSUM_START]
    }
}

impl FromStr for Token {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = s.as_bytes();
        let Some(kind) = TokenKind::of_text(s) else {
            return Err(Malformed::WrongPrefix.into());
        };
        if bytes.len() != TOKEN_LEN {
            return Err(Malformed::WrongLength { len: bytes.len() }.into());
        }
        if !all_base62(&bytes[ID_START..])
            && let Some(offset) = bytes[ID_START..].iter().position(|&b| !is_base62(b))
        {
            return Err(Malformed::InvalidCharacter {
                position: ID_START + offset,
            }
            .into());
        }
        if checksum(&bytes[kind.checksum_start()..CHECKSUM_START]) != bytes[CHECKSUM_START..] {
            return Err(Malformed::ChecksumMismatch.into());
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&bytes[ID_START..SECRET_START]);
        Ok(Token {
            kind,
            id: TokenId(id),
            full: SecretString::from(s.to_owned()),
        })
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Fills `out` with uniformly random base62 characters (rejection sampling: bytes ≥ 248 are
/// dropped so that `byte % 62` has no bias).
fn fill_base62<R: TryCryptoRng + ?Sized>(rng: &mut R, out: &mut [u8]) -> Result<(), Error> {
    let mut random = Zeroizing::new([0u8; 64]);
    let mut filled = 0;
    while filled < out.len() {
        rng.try_fill_bytes(&mut random[..])
            .map_err(|_| Error::Rng)?;
        for &byte in random.iter().filter(|&&b| b < 248) {
            out[filled] = ALPHABET[usize::from(byte % 62)];
            filled += 1;
            if filled == out.len() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
