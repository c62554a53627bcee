//! Consent, codes and tokens: a member's approval becomes a grant (a "connection") and a
//! single-use code; the code, with the PKCE verifier, becomes an access token and a refresh
//! token; each refresh rotates the refresh token, and presenting a used one (or a used code)
//! revokes the whole grant (RFC 9700 §4.14, RFC 6749 §4.1.2).

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_api::{
    Connection, Member, OAuthClient, Origin, Registration, TokenRecord, TokenState,
};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use token_core::{Scopes, Token, TokenKind};

use super::clients::ClientRow;
use super::{
    ACCESS_LIFETIME, CODE_LIFETIME, ClientCredentials, REFRESH_LIFETIME, check_challenge, digest,
    digest_matches, expose, parse_kind, pkce_matches, redirect_matches,
};
use crate::accounts::BearerSecret;
use crate::error::Error;
use crate::rows::insert_token;
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

/// Tokens handed to a client at the token endpoint. The secrets are in the [`Token`]s, whose
/// `Debug` shows only their ids.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The access token (`kmo_…`).
    pub access: Token,
    /// The refresh token (`kmr_…`); none for the client credentials grant.
    pub refresh: Option<Token>,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// What the access token grants.
    pub scopes: Scopes,
    /// The client.
    pub client_id: String,
}

/// A connection to end, and the event that says why.
struct EndedConnection<'a> {
    workspace_id: &'a str,
    id: &'a str,
    reason: &'static str,
    action: Action,
    outcome: Outcome,
    details: serde_json::Value,
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

/// What a token request uses up.
enum UsedUp {
    /// An authorization code, by its digest.
    Code(String),
    /// A refresh token, by id, with the scopes it carried.
    Refresh {
        id: token_core::TokenId,
        had: Scopes,
    },
    /// Nothing (client credentials).
    Nothing,
}

/// The grant a refresh token or code belongs to.
struct GrantRow {
    id: String,
    workspace_id: String,
    client_id: String,
    member_id: String,
    scopes: Scopes,
    revoked: bool,
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRow, Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(GrantRow {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        client_id: row.try_get("client_id")?,
        member_id: row.try_get("member_id")?,
        scopes: scopes.parse().map_err(|_| Error::corrupt("grant scopes"))?,
        revoked: row.try_get::<Option<i64>, _>("revoked_at_us")?.is_some(),
    })
}

const GRANT_COLUMNS: &str =
    "g.id, g.workspace_id, g.client_id, g.member_id, g.scopes, g.revoked_at_us";

fn invalid_grant(description: &str) -> Error {
    Error::oauth("invalid_grant", description)
}

