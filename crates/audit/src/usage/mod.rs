//! Usage records: every verification of a known token id, accepted or refused, so that "which
//! calls ran on this token, from which IPs, on which endpoints" has an exact answer.
//!
//! Records go through a [`UsageWriter`]: a background task that commits whatever has queued up
//! in one transaction (group commit). Callers enqueue without waiting, or wait for the commit of
//! their record; a full queue is refused at once ([`Error::Busy`]) instead of growing.

mod tables;
mod writer;

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use token_core::TokenId;

use crate::error::Error;

pub use tables::{LAST_USE_AT, LAST_USE_COLUMNS, last_use_join};
pub(crate) use tables::{prune, records, summary};
pub use writer::{Committed, UsageSlot, UsageWriter};

/// The result of one verification, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageOutcome {
    /// The token was accepted.
    Accepted,
    /// The secret did not match the stored hash.
    WrongSecret,
    /// The token is revoked.
    Revoked,
    /// The token has expired.
    Expired,
    /// The token lacks a scope the call needs.
    InsufficientScope,
    /// The server was too busy to verify.
    Busy,
}

impl UsageOutcome {
    const ALL: [UsageOutcome; 6] = [
        UsageOutcome::Accepted,
        UsageOutcome::WrongSecret,
        UsageOutcome::Revoked,
        UsageOutcome::Expired,
        UsageOutcome::InsufficientScope,
        UsageOutcome::Busy,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Accepted => "accepted",
            UsageOutcome::WrongSecret => "wrong_secret",
            UsageOutcome::Revoked => "revoked",
            UsageOutcome::Expired => "expired",
            UsageOutcome::InsufficientScope => "insufficient_scope",
            UsageOutcome::Busy => "busy",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(Error::Corrupt("unknown usage outcome"))
    }
}

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

/// A stored usage record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredUsage {
    /// Row id; also the paging cursor.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: UsageRecordView,
}

/// The fields of a stored usage record, in serialisable form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRecordView {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Which token.
    pub token_id: TokenId,
    /// The client's address.
    pub client_ip: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Response status.
    pub status: Option<u16>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Outcome.
    pub outcome: UsageOutcome,
    /// The resource server (its introspect token) that reported address, route and user agent;
    /// `null` when knowmind observed the call itself.
    pub reported_by: Option<TokenId>,
}

/// Where a token was used from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpUse {
    /// The client address (`null` when unknown).
    pub ip: Option<String>,
    /// First use from it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last use from it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many calls.
    pub count: i64,
}

/// Which endpoint a token called.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteUse {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// First call.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last call.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many calls.
    pub count: i64,
}

/// Distinct addresses and endpoints of one token, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageSummary {
    /// Every call since the token's first use (pruning removes old records, not these counts).
    pub total: i64,
    /// By client address.
    pub ips: Vec<IpUse>,
    /// By endpoint.
    pub routes: Vec<RouteUse>,
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
        }
    }
}
