//! The verification pipeline: one entry point, [`Store::verify`].
//!
//! 1. parse and checksum — no I/O, garbage costs nanoseconds;
//! 2. the cache of verified tokens — a fresh hit needs no database read and no scrypt, and is
//!    served even to a source over its failure limit;
//! 3. on a miss, the source's failure limit, then one indexed lookup by id — unknown and expired
//!    tokens, and tokens of another workspace when the call is confined to one, are refused
//!    without running scrypt;
//! 4. scrypt on the bounded pool — [`Error::Busy`] at once when it is saturated; success fills
//!    the cache, and a hash with outdated parameters is upgraded. A revoked token is checked too
//!    (at most once a minute per token once its holder is proven): reuse of a revoked token is a
//!    security event only when the presenter holds its secret, since its id is public;
//! 5. expiry and scope against the required scopes, with `now` from the store's clock.
//!
//! Every verification of a known token id becomes a usage record. An accepted call's record has
//! reserved room in the writer's queue (or the call is refused as busy) and is written when the
//! caller reports the response status ([`Verified::finish`]) or, failing that, when the
//! [`Verified`] is dropped. Refusals are recorded while the queue is less than half full: an
//! attacker can cause refusals of a known id at will, and must not crowd out accepted calls.

use audit::{UsageOutcome, UsageRecord, UsageSlot};
use time::OffsetDateTime;
use token_core::{Grant, Scopes, Token, TokenHash, TokenId};

use std::sync::Arc;

use crate::cache::{Cached, Lookup, ReadMark, SharedPrincipal};
use crate::error::{Error, Refusal};
use crate::limiter::{FailureLimiter, Source};
use crate::model::{Call, Principal, Standing, TokenState, state_at};
use crate::rows::{TokenRow, principal_of};
use crate::store::Store;

/// An accepted token. Report the response status with [`Verified::finish`] so the usage
/// record carries it; dropping it records the call without a status.
#[derive(Debug)]
pub struct Verified {
    token: Arc<Cached>,
    pending: Option<(UsageSlot, UsageRecord)>,
}

impl Verified {
    /// Who the token speaks for.
    pub fn principal(&self) -> &Principal {
        &self.token.principal
    }

    /// The networks the token may be used from (empty: anywhere).
    pub fn allowed_networks(&self) -> &token_core::Networks {
        &self.token.allowed
    }

    /// Who the token speaks for, shared: a reference count, not a copy of its strings (the
    /// cache entry holds the same one).
    pub fn shared_principal(&self) -> SharedPrincipal {
        SharedPrincipal::of(&self.token)
    }

    /// Records the call with its response `status`.
    pub fn finish(mut self, status: u16) {
        if let Some((slot, mut record)) = self.pending.take() {
            record.status = Some(status);
            slot.record(record);
        }
    }

    /// Records the call with its response `status`; the returned handle resolves once the
    /// record is committed.
    pub fn finish_committed(mut self, status: u16) -> Option<audit::Committed> {
        self.pending.take().map(|(slot, mut record)| {
            record.status = Some(status);
            slot.record_committed(record)
        })
    }
}

impl Drop for Verified {
    fn drop(&mut self) {
        if let Some((slot, record)) = self.pending.take() {
            slot.record(record);
        }
    }
}

/// Why authentication failed, before it is turned into a usage record and an [`Error`].
enum Failure {
    /// Refused; the workspace is known when the id is (and then the refusal is recorded).
    Refused(Refusal, Option<String>),
    /// A revoked token presented by someone who holds its secret.
    Reused {
        workspace: String,
        /// It was rotated: a successor exists, and the workspace's reuse detection applies.
        rotated: bool,
    },
    RateLimited(u64),
    Busy(String),
    Storage(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Storage(e)
    }
}

