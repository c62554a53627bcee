//! What every page shares: the frame around it ([`Chrome`]), turning a template into a
//! response, times, and error pages.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use time::macros::format_description;

use super::session::Viewer;

/// The frame of a page: title, navigation, who is signed in, the anti-CSRF token its forms
/// carry, and a one-line notice.
pub(crate) struct Chrome {
    pub(crate) title: String,
    pub(crate) section: &'static str,
    pub(crate) viewer: Option<ViewerBar>,
    pub(crate) csrf: String,
    pub(crate) notice: Option<String>,
}

/// Who is signed in, as the navigation shows them.
pub(crate) struct ViewerBar {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) admin: bool,
}

impl Chrome {
    /// The frame of a signed-in page.
    pub(crate) fn of(viewer: &Viewer, title: impl Into<String>, section: &'static str) -> Self {
        let member = &viewer.signed_in.member;
        Chrome {
            title: title.into(),
            section,
            viewer: Some(ViewerBar {
                name: member.name.clone(),
                role: member.role.as_str(),
                admin: viewer.signed_in.is_admin(),
            }),
            csrf: viewer.csrf.clone(),
            notice: None,
        }
    }

    /// The frame of a page for someone not signed in; `csrf` is the pre-session form token.
    pub(crate) fn anonymous(title: impl Into<String>, csrf: String) -> Self {
        Chrome {
            title: title.into(),
            section: "",
            viewer: None,
            csrf,
            notice: None,
        }
    }

    /// The same with a notice (`?done=…` after a redirect).
    pub(crate) fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }
}

/// Renders `page` as an HTML response with `status`.
pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A time as `<time>`: UTC text (the script shows it in the viewer's zone), UTC in the tooltip.
/// Only ever given times, never user text, so the markup is safe to embed unescaped.
pub(crate) fn when(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let machine = utc
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = utc
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    format!(r#"<time datetime="{machine}" title="{shown}">{shown}</time>"#)
}

/// [`when`], or `fallback` for none.
pub(crate) fn when_or(t: Option<OffsetDateTime>, fallback: &str) -> String {
    t.map_or_else(|| fallback.to_owned(), when)
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message {
    pub(crate) chrome: Chrome,
    pub(crate) heading: String,
    pub(crate) message: String,
    pub(crate) link: Option<(String, String)>,
}

/// Why a page could not be shown: rendered as a short page with the right status, or — for a
/// request without a live session — a redirect to the sign-in page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Sign in first (then come back to `next`).
    SignIn { next: String },
    /// Somewhere else first (a required second factor to set up).
    Redirect(String),
    /// A status and a message for the person.
    Status(StatusCode, String),
}

impl PageError {
    pub(crate) fn not_found() -> Self {
        PageError::Status(StatusCode::NOT_FOUND, "There is nothing here.".into())
    }

    pub(crate) fn forbidden() -> Self {
        PageError::Status(
            StatusCode::FORBIDDEN,
            "Your role does not allow this. Ask an owner or admin of your workspace.".into(),
        )
    }
}

impl From<token_store::Error> for PageError {
    fn from(e: token_store::Error) -> Self {
        use token_store::Error as E;
        let status = match &e {
            E::NotFound { .. } => return PageError::not_found(),
            E::NotSignedIn => {
                return PageError::SignIn {
                    next: String::new(),
                };
            }
            E::Invalid { .. } | E::LifetimeExceeded { .. } | E::PolicyViolation { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            E::OAuth { .. } => StatusCode::BAD_REQUEST,
            E::Conflict(_) | E::NotActive { .. } | E::AlreadyRotated { .. } => StatusCode::CONFLICT,
            E::SignInRefused | E::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Busy => StatusCode::SERVICE_UNAVAILABLE,
            other => {
                tracing::error!(error = %other, "dashboard: storage failure");
                return PageError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side; nothing was changed. Try again.".into(),
                );
            }
        };
        PageError::Status(status, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                let target = if next.is_empty() {
                    "/dashboard/sign-in".to_owned()
                } else {
                    format!(
                        "/dashboard/sign-in?next={}",
                        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    )
                };
                // Whatever session cookie came with the request is dead: drop it.
                let mut response = Redirect::to(&target).into_response();
                response.headers_mut().append(
                    axum::http::header::SET_COOKIE,
                    super::session::clear_session_cookie(),
                );
                response
            }
            PageError::Redirect(target) => Redirect::to(&target).into_response(),
            PageError::Status(status, message) => {
                let heading = status
                    .canonical_reason()
                    .unwrap_or("Something went wrong")
                    .to_owned();
                let page = Message {
                    chrome: Chrome::anonymous(heading.clone(), String::new()),
                    heading,
                    message,
                    link: Some(("/dashboard/".into(), "Back to the dashboard".into())),
                };
                html(status, &page)
            }
        }
    }
}
