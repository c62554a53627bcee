//! OAuth on the dashboard: the consent page a connector sends a member to, the OAuth Clients
//! page where owners and admins register connectors, see what each holds and remove unknown
//! ones, and every member's own connections (remembered consents), which they can revoke.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use knowmind_api::{Connection, OAuthClient, RegisterClient, Registration};
use token_core::{Scope, Scopes};
use token_store::{AuthorizationRequest, Consent, redirect_host, requested_scopes};

use crate::api::AppState;

use super::render::{html, when, when_or};
use super::{Chrome, PageError, Viewer};

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), as the query
/// of the consent page and as the hidden fields of its form.
#[derive(serde::Deserialize, Default)]
pub(super) struct AuthorizeParams {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    /// The member's answer (form only): `approve` or `deny`.
    #[serde(default)]
    decision: String,
}

#[derive(Template)]
#[template(path = "oauth_consent.html")]
struct ConsentPage {
    chrome: Chrome,
    client: OAuthClient,
    verified: bool,
    redirect_host: String,
    scopes: Vec<(&'static str, &'static str)>,
    workspace: String,
    params: AuthorizeParams,
    scope_text: String,
}

/// An error page that does not redirect: the client or its redirect URI cannot be trusted.
fn refuse(message: impl Into<String>) -> PageError {
    PageError::Status(StatusCode::BAD_REQUEST, message.into())
}

