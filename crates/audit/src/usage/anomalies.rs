//! Anomalies: each token learns a baseline from its own calls — the networks it is used from,
//! the endpoints it calls, the clients that call them — and, once its learning period is over,
//! a call that shows a value the baseline lacks raises a `token.anomaly`, as does the token being
//! used from two networks within a few minutes.
//!
//! Detection runs in the usage writer, on each batch, inside the batch's transaction: off the
//! request path, and with the records it judges. Only calls made by someone holding the secret
//! count (accepted, refused for scope or address); refusals of a wrong secret say nothing about
//! the token's holder.
//!
//! Each new value is inserted into `token_baseline` with `ON CONFLICT DO NOTHING … RETURNING`:
//! only the writer whose insert lands reports it, so a value is reported once however many
//! calls or instances see it. The writer remembers what it inserted or found, so a steady token
//! costs the database nothing beyond its records.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};

use knowmind_api::{AnomalyKind, UsageOutcome};
use knowmind_db::{Arg, Backend, Connection, Sql, from_micros, to_micros};
use sqlx::Row;
use time::OffsetDateTime;
use token_core::TokenId;

use super::raised::{parse_token, raise, raised_within_hour};
use super::{AnomalyConfig, UsageRecord};
use crate::error::Error;
use crate::event::bounded;
use crate::key::AuditKey;

/// What a baseline holds, as stored in `token_baseline.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Trait {
    Network,
    Endpoint,
    Agent,
    /// Two networks seen within the concurrency window (stored so that each pair is reported
    /// once).
    Pair,
}

impl Trait {
    fn as_str(self) -> &'static str {
        match self {
            Trait::Network => "network",
            Trait::Endpoint => "endpoint",
            Trait::Agent => "agent",
            Trait::Pair => "pair",
        }
    }

    fn parse(text: &str) -> Option<Trait> {
        [Trait::Network, Trait::Endpoint, Trait::Agent, Trait::Pair]
            .into_iter()
            .find(|t| t.as_str() == text)
    }

    fn anomaly(self) -> AnomalyKind {
        match self {
            Trait::Network => AnomalyKind::NewNetwork,
            Trait::Endpoint => AnomalyKind::NewEndpoint,
            Trait::Agent => AnomalyKind::NewUserAgent,
            Trait::Pair => AnomalyKind::ConcurrentNetworks,
        }
    }
}

type Known = (TokenId, Trait, String);

/// What one writer remembers between batches, so that steady use costs no baseline queries.
/// Both sets are forgotten when they grow past a bound; the database stays the truth.
#[derive(Debug, Default)]
pub(super) struct Baselines {
    /// Tokens whose learning period is over.
    learned: HashSet<TokenId>,
    /// Tokens still learning, with their count as this writer knows it.
    learning: HashMap<TokenId, Learning>,
    /// Values known to be in `token_baseline`.
    known: HashSet<Known>,
    /// Each token's last use known to this writer, for the two-networks check.
    last: HashMap<TokenId, LastSeen>,
}

/// A token's last use as this writer knows it: from its own records, and from the database
/// (where other instances' uses show) read at most once per concurrency window.
#[derive(Debug, Clone)]
struct LastSeen {
    at: OffsetDateTime,
    network: String,
    /// The record time at which the database was last read for it.
    read_at: OffsetDateTime,
}

/// A token's learning progress as one writer knows it: what `token_learning` said when this
/// writer last saved (other instances' calls included), plus its own calls since.
///
/// Saving every batch would cost one upsert per learning token per batch (the writer's dearest
/// case under load: every new token is learning). So a writer saves a token's count when it first
/// meets the token, when its learning ends, and otherwise at most once per [`SAVE_EVERY`] of
/// record time. Until then another instance's calls are not in this writer's count, so with
/// several instances learning can last somewhat longer than `learning_calls`; a crash loses at
/// most [`SAVE_EVERY`] of counts, which also only lengthens learning.
#[derive(Debug, Clone, Copy)]
struct Learning {
    first: OffsetDateTime,
    /// Calls before this batch: the stored count at the last save plus this writer's since.
    calls: i64,
    /// This writer's calls not yet in `token_learning`.
    unsaved: i64,
    /// Record time of the last save.
    saved_at: OffsetDateTime,
}

const SAVE_EVERY: time::Duration = time::Duration::minutes(1);

const REMEMBERED: usize = 500_000;

/// What a batch taught, to remember once its transaction has committed.
#[derive(Debug, Default)]
pub(super) struct Lessons {
    learned: Vec<TokenId>,
    learning: Vec<(TokenId, Learning)>,
    known: Vec<Known>,
    last: Vec<(TokenId, LastSeen)>,
}

