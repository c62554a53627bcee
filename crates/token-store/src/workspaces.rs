//! Workspaces and their members.

use audit::{Action, Audit, Context, NewEvent, Outcome};
use knowmind_db::{Connection, from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use token_core::Token;

use crate::error::Error;
use crate::model::{Member, MemberUpdate, NewMember, NewToken, Role, TokenRecord, Workspace};
use crate::store::{Store, changed, conflict, new_id};
use crate::tokens::{Checked, check_new, issued_record};
use crate::validate;

impl Store {
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
        self.remember(&token, &record, &hash, &mark, None);
        Ok((workspace, record, token))
    }

    async fn insert_workspace(
        &self,
        tx: &mut Connection,
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

    /// Changes a member's name, email or role. A member who becomes a plain `member` loses
    /// their live tokens that carry the `admin` scope (revoked with their families, reason
    /// `role_changed`) in the same transaction: the role rule holds for tokens already issued.
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
        let demoted = updated.role == Role::Member && current.role != Role::Member;
        let admin_tokens: Vec<TokenRecord> = if demoted {
            self.live_tokens_of(workspace_id, member_id)
                .await?
                .into_iter()
                .filter(|t| t.scopes.contains(token_core::Scope::Admin))
                .collect()
        } else {
            Vec::new()
        };
        let mut tx = self.inner.db.begin_write().await?;
        if current.role == Role::Owner && updated.role != Role::Owner {
            keep_an_owner(&mut tx, self.inner.db.backend(), workspace_id, member_id).await?;
        }
        if demoted {
            // Links they handed out carried their authority.
            expire_links_of(&mut tx, member_id, now).await?;
        }
        sqlx::query("UPDATE members SET name = $1, email = $2, role = $3 WHERE id = $4 AND workspace_id = $5")
            .bind(updated.name.as_str())
            .bind(updated.email.as_str())
            .bind(updated.role.as_str())
            .bind(member_id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "another member has this email"))?;
        let mut revoked = Vec::new();
        for token in &admin_tokens {
            revoked.extend(
                self.revoke_family_in(&mut tx, token, "role_changed", context, now)
                    .await?,
            );
        }
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
                "tokens_revoked": revoked,
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        for id in &revoked {
            self.inner.cache.evict(*id);
        }
        Ok(updated)
    }

    /// Removes a member: they can no longer sign in, every live token they own is revoked
    /// (reason `member_removed`, with its family), their sessions end and their unused
    /// enrolment links stop working — in one transaction, with a `member.removed` event and a
    /// `token.revoked` event per token. The member's row stays, for the audit log and the
    /// tokens that name them. The workspace's last owner cannot be removed.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for the last owner.
    pub async fn remove_member(
        &self,
        workspace_id: &str,
        member_id: &str,
        context: &Context,
    ) -> Result<Vec<token_core::TokenId>, Error> {
        let member = self.get_member(workspace_id, member_id).await?;
        let owned = self.live_tokens_of(workspace_id, member_id).await?;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        if member.role == Role::Owner {
            keep_an_owner(&mut tx, self.inner.db.backend(), workspace_id, member_id).await?;
        }
        let removed = sqlx::query(
            "UPDATE members SET removed_at_us = $1 \
             WHERE id = $2 AND workspace_id = $3 AND removed_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(member_id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        if removed.rows_affected() != 1 {
            return Err(Error::NotFound { what: "member" });
        }
        let mut revoked = Vec::new();
        for token in &owned {
            revoked.extend(
                self.revoke_family_in(&mut tx, token, "member_removed", context, now)
                    .await?,
            );
        }
        revoked.extend(
            self.revoke_member_oauth_in(&mut tx, member_id, context, now)
                .await?,
        );
        let sessions =
            crate::accounts::end_all_sessions(&mut tx, member_id, None, "member_removed", now)
                .await?;
        expire_links_of(&mut tx, member_id, now).await?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::MemberRemoved,
            target_kind: Some("member"),
            target_id: Some(member_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({
                "email": member.email,
                "role": member.role,
                "tokens_revoked": revoked,
                "sessions_ended": sessions,
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        for id in &revoked {
            self.inner.cache.evict(*id);
        }
        Ok(revoked)
    }

    /// A member of a workspace.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn get_member(&self, workspace_id: &str, member_id: &str) -> Result<Member, Error> {
        let row = sqlx::query(&format!(
            "{SELECT_MEMBER} WHERE id = $1 AND workspace_id = $2 AND removed_at_us IS NULL"
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
            "{SELECT_MEMBER} WHERE workspace_id = $1 AND removed_at_us IS NULL \
             ORDER BY created_at_us, id"
        ))
        .bind(workspace_id)
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter().map(member_from_row).collect()
    }
}

const SELECT_MEMBER: &str =
    "SELECT id, workspace_id, name, email, role, created_at_us FROM members";

pub(crate) fn member_from_row(row: &AnyRow) -> Result<Member, Error> {
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

pub(crate) async fn insert_member(
    audit: &Audit,
    conn: &mut Connection,
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

/// Refuses, inside the caller's write transaction, to let `member_id` stop being an owner if
/// they are the workspace's last (read under the transaction, so two owners demoting each
/// other cannot both succeed on PostgreSQL: the rows are locked; SQLite has one writer).
async fn keep_an_owner(
    conn: &mut Connection,
    backend: knowmind_db::Backend,
    workspace_id: &str,
    member_id: &str,
) -> Result<(), Error> {
    let lock = if backend == knowmind_db::Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let owners = sqlx::query(&format!(
        "SELECT id FROM members WHERE workspace_id = $1 AND role = 'owner' \
         AND removed_at_us IS NULL{lock}"
    ))
    .bind(workspace_id)
    .fetch_all(&mut *conn)
    .await?;
    let others = owners
        .iter()
        .filter(|row| {
            row.try_get::<String, _>("id")
                .is_ok_and(|id| id != member_id)
        })
        .count();
    if others == 0 {
        return Err(Error::Conflict(
            "the workspace's last owner must stay an owner; make someone else owner first".into(),
        ));
    }
    Ok(())
}

/// Ends the unused enrolment links for `member_id` and those they handed out.
async fn expire_links_of(
    conn: &mut Connection,
    member_id: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE enrolments SET expires_at_us = $1 \
         WHERE (member_id = $2 OR created_by = $3) AND used_at_us IS NULL AND expires_at_us > $1",
    )
    .bind(to_micros(now))
    .bind(member_id)
    .bind(format!("member:{member_id}"))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn ensure_workspace(conn: &mut Connection, workspace_id: &str) -> Result<(), Error> {
    sqlx::query("SELECT id FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound { what: "workspace" })
}

/// Checks that `member_id` is a (current) member of the workspace who may hold a token with
/// `scopes`: the `admin` scope is for owners and admins only, whoever issues the token.
pub(crate) async fn ensure_member(
    conn: &mut Connection,
    workspace_id: &str,
    member_id: &str,
    scopes: token_core::Scopes,
) -> Result<(), Error> {
    let row = sqlx::query(
        "SELECT role FROM members WHERE id = $1 AND workspace_id = $2 AND removed_at_us IS NULL",
    )
    .bind(member_id)
    .bind(workspace_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound { what: "member" })?;
    let role: Role = row.try_get::<String, _>("role")?.parse()?;
    if role == Role::Member && scopes.contains(token_core::Scope::Admin) {
        return Err(Error::invalid(
            "scopes",
            "the admin scope is for owners and admins; this member's role is `member`",
        ));
    }
    Ok(())
}
