//! Revocations on other instances (PostgreSQL): every revoke and rotate sends
//! `pg_notify(channel, token_id)` in its transaction; this listener evicts the token from the
//! local cache when the notification arrives. Whenever the listener (re)connects, the whole cache
//! is flushed, since notifications sent while it was away are lost. The cache's staleness bound
//! covers whatever slips through in between.

use std::sync::Arc;

use knowmind_db::Db;
use tokio::sync::watch;

use crate::cache::Cache;

/// Starts the listener task; `None` in a build without PostgreSQL support. `listening` is set
/// while the listener is connected and listening (tests and readiness checks wait for it).
pub(crate) fn spawn(
    db: &Db,
    channel: &str,
    cache: Arc<Cache>,
    listening: watch::Sender<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(feature = "postgres")]
    {
        let url = db.url_secret().to_owned();
        let channel = channel.to_owned();
        Some(tokio::spawn(listen(url, channel, cache, listening)))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (db, channel, cache, listening);
        None
    }
}

#[cfg(feature = "postgres")]
async fn listen(url: String, channel: String, cache: Arc<Cache>, listening: watch::Sender<bool>) {
    use std::time::Duration;

    use sqlx::postgres::PgListener;

    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "revocation listener cannot connect; retrying");
                cache.clear();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::warn!(error = %e, "revocation listener cannot LISTEN; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything revoked before we were listening is unknown to us.
        cache.clear();
        listening.send_replace(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.payload().parse() {
                    Ok(id) => cache.evict(id),
                    Err(_) => cache.clear(),
                },
                // The connection was lost (the next call reconnects): we may have missed some.
                Ok(None) => {
                    tracing::warn!("revocation listener lost its connection; cache flushed");
                    cache.clear();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation listener failed; reconnecting");
                    listening.send_replace(false);
                    cache.clear();
                    break;
                }
            }
        }
    }
}
