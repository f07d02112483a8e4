//! Incident notices and their acknowledgements (issue 18). A notice belongs to one
//! organisation (published by an owner) or to all of them (`org_id` NULL, published by the
//! operator); a member sees it until they acknowledge it.

use articula_protocol::{OrgId, UserId};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Db, StoreError, parse};
use crate::with_db;

/// A published notice.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Notice {
    /// Id.
    #[schema(value_type = String)]
    pub id: Uuid,
    /// The organisation it is for; absent: every organisation (from the operator).
    #[schema(value_type = Option<String>)]
    pub org_id: Option<OrgId>,
    /// That organisation's name.
    pub org_name: Option<String>,
    /// Title.
    pub title: String,
    /// What happened, its scope and what to do (plain text).
    pub body: String,
    /// Who published it (absent: the operator).
    #[schema(value_type = Option<String>)]
    pub published_by: Option<UserId>,
    /// Their name.
    pub published_by_name: Option<String>,
    /// When (ms).
    pub published_at: i64,
}

/// A notice as its organisation's owners see it: with its acknowledgements.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeStats {
    /// The notice.
    #[serde(flatten)]
    pub notice: Notice,
    /// Members (present or past) of the organisation who acknowledged it.
    pub acks: i64,
    /// Current members of the organisation.
    pub members: i64,
}

const NOTICE_COLS: &str = "n.id, n.org_id, o.name AS org_name, n.title, n.body, n.published_by, \
    p.name AS published_by_name, n.published_at";
const NOTICE_FROM: &str =
    "notices n LEFT JOIN orgs o ON o.id = n.org_id LEFT JOIN users p ON p.id = n.published_by";
/// Notices a user ($1) may see: their organisations' and everyone's.
const VISIBLE: &str = "(n.org_id IS NULL OR n.org_id IN \
    (SELECT m.org_id FROM memberships m WHERE m.user_id = $1 AND m.revoked_at IS NULL))";

fn notice_from_row<R: Row>(r: &R) -> Result<Notice, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    i64: for<'q> sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = r.try_get("id")?;
    let org: Option<String> = r.try_get("org_id")?;
    let by: Option<String> = r.try_get("published_by")?;
    Ok(Notice {
        id: parse(&id, "notice id")?,
        org_id: org.map(|o| parse(&o, "org id")).transpose()?,
        org_name: r.try_get("org_name")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        published_by: by.map(|b| parse(&b, "user id")).transpose()?,
        published_by_name: r.try_get("published_by_name")?,
        published_at: r.try_get("published_at")?,
    })
}

impl Db {
    /// Publishes a notice (checked texts) for one organisation or, without one, for all.
    pub async fn publish_notice(
        &self,
        org: Option<OrgId>,
        title: &str,
        body: &str,
        by: Option<UserId>,
        now: i64,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO notices (id, org_id, title, body, published_by, published_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string()).bind(org.map(|o| o.to_string())).bind(title).bind(body)
            .bind(by.map(|b| b.to_string())).bind(now)
            .execute(pool).await?;
        });
        Ok(id)
    }

    /// The notices a user may see and has not acknowledged, newest first.
    pub async fn unacknowledged_notices(&self, user: UserId) -> Result<Vec<Notice>, StoreError> {
        let q = format!(
            "SELECT {NOTICE_COLS} FROM {NOTICE_FROM} WHERE {VISIBLE}
             AND NOT EXISTS (SELECT 1 FROM notice_acks a WHERE a.notice_id = n.id AND a.user_id = $1)
             ORDER BY n.published_at DESC LIMIT 50"
        );
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(q.clone())).bind(user.to_string())
                .fetch_all(pool).await?
                .iter().map(notice_from_row).collect()
        })
    }

    /// A notice, if the user may see it.
    pub async fn visible_notice(&self, user: UserId, id: Uuid) -> Result<Option<Notice>, StoreError> {
        let q = format!("SELECT {NOTICE_COLS} FROM {NOTICE_FROM} WHERE {VISIBLE} AND n.id = $2");
        with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(q.clone())).bind(user.to_string()).bind(id.to_string())
                .fetch_optional(pool).await?
                .as_ref().map(notice_from_row).transpose()
        })
    }

    /// Records that a user read a notice; false when they had already.
    pub async fn acknowledge_notice(&self, id: Uuid, user: UserId, now: i64) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            let n = sqlx::query(
                "INSERT INTO notice_acks (notice_id, user_id, acked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (notice_id, user_id) DO NOTHING",
            )
            .bind(id.to_string()).bind(user.to_string()).bind(now)
            .execute(pool).await?.rows_affected();
            Ok(n > 0)
        })
    }

    /// The notices an organisation's members see (its own and everyone's), newest first, with
    /// how many of its members acknowledged each.
    pub async fn org_notices(&self, org: OrgId) -> Result<Vec<NoticeStats>, StoreError> {
        let q = format!(
            "SELECT {NOTICE_COLS},
               (SELECT COUNT(*) FROM notice_acks a WHERE a.notice_id = n.id AND EXISTS
                  (SELECT 1 FROM memberships m WHERE m.user_id = a.user_id AND m.org_id = $1)) AS acks
             FROM {NOTICE_FROM} WHERE n.org_id = $1 OR n.org_id IS NULL
             ORDER BY n.published_at DESC LIMIT 100"
        );
        with_db!(self, pool => {
            let members: i64 = sqlx::query(
                "SELECT COUNT(DISTINCT user_id) AS n FROM memberships WHERE org_id = $1 AND revoked_at IS NULL",
            )
            .bind(org.to_string()).fetch_one(pool).await?.try_get("n")?;
            sqlx::query(sqlx::AssertSqlSafe(q.clone())).bind(org.to_string())
                .fetch_all(pool).await?
                .iter()
                .map(|r| Ok(NoticeStats { notice: notice_from_row(r)?, acks: r.try_get("acks")?, members }))
                .collect()
        })
    }
}
