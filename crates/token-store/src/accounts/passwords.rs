//! Members' passwords: how strong a new one must be, hashing it on the scrypt pool, storing it,
//! checking it, changing it.

use audit::{Action, Context, NewEvent, Outcome};
use knowmind_db::{Connection, to_micros};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use token_core::rand::rngs::SysRng;
use token_core::{Password, TokenHash};

use crate::error::Error;
use crate::store::Store;

use super::SignedIn;

/// The least zxcvbn score (0–4) a new password needs: 3 is "safely unguessable: moderate
/// protection from offline slow-hash scenario", and every hash here is a slow one.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Refuses a new password that is too short, too long or too easy to guess, given `hints`
/// (the member's email and name, the workspace's name), which an attacker would try first.
///
/// # Errors
/// [`Error::Invalid`] (field `password`) saying why, never quoting the password.
pub fn check_strength(text: String, hints: &[&str]) -> Result<Password, Error> {
    let password = Password::new(text).map_err(|e| Error::invalid("password", e.to_string()))?;
    let estimate = zxcvbn::zxcvbn(password.expose_secret(), hints);
    if estimate.score() < MIN_SCORE {
        let advice = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "add another word or two; uncommon words are better".into());
        return Err(Error::invalid(
            "password",
            format!("too easy to guess: {advice}"),
        ));
    }
    Ok(password)
}

impl Store {
    /// Hashes `password` on the scrypt pool with the store's parameters.
    pub(super) async fn hash_password(&self, password: Password) -> Result<TokenHash, Error> {
        let params = self.inner.params;
        self.inner
            .hasher
            .run(move || TokenHash::of_password(&password, &params, &mut SysRng))
            .await?
            .map_err(|_| Error::System("the operating system's random generator failed"))
    }

    /// Checks `password` against `stored` (or, when there is none, spends the same time hashing
    /// it, so that an unknown email cannot be told from a wrong password by the clock).
    pub(super) async fn password_matches(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, Error> {
        let params = self.inner.params;
        self.inner
            .hasher
            .run(move || match stored.map(|s| s.parse::<TokenHash>()) {
                Some(Ok(hash)) => hash.verify_password(&password).is_ok(),
                Some(Err(_)) | None => {
                    let _ = TokenHash::of_password(&password, &params, &mut SysRng);
                    false
                }
            })
            .await
    }

    /// The stored password hash of a member, if they have set one.
    pub(super) async fn stored_password(
        &self,
        conn: &mut Connection,
        member_id: &str,
    ) -> Result<Option<String>, Error> {
        Ok(
            sqlx::query("SELECT hash FROM member_passwords WHERE member_id = $1")
                .bind(member_id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get("hash"))
                .transpose()?,
        )
    }

    /// Changes a signed-in member's password, after checking their current one. Every other
    /// session of theirs ends (whoever knew the old password may be signed in elsewhere); the
    /// one in `signed_in` stays. Audited as `member.password_changed`.
    ///
    /// # Errors
    /// [`Error::SignInRefused`] for a wrong current password; [`Error::Invalid`] for a weak new
    /// one; [`Error::Busy`].
    pub async fn change_password(
        &self,
        signed_in: &SignedIn,
        current: Password,
        new: String,
        context: &Context,
    ) -> Result<u64, Error> {
        let member = &signed_in.member;
        let workspace = self.get_workspace(&member.workspace_id).await?;
        let new = check_strength(new, &[&member.email, &member.name, &workspace.name])?;
        self.recheck_password(signed_in, current, Action::MemberPasswordChanged, context)
            .await?;
        let hash = self.hash_password(new).await?;
        let now = self.now();
        let mut tx = self.inner.db.begin_write().await?;
        set_password(&mut tx, &member.id, &hash, now).await?;
        let ended = super::sessions::end_all(
            &mut tx,
            &member.id,
            Some(&signed_in.session.id),
            "password_changed",
            now,
        )
        .await?;
        let event = NewEvent {
            workspace_id: Some(member.workspace_id.clone()),
            action: Action::MemberPasswordChanged,
            target_kind: Some("member"),
            target_id: Some(member.id.clone()),
            outcome: Outcome::Success,
            details: json!({ "other_sessions_ended": ended }),
        };
        self.inner
            .audit
            .append(&mut tx, context, &event, now)
            .await?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// Stores (or replaces) a member's password hash.
pub(super) async fn set_password(
    conn: &mut Connection,
    member_id: &str,
    hash: &TokenHash,
    now: OffsetDateTime,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO member_passwords (member_id, hash, changed_at_us) VALUES ($1, $2, $3) \
         ON CONFLICT (member_id) DO UPDATE SET hash = excluded.hash, \
         changed_at_us = excluded.changed_at_us",
    )
    .bind(member_id)
    .bind(hash.as_phc())
    .bind(to_micros(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in [
            "password1234",
            "aaaaaaaaaaaa",
            "qwertyuiopasdf",
            "ada@example.org1",
        ] {
            let err = check_strength(weak.into(), &["ada@example.org", "Ada"]).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("invalid password"), "{message}");
            assert!(
                !message.contains(weak),
                "the password is never quoted: {message}"
            );
        }
        assert!(check_strength("short".into(), &[]).is_err());
        assert!(check_strength("correct horse battery staple".into(), &[]).is_ok());
    }

    #[test]
    fn hints_count_against_a_password() {
        // Strong alone, weak for the member whose email it is.
        let text = "qzmvbtkwrypl@example.org";
        assert!(check_strength(text.into(), &[]).is_ok());
        assert!(check_strength(text.into(), &["qzmvbtkwrypl@example.org"]).is_err());
    }
}
