//! The [`Store`]: opening the database, the background tasks, and what every operation shares
//! (the clock, new tokens and ids, notifying other instances). The operations themselves are in
//! `workspaces.rs`, `tokens.rs`, `family.rs` and `policy.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use audit::{Audit, UsageWriter};
use knowmind_db::{Backend, Connection, Db};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use token_core::rand::TryRng;
use token_core::rand::rngs::SysRng;
use token_core::{Clock, HashParams, Token, TokenHash, TokenId, random_id};

use crate::cache::Cache;
use crate::error::Error;
use crate::hash_pool::HashPool;
use crate::limiter::FailureLimiter;
use crate::model::{Standing, TokenRecord};
use crate::options::StoreOptions;
use crate::rows::{TokenRow, principal_of, read_token_row};

/// Tokens, members and workspaces, with verification. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) audit: Audit,
    pub(crate) params: HashParams,
    pub(crate) clock: ClockHandle,
    pub(crate) hasher: HashPool,
    pub(crate) cache: Arc<Cache>,
    pub(crate) usage: UsageWriter,
    pub(crate) max_staleness: std::time::Duration,
    pub(crate) usage_retention: Duration,
    pub(crate) notify_channel: String,
    pub(crate) address_limiter: FailureLimiter,
    pub(crate) reporter_limiter: FailureLimiter,
    /// OAuth clients registering themselves, per address (counted, never given back).
    pub(crate) registration_limiter: FailureLimiter,
    /// Reports of leaked tokens, per address (counted, never given back).
    pub(crate) leak_limiter: FailureLimiter,
    /// Held while a report of leaked tokens is worked through: one at a time.
    pub(crate) leak_reports: tokio::sync::Mutex<()>,
    /// Failed dashboard sign-ins per account.
    pub(crate) account_limiter: FailureLimiter,
    pub(crate) sessions: crate::accounts::SessionOptions,
    /// Seals members' TOTP secrets; derived from the audit key (none without one).
    pub(crate) factor_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// Whether webhook endpoints may be internal addresses.
    pub(crate) webhook_allow_internal: bool,
    /// How long an OAuth access token lives.
    pub(crate) oauth_access_lifetime: time::Duration,
    /// Seals webhook signing secrets; derived from the audit key (none without one).
    pub(crate) webhook_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// When each revoked token was last reported as reused by its holder (monotonic), to report
    /// it once a minute at most.
    pub(crate) reuse_reported: Mutex<HashMap<TokenId, std::time::Duration>>,
    /// When each canary token was last reported used from each address (monotonic), to raise
    /// its event once a minute at most.
    pub(crate) canary_reported: Mutex<HashMap<crate::canary::CanaryKey, std::time::Duration>>,
    /// Whether the revocation listener is connected (always on SQLite, which has none).
    pub(crate) listening: tokio::sync::watch::Receiver<bool>,
    /// Background tasks (revocation listener and sync), stopped with the store.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct ClockHandle(pub(crate) Arc<dyn Clock>);

