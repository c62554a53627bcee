//! Second factors: setting up an authenticator app (TOTP) and its recovery codes, removing it,
//! a workspace requiring one of everyone, and the second step of signing in.

use audit::{Action, Actor, Context, NewEvent, Outcome};
use knowmind_db::{Connection, to_micros};
use serde_json::json;
use sqlx::Row;
use time::Duration;
use token_core::Password;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::store::Store;

use super::totp::{self, TotpSetup};
use super::{BearerSecret, SignedIn};

/// How long a session may wait for its second factor after the password.
const FACTOR_WINDOW: Duration = Duration::minutes(5);

/// Whether a member has a confirmed authenticator app.
pub(super) async fn has_second_factor(
    conn: &mut Connection,
    member_id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "SELECT member_id FROM member_totp WHERE member_id = $1 AND confirmed_at_us IS NOT NULL",
    )
    .bind(member_id)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// Whether a workspace requires a second factor of everyone.
pub(super) async fn required(conn: &mut Connection, workspace_id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT require_second_factor FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound { what: "workspace" })?;
    Ok(row.try_get::<i64, _>("require_second_factor")? != 0)
}

fn factor_event(signed_in: &SignedIn, action: Action, details: serde_json::Value) -> NewEvent {
    NewEvent {
        workspace_id: Some(signed_in.member.workspace_id.clone()),
        action,
        target_kind: Some("member"),
        target_id: Some(signed_in.member.id.clone()),
        outcome: Outcome::Success,
        details,
    }
}

impl Store {
    /// Checks a signed-in member's password again before a sensitive change (`action`):
    /// limited like a sign-in, and a wrong one is audited as `action` denied.
    pub(super) async fn recheck_password(
        &self,
        signed_in: &SignedIn,
        password: Password,
        action: Action,
        context: &Context,
    ) -> Result<(), Error> {
        let member = &signed_in.member;
        let workspace = self.get_workspace(&member.workspace_id).await?;
        let attempt = self.attempt(context, &workspace.name, &member.email)?;
        let mut conn = self.inner.db.pool().acquire().await?;
        let stored = self.stored_password(&mut conn, &member.id).await?;
        drop(conn);
        if self.password_matches(password, stored).await? {
            attempt.succeeded();
            return Ok(());
        }
        let event = NewEvent {
            outcome: Outcome::Denied,
            ..factor_event(signed_in, action, json!({ "reason": "wrong_password" }))
        };
        let mut tx = self.inner.db.begin_write().await?;
        self.inner
            .audit
            .append(&mut tx, context, &event, self.now())
            .await?;
        tx.commit().await?;
        Err(Error::SignInRefused)
    }

    fn factor_key(&self) -> Result<&[u8; 32], Error> {
        self.inner.factor_key.as_deref().ok_or_else(|| {
            Error::invalid(
                "second factor",
                "this server has no audit key to seal second-factor secrets with",
            )
        })
    }

