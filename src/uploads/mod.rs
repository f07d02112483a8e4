//! File uploads (tus 1.0), their completion into stored files, downloads through signed links,
//! and voice-note transcription.

pub mod complete;
pub mod digest;
pub mod links;
pub mod staging;
pub mod transcribe;
pub mod tus;

use std::sync::Arc;
use std::time::Duration;

use articula_actors::clock::now_ms;
use dashmap::DashMap;
use uuid::Uuid;

use crate::config::Settings;
use crate::files::scan::Scanner;
use crate::objects::ObjectStore;
use crate::objects::crypto::{Key, data_key_context};
use crate::objects::keys::Keyring;
use crate::store::Db;
use crate::store::files::{FileRow, UploadRow};
use digest::ContentDigest;
use staging::Staging;

/// Uploads and stored files.
pub struct Files {
    /// Staged uploads.
    pub staging: Staging,
    /// Where finished files go.
    pub store: Arc<dyn ObjectStore>,
    /// Keys.
    pub keyring: Arc<Keyring>,
    /// Malware scanning.
    pub scanner: Scanner,
    /// Uploads with a request in progress (one writer per upload).
    locks: DashMap<Uuid, ()>,
    /// Requests waiting for an upload's lock.
    waiters: DashMap<Uuid, Arc<tokio::sync::Notify>>,
    /// Content digests of unfinished uploads between their requests.
    digests: DashMap<Uuid, ContentDigest>,
    /// Largest upload.
    pub max_size: u64,
    /// Expiry of an untouched unfinished upload.
    pub expiry_ms: i64,
    /// zstd level for compressible formats.
    pub compression: Option<i32>,
    /// A request body that sends nothing for this long is treated as interrupted.
    pub idle_timeout: Duration,
}

/// Held while a request writes to an upload.
pub struct UploadLock<'a> {
    files: &'a Files,
    id: Uuid,
}

impl Drop for UploadLock<'_> {
    fn drop(&mut self) {
        self.files.locks.remove(&self.id);
        if let Some(n) = self.files.waiters.get(&self.id) {
            n.notify_waiters();
        }
        self.files.waiters.remove_if(&self.id, |_, n| Arc::strong_count(n) == 1);
    }
}

/// Most unfinished uploads whose content digest is kept in memory.
const MAX_KEPT_DIGESTS: usize = 10_000;

/// How long a request waits for another request on the same upload to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

impl Files {
    /// From the settings.
    pub async fn new(settings: &Settings, keyring: Arc<Keyring>) -> anyhow::Result<Self> {
        let store = crate::objects::from_settings(settings).await?;
        let clamd = settings.clamd.as_deref().and_then(|c| c.parse().ok());
        Ok(Self {
            staging: Staging::new(settings.data_dir.join("uploads"))?,
            store,
            keyring,
            scanner: Scanner::new(clamd),
            locks: DashMap::new(),
            waiters: DashMap::new(),
            digests: DashMap::new(),
            max_size: settings.max_upload_bytes,
            expiry_ms: settings.upload_expiry_hours as i64 * 3_600_000,
            compression: (settings.compression_level > 0).then_some(settings.compression_level),
            idle_timeout: Duration::from_secs(settings.upload_idle_secs),
        })
    }

    /// Takes the upload's lock, or `None` when another request is writing to it.
    pub fn lock(&self, id: Uuid) -> Option<UploadLock<'_>> {
        match self.locks.entry(id) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(v) => {
                v.insert(());
                Some(UploadLock { files: self, id })
            }
        }
    }

    /// Takes the upload's lock, waiting up to `max` for a request in progress to finish (a
    /// client resuming right after a cut may find its previous request still being wound up).
    pub async fn lock_wait(&self, id: Uuid, max: Duration) -> Option<UploadLock<'_>> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            if let Some(l) = self.lock(id) {
                return Some(l);
            }
            let notify = self.waiters.entry(id).or_default().clone();
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked again once registered, so a release in between is not missed.
            if let Some(l) = self.lock(id) {
                return Some(l);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Takes the content digest kept for an upload.
    pub fn take_digest(&self, id: Uuid) -> Option<ContentDigest> {
        self.digests.remove(&id).map(|(_, d)| d)
    }

    /// Keeps an upload's content digest for its next request (a few KiB each; past
    /// [`MAX_KEPT_DIGESTS`] unfinished uploads, completion reads the file back instead).
    pub fn keep_digest(&self, id: Uuid, digest: Option<ContentDigest>) {
        if let Some(d) = digest
            && self.digests.len() < MAX_KEPT_DIGESTS
        {
            self.digests.insert(id, d);
        }
    }

    /// Forgets an upload's digest (refused, terminated, expired).
    pub fn forget_digest(&self, id: Uuid) {
        self.digests.remove(&id);
    }

    /// The data key of an upload.
    pub async fn upload_key(&self, u: &UploadRow) -> anyhow::Result<Arc<Key>> {
        let org_key = self.keyring.key_by_id(&u.key_id).await?;
        Ok(Arc::new(org_key.unwrap_key(&u.wrapped_dek, &data_key_context(&u.id.to_string()))?))
    }

    /// The data key of a stored file.
    pub async fn file_key(&self, f: &FileRow) -> anyhow::Result<Arc<Key>> {
        let org_key = self.keyring.key_by_id(&f.key_id).await?;
        Ok(Arc::new(org_key.unwrap_key(&f.wrapped_dek, &data_key_context(&f.id.to_string()))?))
    }

    /// Deletes unfinished uploads past their expiry.
    pub async fn sweep_expired(&self, db: &Db) -> Result<usize, crate::store::StoreError> {
        let mut n = 0;
        for id in db.expired_uploads(now_ms()).await? {
            // An upload with a request in progress is not abandoned.
            if let Some(_lock) = self.lock(id) {
                self.staging.remove(id).await;
                self.forget_digest(id);
                db.end_upload(id, "expired", None).await?;
                tracing::info!(upload = %id, "abandoned upload expired and deleted");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs [`Files::sweep_expired`] every minute.
    pub fn spawn_expiry(self: &Arc<Self>, db: Db) {
        let this = Arc::clone(self);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = this.sweep_expired(&db).await {
                    tracing::warn!(error = %e, "expiring uploads failed");
                }
            }
        });
    }
}