impl Baselines {
    pub(super) fn remember(&mut self, lessons: Lessons) {
        if self.learned.len() > REMEMBERED {
            self.learned.clear();
        }
        if self.learning.len() > REMEMBERED {
            // Unsaved counts are lost: those tokens learn a little longer.
            self.learning.clear();
        }
        if self.known.len() > REMEMBERED {
            self.known.clear();
        }
        if self.last.len() > REMEMBERED {
            self.last.clear();
        }
        self.learning.extend(lessons.learning);
        for token in &lessons.learned {
            self.learning.remove(token);
        }
        self.learned.extend(lessons.learned);
        self.known.extend(lessons.known);
        self.last.extend(lessons.last);
    }
}

/// The network a call came from: IPv4 /24, IPv6 /48 (a site), IPv4-mapped addresses as IPv4.
pub fn network_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// The product name a `User-Agent` starts with, lower-cased (`curl/8.5.0` → `curl`): versions
/// change with every update and are not worth an alarm.
fn agent_of(user_agent: &str) -> Option<String> {
    let name = user_agent
        .trim()
        .split(['/', ' ', '(', ';'])
        .next()?
        .to_lowercase();
    bounded(Some(&name), 64).filter(|n| !n.is_empty())
}

/// Method and route, cleaned like every client text: a resource server reports them through
/// introspection, so they are not always knowmind's own route templates.
fn endpoint_of(record: &UsageRecord) -> String {
    format!(
        "{} {}",
        bounded(Some(&record.method), 16).unwrap_or_default(),
        bounded(Some(&record.route), 256).unwrap_or_default()
    )
}

/// Only accepted calls teach and are judged: refusals (a wrong secret, a missing scope, an
/// address outside the allow-list) are in the security log already, and counting them would let
/// anyone who knows a token id, or a holder probing routes it may not call, fill the baseline.
fn judged(outcome: UsageOutcome) -> bool {
    outcome == UsageOutcome::Accepted
}

/// The most anomalies one token raises in an hour: beyond it, new values are learnt without an
/// alarm, so that a holder inventing user agents or routes cannot flood the audit log, the
/// webhooks and the lists (the ten raised are enough to act on).
const MAX_RAISED_PER_HOUR: i64 = 10;

/// A value first seen in this batch, with the call that showed it and whether the token had
/// learnt its baseline by then.
struct Candidate<'a> {
    token: TokenId,
    what: Trait,
    value: String,
    record: &'a UsageRecord,
    learnt: bool,
}

