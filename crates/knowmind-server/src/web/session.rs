//! Who is signed in: the session cookie, the [`Viewer`] extractor, and the pre-session cookie
//! that carries the anti-CSRF token of the sign-in and enrolment forms.
//!
//! Both cookies are `__Host-` prefixed (the browser accepts them only with `Secure`, `Path=/`
//! and no `Domain`, so no sibling host can plant or read them), `HttpOnly` and `SameSite=Lax`.
//! Browsers treat `http://localhost` and `127.0.0.1` as secure, so the cookies work there too;
//! anywhere else the dashboard must be served over HTTPS.

use audit::{Actor, Context};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use token_store::{BearerSecret, SignedIn};

use crate::api::AppState;

use super::PageError;

/// The session cookie: the session's 256-bit secret.
pub(super) const SESSION_COOKIE: &str = "__Host-knowmind-session";
/// The pre-session cookie: the anti-CSRF token of forms shown before sign-in.
pub(super) const FORM_COOKIE: &str = "__Host-knowmind-form";

/// A signed-in request: the member, their session, the anti-CSRF token their forms carry, and
/// the audit context of what they do.
pub(crate) struct Viewer {
    pub(crate) signed_in: SignedIn,
    pub(crate) csrf: String,
    pub(crate) context: Context,
}

impl Viewer {
    /// Refuses unless the viewer is an owner or admin.
    pub(crate) fn require_admin(&self) -> Result<(), PageError> {
        if self.signed_in.is_admin() {
            Ok(())
        } else {
            Err(PageError::forbidden())
        }
    }

    pub(crate) fn workspace(&self) -> &str {
        &self.signed_in.member.workspace_id
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PageError> {
        let back = || PageError::SignIn {
            // The path as the browser asked for it (inside `nest`, `uri` lacks the prefix).
            next: if parts.method == axum::http::Method::GET {
                parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or(&parts.uri, |original| &original.0)
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            },
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE).and_then(BearerSecret::parse)
        else {
            return Err(back());
        };
        let signed_in = match app.store.session(&secret).await {
            Ok(signed_in) => signed_in,
            Err(token_store::Error::NotSignedIn) => {
                // Half signed in (the code is still to come): finish that, keeping the cookie.
                if app.store.pending_session(&secret).await.is_ok() {
                    return Err(PageError::Redirect("/dashboard/sign-in/code".into()));
                }
                return Err(back());
            }
            Err(e) => return Err(e.into()),
        };
        // A workspace that requires a second factor lets its members without one reach only
        // their account page (to set it up) and sign-out.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(parts.uri.path(), |original| original.0.path());
        if signed_in.must_add_second_factor()
            && !path.starts_with("/dashboard/account")
            && path != "/dashboard/sign-out"
        {
            return Err(PageError::Redirect(
                "/dashboard/account?done=required#second-factor".into(),
            ));
        }
        let context = Context {
            actor: Actor::Member(signed_in.member.id.clone()),
            ..request_context(parts, app)
        };
        Ok(Viewer {
            csrf: secret.csrf_token(),
            signed_in,
            context,
        })
    }
}

/// The audit context of a request from someone not (yet) signed in.
pub(super) fn request_context(parts: &Parts, app: &AppState) -> Context {
    let peer = knowmind_axum::peer_ip(&parts.extensions);
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Context {
        actor: Actor::System,
        client_ip: app.guard.client_ip(&parts.headers, peer),
        user_agent: text("user-agent"),
        request_id: text("x-request-id"),
    }
}

/// The value of cookie `name`, if the request has it.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a session (no `Max-Age`: the server decides when it ends).
pub(super) fn session_cookie(secret: &BearerSecret) -> HeaderValue {
    set_cookie(SESSION_COOKIE, secret.expose_secret(), None)
}

/// `Set-Cookie` that deletes the session cookie.
pub(crate) fn clear_session_cookie() -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", Some(0))
}

/// The pre-session form token of this request, or a new one with the `Set-Cookie` that
/// plants it.
pub(super) fn form_token(headers: &HeaderMap) -> Result<(String, Option<HeaderValue>), PageError> {
    if let Some(existing) = cookie(headers, FORM_COOKIE).and_then(BearerSecret::parse) {
        return Ok((existing.expose_secret().to_owned(), None));
    }
    let fresh = token_store::BearerSecret::random().map_err(PageError::from)?;
    let value = fresh.expose_secret().to_owned();
    Ok((
        value.clone(),
        Some(set_cookie(FORM_COOKIE, &value, Some(3_600))),
    ))
}

fn set_cookie(name: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    // Cookie values here are hex or empty: always a valid header value.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}
