//! Encryption at rest: AES-256-GCM throughout.
//!
//! Key hierarchy: a **master key** (configuration; key id = first bytes of its SHA-256) wraps one
//! **organisation key** per organisation (stored wrapped in `org_keys`; destroying it makes the
//! organisation's files unreadable for good), which wraps a random **data key** per file.
//!
//! A file is stored as a sequence of independently sealed segments of at most
//! [`SEGMENT_SIZE`] plaintext bytes, so it can be written as it streams in and read back by
//! range. Each stored segment is `len (u32 BE) · flags (1) · nonce (12) · ciphertext+tag`; the
//! additional data binds the file id, the segment's index and whether it is the last one, so
//! segments cannot be swapped, replayed from another file, or cut off the end unnoticed.
//! Compressible formats are zstd-compressed per segment before sealing (flag bit 0), only when
//! that makes the segment smaller.
//!
//! # The format, byte for byte
//!
//! Enough to read a stored file without this code (`tests/clients/decrypt_object.py` does):
//!
//! - **AES-256-GCM** everywhere, 12-byte random nonce, 16-byte tag; a *sealed* value is
//!   `nonce (12) · ciphertext · tag (16)`.
//! - **Master key**: 32 bytes, base64 (standard alphabet) in `ARTICULA_MASTER_KEY` or the file
//!   `<data dir>/keys/master.key`. Its id is the hex of the first 8 bytes of its SHA-256.
//! - **Organisation key**: a row of `org_keys` (`id`, `org_id`, `wrapped`, `master_key_id`):
//!   `wrapped` is base64 of the 32-byte key sealed by the master key whose id is
//!   `master_key_id`, with the additional data `articula/org-key/<org_id>/<id>` (UTF-8).
//! - **Data key**: `files.wrapped_dek` (or `uploads.wrapped_dek` while receiving), base64 of the
//!   32-byte key sealed by the organisation key `files.key_id`, with the additional data
//!   `articula/data-key/<file id>` (the id in its lowercase hyphenated text form).
//! - **Object**: at `files.object_key` (under `<data dir>/objects/` on the local store, the key
//!   in the bucket on S3), the segments one after another; `files.segments` lists their stored
//!   lengths, but each also carries its own: segment *i* (from 0) is `len (u32 BE)`, then `len`
//!   bytes: `flags (1) · sealed`. Its additional data is 26 bytes: the file id's 16 bytes (the
//!   UUID's bytes in order), *i* as u64 BE, `1` if it is the object's last segment else `0`,
//!   then the flags byte. Flag bit 0 set: the opened bytes are a zstd frame (decompress; at most
//!   [`SEGMENT_SIZE`] bytes). Every segment but the last holds exactly [`SEGMENT_SIZE`]
//!   plaintext bytes. The concatenated plaintexts are the file (its SHA-256 is `files.sha256`).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Plaintext bytes per segment.
pub const SEGMENT_SIZE: usize = 1024 * 1024;
/// Bytes a sealed segment adds: length prefix, flags, nonce and tag.
pub const SEGMENT_OVERHEAD: usize = 4 + 1 + 12 + 16;
const FLAG_ZSTD: u8 = 1;

/// A 256-bit key. Never printed.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

/// Encryption or decryption failed (wrong key, tampered or truncated data).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed.
    #[error("decryption failed: wrong key or tampered data")]
    Open,
    /// A stored value has the wrong form.
    #[error("malformed sealed data: {0}")]
    Malformed(String),
    /// (De)compression failed.
    #[error("compression: {0}")]
    Compression(String),
}

