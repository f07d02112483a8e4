//! `/api/v1/cases…`, `/api/v1/labs`, `/api/v1/board`: every read filtered by the caller's
//! memberships in the SQL; every change goes through the case's actor (its only writer).

use actix_web::{HttpResponse, web};
use articula_actors::case::state::CaseState;
use articula_actors::clock::{now_ms, today_utc};
use articula_actors::ports::StoredEvent;
use articula_actors::{CaseCommand, Command, Principal};
use articula_protocol::{
    CaseId, CaseStatus, CaseSummary, ErrorCode, Event, EventData, OrgId, OrgKind, Role, SetStatus,
    UpdateCase, UserId,
};
use serde::{Deserialize, Serialize};

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::cases::{BoardScope, CaseFilter, CaseView, Participant, UnreadCase};
use crate::store::events::{ApprovalView, MessageView, ProposalView, RxFieldView};
use crate::store::users::Org;

/// Routes of this module.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/labs").route(web::get().to(labs)))
        .service(resource("/board").route(web::get().to(board)))
        .service(resource("/unread").route(web::get().to(unread)))
        .service(resource("/cases").route(web::get().to(list)).route(web::post().to(create)))
        .service(resource("/cases/{id}").route(web::get().to(get)).route(web::patch().to(update)))
        .service(resource("/cases/{id}/status").route(web::post().to(set_status)))
        .service(resource("/cases/{id}/events").route(web::get().to(events)))
        .service(resource("/cases/{id}/messages").route(web::get().to(messages)))
        .service(resource("/cases/{id}/rx").route(web::get().to(rx)))
        .service(resource("/cases/{id}/rx/history").route(web::get().to(rx_history)))
        .service(resource("/cases/{id}/approvals").route(web::get().to(approvals)))
        .service(resource("/cases/{id}/participants").route(web::get().to(participants)));
}

/// The caller's relation to a case, or 404 (also for cases that exist but are not theirs).
/// Who the caller is for the case actors: the user and their active memberships, read now (the
/// actor decides their relation to the case from these and the case as it is).
pub async fn principal(app: &AppState, user: UserId) -> Result<Principal, ApiError> {
    let memberships = app.db.memberships(user).await?;
    Ok(Principal::new(user, memberships.iter().map(|m| (m.org_id, m.role))))
}

pub async fn require_access(
    app: &AppState,
    user: UserId,
    case: CaseId,
) -> Result<articula_actors::CaseAccess, ApiError> {
    app.db.case_access(user, case).await?.ok_or_else(|| ApiError::not_found("case"))
}

async fn view(app: &AppState, user: UserId, case: CaseId) -> Result<CaseView, ApiError> {
    app.db.case_view(user, case, today_utc()).await?.ok_or_else(|| ApiError::not_found("case"))
}

/// Labs a case can be routed to.
#[utoipa::path(get, path = "/api/v1/labs", tag = "cases", responses((status = 200, body = [Org])), security(("bearer" = [])))]
pub async fn labs(_caller: Caller, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.db.list_orgs(Some(OrgKind::Lab)).await?))
}

/// Query of the case list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status.
    #[param(value_type = Option<String>)]
    status: Option<CaseStatus>,
    /// Label contains (case-insensitive).
    q: Option<String>,
    /// Only this lab.
    #[param(value_type = Option<String>)]
    lab_id: Option<OrgId>,
    /// Only this doctor.
    #[param(value_type = Option<String>)]
    doctor_id: Option<UserId>,
    /// Due on or before this date (YYYY-MM-DD).
    due_before: Option<String>,
    /// Page size (1–500, default 100).
    limit: Option<i64>,
    /// Offset.
    offset: Option<i64>,
}

/// The cases the caller may see, most recently active first.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(ListQuery), responses((status = 200, body = [CaseView])), security(("bearer" = [])))]
pub async fn list(
    caller: Caller,
    app: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if let Some(d) = &q.due_before
        && articula_actors::clock::parse_date(d).is_none()
    {
        return Err(ApiError::invalid("due_before must be a date YYYY-MM-DD"));
    }
    let filter = CaseFilter {
        status: q.status,
        q: q.q.filter(|s| !s.trim().is_empty()).map(|s| s.trim().chars().take(100).collect()),
        lab_id: q.lab_id,
        doctor_id: q.doctor_id,
        due_before: q.due_before,
        limit: q.limit.unwrap_or(100).clamp(1, 500),
        offset: q.offset.unwrap_or(0).max(0),
    };
    Ok(HttpResponse::Ok().json(app.db.list_cases(caller.user_id, &filter, today_utc()).await?))
}

