//! Cases and their read models, always filtered by the caller's memberships inside the SQL.
//!
//! Queries are composed from constant fragments only (`AssertSqlSafe`); every value is bound.

use articula_actors::CaseAccess;
use articula_actors::policy::{at_risk, days_left, lead_days};
use articula_protocol::{CaseId, CaseStatus, CaseSummary, OrgId, UserId};
use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreError, parse};
use crate::with_db;

/// The visibility rule of DESIGN §2, with `$1` = the caller's user id: the case's own doctor (still
/// a doctor of its clinic), any clinic admin of its clinic, the technicians and admins of the
/// lab it is routed to once it is no longer a draft, and whoever holds a grant in force on the
/// case (`{NOW}`: the database's clock in ms, see [`visible`]). Owners and auditors see no case
/// content by their role alone.
const VISIBLE: &str = "(
    (c.doctor_id = $1 AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.clinic_id
        AND m.role = 'doctor' AND m.revoked_at IS NULL))
    OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.clinic_id
        AND m.role = 'clinic_admin' AND m.revoked_at IS NULL)
    OR (c.status <> 'draft' AND NOT (c.status = 'on_hold' AND c.status_before_hold = 'draft') AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.lab_id
        AND m.role IN ('lab_tech', 'lab_admin') AND m.revoked_at IS NULL))
    OR EXISTS (SELECT 1 FROM case_grants g WHERE g.case_id = c.id AND g.user_id = $1
        AND (g.until IS NULL OR g.until > {NOW}))
)";

/// The current time in milliseconds, in each database's own words.
pub fn now_sql(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Db::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// Capabilities stored as a comma-separated list.
pub fn caps_of(stored: Option<&str>) -> articula_actors::policy::Caps {
    let list: Vec<articula_protocol::Capability> =
        stored.unwrap_or_default().split(',').filter_map(|c| c.trim().parse().ok()).collect();
    articula_actors::policy::Caps::of(&list)
}

/// [`VISIBLE`] for `db`.
pub fn visible(db: &Db) -> String {
    VISIBLE.replace("{NOW}", now_sql(db))
}

/// At most this many cases in an unread answer (the newest first).
pub const UNREAD_CASES: i64 = 500;

/// Unread messages in one case (`GET /api/v1/unread`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadCase {
    /// The case.
    #[schema(value_type = String)]
    pub case_id: CaseId,
    /// Messages by others after the caller's read mark (deleted ones do not count).
    pub unread: u64,
    /// Of those, the ones that mention the caller.
    pub mentions: u64,
    /// The caller's read mark (0: never read).
    pub read_seq: u64,
}

/// A case as the REST API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    /// Id.
    #[schema(value_type = String)]
    pub id: CaseId,
    /// De-identified label.
    pub label: String,
    /// Status.
    #[schema(value_type = String)]
    pub status: CaseStatus,
    /// Status a case on hold returns to.
    #[schema(value_type = Option<String>)]
    pub status_before_hold: Option<CaseStatus>,
    /// Due date `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Due soon and not far enough along: `days_left < days_needed`.
    pub at_risk: bool,
    /// Days of lead time the case still needs at its status; null once delivered or finished.
    pub days_needed: Option<i64>,
    /// Days from today (UTC) to the due date, negative once overdue.
    pub days_left: Option<i64>,
    /// Clinic.
    #[schema(value_type = String)]
    pub clinic_id: OrgId,
    /// Clinic name.
    pub clinic_name: String,
    /// Doctor.
    #[schema(value_type = String)]
    pub doctor_id: UserId,
    /// Doctor's name.
    pub doctor_name: String,
    /// Lab.
    #[schema(value_type = Option<String>)]
    pub lab_id: Option<OrgId>,
    /// Lab name.
    pub lab_name: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Last activity (ms).
    pub last_activity: i64,
    /// Latest event seq.
    pub last_seq: u64,
    /// Seq of the last Rx change.
    pub rx_version: u64,
}

