//! `knowmind token list`: the workspace's tokens, following every page the limit asks for.

use knowmind_api::{ListTokens, Origin, StateFilter, TokenRecord};

use crate::cli::StateArg;
use crate::client::Client;
use crate::error::CliError;
use crate::output::{self, Style, relative};
use crate::{now, print_json, scopes_text};

/// `token list --due` / `--expiring-within`.
pub(super) struct Only {
    pub(super) due: bool,
    pub(super) expiring_within: Option<String>,
}

pub(super) async fn list(
    client: &Client,
    style: Style,
    state: StateArg,
    limit: Option<usize>,
    only: Only,
) -> Result<(), CliError> {
    let state = match state {
        StateArg::Active => StateFilter::Active,
        StateArg::Expired => StateFilter::Expired,
        StateArg::Revoked => StateFilter::Revoked,
        StateArg::All => StateFilter::All,
    };
    let (items, more): (Vec<TokenRecord>, _) = client
        .all_pages(
            "/v1/tokens",
            |cursor| ListTokens {
                state: Some(state),
                due: only.due.then_some(knowmind_api::DueFilter::Rotation),
                expiring_within: only.expiring_within.clone(),
                limit: Some(500),
                cursor,
                ..ListTokens::default()
            },
            limit,
        )
        .await?;
    if let Some(more) = more {
        style.warn(&format!(
            "showing the newest {}; {more} match (raise --limit, or leave it out for all)",
            items.len()
        ));
    }
    if style.json {
        print_json(&items);
        return Ok(());
    }
    let now = now();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            let mut name = t.name.clone();
            if t.origin == Origin::SelfRotated {
                name.push_str(" (self-rotated)");
            }
            vec![
                t.id.to_string(),
                name,
                scopes_text(t.scopes),
                t.client.clone(),
                relative(crate::real_end(t, now), now),
                relative(t.last_used_at, now),
                if crate::grace_end(t, now).is_some() {
                    "active (rotated, grace)".to_owned()
                } else {
                    t.state.to_string()
                },
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table_dropping(
            &[
                "ID",
                "NAME",
                "SCOPES",
                "FOR",
                "EXPIRES",
                "LAST USED",
                "STATE"
            ],
            &rows,
            output::width(),
            &["FOR", "LAST USED", "SCOPES"],
        )
    );
    Ok(())
}
