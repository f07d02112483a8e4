//! What a file is, decided from its bytes — never from its name or declared type.
//!
//! A [`Sniffer`] is fed the upload in order, in chunks of any size, and keeps only the first
//! [`HEAD_LEN`] bytes, the last [`TAIL_LEN`] bytes, a few counters and, for formats whose end can
//! only be found by walking their structure (JPEG segments, ISO-BMFF boxes, Ogg pages), a
//! walker with a header buffer of a few hundred bytes. Memory is therefore flat however large the
//! file.
//!
//! The head decides the type ([`head`]); the tail and the walkers decide whether the file is
//! complete ([`body`]). Executables, scripts and ZIP archives are refused by their magic bytes
//! before any other rule, so a renamed executable is refused at its first bytes.

mod body;
mod head;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use articula_protocol::{ErrorCode, FileKind};

use body::Body;

/// How many leading bytes are kept: every header rule (PLY's `end_header`, OBJ's statements, the
/// ISO-BMFF `ftyp` box, WebM's EBML header) must be satisfied within them.
pub const HEAD_LEN: usize = 8 * 1024;
/// How many trailing bytes are kept: end markers (`%%EOF`, `endsolid`, `IEND`) must lie within them.
pub const TAIL_LEN: usize = 4 * 1024;

/// An accepted file type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum FileType {
    /// Binary STL (80-byte header, triangle count, 50 bytes per triangle).
    StlBinary,
    /// ASCII STL (`solid` … `endsolid`).
    StlAscii,
    /// PLY, ASCII or binary.
    Ply,
    /// Wavefront OBJ.
    Obj,
    /// JPEG photo.
    Jpeg,
    /// PNG image.
    Png,
    /// HEIC/HEIF photo (ISO-BMFF).
    Heic,
    /// PDF document.
    Pdf,
    /// WAV (RIFF/WAVE) audio.
    Wav,
    /// Ogg audio (Opus, Vorbis, FLAC or Speex).
    Ogg,
    /// WebM audio (a browser's MediaRecorder).
    WebmAudio,
    /// MP4/M4A audio (ISO-BMFF).
    Mp4Audio,
}

impl FileType {
    /// The snake_case name (`stl_binary`, `jpeg`…), for records and logs.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::StlBinary => "binary STL",
            Self::StlAscii => "ASCII STL",
            Self::Ply => "PLY",
            Self::Obj => "OBJ",
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Heic => "HEIC",
            Self::Pdf => "PDF",
            Self::Wav => "WAV",
            Self::Ogg => "Ogg",
            Self::WebmAudio => "WebM audio",
            Self::Mp4Audio => "MP4 audio",
        }
    }

    /// The `Content-Type` downloads are served with.
    ///
    /// STL and OBJ have registered types (`model/stl`, `model/obj`). PLY has none; `model/ply`
    /// keeps it with its registered siblings and is what 3D tooling uses. No browser renders a
    /// `model/*` type itself and three.js loaders fetch an `ArrayBuffer` whatever the type, so the
    /// choice only has to be consistent — and, with `nosniff`, it can never be taken for script.
    pub fn mime(self) -> &'static str {
        match self {
            Self::StlBinary | Self::StlAscii => "model/stl",
            Self::Ply => "model/ply",
            Self::Obj => "model/obj",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Heic => "image/heic",
            Self::Pdf => "application/pdf",
            Self::Wav => "audio/wav",
            Self::Ogg => "audio/ogg",
            Self::WebmAudio => "audio/webm",
            Self::Mp4Audio => "audio/mp4",
        }
    }

    /// Whether compressing before encryption pays: meshes and PDFs do; photos and audio are
    /// already compressed.
    pub fn compressible(self) -> bool {
        matches!(self, Self::StlBinary | Self::StlAscii | Self::Ply | Self::Obj | Self::Pdf)
    }

    /// Whether a file of this type may be uploaded as `kind`.
    pub fn fits(self, kind: FileKind) -> bool {
        match kind {
            FileKind::Scan | FileKind::Design => {
                matches!(self, Self::StlBinary | Self::StlAscii | Self::Ply | Self::Obj)
            }
            FileKind::Photo => matches!(self, Self::Jpeg | Self::Png | Self::Heic),
            FileKind::VoiceNote => matches!(self, Self::Wav | Self::Ogg | Self::WebmAudio | Self::Mp4Audio),
            FileKind::Document => matches!(self, Self::Pdf | Self::Jpeg | Self::Png),
        }
    }
}

