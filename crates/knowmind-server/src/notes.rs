//! Notes: the workspace content behind the `read` and `write` scopes.

use knowmind_db::{Arg, Db, Sql, from_micros, to_micros};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use knowmind_axum::ApiError;

/// A note.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Note {
    /// `note_` and 16 base62 characters.
    pub id: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Who created it (`token:…`).
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Title and body of a note, as sent by clients.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// 1–200 characters, one line (the API's text rules, `knowmind_api::text`).
    #[schema(schema_with = knowmind_api::schema::title)]
    pub title: String,
    /// Up to 100,000 characters; newlines and tabs, no other control characters.
    #[serde(default)]
    #[schema(schema_with = knowmind_api::schema::body)]
    pub body: String,
}

impl NoteInput {
    /// The title (surrounding whitespace removed) and body, if they follow the text rules.
    fn validate(&self) -> Result<(String, String), ApiError> {
        let title = knowmind_api::text::line("title", &self.title, 200)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let body = knowmind_api::text::text("body", &self.body, 100_000)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok((title, body))
    }
}

/// `note_` and 16 base62 characters.
fn is_note_id(text: &str) -> bool {
    text.strip_prefix("note_")
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Notes storage.
#[derive(Debug, Clone)]
pub struct Notes {
    db: Db,
}

const SELECT: &str = "SELECT id, title, body, created_by, created_at_us, updated_at_us FROM notes";

impl Notes {
    /// Notes over `db`, running their migration.
    ///
    /// # Errors
    /// If the migration fails.
    pub async fn open(db: Db) -> Result<Self, audit::Error> {
        db.migrate(
            &sqlx::migrate!("migrations/sqlite"),
            &sqlx::migrate!("migrations/postgres"),
        )
        .await?;
        Ok(Notes { db })
    }

    /// A workspace's notes, newest first, after the cursor.
    ///
    /// # Errors
    /// 400 for a bad cursor; 500 on database failure.
    pub async fn list(
        &self,
        workspace: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Note>, Option<String>), ApiError> {
        let limit = i64::from(limit.clamp(1, 200));
        let mut sql = Sql::new(self.db.backend(), SELECT);
        sql.push(" WHERE workspace_id = ")
            .bind(Arg::Text(workspace.to_owned()));
        if let Some(cursor) = cursor {
            let (at, id) = cursor
                .split_once('.')
                .filter(|(_, id)| is_note_id(id))
                .and_then(|(at, id)| Some((knowmind_api::cursor_number(at)?, id.to_owned())))
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
            sql.push(" AND (created_at_us < ")
                .bind(Arg::Int(at))
                .push(" OR (created_at_us = ")
                .bind(Arg::Int(at))
                .push(" AND id < ")
                .bind(Arg::Text(id))
                .push("))");
        }
        sql.push(" ORDER BY created_at_us DESC, id DESC LIMIT ")
            .bind(Arg::Int(limit));
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(audit::Error::from)?;
        let notes = rows
            .iter()
            .map(note_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match notes.last() {
            Some(last) if notes.len() as i64 == limit => {
                Some(format!("{}.{}", to_micros(last.created_at), last.id))
            }
            _ => None,
        };
        Ok((notes, next))
    }

    /// One note.
    ///
    /// # Errors
    /// 404.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<Note, ApiError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1 AND workspace_id = $2"))
            .bind(id)
            .bind(workspace)
            .fetch_optional(self.db.pool())
            .await
            .map_err(audit::Error::from)?
            .ok_or_else(|| ApiError::not_found("note"))?;
        note_from_row(&row)
    }

    /// Creates a note.
    ///
    /// # Errors
    /// 422 for bad input.
    pub async fn create(
        &self,
        workspace: &str,
        input: &NoteInput,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<Note, ApiError> {
        let (title, body) = input.validate()?;
        let id = token_core::random_id(&mut token_core::rand::rngs::SysRng, "note_")
            .map_err(|_| ApiError::internal())?;
        sqlx::query(
            "INSERT INTO notes (id, workspace_id, title, body, created_by, created_at_us, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.as_str())
        .bind(workspace)
        .bind(title)
        .bind(body)
        .bind(by)
        .bind(to_micros(now))
        .execute(self.db.pool())
        .await
        .map_err(audit::Error::from)?;
        self.get(workspace, &id).await
    }

    /// Replaces a note's title and body.
    ///
    /// # Errors
    /// 404; 422.
    pub async fn update(
        &self,
        workspace: &str,
        id: &str,
        input: &NoteInput,
        now: OffsetDateTime,
    ) -> Result<Note, ApiError> {
        let (title, body) = input.validate()?;
        let done = sqlx::query(
            "UPDATE notes SET title = $1, body = $2, updated_at_us = $3 WHERE id = $4 AND workspace_id = $5",
        )
        .bind(title)
        .bind(body)
        .bind(to_micros(now))
        .bind(id)
        .bind(workspace)
        .execute(self.db.pool())
        .await
        .map_err(audit::Error::from)?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("note"));
        }
        self.get(workspace, id).await
    }

    /// Deletes a note.
    ///
    /// # Errors
    /// 404.
    pub async fn delete(&self, workspace: &str, id: &str) -> Result<(), ApiError> {
        let done = sqlx::query("DELETE FROM notes WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace)
            .execute(self.db.pool())
            .await
            .map_err(audit::Error::from)?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("note"));
        }
        Ok(())
    }
}

fn note_from_row(row: &AnyRow) -> Result<Note, ApiError> {
    let get = || -> Result<Note, audit::Error> {
        Ok(Note {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            created_by: row.try_get("created_by")?,
            created_at: from_micros(row.try_get("created_at_us")?)?,
            updated_at: from_micros(row.try_get("updated_at_us")?)?,
        })
    };
    Ok(get()?)
}
