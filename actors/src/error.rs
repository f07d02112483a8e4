use articula_protocol::ErrorCode;

/// Why a case command was refused. Nothing changed when this is returned.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// The wire error code.
    pub code: ErrorCode,
    /// A human explanation, safe to show to the caller.
    pub message: String,
    /// Machine-readable details (e.g. the current value on an Rx conflict).
    pub details: Option<serde_json::Value>,
    /// The actor that answered was retired; the registry retries on the new one.
    pub(crate) retired: bool,
}

impl CommandError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retired: false }
    }

    /// Adds details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// A value is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    /// Not found (or not visible).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// The service is temporarily unable to do this; the command may be retried with its id.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "the case is restarting; retry the command with the same id")
    }

    /// The case has more work waiting than it accepts; the command may be retried with its id.
    pub fn busy() -> Self {
        Self::new(ErrorCode::Unavailable, "the case is busy; retry the command with the same id shortly")
    }

    /// The store refused this command's event for a reason a retry meets again.
    pub fn not_storable() -> Self {
        Self::new(
            ErrorCode::NotStorable,
            "the server could not store this command; sending it again will not help",
        )
    }

    /// The command id was already used for another command.
    pub fn id_reused() -> Self {
        Self::new(ErrorCode::Conflict, "this command id was already used for a different command")
    }

    /// Answer of a retired actor to a late message.
    pub(crate) fn retired() -> Self {
        Self { retired: true, ..Self::unavailable() }
    }

    /// True when the caller should simply send the command again (same id).
    pub fn is_retryable(&self) -> bool {
        self.code == ErrorCode::Unavailable
    }
}
