//! The head rules: what a file is, from its first bytes (at most [`HEAD_LEN`]) and its declared
//! size. Pure functions of those two, so the early verdict and the final one cannot disagree.

use super::{FileType, HEAD_LEN, Refusal};

const BOM: &[u8] = b"\xEF\xBB\xBF";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1A\n";
const PNG_IHDR: &[u8] = b"\0\0\0\x0DIHDR";
const EBML_MAGIC: &[u8] = b"\x1A\x45\xDF\xA3";
/// Acrobat accepts `%PDF-` anywhere in the first 1024 bytes (PDF reference, implementation notes).
const PDF_HEADER_WINDOW: usize = 1024;

/// Refused by their first bytes, before any other rule: none of them is an accepted type, and a
/// binary STL's size rule must never wave one through.
const EXECUTABLES: &[(&[u8], &str)] = &[
    (b"\x7FELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\xFE\xED\xFA\xCE", "a Mach-O executable"),
    (b"\xFE\xED\xFA\xCF", "a Mach-O executable"),
    (b"\xCE\xFA\xED\xFE", "a Mach-O executable"),
    (b"\xCF\xFA\xED\xFE", "a Mach-O executable"),
    (b"\xCA\xFE\xBA\xBE", "a Mach-O universal binary or Java class"),
    (b"#!", "a script"),
    (b"PK\x03\x04", "a ZIP archive (or JAR, APK, Office document)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"\0asm", "a WebAssembly module"),
    (b"dex\n", "an Android executable"),
];

/// ISO-BMFF brands of HEIF images and image sequences.
const HEIF_BRANDS: &[&[u8; 4]] =
    &[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"];
/// Major brands of ISO-BMFF files that are neither HEIC nor audio, though they may list brands of
/// both among their compatible ones: video (`M4V `, QuickTime), AVIF, Canon raw.
const OTHER_MAJOR_BRANDS: &[&[u8; 4]] = &[b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"avif", b"avis", b"crx "];
/// ISO-BMFF brands of MP4 audio as phones and MediaRecorder write it.
const AUDIO_BRANDS: &[&[u8; 4]] =
    &[b"M4A ", b"M4B ", b"mp42", b"mp41", b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"dash"];

/// What the first packet of an Ogg audio stream starts with.
const OGG_AUDIO_CODECS: &[&[u8]] = &[b"OpusHead", b"\x01vorbis", b"\x7FFLAC", b"Speex   "];

/// The statements an OBJ file may hold (comments, geometry, grouping, materials).
const OBJ_STATEMENTS: &[&str] = &["v", "vt", "vn", "vp", "f", "l", "p", "o", "g", "s", "mtllib", "usemtl"];

/// The refusal for an executable, script or archive, as soon as its magic bytes are in `head`.
pub(super) fn executable(head: &[u8]) -> Option<Refusal> {
    EXECUTABLES.iter().find(|(magic, _)| head.starts_with(magic)).map(|(_, what)| {
        Refusal::new(format!("the file is {what}; executables, scripts and archives are not accepted"))
    })
}

/// The type the head shows, or why it is refused. `head` is the first `min(HEAD_LEN, size)`
/// bytes.
pub(super) fn classify(head: &[u8], size: u64) -> Result<FileType, Refusal> {
    if size == 0 || head.is_empty() {
        return Err(Refusal::empty());
    }
    if let Some(refusal) = executable(head) {
        return Err(refusal);
    }
    // Formats with a signature at offset 0 first: unambiguous.
    if head.starts_with(b"\xFF\xD8\xFF") {
        return Ok(FileType::Jpeg);
    }
    if head.starts_with(PNG_SIGNATURE) {
        return if head.get(8..16) == Some(PNG_IHDR) {
            Ok(FileType::Png)
        } else {
            Err(Refusal::new("the PNG file has no IHDR chunk"))
        };
    }
    if head.get(4..8) == Some(b"ftyp".as_slice()) {
        return iso_media(head);
    }
    if head.starts_with(b"RIFF") {
        return if head.get(8..12) == Some(b"WAVE".as_slice()) {
            Ok(FileType::Wav)
        } else {
            Err(Refusal::new("only WAVE audio is accepted among RIFF files (not AVI or WebP)"))
        };
    }
    if head.starts_with(b"OggS") {
        return ogg(head);
    }
    if head.starts_with(EBML_MAGIC) {
        return webm(head);
    }
    if head.starts_with(b"%PDF-") {
        return Ok(FileType::Pdf);
    }
    // A binary STL header is free text and may even start with "solid": the size rule decides.
    if binary_stl_triangles(head).is_some_and(|n| size == binary_stl_size(n)) {
        return Ok(FileType::StlBinary);
    }
    if head.starts_with(b"ply\n") || head.starts_with(b"ply\r\n") {
        return ply_header(head, size).map(|_| FileType::Ply);
    }
    let text = trim_start(head.strip_prefix(BOM).unwrap_or(head));
    if starts_with_word(text, b"solid") {
        return ascii_stl(head, size);
    }
    if is_obj(head, size) {
        return Ok(FileType::Obj);
    }
    if memchr::memmem::find(&head[..head.len().min(PDF_HEADER_WINDOW)], b"%PDF-").is_some() {
        return Ok(FileType::Pdf);
    }
    let mut message = "the file's content is not an accepted type (STL, PLY, OBJ, JPEG, PNG, HEIC, PDF, \
                       WAV, Ogg, WebM or MP4 audio)"
        .to_owned();
    if let Some(hint) = stl_size_hint(head, size) {
        message.push_str("; ");
        message.push_str(&hint);
    }
    Err(Refusal::new(message))
}

/// Whether an ASCII PLY (`Ok(true)`) or a binary one (`Ok(false)`), from its header: `ply`, one
/// `format <ascii|binary_little_endian|binary_big_endian> 1.0` line, at least one `element`, only
/// header statements, and `end_header` within the head.
pub(super) fn ply_header(head: &[u8], size: u64) -> Result<bool, Refusal> {
    let bad = |why: &str| Err(Refusal::new(format!("the PLY header is not valid: {why}")));
    let mut lines = complete_lines(head, size).split(|&b| b == b'\n').map(trim_end);
    if lines.next() != Some(b"ply") {
        return bad("it does not start with a `ply` line");
    }
    let (mut ascii, mut elements) = (None, 0);
    for line in lines {
        let mut words = words(line);
        match words.next() {
            Some(b"end_header") => {
                return match ascii {
                    None => bad("no format line"),
                    Some(_) if elements == 0 => bad("no element"),
                    Some(ascii) => Ok(ascii),
                };
            }
            Some(b"format") => {
                let format = match (words.next(), words.next(), words.next()) {
                    (Some(b"ascii"), Some(b"1.0"), None) => true,
                    (Some(b"binary_little_endian" | b"binary_big_endian"), Some(b"1.0"), None) => false,
                    _ => return bad("unknown format"),
                };
                if ascii.replace(format).is_some() {
                    return bad("two format lines");
                }
            }
            Some(b"element") => elements += 1,
            Some(b"property" | b"comment" | b"obj_info") | None => {}
            Some(_) => return bad("unknown header line"),
        }
    }
    bad(&format!("no end_header within the first {} KiB", HEAD_LEN / 1024))
}

/// The triangle count of a binary STL (u32 LE at offset 80), if at least one.
fn binary_stl_triangles(head: &[u8]) -> Option<u64> {
    let count = head.get(80..84)?;
    let n = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
    (n >= 1).then_some(u64::from(n))
}

fn binary_stl_size(triangles: u64) -> u64 {
    84 + 50 * triangles
}

/// For a file that could be a truncated (or padded) binary STL, what its size should be.
fn stl_size_hint(head: &[u8], size: u64) -> Option<String> {
    let n = binary_stl_triangles(head)?;
    let expected = binary_stl_size(n);
    (expected.abs_diff(size) <= size / 2).then(|| {
        format!("as a binary STL its {n} triangles need {expected} bytes, but it has {size} (truncated?)")
    })
}

fn ascii_stl(head: &[u8], size: u64) -> Result<FileType, Refusal> {
    if head.contains(&0) {
        let mut message = "the file starts like an ASCII STL but is not text".to_owned();
        if let Some(hint) = stl_size_hint(head, size) {
            message = format!("the binary STL's size does not match its triangle count: {hint}");
        }
        return Err(Refusal::new(message));
    }
    let (mut facet_normal, mut vertex, mut previous): (bool, bool, &[u8]) = (false, false, b"");
    for word in words(head) {
        facet_normal |= previous.eq_ignore_ascii_case(b"facet") && word.eq_ignore_ascii_case(b"normal");
        vertex |= word.eq_ignore_ascii_case(b"vertex");
        previous = word;
    }
    if facet_normal && vertex {
        Ok(FileType::StlAscii)
    } else {
        Err(Refusal::new(format!(
            "the ASCII STL has no facet in its first {} KiB (`facet normal` … `vertex`)",
            HEAD_LEN / 1024
        )))
    }
}

/// UTF-8 text without NUL whose complete lines in the head are blank, comments or OBJ statements,
/// with at least one `v x y z`.
fn is_obj(head: &[u8], size: u64) -> bool {
    let lines = complete_lines(head, size);
    let lines = lines.strip_prefix(BOM).unwrap_or(lines);
    if lines.contains(&0) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(lines) else {
        return false;
    };
    let mut vertices = 0_usize;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let statement = words.next().unwrap_or_default();
        if !OBJ_STATEMENTS.contains(&statement) {
            return false;
        }
        if statement == "v" && words.take(3).filter(|w| w.parse::<f64>().is_ok()).count() == 3 {
            vertices += 1;
        }
    }
    vertices > 0
}

/// HEIC or MP4 audio by the `ftyp` box's brands. A brand listed by both (a HEIF file may list
/// `iso8`, an MP4 `mif1`…) is settled by the major brand.
///
/// Whether an MP4 holds only audio is written in its `moov` box, which phones put at the end of
/// the file: it cannot be told from the head. An MP4 with a video track is accepted as audio and
/// served as `audio/mp4`, so browsers play its sound only. Files whose major brand says video
/// (`M4V `, `qt  `) or AVIF are refused.
fn iso_media(head: &[u8]) -> Result<FileType, Refusal> {
    let malformed = || Err(Refusal::new("the ISO media file's ftyp box is malformed"));
    let Some(box_size) = head.get(0..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
        return malformed();
    };
    if box_size < 16 || box_size % 4 != 0 || box_size > head.len() {
        return malformed();
    }
    let major = &head[8..12];
    let brands = || std::iter::once(major).chain(head[16..box_size].chunks_exact(4));
    let listed = |set: &[&[u8; 4]], brand: &[u8]| set.iter().any(|b| b.as_slice() == brand);
    if listed(OTHER_MAJOR_BRANDS, major) {
        return Err(other_brand(major));
    }
    let image = brands().any(|b| listed(HEIF_BRANDS, b));
    let audio = brands().any(|b| listed(AUDIO_BRANDS, b));
    match (image, audio) {
        (true, false) => Ok(FileType::Heic),
        (false, true) => Ok(FileType::Mp4Audio),
        (true, true) if listed(HEIF_BRANDS, major) => Ok(FileType::Heic),
        (true, true) if listed(AUDIO_BRANDS, major) => Ok(FileType::Mp4Audio),
        _ => Err(other_brand(major)),
    }
}

fn other_brand(major: &[u8]) -> Refusal {
    Refusal::new(format!(
        "ISO media files of brand `{}` are not accepted (only HEIC photos and MP4 audio)",
        String::from_utf8_lossy(major).trim_end()
    ))
}

/// Ogg whose first page opens a stream (BOS) of an audio codec; Theora video is refused.
fn ogg(head: &[u8]) -> Result<FileType, Refusal> {
    let bad = || Err(Refusal::new("only Ogg audio (Opus, Vorbis, FLAC, Speex) is accepted"));
    if head.len() < 27 || head[4] != 0 || head[5] & 0x02 == 0 {
        return bad();
    }
    let packet = head.get(27 + usize::from(head[26])..).unwrap_or_default();
    if OGG_AUDIO_CODECS.iter().any(|codec| packet.starts_with(codec)) { Ok(FileType::Ogg) } else { bad() }
}

/// EBML whose header's DocType is `webm` (Matroska `.mkv` is refused). Like MP4, a WebM with a
/// video track cannot be told from the head without parsing its Tracks; it is served as audio.
fn webm(head: &[u8]) -> Result<FileType, Refusal> {
    if ebml_doc_type(head) == Some(b"webm".as_slice()) {
        Ok(FileType::WebmAudio)
    } else {
        Err(Refusal::new("only WebM audio is accepted among EBML/Matroska files"))
    }
}

/// The DocType (element 0x4282) of the EBML header element that opens the file.
fn ebml_doc_type(head: &[u8]) -> Option<&[u8]> {
    let mut pos = EBML_MAGIC.len();
    let (header_size, len) = ebml_vint(head.get(pos..)?, false)?;
    pos += len;
    let end = pos.saturating_add(usize::try_from(header_size).ok()?).min(head.len());
    while pos < end {
        let (id, len) = ebml_vint(&head[pos..], true)?;
        pos += len;
        let (size, len) = ebml_vint(head.get(pos..)?, false)?;
        pos += len;
        let size = usize::try_from(size).ok()?;
        if id == 0x4282 {
            return head.get(pos..pos.checked_add(size)?);
        }
        pos = pos.checked_add(size)?;
    }
    None
}

/// An EBML variable-length integer and its length; element IDs keep their length marker.
fn ebml_vint(bytes: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let first = if keep_marker { first } else { first & 0xFF_u8.checked_shr(len as u32).unwrap_or(0) };
    let value = bytes.get(1..len)?.iter().fold(u64::from(first), |v, &b| (v << 8) | u64::from(b));
    Some((value, len))
}

/// The head without its last line when the file goes on past it (that line may be cut short).
fn complete_lines(head: &[u8], size: u64) -> &[u8] {
    if head.len() as u64 >= size {
        return head;
    }
    match memchr::memrchr(b'\n', head) {
        Some(end) => &head[..=end],
        None => &[],
    }
}

fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())
}

fn starts_with_word(text: &[u8], word: &[u8]) -> bool {
    text.len() >= word.len()
        && text[..word.len()].eq_ignore_ascii_case(word)
        && text.get(word.len()).is_none_or(|b| b.is_ascii_whitespace())
}

fn trim_start(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    &text[start..]
}

fn trim_end(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
