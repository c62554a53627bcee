//! Compromise response: one step from "this token may have leaked" to a dead token, a
//! replacement, what was unusual, and a GDPR Art. 33 record with its deadline.
//!
//! Opening an incident revokes its tokens (reason `compromised`, with their families) and opens
//! the incident in one transaction, at the moment of awareness; the deadline is 72 hours later.
//! The report is assembled from what knowmind already keeps: the calls made with the tokens in
//! the window, the addresses and endpoints first seen in it (never in the baseline before it),
//! changes made by the tokens, and OAuth connections made or used in it. The record is
//! append-only: every amendment is a new entry, and an audit event.

use audit::{Action, Context, EventFilter, NewEvent, Outcome};
use knowmind_api::{
    Incident, IncidentEntry, IncidentReport, IncidentStatus, IncidentToken, OpenIncident,
    RecordedEntry,
};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::Duration;
use token_core::{Token, TokenId};

use crate::error::Error;
use crate::model::{NewToken, TokenRecord};
use crate::store::{Store, new_id};
use crate::validate;

/// GDPR Art. 33(1): notify within 72 hours of becoming aware.
pub const NOTIFICATION_DEADLINE: Duration = Duration::hours(72);

/// The most tokens one incident revokes.
const MAX_TOKENS: usize = 50;

