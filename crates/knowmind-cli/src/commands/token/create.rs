//! `knowmind token create`: the new token is shown once.

use knowmind_api::{CreateToken, Issued};
use reqwest::Method;
use token_core::Scopes;

use super::{allow_from, positive_duration};
use crate::cli::CreateArgs;
use crate::client::{Client, NO_QUERY};
use crate::error::CliError;
use crate::output::{Style, relative};
use crate::{now, print_json, scopes_text};

pub(super) async fn create(
    client: &Client,
    style: Style,
    args: &CreateArgs,
) -> Result<(), CliError> {
    // A canary authorizes nothing: its scopes are only what the API asks to be present.
    let scopes: Scopes = if args.canary {
        token_core::Scope::Read.into()
    } else {
        args.scopes
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .map_err(|e: token_core::Error| CliError::usage(format!("--scope: {e}")))?
    };
    if let Some(text) = &args.expires_in {
        positive_duration("--expires-in", text)?;
    }
    let expires_at =
        args.expires_at
            .as_deref()
            .map(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    CliError::usage(format!(
                        "--expires-at must be an RFC 3339 time like 2027-01-01T00:00:00Z, got {t:?}"
                    ))
                })
            })
            .transpose()?;
    if let Some(at) = expires_at
        && at <= now()
    {
        return Err(CliError::usage(format!(
            "--expires-at must be in the future, got {}",
            args.expires_at.as_deref().unwrap_or_default()
        )));
    }
    let allowed_networks = allow_from(&args.allow_from)?;
    let body = CreateToken {
        name: args.name.clone(),
        scopes,
        description: args.description.clone().unwrap_or_default(),
        client: args.client.clone().unwrap_or_default(),
        expires_in: args.expires_in.clone(),
        expires_at,
        owner_id: None,
        allowed_networks,
        canary: args.canary,
    };
    let created: Issued = client
        .call(Method::POST, "/v1/tokens", NO_QUERY, Some(&body))
        .await?;
    if style.json {
        print_json(&created);
    } else {
        crate::print_secret(&created.token)?;
        if !style.quiet && args.canary {
            eprintln!(
                "Created canary {} ({}). Plant the token above where a leak would be found first \
                 (an old config file, a backup); it authorizes nothing, and any use of it raises \
                 token.canary_used (to your webhooks, too).",
                created.record.id, args.name
            );
        } else if !style.quiet {
            eprintln!(
                "Created {} ({}; scopes {}; expires {}). The token above is shown this once.",
                created.record.id,
                args.name,
                scopes_text(created.record.scopes),
                relative(created.record.expires_at, now())
            );
            if created.record.expires_at.is_none() {
                eprintln!(
                    "note: this token never expires; if it leaks it works until someone revokes it \
                     (--expires-in 90d next time)"
                );
            }
        }
    }
    Ok(())
}
