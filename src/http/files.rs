//! Files: the tus upload endpoints, the case's file list, signed download links and downloads.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use articula_actors::clock::now_ms;
use articula_protocol::{CaseId, ErrorCode, FileId};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::objects::crypto::CryptoError;
use crate::objects::reader::SealedFile;
use crate::state::AppState;
use crate::store::files::FileView;
use crate::uploads::links::{self, LINK_TTL_MS, LinkQuery, Range};
use crate::uploads::tus;

/// Routes of this module.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/uploads/")
            .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
            .route(web::post().to(tus::create)),
    )
    .service(
        resource("/uploads/{id}")
            .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
            .route(web::head().to(tus::head))
            .route(web::patch().to(tus::patch))
            .route(web::delete().to(tus::terminate)),
    )
    .service(resource("/cases/{id}/files").route(web::get().to(list)))
    .service(resource("/files/{id}/link").route(web::post().to(link)))
    .service(resource("/files/{id}/content").route(web::get().to(content)));
}

/// The files of a case.
#[utoipa::path(get, path = "/api/v1/cases/{id}/files", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = [FileView]), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case = id.into_inner();
    crate::http::cases::require_access(&app, caller.user_id, case).await?;
    let files = app.db.case_files(case).await?;
    Ok(HttpResponse::Ok().json(files.iter().map(FileView::from).collect::<Vec<_>>()))
}

/// A signed download link.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Link {
    /// The link (valid for this user and session only, 5 minutes).
    url: String,
    /// Expiry, ms since the epoch.
    expires_at: i64,
}

/// Issues a download link that lives 5 minutes and works only for the requesting user, while
/// their session is active and they can still see the case.
#[utoipa::path(post, path = "/api/v1/files/{id}/link", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = Link), (status = 404)), security(("bearer" = [])))]
pub async fn link(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<FileId>,
) -> Result<HttpResponse, ApiError> {
    let file_id = id.into_inner();
    let file = app.db.file(file_id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    crate::http::cases::require_access(&app, caller.user_id, file.case_id).await?;
    let expires_at = now_ms() + LINK_TTL_MS;
    let key = app.files.keyring.link_key();
    let path = format!(
        "/api/v1/files/{file_id}/content?{}",
        links::query(&key, file_id, caller.user_id, caller.session_id.0, expires_at)
    );
    let base = match &app.settings.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            // The host the client used; the scheme is the server's own (TLS unless turned off,
            // then the proxy's when it is trusted to say).
            let info = req.connection_info();
            let scheme = if app.settings.tls != "off" {
                "https"
            } else if app.settings.trust_proxy {
                info.scheme()
            } else {
                "http"
            };
            format!("{scheme}://{}", info.host())
        }
    };
    let ip = super::client_ip(&req, app.settings.trust_proxy).to_string();
    audit_file(
        &app,
        "file.link_issued",
        caller.user_id,
        ip,
        &file,
        serde_json::json!({"expires_at": expires_at}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Link { url: format!("{base}{path}"), expires_at }))
}

/// Audits an action on a file, in the chains of its case's organisations. Refused when the
/// audit record cannot be written: nothing leaves unaudited.
async fn audit_file(
    app: &AppState,
    action: &'static str,
    user: articula_protocol::UserId,
    ip: String,
    file: &crate::store::files::FileRow,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let orgs = app.db.case_audit_orgs(file.case_id).await?;
    let r = crate::audit::Record::new(action, Some(user), Some(ip))
        .orgs(orgs)
        .target(format!("file:{}", file.id))
        .case(file.case_id)
        .details(details);
    crate::audit::record(&app.db, r).await?;
    Ok(())
}

/// Downloads a file through a signed link (Range requests supported). The request must also be
/// authenticated as the link's user; every download is recorded for the audit trail.
#[utoipa::path(get, path = "/api/v1/files/{id}/content", tag = "files", params(("id" = String, Path), LinkQuery),
    responses((status = 200, description = "the file"), (status = 206, description = "a byte range"), (status = 403), (status = 404),
        (status = 410, description = "link_expired"), (status = 416)), security(("bearer" = [])))]