/// Judges a batch against the baselines, inside the batch's transaction: records what is new,
/// raises what is unusual (rows in `token_anomalies` and events in the chain). Returns what to
/// remember after the commit.
pub(super) async fn detect(
    conn: &mut Connection,
    backend: Backend,
    audit_key: Option<&AuditKey>,
    config: &AnomalyConfig,
    baselines: &Baselines,
    records: &[UsageRecord],
) -> Result<Lessons, Error> {
    let mut lessons = Lessons::default();
    let mut by_token: HashMap<TokenId, Vec<&UsageRecord>> = HashMap::new();
    for r in records.iter().filter(|r| judged(r.outcome)) {
        by_token.entry(r.token_id).or_default().push(r);
    }
    if by_token.is_empty() {
        return Ok(lessons);
    }
    for calls in by_token.values_mut() {
        calls.sort_by_key(|r| r.at);
    }
    let progress = learning(conn, backend, config, baselines, &by_token, &mut lessons).await?;
    // Only tokens that have learnt by the end of the batch can raise two networks at once.
    let learnt_by_end = |token: &TokenId, calls: &Vec<&UsageRecord>| match progress.get(token) {
        None => true,
        Some((first, before)) => {
            *before + calls.len() as i64 > config.learning_calls
                || calls
                    .last()
                    .is_some_and(|r| r.at - *first >= config.learning_period)
        }
    };
    // The database's last use (other instances' too) is read when this writer knows none, or
    // read it longer ago than the window: a second holder on another instance is seen within a
    // window, without a read per token per batch.
    let stale = |token: &TokenId, calls: &Vec<&UsageRecord>| {
        baselines.last.get(token).is_none_or(|last| {
            calls
                .first()
                .is_some_and(|r| r.at - last.read_at > config.concurrent_window)
        })
    };
    let to_read: HashSet<TokenId> = by_token
        .iter()
        .filter(|(token, calls)| learnt_by_end(token, calls) && stale(token, calls))
        .filter(|(_, calls)| calls.iter().any(|r| r.client_ip.is_some()))
        .map(|(token, _)| *token)
        .collect();
    let read = last_uses(conn, backend, &to_read).await?;
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    let mut seen: HashSet<Known> = HashSet::new();
    for (&token, calls) in &by_token {
        // `None`: learnt before this batch.
        let start = progress.get(&token).copied();
        if let Some((first, before)) = start {
            let calls_now = before + calls.len() as i64;
            if calls_now >= config.learning_calls
                || calls
                    .last()
                    .is_some_and(|r| r.at - first >= config.learning_period)
            {
                lessons.learned.push(token);
            }
        }
        let known = baselines.last.get(&token);
        let read_at = if to_read.contains(&token) {
            calls.first().map(|r| r.at)
        } else {
            known.map(|k| k.read_at)
        };
        let mut previous = match (read.get(&token), known) {
            (Some(stored), _) => Some(stored.clone()),
            (None, Some(known)) => Some((known.at, known.network.clone())),
            (None, None) => None,
        };
        for (i, &r) in calls.iter().enumerate() {
            let learnt = match start {
                None => true,
                Some((first, before)) => {
                    before + i as i64 >= config.learning_calls
                        || r.at - first >= config.learning_period
                }
            };
            let mut values = vec![(Trait::Endpoint, endpoint_of(r))];
            if let Some(agent) = r.user_agent.as_deref().and_then(agent_of) {
                values.push((Trait::Agent, agent));
            }
            if let Some(ip) = r.client_ip {
                let network = network_of(ip);
                if let Some((at, other)) = &previous
                    && *other != network
                    && r.at - *at <= config.concurrent_window
                    && r.at >= *at
                {
                    let mut pair = [other.as_str(), network.as_str()];
                    pair.sort_unstable();
                    values.push((Trait::Pair, pair.join(", ")));
                }
                values.push((Trait::Network, network.clone()));
                previous = Some((r.at, network));
            }
            for (what, value) in values {
                let key = (token, what, value);
                if baselines.known.contains(&key) || !seen.insert(key.clone()) {
                    continue;
                }
                candidates.push(Candidate {
                    token,
                    what,
                    value: key.2,
                    record: r,
                    learnt,
                });
            }
        }
        if let (Some((at, network)), Some(read_at)) = (previous, read_at) {
            lessons.last.push((
                token,
                LastSeen {
                    at,
                    network,
                    read_at,
                },
            ));
        }
    }
    candidates.sort_unstable_by(|a, b| {
        (a.token, a.what.as_str(), &a.value).cmp(&(b.token, b.what.as_str(), &b.value))
    });
    let inserted = insert_baseline(conn, backend, &candidates).await?;
    let mut budget: HashMap<TokenId, i64> = HashMap::new();
    for c in &candidates {
        let key = (c.token, c.what, c.value.clone());
        if c.learnt && inserted.contains(&key) {
            let left = match budget.get(&c.token) {
                Some(left) => *left,
                None => MAX_RAISED_PER_HOUR - raised_within_hour(conn, backend, c.record).await?,
            };
            if left > 0 {
                raise(
                    conn,
                    backend,
                    audit_key,
                    c.record,
                    c.what.anomaly(),
                    &c.value,
                )
                .await?;
            }
            budget.insert(c.token, left - 1);
        }
        lessons.known.push(key);
    }
    Ok(lessons)
}

/// For tokens still learning (as far as this writer knows): counts this batch's calls, saving
/// the counts into `token_learning` as [`Learning`] says, and returns each one's first call and
/// the calls it had made before the batch.
async fn learning(
    conn: &mut Connection,
    backend: Backend,
    config: &AnomalyConfig,
    baselines: &Baselines,
    by_token: &HashMap<TokenId, Vec<&UsageRecord>>,
    lessons: &mut Lessons,
) -> Result<HashMap<TokenId, (OffsetDateTime, i64)>, Error> {
    let mut progress = HashMap::new();
    // In token order, like every multi-row write here: two instances writing the same rows lock
    // them in the same order and cannot deadlock.
    let mut to_save: Vec<(&TokenId, i64)> = Vec::new();
    for (token, calls) in by_token {
        if baselines.learned.contains(token) {
            continue;
        }
        let (Some(first_call), Some(last_call)) = (calls.first(), calls.last()) else {
            continue;
        };
        let made = calls.len() as i64;
        match baselines.learning.get(token) {
            Some(known)
                if known.calls + made < config.learning_calls
                    && last_call.at - known.first < config.learning_period
                    && first_call.at - known.saved_at < SAVE_EVERY =>
            {
                progress.insert(*token, (known.first, known.calls));
                lessons.learning.push((
                    *token,
                    Learning {
                        calls: known.calls + made,
                        unsaved: known.unsaved + made,
                        ..*known
                    },
                ));
            }
            known => to_save.push((token, made + known.map_or(0, |k| k.unsaved))),
        }
    }
    to_save.sort_unstable_by_key(|(token, _)| **token);
    for chunk in to_save.chunks(256) {
        let mut sql = Sql::new(
            backend,
            "INSERT INTO token_learning (token_id, first_us, calls) VALUES ",
        );
        for (i, (token, count)) in chunk.iter().enumerate() {
            let first = by_token[*token].first().map_or(0, |r| to_micros(r.at));
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Text(token.to_string()))
                .push(", ")
                .bind(Arg::Int(first))
                .push(", ")
                .bind(Arg::Int(*count))
                .push(")");
        }
        sql.push(
            " ON CONFLICT (token_id) DO UPDATE SET calls = token_learning.calls + excluded.calls, \
             first_us = CASE WHEN excluded.first_us < token_learning.first_us \
                 THEN excluded.first_us ELSE token_learning.first_us END \
             RETURNING token_id, first_us, calls",
        );
        for row in sql.query().fetch_all(&mut *conn).await? {
            let token: TokenId = parse_token(&row.try_get::<String, _>("token_id")?)?;
            let calls = by_token.get(&token).map_or(&[][..], Vec::as_slice);
            let stored: i64 = row.try_get("calls")?;
            let first = from_micros(row.try_get("first_us")?)?;
            progress.insert(token, (first, stored - calls.len() as i64));
            if let Some(r) = calls.first() {
                lessons.learning.push((
                    token,
                    Learning {
                        first,
                        calls: stored,
                        unsaved: 0,
                        saved_at: r.at,
                    },
                ));
            }
        }
    }
    Ok(progress)
}

