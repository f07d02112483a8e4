//! Health and metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` when the database answers.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// Live case actors.
    live_cases: usize,
    /// Live sockets.
    sockets: usize,
}

/// Liveness and readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(app: web::Data<AppState>) -> HttpResponse {
    let ok = app.db.ping().await.is_ok();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" },
        database: match app.db.backend() {
            crate::config::Backend::Sqlite => "sqlite",
            crate::config::Backend::Postgres => "postgres",
        },
        live_cases: app.registry.live_count(),
        sockets: app.revocations.socket_count(),
    };
    if ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(app: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!("articula_live_cases").set(app.registry.live_count() as f64);
    metrics::gauge!("articula_sockets").set(app.revocations.socket_count() as f64);
    let mut text = app.metrics.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&app.state_gauges());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text)
}