    /// Begins setting up an authenticator app: a new secret, sealed and stored unconfirmed
    /// (replacing an earlier unconfirmed one), returned once to be shown as a QR code. Nothing
    /// changes for signing in until [`Store::confirm_totp`].
    ///
    /// The member's password is asked again: a stolen session cookie must not be enough to
    /// put the thief's phone on the account.
    ///
    /// # Errors
    /// [`Error::SignInRefused`] for a wrong password; [`Error::Conflict`] if the member has one
    /// already; [`Error::Invalid`] without an audit key.
    pub async fn start_totp(
        &self,
        signed_in: &SignedIn,
        password: Password,
        context: &Context,
    ) -> Result<TotpSetup, Error> {
        let key = self.factor_key()?;
        self.recheck_password(signed_in, password, Action::MemberFactorAdded, context)
            .await?;
        let member = &signed_in.member;
        let setup = TotpSetup::generate(&member.email)?;
        let sealed = crate::sealed::seal(key, &member.id, setup.secret())?;
        let mut tx = self.inner.db.begin_write().await?;
        if has_second_factor(&mut tx, &member.id).await? {
            return Err(Error::Conflict(
                "an authenticator app is set up already; remove it first".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO member_totp (member_id, secret_sealed, confirmed_at_us, last_step) \
             VALUES ($1, $2, NULL, 0) ON CONFLICT (member_id) DO UPDATE \
             SET secret_sealed = excluded.secret_sealed, confirmed_at_us = NULL, last_step = 0",
        )
        .bind(member.id.as_str())
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(setup)
    }

    /// Confirms the authenticator app with a code from it: from now on signing in asks for a
    /// code. Returns ten recovery codes, to show once (replacing any earlier ones). Audited as
    /// `member.factor_added`.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `code`) for a wrong code or no setup in progress.
    pub async fn confirm_totp(
        &self,
        signed_in: &SignedIn,
        code: &str,
        context: &Context,
    ) -> Result<Vec<Zeroizing<String>>, Error> {
        let key = self.factor_key()?;
        let member = &signed_in.member;
        let now = self.now();
        let wrong = || {
            Error::invalid(
                "code",
                "that code is not the app's current one; try the next",
            )
        };
        let mut tx = self.inner.db.begin_write().await?;
        let row = sqlx::query(
            "SELECT secret_sealed FROM member_totp WHERE member_id = $1 AND confirmed_at_us IS NULL",
        )
        .bind(member.id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(wrong)?;
        let secret =
            crate::sealed::open(key, &member.id, &row.try_get::<String, _>("secret_sealed")?)?;
        let step = totp::matching_step(&secret, code, now).ok_or_else(wrong)?;
        sqlx::query(
            "UPDATE member_totp SET confirmed_at_us = $1, last_step = $2 WHERE member_id = $3",
        )
        .bind(to_micros(now))
        .bind(step)
        .bind(member.id.as_str())
        .execute(&mut *tx)
        .await?;
        let codes = totp::recovery_codes()?;
        sqlx::query("DELETE FROM recovery_codes WHERE member_id = $1")
            .bind(member.id.as_str())
            .execute(&mut *tx)
            .await?;
        for (_, hash) in &codes {
            sqlx::query("INSERT INTO recovery_codes (member_id, code_hash) VALUES ($1, $2)")
                .bind(member.id.as_str())
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let event = factor_event(
            signed_in,
            Action::MemberFactorAdded,
            json!({ "factor": "totp", "recovery_codes": codes.len() }),
        );
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(codes.into_iter().map(|(code, _)| code).collect())
    }

    /// Removes the member's authenticator app and recovery codes, after checking their
    /// password. Audited as `member.factor_removed`.
    ///
    /// # Errors
    /// [`Error::SignInRefused`] for a wrong password; [`Error::NotFound`] if there is none.
    pub async fn remove_totp(
        &self,
        signed_in: &SignedIn,
        password: Password,
        context: &Context,
    ) -> Result<(), Error> {
        let member = &signed_in.member;
        self.recheck_password(signed_in, password, Action::MemberFactorRemoved, context)
            .await?;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let removed = sqlx::query("DELETE FROM member_totp WHERE member_id = $1")
            .bind(member.id.as_str())
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "second factor",
            });
        }
        sqlx::query("DELETE FROM recovery_codes WHERE member_id = $1")
            .bind(member.id.as_str())
            .execute(&mut *tx)
            .await?;
        let event = factor_event(
            signed_in,
            Action::MemberFactorRemoved,
            json!({ "factor": "totp" }),
        );
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the workspace requires a second factor of every member who signs in to the
    /// dashboard; members without one are sent to set it up before anything else. Audited as
    /// `workspace.policy_changed`.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn require_second_factor(
        &self,
        workspace_id: &str,
        require: bool,
        context: &Context,
    ) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        let before = required(&mut tx, workspace_id).await?;
        if before == require {
            return Ok(());
        }
        sqlx::query("UPDATE workspaces SET require_second_factor = $1 WHERE id = $2")
            .bind(i64::from(require))
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            workspace_id: Some(workspace_id.to_owned()),
            action: Action::WorkspacePolicyChanged,
            target_kind: Some("workspace"),
            target_id: Some(workspace_id.to_owned()),
            outcome: Outcome::Success,
            details: json!({ "require_second_factor": { "from": before, "to": require } }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A session waiting for its second factor (password given less than five minutes ago).
    ///
    /// # Errors
    /// [`Error::NotSignedIn`] for anything else.
    pub async fn pending_session(&self, secret: &BearerSecret) -> Result<SignedIn, Error> {
        let signed_in = self.any_session(secret).await?;
        let session = &signed_in.session;
        if !session.awaiting_second_factor || self.now() - session.created_at > FACTOR_WINDOW {
            return Err(Error::NotSignedIn);
        }
        Ok(signed_in)
    }

    /// The second step of signing in: a code from the member's authenticator app, or one of
    /// their recovery codes (spent). Each code works once. Audited as `member.signed_in`
    /// (success, or denied with reason `wrong_code`); failures count against the account and
    /// the address like wrong passwords.
    ///
    /// # Errors
    /// [`Error::NotSignedIn`] for a session not waiting for a code; [`Error::SignInRefused`]
    /// for a wrong code; [`Error::RateLimited`].
    pub async fn complete_sign_in(
        &self,
        secret: &BearerSecret,
        code: &str,
        context: &Context,
    ) -> Result<SignedIn, Error> {
        let mut signed_in = self.pending_session(secret).await?;
        let member = signed_in.member.clone();
        let key = self.factor_key()?;
        let workspace = self.get_workspace(&member.workspace_id).await?;
        let attempt = self.attempt(context, &workspace.name, &member.email)?;
        let now = self.now();
        let as_member = Context {
            actor: Actor::Member(member.id.clone()),
            ..context.clone()
        };
        let mut tx = self.inner.db.begin_write().await?;
        let row = sqlx::query(
            "SELECT secret_sealed, last_step FROM member_totp \
             WHERE member_id = $1 AND confirmed_at_us IS NOT NULL",
        )
        .bind(member.id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotSignedIn)?;
        let sealed: String = row.try_get("secret_sealed")?;
        let last_step: i64 = row.try_get("last_step")?;
        let secret_bytes = crate::sealed::open(key, &member.id, &sealed)?;
        let factor = match totp::matching_step(&secret_bytes, code, now) {
            Some(step) if step > last_step => {
                // Conditional, so that of two sign-ins racing with one code only one wins.
                let used = sqlx::query(
                    "UPDATE member_totp SET last_step = $1 WHERE member_id = $2 AND last_step < $1",
                )
                .bind(step)
                .bind(member.id.as_str())
                .execute(&mut *tx)
                .await?;
                (used.rows_affected() == 1).then_some("totp")
            }
            Some(_) => None, // replayed
            None => match totp::recovery_hash(code) {
                Some(hash) => {
                    let spent = sqlx::query(
                        "UPDATE recovery_codes SET used_at_us = $1 \
                         WHERE member_id = $2 AND code_hash = $3 AND used_at_us IS NULL",
                    )
                    .bind(to_micros(now))
                    .bind(member.id.as_str())
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                    (spent.rows_affected() == 1).then_some("recovery_code")
                }
                None => None,
            },
        };
        let Some(factor) = factor else {
            drop(tx); // the attempt stays counted
            let event = NewEvent {
                outcome: Outcome::Denied,
                ..factor_event(
                    &signed_in,
                    Action::MemberSignedIn,
                    json!({ "reason": "wrong_code" }),
                )
            };
            let mut tx = self.inner.db.begin_write().await?;
            self.inner
                .audit
                .append(&mut tx, &as_member, &event, now)
                .await?;
            tx.commit().await?;
            return Err(Error::SignInRefused);
        };
        attempt.succeeded();
        sqlx::query("UPDATE sessions SET needs_factor = 0 WHERE id = $1")
            .bind(signed_in.session.id.as_str())
            .execute(&mut *tx)
            .await?;
        let event = factor_event(
            &signed_in,
            Action::MemberSignedIn,
            json!({ "session": signed_in.session.id, "second_factor": factor }),
        );
        self.inner
            .audit
            .append(&mut tx, &as_member, &event, now)
            .await?;
        tx.commit().await?;
        signed_in.session.awaiting_second_factor = false;
        Ok(signed_in)
    }
}
