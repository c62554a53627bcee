//! The [`Store`]: opening the database and every state change, each with its audit event in the
//! same transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use audit::db::{Arg, Backend, Db, DbOptions, Sql, from_micros, to_micros};
use audit::{Action, Audit, AuditKey, Context, NewEvent, Outcome, UsageConfig, UsageWriter};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::{Duration, OffsetDateTime};
use token_core::rand::TryRng;
use token_core::rand::rngs::SysRng;
use token_core::{Clock, HashParams, Scopes, SystemClock, Token, TokenHash, TokenId, random_id};

use crate::cache::Cache;
use crate::error::Error;
use crate::hash_pool::HashPool;
use crate::limiter::FailureLimiter;
use crate::model::*;
use crate::validate;

/// How to open a [`Store`].
#[derive(Clone)]
pub struct StoreOptions {
    /// Connection pool settings.
    pub db: DbOptions,
    /// scrypt parameters for new hashes (stored hashes with others are upgraded on use).
    pub hash_params: HashParams,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Threads that run scrypt; at most this many hashes (16 MiB each) run at once.
    pub hash_threads: usize,
    /// Verifications that may wait for a scrypt thread; beyond that, [`Error::Busy`].
    pub hash_queue: usize,
    /// Most tokens remembered as verified.
    pub cache_capacity: usize,
    /// How long a remembered verification is trusted before the token's state is re-read from
    /// the database (revocations on other instances are seen within this bound). Zero re-reads
    /// on every request.
    pub max_staleness: Duration,
    /// The usage writer's queue, batch size and retention.
    pub usage: UsageConfig,
    /// The key of the audit chain (HMAC-SHA-256), kept outside the database. Without one, events
    /// are hashed with plain SHA-256 and anyone who can write to the database can rewrite the
    /// chain consistently; the server always sets one.
    pub audit_key: Option<Arc<AuditKey>>,
    /// Failed verifications allowed per client address (IPv6: per /64) per minute before work
    /// for the address that costs (lookups, scrypt) is refused; 0 = no limit. Cached valid
    /// tokens are always served.
    pub failures_per_minute: u32,
    /// The same for calls reported by a resource server (introspection), per introspect token.
    pub reported_failures_per_minute: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        StoreOptions {
            db: DbOptions::default(),
            hash_params: HashParams::DEFAULT,
            clock: Arc::new(SystemClock),
            hash_threads: cpus,
            hash_queue: 2 * cpus,
            cache_capacity: 100_000,
            max_staleness: Duration::SECOND,
            usage: UsageConfig::default(),
            audit_key: None,
            failures_per_minute: 20,
            reported_failures_per_minute: 300,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("db", &self.db)
            .field("hash_params", &self.hash_params)
            .field("hash_threads", &self.hash_threads)
            .field("hash_queue", &self.hash_queue)
            .field("cache_capacity", &self.cache_capacity)
            .field("max_staleness", &self.max_staleness)
            .field("usage", &self.usage)
            .field("audit_key", &self.audit_key)
            .field("failures_per_minute", &self.failures_per_minute)
            .field(
                "reported_failures_per_minute",
                &self.reported_failures_per_minute,
            )
            .finish_non_exhaustive()
    }
}

/// Tokens, members and workspaces, with verification. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) audit: Audit,
    pub(crate) params: HashParams,
    pub(crate) clock: ClockHandle,
    pub(crate) hasher: HashPool,
    pub(crate) cache: Arc<Cache>,
    pub(crate) usage: UsageWriter,
    pub(crate) max_staleness: std::time::Duration,
    pub(crate) usage_retention: Duration,
    pub(crate) notify_channel: String,
    pub(crate) address_limiter: FailureLimiter,
    pub(crate) reporter_limiter: FailureLimiter,
    /// When each revoked token was last reported as reused by its holder (monotonic), to report
    /// it once a minute at most.
    pub(crate) reuse_reported: Mutex<HashMap<TokenId, std::time::Duration>>,
    /// Background tasks (revocation listener and sync), stopped with the store.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct ClockHandle(pub(crate) Arc<dyn Clock>);

