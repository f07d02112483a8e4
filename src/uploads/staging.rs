//! Where an upload's bytes wait until it is complete: already sealed, in the data dir.
//!
//! `<id>.seg` holds the complete segments (sealed, length-prefixed, appended as they fill) and
//! `<id>.tail` the last incomplete segment, sealed as a whole and replaced atomically after each
//! request. The files are the truth about how much was received: the offset is always recomputed
//! from them, so a crash at any point loses at most the request in progress.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use super::digest::ContentDigest;
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

    /// A writer that appends to an upload from what it has received. `digest` is the upload's
    /// content digest kept from its earlier requests; it is used only if it covers exactly the
    /// segments received (from the start, a fresh one is made).
    pub async fn writer(
        &self,
        id: Uuid,
        key: Arc<Key>,
        length: u64,
        compress: Option<i32>,
        digest: Option<ContentDigest>,
    ) -> Result<Writer, StagingError> {
        let received = self.received(id, &key, length).await?;
        if received.finalized {
            return Err(StagingError::Io(std::io::Error::other("the upload is already complete")));
        }
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(self.seg_path(id)).await?;
        let digest = match digest {
            Some(d) if d.segments() == received.segments => Some(d),
            _ if received.segments == 0 => Some(ContentDigest::new(length)),
            _ => None,
        };
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
            digest,
            digesting: None,
            sealing: VecDeque::new(),
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
    /// Answers the stored length of every segment, and the digest of the whole content when
    /// `digest` covered everything before the tail.
    pub async fn finalize(
        &self,
        id: Uuid,
        key: Arc<Key>,
        length: u64,
        compress: Option<i32>,
        digest: Option<ContentDigest>,
    ) -> Result<(Vec<u64>, Option<ContentDigest>), StagingError> {
        let mut digest = digest;
        if !tokio::fs::try_exists(self.final_path(id)).await? {
            let mut w = self.writer(id, key, length, compress, digest).await?;
            if w.offset() != length {
                return Err(StagingError::Io(std::io::Error::other("upload is not complete")));
            }
            if !w.tail.is_empty() {
                let plain = std::mem::take(&mut w.tail);
                w.seal(plain, true).await?;
            }
            w.finish_sealing().await?;
            digest = w.digest.take();
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
        Ok((lens, digest))
    }
}

/// A segment being (compressed and) sealed on a blocking thread.
struct Sealing {
    task: tokio::task::JoinHandle<Result<Vec<u8>, crypto::CryptoError>>,
    compressed: bool,
}
/// The content digest, once it absorbed the segments handed over so far.
type Digesting = tokio::sync::oneshot::Receiver<Option<ContentDigest>>;

/// Segments compressed at once (on as many blocking threads).
const COMPRESSING: usize = 2;
/// Segments handed over and not yet written, beyond the one arriving.
const SEALING_AHEAD: usize = 8;

/// Appends one request's bytes to an upload; nothing counts until [`Writer::commit`].
///
/// Sealing a segment takes milliseconds of CPU: up to [`SEALING_AHEAD`] segments are sealed at
/// once on blocking threads while the next one arrives, and written in order. Each task then
/// hands the content digest on to the next in segment order (the digest absorbs its segment in
/// between), so memory stays at a few segments whatever the file's size.
///
/// Compression never holds an upload back: a segment that fills while [`COMPRESSING`]
/// segments are still being compressed is sealed as it is (each segment says whether it is
/// compressed). Over a clinic's uplink the compressors are never busy and everything
/// compressible is compressed; only a sender faster than zstd (a loopback benchmark, a fast
/// LAN) gets some segments stored uncompressed.
pub struct Writer {
    staging: Staging,
    id: Uuid,
    key: Arc<Key>,
    length: u64,
    compress: Option<i32>,
    file: tokio::fs::File,
    start_len: u64,
    /// Segments sealed and written.
    segments: u64,
    written: u64,
    tail: Vec<u8>,
    /// The content digest, while no segment is being absorbed.
    digest: Option<ContentDigest>,
    digesting: Option<Digesting>,
    sealing: VecDeque<Sealing>,
}

impl Writer {
    /// Bytes received, including this request's so far.
    pub fn offset(&self) -> u64 {
        let sealed = self.segments + self.sealing.len() as u64;
        sealed * SEGMENT_SIZE as u64 + self.tail.len() as u64
    }

    /// The bytes of the incomplete segment (the head of the file while it is small).
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Sets compression for the segments sealed from now on.
    pub fn set_compression(&mut self, level: Option<i32>) {
        self.compress = level;
    }

    /// Waits for the oldest segment being sealed and appends it.
    async fn write_next(&mut self) -> Result<(), StagingError> {
        let Some(sealing) = self.sealing.pop_front() else { return Ok(()) };
        let sealed = sealing.task.await.map_err(|_| StagingError::Join)??;
        self.file.write_all(&sealed).await?;
        self.written += sealed.len() as u64;
        self.segments += 1;
        Ok(())
    }

    /// Appends every segment handed over, and takes back the digest.
    async fn finish_sealing(&mut self) -> Result<(), StagingError> {
        while !self.sealing.is_empty() {
            self.write_next().await?;
        }
        if let Some(next) = self.digesting.take() {
            self.digest = next.await.ok().flatten();
        }
        Ok(())
    }

    /// Hands a full segment (or the last one) over to be sealed and absorbed.
    async fn seal(&mut self, plain: Vec<u8>, last: bool) -> Result<(), StagingError> {
        while self.sealing.len() >= SEALING_AHEAD {
            self.write_next().await?;
        }
        let busy = self.sealing.iter().filter(|s| s.compressed && !s.task.is_finished()).count();
        let level = self.compress.filter(|_| busy < COMPRESSING);
        let (key, file_id) = (self.key.clone(), *self.id.as_bytes());
        let index = self.segments + self.sealing.len() as u64;
        // The digest comes from the previous segment's task (or is here), goes to the next one.
        let from_previous = self.digesting.take();
        let here = self.digest.take();
        let (to_next, next) = tokio::sync::oneshot::channel();
        self.digesting = Some(next);
        let compressed = level.is_some();
        let task = tokio::task::spawn_blocking(move || {
            let sealed = crypto::seal_segment(&key, &file_id, index, last, &plain, level);
            let digest = match from_previous {
                Some(rx) => rx.blocking_recv().ok().flatten(),
                None => here,
            };
            let _ = to_next.send(digest.map(|mut d| {
                d.absorb(&plain);
                d
            }));
            sealed
        });
        self.sealing.push_back(Sealing { task, compressed });
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
                let index = self.segments + self.sealing.len() as u64;
                let end = (index + 1) * SEGMENT_SIZE as u64;
                self.seal(full, end == self.length).await?;
            }
        }
        Ok(())
    }

    /// Makes this request's bytes durable: the segments, then the tail (atomically). Answers the
    /// new offset and the content digest to keep for the upload's next request.
    pub async fn commit(mut self) -> Result<(u64, Option<ContentDigest>), StagingError> {
        self.finish_sealing().await?;
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
        Ok((self.offset(), self.digest.take()))
    }

    /// Discards this request's bytes (a checksum mismatch, a refusal). The content digest goes
    /// too: it has seen them.
    pub async fn rollback(mut self) -> Result<(), StagingError> {
        for sealing in self.sealing.drain(..) {
            let _ = sealing.task.await;
        }
        if self.written != self.start_len {
            self.file.set_len(self.start_len).await?;
            self.file.sync_all().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn ascii_stl(min_len: usize) -> Vec<u8> {
        let mut f = b"solid scan\n".to_vec();
        let mut i = 0u64;
        while f.len() < min_len {
            let facet = format!(
                "facet normal 0 0 1\n outer loop\n  vertex {i} 0 0\n  vertex {i} 1 0\n  vertex 0 {i} 1\n endloop\nendfacet\n"
            );
            f.extend_from_slice(facet.as_bytes());
            i += 1;
        }
        f.extend_from_slice(b"endsolid scan\n");
        f
    }

    async fn read_back(staging: &Staging, id: Uuid, key: &Key, lens: &[u64]) -> Vec<u8> {
        let sealed = tokio::fs::read(staging.seg_path(id)).await.expect("segments");
        let (mut at, mut out) = (0usize, Vec::new());
        for (i, len) in lens.iter().enumerate() {
            let seg = &sealed[at..at + *len as usize];
            out.extend(
                crypto::open_segment(key, id.as_bytes(), i as u64, i + 1 == lens.len(), seg).expect("open"),
            );
            at += *len as usize;
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_segments_and_the_digest_survive_requests_and_a_discarded_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = Staging::new(dir.path().to_path_buf()).expect("staging");
        let (id, key) = (Uuid::new_v4(), Arc::new(Key::generate()));
        let data = ascii_stl(9 * SEGMENT_SIZE + 12_345);
        let len = data.len() as u64;
        // First request: 4.5 segments, compressed (some may be stored as they are: the
        // compressors are kept busy by a sender this fast).
        let mut w = staging.writer(id, key.clone(), len, Some(3), None).await.expect("writer");
        w.push(&data[..4 * SEGMENT_SIZE + SEGMENT_SIZE / 2]).await.expect("push");
        let (offset, digest) = w.commit().await.expect("commit");
        assert_eq!(offset, 4 * SEGMENT_SIZE as u64 + SEGMENT_SIZE as u64 / 2);
        assert_eq!(digest.as_ref().map(ContentDigest::segments), Some(4));
        // A second request is discarded: its bytes and the digest that saw them go.
        let mut w = staging.writer(id, key.clone(), len, Some(3), digest).await.expect("writer");
        w.push(&data[offset as usize..offset as usize + 3 * SEGMENT_SIZE]).await.expect("push");
        w.rollback().await.expect("rollback");
        let w = staging.writer(id, key.clone(), len, Some(3), None).await.expect("writer");
        assert_eq!(w.offset(), offset, "the discarded request left nothing");
        assert!(w.digest.is_none(), "no digest covers the first segments any more");
        drop(w);
        // The rest, in one request, from a fresh writer without the digest: completion will
        // have to read the file back, and what it reads is the file.
        let mut w = staging.writer(id, key.clone(), len, Some(3), None).await.expect("writer");
        w.push(&data[offset as usize..]).await.expect("push");
        let (offset, digest) = w.commit().await.expect("commit");
        assert_eq!((offset, digest.is_none()), (len, true));
        let (lens, _) = staging.finalize(id, key.clone(), len, Some(3), None).await.expect("finalize");
        assert_eq!(lens.len(), 10);
        assert_eq!(read_back(&staging, id, &key, &lens).await, data);
        assert!(lens.iter().sum::<u64>() < len, "compressible segments were compressed");

        // An upload whose digest follows every request covers the whole file at the end.
        let id = Uuid::new_v4();
        let mut digest = None;
        for part in data.chunks(3 * SEGMENT_SIZE + 1000) {
            let mut w = staging.writer(id, key.clone(), len, Some(3), digest).await.expect("writer");
            w.push(part).await.expect("push");
            digest = w.commit().await.expect("commit").1;
        }
        let (lens, digest) = staging.finalize(id, key.clone(), len, Some(3), digest).await.expect("finalize");
        let digest = digest.expect("digest");
        assert_eq!(digest.segments(), lens.len() as u64);
        let v = digest.finish();
        assert_eq!(v.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(v.file_type.map(|t| t.mime()), Ok("model/stl"));
        assert_eq!(read_back(&staging, id, &key, &lens).await, data);
    }
}
