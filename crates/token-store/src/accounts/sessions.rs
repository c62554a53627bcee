//! Signing in and out, and the server-side sessions a signed-in browser holds.
//!
//! A session ends at the first of: sign-out, its absolute lifetime, a period without use (the
//! idle timeout), a password change elsewhere, the member's removal, or the member ending it
//! from their account page. Failed sign-ins are limited per client address (the same limiter
//! as failed tokens) and per account; an account's window is short, so a stranger who floods it
//! with wrong passwords locks it for minutes, never for good.

use audit::{Action, Actor, Context, NewEvent, Outcome};
use knowmind_db::{Connection, from_micros, to_micros};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::{Duration, OffsetDateTime};
use token_core::Password;

use crate::error::Error;
use crate::model::Member;
use crate::store::{Store, new_id};

use super::{BearerSecret, Session, SignedIn};

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// A session unused for this long ends. Default: 1 hour.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy. Default: 12 hours.
    pub lifetime: Duration,
    /// Failed sign-ins allowed per account per [`SessionOptions::lockout`]; 0 = no limit.
    /// Default: 10.
    pub failures_per_account: u32,
    /// The per-account window. Default: 5 minutes — the longest an account can be locked.
    pub lockout: std::time::Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            idle: Duration::hours(1),
            lifetime: Duration::hours(12),
            failures_per_account: 10,
            lockout: std::time::Duration::from_secs(300),
        }
    }
}

/// How often a session's `last_seen_at` is written: the idle timeout is this coarse.
const SEEN_RESOLUTION: Duration = Duration::minutes(1);

/// Columns of a session joined with its member.
const SELECT_SESSION: &str = "SELECT s.id, s.member_id, s.workspace_id, s.created_at_us, \
     s.last_seen_at_us, s.expires_at_us, s.client_ip, s.user_agent, s.needs_factor, \
     m.name AS m_name, m.email AS m_email, m.role AS m_role, m.created_at_us AS m_created_at_us, \
     w.require_second_factor, t.member_id AS has_factor \
     FROM sessions s JOIN members m ON m.id = s.member_id \
     JOIN workspaces w ON w.id = s.workspace_id \
     LEFT JOIN member_totp t ON t.member_id = s.member_id AND t.confirmed_at_us IS NOT NULL";

