//! Token families: rotation, revocation that follows the rotation chain, lineage, and what
//! happens when a rotated token is presented again.
//!
//! A token and every token rotated from it, transitively, form one family, named by its first
//! token (`family_id`). Revoking a token revokes every live token of its family in the same
//! transaction — the successors someone may have made with a stolen token, and predecessors
//! still in a rotation grace period — unless the caller asks for [`Reach::OnlyThis`].
//!
//! Rotation and revocation of a family take its lock first (on PostgreSQL the root token's row,
//! `FOR UPDATE`; SQLite has one writer at a time) and read the family under it, so they are
//! linearizable: whatever their interleaving, on one instance or several, either the revocation
//! comes first and the rotation is refused, or the rotation comes first and the revocation takes
//! the successor too.

use audit::{Action, Actor, Context, NewEvent};
use knowmind_db::Connection;
use knowmind_db::{Backend, to_micros};
use serde_json::json;
use sqlx::Row;
use time::{Duration, OffsetDateTime};
use token_core::{Token, TokenId};

use crate::error::Error;
use crate::model::Handover;
use crate::model::{
    Call, Origin, Reach, ReuseDetection, Revocation, Revoked, Rotation, TokenRecord, TokenState,
};
use crate::policy::Proposed;
use crate::rows::{SELECT_TOKEN, insert_token, read_token_row, token_from_row};
use crate::store::Store;
use crate::tokens::{check_expiry, token_details};
use crate::validate;
use knowmind_api::HandoverState;
use token_core::Networks;

/// Reasons that always revoke the whole family, whatever the caller asked.
const FAMILY_REASONS: [&str; 2] = ["compromised", "leaked"];

/// The reason recorded when reuse detection revokes a family.
const REUSE_REASON: &str = "reuse_detected";

impl Store {
    /// Revokes a token now, and — unless `revocation.reach` is [`Reach::OnlyThis`] and the
    /// reason is neither `compromised` nor `leaked` — every live token of its family. Each
    /// revoked token gets its own `token.revoked` event in the same transaction. Idempotent:
    /// revoking what is already revoked changes nothing and records nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`] for a bad reason text.
    pub async fn revoke_token(
        &self,
        workspace_id: &str,
        id: TokenId,
        revocation: &Revocation,
        context: &Context,
    ) -> Result<Revoked, Error> {
        let reason = validate::optional_line("reason", &revocation.reason, 200)?;
        let reason = if reason.is_empty() {
            "revoked".to_owned()
        } else {
            reason
        };
        if reason == crate::model::ROTATED {
            // It marks a rotation's grace period; a revocation with it would not be one.
            return Err(Error::invalid(
                "reason",
                "`rotated` is reserved for rotations; say why the token is revoked",
            ));
        }
        // `compromised`, `Leaked: found in a gist`, …: the reason's first word decides.
        let first_word = reason
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_lowercase();
        let family =
            revocation.reach == Reach::Family || FAMILY_REASONS.contains(&first_word.as_str());
        let target = self.get_token(workspace_id, id).await?;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        self.lock_family(&mut tx, target.family_id).await?;
        let revoked = self
            .revoke_in(&mut tx, &target, family, &reason, context, now)
            .await?;
        tx.commit().await?;
        for id in &revoked {
            self.inner.cache.evict(*id);
        }
        Ok(Revoked {
            token: self.get_token(workspace_id, id).await?,
            revoked,
        })
    }

