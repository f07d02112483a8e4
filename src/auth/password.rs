//! Argon2id password hashing, on the blocking pool so it never stalls an event loop.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Hashes and verifies passwords with fixed Argon2id parameters.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A real hash of a random password, verified against for unknown users so that they cost
    /// the same time as known ones.
    dummy: String,
}

/// Hashing failed (bad parameters, or the blocking pool is gone).
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(String);

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 itself has no limit; this bounds the work per request).
pub const MAX_PASSWORD_CHARS: usize = 256;

impl Passwords {
    /// Argon2id with `memory_kib` and `iterations`, one lane.
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| HashError(e.to_string()))?;
        let random: [u8; 24] = rand::random();
        let dummy = Self::hash_with(&params, &hex::encode(random))?;
        Ok(Self { params, dummy })
    }

    fn argon(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
        Self::argon(params)
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Hashes a password (on the blocking pool).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || Self::hash_with(&params, &password))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// Verifies a password against a stored hash, or against the dummy hash when there is no
    /// user (the answer is then always false, after the same work).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let real = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy).to_owned();
        let params = self.params.clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Self::argon(&params).verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!("the password needs at least {MIN_PASSWORD_CHARS} characters"));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!("the password may have at most {MAX_PASSWORD_CHARS} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_its_own_hashes_and_nothing_else() {
        let p = Passwords::new(64, 1).expect("params");
        let h = p.hash("correct horse battery").await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse battery", Some(&h)).await);
        assert!(!p.verify("wrong horse battery", Some(&h)).await);
        assert!(!p.verify("correct horse battery", None).await);
    }
}
