//! `knowmind policy`: the workspace's rules for its tokens.

use knowmind_api::{ReuseDetection, WorkspacePolicy};
use reqwest::Method;

use crate::cli::{Cli, PolicyCommand, ReuseDetectionArg, Switch};
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
        } => {
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
