//! The verification pipeline: one entry point, [`Store::verify`].
//!
//! 1. parse and checksum — no I/O, garbage costs nanoseconds;
//! 2. the cache of verified tokens — a fresh hit needs no database read and no scrypt;
//! 3. on a miss, one indexed lookup by id — unknown, revoked or expired tokens are refused
//!    without running scrypt;
//! 4. scrypt on the bounded pool — [`Error::Busy`] at once when it is saturated; success fills
//!    the cache, and a hash with outdated parameters is upgraded;
//! 5. expiry and scope against the required scopes, with `now` from the store's clock.
//!
//! Every verification of a known token id becomes a usage record. An accepted call's record has
//! reserved room in the writer's queue (or the call is refused as busy) and is written when the
//! caller reports the response status ([`Verified::finish`]) or, failing that, when the
//! [`Verified`] is dropped. Refusals are recorded while the queue is less than half full: an
//! attacker can cause refusals of a known id at will, and must not crowd out accepted calls.

use audit::{Action, Context, NewEvent, Outcome, UsageOutcome, UsageRecord, UsageSlot};
use serde_json::json;
use time::OffsetDateTime;
use token_core::{Grant, Scopes, Token, TokenHash, TokenId};

use std::sync::Arc;

use crate::cache::{Cached, Lookup};
use crate::error::{Error, Refusal};
use crate::model::{Call, Principal};
use crate::store::{Store, TokenRow, principal_of};

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
    Refused(Refusal, Option<String>),
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
    /// revoked, expired — the [`Refusal`] says which, for logs only); [`Error::Forbidden`] naming
    /// the missing scopes; [`Error::Busy`] when the scrypt pool or the usage writer is saturated;
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
        let known = match self.authenticate(&token, now).await {
            Ok(known) => known,
            Err(Failure::Refused(refusal, workspace)) => {
                tracing::info!(token_id = %token.id(), reason = refusal.code(), "token refused");
                if let Some(workspace) = workspace {
                    let outcome = match refusal {
                        Refusal::Revoked => UsageOutcome::Revoked,
                        Refusal::Expired => UsageOutcome::Expired,
                        _ => UsageOutcome::WrongSecret,
                    };
                    usage_writer.record_if_room(usage(
                        &token,
                        workspace.clone(),
                        call,
                        now,
                        outcome,
                        401,
                    ));
                    if refusal == Refusal::Revoked {
                        Box::pin(self.report_reuse(token.id(), &workspace, call, now)).await;
                    }
                }
                return Err(Error::Unauthorized(refusal));
            }
            Err(Failure::Busy(workspace)) => {
                usage_writer.record_if_room(usage(
                    &token,
                    workspace,
                    call,
                    now,
                    UsageOutcome::Busy,
                    503,
                ));
                return Err(Error::Busy);
            }
            Err(Failure::Storage(e)) => return Err(e),
        };
        let principal = &known.principal;
        let grant = Grant {
            scopes: principal.scopes,
            expires_at: principal.expires_at,
        };
        if let Err(token_core::Error::MissingScopes { missing }) = grant.check(required, now) {
            let workspace = principal.workspace_id.clone();
            usage_writer.record_if_room(usage(
                &token,
                workspace,
                call,
                now,
                UsageOutcome::InsufficientScope,
                403,
            ));
            return Err(Error::Forbidden { missing });
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
    ) -> Result<Principal, Error> {
        let token: Token = presented
            .parse()
            .map_err(|_| Error::Unauthorized(Refusal::Malformed))?;
        let now = self.now();
        let known = match self.authenticate(&token, now).await {
            Ok(known) => known,
            Err(Failure::Refused(refusal, _)) => return Err(Error::Unauthorized(refusal)),
            Err(Failure::Busy(_)) => return Err(Error::Busy),
            Err(Failure::Storage(e)) => return Err(e),
        };
        let grant = Grant {
            scopes: known.principal.scopes,
            expires_at: known.principal.expires_at,
        };
        grant.check(required, now)?;
        Ok(known.principal.clone())
    }

    /// Steps 2 to 4: is this the token it claims to be, and is it usable now?
    async fn authenticate(
        &self,
        token: &Token,
        now: OffsetDateTime,
    ) -> Result<Arc<Cached>, Failure> {
        let stale = match self.inner.cache.get(token, now, self.inner.max_staleness) {
            Lookup::Fresh(cached) => return usable(cached, now),
            Lookup::Stale(cached) => Some(cached),
            Lookup::Miss => None,
        };
        // The database and scrypt, boxed: their futures are large, and inlined they made every
        // verification's future 2 KB, cached or not (328 bytes now).
        Box::pin(self.authenticate_uncached(token, now, stale)).await
    }

    /// [`Store::authenticate`] when the cache has no fresh answer: `stale` is the cached entry
    /// whose check is too old, if there is one.
    async fn authenticate_uncached(
        &self,
        token: &Token,
        now: OffsetDateTime,
        stale: Option<Arc<Cached>>,
    ) -> Result<Arc<Cached>, Failure> {
        let row = match stale {
            Some(cached) => {
                let row = self.lookup(token.id()).await?;
                if row.phc == cached.phc {
                    // Same stored hash the secret was proven against: only the state may have
                    // changed, and the row says what it is now.
                    let fresh = cached_from_row(&row);
                    self.inner.cache.insert(token, fresh.clone(), now);
                    return usable(fresh, now);
                }
                self.inner.cache.evict(token.id());
                row
            }
            None => self.lookup(token.id()).await?,
        };
        // Refuse revoked and expired tokens before spending scrypt on them.
        let known = usable(cached_from_row(&row), now)?;
        let stored: TokenHash = row
            .phc
            .parse()
            .map_err(|_| Failure::Storage(Error::Storage(audit::Error::Corrupt("stored hash"))))?;
        let params = self.inner.params;
        let presented: Token = token
            .expose_secret()
            .parse()
            .map_err(|_| Failure::Refused(Refusal::Malformed, None))?;
        let outcome = self
            .inner
            .hasher
            .run(move || {
                stored.verify(&presented)?;
                // Upgrade outdated parameters now, while the plaintext is at hand.
                let upgraded = if stored.needs_rehash(&params) {
                    TokenHash::new(&presented, &params, &mut token_core::rand::rngs::SysRng).ok()
                } else {
                    None
                };
                Ok::<_, token_core::Error>(upgraded)
            })
            .await;
        match outcome {
            Ok(Ok(upgraded)) => {
                let known = match upgraded {
                    Some(new) => {
                        self.spawn_rehash(
                            token.id(),
                            &known.principal.workspace_id,
                            row.phc.clone(),
                            &new,
                        );
                        Arc::new(Cached {
                            principal: known.principal.clone(),
                            revoked_at: known.revoked_at,
                            phc: new.as_phc().to_owned(),
                        })
                    }
                    None => known,
                };
                self.inner.cache.insert(token, known.clone(), now);
                Ok(known)
            }
            Ok(Err(_)) => Err(Failure::Refused(
                Refusal::WrongSecret,
                Some(row.record.workspace_id),
            )),
            Err(_) => Err(Failure::Busy(row.record.workspace_id)),
        }
    }

    async fn lookup(&self, id: TokenId) -> Result<TokenRow, Failure> {
        self.token_row(id)
            .await?
            .ok_or(Failure::Refused(Refusal::NotFound, None))
    }

    /// Stores an upgraded hash (if the row still holds the old one) and records it.
    fn spawn_rehash(&self, id: TokenId, workspace: &str, old_phc: String, new: &TokenHash) {
        let store = self.clone();
        let workspace = workspace.to_owned();
        let new_phc = new.as_phc().to_owned();
        let params = new.params().to_string();
        tokio::spawn(async move {
            let result: Result<(), Error> = async {
                let now = store.now();
                let mut tx = store.inner.db.begin_write().await?;
                let done = sqlx::query("UPDATE tokens SET hash = $1 WHERE id = $2 AND hash = $3")
                    .bind(new_phc.as_str())
                    .bind(id.as_str())
                    .bind(old_phc.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    let event = NewEvent::on_token(&workspace, Action::TokenRehashed, id)
                        .with_details(json!({ "params": params }));
                    audit::append(&mut tx, &Context::system(), &event, now).await?;
                    tx.commit().await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(token_id = %id, error = %e, "hash upgrade not stored; will retry on next use");
            }
        });
    }

    /// A revoked token presented again is a security event: someone still holds it. Reported at
    /// most once a minute per token, so a replay flood cannot flood the audit log.
    async fn report_reuse(&self, id: TokenId, workspace: &str, call: &Call, now: OffsetDateTime) {
        {
            let mut reported = self
                .inner
                .reuse_reported
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if reported
                .get(&id)
                .is_some_and(|at| now - *at < time::Duration::MINUTE)
            {
                return;
            }
            if reported.len() > 10_000 {
                reported.clear();
            }
            reported.insert(id, now);
        }
        let context = Context {
            actor: audit::Actor::Token(id),
            client_ip: call.client_ip,
            user_agent: call.user_agent.clone(),
            request_id: call.request_id.clone(),
        };
        let event = NewEvent {
            outcome: Outcome::Denied,
            ..NewEvent::on_token(workspace, Action::TokenReuse, id)
        }
        .with_details(json!({ "method": call.method, "route": call.route }));
        if let Err(e) = self.inner.audit.record(&context, &event, now).await {
            tracing::warn!(token_id = %id, error = %e, "token.reuse event not recorded");
        }
    }
}

fn cached_from_row(row: &TokenRow) -> Arc<Cached> {
    Arc::new(Cached {
        principal: principal_of(&row.record),
        revoked_at: row.record.revoked_at,
        phc: row.phc.clone(),
    })
}

/// Refuses a revoked or expired token (revocation first).
fn usable(known: Arc<Cached>, now: OffsetDateTime) -> Result<Arc<Cached>, Failure> {
    let workspace = || Some(known.principal.workspace_id.clone());
    if known.revoked_at.is_some_and(|at| at <= now) {
        return Err(Failure::Refused(Refusal::Revoked, workspace()));
    }
    if known.principal.expires_at.is_some_and(|at| at <= now) {
        return Err(Failure::Refused(Refusal::Expired, workspace()));
    }
    Ok(known)
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
    }
}
