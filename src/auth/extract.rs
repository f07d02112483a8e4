//! The `Caller` extractor: a Bearer token (API clients) or the session cookie (browsers, which
//! must then send the CSRF token on every state-changing request).

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};
use articula_protocol::ErrorCode;
use futures_util::future::LocalBoxFuture;

use super::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Cookie carrying the access token.
pub const ACCESS_COOKIE: &str = "__Host-articula_at";
/// Cookie carrying the refresh token (sent to `/api/v1/auth` only).
pub const REFRESH_COOKIE: &str = "__Secure-articula_rt";
/// Cookie carrying the CSRF token (readable by the page, which echoes it in `X-CSRF-Token`).
pub const CSRF_COOKIE: &str = "__Host-articula_csrf";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The access token of a request and whether it came from the cookie.
pub fn request_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(h) = headers.get(actix_web::http::header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
        return Some((token.trim().to_owned(), false));
    }
    cookie(headers, ACCESS_COOKIE).map(|v| (v.to_owned(), true))
}

/// The value of a cookie (`Cookie: a=1; b=2`), from any of the request's `Cookie` headers.
/// Articula's own cookies hold only URL-safe characters, so no decoding is needed.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let app = req.app_data::<web::Data<AppState>>().cloned();
        let token = request_token(req.headers());
        let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let csrf = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Box::pin(async move {
            let app = app.ok_or_else(|| ApiError::internal("application state missing"))?;
            let (token, via_cookie) =
                token.ok_or_else(|| ApiError::unauthorized(ErrorCode::Unauthorized, "sign in first"))?;
            let caller = app.auth.authenticate(&token, via_cookie).await?;
            if via_cookie && unsafe_method {
                caller.check_csrf(csrf.as_deref())?;
            }
            Ok(caller)
        })
    }
}
