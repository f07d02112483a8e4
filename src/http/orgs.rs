//! An organisation's owners manage its members (issue 18): who they are, their roles and
//! sessions; taking a role back (the membership ends at once: live sockets lose what it gave
//! within a second) and ending a person's sessions. Owners of the organisation only: its other
//! members are refused (`forbidden`), anyone else finds no such organisation (`not_found`).

use actix_web::{HttpResponse, web};
use articula_protocol::{ErrorCode, OrgId, Role, UserId};
use serde::Serialize;

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::users::{Membership, Removal, RemovedBy};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/orgs/{org}/members").route(web::get().to(members)))
        .service(resource("/orgs/{org}/members/{user}/roles/{role}").route(web::delete().to(remove_role)))
        .service(resource("/orgs/{org}/members/{user}/sessions").route(web::delete().to(end_sessions)));
}

/// A member as the organisation's owners see them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    /// User id.
    user_id: String,
    /// Name.
    name: String,
    /// E-mail.
    email: String,
    /// Their roles in this organisation (empty: a former member).
    #[schema(value_type = Vec<String>)]
    roles: Vec<Role>,
    /// `active`, `invited` or `revoked`.
    status: String,
    /// Sessions alive now.
    sessions: i64,
    /// When they last used a session (ms), if ever.
    last_seen: Option<i64>,
}

/// Checks that the caller owns `org`; answers their memberships (all organisations).
pub async fn owner_of(app: &AppState, caller: &Caller, org: OrgId) -> Result<Vec<Membership>, ApiError> {
    let ms = app.db.memberships(caller.user_id).await?;
    if ms.iter().any(|m| m.org_id == org && m.role == Role::Owner) {
        Ok(ms)
    } else if ms.iter().any(|m| m.org_id == org) {
        Err(ApiError::forbidden("only the organisation's owners may do this"))
    } else {
        Err(ApiError::not_found("organisation"))
    }
}

/// The organisation's members and former members, with roles and sessions.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = [MemberView]), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn members(
    caller: Caller,
    app: web::Data<AppState>,
    org: web::Path<OrgId>,
) -> Result<HttpResponse, ApiError> {
    let org = org.into_inner();
    owner_of(&app, &caller, org).await?;
    let now = articula_actors::clock::now_ms();
    let list: Vec<MemberView> = app
        .db
        .members(org, now, app.auth.idle_ms())
        .await?
        .into_iter()
        .map(|m| MemberView {
            user_id: m.user_id.to_string(),
            name: m.name,
            email: m.email,
            roles: m.roles,
            status: <&'static str>::from(m.status).to_owned(),
            sessions: m.sessions,
            last_seen: m.last_seen,
        })
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// Take one role back: the membership ends at once, the person's live sockets lose what it gave
/// them within a second and their next request is refused. An organisation keeps at least one
/// owner (`conflict`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}/roles/{role}", tag = "orgs",
    params(("org" = String, Path), ("user" = String, Path), ("role" = String, Path)),
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "the organisation's last owner")),
    security(("bearer" = [])))]
pub async fn remove_role(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    path: web::Path<(OrgId, UserId, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user, role) = path.into_inner();
    owner_of(&app, &caller, org).await?;
    let role: Role = role.parse().map_err(|_| ApiError::not_found("role"))?;
    let by = RemovedBy { actor: Some(caller.user_id), ip: Some(ip.0), keep_an_owner: true };
    match app.db.remove_membership_by(user, org, role, &by, articula_actors::clock::now_ms()).await? {
        Removal::Removed => {
            // The revocation log tells every process; this one need not wait for its tail.
            app.revocations.memberships_changed(user);
            Ok(HttpResponse::NoContent().finish())
        }
        Removal::NotHeld => Err(ApiError::not_found("membership")),
        Removal::LastOwner => {
            Err(ApiError::new(ErrorCode::Conflict, "an organisation keeps at least one owner"))
        }
    }
}

/// Sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    /// How many.
    revoked: u64,
}

/// End every session of a person: their open pages are signed out and their sockets close at
/// once. Only for people whose every membership is in organisations the caller owns (someone
/// who also works elsewhere is signed out by the operator: `articula user revoke`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}/sessions", tag = "orgs",
    params(("org" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = SessionsEnded), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn end_sessions(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    path: web::Path<(OrgId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let mine = owner_of(&app, &caller, org).await?;
    if !app.db.was_member(user, org).await? {
        return Err(ApiError::not_found("member"));
    }
    let owned = |o: OrgId| mine.iter().any(|m| m.org_id == o && m.role == Role::Owner);
    if !app.db.memberships(user).await?.iter().all(|m| owned(m.org_id)) {
        return Err(ApiError::forbidden(
            "this person is also a member of an organisation you do not own; \
             take their roles here back, or ask the operator to end their sessions",
        ));
    }
    let revoked =
        app.db.revoke_all_sessions(user, "ended_by_owner", articula_actors::clock::now_ms()).await?;
    app.revocations.revoke_user(user);
    let r = crate::audit::Record::new("member.sessions_ended", Some(caller.user_id), Some(ip.0))
        .orgs([org])
        .target(format!("user:{user}"))
        .details(serde_json::json!({"sessions": revoked}));
    crate::audit::record(&app.db, r).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { revoked }))
}
