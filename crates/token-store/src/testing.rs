//! Test fixtures shared by the knowmind crates (feature `test-util`): a store with cheap hashing
//! on a clock the test moves, and a workspace "acme" owned by Ada, with a way to issue tokens.
//! One fixture for the store's, the server's and the CLI's suites and the benches.

use std::sync::Arc;

use audit::Context;
use knowmind_db::Db;
use time::OffsetDateTime;
use time::macros::datetime;
use token_core::{HashParams, ManualClock, Scope, Scopes, Token};

use crate::{Error, NewMember, NewToken, Role, Store, StoreOptions, TokenRecord};

pub use crate::accounts::app_code;

/// The moment every fixture's clock starts at.
pub const T0: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

/// Store options for tests: deliberately cheap scrypt parameters, the given clock, and a fresh
/// audit key (as the server always has one).
pub fn options(clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        hash_params: HashParams::insecure_for_tests(),
        clock: clock.clone(),
        audit_key: audit::AuditKey::generate().ok().map(Arc::new),
        // Tests deliver webhooks to receivers on 127.0.0.1.
        webhook_allow_internal: true,
        ..StoreOptions::default()
    }
}

/// A store with a workspace "acme" owned by Ada.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The store.
    pub store: Store,
    /// Its clock, stopped at [`T0`] until the test moves it.
    pub clock: Arc<ManualClock>,
    /// The workspace's id.
    pub workspace: String,
    /// Ada's member id: the owner.
    pub owner: String,
}

impl Fixture {
    /// The fixture on `db` (migrated here), with `options` adjusted from [`options`].
    ///
    /// # Errors
    /// If the database fails.
    pub async fn on(
        db: Db,
        adjust: impl FnOnce(StoreOptions) -> StoreOptions,
    ) -> Result<Fixture, Error> {
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::with_db(db, adjust(options(&clock))).await?;
        let ada = NewMember {
            name: "Ada".into(),
            email: "ada@example.org".into(),
            role: Role::Owner,
        };
        let (workspace, owner) = store
            .create_workspace("acme", ada, &Context::system())
            .await?;
        Ok(Fixture {
            store,
            clock,
            workspace: workspace.id,
            owner: owner.id,
        })
    }

    /// A token for Ada with `scopes`, named `name`, issued by the system.
    ///
    /// # Errors
    /// If issuing fails.
    pub async fn issue(&self, name: &str, scopes: &[Scope]) -> Result<(TokenRecord, Token), Error> {
        self.issue_expiring(name, scopes, None).await
    }

    /// The same, expiring at `expires_at`.
    ///
    /// # Errors
    /// If issuing fails.
    pub async fn issue_expiring(
        &self,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(TokenRecord, Token), Error> {
        let new = NewToken {
            owner_id: self.owner.clone(),
            name: name.into(),
            description: format!("{name} token"),
            client: "laptop".into(),
            scopes: Scopes::of(scopes),
            expires_at,
            allowed_networks: Default::default(),
        };
        self.store
            .create_token(&self.workspace, new, &Context::system())
            .await
    }
}
