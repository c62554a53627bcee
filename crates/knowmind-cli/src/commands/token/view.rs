//! `knowmind token view`: one token, its state, and its rotation and revocation history.

use knowmind_api::TokenDetail;

use super::token_path;
use crate::client::{Client, NO_QUERY};
use crate::error::CliError;
use crate::output::{Style, relative, when};
use crate::{now, print_json, scopes_text};
use knowmind_api::HandoverState;

pub(super) async fn view(client: &Client, style: Style, id: &str) -> Result<(), CliError> {
    let detail: TokenDetail = client
        .get(&format!("/v1/tokens/{}", token_path(id)?), NO_QUERY)
        .await?;
    if style.json {
        print_json(&detail);
        return Ok(());
    }
    let now = now();
    let record = &detail.record;
    // A rotated token works until its grace period ends: that is its real end.
    let in_grace = record.revoked_reason.as_deref() == Some("rotated")
        && record.revoked_at.is_some_and(|at| at > now);
    let successor = record
        .rotated_to
        .map(|id| id.to_string())
        .unwrap_or_default();
    let state = match record.handover {
        Some(HandoverState::Pending) if in_grace => format!(
            "{} (rotated with hand-over: works until {successor} is first used, at the latest until {})",
            record.state,
            when(record.revoked_at, now)
        ),
        Some(HandoverState::Overlap) if in_grace => format!(
            "{} (hand-over: {successor} is in use; this one stops {})",
            record.state,
            when(record.revoked_at, now)
        ),
        Some(HandoverState::TimedOut) => format!(
            "{} (hand-over timed out: {successor} was never used)",
            record.state
        ),
        Some(_) => format!("{} (handed over to {successor})", record.state),
        None if in_grace => format!(
            "{} (rotated; its grace period ends {})",
            record.state,
            when(record.revoked_at, now)
        ),
        None => record.state.to_string(),
    };
    let mut lines = vec![
        ("id", record.id.to_string()),
        ("name", record.name.clone()),
        ("for", record.client.clone()),
        ("scopes", scopes_text(record.scopes)),
        (
            "allowed from",
            if record.allowed_networks.is_empty() {
                "anywhere".to_owned()
            } else {
                record.allowed_networks.to_string().replace(' ', ", ")
            },
        ),
        ("state", state),
        (
            "created",
            format!(
                "{} by {}",
                when(Some(record.created_at), now),
                record.created_by
            ),
        ),
        (
            "expires",
            if in_grace {
                format!(
                    "{} — but its grace period ends first",
                    when(record.expires_at, now)
                )
            } else if record.expires_at.is_none() {
                "never (rotate it with an expiry: `knowmind token rotate <id> --expires-in 90d`)"
                    .to_owned()
            } else {
                when(record.expires_at, now)
            },
        ),
        (
            "last used",
            match (&record.last_used_at, &record.last_used_ip) {
                (None, _) => "never".to_owned(),
                (Some(at), Some(ip)) => format!("{} from {ip}", when(Some(*at), now)),
                (Some(at), None) => when(Some(*at), now),
            },
        ),
    ];
    if record.canary {
        lines.insert(
            2,
            (
                "canary",
                "yes: it authorizes nothing; any use raises token.canary_used".to_owned(),
            ),
        );
    }
    if !record.description.is_empty() {
        lines.insert(2, ("about", record.description.clone()));
    }
    if let Some(to) = record.rotated_to {
        lines.push(("rotated to", to.to_string()));
    }
    if let (Some(reason), false) = (&record.revoked_reason, in_grace) {
        lines.push((
            "revoked",
            format!(
                "{} by {}: {reason}",
                when(record.revoked_at, now),
                record.revoked_by.as_deref().unwrap_or("-")
            ),
        ));
    }
    for (label, value) in lines {
        outln!("{label:<10} {value}");
    }
    if detail.family.len() > 1 {
        outln!("family     (oldest first; revoking any of them revokes the rest)");
        for member in &detail.family {
            outln!(
                "  {} {} {} ({}; {}, created {} by {})",
                if member.id == record.id { "*" } else { " " },
                member.id,
                member.name,
                member.state,
                member.origin.as_str().replace('_', "-"),
                relative(Some(member.created_at), now),
                member.created_by,
            );
        }
    }
    Ok(())
}
