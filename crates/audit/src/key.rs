//! The audit key: a secret kept outside the database that keys the hash chain (HMAC-SHA-256) and
//! signs checkpoints. Without it, someone with write access to the database can delete an event
//! and recompute every later hash; with it, they cannot produce hashes that verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use token_core::rand::TryRng;
use zeroize::Zeroizing;

use crate::error::Error;
use knowmind_api::Checkpoint;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A 256-bit key for the audit chain. `Debug` never shows it; it is wiped on drop.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

impl AuditKey {
    /// A new key from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate() -> Result<AuditKey, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        token_core::rand::rngs::SysRng
            .try_fill_bytes(key.as_mut())
            .map_err(|_| Error::Random)?;
        Ok(AuditKey(key))
    }

    /// A key from its 64 hexadecimal digits (surrounding whitespace ignored), as
    /// [`AuditKey::expose_hex`] writes it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for anything else (the message never repeats the input).
    pub fn from_hex(text: &str) -> Result<AuditKey, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| Error::Invalid {
            field: "audit key",
            reason: "expected 64 hexadecimal digits".into(),
        })?;
        Ok(AuditKey(key))
    }

    /// The key as 64 hexadecimal digits, to store in a file only its owner can read.
    pub fn expose_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// A key for another purpose, derived from this one: HMAC-SHA-256 of the purpose's label
    /// under this key (HKDF-Expand's first block, with this key as the pseudorandom key). One
    /// secret file then protects the audit chain and, say, members' second-factor secrets,
    /// without one key doing two jobs.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = self.mac();
        mac.update(b"knowmind key derivation v1\0");
        mac.update(purpose.as_bytes());
        mac.update(&[1]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&mac.finalize().into_bytes());
        key
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        match HmacSha256::new_from_slice(self.0.as_ref()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }
}

/// A checkpoint signed with the audit key, to keep outside the database (the server writes one to
/// `<data-dir>/checkpoints/` on a schedule). Verifying the chain against it shows that events up
/// to `seq` were neither removed nor rewritten since it was taken, even by someone who can write
/// to the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// The last sequence number when it was taken.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// HMAC-SHA-256 over the fields above, 64 hexadecimal digits.
    pub mac: String,
}

impl SignedCheckpoint {
    /// Signs `checkpoint`, taken `at`.
    pub fn sign(key: &AuditKey, checkpoint: Checkpoint, at: OffsetDateTime) -> Self {
        let mac = hex::encode(checkpoint_mac(key, &checkpoint, at));
        SignedCheckpoint {
            seq: checkpoint.seq,
            hash: checkpoint.hash,
            at,
            mac,
        }
    }

    /// The checkpoint it signs.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Whether the signature is the one `key` makes (compared in constant time).
    pub fn is_signed_by(&self, key: &AuditKey) -> bool {
        let Ok(given) = hex::decode(&self.mac) else {
            return false;
        };
        let mut mac = key.mac();
        mac.update(&checkpoint_message(&self.checkpoint(), self.at));
        mac.verify_slice(&given).is_ok()
    }
}

fn checkpoint_message(checkpoint: &Checkpoint, at: OffsetDateTime) -> Vec<u8> {
    let mut message = b"knowmind-checkpoint-v1\0".to_vec();
    message.extend_from_slice(&checkpoint.seq.to_be_bytes());
    message.extend_from_slice(&knowmind_db::to_micros(at).to_be_bytes());
    message.extend_from_slice(&(checkpoint.hash.len() as u64).to_be_bytes());
    message.extend_from_slice(checkpoint.hash.as_bytes());
    message
}

fn checkpoint_mac(key: &AuditKey, checkpoint: &Checkpoint, at: OffsetDateTime) -> [u8; 32] {
    let mut mac = key.mac();
    mac.update(&checkpoint_message(checkpoint, at));
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_key() {
        let k = key(7);
        let a = k.derive("totp");
        assert_eq!(*a, *k.derive("totp"), "deterministic");
        assert_ne!(*a, *k.derive("other"));
        assert_ne!(*a, *key(8).derive("totp"));
        assert_ne!(a.as_slice(), &[7u8; 32][..]);
    }

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_hex(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn hex_round_trip_and_no_debug_leak() {
        let k = AuditKey::generate().unwrap();
        let text = k.expose_hex();
        assert_eq!(text.len(), 64);
        assert_eq!(
            AuditKey::from_hex(&format!(" {}\n", *text))
                .unwrap()
                .expose_hex(),
            text
        );
        assert_eq!(format!("{k:?}"), "AuditKey([REDACTED])");
        for bad in ["", "zz", &"a".repeat(63), &"a".repeat(66)] {
            let err = AuditKey::from_hex(bad).unwrap_err().to_string();
            assert!(
                !bad.is_empty() && !err.contains(bad) || bad.is_empty(),
                "{err}"
            );
        }
    }

    /// Known answer (computed independently with Python's `hmac`): a refactor must not change
    /// how stored checkpoints are signed.
    #[test]
    fn checkpoint_signature_known_answer() {
        let signed = SignedCheckpoint::sign(
            &key(7),
            Checkpoint {
                seq: 42,
                hash: "ab".repeat(32),
            },
            datetime!(2026-11-29 12:00 UTC),
        );
        assert_eq!(
            signed.mac, "5d92f5afc56ec2e104c0f2cc4f5a2b5147fbbd937d460b9f663b10e8b1b1d928",
            "the checkpoint signature changed: stored checkpoints would no longer verify"
        );
        assert!(signed.is_signed_by(&key(7)));
        assert!(!signed.is_signed_by(&key(8)));
        let mut moved = signed.clone();
        moved.seq = 41;
        assert!(!moved.is_signed_by(&key(7)));
    }
}
