//! Canary tokens: planted where a leak would be found first (an old config file, a backup, a
//! wiki page), they never authorize anything. Whoever presents one with its secret is refused
//! exactly as for an unknown token — they cannot tell they tripped anything — and the use is
//! recorded in its security log (`canary`) and raised as a `token.canary_used` security event,
//! which webhooks deliver. Canary tokens never expire, are never rotated, and are left out of
//! policy checks and rotation reminders.

use std::net::IpAddr;

use audit::{Context, UsageOutcome, UsageRecord};
use token_core::{Scope, Token, TokenId};

use crate::error::Error;
use crate::model::{Call, NewToken, TokenRecord};
use crate::store::Store;
use crate::tokens::{check_new, issued_record};
use crate::workspaces::ensure_member;

impl Store {
    /// Issues a canary token for `new`'s owner, name, description and device; its scopes,
    /// expiry and allow-list are ignored (it authorizes nothing and never expires).
    ///
    /// # Errors
    /// As [`Store::create_token`].
    pub async fn create_canary_token(
        &self,
        workspace_id: &str,
        new: NewToken,
        context: &Context,
    ) -> Result<(TokenRecord, Token), Error> {
        let now = self.now();
        let checked = check_new(
            NewToken {
                scopes: Scope::Read.into(),
                expires_at: None,
                allowed_networks: token_core::Networks::default(),
                ..new
            },
            now,
        )?;
        let (token, hash) = self.generate().await?;
        let mut record = issued_record(workspace_id, token.id(), checked, context, now)?;
        record.canary = true;
        let mut tx = self.inner.db.begin_write().await?;
        ensure_member(&mut tx, workspace_id, &record.owner_id, record.scopes).await?;
        self.insert_issued(&mut tx, &record, &hash, context, now)
            .await?;
        let mark = self.mark();
        tx.commit().await?;
        self.remember(&token, &record, &hash, &mark, None);
        Ok((record, token))
    }

    /// Raises `token.canary_used` for a use of canary `id` by whoever holds it: at most once a
    /// minute per token and address, so that someone hammering it cannot flood the log.
    pub(crate) async fn canary_used(&self, id: TokenId, workspace: &str, call: &Call) {
        let now = self.inner.clock.0.monotonic();
        let key = (id, call.client_ip);
        {
            let mut seen = self
                .inner
                .canary_reported
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen
                .get(&key)
                .is_some_and(|at| now.saturating_sub(*at) < std::time::Duration::from_secs(60))
            {
                return;
            }
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(key, now);
        }
        let record = UsageRecord {
            at: self.now(),
            token_id: id,
            workspace_id: Some(workspace.to_owned()),
            client_ip: call.client_ip,
            method: call.method.clone(),
            route: call.route.clone(),
            status: None,
            user_agent: call.user_agent.clone(),
            outcome: UsageOutcome::Canary,
            reported_by: call.reported_by,
        };
        if let Err(e) = self.inner.audit.record_canary_use(&record).await {
            tracing::warn!(token_id = %id, error = %e, "a canary token's use could not be recorded");
        }
    }
}

/// The key of a canary report: the token and the address it came from.
pub(crate) type CanaryKey = (TokenId, Option<IpAddr>);