/// A new case.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCase {
    /// A client-chosen id (UUID) that makes the request idempotent: sending it again returns the
    /// case created the first time instead of a second case.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    id: Option<CaseId>,
    /// De-identified label (no patient name needed), 1–200 characters.
    label: String,
    /// Due date `YYYY-MM-DD`.
    #[serde(default)]
    due_date: Option<String>,
    /// The lab to route to.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    lab_id: Option<OrgId>,
    /// The clinic, when the doctor works in several.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    clinic_id: Option<OrgId>,
    /// `shown_and_kept`: the client warned that the label looks like a patient's name and the
    /// user kept it (audited as `case.label_warning`, without the label).
    #[serde(default)]
    label_warning: Option<super::labels::LabelWarning>,
}

/// Open a case (doctors). It starts as a draft the lab cannot see until it is submitted.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", request_body = CreateCase,
    responses((status = 201, body = CaseView), (status = 200, description = "a retry with the same id: the existing case", body = CaseView),
        (status = 403, description = "forbidden: not a doctor"), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    body: web::Json<CreateCase>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let memberships = app.db.memberships(caller.user_id).await?;
    let clinics: Vec<_> = memberships.iter().filter(|m| m.role == Role::Doctor).map(|m| m.org_id).collect();
    let clinic = match (body.clinic_id, clinics.as_slice()) {
        (_, []) => return Err(ApiError::forbidden("only doctors open cases")),
        (Some(c), list) if list.contains(&c) => c,
        (Some(_), _) => return Err(ApiError::forbidden("you are not a doctor of that clinic")),
        (None, [one]) => *one,
        (None, _) => return Err(ApiError::invalid("you work in several clinics: give clinic_id")),
    };
    let label = body.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > articula_actors::case::MAX_LABEL_CHARS {
        return Err(ApiError::invalid("label must have 1 to 200 characters"));
    }
    if let Some(d) = &body.due_date
        && articula_actors::clock::parse_date(d).is_none()
    {
        return Err(ApiError::invalid("due_date must be a date YYYY-MM-DD"));
    }
    if let Some(lab) = body.lab_id {
        ensure_lab(&app, lab).await?;
    }
    let case_id = body.id.unwrap_or_default();
    if body.id.is_some() {
        // A retry of a creation whose answer was lost: the same doctor gets the same case.
        if let Some(existing) = app.db.case_view(caller.user_id, case_id, today_utc()).await?
            && existing.doctor_id == caller.user_id
        {
            return Ok(HttpResponse::Ok().json(existing));
        }
    }
    let event = StoredEvent {
        case_id,
        seq: 1,
        at: now_ms(),
        actor: caller.user_id,
        client_id: None,
        digest: None,
        ip: None,
        data: EventData::CaseCreated {
            label,
            clinic_id: clinic,
            doctor_id: caller.user_id,
            lab_id: body.lab_id,
            due_date: body.due_date,
        },
    };
    let state = CaseState::from_log(std::slice::from_ref(&event))
        .ok_or_else(|| ApiError::internal("case_created"))?;
    app.db
        .create_case(&event, &state.row(), &clinic.to_string(), &caller.user_id.to_string())
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::new(ErrorCode::Conflict, "a case with this id exists")
            } else {
                e.into()
            }
        })?;
    app.registry.hubs().publish_board(clinic, &state.summary(today_utc()));
    tracing::info!(case = %case_id, user = %caller.user_id, "case created");
    if body.label_warning.is_some() {
        super::labels::record_kept(&app, caller.user_id, ip.0, clinic, case_id, "create").await?;
    }
    Ok(HttpResponse::Created().json(view(&app, caller.user_id, case_id).await?))
}

async fn ensure_lab(app: &AppState, lab: OrgId) -> Result<(), ApiError> {
    match app.db.find_org(&lab.to_string()).await? {
        Some(o) if o.kind == OrgKind::Lab => Ok(()),
        _ => Err(ApiError::invalid("lab_id is not a lab")),
    }
}

