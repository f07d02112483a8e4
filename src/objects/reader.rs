//! Reading a sealed file back, whole or by byte range, one segment at a time.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::ObjectStore;
use super::crypto::{self, Key, SEGMENT_SIZE};

/// A stored, sealed file.
#[derive(Clone)]
pub struct SealedFile {
    /// Where it is.
    pub store: Arc<dyn ObjectStore>,
    /// Its object key.
    pub object_key: String,
    /// Its data key.
    pub key: Arc<Key>,
    /// Its id (bound into every segment).
    pub file_id: [u8; 16],
    /// Stored length of each segment.
    pub segments: Vec<u64>,
    /// Plaintext size.
    pub size: u64,
}

/// Segments fetched from storage per request (S3 ranged GETs are per call).
const SEGMENTS_PER_READ: usize = 4;

impl SealedFile {
    /// The plaintext bytes `start..=end`, as a stream of chunks (at most a few segments in memory).
    pub fn range(self, start: u64, end: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        let seg = SEGMENT_SIZE as u64;
        let first = (start / seg) as usize;
        let last = (end / seg) as usize;
        let offsets: Vec<u64> = self
            .segments
            .iter()
            .scan(0u64, |acc, len| {
                let at = *acc;
                *acc += len;
                Some(at)
            })
            .collect();
        let count = self.segments.len();
        futures_util::stream::unfold(first, move |i| {
            let this = self.clone();
            let offsets = offsets.clone();
            async move {
                if i == usize::MAX || i > last || i >= count {
                    return None;
                }
                let upto = (i + SEGMENTS_PER_READ).min(last + 1).min(count);
                let res = async {
                    let from = offsets[i];
                    let len: u64 = this.segments[i..upto].iter().sum();
                    let data = this
                        .store
                        .get_range(&this.object_key, from, len)
                        .await
                        .map_err(std::io::Error::other)?;
                    let key = this.key.clone();
                    let file_id = this.file_id;
                    let lens = this.segments[i..upto].to_vec();
                    let plain = tokio::task::spawn_blocking(move || {
                        let mut out = Vec::with_capacity(lens.len() * SEGMENT_SIZE);
                        let mut pos = 0usize;
                        for (k, len) in lens.iter().enumerate() {
                            let index = (i + k) as u64;
                            let stored = &data[pos..pos + *len as usize];
                            let seg = crypto::open_segment(&key, &file_id, index, i + k == count - 1, stored)
                                .map_err(std::io::Error::other)?;
                            out.extend_from_slice(&seg);
                            pos += *len as usize;
                        }
                        Ok::<_, std::io::Error>(out)
                    })
                    .await
                    .map_err(std::io::Error::other)??;
                    // Cut the requested range out of the segments read.
                    let base = i as u64 * seg;
                    let lo = start.saturating_sub(base) as usize;
                    let hi = ((end + 1).min(base + plain.len() as u64) - base) as usize;
                    Ok(Bytes::from(plain).slice(lo.min(hi)..hi))
                }
                .await;
                // After an error the stream ends.
                let next = if res.is_ok() { upto } else { usize::MAX };
                Some((res, next))
            }
        })
    }
}
