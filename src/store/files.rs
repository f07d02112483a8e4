//! Organisation keys, uploads in progress, stored files, downloads and transcription jobs.

use articula_protocol::{CaseId, FileId, FileKind, OrgId, UserId};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Db, StoreError, parse};
use crate::with_db;

/// An upload in progress (or finished).
#[derive(Clone, Debug)]
pub struct UploadRow {
    /// Id (also the id of the file it becomes).
    pub id: Uuid,
    /// Case.
    pub case_id: CaseId,
    /// Uploader.
    pub user_id: UserId,
    /// Whose key seals it: the case's clinic.
    pub org_id: OrgId,
    /// File name.
    pub filename: String,
    /// Media type the client declared (informational only).
    pub declared_type: Option<String>,
    /// What it is for, if the client said.
    pub kind: Option<FileKind>,
    /// Type detected from the first bytes.
    pub detected_type: Option<String>,
    /// Total length.
    pub length: u64,
    /// Organisation key id.
    pub key_id: String,
    /// Data key, wrapped by the organisation key.
    pub wrapped_dek: String,
    /// `receiving`, `done`, `refused`, `terminated`, `expired`.
    pub status: String,
    /// Expiry (ms).
    pub expires_at: i64,
    /// Why it was refused.
    pub error: Option<String>,
}

/// A stored file.
#[derive(Clone, Debug)]
pub struct FileRow {
    /// Id.
    pub id: FileId,
    /// Case.
    pub case_id: CaseId,
    /// Organisation whose key seals it.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: FileKind,
    /// Detected media type.
    pub content_type: String,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Uploader.
    pub uploaded_by: UserId,
    /// Stored at (ms).
    pub created_at: i64,
    /// Random object key.
    pub object_key: String,
    /// Bytes in storage (after compression and sealing).
    pub stored_size: u64,
    /// Organisation key id.
    pub key_id: String,
    /// Wrapped data key.
    pub wrapped_dek: String,
    /// Stored length of each segment, in order.
    pub segments: Vec<u64>,
    /// Seq of its `file_added` event.
    pub seq: Option<u64>,
}

/// A file as the REST API lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FileView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Media type detected from the content.
    pub content_type: String,
    /// `scan`, `photo`, `design`, `voice_note`, `document`.
    pub kind: String,
    /// Uploader.
    pub uploaded_by: String,
    /// Added (ms).
    pub created_at: i64,
    /// Seq of the `file_added` event.
    pub seq: Option<u64>,
}

impl From<&FileRow> for FileView {
    fn from(f: &FileRow) -> Self {
        Self {
            id: f.id.to_string(),
            name: f.name.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            content_type: f.content_type.clone(),
            kind: f.kind.as_str().to_owned(),
            uploaded_by: f.uploaded_by.to_string(),
            created_at: f.created_at,
            seq: f.seq,
        }
    }
}

const UPLOAD_COLS: &str = "id, case_id, user_id, org_id, filename, declared_type, kind, detected_type, length, key_id, wrapped_dek, status, expires_at, error";
const FILE_COLS: &str = "id, case_id, org_id, name, kind, content_type, size, sha256, uploaded_by, created_at, object_key, stored_size, key_id, wrapped_dek, segments, seq";

fn upload_from_row<R: Row>(r: &R) -> Result<UploadRow, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let kind: Option<String> = r.try_get("kind")?;
    Ok(UploadRow {
        id: parse(&r.try_get::<String, _>("id")?, "upload id")?,
        case_id: parse(&r.try_get::<String, _>("case_id")?, "case id")?,
        user_id: parse(&r.try_get::<String, _>("user_id")?, "user id")?,
        org_id: parse(&r.try_get::<String, _>("org_id")?, "org id")?,
        filename: r.try_get("filename")?,
        declared_type: r.try_get("declared_type")?,
        kind: kind.map(|k| parse(&k, "file kind")).transpose()?,
        detected_type: r.try_get("detected_type")?,
        length: r.try_get::<i64, _>("length")? as u64,
        key_id: r.try_get("key_id")?,
        wrapped_dek: r.try_get("wrapped_dek")?,
        status: r.try_get("status")?,
        expires_at: r.try_get("expires_at")?,
        error: r.try_get("error")?,
    })
}