impl CaseView {
    /// The board summary of this case.
    pub fn summary(&self) -> CaseSummary {
        CaseSummary {
            case_id: self.id,
            label: self.label.clone(),
            status: self.status,
            due_date: self.due_date.clone(),
            at_risk: self.at_risk,
            days_needed: self.days_needed,
            days_left: self.days_left,
            last_activity: self.last_activity,
            doctor_id: self.doctor_id,
            clinic_id: self.clinic_id,
            lab_id: self.lab_id,
            seq: self.last_seq,
        }
    }
}

/// Filters of the case list.
#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Label contains (case-insensitive).
    pub q: Option<String>,
    /// Only this lab.
    pub lab_id: Option<OrgId>,
    /// Only this doctor.
    pub doctor_id: Option<UserId>,
    /// Due on or before.
    pub due_before: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
}

const VIEW_COLS: &str = "c.id, c.label, c.status, c.status_before_hold, c.due_date, c.clinic_id, co.name AS clinic_name,
    c.doctor_id, u.name AS doctor_name, c.lab_id, lo.name AS lab_name, c.created_at, c.last_activity, c.last_seq, c.rx_version";
const VIEW_FROM: &str = "FROM cases c JOIN orgs co ON co.id = c.clinic_id JOIN users u ON u.id = c.doctor_id
    LEFT JOIN orgs lo ON lo.id = c.lab_id";

fn view_from_row<R: Row>(r: &R, today: time::Date) -> Result<CaseView, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let before: Option<String> = r.try_get("status_before_hold")?;
    let clinic: String = r.try_get("clinic_id")?;
    let doctor: String = r.try_get("doctor_id")?;
    let lab: Option<String> = r.try_get("lab_id")?;
    let status: CaseStatus = parse(&status, "status")?;
    let before: Option<CaseStatus> = before.map(|b| parse(&b, "status")).transpose()?;
    let due_date: Option<String> = r.try_get("due_date")?;
    Ok(CaseView {
        id: parse(&id, "case id")?,
        label: r.try_get("label")?,
        at_risk: at_risk(status, before, due_date.as_deref(), today),
        days_needed: lead_days(status, before),
        days_left: days_left(due_date.as_deref(), today),
        status,
        status_before_hold: before,
        due_date,
        clinic_id: parse(&clinic, "org id")?,
        clinic_name: r.try_get("clinic_name")?,
        doctor_id: parse(&doctor, "user id")?,
        doctor_name: r.try_get("doctor_name")?,
        lab_id: lab.map(|l| parse(&l, "org id")).transpose()?,
        lab_name: r.try_get("lab_name")?,
        created_at: r.try_get("created_at")?,
        last_activity: r.try_get("last_activity")?,
        last_seq: r.try_get::<i64, _>("last_seq")? as u64,
        rx_version: r.try_get::<i64, _>("rx_version")? as u64,
    })
}

/// Someone who can see a case (for showing names instead of ids).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Participant {
    /// User id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Display name.
    pub name: String,
    /// Their roles on this case: `doctor`, `clinic_admin`, `lab_tech`, `lab_admin`.
    pub roles: Vec<String>,
    /// `clinic` or `lab`.
    pub side: &'static str,
}

/// Which cases a board shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardScope {
    /// Every case of a clinic (clinic admins).
    Clinic(OrgId),
    /// A doctor's own cases in a clinic.
    Doctor(OrgId, UserId),
    /// Cases routed to a lab, once submitted.
    Lab(OrgId),
}

impl BoardScope {
    /// The organisation whose board it is.
    pub fn org(&self) -> OrgId {
        match self {
            BoardScope::Clinic(o) | BoardScope::Doctor(o, _) | BoardScope::Lab(o) => *o,
        }
    }
}

/// Finished cases stay on the board this long after their last activity.
const BOARD_KEEP_FINISHED_MS: i64 = 7 * 24 * 3600 * 1000;

impl Db {
    /// Whether a user may read a case's grants: they see the case, or own its clinic.
    pub async fn may_see_grants(&self, user: UserId, case: CaseId) -> Result<bool, StoreError> {
        if self.case_access(user, case).await?.is_some() {
            return Ok(true);
        }
        with_db!(self, pool => {
            Ok(sqlx::query(
                "SELECT 1 AS one FROM cases c JOIN memberships m ON m.org_id = c.clinic_id AND m.user_id = $1
                   AND m.role = 'owner' AND m.revoked_at IS NULL WHERE c.id = $2",
            )
            .bind(user.to_string()).bind(case.to_string()).fetch_optional(pool).await?.is_some())
        })
    }

