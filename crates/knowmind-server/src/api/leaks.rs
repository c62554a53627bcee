//! `POST /v1/credentials/revoke`: whoever finds a knowmind token may kill it.

use axum::http::StatusCode;
use knowmind_api::ReportedCredentials;

use super::{Anonymous, AppState};
use axum::extract::State;
use knowmind_axum::{ApiError, ApiJson};

/// The answer to every well-formed report: how many were received, nothing about them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Received {
    /// How many credentials the report held.
    received: usize,
}

/// Report leaked tokens
///
/// No authentication, like GitHub's credential revocation API: anyone who finds a knowmind
/// token may send it here. Each live token whose secret matches is revoked with its family
/// (reason `leaked`, with `source`), and its owner is told (audit log, webhooks). The answer is
/// 202 whatever the tokens were, and never says whether one existed; the work happens after it.
/// At most 1,000 per report and 60 reports an hour per address.
#[utoipa::path(post, path = "/v1/credentials/revoke", operation_id = "revokeCredentials", tag = "tokens",
    request_body = ReportedCredentials,
    responses((status = 202, description = "Received; every live token among them will be revoked", body = Received)))]
pub(super) async fn revoke_credentials(
    State(app): State<AppState>,
    Anonymous(context): Anonymous,
    ApiJson(body): ApiJson<ReportedCredentials>,
) -> Result<(StatusCode, axum::Json<Received>), ApiError> {
    if body.credentials.is_empty() || body.credentials.len() > 1_000 {
        return Err(ApiError::invalid("credentials: 1 to 1,000 per report"));
    }
    if body.credentials.iter().any(|c| c.len() > 512) {
        return Err(ApiError::invalid(
            "credentials: each at most 512 characters",
        ));
    }
    let store = app.store().clone();
    store.count_leak_report(context.client_ip)?;
    let received = body.credentials.len();
    // After the answer: how long the work takes must not tell which tokens exist. A busy hash
    // pool delays the work, it does not drop it (what was done is skipped on the next try).
    tokio::spawn(async move {
        let source = body.source.unwrap_or_default();
        for attempt in 1..=30 {
            match store
                .revoke_leaked(&body.credentials, &source, false, &context)
                .await
            {
                Ok(report) => {
                    if report.revoked > 0 {
                        tracing::warn!(
                            revoked = report.revoked,
                            "leaked tokens reported and revoked"
                        );
                    }
                    return;
                }
                Err(token_store::Error::Busy) if attempt < 30 => {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a leak report could not be processed");
                    return;
                }
            }
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(Received { received })))
}

/// One alert of GitHub's secret-scanning partner program.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct GithubAlert {
    /// The token found.
    token: String,
    /// The token type GitHub matched (ours: `knowmind_token`).
    #[serde(rename = "type")]
    kind: String,
    /// Where it was found.
    url: String,
    /// What kind of place (`content`, `commit`, `issue`, …).
    #[serde(default)]
    source: String,
}

/// What GitHub is told about each alert.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct GithubLabel {
    /// The token, as GitHub sent it (GitHub matches answers to alerts by it).
    token_raw: String,
    /// The type, as GitHub sent it.
    token_type: String,
    /// `true_positive` for a real knowmind token (live ones are now revoked),
    /// `false_positive` otherwise.
    label: &'static str,
}

/// GitHub secret-scanning alerts
///
/// GitHub's secret-scanning partner program POSTs the knowmind tokens it finds in public
/// repositories here, signed (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`:
/// ECDSA P-256 over the body) with a key from the list the server was given
/// (`--github-secret-scanning-keys`). Each live token is revoked with its family, reason
/// `leaked: found at <url>`. A missing or bad signature is a 401 and changes nothing (so is
/// every alert while the server has no key list).
#[utoipa::path(post, path = "/v1/secret-scanning/github", operation_id = "githubSecretScanning", tag = "tokens",
    request_body = Vec<GithubAlert>,
    responses((status = 200, description = "A label per alert", body = Vec<GithubLabel>)))]
pub(super) async fn github(
    State(app): State<AppState>,
    Anonymous(context): Anonymous,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<Vec<GithubLabel>>, ApiError> {
    let Some(keys) = &app.github_keys else {
        // Nothing to check a signature with: as unauthenticated as a bad signature.
        tracing::warn!(
            "a GitHub secret-scanning alert came, but no key list is configured (--github-secret-scanning-keys)"
        );
        return Err(ApiError::unauthorized());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = match (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) {
        (Some(id), Some(signature)) => keys.verify(id, signature, &body),
        _ => false,
    };
    if !signed {
        return Err(ApiError::unauthorized());
    }
    let alerts: Vec<GithubAlert> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a list of alerts: {e}")))?;
    if alerts.len() > 1_000 {
        return Err(ApiError::invalid("at most 1,000 alerts per request"));
    }
    let mut labels = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let source = format!("{} (GitHub secret scanning, {})", alert.url, alert.source);
        let report = app
            .store()
            .revoke_leaked(std::slice::from_ref(&alert.token), &source, true, &context)
            .await?;
        labels.push(GithubLabel {
            label: if report.genuine.is_empty() {
                "false_positive"
            } else {
                "true_positive"
            },
            token_raw: alert.token,
            token_type: alert.kind,
        });
    }
    Ok(axum::Json(labels))
}
