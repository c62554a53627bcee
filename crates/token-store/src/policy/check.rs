//! Judging a workspace's live tokens against its policy (`knowmind policy check`), and bringing
//! them into line (`--apply`): expiries set, scopes narrowed, unused tokens revoked — each an
//! audit event in one transaction with a `workspace.policy_applied` summary.

use std::collections::HashMap;

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_api::{PolicyAction, PolicyCheck, PolicyFinding, Role, TokenRecord};
use knowmind_db::{Connection, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::{Scope, TokenId};

use super::{Rules, text_of, words};
use crate::error::Error;
use crate::rows::{SELECT_TOKEN, token_from_row};
use crate::store::{Store, changed};

impl Store {
    /// The workspace's live tokens (OAuth access tokens aside, which live an hour) that break
    /// its policy, and what applying it would do to each: a dry run.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Storage`].
    pub async fn check_policy(&self, workspace_id: &str) -> Result<PolicyCheck, Error> {
        let now = self.now();
        let mut conn = self.inner.db.pool().acquire().await?;
        let (findings, _) = findings(&mut conn, workspace_id, now).await?;
        Ok(PolicyCheck {
            applied: false,
            findings,
        })
    }

    /// Applies the policy to the workspace's live tokens, as [`Store::check_policy`] describes,
    /// in one transaction: each change is a `token.updated` or `token.revoked` event, and a
    /// `workspace.policy_applied` event sums them up. Other instances' caches learn of each
    /// change as they learn of revocations. With `only`, just those tokens are touched (what a
    /// person saw listed; a policy tightened since does not reach further).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Storage`].
    pub async fn apply_policy(
        &self,
        workspace_id: &str,
        only: Option<&[TokenId]>,
        context: &Context,
    ) -> Result<PolicyCheck, Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let (mut findings, records) = findings(&mut tx, workspace_id, now).await?;
        if let Some(only) = only {
            findings.retain(|f| only.contains(&f.token_id));
        }
        let mut changed_ids = Vec::new();
        let revoked: Vec<TokenId> = findings
            .iter()
            .filter(|f| f.action == PolicyAction::Revoke)
            .map(|f| f.token_id)
            .collect();
        for finding in &findings {
            let id = finding.token_id;
            let Some(record) = records.get(&id) else {
                continue;
            };
            match finding.action {
                PolicyAction::Revoke => {
                    if changed_ids.contains(&id) {
                        continue; // revoked for an earlier rule
                    }
                    let reason = format!("policy: {}", finding.rule);
                    let done = self
                        .revoke_in(&mut tx, record, false, &reason, context, now)
                        .await?;
                    changed_ids.extend(done);
                }
                // A token that is revoked for another rule is not also changed.
                _ if revoked.contains(&id) => {}
                PolicyAction::SetExpiry => {
                    let at = finding.new_expires_at.unwrap_or(now);
                    sqlx::query("UPDATE tokens SET expires_at_us = $1 WHERE id = $2")
                        .bind(to_micros(at))
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let details = json!({
                        "expires_at": changed(&record.expires_at, &Some(at)),
                        "policy_rule": finding.rule,
                    });
                    self.record_update(&mut tx, record, details, context, now)
                        .await?;
                    changed_ids.push(id);
                }
                PolicyAction::NarrowScopes => {
                    let scopes = finding.new_scopes.unwrap_or(record.scopes);
                    sqlx::query("UPDATE tokens SET scopes = $1 WHERE id = $2")
                        .bind(scopes.to_string())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let details = json!({
                        "scopes": changed(&record.scopes, &scopes),
                        "policy_rule": finding.rule,
                    });
                    self.record_update(&mut tx, record, details, context, now)
                        .await?;
                    changed_ids.push(id);
                }
                PolicyAction::None => {}
            }
        }
        let count = |action: PolicyAction| findings.iter().filter(|f| f.action == action).count();
        let summary = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WorkspacePolicyApplied,
            target_kind: Some("workspace"),
            target_id: Some(workspace_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({
                "findings": findings.len(),
                "expiries_set": count(PolicyAction::SetExpiry),
                "scopes_narrowed": count(PolicyAction::NarrowScopes),
                "revoked": revoked.len(),
                "left_to_people": count(PolicyAction::None),
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &summary, now)
            .await?;
        tx.commit().await?;
        for id in changed_ids {
            self.inner.cache.evict(id);
        }
        Ok(PolicyCheck {
            applied: true,
            findings,
        })
    }

    async fn record_update(
        &self,
        tx: &mut Connection,
        record: &TokenRecord,
        details: serde_json::Value,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let event = NewEvent::on_token(&record.workspace_id, Action::TokenUpdated, record.id)
            .with_details(details);
        self.inner.audit.append(tx, context, &event, now).await?;
        self.notify(tx, record.id).await
    }
}

/// The findings for every live token of the workspace, oldest first, and the tokens they name.
async fn findings(
    conn: &mut Connection,
    workspace_id: &str,
    now: OffsetDateTime,
) -> Result<(Vec<PolicyFinding>, HashMap<TokenId, TokenRecord>), Error> {
    let rules = sqlx::query(&format!(
        "SELECT {} FROM workspaces WHERE id = $1",
        super::POLICY_COLUMNS
    ))
    .bind(workspace_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound { what: "workspace" })?;
    let rules = Rules::of_row(&rules)?;
    let roles: HashMap<String, Role> = sqlx::query(
        "SELECT id, role FROM members WHERE workspace_id = $1 AND removed_at_us IS NULL",
    )
    .bind(workspace_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let role: String = row.try_get("role")?;
        Ok((row.try_get("id")?, role.parse()?))
    })
    .collect::<Result<_, Error>>()?;
    // Live: not revoked (a rotated token in its grace period is on its way out), not expired.
    let rows = sqlx::query(&format!(
        "{} WHERE t.workspace_id = $1 AND t.oauth_client_id IS NULL AND t.canary = 0 \
         AND t.revoked_at_us IS NULL AND (t.expires_at_us IS NULL OR t.expires_at_us > $2) \
         ORDER BY t.created_at_us, t.id",
        *SELECT_TOKEN
    ))
    .bind(workspace_id)
    .bind(to_micros(now))
    .fetch_all(&mut *conn)
    .await?;
    let mut findings = Vec::new();
    let mut records = HashMap::new();
    for row in &rows {
        let record = token_from_row(row, now)?.record;
        let before = findings.len();
        judge(
            &rules,
            roles.get(&record.owner_id).copied(),
            &record,
            now,
            &mut findings,
        );
        if findings.len() > before {
            records.insert(record.id, record);
        }
    }
    Ok((findings, records))
}

/// Every rule of `rules` that a live token breaks.
fn judge(
    rules: &Rules,
    role: Option<Role>,
    record: &TokenRecord,
    now: OffsetDateTime,
    findings: &mut Vec<PolicyFinding>,
) {
    let finding = |rule: &str, detail: String, action: PolicyAction| PolicyFinding {
        token_id: record.id,
        name: record.name.clone(),
        rule: rule.to_owned(),
        detail,
        action,
        new_expires_at: None,
        new_scopes: None,
    };
    if let Some(after) = rules.revoke_unused_after {
        let last = record.last_used_at.unwrap_or(record.created_at);
        if now - last > after {
            let detail = match record.last_used_at {
                Some(_) => format!("not used for more than {}", text_of(after)),
                None => format!("never used, and issued more than {} ago", text_of(after)),
            };
            findings.push(finding("revoke_unused_after", detail, PolicyAction::Revoke));
        }
    }
    if let Some(role) = role {
        let allowed = rules.role_scopes.of(role);
        let extra = record.scopes.without(allowed);
        if !extra.is_empty() {
            let keep = record.scopes.intersection(allowed);
            let detail = format!(
                "carries {extra}, which a {role}'s tokens may no longer hold (allowed: {})",
                words(allowed)
            );
            findings.push(if keep.is_empty() {
                finding("role_scopes", detail, PolicyAction::Revoke)
            } else {
                PolicyFinding {
                    new_scopes: Some(keep),
                    ..finding("role_scopes", detail, PolicyAction::NarrowScopes)
                }
            });
        }
    }
    match (record.expires_at, rules.max_lifetime) {
        (at, Some(max)) if at.is_none_or(|at| at > now + max) => {
            let detail = match at {
                None => format!(
                    "never expires; a token here must expire within {}",
                    text_of(max)
                ),
                Some(_) => format!("expires later than {} from now", text_of(max)),
            };
            findings.push(PolicyFinding {
                new_expires_at: Some(now + max),
                ..finding("max_lifetime", detail, PolicyAction::SetExpiry)
            });
        }
        (None, None) if rules.require_expiry => {
            let detail = "never expires; a token here must have an expiry".to_owned();
            findings.push(PolicyFinding {
                new_expires_at: Some(now + rules.rotation_interval),
                ..finding("require_expiry", detail, PolicyAction::SetExpiry)
            });
        }
        _ => {}
    }
    if rules.write_needs_allowlist
        && record.scopes.contains(Scope::Write)
        && record.allowed_networks.is_empty()
    {
        findings.push(finding(
            "write_requires_allowlist",
            "has the write scope and no address allow-list: rotate it with one \
             (`knowmind token rotate ID --allow-from CIDR`)"
                .to_owned(),
            PolicyAction::None,
        ));
    }
}