    /// The grants in force on a case.
    pub async fn grants(&self, case: CaseId) -> Result<Vec<crate::http::grants::GrantView>, StoreError> {
        let now = now_sql(self);
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT g.user_id, u.name, g.capabilities, g.until, g.support, g.given_by, b.name AS given_by_name, g.given_at
                 FROM case_grants g JOIN users u ON u.id = g.user_id LEFT JOIN users b ON b.id = g.given_by
                 WHERE g.case_id = $1 AND (g.until IS NULL OR g.until > {now}) ORDER BY u.name"
            )))
            .bind(case.to_string()).fetch_all(pool).await?
            .iter()
            .map(|r| {
                let caps: String = r.try_get("capabilities")?;
                Ok(crate::http::grants::GrantView {
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    capabilities: caps_of(Some(&caps)).list(),
                    until: r.try_get("until")?,
                    support: r.try_get("support")?,
                    given_by: r.try_get("given_by")?,
                    given_by_name: r.try_get("given_by_name")?,
                    given_at: r.try_get("given_at")?,
                })
            })
            .collect()
        })
    }

    /// The case's clinic, lab and doctor, if it exists.
    pub async fn case_parties(
        &self,
        case: CaseId,
    ) -> Result<Option<(OrgId, Option<OrgId>, UserId)>, StoreError> {
        let row: Option<(String, Option<String>, String)> = with_db!(self, pool => {
            match sqlx::query("SELECT clinic_id, lab_id, doctor_id FROM cases WHERE id = $1")
                .bind(case.to_string()).fetch_optional(pool).await?
            {
                Some(r) => Some((r.try_get("clinic_id")?, r.try_get("lab_id")?, r.try_get("doctor_id")?)),
                None => None,
            }
        });
        row.map(|(clinic, lab, doctor)| {
            Ok((
                parse(&clinic, "org id")?,
                lab.map(|l| parse(&l, "org id")).transpose()?,
                parse(&doctor, "user id")?,
            ))
        })
        .transpose()
    }

    /// Active members of these organisations, one row per role, by name: whom a grant may go to.
    pub async fn org_people(
        &self,
        orgs: &[OrgId],
    ) -> Result<Vec<crate::http::grants::Grantable>, StoreError> {
        let mut out = Vec::new();
        for org in orgs {
            with_db!(self, pool => {
                let rows = sqlx::query(
                    "SELECT u.id, u.name, m.role, o.id AS org_id, o.name AS org_name FROM memberships m
                       JOIN users u ON u.id = m.user_id AND u.status = 'active'
                       JOIN orgs o ON o.id = m.org_id
                     WHERE m.org_id = $1 AND m.revoked_at IS NULL ORDER BY u.name, m.role",
                )
                .bind(org.to_string()).fetch_all(pool).await?;
                for r in &rows {
                    let id: String = r.try_get("id")?;
                    let org_id: String = r.try_get("org_id")?;
                    out.push(crate::http::grants::Grantable {
                        user_id: parse(&id, "user id")?,
                        name: r.try_get("name")?,
                        role: Some(r.try_get("role")?),
                        org_id: Some(parse(&org_id, "org id")?),
                        org_name: Some(r.try_get("org_name")?),
                    });
                }
            });
        }
        Ok(out)
    }

    /// Everyone who can see a case (its doctor, the clinic's admins, the lab's members once the
    /// case is submitted), with their names. Callers must have checked access first.
    pub async fn participants(&self, case: CaseId) -> Result<Vec<Participant>, StoreError> {
        let rows: Vec<(String, String, String)> = with_db!(self, pool => {
            sqlx::query(
                "SELECT u.id, u.name, m.role FROM cases c
                   JOIN memberships m ON m.revoked_at IS NULL AND (
                        (m.org_id = c.clinic_id AND m.role = 'doctor' AND m.user_id = c.doctor_id)
                     OR (m.org_id = c.clinic_id AND m.role = 'clinic_admin')
                     OR (m.org_id = c.lab_id AND c.status <> 'draft' AND NOT (c.status = 'on_hold' AND c.status_before_hold = 'draft') AND m.role IN ('lab_tech', 'lab_admin')))
                   JOIN users u ON u.id = m.user_id AND u.status = 'active'
                 WHERE c.id = $1 ORDER BY u.name, m.role",
            )
            .bind(case.to_string())
            .fetch_all(pool).await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?, r.try_get("role")?)))
            .collect::<Result<_, StoreError>>()?
        });
        // And whoever holds a grant in force (as `grant`, or `support`).
        let mut rows = rows;
        for g in self.grants(case).await? {
            rows.push((g.user_id, g.name, if g.support { "support".into() } else { "grant".into() }));
        }
        let mut out: Vec<Participant> = Vec::new();
        for (id, name, role) in rows {
            let user_id: UserId = parse(&id, "user id")?;
            let side = if role.starts_with("lab") { "lab" } else { "clinic" };
            match out.iter_mut().find(|p| p.user_id == user_id) {
                Some(p) => p.roles.push(role),
                None => out.push(Participant { user_id, name, roles: vec![role], side }),
            }
        }
        Ok(out)
    }

    /// The caller's relation to a case, or `None` when they may not see it (or it does not exist).
    pub async fn case_access(&self, user: UserId, case: CaseId) -> Result<Option<CaseAccess>, StoreError> {
        let now = now_sql(self);
        let row = with_db!(self, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT
                   (SELECT g.capabilities FROM case_grants g WHERE g.case_id = c.id AND g.user_id = $1
                      AND (g.until IS NULL OR g.until > {now})) AS granted,
                   (c.doctor_id = $1 AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.clinic_id
                      AND m.role = 'doctor' AND m.revoked_at IS NULL)) AS is_doctor,
                   EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.clinic_id
                      AND m.role = 'clinic_admin' AND m.revoked_at IS NULL) AS is_admin,
                   (c.status <> 'draft' AND NOT (c.status = 'on_hold' AND c.status_before_hold = 'draft') AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.lab_id
                      AND m.role = 'lab_tech' AND m.revoked_at IS NULL)) AS is_tech,
                   (c.status <> 'draft' AND NOT (c.status = 'on_hold' AND c.status_before_hold = 'draft') AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = c.lab_id
                      AND m.role = 'lab_admin' AND m.revoked_at IS NULL)) AS is_lab_admin
                 FROM cases c WHERE c.id = $2",
            )))
            .bind(user.to_string()).bind(case.to_string())
            .fetch_optional(pool).await?;
            match r {
                None => None,
                Some(r) => Some((
                    r.try_get::<bool, _>("is_doctor")?,
                    r.try_get::<bool, _>("is_admin")?,
                    r.try_get::<bool, _>("is_tech")?,
                    r.try_get::<bool, _>("is_lab_admin")?,
                    r.try_get::<Option<String>, _>("granted")?,
                )),
            }
        });
        Ok(row
            .map(|(doctor, clinic_admin, lab_tech, lab_admin, granted)| CaseAccess {
                user_id: user,
                granted: caps_of(granted.as_deref()),
                clinic_owner: false,
                doctor,
                clinic_admin,
                lab_tech,
                lab_admin,
            })
            .filter(CaseAccess::any))
    }

    /// One case, if the caller may see it.
    pub async fn case_view(
        &self,
        user: UserId,
        case: CaseId,
        today: time::Date,
    ) -> Result<Option<CaseView>, StoreError> {
        let vis = visible(self);
        with_db!(self, pool => {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {VIEW_COLS} {VIEW_FROM} WHERE {vis} AND c.id = $2")))
                .bind(user.to_string()).bind(case.to_string())
                .fetch_optional(pool).await?;
            r.map(|r| view_from_row(&r, today)).transpose()
        })
    }

    /// The cases the caller may see, most recently active first.
    pub async fn list_cases(
        &self,
        user: UserId,
        f: &CaseFilter,
        today: time::Date,
    ) -> Result<Vec<CaseView>, StoreError> {
        let q = f.q.as_ref().map(|q| {
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let vis = visible(self);
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VIEW_COLS} {VIEW_FROM} WHERE {vis}
                   AND ($2 IS NULL OR c.status = $2)
                   AND ($3 IS NULL OR LOWER(c.label) LIKE $3 ESCAPE '\\')
                   AND ($4 IS NULL OR c.lab_id = $4)
                   AND ($5 IS NULL OR c.doctor_id = $5)
                   AND ($6 IS NULL OR (c.due_date IS NOT NULL AND c.due_date <= $6))
                 ORDER BY c.last_activity DESC, c.id LIMIT $7 OFFSET $8"
            )))
            .bind(user.to_string())
            .bind(f.status.map(|s| s.as_str()))
            .bind(q)
            .bind(f.lab_id.map(|l| l.to_string()))
            .bind(f.doctor_id.map(|d| d.to_string()))
            .bind(f.due_before.clone())
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(pool).await?
            .iter().map(|r| view_from_row(r, today)).collect()
        })
    }

    /// Unread messages per case for `user`: messages by others after the user's read mark, not
    /// deleted, in the cases the user may see now (filtered in the query, like every read), and
    /// how many of them mention the user. Only cases with unread messages, most recent first, at
    /// most [`UNREAD_CASES`]. The cost is the unread messages' index entries, not the history.
    pub async fn unread(&self, user: UserId) -> Result<Vec<UnreadCase>, StoreError> {
        let vis = visible(self);
        let uid = user.to_string();
        let like = format!("%\"{uid}\"%");
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT c.id AS case_id, COUNT(m.id) AS unread,
                        SUM(CASE WHEN m.mentions LIKE $2 THEN 1 ELSE 0 END) AS mentions,
                        MAX(COALESCE(rm.seq, 0)) AS read_seq
                 FROM cases c
                 LEFT JOIN read_marks rm ON rm.case_id = c.id AND rm.user_id = $1
                 JOIN messages m ON m.case_id = c.id AND m.seq > COALESCE(rm.seq, 0)
                      AND m.author_id <> $1 AND m.deleted_at IS NULL
                 WHERE c.last_seq > COALESCE(rm.seq, 0) AND {vis}
                 GROUP BY c.id
                 ORDER BY MAX(m.created_at) DESC, c.id LIMIT {UNREAD_CASES}"
            )))
            .bind(uid.as_str())
            .bind(like.as_str())
            .fetch_all(pool).await?
            .iter()
            .map(|r| {
                Ok(UnreadCase {
                    case_id: parse(&r.try_get::<String, _>("case_id")?, "case id")?,
                    unread: r.try_get::<i64, _>("unread")? as u64,
                    mentions: r.try_get::<Option<i64>, _>("mentions")?.unwrap_or(0) as u64,
                    read_seq: r.try_get::<i64, _>("read_seq")? as u64,
                })
            })
            .collect()
        })
    }

    /// The cases a board shows.
    pub async fn board(
        &self,
        scope: BoardScope,
        now: i64,
        today: time::Date,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        let (clinic, doctor, lab) = match scope {
            BoardScope::Clinic(o) => (Some(o), None, None),
            BoardScope::Doctor(o, d) => (Some(o), Some(d), None),
            BoardScope::Lab(o) => (None, None, Some(o)),
        };
        let rows: Vec<CaseView> = with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VIEW_COLS} {VIEW_FROM} WHERE
                   ($1 IS NULL OR c.clinic_id = $1) AND ($2 IS NULL OR c.doctor_id = $2)
                   AND ($3 IS NULL OR (c.lab_id = $3 AND c.status <> 'draft' AND NOT (c.status = 'on_hold' AND c.status_before_hold = 'draft')))
                   AND (c.status NOT IN ('closed', 'cancelled') OR c.last_activity > $4)
                 ORDER BY c.due_date IS NULL, c.due_date, c.last_activity DESC LIMIT 2000"
            )))
            .bind(clinic.map(|o| o.to_string()))
            .bind(doctor.map(|d| d.to_string()))
            .bind(lab.map(|o| o.to_string()))
            .bind(now - BOARD_KEEP_FINISHED_MS)
            .fetch_all(pool).await?
            .iter().map(|r| view_from_row(r, today)).collect::<Result<_, _>>()?
        });
        Ok(rows.iter().map(CaseView::summary).collect())
    }
}
