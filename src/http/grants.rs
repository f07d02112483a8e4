//! Per-case grants (DESIGN §2): capabilities given to one user on one case, optionally until a
//! time, by the case's doctor, an owner of its clinic, or a holder of `manage`. Every change goes
//! through the case's actor (it is a case event: durable, audited, live); reads come from the
//! `case_grants` projection.

use actix_web::{HttpResponse, web};
use articula_actors::{CaseCommand, Command};
use articula_protocol::{Capability, CaseId, ErrorCode, OrgId, Role, UserId};
use serde::{Deserialize, Serialize};

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/cases/{id}/grants").route(web::get().to(list)))
        .service(
            resource("/cases/{id}/grants/{user_id}")
                .route(web::put().to(give))
                .route(web::delete().to(revoke)),
        )
        .service(resource("/cases/{id}/grantable").route(web::get().to(grantable)));
}

/// A grant in force.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    /// Who holds it.
    pub user_id: String,
    /// Their name.
    pub name: String,
    /// What it allows.
    #[schema(value_type = Vec<String>)]
    pub capabilities: Vec<Capability>,
    /// Until when (ms); absent: until revoked.
    pub until: Option<i64>,
    /// Support access (members see a banner while it lasts).
    pub support: bool,
    /// Given by.
    pub given_by: String,
    /// Their name.
    pub given_by_name: Option<String>,
    /// Given at (ms).
    pub given_at: i64,
}

/// Someone a grant may go to: one of their roles in the case's clinic or lab, or (looked up by
/// e-mail, for support access) an account of any organisation, shown without its organisation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Grantable {
    /// User id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Their name.
    pub name: String,
    /// Their role in that organisation (absent for a support account).
    pub role: Option<String>,
    /// The organisation (the case's clinic or lab; absent for a support account).
    #[schema(value_type = Option<String>)]
    pub org_id: Option<OrgId>,
    /// Its name.
    pub org_name: Option<String>,
}

/// Whom to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GrantableQuery {
    /// The e-mail of a support account (owners of the case's clinic only): that account alone.
    email: Option<String>,
}

/// What to grant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GiveGrant {
    /// Capabilities: `view`, `chat`, `upload`, `edit_rx`, `approve`, `manage` (`view` is implied).
    #[schema(value_type = Vec<String>)]
    capabilities: Vec<Capability>,
    /// Until when, ms since the epoch (a support grant needs one, at most 30 days ahead).
    #[serde(default)]
    until: Option<i64>,
    /// Read access for a support account (owners only; `view` only).
    #[serde(default)]
    support: bool,
}

/// The grants in force on a case: for its members, and for owners of its clinic.
#[utoipa::path(get, path = "/api/v1/cases/{id}/grants", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = [GrantView]), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    if !app.db.may_see_grants(caller.user_id, case_id).await? {
        return Err(ApiError::not_found("case"));
    }
    Ok(HttpResponse::Ok().json(app.db.grants(case_id).await?))
}

/// Give a user capabilities on the case (replacing their grant).
#[utoipa::path(put, path = "/api/v1/cases/{id}/grants/{user_id}", tag = "cases",
    params(("id" = String, Path), ("user_id" = String, Path)), request_body = GiveGrant,
    responses((status = 200, body = [GrantView]), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn give(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    path: web::Path<(CaseId, UserId)>,
    body: web::Json<GiveGrant>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, user_id) = path.into_inner();
    let body = body.into_inner();
    let active =
        app.db.user(user_id).await?.is_some_and(|u| u.status == crate::store::users::UserStatus::Active);
    if !active {
        return Err(ApiError::new(ErrorCode::NotFound, "user not found"));
    }
    let grantee = app.db.memberships(user_id).await?;
    let who = super::cases::principal(&app, caller.user_id).await?.from_ip(ip.0);
    let cmd = CaseCommand::GiveGrant {
        user_id,
        capabilities: body.capabilities,
        until: body.until,
        support: body.support,
        grantee_orgs: grantee.iter().map(|m| m.org_id).collect(),
    };
    app.registry.command(case_id, Command { who, client_id: None, body: cmd }).await?;
    Ok(HttpResponse::Ok().json(app.db.grants(case_id).await?))
}

/// Take a user's grant back, at once (their live sockets lose what it gave them).
#[utoipa::path(delete, path = "/api/v1/cases/{id}/grants/{user_id}", tag = "cases",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn revoke(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    path: web::Path<(CaseId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, user_id) = path.into_inner();
    let who = super::cases::principal(&app, caller.user_id).await?.from_ip(ip.0);
    let cmd = CaseCommand::RevokeGrant { user_id };
    app.registry.command(case_id, Command { who, client_id: None, body: cmd }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whom the caller may give a grant on this case: the active members of its clinic and of its lab
/// (not the caller, not the case's doctor), for whoever manages its grants; with `email`, the
/// support account of that address (owners of the clinic only). Ids, names, roles and
/// organisations only.
#[utoipa::path(get, path = "/api/v1/cases/{id}/grantable", tag = "cases", params(("id" = String, Path), GrantableQuery),
    responses((status = 200, body = [Grantable]), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn grantable(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
    query: web::Query<GrantableQuery>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    let Some((clinic, lab, doctor)) = app.db.case_parties(case_id).await? else {
        return Err(ApiError::not_found("case"));
    };
    let owner =
        app.db.memberships(caller.user_id).await?.iter().any(|m| m.org_id == clinic && m.role == Role::Owner);
    let access = app.db.case_access(caller.user_id, case_id).await?;
    if access.is_none() && !owner {
        return Err(ApiError::not_found("case"));
    }
    if !owner && !access.is_some_and(|a| a.may_manage()) {
        return Err(ApiError::forbidden("your role may not manage grants on this case"));
    }
    if let Some(email) = &query.email {
        if !owner {
            return Err(ApiError::forbidden("support access is given by an owner of the clinic"));
        }
        let found = app
            .db
            .user_by_email(&email.trim().to_lowercase())
            .await?
            .filter(|u| u.status == crate::store::users::UserStatus::Active && u.id != caller.user_id);
        let list: Vec<Grantable> = found
            .map(|u| Grantable { user_id: u.id, name: u.name, role: None, org_id: None, org_name: None })
            .into_iter()
            .collect();
        return Ok(HttpResponse::Ok().json(list));
    }
    let orgs: Vec<OrgId> = [Some(clinic), lab].into_iter().flatten().collect();
    let people: Vec<Grantable> = app
        .db
        .org_people(&orgs)
        .await?
        .into_iter()
        .filter(|p| p.user_id != caller.user_id && p.user_id != doctor)
        .collect();
    Ok(HttpResponse::Ok().json(people))
}
