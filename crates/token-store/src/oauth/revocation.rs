//! Ending grants: reuse of a used code or refresh token revokes the whole grant (RFC 9700
//! §4.14, RFC 6749 §4.1.2); RFC 7009 revocation of a presented token; RFC 7662 state of a
//! refresh token.

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::{Scopes, Token, TokenKind};

use super::token::{GRANT_COLUMNS, GrantRow, grant_from_row};
use super::{ClientCredentials, digest_matches, parse_kind};
use crate::error::Error;
use crate::store::Store;

/// A connection to end, and the event that says why.
pub(super) struct EndedConnection<'a> {
    pub(super) workspace_id: &'a str,
    pub(super) id: &'a str,
    pub(super) reason: &'static str,
    pub(super) action: Action,
    pub(super) outcome: Outcome,
    pub(super) details: serde_json::Value,
}

/// A usable refresh token, as introspection describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshState {
    /// The workspace of its connection.
    pub workspace_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// What it can ask for.
    pub scopes: Scopes,
    /// The member it acts for.
    pub member_id: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

impl Store {
    /// A used code or refresh token came back: revoke the grant and all its tokens, recorded
    /// as a security event.
    pub(super) async fn reuse_detected(
        &self,
        grant: &GrantRow,
        what: &'static str,
        context: &Context,
    ) -> Result<(), Error> {
        tracing::warn!(connection = %grant.id, what, "a used OAuth credential was presented again");
        let ended = EndedConnection {
            workspace_id: &grant.workspace_id,
            id: &grant.id,
            reason: "reuse_detected",
            action: Action::OAuthReuseDetected,
            outcome: Outcome::Denied,
            details: json!({
                "client_id": grant.client_id,
                "member_id": grant.member_id,
                "presented": what,
            }),
        };
        self.end_connection(ended, context).await
    }

    /// Revokes a connection and its tokens in one transaction with the event that says why
    /// (its details gain `tokens_revoked`), then drops the tokens from this instance's cache.
    pub(super) async fn end_connection(
        &self,
        ended: EndedConnection<'_>,
        context: &Context,
    ) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let revoked = self
            .revoke_grant_in(&mut tx, ended.id, ended.reason, context, now)
            .await?;
        let mut details = ended.details;
        details["tokens_revoked"] = json!(revoked);
        let event = NewEvent {
            workspace_id: Some(ended.workspace_id.to_owned()),
            action: ended.action,
            target_kind: Some("oauth_connection"),
            target_id: Some(ended.id.to_owned()),
            outcome: ended.outcome,
            details,
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        for id in &revoked {
            self.inner.cache.evict(*id);
        }
        Ok(())
    }

