//! The usage tables: appending records, moving them to the indexed table, counting, reading and
//! pruning them, and a token's last use (which `token-store` reads through [`last_use_join`]).

use std::collections::HashMap;

use knowmind_db::{Arg, Backend, Db, Sql, from_micros, to_micros};
use sqlx::Row;
use time::OffsetDateTime;
use token_core::TokenId;

use super::anomalies::detect;
use super::writer::{LAST_USE_PRECISION, Memory};
use super::{
    IpUse, RouteUse, StoredUsage, UsageConfig, UsageOutcome, UsageRecord, UsageRecordView,
    UsageSummary,
};
use crate::Audit;
use crate::error::Error;
use crate::event::bounded;

/// The columns a token's last use adds to a query that joins [`last_use_join`]: `last_used_us`
/// (UTC microseconds) and `last_used_ip`.
pub const LAST_USE_COLUMNS: &str = "lu.at_us AS last_used_us, lu.client_ip AS last_used_ip";

/// The last use's time column, for filters (`… AND (LAST_USE_AT IS NULL OR LAST_USE_AT < ?)`).
pub const LAST_USE_AT: &str = "lu.at_us";

/// The join that brings each row's token's last accepted use, kept by the usage writer:
/// `token_id` is the column holding the token id (`t.id`). The table is this crate's; other crates
/// read it only through this.
pub fn last_use_join(token_id: &str) -> String {
    format!("LEFT JOIN token_last_use lu ON lu.token_id = {token_id}")
}

const USAGE_COLUMNS: &str = "id, at_us, token_id, workspace_id, client_ip, method, route, status, \
     user_agent, outcome, reported_by";

