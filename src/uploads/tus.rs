//! The tus 1.0.0 server at `/api/v1/uploads/`: core, creation, creation-with-upload, expiration,
//! checksum (sha256) and termination. Bytes are sealed as they arrive; nothing is accepted
//! before the uploader's right to upload to the case is checked; memory stays flat whatever the
//! file's size; one request at a time writes to an upload.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::HttpDate;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use articula_actors::clock::now_ms;
use articula_actors::text::{self, TextKind};
use articula_protocol::{CaseId, ErrorCode, FileKind};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::compressible_mime;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::files::sniff::Sniffer;
use crate::objects::crypto::SEGMENT_SIZE;
use crate::state::AppState;
use crate::store::files::UploadRow;

/// The protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Extensions supported.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,expiration,checksum,termination";
const OFFSET_CT: &str = "application/offset+octet-stream";

fn tus(mut b: HttpResponseBuilder) -> HttpResponseBuilder {
    b.insert_header(("Tus-Resumable", TUS_VERSION)).insert_header(("Cache-Control", "no-store"));
    b
}

/// An error answered in tus fashion: the usual JSON error, with `Tus-Resumable`.
fn fail(e: ApiError) -> HttpResponse {
    let mut res = e.error_response();
    res.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("tus-resumable"),
        actix_web::http::header::HeaderValue::from_static(TUS_VERSION),
    );
    res
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn check_resumable(req: &HttpRequest) -> Result<(), Box<HttpResponse>> {
    if header(req, "tus-resumable") == Some(TUS_VERSION) {
        return Ok(());
    }
    Err(Box::new(
        HttpResponse::build(StatusCode::PRECONDITION_FAILED)
            .insert_header(("Tus-Version", TUS_VERSION))
            .json(serde_json::json!({"error": "validation_failed", "message": "send Tus-Resumable: 1.0.0"})),
    ))
}

fn expires_header(ms: i64) -> String {
    HttpDate::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// `OPTIONS`: what this server supports.
#[utoipa::path(options, path = "/api/v1/uploads/", tag = "files", responses((status = 204, description = "tus capabilities in headers")))]
pub async fn options(app: web::Data<AppState>) -> HttpResponse {
    tus(HttpResponse::NoContent())
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header(("Tus-Max-Size", app.files.max_size.to_string()))
        .insert_header(("Tus-Checksum-Algorithm", "sha256"))
        .finish()
}

struct Metadata {
    case_id: CaseId,
    filename: String,
    content_type: Option<String>,
    kind: Option<FileKind>,
}

/// Longest file name, in bytes of UTF-8 (what file systems allow; the name is shown and offered
/// as the download's name).
const MAX_FILENAME_BYTES: usize = 255;

/// Checks a file name: a plain name, not a path, under the text rule for names
/// ([`articula_actors::text`]): no control, bidirectional or invisible characters (so
/// `scan\u{202E}lts.exe` cannot pose as `scanexe.stl`), normalised to NFC, trimmed.
pub fn valid_filename(name: &str) -> Result<String, ApiError> {
    let n = text::clean("filename", name, TextKind::Name, MAX_FILENAME_BYTES)
        .map_err(|e| ApiError::invalid(e.0))?;
    if n.len() > MAX_FILENAME_BYTES || n == "." || n == ".." || n.contains(['/', '\\']) {
        return Err(ApiError::invalid(
            "filename must be a plain file name (no path, no control characters, at most 255 bytes)",
        ));
    }
    Ok(n)
}

fn parse_metadata(raw: Option<&str>) -> Result<Metadata, ApiError> {
    let mut case_id = None;
    let mut filename = None;
    let mut content_type = None;
    let mut kind = None;
    for pair in raw.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = B64
            .decode(value.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| ApiError::invalid(format!("Upload-Metadata `{key}` is not base64 UTF-8")))?;
        match key {
            "case_id" => case_id = Some(value.parse::<CaseId>().map_err(|_| ApiError::not_found("case"))?),
            "filename" | "name" => filename = Some(valid_filename(&value)?),
            "content_type" | "filetype" | "type" => content_type = Some(value.chars().take(200).collect()),
            "kind" => {
                kind = Some(
                    value
                        .parse::<FileKind>()
                        .map_err(|_| ApiError::invalid(format!("unknown kind `{value}`")))?,
                )
            }
            // tus clients add their own keys (e.g. `relativePath`); they are ignored.
            _ => {}
        }
    }
    Ok(Metadata {
        case_id: case_id.ok_or_else(|| ApiError::invalid("Upload-Metadata needs case_id"))?,
        filename: filename.ok_or_else(|| ApiError::invalid("Upload-Metadata needs filename"))?,
        content_type,
        kind,
    })
}

