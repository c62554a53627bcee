//! The OAuth Clients pages: owners and admins register connectors, see what each holds and
//! remove unknown ones.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use knowmind_api::{OAuthClient, RegisterClient, Registration};
use token_core::{Scope, Scopes};
use token_store::redirect_host;

use super::{ConnectionRow, Done, askama_escape, connection_rows, scope_words};
use crate::api::AppState;

use crate::web::render::{html, when};
use crate::web::{Chrome, PageError, Viewer};

struct ClientRow {
    client: OAuthClient,
    verified: bool,
    hosts: String,
    scopes: String,
    created: String,
    last_used: String,
    stands_out: Option<&'static str>,
}

fn client_row(client: OAuthClient) -> ClientRow {
    let verified = client.registration == Registration::Admin;
    let stands_out = if client.removed_at.is_some() {
        None
    } else if !verified && !client.ever_approved {
        Some("self-registered and never approved")
    } else if !verified {
        Some("self-registered")
    } else if !client.ever_approved && !client.client_credentials {
        Some("never approved")
    } else {
        None
    };
    let mut hosts: Vec<String> = client
        .redirect_uris
        .iter()
        .map(|u| redirect_host(u))
        .collect();
    hosts.dedup();
    ClientRow {
        verified,
        hosts: hosts.join(", "),
        scopes: scope_words(client.scopes),
        created: when(client.created_at),
        last_used: match (&client.last_used_at, &client.last_used_ip) {
            (Some(at), Some(ip)) => format!("{} from {}", when(*at), askama_escape(ip)),
            (Some(at), None) => when(*at),
            _ => "never".to_owned(),
        },
        stands_out,
        client,
    }
}

#[derive(Template)]
#[template(path = "oauth_clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientRow>,
    registered: Option<(String, String)>,
    error: Option<String>,
}

async fn clients_page(
    app: &AppState,
    viewer: &Viewer,
    registered: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<ClientsPage, PageError> {
    let clients = app.store.list_clients(viewer.workspace(), true).await?;
    Ok(ClientsPage {
        chrome: Chrome::of(viewer, "OAuth clients", "oauth").with_notice(notice),
        clients: clients.into_iter().map(client_row).collect(),
        registered,
        error,
    })
}

/// `GET /dashboard/oauth/clients`.
pub(in crate::web) async fn clients(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let notice = (done.done == "removed")
        .then(|| "The client is removed: every connection and token of it is revoked.".to_owned());
    Ok(html(
        StatusCode::OK,
        &clients_page(&app, &viewer, None, None, notice).await?,
    ))
}

#[derive(serde::Deserialize)]
pub(in crate::web) struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    write: Option<String>,
    #[serde(default)]
    confidential: Option<String>,
    #[serde(default)]
    client_credentials: Option<String>,
}

/// `POST /dashboard/oauth/clients`: an admin registers a connector; its secret is shown once.
pub(in crate::web) async fn register(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let mut scopes = Scopes::default();
    if form.read.is_some() {
        scopes.insert(Scope::Read);
    }
    if form.write.is_some() {
        scopes.insert(Scope::Write);
    }
    let new = RegisterClient {
        name: form.name,
        redirect_uris: form
            .redirect_uris
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        scopes,
        confidential: form.confidential.is_some() || form.client_credentials.is_some(),
        client_credentials: form.client_credentials.is_some(),
    };
    match app
        .store
        .register_client(
            viewer.workspace(),
            &viewer.signed_in.member.id,
            new,
            &viewer.context,
        )
        .await
    {
        Ok(registered) => {
            let shown = (
                registered.client.id.clone(),
                registered.client_secret.unwrap_or_default(),
            );
            let page = clients_page(&app, &viewer, Some(shown), None, None).await?;
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(token_store::Error::OAuth { description, .. }) => {
            let page = clients_page(&app, &viewer, None, Some(description), None).await?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// One of a client's access tokens, linking to its security log.
struct ClientToken {
    id: String,
    member: String,
    issued: String,
    state: &'static str,
    last_used: String,
}

#[derive(Template)]
#[template(path = "oauth_client.html")]
struct ClientPage {
    chrome: Chrome,
    row: ClientRow,
    connections: Vec<ConnectionRow>,
    tokens: Vec<ClientToken>,
    registered_by: String,
}

/// `GET /dashboard/oauth/clients/{id}`: one client, its connections, and removal.
pub(in crate::web) async fn client(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let client = app.store.get_client(viewer.workspace(), &id).await?;
    let members: Vec<(String, String)> = app
        .store
        .list_members(viewer.workspace())
        .await?
        .into_iter()
        .map(|m| (m.id, format!("{} <{}>", m.name, m.email)))
        .collect();
    let connections = app
        .store
        .list_connections(viewer.workspace(), None, Some(&id), true)
        .await?;
    let registered_by = client.registered_by.as_ref().map_or_else(
        || "itself (dynamic registration)".to_owned(),
        |by| {
            members
                .iter()
                .find(|(id, _)| id == by)
                .map_or_else(|| by.clone(), |(_, name)| name.clone())
        },
    );
    let tokens = app
        .store
        .client_tokens(viewer.workspace(), &id, 20)
        .await?
        .into_iter()
        .map(|t| ClientToken {
            id: t.id.to_string(),
            member: members
                .iter()
                .find(|(id, _)| *id == t.owner_id)
                .map_or_else(|| t.owner_id.clone(), |(_, name)| name.clone()),
            issued: when(t.created_at),
            state: t.state.as_str(),
            last_used: match (t.last_used_at, t.last_used_ip) {
                (Some(at), Some(ip)) => format!("{} from {}", when(at), askama_escape(&ip)),
                (Some(at), None) => when(at),
                _ => "never".to_owned(),
            },
        })
        .collect();
    let page = ClientPage {
        chrome: Chrome::of(&viewer, client.name.clone(), "oauth"),
        tokens,
        connections: connection_rows(connections, &members),
        registered_by,
        row: client_row(client),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub(in crate::web) struct RemoveForm {
    #[serde(default)]
    reason: String,
}

/// `POST /dashboard/oauth/clients/{id}/remove`.
pub(in crate::web) async fn remove(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    app.store
        .remove_client(viewer.workspace(), &id, &form.reason, &viewer.context)
        .await?;
    Ok(Redirect::to("/dashboard/oauth/clients?done=removed").into_response())
}
