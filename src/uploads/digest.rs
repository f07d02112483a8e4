//! What the server learns of an upload's content while its segments are sealed: the SHA-256,
//! the type check and the EICAR check, fed with each segment's plaintext in order, on the
//! blocking thread that seals it.
//!
//! Kept in memory between an upload's requests, so that completing it needs no second pass
//! over the whole file (reading back, decrypting and decompressing a 1 GiB scan costs more
//! than receiving it). What is not known this way is found the old way: after a server restart,
//! after a request whose bytes were discarded, or when clamd must see the whole file, completion
//! reads the file back (`complete.rs`).

use sha2::{Digest, Sha256};

use crate::files::scan::EicarCheck;
use crate::files::sniff::{FileType, Refusal, Sniffer};

/// The content checks of an upload, over its first `segments` sealed segments.
pub struct ContentDigest {
    sha: Sha256,
    sniffer: Sniffer,
    eicar: EicarCheck,
    segments: u64,
}

/// The checks' results once every byte went through.
pub struct Verdicts {
    /// SHA-256, hex.
    pub sha256: String,
    /// The type, or why the content is refused.
    pub file_type: Result<FileType, Refusal>,
    /// Whether the file is the EICAR test file.
    pub eicar: bool,
}

impl ContentDigest {
    /// Checks for an upload of `length` bytes, from its first byte.
    pub fn new(length: u64) -> Self {
        Self { sha: Sha256::new(), sniffer: Sniffer::new(length), eicar: EicarCheck::default(), segments: 0 }
    }

    /// Segments absorbed so far.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Absorbs the next segment's plaintext.
    pub fn absorb(&mut self, plain: &[u8]) {
        self.sha.update(plain);
        self.sniffer.update(plain);
        self.eicar.update(plain);
        self.segments += 1;
    }

    /// The verdicts (every segment absorbed).
    pub fn finish(self) -> Verdicts {
        Verdicts {
            sha256: hex::encode(self.sha.finalize()),
            file_type: self.sniffer.finish(),
            eicar: self.eicar.matches(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_by_segment_is_the_whole_file() {
        let mut file = b"solid cube\n".to_vec();
        for _ in 0..2000 {
            file.extend_from_slice(
                b"facet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n  vertex 0 1 0\n endloop\nendfacet\n",
            );
        }
        file.extend_from_slice(b"endsolid cube\n");
        let mut d = ContentDigest::new(file.len() as u64);
        for seg in file.chunks(50_000) {
            d.absorb(seg);
        }
        assert_eq!(d.segments(), file.len().div_ceil(50_000) as u64);
        let v = d.finish();
        assert_eq!(v.sha256, hex::encode(Sha256::digest(&file)));
        assert_eq!(v.file_type.map(|t| t.mime()), Ok("model/stl"));
        assert!(!v.eicar);
    }

    #[test]
    fn the_eicar_file_is_recognised() {
        let eicar = crate::files::scan::EICAR;
        let mut d = ContentDigest::new(eicar.len() as u64);
        d.absorb(eicar);
        assert!(d.finish().eicar);
    }
}