fn invalid_client() -> Error {
    Error::oauth(
        "invalid_client",
        "client authentication failed: unknown or removed client, or a wrong or missing secret",
    )
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

    async fn live_grant<'e, E>(
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

    /// Checks a client's credentials: a live client, and its secret when it has one (public
    /// clients must not send one they do not have, either).
    async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<ClientRow, Error> {
        let row = self
            .live_client(&credentials.client_id)
            .await?
            .ok_or_else(invalid_client)?;
        let ok = match (&row.secret_hash, &credentials.secret) {
            (Some(stored), Some(secret)) => digest_matches(expose(secret), stored),
            (None, None) => true,
            _ => false,
        };
        if ok { Ok(row) } else { Err(invalid_client()) }
    }

    /// Checks a client's credentials, for endpoints that serve a client (introspection).
    ///
    /// # Errors
    /// [`Error::OAuth`] `invalid_client`.
    pub async fn authenticate_oauth_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<OAuthClient, Error> {
        Ok(self.authenticate_client(credentials).await?.client)
    }

    /// The authorization code grant: a code, the redirect URI it was issued for and the PKCE
    /// verifier become an access token and a refresh token. A code works once; presenting it
    /// again revokes the grant it came from and everything issued from it.
    ///
    /// # Errors
    /// [`Error::OAuth`]: `invalid_client`, or `invalid_grant` for an unknown, expired, used or
    /// another client's code, a different redirect URI, or a wrong verifier.
    pub async fn exchange_code(
        &self,
        credentials: &ClientCredentials,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        context: &Context,
    ) -> Result<IssuedTokens, Error> {
        let client = self.authenticate_client(credentials).await?;
        let Some(code) = BearerSecret::parse(code) else {
            return Err(invalid_grant("unknown authorization code"));
        };
        let now = self.now();
        let code_hash = digest(code.expose_secret());
        let row = sqlx::query(&format!(
            "SELECT c.redirect_uri, c.challenge, c.scopes AS code_scopes, c.expires_at_us, \
             c.used_at_us, {GRANT_COLUMNS} FROM oauth_codes c \
             JOIN oauth_grants g ON g.id = c.grant_id WHERE c.code_hash = $1"
        ))
        .bind(code_hash.as_str())
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or_else(|| invalid_grant("unknown authorization code"))?;
        let grant = grant_from_row(&row)?;
        if grant.client_id != client.client.id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if row.try_get::<Option<i64>, _>("used_at_us")?.is_some() {
            self.reuse_detected(&grant, "authorization_code", context)
                .await?;
            return Err(invalid_grant(
                "the code was already used; everything issued from it is revoked",
            ));
        }
        if row.try_get::<i64, _>("expires_at_us")? <= to_micros(now) {
            return Err(invalid_grant("the code expired (codes live 60 seconds)"));
        }
        if row.try_get::<String, _>("redirect_uri")? != redirect_uri {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if !pkce_matches(verifier, &row.try_get::<String, _>("challenge")?) {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge (PKCE S256)",
            ));
        }
        if grant.revoked {
            return Err(invalid_grant("the connection was revoked"));
        }
        let scopes: Scopes = row
            .try_get::<String, _>("code_scopes")?
            .parse()
            .map_err(|_| Error::corrupt("code scopes"))?;
        self.issue(
            &client,
            Some(&grant),
            &grant.member_id,
            scopes,
            UsedUp::Code(code_hash),
            context,
        )
        .await
    }

    /// The refresh token grant: a refresh token becomes a new access token and a new refresh
    /// token, and is used up. Presenting a used one revokes the whole grant: either the client
    /// or a thief holds a copy, and the server cannot tell which (RFC 9700 §4.14.2). `scopes`
    /// may narrow, never widen.
    ///
    /// # Errors
    /// [`Error::OAuth`]: `invalid_client`, `invalid_grant`, `invalid_scope`.
    pub async fn refresh(
        &self,
        credentials: &ClientCredentials,
        refresh_token: &str,
        scopes: Option<Scopes>,
        context: &Context,
    ) -> Result<IssuedTokens, Error> {
        let client = self.authenticate_client(credentials).await?;
        let Some(token) = parse_kind(refresh_token, TokenKind::OAuthRefresh) else {
            return Err(invalid_grant("not a refresh token"));
        };
        let now = self.now();
        let row = sqlx::query(&format!(
            "SELECT r.hash, r.scopes AS refresh_scopes, r.expires_at_us, r.used_at_us, \
             {GRANT_COLUMNS} FROM oauth_refresh_tokens r \
             JOIN oauth_grants g ON g.id = r.grant_id WHERE r.id = $1"
        ))
        .bind(token.id().as_str())
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        if !digest_matches(token.expose_secret(), &row.try_get::<String, _>("hash")?) {
            return Err(invalid_grant("unknown refresh token"));
        }
        let grant = grant_from_row(&row)?;
        if grant.client_id != client.client.id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if grant.revoked {
            return Err(invalid_grant("the connection was revoked"));
        }
        if row.try_get::<Option<i64>, _>("used_at_us")?.is_some() {
            self.reuse_detected(&grant, "refresh_token", context)
                .await?;
            return Err(invalid_grant(
                "the refresh token was already used; the connection is revoked",
            ));
        }
        if row.try_get::<i64, _>("expires_at_us")? <= to_micros(now) {
            return Err(invalid_grant("the refresh token expired"));
        }
        let had: Scopes = row
            .try_get::<String, _>("refresh_scopes")?
            .parse()
            .map_err(|_| Error::corrupt("refresh scopes"))?;
        let scopes = match scopes {
            Some(asked) if !had.grants(asked) => {
                return Err(Error::oauth(
                    "invalid_scope",
                    format!("a refresh may narrow the scopes, not widen them beyond {had}"),
                ));
            }
            Some(asked) if !asked.is_empty() => asked,
            _ => had,
        };
        self.issue(
            &client,
            Some(&grant),
            &grant.member_id,
            scopes,
            UsedUp::Refresh {
                id: token.id(),
                had,
            },
            context,
        )
        .await
    }

    /// The client credentials grant: a confidential client allowed to act as itself gets an
    /// access token with the rights of the member who registered it, at most its own scopes. No
    /// refresh token: it can always ask again.
    ///
    /// # Errors
    /// [`Error::OAuth`]: `invalid_client`, `unauthorized_client`, `invalid_scope`.
    pub async fn client_credentials(
        &self,
        credentials: &ClientCredentials,
        scopes: Option<Scopes>,
        context: &Context,
    ) -> Result<IssuedTokens, Error> {
        let client = self.authenticate_client(credentials).await?;
        if !client.client.client_credentials || client.secret_hash.is_none() {
            return Err(Error::oauth(
                "unauthorized_client",
                "this client may not use the client credentials grant",
            ));
        }
        let Some(registrar) = client.client.registered_by.clone() else {
            return Err(Error::oauth(
                "unauthorized_client",
                "self-registered clients act for members only",
            ));
        };
        let scopes = match scopes {
            Some(asked) if asked.is_empty() => client.client.scopes,
            Some(asked) if client.client.scopes.grants(asked) => asked,
            Some(_) => {
                return Err(Error::oauth(
                    "invalid_scope",
                    format!("this client may ask for {} at most", client.client.scopes),
                ));
            }
            None => client.client.scopes,
        };
        self.issue(&client, None, &registrar, scopes, UsedUp::Nothing, context)
            .await
    }

    /// Issues an access token (and, with a grant, a refresh token) in one transaction with
    /// `consume` (which uses up the code or refresh token) and the `oauth.token_issued` event.
    /// The scrypt hash of the access token is computed before the transaction opens.
    async fn issue(
        &self,
        client: &ClientRow,
        grant: Option<&GrantRow>,
        member_id: &str,
        scopes: Scopes,
        used_up: UsedUp,
        context: &Context,
    ) -> Result<IssuedTokens, Error> {
        // A narrowed refresh narrows the access token, not the grant (RFC 6749 §6): the new
        // refresh token keeps what the old one had.
        let refresh_scopes = match &used_up {
            UsedUp::Refresh { had, .. } => *had,
            _ => scopes,
        };
        let (access, hash) = self.generate_kind(TokenKind::OAuthAccess).await?;
        let refresh = match grant {
            Some(_) => Some(
                Token::generate_kind(&mut token_core::rand::rngs::SysRng, TokenKind::OAuthRefresh)
                    .map_err(|_| Error::System("the operating system's random generator failed"))?,
            ),
            None => None,
        };
        let now = self.now();
        let now = from_micros(to_micros(now))?;
        let record = access_record(client, member_id, access.id(), scopes, now)?;
        let mut tx = self.inner.db.begin_write().await?;
        // Lock and re-check the member, the client and the grant (always in this order, as
        // every revoker does), so that a removal, a revocation or a reuse detection committing
        // meanwhile either comes first — and this refuses — or waits for this transaction and
        // then revokes what it issued. A no-op UPDATE is the row lock both backends understand.
        let lock = |table: &str, column: &str| {
            format!("UPDATE {table} SET {column} = {column} WHERE id = $1 AND {column} IS NULL")
        };
        let member_live = sqlx::query(&format!(
            "{} AND workspace_id = $2",
            lock("members", "removed_at_us")
        ))
        .bind(member_id)
        .bind(client.client.workspace_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if member_live != 1 {
            return Err(invalid_grant(
                "the member behind this grant is no longer in the workspace",
            ));
        }
        let client_live = sqlx::query(&lock("oauth_clients", "removed_at_us"))
            .bind(client.client.id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if client_live != 1 {
            return Err(invalid_client());
        }
        if let Some(grant) = grant {
            let grant_live = sqlx::query(&lock("oauth_grants", "revoked_at_us"))
                .bind(grant.id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if grant_live != 1 {
                return Err(invalid_grant("the connection was revoked"));
            }
        }
        // Single use, even against a parallel request with the same code or refresh token.
        let (table, key_column, key, how) = match &used_up {
            UsedUp::Code(hash) => (
                "oauth_codes",
                "code_hash",
                hash.clone(),
                "authorization_code",
            ),
            UsedUp::Refresh { id, .. } => (
                "oauth_refresh_tokens",
                "id",
                id.to_string(),
                "refresh_token",
            ),
            UsedUp::Nothing => ("", "", String::new(), "client_credentials"),
        };
        if !table.is_empty() {
            let marked = sqlx::query(&format!(
                "UPDATE {table} SET used_at_us = $1 WHERE {key_column} = $2 AND used_at_us IS NULL"
            ))
            .bind(to_micros(now))
            .bind(key.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked != 1 {
                // A parallel request used it first: a second presentation all the same.
                drop(tx);
                if let Some(grant) = grant {
                    self.reuse_detected(grant, how, context).await?;
                }
                return Err(invalid_grant(
                    "already used; the connection and its tokens are revoked",
                ));
            }
        }
        // The member must still be a member, with a role that allows the scopes.
        ensure_member(&mut tx, &client.client.workspace_id, member_id, scopes)
            .await
            .map_err(|_| {
                invalid_grant("the member behind this grant is no longer in the workspace")
            })?;
        insert_token(&mut tx, &record, &hash).await?;
        sqlx::query("UPDATE tokens SET oauth_client_id = $1, oauth_grant_id = $2 WHERE id = $3")
            .bind(client.client.id.as_str())
            .bind(grant.map(|g| g.id.as_str()))
            .bind(access.id().as_str())
            .execute(&mut *tx)
            .await?;
        if let (Some(refresh), Some(grant)) = (&refresh, grant) {
            sqlx::query(
                "INSERT INTO oauth_refresh_tokens (id, grant_id, hash, scopes, created_at_us, \
                 expires_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(refresh.id().as_str())
            .bind(grant.id.as_str())
            .bind(digest(refresh.expose_secret()))
            .bind(refresh_scopes.to_string())
            .bind(to_micros(now))
            .bind(to_micros(now + REFRESH_LIFETIME))
            .execute(&mut *tx)
            .await?;
        }
        let event = NewEvent::on_token(
            &client.client.workspace_id,
            Action::OAuthTokenIssued,
            access.id(),
        )
        .with_details(json!({
            "client_id": client.client.id,
            "grant_type": how,
            "connection": grant.map(|g| g.id.as_str()),
            "member_id": member_id,
            "scopes": scopes,
            "refresh_token_id": refresh.as_ref().map(|r| r.id()),
            "expires_at": record.expires_at.map(|at| at.unix_timestamp()),
        }));
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        let mark = self.mark();
        tx.commit().await?;
        self.remember(&access, &record, &hash, &mark);
        Ok(IssuedTokens {
            access,
            refresh,
            expires_in: ACCESS_LIFETIME.whole_seconds(),
            scopes,
            client_id: client.client.id.clone(),
        })
    }

    /// A used code or refresh token came back: revoke the grant and all its tokens, recorded
    /// as a security event.
    async fn reuse_detected(
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
    async fn end_connection(
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
    async fn revoke_grant_in(
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

    /// Connections of a workspace (or of one member), newest first; revoked ones only with
    /// `include_revoked`.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_connections(
        &self,
        workspace_id: &str,
        member_id: Option<&str>,
        client_id: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<Connection>, Error> {
        let rows = sqlx::query(
            "SELECT g.id, g.client_id, c.name AS client_name, g.member_id, g.scopes, \
             g.created_at_us, g.revoked_at_us, g.revoked_reason, \
             (SELECT COUNT(*) FROM tokens t WHERE t.oauth_grant_id = g.id \
               AND t.revoked_at_us IS NULL AND t.expires_at_us > $1) AS tokens_outstanding, \
             (SELECT MAX(lu.at_us) FROM tokens t JOIN token_last_use lu ON lu.token_id = t.id \
               WHERE t.oauth_grant_id = g.id) AS last_used_us \
             FROM oauth_grants g JOIN oauth_clients c ON c.id = g.client_id \
             WHERE g.workspace_id = $2 AND ($3 = '' OR g.member_id = $3) \
             AND ($4 = '' OR g.client_id = $4) AND ($5 = 1 OR g.revoked_at_us IS NULL) \
             ORDER BY g.created_at_us DESC, g.id",
        )
        .bind(to_micros(self.now()))
        .bind(workspace_id)
        .bind(member_id.unwrap_or_default())
        .bind(client_id.unwrap_or_default())
        .bind(i64::from(include_revoked))
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Revokes a connection and its tokens (a member ending their own, or an admin any in the
    /// workspace: pass `only_member` to confine it to one member's). Audited; idempotent.
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for another member's when confined).
    pub async fn revoke_connection(
        &self,
        workspace_id: &str,
        id: &str,
        only_member: Option<&str>,
        context: &Context,
    ) -> Result<Connection, Error> {
        let find = |all: Vec<Connection>| {
            all.into_iter()
                .find(|c| c.id == id && only_member.is_none_or(|m| m == c.member_id))
                .ok_or(Error::NotFound { what: "connection" })
        };
        let connection = find(
            self.list_connections(workspace_id, only_member, None, true)
                .await?,
        )?;
        if connection.revoked_at.is_some() {
            return Ok(connection);
        }
        let ended = EndedConnection {
            workspace_id,
            id,
            reason: "connection_revoked",
            action: Action::OAuthConnectionRevoked,
            outcome: Outcome::Success,
            details: json!({
                "client_id": connection.client_id,
                "member_id": connection.member_id,
            }),
        };
        self.end_connection(ended, context).await?;
        find(
            self.list_connections(workspace_id, only_member, None, true)
                .await?,
        )
    }
}

fn connection_from_row(row: &AnyRow) -> Result<Connection, Error> {
    let scopes: String = row.try_get("scopes")?;
    let revoked: Option<i64> = row.try_get("revoked_at_us")?;
    let last_used: Option<i64> = row.try_get("last_used_us")?;
    let outstanding: i64 = row.try_get("tokens_outstanding")?;
    Ok(Connection {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        client_name: row.try_get("client_name")?,
        member_id: row.try_get("member_id")?,
        scopes: scopes
            .parse()
            .map_err(|_| Error::corrupt("connection scopes"))?,
        created_at: from_micros(row.try_get("created_at_us")?)?,
        revoked_at: revoked.map(from_micros).transpose()?,
        revoked_reason: row.try_get("revoked_reason")?,
        tokens_outstanding: u32::try_from(outstanding).unwrap_or(u32::MAX),
        last_used_at: last_used.map(from_micros).transpose()?,
    })
}

/// The token row of a new access token.
fn access_record(
    client: &ClientRow,
    member_id: &str,
    id: token_core::TokenId,
    scopes: Scopes,
    now: OffsetDateTime,
) -> Result<TokenRecord, Error> {
    Ok(TokenRecord {
        id,
        workspace_id: client.client.workspace_id.clone(),
        owner_id: member_id.to_owned(),
        name: client.client.name.clone(),
        description: "OAuth access token".to_owned(),
        client: format!("oauth:{}", client.client.id),
        scopes,
        created_at: now,
        created_by: format!("client:{}", client.client.id),
        expires_at: Some(now + ACCESS_LIFETIME),
        revoked_at: None,
        revoked_reason: None,
        revoked_by: None,
        rotated_from: None,
        rotated_to: None,
        family_id: id,
        origin: Origin::Issued,
        last_used_at: None,
        last_used_ip: None,
        state: TokenState::Active,
        oauth_client_id: Some(client.client.id.clone()),
    })
}
