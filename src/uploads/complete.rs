//! Completing an upload: the content type, the malware check and the SHA-256 — from the
//! digest made while the upload arrived, or else from one pass over the sealed bytes — and only
//! then is the file moved to object storage, recorded, and added to the case through its actor
//! (a `file_added` event subscribers see live).

use articula_actors::case::NewFile;
use articula_actors::clock::now_ms;
use articula_actors::{CaseCommand, Command};
use articula_protocol::{ErrorCode, FileId, FileKind};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::ApiError;
use crate::files::scan::Verdict;
use std::sync::Arc;

use crate::files::sniff::{FileType, Refusal, Sniffer};
use crate::objects::crypto;
use crate::objects::new_object_key;
use crate::state::AppState;
use crate::store::files::{FileRow, UploadRow};

use super::digest::ContentDigest;

/// The kind a file gets when the uploader did not say.
pub fn default_kind(ty: FileType) -> FileKind {
    [FileKind::Scan, FileKind::Photo, FileKind::VoiceNote, FileKind::Document]
        .into_iter()
        .find(|k| ty.fits(*k))
        .unwrap_or(FileKind::Document)
}

/// Refuses an upload: nothing is stored, its staged bytes are deleted.
pub async fn refuse(app: &AppState, upload: &UploadRow, reason: &str) {
    tracing::info!(upload = %upload.id, reason, "upload refused");
    app.files.staging.remove(upload.id).await;
    app.files.forget_digest(upload.id);
    if let Err(e) = app.db.end_upload(upload.id, "refused", Some(reason)).await {
        tracing::warn!(error = %e, "recording a refused upload failed");
    }
}

async fn refused(app: &AppState, upload: &UploadRow, code: ErrorCode, message: String) -> ApiError {
    refuse(app, upload, &message).await;
    ApiError::new(code, message)
}

/// Completes a fully received upload. `digest`, when it covers every segment, spares reading
/// the whole file back (unless clamd must see it).
pub async fn complete(
    app: &AppState,
    upload: &UploadRow,
    digest: Option<ContentDigest>,
) -> Result<(), ApiError> {
    // A completion interrupted after the file was stored resumes at adding it to the case.
    if let Some(row) = app.db.stored_file(FileId::from(upload.id)).await? {
        return add_to_case(app, upload, row).await;
    }
    let files = &app.files;
    // The type detected from the first bytes may have been recorded by this very request.
    let fresh = app.db.upload(upload.id).await?;
    let detected =
        fresh.as_ref().and_then(|u| u.detected_type.as_deref()).or(upload.detected_type.as_deref());
    let compress = detected.filter(|m| super::compressible_mime(m)).and(files.compression);
    let key = files.upload_key(upload).await.map_err(ApiError::internal)?;
    let (lens, digest) = files
        .staging
        .finalize(upload.id, key.clone(), upload.length, compress, digest)
        .await
        .map_err(ApiError::internal)?;
    let known = digest.filter(|d| d.segments() == lens.len() as u64 && files.scanner.clamd().is_none());
    let (sha256, ty) = match known {
        Some(d) => {
            let v = d.finish();
            if v.eicar {
                tracing::warn!(upload = %upload.id, "the EICAR test file refused");
                return Err(refused(
                    app,
                    upload,
                    ErrorCode::MalwareDetected,
                    format!("the file contains malware ({})", crate::files::scan::EICAR_SIGNATURE),
                )
                .await);
            }
            (v.sha256, v.file_type)
        }
        None => read_back(app, upload, &key, &lens).await?,
    };
    let size = upload.length;
    let ty = match ty {
        Ok(ty) => ty,
        Err(r) => return Err(refused(app, upload, ErrorCode::InvalidFileType, r.message).await),
    };
    let kind = upload.kind.unwrap_or_else(|| default_kind(ty));
    if !ty.fits(kind) {
        let msg = format!("a {} cannot be a {} file", kind.as_str().replace('_', " "), ty.mime());
        return Err(refused(app, upload, ErrorCode::InvalidFileType, msg).await);
    }

    // Stored: the sealed segments move to object storage under a random key.
    let object_key = new_object_key();
    let seg_path = files.staging.seg_path(upload.id);
    files.store.put_file(&object_key, &seg_path).await.map_err(ApiError::internal)?;
    let row = FileRow {
        id: FileId::from(upload.id),
        case_id: upload.case_id,
        org_id: upload.org_id,
        name: upload.filename.clone(),
        kind,
        content_type: ty.mime().to_owned(),
        size,
        sha256,
        uploaded_by: upload.user_id,
        created_at: now_ms(),
        object_key: object_key.clone(),
        stored_size: lens.iter().sum(),
        key_id: upload.key_id.clone(),
        wrapped_dek: upload.wrapped_dek.clone(),
        segments: lens,
        seq: None,
    };
    if let Err(e) = app.db.insert_file(&row).await {
        let _ = files.store.delete(&object_key).await;
        return Err(e.into());
    }
    add_to_case(app, upload, row).await
}

