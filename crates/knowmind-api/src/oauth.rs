//! OAuth connectors on the wire: clients, connections, and registering and removing them.

use time::OffsetDateTime;
use token_core::Scopes;

use crate::named;

/// How a client came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Registration {
    /// Registered by an owner or admin: verified.
    Admin,
    /// Registered itself (RFC 7591): unverified, whatever name it gave.
    Dynamic,
}

named!(Registration, "registration", {
    Admin => "admin",
    Dynamic => "dynamic",
});

/// An OAuth client ("connector") of a workspace, with what it holds now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthClient {
    /// `cli_` and 16 base62 characters: the `client_id`.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The name it shows on the consent page (chosen by whoever registered it).
    pub name: String,
    /// Admin-registered (verified) or self-registered (unverified).
    pub registration: Registration,
    /// The member who registered it; `null` when it registered itself.
    pub registered_by: Option<String>,
    /// Where authorization responses may go, matched exactly (a loopback URI may vary its port).
    pub redirect_uris: Vec<String>,
    /// The most it may ask for: `read`, `write` or both.
    pub scopes: Scopes,
    /// Whether it has a secret (a confidential client); public clients rely on PKCE alone.
    pub confidential: bool,
    /// Whether it may use the client credentials grant, acting as itself with the rights of
    /// the member who registered it.
    pub client_credentials: bool,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was removed; a removed client and all its tokens are refused.
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed_at: Option<OffsetDateTime>,
    /// Members with a live connection to it.
    pub connected_members: u32,
    /// Whether any member ever approved it: a client no one approved is one to look at.
    pub ever_approved: bool,
    /// Access tokens of it that are neither expired nor revoked.
    pub tokens_outstanding: u32,
    /// The last accepted call with one of its tokens.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// From where.
    pub last_used_ip: Option<String>,
}

/// `POST /v1/oauth/clients`: an admin registers a connector.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterClient {
    /// The name members see on the consent page.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::name))]
    pub name: String,
    /// Exact redirect URIs: `https://…`, or `http://127.0.0.1…`/`http://[::1]…`/`http://localhost…`
    /// for native apps (RFC 8252), or a private-use scheme (`com.example.app:/callback`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::redirect_uris))]
    pub redirect_uris: Vec<String>,
    /// The most it may ask for (`read`, `write`); `admin` and `introspect` are never granted
    /// through OAuth.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::oauth_scopes))]
    pub scopes: Scopes,
    /// Give it a secret (shown once). Required for `client_credentials`.
    #[serde(default)]
    pub confidential: bool,
    /// Let it use the client credentials grant, acting as itself with the registering
    /// member's rights (at most `scopes`).
    #[serde(default)]
    pub client_credentials: bool,
}

/// A registered client, with its secret when it has one: shown this once. `Debug` hides the
/// secret.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredClient {
    /// The client.
    #[serde(flatten)]
    pub client: OAuthClient,
    /// `kmc_…`: the client secret, shown this once; `null` for a public client.
    pub client_secret: Option<String>,
}

/// `POST /v1/oauth/clients/{id}/remove`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoveClient {
    /// Why, for the audit log (`unknown connector`, `compromised`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::reason))]
    pub reason: Option<String>,
}

/// A member's remembered consent to a client: what the client may do on their behalf until
/// the connection is revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// `con_` and 16 base62 characters.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The member who consented.
    pub member_id: String,
    /// What they allowed.
    pub scopes: Scopes,
    /// When they first consented.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the connection (and its tokens) was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub revoked_reason: Option<String>,
    /// Access tokens of it that are neither expired nor revoked.
    pub tokens_outstanding: u32,
    /// The last accepted call with one of its tokens.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client", &self.client)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}
