//! `/.well-known/security.txt` (RFC 9116): where to report a vulnerability, from the
//! configuration (`ARTICULA_SECURITY_CONTACT`, `ARTICULA_SECURITY_POLICY_URL`). `Expires` is a
//! year after the server started. Without a contact there is no file (404).

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::state::AppState;

/// How long a published security.txt stays valid.
const VALID_FOR: time::Duration = time::Duration::days(365);

/// The file's text for these settings at `now_ms`, or none without a contact.
pub fn security_txt(settings: &crate::config::Settings, now_ms: i64) -> Option<String> {
    let contact = settings.security_contact.as_deref()?;
    let now = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).ok()?;
    let expires = (now + VALID_FOR).format(&time::format_description::well_known::Rfc3339).ok()?;
    let mut out = format!("Contact: {contact}\nExpires: {expires}\n");
    if let Some(p) = &settings.security_policy_url {
        out.push_str(&format!("Policy: {p}\n"));
    }
    out.push_str("Preferred-Languages: en, es\n");
    if let Some(base) = &settings.public_url {
        out.push_str(&format!("Canonical: {}/.well-known/security.txt\n", base.trim_end_matches('/')));
    }
    Some(out)
}

/// Where to report a vulnerability (RFC 9116).
#[utoipa::path(get, path = "/.well-known/security.txt", tag = "ops",
    responses((status = 200, description = "security.txt (text/plain)", content_type = "text/plain"),
        (status = 404, description = "no security contact is configured")))]
pub async fn security(app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match &app.security_txt {
        Some(text) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text.clone())),
        None => Err(ApiError::not_found("security.txt")),
    }
}
