//! The client registry: registering a connector (by an admin, or by itself when its workspace
//! allows it), reading and listing clients with what they hold, and removing one — which
//! revokes every grant and token it has, on every instance.

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_api::{OAuthClient, RegisterClient, RegisteredClient, Registration};
use knowmind_db::{Connection, from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use token_core::rand::rngs::SysRng;
use token_core::{Scope, Scopes, Token, TokenId, TokenKind};

use super::{GRANTABLE, check_redirect_uri, digest};
use crate::error::Error;
use crate::store::Store;
use crate::validate;
use crate::workspaces::ensure_member;

/// Self-registered clients nobody has approved yet, per workspace: beyond this, registration
/// waits until an admin removes some (an open endpoint must not fill the database).
const MAX_UNAPPROVED: i64 = 100;

/// A client as stored, with its secret's digest (never leaves the crate).
pub(crate) struct ClientRow {
    pub(crate) client: OAuthClient,
    pub(crate) secret_hash: Option<String>,
}

const CLIENT_COLUMNS: &str = "c.id, c.workspace_id, c.name, c.registration, c.registered_by, \
     c.redirect_uris, c.scopes, c.secret_hash, c.client_credentials, c.created_at_us, \
     c.removed_at_us";

/// The counts and last use that go with each client, as correlated subqueries.
const CLIENT_STATS: &str = "(SELECT COUNT(DISTINCT g.member_id) FROM oauth_grants g \
       WHERE g.client_id = c.id AND g.revoked_at_us IS NULL) AS connected_members, \
     (SELECT COUNT(*) FROM oauth_grants g WHERE g.client_id = c.id) AS grants_ever, \
     (SELECT COUNT(*) FROM tokens t WHERE t.oauth_client_id = c.id AND t.revoked_at_us IS NULL \
       AND t.expires_at_us > $1) AS tokens_outstanding, \
     (SELECT lu.at_us FROM tokens t JOIN token_last_use lu ON lu.token_id = t.id \
       WHERE t.oauth_client_id = c.id ORDER BY lu.at_us DESC LIMIT 1) AS last_used_us, \
     (SELECT lu.client_ip FROM tokens t JOIN token_last_use lu ON lu.token_id = t.id \
       WHERE t.oauth_client_id = c.id ORDER BY lu.at_us DESC LIMIT 1) AS last_used_ip";

fn client_from_row(row: &AnyRow) -> Result<ClientRow, Error> {
    let corrupt = Error::corrupt;
    let uris: String = row.try_get("redirect_uris")?;
    let scopes: String = row.try_get("scopes")?;
    let removed: Option<i64> = row.try_get("removed_at_us")?;
    let last_used: Option<i64> = row.try_get("last_used_us")?;
    let count = |column: &str| -> Result<u32, Error> {
        let n: i64 = row.try_get(column)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    let registration: String = row.try_get("registration")?;
    Ok(ClientRow {
        client: OAuthClient {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            name: row.try_get("name")?,
            registration: registration.parse().map_err(|_| corrupt("registration"))?,
            registered_by: row.try_get("registered_by")?,
            redirect_uris: serde_json::from_str(&uris).map_err(|_| corrupt("redirect uris"))?,
            scopes: scopes.parse::<Scopes>().map_err(|_| corrupt("scopes"))?,
            confidential: row.try_get::<Option<String>, _>("secret_hash")?.is_some(),
            client_credentials: row.try_get::<i64, _>("client_credentials")? != 0,
            created_at: from_micros(row.try_get("created_at_us")?)?,
            removed_at: removed.map(from_micros).transpose()?,
            connected_members: count("connected_members")?,
            ever_approved: count("grants_ever")? > 0,
            tokens_outstanding: count("tokens_outstanding")?,
            last_used_at: last_used.map(from_micros).transpose()?,
            last_used_ip: row.try_get("last_used_ip")?,
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}

/// What a registration asks for, checked.
struct Checked {
    name: String,
    redirect_uris: Vec<String>,
    scopes: Scopes,
    confidential: bool,
    client_credentials: bool,
}

fn check(new: RegisterClient) -> Result<Checked, Error> {
    let name = validate::line("name", &new.name, 100)
        .map_err(|e| Error::oauth("invalid_client_metadata", e.to_string()))?;
    if new.redirect_uris.len() > 10 {
        return Err(Error::oauth(
            "invalid_redirect_uri",
            "at most 10 redirect URIs",
        ));
    }
    let redirect_uris = new
        .redirect_uris
        .iter()
        .map(|uri| check_redirect_uri(uri))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = new.scopes.iter().find(|s| !GRANTABLE.contains(s)) {
        return Err(Error::oauth(
            "invalid_client_metadata",
            format!("the {bad} scope is never granted through OAuth; choose read and/or write"),
        ));
    }
    if new.scopes.is_empty() {
        return Err(Error::oauth(
            "invalid_client_metadata",
            "a client needs at least one scope (read, write)",
        ));
    }
    if new.client_credentials && !new.confidential {
        return Err(Error::oauth(
            "invalid_client_metadata",
            "the client credentials grant needs a confidential client (one with a secret)",
        ));
    }
    if redirect_uris.is_empty() && !new.client_credentials {
        return Err(Error::oauth(
            "invalid_redirect_uri",
            "a client that members connect needs at least one redirect URI",
        ));
    }
    Ok(Checked {
        name,
        redirect_uris,
        scopes: new.scopes,
        confidential: new.confidential,
        client_credentials: new.client_credentials,
    })
}

impl Store {
    /// An owner or admin (the actor in `context`, member `registered_by`) registers a
    /// connector. A confidential client's secret (`kmc_…`) is returned this once and stored as
    /// a digest.
    ///
    /// # Errors
    /// [`Error::OAuth`] (`invalid_client_metadata`, `invalid_redirect_uri`) for a bad
    /// registration; [`Error::NotFound`] if `registered_by` is not a member.
    pub async fn register_client(
        &self,
        workspace_id: &str,
        registered_by: &str,
        new: RegisterClient,
        context: &Context,
    ) -> Result<RegisteredClient, Error> {
        let checked = check(new)?;
        let mut tx = self.inner.db.begin_write().await?;
        ensure_member(&mut tx, workspace_id, registered_by, Scope::Admin.into()).await?;
        let registered = self
            .insert_client(&mut tx, workspace_id, Some(registered_by), checked, context)
            .await?;
        tx.commit().await?;
        Ok(registered)
    }

    /// A connector registers itself (RFC 7591), into the one workspace that allows it. It is
    /// unverified, cannot use the client credentials grant, and reaches nothing until a member
    /// consents.
    ///
    /// # Errors
    /// [`Error::OAuth`] `access_denied` when no workspace allows registration, or a metadata
    /// error; [`Error::RateLimited`] when this address registered too many clients lately.
    pub async fn register_dynamic_client(
        &self,
        new: RegisterClient,
        context: &Context,
    ) -> Result<RegisteredClient, Error> {
        if new.client_credentials {
            return Err(Error::oauth(
                "invalid_client_metadata",
                "self-registered clients act for members only: grant_types may be \
                 authorization_code and refresh_token",
            ));
        }
        let checked = check(new)?;
        let Some(workspace_id) = self.registration_workspace().await? else {
            return Err(Error::oauth(
                "access_denied",
                "dynamic client registration is not enabled on this server; ask an admin to \
                 register the client",
            ));
        };
        if let Some(ip) = context.client_ip {
            // Counted and never given back: registrations per address (the limiter counts an
            // IPv6 address per /64, which one host usually has whole) are what is limited.
            self.inner
                .registration_limiter
                .attempt(crate::limiter::Source::Address(ip))
                .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        }
        let waiting: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM oauth_clients c WHERE c.workspace_id = $1 \
             AND c.registration = 'dynamic' AND c.removed_at_us IS NULL \
             AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = c.id)",
        )
        .bind(workspace_id.as_str())
        .fetch_one(self.inner.db.pool())
        .await?
        .try_get("n")?;
        if waiting >= MAX_UNAPPROVED {
            return Err(Error::oauth(
                "access_denied",
                format!(
                    "{MAX_UNAPPROVED} self-registered clients are waiting for a member's \
                     approval; an admin must remove unknown ones first"
                ),
            ));
        }
        let mut tx = self.inner.db.begin_write().await?;
        let registered = self
            .insert_client(&mut tx, &workspace_id, None, checked, context)
            .await?;
        tx.commit().await?;
        Ok(registered)
    }

    /// Whether some workspace accepts self-registered clients (the discovery document then
    /// names the registration endpoint).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn oauth_registration_open(&self) -> Result<bool, Error> {
        Ok(self.registration_workspace().await?.is_some())
    }

    /// The workspace that accepts self-registered clients, if one does.
    pub(crate) async fn registration_workspace(&self) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT id FROM workspaces WHERE oauth_registration = 1 LIMIT 1")
            .fetch_optional(self.inner.db.pool())
            .await?;
        Ok(row.map(|row| row.try_get("id")).transpose()?)
    }

    async fn insert_client(
        &self,
        tx: &mut Connection,
        workspace_id: &str,
        registered_by: Option<&str>,
        checked: Checked,
        context: &Context,
    ) -> Result<RegisteredClient, Error> {
        let now = self.now();
        // A confidential client's id is its secret's id: `kmc_<id>…` names the client it
        // belongs to, for scanners and for whoever finds one.
        let secret = if checked.confidential {
            Some(
                Token::generate_kind(&mut SysRng, TokenKind::ClientSecret)
                    .map_err(|_| Error::System("the operating system's random generator failed"))?,
            )
        } else {
            None
        };
        let id = match &secret {
            Some(secret) => format!("cli_{}", secret.id()),
            None => format!(
                "cli_{}",
                TokenId::generate(&mut SysRng).map_err(|_| {
                    Error::System("the operating system's random generator failed")
                })?
            ),
        };
        let registration = if registered_by.is_some() {
            Registration::Admin
        } else {
            Registration::Dynamic
        };
        sqlx::query(
            "INSERT INTO oauth_clients (id, workspace_id, name, registration, registered_by, \
             redirect_uris, scopes, secret_hash, client_credentials, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.as_str())
        .bind(workspace_id)
        .bind(checked.name.as_str())
        .bind(registration.as_str())
        .bind(registered_by)
        .bind(serde_json::to_string(&checked.redirect_uris).unwrap_or_default())
        .bind(checked.scopes.to_string())
        .bind(secret.as_ref().map(|s| digest(s.expose_secret())))
        .bind(i64::from(checked.client_credentials))
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::OAuthClientRegistered,
            target_kind: Some("oauth_client"),
            target_id: Some(id.clone()),
            outcome: Outcome::Success,
            details: json!({
                "name": checked.name,
                "registration": registration.as_str(),
                "redirect_uris": checked.redirect_uris,
                "scopes": checked.scopes,
                "confidential": checked.confidential,
                "client_credentials": checked.client_credentials,
            }),
        };
        self.inner.audit.append(tx, context, &event, now).await?;
        let client = self
            .read_client(&mut *tx, &id)
            .await?
            .ok_or(Error::NotFound { what: "client" })?
            .client;
        Ok(RegisteredClient {
            client,
            client_secret: secret.map(|s| s.expose_secret().to_owned()),
        })
    }

    /// A client by id, in any workspace, removed or not, through `executor`.
    pub(crate) async fn read_client<'e, E>(
        &self,
        executor: E,
        id: &str,
    ) -> Result<Option<ClientRow>, Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS}, {CLIENT_STATS} FROM oauth_clients c WHERE c.id = $2"
        ))
        .bind(to_micros(self.now()))
        .bind(id)
        .fetch_optional(executor)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// A live (not removed) client by id, for the OAuth endpoints.
    pub(crate) async fn live_client(&self, id: &str) -> Result<Option<ClientRow>, Error> {
        Ok(self
            .read_client(self.inner.db.pool(), id)
            .await?
            .filter(|row| row.client.removed_at.is_none()))
    }

    /// A live client by id, as the consent page shows it.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or removed client.
    pub async fn oauth_client(&self, id: &str) -> Result<OAuthClient, Error> {
        self.live_client(id)
            .await?
            .map(|row| row.client)
            .ok_or(Error::NotFound { what: "client" })
    }

    /// A client of a workspace, removed or not.
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for another workspace's client).
    pub async fn get_client(&self, workspace_id: &str, id: &str) -> Result<OAuthClient, Error> {
        self.read_client(self.inner.db.pool(), id)
            .await?
            .map(|row| row.client)
            .filter(|client| client.workspace_id == workspace_id)
            .ok_or(Error::NotFound { what: "client" })
    }

    /// The clients of a workspace, newest first; removed ones only with `include_removed`.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_clients(
        &self,
        workspace_id: &str,
        include_removed: bool,
    ) -> Result<Vec<OAuthClient>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS}, {CLIENT_STATS} FROM oauth_clients c \
             WHERE c.workspace_id = $2 AND ($3 = 1 OR c.removed_at_us IS NULL) \
             ORDER BY c.created_at_us DESC, c.id"
        ))
        .bind(to_micros(self.now()))
        .bind(workspace_id)
        .bind(i64::from(include_removed))
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| client_from_row(row).map(|row| row.client))
            .collect()
    }

    /// The newest `limit` access tokens issued to a client (any state), each with its last
    /// use: where to start reading what a connector did (each token's security log has every
    /// call).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn client_tokens(
        &self,
        workspace_id: &str,
        client_id: &str,
        limit: u32,
    ) -> Result<Vec<knowmind_api::TokenRecord>, Error> {
        let now = self.now();
        let rows = sqlx::query(&format!(
            "{} WHERE t.workspace_id = $1 AND t.oauth_client_id = $2 \
             ORDER BY t.created_at_us DESC, t.id LIMIT $3",
            *crate::rows::SELECT_TOKEN
        ))
        .bind(workspace_id)
        .bind(client_id)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| crate::rows::token_from_row(row, now).map(|t| t.record))
            .collect()
    }

    /// Removes a client: it is refused from now on, and every grant, access token and refresh
    /// token of it is revoked in the same transaction, on every instance. Audited with who and
    /// why. Idempotent.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`] for a bad reason.
    pub async fn remove_client(
        &self,
        workspace_id: &str,
        id: &str,
        reason: &str,
        context: &Context,
    ) -> Result<OAuthClient, Error> {
        let reason = validate::optional_line("reason", reason, 200)?;
        let reason = if reason.is_empty() {
            "removed".to_owned()
        } else {
            reason
        };
        let client = self.get_client(workspace_id, id).await?;
        if client.removed_at.is_some() {
            return Ok(client);
        }
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let removed = sqlx::query(
            "UPDATE oauth_clients SET removed_at_us = $1, removed_by = $2, removed_reason = $3 \
             WHERE id = $4 AND removed_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(context.actor.to_string())
        .bind(reason.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut revoked = Vec::new();
        if removed > 0 {
            let grants = sqlx::query(
                "UPDATE oauth_grants SET revoked_at_us = $1, revoked_reason = $2, revoked_by = $3 \
                 WHERE client_id = $4 AND revoked_at_us IS NULL RETURNING id",
            )
            .bind(to_micros(now))
            .bind("client_removed")
            .bind(context.actor.to_string())
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            revoked = self
                .revoke_oauth_tokens_in(
                    &mut tx,
                    "oauth_client_id",
                    id,
                    "client_removed",
                    context,
                    now,
                )
                .await?;
            let event = NewEvent {
                workspace_id: Some(workspace_id.to_owned()),
                action: Action::OAuthClientRemoved,
                target_kind: Some("oauth_client"),
                target_id: Some(id.to_owned()),
                outcome: Outcome::Success,
                details: json!({
                    "name": client.name,
                    "reason": reason,
                    "connections_revoked": grants.len(),
                    "tokens_revoked": revoked,
                }),
            };
            self.inner
                .audit
                .append(&mut tx, context, &event, now)
                .await?;
        }
        tx.commit().await?;
        for token in &revoked {
            self.inner.cache.evict(*token);
        }
        self.get_client(workspace_id, id).await
    }

    /// Inside a member's removal (which holds their row): revokes their connections, and every
    /// token of theirs still live — an access token issued between the removal's first read
    /// and its lock included. Returns the token ids.
    pub(crate) async fn revoke_member_oauth_in(
        &self,
        tx: &mut Connection,
        member_id: &str,
        context: &Context,
        now: time::OffsetDateTime,
    ) -> Result<Vec<TokenId>, Error> {
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at_us = $1, revoked_reason = 'member_removed', \
             revoked_by = $2 WHERE member_id = $3 AND revoked_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(context.actor.to_string())
        .bind(member_id)
        .execute(&mut *tx)
        .await?;
        self.revoke_oauth_tokens_in(tx, "owner_id", member_id, "member_removed", context, now)
            .await
    }

    /// Deletes authorization codes and refresh tokens that expired more than a day ago: past
    /// expiry they are refused anyway, and reuse of them no longer tells anything. Returns how
    /// many rows went. The server runs it hourly.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn prune_oauth(&self) -> Result<u64, Error> {
        let before = to_micros(self.now() - time::Duration::days(1));
        let mut tx = self.inner.db.begin_write().await?;
        let mut pruned = 0;
        for table in ["oauth_codes", "oauth_refresh_tokens"] {
            pruned += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at_us < $1"))
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(pruned)
    }

    /// Inside a write transaction: revokes the live access tokens whose `column`
    /// (`oauth_client_id`, `oauth_grant_id` or `owner_id`) is `value`, tells other instances, and returns
    /// their ids for the caller to evict after committing. Refresh tokens need no update: they
    /// die with their grant, which every refresh checks.
    pub(crate) async fn revoke_oauth_tokens_in(
        &self,
        tx: &mut Connection,
        column: &'static str,
        value: &str,
        reason: &str,
        context: &Context,
        now: time::OffsetDateTime,
    ) -> Result<Vec<TokenId>, Error> {
        debug_assert!(matches!(
            column,
            "oauth_client_id" | "oauth_grant_id" | "owner_id"
        ));
        let rows = sqlx::query(&format!(
            "UPDATE tokens SET revoked_at_us = $1, revoked_reason = $2, revoked_by = $3 \
             WHERE {column} = $4 AND revoked_at_us IS NULL RETURNING id"
        ))
        .bind(to_micros(now))
        .bind(reason)
        .bind(context.actor.to_string())
        .bind(value)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let id: TokenId = id.parse().map_err(|_| Error::corrupt("token id"))?;
            self.notify(tx, id).await?;
            ids.push(id);
        }
        ids.sort_by_key(TokenId::to_string);
        Ok(ids)
    }
}
