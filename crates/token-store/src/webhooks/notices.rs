//! Time-based events: a token expiring in 14, 7 or 1 days, a token due for rotation. Nothing
//! changes at those moments, so a sweep writes them: each notice is a row whose primary key
//! (token, kind) lets exactly one instance insert it, and that instance writes the audit event
//! in the same transaction — which webhooks then deliver like any other event.

use audit::{Action, Context, NewEvent};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use token_core::TokenId;

use crate::error::Error;
use crate::store::Store;

/// Live API tokens (not revoked, not rotated, not expired, not OAuth access tokens, not
/// canaries).
const LIVE: &str = "t.revoked_at_us IS NULL AND t.rotated_to IS NULL \
     AND t.oauth_client_id IS NULL AND t.canary = 0 \
     AND (t.expires_at_us IS NULL OR t.expires_at_us > $1)";

const DAY_US: i64 = 86_400 * 1_000_000;

impl Store {
    /// Writes the notices that are due: `token.expiring` when a live token comes within 14, 7
    /// and 1 days of its expiry (the nearest threshold only, once each), and
    /// `token.rotation_due` once when it passes its workspace's rotation interval. Safe on every
    /// instance at once. Returns how many events were written.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn write_token_notices(&self) -> Result<u64, Error> {
        let now = self.now();
        let now_us = to_micros(now);
        let mut written = 0;
        // Nearest first: a token 12 hours from its end gets the 1-day notice, not all three.
        for (kind, days, nearer) in [
            ("expiring_1d", 1, 0),
            ("expiring_7d", 7, 1),
            ("expiring_14d", 14, 7),
        ] {
            let window = format!(
                "{LIVE} AND t.expires_at_us > $1 + {nearer} * {DAY_US} \
                 AND t.expires_at_us <= $1 + {days} * {DAY_US}"
            );
            written += self
                .notice(kind, &window, now_us, |row| {
                    let at: Option<i64> = row.try_get("expires_at_us")?;
                    Ok((
                        Action::TokenExpiring,
                        json!({
                            "days": days,
                            "expires_at": at.map(from_micros).transpose()?.map(|t| t.unix_timestamp()),
                        }),
                    ))
                })
                .await?;
        }
        let due = format!(
            "{LIVE} AND t.created_at_us + (SELECT w.policy_rotation_interval_s FROM workspaces w \
             WHERE w.id = t.workspace_id) * 1000000 <= $1"
        );
        written += self
            .notice("rotation_due", &due, now_us, |row| {
                let created: i64 = row.try_get("created_at_us")?;
                Ok((
                    Action::TokenRotationDue,
                    json!({ "created_at": from_micros(created)?.unix_timestamp() }),
                ))
            })
            .await?;
        Ok(written)
    }

    /// Inserts notice `kind` for every token matching `window` that has none, and writes an
    /// event for each inserted one, in one transaction.
    async fn notice(
        &self,
        kind: &str,
        window: &str,
        now_us: i64,
        event: impl Fn(&sqlx::any::AnyRow) -> Result<(Action, serde_json::Value), Error>,
    ) -> Result<u64, Error> {
        let now = from_micros(now_us)?;
        let mut tx = self.inner.db.begin_write().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO token_notices (token_id, kind, at_us) \
             SELECT t.id, $2, $1 FROM tokens t WHERE {window} \
             ON CONFLICT (token_id, kind) DO NOTHING RETURNING token_id"
        ))
        .bind(now_us)
        .bind(kind)
        .fetch_all(&mut *tx)
        .await?;
        for row in &inserted {
            let id: String = row.try_get("token_id")?;
            let token = sqlx::query(
                "SELECT workspace_id, name, expires_at_us, created_at_us FROM tokens WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let workspace: String = token.try_get("workspace_id")?;
            let name: String = token.try_get("name")?;
            let (action, mut details) = event(&token)?;
            details["name"] = json!(name);
            let id: TokenId = id.parse().map_err(|_| Error::corrupt("token id"))?;
            let event = NewEvent::on_token(&workspace, action, id).with_details(details);
            self.inner
                .audit
                .append(&mut tx, &Context::system(), &event, now)
                .await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(inserted.len()).unwrap_or(u64::MAX))
    }
}