/// Moves every record in `usage_recent` into `usage_records`, sorted by token so that each
/// token's run is written in one pass, and adds them to the per-token counts by address and by
/// endpoint, in one transaction; returns how many. Other writers (other instances on
/// PostgreSQL) may append meanwhile: PostgreSQL moves and counts exactly the rows its `DELETE`
/// removed; SQLite has one writer at a time, so nothing can slip in between its statements.
pub(crate) async fn move_to_index(db: &Db) -> Result<u64, Error> {
    let mut tx = db.begin_write().await?;
    let moved = match db.backend() {
        Backend::Sqlite => {
            let moved = sqlx::query(&format!(
                "INSERT INTO usage_records ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} \
                 FROM usage_recent ORDER BY token_id, id"
            ))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            for count in [COUNT_BY_IP, COUNT_BY_ROUTE] {
                sqlx::query(&count.replace("{source}", "usage_recent"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM usage_recent")
                .execute(&mut *tx)
                .await?;
            moved
        }
        Backend::Postgres => {
            let n: i64 = sqlx::query(&format!(
                "WITH moved AS (DELETE FROM usage_recent RETURNING {USAGE_COLUMNS}), \
                 kept AS (INSERT INTO usage_records ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} \
                 FROM moved ORDER BY token_id, id), \
                 by_ip AS ({}), by_route AS ({}) \
                 SELECT COUNT(*) AS n FROM moved",
                COUNT_BY_IP.replace("{source}", "moved"),
                COUNT_BY_ROUTE.replace("{source}", "moved"),
            ))
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            u64::try_from(n).unwrap_or_default()
        }
    };
    tx.commit().await?;
    Ok(moved)
}

/// Adds the records of `{source}` to each token's counts by client address.
const COUNT_BY_IP: &str = "INSERT INTO usage_by_ip (token_id, client_ip, first_us, last_us, calls) \
     SELECT token_id, COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*) FROM {source} \
     WHERE true GROUP BY token_id, COALESCE(client_ip, '') \
     ON CONFLICT (token_id, client_ip) DO UPDATE SET \
     first_us = CASE WHEN excluded.first_us < usage_by_ip.first_us \
         THEN excluded.first_us ELSE usage_by_ip.first_us END, \
     last_us = CASE WHEN excluded.last_us > usage_by_ip.last_us \
         THEN excluded.last_us ELSE usage_by_ip.last_us END, \
     calls = usage_by_ip.calls + excluded.calls";

/// Adds the records of `{source}` to each token's counts by endpoint.
const COUNT_BY_ROUTE: &str = "INSERT INTO usage_by_route (token_id, method, route, first_us, last_us, calls) \
     SELECT token_id, method, route, MIN(at_us), MAX(at_us), COUNT(*) FROM {source} \
     WHERE true GROUP BY token_id, method, route \
     ON CONFLICT (token_id, method, route) DO UPDATE SET \
     first_us = CASE WHEN excluded.first_us < usage_by_route.first_us \
         THEN excluded.first_us ELSE usage_by_route.first_us END, \
     last_us = CASE WHEN excluded.last_us > usage_by_route.last_us \
         THEN excluded.last_us ELSE usage_by_route.last_us END, \
     calls = usage_by_route.calls + excluded.calls";

/// Rows per statement, largest first. A batch is split greedily into these sizes, so there are only
/// a handful of distinct statement texts and every one stays prepared: statements whose row count
/// followed the batch size were prepared afresh almost every time (measured by the load bench).
/// 256 rows of 10 values stay well under SQLite's 32,766 parameters.
const CHUNK_SIZES: [usize; 4] = [256, 32, 4, 1];

fn fixed_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNK_SIZES
            .iter()
            .copied()
            .find(|&size| size <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

pub(super) async fn write_batch(
    audit: &Audit,
    config: &UsageConfig,
    records: &[UsageRecord],
    memory: &mut Memory,
) -> Result<(), Error> {
    let db = &audit.db;
    let mut tx = db.begin_write().await?;
    for chunk in fixed_chunks(records) {
        let mut sql = Sql::new(
            db.backend(),
            "INSERT INTO usage_recent (at_us, token_id, workspace_id, client_ip, method, route, \
             status, user_agent, outcome, reported_by) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Int(to_micros(r.at)))
                .push(", ")
                .bind(Arg::Text(r.token_id.to_string()))
                .push(", ")
                .bind(Arg::OptText(r.workspace_id.clone()))
                .push(", ")
                .bind(Arg::OptText(r.client_ip.map(|ip| ip.to_string())))
                .push(", ")
                .bind(Arg::Text(bounded(Some(&r.method), 16).unwrap_or_default()))
                .push(", ")
                .bind(Arg::Text(bounded(Some(&r.route), 256).unwrap_or_default()))
                .push(", ")
                .bind(Arg::OptInt(r.status.map(i64::from)))
                .push(", ")
                .bind(Arg::OptText(bounded(r.user_agent.as_deref(), 256)))
                .push(", ")
                .bind(Arg::Text(r.outcome.as_str().to_owned()))
                .push(", ")
                .bind(Arg::OptText(r.reported_by.map(|id| id.to_string())))
                .push(")");
        }
        sql.query().execute(&mut *tx).await?;
    }
    // Before the last uses are updated: the two-networks check starts from them.
    let lessons = if config.anomalies.enabled {
        Some(
            detect(
                &mut tx,
                db.backend(),
                audit.key.as_deref(),
                &config.anomalies,
                &memory.baselines,
                records,
            )
            .await?,
        )
    } else {
        None
    };
    // The latest accepted use per token, one row each (PostgreSQL refuses to upsert a row twice
    // in one statement).
    let mut latest: HashMap<TokenId, &UsageRecord> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.outcome == UsageOutcome::Accepted)
    {
        let slot = latest.entry(r.token_id).or_insert(r);
        if r.at >= slot.at {
            *slot = r;
        }
    }
    // In token order: two instances upserting the same tokens lock them in the same order.
    let mut latest: Vec<_> = latest
        .into_values()
        .filter(|r| {
            memory
                .last_uses
                .get(&r.token_id)
                .is_none_or(|(at, ip)| *ip != r.client_ip || r.at - *at >= LAST_USE_PRECISION)
        })
        .collect();
    latest.sort_unstable_by_key(|r| r.token_id);
    for chunk in fixed_chunks(&latest) {
        let mut sql = Sql::new(
            db.backend(),
            "INSERT INTO token_last_use (token_id, at_us, client_ip) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Text(r.token_id.to_string()))
                .push(", ")
                .bind(Arg::Int(to_micros(r.at)))
                .push(", ")
                .bind(Arg::OptText(r.client_ip.map(|ip| ip.to_string())))
                .push(")");
        }
        sql.push(
            " ON CONFLICT (token_id) DO UPDATE SET at_us = excluded.at_us, \
             client_ip = excluded.client_ip WHERE excluded.at_us >= token_last_use.at_us",
        );
        sql.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    if memory.last_uses.len() > 1_000_000 {
        memory.last_uses.clear();
    }
    for r in latest {
        memory.last_uses.insert(r.token_id, (r.at, r.client_ip));
    }
    if let Some(lessons) = lessons {
        memory.baselines.remember(lessons);
    }
    Ok(())
}

/// A token's usage records, newest first, older than the cursor `before_id`: the newest of the
/// indexed ones and of those not yet moved there, merged.
pub(crate) async fn records(
    db: &Db,
    token: TokenId,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredUsage>, Error> {
    let mut sql = Sql::new(db.backend(), "SELECT ");
    sql.push(USAGE_COLUMNS).push(" FROM (");
    for (i, (table, alias)) in [("usage_records", "indexed"), ("usage_recent", "recent")]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("SELECT * FROM (SELECT ")
            .push(USAGE_COLUMNS)
            .push(" FROM ")
            .push(table)
            .push(" WHERE token_id = ")
            .bind(Arg::Text(token.to_string()));
        if let Some(before) = before_id {
            sql.push(" AND id < ").bind(Arg::Int(before));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(Arg::Int(limit))
            .push(") AS ")
            .push(alias);
    }
    sql.push(") AS newest ORDER BY id DESC LIMIT ")
        .bind(Arg::Int(limit));
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let token_id: String = row.try_get("token_id")?;
            let status: Option<i64> = row.try_get("status")?;
            let outcome: String = row.try_get("outcome")?;
            let reported_by: Option<String> = row.try_get("reported_by")?;
            Ok(StoredUsage {
                id: row.try_get("id")?,
                record: UsageRecordView {
                    at: from_micros(row.try_get("at_us")?)?,
                    token_id: token_id.parse().map_err(|_| Error::Corrupt("token id"))?,
                    client_ip: row.try_get("client_ip")?,
                    method: row.try_get("method")?,
                    route: row.try_get("route")?,
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    user_agent: row.try_get("user_agent")?,
                    outcome: outcome
                        .parse()
                        .map_err(|_| Error::Corrupt("unknown usage outcome"))?,
                    reported_by: reported_by
                        .map(|id| id.parse().map_err(|_| Error::Corrupt("token id")))
                        .transpose()?,
                },
            })
        })
        .collect()
}

/// A token's calls per hour since `since`, from both tables: `(hour start in µs, calls)`,
/// oldest first, hours without calls left out.
pub(crate) async fn hourly(
    db: &Db,
    token: TokenId,
    since: OffsetDateTime,
) -> Result<Vec<(i64, i64)>, Error> {
    const HOUR_US: i64 = 3_600_000_000;
    let mut sql = Sql::new(db.backend(), "SELECT hour, COUNT(*) AS calls FROM (");
    for (i, table) in ["usage_records", "usage_recent"].into_iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("SELECT (at_us / ")
            .push(&HOUR_US.to_string())
            .push(") * ")
            .push(&HOUR_US.to_string())
            .push(" AS hour FROM ")
            .push(table)
            .push(" WHERE token_id = ")
            .bind(Arg::Text(token.to_string()))
            .push(" AND at_us >= ")
            .bind(Arg::Int(knowmind_db::to_micros(since)));
    }
    sql.push(") AS calls GROUP BY hour ORDER BY hour");
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("hour")?, row.try_get("calls")?)))
        .collect()
}

