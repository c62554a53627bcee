//! The members page: who is in the workspace, inviting someone (an enrolment link shown once),
//! changing a role, removing a member (which revokes their tokens). Owners and admins see it;
//! only owners make or unmake owners.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use token_store::{MemberUpdate, Role};

use crate::api::AppState;

use super::render::{html, when};
use super::{Chrome, PageError, Viewer};

struct Row {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    joined: String,
    is_self: bool,
}

struct Invite {
    email: String,
    link: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Chrome,
    members: Vec<Row>,
    can_manage: bool,
    roles: Vec<&'static str>,
    invitable: Vec<&'static str>,
    invite: Option<Invite>,
    is_owner: bool,
    second_factor_required: bool,
    error: Option<String>,
}

/// The roles `viewer` may hand out: owners any, admins admin and member.
fn grantable(viewer: &Viewer) -> Vec<&'static str> {
    if viewer.signed_in.member.role == Role::Owner {
        vec!["owner", "admin", "member"]
    } else {
        vec!["admin", "member"]
    }
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    invite: Option<Invite>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<MembersPage, PageError> {
    let members = app.store.list_members(viewer.workspace()).await?;
    Ok(MembersPage {
        chrome: Chrome::of(viewer, "Members", "members").with_notice(notice),
        members: members
            .into_iter()
            .map(|m| Row {
                is_self: m.id == viewer.signed_in.member.id,
                id: m.id,
                name: m.name,
                email: m.email,
                role: m.role.as_str(),
                joined: when(m.created_at),
            })
            .collect(),
        can_manage: true,
        roles: grantable(viewer),
        invitable: grantable(viewer),
        invite,
        is_owner: viewer.signed_in.member.role == Role::Owner,
        second_factor_required: viewer.signed_in.second_factor_required,
        error,
    })
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

pub(super) async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let notice = match done.done.as_str() {
        "role" => Some("The role is changed.".to_owned()),
        "removed" => Some("The member is removed; their tokens are revoked.".to_owned()),
        "second_factor" => Some("The two-factor requirement is saved.".to_owned()),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &page(&app, &viewer, None, None, notice).await?,
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

fn role_of(viewer: &Viewer, text: &str) -> Result<Role, String> {
    if !grantable(viewer).contains(&text) {
        return Err(format!("you cannot give the role {text:?}"));
    }
    text.parse::<Role>().map_err(|e| e.to_string())
}

pub(super) async fn invite(
    State(app): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let role = match role_of(&viewer, &form.role) {
        Ok(role) => role,
        Err(message) => {
            let page = page(&app, &viewer, None, Some(message), None).await?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    match app
        .store
        .invite(viewer.workspace(), &form.email, role, &viewer.context)
        .await
    {
        Ok((enrolment, secret)) => {
            let invite = Invite {
                link: format!(
                    "{}/dashboard/enrol/{}",
                    app.base_url(&headers),
                    secret.expose_secret()
                ),
                email: enrolment.email,
                expires: when(enrolment.expires_at),
            };
            Ok(html(
                StatusCode::CREATED,
                &page(&app, &viewer, Some(invite), None, None).await?,
            ))
        }
        Err(e @ (token_store::Error::Invalid { .. } | token_store::Error::Conflict(_))) => {
            let page = page(&app, &viewer, None, Some(e.to_string()), None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct RoleForm {
    #[serde(default)]
    role: String,
}

pub(super) async fn set_role(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let target = app.store.get_member(viewer.workspace(), &id).await?;
    // Admins cannot touch owners; nobody changes their own role here.
    if target.id == viewer.signed_in.member.id
        || (target.role == Role::Owner && viewer.signed_in.member.role != Role::Owner)
    {
        return Err(PageError::forbidden());
    }
    let role = match role_of(&viewer, &form.role) {
        Ok(role) => role,
        Err(message) => {
            let page = page(&app, &viewer, None, Some(message), None).await?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    app.store
        .update_member(
            viewer.workspace(),
            &id,
            MemberUpdate {
                role: Some(role),
                ..MemberUpdate::default()
            },
            &viewer.context,
        )
        .await?;
    Ok(Redirect::to("/dashboard/members?done=role").into_response())
}

pub(super) async fn remove(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let target = app.store.get_member(viewer.workspace(), &id).await?;
    if target.id == viewer.signed_in.member.id
        || (target.role == Role::Owner && viewer.signed_in.member.role != Role::Owner)
    {
        return Err(PageError::forbidden());
    }
    app.store
        .remove_member(viewer.workspace(), &id, &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/members?done=removed").into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct RequireForm {
    #[serde(default)]
    require: String,
}

/// Owners only: whether every member must use an authenticator app.
pub(super) async fn require_second_factor(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<RequireForm>,
) -> Result<Response, PageError> {
    if viewer.signed_in.member.role != Role::Owner {
        return Err(PageError::forbidden());
    }
    app.store
        .require_second_factor(viewer.workspace(), form.require == "on", &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/members?done=second_factor").into_response())
}
