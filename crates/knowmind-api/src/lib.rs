//! knowmind's data on the wire: the records the API returns and the requests it takes, with their
//! JSON form. The server answers with these types, `token-store` and `audit` hold their data in
//! them, and the CLI reads responses into them — so a change of shape is a compile error
//! everywhere at once, not a surprise at run time. No I/O, no database: a client can depend on
//! this crate alone.
//!
//! ```
//! use knowmind_api::{Page, TokenState};
//!
//! let page: Page<serde_json::Value> = serde_json::from_str(r#"{"items":[],"next_cursor":null}"#)?;
//! assert!(page.items.is_empty() && page.next_cursor.is_none());
//! assert_eq!("revoked".parse::<TokenState>()?, TokenState::Revoked);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod error;
mod incidents;
mod introspection;
mod oauth;
mod page;
mod problem;
mod queries;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod text;
mod tokens;
mod usage;
mod webhooks;
mod workspace;

pub use audit::{
    Action, Break, BreakReason, ChainReport, Checkpoint, Event, Outcome, WorkspaceChainReport,
};
pub use error::UnknownValue;
pub use incidents::{
    Incident, IncidentEntry, IncidentReport, IncidentStatus, IncidentToken, OpenIncident,
    OpenedIncident, RecordedEntry,
};
pub use introspection::{Introspection, IntrospectionRequest};
pub use oauth::{
    Connection, OAuthClient, RegisterClient, RegisteredClient, Registration, RemoveClient,
};
pub use page::{Page, cursor_number};
pub use problem::Problem;
pub use queries::{
    DueFilter, ExportEvents, ListAnomalies, ListEvents, ListTokens, PageQuery, RevokeToken,
    StateFilter, VerifyEvents,
};
pub use tokens::{
    CreateToken, HandoverState, Issued, Origin, Principal, Relative, ReportedCredentials, Revoked,
    RotateToken, TokenDetail, TokenRecord, TokenState, UpdateToken,
};
pub use usage::{
    Anomaly, AnomalyKind, IpUse, RouteUse, Severity, StoredUsage, Usage, UsageOutcome,
    UsageRecordView, UsageSummary,
};
pub use webhooks::{Delivery, DeliveryAttempt, DeliveryState, NewWebhook, Webhook, WebhookCreated};
pub use workspace::{
    Member, PolicyAction, PolicyCheck, PolicyFinding, PolicyPreset, ReuseDetection, Role,
    RoleScopes, Workspace, WorkspacePolicy,
};

/// Implements `as_str`, `Display` and `FromStr` for a field-less enum whose serde names are
/// `snake_case`, from one list of names.
macro_rules! named {
    ($name:ident, $field:literal, { $($variant:ident => $text:literal,)* }) => {
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownValue;

            fn from_str(s: &str) -> Result<Self, $crate::UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::UnknownValue::new($field, $name::ALL.iter().map(|v| v.as_str())))
            }
        }
    };
}
pub(crate) use named;
