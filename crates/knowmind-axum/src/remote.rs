//! Verifying tokens through a knowmind server (`POST /v1/tokens/verify`), for services that do not
//! share its database. Valid answers are cached for a short time (5 s by default, never past the
//! token's expiry), keyed by a keyed hash of the whole token and the required scopes; refusals
//! are never cached, so a token that becomes valid (or a fixed scope) is seen at once, and a
//! revoked one within the TTL. Failed verifications are limited per client address here, before
//! the question is sent: the knowmind server counts failures per introspect token, and one
//! client sending garbage must not use up this service's budget there.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use token_core::rand::TryRng;
use token_core::{Clock, Scopes, TokenId};
use token_store::SystemClock;
use token_store::{Call, FailureLimiter, Principal, Source};
use zeroize::Zeroizing;

use crate::problem::ApiError;

/// A client of a knowmind server's verification endpoint, holding an `introspect` token.
#[derive(Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    verify_url: String,
    credential: SecretString,
    ttl: Duration,
    key: Zeroizing<[u8; 32]>,
    /// Valid answers until they expire: bounded, evicting the least useful entries when full.
    cache: quick_cache::sync::Cache<[u8; 32], (Instant, Principal)>,
    limiter: FailureLimiter,
}

impl std::fmt::Debug for RemoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteVerifier")
            .field("verify_url", &self.inner.verify_url)
            .field("credential", &"[REDACTED]")
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

/// Most answers kept.
const CACHE_CAPACITY: usize = 10_000;

/// Why a [`RemoteVerifier`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The knowmind server's URL is not `http://…` or `https://…`.
    #[error("the knowmind server URL must start with http:// or https://")]
    Url,
    /// The HTTP client could not be set up (TLS roots, say).
    #[error("the HTTP client cannot be set up: {0}")]
    Client(String),
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
}

#[derive(serde::Serialize)]
struct Question<'a> {
    token: &'a str,
    scopes: Scopes,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<std::net::IpAddr>,
    method: &'a str,
    route: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct Answer {
    code: String,
    token_id: Option<TokenId>,
    workspace: Option<String>,
    owner_id: Option<String>,
    scopes: Option<Scopes>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    oauth_client_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    rotation_due_at: Option<OffsetDateTime>,
}

impl RemoteVerifier {
    /// A verifier asking the knowmind server at `base_url` (e.g. `https://knowmind.internal`),
    /// authenticating with an `introspect` token, caching valid answers for `ttl`.
    ///
    /// # Errors
    /// [`RemoteError`]: an unusable URL or TLS setup.
    pub fn new(
        base_url: &str,
        introspect_token: SecretString,
        ttl: Duration,
    ) -> Result<Self, RemoteError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RemoteError::Url);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        token_core::rand::rngs::SysRng
            .try_fill_bytes(key.as_mut())
            .map_err(|_| RemoteError::Random)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!(
                "knowmind-remote-verifier/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| RemoteError::Client(e.without_url().to_string()))?;
        Ok(RemoteVerifier {
            inner: Arc::new(Inner {
                client,
                verify_url: format!("{base}/v1/tokens/verify"),
                credential: introspect_token,
                ttl,
                key,
                cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
                limiter: FailureLimiter::new(20, Duration::from_secs(60), Arc::new(SystemClock)),
            }),
        })
    }

    /// The cache key of an answer: the token, the scopes asked for, and the client's address
    /// (a token may be allowed from some addresses only, so an answer for one address says
    /// nothing about another).
    fn cache_key(&self, presented: &str, required: Scopes, client_ip: Option<IpAddr>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.inner.key.as_ref());
        h.update(presented.as_bytes());
        h.update(required.to_string().as_bytes());
        match client_ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(ip)) => {
                h.update([4].iter().chain(&ip.octets()).copied().collect::<Vec<u8>>())
            }
            Some(IpAddr::V6(ip)) => {
                h.update([6].iter().chain(&ip.octets()).copied().collect::<Vec<u8>>())
            }
            None => h.update([0]),
        }
        h.finalize().into()
    }

    /// Asks whether `presented` grants `required` for `call`.
    ///
    /// # Errors
    /// 401 for an unusable token (whatever the reason), 403 naming the missing scope, 429 when
    /// the client's address (20 failures a minute) or this service (at the server) failed too
    /// often, 503 when the server cannot be reached or is busy.
    pub async fn verify(
        &self,
        presented: &str,
        required: Scopes,
        call: &Call,
    ) -> Result<Principal, ApiError> {
        if presented.parse::<token_core::Token>().is_err() {
            return Err(ApiError::unauthorized()); // malformed: no need to ask
        }
        let key = self.cache_key(presented, required, call.client_ip);
        let now = Instant::now();
        if let Some((_, principal)) = self.inner.cache.get(&key).filter(|(until, _)| *until > now) {
            return Ok(principal);
        }
        let source = call.client_ip.map(Source::Address);
        if let Some(source) = source {
            self.inner
                .limiter
                .check(source)
                .map_err(ApiError::rate_limited)?;
        }
        let question = Question {
            token: presented,
            scopes: required,
            client_ip: call.client_ip,
            method: &call.method,
            route: &call.route,
            user_agent: call.user_agent.as_deref(),
        };
        let response = self
            .inner
            .client
            .post(&self.inner.verify_url)
            .bearer_auth(self.inner.credential.expose_secret())
            .json(&question)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "knowmind server unreachable");
                ApiError::busy()
            })?;
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "knowmind server refused the verification request");
            return Err(ApiError::busy());
        }
        let answer: Answer = response.json().await.map_err(|_| ApiError::busy())?;
        match answer.code.as_str() {
            "VALID" => {
                let (Some(token_id), Some(workspace_id), Some(scopes)) =
                    (answer.token_id, answer.workspace, answer.scopes)
                else {
                    return Err(ApiError::busy());
                };
                let principal = Principal {
                    token_id,
                    workspace_id,
                    owner_id: answer.owner_id.unwrap_or_default(),
                    scopes,
                    expires_at: answer.expires_at,
                    oauth_client_id: answer.oauth_client_id,
                    rotation_due_at: answer.rotation_due_at,
                };
                // Trusted for the TTL, but never past the token's own expiry.
                let ttl = match answer.expires_at {
                    Some(at) => {
                        let left = Duration::try_from(at - SystemClock.now()).unwrap_or_default();
                        left.min(self.inner.ttl)
                    }
                    None => self.inner.ttl,
                };
                if !ttl.is_zero() {
                    self.inner.cache.insert(key, (now + ttl, principal.clone()));
                }
                Ok(principal)
            }
            "INSUFFICIENT_SCOPE" => Err(ApiError::forbidden(required)),
            "RATE_LIMITED" => Err(ApiError::rate_limited(60)),
            _ => {
                if let Some(source) = source {
                    self.inner.limiter.failure(source);
                }
                Err(ApiError::unauthorized())
            }
        }
    }
}
