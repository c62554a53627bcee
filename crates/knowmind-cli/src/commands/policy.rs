//! `knowmind policy`: the workspace's rules for its tokens.

use knowmind_api::{PolicyAction, PolicyCheck, ReuseDetection, WorkspacePolicy};
use reqwest::Method;
use token_core::Scopes;

use crate::cli::{Cli, PolicyCommand, PolicyPreset, ReuseDetectionArg, Switch};
use crate::client::{Client, NO_QUERY};
use crate::commands::token::confirm;
use crate::error::CliError;
use crate::output::{self, Style, when};
use crate::{connect, now, print_json, scopes_text, warn_about_token};

pub(crate) async fn run(cli: &Cli, style: Style, command: &PolicyCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let policy: WorkspacePolicy = match command {
        PolicyCommand::Check { apply, yes } => {
            check(&client, style, *apply, *yes).await?;
            warn_about_token(&client, style).await;
            return Ok(());
        }
        PolicyCommand::Show => client.get("/v1/workspace/policy", NO_QUERY).await?,
        PolicyCommand::Set {
            reuse_detection,
            oauth_registration,
            preset,
            max_lifetime,
            require_expiry,
            rotation_interval,
            owner_scopes,
            admin_scopes,
            member_scopes,
            write_requires_allowlist,
            revoke_unused_after,
        } => {
            for (flag, value) in [
                (
                    "--max-lifetime",
                    max_lifetime.as_deref().filter(|v| *v != "none"),
                ),
                ("--rotation-interval", rotation_interval.as_deref()),
                (
                    "--revoke-unused-after",
                    revoke_unused_after.as_deref().filter(|v| *v != "none"),
                ),
            ] {
                if let Some(text) = value {
                    token_core::parse_duration(text)
                        .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
                }
            }
            let mut body: WorkspacePolicy = client.get("/v1/workspace/policy", NO_QUERY).await?;
            if let Some(reuse) = reuse_detection {
                body.reuse_detection = match reuse {
                    ReuseDetectionArg::Alert => ReuseDetection::Alert,
                    ReuseDetectionArg::RevokeFamily => ReuseDetection::RevokeFamily,
                };
            }
            if let Some(switch) = oauth_registration {
                body.oauth_registration = *switch == Switch::On;
            }
            match preset {
                Some(PolicyPreset::Standard) => {
                    knowmind_api::PolicyPreset::Standard.apply(&mut body)
                }
                Some(PolicyPreset::Regulated) => {
                    knowmind_api::PolicyPreset::Regulated.apply(&mut body);
                }
                None => {}
            }
            if let Some(max) = max_lifetime {
                body.max_lifetime = (max != "none").then(|| max.clone());
            }
            if let Some(switch) = require_expiry {
                body.require_expiry = *switch == Switch::On;
            }
            if let Some(interval) = rotation_interval {
                body.rotation_interval = interval.clone();
            }
            for (flag, value, field) in [
                ("--owner-scopes", owner_scopes, &mut body.role_scopes.owner),
                ("--admin-scopes", admin_scopes, &mut body.role_scopes.admin),
                (
                    "--member-scopes",
                    member_scopes,
                    &mut body.role_scopes.member,
                ),
            ] {
                if let Some(text) = value {
                    *field = text
                        .parse::<Scopes>()
                        .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
                }
            }
            if let Some(switch) = write_requires_allowlist {
                body.write_requires_allowlist = *switch == Switch::On;
            }
            if let Some(after) = revoke_unused_after {
                body.revoke_unused_after = (after != "none").then(|| after.clone());
            }
            client
                .call(Method::PUT, "/v1/workspace/policy", NO_QUERY, Some(&body))
                .await?
        }
    };
    if style.json {
        print_json(&policy);
    } else {
        outln!(
            "reuse detection: {}",
            match policy.reuse_detection {
                ReuseDetection::RevokeFamily => "revoke the family when a rotated token is reused",
                ReuseDetection::Alert => "alert only (a token.reuse security event)",
            }
        );
        outln!("rotation interval: {}", policy.rotation_interval);
        outln!(
            "maximum lifetime: {}",
            policy.max_lifetime.as_deref().unwrap_or("none")
        );
        outln!(
            "expiry required: {}",
            if policy.require_expiry || policy.max_lifetime.is_some() {
                "yes"
            } else {
                "no"
            }
        );
        let roles = policy.role_scopes;
        outln!(
            "scopes by role: owner {}; admin {}; member {}",
            scopes_text(roles.owner),
            scopes_text(roles.admin),
            scopes_text(roles.member)
        );
        outln!(
            "write tokens need an address allow-list: {}",
            if policy.write_requires_allowlist {
                "yes"
            } else {
                "no"
            }
        );
        outln!(
            "revoke unused tokens after: {}",
            policy.revoke_unused_after.as_deref().unwrap_or("never")
        );
        outln!(
            "OAuth self-registration: {}",
            if policy.oauth_registration {
                "on (connectors may register themselves; they show as unverified)"
            } else {
                "off (an admin registers each connector)"
            }
        );
    }
    warn_about_token(&client, style).await;
    Ok(())
}

/// `policy check [--apply]`: the dry run, then (when asked, and confirmed) the same through
/// `POST …/apply`, which judges the tokens again in its own transaction.
async fn check(client: &Client, style: Style, apply: bool, yes: bool) -> Result<(), CliError> {
    let report: PolicyCheck = client.get("/v1/workspace/policy/check", NO_QUERY).await?;
    let report = if apply && !report.findings.is_empty() {
        if !style.json {
            print_findings(&report);
        }
        if !yes {
            let changes = report
                .findings
                .iter()
                .filter(|f| f.action != PolicyAction::None)
                .count();
            confirm(&format!(
                "Apply the policy ({changes} changes listed above)?"
            ))?;
        }
        client
            .call(
                Method::POST,
                "/v1/workspace/policy/apply",
                NO_QUERY,
                None::<&()>,
            )
            .await?
    } else {
        report
    };
    if style.json {
        print_json(&report);
        return Ok(());
    }
    if report.findings.is_empty() {
        outln!("Every live token complies with the workspace's policy.");
        return Ok(());
    }
    if !apply {
        print_findings(&report);
        outln!("Dry run: nothing was changed. `knowmind policy check --apply` does the above.");
    } else {
        outln!(
            "Applied: {} changes (each is in the audit log).",
            report
                .findings
                .iter()
                .filter(|f| f.action != PolicyAction::None)
                .count()
        );
    }
    let left = report
        .findings
        .iter()
        .filter(|f| f.action == PolicyAction::None)
        .count();
    if left > 0 {
        outln!("{left} finding(s) need a person: see DETAIL.");
    }
    Ok(())
}

fn print_findings(report: &PolicyCheck) {
    let now = now();
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            let action = match f.action {
                PolicyAction::SetExpiry => format!("expire {}", when(f.new_expires_at, now)),
                PolicyAction::NarrowScopes => format!(
                    "keep only {}",
                    f.new_scopes.map(scopes_text).unwrap_or_default()
                ),
                PolicyAction::Revoke => "revoke".to_owned(),
                PolicyAction::None => "none (a person must act)".to_owned(),
            };
            vec![
                f.token_id.to_string(),
                f.name.clone(),
                f.rule.clone(),
                action,
                f.detail.clone(),
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table_dropping(
            &["TOKEN", "NAME", "RULE", "ACTION", "DETAIL"],
            &rows,
            output::width(),
            &["DETAIL", "NAME"],
        )
    );
}
