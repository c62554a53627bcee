//! People signing in to the dashboard: passwords ([`passwords`]), sessions ([`sessions`]) and
//! the one-time links that let someone set a password the first time ([`enrolments`]).
//!
//! Every secret here is stored only as a hash. Passwords are chosen by people, so they get
//! scrypt with the tokens' parameters, on the same bounded pool. Session and link secrets are
//! 256 random bits, which no one can guess: a single SHA-256 is enough to keep a copied database
//! from yielding them, and it lets a session be found by an indexed lookup on every page view.

mod enrolments;
mod factors;
mod passwords;
mod sessions;
mod totp;

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use token_core::rand::TryRng;
use token_core::rand::rngs::SysRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::model::{Member, Role};
use crate::store::Store;

pub use enrolments::ENROLMENT_LIFETIME;
pub use passwords::check_strength;
pub use sessions::SessionOptions;
pub(crate) use sessions::end_all as end_all_sessions;
pub use totp::TotpSetup;
#[cfg(feature = "test-util")]
pub use totp::app_code;

/// One try at a secret a person knows (a password, a code), already counted against the
/// client's address and the account before the work — so that parallel tries cannot all pass a
/// check made before any fails — and given back when it succeeds.
pub(crate) struct Attempt<'a> {
    taken: Vec<(&'a crate::limiter::FailureLimiter, crate::limiter::Source)>,
}

impl Store {
    /// Takes an attempt for the account (`workspace name`, `email`) from `context`'s address.
    pub(crate) fn attempt(
        &self,
        context: &audit::Context,
        workspace_name: &str,
        email: &str,
    ) -> Result<Attempt<'_>, Error> {
        use crate::limiter::Source;
        let sources = context
            .client_ip
            .map(|ip| (&self.inner.address_limiter, Source::Address(ip)))
            .into_iter()
            .chain([(
                &self.inner.account_limiter,
                Source::Account(sessions::account_key(workspace_name, email)),
            )]);
        let mut attempt = Attempt { taken: Vec::new() };
        for (limiter, source) in sources {
            if let Err(retry_after_secs) = limiter.attempt(source) {
                attempt.succeeded(); // not tried: give back what was taken
                return Err(Error::RateLimited { retry_after_secs });
            }
            attempt.taken.push((limiter, source));
        }
        Ok(attempt)
    }
}

impl Attempt<'_> {
    /// The try succeeded: it does not count against anyone.
    pub(crate) fn succeeded(self) {
        for (limiter, source) in self.taken {
            limiter.forgive(source);
        }
    }
}

/// A 256-bit random secret held by a browser (the session cookie) or carried by a link (an
/// enrolment), as 64 hex digits. Stored only as its SHA-256. `Debug` shows nothing.
pub struct BearerSecret(Zeroizing<String>);

impl BearerSecret {
    const HEX_LEN: usize = 64;

    /// A fresh secret from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::System`] if the generator fails.
    pub fn random() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SysRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|_| Error::System("the operating system's random generator failed"))?;
        Ok(BearerSecret(Zeroizing::new(hex::encode(bytes.as_ref()))))
    }

    /// Takes presented text (a cookie, a path segment) as a secret if it has the right shape:
    /// 64 lower-case hex digits. Anything else is `None`, before any lookup.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == Self::HEX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| BearerSecret(Zeroizing::new(text.to_owned())))
    }

    /// The secret, to set as a cookie or write into a link, once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// What the database stores: hex SHA-256 of the secret.
    fn stored_hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The anti-CSRF token of the session this secret opens: HMAC-SHA-256 of a fixed label
    /// under the secret. A page embeds it in every form; only a page that could read the
    /// session's cookie-bound pages can know it, and it is never stored.
    pub fn csrf_token(&self) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"knowmind dashboard csrf v1");
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` is this session's anti-CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf_token().as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret([REDACTED])")
    }
}

/// A signed-in member's session, as listed on their account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `ses_` and 16 base62 characters: a handle for listing and ending it, not the secret.
    pub id: String,
    /// Whose.
    pub member_id: String,
    /// Their workspace.
    pub workspace_id: String,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When it was last used (updated at most once a minute).
    pub last_seen_at: OffsetDateTime,
    /// When it ends whatever happens (the absolute timeout).
    pub expires_at: OffsetDateTime,
    /// The address it signed in from.
    pub client_ip: Option<String>,
    /// The browser it signed in with.
    pub user_agent: Option<String>,
    /// The password was right but the second factor is still to come: the session opens
    /// nothing until [`Store::complete_sign_in`](crate::Store::complete_sign_in).
    pub awaiting_second_factor: bool,
}

/// A request's signed-in member and their session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub member: Member,
    /// Which session.
    pub session: Session,
    /// Whether the member has a second factor (a confirmed authenticator app).
    pub has_second_factor: bool,
    /// Whether their workspace requires one of everyone.
    pub second_factor_required: bool,
}

impl SignedIn {
    /// Whether they may manage every token, the audit log and OAuth clients (owners and admins).
    pub fn is_admin(&self) -> bool {
        matches!(self.member.role, Role::Owner | Role::Admin)
    }

    /// Whether they must set up a second factor before anything else (their workspace requires
    /// one and they have none).
    pub fn must_add_second_factor(&self) -> bool {
        self.second_factor_required && !self.has_second_factor
    }
}

/// A one-time link that lets someone set their password: an invitation, or the owner's first
/// way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// `enr_` and 16 base62 characters.
    pub id: String,
    /// The workspace they join.
    pub workspace_id: String,
    /// Its name.
    pub workspace_name: String,
    /// Their email.
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// The member it enrols, if they exist already (the owner created with the workspace).
    pub member_id: Option<String>,
    /// When the link stops working.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_redacted() {
        let a = BearerSecret::random().unwrap();
        let b = BearerSecret::random().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose_secret()));
        assert_ne!(a.stored_hash(), a.expose_secret());
        let parsed = BearerSecret::parse(a.expose_secret()).unwrap();
        assert_eq!(parsed.stored_hash(), a.stored_hash());
    }

    #[test]
    fn only_64_lower_hex_digits_parse() {
        let good = "0123456789abcdef".repeat(4);
        assert!(BearerSecret::parse(&good).is_some());
        for bad in [
            "",
            &good[..63],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replace('a', "g"),
        ] {
            assert!(BearerSecret::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_are_per_session_and_checked() {
        let a = BearerSecret::random().unwrap();
        let b = BearerSecret::random().unwrap();
        assert_ne!(a.csrf_token(), b.csrf_token());
        assert!(a.csrf_matches(&a.csrf_token()));
        assert!(!a.csrf_matches(&b.csrf_token()));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_token().contains(a.expose_secret()));
    }
}