impl Key {
    /// A new random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| CryptoError::Malformed("a key has 32 bytes".into()))?;
        Ok(Self(arr))
    }

    /// A key from base64 (standard alphabet).
    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(s.trim()).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// The key as base64 (only for writing a generated master key file).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// A short public identifier of the key (hex of the first 8 bytes of its SHA-256).
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    /// A key for another purpose, derived from this one (SHA-256 of a label and the key: enough
    /// for a uniformly random 256-bit key).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(self.0);
        h.finalize().into()
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte slice is always a valid AES-256 key.
        Aes256Gcm::new(&self.0.into())
    }

    /// Seals `msg` with a random nonce: `nonce · ciphertext+tag`.
    pub fn seal(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let mut out = Vec::with_capacity(12 + msg.len() + 16);
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and a message under GCM's limit cannot fail.
        if let Ok(ct) = self.cipher().encrypt(&nonce.into(), Payload { msg, aad }) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// Opens what [`Key::seal`] sealed.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 28 {
            return Err(CryptoError::Malformed("sealed data too short".into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        self.cipher().decrypt(&nonce.into(), Payload { msg: ct, aad }).map_err(|_| CryptoError::Open)
    }

    /// Wraps another key (for storage), bound to `context`.
    pub fn wrap(&self, key: &Key, context: &str) -> String {
        B64.encode(self.seal(&key.0, context.as_bytes()))
    }

    /// Unwraps a key wrapped with [`Key::wrap`] and the same context.
    pub fn unwrap_key(&self, wrapped: &str, context: &str) -> Result<Key, CryptoError> {
        let sealed = B64.decode(wrapped).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Key::from_bytes(&self.open(&sealed, context.as_bytes())?)
    }
}

/// The context an organisation key is wrapped under.
pub fn org_key_context(org: &str, key_id: &str) -> String {
    format!("articula/org-key/{org}/{key_id}")
}

/// The context a file's data key is wrapped under.
pub fn data_key_context(file: &str) -> String {
    format!("articula/data-key/{file}")
}

fn segment_aad(file: &[u8; 16], index: u64, last: bool) -> [u8; 25] {
    let mut aad = [0u8; 25];
    aad[..16].copy_from_slice(file);
    aad[16..24].copy_from_slice(&index.to_be_bytes());
    aad[24] = u8::from(last);
    aad
}

/// Seals one segment of a file. `compress` is a zstd level for compressible formats.
pub fn seal_segment(
    key: &Key,
    file: &[u8; 16],
    index: u64,
    last: bool,
    plain: &[u8],
    compress: Option<i32>,
) -> Result<Vec<u8>, CryptoError> {
    let mut flags = 0u8;
    let compressed;
    let body: &[u8] = match compress {
        Some(level) => {
            compressed =
                zstd::bulk::compress(plain, level).map_err(|e| CryptoError::Compression(e.to_string()))?;
            if compressed.len() < plain.len() {
                flags |= FLAG_ZSTD;
                &compressed
            } else {
                plain
            }
        }
        None => plain,
    };
    let mut aad = segment_aad(file, index, last).to_vec();
    aad.push(flags);
    let sealed = key.seal(body, &aad);
    let len =
        u32::try_from(1 + sealed.len()).map_err(|_| CryptoError::Malformed("segment too large".into()))?;
    let mut out = Vec::with_capacity(4 + 1 + sealed.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens one stored segment (with its length prefix) and returns its plaintext.
pub fn open_segment(
    key: &Key,
    file: &[u8; 16],
    index: u64,
    last: bool,
    stored: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if stored.len() < SEGMENT_OVERHEAD {
        return Err(CryptoError::Malformed("segment too short".into()));
    }
    let len = u32::from_be_bytes([stored[0], stored[1], stored[2], stored[3]]) as usize;
    if len + 4 != stored.len() {
        return Err(CryptoError::Malformed("segment length mismatch".into()));
    }
    let flags = stored[4];
    let mut aad = segment_aad(file, index, last).to_vec();
    aad.push(flags);
    let body = key.open(&stored[5..], &aad)?;
    if flags & FLAG_ZSTD != 0 {
        zstd::bulk::decompress(&body, SEGMENT_SIZE).map_err(|e| CryptoError::Compression(e.to_string()))
    } else {
        Ok(body)
    }
}

/// The stored length of the segment starting at `buf[0]`, if its prefix is complete.
pub fn stored_segment_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_be_bytes(prefix) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_wrap_and_refuse_the_wrong_context() {
        let master = Key::generate();
        let org = Key::generate();
        let wrapped = master.wrap(&org, "a");
        assert_eq!(master.unwrap_key(&wrapped, "a").map(|k| k.0).ok(), Some(org.0));
        assert!(master.unwrap_key(&wrapped, "b").is_err());
        assert!(Key::generate().unwrap_key(&wrapped, "a").is_err());
        assert!(!format!("{org:?}").contains(&format!("{:?}", org.0[0])));
    }

    #[test]
    fn segments_round_trip_compress_when_it_helps_and_detect_tampering() {
        let key = Key::generate();
        let file = [7u8; 16];
        let text = b"facet normal 0 0 1 vertex 1 2 3 ".repeat(1000);
        let sealed = seal_segment(&key, &file, 3, false, &text, Some(3)).unwrap_or_default();
        assert!(sealed.len() < text.len() / 4, "compressible data is compressed");
        assert_eq!(open_segment(&key, &file, 3, false, &sealed).ok(), Some(text.clone()));
        // Wrong index, wrong "last" flag, wrong file, flipped byte: all refused.
        assert!(open_segment(&key, &file, 4, false, &sealed).is_err());
        assert!(open_segment(&key, &file, 3, true, &sealed).is_err());
        assert!(open_segment(&key, &[8u8; 16], 3, false, &sealed).is_err());
        let mut bad = sealed.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert!(open_segment(&key, &file, 3, false, &bad).is_err());
        // Random data is stored as is (no flag), and the ciphertext does not contain the plaintext.
        let random: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        let sealed = seal_segment(&key, &file, 0, true, &random, Some(3)).unwrap_or_default();
        assert_eq!(sealed[4] & FLAG_ZSTD, 0);
        assert_eq!(open_segment(&key, &file, 0, true, &sealed).ok(), Some(random.clone()));
        assert!(!sealed.windows(32).any(|w| w == &random[100..132]));
        assert_eq!(stored_segment_len(&sealed), Some(sealed.len()));
    }
}