impl Store {
    /// Opens an incident: revokes `open.token_ids` with their families (reason `compromised`)
    /// and records the incident, in one transaction; then, with `open.replace`, issues a
    /// replacement for each (its name pattern carried forward, same scopes, device and
    /// allow-list, its lifetime fitted to the policy), shown once in the answer.
    ///
    /// # Errors
    /// [`Error::Invalid`] for no token, more than 50, a window that starts in the future or a
    /// summary over 1,000 characters; [`Error::NotFound`] for a token of another workspace; as
    /// [`Store::create_token`] for a replacement.
    pub async fn open_incident(
        &self,
        workspace_id: &str,
        open: OpenIncident,
        context: &Context,
    ) -> Result<(Incident, Vec<(TokenRecord, Token)>), Error> {
        if open.token_ids.is_empty() || open.token_ids.len() > MAX_TOKENS {
            return Err(Error::invalid("token_ids", "1 to 50 tokens"));
        }
        let summary = validate::text("summary", &open.summary, 1_000)?;
        let mut records = Vec::new();
        for id in &open.token_ids {
            if !records.iter().any(|r: &TokenRecord| r.id == *id) {
                records.push(self.get_token(workspace_id, *id).await?);
            }
        }
        let now = from_micros(to_micros(self.now()))?;
        let since = open
            .since
            .or_else(|| records.iter().map(|r| r.created_at).min())
            .unwrap_or(now);
        if since > now {
            return Err(Error::invalid("since", "must not be in the future"));
        }
        let id = new_id("inc_")?;
        let reason = format!("compromised: incident {id}");
        let mut tx = self.inner.db.begin_write().await?;
        let mut revoked = Vec::new();
        for record in &records {
            self.lock_family(&mut tx, record.family_id).await?;
            revoked.extend(
                self.revoke_in(&mut tx, record, true, &reason, context, now)
                    .await?,
            );
        }
        sqlx::query(
            "INSERT INTO incidents (id, workspace_id, opened_at_us, opened_by, deadline_us, \
             since_us, status, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(workspace_id)
        .bind(to_micros(now))
        .bind(context.actor.to_string())
        .bind(to_micros(now + NOTIFICATION_DEADLINE))
        .bind(to_micros(since))
        .bind(IncidentStatus::Open.as_str())
        .bind(summary.as_str())
        .execute(&mut *tx)
        .await?;
        for record in &records {
            sqlx::query("INSERT INTO incident_tokens (incident_id, token_id) VALUES ($1, $2)")
                .bind(id.as_str())
                .bind(record.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::IncidentOpened,
            target_kind: Some("incident"),
            target_id: Some(id.clone()),
            outcome: Outcome::Success,
            details: json!({
                "tokens": records.iter().map(|r| r.id).collect::<Vec<_>>(),
                "revoked": revoked,
                "deadline": (now + NOTIFICATION_DEADLINE).unix_timestamp(),
                "since": since.unix_timestamp(),
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        for token in &revoked {
            self.inner.cache.evict(*token);
        }
        let mut replacements = Vec::new();
        if open.replace {
            let rules = self.rules(workspace_id).await?;
            for record in &records {
                let lifetime = record.expires_at.map(|at| at - record.created_at);
                let expires_at = rules.fit_expiry(lifetime.and_then(|l| now.checked_add(l)), now);
                let new = NewToken {
                    owner_id: record.owner_id.clone(),
                    name: crate::names::rotated_name(&record.name, now),
                    description: record.description.clone(),
                    client: record.client.clone(),
                    scopes: record.scopes,
                    expires_at,
                    allowed_networks: record.allowed_networks.clone(),
                };
                let (replacement, token) = self.create_token(workspace_id, new, context).await?;
                sqlx::query(
                    "UPDATE incident_tokens SET replaced_by = $1 \
                     WHERE incident_id = $2 AND token_id = $3",
                )
                .bind(replacement.id.as_str())
                .bind(id.as_str())
                .bind(record.id.as_str())
                .execute(self.inner.db.pool())
                .await?;
                replacements.push((replacement, token));
            }
        }
        Ok((self.incident(workspace_id, &id).await?, replacements))
    }

    /// An incident of the workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn incident(&self, workspace_id: &str, id: &str) -> Result<Incident, Error> {
        let row = sqlx::query(
            "SELECT id, workspace_id, opened_at_us, opened_by, deadline_us, since_us, status, \
             summary FROM incidents WHERE id = $1 AND workspace_id = $2",
        )
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound { what: "incident" })?;
        self.incident_of(&row).await
    }

    /// The workspace's incidents, newest first (at most 200).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_incidents(&self, workspace_id: &str) -> Result<Vec<Incident>, Error> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, opened_at_us, opened_by, deadline_us, since_us, status, \
             summary FROM incidents WHERE workspace_id = $1 \
             ORDER BY opened_at_us DESC, id LIMIT 200",
        )
        .bind(workspace_id)
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut incidents = Vec::with_capacity(rows.len());
        for row in &rows {
            incidents.push(self.incident_of(row).await?);
        }
        Ok(incidents)
    }

    async fn incident_of(&self, row: &sqlx::any::AnyRow) -> Result<Incident, Error> {
        let id: String = row.try_get("id")?;
        let workspace_id: String = row.try_get("workspace_id")?;
        let status: IncidentStatus = row.try_get::<String, _>("status")?.parse()?;
        let deadline = from_micros(row.try_get("deadline_us")?)?;
        let linked = sqlx::query(
            "SELECT token_id, replaced_by FROM incident_tokens WHERE incident_id = $1 \
             ORDER BY token_id",
        )
        .bind(id.as_str())
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut tokens = Vec::with_capacity(linked.len());
        for link in &linked {
            let token_id: TokenId = link
                .try_get::<String, _>("token_id")?
                .parse()
                .map_err(|_| Error::corrupt("token id"))?;
            let replaced_by = link
                .try_get::<Option<String>, _>("replaced_by")?
                .map(|r| r.parse().map_err(|_| Error::corrupt("token id")))
                .transpose()?;
            let name = self
                .get_token(&workspace_id, token_id)
                .await
                .map(|r| r.name)
                .unwrap_or_default();
            tokens.push(IncidentToken {
                token_id,
                name,
                replaced_by,
            });
        }
        Ok(Incident {
            overdue: status == IncidentStatus::Open && self.now() > deadline,
            id,
            workspace_id,
            opened_at: from_micros(row.try_get("opened_at_us")?)?,
            opened_by: row.try_get("opened_by")?,
            deadline,
            since: from_micros(row.try_get("since_us")?)?,
            status,
            summary: row.try_get("summary")?,
            tokens,
        })
    }

    /// An incident with what the security log says about its window: the calls, the
    /// addresses and endpoints never seen before it, the tokens' own changes, OAuth
    /// connections made or used in it, and the record's entries.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Storage`].
    pub async fn incident_report(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<IncidentReport, Error> {
        let incident = self.incident(workspace_id, id).await?;
        let since = incident.since;
        let audit = &self.inner.audit;
        let (mut calls, mut unknown_addresses, mut unknown_endpoints, mut anomalies, mut changes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for token in &incident.tokens {
            let used = audit.usage(token.token_id, None, 500).await?.items;
            calls.extend(used.into_iter().filter(|u| u.record.at >= since));
            anomalies.extend(
                audit
                    .anomalies(
                        Some(workspace_id),
                        Some(token.token_id),
                        Some(since),
                        None,
                        200,
                    )
                    .await?
                    .items,
            );
            let seen = audit.usage_summary(token.token_id).await?;
            unknown_addresses.extend(seen.ips.into_iter().filter(|ip| ip.first_seen >= since));
            unknown_endpoints.extend(seen.routes.into_iter().filter(|r| r.first_seen >= since));
            let filter = EventFilter {
                workspace_id: Some(workspace_id.to_owned()),
                actor_id: Some(token.token_id.to_string()),
                since: Some(since),
                ..EventFilter::default()
            };
            changes.extend(audit.events(&filter, None, 200).await?.items);
        }
        calls.sort_by_key(|c| std::cmp::Reverse(c.record.at));
        anomalies.sort_by_key(|a| std::cmp::Reverse(a.at));
        let connections = self
            .list_connections(workspace_id, None, None, true)
            .await?
            .into_iter()
            .filter(|c| c.created_at >= since || c.last_used_at.is_some_and(|at| at >= since))
            .collect();
        let entries = sqlx::query(
            "SELECT at_us, author, body FROM incident_entries WHERE incident_id = $1 \
             ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.inner.db.pool())
        .await?
        .iter()
        .map(|row| {
            let body: String = row.try_get("body")?;
            Ok(RecordedEntry {
                at: from_micros(row.try_get("at_us")?)?,
                by: row.try_get("author")?,
                entry: serde_json::from_str(&body).map_err(|_| Error::corrupt("incident entry"))?,
            })
        })
        .collect::<Result<_, Error>>()?;
        Ok(IncidentReport {
            incident,
            calls,
            unknown_addresses,
            unknown_endpoints,
            anomalies,
            changes,
            connections,
            entries,
        })
    }

    /// Writes the reminders that are due: `incident.deadline_near` when an incident still open
    /// comes within 24 and within 4 hours of its deadline, once each, whichever instance gets
    /// there first. Returns how many were written.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn write_incident_notices(&self) -> Result<u64, Error> {
        let now = self.now();
        let now_us = to_micros(now);
        let mut written = 0;
        for (kind, hours, nearer) in [("deadline_4h", 4, 0), ("deadline_24h", 24, 4)] {
            let mut tx = self.inner.db.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO incident_notices (incident_id, kind, at_us) \
                 SELECT i.id, $2, $1 FROM incidents i WHERE i.status = 'open' \
                 AND i.deadline_us > $1 + $3 AND i.deadline_us <= $1 + $4 \
                 ON CONFLICT (incident_id, kind) DO NOTHING RETURNING incident_id",
            )
            .bind(now_us)
            .bind(kind)
            .bind(i64::from(nearer) * 3_600_000_000)
            .bind(i64::from(hours) * 3_600_000_000)
            .fetch_all(&mut *tx)
            .await?;
            for row in &inserted {
                let id: String = row.try_get("incident_id")?;
                let incident =
                    sqlx::query("SELECT workspace_id, deadline_us FROM incidents WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                let event = NewEvent {
                    workspace_id: Some(incident.try_get("workspace_id")?),
                    action: Action::IncidentDeadlineNear,
                    target_kind: Some("incident"),
                    target_id: Some(id.clone()),
                    outcome: Outcome::Success,
                    details: json!({
                        "hours": hours,
                        "deadline": from_micros(incident.try_get("deadline_us")?)?.unix_timestamp(),
                    }),
                };
                self.inner
                    .audit
                    .append(&mut tx, &Context::system(), &event, now)
                    .await?;
            }
            tx.commit().await?;
            written += u64::try_from(inserted.len()).unwrap_or(u64::MAX);
        }
        Ok(written)
    }

    /// How many incidents, in every workspace, are still open past their deadline (for a
    /// metrics gauge).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn overdue_incidents(&self) -> Result<u64, Error> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM incidents WHERE status = 'open' AND deadline_us < $1",
        )
        .bind(to_micros(self.now()))
        .fetch_one(self.inner.db.pool())
        .await?
        .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Amends an incident's record: a new entry (earlier ones stay), and the status it names.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty entry, an over-long field or a closed incident;
    /// [`Error::NotFound`].
    pub async fn amend_incident(
        &self,
        workspace_id: &str,
        id: &str,
        entry: IncidentEntry,
        context: &Context,
    ) -> Result<Incident, Error> {
        if entry == IncidentEntry::default() {
            return Err(Error::invalid("entry", "say what to record"));
        }
        for (field, value) in [
            ("nature", &entry.nature),
            ("data_subjects", &entry.data_subjects),
            ("records", &entry.records),
            ("dpo_contact", &entry.dpo_contact),
            ("consequences", &entry.consequences),
            ("measures", &entry.measures),
            ("decision_reason", &entry.decision_reason),
            ("note", &entry.note),
        ] {
            if let Some(text) = value {
                validate::text(field, text, 2_000)?;
            }
        }
        let current = self.incident(workspace_id, id).await?;
        if current.status == IncidentStatus::Closed {
            return Err(Error::invalid("status", "the incident is closed"));
        }
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM incident_entries WHERE incident_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("next")?;
        let body = serde_json::to_string(&entry).map_err(|_| Error::corrupt("incident entry"))?;
        sqlx::query(
            "INSERT INTO incident_entries (incident_id, seq, at_us, author, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(seq)
        .bind(to_micros(now))
        .bind(context.actor.to_string())
        .bind(body)
        .execute(&mut *tx)
        .await?;
        if let Some(status) = entry.status {
            sqlx::query("UPDATE incidents SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::IncidentUpdated,
            target_kind: Some("incident"),
            target_id: Some(id.to_owned()),
            outcome: Outcome::Success,
            details: json!({ "entry": seq, "status": entry.status }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        self.incident(workspace_id, id).await
    }
}
