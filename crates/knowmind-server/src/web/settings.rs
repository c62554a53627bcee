//! The Settings page, for owners and admins: the workspace's token policy (with the tokens that
//! break it, and applying it), and its webhook endpoints with their delivery logs. Every action
//! is the store call the API makes, audited the same way.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use knowmind_api::{
    Delivery, NewWebhook, PolicyAction, PolicyFinding, PolicyPreset, ReuseDetection, Webhook,
    WorkspacePolicy,
};
use token_core::Scopes;

use crate::api::AppState;

use super::render::{html, when};
use super::{Chrome, PageError, Viewer};

/// A finding as the page shows it.
struct FindingRow {
    token_id: String,
    name: String,
    rule: String,
    detail: String,
    action: String,
}

fn finding_row(f: PolicyFinding) -> FindingRow {
    let action = match f.action {
        PolicyAction::SetExpiry => {
            format!("expire {}", f.new_expires_at.map(when).unwrap_or_default())
        }
        PolicyAction::NarrowScopes => format!(
            "keep only {}",
            f.new_scopes.map(|s| s.to_string()).unwrap_or_default()
        ),
        PolicyAction::Revoke => "revoke".to_owned(),
        PolicyAction::None => "none: a person must act".to_owned(),
    };
    FindingRow {
        token_id: f.token_id.to_string(),
        name: f.name,
        rule: f.rule,
        detail: f.detail,
        action,
    }
}

/// A new endpoint's secret, shown once.
struct NewSecret {
    url: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    policy: WorkspacePolicy,
    member_scopes: String,
    findings: Vec<FindingRow>,
    /// The listed tokens' ids, space-separated, for the Apply form.
    listed: String,
    webhooks: Vec<Webhook>,
    created: Option<NewSecret>,
    error: Option<String>,
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    created: Option<NewSecret>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<SettingsPage, PageError> {
    let policy = app.store.workspace_policy(viewer.workspace()).await?;
    let findings = app.store.check_policy(viewer.workspace()).await?.findings;
    Ok(SettingsPage {
        chrome: Chrome::of(viewer, "Settings", "settings").with_notice(notice),
        member_scopes: policy.role_scopes.member.to_string().replace(',', ", "),
        policy,
        listed: findings
            .iter()
            .map(|f| f.token_id.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        findings: findings.into_iter().map(finding_row).collect(),
        webhooks: app.store.list_webhooks(viewer.workspace()).await?,
        created,
        error,
    })
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

/// `GET /dashboard/settings`.
pub(super) async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let notice = match done.done.as_str() {
        "policy" => Some("The policy is saved (and audited).".to_owned()),
        "applied" => Some("The policy is applied; each change is in the audit log.".to_owned()),
        "removed" => Some("The webhook endpoint is removed.".to_owned()),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &page(&app, &viewer, None, None, notice).await?,
    ))
}

/// The policy form. Empty text fields mean "none"; unchecked boxes are absent.
#[derive(serde::Deserialize)]
pub(super) struct PolicyForm {
    #[serde(default)]
    preset: String,
    #[serde(default)]
    rotation_interval: String,
    #[serde(default)]
    max_lifetime: String,
    #[serde(default)]
    require_expiry: Option<String>,
    #[serde(default)]
    member_scopes: String,
    #[serde(default)]
    write_requires_allowlist: Option<String>,
    #[serde(default)]
    revoke_unused_after: String,
    #[serde(default)]
    reuse_detection: String,
}

/// `POST /dashboard/settings/policy`.
pub(super) async fn save_policy(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let current = app.store.workspace_policy(viewer.workspace()).await?;
    let optional = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_owned());
    let mut policy = WorkspacePolicy {
        rotation_interval: form.rotation_interval.trim().to_owned(),
        max_lifetime: optional(&form.max_lifetime),
        require_expiry: form.require_expiry.is_some(),
        write_requires_allowlist: form.write_requires_allowlist.is_some(),
        revoke_unused_after: optional(&form.revoke_unused_after),
        reuse_detection: match form.reuse_detection.as_str() {
            "revoke_family" => ReuseDetection::RevokeFamily,
            _ => ReuseDetection::Alert,
        },
        ..current
    };
    match form.preset.as_str() {
        "standard" => PolicyPreset::Standard.apply(&mut policy),
        "regulated" => PolicyPreset::Regulated.apply(&mut policy),
        _ => {}
    }
    let refused = |message: String| async {
        let page = page(&app, &viewer, None, Some(message), None).await?;
        Ok::<_, PageError>(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
    };
    match form.member_scopes.parse::<Scopes>() {
        Ok(scopes) => policy.role_scopes.member = scopes,
        Err(e) => return refused(format!("Member scopes: {e}")).await,
    }
    match app
        .store
        .set_workspace_policy(viewer.workspace(), policy, &viewer.context)
        .await
    {
        Ok(_) => Ok(Redirect::to("/dashboard/settings?done=policy").into_response()),
        Err(e @ (token_store::Error::Invalid { .. } | token_store::Error::Conflict(_))) => {
            refused(e.to_string()).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ApplyForm {
    /// The ids of the tokens the page listed, space-separated.
    #[serde(default)]
    tokens: String,
}

/// `POST /dashboard/settings/policy/apply`: the tokens the page listed (and no others, should
/// the policy have been tightened meanwhile), judged again and brought into line.
pub(super) async fn apply_policy(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<ApplyForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let listed: Vec<token_core::TokenId> = form
        .tokens
        .split_whitespace()
        .filter_map(|id| id.parse().ok())
        .collect();
    app.store
        .apply_policy(viewer.workspace(), Some(&listed), &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/settings?done=applied").into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct WebhookForm {
    #[serde(default)]
    url: String,
    /// `lifecycle` (the default events) or `all`.
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

/// `POST /dashboard/settings/webhooks`: the secret is shown on the page that answers, once.
pub(super) async fn add_webhook(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<WebhookForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let new = NewWebhook {
        url: form.url.trim().to_owned(),
        events: if form.events == "all" {
            vec!["*".to_owned()]
        } else {
            Vec::new()
        },
        description: form.description,
    };
    match app
        .store
        .create_webhook(viewer.workspace(), new, &viewer.context)
        .await
    {
        Ok(created) => {
            let shown = NewSecret {
                url: created.webhook.url,
                secret: created.secret,
            };
            let page = page(&app, &viewer, Some(shown), None, None).await?;
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(e @ (token_store::Error::Invalid { .. } | token_store::Error::Conflict(_))) => {
            let page = page(&app, &viewer, None, Some(e.to_string()), None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /dashboard/settings/webhooks/{id}/remove`.
pub(super) async fn remove_webhook(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    app.store
        .remove_webhook(viewer.workspace(), &id, &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/settings?done=removed").into_response())
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct DeliveriesPage {
    chrome: Chrome,
    webhook: Webhook,
    deliveries: Vec<Delivery>,
}

/// `GET /dashboard/settings/webhooks/{id}`: an endpoint's delivery log.
pub(super) async fn deliveries(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let webhook = app
        .store
        .list_webhooks(viewer.workspace())
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(PageError::not_found)?;
    let deliveries = app
        .store
        .webhook_deliveries(viewer.workspace(), &id, 100)
        .await?;
    let page = DeliveriesPage {
        chrome: Chrome::of(&viewer, "Webhook deliveries", "settings"),
        webhook,
        deliveries,
    };
    Ok(html(StatusCode::OK, &page))
}

impl DeliveriesPage {
    /// When, for the template (`None` shows nothing).
    fn shown(&self, at: Option<time::OffsetDateTime>) -> String {
        at.map(when).unwrap_or_default()
    }
}
