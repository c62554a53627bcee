//! Rotation with verified hand-over: the old token keeps working until its successor has been
//! used, then for a short overlap, and at the latest until a hard deadline.
//!
//! The old token's `revoked_at_us` is always its real end (the deadline at first), so the
//! verification pipeline needs no new rule: it refuses the old token once that moment passes,
//! like any rotated token after its grace period. Two things move the hand-over on:
//!
//! - the new token's first accepted verification ([`Store::complete_handover`], on the request
//!   path, once): the old token's end is brought forward to that moment plus the overlap, and a
//!   `token.handover_completed` event says when and from where the new token was first used;
//! - [`Store::sweep_handovers`], run by every server instance now and then: a hand-over whose
//!   overlap has ended becomes `done` (a `token.revoked` event for the old token), one whose
//!   deadline passed unused becomes `timed_out` (`token.handover_timed_out`).
//!
//! Every step is a conditional `UPDATE` of the old token's row (`WHERE handover = …`), so when
//! several instances race, exactly one of them moves a row and writes its event: the database's
//! row lock decides, with no coordination of our own.

use std::net::IpAddr;
use std::sync::Arc;

use audit::{Action, Context, NewEvent};
use knowmind_api::HandoverState;
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::{Token, TokenId};

use crate::cache::Cached;
use crate::error::Error;
use crate::store::Store;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoverSweep {
    /// Hand-overs whose overlap ended: the old token is now revoked.
    pub done: u64,
    /// Hand-overs whose new token was never used before the deadline.
    pub timed_out: u64,
}

impl Store {
    /// The first accepted use of a rotation's new token (`new`, replacing `old`): brings the old
    /// token's end forward to now plus the overlap, records it, and caches the new token without
    /// the pending hand-over. Losing a race with another request or instance is not an error.
    pub(crate) async fn complete_handover(
        &self,
        token: &Token,
        known: &Arc<Cached>,
        old: TokenId,
        client_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let mark = self.inner.cache.begin_read(self.inner.clock.0.monotonic());
        let now_us = to_micros(now);
        let mut tx = self.inner.db.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE tokens SET handover = $1, \
             revoked_at_us = CASE WHEN revoked_at_us < $2 + handover_overlap_s * 1000000 \
                 THEN revoked_at_us ELSE $2 + handover_overlap_s * 1000000 END \
             WHERE id = $3 AND rotated_to = $4 AND handover = $5 \
             AND revoked_reason = 'rotated' AND revoked_at_us > $2 \
             RETURNING workspace_id, revoked_at_us",
        )
        .bind(HandoverState::Overlap.as_str())
        .bind(now_us)
        .bind(old.as_str())
        .bind(token.id().as_str())
        .bind(HandoverState::Pending.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("UPDATE tokens SET handover_of = NULL WHERE id = $1")
            .bind(token.id().as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(row) = moved {
            let workspace: String = row.try_get("workspace_id")?;
            let ends = from_micros(row.try_get("revoked_at_us")?)?;
            let event = NewEvent::on_token(&workspace, Action::TokenHandoverCompleted, old)
                .with_details(json!({
                    "new_token_id": token.id(),
                    "new_token_first_used_at": now.unix_timestamp(),
                    "new_token_first_used_from": client_ip.map(|ip| ip.to_canonical().to_string()),
                    "old_revoked_at": ends.unix_timestamp(),
                }));
            let context = Context {
                client_ip,
                ..Context::of(audit::Actor::Token(token.id()))
            };
            self.inner
                .audit
                .append(&mut tx, &context, &event, now)
                .await?;
            self.notify(&mut tx, old).await?;
        }
        tx.commit().await?;
        self.inner.cache.evict(old);
        let without = Cached {
            principal: known.principal.clone(),
            standing: known.standing,
            rotated: known.rotated,
            phc: known.phc.clone(),
            allowed: known.allowed.clone(),
            handover_of: None,
            canary: known.canary,
        };
        self.inner.cache.insert(token, Arc::new(without), &mark);
        Ok(())
    }

    /// Moves on every hand-over whose time has come: an ended overlap becomes `done` (the old
    /// token is revoked: a `token.revoked` event), a passed deadline with the new token unused
    /// becomes `timed_out` (`token.handover_timed_out`). Safe to run on every instance at once:
    /// each hand-over moves, and is recorded, once.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn sweep_handovers(&self) -> Result<HandoverSweep, Error> {
        let now = self.now();
        let mut sweep = HandoverSweep::default();
        for (from, to) in [
            (HandoverState::Overlap, HandoverState::Done),
            (HandoverState::Pending, HandoverState::TimedOut),
        ] {
            let mut tx = self.inner.db.begin_write().await?;
            let rows = sqlx::query(
                "UPDATE tokens SET handover = $1 \
                 WHERE handover = $2 AND revoked_reason = 'rotated' AND revoked_at_us <= $3 \
                 RETURNING id, workspace_id, rotated_to, revoked_at_us",
            )
            .bind(to.as_str())
            .bind(from.as_str())
            .bind(to_micros(now))
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                let id: TokenId = id.parse().map_err(|_| Error::corrupt("token id"))?;
                let workspace: String = row.try_get("workspace_id")?;
                let new: Option<String> = row.try_get("rotated_to")?;
                let at = from_micros(row.try_get("revoked_at_us")?)?.unix_timestamp();
                let event = match to {
                    HandoverState::Done => NewEvent::on_token(&workspace, Action::TokenRevoked, id)
                        .with_details(json!({
                            "reason": "handover",
                            "replaced_by": new,
                            "revoked_at": at,
                        })),
                    _ => NewEvent::on_token(&workspace, Action::TokenHandoverTimedOut, id)
                        .with_details(json!({
                            "new_token_id": new,
                            "revoked_at": at,
                        })),
                };
                if let (HandoverState::TimedOut, Some(new)) = (to, &new) {
                    sqlx::query("UPDATE tokens SET handover_of = NULL WHERE id = $1")
                        .bind(new.as_str())
                        .execute(&mut *tx)
                        .await?;
                    self.notify(
                        &mut tx,
                        new.parse().map_err(|_| Error::corrupt("token id"))?,
                    )
                    .await?;
                }
                self.inner
                    .audit
                    .append(&mut tx, &Context::system(), &event, now)
                    .await?;
                self.notify(&mut tx, id).await?;
            }
            tx.commit().await?;
            let moved = u64::try_from(rows.len()).unwrap_or(u64::MAX);
            match to {
                HandoverState::Done => sweep.done = moved,
                _ => sweep.timed_out = moved,
            }
        }
        Ok(sweep)
    }
}
