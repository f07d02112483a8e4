//! Sign-in and sessions (DESIGN §4): argon2id passwords, opaque tokens stored hashed, 15-minute
//! access tokens, rotating refresh tokens whose reuse revokes the session, inactivity expiry,
//! lockout after repeated failures, per-address rate limits, and separate clinic and lab portals.

pub mod extract;
pub mod password;
pub mod tokens;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use articula_actors::clock::now_ms;
use articula_protocol::{ErrorCode, Portal, UserId};
use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Settings;
use crate::error::ApiError;
use crate::revocation::Revocations;
use crate::store::Db;
use crate::store::sessions::{NewSession, NewToken, Refresh, SessionId};
use crate::store::users::UserStatus;
use password::Passwords;

/// An authenticated caller.
#[derive(Clone)]
pub struct Caller {
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The portal the session signed in on.
    pub portal: Portal,
    /// Authenticated by cookie (a browser) rather than a Bearer token.
    pub via_cookie: bool,
    /// The session's CSRF token.
    csrf_token: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .finish()
    }
}

impl Caller {
    /// Checks the `X-CSRF-Token` header of a cookie-authenticated, state-changing request.
    pub fn check_csrf(&self, header: Option<&str>) -> Result<(), ApiError> {
        match header {
            Some(h) if tokens::same_secret(&self.csrf_token, h) => Ok(()),
            _ => Err(ApiError::new(ErrorCode::CsrfFailed, "missing or wrong X-CSRF-Token header")),
        }
    }
}

/// Tokens handed out by sign-in or refresh.
pub struct Issued {
    /// Access token (15 minutes by default).
    pub access_token: String,
    /// Refresh token (single use).
    pub refresh_token: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
    /// CSRF token of the session (for cookie-authenticated browsers).
    pub csrf_token: String,
    /// The session.
    pub session_id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The portal.
    pub portal: Portal,
}

/// Sign-in input.
pub struct LoginInput<'a> {
    /// E-mail.
    pub email: &'a str,
    /// Password.
    pub password: &'a str,
    /// Portal.
    pub portal: Portal,
    /// Device label.
    pub device: &'a str,
    /// Client address.
    pub ip: IpAddr,
}

/// Sign-in, tokens and sessions.
pub struct Auth {
    db: Db,
    passwords: Passwords,
    revocations: Arc<Revocations>,
    ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Failures for e-mails with no account, so that they lock exactly like real accounts
    /// (otherwise the lock would tell which e-mails exist).
    unknown_failures: DashMap<String, (u32, i64)>,
    access_ttl_ms: i64,
    refresh_ttl_ms: i64,
    idle_ms: i64,
    lockout_threshold: u32,
    lockout_ms: i64,
}