/// Each token's last accepted use before this batch (from any instance): where the
/// two-networks check starts.
async fn last_uses(
    conn: &mut Connection,
    backend: Backend,
    tokens: &HashSet<TokenId>,
) -> Result<HashMap<TokenId, (OffsetDateTime, String)>, Error> {
    let tokens: Vec<&TokenId> = tokens.iter().collect();
    let mut last = HashMap::new();
    for chunk in tokens.chunks(256) {
        let mut sql = Sql::new(
            backend,
            "SELECT token_id, at_us, client_ip FROM token_last_use WHERE token_id IN (",
        );
        for (i, token) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text(token.to_string()));
        }
        sql.push(")");
        for row in sql.query().fetch_all(&mut *conn).await? {
            let ip: Option<String> = row.try_get("client_ip")?;
            let Some(ip) = ip.and_then(|ip| ip.parse::<IpAddr>().ok()) else {
                continue;
            };
            last.insert(
                parse_token(&row.try_get::<String, _>("token_id")?)?,
                (from_micros(row.try_get("at_us")?)?, network_of(ip)),
            );
        }
    }
    Ok(last)
}

/// Inserts the candidates' values into `token_baseline`; returns those that were not there.
async fn insert_baseline(
    conn: &mut Connection,
    backend: Backend,
    candidates: &[Candidate<'_>],
) -> Result<HashSet<Known>, Error> {
    let mut inserted = HashSet::new();
    for chunk in candidates.chunks(256) {
        let mut sql = Sql::new(
            backend,
            "INSERT INTO token_baseline (token_id, kind, value, first_us) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Text(c.token.to_string()))
                .push(", ")
                .bind(Arg::Text(c.what.as_str().to_owned()))
                .push(", ")
                .bind(Arg::Text(c.value.clone()))
                .push(", ")
                .bind(Arg::Int(to_micros(c.record.at)))
                .push(")");
        }
        sql.push(" ON CONFLICT (token_id, kind, value) DO NOTHING RETURNING token_id, kind, value");
        for row in sql.query().fetch_all(&mut *conn).await? {
            let kind: String = row.try_get("kind")?;
            inserted.insert((
                parse_token(&row.try_get::<String, _>("token_id")?)?,
                Trait::parse(&kind).ok_or(Error::Corrupt("baseline kind"))?,
                row.try_get("value")?,
            ));
        }
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_sites_not_addresses() {
        let net = |s: &str| network_of(s.parse().unwrap());
        assert_eq!(net("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(net("203.0.113.200"), net("203.0.113.7"));
        assert_ne!(net("203.0.114.7"), net("203.0.113.7"));
        assert_eq!(net("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(net("2001:db8:1:ffff::5"), net("2001:db8:1:2::5"));
        assert_ne!(net("2001:db8:2::5"), net("2001:db8:1::5"));
    }

    #[test]
    fn clients_are_named_without_versions() {
        assert_eq!(agent_of("curl/8.5.0").as_deref(), Some("curl"));
        assert_eq!(
            agent_of("python-requests/2.31").as_deref(),
            Some("python-requests")
        );
        assert_eq!(
            agent_of("Go-http-client/2.0").as_deref(),
            Some("go-http-client")
        );
        assert_eq!(
            agent_of("knowmind-cli 0.3 (linux)").as_deref(),
            Some("knowmind-cli")
        );
        assert_eq!(agent_of("  "), None);
        assert_eq!(agent_of("/1.0"), None);
        assert!(agent_of(&"x".repeat(500)).is_some_and(|a| a.chars().count() <= 64));
    }
}
