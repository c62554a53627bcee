//! Consent: the member's approval of an authorization request becomes a grant (a
//! "connection") and a single-use code bound to client, redirect URI and PKCE challenge.

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_api::{Member, OAuthClient, Registration};
use knowmind_db::to_micros;
use serde_json::json;
use token_core::Scopes;

use super::token::{GRANT_COLUMNS, GrantRow, grant_from_row};
use super::{CODE_LIFETIME, check_challenge, digest, redirect_matches};
use crate::accounts::BearerSecret;
use crate::error::Error;
use crate::store::{Store, new_id};
use crate::workspaces::ensure_member;

/// An authorization request whose client and redirect URI were checked
/// ([`Store::authorization_client`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes; one of the client's registered URIs.
    pub redirect_uri: String,
    /// What it asks for (`read`, `write`).
    pub scopes: Scopes,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
}

/// What the member decided on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Approved: a code goes back to the client.
    Approve,
    /// Denied: `access_denied` goes back.
    Deny,
}

impl Store {
    /// The client of an authorization request, if it is live and `redirect_uri` is one of its
    /// registered URIs (exactly, or a loopback one on another port). Anything else must not
    /// redirect: the server shows an error page instead.
    ///
    /// # Errors
    /// [`Error::OAuth`] `invalid_request` naming what is wrong.
    pub async fn authorization_client(
        &self,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<OAuthClient, Error> {
        let Some(row) = self.live_client(client_id).await? else {
            return Err(Error::oauth(
                "invalid_request",
                "unknown client: it was never registered here, or it was removed",
            ));
        };
        if !redirect_matches(&row.client.redirect_uris, redirect_uri) {
            return Err(Error::oauth(
                "invalid_request",
                "the redirect_uri is not one this client registered",
            ));
        }
        Ok(row.client)
    }

    /// Whether `member` already consented to `client_id` for at least `scopes` (a live
    /// connection): then the consent page need not ask again.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn remembered_consent(
        &self,
        client_id: &str,
        member_id: &str,
        scopes: Scopes,
    ) -> Result<bool, Error> {
        let row = self
            .live_grant(self.inner.db.pool(), client_id, member_id)
            .await?;
        Ok(row.is_some_and(|grant| grant.scopes.grants(scopes)))
    }

    pub(super) async fn live_grant<'e, E>(
        &self,
        executor: E,
        client_id: &str,
        member_id: &str,
    ) -> Result<Option<GrantRow>, Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.client_id = $1 \
             AND g.member_id = $2 AND g.revoked_at_us IS NULL ORDER BY g.created_at_us LIMIT 1"
        ))
        .bind(client_id)
        .bind(member_id)
        .fetch_optional(executor)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// The member's answer to an authorization request. Approving records (or widens) their
    /// connection to the client and returns a single-use code, bound to the client, redirect
    /// URI and PKCE challenge, valid for 60 seconds. Both answers are audited (`oauth.consent`,
    /// success or denied) — except an approval that a remembered connection already covered,
    /// which changes nothing.
    ///
    /// # Errors
    /// [`Error::OAuth`] when the client is gone, belongs to another workspace, or asks for
    /// more than it registered; [`Error::Invalid`] when the member's role does not allow the
    /// scopes.
    pub async fn answer_authorization(
        &self,
        member: &Member,
        request: &AuthorizationRequest,
        consent: Consent,
        context: &Context,
    ) -> Result<Option<BearerSecret>, Error> {
        check_challenge(&request.code_challenge)?;
        let client = self
            .authorization_client(&request.client_id, &request.redirect_uri)
            .await?;
        if client.workspace_id != member.workspace_id {
            return Err(Error::oauth(
                "access_denied",
                "this connector is registered in another workspace",
            ));
        }
        if !client.scopes.grants(request.scopes) || request.scopes.is_empty() {
            return Err(Error::oauth(
                "invalid_scope",
                format!("this client may ask for {} at most", client.scopes),
            ));
        }
        let now = self.now();
        let event = |outcome, grant: Option<&str>| NewEvent {
            workspace_id: Some(member.workspace_id.clone()),
            action: Action::OAuthConsent,
            target_kind: Some("oauth_client"),
            target_id: Some(client.id.clone()),
            outcome,
            details: json!({
                "client_name": client.name,
                "verified": client.registration == Registration::Admin,
                "scopes": request.scopes,
                "redirect_uri": request.redirect_uri,
                "connection": grant,
            }),
        };
        if consent == Consent::Approve {
            // Before the transaction: it reads on the pool.
            self.judge_oauth(&member.workspace_id, &member.id, request.scopes)
                .await?;
        }
        let mut tx = self.inner.db.begin_write().await?;
        if consent == Consent::Deny {
            self.inner
                .audit
                .append(&mut tx, context, &event(Outcome::Denied, None), now)
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        ensure_member(&mut tx, &member.workspace_id, &member.id, request.scopes).await?;
        let grant_id = match self.live_grant(&mut *tx, &client.id, &member.id).await? {
            Some(grant) if grant.scopes.grants(request.scopes) => grant.id,
            Some(grant) => {
                let widened: Scopes = grant.scopes.iter().chain(request.scopes.iter()).collect();
                sqlx::query("UPDATE oauth_grants SET scopes = $1 WHERE id = $2")
                    .bind(widened.to_string())
                    .bind(grant.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                self.inner
                    .audit
                    .append(
                        &mut tx,
                        context,
                        &event(Outcome::Success, Some(&grant.id)),
                        now,
                    )
                    .await?;
                grant.id
            }
            None => {
                let id = new_id("con_")?;
                sqlx::query(
                    "INSERT INTO oauth_grants (id, workspace_id, client_id, member_id, scopes, \
                     created_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(member.workspace_id.as_str())
                .bind(client.id.as_str())
                .bind(member.id.as_str())
                .bind(request.scopes.to_string())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    crate::store::conflict(
                        e,
                        "the connection was just made by another request; try again",
                    )
                })?;
                self.inner
                    .audit
                    .append(&mut tx, context, &event(Outcome::Success, Some(&id)), now)
                    .await?;
                id
            }
        };
        let code = BearerSecret::random()?;
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, challenge, scopes, \
             expires_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest(code.expose_secret()))
        .bind(grant_id.as_str())
        .bind(request.redirect_uri.as_str())
        .bind(request.code_challenge.as_str())
        .bind(request.scopes.to_string())
        .bind(to_micros(now + CODE_LIFETIME))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(code))
    }
}