impl Store {
    /// Verifies a presented token for a call that needs `required`.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for any unusable token (malformed, unknown id, wrong secret,
    /// revoked, expired, another workspace's when [`Call::workspace`] is set — the [`Refusal`]
    /// says which, for logs only); [`Error::Forbidden`] naming the missing scopes;
    /// [`Error::RateLimited`] when the call's source has failed too often and the cache cannot
    /// answer; [`Error::Busy`] when the scrypt pool or the usage writer is saturated;
    /// [`Error::Storage`].
    #[tracing::instrument(skip_all, fields(route = %call.route))]
    pub async fn verify(
        &self,
        presented: &str,
        required: Scopes,
        call: &Call,
    ) -> Result<Verified, Error> {
        let Ok(token) = presented.parse::<Token>() else {
            return Err(Error::Unauthorized(Refusal::Malformed));
        };
        let now = self.now();
        let usage_writer = &self.inner.usage;
        let refused = |workspace: String, outcome, status| {
            usage_writer.record_if_room(usage(&token, workspace, call, now, outcome, status));
        };
        let known = match self.authenticate(&token, now, call).await {
            Ok(known) => known,
            Err(Failure::Refused(refusal, workspace)) => {
                tracing::info!(token_id = %token.id(), reason = refusal.code(), "token refused");
                if let (Some(workspace), Some(outcome)) = (workspace, refusal.usage_outcome()) {
                    refused(workspace, outcome, 401);
                }
                return Err(Error::Unauthorized(refusal));
            }
            Err(Failure::Reused { workspace, rotated }) => {
                tracing::warn!(token_id = %token.id(), "a revoked token was presented by its holder");
                refused(workspace.clone(), UsageOutcome::Revoked, 401);
                Box::pin(self.report_reuse(token.id(), &workspace, rotated, call, now)).await;
                return Err(Error::Unauthorized(Refusal::Revoked));
            }
            Err(Failure::RateLimited(retry_after_secs)) => {
                return Err(Error::RateLimited { retry_after_secs });
            }
            Err(Failure::Busy(workspace)) => {
                refused(workspace, UsageOutcome::Busy, 503);
                return Err(Error::Busy);
            }
            Err(Failure::Storage(e)) => return Err(e),
        };
        let principal = &known.principal;
        if known.canary {
            // Whoever holds it has the secret: that is the leak it was planted to reveal. They
            // are refused as for a token that does not exist.
            tracing::warn!(token_id = %token.id(), "a canary token was used");
            refused(principal.workspace_id.clone(), UsageOutcome::Canary, 401);
            Box::pin(self.canary_used(token.id(), &principal.workspace_id, call)).await;
            return Err(Error::Unauthorized(Refusal::Canary));
        }
        if !known.allowed.allows(call.client_ip) {
            tracing::info!(token_id = %token.id(), reason = "ADDRESS_NOT_ALLOWED", "token refused");
            refused(
                principal.workspace_id.clone(),
                UsageOutcome::AddressNotAllowed,
                401,
            );
            return Err(Error::Unauthorized(Refusal::AddressNotAllowed));
        }
        let grant = Grant {
            scopes: principal.scopes,
            expires_at: principal.expires_at,
        };
        match grant.check(required, now) {
            Ok(()) => {}
            Err(token_core::Error::MissingScopes { missing }) => {
                refused(
                    principal.workspace_id.clone(),
                    UsageOutcome::InsufficientScope,
                    403,
                );
                return Err(Error::Forbidden { missing });
            }
            // `authenticate` refuses expired tokens; anything else the grant says is a refusal.
            Err(_) => {
                refused(principal.workspace_id.clone(), UsageOutcome::Expired, 401);
                return Err(Error::Unauthorized(Refusal::Expired));
            }
        }
        // The first accepted use of a rotation's new token completes its hand-over (once; a
        // failure leaves it for the next call, and the deadline still holds).
        if let Some(old) = known.handover_of
            && let Err(e) =
                Box::pin(self.complete_handover(&token, &known, old, call.client_ip, now)).await
        {
            tracing::warn!(token_id = %token.id(), error = %e, "hand-over not recorded; the next call retries");
        }
        // An accepted call is served only if its record has room: if the writer cannot keep up,
        // say so rather than serve the call unrecorded.
        let slot = usage_writer.reserve().map_err(|_| Error::Busy)?;
        let record = usage(
            &token,
            principal.workspace_id.clone(),
            call,
            now,
            UsageOutcome::Accepted,
            0,
        );
        Ok(Verified {
            token: known,
            pending: Some((
                slot,
                UsageRecord {
                    status: None,
                    ..record
                },
            )),
        })
    }

    /// The pipeline without usage recording: only for the load harness, to measure what
    /// recording costs. Never use it to serve requests — every call must be recorded.
    ///
    /// # Errors
    /// As [`Store::verify`].
    #[cfg(feature = "bench-internals")]
    #[doc(hidden)]
    pub async fn verify_unrecorded(
        &self,
        presented: &str,
        required: Scopes,
    ) -> Result<SharedPrincipal, Error> {
        let token: Token = presented
            .parse()
            .map_err(|_| Error::Unauthorized(Refusal::Malformed))?;
        let now = self.now();
        let known = match self.authenticate(&token, now, &Call::default()).await {
            Ok(known) => known,
            Err(Failure::Refused(refusal, _)) => return Err(Error::Unauthorized(refusal)),
            Err(Failure::Reused { .. }) => return Err(Error::Unauthorized(Refusal::Revoked)),
            Err(Failure::RateLimited(retry_after_secs)) => {
                return Err(Error::RateLimited { retry_after_secs });
            }
            Err(Failure::Busy(_)) => return Err(Error::Busy),
            Err(Failure::Storage(e)) => return Err(e),
        };
        let grant = Grant {
            scopes: known.principal.scopes,
            expires_at: known.principal.expires_at,
        };
        grant.check(required, now)?;
        Ok(SharedPrincipal::of(&known))
    }