/// One case.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = CaseDetail), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    let view = view(&app, caller.user_id, case_id).await?;
    let access = app.db.case_access(caller.user_id, case_id).await?;
    let owner = app
        .db
        .memberships(caller.user_id)
        .await?
        .iter()
        .any(|m| m.org_id == view.clinic_id && m.role == Role::Owner);
    let allowed = access.map(|mut a| {
        a.clinic_owner = owner;
        Allowed::of(&a, &view)
    });
    Ok(HttpResponse::Ok().json(CaseDetail { view, allowed: allowed.unwrap_or_default() }))
}

/// One case, with what the caller may do in it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaseDetail {
    /// The case.
    #[serde(flatten)]
    pub view: CaseView,
    /// What the caller may do in the case now.
    pub allowed: Allowed,
}

/// What the caller may do in a case now, computed by the same policy code that decides their
/// commands (actors/src/policy.rs): clients offer these and nothing else. A change of status,
/// lab or grants changes it; clients read the case again after such events.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Allowed {
    /// Post, edit and delete their messages; mark read.
    pub chat: bool,
    /// Add files.
    pub upload: bool,
    /// Edit and sign the Rx, decide the lab's proposals.
    pub prescribe: bool,
    /// Propose Rx changes and request design approvals (the lab's side).
    pub propose: bool,
    /// Approve or reject designs.
    pub approve: bool,
    /// Give and take grants.
    pub manage: bool,
    /// Change the label and due date (the clinic's side).
    pub update: bool,
    /// Route the case to another lab.
    pub route: bool,
    /// The side the caller acts for: `clinic`, `lab`, or none (a grant only).
    pub side: Option<&'static str>,
    /// Statuses the caller may move the case to now, in workflow order.
    #[schema(value_type = Vec<String>)]
    pub transitions: Vec<CaseStatus>,
}

impl Allowed {
    fn of(a: &articula_actors::CaseAccess, v: &CaseView) -> Self {
        Self {
            chat: a.may_chat(),
            upload: a.may_upload(),
            prescribe: a.may_prescribe(),
            propose: a.lab_side(),
            approve: a.may_approve(),
            manage: a.may_manage(),
            update: a.clinic_side() && !v.status.is_terminal(),
            route: articula_actors::policy::may_route(a, v.status),
            side: if a.clinic_side() {
                Some("clinic")
            } else if a.lab_side() {
                Some("lab")
            } else {
                None
            },
            transitions: articula_actors::policy::allowed_transitions(
                a,
                v.status,
                v.status_before_hold,
                v.lab_id.is_some(),
            ),
        }
    }
}

/// Metadata changes; absent fields stay, `null` clears.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCase {
    /// New label.
    #[serde(default)]
    label: Option<String>,
    /// New due date, or null.
    #[serde(default, with = "articula_protocol::double_option")]
    #[schema(value_type = Option<String>)]
    due_date: Option<Option<String>>,
    /// New lab (clinic admins), or null.
    #[serde(default, with = "articula_protocol::double_option")]
    #[schema(value_type = Option<String>)]
    lab_id: Option<Option<OrgId>>,
    /// `shown_and_kept`: the client warned that the new label looks like a patient's name and the
    /// user kept it (audited as `case.label_warning`, without the label).
    #[serde(default)]
    label_warning: Option<super::labels::LabelWarning>,
}

/// Change label, due date or lab routing (through the case's actor, like every change).
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = String, Path)), request_body = PatchCase,
    responses((status = 200, body = CaseView), (status = 403), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
    body: web::Json<PatchCase>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let who = principal(&app, caller.user_id).await?.from_ip(ip.0.clone());
    let body = body.into_inner();
    if let Some(Some(lab)) = body.lab_id {
        ensure_lab(&app, lab).await?;
    }
    let warned = body.label_warning.is_some() && body.label.is_some();
    let cmd = CaseCommand::UpdateCase(UpdateCase {
        case_id,
        label: body.label,
        due_date: body.due_date,
        lab_id: body.lab_id,
    });
    app.registry.command(case_id, Command { who, client_id: None, body: cmd }).await?;
    let case = view(&app, caller.user_id, case_id).await?;
    if warned {
        super::labels::record_kept(&app, caller.user_id, ip.0, case.clinic_id, case_id, "update").await?;
    }
    Ok(HttpResponse::Ok().json(case))
}

