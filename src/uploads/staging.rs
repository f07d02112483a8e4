//! Where an upload's bytes wait until it is complete: already sealed, in the data dir.
//!
//! `<id>.seg` holds the complete segments (sealed, length-prefixed, appended as they fill) and
//! `<id>.tail` the last incomplete segment, sealed as a whole and replaced atomically after each
//! request. The files are the truth about how much was received: the offset is always recomputed
//! from them, so a crash at any point loses at most the request in progress.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use crate::objects::crypto::{self, Key, SEGMENT_SIZE};

/// A staging I/O or crypto failure.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// Disk.
    #[error("staging I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Sealing or opening.
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    /// The blocking pool is gone.
    #[error("background task failed")]
    Join,
}

/// The staging directory.
#[derive(Clone)]
pub struct Staging {
    dir: PathBuf,
}

/// What an upload has received so far.
pub struct Received {
    /// All bytes were received and sealed into the final form (the tail merged).
    pub finalized: bool,
    /// The upload's length.
    pub length: u64,
    /// Complete segments.
    pub segments: u64,
    /// Bytes of `<id>.seg` that hold them.
    pub seg_len: u64,
    /// The incomplete last segment's plaintext.
    pub tail: Vec<u8>,
}

impl Received {
    /// Bytes received.
    pub fn offset(&self) -> u64 {
        if self.finalized {
            self.length
        } else {
            self.segments * SEGMENT_SIZE as u64 + self.tail.len() as u64
        }
    }
}

