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
    // After the answer: how long the work takes must not tell which tokens exist.
    tokio::spawn(async move {
        let source = body.source.unwrap_or_default();
        match store
            .revoke_leaked(&body.credentials, &source, &context)
            .await
        {
            Ok(report) if report.revoked > 0 => {
                tracing::warn!(
                    revoked = report.revoked,
                    "leaked tokens reported and revoked"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a leak report could not be processed"),
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(Received { received })))
}
