//! `/api/v1/auth/…` and `/api/v1/me`: sign-in, refresh, sessions, logout, invitations.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use articula_protocol::{ErrorCode, Portal};
use serde::{Deserialize, Serialize};

use super::resource;
use crate::auth::extract::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE};
use crate::auth::{Caller, Issued, LoginInput, password, tokens};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions::{SessionId, SessionInfo};
use crate::store::users::Membership;

/// Routes of this module.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/auth/refresh").route(web::post().to(refresh)))
        .service(resource("/auth/logout").route(web::post().to(logout)))
        .service(resource("/auth/logout-all").route(web::post().to(logout_all)))
        .service(resource("/auth/sessions").route(web::get().to(sessions)))
        .service(resource("/auth/sessions/{id}").route(web::delete().to(end_session)))
        .service(resource("/auth/accept-invitation").route(web::post().to(accept_invitation)))
        .service(resource("/me").route(web::get().to(me)));
}

/// How the client keeps its tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenMode {
    /// Tokens in the body (API clients); cookies are set too.
    #[default]
    Token,
    /// HttpOnly cookies only (browsers): the body carries no token.
    Cookie,
}

/// Sign-in request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail.
    email: String,
    /// Password.
    password: String,
    /// `clinic` or `lab`: the portal signed in on.
    #[schema(value_type = String)]
    portal: Portal,
    /// A label for the session list (default: the user agent).
    #[serde(default)]
    device: Option<String>,
    /// `token` (default) or `cookie`.
    #[serde(default)]
    mode: TokenMode,
}

/// Tokens and the signed-in user.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Access token (absent in cookie mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// Refresh token, single use (absent in cookie mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// `Bearer`.
    token_type: &'static str,
    /// Access token lifetime, seconds.
    expires_in: u64,
    /// Send in `X-CSRF-Token` on state-changing requests authenticated by cookie.
    csrf_token: String,
    /// The session.
    #[schema(value_type = String)]
    session_id: SessionId,
    /// The portal.
    #[schema(value_type = String)]
    portal: Portal,
    /// Who signed in.
    user: MeView,
}

/// The signed-in user.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeView {
    /// Id.
    id: String,
    /// E-mail.
    email: String,
    /// Name.
    name: String,
    /// Active memberships.
    memberships: Vec<Membership>,
    /// The portal this session signed in on.
    #[schema(value_type = String)]
    portal: Portal,
    /// This session.
    #[schema(value_type = String)]
    session_id: SessionId,
}

/// Refresh request (the refresh cookie works too).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Accept an invitation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The invitation token.
    token: String,
    /// The new password (at least 10 characters).
    password: String,
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: i64,
    http_only: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .secure(true)
        .http_only(http_only)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

fn with_cookies(
    mut res: actix_web::HttpResponseBuilder,
    issued: &Issued,
    refresh_secs: i64,
) -> actix_web::HttpResponseBuilder {
    res.cookie(cookie(ACCESS_COOKIE, issued.access_token.clone(), "/", issued.expires_in as i64, true))
        .cookie(cookie(REFRESH_COOKIE, issued.refresh_token.clone(), "/api/v1/auth", refresh_secs, true))
        .cookie(cookie(CSRF_COOKIE, issued.csrf_token.clone(), "/", refresh_secs, false));
    res
}

fn clear_cookies(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.cookie(cookie(ACCESS_COOKIE, String::new(), "/", 0, true))
        .cookie(cookie(REFRESH_COOKIE, String::new(), "/api/v1/auth", 0, true))
        .cookie(cookie(CSRF_COOKIE, String::new(), "/", 0, false));
    res
}

async fn me_view(
    app: &AppState,
    user: articula_protocol::UserId,
    portal: Portal,
    session_id: SessionId,
) -> Result<MeView, ApiError> {
    let u = app
        .db
        .user(user)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::SessionRevoked, "no such user"))?;
    let memberships = app.db.memberships(user).await?;
    Ok(MeView { id: u.id.to_string(), email: u.email, name: u.name, memberships, portal, session_id })
}

async fn issued_response(app: &AppState, issued: Issued, mode: TokenMode) -> Result<HttpResponse, ApiError> {
    let user = me_view(app, issued.user_id, issued.portal, issued.session_id).await?;
    let refresh_secs = app.settings.refresh_token_ttl_days as i64 * 86_400;
    let body = LoginResponse {
        access_token: (mode == TokenMode::Token).then(|| issued.access_token.clone()),
        refresh_token: (mode == TokenMode::Token).then(|| issued.refresh_token.clone()),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        csrf_token: issued.csrf_token.clone(),
        session_id: issued.session_id,
        portal: issued.portal,
        user,
    };
    Ok(with_cookies(HttpResponse::Ok(), &issued, refresh_secs).json(body))
}

/// Sign in on a portal.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, description = "invalid_credentials"),
        (status = 403, description = "wrong_portal"), (status = 423, description = "account_locked"),
        (status = 429, description = "rate_limited")))]
