//! Organisations, users, memberships, invitations and sign-in lockout.

use articula_protocol::{OrgId, OrgKind, Role, UserId};
use serde::Serialize;
use sqlx::Row;

use super::{BeginWrite, Db, StoreError, parse};
use crate::with_db;

/// An organisation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Org {
    /// Id.
    #[schema(value_type = String)]
    pub id: OrgId,
    /// Name.
    pub name: String,
    /// `clinic` or `lab`.
    #[schema(value_type = String)]
    pub kind: OrgKind,
}

/// Whether an account can sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum UserStatus {
    /// Can sign in.
    Active,
    /// Invited; no password yet.
    Invited,
    /// Revoked by an owner or operator.
    Revoked,
}

/// A user account.
#[derive(Clone, Debug)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// E-mail (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string; none until an invitation is accepted.
    pub password_hash: Option<String>,
    /// Status.
    pub status: UserStatus,
    /// Failed sign-ins in a row.
    pub failed_logins: i64,
    /// Locked until (ms).
    pub locked_until: Option<i64>,
}

/// One role of a user in an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Membership {
    /// Organisation.
    #[schema(value_type = String)]
    pub org_id: OrgId,
    /// Its name.
    pub org_name: String,
    /// Its kind.
    #[schema(value_type = String)]
    pub org_kind: OrgKind,
    /// The role.
    #[schema(value_type = String)]
    pub role: Role,
}

fn user_from_row<R: Row>(row: &R) -> Result<User, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    Ok(User {
        id: parse(&id, "user id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        status: parse(&status, "user status")?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
    })
}

fn membership_from_row<R: Row>(row: &R) -> Result<Membership, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let org_id: String = row.try_get("org_id")?;
    let kind: String = row.try_get("kind")?;
    let role: String = row.try_get("role")?;
    Ok(Membership {
        org_id: parse(&org_id, "org id")?,
        org_name: row.try_get("name")?,
        org_kind: parse(&kind, "org kind")?,
        role: parse(&role, "role")?,
    })
}

const USER_COLS: &str = "id, email, name, password_hash, status, failed_logins, locked_until";

impl Db {
    /// Creates an organisation.
    pub async fn create_org(&self, name: &str, kind: OrgKind, now: i64) -> Result<Org, StoreError> {
        let org = Org { id: OrgId::new(), name: name.to_owned(), kind };
        with_db!(self, pool => {
            sqlx::query("INSERT INTO orgs (id, name, kind, created_at) VALUES ($1, $2, $3, $4)")
                .bind(org.id.to_string()).bind(name).bind(kind.as_str()).bind(now)
                .execute(pool).await?;
        });
        Ok(org)
    }

