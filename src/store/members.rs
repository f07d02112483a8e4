//! An organisation's members as its owners see them: roles, sessions, last activity.

use articula_protocol::{OrgId, Role, UserId};
use sqlx::Row;

use super::users::UserStatus;
use super::{Db, StoreError, parse};
use crate::with_db;

/// A user who is or was a member of an organisation.
#[derive(Clone, Debug)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Display name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Account status.
    pub status: UserStatus,
    /// Their roles in force in this organisation (empty: a former member).
    pub roles: Vec<Role>,
    /// Sessions alive now (any portal).
    pub sessions: i64,
    /// When a session of theirs was last used (ms).
    pub last_seen: Option<i64>,
}

impl Db {
    /// Everyone who is or was a member of `org`, by name. `idle_ms` is the session idle limit:
    /// a session unused for longer is not counted.
    pub async fn members(&self, org: OrgId, now: i64, idle_ms: i64) -> Result<Vec<Member>, StoreError> {
        let org_id = org.to_string();
        let (mut members, roles) = with_db!(self, pool => {
            let users = sqlx::query(
                "SELECT u.id, u.name, u.email, u.status,
                   (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                      AND s.expires_at > $2 AND s.last_used_at > $3) AS sessions,
                   (SELECT MAX(s.last_used_at) FROM sessions s WHERE s.user_id = u.id) AS last_seen
                 FROM users u
                 WHERE EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = $1)
                 ORDER BY u.name, u.email",
            )
            .bind(&org_id).bind(now).bind(now - idle_ms)
            .fetch_all(pool).await?
            .iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let status: String = r.try_get("status")?;
                Ok(Member {
                    user_id: parse(&id, "user id")?,
                    name: r.try_get("name")?,
                    email: r.try_get("email")?,
                    status: parse(&status, "user status")?,
                    roles: Vec::new(),
                    sessions: r.try_get("sessions")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let roles = sqlx::query(
                "SELECT user_id, role FROM memberships WHERE org_id = $1 AND revoked_at IS NULL ORDER BY role",
            )
            .bind(&org_id)
            .fetch_all(pool).await?
            .iter()
            .map(|r| {
                let user: String = r.try_get("user_id")?;
                let role: String = r.try_get("role")?;
                Ok((parse::<UserId>(&user, "user id")?, parse::<Role>(&role, "role")?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            (users, roles)
        });
        for (user, role) in roles {
            if let Some(m) = members.iter_mut().find(|m| m.user_id == user) {
                m.roles.push(role);
            }
        }
        Ok(members)
    }

    /// Whether a user is or was a member of an organisation.
    pub async fn was_member(&self, user: UserId, org: OrgId) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query("SELECT 1 AS one FROM memberships WHERE user_id = $1 AND org_id = $2 LIMIT 1")
                .bind(user.to_string()).bind(org.to_string())
                .fetch_optional(pool).await?;
            Ok(r.is_some())
        })
    }
}
