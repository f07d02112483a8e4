//! The WebSocket endpoint. This module is the only user of `actix-web-actors` (deprecated
//! upstream in favour of `actix-ws`): moving to a task fed by `actix-ws` stays a local change.

mod session;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use articula_protocol::codec::{JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL};
use articula_protocol::{Codec, ErrorCode};

use crate::auth::extract::{CSRF_COOKIE, request_token};
use crate::config::MAX_WS_FRAME;
use crate::error::ApiError;
use crate::state::AppState;
pub use session::WsSession;

/// The codec named by the first supported subprotocol the client offers (JSON by default).
fn codec_of(req: &HttpRequest) -> Codec {
    req.headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| Codec::from_subprotocol(p.trim()))
        .unwrap_or(Codec::Json)
}

/// Whether the upgrade comes from a page of this very server (cookie-authenticated sockets
/// must, or any site could open a socket in the user's name).
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = req.connection_info().host().to_owned();
    let (Ok(origin), Ok(own)) = (url::Url::parse(origin), url::Url::parse(&format!("https://{host}"))) else {
        return false;
    };
    origin.host_str() == own.host_str()
        && origin.port_or_known_default() == own.port_or_known_default().or(Some(443))
}

/// `GET /api/v1/ws`: authenticates by cookie or `Authorization` header when present (otherwise
/// the first frame must be `auth`), then upgrades.
pub async fn endpoint(
    req: HttpRequest,
    stream: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let codec = codec_of(&req);
    let caller = match request_token(&req) {
        Some((token, via_cookie)) => {
            if via_cookie && !same_origin(&req) {
                return Err(
                    ApiError::forbidden("a cookie-authenticated socket must come from this site").into()
                );
            }
            Some(app.auth.authenticate(&token, via_cookie).await?)
        }
        // A browser whose access cookie expired still has its CSRF cookie: tell it at once to
        // refresh, rather than leaving it waiting for an `auth` frame it cannot send.
        None if req.cookie(CSRF_COOKIE).is_some() => {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "the access cookie expired; refresh and reconnect",
            )
            .into());
        }
        None => None,
    };
    let session = WsSession::new(app.into_inner(), codec, caller);
    ws::WsResponseBuilder::new(session, &req, stream)
        .protocols(&[JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL])
        .frame_size(MAX_WS_FRAME)
        .start()
}
