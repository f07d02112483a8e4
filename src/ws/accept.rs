//! Who may open a socket, and which codec it speaks: decided from the upgrade request's headers.

use actix_web::http::header::HeaderMap;
use articula_protocol::{Codec, ErrorCode};

use crate::auth::Caller;
use crate::auth::extract::{CSRF_COOKIE, request_token};
use crate::error::ApiError;
use crate::state::AppState;

/// The codec named by the first supported subprotocol the client offers (JSON when it offers
/// none), and whether it offered it (then the handshake answers with that subprotocol).
pub fn codec_of(headers: &HeaderMap) -> (Codec, bool) {
    headers
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| Codec::from_subprotocol(p.trim()))
        .map_or((Codec::Json, false), |c| (c, true))
}

/// Whether the upgrade comes from a page of this very server (cookie-authenticated sockets
/// must, or any site could open a socket in the user's name). Behind a trusted proxy the host
/// the browser used is in `X-Forwarded-Host`.
fn same_origin(headers: &HeaderMap, trust_proxy: bool) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let host = trust_proxy.then(|| header("x-forwarded-host")).flatten().or_else(|| header("host"));
    let (Some(origin), Some(host)) = (header("origin"), host) else {
        return false;
    };
    let (Ok(origin), Ok(own)) = (url::Url::parse(origin), url::Url::parse(&format!("https://{host}"))) else {
        return false;
    };
    origin.host_str() == own.host_str()
        && origin.port_or_known_default() == own.port_or_known_default().or(Some(443))
}

/// The caller, when the upgrade carries credentials (cookie or `Authorization` header); `None`
/// means the first frame must be `auth`. Tokens in the URL are not credentials.
pub async fn caller(app: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    match request_token(headers) {
        Some((token, via_cookie)) => {
            if via_cookie && !same_origin(headers, app.settings.trust_proxy) {
                return Err(ApiError::forbidden("a cookie-authenticated socket must come from this site"));
            }
            Ok(Some(app.auth.authenticate(&token, via_cookie).await?))
        }
        // A browser whose access cookie expired still has its CSRF cookie: tell it at once to
        // refresh, rather than leaving it waiting for an `auth` frame it cannot send.
        None if crate::auth::extract::cookie(headers, CSRF_COOKIE).is_some() => {
            Err(ApiError::new(ErrorCode::TokenExpired, "the access cookie expired; refresh and reconnect"))
        }
        None => Ok(None),
    }
}
