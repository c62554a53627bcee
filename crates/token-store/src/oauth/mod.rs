//! knowmind as an OAuth 2.1 authorization server for connectors: the client registry
//! ([`clients`]), consent ([`consent`]), the token endpoint ([`token`]), ending grants
//! ([`revocation`]), connections ([`connections`]), and the checks they share (redirect
//! URIs, PKCE, client authentication).
//!
//! Access tokens (`kmo_`) are rows of the `tokens` table that name their client and grant, so
//! the one verification pipeline — cache, revocation sync across instances, usage records —
//! serves them, and every service behind `RequireScope` accepts them unchanged. They are hashed
//! with scrypt like API tokens; that is the only scrypt a token request pays. Refresh tokens
//! (`kmr_`), client secrets (`kmc_`) and authorization codes carry 190–256 random bits and are
//! stored as SHA-256: nobody can guess them, so a slow hash would buy nothing but latency, and
//! a refresh stays within the cold-verification budget (one scrypt, for the new access token).

mod clients;
mod connections;
mod consent;
mod revocation;
mod token;

use std::net::IpAddr;

use base64ct::Encoding;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use token_core::{Scope, Scopes, Token};

use crate::error::Error;

pub use consent::{AuthorizationRequest, Consent};
pub use revocation::RefreshState;
pub use token::IssuedTokens;

/// How long an authorization code lives.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
/// How long an access token lives unless [`crate::StoreOptions::oauth_access_lifetime`] says
/// otherwise.
pub const ACCESS_LIFETIME: Duration = Duration::hours(1);
/// How long a refresh token lives unused (each refresh issues a new one).
pub const REFRESH_LIFETIME: Duration = Duration::days(30);

/// The scopes a connector may ever be given. `admin` and `introspect` are never granted
/// through OAuth: a connector manages nothing and verifies nobody's tokens.
pub const GRANTABLE: [Scope; 2] = [Scope::Read, Scope::Write];

/// How a client proves who it is at the token, revocation and introspection endpoints: its id,
/// and its secret when it is confidential (HTTP Basic or `client_secret` in the form).
pub struct ClientCredentials {
    /// The `client_id`.
    pub client_id: String,
    /// The `client_secret`, if one was presented.
    pub secret: Option<SecretString>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// What the database keeps of a secret of 190 or more random bits: hex SHA-256.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is the one whose digest is `stored`, compared in constant time.
pub(crate) fn digest_matches(secret: &str, stored: &str) -> bool {
    bool::from(digest(secret).as_bytes().ct_eq(stored.as_bytes()))
}

/// Scopes a connector asked for, from the `scope` parameter (space-separated). Only `read`
/// and `write` can be asked for; anything else is `invalid_scope`.
///
/// # Errors
/// [`Error::OAuth`] `invalid_scope`.
pub fn requested_scopes(text: &str) -> Result<Scopes, Error> {
    let mut scopes = Scopes::default();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let scope = GRANTABLE
            .into_iter()
            .find(|s| s.as_str() == word)
            .ok_or_else(|| {
                Error::oauth(
                    "invalid_scope",
                    format!("{word:?} cannot be granted through OAuth; ask for read and/or write"),
                )
            })?;
        scopes.insert(scope);
    }
    Ok(scopes)
}

/// `challenge` is the S256 PKCE challenge of `verifier` (RFC 7636 §4.6), which must be 43–128
/// unreserved characters.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = base64ct::Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Checks a PKCE challenge's shape: 43 base64url characters (a SHA-256).
pub(crate) fn check_challenge(challenge: &str) -> Result<(), Error> {
    if challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(Error::oauth(
            "invalid_request",
            "code_challenge must be the S256 challenge: 43 base64url characters",
        ))
    }
}

/// A redirect URI a client may register: `https`, `http` on a loopback address (RFC 8252
/// §7.3), or a private-use scheme with a dot (`com.example.app:/cb`, §7.1); no fragment.
pub(crate) fn check_redirect_uri(text: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::oauth("invalid_redirect_uri", format!("{text:?}: {why}"));
    if text.len() > 2_000 {
        return Err(bad("longer than 2000 characters"));
    }
    let url = url::Url::parse(text).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("a redirect URI cannot have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a redirect URI cannot carry credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                "plain http is only for loopback addresses (127.0.0.1, [::1], localhost)",
            ));
        }
        "javascript" | "data" | "file" | "vbscript" | "blob" => {
            return Err(bad("this scheme cannot be a redirect URI"));
        }
        scheme if scheme.contains('.') => {}
        _ => {
            return Err(bad(
                "use https, http on a loopback address, or a private-use scheme such as \
                 com.example.app",
            ));
        }
    }
    Ok(text.to_owned())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether a presented redirect URI is one of the registered ones: exactly, or — for a
/// registered loopback IP literal — differing only in the port (RFC 8252 §7.3: a native app
/// gets whatever port the system gives it).
pub(crate) fn redirect_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(presented) = url::Url::parse(presented) else {
        return false;
    };
    let literal = |url: &url::Url| {
        url.scheme() == "http"
            && matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
            && is_loopback(url)
    };
    if !literal(&presented) || presented.fragment().is_some() {
        return false;
    }
    registered.iter().any(|r| {
        url::Url::parse(r).is_ok_and(|mut r| {
            literal(&r) && r.set_port(presented.port()).is_ok() && r == presented
        })
    })
}

/// The host a redirect URI sends people to, for the consent page.
pub fn redirect_host(uri: &str) -> String {
    url::Url::parse(uri).map_or_else(
        |_| uri.to_owned(),
        |url| match url.host_str() {
            Some(host) => host.to_owned(),
            None => format!("{}:", url.scheme()),
        },
    )
}

/// A presented token of the expected kind, or `None`.
pub(crate) fn parse_kind(text: &str, kind: token_core::TokenKind) -> Option<Token> {
    text.parse::<Token>().ok().filter(|t| t.kind() == kind)
}

/// Exposes a secret for comparison.
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests;
