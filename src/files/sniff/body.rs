//! The end rules: whether a file of a known type is complete. Most formats say so in their last
//! bytes (the tail); JPEG, ISO-BMFF and Ogg can only be followed segment by segment, which the
//! walkers here do in constant memory.
//!
//! Decisions:
//! - JPEG: complete when the top-level end-of-image marker (FF D9) is reached, walking segments
//!   by their lengths so an EXIF thumbnail's own FF D9 does not count. Bytes after it are
//!   accepted: Android motion photos append their video there, and a few tools pad with zeros.
//! - PNG: the file must end with the IEND chunk (nothing after it).
//! - HEIC / MP4: the file must end on a top-level box boundary (or inside a box of size 0,
//!   which runs to the end of the file).
//! - Ogg: the file must end on a page boundary.
//! - WAV: the RIFF size must not promise more bytes than the file has (`0xFFFFFFFF`, written by
//!   streaming recorders that never go back, is accepted).
//! - PDF: `%%EOF` within its last 1024 bytes (as Acrobat requires).
//! - ASCII STL: its last line starts with `endsolid`.
//! - WebM and binary PLY carry no end marker (MediaRecorder writes WebM with unknown sizes):
//!   nothing to check. A binary STL's size rule already proved its length.
//! - Text formats (ASCII STL, OBJ, ASCII PLY) must hold no NUL byte anywhere, which also refuses
//!   a text head glued onto a binary payload.

use memchr::memmem;

use super::{FileType, Refusal, head};

const IEND_CHUNK: &[u8] = b"\0\0\0\0IEND\xAE\x42\x60\x82";
const PDF_EOF_WINDOW: usize = 1024;

/// The largest header a framed walker collects: an Ogg page header with 255 lacing values.
const MAX_FRAME_HEADER: usize = 27 + 255;

/// The structure walked past the head, chosen by the head's verdict.
pub(super) enum Body {
    Nothing,
    Text {
        nul: bool,
    },
    Jpeg(Jpeg),
    /// Boxed: its header buffer would make every other variant as large.
    Framed(Box<Framed>),
}

impl Body {
    pub(super) fn for_type(file_type: FileType, head: &[u8], size: u64) -> Self {
        match file_type {
            FileType::StlAscii | FileType::Obj => Self::Text { nul: false },
            FileType::Ply if head::ply_header(head, size) == Ok(true) => Self::Text { nul: false },
            FileType::Jpeg => Self::Jpeg(Jpeg::default()),
            FileType::Heic | FileType::Mp4Audio => Self::Framed(Box::new(Framed::new(iso_box))),
            FileType::Ogg => Self::Framed(Box::new(Framed::new(ogg_page))),
            _ => Self::Nothing,
        }
    }

    pub(super) fn feed(&mut self, data: &[u8]) {
        match self {
            Self::Nothing => {}
            Self::Text { nul } => *nul = *nul || memchr::memchr(0, data).is_some(),
            Self::Jpeg(jpeg) => jpeg.feed(data),
            Self::Framed(framed) => framed.feed(data),
        }
    }

    pub(super) fn retained_bytes(&self) -> usize {
        match self {
            Self::Framed(_) => MAX_FRAME_HEADER,
            _ => 0,
        }
    }
}