impl std::fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Store {
    /// Opens (and migrates) the database at `url`: a SQLite file path or `sqlite:` URL, or a
    /// `postgres://` URL. Starts the usage writer and, on PostgreSQL, the revocation listener, on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Storage`] if the database cannot be opened or migrated;
    /// [`Error::Invalid`] for unusable options.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, Error> {
        let db = Db::connect(url, &options.db).await?;
        Store::with_db(db, options).await
    }

    /// Like [`Store::open`], on a database that is already connected.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn with_db(db: Db, options: StoreOptions) -> Result<Store, Error> {
        audit::migrate(&db).await?;
        db.migrate(
            &sqlx::migrate!("migrations/sqlite"),
            &sqlx::migrate!("migrations/postgres"),
        )
        .await?;
        let mut key = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut key)
            .map_err(|_| Error::System("the operating system's random generator failed"))?;
        let cache = Arc::new(Cache::new(options.cache_capacity, key));
        let notify_channel = format!("knowmind_tokens_{}", db.schema().unwrap_or("public"));
        let head = audit::Audit::new(db.clone()).checkpoint().await?.seq;
        let tasks: Vec<_> = [
            match db.backend() {
                Backend::Sqlite => None,
                Backend::Postgres => crate::listener::spawn(&db, &notify_channel, cache.clone()),
            },
            crate::sync::spawn(
                db.clone(),
                cache.clone(),
                options.clock.clone(),
                options.max_staleness,
                head,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let audit = match options.audit_key {
            Some(key) => Audit::with_key(db.clone(), key),
            None => Audit::new(db.clone()),
        };
        let minute = std::time::Duration::from_secs(60);
        Ok(Store {
            inner: Arc::new(Inner {
                audit,
                usage: UsageWriter::spawn(db.clone(), &options.usage),
                hasher: HashPool::new(options.hash_threads, options.hash_queue)?,
                params: options.hash_params,
                clock: ClockHandle(options.clock.clone()),
                cache,
                max_staleness: std::time::Duration::try_from(options.max_staleness)
                    .unwrap_or_default(),
                usage_retention: options.usage.retention,
                notify_channel,
                address_limiter: FailureLimiter::new(
                    options.failures_per_minute,
                    minute,
                    options.clock.clone(),
                ),
                reporter_limiter: FailureLimiter::new(
                    options.reported_failures_per_minute,
                    minute,
                    options.clock.clone(),
                ),
                reuse_reported: Mutex::new(HashMap::new()),
                tasks,
                db,
            }),
        })
    }

    /// The audit log (events, chain verification, usage queries).
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The usage writer, for callers that record usage of their own.
    pub fn usage_writer(&self) -> &UsageWriter {
        &self.inner.usage
    }

    /// Deletes usage records older than the configured retention (`UsageConfig::retention`,
    /// 90 days by default); returns how many. Run it periodically (the server does, hourly).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn prune_usage(&self) -> Result<u64, Error> {
        Ok(self
            .inner
            .audit
            .prune_usage(self.now(), self.inner.usage_retention)
            .await?)
    }

    /// Commits every queued usage record, then closes the database pool.
    pub async fn close(&self) {
        if let Err(e) = self.inner.usage.flush().await {
            tracing::warn!(error = %e, "usage records not flushed on close");
        }
        self.inner.db.close().await;
    }

    /// The current time by the store's clock: the one clock every decision uses.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.0.now()
    }

    // ----- workspaces and members -----

    /// Creates a workspace and its owner.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name or owner; [`Error::Conflict`] if the name is taken.
    pub async fn create_workspace(
        &self,
        name: &str,
        owner: NewMember,
        context: &Context,
    ) -> Result<(Workspace, Member), Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let created = self
            .insert_workspace(&mut tx, name, owner, context, now)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates a workspace, its owner and a first token for the owner (`first.owner_id` is
    /// ignored), in one transaction. The token is given to `hand_over` before the commit; if
    /// handing it over fails, nothing is committed: a workspace is never created whose first
    /// token nobody received.
    ///
    /// # Errors
    /// As [`Store::create_workspace`] and [`Store::create_token`]; [`Error::HandOver`] when
    /// `hand_over` fails.
    pub async fn create_workspace_with_token(
        &self,
        name: &str,
        owner: NewMember,
        first: NewToken,
        context: &Context,
        hand_over: impl FnOnce(&Token) -> Result<(), String>,
    ) -> Result<(Workspace, TokenRecord, Token), Error> {
        let now = self.now();
        let checked = check_new(first, now)?;
        let (token, hash) = self.generate().await?;
        let mut tx = self.inner.db.begin_write().await?;
        let (workspace, owner) = self
            .insert_workspace(&mut tx, name, owner, context, now)
            .await?;
        let checked = Checked {
            owner_id: owner.id,
            ..checked
        };
        let record = issued_record(&workspace.id, token.id(), checked, context, now)?;
        self.insert_issued(&mut tx, &record, &hash, context, now)
            .await?;
        hand_over(&token).map_err(|reason| Error::HandOver { reason })?;
        let mark = self.mark();
        tx.commit().await?;
        self.remember(&token, &record, &hash, &mark);
        Ok((workspace, record, token))
    }

    async fn insert_workspace(
        &self,
        tx: &mut AnyConnection,
        name: &str,
        owner: NewMember,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<(Workspace, Member), Error> {
        let name = validate::line("workspace name", name, 64)?;
        let workspace = Workspace {
            id: new_id("ws_")?,
            name,
            created_at: from_micros(to_micros(now))?,
        };
        let owner = NewMember {
            role: Role::Owner,
            ..owner
        };
        sqlx::query("INSERT INTO workspaces (id, name, created_at_us) VALUES ($1, $2, $3)")
            .bind(workspace.id.as_str())
            .bind(workspace.name.as_str())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "a workspace with this name exists"))?;
        let event = NewEvent {
            workspace_id: Some(workspace.id.clone()),
            action: Action::WorkspaceCreated,
            target_kind: Some("workspace"),
            target_id: Some(workspace.id.clone()),
            outcome: Outcome::Success,
            details: json!({ "name": workspace.name }),
        };
        self.inner.audit.append(tx, context, &event, now).await?;
        let member =
            insert_member(&self.inner.audit, tx, &workspace.id, owner, context, now).await?;
        Ok((workspace, member))
    }

    /// A workspace by id.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn get_workspace(&self, id: &str) -> Result<Workspace, Error> {
        let row = sqlx::query("SELECT id, name, created_at_us FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(self.inner.db.pool())
            .await?
            .ok_or(Error::NotFound { what: "workspace" })?;
        Ok(Workspace {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: from_micros(row.try_get("created_at_us")?)?,
        })
    }

    /// All workspaces, oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, Error> {
        let rows = sqlx::query(
            "SELECT id, name, created_at_us FROM workspaces ORDER BY created_at_us, id",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Workspace {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: from_micros(row.try_get("created_at_us")?)?,
                })
            })
            .collect()
    }

    /// Adds a member to a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace; [`Error::Invalid`]; [`Error::Conflict`] if
    /// the email is already a member.
    pub async fn add_member(
        &self,
        workspace_id: &str,
        member: NewMember,
        context: &Context,
    ) -> Result<Member, Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        ensure_workspace(&mut tx, workspace_id).await?;
        let member = insert_member(
            &self.inner.audit,
            &mut tx,
            workspace_id,
            member,
            context,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(member)
    }

    /// Changes a member's name, email or role.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`]; [`Error::Conflict`] for a taken email.
    pub async fn update_member(
        &self,
        workspace_id: &str,
        member_id: &str,
        update: MemberUpdate,
        context: &Context,
    ) -> Result<Member, Error> {
        let now = self.now();
        let current = self.get_member(workspace_id, member_id).await?;
        let name = update
            .name
            .as_deref()
            .map(|n| validate::line("name", n, 100))
            .transpose()?;
        let email = update.email.as_deref().map(validate::email).transpose()?;
        let updated = Member {
            name: name.unwrap_or_else(|| current.name.clone()),
            email: email.unwrap_or_else(|| current.email.clone()),
            role: update.role.unwrap_or(current.role),
            ..current.clone()
        };
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query("UPDATE members SET name = $1, email = $2, role = $3 WHERE id = $4 AND workspace_id = $5")
            .bind(updated.name.as_str())
            .bind(updated.email.as_str())
            .bind(updated.role.as_str())
            .bind(member_id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "another member has this email"))?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::MemberUpdated,
            target_kind: Some("member"),
            target_id: Some(member_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({
                "name": changed(&current.name, &updated.name),
                "email": changed(&current.email, &updated.email),
                "role": changed(&current.role.as_str(), &updated.role.as_str()),
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// A member of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn get_member(&self, workspace_id: &str, member_id: &str) -> Result<Member, Error> {
        let row = sqlx::query(&format!(
            "{SELECT_MEMBER} WHERE id = $1 AND workspace_id = $2"
        ))
        .bind(member_id)
        .bind(workspace_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound { what: "member" })?;
        member_from_row(&row)
    }

    /// All members of a workspace, oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_members(&self, workspace_id: &str) -> Result<Vec<Member>, Error> {
        let rows = sqlx::query(&format!(
            "{SELECT_MEMBER} WHERE workspace_id = $1 ORDER BY created_at_us, id"
        ))
        .bind(workspace_id)
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    // ----- tokens -----

    /// Issues a token. The returned [`Token`] is the only copy of the secret: show it once.
    ///
    /// # Errors
    /// [`Error::Invalid`] (empty or over-long name, control characters, no scopes, expiry not in
    /// the future); [`Error::NotFound`] if the owner is not a member of the workspace;
    /// [`Error::Busy`] if the scrypt pool is saturated. Nothing is written on error.
    pub async fn create_token(
        &self,
        workspace_id: &str,
        new: NewToken,
        context: &Context,
    ) -> Result<(TokenRecord, Token), Error> {
        let now = self.now();
        let checked = check_new(new, now)?; // before spending scrypt on it
        let (token, hash) = self.generate().await?;
        let record = issued_record(workspace_id, token.id(), checked, context, now)?;
        let mut tx = self.inner.db.begin_write().await?;
        ensure_member(&mut tx, workspace_id, &record.owner_id).await?;
        self.insert_issued(&mut tx, &record, &hash, context, now)
            .await?;
        let mark = self.mark();
        tx.commit().await?;
        self.remember(&token, &record, &hash, &mark);
        Ok((record, token))
    }

    /// Inserts an issued token and its `token.created` event.
    async fn insert_issued(
        &self,
        tx: &mut AnyConnection,
        record: &TokenRecord,
        hash: &TokenHash,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        insert_token(tx, record, hash).await?;
        let event = NewEvent::on_token(&record.workspace_id, Action::TokenCreated, record.id)
            .with_details(token_details(record));
        self.inner.audit.append(tx, context, &event, now).await?;
        Ok(())
    }

    /// A token of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`] (also for a token of another workspace).
    pub async fn get_token(&self, workspace_id: &str, id: TokenId) -> Result<TokenRecord, Error> {
        let row = self.token_row(id).await?;
        match row {
            Some(row) if row.record.workspace_id == workspace_id => Ok(row.record),
            _ => Err(Error::NotFound { what: "token" }),
        }
    }

    /// Tokens of a workspace matching `filter`, newest first. Pass the previous page's
    /// `next_cursor` to continue.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed cursor.
    pub async fn list_tokens(
        &self,
        workspace_id: &str,
        filter: &TokenFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<TokenRecord>, Error> {
        let now = to_micros(self.now());
        let limit = i64::from(limit.clamp(1, 500));
        let mut sql = Sql::new(self.inner.db.backend(), SELECT_TOKEN);
        sql.push(" WHERE t.workspace_id = ")
            .bind(Arg::Text(workspace_id.to_owned()));
        let unrevoked = |sql: &mut Sql| {
            sql.push(" AND ")
                .push(Standing::SQL_UNREVOKED_AT)
                .bind(Arg::Int(now))
                .push("))");
        };
        match filter.state {
            None => {}
            Some(TokenState::Active) => {
                unrevoked(&mut sql);
                sql.push(" AND (t.expires_at_us IS NULL OR t.expires_at_us > ")
                    .bind(Arg::Int(now))
                    .push(")");
            }
            Some(TokenState::Expired) => {
                unrevoked(&mut sql);
                sql.push(" AND t.expires_at_us <= ").bind(Arg::Int(now));
            }
            Some(TokenState::Revoked) => {
                sql.push(" AND NOT ")
                    .push(Standing::SQL_UNREVOKED_AT)
                    .bind(Arg::Int(now))
                    .push("))");
            }
        }
        if let Some(name) = &filter.name {
            sql.push(" AND LOWER(t.name) LIKE ")
                .bind(Arg::Text(format!(
                    "%{}%",
                    escape_like(&name.to_lowercase())
                )))
                .push(" ESCAPE '\\'");
        }
        if let Some(scope) = filter.scope {
            sql.push(" AND (',' || t.scopes || ',') LIKE ")
                .bind(Arg::Text(format!("%,{},%", scope.as_str())));
        }
        if let Some(before) = filter.expires_before {
            sql.push(" AND t.expires_at_us < ")
                .bind(Arg::Int(to_micros(before)));
        }
        if let Some(before) = filter.last_used_before {
            sql.push(" AND (l.at_us IS NULL OR l.at_us < ")
                .bind(Arg::Int(to_micros(before)))
                .push(")");
        }
        if let Some(cursor) = cursor {
            let (created, id) = parse_cursor(cursor)?;
            sql.push(" AND (t.created_at_us < ")
                .bind(Arg::Int(created))
                .push(" OR (t.created_at_us = ")
                .bind(Arg::Int(created))
                .push(" AND t.id < ")
                .bind(Arg::Text(id))
                .push("))");
        }
        sql.push(" ORDER BY t.created_at_us DESC, t.id DESC LIMIT ")
            .bind(Arg::Int(limit));
        let rows = sql.query().fetch_all(self.inner.db.pool()).await?;
        let now = self.now();
        let items = rows
            .iter()
            .map(|row| token_from_row(row, now).map(|r| r.record))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match items.last() {
            Some(last) if items.len() as i64 == limit => {
                Some(format!("{}.{}", to_micros(last.created_at), last.id))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes a token's name or description.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`].
    pub async fn update_token(
        &self,
        workspace_id: &str,
        id: TokenId,
        update: TokenUpdate,
        context: &Context,
    ) -> Result<TokenRecord, Error> {
        let now = self.now();
        let current = self.get_token(workspace_id, id).await?;
        let name = update
            .name
            .as_deref()
            .map(|n| validate::line("name", n, 100))
            .transpose()?;
        let description = update
            .description
            .as_deref()
            .map(|d| validate::text("description", d, 1_000))
            .transpose()?;
        let updated = TokenRecord {
            name: name.unwrap_or_else(|| current.name.clone()),
            description: description.unwrap_or_else(|| current.description.clone()),
            ..current.clone()
        };
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query(
            "UPDATE tokens SET name = $1, description = $2 WHERE id = $3 AND workspace_id = $4",
        )
        .bind(updated.name.as_str())
        .bind(updated.description.as_str())
        .bind(id.as_str())
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        let event =
            NewEvent::on_token(workspace_id, Action::TokenUpdated, id).with_details(json!({
                "name": changed(&current.name, &updated.name),
                "description_changed": current.description != updated.description,
            }));
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    // ----- helpers -----

    /// A new token and its hash, computed on the scrypt pool.
    pub(crate) async fn generate(&self) -> Result<(Token, TokenHash), Error> {
        let params = self.inner.params;
        self.inner
            .hasher
            .run(move || {
                let token = Token::generate(&mut SysRng)?;
                let hash = TokenHash::new(&token, &params, &mut SysRng)?;
                Ok::<_, token_core::Error>((token, hash))
            })
            .await?
            .map_err(|_| Error::System("the operating system's random generator failed"))
    }

    /// Marks the moment before a new token's transaction commits: see [`Store::remember`].
    pub(crate) fn mark(&self) -> crate::cache::ReadMark<'_> {
        self.inner.cache.begin_read(self.inner.clock.0.monotonic())
    }

    /// Caches a token issued on this process, so its first use needs no scrypt — unless it was
    /// revoked (on any instance) since `mark`, taken before its transaction committed.
    pub(crate) fn remember(
        &self,
        token: &Token,
        record: &TokenRecord,
        hash: &TokenHash,
        mark: &crate::cache::ReadMark<'_>,
    ) {
        let cached = crate::cache::Cached {
            principal: principal_of(record),
            standing: record.standing(),
            rotated: record.rotated_to.is_some(),
            phc: hash.as_phc().to_owned(),
        };
        self.inner.cache.insert(token, Arc::new(cached), mark);
    }

    /// Tells other instances (PostgreSQL) that a token changed; delivered on commit.
    pub(crate) async fn notify(&self, conn: &mut AnyConnection, id: TokenId) -> Result<(), Error> {
        if self.inner.db.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(self.inner.notify_channel.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// A token and its stored hash, by id, in any workspace.
    pub(crate) async fn token_row(&self, id: TokenId) -> Result<Option<TokenRow>, Error> {
        read_token_row(self.inner.db.pool(), id, self.now()).await
    }
}

/// A token row with its hash; the hash never leaves the crate.
pub(crate) struct TokenRow {
    pub(crate) record: TokenRecord,
    pub(crate) phc: String,
}

pub(crate) fn principal_of(record: &TokenRecord) -> Principal {
    Principal {
        token_id: record.id,
        workspace_id: record.workspace_id.clone(),
        owner_id: record.owner_id.clone(),
        scopes: record.scopes,
        expires_at: record.expires_at,
    }
}

const SELECT_MEMBER: &str =
    "SELECT id, workspace_id, name, email, role, created_at_us FROM members";

pub(crate) const SELECT_TOKEN: &str = "SELECT t.id, t.workspace_id, t.owner_id, t.name, \
    t.description, t.client, t.scopes, t.created_at_us, t.created_by, t.expires_at_us, \
    t.revoked_at_us, t.revoked_reason, t.revoked_by, t.rotated_from, t.rotated_to, t.family_id, \
    t.hash, \
    l.at_us AS last_used_us, l.client_ip AS last_used_ip \
    FROM tokens t LEFT JOIN token_last_use l ON l.token_id = t.id";

/// A token and its stored hash, by id, in any workspace, through `executor` (the pool, or a
/// transaction that must read what it has locked).
pub(crate) async fn read_token_row<'e, E>(
    executor: E,
    id: TokenId,
    now: OffsetDateTime,
) -> Result<Option<TokenRow>, Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("{SELECT_TOKEN} WHERE t.id = $1"))
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.map(|row| token_from_row(&row, now)).transpose()
}

fn member_from_row(row: &AnyRow) -> Result<Member, Error> {
    let role: String = row.try_get("role")?;
    Ok(Member {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: role.parse()?,
        created_at: from_micros(row.try_get("created_at_us")?)?,
    })
}

pub(crate) fn token_from_row(row: &AnyRow, now: OffsetDateTime) -> Result<TokenRow, Error> {
    let corrupt = |what: &'static str| Error::Storage(audit::Error::Corrupt(what));
    let opt_time = |column: &str| -> Result<Option<OffsetDateTime>, Error> {
        let us: Option<i64> = row.try_get(column)?;
        Ok(us.map(from_micros).transpose()?)
    };
    let opt_id = |column: &str| -> Result<Option<TokenId>, Error> {
        let id: Option<String> = row.try_get(column)?;
        id.map(|s| s.parse().map_err(|_| corrupt("token id")))
            .transpose()
    };
    let id: String = row.try_get("id")?;
    let id: TokenId = id.parse().map_err(|_| corrupt("token id"))?;
    let scopes: String = row.try_get("scopes")?;
    let expires_at = opt_time("expires_at_us")?;
    let revoked_at = opt_time("revoked_at_us")?;
    let revoked_reason: Option<String> = row.try_get("revoked_reason")?;
    let standing = Standing::of(revoked_at, revoked_reason.as_deref());
    let created_by: String = row.try_get("created_by")?;
    let rotated_from = opt_id("rotated_from")?;
    Ok(TokenRow {
        record: TokenRecord {
            id,
            workspace_id: row.try_get("workspace_id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            client: row.try_get("client")?,
            scopes: scopes.parse::<Scopes>().map_err(|_| corrupt("scopes"))?,
            created_at: from_micros(row.try_get("created_at_us")?)?,
            origin: Origin::of(&created_by, rotated_from),
            created_by,
            expires_at,
            revoked_at,
            revoked_reason,
            revoked_by: row.try_get("revoked_by")?,
            rotated_from,
            rotated_to: opt_id("rotated_to")?,
            family_id: opt_id("family_id")?.unwrap_or(id),
            last_used_at: opt_time("last_used_us")?,
            last_used_ip: row.try_get("last_used_ip")?,
            state: TokenState::at(now, standing, expires_at),
        },
        phc: row.try_get("hash")?,
    })
}

async fn insert_member(
    audit: &Audit,
    conn: &mut AnyConnection,
    workspace_id: &str,
    new: NewMember,
    context: &Context,
    now: OffsetDateTime,
) -> Result<Member, Error> {
    let member = Member {
        id: new_id("mem_")?,
        workspace_id: workspace_id.to_owned(),
        name: validate::line("name", &new.name, 100)?,
        email: validate::email(&new.email)?,
        role: new.role,
        created_at: from_micros(to_micros(now))?,
    };
    sqlx::query(
        "INSERT INTO members (id, workspace_id, name, email, role, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(member.id.as_str())
    .bind(workspace_id)
    .bind(member.name.as_str())
    .bind(member.email.as_str())
    .bind(member.role.as_str())
    .bind(to_micros(now))
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict(e, "this email is already a member"))?;
    let event = NewEvent {
        workspace_id: Some(workspace_id.to_owned()),
        action: Action::MemberAdded,
        target_kind: Some("member"),
        target_id: Some(member.id.clone()),
        outcome: Outcome::Success,
        details: json!({ "name": member.name, "email": member.email, "role": member.role }),
    };
    audit.append(conn, context, &event, now).await?;
    Ok(member)
}

pub(crate) async fn insert_token(
    conn: &mut AnyConnection,
    r: &TokenRecord,
    hash: &TokenHash,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO tokens (id, workspace_id, owner_id, name, description, client, scopes, \
         created_at_us, created_by, expires_at_us, rotated_from, family_id, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(r.id.as_str())
    .bind(r.workspace_id.as_str())
    .bind(r.owner_id.as_str())
    .bind(r.name.as_str())
    .bind(r.description.as_str())
    .bind(r.client.as_str())
    .bind(r.scopes.to_string())
    .bind(to_micros(r.created_at))
    .bind(r.created_by.as_str())
    .bind(r.expires_at.map(to_micros))
    .bind(r.rotated_from.map(|id| id.to_string()))
    .bind(r.family_id.as_str())
    .bind(hash.as_phc())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn ensure_workspace(conn: &mut AnyConnection, workspace_id: &str) -> Result<(), Error> {
    sqlx::query("SELECT id FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound { what: "workspace" })
}

async fn ensure_member(
    conn: &mut AnyConnection,
    workspace_id: &str,
    member_id: &str,
) -> Result<(), Error> {
    sqlx::query("SELECT id FROM members WHERE id = $1 AND workspace_id = $2")
        .bind(member_id)
        .bind(workspace_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound { what: "member" })
}

pub(crate) fn token_details(r: &TokenRecord) -> serde_json::Value {
    json!({
        "name": r.name,
        "owner_id": r.owner_id,
        "client": r.client,
        "scopes": r.scopes,
        "expires_at": r.expires_at.map(|t| t.unix_timestamp()),
        "rotated_from": r.rotated_from,
    })
}

pub(crate) fn changed<T: serde::Serialize + PartialEq + ?Sized>(
    old: &T,
    new: &T,
) -> serde_json::Value {
    if old == new {
        serde_json::Value::Null
    } else {
        json!({ "from": old, "to": new })
    }
}

/// The fields of a token to issue, checked.
struct Checked {
    owner_id: String,
    name: String,
    description: String,
    client: String,
    scopes: Scopes,
    expires_at: Option<OffsetDateTime>,
}

fn check_new(new: NewToken, now: OffsetDateTime) -> Result<Checked, Error> {
    check_scopes(new.scopes)?;
    check_expiry(new.expires_at, now)?;
    Ok(Checked {
        owner_id: new.owner_id,
        name: validate::line("name", &new.name, 100)?,
        description: validate::text("description", &new.description, 1_000)?,
        client: validate::optional_line("client", &new.client, 100)?,
        scopes: new.scopes,
        expires_at: new
            .expires_at
            .map(|t| from_micros(to_micros(t)))
            .transpose()?,
    })
}

fn issued_record(
    workspace_id: &str,
    id: TokenId,
    checked: Checked,
    context: &Context,
    now: OffsetDateTime,
) -> Result<TokenRecord, Error> {
    Ok(TokenRecord {
        id,
        workspace_id: workspace_id.to_owned(),
        owner_id: checked.owner_id,
        name: checked.name,
        description: checked.description,
        client: checked.client,
        scopes: checked.scopes,
        created_at: from_micros(to_micros(now))?,
        created_by: context.actor.to_string(),
        expires_at: checked.expires_at,
        revoked_at: None,
        revoked_reason: None,
        revoked_by: None,
        rotated_from: None,
        rotated_to: None,
        family_id: id,
        origin: Origin::Issued,
        last_used_at: None,
        last_used_ip: None,
        state: TokenState::Active,
    })
}

fn check_scopes(scopes: Scopes) -> Result<(), Error> {
    if scopes.is_empty() {
        return Err(Error::invalid("scopes", "at least one scope is required"));
    }
    Ok(())
}

pub(crate) fn check_expiry(
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    match expires_at {
        Some(at) if at <= now => Err(Error::invalid("expires_at", "must be in the future")),
        _ => Ok(()),
    }
}

fn new_id(prefix: &str) -> Result<String, Error> {
    random_id(&mut SysRng, prefix)
        .map_err(|_| Error::System("the operating system's random generator failed"))
}

/// Maps a uniqueness violation to [`Error::Conflict`]; anything else stays a storage error.
fn conflict(e: sqlx::Error, message: &str) -> Error {
    match audit::Error::from(e) {
        audit::Error::Database(db) if db.is_unique_violation() => {
            Error::Conflict(message.to_owned())
        }
        other => Error::Storage(other),
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid("cursor", "not a cursor returned by this API");
    let (created, id) = cursor.split_once('.').ok_or_else(bad)?;
    let created = created.parse().map_err(|_| bad())?;
    let id: TokenId = id.parse().map_err(|_| bad())?;
    Ok((created, id.to_string()))
}