    /// Steps 2 to 4: is this the token it claims to be, and is it usable now?
    async fn authenticate(
        &self,
        token: &Token,
        now: OffsetDateTime,
        call: &Call,
    ) -> Result<Arc<Cached>, Failure> {
        let monotonic = self.inner.clock.0.monotonic();
        let stale = match self
            .inner
            .cache
            .get(token, monotonic, self.inner.max_staleness)
        {
            Lookup::Fresh(cached) => {
                confined(&cached.principal.workspace_id, call)?;
                // The digest matched the whole token: whoever presented it holds the secret.
                return usable(cached, now, true);
            }
            Lookup::Stale(cached) => Some(cached),
            Lookup::Miss => None,
        };
        // The database and scrypt, boxed: their futures are large, and inlined they made every
        // verification's future 2 KB, cached or not (328 bytes now).
        Box::pin(self.authenticate_uncached(token, now, stale, call)).await
    }

    /// [`Store::authenticate`] when the cache has no fresh answer: `stale` is the cached entry
    /// whose check is too old, if there is one.
    async fn authenticate_uncached(
        &self,
        token: &Token,
        now: OffsetDateTime,
        stale: Option<Arc<Cached>>,
        call: &Call,
    ) -> Result<Arc<Cached>, Failure> {
        // Before any read: an answer is cached only if no revocation was seen since.
        let mark = self.inner.cache.begin_read(self.inner.clock.0.monotonic());
        let row = match stale {
            Some(cached) => {
                // A proven token: re-reading its state is one lookup, whatever the limiter says.
                let row = self.lookup(token.id(), call).await?;
                if row.phc == cached.phc {
                    // Same stored hash the secret was proven against: only the state may have
                    // changed, and the row says what it is now.
                    let fresh = cached_from_row(&row);
                    self.inner.cache.insert(token, fresh.clone(), &mark);
                    return usable(fresh, now, true);
                }
                self.inner.cache.evict(token.id());
                row
            }
            None => {
                let budgets = self.budgets(call);
                for (limiter, source) in &budgets {
                    limiter.check(*source).map_err(Failure::RateLimited)?;
                }
                let counted = |failure: Failure| {
                    if matches!(failure, Failure::Refused(..) | Failure::Reused { .. }) {
                        for (limiter, source) in &budgets {
                            limiter.failure(*source);
                        }
                    }
                    failure
                };
                return self
                    .authenticate_row(token, now, call, &mark)
                    .await
                    .map_err(counted);
            }
        };
        self.prove(token, row, now, &mark).await
    }

    /// A cache miss: one lookup, then scrypt.
    async fn authenticate_row(
        &self,
        token: &Token,
        now: OffsetDateTime,
        call: &Call,
        mark: &ReadMark<'_>,
    ) -> Result<Arc<Cached>, Failure> {
        let row = self.lookup(token.id(), call).await?;
        self.prove(token, row, now, mark).await
    }

    /// Checks the presented secret against the row's hash (refusing unusable tokens without
    /// scrypt where that is safe) and caches the result.
    async fn prove(
        &self,
        token: &Token,
        row: TokenRow,
        now: OffsetDateTime,
        mark: &ReadMark<'_>,
    ) -> Result<Arc<Cached>, Failure> {
        let workspace = row.record.workspace_id.clone();
        let unproven = usable(cached_from_row(&row), now, false);
        let known = match unproven {
            Ok(known) => known,
            // Revoked: worth one scrypt to learn whether the presenter holds the secret (a
            // reuse to report), unless its holder was proven within the last minute.
            Err(Failure::Refused(Refusal::Revoked, _))
                if !self.reuse_recently_reported(token.id()) =>
            {
                return match self.check_secret(token, &row).await {
                    Ok(Some(_)) => Err(Failure::Reused {
                        workspace,
                        rotated: row.record.rotated_to.is_some(),
                    }),
                    Ok(None) => Err(Failure::Refused(Refusal::WrongSecret, Some(workspace))),
                    // Could not check: still refused as revoked.
                    Err(_) => Err(Failure::Refused(Refusal::Revoked, Some(workspace))),
                };
            }
            // Expired (or revoked and already reported): refused without scrypt.
            Err(failure) => return Err(failure),
        };
        match self.check_secret(token, &row).await {
            Ok(Some(upgraded)) => {
                let known = match upgraded {
                    Some(new) => {
                        self.spawn_rehash(token.id(), &workspace, row.phc.clone(), &new);
                        Arc::new(Cached {
                            principal: known.principal.clone(),
                            standing: known.standing,
                            rotated: known.rotated,
                            phc: new.as_phc().to_owned(),
                            allowed: known.allowed.clone(),
                            handover_of: known.handover_of,
                            canary: known.canary,
                        })
                    }
                    None => known,
                };
                self.inner.cache.insert(token, known.clone(), mark);
                Ok(known)
            }
            Ok(None) => Err(Failure::Refused(Refusal::WrongSecret, Some(workspace))),
            Err(Failure::Busy(_)) => Err(Failure::Busy(workspace)),
            Err(other) => Err(other),
        }
    }

