//! The WebSocket endpoint `GET /api/v1/ws`. This module is the only user of `actix-web-actors`
//! (deprecated upstream in favour of `actix-ws`): the session is an actor on a
//! `WebsocketContext`, fed by the transport of [`transport`], so moving to another actor or
//! socket crate stays a local change.

mod accept;
mod batches;
mod session;
mod transport;

use actix_web::HttpResponse;

use crate::error::ApiError;
pub use session::WsSession;
pub use transport::upgrade;

/// `GET /api/v1/ws` without `Upgrade: websocket` (upgrades never reach the REST routes: the
/// server hands them to [`upgrade`]).
pub async fn endpoint() -> Result<HttpResponse, ApiError> {
    Err(ApiError::invalid("this is the WebSocket endpoint: send a WebSocket upgrade (RFC 6455)"))
}
