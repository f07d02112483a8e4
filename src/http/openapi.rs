//! The OpenAPI 3 document of the REST API, generated from the handlers.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, auth, cases, files, grants, health, labels, notices, orgs, search, wellknown};
use crate::uploads::tus;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Articula",
        description = "Realtime collaboration for dental clinics and labs. Errors are `{\"error\": code, \"message\"}`; \
            codes are listed in protocol/README.md. Browsers authenticate with HttpOnly cookies and send `X-CSRF-Token` \
            on state-changing requests; API clients send `Authorization: Bearer <access_token>`. \
            The WebSocket protocol (GET /api/v1/ws) is documented in protocol/README.md."
    ),
    paths(
        health::healthz, health::metrics,
        auth::login, auth::refresh, auth::logout, auth::logout_all, auth::sessions, auth::end_session,
        auth::accept_invitation, auth::me,
        cases::labs, cases::board, cases::unread, cases::list, cases::create, cases::get, cases::update, cases::set_status,
        cases::events, cases::messages, cases::rx, cases::rx_history, cases::approvals, cases::participants,
        search::search,
        files::list, files::link, files::content,
        grants::list, grants::give, grants::revoke, grants::grantable, labels::names,
        orgs::members, orgs::remove_role, orgs::end_sessions,
        notices::publish, notices::org_notices, notices::mine, notices::acknowledge,
        wellknown::security,
        audit::read, audit::export, audit::verify,
        tus::options, tus::create, tus::head, tus::patch, tus::terminate,
        document,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "cases"), (name = "files", description = "tus 1.0 uploads (creation, creation-with-upload, expiration, checksum sha256, termination) and signed downloads"), (name = "orgs", description = "members, roles, sessions and incident notices, for an organisation's owners"), (name = "audit", description = "The audit log: owners and auditors of an organisation read, export and verify its hash chain"), (name = "ops"))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
