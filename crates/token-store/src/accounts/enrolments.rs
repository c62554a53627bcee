//! One-time enrolment links: an invitation to join a workspace, or the owner's first way in.
//! The link carries a 256-bit secret, stored hashed; it works once, for 24 hours.

use audit::{Action, Actor, Context, NewEvent, Outcome};
use knowmind_db::{from_micros, to_micros};
use serde_json::json;
use sqlx::Row;
use time::Duration;

use crate::error::Error;
use crate::model::{Member, NewMember, Role};
use crate::store::{Store, conflict, new_id};
use crate::validate;

use super::passwords::{check_strength, set_password};
use super::{BearerSecret, Enrolment};

/// How long an enrolment link works.
pub const ENROLMENT_LIFETIME: Duration = Duration::hours(24);

impl Store {
    /// A one-time link for `email` to join `workspace_id` with `role`, or — when `email` is a
    /// member who has never set a password (the owner a new workspace starts with) — to set
    /// theirs. Audited as `member.invited`. Who may invite whom is the caller's decision (the
    /// dashboard lets owners invite anyone, admins invite admins and members).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad email; [`Error::Conflict`] if the email belongs to a member
    /// who can already sign in; [`Error::NotFound`] for an unknown workspace.
    pub async fn invite(
        &self,
        workspace_id: &str,
        email: &str,
        role: Role,
        context: &Context,
    ) -> Result<(Enrolment, BearerSecret), Error> {
        let email = validate::email(email)?;
        let workspace = self.get_workspace(workspace_id).await?;
        let now = self.now();
        let secret = BearerSecret::random()?;
        let mut tx = self.inner.db.begin_write().await?;
        let existing = sqlx::query(
            "SELECT m.id, m.role, m.removed_at_us, p.member_id AS has_password FROM members m \
             LEFT JOIN member_passwords p ON p.member_id = m.id \
             WHERE m.workspace_id = $1 AND m.email = $2",
        )
        .bind(workspace_id)
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (member_id, role) = match existing {
            Some(row) if row.try_get::<Option<i64>, _>("removed_at_us")?.is_some() => {
                return Err(Error::Conflict(
                    "this email belonged to a member who was removed; invite another address"
                        .into(),
                ));
            }
            Some(row) if row.try_get::<Option<String>, _>("has_password")?.is_some() => {
                return Err(Error::Conflict(
                    "this email is already a member who can sign in".into(),
                ));
            }
            Some(row) => {
                let role: String = row.try_get("role")?;
                (Some(row.try_get::<String, _>("id")?), role.parse()?)
            }
            None => (None, role),
        };
        may_grant(&mut tx, workspace_id, &context.actor, role).await?;
        let enrolment = Enrolment {
            id: new_id("enr_")?,
            workspace_id: workspace.id.clone(),
            workspace_name: workspace.name,
            email,
            role,
            member_id,
            expires_at: from_micros(to_micros(now + ENROLMENT_LIFETIME))?,
        };
        sqlx::query(
            "INSERT INTO enrolments (id, secret_hash, workspace_id, email, role, member_id, \
             created_by, created_at_us, expires_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(enrolment.id.as_str())
        .bind(secret.stored_hash())
        .bind(workspace_id)
        .bind(enrolment.email.as_str())
        .bind(enrolment.role.as_str())
        .bind(enrolment.member_id.as_deref())
        .bind(context.actor.to_string())
        .bind(to_micros(now))
        .bind(to_micros(enrolment.expires_at))
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::MemberInvited,
            target_kind: Some("enrolment"),
            target_id: Some(enrolment.id.clone()),
            outcome: Outcome::Success,
            details: json!({
                "email": enrolment.email,
                "role": enrolment.role,
                "member": enrolment.member_id,
                "expires_at": enrolment.expires_at.unix_timestamp(),
            }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok((enrolment, secret))
    }

    /// The enrolment a link's secret opens, if it is unused and unexpired.
    ///
    /// # Errors
    /// [`Error::NotFound`] (`enrolment link`) for an unknown, used or expired link — the same
    /// for each.
    pub async fn enrolment(&self, secret: &BearerSecret) -> Result<Enrolment, Error> {
        let row = sqlx::query(
            "SELECT e.id, e.workspace_id, w.name AS workspace_name, e.email, e.role, \
             e.member_id, e.expires_at_us FROM enrolments e \
             JOIN workspaces w ON w.id = e.workspace_id \
             WHERE e.secret_hash = $1 AND e.used_at_us IS NULL AND e.expires_at_us > $2",
        )
        .bind(secret.stored_hash())
        .bind(to_micros(self.now()))
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotFound {
            what: "enrolment link",
        })?;
        let role: String = row.try_get("role")?;
        Ok(Enrolment {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            workspace_name: row.try_get("workspace_name")?,
            email: row.try_get("email")?,
            role: role.parse()?,
            member_id: row.try_get("member_id")?,
            expires_at: from_micros(row.try_get("expires_at_us")?)?,
        })
    }

    /// Uses an enrolment link: sets the password (and name) of the member it names, creating
    /// them if they are new; the link is spent. Audited as `member.enrolled` (and
    /// `member.added` for a new member), by the member.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown, used or expired link; [`Error::Invalid`] for a bad
    /// name or a weak password; [`Error::Conflict`] if someone joined with that email meanwhile.
    pub async fn enrol(
        &self,
        secret: &BearerSecret,
        name: &str,
        password: String,
        context: &Context,
    ) -> Result<Member, Error> {
        let enrolment = self.enrolment(secret).await?;
        let name = validate::line("name", name, 100)?;
        let password = check_strength(
            password,
            &[&enrolment.email, &name, &enrolment.workspace_name],
        )?;
        let hash = self.hash_password(password).await?;
        let existing = match &enrolment.member_id {
            Some(id) => Some(self.get_member(&enrolment.workspace_id, id).await?),
            None => None,
        };
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        // Spend the link first: of two uses racing, one updates the row and the other finds it
        // spent.
        let spent = sqlx::query(
            "UPDATE enrolments SET used_at_us = $1 \
             WHERE id = $2 AND used_at_us IS NULL AND expires_at_us > $1",
        )
        .bind(to_micros(now))
        .bind(enrolment.id.as_str())
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Err(Error::NotFound {
                what: "enrolment link",
            });
        }
        // A link sets a first password only: once someone can sign in, every other link for
        // them is spent, and none may reset their password.
        if let Some(member) = &existing {
            let has_password =
                sqlx::query("SELECT member_id FROM member_passwords WHERE member_id = $1")
                    .bind(member.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if has_password {
                return Err(Error::NotFound {
                    what: "enrolment link",
                });
            }
        }
        sqlx::query(
            "UPDATE enrolments SET used_at_us = $1 \
             WHERE workspace_id = $2 AND email = $3 AND used_at_us IS NULL",
        )
        .bind(to_micros(now))
        .bind(enrolment.workspace_id.as_str())
        .bind(enrolment.email.as_str())
        .execute(&mut *tx)
        .await?;
        let member = match existing {
            Some(member) => {
                sqlx::query("UPDATE members SET name = $1 WHERE id = $2")
                    .bind(name.as_str())
                    .bind(member.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                Member { name, ..member }
            }
            None => {
                let new = NewMember {
                    name,
                    email: enrolment.email.clone(),
                    role: enrolment.role,
                };
                crate::workspaces::insert_member(
                    &self.inner.audit,
                    &mut tx,
                    &enrolment.workspace_id,
                    new,
                    context,
                    now,
                )
                .await
                .map_err(|e| match e {
                    Error::Conflict(_) => conflict_email(),
                    other => other,
                })?
            }
        };
        set_password(&mut tx, &member.id, &hash, now).await?;
        sqlx::query("UPDATE enrolments SET member_id = $1 WHERE id = $2")
            .bind(member.id.as_str())
            .bind(enrolment.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "enrolment"))?;
        let event = NewEvent {
            workspace_id: Some(enrolment.workspace_id.clone()),
            action: Action::MemberEnrolled,
            target_kind: Some("member"),
            target_id: Some(member.id.clone()),
            outcome: Outcome::Success,
            details: json!({ "enrolment": enrolment.id, "role": member.role }),
        };
        let as_member = Context {
            actor: Actor::Member(member.id.clone()),
            ..context.clone()
        };
        self.inner
            .audit
            .append(&mut tx, &as_member, &event, now)
            .await?;
        tx.commit().await?;
        Ok(member)
    }
}

/// Whether `actor` may hand out `role`: the operator and owners any role, admins admin and
/// member, nobody else anything. The role of an existing member counts too — a link for the
/// owner is an owner's key.
async fn may_grant(
    conn: &mut knowmind_db::Connection,
    workspace_id: &str,
    actor: &Actor,
    role: Role,
) -> Result<(), Error> {
    let actor_role = match actor {
        Actor::Operator | Actor::System => return Ok(()),
        Actor::Member(id) => {
            let row = sqlx::query(
                "SELECT role FROM members WHERE id = $1 AND workspace_id = $2 \
                 AND removed_at_us IS NULL",
            )
            .bind(id.as_str())
            .bind(workspace_id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => row.try_get::<String, _>("role")?.parse::<Role>()?,
                None => Role::Member,
            }
        }
        Actor::Token(_) | Actor::Client(_) => Role::Member,
    };
    let allowed = match actor_role {
        Role::Owner => true,
        Role::Admin => role != Role::Owner,
        Role::Member => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::invalid(
            "role",
            format!(
                "a {} cannot hand out the role {}",
                actor_role.as_str(),
                role.as_str()
            ),
        ))
    }
}

fn conflict_email() -> Error {
    Error::Conflict("someone joined the workspace with this email meanwhile".into())
}