impl std::fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Store {
    /// Opens (and migrates) the database at `url`: a SQLite file path or `sqlite:` URL, or a
    /// `postgres://` URL. Starts the usage writer and, on PostgreSQL, the revocation listener, on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Storage`] if the database cannot be opened or migrated;
    /// [`Error::Invalid`] for unusable options.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, Error> {
        let db = Db::connect(url, &options.db).await?;
        Store::with_db(db, options).await
    }

    /// Like [`Store::open`], on a database that is already connected.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn with_db(db: Db, options: StoreOptions) -> Result<Store, Error> {
        audit::migrate(&db).await?;
        db.migrate(
            &sqlx::migrate!("migrations/sqlite"),
            &sqlx::migrate!("migrations/postgres"),
        )
        .await?;
        let mut key = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut key)
            .map_err(|_| Error::System("the operating system's random generator failed"))?;
        let cache = Arc::new(Cache::new(options.cache_capacity, key));
        let notify_channel = format!("knowmind_tokens_{}", db.schema().unwrap_or("public"));
        let head = audit::Audit::new(db.clone()).checkpoint().await?.seq;
        // SQLite has no listener: it is "listening" (to nothing) from the start.
        let (listening, listening_rx) =
            tokio::sync::watch::channel(db.backend() == Backend::Sqlite);
        let tasks: Vec<_> = [
            match db.backend() {
                Backend::Sqlite => None,
                Backend::Postgres => {
                    crate::listener::spawn(&db, &notify_channel, cache.clone(), listening)
                }
            },
            crate::sync::spawn(
                Audit::new(db.clone()),
                cache.clone(),
                options.clock.clone(),
                options.max_staleness,
                head,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let factor_key = options
            .audit_key
            .as_ref()
            .map(|key| key.derive("member second factor secrets"));
        let webhook_key = options
            .audit_key
            .as_ref()
            .map(|key| key.derive("webhook signing secrets"));
        let audit = match options.audit_key {
            Some(key) => Audit::with_key(db.clone(), key),
            None => Audit::new(db.clone()),
        };
        let minute = std::time::Duration::from_secs(60);
        Ok(Store {
            inner: Arc::new(Inner {
                usage: UsageWriter::spawn(&audit, &options.usage),
                audit,
                hasher: HashPool::new(options.hash_threads, options.hash_queue)?,
                params: options.hash_params,
                clock: ClockHandle(options.clock.clone()),
                cache,
                max_staleness: std::time::Duration::try_from(options.max_staleness)
                    .unwrap_or_default(),
                usage_retention: options.usage.retention,
                notify_channel,
                address_limiter: FailureLimiter::new(
                    options.failures_per_minute,
                    minute,
                    options.clock.clone(),
                ),
                reporter_limiter: FailureLimiter::new(
                    options.reported_failures_per_minute,
                    minute,
                    options.clock.clone(),
                ),
                registration_limiter: FailureLimiter::new(
                    10,
                    std::time::Duration::from_secs(3_600),
                    options.clock.clone(),
                ),
                leak_reports: tokio::sync::Mutex::new(()),
                leak_limiter: FailureLimiter::new(
                    60,
                    std::time::Duration::from_secs(3_600),
                    options.clock.clone(),
                ),
                account_limiter: FailureLimiter::new(
                    options.sessions.failures_per_account,
                    options.sessions.lockout,
                    options.clock.clone(),
                ),
                sessions: options.sessions,
                webhook_allow_internal: options.webhook_allow_internal,
                oauth_access_lifetime: options.oauth_access_lifetime,
                factor_key,
                webhook_key,
                reuse_reported: Mutex::new(HashMap::new()),
                canary_reported: Mutex::new(HashMap::new()),
                listening: listening_rx,
                tasks,
                db,
            }),
        })
    }

    /// Resolves once revocations on other instances reach this one by notification
    /// (PostgreSQL's LISTEN is connected); at once on SQLite. Revocations are seen within
    /// `max_staleness` either way: this is for readiness checks and tests.
    pub async fn revocations_listened(&self) {
        let mut listening = self.inner.listening.clone();
        let _ = listening.wait_for(|connected| *connected).await;
    }

    /// The audit log (events, chain verification, usage queries).
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The usage writer, for callers that record usage of their own.
    pub fn usage_writer(&self) -> &UsageWriter {
        &self.inner.usage
    }

    /// Deletes usage records older than the configured retention (`UsageConfig::retention`,
    /// 90 days by default); returns how many. Run it periodically (the server does, hourly).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn prune_usage(&self) -> Result<u64, Error> {
        Ok(self
            .inner
            .audit
            .prune_usage(self.now(), self.inner.usage_retention)
            .await?)
    }

    /// Commits every queued usage record, then closes the database pool.
    pub async fn close(&self) {
        if let Err(e) = self.inner.usage.flush().await {
            tracing::warn!(error = %e, "usage records not flushed on close");
        }
        self.inner.db.close().await;
    }

    /// The current time by the store's clock: the one clock every decision uses.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.0.now()
    }

    /// A new token and its hash, computed on the scrypt pool.
    pub(crate) async fn generate(&self) -> Result<(Token, TokenHash), Error> {
        self.generate_kind(token_core::TokenKind::Api).await
    }

    /// A new token of `kind` and its hash, computed on the scrypt pool.
    pub(crate) async fn generate_kind(
        &self,
        kind: token_core::TokenKind,
    ) -> Result<(Token, TokenHash), Error> {
        let params = self.inner.params;
        self.inner
            .hasher
            .run(move || {
                let token = Token::generate_kind(&mut SysRng, kind)?;
                let hash = TokenHash::new(&token, &params, &mut SysRng)?;
                Ok::<_, token_core::Error>((token, hash))
            })
            .await?
            .map_err(|_| Error::System("the operating system's random generator failed"))
    }

    /// Marks the moment before a new token's transaction commits: see [`Store::remember`].
    pub(crate) fn mark(&self) -> crate::cache::ReadMark<'_> {
        self.inner.cache.begin_read(self.inner.clock.0.monotonic())
    }

    /// Caches a token issued on this process, so its first use needs no scrypt — unless it was
    /// revoked (on any instance) since `mark`, taken before its transaction committed.
    /// `handover_of`: the token a rotation's new token replaces while its hand-over is pending.
    pub(crate) fn remember(
        &self,
        token: &Token,
        record: &TokenRecord,
        hash: &TokenHash,
        mark: &crate::cache::ReadMark<'_>,
        handover_of: Option<TokenId>,
    ) {
        let cached = crate::cache::Cached {
            principal: principal_of(record),
            standing: Standing::of_record(record),
            rotated: record.rotated_to.is_some(),
            phc: hash.as_phc().to_owned(),
            allowed: record.allowed_networks.clone(),
            handover_of,
            canary: record.canary,
        };
        self.inner.cache.insert(token, Arc::new(cached), mark);
    }

    /// Tells other instances (PostgreSQL) that a token changed; delivered on commit.
    pub(crate) async fn notify(&self, conn: &mut Connection, id: TokenId) -> Result<(), Error> {
        if self.inner.db.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(self.inner.notify_channel.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// A token and its stored hash, by id, in any workspace.
    pub(crate) async fn token_row(&self, id: TokenId) -> Result<Option<TokenRow>, Error> {
        read_token_row(self.inner.db.pool(), id, self.now()).await
    }
}

pub(crate) fn new_id(prefix: &str) -> Result<String, Error> {
    random_id(&mut SysRng, prefix)
        .map_err(|_| Error::System("the operating system's random generator failed"))
}

/// Maps a uniqueness violation to [`Error::Conflict`]; anything else stays a storage error.
pub(crate) fn conflict(e: sqlx::Error, message: &str) -> Error {
    match Error::from(e) {
        Error::Storage(s) if s.is_unique_violation() => Error::Conflict(message.to_owned()),
        other => other,
    }
}

pub(crate) fn changed<T: serde::Serialize + PartialEq + ?Sized>(
    old: &T,
    new: &T,
) -> serde_json::Value {
    if old == new {
        serde_json::Value::Null
    } else {
        json!({ "from": old, "to": new })
    }
}
