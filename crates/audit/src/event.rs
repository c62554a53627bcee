//! What an audit event records: who did what to which target, from where, with what outcome.

use std::fmt;
use std::net::IpAddr;

use token_core::TokenId;

use knowmind_api::{Action, Event, Outcome};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Actor {
    /// knowmind itself (bootstrap, expiry jobs).
    #[default]
    System,
    /// A workspace member, by member id.
    Member(String),
    /// A request authenticated with a token, by token id.
    Token(TokenId),
    /// Someone with shell access on the server's machine, through a local command of
    /// `knowmind-server` (such as `admin-token`), not through the API.
    Operator,
    /// An OAuth client (connector), by client id, at the OAuth endpoints.
    Client(String),
}

impl Actor {
    /// `system`, `member`, `token`, `operator` or `client`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::System => "system",
            Actor::Member(_) => "member",
            Actor::Token(_) => "token",
            Actor::Operator => "operator",
            Actor::Client(_) => "client",
        }
    }

    /// The member or token id; `None` for the system.
    pub fn id(&self) -> Option<String> {
        match self {
            Actor::System | Actor::Operator => None,
            Actor::Member(id) | Actor::Client(id) => Some(id.clone()),
            Actor::Token(id) => Some(id.to_string()),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "{}:{id}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// Where a change came from: the actor and the request that carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Who acted.
    pub actor: Actor,
    /// The client's address, as the server determined it.
    pub client_ip: Option<IpAddr>,
    /// The client's `User-Agent`, shortened to 256 characters when stored.
    pub user_agent: Option<String>,
    /// The request id, for correlating with server logs.
    pub request_id: Option<String>,
}

impl Context {
    /// A change made by knowmind itself, outside any request.
    pub fn system() -> Self {
        Context::default()
    }

    /// A change made by `actor`, outside any request.
    pub fn of(actor: Actor) -> Self {
        Context {
            actor,
            ..Context::default()
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The workspace it concerns, if any.
    pub workspace_id: Option<String>,
    /// What happened.
    pub action: Action,
    /// The kind of thing acted on: `token`, `member`, `workspace`.
    pub target_kind: Option<&'static str>,
    /// Its id.
    pub target_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Anything else worth keeping, as JSON. Never a secret or hash.
    pub details: serde_json::Value,
}

impl NewEvent {
    /// A successful `action` on a token.
    pub fn on_token(workspace_id: &str, action: Action, token: TokenId) -> Self {
        NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action,
            target_kind: Some("token"),
            target_id: Some(token.to_string()),
            outcome: Outcome::Success,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The same event with `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The hash `event` must carry, by its `hash_version`: SHA-256 (1), or HMAC-SHA-256 under `key`
/// (2; `None` without the key). For tools that check an exported log.
pub fn expected_hash(event: &Event, key: Option<&crate::AuditKey>) -> Option<String> {
    crate::chain::event_hash(event, key)
}

/// Control and format characters (bidi overrides, zero-width characters, line separators) are
/// dropped: a user agent or a route a client chose must not display as something else in a
/// security log.
pub(crate) fn bounded(text: Option<&str>, max_chars: usize) -> Option<String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    text.map(|t| {
        // Printable ASCII (nearly every user agent and route) needs no category lookup, which
        // was the usage writer's largest single cost under load.
        if t.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return t[..t.len().min(max_chars)].to_owned();
        }
        t.chars()
            .filter(|c| {
                !c.is_control()
                    && !matches!(
                        c.general_category(),
                        GeneralCategory::Format
                            | GeneralCategory::LineSeparator
                            | GeneralCategory::ParagraphSeparator
                    )
            })
            .take(max_chars)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn client_text_is_shortened_and_cleaned() {
        assert_eq!(
            bounded(Some("curl\u{202E}8\u{200B}/\u{2028}x\u{1b}[31m"), 100).as_deref(),
            Some("curl8/x[31m")
        );
        assert_eq!(bounded(Some("abcdef"), 3).as_deref(), Some("abc"));
        assert_eq!(
            bounded(Some("ab\u{7f}cdef"), 3).as_deref(),
            Some("abc"),
            "DEL is a control"
        );
        assert_eq!(bounded(Some("abc"), 10).as_deref(), Some("abc"));
        assert_eq!(bounded(None, 3), None);
    }
}
