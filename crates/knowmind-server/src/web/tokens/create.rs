//! Creating a token: the form, and the page that shows the token once.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use token_core::{Scope, Scopes};
use token_store::NewToken;

use crate::api::AppState;

use super::{ShownPage, already_submitted};
use crate::web::render::html;
use crate::web::{Chrome, PageError, Viewer};

/// What the creation form holds (kept when it is shown again with an error).
#[derive(Default)]
pub(crate) struct NewForm {
    name: String,
    client: String,
    description: String,
    scopes: Vec<String>,
    expires: String,
    allowed_networks: String,
    form_id: String,
}

impl NewForm {
    /// Reads the form's body by hand: the scope checkboxes repeat one key, which serde's form
    /// decoder cannot gather into a list. Unknown keys are ignored, like a form decoder does.
    fn parse(body: &[u8]) -> Self {
        let mut form = NewForm::default();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            match key.as_ref() {
                "name" => form.name = value,
                "client" => form.client = value,
                "description" => form.description = value,
                "scopes" => form.scopes.push(value),
                "expires" => form.expires = value,
                "allowed_networks" => form.allowed_networks = value,
                "form_id" => form.form_id = value,
                _ => {}
            }
        }
        form
    }

    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    form_id: String,
    scope_choices: Vec<(&'static str, &'static str, bool)>,
    expiries: [(&'static str, &'static str); 6],
    error: Option<String>,
}

const EXPIRIES: [(&str, &str); 6] = [
    ("7d", "in 7 days"),
    ("30d", "in 30 days"),
    ("90d", "in 90 days (recommended)"),
    ("180d", "in 180 days"),
    ("365d", "in a year"),
    ("never", "never (not recommended)"),
];

fn new_page(viewer: &Viewer, form: NewForm, error: Option<String>) -> Result<NewPage, PageError> {
    let admin = viewer.signed_in.is_admin();
    Ok(NewPage {
        chrome: Chrome::of(viewer, "New token", "tokens"),
        form,
        form_id: token_store::BearerSecret::random()?
            .expose_secret()
            .to_owned(),
        scope_choices: vec![
            ("read", "read data", true),
            ("write", "create and change data", true),
            (
                "admin",
                "manage the workspace's tokens and read its audit log",
                admin,
            ),
            (
                "introspect",
                "let a resource server check other tokens",
                true,
            ),
        ],
        expiries: EXPIRIES,
        error,
    })
}

pub(crate) async fn new(viewer: Viewer) -> Result<Response, PageError> {
    let form = NewForm {
        scopes: vec!["read".into()],
        expires: "90d".into(),
        ..NewForm::default()
    };
    Ok(html(StatusCode::OK, &new_page(&viewer, form, None)?))
}

pub(crate) async fn create(
    State(app): State<AppState>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let form = NewForm::parse(&body);
    let store = &app.store;
    let now = store.now();
    let scopes: Result<Vec<Scope>, _> = form.scopes.iter().map(|s| s.parse::<Scope>()).collect();
    let checked = match (&scopes, form.expires.as_str()) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(s), _) if s.is_empty() => Err("choose at least one scope".to_owned()),
        (Ok(_), "never") => Ok(None),
        (Ok(_), text) => token_core::parse_duration(text)
            .map(|d| Some(now + d))
            .map_err(|e| e.to_string()),
    };
    let checked = checked.and_then(|expires_at| {
        let networks = form
            .allowed_networks
            .parse::<token_core::Networks>()
            .map_err(|e| format!("Allowed networks: {e}"))?;
        Ok((expires_at, networks))
    });
    let (expires_at, allowed_networks) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            let page = new_page(&viewer, form, Some(message))?;
            return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    if !store
        .claim_form(&viewer.signed_in.member.id, &form.form_id)
        .await?
    {
        return Err(already_submitted());
    }
    let new = NewToken {
        owner_id: viewer.signed_in.member.id.clone(),
        name: form.name.clone(),
        description: form.description.clone(),
        client: form.client.clone(),
        scopes: Scopes::of(&scopes.unwrap_or_default()),
        expires_at,
        allowed_networks,
    };
    match store
        .create_token(viewer.workspace(), new, &viewer.context)
        .await
    {
        Ok((record, token)) => {
            let page = ShownPage {
                chrome: Chrome::of(&viewer, "Token created", "tokens"),
                heading: "Token created",
                record,
                secret: token.expose_secret().to_owned(),
                replaced: None,
                grace_note: String::new(),
            };
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(
            e @ (token_store::Error::Invalid { .. } | token_store::Error::PolicyViolation { .. }),
        ) => {
            let page = new_page(&viewer, form, Some(e.to_string()))?;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}
