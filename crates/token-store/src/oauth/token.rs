//! The token endpoint: a code (with its PKCE verifier), a refresh token or client
//! credentials become an access token and, with a grant, a new refresh token; each refresh
//! rotates the refresh token (RFC 6749 §4.1.3, §6; RFC 9700 §4.14).

use audit::{Action, Context, NewEvent};
use knowmind_api::{OAuthClient, TokenRecord};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use token_core::{Scopes, Token, TokenKind};

use super::clients::ClientRow;
use super::{
    ClientCredentials, REFRESH_LIFETIME, digest, digest_matches, expose, parse_kind, pkce_matches,
};
use crate::accounts::BearerSecret;
use crate::error::Error;
use crate::policy::Proposed;
use crate::rows::insert_token;
use crate::store::Store;
use crate::tokens::{Checked, issued_record};
use crate::workspaces::ensure_member;
use token_core::Networks;

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

/// What a token request uses up.
pub(super) enum UsedUp {
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
pub(super) struct GrantRow {
    pub(super) id: String,
    pub(super) workspace_id: String,
    pub(super) client_id: String,
    pub(super) member_id: String,
    pub(super) scopes: Scopes,
    pub(super) revoked: bool,
}

pub(super) fn grant_from_row(row: &AnyRow) -> Result<GrantRow, Error> {
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

pub(super) const GRANT_COLUMNS: &str =
    "g.id, g.workspace_id, g.client_id, g.member_id, g.scopes, g.revoked_at_us";

pub(super) fn invalid_grant(description: &str) -> Error {
    Error::oauth("invalid_grant", description)
}

pub(super) fn invalid_client() -> Error {
    Error::oauth(
        "invalid_client",
        "client authentication failed: unknown or removed client, or a wrong or missing secret",
    )
}

impl Store {
    /// Checks a client's credentials: a live client, and its secret when it has one (public
    /// clients must not send one they do not have, either).
    pub(super) async fn authenticate_client(
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
    /// Refuses, as `invalid_scope`, what the workspace's policy does not allow a connector
    /// acting for `member_id`: scopes beyond the member's role, or `write` where write tokens
    /// need an address allow-list (a connector has none).
    pub(super) async fn judge_oauth(
        &self,
        workspace_id: &str,
        member_id: &str,
        scopes: Scopes,
    ) -> Result<(), Error> {
        let now = self.now();
        let proposed = Proposed {
            scopes,
            expires_at: Some(now + self.inner.oauth_access_lifetime),
            networks: &Networks::default(),
        };
        let rules = self.rules(workspace_id).await?;
        self.judge_new_token(workspace_id, &rules, member_id, proposed, now)
            .await
            .map_err(|e| match e {
                Error::PolicyViolation { rule, detail } => Error::oauth(
                    "invalid_scope",
                    format!("{detail} (workspace policy: {rule})"),
                ),
                other => other,
            })?;
        Ok(())
    }

    pub(super) async fn issue(
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
        self.judge_oauth(&client.client.workspace_id, member_id, scopes)
            .await?;
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
        let record = access_record(
            client,
            member_id,
            access.id(),
            scopes,
            now,
            now + self.inner.oauth_access_lifetime,
        )?;
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
        self.remember(&access, &record, &hash, &mark, None);
        Ok(IssuedTokens {
            access,
            refresh,
            expires_in: self.inner.oauth_access_lifetime.whole_seconds(),
            scopes,
            client_id: client.client.id.clone(),
        })
    }
}

/// The token row of a new access token: an issued token that names its connector.
fn access_record(
    client: &ClientRow,
    member_id: &str,
    id: token_core::TokenId,
    scopes: Scopes,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<TokenRecord, Error> {
    let checked = Checked {
        owner_id: member_id.to_owned(),
        name: client.client.name.clone(),
        description: "OAuth access token".to_owned(),
        client: format!("oauth:{}", client.client.id),
        scopes,
        expires_at: Some(expires_at),
        allowed_networks: token_core::Networks::default(),
    };
    let by = Context::of(audit::Actor::Client(client.client.id.clone()));
    let mut record = issued_record(&client.client.workspace_id, id, checked, &by, now)?;
    record.oauth_client_id = Some(client.client.id.clone());
    Ok(record)
}