/// One pass over the sealed file: decrypt each segment, feed the type check, the scanner (and
/// clamd) and the hash. Answers the SHA-256 and the type check's verdict, or the refusal.
async fn read_back(
    app: &AppState,
    upload: &UploadRow,
    key: &Arc<crypto::Key>,
    lens: &[u64],
) -> Result<(String, Result<FileType, Refusal>), ApiError> {
    let files = &app.files;
    let file_id = *upload.id.as_bytes();
    let mut sniffer = Sniffer::new(upload.length);
    let mut sha = Sha256::new();
    let mut scan = match files.scanner.start().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the malware scanner is unavailable");
            return Err(refused(
                app,
                upload,
                ErrorCode::Unavailable,
                "the malware scanner is unavailable; upload the file again later".into(),
            )
            .await);
        }
    };
    let mut f = tokio::fs::File::open(files.staging.seg_path(upload.id)).await.map_err(ApiError::internal)?;
    let count = lens.len();
    let mut size = 0u64;
    for (i, len) in lens.iter().enumerate() {
        let mut stored = vec![0u8; *len as usize];
        f.read_exact(&mut stored).await.map_err(ApiError::internal)?;
        let key = key.clone();
        let plain = tokio::task::spawn_blocking(move || {
            crypto::open_segment(&key, &file_id, i as u64, i + 1 == count, &stored)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        size += plain.len() as u64;
        sha.update(&plain);
        sniffer.update(&plain);
        if let Err(e) = scan.feed(&plain).await {
            tracing::error!(error = %e, "malware scan failed");
            return Err(refused(
                app,
                upload,
                ErrorCode::Unavailable,
                "the malware scan failed; upload the file again later".into(),
            )
            .await);
        }
    }
    if size != upload.length {
        return Err(ApiError::internal(format!(
            "upload {} decrypted to {size} of {} bytes",
            upload.id, upload.length
        )));
    }
    // Malware first (a hit is the more important thing to tell), then the type.
    match scan.finish().await {
        Ok(Verdict::Clean) => {}
        Ok(Verdict::Infected(name)) => {
            tracing::warn!(upload = %upload.id, signature = %name, "malware refused");
            return Err(refused(
                app,
                upload,
                ErrorCode::MalwareDetected,
                format!("the file contains malware ({name})"),
            )
            .await);
        }
        Err(e) => {
            tracing::error!(error = %e, "malware scan failed");
            return Err(refused(
                app,
                upload,
                ErrorCode::Unavailable,
                "the malware scan failed; upload the file again later".into(),
            )
            .await);
        }
    }
    Ok((hex::encode(sha.finalize()), sniffer.finish()))
}

/// Adds a stored file to its case through the case's actor — exactly once, since the command id
/// is the upload's — then lists it.
async fn add_to_case(app: &AppState, upload: &UploadRow, row: FileRow) -> Result<(), ApiError> {
    // The uploader must still be allowed to upload to the case when the file is complete;
    // the case actor decides from their memberships and the case as it is now.
    let who = crate::http::cases::principal(app, upload.user_id).await?;
    let cmd = Command {
        who,
        client_id: Some(format!("upload:{}", upload.id)),
        body: CaseCommand::AddFile(NewFile {
            file_id: row.id,
            name: row.name.clone(),
            size: row.size,
            content_type: row.content_type.clone(),
            sha256: row.sha256.clone(),
            kind: row.kind,
        }),
    };
    let mut attempt = 0;
    let reply = loop {
        match app.registry.command(upload.case_id, cmd.clone()).await {
            Err(e) if e.is_retryable() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            other => break other?,
        }
    };
    if let Some(seq) = reply.seq {
        app.db.file_ready(row.id, seq).await?;
    }
    app.db.end_upload(upload.id, "done", None).await?;
    app.files.staging.remove(upload.id).await;
    if row.kind == FileKind::VoiceNote {
        app.db.queue_transcription(row.id, upload.case_id, upload.user_id, now_ms()).await?;
    }
    tracing::info!(file = %row.id, case = %upload.case_id, size = row.size, stored = row.stored_size, mime = %row.content_type, "file added");
    Ok(())
}
