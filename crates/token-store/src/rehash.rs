//! Lazy re-hashing: a stored hash made with outdated scrypt parameters is replaced, after a
//! successful verification, while the plaintext is at hand — if the row still holds the old one —
//! with a `token.rehashed` event.

use audit::{Action, Context, NewEvent};
use serde_json::json;
use token_core::{TokenHash, TokenId};

use crate::error::Error;
use crate::store::Store;

impl Store {
    /// Stores an upgraded hash (if the row still holds the old one) and records it.
    pub(crate) fn spawn_rehash(
        &self,
        id: TokenId,
        workspace: &str,
        old_phc: String,
        new: &TokenHash,
    ) {
        let store = self.clone();
        let workspace = workspace.to_owned();
        let new_phc = new.as_phc().to_owned();
        let params = new.params().to_string();
        tokio::spawn(async move {
            let result: Result<(), Error> = async {
                let now = store.now();
                let mut tx = store.inner.db.begin_write().await?;
                let done = sqlx::query("UPDATE tokens SET hash = $1 WHERE id = $2 AND hash = $3")
                    .bind(new_phc.as_str())
                    .bind(id.as_str())
                    .bind(old_phc.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    let event = NewEvent::on_token(&workspace, Action::TokenRehashed, id)
                        .with_details(json!({ "params": params }));
                    store
                        .inner
                        .audit
                        .append(&mut tx, &Context::system(), &event, now)
                        .await?;
                    tx.commit().await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(token_id = %id, error = %e, "hash upgrade not stored; will retry on next use");
            }
        });
    }
}