/// Normalises and checks an e-mail address.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    if e.len() > 254 || !email_address::EmailAddress::is_valid(&e) {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "not a valid e-mail address"));
    }
    Ok(e)
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Auth {
    /// The auth service.
    pub fn new(settings: &Settings, db: Db, passwords: Passwords, revocations: Arc<Revocations>) -> Self {
        let quota = Quota::per_minute(nz(settings.login_rate_per_minute));
        Self {
            db,
            passwords,
            revocations,
            ip_limiter: RateLimiter::keyed(quota),
            unknown_failures: DashMap::new(),
            access_ttl_ms: settings.access_token_ttl_secs as i64 * 1000,
            refresh_ttl_ms: settings.refresh_token_ttl_days as i64 * 86_400_000,
            idle_ms: settings.session_idle_minutes as i64 * 60_000,
            lockout_threshold: settings.lockout_threshold,
            lockout_ms: settings.lockout_minutes as i64 * 60_000,
        }
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Forgets the sign-in rate limiter's stale addresses (see [`crate::state::AppState::prune_limiters`]).
    pub fn prune_login_limiter(&self) {
        self.ip_limiter.retain_recent();
        self.ip_limiter.shrink_to_fit();
    }

    /// Client addresses the sign-in rate limiter holds.
    pub fn login_limiter_keys(&self) -> usize {
        self.ip_limiter.len()
    }

    /// Session inactivity limit, ms.
    pub fn idle_ms(&self) -> i64 {
        self.idle_ms
    }

    fn locked() -> ApiError {
        ApiError::new(ErrorCode::AccountLocked, "too many failed sign-ins; the account is locked for a while")
    }

    fn bad_credentials() -> ApiError {
        ApiError::new(ErrorCode::InvalidCredentials, "wrong e-mail or password")
    }

    /// The organisations a user belongs to (the audit chains their actions join).
    async fn orgs_of(&self, user: UserId) -> Vec<articula_protocol::OrgId> {
        self.db.memberships(user).await.map(|ms| ms.iter().map(|m| m.org_id).collect()).unwrap_or_default()
    }

    /// Audits an action of a user on their own account (sign-in, logout…).
    async fn audit(
        &self,
        action: &'static str,
        user: Option<UserId>,
        ip: Option<String>,
        target: Option<String>,
        details: serde_json::Value,
    ) {
        let orgs = match user {
            Some(u) => self.orgs_of(u).await,
            None => Vec::new(),
        };
        let mut r = crate::audit::Record::new(action, user, ip).orgs(orgs).details(details);
        r.target = target;
        let _ = crate::audit::record(&self.db, r).await;
    }

    /// Signs in; every outcome but the per-address rate limit is audited (sign-in, failure,
    /// lockout), in the chains of the user's organisations (the system chain for an unknown
    /// e-mail, kept only as a digest).
    pub async fn login(&self, input: &LoginInput<'_>) -> Result<Issued, ApiError> {
        let mut known = None;
        let res = self.login_checked(input, &mut known).await;
        let ip = Some(input.ip.to_string());
        match &res {
            Ok(issued) => {
                let details = serde_json::json!({"portal": issued.portal});
                let target = Some(crate::audit::session_ref(&issued.session_id));
                self.audit("auth.login", Some(issued.user_id), ip, target, details).await;
            }
            Err(e) if e.code == ErrorCode::RateLimited => {}
            Err(e) => {
                let action = if e.code == ErrorCode::AccountLocked {
                    "auth.login_locked"
                } else {
                    "auth.login_failed"
                };
                let mut details = serde_json::json!({"reason": e.code, "portal": input.portal});
                if known.is_none() {
                    use sha2::Digest;
                    let digest = sha2::Sha256::digest(input.email.trim().to_lowercase().as_bytes());
                    details["email_sha256"] = serde_json::json!(hex::encode(&digest[..8]));
                }
                self.audit(action, known, ip, known.map(|u| format!("user:{u}")), details).await;
            }
        }
        res
    }

    async fn login_checked(
        &self,
        input: &LoginInput<'_>,
        known: &mut Option<UserId>,
    ) -> Result<Issued, ApiError> {
        if self.ip_limiter.check_key(&input.ip).is_err() {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many sign-in attempts from this address; wait a minute",
            ));
        }
        let email = normalize_email(input.email)?;
        let now = now_ms();
        let user = self.db.user_by_email(&email).await?;
        *known = user.as_ref().map(|u| u.id);

        let locked = match &user {
            Some(u) => u.locked_until.is_some_and(|t| t > now),
            None => {
                self.unknown_failures.get(&email).is_some_and(|f| f.0 >= self.lockout_threshold && f.1 > now)
            }
        };
        // Verify even when locked or unknown: every path costs one argon2 verification.
        let ok = self
            .passwords
            .verify(input.password, user.as_ref().and_then(|u| u.password_hash.as_deref()))
            .await;
        if locked {
            return Err(Self::locked());
        }
        let user = match user {
            Some(u) if ok => u,
            other => return Err(self.failed(other.map(|u| u.id), &email, now).await?),
        };
        if user.status != UserStatus::Active {
            return Err(Self::bad_credentials());
        }
        if user.failed_logins > 0 || user.locked_until.is_some() {
            self.db.reset_failed_logins(user.id).await?;
        }
        let memberships = self.db.memberships(user.id).await?;
        if !memberships.iter().any(|m| m.org_kind == input.portal.org_kind()) {
            return Err(ApiError::new(
                ErrorCode::WrongPortal,
                format!("this account does not belong to the {} portal", input.portal),
            ));
        }
        self.issue(user.id, input.portal, input.device, &input.ip.to_string(), now).await
    }

    /// Records a failure; the answer says whether the account is now locked.
    async fn failed(&self, user: Option<UserId>, email: &str, now: i64) -> Result<ApiError, ApiError> {
        let until = now + self.lockout_ms;
        let locked = match user {
            Some(id) => self.db.record_failed_login(id, self.lockout_threshold, until).await?,
            None => {
                if self.unknown_failures.len() > 100_000 {
                    self.unknown_failures.retain(|_, f| f.1 > now);
                }
                let mut f = self.unknown_failures.entry(email.to_owned()).or_insert((0, 0));
                if f.1 <= now && f.0 >= self.lockout_threshold {
                    *f = (0, 0);
                }
                f.0 += 1;
                if f.0 >= self.lockout_threshold {
                    f.1 = until;
                }
                f.0 >= self.lockout_threshold
            }
        };
        Ok(if locked { Self::locked() } else { Self::bad_credentials() })
    }

    async fn issue(
        &self,
        user: UserId,
        portal: Portal,
        device: &str,
        ip: &str,
        now: i64,
    ) -> Result<Issued, ApiError> {
        let (access, access_hash) = tokens::new_token("at");
        let (refresh, refresh_hash) = tokens::new_token("rt");
        let (csrf, _) = tokens::new_token("csrf");
        let device: String = device.chars().take(200).collect();
        let session_id = self
            .db
            .create_session(
                &NewSession {
                    user_id: user,
                    portal,
                    device: &device,
                    ip,
                    csrf_token: &csrf,
                    now,
                    expires_at: now + self.refresh_ttl_ms,
                },
                &[
                    NewToken { hash: &access_hash, kind: "access", expires_at: now + self.access_ttl_ms },
                    NewToken { hash: &refresh_hash, kind: "refresh", expires_at: now + self.refresh_ttl_ms },
                ],
            )
            .await?;
        Ok(Issued {
            access_token: access,
            refresh_token: refresh,
            expires_in: (self.access_ttl_ms / 1000) as u64,
            csrf_token: csrf,
            session_id,
            user_id: user,
            portal,
        })
    }

    /// Rotates a refresh token. Reusing an old one revokes the whole session.
    pub async fn refresh(&self, token: &str, ip: Option<String>) -> Result<Issued, ApiError> {
        let now = now_ms();
        let (access, access_hash) = tokens::new_token("at");
        let (refresh, refresh_hash) = tokens::new_token("rt");
        let outcome = self
            .db
            .refresh(
                &tokens::hash_token(token),
                now,
                self.idle_ms,
                &[
                    NewToken { hash: &access_hash, kind: "access", expires_at: now + self.access_ttl_ms },
                    NewToken { hash: &refresh_hash, kind: "refresh", expires_at: now + self.refresh_ttl_ms },
                ],
            )
            .await?;
        match outcome {
            Refresh::Rotated { session_id, user_id, portal, csrf_token } => Ok(Issued {
                access_token: access,
                refresh_token: refresh,
                expires_in: (self.access_ttl_ms / 1000) as u64,
                csrf_token,
                session_id,
                user_id,
                portal,
            }),
            Refresh::Reused { session_id, user_id } => {
                self.audit(
                    "auth.refresh_token_reused",
                    Some(user_id),
                    ip.clone(),
                    Some(crate::audit::session_ref(&session_id)),
                    serde_json::json!({"session_revoked": true}),
                )
                .await;
                // No session id in logs (see `http::auth::login`); `sessions.revoked_reason` says which.
                tracing::warn!(user = %user_id, "refresh token reused: session revoked");
                self.revocations.revoke_session(user_id, session_id);
                Err(ApiError::new(
                    ErrorCode::TokenReused,
                    "this refresh token was already used; the session has been revoked",
                ))
            }
            Refresh::Invalid => Err(ApiError::new(ErrorCode::TokenInvalid, "unknown refresh token")),
            Refresh::Expired => {
                Err(ApiError::new(ErrorCode::TokenExpired, "the session has expired; sign in again"))
            }
            Refresh::Revoked => {
                Err(ApiError::new(ErrorCode::SessionRevoked, "the session was revoked; sign in again"))
            }
        }
    }

    /// Resolves an access token to its caller.
    pub async fn authenticate(&self, token: &str, via_cookie: bool) -> Result<Caller, ApiError> {
        let now = now_ms();
        let row = self
            .db
            .access_token(&tokens::hash_token(token))
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::TokenInvalid, "unknown access token"))?;
        if row.revoked_at.is_some() || !row.user_active {
            return Err(ApiError::new(ErrorCode::SessionRevoked, "the session was revoked; sign in again"));
        }
        if row.token_expires_at <= now {
            return Err(ApiError::new(ErrorCode::TokenExpired, "the access token has expired; refresh it"));
        }
        if row.session_expires_at <= now || now - row.last_used_at > self.idle_ms {
            if self.db.revoke_session(row.user_id, row.session_id, "inactive", now).await? {
                let details = serde_json::json!({"reason": "inactive"});
                let target = Some(crate::audit::session_ref(&row.session_id));
                self.audit("auth.session_ended", Some(row.user_id), None, target, details).await;
            }
            return Err(ApiError::new(
                ErrorCode::SessionRevoked,
                "the session ended after inactivity; sign in again",
            ));
        }
        let every = crate::store::sessions::touch_every_ms(self.idle_ms);
        if now - row.last_used_at > every {
            self.db.touch_session(row.session_id, now, every).await?;
        }
        Ok(Caller {
            user_id: row.user_id,
            session_id: row.session_id,
            portal: row.portal,
            via_cookie,
            csrf_token: row.csrf_token,
        })
    }

    /// Ends one session.
    pub async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        reason: &'static str,
        ip: Option<String>,
    ) -> Result<bool, ApiError> {
        let done = self.db.revoke_session(user, session, reason, now_ms()).await?;
        self.revocations.revoke_session(user, session);
        if done {
            let details = serde_json::json!({"reason": reason});
            self.audit(
                "auth.session_ended",
                Some(user),
                ip,
                Some(crate::audit::session_ref(&session)),
                details,
            )
            .await;
        }
        Ok(done)
    }

    /// Ends every session of a user.
    pub async fn revoke_all(
        &self,
        user: UserId,
        reason: &'static str,
        ip: Option<String>,
    ) -> Result<u64, ApiError> {
        let n = self.db.revoke_all_sessions(user, reason, now_ms()).await?;
        self.revocations.revoke_user(user);
        let details = serde_json::json!({"reason": reason, "sessions": n});
        self.audit("auth.sessions_ended", Some(user), ip, Some(format!("user:{user}")), details).await;
        Ok(n)
    }
}