pub async fn login(
    req: HttpRequest,
    app: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let ua = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("unknown device");
    let device = body.device.as_deref().filter(|d| !d.trim().is_empty()).unwrap_or(ua).to_owned();
    let input = LoginInput {
        email: &body.email,
        password: &body.password,
        portal: body.portal,
        device: &device,
        ip: super::client_ip(&req, app.settings.trust_proxy),
    };
    let issued = app.auth.login(&input).await?;
    // No session id: with a link's signature it makes a download link, and it names the session
    // to end in `DELETE /auth/sessions/{id}`. The user and the time find it in `sessions`.
    tracing::info!(user = %issued.user_id, portal = %issued.portal, "signed in");
    issued_response(&app, issued, body.mode).await
}

/// Rotate the refresh token: new access and refresh tokens; the old refresh token is spent, and
/// presenting it again revokes the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = LoginResponse), (status = 401, description = "token_reused, token_expired, token_invalid, session_revoked")))]
pub async fn refresh(
    req: HttpRequest,
    app: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: RefreshRequest = serde_json::from_slice(&body).map_err(|e| {
            let code = if e.to_string().contains("unknown field") {
                ErrorCode::UnknownField
            } else {
                ErrorCode::InvalidJson
            };
            ApiError::new(code, format!("invalid JSON: {e}"))
        })?;
        parsed.refresh_token
    };
    let (token, mode) = match from_body {
        Some(t) => (t, TokenMode::Token),
        None => {
            let c = req
                .cookie(REFRESH_COOKIE)
                .ok_or_else(|| ApiError::unauthorized(ErrorCode::Unauthorized, "no refresh token"))?;
            // A cookie refresh is a state-changing browser request: it needs the CSRF header.
            let csrf = req.headers().get(crate::auth::extract::CSRF_HEADER).and_then(|v| v.to_str().ok());
            let cookie_csrf = req.cookie(CSRF_COOKIE);
            match (csrf, cookie_csrf) {
                (Some(h), Some(c)) if tokens::same_secret(h, c.value()) => {}
                _ => {
                    return Err(ApiError::new(ErrorCode::CsrfFailed, "missing or wrong X-CSRF-Token header"));
                }
            }
            (c.value().to_owned(), TokenMode::Cookie)
        }
    };
    let ip = super::client_ip(&req, app.settings.trust_proxy).to_string();
    let issued = match app.auth.refresh(&token, Some(ip)).await {
        Ok(issued) => issued,
        // The session is over (ended, revoked, expired, token reused): a browser's cookies of it
        // go with the refusal, so that no page keeps presenting them — also when the answer that
        // would have cleared them (a sign-out interrupted by the page's own navigation) was lost.
        Err(e)
            if mode == TokenMode::Cookie
                && crate::error::status_for(e.code) == actix_web::http::StatusCode::UNAUTHORIZED =>
        {
            return Ok(clear_cookies(HttpResponse::Unauthorized()).json(e.body()));
        }
        Err(e) => return Err(e),
    };
    issued_response(&app, issued, mode).await
}

/// Sign out of this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)), security(("bearer" = [])))]
pub async fn logout(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    app.auth.revoke_session(caller.user_id, caller.session_id, "logout", Some(ip.0)).await?;
    Ok(clear_cookies(HttpResponse::NoContent()).finish())
}

/// Revocation count.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// Sessions ended.
    revoked: u64,
}

/// Sign out everywhere: every session of the user ends and their live sockets close.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", responses((status = 200, body = Revoked)), security(("bearer" = [])))]
pub async fn logout_all(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let revoked = app.auth.revoke_all(caller.user_id, "logout_all", Some(ip.0)).await?;
    Ok(clear_cookies(HttpResponse::Ok()).json(Revoked { revoked }))
}

/// The user's active sessions: device, address, last use.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = [SessionInfo])), security(("bearer" = [])))]
pub async fn sessions(caller: Caller, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = articula_actors::clock::now_ms();
    let mut list = app.db.list_sessions(caller.user_id, now, app.auth.idle_ms()).await?;
    for s in &mut list {
        s.current = s.id == caller.session_id;
    }
    Ok(HttpResponse::Ok().json(list))
}

/// End one of the user's sessions.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn end_session(
    caller: Caller,
    ip: super::ClientIp,
    app: web::Data<AppState>,
    path: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    if app
        .auth
        .revoke_session(caller.user_id, SessionId(path.into_inner()), "ended_by_user", Some(ip.0))
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("session"))
    }
}

/// Set a password with an invitation token (from `articula user invite`).
#[utoipa::path(post, path = "/api/v1/auth/accept-invitation", tag = "auth", request_body = AcceptInvitation,
    responses((status = 204), (status = 401, description = "token_invalid"), (status = 422, description = "validation_failed")))]
pub async fn accept_invitation(
    app: web::Data<AppState>,
    body: web::Json<AcceptInvitation>,
) -> Result<HttpResponse, ApiError> {
    password::check_new_password(&body.password).map_err(ApiError::invalid)?;
    let now = articula_actors::clock::now_ms();
    let user = app
        .db
        .take_invitation(&tokens::hash_token(&body.token), now)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::TokenInvalid, "unknown, used or expired invitation"))?;
    let hash = app.auth.passwords().hash(&body.password).await.map_err(ApiError::internal)?;
    app.db.set_password(user, &hash).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in user and their memberships.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = MeView)), security(("bearer" = [])))]
pub async fn me(caller: Caller, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(me_view(&app, caller.user_id, caller.portal, caller.session_id).await?))
}