    /// scrypt on the pool: `Some(upgraded hash, if the parameters are outdated)` when the
    /// secret matches, `None` when it does not.
    async fn check_secret(
        &self,
        token: &Token,
        row: &TokenRow,
    ) -> Result<Option<Option<TokenHash>>, Failure> {
        let stored: TokenHash = row
            .phc
            .parse()
            .map_err(|_| Failure::Storage(Error::corrupt("stored hash")))?;
        let params = self.inner.params;
        let presented: Token = token
            .expose_secret()
            .parse()
            .map_err(|_| Failure::Refused(Refusal::Malformed, None))?;
        let outcome = self
            .inner
            .hasher
            .run(move || {
                if stored.verify(&presented).is_err() {
                    return None;
                }
                // Upgrade outdated parameters now, while the plaintext is at hand.
                Some(if stored.needs_rehash(&params) {
                    TokenHash::new(&presented, &params, &mut token_core::rand::rngs::SysRng).ok()
                } else {
                    None
                })
            })
            .await;
        outcome.map_err(|_| Failure::Busy(row.record.workspace_id.clone()))
    }

    /// The row of `id`, if it exists and the call may see it.
    async fn lookup(&self, id: TokenId, call: &Call) -> Result<TokenRow, Failure> {
        let row = self
            .token_row(id)
            .await?
            .ok_or(Failure::Refused(Refusal::NotFound, None))?;
        confined(&row.record.workspace_id, call)?;
        Ok(row)
    }

    /// The failure budgets a call's costly work counts against: its client address; or, for a
    /// call a resource server reported, that client of that server (the same budget as an
    /// address) and the server as a whole (a ceiling, so that many clients cannot make it
    /// run the hash pool without bound). None for a call with neither address nor reporter.
    fn budgets(&self, call: &Call) -> Vec<(&FailureLimiter, Source)> {
        match (call.reported_by, call.client_ip) {
            (Some(reporter), client) => vec![
                (
                    &self.inner.address_limiter,
                    Source::Reported { reporter, client },
                ),
                (&self.inner.reporter_limiter, Source::Reporter(reporter)),
            ],
            (None, Some(ip)) => vec![(&self.inner.address_limiter, Source::Address(ip))],
            (None, None) => Vec::new(),
        }
    }
}

/// A token outside the call's workspace is, to this call, a token that does not exist: refused
/// as unknown, with nothing recorded.
fn confined(workspace: &str, call: &Call) -> Result<(), Failure> {
    match &call.workspace {
        Some(only) if only != workspace => Err(Failure::Refused(Refusal::NotFound, None)),
        _ => Ok(()),
    }
}

fn cached_from_row(row: &TokenRow) -> Arc<Cached> {
    Arc::new(Cached {
        principal: principal_of(&row.record),
        standing: Standing::of_record(&row.record),
        rotated: row.record.rotated_to.is_some(),
        phc: row.phc.clone(),
        allowed: row.record.allowed_networks.clone(),
        handover_of: row.handover_of,
        canary: row.record.canary,
    })
}

/// Refuses a revoked or expired token, by the one rule ([`state_at`]: revocation first).
/// `proven`: the presenter is known to hold the secret, so a revoked token is a reuse.
fn usable(known: Arc<Cached>, now: OffsetDateTime, proven: bool) -> Result<Arc<Cached>, Failure> {
    let workspace = || known.principal.workspace_id.clone();
    match state_at(now, known.standing, known.principal.expires_at) {
        TokenState::Active => Ok(known),
        TokenState::Revoked if proven => Err(Failure::Reused {
            workspace: workspace(),
            rotated: known.rotated,
        }),
        TokenState::Revoked => Err(Failure::Refused(Refusal::Revoked, Some(workspace()))),
        TokenState::Expired => Err(Failure::Refused(Refusal::Expired, Some(workspace()))),
    }
}

fn usage(
    token: &Token,
    workspace: String,
    call: &Call,
    at: OffsetDateTime,
    outcome: UsageOutcome,
    status: u16,
) -> UsageRecord {
    UsageRecord {
        at,
        token_id: token.id(),
        workspace_id: Some(workspace),
        client_ip: call.client_ip,
        method: call.method.clone(),
        route: call.route.clone(),
        status: (status != 0).then_some(status),
        user_agent: call.user_agent.clone(),
        outcome,
        reported_by: call.reported_by,
    }
}
