//! Reading the audit log (issue 18): a page of entries, a streamed export, and the check of the
//! chain — for owners and auditors of the organisation only. A refused attempt is itself
//! audited (`audit.denied`), and so is every read (`audit.read`), export (`audit.export`,
//! `audit.export_finished`) and check (`audit.verify`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use articula_protocol::{CaseId, OrgId, Role, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ClientIp, resource};
use crate::audit::chain::Entry;
use crate::audit::export::{self, Export, Format};
use crate::audit::{Record, record};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit::AuditFilter;

/// Entries per page by default, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/audit").route(web::get().to(read)))
        .service(resource("/audit/export").route(web::get().to(export)))
        .service(resource("/audit/verify").route(web::get().to(verify)));
}

/// Filters and paging of an audit read. Times are milliseconds since the Unix epoch (UTC), like
/// every time of the API.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// The organisation, for owners and auditors of several.
    #[param(value_type = Option<String>)]
    org_id: Option<OrgId>,
    /// Only what this user did.
    #[param(value_type = Option<String>)]
    user: Option<UserId>,
    /// Only actions starting with this (`auth.`, `case.message_posted`…): letters, digits, `_`, `.`.
    action: Option<String>,
    /// Only what concerns this case.
    #[param(value_type = Option<String>)]
    case: Option<CaseId>,
    /// From this time (ms since the epoch, inclusive).
    from: Option<i64>,
    /// Until this time (ms since the epoch, exclusive).
    until: Option<i64>,
    /// The cursor: entries after this position `n` (the `next` of the previous page).
    after: Option<u64>,
    /// Entries per page: 1 to 500, 100 by default.
    limit: Option<i64>,
}

/// Filters of an export (as for a read; no paging: the export holds every matching entry).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    #[param(value_type = Option<String>)]
    format: Option<Format>,
    /// The organisation, for owners and auditors of several.
    #[param(value_type = Option<String>)]
    org_id: Option<OrgId>,
    /// Only what this user did (the export is then marked `filtered` and cannot be verified).
    #[param(value_type = Option<String>)]
    user: Option<UserId>,
    /// Only actions starting with this (filtered).
    action: Option<String>,
    /// Only what concerns this case (filtered).
    #[param(value_type = Option<String>)]
    case: Option<CaseId>,
    /// From this time (ms since the epoch, inclusive; filtered).
    from: Option<i64>,
    /// Until this time (ms since the epoch, exclusive; filtered).
    until: Option<i64>,
}

/// Which organisation's chain to check.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// The organisation, for owners and auditors of several.
    #[param(value_type = Option<String>)]
    org_id: Option<OrgId>,
}

/// A page of entries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries, in chain order (`n` ascending). `details` is a JSON object in a string, exactly
    /// as hashed.
    entries: Vec<Entry>,
    /// The `after` of the next page; `null` on the last.
    next: Option<u64>,
}

/// Where the chain is broken.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BrokenView {
    /// The first entry that does not check out.
    n: u64,
    /// Why.
    reason: String,
}

/// The outcome of a check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyView {
    /// Whether the chain is intact.
    ok: bool,
    /// Entries checked (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<u64>,
    /// The last entry's hash (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_hash: Option<String>,
    /// Where it is broken (when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    broken: Option<BrokenView>,
}

/// The organisation whose log the caller may read: one where they are owner or auditor (the one
/// asked for, or their only one). Anyone else is refused, and the refusal is audited in the
/// chains of the organisations they belong to.
async fn readable_org(
    app: &AppState,
    caller: &Caller,
    ip: &ClientIp,
    asked: Option<OrgId>,
    route: &'static str,
) -> Result<OrgId, ApiError> {
    let memberships = app.db.memberships(caller.user_id).await?;
    let mut orgs: Vec<OrgId> = memberships
        .iter()
        .filter(|m| matches!(m.role, Role::Owner | Role::Auditor))
        .filter(|m| asked.is_none_or(|o| o == m.org_id))
        .map(|m| m.org_id)
        .collect();
    orgs.sort();
    orgs.dedup();
    match orgs.as_slice() {
        [org] => Ok(*org),
        [] => {
            let mut r = Record::new("audit.denied", Some(caller.user_id), Some(ip.0.clone()))
                .orgs(memberships.iter().map(|m| m.org_id))
                .details(json!({"route": route}));
            if let Some(o) = asked {
                r = r.target(format!("org:{o}"));
            }
            // The refusal stands whether or not it could be recorded (a failure is logged).
            let _ = record(&app.db, r).await;
            Err(ApiError::forbidden("only owners and auditors of an organisation may read its audit log"))
        }
        _ => Err(ApiError::invalid("you may read the audit logs of several organisations: give org_id")),
    }
}

