//! Issuing, reading, listing and changing tokens. Rotation and revocation are in `family.rs`.

use audit::{Action, Context, NewEvent};
use knowmind_db::{Arg, Connection, Sql, from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::{Scopes, Token, TokenHash, TokenId};

use crate::error::Error;
use crate::model::{
    NewToken, Origin, Page, Standing, TokenCounts, TokenFilter, TokenRecord, TokenState,
    TokenUpdate,
};
use crate::policy::Proposed;
use crate::rows::{SELECT_TOKEN, insert_token, token_from_row};
use crate::store::{Store, changed};
use crate::validate;
use crate::workspaces::ensure_member;

impl Store {
    /// Issues a token. The returned [`Token`] is the only copy of the secret: show it once.
    ///
    /// # Errors
    /// [`Error::Invalid`] (empty or over-long name, control characters, no scopes, expiry not in
    /// the future); [`Error::NotFound`] if the owner is not a member of the workspace;
    /// [`Error::Busy`] if the scrypt pool is saturated. Nothing is written on error.
    pub async fn create_token(
        &self,
        workspace_id: &str,
        new: NewToken,
        context: &Context,
    ) -> Result<(TokenRecord, Token), Error> {
        let now = self.now();
        let checked = check_new(new, now)?; // before spending scrypt on it
        let proposed = Proposed {
            scopes: checked.scopes,
            expires_at: checked.expires_at,
            networks: &checked.allowed_networks,
        };
        let rules = self.rules(workspace_id).await?;
        self.judge_new_token(workspace_id, &rules, &checked.owner_id, proposed, now)
            .await?;
        let (token, hash) = self.generate().await?;
        let mut record = issued_record(workspace_id, token.id(), checked, context, now)?;
        record.rotation_due_at = record.created_at.checked_add(rules.rotation_interval);
        let mut tx = self.inner.db.begin_write().await?;
        ensure_member(&mut tx, workspace_id, &record.owner_id, record.scopes).await?;
        self.insert_issued(&mut tx, &record, &hash, context, now)
            .await?;
        let mark = self.mark();
        tx.commit().await?;
        self.remember(&token, &record, &hash, &mark, None);
        Ok((record, token))
    }

    /// Inserts an issued token and its `token.created` event.
    pub(crate) async fn insert_issued(
        &self,
        tx: &mut Connection,
        record: &TokenRecord,
        hash: &TokenHash,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        insert_token(tx, record, hash).await?;
        let event = NewEvent::on_token(&record.workspace_id, Action::TokenCreated, record.id)
            .with_details(token_details(record));
        self.inner.audit.append(tx, context, &event, now).await?;
        Ok(())
    }

    /// How many live API tokens, in every workspace, are due for rotation or expire within 14
    /// days (one aggregate query).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn token_counts(&self) -> Result<TokenCounts, Error> {
        let now = to_micros(self.now());
        let soon = now.saturating_add(14 * 86_400 * 1_000_000);
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN t.created_at_us + w.policy_rotation_interval_s * 1000000 \
             <= $1 THEN 1 ELSE 0 END), 0) AS due, \
             COALESCE(SUM(CASE WHEN t.expires_at_us <= $2 THEN 1 ELSE 0 END), 0) AS expiring \
             FROM tokens t JOIN workspaces w ON w.id = t.workspace_id \
             WHERE t.revoked_at_us IS NULL AND t.rotated_to IS NULL \
             AND t.oauth_client_id IS NULL AND t.canary = 0 \
             AND (t.expires_at_us IS NULL OR t.expires_at_us > $1)",
        )
        .bind(now)
        .bind(soon)
        .fetch_one(self.inner.db.pool())
        .await?;
        let count = |column: &str| -> Result<u64, Error> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
        };
        Ok(TokenCounts {
            rotation_due: count("due")?,
            expiring_soon: count("expiring")?,
        })
    }

    /// A token of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for a token of another workspace).
    pub async fn get_token(&self, workspace_id: &str, id: TokenId) -> Result<TokenRecord, Error> {
        let row = self.token_row(id).await?;
        match row {
            Some(row) if row.record.workspace_id == workspace_id => Ok(row.record),
            _ => Err(Error::NotFound { what: "token" }),
        }
    }

    /// Tokens of a workspace matching `filter`, newest first. Pass the previous page's
    /// `next_cursor` to continue.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed cursor.
    pub async fn list_tokens(
        &self,
        workspace_id: &str,
        filter: &TokenFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<TokenRecord>, Error> {
        let now = to_micros(self.now());
        let limit = i64::from(limit.clamp(1, 500));
        let mut sql = Sql::new(self.inner.db.backend(), &SELECT_TOKEN);
        // OAuth access tokens (an hour each, many per connector) are listed with their
        // connector, not among the tokens people issue.
        sql.push(" WHERE t.oauth_client_id IS NULL AND t.workspace_id = ")
            .bind(Arg::Text(workspace_id.to_owned()));
        let unrevoked = |sql: &mut Sql| {
            sql.push(" AND ")
                .push(Standing::SQL_UNREVOKED_AT)
                .bind(Arg::Int(now))
                .push("))");
        };
        match filter.state {
            None => {}
            Some(TokenState::Active) => {
                unrevoked(&mut sql);
                sql.push(" AND (t.expires_at_us IS NULL OR t.expires_at_us > ")
                    .bind(Arg::Int(now))
                    .push(")");
            }
            Some(TokenState::Expired) => {
                unrevoked(&mut sql);
                sql.push(" AND t.expires_at_us <= ").bind(Arg::Int(now));
            }
            Some(TokenState::Revoked) => {
                sql.push(" AND NOT ")
                    .push(Standing::SQL_UNREVOKED_AT)
                    .bind(Arg::Int(now))
                    .push("))");
            }
        }
        if let Some(name) = &filter.name {
            sql.push(" AND LOWER(t.name) LIKE ")
                .bind(Arg::Text(format!(
                    "%{}%",
                    escape_like(&name.to_lowercase())
                )))
                .push(" ESCAPE '\\'");
        }
        if let Some(client) = &filter.client {
            sql.push(" AND LOWER(t.client) LIKE ")
                .bind(Arg::Text(format!(
                    "%{}%",
                    escape_like(&client.to_lowercase())
                )))
                .push(" ESCAPE '\\'");
        }
        if let Some(owner) = &filter.owner_id {
            sql.push(" AND t.owner_id = ")
                .bind(Arg::Text(owner.clone()));
        }
        if let Some(scope) = filter.scope {
            sql.push(" AND (',' || t.scopes || ',') LIKE ")
                .bind(Arg::Text(format!("%,{},%", scope.as_str())));
        }
        if let Some(before) = filter.expires_before {
            sql.push(" AND t.expires_at_us < ")
                .bind(Arg::Int(to_micros(before)));
        }
        if filter.rotation_due || filter.expiring_within.is_some() {
            unrevoked(&mut sql);
            sql.push(" AND (t.expires_at_us IS NULL OR t.expires_at_us > ")
                .bind(Arg::Int(now))
                .push(")");
        }
        if filter.rotation_due {
            let interval = self.rules(workspace_id).await?.rotation_interval;
            sql.push(" AND t.rotated_to IS NULL AND t.canary = 0 AND t.created_at_us <= ")
                .bind(Arg::Int(now - interval.whole_microseconds() as i64));
        }
        if let Some(within) = filter.expiring_within {
            sql.push(" AND t.expires_at_us <= ").bind(Arg::Int(
                now.saturating_add(within.whole_microseconds() as i64),
            ));
        }
        if let Some(before) = filter.last_used_before {
            sql.push(&format!(" AND ({0} IS NULL OR {0} < ", audit::LAST_USE_AT))
                .bind(Arg::Int(to_micros(before)))
                .push(")");
        }
        if let Some(cursor) = cursor {
            let (created, id) = parse_cursor(cursor)?;
            sql.push(" AND (t.created_at_us < ")
                .bind(Arg::Int(created))
                .push(" OR (t.created_at_us = ")
                .bind(Arg::Int(created))
                .push(" AND t.id < ")
                .bind(Arg::Text(id))
                .push("))");
        }
        sql.push(" ORDER BY t.created_at_us DESC, t.id DESC LIMIT ")
            .bind(Arg::Int(limit));
        let rows = sql.query().fetch_all(self.inner.db.pool()).await?;
        let now = self.now();
        let items = rows
            .iter()
            .map(|row| token_from_row(row, now).map(|r| r.record))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match items.last() {
            Some(last) if items.len() as i64 == limit => {
                Some(format!("{}.{}", to_micros(last.created_at), last.id))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes a token's name or description.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`].
    pub async fn update_token(
        &self,
        workspace_id: &str,
        id: TokenId,
        update: TokenUpdate,
        context: &Context,
    ) -> Result<TokenRecord, Error> {
        let now = self.now();
        let current = self.get_token(workspace_id, id).await?;
        let name = update
            .name
            .as_deref()
            .map(|n| validate::line("name", n, 100))
            .transpose()?;
        let description = update
            .description
            .as_deref()
            .map(|d| validate::text("description", d, 1_000))
            .transpose()?;
        let updated = TokenRecord {
            name: name.unwrap_or_else(|| current.name.clone()),
            description: description.unwrap_or_else(|| current.description.clone()),
            ..current.clone()
        };
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query(
            "UPDATE tokens SET name = $1, description = $2 WHERE id = $3 AND workspace_id = $4",
        )
        .bind(updated.name.as_str())
        .bind(updated.description.as_str())
        .bind(id.as_str())
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        let event =
            NewEvent::on_token(workspace_id, Action::TokenUpdated, id).with_details(json!({
                "name": changed(&current.name, &updated.name),
                "description_changed": current.description != updated.description,
            }));
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }
}

pub(crate) fn token_details(r: &TokenRecord) -> serde_json::Value {
    json!({
        "name": r.name,
        "owner_id": r.owner_id,
        "client": r.client,
        "scopes": r.scopes,
        "expires_at": r.expires_at.map(|t| t.unix_timestamp()),
        "rotated_from": r.rotated_from,
    })
}

/// The fields of a token to issue, checked.
pub(crate) struct Checked {
    pub(crate) owner_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) client: String,
    pub(crate) scopes: Scopes,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) allowed_networks: token_core::Networks,
}

pub(crate) fn check_new(new: NewToken, now: OffsetDateTime) -> Result<Checked, Error> {
    check_scopes(new.scopes)?;
    check_expiry(new.expires_at, now)?;
    Ok(Checked {
        owner_id: new.owner_id,
        name: validate::line("name", &new.name, 100)?,
        description: validate::text("description", &new.description, 1_000)?,
        client: validate::optional_line("client", &new.client, 100)?,
        scopes: new.scopes,
        expires_at: new
            .expires_at
            .map(|t| from_micros(to_micros(t)))
            .transpose()?,
        allowed_networks: new.allowed_networks,
    })
}

pub(crate) fn issued_record(
    workspace_id: &str,
    id: TokenId,
    checked: Checked,
    context: &Context,
    now: OffsetDateTime,
) -> Result<TokenRecord, Error> {
    Ok(TokenRecord {
        id,
        workspace_id: workspace_id.to_owned(),
        owner_id: checked.owner_id,
        name: checked.name,
        description: checked.description,
        client: checked.client,
        scopes: checked.scopes,
        created_at: from_micros(to_micros(now))?,
        created_by: context.actor.to_string(),
        expires_at: checked.expires_at,
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
        oauth_client_id: None,
        allowed_networks: checked.allowed_networks,
        rotation_due_at: None,
        handover: None,
        canary: false,
    })
}

fn check_scopes(scopes: Scopes) -> Result<(), Error> {
    if scopes.is_empty() {
        return Err(Error::invalid("scopes", "at least one scope is required"));
    }
    Ok(())
}

pub(crate) fn check_expiry(
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    match expires_at {
        Some(at) if at <= now => Err(Error::invalid("expires_at", "must be in the future")),
        _ => Ok(()),
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid("cursor", "not a cursor returned by this API");
    let (created, id) = cursor.split_once('.').ok_or_else(bad)?;
    let created = knowmind_api::cursor_number(created).ok_or_else(bad)?;
    let id: TokenId = id.parse().map_err(|_| bad())?;
    Ok((created, id.to_string()))
}