pub async fn content(
    req: HttpRequest,
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<FileId>,
    q: web::Query<LinkQuery>,
) -> Result<HttpResponse, ApiError> {
    let file_id = id.into_inner();
    let q = q.into_inner();
    if !links::verify(&app.files.keyring.link_key(), file_id, &q) {
        return Err(ApiError::forbidden("this link is not valid"));
    }
    if q.e <= now_ms() {
        return Err(ApiError::new(ErrorCode::LinkExpired, "this link has expired; ask for a new one"));
    }
    if q.u != caller.user_id {
        return Err(ApiError::forbidden("this link was issued to someone else"));
    }
    let session = crate::store::sessions::SessionId(q.s);
    if !app.db.session_alive(session, now_ms(), app.auth.idle_ms()).await? {
        return Err(ApiError::new(
            ErrorCode::SessionRevoked,
            "the session this link was issued in has ended",
        ));
    }
    let file = app.db.file(file_id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    crate::http::cases::require_access(&app, caller.user_id, file.case_id).await?;

    let range = links::parse_range(req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()), file.size);
    let (start, end) = match range {
        Range::Full => (0, file.size.saturating_sub(1)),
        Range::Part(a, b) => (a, b),
        Range::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{}", file.size)))
                .finish());
        }
    };
    // The first segments of the range are opened before anything is recorded or answered, so
    // that a stored object that fails its authentication (changed on disk or in the bucket, cut
    // short, sealed under another key) is refused with a clear error, not served as a 200 that
    // breaks off. A later segment that fails ends the body early: its length was announced, so
    // no client takes the shortened body for the file.
    let key = app.files.file_key(&file).await.map_err(ApiError::internal)?;
    let sealed = SealedFile {
        store: app.files.store.clone(),
        object_key: file.object_key.clone(),
        key,
        file_id: *file.id.0.as_bytes(),
        segments: file.segments.clone(),
        size: file.size,
    };
    let file_id = file.id;
    let mut body = Box::pin(sealed.range(start, end));
    let first = if file.size == 0 {
        Bytes::new()
    } else {
        match body.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Err(read_failed(file_id, e)),
            None => Bytes::new(),
        }
    };

    let ip = super::client_ip(&req, app.settings.trust_proxy).to_string();
    let recorded = matches!(range, Range::Part(..)).then_some((start, end));
    app.db
        .record_download(
            file.id,
            file.case_id,
            caller.user_id,
            &caller.session_id.to_string(),
            &ip,
            recorded,
            now_ms(),
        )
        .await?;
    let range_details = recorded.map(|(a, b)| serde_json::json!([a, b]));
    audit_file(&app, "file.download", caller.user_id, ip, &file, serde_json::json!({"range": range_details}))
        .await?;
    tracing::info!(file = %file.id, user = %caller.user_id, start, end, "download");

    let inline_ok = ["image/", "audio/", "application/pdf"].iter().any(|p| file.content_type.starts_with(p));
    let disposition = if q.inline == Some(1) && inline_ok { "inline" } else { "attachment" };
    let mut res = match range {
        Range::Part(..) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", file.size)));
            r
        }
        _ => HttpResponse::Ok(),
    };
    res.insert_header((header::CONTENT_TYPE, file.content_type.clone()))
        .insert_header((header::CONTENT_DISPOSITION, links::disposition(disposition, &file.name)))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        // A file is never a page: it may only be framed by the app itself (the PDF preview).
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'self'"))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .no_chunking(end - start + 1);
    if file.size == 0 {
        return Ok(res.finish());
    }
    let rest = body.inspect_err(move |e| {
        tracing::error!(file = %file_id, error = %e, "reading a stored file failed mid-download");
    });
    Ok(res.streaming(futures_util::stream::once(async move { Ok(first) }).chain(rest)))
}

/// The answer to a download whose stored bytes could not be read: a segment that fails its
/// authentication says so (the object is damaged; trying again will not help), anything else
/// (the object store unreachable) is an internal error.
fn read_failed(file: FileId, e: std::io::Error) -> ApiError {
    let damaged = e.get_ref().is_some_and(|inner| inner.is::<CryptoError>());
    if !damaged {
        return ApiError::internal(e);
    }
    tracing::error!(file = %file, error = %e, "a stored file failed its integrity check");
    ApiError::new(ErrorCode::Internal, DAMAGED)
}

/// What a download of a stored file that fails its check is answered.
const DAMAGED: &str =
    "the stored file failed its integrity check (it is damaged or was altered); nothing was sent";
