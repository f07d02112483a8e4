//! Sessions and their tokens (stored as SHA-256 hashes, never in clear), and the revocation log.

use articula_protocol::{Portal, UserId};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{BeginWrite, Db, StoreError, parse};
use crate::with_db;

/// A signed-in session (a refresh-token family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What an access token resolves to.
#[derive(Clone, Debug)]
pub struct AccessRow {
    /// Session.
    pub session_id: SessionId,
    /// User.
    pub user_id: UserId,
    /// Portal signed in on.
    pub portal: Portal,
    /// Token expiry (ms).
    pub token_expires_at: i64,
    /// Session revoked at (ms).
    pub revoked_at: Option<i64>,
    /// Session last used (ms).
    pub last_used_at: i64,
    /// Session absolute expiry (ms).
    pub session_expires_at: i64,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Whether the user is active.
    pub user_active: bool,
}

/// A session as listed to its user.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Id.
    #[schema(value_type = String)]
    pub id: SessionId,
    /// Device (from the sign-in's user agent or `device` field).
    pub device: String,
    /// Client address at sign-in.
    pub ip: String,
    /// Portal.
    #[schema(value_type = String)]
    pub portal: Portal,
    /// Signed in at (ms).
    pub created_at: i64,
    /// Last used (ms).
    pub last_used_at: i64,
    /// This is the session making the request.
    pub current: bool,
}

/// The result of using a refresh token.
#[derive(Debug)]
pub enum Refresh {
    /// New tokens were stored.
    Rotated {
        /// Session.
        session_id: SessionId,
        /// User.
        user_id: UserId,
        /// Portal.
        portal: Portal,
        /// CSRF token of the session.
        csrf_token: String,
    },
    /// The token had been used before: the session is now revoked.
    Reused {
        /// Session.
        session_id: SessionId,
        /// User.
        user_id: UserId,
    },
    /// Unknown token.
    Invalid,
    /// Expired token or session.
    Expired,
    /// The session was revoked (or its user).
    Revoked,
}

/// New session data.
pub struct NewSession<'a> {
    /// User.
    pub user_id: UserId,
    /// Portal.
    pub portal: Portal,
    /// Device label.
    pub device: &'a str,
    /// Client address.
    pub ip: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// Now (ms).
    pub now: i64,
    /// Absolute expiry (ms).
    pub expires_at: i64,
}

/// One token to store.
pub struct NewToken<'a> {
    /// SHA-256 hex of the token.
    pub hash: &'a str,
    /// `access` or `refresh`.
    pub kind: &'static str,
    /// Expiry (ms).
    pub expires_at: i64,
}

/// How stale a session's `last_used_at` may get before a use of it is written: a minute, or half
/// the inactivity limit when that is shorter (so an active session never looks idle).
pub fn touch_every_ms(idle_limit_ms: i64) -> i64 {
    (idle_limit_ms / 2).clamp(1, 60_000)
}