/// `POST`: creates an upload (and takes its first bytes with creation-with-upload).
#[utoipa::path(post, path = "/api/v1/uploads/", tag = "files",
    params(("Upload-Length" = u64, Header), ("Upload-Metadata" = String, Header, description = "case_id, filename, content_type, kind (base64 values)")),
    responses((status = 201, description = "created; Location names the upload"), (status = 404), (status = 413), (status = 415), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    if let Err(r) = check_resumable(&req) {
        return *r;
    }
    match create_upload(&req, &caller, &app).await {
        Ok(upload) => {
            let location = format!("/api/v1/uploads/{}", upload.id);
            let with_body = header(&req, "content-type") == Some(OFFSET_CT);
            let mut offset = 0;
            if with_body {
                let Some(_lock) = app.files.lock_wait(upload.id, super::LOCK_WAIT).await else {
                    return fail(ApiError::new(
                        ErrorCode::UploadLocked,
                        "another request is writing to this upload",
                    ));
                };
                match receive(&req, &app, &upload, body, 0).await {
                    Ok(o) => offset = o,
                    Err(e) => return fail(e),
                }
            }
            tus(HttpResponse::Created())
                .insert_header(("Location", location))
                .insert_header(("Upload-Offset", offset.to_string()))
                .insert_header(("Upload-Expires", expires_header(now_ms() + app.files.expiry_ms)))
                .finish()
        }
        Err(e) => fail(e),
    }
}

async fn create_upload(req: &HttpRequest, caller: &Caller, app: &AppState) -> Result<UploadRow, ApiError> {
    if req.headers().contains_key("upload-defer-length") {
        return Err(ApiError::invalid("Upload-Defer-Length is not supported: send Upload-Length"));
    }
    let length: u64 = header(req, "upload-length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::invalid("Upload-Length must be a number of bytes"))?;
    let meta = parse_metadata(header(req, "upload-metadata"))?;
    super::new_upload(
        app,
        caller.user_id,
        super::NewUpload {
            case_id: meta.case_id,
            filename: meta.filename,
            declared_type: meta.content_type,
            kind: meta.kind,
            length,
        },
    )
    .await
}

/// The caller's own upload, still receiving.
async fn own_upload(app: &AppState, caller: &Caller, id: Uuid) -> Result<UploadRow, ApiError> {
    let upload = app.db.upload(id).await?.filter(|u| u.user_id == caller.user_id);
    // Access is checked again at every request: an upload stops when its user loses the case
    // (a membership or grant revoked), not only when it completes.
    if let Some(u) = &upload
        && !app.db.case_access(caller.user_id, u.case_id).await?.is_some_and(|a| a.may_upload())
    {
        return Err(ApiError::not_found("upload"));
    }
    match upload {
        Some(u) => match u.status.as_str() {
            "receiving" | "done" => Ok(u),
            "expired" | "terminated" => {
                Err(ApiError::new(ErrorCode::NotFound, "this upload expired or was terminated"))
            }
            _ => Err(ApiError::new(
                ErrorCode::InvalidFileType,
                format!("this upload was refused: {}", u.error.as_deref().unwrap_or("not an accepted file")),
            )),
        },
        _ => Err(ApiError::not_found("upload")),
    }
}

/// `HEAD`: how much the server has.
#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 200, description = "Upload-Offset and Upload-Length in headers"), (status = 404)), security(("bearer" = [])))]
pub async fn head(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> HttpResponse {
    if let Err(r) = check_resumable(&req) {
        return *r;
    }
    let id = id.into_inner();
    let upload = match own_upload(&app, &caller, id).await {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let offset = if upload.status == "done" {
        upload.length
    } else {
        let Some(_lock) = app.files.lock_wait(id, super::LOCK_WAIT).await else {
            return fail(ApiError::new(ErrorCode::UploadLocked, "another request is writing to this upload"));
        };
        let received = match app.files.upload_key(&upload).await {
            Ok(key) => app.files.staging.received(id, &key, upload.length).await.map_err(ApiError::internal),
            Err(e) => Err(ApiError::internal(e)),
        };
        match received {
            // Every byte is there but the file was not completed (the last request failed after
            // receiving it): complete it now, so a client that resumes never sees a false success.
            Ok(r) if r.offset() == upload.length => {
                if let Err(e) = super::complete::complete(&app, &upload, app.files.take_digest(id)).await {
                    return fail(e);
                }
                upload.length
            }
            Ok(r) => r.offset(),
            Err(e) => return fail(e),
        }
    };
    tus(HttpResponse::Ok())
        .insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Length", upload.length.to_string()))
        .insert_header(("Upload-Expires", expires_header(upload.expires_at)))
        .finish()
}

/// `PATCH`: the next bytes, at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "files", params(("id" = String, Path), ("Upload-Offset" = u64, Header)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "stored; the new Upload-Offset in headers"), (status = 409, description = "offset_mismatch"),
        (status = 415, description = "invalid_file_type"), (status = 422, description = "malware_detected"), (status = 423, description = "upload_locked"),
        (status = 460, description = "checksum_mismatch: the chunk was discarded")), security(("bearer" = [])))]
