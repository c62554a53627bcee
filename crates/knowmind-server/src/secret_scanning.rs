//! GitHub's secret-scanning partner program: when GitHub finds a knowmind token in a public
//! repository, it POSTs it here, signed with ECDSA P-256 (SHA-256) by a key from its published
//! key list. The keys the server trusts come from a file in that list's format
//! (`{"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", …}]}`), so an
//! operator controls which keys count and rotates them by replacing the file.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

/// The public keys GitHub signs alerts with, by identifier.
#[derive(Debug, Clone)]
pub struct GithubKeys(Vec<(String, VerifyingKey)>);

#[derive(serde::Deserialize)]
struct KeyList {
    public_keys: Vec<ListedKey>,
}

#[derive(serde::Deserialize)]
struct ListedKey {
    key_identifier: String,
    key: String,
}

impl GithubKeys {
    /// Reads GitHub's key-list JSON.
    ///
    /// # Errors
    /// A message naming what is wrong: not the format, no key, or a key that is not a P-256
    /// public key in PEM.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let list: KeyList = serde_json::from_str(text).map_err(|e| {
            format!("not GitHub's key-list format ({{\"public_keys\": [...]}}): {e}")
        })?;
        if list.public_keys.is_empty() {
            return Err("the key list holds no key".to_owned());
        }
        list.public_keys
            .into_iter()
            .map(|k| {
                VerifyingKey::from_public_key_pem(&k.key)
                    .map(|key| (k.key_identifier.clone(), key))
                    .map_err(|_| {
                        format!(
                            "key {:?} is not a P-256 public key in PEM",
                            k.key_identifier
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(GithubKeys)
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) over `body` was made with
    /// the key named `identifier`.
    pub fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.0.iter().find(|(id, _)| id == identifier) else {
            return false;
        };
        let Ok(der) = base64ct::Base64::decode_vec(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        key.verify(body, &signature).is_ok()
    }
}

use base64ct::Encoding as _;

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    use super::*;

    #[test]
    fn alerts_verify_only_with_the_listed_key_and_an_untouched_body() {
        let signing = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let list = serde_json::json!({"public_keys": [{"key_identifier": "k1", "key": pem, "is_current": true}]});
        let keys = GithubKeys::from_json(&list.to_string()).unwrap();
        let body = br#"[{"token":"x","type":"knowmind_token","url":"https://github.com/a/b","source":"content"}]"#;
        let signature: Signature = signing.sign(body);
        let header = base64ct::Base64::encode_string(signature.to_der().as_bytes());
        assert!(keys.verify("k1", &header, body));
        assert!(!keys.verify("k2", &header, body));
        assert!(!keys.verify("k1", &header, b"[]"));
        assert!(!keys.verify("k1", "not base64!", body));
        assert!(GithubKeys::from_json("{}").is_err());
        assert!(
            GithubKeys::from_json(r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#)
                .is_err()
        );
    }
}