impl Db {
    /// Creates a session with its first tokens.
    pub async fn create_session(
        &self,
        s: &NewSession<'_>,
        tokens: &[NewToken<'_>],
    ) -> Result<SessionId, StoreError> {
        let id = SessionId(Uuid::now_v7());
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO sessions (id, user_id, portal, device, ip, csrf_token, created_at, last_used_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            )
            .bind(id.to_string()).bind(s.user_id.to_string()).bind(s.portal.as_str()).bind(s.device)
            .bind(s.ip).bind(s.csrf_token).bind(s.now).bind(s.expires_at)
            .execute(&mut *tx).await?;
            for t in tokens {
                sqlx::query("INSERT INTO tokens (hash, session_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(t.hash).bind(id.to_string()).bind(t.kind).bind(s.now).bind(t.expires_at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Resolves an access token.
    pub async fn access_token(&self, hash: &str) -> Result<Option<AccessRow>, StoreError> {
        with_db!(self, pool => {
            let row = sqlx::query(
                "SELECT s.id, s.user_id, s.portal, t.expires_at AS token_expires_at, s.revoked_at, s.last_used_at,
                        s.expires_at AS session_expires_at, s.csrf_token, u.status
                 FROM tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
                 WHERE t.hash = $1 AND t.kind = 'access'",
            )
            .bind(hash).fetch_optional(pool).await?;
            let Some(r) = row else { return Ok(None) };
            let id: String = r.try_get("id")?;
            let user: String = r.try_get("user_id")?;
            let portal: String = r.try_get("portal")?;
            let status: String = r.try_get("status")?;
            Ok(Some(AccessRow {
                session_id: SessionId(parse(&id, "session id")?),
                user_id: parse(&user, "user id")?,
                portal: parse(&portal, "portal")?,
                token_expires_at: r.try_get("token_expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                last_used_at: r.try_get("last_used_at")?,
                session_expires_at: r.try_get("session_expires_at")?,
                csrf_token: r.try_get("csrf_token")?,
                user_active: status == "active",
            }))
        })
    }

    /// Records use of a session, at most every `every_ms` ([`touch_every_ms`]): inactivity is
    /// counted in minutes, and every socket and request of a session touches the same row —
    /// on PostgreSQL concurrent updates of one row wait for each other's commit, holding pool
    /// connections the event log needs. An update whose condition is false takes no row lock.
    pub async fn touch_session(&self, id: SessionId, now: i64, every_ms: i64) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $3")
                .bind(id.to_string()).bind(now).bind(now - every_ms).execute(pool).await?;
        });
        Ok(())
    }

    /// Uses a refresh token once: on success stores the new tokens in the same session. A token
    /// used a second time revokes the whole session (refresh-token reuse detection).
    pub async fn refresh(
        &self,
        old_hash: &str,
        now: i64,
        idle_limit_ms: i64,
        new_tokens: &[NewToken<'_>],
    ) -> Result<Refresh, StoreError> {
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.portal, s.revoked_at, s.last_used_at,
                        s.expires_at AS session_expires_at, s.csrf_token, u.status
                 FROM tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
                 WHERE t.hash = $1 AND t.kind = 'refresh'",
            )
            .bind(old_hash).fetch_optional(&mut *tx).await?;
            let Some(r) = row else { return Ok(Refresh::Invalid) };
            let sid: String = r.try_get("session_id")?;
            let session_id = SessionId(parse(&sid, "session id")?);
            let user: String = r.try_get("user_id")?;
            let user_id: UserId = parse(&user, "user id")?;
            let portal: String = r.try_get("portal")?;
            let used_at: Option<i64> = r.try_get("used_at")?;
            let revoked_at: Option<i64> = r.try_get("revoked_at")?;
            let status: String = r.try_get("status")?;
            if revoked_at.is_some() || status != "active" {
                return Ok(Refresh::Revoked);
            }
            let taken = sqlx::query("UPDATE tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL")
                .bind(old_hash).bind(now).execute(&mut *tx).await?.rows_affected();
            if used_at.is_some() || taken == 0 {
                sqlx::query("UPDATE sessions SET revoked_at = $2, revoked_reason = 'refresh_token_reused' WHERE id = $1")
                    .bind(&sid).bind(now).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, $2, 'refresh_token_reused', $3)")
                    .bind(&user).bind(&sid).bind(now).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Refresh::Reused { session_id, user_id });
            }
            let token_exp: i64 = r.try_get("expires_at")?;
            let last_used: i64 = r.try_get("last_used_at")?;
            let session_exp: i64 = r.try_get("session_expires_at")?;
            if token_exp <= now || session_exp <= now || now - last_used > idle_limit_ms {
                tx.commit().await?;
                return Ok(Refresh::Expired);
            }
            for t in new_tokens {
                sqlx::query("INSERT INTO tokens (hash, session_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(t.hash).bind(&sid).bind(t.kind).bind(now).bind(t.expires_at)
                    .execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1")
                .bind(&sid).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Refresh::Rotated { session_id, user_id, portal: parse(&portal, "portal")?, csrf_token: r.try_get("csrf_token")? })
        })
    }

    /// Whether a session is still alive: not revoked, not expired, used within the idle limit.
    pub async fn session_alive(
        &self,
        id: SessionId,
        now: i64,
        idle_limit_ms: i64,
    ) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query(
                "SELECT 1 AS one FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_used_at > $3 AND u.status = 'active'",
            )
            .bind(id.to_string()).bind(now).bind(now - idle_limit_ms)
            .fetch_optional(pool).await?;
            Ok(r.is_some())
        })
    }

    /// Revokes one session of a user; false if it is not theirs or already revoked.
    pub async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
                .bind(id.to_string()).bind(user.to_string()).bind(now).bind(reason)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, $2, $3, $4)")
                    .bind(user.to_string()).bind(id.to_string()).bind(reason).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    /// Revokes every session of a user ("log out every device").
    pub async fn revoke_all_sessions(&self, user: UserId, reason: &str, now: i64) -> Result<u64, StoreError> {
        with_db!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user.to_string()).bind(now).bind(reason)
                .execute(&mut *tx).await?.rows_affected();
            sqlx::query("INSERT INTO revocations (user_id, session_id, reason, at) VALUES ($1, NULL, $2, $3)")
                .bind(user.to_string()).bind(reason).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// A user's live sessions, most recently used first.
    pub async fn list_sessions(
        &self,
        user: UserId,
        now: i64,
        idle_limit_ms: i64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        with_db!(self, pool => {
            sqlx::query(
                "SELECT id, device, ip, portal, created_at, last_used_at FROM sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_used_at > $3
                 ORDER BY last_used_at DESC",
            )
            .bind(user.to_string()).bind(now).bind(now - idle_limit_ms)
            .fetch_all(pool).await?
            .iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let portal: String = r.try_get("portal")?;
                Ok(SessionInfo {
                    id: SessionId(parse(&id, "session id")?),
                    device: r.try_get("device")?,
                    ip: r.try_get("ip")?,
                    portal: parse(&portal, "portal")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    current: false,
                })
            })
            .collect()
        })
    }

    /// The newest revocation id.
    pub async fn last_revocation_id(&self) -> Result<i64, StoreError> {
        with_db!(self, pool => {
            let r = sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM revocations").fetch_one(pool).await?;
            Ok(r.try_get::<i64, _>("m")?)
        })
    }

    /// Revocations after `id`: (id, user, session).
    pub async fn revocations_after(
        &self,
        id: i64,
    ) -> Result<Vec<(i64, UserId, Option<SessionId>, String)>, StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT id, user_id, session_id, reason FROM revocations WHERE id > $1 ORDER BY id LIMIT 1000")
                .bind(id).fetch_all(pool).await?
                .iter()
                .map(|r| {
                    let user: String = r.try_get("user_id")?;
                    let session: Option<String> = r.try_get("session_id")?;
                    Ok((
                        r.try_get("id")?,
                        parse(&user, "user id")?,
                        session.map(|s| parse(&s, "session id").map(SessionId)).transpose()?,
                        r.try_get("reason")?,
                    ))
                })
                .collect()
        })
    }
}