/// The client's redirect URI with the answer's parameters, and `iss` (RFC 9207).
fn redirect_to(uri: &str, answer: &[(&str, &str)], state: &str, issuer: &str) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return refuse("The connector's redirect address is not valid.").into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in answer {
            query.append_pair(key, value);
        }
        if !state.is_empty() {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

/// Checks an authorization request: first what makes a redirect unsafe (unknown client,
/// unregistered redirect URI: an error page), then what is told to the client by redirect
/// (the inner `Err`: the redirect to send).
async fn checked_request(
    app: &AppState,
    params: &AuthorizeParams,
    issuer: &str,
) -> Result<Result<(OAuthClient, AuthorizationRequest), Response>, PageError> {
    if params.client_id.is_empty() {
        return Err(refuse(
            "The connector did not say who it is (no client_id).",
        ));
    }
    if params.redirect_uri.is_empty() {
        // Required here, so that the token request's (also required) can be compared to it.
        return Err(refuse(
            "The connector did not say where to send you back (no redirect_uri).",
        ));
    }
    let redirect_uri = params.redirect_uri.clone();
    let client = match app
        .store
        .authorization_client(&params.client_id, &redirect_uri)
        .await
    {
        Ok(client) => client,
        Err(token_store::Error::OAuth { description, .. }) => {
            return Err(refuse(format!(
                "This authorization request cannot be trusted: {description}. Nothing was \
                 sent back to the connector."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let back = |error: &str, description: &str| {
        Ok(Err(redirect_to(
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            &params.state,
            issuer,
        )))
    };
    if params.response_type != "code" {
        return back(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if params.code_challenge.is_empty() || params.code_challenge_method != "S256" {
        return back(
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        );
    }
    let scopes = match requested_scopes(&params.scope) {
        Ok(scopes) if scopes.is_empty() => client.scopes,
        Ok(scopes) if client.scopes.grants(scopes) => scopes,
        Ok(_) => return back("invalid_scope", "more scopes than the client registered"),
        Err(token_store::Error::OAuth { description, .. }) => {
            return back("invalid_scope", &description);
        }
        Err(e) => return Err(e.into()),
    };
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scopes,
        code_challenge: params.code_challenge.clone(),
    };
    Ok(Ok((client, request)))
}

fn describe(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read your workspace's data",
        Scope::Write => "create, change and delete your workspace's data",
        _ => "",
    }
}

/// `GET /dashboard/oauth/authorize`: the consent page (or, with a remembered consent that
/// covers the request, straight back to the connector with a code).
pub(super) async fn consent(
    State(app): State<AppState>,
    viewer: Result<Viewer, PageError>,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Result<Response, PageError> {
    let issuer = app.base_url(&headers);
    let (client, request) = match checked_request(&app, &params, &issuer).await? {
        Ok(checked) => checked,
        Err(told_by_redirect) => return Ok(told_by_redirect),
    };
    let viewer = viewer?; // sign in first, then come back here
    if client.workspace_id != viewer.workspace() {
        return Err(PageError::Status(
            StatusCode::FORBIDDEN,
            "This connector is registered in another workspace than the one you are signed in to."
                .into(),
        ));
    }
    let member = &viewer.signed_in.member;
    // A remembered consent answers at once only for a client that can prove who it is (a
    // secret) and whose answers go to an https address: anyone can present a public client's
    // id, and a loopback or app-scheme redirect reaches whatever program listens there (RFC
    // 6749 §10.2, RFC 8252 §8.6). Those ask every time.
    let provable = client.confidential && request.redirect_uri.starts_with("https://");
    if provable
        && app
            .store
            .remembered_consent(&client.id, &member.id, request.scopes)
            .await?
    {
        return answer(
            &app,
            &viewer,
            &request,
            Consent::Approve,
            &params.state,
            &issuer,
        )
        .await;
    }
    let workspace = app.store.get_workspace(viewer.workspace()).await?.name;
    let page = ConsentPage {
        chrome: Chrome::of(&viewer, "Connect an application", ""),
        verified: client.registration == Registration::Admin,
        redirect_host: redirect_host(&request.redirect_uri),
        scopes: request
            .scopes
            .iter()
            .map(|s| (s.as_str(), describe(s)))
            .collect(),
        scope_text: scope_words(request.scopes),
        workspace,
        params: AuthorizeParams {
            redirect_uri: request.redirect_uri.clone(),
            ..params
        },
        client,
    };
    let mut response = html(StatusCode::OK, &page);
    // The form posts here, and the answer redirects to the connector: allow that target as a
    // form action (browsers apply form-action to the redirect too).
    if let Some(source) = form_source(&request.redirect_uri)
        && let Ok(csp) = HeaderValue::from_str(&super::headers::csp_with_form_action(&source))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(response)
}

/// The CSP source of a redirect URI: its origin, or its scheme for a private-use one.
fn form_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let origin = url.origin();
    let source = if origin.is_tuple() {
        origin.ascii_serialization()
    } else {
        format!("{}:", url.scheme())
    };
    source
        .chars()
        .all(|c| c.is_ascii_graphic() && c != ';' && c != ',' && c != '\'')
        .then_some(source)
}

fn scope_words(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `POST /dashboard/oauth/authorize`: the member's answer.
pub(super) async fn decide(
    State(app): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(params): Form<AuthorizeParams>,
) -> Result<Response, PageError> {
    let issuer = app.base_url(&headers);
    let (_, request) = match checked_request(&app, &params, &issuer).await? {
        Ok(checked) => checked,
        Err(told_by_redirect) => return Ok(told_by_redirect),
    };
    let consent = match params.decision.as_str() {
        "approve" => Consent::Approve,
        "deny" => Consent::Deny,
        _ => return Err(refuse("Choose Allow or Deny.")),
    };
    answer(&app, &viewer, &request, consent, &params.state, &issuer).await
}

async fn answer(
    app: &AppState,
    viewer: &Viewer,
    request: &AuthorizationRequest,
    consent: Consent,
    state: &str,
    issuer: &str,
) -> Result<Response, PageError> {
    match app
        .store
        .answer_authorization(&viewer.signed_in.member, request, consent, &viewer.context)
        .await
    {
        Ok(Some(code)) => Ok(redirect_to(
            &request.redirect_uri,
            &[("code", code.expose_secret())],
            state,
            issuer,
        )),
        Ok(None) => Ok(redirect_to(
            &request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the member denied the request"),
            ],
            state,
            issuer,
        )),
        Err(token_store::Error::OAuth { error, description }) => Ok(redirect_to(
            &request.redirect_uri,
            &[("error", error), ("error_description", &description)],
            state,
            issuer,
        )),
        Err(e) => Err(e.into()),
    }
}

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

/// Escapes text for the few places that build markup by hand (a last-use address beside a
/// `<time>`).
fn askama_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "oauth_clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientRow>,
    registered: Option<(String, String)>,
    error: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
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
pub(super) async fn clients(
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
pub(super) struct RegisterForm {
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
pub(super) async fn register(
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

struct ConnectionRow {
    connection: Connection,
    member: String,
    scopes: String,
    created: String,
    last_used: String,
}

fn connection_rows(connections: Vec<Connection>, names: &[(String, String)]) -> Vec<ConnectionRow> {
    connections
        .into_iter()
        .map(|c| ConnectionRow {
            member: names
                .iter()
                .find(|(id, _)| *id == c.member_id)
                .map_or_else(|| c.member_id.clone(), |(_, name)| name.clone()),
            scopes: scope_words(c.scopes),
            created: when(c.created_at),
            last_used: when_or(c.last_used_at, "never"),
            connection: c,
        })
        .collect()
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
pub(super) async fn client(
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
pub(super) struct RemoveForm {
    #[serde(default)]
    reason: String,
}

/// `POST /dashboard/oauth/clients/{id}/remove`.
pub(super) async fn remove(
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

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    chrome: Chrome,
    connections: Vec<ConnectionRow>,
}

/// `GET /dashboard/connections`: the applications the signed-in member connected.
pub(super) async fn connections(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let member = &viewer.signed_in.member;
    let list = app
        .store
        .list_connections(viewer.workspace(), Some(&member.id), None, false)
        .await?;
    let names = [(member.id.clone(), member.name.clone())];
    let notice = (done.done == "revoked")
        .then(|| "The connection is revoked; the application's tokens stopped working.".to_owned());
    let page = ConnectionsPage {
        chrome: Chrome::of(&viewer, "Connected applications", "connections").with_notice(notice),
        connections: connection_rows(list, &names),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /dashboard/connections/{id}/revoke`: a member revokes their own connection; an admin
/// any in the workspace.
pub(super) async fn revoke_connection(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let only = (!viewer.signed_in.is_admin()).then(|| viewer.signed_in.member.id.clone());
    let connection = app
        .store
        .revoke_connection(viewer.workspace(), &id, only.as_deref(), &viewer.context)
        .await?;
    let back = if connection.member_id == viewer.signed_in.member.id {
        "/dashboard/connections?done=revoked".to_owned()
    } else {
        format!("/dashboard/oauth/clients/{}", connection.client_id)
    };
    Ok(Redirect::to(&back).into_response())
}
