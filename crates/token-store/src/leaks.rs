//! Leaked tokens: whoever finds one may kill it. A presented token is checked like any other
//! (checksum, id lookup, scrypt on the bounded pool) and, if it is live, revoked with its family
//! for reason `leaked`, with where it was found; its owner learns of it from the audit log and,
//! where the workspace has webhooks, a `token.revoked` delivery. Nothing here says whether a
//! token existed: the caller answers the same whatever happened.

use std::collections::HashMap;
use std::net::IpAddr;

use audit::Context;
use token_core::{Token, TokenHash, TokenId, TokenKind};

use crate::error::Error;
use crate::limiter::Source;
use crate::model::{Revocation, TokenState};
use crate::store::Store;

/// What a report of leaked tokens came to (for logs and tests, never for the reporter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    /// Well-formed tokens of a kind that can be revoked here, each id once.
    pub checked: usize,
    /// Live tokens whose secret matched, now revoked.
    pub revoked: usize,
    /// The tokens proven real (their secret matched): the live ones, and with `prove_all` the
    /// expired and revoked ones too.
    pub genuine: Vec<TokenId>,
}

impl Store {
    /// Counts a report of leaked tokens against its address (per /64 for IPv6): at most 60
    /// an hour, as GitHub allows, so that the scrypt work reports cause stays bounded.
    ///
    /// # Errors
    /// [`Error::RateLimited`].
    pub fn count_leak_report(&self, client_ip: Option<IpAddr>) -> Result<(), Error> {
        // The limiter counts an IPv6 address per /64 itself.
        let Some(ip) = client_ip else {
            return Ok(());
        };
        self.inner
            .leak_limiter
            .attempt(Source::Address(ip))
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })
    }

    /// Revokes every live token among `presented` whose secret matches, with its family, for
    /// reason `leaked` and `source` (where it was found). Unknown and malformed tokens are
    /// skipped, and so are expired and revoked ones unless `prove_all` (for a reporter who is
    /// told which tokens were real); each id is checked once. A wrong secret counts against the
    /// reporter's address like a failed verification (token ids are public, so anyone can forge
    /// a well-formed token for a known id), and an address over its budget stops the work. A
    /// canary's secret raises its alarm instead of revoking it. Reports run one at a time.
    ///
    /// # Errors
    /// [`Error::Busy`] when the scrypt pool is saturated (what was revoked stays revoked; try
    /// again), [`Error::RateLimited`], [`Error::Storage`].
    pub async fn revoke_leaked(
        &self,
        presented: &[String],
        source: &str,
        prove_all: bool,
        context: &Context,
    ) -> Result<LeakReport, Error> {
        let mut tokens: HashMap<TokenId, Token> = HashMap::new();
        for text in presented {
            if let Ok(token) = text.trim().parse::<Token>()
                && matches!(token.kind(), TokenKind::Api | TokenKind::OAuthAccess)
            {
                tokens.entry(token.id()).or_insert(token);
            }
        }
        let source: String = source
            .chars()
            .filter(|c| !c.is_control())
            .take(150)
            .collect();
        let reason = if source.is_empty() {
            "leaked: reported to the revocation endpoint".to_owned()
        } else {
            format!("leaked: found at {source}")
        };
        let mut report = LeakReport {
            checked: tokens.len(),
            ..LeakReport::default()
        };
        // One report at a time: anonymous reports must not take the hash pool from sign-ins.
        let _turn = self.inner.leak_reports.lock().await;
        let source_of_failures = context.client_ip.map(Source::Address);
        for (id, token) in tokens {
            let Some(row) = self.token_row(id).await? else {
                continue;
            };
            // Read with the store's clock: active, or rotated and in its grace period.
            let live = row.record.state == TokenState::Active;
            if !live && !prove_all {
                continue;
            }
            let stored: TokenHash = row.phc.parse().map_err(|_| Error::corrupt("stored hash"))?;
            let presented: Token = token
                .expose_secret()
                .parse()
                .map_err(|_| Error::corrupt("presented token"))?;
            if let Some(source) = source_of_failures {
                self.inner
                    .address_limiter
                    .check(source)
                    .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
            }
            let matched = self
                .inner
                .hasher
                .run(move || stored.verify(&presented).is_ok())
                .await
                .map_err(|_| Error::Busy)?;
            if !matched {
                if let Some(source) = source_of_failures {
                    self.inner.address_limiter.failure(source);
                }
                continue;
            }
            report.genuine.push(id);
            if row.record.canary {
                // Whoever reports it holds it: the alarm it was planted for, not a revocation
                // (which would silence it).
                let call = crate::model::Call {
                    client_ip: context.client_ip,
                    method: "POST".into(),
                    route: "/v1/credentials/revoke".into(),
                    user_agent: context.user_agent.clone(),
                    ..crate::model::Call::default()
                };
                self.canary_used(id, &row.record.workspace_id, &call).await;
                continue;
            }
            if !live {
                continue;
            }
            match self
                .revoke_token(
                    &row.record.workspace_id,
                    id,
                    &Revocation::family(reason.clone()),
                    context,
                )
                .await
            {
                Ok(_) => report.revoked += 1,
                Err(Error::NotActive { .. } | Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