/// The types a kind accepts, for messages ("a scan must be STL, PLY or OBJ").
pub fn accepted_for(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Scan | FileKind::Design => "STL, PLY or OBJ",
        FileKind::Photo => "JPEG, PNG or HEIC",
        FileKind::VoiceNote => "WAV, Ogg, WebM or MP4 audio",
        FileKind::Document => "PDF, JPEG or PNG",
    }
}

/// Why a file was refused; always answered as [`ErrorCode::InvalidFileType`]. The message says
/// what was found, never anything about the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// A human explanation (safe to show).
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    fn empty() -> Self {
        Self::new("the file is empty")
    }

    /// The error code it is answered with.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidFileType
    }
}

impl From<Refusal> for crate::error::ApiError {
    fn from(r: Refusal) -> Self {
        Self::new(ErrorCode::InvalidFileType, r.message)
    }
}

/// Decides a file's type while it streams through. See the module documentation.
pub struct Sniffer {
    /// The declared length (tus `Upload-Length`).
    size: u64,
    received: u64,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    /// Decided once the head is complete (or the whole file, if shorter, has arrived).
    verdict: Option<Result<FileType, Refusal>>,
    body: Body,
}

impl Sniffer {
    /// A sniffer for an upload of `total_size` bytes (known up front with tus).
    pub fn new(total_size: u64) -> Self {
        let cap = |limit: usize| usize::try_from(total_size).map_or(limit, |size| size.min(limit));
        Self {
            size: total_size,
            received: 0,
            head: Vec::with_capacity(cap(HEAD_LEN)),
            tail: VecDeque::with_capacity(cap(TAIL_LEN)),
            verdict: (total_size == 0).then(|| Err(Refusal::empty())),
            body: Body::Nothing,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.received = self.received.saturating_add(chunk.len() as u64);
        self.push_tail(chunk);
        let into_head = HEAD_LEN.saturating_sub(self.head.len()).min(chunk.len());
        let (into_head, rest) = chunk.split_at(into_head);
        self.head.extend_from_slice(into_head);
        if self.verdict.is_some() {
            self.body.feed(chunk);
        } else if self.head.len() == HEAD_LEN || self.received >= self.size {
            let verdict = head::classify(&self.head, self.size);
            if let Ok(file_type) = verdict {
                // The walker starts now, so it replays the head it could not see before.
                self.body = Body::for_type(file_type, &self.head, self.size);
                self.body.feed(&self.head);
                self.body.feed(rest);
            }
            self.verdict = Some(verdict);
        }
    }

    /// The verdict from the head, as soon as it can be given: executables at their first bytes,
    /// everything else once [`HEAD_LEN`] bytes (or the whole, shorter file) arrived. `None`: not
    /// decided yet. `Some(Err)` is final — [`finish`](Self::finish) refuses too; `Some(Ok(t))`
    /// means the file is a `t` unless its end shows it incomplete.
    pub fn early(&self) -> Option<Result<FileType, Refusal>> {
        match &self.verdict {
            Some(verdict) => Some(verdict.clone()),
            None => head::executable(&self.head).map(Err),
        }
    }

    /// The final verdict, once every byte arrived.
    pub fn finish(mut self) -> Result<FileType, Refusal> {
        if self.received == 0 {
            return Err(Refusal::empty());
        }
        if self.received != self.size {
            return Err(Refusal::new(format!(
                "the upload is incomplete: {} bytes arrived, {} were declared",
                self.received, self.size
            )));
        }
        let verdict = match self.verdict.take() {
            Some(verdict) => verdict,
            None => head::classify(&self.head, self.size),
        };
        let file_type = verdict?;
        let tail = self.tail.make_contiguous();
        body::check_end(file_type, &self.body, &self.head, tail, self.size)?;
        Ok(file_type)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The memory held for the file's content (head, tail, walker buffers): bounded by a few
    /// KiB whatever the file's size.
    pub fn retained_bytes(&self) -> usize {
        self.head.capacity() + self.tail.capacity() + self.body.retained_bytes()
    }

    fn push_tail(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(TAIL_LEN)..];
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(TAIL_LEN);
        self.tail.drain(..overflow);
        self.tail.extend(chunk);
    }
}

impl std::fmt::Debug for Sniffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sniffer")
            .field("size", &self.size)
            .field("received", &self.received)
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}