impl Store {
    /// Signs a member in with their workspace's name, their email and their password. On
    /// success, a new session and the secret for its cookie; the member's `member.signed_in`
    /// event. On failure, [`Error::SignInRefused`] whatever the reason (no such workspace or
    /// email, no password set, a wrong one), and a `member.signed_in` event with outcome
    /// `denied` saying which, for the audit log.
    ///
    /// # Errors
    /// [`Error::SignInRefused`]; [`Error::RateLimited`] after too many failures from the
    /// client's address or for the account; [`Error::Busy`].
    pub async fn sign_in(
        &self,
        workspace_name: &str,
        email: &str,
        password: Password,
        context: &Context,
    ) -> Result<(SignedIn, BearerSecret), Error> {
        let email = email.trim().to_lowercase();
        let attempt = self.attempt(context, workspace_name, &email)?;
        let mut conn = self.inner.db.pool().acquire().await?;
        let member = sqlx::query(
            "SELECT m.id, m.workspace_id, m.name, m.email, m.role, m.created_at_us, p.hash \
             FROM members m JOIN workspaces w ON w.id = m.workspace_id \
             LEFT JOIN member_passwords p ON p.member_id = m.id \
             WHERE w.name = $1 AND m.email = $2 AND m.removed_at_us IS NULL",
        )
        .bind(workspace_name)
        .bind(email.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        let (member, stored) = match member {
            Some(row) => (
                Some(crate::workspaces::member_from_row(&row)?),
                row.try_get::<Option<String>, _>("hash")?,
            ),
            None => (None, None),
        };
        let had_password = stored.is_some();
        let matches = self.password_matches(password, stored).await?;
        let now = self.now();
        let member = match member {
            Some(member) if matches => member,
            member => {
                // The attempt stays counted.
                let reason = match (&member, had_password) {
                    (None, _) => "unknown_account",
                    (Some(_), false) => "no_password",
                    (Some(_), true) => "wrong_password",
                };
                let event = NewEvent {
                    workspace_id: member.as_ref().map(|m| m.workspace_id.clone()),
                    action: Action::MemberSignedIn,
                    target_kind: member.as_ref().map(|_| "member"),
                    target_id: member.as_ref().map(|m| m.id.clone()),
                    outcome: Outcome::Denied,
                    // What was typed as an email, only if it looks like one: a password typed
                    // into the wrong field must not land in the log.
                    details: json!({ "email": plausible_email(&email), "reason": reason }),
                };
                let mut tx = self.inner.db.begin_write().await?;
                self.inner
                    .audit
                    .append(&mut tx, context, &event, now)
                    .await?;
                tx.commit().await?;
                return Err(Error::SignInRefused);
            }
        };
        attempt.succeeded();
        let mut conn = self.inner.db.pool().acquire().await?;
        let has_second_factor = super::factors::has_second_factor(&mut conn, &member.id).await?;
        let second_factor_required =
            super::factors::required(&mut conn, &member.workspace_id).await?;
        drop(conn);
        let secret = BearerSecret::random()?;
        let session = Session {
            id: new_id("ses_")?,
            member_id: member.id.clone(),
            workspace_id: member.workspace_id.clone(),
            created_at: from_micros(to_micros(now))?,
            last_seen_at: from_micros(to_micros(now))?,
            expires_at: from_micros(to_micros(now + self.inner.sessions.lifetime))?,
            client_ip: context.client_ip.map(|ip| ip.to_string()),
            user_agent: context
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(256).collect()),
            awaiting_second_factor: has_second_factor,
        };
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, member_id, workspace_id, created_at_us, \
             last_seen_at_us, expires_at_us, client_ip, user_agent, needs_factor) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9)",
        )
        .bind(session.id.as_str())
        .bind(secret.stored_hash())
        .bind(session.member_id.as_str())
        .bind(session.workspace_id.as_str())
        .bind(to_micros(now))
        .bind(to_micros(session.expires_at))
        .bind(session.client_ip.as_deref())
        .bind(session.user_agent.as_deref())
        .bind(i64::from(session.awaiting_second_factor))
        .execute(&mut *tx)
        .await?;
        let signed_in = SignedIn {
            member,
            session,
            has_second_factor,
            second_factor_required,
        };
        if has_second_factor {
            // Signed in once the code is right (`complete_sign_in`), audited then.
            tx.commit().await?;
            return Ok((signed_in, secret));
        }
        let (member, session) = (&signed_in.member, &signed_in.session);
        let event = NewEvent {
            workspace_id: Some(member.workspace_id.clone()),
            action: Action::MemberSignedIn,
            target_kind: Some("member"),
            target_id: Some(member.id.clone()),
            outcome: Outcome::Success,
            details: json!({ "session": session.id }),
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
        Ok((signed_in, secret))
    }

    /// The live session a browser's secret opens, and its member; refreshes its last use.
    ///
    /// # Errors
    /// [`Error::NotSignedIn`] for an unknown, ended, expired or idle session, or a removed
    /// member.
    pub async fn session(&self, secret: &BearerSecret) -> Result<SignedIn, Error> {
        let signed_in = self.any_session(secret).await?;
        if signed_in.session.awaiting_second_factor {
            return Err(Error::NotSignedIn);
        }
        Ok(signed_in)
    }

    /// A live session, whether or not its second factor is still to come.
    pub(super) async fn any_session(&self, secret: &BearerSecret) -> Result<SignedIn, Error> {
        let now = self.now();
        let row = sqlx::query(&format!(
            "{SELECT_SESSION} WHERE s.secret_hash = $1 AND s.ended_at_us IS NULL \
             AND m.removed_at_us IS NULL"
        ))
        .bind(secret.stored_hash())
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(Error::NotSignedIn)?;
        let signed_in = signed_in_from_row(&row)?;
        let session = &signed_in.session;
        if now >= session.expires_at || now - session.last_seen_at >= self.inner.sessions.idle {
            return Err(Error::NotSignedIn);
        }
        if now - session.last_seen_at >= SEEN_RESOLUTION {
            sqlx::query("UPDATE sessions SET last_seen_at_us = $1 WHERE id = $2")
                .bind(to_micros(now))
                .bind(session.id.as_str())
                .execute(self.inner.db.pool())
                .await?;
        }
        Ok(signed_in)
    }

    /// Ends the session in `signed_in` (sign-out). Audited as `member.signed_out`.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn sign_out(&self, signed_in: &SignedIn, context: &Context) -> Result<(), Error> {
        self.end_session(signed_in, &signed_in.session.id, context)
            .await
            .map(|_| ())
    }

    /// Ends one of the signed-in member's own sessions (their account page lists them); ending
    /// the current one is signing out. Idempotent. Audited as `member.signed_out` or
    /// `member.session_ended`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a session that is not theirs.
    pub async fn end_session(
        &self,
        signed_in: &SignedIn,
        session_id: &str,
        context: &Context,
    ) -> Result<bool, Error> {
        let current = session_id == signed_in.session.id;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let exists =
            sqlx::query("SELECT ended_at_us FROM sessions WHERE id = $1 AND member_id = $2")
                .bind(session_id)
                .bind(signed_in.member.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound { what: "session" })?;
        if exists.try_get::<Option<i64>, _>("ended_at_us")?.is_some() {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET ended_at_us = $1, ended_reason = $2 WHERE id = $3")
            .bind(to_micros(now))
            .bind(if current {
                "signed_out"
            } else {
                "ended_by_member"
            })
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            workspace_id: Some(signed_in.member.workspace_id.clone()),
            action: if current {
                Action::MemberSignedOut
            } else {
                Action::MemberSessionEnded
            },
            target_kind: Some("session"),
            target_id: Some(session_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({}),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims a form's one-time id for a member: `true` the first time, `false` when the form
    /// was submitted before (a reload, the back button). Claims older than a day are dropped.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an id that is not 64 hex digits; [`Error::Storage`].
    pub async fn claim_form(&self, member_id: &str, form_id: &str) -> Result<bool, Error> {
        if BearerSecret::parse(form_id).is_none() {
            return Err(Error::invalid(
                "form_id",
                "this form is damaged; reload the page",
            ));
        }
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        sqlx::query("DELETE FROM form_submissions WHERE at_us < $1")
            .bind(to_micros(now - Duration::days(1)))
            .execute(&mut *tx)
            .await?;
        let claimed = sqlx::query(
            "INSERT INTO form_submissions (id, member_id, at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(form_id)
        .bind(member_id)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(claimed)
    }

    /// A member's live sessions, newest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_sessions(&self, member_id: &str) -> Result<Vec<Session>, Error> {
        let now = self.now();
        let rows = sqlx::query(&format!(
            "{SELECT_SESSION} WHERE s.member_id = $1 AND s.ended_at_us IS NULL AND s.needs_factor = 0 \
             AND s.expires_at_us > $2 AND s.last_seen_at_us > $3 \
             ORDER BY s.created_at_us DESC, s.id"
        ))
        .bind(member_id)
        .bind(to_micros(now))
        .bind(to_micros(now - self.inner.sessions.idle))
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| signed_in_from_row(row).map(|s| s.session))
            .collect()
    }
}

/// Ends every live session of a member but `except`; returns how many.
pub(crate) async fn end_all(
    conn: &mut Connection,
    member_id: &str,
    except: Option<&str>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<u64, Error> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at_us = $1, ended_reason = $2 \
         WHERE member_id = $3 AND ended_at_us IS NULL AND id <> $4",
    )
    .bind(to_micros(now))
    .bind(reason)
    .bind(member_id)
    .bind(except.unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// `email` if it is shaped like an email address (what the audit log may keep of a failed
/// sign-in), or a placeholder.
fn plausible_email(email: &str) -> &str {
    if crate::validate::email(email).is_ok() && email.len() <= 254 {
        email
    } else {
        "(not an email address)"
    }
}

/// The failure limiter's key for an account: a digest of workspace name and email, so that the
/// limiter's table holds neither.
pub(super) fn account_key(workspace_name: &str, email: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(workspace_name.as_bytes())
        .chain_update([0])
        .chain_update(email.as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

fn signed_in_from_row(row: &AnyRow) -> Result<SignedIn, Error> {
    let role: String = row.try_get("m_role")?;
    let member_id: String = row.try_get("member_id")?;
    let workspace_id: String = row.try_get("workspace_id")?;
    Ok(SignedIn {
        member: Member {
            id: member_id.clone(),
            workspace_id: workspace_id.clone(),
            name: row.try_get("m_name")?,
            email: row.try_get("m_email")?,
            role: role.parse()?,
            created_at: from_micros(row.try_get("m_created_at_us")?)?,
        },
        session: Session {
            id: row.try_get("id")?,
            member_id,
            workspace_id,
            created_at: from_micros(row.try_get("created_at_us")?)?,
            last_seen_at: from_micros(row.try_get("last_seen_at_us")?)?,
            expires_at: from_micros(row.try_get("expires_at_us")?)?,
            client_ip: row.try_get("client_ip")?,
            user_agent: row.try_get("user_agent")?,
            awaiting_second_factor: row.try_get::<i64, _>("needs_factor")? != 0,
        },
        has_second_factor: row.try_get::<Option<String>, _>("has_factor")?.is_some(),
        second_factor_required: row.try_get::<i64, _>("require_second_factor")? != 0,
    })
}