/// What a new upload is.
pub struct NewUpload {
    /// The case.
    pub case_id: articula_protocol::CaseId,
    /// A plain file name (checked).
    pub filename: String,
    /// The media type the client declared (informational).
    pub declared_type: Option<String>,
    /// What the file is for, if said.
    pub kind: Option<articula_protocol::FileKind>,
    /// Total length.
    pub length: u64,
}

/// Creates an upload: checks the length and the uploader's right to upload to the case (before
/// any byte is accepted), and makes the file's data key under its clinic's key.
pub async fn new_upload(
    app: &crate::state::AppState,
    user: articula_protocol::UserId,
    n: NewUpload,
) -> Result<UploadRow, crate::error::ApiError> {
    use crate::error::ApiError;
    use articula_protocol::ErrorCode;
    if n.length == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidFileType,
            "an empty file is not a scan, photo, design, voice note or document",
        ));
    }
    if n.length > app.files.max_size {
        return Err(ApiError::new(
            ErrorCode::FileTooLarge,
            format!("files may have at most {} bytes", app.files.max_size),
        ));
    }
    let filename = tus::valid_filename(&n.filename)?;
    let access = app.db.case_access(user, n.case_id).await?.ok_or_else(|| ApiError::not_found("case"))?;
    if !access.may_upload() {
        return Err(ApiError::forbidden("your role may not upload to this case"));
    }
    let case = app
        .db
        .case_view(user, n.case_id, articula_actors::clock::today_utc())
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let (key_id, org_key) = app.files.keyring.org_key(case.clinic_id).await.map_err(ApiError::internal)?;
    let id = Uuid::now_v7();
    let dek = Key::generate();
    let upload = UploadRow {
        id,
        case_id: n.case_id,
        user_id: user,
        org_id: case.clinic_id,
        filename,
        declared_type: n.declared_type,
        kind: n.kind,
        detected_type: None,
        length: n.length,
        key_id,
        wrapped_dek: org_key.wrap(&dek, &data_key_context(&id.to_string())),
        status: "receiving".into(),
        expires_at: now_ms() + app.files.expiry_ms,
        error: None,
    };
    app.db.create_upload(&upload, now_ms()).await?;
    tracing::info!(upload = %id, case = %upload.case_id, user = %user, length = n.length, "upload created");
    Ok(upload)
}

/// Stores a whole file through the same path as an upload (the demo's sample files).
pub async fn ingest(
    app: &crate::state::AppState,
    user: articula_protocol::UserId,
    n: NewUpload,
    bytes: &[u8],
) -> Result<articula_protocol::FileId, crate::error::ApiError> {
    use crate::error::ApiError;
    let upload = new_upload(app, user, n).await?;
    let mut sniffer = crate::files::sniff::Sniffer::new(upload.length);
    sniffer.update(bytes);
    let mime = sniffer.finish().map(|t| t.mime()).ok();
    app.db.touch_upload(upload.id, mime, upload.expires_at).await?;
    let compress = mime.filter(|m| compressible_mime(m)).and(app.files.compression);
    let key = app.files.upload_key(&upload).await.map_err(ApiError::internal)?;
    let mut w = app
        .files
        .staging
        .writer(upload.id, key, upload.length, compress, None)
        .await
        .map_err(ApiError::internal)?;
    w.push(bytes).await.map_err(ApiError::internal)?;
    let (_, digest) = w.commit().await.map_err(ApiError::internal)?;
    complete::complete(app, &upload, digest).await?;
    Ok(articula_protocol::FileId::from(upload.id))
}

/// Whether a detected media type is worth compressing (3D meshes and PDFs are; images and
/// audio are compressed already).
pub fn compressible_mime(mime: &str) -> bool {
    matches!(
        mime,
        "model/stl" | "model/ply" | "application/ply" | "model/obj" | "application/pdf" | "text/plain"
    )
}
