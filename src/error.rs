//! The REST error: `{"error": code, "message", "details"?}` with the right HTTP status. Server
//! faults are logged with their cause and answered with `internal` and nothing else.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use articula_actors::CommandError;
use articula_protocol::ErrorCode;
use serde::Serialize;

use crate::store::StoreError;

/// An error answered to a REST client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// A human explanation (safe to show).
    pub message: String,
    /// Machine-readable details.
    pub details: Option<serde_json::Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// Error code (see protocol/README.md).
    #[schema(value_type = String)]
    error: ErrorCode,
    /// Explanation.
    message: &'a str,
    /// Details (e.g. current values on a conflict).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<&'a serde_json::Value>,
}

/// The HTTP status of an error code.
pub fn status_for(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        MalformedFrame | InvalidJson | UnknownField | UnknownType | UnsupportedVersion => {
            StatusCode::BAD_REQUEST
        }
        ValidationFailed | InvalidEmail | InvalidRx | MalwareDetected | NotStorable => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        FrameTooLarge | PayloadTooLarge | FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        UnsupportedMediaType | InvalidFileType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Unauthorized | InvalidCredentials | TokenExpired | TokenInvalid | TokenReused | SessionRevoked => {
            StatusCode::UNAUTHORIZED
        }
        AccountLocked => StatusCode::LOCKED,
        WrongPortal | Forbidden | CsrfFailed => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        UploadLocked => StatusCode::LOCKED,
        Conflict | RxConflict | InvalidTransition | NotSubscribed | Resync | OffsetMismatch => {
            StatusCode::CONFLICT
        }
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ChecksumMismatch => StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
        LinkExpired => StatusCode::GONE,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    /// Not found — also for things that exist but the caller may not see.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// A value is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    /// The caller may not.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// No valid credentials.
    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message)
    }

    /// A server fault: logged with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl ApiError {
    /// The JSON body clients get.
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody { error: self.code, message: &self.message, details: self.details.as_ref() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_for(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

impl From<StoreError> for ApiError {
    /// A database that is down, restarting or out of space is not a fault of the server's: the
    /// request is answered `unavailable` (503, retryable) and the cause logged, never answered.
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "the database is unavailable; the request may be retried");
            return Self::new(ErrorCode::Unavailable, "temporarily unavailable; retry shortly");
        }
        Self::internal(e)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        Self { code: e.code, message: e.message, details: e.details }
    }
}