/// Checks the filters shared by reads and exports.
fn filter(
    user: Option<UserId>,
    action: Option<String>,
    case: Option<CaseId>,
    from: Option<i64>,
    until: Option<i64>,
) -> Result<AuditFilter, ApiError> {
    if let Some(a) = &action {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.';
        if a.is_empty() || a.len() > 100 || !a.chars().all(ok_char) {
            return Err(ApiError::invalid(
                "action: a prefix of an action name (1 to 100 of a-z, 0-9, `_`, `.`)",
            ));
        }
    }
    if let (Some(f), Some(u)) = (from, until)
        && f > u
    {
        return Err(ApiError::invalid("from must not be after until"));
    }
    Ok(AuditFilter {
        actor_id: user.map(|u| u.to_string()),
        action,
        case_id: case.map(|c| c.to_string()),
        from,
        until,
        after_n: 0,
        limit: 0,
    })
}

/// The filters as recorded in an entry's details (ids and times only).
fn filter_details(f: &AuditFilter) -> serde_json::Value {
    json!({"user": f.actor_id, "action": f.action, "case": f.case_id, "from": f.from, "until": f.until})
}

/// A page of the organisation's audit log (owners and auditors).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(ReadQuery),
    responses((status = 200, body = AuditPage), (status = 403, description = "not an owner or auditor"),
        (status = 422, description = "validation_failed")), security(("bearer" = [])))]
pub async fn read(
    caller: Caller,
    ip: ClientIp,
    app: web::Data<AppState>,
    q: web::Query<ReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let org = readable_org(&app, &caller, &ip, q.org_id, "read").await?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: 1 to {MAX_LIMIT}")));
    }
    let mut f = filter(q.user, q.action, q.case, q.from, q.until)?;
    // Only the first page of a read is recorded (no `after`): the pages after it continue the
    // same read, and an entry per page would grow the log by the reading of it.
    if q.after.is_none() {
        let r = Record::new("audit.read", Some(caller.user_id), Some(ip.0.clone()))
            .orgs([org])
            .target(format!("org:{org}"))
            .details(filter_details(&f));
        record(&app.db, r).await?;
    }
    f.after_n = q.after.unwrap_or(0);
    // One more than asked tells whether there is a next page.
    f.limit = limit + 1;
    let mut entries = app.db.audit_entries(&org.to_string(), &f).await?;
    let next = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.n)
    } else {
        None
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AuditPage { entries, next }))
}

/// The organisation's audit log as a file, streamed: JSON Lines (an entry per line, then the
/// chain's recorded heads as `{"head":…}`, then `{"end":true,"entries":N,"last_hash":…,"filtered":…}`)
/// or CSV (header row; a `kind` column tells `entry`, `head` and `end` rows apart; the end row's
/// `details` holds the end object). A file without its end line was cut. With any filter the
/// export is `filtered` and cannot be verified as a chain.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportQuery),
    responses((status = 200, description = "the export (application/x-ndjson or text/csv), as an attachment"),
        (status = 403, description = "not an owner or auditor"), (status = 422, description = "validation_failed")),
    security(("bearer" = [])))]
pub async fn export(
    caller: Caller,
    ip: ClientIp,
    app: web::Data<AppState>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let org = readable_org(&app, &caller, &ip, q.org_id, "export").await?;
    let format = q.format.unwrap_or_default();
    let f = filter(q.user, q.action, q.case, q.from, q.until)?;
    let mut details = filter_details(&f);
    let ex = Export {
        org: org.to_string(),
        filter: f,
        format,
        finished: Some(
            Record::new("audit.export_finished", Some(caller.user_id), Some(ip.0.clone()))
                .orgs([org])
                .target(format!("org:{org}")),
        ),
    };
    details["format"] = json!(format.extension());
    details["filtered"] = json!(ex.filtered());
    let r = Record::new("audit.export", Some(caller.user_id), Some(ip.0.clone()))
        .orgs([org])
        .target(format!("org:{org}"))
        .details(details);
    record(&app.db, r).await?;
    let filename = format!("audit-{org}-{}.{}", articula_actors::clock::today_utc(), format.extension());
    let body = export::stream(app.db.clone(), ex);
    let body = futures_util::TryStreamExt::map_err(body, |e| {
        tracing::error!(error = %e, "an audit export failed; the file ends without its end line");
        e
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

/// Checks the organisation's chain in the database: every entry's hash, the recorded heads and
/// the event feed.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = VerifyView), (status = 403, description = "not an owner or auditor")),
    security(("bearer" = [])))]
pub async fn verify(
    caller: Caller,
    ip: ClientIp,
    app: web::Data<AppState>,
    q: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    let org = readable_org(&app, &caller, &ip, q.org_id, "verify").await?;
    let view = match crate::audit::verify_org(&app.db, &org.to_string()).await? {
        Ok(v) => {
            VerifyView { ok: true, entries: Some(v.entries), last_hash: Some(v.last_hash), broken: None }
        }
        Err(b) => VerifyView {
            ok: false,
            entries: None,
            last_hash: None,
            broken: Some(BrokenView { n: b.n, reason: b.reason }),
        },
    };
    let r = Record::new("audit.verify", Some(caller.user_id), Some(ip.0.clone()))
        .orgs([org])
        .target(format!("org:{org}"))
        .details(json!({"ok": view.ok, "broken_at": view.broken.as_ref().map(|b| b.n)}));
    record(&app.db, r).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(view))
}
