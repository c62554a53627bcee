//! Usage records: every verification of a known token id, accepted or refused, so that "which
//! calls ran on this token, from which IPs, on which endpoints" has an exact answer.
//!
//! Records go through a [`UsageWriter`]: a background task that commits whatever has queued up
//! in one transaction (group commit). Callers enqueue without waiting, or wait for the commit of
//! their record; a full queue is refused at once ([`Error::Busy`]) instead of growing.

mod anomalies;
mod raised;
mod tables;
mod writer;

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use token_core::TokenId;

pub use anomalies::network_of;
pub use knowmind_api::{IpUse, RouteUse, StoredUsage, UsageOutcome, UsageRecordView, UsageSummary};
pub(crate) use raised::{list as anomalies, raise as raise_anomaly};
pub use tables::{LAST_USE_AT, LAST_USE_COLUMNS, last_use_join};
pub(crate) use tables::{hourly, prune, records, summary};
pub use writer::{Committed, UsageSlot, UsageWriter};

/// One verification, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// When.
    pub at: OffsetDateTime,
    /// Which token (by id; never the token).
    pub token_id: TokenId,
    /// The token's workspace.
    pub workspace_id: Option<String>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// HTTP method (or another verb for non-HTTP callers).
    pub method: Cow<'static, str>,
    /// The route template (`/v1/notes/{id}`), not the raw path, so records group by endpoint.
    pub route: Cow<'static, str>,
    /// The response status, when known.
    pub status: Option<u16>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// What the verification concluded.
    pub outcome: UsageOutcome,
    /// The introspect token of the resource server that reported the call (`POST
    /// /v1/tokens/verify`): address, route and user agent are its report, not knowmind's own
    /// observation. `None` when knowmind saw the call itself.
    pub reported_by: Option<TokenId>,
}

/// Settings of the usage writer.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// Records that may wait in memory; beyond that, [`UsageWriter::record`] says busy.
    pub queue: usize,
    /// Most records committed in one transaction.
    pub batch: usize,
    /// How long records are kept by [`crate::Audit::prune_usage`]'s default (90 days).
    pub retention: time::Duration,
    /// How long the writer waits for more records before committing a partial batch (50 ms).
    pub linger: Duration,
    /// New records are appended to a table without a per-token index and moved, sorted by
    /// token, into the indexed one once this many have accumulated (65,536)…
    pub index_records: usize,
    /// …or once the first of them has waited this long (60 s; checked when the next batch is
    /// written, so an idle writer leaves a few records where they are). Readers see both tables;
    /// these bound how much of the unindexed one a usage query scans.
    pub index_interval: Duration,
    /// How tokens learn their baselines and what counts as unusual.
    pub anomalies: AnomalyConfig,
}

/// Anomaly detection (see `token.anomaly`): a token learns its baseline until it has made
/// `learning_calls` calls or `learning_period` has passed since its first, whichever comes
/// first; after that, each new network, endpoint or client is reported once, as is each pair of
/// networks seen within `concurrent_window` of each other.
#[derive(Debug, Clone)]
pub struct AnomalyConfig {
    /// Whether to detect at all.
    pub enabled: bool,
    /// Calls that end the learning period (100).
    pub learning_calls: i64,
    /// Time after the first call that ends the learning period (7 days).
    pub learning_period: time::Duration,
    /// Two networks within this long of each other are reported (5 minutes).
    pub concurrent_window: time::Duration,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            learning_calls: 100,
            learning_period: time::Duration::days(7),
            concurrent_window: time::Duration::minutes(5),
        }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            queue: 65_536,
            batch: 8_192,
            retention: time::Duration::days(90),
            linger: Duration::from_millis(50),
            index_records: 65_536,
            index_interval: Duration::from_secs(60),
            anomalies: AnomalyConfig::default(),
        }
    }
}