/// Whether the file of type `file_type`, whose head, tail and walker are given, is complete.
pub(super) fn check_end(
    file_type: FileType,
    body: &Body,
    head: &[u8],
    tail: &[u8],
    size: u64,
) -> Result<(), Refusal> {
    let label = file_type.label();
    let incomplete = |why: &str| Err(Refusal::new(format!("the {label} file is incomplete: {why}")));
    match body {
        Body::Text { nul: true } => {
            return Err(Refusal::new(format!("the {label} file is not text: it holds NUL bytes")));
        }
        Body::Jpeg(jpeg) if !jpeg.complete() => return incomplete("it ends before its end-of-image marker"),
        Body::Framed(framed) => {
            if let Err(why) = framed.complete() {
                return incomplete(why);
            }
        }
        _ => {}
    }
    match file_type {
        FileType::StlAscii if !ends_with_endsolid(tail) => incomplete("it does not end with `endsolid`"),
        FileType::Png if !tail.ends_with(IEND_CHUNK) => incomplete("it does not end with an IEND chunk"),
        FileType::Pdf => {
            let window = &tail[tail.len().saturating_sub(PDF_EOF_WINDOW)..];
            if memmem::find(window, b"%%EOF").is_some() { Ok(()) } else { incomplete("no %%EOF at its end") }
        }
        FileType::Wav => {
            let riff = head.get(4..8).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            // A writer may count the pad byte of an odd-sized last chunk yet leave it out.
            if riff != u32::MAX && u64::from(riff) + 8 > size + 1 {
                incomplete(&format!("its header announces {} bytes", u64::from(riff) + 8))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The last line, once trailing whitespace is gone, is `endsolid` or `endsolid <name>`.
fn ends_with_endsolid(tail: &[u8]) -> bool {
    let end = tail.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let text = &tail[..end];
    let start = text.iter().rposition(|&b| b == b'\n' || b == b'\r').map_or(0, |i| i + 1);
    let line = &text[start..];
    let line = &line[line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len())..];
    line.len() >= 8
        && line[..8].eq_ignore_ascii_case(b"endsolid")
        && line.get(8).is_none_or(|b| b.is_ascii_whitespace())
}

/// Walks JPEG markers: segments are skipped by their length, entropy-coded data is scanned for
/// the next marker (FF followed by anything but 00 or a restart marker). Lenient like libjpeg
/// about stray bytes between segments; only "never reached EOI" counts as incomplete.
#[derive(Default)]
pub(super) struct Jpeg {
    state: JpegState,
}

#[derive(Default, Clone, Copy)]
enum JpegState {
    /// Expecting the SOI marker's FF (0) or D8 (1).
    #[default]
    Soi0,
    Soi1,
    /// Between segments, looking for FF.
    Marker,
    /// After FF, the marker code.
    Code,
    /// The two length bytes of a segment (`hi` once the first arrived).
    Length {
        marker: u8,
        hi: Option<u8>,
    },
    /// Inside a segment's payload.
    Segment {
        left: u16,
        then_entropy: bool,
    },
    /// Entropy-coded data after SOS.
    Entropy,
    /// FF inside entropy-coded data.
    EntropyFf,
    /// The top-level EOI was reached; the rest is trailer.
    End,
    Broken,
}

impl Jpeg {
    fn feed(&mut self, mut data: &[u8]) {
        use JpegState::*;
        while let Some(&byte) = data.first() {
            self.state = match self.state {
                End | Broken => return,
                Segment { left, then_entropy } => {
                    let n = usize::from(left).min(data.len());
                    data = &data[n..];
                    // n ≤ left, so it fits in a u16.
                    let left = left - n as u16;
                    match (left, then_entropy) {
                        (0, true) => Entropy,
                        (0, false) => Marker,
                        _ => Segment { left, then_entropy },
                    }
                }
                Marker | Entropy => match memchr::memchr(0xFF, data) {
                    Some(i) => {
                        data = &data[i + 1..];
                        if matches!(self.state, Marker) { Code } else { EntropyFf }
                    }
                    None => return,
                },
                state => {
                    data = &data[1..];
                    Self::step(state, byte)
                }
            };
        }
    }

    fn step(state: JpegState, byte: u8) -> JpegState {
        use JpegState::*;
        match (state, byte) {
            (Soi0, 0xFF) => Soi1,
            (Soi1, 0xD8) => Marker,
            (Soi0 | Soi1, _) => Broken,
            (Code | EntropyFf, 0xFF) => state,
            (Code | EntropyFf, 0xD9) => End,
            // Stuffed zero, restart markers: still inside entropy-coded data.
            (EntropyFf, 0x00 | 0xD0..=0xD7) => Entropy,
            // Standalone markers (TEM, RSTn, a stray SOI) or a stray FF 00: no payload.
            (Code, 0x00 | 0x01 | 0xD0..=0xD8) => Marker,
            (Code | EntropyFf, marker) => Length { marker, hi: None },
            (Length { marker, hi: None }, byte) => Length { marker, hi: Some(byte) },
            (Length { marker, hi: Some(hi) }, lo) => match u16::from_be_bytes([hi, lo]) {
                0 | 1 => Broken,
                2 if marker == 0xDA => Entropy,
                2 => Marker,
                length => Segment { left: length - 2, then_entropy: marker == 0xDA },
            },
            (other, _) => other,
        }
    }

    fn complete(&self) -> bool {
        matches!(self.state, JpegState::End)
    }
}

/// One step of a length-prefixed structure, from the header bytes collected so far.
pub(super) enum Frame {
    /// The header needs this many bytes in all (more than it has).
    Need(usize),
    /// The header is complete; this many payload bytes follow.
    Body(u64),
    /// The frame runs to the end of the file.
    Open,
    Bad(&'static str),
}

/// Walks a sequence of length-prefixed frames (ISO-BMFF boxes, Ogg pages), skipping payloads.
pub(super) struct Framed {
    parse: fn(&[u8]) -> Frame,
    header: [u8; MAX_FRAME_HEADER],
    have: usize,
    skip: u64,
    open: bool,
    bad: Option<&'static str>,
}

impl Framed {
    fn new(parse: fn(&[u8]) -> Frame) -> Self {
        Self { parse, header: [0; MAX_FRAME_HEADER], have: 0, skip: 0, open: false, bad: None }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.open && self.bad.is_none() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            match (self.parse)(&self.header[..self.have]) {
                Frame::Need(n) if n > self.have && n <= MAX_FRAME_HEADER => {
                    let take = (n - self.have).min(data.len());
                    self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                    self.have += take;
                    data = &data[take..];
                }
                Frame::Need(_) => self.bad = Some("a header is malformed"),
                Frame::Body(len) => {
                    self.skip = len;
                    self.have = 0;
                }
                Frame::Open => self.open = true,
                Frame::Bad(why) => self.bad = Some(why),
            }
        }
    }

    fn complete(&self) -> Result<(), &'static str> {
        if let Some(why) = self.bad {
            return Err(why);
        }
        if self.open || (self.skip == 0 && self.have == 0) {
            return Ok(());
        }
        match (self.parse)(&self.header[..self.have]) {
            _ if self.skip > 0 => Err("it ends inside a frame"),
            Frame::Body(0) | Frame::Open => Ok(()),
            Frame::Bad(why) => Err(why),
            Frame::Need(_) | Frame::Body(_) => Err("it ends inside a frame"),
        }
    }
}

/// An ISO-BMFF box header: 32-bit size (0: to the end, 1: a 64-bit size follows) and type.
fn iso_box(header: &[u8]) -> Frame {
    let Some(size) = header.get(0..4) else { return Frame::Need(8) };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    match size {
        _ if header.len() < 8 => Frame::Need(8),
        0 => Frame::Open,
        1 => match header.get(8..16) {
            None => Frame::Need(16),
            Some(large) => {
                let large = u64::from_be_bytes([
                    large[0], large[1], large[2], large[3], large[4], large[5], large[6], large[7],
                ]);
                if large < 16 {
                    Frame::Bad("a box is smaller than its header")
                } else {
                    Frame::Body(large - 16)
                }
            }
        },
        2..8 => Frame::Bad("a box is smaller than its header"),
        size => Frame::Body(u64::from(size) - 8),
    }
}

/// An Ogg page header: `OggS`, version 0, …, the segment count at 26, then the lacing values,
/// whose sum is the payload's length.
fn ogg_page(header: &[u8]) -> Frame {
    if header.len() < 27 {
        return Frame::Need(27);
    }
    if !header.starts_with(b"OggS") || header[4] != 0 {
        return Frame::Bad("a page does not start with OggS");
    }
    let lacing = 27 + usize::from(header[26]);
    match header.get(27..lacing) {
        None => Frame::Need(lacing),
        Some(values) => Frame::Body(values.iter().map(|&v| u64::from(v)).sum()),
    }
}
