//! OAuth on the dashboard: the consent page a connector sends a member to, the OAuth Clients
//! page where owners and admins register connectors, see what each holds and remove unknown
//! ones, and every member's own connections (remembered consents), which they can revoke.

mod clients;
mod connections;
mod consent;

use knowmind_api::Connection;
use token_core::{Scope, Scopes};

use crate::web::render::{when, when_or};

pub(super) use self::clients::{client, clients, register, remove};
pub(super) use self::connections::{connections, revoke_connection};
pub(super) use self::consent::{consent, decide};

fn scope_words(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
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

#[derive(serde::Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}
