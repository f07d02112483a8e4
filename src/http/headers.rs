//! Security headers on every response.

use actix_web::middleware::DefaultHeaders;

/// The Content-Security-Policy: same-origin everything, no inline script, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; font-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// HSTS, nosniff, referrer policy, CSP, framing and permissions: on every response, including
/// the WebSocket handshake's (which does not pass through the REST middleware).
pub const SECURITY_HEADERS: [(&str, &str); 9] = [
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), geolocation=(), microphone=(self)"),
    ("Cache-Control", "no-store"),
];

/// The middleware that adds [`SECURITY_HEADERS`] to REST and asset responses.
pub fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS.iter().fold(DefaultHeaders::new(), |h, &(name, value)| h.add((name, value)))
}