/// A status change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The new status.
    #[schema(value_type = String)]
    status: CaseStatus,
    /// Why.
    #[serde(default)]
    reason: Option<String>,
}

/// Move the case along its workflow (who may make which step follows the role table).
#[utoipa::path(post, path = "/api/v1/cases/{id}/status", tag = "cases", params(("id" = String, Path)), request_body = StatusChange,
    responses((status = 200, body = CaseView), (status = 404), (status = 409, description = "invalid_transition")), security(("bearer" = [])))]
pub async fn set_status(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
    body: web::Json<StatusChange>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let who = principal(&app, caller.user_id).await?.from_ip(ip.0);
    let body = body.into_inner();
    let cmd = CaseCommand::SetStatus(SetStatus { case_id, status: body.status, reason: body.reason });
    app.registry.command(case_id, Command { who, client_id: None, body: cmd }).await?;
    Ok(HttpResponse::Ok().json(view(&app, caller.user_id, case_id).await?))
}

/// Paging of events.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with seq greater than this (default 0).
    after: Option<u64>,
    /// Page size (1–1000, default 200).
    limit: Option<i64>,
}

/// A page of events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// Events in seq order (the same objects as the socket's `event` frames' `data`).
    #[schema(value_type = Vec<Object>)]
    events: Vec<Event>,
    /// Pass as `after` for the next page; absent at the end.
    next_after: Option<u64>,
}

/// The case's event log, paged by seq.
#[utoipa::path(get, path = "/api/v1/cases/{id}/events", tag = "cases", params(("id" = String, Path), EventsQuery),
    responses((status = 200, body = EventPage), (status = 404)), security(("bearer" = [])))]
pub async fn events(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let list = app.db.events_page(case_id, q.after.unwrap_or(0), u64::MAX, limit).await?;
    let next_after = (list.len() as i64 == limit).then(|| list.last().map(|e| e.seq)).flatten();
    let events = list
        .into_iter()
        .map(|e| Event { case_id: e.case_id, seq: e.seq, at: e.at, actor: e.actor, data: e.data })
        .collect();
    Ok(HttpResponse::Ok().json(EventPage { events, next_after }))
}

/// Paging of messages.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Messages older than this seq (default: the newest).
    before: Option<u64>,
    /// Page size (1–200, default 50).
    limit: Option<i64>,
}

/// Chat messages, a page of the newest before `before`, in order.
#[utoipa::path(get, path = "/api/v1/cases/{id}/messages", tag = "cases", params(("id" = String, Path), MessagesQuery),
    responses((status = 200, body = [MessageView]), (status = 404)), security(("bearer" = [])))]
pub async fn messages(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
    q: web::Query<MessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let list = app.db.messages(case_id, q.before, q.limit.unwrap_or(50).clamp(1, 200)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// The current Digital Rx.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RxView {
    /// Seq of the last Rx change (0: never changed).
    rx_version: u64,
    /// Fields with their versions.
    fields: Vec<RxFieldView>,
    /// Lab proposals.
    proposals: Vec<ProposalView>,
}

/// The current Rx, field by field, with lab proposals.
#[utoipa::path(get, path = "/api/v1/cases/{id}/rx", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = RxView), (status = 404)), security(("bearer" = [])))]
pub async fn rx(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let v = view(&app, caller.user_id, case_id).await?;
    let fields = app.db.rx_fields(case_id).await?;
    let proposals = app.db.rx_proposals(case_id).await?;
    Ok(HttpResponse::Ok().json(RxView { rx_version: v.rx_version, fields, proposals }))
}

/// Every Rx change, proposal and signature, in order.
#[utoipa::path(get, path = "/api/v1/cases/{id}/rx/history", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = EventPage), (status = 404)), security(("bearer" = [])))]
pub async fn rx_history(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    let list = app
        .db
        .events_of_kinds(case_id, &["rx_edited", "rx_signed", "rx_proposed", "rx_proposal_decided"], 10_000)
        .await?;
    let events = list
        .into_iter()
        .map(|e| Event { case_id: e.case_id, seq: e.seq, at: e.at, actor: e.actor, data: e.data })
        .collect();
    Ok(HttpResponse::Ok().json(EventPage { events, next_after: None }))
}

/// Approval requests and their decisions.
#[utoipa::path(get, path = "/api/v1/cases/{id}/approvals", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = [ApprovalView]), (status = 404)), security(("bearer" = [])))]
pub async fn approvals(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    Ok(HttpResponse::Ok().json(app.db.approvals(case_id).await?))
}

/// The people who can see the case, with their names and roles (to show names for the ids in
/// events, presence and receipts).
#[utoipa::path(get, path = "/api/v1/cases/{id}/participants", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = [Participant]), (status = 404)), security(("bearer" = [])))]
pub async fn participants(
    caller: Caller,
    app: web::Data<AppState>,
    id: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let case_id = id.into_inner();
    require_access(&app, caller.user_id, case_id).await?;
    Ok(HttpResponse::Ok().json(app.db.participants(case_id).await?))
}

/// Unread messages.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UnreadView {
    /// Cases the caller may see that have messages by others after the caller's read mark,
    /// most recently active first (at most 500).
    pub cases: Vec<UnreadCase>,
}