    /// Finds an organisation by id or by exact name.
    pub async fn find_org(&self, id_or_name: &str) -> Result<Option<Org>, StoreError> {
        let rows = with_db!(self, pool => {
            sqlx::query("SELECT id, name, kind FROM orgs WHERE id = $1 OR name = $1 ORDER BY name")
                .bind(id_or_name)
                .fetch_all(pool).await?
                .iter()
                .map(|r| Ok((r.try_get::<String, _>("id")?, r.try_get::<String, _>("name")?, r.try_get::<String, _>("kind")?)))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        if rows.len() > 1 {
            return Err(StoreError::Corrupt(format!(
                "{} organisations are named {id_or_name:?}; use the id",
                rows.len()
            )));
        }
        rows.into_iter()
            .next()
            .map(|(id, name, kind)| {
                Ok(Org { id: parse(&id, "org id")?, name, kind: parse(&kind, "org kind")? })
            })
            .transpose()
    }

    /// Lists organisations of a kind.
    pub async fn list_orgs(&self, kind: Option<OrgKind>) -> Result<Vec<Org>, StoreError> {
        let rows = with_db!(self, pool => {
            sqlx::query("SELECT id, name, kind FROM orgs WHERE ($1 IS NULL OR kind = $1) ORDER BY name")
                .bind(kind.map(|k| k.as_str()))
                .fetch_all(pool).await?
                .iter()
                .map(|r| Ok((r.try_get::<String, _>("id")?, r.try_get::<String, _>("name")?, r.try_get::<String, _>("kind")?)))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        rows.into_iter()
            .map(|(id, name, kind)| {
                Ok(Org { id: parse(&id, "org id")?, name, kind: parse(&kind, "org kind")? })
            })
            .collect()
    }

    /// Creates a user (e-mail must be lower case and unique).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        status: UserStatus,
        now: i64,
    ) -> Result<UserId, StoreError> {
        let id = UserId::new();
        let status: &'static str = status.into();
        with_db!(self, pool => {
            sqlx::query("INSERT INTO users (id, email, name, password_hash, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id.to_string()).bind(email).bind(name).bind(password_hash).bind(status).bind(now)
                .execute(pool).await?;
        });
        Ok(id)
    }

    /// Gives a user a role in an organisation (again, if it had been revoked). Their live
    /// sockets learn of it through the revocation log (`memberships_changed`).
    pub async fn add_membership(
        &self,
        user: UserId,
        org: OrgId,
        role: Role,
        now: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, org_id, role) DO UPDATE SET revoked_at = NULL",
            )
            .bind(user.to_string()).bind(org.to_string()).bind(role.as_str()).bind(now)
            .execute(&mut *tx).await?;
            sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, NULL, $2, $3)")
                .bind(user.to_string()).bind(MEMBERSHIPS_CHANGED).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        let r = crate::audit::Record::new("membership.granted", None, None)
            .orgs([org])
            .target(format!("user:{user}"))
            .details(serde_json::json!({"role": role}));
        self.audit_record(&r).await
    }

    /// Ends one membership of a user; false when they did not hold it. Their live sockets lose
    /// what it gave them within a second (the revocation log). The operator's way (CLI): no
    /// actor, and an organisation may be left without an owner.
    pub async fn remove_membership(
        &self,
        user: UserId,
        org: OrgId,
        role: Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let by = RemovedBy { actor: None, ip: None, keep_an_owner: false };
        Ok(self.remove_membership_by(user, org, role, &by, now).await? == Removal::Removed)
    }

    /// Ends one membership of a user on behalf of `by` (audited as theirs). With
    /// `keep_an_owner`, the organisation's last owner role is refused ([`Removal::LastOwner`]):
    /// the owners' rows are locked first (PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises
    /// writers anyway), so two owners removing each other at once cannot both succeed.
    pub async fn remove_membership_by(
        &self,
        user: UserId,
        org: OrgId,
        role: Role,
        by: &RemovedBy,
        now: i64,
    ) -> Result<Removal, StoreError> {
        let lock_owners = match self {
            Db::Sqlite(_) => {
                "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' AND revoked_at IS NULL"
            }
            Db::Postgres(_) => {
                "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' AND revoked_at IS NULL FOR UPDATE"
            }
        };
        let outcome = with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if by.keep_an_owner && role == Role::Owner {
                let owners = sqlx::query(lock_owners).bind(org.to_string()).fetch_all(&mut *tx).await?;
                let uid = user.to_string();
                let holds = owners.iter().any(|r| r.try_get::<String, _>("user_id").is_ok_and(|u| u == uid));
                if holds && owners.len() <= 1 {
                    return Ok(Removal::LastOwner);
                }
            }
            let n = sqlx::query(
                "UPDATE memberships SET revoked_at = $4 WHERE user_id = $1 AND org_id = $2 AND role = $3 AND revoked_at IS NULL",
            )
            .bind(user.to_string()).bind(org.to_string()).bind(role.as_str()).bind(now)
            .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, NULL, $2, $3)")
                    .bind(user.to_string()).bind(MEMBERSHIPS_CHANGED).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            if n > 0 { Removal::Removed } else { Removal::NotHeld }
        });
        if outcome == Removal::Removed {
            let r = crate::audit::Record::new("membership.revoked", by.actor, by.ip.clone())
                .orgs([org])
                .target(format!("user:{user}"))
                .details(serde_json::json!({"role": role}));
            self.audit_record(&r).await?;
        }
        Ok(outcome)
    }

    /// Finds a user by e-mail (lower case).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE email = $1")))
                .bind(email).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// Finds a user by id.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1")))
                .bind(id.to_string()).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// A user's active memberships.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "SELECT m.org_id, o.name, o.kind, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id
                 WHERE m.user_id = $1 AND m.revoked_at IS NULL ORDER BY o.name, m.role",
            )
            .bind(user.to_string())
            .fetch_all(pool).await?
            .iter().map(membership_from_row).collect()
        })
    }

    /// Users with their active memberships, optionally of one organisation.
    pub async fn list_users(&self, org: Option<OrgId>) -> Result<Vec<(User, Vec<Membership>)>, StoreError> {
        let users: Vec<User> = with_db!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users u WHERE $1 IS NULL OR EXISTS
                 (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = $1) ORDER BY email"
            )))
            .bind(org.map(|o| o.to_string()))
            .fetch_all(pool).await?
            .iter().map(user_from_row).collect::<Result<_, _>>()?
        });
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let ms = self.memberships(u.id).await?;
            out.push((u, ms));
        }
        Ok(out)
    }

    /// Records a failed sign-in; locks the account when `threshold` is reached.
    pub async fn record_failed_login(
        &self,
        user: UserId,
        threshold: u32,
        lock_until: i64,
    ) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query(
                "UPDATE users SET
                   failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
                   locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END
                 WHERE id = $1 RETURNING locked_until",
            )
            .bind(user.to_string()).bind(i64::from(threshold)).bind(lock_until)
            .fetch_optional(pool).await?;
            Ok(row.and_then(|r| r.try_get::<Option<i64>, _>("locked_until").ok().flatten()) == Some(lock_until))
        })
    }

    /// Clears failed sign-ins after a success.
    pub async fn reset_failed_logins(&self, user: UserId) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(user.to_string()).execute(pool).await?;
        });
        Ok(())
    }

    /// Sets a user's password and makes the account active.
    pub async fn set_password(&self, user: UserId, hash: &str) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $2, status = 'active' WHERE id = $1 AND status <> 'revoked'")
                .bind(user.to_string()).bind(hash).execute(pool).await?;
        });
        Ok(())
    }

    /// Stores an invitation token (hashed).
    pub async fn create_invitation(
        &self,
        user: UserId,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("INSERT INTO invitations (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash).bind(user.to_string()).bind(now).bind(expires_at)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// Uses an invitation once: returns its user when valid, unused and unexpired.
    pub async fn take_invitation(&self, token_hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query(
                "UPDATE invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                 RETURNING user_id",
            )
            .bind(token_hash).bind(now).fetch_optional(pool).await?;
            row.map(|r| r.try_get::<String, _>("user_id").map_err(StoreError::from).and_then(|s| parse(&s, "user id")))
                .transpose()
        })
    }

    /// Revokes a user: status, every membership and every session, and records the revocation
    /// for other processes. Returns false when there is no such user.
    pub async fn revoke_user(&self, user: UserId, reason: &str, now: i64) -> Result<bool, StoreError> {
        let uid = user.to_string();
        // The organisations they leave (their audit chains record it).
        let orgs: Vec<OrgId> = self.memberships(user).await?.iter().map(|m| m.org_id).collect();
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE users SET status = 'revoked' WHERE id = $1")
                .bind(&uid).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Ok(false);
            }
            sqlx::query("UPDATE memberships SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(&uid).bind(now).execute(&mut *tx).await?;
            sqlx::query("UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(&uid).bind(now).bind(reason).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, NULL, $2, $3)")
                .bind(&uid).bind(reason).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        let r = crate::audit::Record::new("user.revoked", None, None)
            .orgs(orgs)
            .target(format!("user:{user}"))
            .details(serde_json::json!({"reason": reason}));
        self.audit_record(&r).await?;
        Ok(true)
    }
}

/// Who removes a membership, for the audit and the last-owner rule.
#[derive(Clone, Debug)]
pub struct RemovedBy {
    /// The user acting (none: the operator).
    pub actor: Option<UserId>,
    /// Their address.
    pub ip: Option<String>,
    /// Refuse to leave the organisation without an owner.
    pub keep_an_owner: bool,
}

/// What removing a membership did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// It ended.
    Removed,
    /// The user did not hold it.
    NotHeld,
    /// Refused: it is the organisation's last owner role.
    LastOwner,
}

/// The revocation-log reason that tells live sockets to reload their user's memberships
/// (rather than close).
pub const MEMBERSHIPS_CHANGED: &str = "memberships_changed";
