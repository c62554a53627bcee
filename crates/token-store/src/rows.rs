//! Token rows: the one query that reads them (with their last use, from the audit log), their
//! mapping to [`TokenRecord`], and the insert.

use std::sync::LazyLock;

use knowmind_db::{Connection, from_micros, to_micros};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use token_core::{Scopes, TokenHash, TokenId};

use crate::error::Error;
use crate::model::{Origin, Principal, Standing, TokenRecord, state_at};

/// A token row with its hash; the hash never leaves the crate.
pub(crate) struct TokenRow {
    pub(crate) record: TokenRecord,
    pub(crate) phc: String,
    /// For a rotation's new token while its hand-over is pending: the token it replaces.
    pub(crate) handover_of: Option<TokenId>,
}

pub(crate) fn principal_of(record: &TokenRecord) -> Principal {
    Principal {
        token_id: record.id,
        workspace_id: record.workspace_id.clone(),
        owner_id: record.owner_id.clone(),
        scopes: record.scopes,
        expires_at: record.expires_at,
        oauth_client_id: record.oauth_client_id.clone(),
        rotation_due_at: record.rotation_due_at,
    }
}

/// Every column of a token row and its last use, joined from the audit log's table through the
/// audit crate's own join.
pub(crate) static SELECT_TOKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT t.id, t.workspace_id, t.owner_id, t.name, t.description, t.client, t.scopes, \
         t.created_at_us, t.created_by, t.expires_at_us, t.revoked_at_us, t.revoked_reason, \
         t.revoked_by, t.rotated_from, t.rotated_to, t.family_id, t.oauth_client_id, \
         t.allowed_networks, t.hash, t.handover, t.handover_of, t.canary, \
         w.policy_rotation_interval_s, {} \
         FROM tokens t JOIN workspaces w ON w.id = t.workspace_id {}",
        audit::LAST_USE_COLUMNS,
        audit::last_use_join("t.id")
    )
});

/// A token and its stored hash, by id, in any workspace, through `executor` (the pool, or a
/// transaction that must read what it has locked).
pub(crate) async fn read_token_row<'e, E>(
    executor: E,
    id: TokenId,
    now: OffsetDateTime,
) -> Result<Option<TokenRow>, Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("{} WHERE t.id = $1", *SELECT_TOKEN))
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.map(|row| token_from_row(&row, now)).transpose()
}

pub(crate) fn token_from_row(row: &AnyRow, now: OffsetDateTime) -> Result<TokenRow, Error> {
    let corrupt = Error::corrupt;
    let opt_time = |column: &str| -> Result<Option<OffsetDateTime>, Error> {
        let us: Option<i64> = row.try_get(column)?;
        Ok(us.map(from_micros).transpose()?)
    };
    let opt_id = |column: &str| -> Result<Option<TokenId>, Error> {
        let id: Option<String> = row.try_get(column)?;
        id.map(|s| s.parse().map_err(|_| corrupt("token id")))
            .transpose()
    };
    let id: String = row.try_get("id")?;
    let id: TokenId = id.parse().map_err(|_| corrupt("token id"))?;
    let scopes: String = row.try_get("scopes")?;
    let expires_at = opt_time("expires_at_us")?;
    let revoked_at = opt_time("revoked_at_us")?;
    let revoked_reason: Option<String> = row.try_get("revoked_reason")?;
    let standing = Standing::of(revoked_at, revoked_reason.as_deref());
    let created_by: String = row.try_get("created_by")?;
    let rotated_from = opt_id("rotated_from")?;
    let created_at = from_micros(row.try_get("created_at_us")?)?;
    let rotated_to = opt_id("rotated_to")?;
    let oauth_client_id: Option<String> = row.try_get("oauth_client_id")?;
    let interval = time::Duration::seconds(row.try_get("policy_rotation_interval_s")?);
    let canary = row.try_get::<i64, _>("canary")? != 0;
    // Due once: a rotated or revoked token is replaced or dead, an OAuth access token lives an
    // hour, and a canary is never rotated.
    let rotation_due_at =
        (rotated_to.is_none() && revoked_at.is_none() && oauth_client_id.is_none() && !canary)
            .then(|| created_at.checked_add(interval))
            .flatten();
    Ok(TokenRow {
        record: TokenRecord {
            id,
            workspace_id: row.try_get("workspace_id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            client: row.try_get("client")?,
            scopes: scopes.parse::<Scopes>().map_err(|_| corrupt("scopes"))?,
            created_at,
            origin: Origin::of(&created_by, rotated_from),
            created_by,
            expires_at,
            revoked_at,
            revoked_reason,
            revoked_by: row.try_get("revoked_by")?,
            rotated_from,
            rotated_to,
            family_id: opt_id("family_id")?.unwrap_or(id),
            last_used_at: opt_time("last_used_us")?,
            last_used_ip: row.try_get("last_used_ip")?,
            state: state_at(now, standing, expires_at),
            oauth_client_id,
            allowed_networks: row
                .try_get::<String, _>("allowed_networks")?
                .parse()
                .map_err(|_| corrupt("allowed networks"))?,
            rotation_due_at,
            canary,
            handover: row
                .try_get::<Option<String>, _>("handover")?
                .map(|state| state.parse())
                .transpose()?,
        },
        phc: row.try_get("hash")?,
        handover_of: opt_id("handover_of")?,
    })
}

pub(crate) async fn insert_token(
    conn: &mut Connection,
    r: &TokenRecord,
    hash: &TokenHash,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tokens (id, workspace_id, owner_id, name, description, client, scopes, \
         created_at_us, created_by, expires_at_us, rotated_from, family_id, hash, \
         allowed_networks, canary) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(r.id.as_str())
    .bind(r.workspace_id.as_str())
    .bind(r.owner_id.as_str())
    .bind(r.name.as_str())
    .bind(r.description.as_str())
    .bind(r.client.as_str())
    .bind(r.scopes.to_string())
    .bind(to_micros(r.created_at))
    .bind(r.created_by.as_str())
    .bind(r.expires_at.map(to_micros))
    .bind(r.rotated_from.map(|id| id.to_string()))
    .bind(r.family_id.as_str())
    .bind(hash.as_phc())
    .bind(r.allowed_networks.to_string())
    .bind(i64::from(r.canary))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