/// Unread messages per case, from the caller's read marks (`mark_read` on the socket), and how
/// many of them mention the caller. Clients keep it current with `inbox` frames.
#[utoipa::path(get, path = "/api/v1/unread", tag = "cases", responses((status = 200, body = UnreadView)), security(("bearer" = [])))]
pub async fn unread(caller: Caller, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(UnreadView { cases: app.db.unread(caller.user_id).await? }))
}

/// Which board.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// The organisation, for users of several.
    #[param(value_type = Option<String>)]
    org_id: Option<OrgId>,
}

/// A status board.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BoardView {
    /// The organisation.
    #[schema(value_type = String)]
    org_id: OrgId,
    /// Its cases.
    #[schema(value_type = Vec<Object>)]
    cases: Vec<CaseSummary>,
}

/// Which board a user sees in an organisation: clinic admins and lab members all its cases,
/// doctors their own. Owners and auditors have no board (no case content).
pub async fn board_scope(app: &AppState, user: UserId, org: Option<OrgId>) -> Result<BoardScope, ApiError> {
    let memberships = app.db.memberships(user).await?;
    let scopes: Vec<BoardScope> = memberships
        .iter()
        .filter(|m| org.is_none_or(|o| o == m.org_id))
        .filter_map(|m| match m.role {
            Role::ClinicAdmin => Some(BoardScope::Clinic(m.org_id)),
            Role::Doctor => Some(BoardScope::Doctor(m.org_id, user)),
            Role::LabTech | Role::LabAdmin => Some(BoardScope::Lab(m.org_id)),
            Role::Owner | Role::Auditor => None,
        })
        .collect();
    // The widest view wins when a user holds several roles in one organisation.
    let best = |s: &BoardScope| !matches!(s, BoardScope::Doctor(..));
    let mut orgs: Vec<OrgId> = scopes.iter().map(BoardScope::org).collect();
    orgs.sort();
    orgs.dedup();
    match orgs.as_slice() {
        [] => Err(ApiError::new(ErrorCode::NotFound, "no status board for you here")),
        [_] => Ok(scopes
            .iter()
            .find(|s| best(s))
            .or(scopes.first())
            .copied()
            .ok_or_else(|| ApiError::not_found("board"))?),
        _ => Err(ApiError::invalid("you belong to several organisations: give org_id")),
    }
}

/// The status board snapshot (live updates come over the socket with `subscribe_board`).
#[utoipa::path(get, path = "/api/v1/board", tag = "cases", params(BoardQuery),
    responses((status = 200, body = BoardView), (status = 404)), security(("bearer" = [])))]
pub async fn board(
    caller: Caller,
    app: web::Data<AppState>,
    q: web::Query<BoardQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = board_scope(&app, caller.user_id, q.org_id).await?;
    let cases = app.db.board(scope, now_ms(), today_utc()).await?;
    Ok(HttpResponse::Ok().json(BoardView { org_id: scope.org(), cases }))
}
