//! The anomalies raised: recording one (a row in `token_anomalies` and an event in the chain, in
//! the caller's transaction), counting a token's recent ones, and listing them.

use knowmind_api::{Action, Anomaly, AnomalyKind, Outcome};
use knowmind_db::{Arg, Backend, Connection, Sql, from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::TokenId;

use super::UsageRecord;
use crate::chain;
use crate::error::Error;
use crate::event::{Context, NewEvent, bounded};
use crate::key::AuditKey;

/// How many anomalies `record`'s token raised in the hour before it.
pub(super) async fn raised_within_hour(
    conn: &mut Connection,
    backend: Backend,
    record: &UsageRecord,
) -> Result<i64, Error> {
    let mut sql = Sql::new(
        backend,
        "SELECT COUNT(*) AS n FROM token_anomalies WHERE token_id = ",
    );
    sql.bind(Arg::Text(record.token_id.to_string()))
        .push(" AND at_us >= ")
        .bind(Arg::Int(to_micros(record.at - time::Duration::HOUR)));
    Ok(sql.query().fetch_one(&mut *conn).await?.try_get("n")?)
}

/// Records an anomaly shown by `record`: a row in `token_anomalies` and, in the same
/// transaction, a `token.anomaly` event (`token.canary_used` for a canary).
pub(crate) async fn raise(
    conn: &mut Connection,
    backend: Backend,
    key: Option<&AuditKey>,
    record: &UsageRecord,
    kind: AnomalyKind,
    value: &str,
) -> Result<(), Error> {
    let client_ip = record.client_ip.map(|ip| ip.to_canonical().to_string());
    let method = bounded(Some(&record.method), 16).unwrap_or_default();
    let route = bounded(Some(&record.route), 256).unwrap_or_default();
    let user_agent = bounded(record.user_agent.as_deref(), 256);
    let mut sql = Sql::new(
        backend,
        "INSERT INTO token_anomalies (at_us, workspace_id, token_id, kind, value, client_ip, \
         method, route, user_agent) VALUES (",
    );
    sql.bind(Arg::Int(to_micros(record.at)))
        .push(", ")
        .bind(Arg::OptText(record.workspace_id.clone()))
        .push(", ")
        .bind(Arg::Text(record.token_id.to_string()))
        .push(", ")
        .bind(Arg::Text(kind.as_str().to_owned()))
        .push(", ")
        .bind(Arg::Text(value.to_owned()))
        .push(", ")
        .bind(Arg::OptText(client_ip.clone()))
        .push(", ")
        .bind(Arg::Text(method.clone()))
        .push(", ")
        .bind(Arg::Text(route.clone()))
        .push(", ")
        .bind(Arg::OptText(user_agent.clone()))
        .push(")");
    sql.query().execute(&mut *conn).await?;
    let event = NewEvent {
        workspace_id: record.workspace_id.clone(),
        action: if kind == AnomalyKind::Canary {
            Action::TokenCanaryUsed
        } else {
            Action::TokenAnomaly
        },
        target_kind: Some("token"),
        target_id: Some(record.token_id.to_string()),
        outcome: Outcome::Success,
        details: json!({
            "kind": kind,
            "severity": kind.severity(),
            "value": value,
            "client_ip": client_ip,
            "method": method,
            "route": route,
            "user_agent": user_agent,
        }),
    };
    let context = Context {
        client_ip: record.client_ip,
        user_agent: record.user_agent.clone(),
        ..Context::system()
    };
    chain::append(conn, key, &context, &event, record.at).await?;
    Ok(())
}

/// Anomalies matching `workspace_id` and `token`, newest first, with ids below `before`.
pub(crate) async fn list(
    conn: &mut Connection,
    backend: Backend,
    workspace_id: Option<&str>,
    token: Option<TokenId>,
    since: Option<OffsetDateTime>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Anomaly>, Error> {
    let mut sql = Sql::new(
        backend,
        "SELECT id, at_us, token_id, kind, value, client_ip, method, route, user_agent \
         FROM token_anomalies WHERE 1 = 1",
    );
    if let Some(ws) = workspace_id {
        sql.push(" AND workspace_id = ")
            .bind(Arg::Text(ws.to_owned()));
    }
    if let Some(token) = token {
        sql.push(" AND token_id = ")
            .bind(Arg::Text(token.to_string()));
    }
    if let Some(since) = since {
        sql.push(" AND at_us >= ").bind(Arg::Int(to_micros(since)));
    }
    if let Some(before) = before {
        sql.push(" AND id < ").bind(Arg::Int(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ").bind(Arg::Int(limit));
    sql.query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            let kind: AnomalyKind = row
                .try_get::<String, _>("kind")?
                .parse()
                .map_err(|_| Error::Corrupt("anomaly kind"))?;
            Ok(Anomaly {
                id: row.try_get::<i64, _>("id")?.to_string(),
                at: from_micros(row.try_get("at_us")?)?,
                token_id: parse_token(&row.try_get::<String, _>("token_id")?)?,
                kind,
                severity: kind.severity(),
                value: row.try_get("value")?,
                client_ip: row.try_get("client_ip")?,
                method: row.try_get("method")?,
                route: row.try_get("route")?,
                user_agent: row.try_get("user_agent")?,
            })
        })
        .collect()
}

pub(super) fn parse_token(text: &str) -> Result<TokenId, Error> {
    text.parse().map_err(|_| Error::Corrupt("token id"))
}
