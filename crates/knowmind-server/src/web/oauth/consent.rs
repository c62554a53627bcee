//! The consent page a connector sends a member to, and the member's answer.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use knowmind_api::{OAuthClient, Registration};
use token_core::Scope;
use token_store::{AuthorizationRequest, Consent, redirect_host, requested_scopes};

use super::scope_words;
use crate::api::AppState;

use crate::web::render::html;
use crate::web::{Chrome, PageError, Viewer};

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), as the query
/// of the consent page and as the hidden fields of its form.
#[derive(serde::Deserialize, Default)]
pub(in crate::web) struct AuthorizeParams {
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
pub(in crate::web) async fn consent(
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
        && let Ok(csp) = HeaderValue::from_str(&crate::web::headers::csp_with_form_action(&source))
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

/// `POST /dashboard/oauth/authorize`: the member's answer.
pub(in crate::web) async fn decide(
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