fn file_from_row<R: Row>(r: &R) -> Result<FileRow, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let segments: String = r.try_get("segments")?;
    Ok(FileRow {
        id: parse(&r.try_get::<String, _>("id")?, "file id")?,
        case_id: parse(&r.try_get::<String, _>("case_id")?, "case id")?,
        org_id: parse(&r.try_get::<String, _>("org_id")?, "org id")?,
        name: r.try_get("name")?,
        kind: parse(&r.try_get::<String, _>("kind")?, "file kind")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get::<i64, _>("size")? as u64,
        sha256: r.try_get("sha256")?,
        uploaded_by: parse(&r.try_get::<String, _>("uploaded_by")?, "user id")?,
        created_at: r.try_get("created_at")?,
        object_key: r.try_get("object_key")?,
        stored_size: r.try_get::<i64, _>("stored_size")? as u64,
        key_id: r.try_get("key_id")?,
        wrapped_dek: r.try_get("wrapped_dek")?,
        segments: serde_json::from_str(&segments)
            .map_err(|e| StoreError::Corrupt(format!("segments: {e}")))?,
        seq: r.try_get::<Option<i64>, _>("seq")?.map(|s| s as u64),
    })
}

impl Db {
    /// The newest live key of an organisation: (id, wrapped, master key id).
    pub async fn current_org_key(&self, org: OrgId) -> Result<Option<(String, String, String)>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(
                "SELECT id, wrapped, master_key_id FROM org_keys WHERE org_id = $1 AND destroyed_at IS NULL
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(org.to_string()).fetch_optional(pool).await?;
            r.map(|r| Ok((r.try_get("id")?, r.try_get("wrapped")?, r.try_get("master_key_id")?))).transpose()
        })
    }

    /// A live organisation key by id: (org, wrapped, master key id).
    pub async fn org_key_by_id(&self, id: &str) -> Result<Option<(OrgId, String, String)>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query("SELECT org_id, wrapped, master_key_id FROM org_keys WHERE id = $1 AND destroyed_at IS NULL")
                .bind(id).fetch_optional(pool).await?;
            r.map(|r| {
                let org: String = r.try_get("org_id")?;
                Ok((parse(&org, "org id")?, r.try_get("wrapped")?, r.try_get("master_key_id")?))
            })
            .transpose()
        })
    }

    /// Stores a new organisation key (wrapped).
    pub async fn insert_org_key(
        &self,
        id: &str,
        org: OrgId,
        wrapped: &str,
        master_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("INSERT INTO org_keys (id, org_id, wrapped, master_key_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id).bind(org.to_string()).bind(wrapped).bind(master_id).bind(now)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// Records a new upload.
    pub async fn create_upload(&self, u: &UploadRow, now: i64) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO uploads (id, case_id, user_id, org_id, filename, declared_type, kind, detected_type, length,
                   key_id, wrapped_dek, status, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, 'receiving', $11, $12)",
            )
            .bind(u.id.to_string()).bind(u.case_id.to_string()).bind(u.user_id.to_string()).bind(u.org_id.to_string())
            .bind(&u.filename).bind(&u.declared_type).bind(u.kind.map(|k| k.as_str())).bind(u.length as i64)
            .bind(&u.key_id).bind(&u.wrapped_dek).bind(now).bind(u.expires_at)
            .execute(pool).await?;
        });
        Ok(())
    }

    /// An upload by id.
    pub async fn upload(&self, id: Uuid) -> Result<Option<UploadRow>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1")))
                .bind(id.to_string()).fetch_optional(pool).await?;
            r.as_ref().map(upload_from_row).transpose()
        })
    }

    /// Records the type detected from the first bytes and pushes the expiry on.
    pub async fn touch_upload(
        &self,
        id: Uuid,
        detected: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE uploads SET detected_type = COALESCE($2, detected_type), expires_at = $3 WHERE id = $1")
                .bind(id.to_string()).bind(detected).bind(expires_at).execute(pool).await?;
        });
        Ok(())
    }

    /// Ends an upload with a status (and the reason of a refusal).
    pub async fn end_upload(&self, id: Uuid, status: &str, error: Option<&str>) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE uploads SET status = $2, error = $3 WHERE id = $1 AND status = 'receiving'")
                .bind(id.to_string()).bind(status).bind(error).execute(pool).await?;
        });
        Ok(())
    }

    /// Unfinished uploads past their expiry.
    pub async fn expired_uploads(&self, now: i64) -> Result<Vec<Uuid>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT id FROM uploads WHERE status = 'receiving' AND expires_at < $1 LIMIT 500")
                .bind(now).fetch_all(pool).await?
                .iter()
                .map(|r| parse(&r.try_get::<String, _>("id")?, "upload id"))
                .collect()
        })
    }

    /// Stores a file's row (not yet listed until its event is committed).
    pub async fn insert_file(&self, f: &FileRow) -> Result<(), StoreError> {
        let segments = serde_json::to_string(&f.segments).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO files (id, case_id, org_id, name, kind, content_type, size, sha256, uploaded_by, created_at,
                   object_key, stored_size, key_id, wrapped_dek, segments, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'stored')",
            )
            .bind(f.id.to_string()).bind(f.case_id.to_string()).bind(f.org_id.to_string()).bind(&f.name)
            .bind(f.kind.as_str()).bind(&f.content_type).bind(f.size as i64).bind(&f.sha256)
            .bind(f.uploaded_by.to_string()).bind(f.created_at).bind(&f.object_key).bind(f.stored_size as i64)
            .bind(&f.key_id).bind(&f.wrapped_dek).bind(segments)
            .execute(pool).await?;
        });
        Ok(())
    }

    /// Lists a file once its `file_added` event is durable.
    pub async fn file_ready(&self, id: FileId, seq: u64) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE files SET status = 'ready', seq = $2 WHERE id = $1")
                .bind(id.to_string()).bind(seq as i64).execute(pool).await?;
        });
        Ok(())
    }

    /// A listed file by id.
    pub async fn file(&self, id: FileId) -> Result<Option<FileRow>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLS} FROM files WHERE id = $1 AND status = 'ready'")))
                .bind(id.to_string()).fetch_optional(pool).await?;
            r.as_ref().map(file_from_row).transpose()
        })
    }

    /// A stored file by id, listed or not yet (a completion that was interrupted).
    pub async fn stored_file(&self, id: FileId) -> Result<Option<FileRow>, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLS} FROM files WHERE id = $1")))
                .bind(id.to_string()).fetch_optional(pool).await?;
            r.as_ref().map(file_from_row).transpose()
        })
    }

    /// The listed files of a case, oldest first.
    pub async fn case_files(&self, case: CaseId) -> Result<Vec<FileRow>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {FILE_COLS} FROM files WHERE case_id = $1 AND status = 'ready' ORDER BY created_at, id"
            )))
            .bind(case.to_string()).fetch_all(pool).await?
            .iter().map(file_from_row).collect()
        })
    }

    /// Plaintext and stored bytes of every listed file (space saved by compression).
    pub async fn storage_totals(&self) -> Result<(u64, u64, u64), StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(
                "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS plain, COALESCE(SUM(stored_size), 0) AS stored FROM files WHERE status = 'ready'",
            )
            .fetch_one(pool).await?;
            Ok((r.try_get::<i64, _>("n")? as u64, r.try_get::<i64, _>("plain")? as u64, r.try_get::<i64, _>("stored")? as u64))
        })
    }

    /// Records a download for the audit trail.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_download(
        &self,
        file: FileId,
        case: CaseId,
        user: UserId,
        session: &str,
        ip: &str,
        range: Option<(u64, u64)>,
        now: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO downloads (file_id, case_id, user_id, session_id, ip, range_start, range_end, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(file.to_string()).bind(case.to_string()).bind(user.to_string()).bind(session).bind(ip)
            .bind(range.map(|r| r.0 as i64)).bind(range.map(|r| r.1 as i64)).bind(now)
            .execute(pool).await?;
        });
        Ok(())
    }

    /// Queues a voice note for transcription.
    pub async fn queue_transcription(
        &self,
        file: FileId,
        case: CaseId,
        user: UserId,
        now: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO transcriptions (file_id, case_id, user_id, status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, 'pending', $4, $4) ON CONFLICT (file_id) DO NOTHING",
            )
            .bind(file.to_string()).bind(case.to_string()).bind(user.to_string()).bind(now)
            .execute(pool).await?;
        });
        Ok(())
    }

    /// Transcriptions due now: (file, case, user, attempts).
    pub async fn due_transcriptions(
        &self,
        now: i64,
    ) -> Result<Vec<(FileId, CaseId, UserId, i64)>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "SELECT file_id, case_id, user_id, attempts FROM transcriptions WHERE status = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT 10",
            )
            .bind(now).fetch_all(pool).await?
            .iter()
            .map(|r| Ok((
                parse(&r.try_get::<String, _>("file_id")?, "file id")?,
                parse(&r.try_get::<String, _>("case_id")?, "case id")?,
                parse(&r.try_get::<String, _>("user_id")?, "user id")?,
                r.try_get::<i64, _>("attempts")?,
            )))
            .collect()
        })
    }

    /// Records a transcription attempt: done, or retry at `next` (or give up).
    pub async fn transcription_attempted(
        &self,
        file: FileId,
        status: &str,
        next: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "UPDATE transcriptions SET status = $2, attempts = attempts + 1, next_attempt_at = $3, last_error = $4 WHERE file_id = $1",
            )
            .bind(file.to_string()).bind(status).bind(next).bind(error)
            .execute(pool).await?;
        });
        Ok(())
    }
}
