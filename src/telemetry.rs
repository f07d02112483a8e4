//! Logs (`tracing`): JSON lines when stdout is not a terminal, human text otherwise.

use std::io::IsTerminal;

use actix_web::HttpMessage;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_env("ARTICULA_LOG_FILTER")
        .or_else(|_| EnvFilter::try_new(&settings.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The span of every HTTP request (`tracing-actix-web`'s root span builder): method, route
/// pattern, path, client address, user agent, status, and the error code of a failed request;
/// every event logged while the request runs carries these fields.
///
/// **The query string is never logged.** Query strings carry secrets: a signed link's signature
/// and session id (`?u=…&s=…&e=…&sig=…`) on every download, and access tokens that clients put
/// in URLs (`?access_token=…`, `?token=…`), refused but live. They also carry what people search
/// for (`/cases?q=…`, case labels name patients). A list of parameters to redact would miss the
/// next one someone adds, and the route pattern plus the path (ids only) say which request it
/// was. Nor is an error's message or `Debug` logged (tracing-actix-web's default): messages
/// quote the client's input (serde's "invalid type: integer `…`" may be a password); the code
/// says what went wrong, and server faults log their cause where they happen
/// (`ApiError::internal`).
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let user_agent = req.headers().get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or("");
        let route = req.match_pattern().unwrap_or_else(|| "default".into());
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let trust_proxy = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .is_some_and(|app| app.settings.trust_proxy);
        tracing::info_span!(
            "HTTP request",
            http.method = %req.method(),
            http.route = %route,
            http.target = %req.path(),
            http.client_ip = %crate::http::client_ip(req.request(), trust_proxy),
            http.user_agent = %user_agent,
            http.status_code = tracing::field::Empty,
            request_id = %request_id,
            error = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(res) => (res.status(), res.response().error()),
            Err(e) => (e.as_response_error().status_code(), Some(e)),
        };
        span.record("http.status_code", status.as_u16());
        // An `ApiError` is logged by its code only; other errors come from actix-web's own
        // plumbing (the body stream, size limits), whose messages describe no content.
        let error = error.map(|e| match e.as_error::<crate::error::ApiError>() {
            Some(api) => <&'static str>::from(api.code).to_owned(),
            None => e.to_string(),
        });
        if let Some(e) = &error {
            span.record("error", e.as_str());
        }
        let error = error.as_deref().unwrap_or("");
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error, "request failed");
        } else if status.is_client_error() {
            tracing::warn!(status = status.as_u16(), error, "request refused");
        }
    }
}