pub async fn patch(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Payload,
) -> HttpResponse {
    if let Err(r) = check_resumable(&req) {
        return *r;
    }
    if header(&req, "content-type") != Some(OFFSET_CT) {
        return fail(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("PATCH needs Content-Type: {OFFSET_CT}"),
        ));
    }
    let id = id.into_inner();
    let upload = match own_upload(&app, &caller, id).await {
        Ok(u) if u.status == "receiving" => u,
        Ok(_) => return fail(ApiError::new(ErrorCode::Conflict, "this upload is complete")),
        Err(e) => return fail(e),
    };
    let Some(offset) = header(&req, "upload-offset").and_then(|v| v.trim().parse::<u64>().ok()) else {
        return fail(ApiError::invalid("Upload-Offset must be a number of bytes"));
    };
    let Some(_lock) = app.files.lock_wait(id, super::LOCK_WAIT).await else {
        return fail(ApiError::new(ErrorCode::UploadLocked, "another request is writing to this upload"));
    };
    match receive(&req, &app, &upload, body, offset).await {
        Ok(new_offset) => {
            let mut res = tus(HttpResponse::NoContent());
            res.insert_header(("Upload-Offset", new_offset.to_string()))
                .insert_header(("Upload-Expires", expires_header(now_ms() + app.files.expiry_ms)));
            if new_offset == upload.length {
                res.insert_header(("Articula-File-Id", id.to_string()));
            }
            res.finish()
        }
        Err(e) => fail(e),
    }
}

