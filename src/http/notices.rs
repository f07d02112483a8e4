//! Incident notices (issue 18): an owner publishes one for their organisation (the operator for
//! every organisation, `articula notice publish`); every member sees it until they acknowledge
//! it, and the owners see how many did. Publishing and each acknowledgement are audited.

use actix_web::{HttpResponse, web};
use articula_actors::text::{TextKind, clean};
use articula_protocol::OrgId;
use serde::Deserialize;
use uuid::Uuid;

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::notices::{Notice, NoticeStats};

/// Longest title, characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body, characters.
pub const MAX_BODY_CHARS: usize = 10_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/orgs/{org}/notices").route(web::get().to(org_notices)).route(web::post().to(publish)),
    )
    .service(resource("/notices").route(web::get().to(mine)))
    .service(resource("/notices/{id}/ack").route(web::post().to(acknowledge)));
}

/// A notice to publish.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishNotice {
    /// One line, at most 200 characters.
    title: String,
    /// What happened, its scope and what users should do: plain text, at most 10,000 characters.
    body: String,
}

/// Checks a notice's title and body by the one text rule (`actors/src/text.rs`).
pub fn checked(title: &str, body: &str) -> Result<(String, String), String> {
    let title = clean("title", title, TextKind::Name, MAX_TITLE_CHARS).map_err(|e| e.0)?;
    let body = clean("body", body, TextKind::Prose, MAX_BODY_CHARS).map_err(|e| e.0)?;
    Ok((title, body))
}

/// Publish an incident notice to every member of the organisation (owners).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/notices", tag = "orgs", params(("org" = String, Path)),
    request_body = PublishNotice,
    responses((status = 201, body = Notice), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn publish(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    org: web::Path<OrgId>,
    body: web::Json<PublishNotice>,
) -> Result<HttpResponse, ApiError> {
    let org = org.into_inner();
    super::orgs::owner_of(&app, &caller, org).await?;
    let (title, text) = checked(&body.title, &body.body).map_err(ApiError::invalid)?;
    let now = articula_actors::clock::now_ms();
    let id = app.db.publish_notice(Some(org), &title, &text, Some(caller.user_id), now).await?;
    let r = crate::audit::Record::new("notice.published", Some(caller.user_id), Some(ip.0))
        .orgs([org])
        .target(format!("notice:{id}"));
    crate::audit::record(&app.db, r).await?;
    let notice = app
        .db
        .visible_notice(caller.user_id, id)
        .await?
        .ok_or_else(|| ApiError::internal("a published notice cannot be read back"))?;
    Ok(HttpResponse::Created().json(notice))
}

/// The notices the organisation's members see, with how many acknowledged each (owners).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/notices", tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = [NoticeStats]), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn org_notices(
    caller: Caller,
    app: web::Data<AppState>,
    org: web::Path<OrgId>,
) -> Result<HttpResponse, ApiError> {
    let org = org.into_inner();
    super::orgs::owner_of(&app, &caller, org).await?;
    Ok(HttpResponse::Ok().json(app.db.org_notices(org).await?))
}

/// The caller's notices not yet acknowledged, newest first.
#[utoipa::path(get, path = "/api/v1/notices", tag = "auth",
    responses((status = 200, body = [Notice])), security(("bearer" = [])))]
pub async fn mine(caller: Caller, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.db.unacknowledged_notices(caller.user_id).await?))
}

/// "I have read this": records who and when (once; again is a no-op).
#[utoipa::path(post, path = "/api/v1/notices/{id}/ack", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn acknowledge(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let notice =
        app.db.visible_notice(caller.user_id, id).await?.ok_or_else(|| ApiError::not_found("notice"))?;
    let now = articula_actors::clock::now_ms();
    if app.db.acknowledge_notice(id, caller.user_id, now).await? {
        // An organisation's notice joins its chain; an operator's, the chains of the reader's.
        let orgs = match notice.org_id {
            Some(o) => vec![o],
            None => app.db.memberships(caller.user_id).await?.iter().map(|m| m.org_id).collect(),
        };
        let r = crate::audit::Record::new("notice.acknowledged", Some(caller.user_id), Some(ip.0))
            .orgs(orgs)
            .target(format!("notice:{id}"));
        crate::audit::record(&app.db, r).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}
