//! `knowmind policy`: the workspace's rules for its tokens.

use knowmind_api::{ReuseDetection, WorkspacePolicy};
use reqwest::Method;

use crate::cli::{Cli, PolicyCommand, ReuseDetectionArg};
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::Style;
use crate::{connect, print_json, warn_about_token};

pub(crate) async fn run(cli: &Cli, style: Style, command: &PolicyCommand) -> Result<(), CliError> {
    let (client, _, _) = connect(cli)?;
    let policy: WorkspacePolicy = match command {
        PolicyCommand::Show => client.get("/v1/workspace/policy", NO_QUERY).await?,
        PolicyCommand::Set { reuse_detection } => {
            let body = WorkspacePolicy {
                reuse_detection: match reuse_detection {
                    ReuseDetectionArg::Alert => ReuseDetection::Alert,
                    ReuseDetectionArg::RevokeFamily => ReuseDetection::RevokeFamily,
                },
            };
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
    }
    warn_about_token(&client, style).await;
    Ok(())
}