/// Receives one request's bytes at `offset`; completes the upload when they are the last.
async fn receive(
    req: &HttpRequest,
    app: &AppState,
    upload: &UploadRow,
    mut body: web::Payload,
    offset: u64,
) -> Result<u64, ApiError> {
    let checksum = match header(req, "upload-checksum") {
        None => None,
        Some(v) => {
            let (alg, value) = v
                .trim()
                .split_once(' ')
                .ok_or_else(|| ApiError::invalid("Upload-Checksum is `<algorithm> <base64>`"))?;
            if !alg.eq_ignore_ascii_case("sha256") {
                return Err(ApiError::invalid(format!(
                    "checksum algorithm `{alg}` is not supported; use sha256"
                )));
            }
            Some(
                B64.decode(value.trim())
                    .map_err(|_| ApiError::invalid("Upload-Checksum value is not base64"))?,
            )
        }
    };
    let key = app.files.upload_key(upload).await.map_err(ApiError::internal)?;
    let compress =
        upload.detected_type.as_deref().filter(|m| compressible_mime(m)).and(app.files.compression);
    let mut writer = app
        .files
        .staging
        .writer(upload.id, key, upload.length, compress, app.files.take_digest(upload.id))
        .await
        .map_err(ApiError::internal)?;
    if writer.offset() != offset {
        return Err(ApiError::new(
            ErrorCode::OffsetMismatch,
            format!("the upload is at offset {}", writer.offset()),
        ));
    }
    // While the head of the file is still in the (small) tail, judge its type from its first
    // bytes, so that a file that is no scan, photo or document is refused before it is all sent.
    let mut sniffer = (upload.detected_type.is_none() && writer.offset() < SEGMENT_SIZE as u64).then(|| {
        let mut s = Sniffer::new(upload.length);
        s.update(writer.tail());
        s
    });
    let mut detected: Option<&'static str> = None;
    let mut hasher = checksum.as_ref().map(|_| Sha256::new());
    let mut interrupted = false;
    let mut outcome: Result<(), ApiError> = Ok(());
    loop {
        // A client that goes silent (a phone losing its network, or a connection whose end the
        // HTTP layer never reports) must not hold the upload: after a pause this long, what
        // arrived is kept and the client resumes from it.
        let chunk = match tokio::time::timeout(app.files.idle_timeout, body.next()).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(_) => {
                tracing::info!(upload = %upload.id, "upload request went silent; keeping what arrived");
                interrupted = true;
                break;
            }
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(upload = %upload.id, error = %e, "upload request interrupted");
                interrupted = true;
                break;
            }
        };
        if writer.offset() + chunk.len() as u64 > upload.length {
            outcome = Err(ApiError::new(ErrorCode::PayloadTooLarge, "more bytes than Upload-Length"));
            break;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        if let Some(s) = sniffer.as_mut() {
            s.update(&chunk);
            match s.early() {
                Some(Ok(ty)) => {
                    detected = Some(ty.mime());
                    if compressible_mime(ty.mime()) {
                        writer.set_compression(app.files.compression);
                    }
                    sniffer = None;
                }
                Some(Err(r)) => {
                    // Name the EICAR test file for what it is, rather than as a wrong type.
                    let eicar = writer.tail().is_empty() && chunk.starts_with(crate::files::scan::EICAR)
                        || writer.tail().starts_with(crate::files::scan::EICAR);
                    outcome = Err(if eicar {
                        ApiError::new(
                            ErrorCode::MalwareDetected,
                            "the file is the EICAR test file: refused as malware",
                        )
                    } else {
                        ApiError::new(ErrorCode::InvalidFileType, r.message)
                    });
                    break;
                }
                None => {}
            }
        }
        if let Err(e) = writer.push(&chunk).await {
            outcome = Err(ApiError::internal(e));
            break;
        }
    }
    if let Err(e) = outcome {
        writer.rollback().await.map_err(ApiError::internal)?;
        if matches!(e.code, ErrorCode::InvalidFileType | ErrorCode::MalwareDetected) {
            super::complete::refuse(app, upload, &e.message).await;
        }
        return Err(e);
    }
    if let (Some(h), Some(expected)) = (hasher, checksum)
        && (interrupted || h.finalize()[..] != expected[..])
    {
        writer.rollback().await.map_err(ApiError::internal)?;
        return Err(ApiError::new(
            ErrorCode::ChecksumMismatch,
            "the chunk's sha256 does not match Upload-Checksum; it was discarded",
        ));
    }
    // Without a checksum, whatever arrived before an interruption is kept: the client resumes
    // from the offset a HEAD reports.
    let (new_offset, digest) = writer.commit().await.map_err(ApiError::internal)?;
    app.db.touch_upload(upload.id, detected, now_ms() + app.files.expiry_ms).await?;
    if new_offset == upload.length {
        super::complete::complete(app, upload, digest).await?;
    } else {
        app.files.keep_digest(upload.id, digest);
    }
    Ok(new_offset)
}

/// `DELETE`: termination; the staged bytes are deleted.
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 204), (status = 404), (status = 423)), security(("bearer" = [])))]
pub async fn terminate(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> HttpResponse {
    if let Err(r) = check_resumable(&req) {
        return *r;
    }
    let id = id.into_inner();
    match own_upload(&app, &caller, id).await {
        Ok(u) if u.status == "receiving" => {}
        Ok(_) => {
            return fail(ApiError::new(
                ErrorCode::Conflict,
                "a completed upload is a file; it is not deleted this way",
            ));
        }
        Err(e) => return fail(e),
    }
    let Some(_lock) = app.files.lock_wait(id, super::LOCK_WAIT).await else {
        return fail(ApiError::new(ErrorCode::UploadLocked, "another request is writing to this upload"));
    };
    app.files.staging.remove(id).await;
    app.files.forget_digest(id);
    if let Err(e) = app.db.end_upload(id, "terminated", None).await {
        return fail(e.into());
    }
    tus(HttpResponse::NoContent()).finish()
}
