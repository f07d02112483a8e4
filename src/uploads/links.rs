//! Signed download links: valid 5 minutes, bound to a user and their session, checked again at
//! download time against an active session and current case access.

use articula_protocol::{FileId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How long a link lives.
pub const LINK_TTL_MS: i64 = 5 * 60 * 1000;

/// The query of a signed link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    /// User the link was issued to.
    #[param(value_type = String)]
    pub u: UserId,
    /// Session the link was issued in.
    pub s: uuid::Uuid,
    /// Expiry, ms since the epoch.
    pub e: i64,
    /// Signature.
    pub sig: String,
    /// `1` to display images, PDFs and audio in the browser instead of downloading.
    #[serde(default)]
    pub inline: Option<u8>,
}

fn mac(key: &[u8; 32], file: FileId, user: UserId, session: uuid::Uuid, expires: i64) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    m.update(format!("articula-link/v1/{file}/{user}/{session}/{expires}").as_bytes());
    m
}

#[allow(clippy::unreachable)]
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 takes keys of any length")
}

/// Signs a link.
pub fn sign(key: &[u8; 32], file: FileId, user: UserId, session: uuid::Uuid, expires: i64) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, file, user, session, expires).finalize().into_bytes())
}

/// Checks a link's signature (constant time).
pub fn verify(key: &[u8; 32], file: FileId, q: &LinkQuery) -> bool {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(&q.sig) else { return false };
    mac(key, file, q.u, q.s, q.e).verify_slice(&sig).is_ok()
}

/// The query string of a link.
pub fn query(key: &[u8; 32], file: FileId, user: UserId, session: uuid::Uuid, expires: i64) -> String {
    format!("u={user}&s={session}&e={expires}&sig={}", sign(key, file, user, session, expires))
}

/// A byte range request, resolved against a size.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// The whole file.
    Full,
    /// `start..=end`.
    Part(u64, u64),
    /// Not satisfiable.
    Unsatisfiable,
}

/// Parses a `Range` header (a single `bytes=` range; anything else means the whole file).
pub fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Range::Full };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.split_once('-') else { return Range::Full };
    let (a, b) = (a.trim(), b.trim());
    if size == 0 {
        return Range::Unsatisfiable;
    }
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), end) if a.chars().all(|c| c.is_ascii_digit()) => {
            if start >= size {
                return Range::Unsatisfiable;
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            if end < start { Range::Unsatisfiable } else { Range::Part(start, end) }
        }
        (None, Some(suffix)) if a.is_empty() => {
            if suffix == 0 {
                return Range::Unsatisfiable;
            }
            Range::Part(size.saturating_sub(suffix), size - 1)
        }
        _ => Range::Full,
    }
}

/// A `Content-Disposition` value with a safe ASCII fallback and the UTF-8 name.
pub fn disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || " ._-()".contains(c) { c } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Range::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Range::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Range::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Range::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Range::Part(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Range::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Range::Full);
    }

    #[test]
    fn links_are_bound_to_file_user_session_and_time() {
        let key = [9u8; 32];
        let (f, u, s) = (FileId::new(), UserId::new(), uuid::Uuid::new_v4());
        let q = |sig: String, u, s, e| LinkQuery { u, s, e, sig, inline: None };
        let sig = sign(&key, f, u, s, 1000);
        assert!(verify(&key, f, &q(sig.clone(), u, s, 1000)));
        assert!(!verify(&key, FileId::new(), &q(sig.clone(), u, s, 1000)));
        assert!(!verify(&key, f, &q(sig.clone(), UserId::new(), s, 1000)));
        assert!(!verify(&key, f, &q(sig.clone(), u, uuid::Uuid::new_v4(), 1000)));
        assert!(!verify(&key, f, &q(sig.clone(), u, s, 2000)));
        assert!(!verify(&[8u8; 32], f, &q(sig, u, s, 1000)));
        assert!(!verify(&key, f, &q("forged".into(), u, s, 1000)));
    }

    #[test]
    fn dispositions_are_safe() {
        assert_eq!(
            disposition("attachment", "crown \"11\".stl"),
            "attachment; filename=\"crown _11_.stl\"; filename*=UTF-8''crown%20%2211%22.stl"
        );
    }
}
