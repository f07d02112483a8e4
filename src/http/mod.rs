//! The REST API under `/api/v1`, health and metrics, and the WebSocket endpoint.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod files;
pub mod grants;
pub mod headers;
pub mod health;
pub mod labels;
pub mod notices;
pub mod openapi;
pub mod orgs;
pub mod search;
pub mod wellknown;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, Resource, web};
use articula_protocol::ErrorCode;

use crate::error::ApiError;

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        JsonPayloadError::ContentType => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "send JSON with Content-Type: application/json")
        }
        JsonPayloadError::Deserialize(d) => {
            let msg = d.to_string();
            if msg.contains("unknown field") {
                ApiError::new(ErrorCode::UnknownField, msg)
            } else if d.is_data() {
                ApiError::new(ErrorCode::ValidationFailed, msg)
            } else {
                ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {msg}"))
            }
        }
        _ => ApiError::new(ErrorCode::InvalidJson, "invalid JSON body"),
    };
    e.into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(format!("invalid query: {err}")).into()
}

fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    // A malformed id is answered exactly like a missing one.
    ApiError::not_found("resource").into()
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("route"))
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route"))
}

/// The client's address: the connection's peer, or with `trust_proxy` the first address of
/// `X-Forwarded-For` / `Forwarded` (set by the proxy in front; a client could write anything there).
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> std::net::IpAddr {
    let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if trust_proxy && let Some(ip) = req.connection_info().realip_remote_addr().and_then(|s| s.parse().ok()) {
        return ip;
    }
    peer
}

/// The address a request comes from, as [`client_ip`] finds it (an extractor).
pub struct ClientIp(pub String);

impl actix_web::FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let trust =
            req.app_data::<web::Data<crate::state::AppState>>().is_some_and(|a| a.settings.trust_proxy);
        std::future::ready(Ok(ClientIp(client_ip(req, trust).to_string())))
    }
}

/// The client address of a WebSocket upgrade (the same rule as [`ClientIp`]).
pub fn upgrade_ip(req: &actix_http::Request, trust_proxy: bool) -> String {
    let forwarded = trust_proxy
        .then(|| req.head().headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    forwarded.or_else(|| req.peer_addr().map(|a| a.ip().to_string())).unwrap_or_default()
}

/// A resource whose unmatched methods answer 405 with a JSON error.
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Every route.
pub fn routes(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/.well-known/security.txt").route(web::get().to(wellknown::security)))
        .service(
            web::scope("/api/v1")
                .service(resource("/openapi.json").route(web::get().to(openapi::document)))
                .configure(auth::routes)
                .configure(cases::routes)
                .configure(files::routes)
                .configure(grants::routes)
                .configure(labels::routes)
                .configure(orgs::routes)
                .configure(notices::routes)
                .configure(audit::routes)
                .configure(search::routes)
                .service(resource("/ws").route(web::get().to(crate::ws::endpoint)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::get().to(assets::serve));
}
