//! A member's password: a secret held only long enough to hash or check it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// A password of [`Password::MIN_CHARS`] to [`Password::MAX_CHARS`] characters. How strong it is
/// beyond its length is judged where it is chosen (the dashboard's strength estimator); this type
/// only keeps it secret: no `Clone`, no `Serialize`, a `Debug` that shows nothing, wiped when
/// dropped.
pub struct Password(SecretString);

impl Password {
    /// Fewest characters accepted.
    pub const MIN_CHARS: usize = 12;
    /// Most characters accepted: scrypt hashes any length, but a megabyte "password" is a
    /// denial-of-service attempt, not a password.
    pub const MAX_CHARS: usize = 256;

    /// Takes `text` as a password if its length is within bounds.
    ///
    /// # Errors
    /// [`Error::PasswordLength`].
    pub fn new(text: String) -> Result<Self, Error> {
        let secret = SecretString::from(text);
        let chars = secret.expose_secret().chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(Error::PasswordLength {
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        Ok(Password(secret))
    }

    /// Takes `text` for checking against a stored hash, whatever its length (a sign-in with a
    /// too-short password is simply a wrong password); longer than [`Password::MAX_CHARS`] is
    /// cut there, which cannot match any stored password.
    pub fn presented(text: String) -> Self {
        let secret = match text.char_indices().nth(Self::MAX_CHARS + 1) {
            Some((end, _)) => SecretString::from(&text[..end]),
            None => SecretString::from(text),
        };
        Password(secret)
    }

    /// The password, for a strength estimator.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    pub(crate) fn hash_input(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HashParams, TokenHash};

    #[test]
    fn length_is_bounded_in_characters() {
        assert!(matches!(
            Password::new("short".into()),
            Err(Error::PasswordLength { min: 12, .. })
        ));
        // Twelve characters, more than twelve bytes.
        assert!(Password::new("ééééééééééé".into()).is_err());
        assert!(Password::new("éééééééééééé".into()).is_ok());
        assert!(Password::new("x".repeat(257)).is_err());
        assert!(Password::new("x".repeat(256)).is_ok());
    }

    #[test]
    fn debug_shows_nothing() {
        let password = Password::new("correct horse battery staple".into()).unwrap();
        let shown = format!("{password:?}");
        assert!(!shown.contains("horse"), "{shown}");
    }

    #[test]
    fn hashes_and_verifies_like_a_token() {
        let mut rng = rand::rngs::SysRng;
        let params = HashParams::insecure_for_tests();
        let password = Password::new("correct horse battery staple".into()).unwrap();
        let hash = TokenHash::of_password(&password, &params, &mut rng).unwrap();
        assert!(hash.as_phc().starts_with("$scrypt$ln=4,r=8,p=1$"));
        assert!(!hash.as_phc().contains("horse"));
        let again: TokenHash = hash.as_phc().parse().unwrap();
        again.verify_password(&password).unwrap();
        let wrong = Password::presented("correct horse battery stapler".into());
        assert_eq!(again.verify_password(&wrong), Err(Error::Mismatch));
        // An over-long presented password is cut, never matched, never a panic.
        let huge = Password::presented("é".repeat(10_000));
        assert_eq!(again.verify_password(&huge), Err(Error::Mismatch));
    }
}
