//! Secrets the server must be able to read back (authenticator-app secrets, webhook signing
//! secrets), sealed with XChaCha20-Poly1305 under a key derived from the audit key, each bound to
//! the row it belongs to (its id as associated data), so a sealed value copied to another row
//! does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use token_core::rand::TryRng;
use token_core::rand::rngs::SysRng;
use zeroize::Zeroizing;

use crate::error::Error;

/// Seals `secret` for the row `bound_to`: hex of nonce ‖ ciphertext.
pub(crate) fn seal(key: &[u8; 32], bound_to: &str, secret: &[u8]) -> Result<String, Error> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    SysRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| Error::System("the operating system's random generator failed"))?;
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: bound_to.as_bytes(),
            },
        )
        .map_err(|_| Error::System("sealing failed"))?;
    Ok(format!("{}{}", hex::encode(nonce), hex::encode(sealed)))
}

/// Opens what [`seal`] made for the same row under the same key.
pub(crate) fn open(
    key: &[u8; 32],
    bound_to: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bytes = hex::decode(sealed).map_err(|_| Error::corrupt("sealed secret"))?;
    if bytes.len() < 24 {
        return Err(Error::corrupt("sealed secret"));
    }
    let (nonce, ciphertext) = bytes.split_at(24);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: bound_to.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::corrupt("sealed secret (wrong key, or not this row's)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_row_and_key() {
        let key = [9u8; 32];
        let sealed = seal(&key, "mem_a", b"shared secret").unwrap();
        assert!(!sealed.contains(&hex::encode(b"shared secret")));
        assert_eq!(
            open(&key, "mem_a", &sealed).unwrap().as_slice(),
            b"shared secret"
        );
        assert!(open(&key, "mem_b", &sealed).is_err());
        assert!(open(&[8u8; 32], "mem_a", &sealed).is_err());
        assert!(open(&key, "mem_a", "zz").is_err());
    }
}
