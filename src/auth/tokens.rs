//! Opaque random tokens. Only their SHA-256 is stored: a database leak reveals no usable token.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A new random token (256 bits) with a readable prefix, and its hash for storage.
pub fn new_token(prefix: &str) -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{prefix}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashed() {
        let (a, ha) = new_token("at");
        let (b, hb) = new_token("at");
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(a.starts_with("at_") && a.len() > 40);
        assert_eq!(hash_token(&a), ha);
        assert!(!ha.contains(&a));
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
