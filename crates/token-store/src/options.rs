//! How to open a [`Store`](crate::Store).

use std::sync::Arc;

use audit::{AuditKey, UsageConfig};
use knowmind_db::DbOptions;
use time::Duration;
use token_core::{Clock, HashParams};

use crate::accounts::SessionOptions;
use crate::clock::SystemClock;

/// How to open a [`Store`](crate::Store).
#[derive(Clone)]
pub struct StoreOptions {
    /// Connection pool settings.
    pub db: DbOptions,
    /// scrypt parameters for new hashes (stored hashes with others are upgraded on use).
    pub hash_params: HashParams,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Threads that run scrypt; at most this many hashes (16 MiB each) run at once.
    pub hash_threads: usize,
    /// Verifications that may wait for a scrypt thread; beyond that, [`Error::Busy`](crate::Error::Busy).
    pub hash_queue: usize,
    /// Most tokens remembered as verified.
    pub cache_capacity: usize,
    /// How long a remembered verification is trusted before the token's state is re-read from
    /// the database (revocations on other instances are seen within this bound). Zero re-reads
    /// on every request.
    pub max_staleness: Duration,
    /// The usage writer's queue, batch size and retention.
    pub usage: UsageConfig,
    /// The key of the audit chain (HMAC-SHA-256), kept outside the database. Without one, events
    /// are hashed with plain SHA-256 and anyone who can write to the database can rewrite the
    /// chain consistently; the server always sets one.
    pub audit_key: Option<Arc<AuditKey>>,
    /// Failed verifications allowed per client address (IPv6: per /64) per minute before work
    /// for the address that costs (lookups, scrypt) is refused; 0 = no limit. Cached valid
    /// tokens are always served.
    pub failures_per_minute: u32,
    /// The same for calls reported by a resource server (introspection), per introspect token.
    pub reported_failures_per_minute: u32,
    /// Dashboard sessions: idle and absolute timeouts, failed sign-ins per account.
    pub sessions: SessionOptions,
    /// Whether webhook endpoints may be internal addresses (loopback, private networks;
    /// plain `http` only to loopback): for development and single-tenant deployments. Off, only
    /// public `https` endpoints are accepted. Link-local addresses are refused either way.
    pub webhook_allow_internal: bool,
    /// How long an OAuth access token lives ([`crate::ACCESS_LIFETIME`], an hour, by default):
    /// short, because a connector refreshes it and each refresh checks the grant anew. Keep it
    /// at most an hour: a workspace's maximum lifetime may be that short, and a longer access
    /// token would break the policy.
    pub oauth_access_lifetime: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        StoreOptions {
            db: DbOptions::default(),
            hash_params: HashParams::DEFAULT,
            clock: Arc::new(SystemClock),
            hash_threads: cpus,
            hash_queue: 2 * cpus,
            cache_capacity: 100_000,
            max_staleness: Duration::SECOND,
            usage: UsageConfig::default(),
            audit_key: None,
            failures_per_minute: 20,
            reported_failures_per_minute: 300,
            sessions: SessionOptions::default(),
            webhook_allow_internal: false,
            oauth_access_lifetime: crate::ACCESS_LIFETIME,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("db", &self.db)
            .field("hash_params", &self.hash_params)
            .field("hash_threads", &self.hash_threads)
            .field("hash_queue", &self.hash_queue)
            .field("cache_capacity", &self.cache_capacity)
            .field("max_staleness", &self.max_staleness)
            .field("usage", &self.usage)
            .field("audit_key", &self.audit_key)
            .field("failures_per_minute", &self.failures_per_minute)
            .field(
                "reported_failures_per_minute",
                &self.reported_failures_per_minute,
            )
            .field("sessions", &self.sessions)
            .field("webhook_allow_internal", &self.webhook_allow_internal)
            .field("oauth_access_lifetime", &self.oauth_access_lifetime)
            .finish_non_exhaustive()
    }
}
