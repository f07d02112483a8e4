//! Object storage behind one trait — the local filesystem (default) or any S3-compatible service
//! — and the encryption that happens before any byte reaches either. Object keys are random:
//! nothing in storage reveals a file name, a case or a patient.

pub mod crypto;
pub mod fs;
pub mod keys;
pub mod reader;
pub mod s3;

use std::path::Path;

use bytes::Bytes;
use futures_util::future::BoxFuture;

/// A storage failure (details for the log only).
#[derive(Debug, thiserror::Error)]
#[error("object store: {0}")]
pub struct ObjectError(pub String);

/// Where sealed files are kept.
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores the (already sealed) local file under `key`, streaming it; the local file may be
    /// moved rather than copied.
    fn put_file<'a>(&'a self, key: &'a str, local: &'a Path) -> BoxFuture<'a, Result<(), ObjectError>>;

    /// Reads `len` bytes from `offset` of an object.
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, ObjectError>>;

    /// Deletes an object (missing objects are not an error).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ObjectError>>;

    /// `fs` or `s3`.
    fn kind(&self) -> &'static str;
}

/// A new random object key: 128 random bits, hex, fanned out in two directory levels.
pub fn new_object_key() -> String {
    let id = hex::encode(rand::random::<[u8; 16]>());
    format!("{}/{}/{}", &id[..2], &id[2..4], id)
}

/// The store the settings name.
pub async fn from_settings(
    settings: &crate::config::Settings,
) -> Result<std::sync::Arc<dyn ObjectStore>, ObjectError> {
    Ok(match settings.object_store.as_str() {
        "s3" => std::sync::Arc::new(s3::S3Store::new(settings).await?),
        _ => std::sync::Arc::new(fs::FsStore::new(settings.data_dir.join("objects"))?),
    })
}
