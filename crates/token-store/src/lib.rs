//! knowmind token storage and verification, for embedding in Rust services.
//!
//! A [`Store`] opens a database from a URL — a SQLite file by default, PostgreSQL (feature
//! `postgres`) when several instances share the load — runs its migrations, and then:
//!
//! - manages workspaces, members and tokens: create (the plaintext is returned exactly once),
//!   get, list with filters and cursor paging, update, revoke (idempotent), rotate (with an
//!   optional grace period, in one transaction, keeping the old→new link);
//! - records every change in the tamper-evident audit log **in the same transaction** (see the
//!   `audit` crate): if the event cannot be written, the change does not happen;
//! - verifies presented tokens ([`Store::verify`]): parse, cache, one indexed lookup, scrypt on a
//!   bounded pool, expiry and scope — and writes a usage record for every verification of a known
//!   token.
//!
//! Refusals are one error kind, [`Error::Unauthorized`], whatever the reason; the precise
//! [`Refusal`] is for logs and usage records.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), token_store::Error> {
//! use audit::Context;
//! use token_core::{HashParams, Scope, Scopes};
//! use token_store::{Call, NewMember, NewToken, Role, Store, StoreOptions};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("knowmind.db");
//! # let path = path.to_str().unwrap();
//! let store = Store::open(path, StoreOptions::default()).await?;
//! let owner = NewMember { name: "Ada".into(), email: "ada@example.org".into(), role: Role::Owner };
//! let (workspace, ada) = store.create_workspace("acme", owner, &Context::system()).await?;
//!
//! let new = NewToken {
//!     owner_id: ada.id.clone(),
//!     name: "laptop".into(),
//!     description: String::new(),
//!     client: "ada's laptop".into(),
//!     scopes: Scope::Read.into(),
//!     expires_at: None,
//!     allowed_networks: Default::default(),
//! };
//! let (record, token) = store.create_token(&workspace.id, new, &Context::system()).await?;
//! // Show token.expose_secret() to Ada once. Later, a request presents it:
//! let call = Call { method: "GET".into(), route: "/v1/notes".into(), ..Call::default() };
//! let verified = store.verify(token.expose_secret(), Scope::Read.into(), &call).await?;
//! assert_eq!(verified.principal().token_id, record.id);
//! verified.finish(200);
//!
//! let refused = store.verify(token.expose_secret(), Scope::Write.into(), &call).await;
//! assert!(matches!(refused, Err(token_store::Error::Forbidden { .. })));
//! # store.close().await;
//! # Ok(()) }
//! ```

mod accounts;
mod cache;
mod canary;
mod clock;
mod error;
mod family;
mod handover;
mod hash_pool;
mod incidents;
mod leaks;
mod limiter;
mod listener;
mod model;
mod names;
mod oauth;
mod options;
mod policy;
mod rehash;
mod rows;
mod sealed;
mod store;
mod sync;
#[cfg(feature = "test-util")]
pub mod testing;
mod tokens;
mod validate;
mod verify;
mod webhooks;
mod workspaces;

pub use accounts::{
    BearerSecret, ENROLMENT_LIFETIME, Enrolment, Session, SessionOptions, SignedIn, TotpSetup,
    check_strength,
};
pub use cache::SharedPrincipal;
pub use clock::SystemClock;
pub use error::{Error, Refusal, StorageError};
pub use handover::HandoverSweep;
pub use incidents::NOTIFICATION_DEADLINE;
pub use leaks::LeakReport;
pub use limiter::{FailureLimiter, Source};
pub use model::{
    Call, Handover, Member, MemberUpdate, NewMember, NewToken, Origin, Page, Principal, ROTATED,
    Reach, ReuseDetection, Revocation, Revoked, Role, Rotation, Standing, TokenCounts, TokenFilter,
    TokenRecord, TokenState, TokenUpdate, Workspace, WorkspacePolicy, state_at,
};
pub use oauth::{
    ACCESS_LIFETIME, AuthorizationRequest, CODE_LIFETIME, ClientCredentials, Consent, GRANTABLE,
    IssuedTokens, REFRESH_LIFETIME, RefreshState, redirect_host, requested_scopes,
};
pub use options::StoreOptions;
pub use store::Store;
pub use verify::Verified;
pub use webhooks::{
    ClaimedDelivery, DEFAULT_EVENTS, DeliveryOutcome, verify_signature, webhook_address_allowed,
};
