//! Connections: a member's remembered consent to a client, listed and revoked from the
//! dashboard, the API and the CLI.

use audit::{Action, Context, Outcome};
use knowmind_api::Connection;
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::revocation::EndedConnection;
use crate::error::Error;
use crate::store::Store;

impl Store {
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
