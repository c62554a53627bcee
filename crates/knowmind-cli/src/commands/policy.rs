//! `knowmind policy`: the workspace's rules for its tokens.

use knowmind_api::{ReuseDetection, WorkspacePolicy};
use reqwest::Method;

use crate::cli::{Cli, PolicyCommand, PolicyPreset, ReuseDetectionArg, Switch};
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::Style;
use crate::{connect, print_json, warn_about_token};

pub(crate) async fn run(cli: &Cli, style: Style, command: &PolicyCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let policy: WorkspacePolicy = match command {
        PolicyCommand::Show => client.get("/v1/workspace/policy", NO_QUERY).await?,
        PolicyCommand::Set {
            reuse_detection,
            oauth_registration,
            preset,
            max_lifetime,
            require_expiry,
            rotation_interval,
        } => {
            for (flag, value) in [
                (
                    "--max-lifetime",
                    max_lifetime.as_deref().filter(|v| *v != "none"),
                ),
                ("--rotation-interval", rotation_interval.as_deref()),
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
                    body.rotation_interval = "90d".into();
                    body.max_lifetime = None;
                    body.require_expiry = false;
                }
                Some(PolicyPreset::Regulated) => {
                    body.rotation_interval = "30d".into();
                    body.max_lifetime = Some("90d".into());
                    body.require_expiry = true;
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