    /// Inside a write transaction: revokes a grant (if live) and its access tokens; returns
    /// the token ids to evict after committing.
    pub(super) async fn revoke_grant_in(
        &self,
        tx: &mut knowmind_db::Connection,
        grant_id: &str,
        reason: &str,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<Vec<token_core::TokenId>, Error> {
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at_us = $1, revoked_reason = $2, revoked_by = $3 \
             WHERE id = $4 AND revoked_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(reason)
        .bind(context.actor.to_string())
        .bind(grant_id)
        .execute(&mut *tx)
        .await?;
        self.revoke_oauth_tokens_in(tx, "oauth_grant_id", grant_id, reason, context, now)
            .await
    }

    /// RFC 7009: a client revokes one of its tokens. An access token is revoked alone; a
    /// refresh token takes its grant and every token of it. A token that is unknown, malformed
    /// or another client's is ignored (the client is told nothing either way).
    ///
    /// # Errors
    /// [`Error::OAuth`] `invalid_client`; [`Error::Busy`] when the scrypt pool is saturated.
    pub async fn revoke_presented(
        &self,
        credentials: &ClientCredentials,
        presented: &str,
        context: &Context,
    ) -> Result<(), Error> {
        let client = self.authenticate_client(credentials).await?;
        let Ok(token) = presented.parse::<Token>() else {
            return Ok(());
        };
        let now = self.now();
        match token.kind() {
            TokenKind::OAuthAccess => {
                let Some(row) = self.token_row(token.id()).await? else {
                    return Ok(());
                };
                if row.record.oauth_client_id.as_deref() != Some(client.client.id.as_str())
                    || row.record.revoked_at.is_some()
                {
                    return Ok(());
                }
                let stored: token_core::TokenHash =
                    row.phc.parse().map_err(|_| Error::corrupt("token hash"))?;
                // scrypt for whoever asks is counted like a failed verification, so that
                // forged tokens cannot keep the hash pool busy; a real holder is forgiven.
                let source = context.client_ip.map(crate::limiter::Source::Address);
                if let Some(source) = source {
                    self.inner
                        .address_limiter
                        .attempt(source)
                        .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
                }
                let holds = self
                    .inner
                    .hasher
                    .run(move || stored.verify(&token).is_ok())
                    .await?;
                if !holds {
                    return Ok(());
                }
                if let Some(source) = source {
                    self.inner.address_limiter.forgive(source);
                }
                let mut tx = self.inner.db.begin_write().await?;
                let revoked = sqlx::query(
                    "UPDATE tokens SET revoked_at_us = $1, revoked_reason = $2, revoked_by = $3 \
                     WHERE id = $4 AND revoked_at_us IS NULL",
                )
                .bind(to_micros(now))
                .bind("revoked_by_client")
                .bind(context.actor.to_string())
                .bind(row.record.id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if revoked > 0 {
                    self.notify(&mut tx, row.record.id).await?;
                    let event = NewEvent::on_token(
                        &row.record.workspace_id,
                        Action::OAuthTokenRevoked,
                        row.record.id,
                    )
                    .with_details(json!({ "client_id": client.client.id, "kind": "access_token" }));
                    self.inner
                        .audit
                        .append(&mut tx, context, &event, now)
                        .await?;
                }
                tx.commit().await?;
                self.inner.cache.evict(row.record.id);
            }
            TokenKind::OAuthRefresh => {
                let Some(row) = sqlx::query(&format!(
                    "SELECT r.hash, {GRANT_COLUMNS} FROM oauth_refresh_tokens r \
                     JOIN oauth_grants g ON g.id = r.grant_id WHERE r.id = $1"
                ))
                .bind(token.id().as_str())
                .fetch_optional(self.inner.db.pool())
                .await?
                else {
                    return Ok(());
                };
                let grant = grant_from_row(&row)?;
                if grant.client_id != client.client.id
                    || grant.revoked
                    || !digest_matches(token.expose_secret(), &row.try_get::<String, _>("hash")?)
                {
                    return Ok(());
                }
                let ended = EndedConnection {
                    workspace_id: &grant.workspace_id,
                    id: &grant.id,
                    reason: "revoked_by_client",
                    action: Action::OAuthTokenRevoked,
                    outcome: Outcome::Success,
                    details: json!({
                        "client_id": client.client.id,
                        "kind": "refresh_token",
                        "refresh_token_id": token.id(),
                    }),
                };
                self.end_connection(ended, context).await?;
            }
            TokenKind::Api | TokenKind::ClientSecret => {}
        }
        Ok(())
    }

    /// RFC 7662 for a refresh token: its client, scopes, member and expiry if it is still
    /// usable (unused, unexpired, its grant and client live), else `None`.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn refresh_token_state(
        &self,
        presented: &str,
    ) -> Result<Option<RefreshState>, Error> {
        let Some(token) = parse_kind(presented, TokenKind::OAuthRefresh) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT r.hash, r.scopes AS refresh_scopes, r.expires_at_us, r.used_at_us, \
             {GRANT_COLUMNS} FROM oauth_refresh_tokens r \
             JOIN oauth_grants g ON g.id = r.grant_id \
             JOIN oauth_clients c ON c.id = g.client_id AND c.removed_at_us IS NULL \
             WHERE r.id = $1"
        ))
        .bind(token.id().as_str())
        .fetch_optional(self.inner.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let grant = grant_from_row(&row)?;
        let expires = from_micros(row.try_get("expires_at_us")?)?;
        let usable = digest_matches(token.expose_secret(), &row.try_get::<String, _>("hash")?)
            && !grant.revoked
            && row.try_get::<Option<i64>, _>("used_at_us")?.is_none()
            && expires > self.now();
        if !usable {
            return Ok(None);
        }
        let scopes = row
            .try_get::<String, _>("refresh_scopes")?
            .parse()
            .map_err(|_| Error::corrupt("refresh scopes"))?;
        Ok(Some(RefreshState {
            workspace_id: grant.workspace_id,
            client_id: grant.client_id,
            scopes,
            member_id: grant.member_id,
            expires_at: expires,
        }))
    }
}