fn tail_aad(file: &[u8; 16], segments: u64) -> Vec<u8> {
    let mut aad = b"articula/tail/".to_vec();
    aad.extend_from_slice(file);
    aad.extend_from_slice(&segments.to_be_bytes());
    aad
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

impl Staging {
    /// Staging under `dir` (created if missing).
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The sealed segments file of an upload.
    pub fn seg_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.seg"))
    }

    fn tail_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.tail"))
    }

    fn final_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.final"))
    }

    /// Reads what an upload has received, repairing a segment cut short by a crash.
    pub async fn received(&self, id: Uuid, key: &Key, length: u64) -> Result<Received, StagingError> {
        if tokio::fs::try_exists(self.final_path(id)).await? {
            return Ok(Received { finalized: true, length, segments: 0, seg_len: 0, tail: Vec::new() });
        }
        let file_id = *id.as_bytes();
        let seg_path = self.seg_path(id);
        let mut segments = 0;
        let mut seg_len = 0u64;
        match tokio::fs::OpenOptions::new().read(true).write(true).open(&seg_path).await {
            Ok(mut f) => {
                let total = f.metadata().await?.len();
                let mut prefix = [0u8; 4];
                while seg_len + 4 <= total {
                    f.seek(std::io::SeekFrom::Start(seg_len)).await?;
                    f.read_exact(&mut prefix).await?;
                    let next = seg_len + 4 + u64::from(u32::from_be_bytes(prefix));
                    if next > total {
                        break;
                    }
                    seg_len = next;
                    segments += 1;
                }
                if seg_len < total {
                    tracing::warn!(upload = %id, "dropping a segment cut short by a crash");
                    f.set_len(seg_len).await?;
                    f.sync_all().await?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let tail = match tokio::fs::read(self.tail_path(id)).await {
            // A tail that does not open was written for an older segment count (a crash between
            // the two files): its bytes are in the segments now, or were never acknowledged.
            Ok(sealed) => key.open(&sealed, &tail_aad(&file_id, segments)).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Received { finalized: false, length, segments, seg_len, tail })
    }

    /// A writer that appends to an upload from what it has received.
    pub async fn writer(
        &self,
        id: Uuid,
        key: Arc<Key>,
        length: u64,
        compress: Option<i32>,
    ) -> Result<Writer, StagingError> {
        let received = self.received(id, &key, length).await?;
        if received.finalized {
            return Err(StagingError::Io(std::io::Error::other("the upload is already complete")));
        }
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(self.seg_path(id)).await?;
        Ok(Writer {
            staging: self.clone(),
            id,
            key,
            length,
            compress,
            file,
            start_len: received.seg_len,
            segments: received.segments,
            written: received.seg_len,
            tail: received.tail,
        })
    }

    /// Deletes an upload's staged bytes.
    pub async fn remove(&self, id: Uuid) {
        for p in [
            self.seg_path(id),
            self.tail_path(id),
            self.tail_path(id).with_extension("tmp"),
            self.final_path(id),
        ] {
            let _ = tokio::fs::remove_file(p).await;
        }
    }

    /// Seals the tail as the final segment: the segments file is then the complete sealed file.
    pub async fn finalize(
        &self,
        id: Uuid,
        key: Arc<Key>,
        length: u64,
        compress: Option<i32>,
    ) -> Result<Vec<u64>, StagingError> {
        if !tokio::fs::try_exists(self.final_path(id)).await? {
            let mut w = self.writer(id, key, length, compress).await?;
            if w.offset() != length {
                return Err(StagingError::Io(std::io::Error::other("upload is not complete")));
            }
            if !w.tail.is_empty() {
                let plain = std::mem::take(&mut w.tail);
                w.seal_and_append(plain, true).await?;
            }
            w.file.sync_all().await?;
            // From here on the segments file is the complete sealed file.
            tokio::fs::File::create(self.final_path(id)).await?.sync_all().await?;
            sync_dir(&self.dir).await?;
            let _ = tokio::fs::remove_file(self.tail_path(id)).await;
        }
        // The stored lengths of all segments, for ranged reads later.
        let mut lens = Vec::new();
        let mut f = tokio::fs::File::open(self.seg_path(id)).await?;
        let total = f.metadata().await?.len();
        let mut pos = 0u64;
        let mut prefix = [0u8; 4];
        while pos < total {
            f.seek(std::io::SeekFrom::Start(pos)).await?;
            f.read_exact(&mut prefix).await?;
            let len = 4 + u64::from(u32::from_be_bytes(prefix));
            lens.push(len);
            pos += len;
        }
        Ok(lens)
    }
}

/// Appends one request's bytes to an upload; nothing counts until [`Writer::commit`].
pub struct Writer {
    staging: Staging,
    id: Uuid,
    key: Arc<Key>,
    length: u64,
    compress: Option<i32>,
    file: tokio::fs::File,
    start_len: u64,
    segments: u64,
    written: u64,
    tail: Vec<u8>,
}

impl Writer {
    /// Bytes received, including this request's so far.
    pub fn offset(&self) -> u64 {
        self.segments * SEGMENT_SIZE as u64 + self.tail.len() as u64
    }

    /// The bytes of the incomplete segment (the head of the file while it is small).
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Sets compression for the segments sealed from now on.
    pub fn set_compression(&mut self, level: Option<i32>) {
        self.compress = level;
    }

    async fn seal_and_append(&mut self, plain: Vec<u8>, last: bool) -> Result<(), StagingError> {
        let key = self.key.clone();
        let file_id = *self.id.as_bytes();
        let index = self.segments;
        let level = self.compress;
        // Sealing a segment is a few milliseconds of CPU: off the event loop.
        let sealed = tokio::task::spawn_blocking(move || {
            crypto::seal_segment(&key, &file_id, index, last, &plain, level)
        })
        .await
        .map_err(|_| StagingError::Join)??;
        self.file.write_all(&sealed).await?;
        self.written += sealed.len() as u64;
        self.segments += 1;
        Ok(())
    }

    /// Adds bytes; full segments are sealed and appended as they fill.
    pub async fn push(&mut self, mut data: &[u8]) -> Result<(), StagingError> {
        while !data.is_empty() {
            let room = SEGMENT_SIZE - self.tail.len();
            let take = room.min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() == SEGMENT_SIZE {
                let full = std::mem::replace(&mut self.tail, Vec::with_capacity(SEGMENT_SIZE));
                let end = (self.segments + 1) * SEGMENT_SIZE as u64;
                self.seal_and_append(full, end == self.length).await?;
            }
        }
        Ok(())
    }

    /// Makes this request's bytes durable: the segments, then the tail (atomically).
    pub async fn commit(mut self) -> Result<u64, StagingError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let file_id = *self.id.as_bytes();
        let tail_path = self.staging.tail_path(self.id);
        let tmp = tail_path.with_extension("tmp");
        let sealed = self.key.seal(&self.tail, &tail_aad(&file_id, self.segments));
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(&sealed).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &tail_path).await?;
        sync_dir(&self.staging.dir).await?;
        Ok(self.offset())
    }

    /// Discards this request's bytes (a checksum mismatch, a refusal).
    pub async fn rollback(self) -> Result<(), StagingError> {
        if self.written != self.start_len {
            self.file.set_len(self.start_len).await?;
            self.file.sync_all().await?;
        }
        Ok(())
    }
}
