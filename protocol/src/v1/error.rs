use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error the server can answer, on REST (`{"error": code, "message"}`) and on the socket
/// (`error {id, code, message}`). Codes are stable strings; new ones are only ever added.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ts_rs::TS,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    // --- malformed input ---
    /// The request or frame could not be parsed.
    MalformedFrame,
    /// The JSON body could not be parsed or has the wrong shape.
    InvalidJson,
    /// A field is not known for this request.
    UnknownField,
    /// The frame's `type` is not a known client message.
    UnknownType,
    /// The envelope's `v` is not a supported protocol version.
    UnsupportedVersion,
    /// The frame is larger than the configured limit.
    FrameTooLarge,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// A value is out of range or of the wrong form.
    ValidationFailed,
    /// The e-mail address is not valid.
    InvalidEmail,
    /// The request's media type is not accepted here.
    UnsupportedMediaType,
    /// The HTTP method is not allowed on this route.
    MethodNotAllowed,
    // --- authentication ---
    /// No valid credentials were presented.
    Unauthorized,
    /// E-mail or password is wrong.
    InvalidCredentials,
    /// Too many failed sign-ins; the account is locked for a while.
    AccountLocked,
    /// This account does not belong to the portal it tried to sign in on.
    WrongPortal,
    /// The token has expired.
    TokenExpired,
    /// The token is not valid.
    TokenInvalid,
    /// A refresh token was used twice; the whole session has been revoked.
    TokenReused,
    /// The CSRF token is missing or wrong.
    CsrfFailed,
    /// The session has been revoked.
    SessionRevoked,
    // --- authorization and state ---
    /// The caller may not do this.
    Forbidden,
    /// Not found (also: exists, but the caller may not see it).
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The Rx field was changed since the version the edit was based on.
    RxConflict,
    /// An Rx value is not valid (tooth, shade, material…).
    InvalidRx,
    /// The status transition is not allowed (from this status, or for this role).
    InvalidTransition,
    /// Too many requests; slow down.
    RateLimited,
    /// The command needs a subscription to the case first.
    NotSubscribed,
    /// The client fell behind; it must resubscribe with `since`.
    Resync,
    // --- files (uploads, downloads) ---
    /// The file's content is not an accepted type.
    InvalidFileType,
    /// The file is larger than allowed.
    FileTooLarge,
    /// The file failed the malware scan.
    MalwareDetected,
    /// The checksum of a chunk did not match.
    ChecksumMismatch,
    /// The upload offset does not match.
    OffsetMismatch,
    /// Another request is writing to this upload.
    UploadLocked,
    /// The signed link has expired.
    LinkExpired,
    // --- server side ---
    /// The service cannot do this right now; retry later (the same command, with the same id).
    Unavailable,
    /// The server could not store this command; sending it again will fail again.
    NotStorable,
    /// An internal error; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// The snake_case wire name of the code.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn as_str_matches_serde_name_for_every_code() {
        for code in ErrorCode::iter() {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