/// Distinct addresses and endpoints of a token: the counts kept by the moves plus the records
/// not moved yet.
pub(crate) async fn summary(db: &Db, token: TokenId) -> Result<UsageSummary, Error> {
    let id = token.to_string();
    let ips = sqlx::query(
        "SELECT client_ip, MIN(first_us) AS first_us, MAX(last_us) AS last_us, \
         CAST(SUM(calls) AS BIGINT) AS n FROM ( \
         SELECT client_ip, first_us, last_us, calls FROM usage_by_ip WHERE token_id = $1 \
         UNION ALL SELECT COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*) \
         FROM usage_recent WHERE token_id = $1 GROUP BY COALESCE(client_ip, '') \
         ) AS u GROUP BY client_ip ORDER BY last_us DESC, client_ip",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        let ip: String = row.try_get("client_ip")?;
        Ok(IpUse {
            ip: (!ip.is_empty()).then_some(ip),
            first_seen: from_micros(row.try_get("first_us")?)?,
            last_seen: from_micros(row.try_get("last_us")?)?,
            count: row.try_get("n")?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    let routes = sqlx::query(
        "SELECT method, route, MIN(first_us) AS first_us, MAX(last_us) AS last_us, \
         CAST(SUM(calls) AS BIGINT) AS n FROM ( \
         SELECT method, route, first_us, last_us, calls FROM usage_by_route WHERE token_id = $1 \
         UNION ALL SELECT method, route, MIN(at_us), MAX(at_us), COUNT(*) \
         FROM usage_recent WHERE token_id = $1 GROUP BY method, route \
         ) AS u GROUP BY method, route ORDER BY last_us DESC, method, route",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(RouteUse {
            method: row.try_get("method")?,
            route: row.try_get("route")?,
            first_seen: from_micros(row.try_get("first_us")?)?,
            last_seen: from_micros(row.try_get("last_us")?)?,
            count: row.try_get("n")?,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    Ok(UsageSummary {
        total: ips.iter().map(|ip| ip.count).sum(),
        ips,
        routes,
    })
}

/// Deletes usage records older than `before`; returns how many. Records still waiting in
/// `usage_recent` are moved first, so that every pruned record has been counted: the counts by
/// address and endpoint cover every call, and only the individual records expire.
pub(crate) async fn prune(db: &Db, before: OffsetDateTime) -> Result<u64, Error> {
    move_to_index(db).await?;
    let done = sqlx::query("DELETE FROM usage_records WHERE at_us < $1")
        .bind(to_micros(before))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_few_statement_sizes() {
        let items: Vec<u32> = (0..8_192 + 300 + 7).collect();
        let sizes: Vec<usize> = fixed_chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), items.len());
        assert!(sizes.iter().all(|s| CHUNK_SIZES.contains(s)));
        // 8,499 = 33 × 256 + 32 + 4 × 4 + 3 × 1
        assert_eq!(sizes.iter().filter(|&&s| s == 256).count(), 33);
        assert_eq!(&sizes[33..], [32, 4, 4, 4, 4, 1, 1, 1]);
        assert_eq!(fixed_chunks::<u32>(&[]).count(), 0);
    }
}