    /// A member's live tokens (not revoked, or in a rotation's grace period; expired ones
    /// included, which revoking does no harm), oldest first.
    pub(crate) async fn live_tokens_of(
        &self,
        workspace_id: &str,
        member_id: &str,
    ) -> Result<Vec<TokenRecord>, Error> {
        let rows = sqlx::query(
            "SELECT id FROM tokens WHERE workspace_id = $1 AND owner_id = $2 \
             AND (revoked_at_us IS NULL OR (revoked_reason = 'rotated' AND revoked_at_us > $3)) \
             ORDER BY created_at_us, id",
        )
        .bind(workspace_id)
        .bind(member_id)
        .bind(to_micros(self.now()))
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let id = id.parse().map_err(|_| Error::corrupt("token id"))?;
            tokens.push(self.get_token(workspace_id, id).await?);
        }
        Ok(tokens)
    }

    /// Inside a write transaction: locks `target`'s family and revokes its live tokens for
    /// `reason` (see [`Store::revoke_token`]); returns the ids revoked. The caller evicts them
    /// from the cache after committing.
    pub(crate) async fn revoke_family_in(
        &self,
        tx: &mut Connection,
        target: &TokenRecord,
        reason: &str,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenId>, Error> {
        self.lock_family(tx, target.family_id).await?;
        self.revoke_in(tx, target, true, reason, context, now).await
    }

    /// Inside a transaction holding the family's lock: revokes `target` (if live) and, with
    /// `family`, the family's other live tokens; appends an event per token and tells other
    /// instances. Returns the ids revoked, `target` first.
    pub(crate) async fn revoke_in(
        &self,
        tx: &mut Connection,
        target: &TokenRecord,
        family: bool,
        reason: &str,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenId>, Error> {
        // Live: not revoked, or rotated and still in its grace period (see `Standing`).
        let rows = sqlx::query(
            "UPDATE tokens SET revoked_at_us = $1, revoked_reason = $2, revoked_by = $3, \
             handover = NULL WHERE workspace_id = $4 \
             AND (revoked_at_us IS NULL OR (revoked_reason = 'rotated' AND revoked_at_us > $1)) \
             AND (id = $5 OR ($6 = 1 AND family_id = $7 \
                  AND (expires_at_us IS NULL OR expires_at_us > $1))) \
             RETURNING id",
        )
        .bind(to_micros(now))
        .bind(reason)
        .bind(context.actor.to_string())
        .bind(target.workspace_id.as_str())
        .bind(target.id.as_str())
        .bind(i64::from(family))
        .bind(target.family_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut revoked = rows
            .iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                id.parse::<TokenId>()
                    .map_err(|_| Error::corrupt("token id"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        revoked.sort_by_key(|id| (*id != target.id, id.to_string()));
        for id in &revoked {
            let details = if *id == target.id {
                json!({
                    "reason": reason,
                    "family_revoked": revoked.iter().filter(|other| **other != target.id).collect::<Vec<_>>(),
                })
            } else {
                json!({ "reason": reason, "revoked_with": target.id })
            };
            let event = NewEvent::on_token(&target.workspace_id, Action::TokenRevoked, *id)
                .with_details(details);
            self.inner.audit.append(tx, context, &event, now).await?;
            self.notify(tx, *id).await?;
        }
        Ok(revoked)
    }

    /// Replaces a token with a new one: same description, scopes, owner, client, allow-list and
    /// family, and its name pattern carried forward (a date in it becomes the rotation's date, a
    /// `-v3` suffix becomes `-v4`). The old token is revoked at once, or when `rotation.grace` ends; both tokens
    /// remember the link. One transaction, under the family's lock.
    ///
    /// The new token's lifetime is the old one's original lifetime (`expires_at − created_at`),
    /// from now. A token rotating itself (the actor in `context` is the token) may ask for a
    /// shorter one, never a longer one, and a token that expires may not become one that never
    /// does: rotation must not let a token — or whoever stole it — extend its own life. Anyone
    /// else (an admin) may set an explicit expiry.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::NotActive`] for a revoked or expired token, or one already
    /// rotated; [`Error::LifetimeExceeded`]; [`Error::Invalid`] for a grace period over 7 days
    /// or an expiry in the past; [`Error::Busy`].
    pub async fn rotate_token(
        &self,
        workspace_id: &str,
        id: TokenId,
        rotation: Rotation,
        context: &Context,
    ) -> Result<(TokenRecord, Token), Error> {
        let old = self.get_token(workspace_id, id).await?;
        rotatable(&old)?;
        let grace = rotation.grace.unwrap_or(Duration::ZERO);
        if grace.is_negative() || grace > Duration::days(7) {
            return Err(Error::invalid(
                "grace_period",
                "must be between 0 and 7 days",
            ));
        }
        if let Some(handover) = rotation.handover {
            check_handover(handover, rotation.grace)?;
        }
        let now = self.now();
        let rules = self.rules(workspace_id).await?;
        let mut expires_at = rotation_expiry(&old, rotation.expires_at, context, now)?;
        if rotation.expires_at.is_none() {
            // The kept lifetime, within what the policy allows now.
            expires_at = rules.fit_expiry(expires_at, now);
        }
        check_expiry(expires_at, now)?;
        let networks = rotation_networks(&old, rotation.allowed_networks, context)?;
        let proposed = Proposed {
            scopes: old.scopes,
            expires_at,
            networks: &networks,
        };
        self.judge_new_token(workspace_id, &rules, &old.owner_id, proposed, now)
            .await?;
        // scrypt before the transaction: holding SQLite's write lock (or the family's) for 25 ms
        // would stall every other writer.
        let (token, hash) = self.generate().await?;
        let new = TokenRecord {
            id: token.id(),
            created_at: knowmind_db::from_micros(to_micros(now))?,
            created_by: context.actor.to_string(),
            expires_at: expires_at
                .map(|t| knowmind_db::from_micros(to_micros(t)))
                .transpose()?,
            rotated_from: Some(old.id),
            origin: Origin::of(&context.actor.to_string(), Some(old.id)),
            last_used_at: None,
            last_used_ip: None,
            name: crate::names::rotated_name(&old.name, now),
            allowed_networks: networks,
            rotation_due_at: now.checked_add(rules.rotation_interval),
            ..old.clone()
        };
        // With a hand-over, the old token's end is the hard deadline until the new one is used.
        let revoke_at = now + rotation.handover.map_or(grace, |h| h.deadline);
        let mut tx = self.inner.db.begin_write().await?;
        self.lock_family(&mut tx, old.family_id).await?;
        // Under the lock: a revocation or rotation may have committed since the read above.
        let current = read_token_row(&mut *tx, id, now)
            .await?
            .ok_or(Error::NotFound { what: "token" })?;
        rotatable(&current.record)?;
        insert_token(&mut tx, &new, &hash).await?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at_us = $1, revoked_reason = $5, revoked_by = $2, \
             rotated_to = $3, handover = $6, handover_overlap_s = $7 \
             WHERE id = $4 AND rotated_to IS NULL AND revoked_at_us IS NULL",
        )
        .bind(to_micros(revoke_at))
        .bind(context.actor.to_string())
        .bind(new.id.as_str())
        .bind(old.id.as_str())
        .bind(crate::model::ROTATED)
        .bind(rotation.handover.map(|_| HandoverState::Pending.as_str()))
        .bind(rotation.handover.map(|h| h.overlap.whole_seconds()))
        .execute(&mut *tx)
        .await?;
        if rotation.handover.is_some() {
            sqlx::query("UPDATE tokens SET handover_of = $1 WHERE id = $2")
                .bind(old.id.as_str())
                .bind(new.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if done.rows_affected() != 1 {
            return Err(Error::Conflict(
                "the token was rotated or revoked concurrently".into(),
            ));
        }
        let event =
            NewEvent::on_token(workspace_id, Action::TokenRotated, old.id).with_details(json!({
                "new_token_id": new.id,
                "grace_seconds": grace.whole_seconds(),
                "handover": rotation.handover.map(|h| json!({
                    "deadline_seconds": h.deadline.whole_seconds(),
                    "overlap_seconds": h.overlap.whole_seconds(),
                })),
                "old_revoked_at": revoke_at.unix_timestamp(),
                "expires_at": new.expires_at.map(|t| t.unix_timestamp()),
            }));
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        // The successor's own record of its creation, so that a search by its id finds it.
        let created = NewEvent::on_token(workspace_id, Action::TokenCreated, new.id)
            .with_details(token_details(&new));
        self.inner
            .audit
            .append(&mut tx, context, &created, now)
            .await?;
        self.notify(&mut tx, old.id).await?;
        let mark = self.mark();
        tx.commit().await?;
        self.inner.cache.evict(old.id);
        self.remember(
            &token,
            &new,
            &hash,
            &mark,
            rotation.handover.map(|_| old.id),
        );
        Ok((new, token))
    }

    /// Every token of `id`'s family — its ancestors and successors, and itself — oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn token_family(
        &self,
        workspace_id: &str,
        id: TokenId,
    ) -> Result<Vec<TokenRecord>, Error> {
        let token = self.get_token(workspace_id, id).await?;
        let now = self.now();
        sqlx::query(&format!(
            "{} WHERE t.family_id = $1 AND t.workspace_id = $2 \
             ORDER BY t.created_at_us, t.id",
            *SELECT_TOKEN
        ))
        .bind(token.family_id.as_str())
        .bind(workspace_id)
        .fetch_all(self.inner.db.pool())
        .await?
        .iter()
        .map(|row| token_from_row(row, now).map(|r| r.record))
        .collect()
    }

    /// Takes the family's lock for the rest of the transaction: the root token's row on
    /// PostgreSQL. On SQLite the write transaction already excludes every other writer.
    pub(crate) async fn lock_family(
        &self,
        tx: &mut Connection,
        family_id: TokenId,
    ) -> Result<(), Error> {
        if self.inner.db.backend() == Backend::Postgres {
            sqlx::query("SELECT id FROM tokens WHERE id = $1 FOR UPDATE")
                .bind(family_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// Whether the holder of `id` was proven to reuse it within the last minute (then it is
    /// refused without spending scrypt again).
    pub(crate) fn reuse_recently_reported(&self, id: TokenId) -> bool {
        let now = self.inner.clock.0.monotonic();
        self.inner
            .reuse_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|at| now.saturating_sub(*at) < std::time::Duration::from_secs(60))
    }

    /// A revoked token presented by someone holding its secret: still in someone's hands. A
    /// `token.reuse` security event (at most once a minute per token, so a replay flood cannot
    /// flood the log) and, for a rotated token in a workspace whose policy says
    /// [`ReuseDetection::RevokeFamily`], the revocation of its family's live tokens.
    pub(crate) async fn report_reuse(
        &self,
        id: TokenId,
        workspace: &str,
        rotated: bool,
        call: &Call,
        now: OffsetDateTime,
    ) {
        {
            let monotonic = self.inner.clock.0.monotonic();
            let mut reported = self
                .inner
                .reuse_reported
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if reported.get(&id).is_some_and(|at| {
                monotonic.saturating_sub(*at) < std::time::Duration::from_secs(60)
            }) {
                return;
            }
            if reported.len() > 10_000 {
                reported.clear();
            }
            reported.insert(id, monotonic);
        }
        let context = Context {
            actor: Actor::Token(id),
            client_ip: call.client_ip,
            user_agent: call.user_agent.clone(),
            request_id: call.request_id.clone(),
        };
        let policy = match self.workspace_policy(workspace).await {
            Ok(policy) => policy.reuse_detection,
            Err(e) => {
                tracing::warn!(error = %e, "workspace policy unreadable; reuse only reported");
                ReuseDetection::Alert
            }
        };
        let revoke = rotated && policy == ReuseDetection::RevokeFamily;
        let event = NewEvent {
            outcome: audit::Outcome::Denied,
            ..NewEvent::on_token(workspace, Action::TokenReuse, id)
        }
        .with_details(json!({
            "method": call.method,
            "route": call.route,
            "rotated": rotated,
            "reuse_detection": policy.as_str(),
            "reported_by": call.reported_by,
        }));
        if let Err(e) = self.inner.audit.record(&context, &event, now).await {
            tracing::warn!(token_id = %id, error = %e, "token.reuse event not recorded");
        }
        if revoke {
            let system = Context {
                actor: Actor::System,
                ..context
            };
            match self
                .revoke_token(workspace, id, &Revocation::family(REUSE_REASON), &system)
                .await
            {
                Ok(done) => tracing::warn!(
                    token_id = %id,
                    revoked = ?done.revoked,
                    "a rotated token was reused: its family is revoked"
                ),
                Err(e) => {
                    tracing::error!(token_id = %id, error = %e, "reuse detected, family NOT revoked");
                    // Let the next presentation try again instead of waiting out the minute.
                    self.inner
                        .reuse_reported
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                }
            }
        }
    }
}

/// A token can be rotated while it is unexpired, has no revocation at all — not even one due
/// later — and has not been rotated already. Deliberately not "revoked_at is in the future":
/// only a rotation grace sets a future revocation, and a revocation another instance committed a
/// moment ago may carry a time ahead of this instance's clock; the check must not depend on
/// clocks agreeing.
fn rotatable(token: &TokenRecord) -> Result<(), Error> {
    if token.oauth_client_id.is_some() {
        // It would become an API token outside its connector's control.
        return Err(Error::invalid(
            "token",
            "an OAuth access token cannot be rotated; its connector gets a new one with its \
             refresh token",
        ));
    }
    if token.canary {
        return Err(Error::invalid(
            "token",
            "a canary token is not rotated: it stays where it was planted; revoke it and plant a \
             new one to move it",
        ));
    }
    if let Some(successor) = token.rotated_to {
        return Err(Error::AlreadyRotated { successor });
    }
    match (token.revoked_at, token.state) {
        (Some(_), _) => Err(Error::NotActive {
            state: TokenState::Revoked,
        }),
        (None, TokenState::Active) => Ok(()),
        (None, state) => Err(Error::NotActive { state }),
    }
}

/// The new token's expiry: see [`Store::rotate_token`].
/// A hand-over's limits: a deadline from 1 minute to 30 days (it is when a never-used new token
/// leaves the old one dead), an overlap of at most an hour, and no grace period beside it.
fn check_handover(handover: Handover, grace: Option<Duration>) -> Result<(), Error> {
    if grace.is_some() {
        return Err(Error::invalid(
            "grace_period",
            "a rotation with a hand-over has no grace period: the old token works until the new one is used",
        ));
    }
    if handover.deadline < Duration::MINUTE || handover.deadline > Duration::days(30) {
        return Err(Error::invalid(
            "handover_deadline",
            "must be between 1 minute and 30 days",
        ));
    }
    if handover.overlap.is_negative() || handover.overlap > Duration::HOUR {
        return Err(Error::invalid(
            "handover_overlap",
            "must be between 0 and 1 hour",
        ));
    }
    Ok(())
}

/// The new token's allow-list: the old one's unless another is given. A token rotating itself
/// may narrow its list, never widen it (or a stolen token could free itself of it).
fn rotation_networks(
    old: &TokenRecord,
    requested: Option<Networks>,
    context: &Context,
) -> Result<Networks, Error> {
    match requested {
        None => Ok(old.allowed_networks.clone()),
        Some(new)
            if context.actor == Actor::Token(old.id) && !new.within(&old.allowed_networks) =>
        {
            Err(Error::invalid(
                "allowed_networks",
                "a token rotating itself may narrow its allow-list, not widen it",
            ))
        }
        Some(new) => Ok(new),
    }
}

fn rotation_expiry(
    old: &TokenRecord,
    requested: Option<Option<OffsetDateTime>>,
    context: &Context,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, Error> {
    let lifetime = old.expires_at.map(|at| at - old.created_at);
    let by_itself = context.actor == Actor::Token(old.id);
    match (requested, lifetime) {
        // The old token's lifetime, from now.
        (None, lifetime) => lifetime
            .map(|l| {
                now.checked_add(l).ok_or_else(|| {
                    Error::invalid(
                        "expires_at",
                        "the token's lifetime, from now, ends past the year 9999; give an expiry",
                    )
                })
            })
            .transpose(),
        // An admin's explicit choice for another token. (The workspace's maximum lifetime, when
        // its policy has one, is enforced here.)
        (Some(explicit), _) if !by_itself => Ok(explicit),
        // A token that never expired may take any expiry, or keep none.
        (Some(explicit), None) => Ok(explicit),
        (Some(Some(at)), Some(lifetime)) if at - now <= lifetime => Ok(Some(at)),
        (Some(_), Some(lifetime)) => Err(Error::LifetimeExceeded { max: lifetime }),
    }
}

#[cfg(test)]
mod tests;
