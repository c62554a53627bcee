//! The second factor: time-based one-time passwords (RFC 6238: HMAC-SHA-1, 30-second steps,
//! six digits, what every authenticator app speaks), and recovery codes.
//!
//! The shared secret must be read back to check a code, so it cannot be hashed: it is sealed
//! with XChaCha20-Poly1305 under a key derived from the audit key (kept outside the database),
//! bound to its member by the associated data. A copy of the database alone yields no secret.
//! A code is accepted in the step before, at, or after now (clock drift), and never twice: the
//! last step used is stored and a code at or before it is refused. Recovery codes are 80 random
//! bits each, stored as SHA-256, usable once.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use token_core::rand::TryRng;
use token_core::rand::rngs::SysRng;
use zeroize::Zeroizing;

use crate::error::Error;

/// Seconds per step.
const STEP: i64 = 30;
/// Digits per code.
const DIGITS: u32 = 6;
/// Bytes of shared secret (160 bits, RFC 4226's recommendation).
const SECRET_LEN: usize = 20;
/// Recovery codes issued at once.
pub(crate) const RECOVERY_CODES: usize = 10;

/// The step `at` falls in.
pub(crate) fn step_at(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(STEP)
}

/// The code for `step` (RFC 4226's HOTP with the step as counter).
fn code(secret: &[u8], step: i64) -> u32 {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(DIGITS)
}

/// The step of `now` − 1, `now` or `now` + 1 whose code `presented` is, if any.
pub(crate) fn matching_step(secret: &[u8], presented: &str, now: OffsetDateTime) -> Option<i64> {
    let presented = presented.trim().replace(' ', "");
    if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u32 = presented.parse().ok()?;
    let now = step_at(now);
    // Compare all three, in constant time each, so timing says nothing about which matched.
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        if subtle::ConstantTimeEq::ct_eq(&code(secret, step), &value).into() {
            found = Some(step);
        }
    }
    found
}

/// A new shared secret, to show once (as a QR code and as text) and to seal.
pub struct TotpSetup {
    secret: Zeroizing<Vec<u8>>,
    uri: Zeroizing<String>,
}

impl TotpSetup {
    pub(crate) fn generate(account: &str) -> Result<Self, Error> {
        let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
        SysRng
            .try_fill_bytes(&mut secret)
            .map_err(|_| Error::System("the operating system's random generator failed"))?;
        let uri = Zeroizing::new(format!(
            "otpauth://totp/knowmind:{account}?secret={}&issuer=knowmind&algorithm=SHA1&digits={DIGITS}&period={STEP}",
            base32(&secret).as_str(),
            account = form_escape(account),
        ));
        Ok(TotpSetup { secret, uri })
    }

    /// The `otpauth://` URI an authenticator app scans (as a QR code): it holds the secret.
    pub fn expose_uri(&self) -> &str {
        &self.uri
    }

    /// The secret in base32, for typing into an app by hand.
    pub fn expose_base32(&self) -> Zeroizing<String> {
        base32(&self.secret)
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The code an authenticator app with this secret shows at `at`: for tests, which play the
    /// app.
    #[cfg(feature = "test-util")]
    pub fn code_at(&self, at: OffsetDateTime) -> String {
        app_code(&self.expose_base32(), at).unwrap_or_default()
    }
}

impl fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSetup([REDACTED])")
    }
}

/// Percent-escapes what an `otpauth` label must not carry raw (an email's `@` is fine).
fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'@' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The code an authenticator app given `key` (base32, as the setup page shows it) displays at
/// `at`: tests play the app with it.
#[cfg(feature = "test-util")]
pub fn app_code(key: &str, at: OffsetDateTime) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut secret) = (0u32, 0u32, Vec::new());
    for c in key.bytes().filter(|b| *b != b' ') {
        let value = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            secret.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(format!("{:06}", code(&secret, step_at(at))))
}

/// RFC 4648 base32, without padding (what authenticator apps take).
fn base32(bytes: &[u8]) -> Zeroizing<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// New recovery codes (`xxxx-xxxx-xxxx-xxxx`, base32, 80 bits each) and their stored hashes.
pub(crate) fn recovery_codes() -> Result<Vec<(Zeroizing<String>, String)>, Error> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; 10]);
            SysRng
                .try_fill_bytes(bytes.as_mut())
                .map_err(|_| Error::System("the operating system's random generator failed"))?;
            let plain = base32(bytes.as_ref()).to_lowercase();
            let code = Zeroizing::new(format!(
                "{}-{}-{}-{}",
                &plain[0..4],
                &plain[4..8],
                &plain[8..12],
                &plain[12..16]
            ));
            let hash = recovery_hash(&code).unwrap_or_default();
            Ok((code, hash))
        })
        .collect()
}

/// The stored hash of a presented recovery code, if it has the shape of one.
pub(crate) fn recovery_hash(presented: &str) -> Option<String> {
    let normal: String = presented
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    (normal.len() == 16
        && normal
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    .then(|| hex::encode(Sha256::digest(normal.as_bytes())))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    /// RFC 6238 appendix B, SHA-1: the secret is "12345678901234567890"; the RFC prints eight
    /// digits, of which a six-digit code is the last six.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (unix, eight) in [
            (59, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            let at = OffsetDateTime::from_unix_timestamp(unix).unwrap();
            assert_eq!(code(secret, step_at(at)), eight % 1_000_000, "{unix}");
        }
    }

    #[test]
    fn a_code_matches_within_one_step_only() {
        let secret = b"12345678901234567890";
        let now = datetime!(2026-11-29 12:00:15 UTC);
        let current = format!("{:06}", code(secret, step_at(now)));
        assert_eq!(matching_step(secret, &current, now), Some(step_at(now)));
        assert_eq!(
            matching_step(secret, &current, now + time::Duration::seconds(30)),
            Some(step_at(now))
        );
        assert_eq!(
            matching_step(secret, &current, now + time::Duration::seconds(90)),
            None
        );
        for bad in ["", "12345", "1234567", "abcdef", "12 34 5x"] {
            assert_eq!(matching_step(secret, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b"").as_str(), "");
        assert_eq!(base32(b"f").as_str(), "MY");
        assert_eq!(base32(b"foobar").as_str(), "MZXW6YTBOI");
    }

    #[test]
    fn recovery_codes_are_distinct_and_checked_by_hash() {
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(code.len(), 19);
        assert_eq!(recovery_hash(code).as_deref(), Some(hash.as_str()));
        assert_eq!(
            recovery_hash(&code.to_uppercase().replace('-', " ")).as_deref(),
            Some(hash.as_str())
        );
        assert_ne!(codes[0].1, codes[1].1);
        assert_eq!(recovery_hash("123456"), None);
        let setup = TotpSetup::generate("ada@example.org").unwrap();
        assert!(
            setup
                .expose_uri()
                .starts_with("otpauth://totp/knowmind:ada@example.org?secret=")
        );
        assert!(!format!("{setup:?}").contains(setup.expose_base32().as_str()));
    }
}
