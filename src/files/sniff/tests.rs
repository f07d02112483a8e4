#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use articula_protocol::FileKind;
use strum::IntoEnumIterator;

use super::*;

// ---------------------------------------------------------------------------------------------
// Samples, built byte by byte.

fn binary_stl(triangles: u32, header: &[u8]) -> Vec<u8> {
    let mut out = vec![b' '; 80];
    out[..header.len()].copy_from_slice(header);
    out.extend(triangles.to_le_bytes());
    for i in 0..triangles {
        let base = i as f32;
        let floats = [0.0, 0.0, 1.0, base, 0.0, 0.0, base + 1.0, 0.0, 0.0, base, 1.0, 0.0];
        for f in floats {
            out.extend(f32::to_le_bytes(f));
        }
        out.extend([0, 0]);
    }
    out
}

fn facet(i: usize) -> String {
    format!(
        "  facet normal 0 0 1\n    outer loop\n      vertex {i} 0 0\n      vertex {i}.5 0 0\n      \
         vertex {i} 1 0\n    endloop\n  endfacet\n"
    )
}

fn ascii_stl(facets: usize) -> Vec<u8> {
    let mut text = "solid tooth_36\n".to_owned();
    for i in 0..facets {
        text.push_str(&facet(i));
    }
    text.push_str("endsolid tooth_36\n");
    text.into_bytes()
}

const PLY_ASCII: &[u8] =
    b"ply\nformat ascii 1.0\ncomment made by a test\nelement vertex 3\nproperty float x\n\
property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n\
0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n";

fn ply_binary() -> Vec<u8> {
    let mut out = b"ply\r\nformat binary_little_endian 1.0\r\nelement vertex 3\r\nproperty float x\r\n\
property float y\r\nproperty float z\r\nend_header\n"
        .to_vec();
    for f in [0.0_f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] {
        out.extend(f.to_le_bytes());
    }
    out
}

fn obj(extra_vertices: usize) -> Vec<u8> {
    let mut text =
        "# exported by a test\nmtllib tooth.mtl\no tooth\nv 0 0 0\nv 1.5 0 0\nv 0 1 -2e-3\n".to_owned();
    for i in 0..extra_vertices {
        text.push_str(&format!("v {i}.25 {i}.5 1.0 0.5 0.5 0.5\n"));
    }
    text.push_str("vt 0 0\nvn 0 0 1\ng crown\nusemtl enamel\ns off\nf 1/1/1 2/1/1 3/1/1\n\n");
    text.into_bytes()
}

/// A baseline JPEG's structure: APP0, DQT, SOF0, DHT, SOS, entropy-coded data (with a stuffed
/// FF 00 and a restart marker), EOI. `app1` is inserted after APP0.
fn jpeg_with(app1: &[u8], entropy: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend(b"\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    out.extend(app1);
    out.extend(b"\xFF\xDB\x00\x43\x00");
    out.extend([1_u8; 64]);
    out.extend(b"\xFF\xC0\x00\x0B\x08\x00\x01\x00\x01\x01\x01\x11\x00");
    out.extend(b"\xFF\xC4\x00\x14\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    out.extend(b"\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00");
    out.extend(entropy);
    out.extend([0xFF, 0xD9]);
    out
}

fn jpeg() -> Vec<u8> {
    jpeg_with(b"", b"\x12\x34\xFF\x00\x56\xFF\xD0\x78\xFF\xFF\x00")
}

/// An EXIF APP1 segment holding a thumbnail JPEG, whose own EOI must not end the photo.
fn exif_app1() -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(jpeg());
    let mut out = vec![0xFF, 0xE1];
    out.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend(payload);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    let mut typed = kind.to_vec();
    typed.extend(data);
    out.extend(&typed);
    out.extend(crc32(&typed).to_be_bytes());
    out
}

fn png() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1A\n".to_vec();
    out.extend(png_chunk(b"IHDR", b"\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0"));
    out.extend(png_chunk(b"IDAT", b"\x78\x9C\x63\xF8\xCF\xC0\x00\x00\x03\x01\x01\x00"));
    out.extend(png_chunk(b"IEND", b""));
    out
}

fn iso_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len() + 8).unwrap().to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(payload);
    out
}

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let mut payload = major.to_vec();
    payload.extend([0, 0, 0, 0]);
    for brand in compatible {
        payload.extend(*brand);
    }
    iso_box(b"ftyp", &payload)
}

fn iso_media(major: &[u8; 4], compatible: &[&[u8; 4]], media: &[u8]) -> Vec<u8> {
    let mut out = ftyp(major, compatible);
    out.extend(iso_box(b"moov", &[7; 24]));
    out.extend(iso_box(b"mdat", media));
    out
}

fn heic() -> Vec<u8> {
    iso_media(b"heic", &[b"mif1", b"heic"], &[9; 40])
}

fn m4a() -> Vec<u8> {
    iso_media(b"M4A ", &[b"M4A ", b"mp42", b"isom"], &[5; 100])
}

const PDF: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
trailer\n<< /Root 1 0 R >>\nstartxref\n9\n%%EOF\n";

fn wav(samples: usize) -> Vec<u8> {
    let data_len = u32::try_from(samples * 2).unwrap();
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data_len).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16_u32.to_le_bytes());
    out.extend([1, 0, 1, 0]); // PCM, mono
    out.extend(8000_u32.to_le_bytes());
    out.extend(16000_u32.to_le_bytes());
    out.extend([2, 0, 16, 0]);
    out.extend(b"data");
    out.extend(data_len.to_le_bytes());
    out.extend((0..samples).flat_map(|i| (i as u16).to_le_bytes()));
    out
}

fn ogg_page(flags: u8, sequence: u32, packet: &[u8]) -> Vec<u8> {
    let mut out = b"OggS\0".to_vec();
    out.push(flags);
    out.extend(0_u64.to_le_bytes());
    out.extend(0x1234_u32.to_le_bytes());
    out.extend(sequence.to_le_bytes());
    out.extend(0_u32.to_le_bytes()); // CRC: not checked
    let mut lacing = vec![255_u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    out.push(u8::try_from(lacing.len()).unwrap());
    out.extend(lacing);
    out.extend(packet);
    out
}

fn ogg_with(first_packet: &[u8]) -> Vec<u8> {
    let mut out = ogg_page(0x02, 0, first_packet);
    out.extend(ogg_page(0x00, 1, b"OpusTags\x04\0\0\0testtest\0\0\0\0"));
    out.extend(ogg_page(0x04, 2, &[0x55; 600]));
    out
}

fn ogg_opus() -> Vec<u8> {
    ogg_with(b"OpusHead\x01\x01\x38\x01\x80\xBB\0\0\0\0\0")
}

fn webm_with(doc_type: &[u8]) -> Vec<u8> {
    let mut children = b"\x42\x86\x81\x01".to_vec();
    children.extend([0x42, 0x82, 0x80 | u8::try_from(doc_type.len()).unwrap()]);
    children.extend(doc_type);
    children.extend(b"\x42\x87\x81\x04\x42\x85\x81\x02");
    let mut out = b"\x1A\x45\xDF\xA3".to_vec();
    out.push(0x80 | u8::try_from(children.len()).unwrap());
    out.extend(children);
    // A Segment of unknown size, as MediaRecorder writes it.
    out.extend(b"\x18\x53\x80\x67\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF");
    out.extend([0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    out.extend([0xA3; 300]);
    out
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Entropy-coded JPEG data: every FF is followed by a stuffed 00.
fn stuffed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().flat_map(|&b| if b == 0xFF { vec![0xFF, 0x00] } else { vec![b] }).collect()
}

// ---------------------------------------------------------------------------------------------
// Feeding.

fn sniff(bytes: &[u8]) -> Result<FileType, Refusal> {
    let mut sniffer = Sniffer::new(bytes.len() as u64);
    sniffer.update(bytes);
    sniffer.finish()
}

fn sniff_in(bytes: &[u8], chunk: usize) -> Result<FileType, Refusal> {
    let mut sniffer = Sniffer::new(bytes.len() as u64);
    for piece in bytes.chunks(chunk) {
        sniffer.update(piece);
    }
    sniffer.finish()
}

#[track_caller]
fn accepted(bytes: &[u8]) -> FileType {
    sniff(bytes).unwrap_or_else(|refusal| panic!("refused: {refusal}"))
}

#[track_caller]
fn refused(bytes: &[u8]) -> String {
    match sniff(bytes) {
        Ok(file_type) => panic!("accepted as {file_type:?}"),
        Err(refusal) => {
            assert_eq!(refusal.code(), ErrorCode::InvalidFileType);
            refusal.message
        }
    }
}

fn cut(mut bytes: Vec<u8>, by: usize) -> Vec<u8> {
    bytes.truncate(bytes.len() - by);
    bytes
}

fn with(mut bytes: Vec<u8>, suffix: &[u8]) -> Vec<u8> {
    bytes.extend(suffix);
    bytes
}

// ---------------------------------------------------------------------------------------------
// Accepted formats.

#[test]
fn binary_stl_is_decided_by_its_size_even_with_a_solid_header() {
    assert_eq!(accepted(&binary_stl(2, b"binary STL from a scanner")), FileType::StlBinary);
    assert_eq!(accepted(&binary_stl(2, b"solid exported by SolidWorks")), FileType::StlBinary);
    assert_eq!(accepted(&binary_stl(1, b"")), FileType::StlBinary);
}

#[test]
fn ascii_stl_is_accepted() {
    assert_eq!(accepted(&ascii_stl(1)), FileType::StlAscii);
    assert_eq!(accepted(&ascii_stl(300)), FileType::StlAscii, "larger than the head");
    let bom_and_crlf =
        with(b"\xEF\xBB\xBF  ".to_vec(), &ascii_stl(2)).iter().fold(Vec::new(), |mut v, &b| {
            if b == b'\n' {
                v.push(b'\r');
            }
            v.push(b);
            v
        });
    assert_eq!(accepted(&bom_and_crlf), FileType::StlAscii);
    assert_eq!(accepted(&with(ascii_stl(1), b"\n\n  \t")), FileType::StlAscii, "trailing whitespace");
    assert_eq!(accepted(b"SOLID\nFACET NORMAL 0 0 1\nVERTEX 0 0 0\nENDSOLID"), FileType::StlAscii);
}

#[test]
fn ply_ascii_and_binary_are_accepted() {
    assert_eq!(accepted(PLY_ASCII), FileType::Ply);
    assert_eq!(accepted(&ply_binary()), FileType::Ply);
}

#[test]
fn obj_is_accepted() {
    assert_eq!(accepted(&obj(0)), FileType::Obj);
    assert_eq!(accepted(&obj(1000)), FileType::Obj, "larger than the head, cut mid-line");
    assert_eq!(accepted(&with(b"\xEF\xBB\xBF".to_vec(), &obj(0))), FileType::Obj);
}

#[test]
fn jpeg_is_accepted_with_thumbnail_trailer_or_padding() {
    assert_eq!(accepted(&jpeg()), FileType::Jpeg);
    assert_eq!(accepted(&jpeg_with(&exif_app1(), &[0x42; 20_000])), FileType::Jpeg);
    assert_eq!(accepted(&with(jpeg(), &[0, 0, 0, 0])), FileType::Jpeg, "zero padding");
    let motion_photo = with(jpeg(), &iso_media(b"mp42", &[b"isom"], &[3; 5000]));
    assert_eq!(accepted(&motion_photo), FileType::Jpeg, "an Android motion photo's video trailer");
}

#[test]
fn png_is_accepted() {
    assert_eq!(crc32(b"IEND").to_be_bytes(), [0xAE, 0x42, 0x60, 0x82]);
    assert_eq!(accepted(&png()), FileType::Png);
}

#[test]
fn heic_is_accepted_by_its_brands() {
    assert_eq!(accepted(&heic()), FileType::Heic);
    assert_eq!(accepted(&iso_media(b"mif1", &[b"mif1", b"heic", b"miaf"], &[1; 9])), FileType::Heic);
    assert_eq!(accepted(&iso_media(b"msf1", &[b"msf1", b"hevc", b"iso8"], &[1; 9])), FileType::Heic);
    assert_eq!(accepted(&iso_media(b"heix", &[b"mif1", b"heix", b"mp42"], &[1; 9])), FileType::Heic);
}

#[test]
fn mp4_audio_is_accepted_by_its_brands() {
    assert_eq!(accepted(&m4a()), FileType::Mp4Audio);
    for (major, compatible) in [
        (b"M4B ", &[b"M4B ", b"mp42"][..]),
        (b"mp42", &[b"mp42", b"isom"][..]),
        (b"isom", &[b"isom", b"iso2", b"mp41"][..]),
        (b"iso5", &[b"iso5", b"iso6", b"mp41"][..]),
        (b"dash", &[b"iso6", b"mp41"][..]),
    ] {
        assert_eq!(accepted(&iso_media(major, compatible, &[1; 64])), FileType::Mp4Audio, "{major:?}");
    }
    // A box of size 0 runs to the end of the file; a 64-bit size is honoured.
    let mut open_mdat = ftyp(b"M4A ", &[b"isom"]);
    open_mdat.extend(b"\0\0\0\0mdat");
    open_mdat.extend([4; 1000]);
    assert_eq!(accepted(&open_mdat), FileType::Mp4Audio);
    let mut large = ftyp(b"M4A ", &[b"isom"]);
    large.extend(b"\0\0\0\x01mdat");
    large.extend((16_u64 + 40).to_be_bytes());
    large.extend([4; 40]);
    assert_eq!(accepted(&large), FileType::Mp4Audio);
}

#[test]
fn pdf_is_accepted() {
    assert_eq!(accepted(PDF), FileType::Pdf);
    assert_eq!(accepted(&with(b"\r\n\r\n".to_vec(), PDF)), FileType::Pdf, "%PDF- within 1024 bytes");
    assert_eq!(accepted(&with(PDF.to_vec(), &[b' '; 900])), FileType::Pdf, "%%EOF within the last 1024");
}

#[test]
fn wav_is_accepted() {
    assert_eq!(accepted(&wav(1000)), FileType::Wav);
    let mut streaming = wav(100);
    streaming[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(accepted(&streaming), FileType::Wav, "size left unknown by a streaming recorder");
}

#[test]
fn ogg_audio_is_accepted() {
    assert_eq!(accepted(&ogg_opus()), FileType::Ogg);
    assert_eq!(accepted(&ogg_with(b"\x01vorbis\0\0\0\0\x01\x44\xAC\0\0")), FileType::Ogg);
}

#[test]
fn webm_is_accepted() {
    assert_eq!(accepted(&webm_with(b"webm")), FileType::WebmAudio);
}

// ---------------------------------------------------------------------------------------------
// Refusals.

#[test]
fn empty_file_is_refused_at_once() {
    let sniffer = Sniffer::new(0);
    assert!(matches!(sniffer.early(), Some(Err(_))));
    assert_eq!(sniffer.finish().unwrap_err().message, "the file is empty");
    assert_eq!(refused(b""), "the file is empty");
}

#[test]
fn renamed_executables_are_refused_even_when_sized_like_an_stl() {
    // An ELF whose size happens to satisfy the binary STL rule: the magic wins.
    let mut elf = binary_stl(3, b"");
    elf[..4].copy_from_slice(b"\x7FELF");
    assert!(refused(&elf).contains("ELF executable"));
    let mut pe = binary_stl(3, b"");
    pe[..2].copy_from_slice(b"MZ");
    assert!(refused(&pe).contains("Windows executable"));
    assert!(refused(&with(b"\xCF\xFA\xED\xFE".to_vec(), &[0; 200])).contains("Mach-O"));
    assert!(refused(b"#!/bin/sh\nrm -rf /\n").contains("script"));
    assert!(refused(&with(b"PK\x03\x04".to_vec(), &[0; 100])).contains("ZIP"));
}

#[test]
fn renamed_executable_is_refused_at_its_first_bytes() {
    let mut sniffer = Sniffer::new(500 * 1024 * 1024);
    sniffer.update(b"\x7FEL");
    assert_eq!(sniffer.early(), None, "three bytes do not decide");
    sniffer.update(b"F\x02\x01\x01");
    assert!(matches!(sniffer.early(), Some(Err(r)) if r.message.contains("ELF")));
}

#[test]
fn unknown_content_is_refused_once_the_head_arrived() {
    let html = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n".repeat(200);
    let mut sniffer = Sniffer::new(200 * 1024 * 1024);
    sniffer.update(&html[..HEAD_LEN - 1]);
    assert_eq!(sniffer.early(), None);
    sniffer.update(&html[HEAD_LEN - 1..]);
    assert!(matches!(sniffer.early(), Some(Err(r)) if r.message.contains("not an accepted type")));
    assert!(refused(&html).contains("not an accepted type"));
}

#[test]
fn random_bytes_and_other_text_are_refused() {
    assert!(refused(&pseudo_random(4096, 0x9E37_79B9_7F4A_7C15)).contains("not an accepted type"));
    assert!(refused(&pseudo_random(100_000, 42)).contains("not an accepted type"));
    assert!(refused(b"import os\nv = 1\nos.system('x')\n").contains("not an accepted type"));
    assert!(refused(b"echo hello\n").contains("not an accepted type"));
    assert!(refused(b"# only a comment\n").contains("not an accepted type"), "OBJ needs a vertex");
    assert!(refused(b"{\"json\": true}").contains("not an accepted type"));
}

#[test]
fn truncated_or_padded_binary_stl_is_refused() {
    let stl = binary_stl(20, b"binary STL from a scanner");
    let message = refused(&cut(stl.clone(), 7));
    assert!(message.contains("20 triangles need 1084 bytes, but it has 1077"), "{message}");
    assert!(refused(&with(stl, &[0])).contains("truncated?"));
    // With a "solid" header, the refusal still explains the size rule.
    let message = refused(&cut(binary_stl(20, b"solid part"), 10));
    assert!(message.contains("binary STL's size does not match"), "{message}");
    // Zero triangles is no scan.
    refused(&binary_stl(0, b"empty"));
}

#[test]
fn truncated_ascii_stl_is_refused() {
    let stl = ascii_stl(300);
    let message = refused(&stl[..stl.len() - 40]);
    assert!(message.contains("endsolid"), "{message}");
    assert!(refused(b"solid empty\nendsolid empty\n").contains("no facet"));
    assert!(refused(b"solid\nfacet normal 0 0 1\nvertex 0 0 0\nendsolidx").contains("endsolid"));
}

#[test]
fn text_head_glued_to_binary_payload_is_refused() {
    let mut stl = ascii_stl(300);
    let at = stl.len() - 100;
    stl[at] = 0;
    assert!(refused(&stl).contains("NUL"));
    let mut obj = obj(1000);
    let at = obj.len() - 10;
    obj[at] = 0;
    assert!(refused(&obj).contains("NUL"));
}

#[test]
fn bad_ply_headers_are_refused() {
    assert!(refused(b"ply\nformat ascii 2.0\nelement vertex 0\nend_header\n").contains("unknown format"));
    assert!(refused(b"ply\nelement vertex 0\nend_header\n").contains("no format"));
    assert!(refused(b"ply\nformat ascii 1.0\nend_header\n").contains("no element"));
    assert!(refused(b"ply\nformat ascii 1.0\n<html>\nend_header\n").contains("unknown header line"));
    let endless = with(b"ply\nformat ascii 1.0\nelement vertex 1\n".to_vec(), &b"comment x\n".repeat(1000));
    assert!(refused(&endless).contains("no end_header"));
}

#[test]
fn truncated_jpeg_is_refused_even_with_a_thumbnail_eoi() {
    assert!(refused(&cut(jpeg(), 2)).contains("end-of-image"));
    let photo = jpeg_with(&exif_app1(), &[0x42; 20_000]);
    // The thumbnail inside APP1 has its own FF D9; the photo is still cut.
    assert!(refused(&photo[..photo.len() - 5000]).contains("end-of-image"));
    assert!(refused(b"\xFF\xD8\xFF\xE0\x00\x01").contains("end-of-image"), "a length below 2");
}

#[test]
fn truncated_png_is_refused() {
    assert!(refused(&cut(png(), 12)).contains("IEND"));
    assert!(refused(&cut(png(), 1)).contains("IEND"));
    assert!(refused(&with(png(), b"PK\x03\x04 appended archive")).contains("IEND"), "data after IEND");
    assert!(refused(b"\x89PNG\r\n\x1A\n\0\0\0\x0DIHDX").contains("IHDR"));
}

#[test]
fn truncated_or_foreign_iso_media_is_refused() {
    assert!(refused(&cut(m4a(), 30)).contains("incomplete"));
    assert!(refused(&cut(heic(), 1)).contains("incomplete"));
    assert!(refused(&iso_media(b"qt  ", &[b"qt  "], &[1; 9])).contains("brand `qt`"));
    assert!(refused(&iso_media(b"M4V ", &[b"M4V ", b"M4A ", b"mp42"], &[1; 9])).contains("M4V"));
    assert!(refused(&iso_media(b"avif", &[b"avif", b"mif1", b"miaf"], &[1; 9])).contains("avif"));
    assert!(refused(&iso_media(b"3gp4", &[b"3gp4"], &[1; 9])).contains("3gp4"));
    let mut small = ftyp(b"M4A ", &[b"isom"]);
    small.extend(b"\0\0\0\x04free");
    assert!(refused(&small).contains("smaller than its header"));
}

#[test]
fn truncated_pdf_is_refused() {
    assert!(refused(&PDF[..PDF.len() - 7]).contains("%%EOF"));
    assert!(refused(&with(PDF.to_vec(), &[b' '; 2000])).contains("%%EOF"), "%%EOF too far from the end");
}

#[test]
fn truncated_or_foreign_audio_is_refused() {
    assert!(refused(&cut(wav(1000), 100)).contains("announces 2044 bytes"));
    assert!(refused(b"RIFF\x10\0\0\0AVI LIST....").contains("WAVE"));
    assert!(refused(&cut(ogg_opus(), 10)).contains("incomplete"));
    assert!(refused(&ogg_with(b"\x80theora\x03\x02\x01")).contains("Ogg audio"));
    assert!(
        refused(&with(ogg_opus(), b"garbage after the last page, long enough for a page header"))
            .contains("OggS")
    );
    assert!(refused(&webm_with(b"matroska")).contains("WebM"));
}

#[test]
fn an_upload_that_stops_short_is_refused() {
    let stl = binary_stl(4, b"");
    let mut sniffer = Sniffer::new(stl.len() as u64);
    sniffer.update(&stl[..100]);
    assert!(sniffer.finish().unwrap_err().message.contains("incomplete"));
    let mut sniffer = Sniffer::new(10);
    sniffer.update(&[0; 11]);
    assert!(sniffer.finish().unwrap_err().message.contains("incomplete"));
}

// ---------------------------------------------------------------------------------------------
// Chunking: the verdict never depends on how the bytes were cut.

/// Named samples, valid and refused ones.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let stl = binary_stl(30, b"solid header");
    let photo = jpeg_with(&exif_app1(), &stuffed(&pseudo_random(12_000, 7)));
    let mut exe = binary_stl(3, b"");
    exe[..4].copy_from_slice(b"\x7FELF");
    vec![
        ("binary stl", stl.clone()),
        ("truncated binary stl", cut(stl, 1)),
        ("ascii stl", ascii_stl(3)),
        ("large ascii stl", ascii_stl(200)),
        ("truncated ascii stl", cut(ascii_stl(200), 30)),
        ("ply", PLY_ASCII.to_vec()),
        ("binary ply", ply_binary()),
        ("obj", obj(3)),
        ("large obj", obj(600)),
        ("jpeg", jpeg()),
        ("photo with thumbnail", photo.clone()),
        ("truncated photo", cut(photo, 3000)),
        ("png", png()),
        ("truncated png", cut(png(), 5)),
        ("heic", heic()),
        ("m4a", m4a()),
        ("truncated m4a", cut(m4a(), 3)),
        ("pdf", PDF.to_vec()),
        ("wav", wav(300)),
        ("ogg", ogg_opus()),
        ("truncated ogg", cut(ogg_opus(), 1)),
        ("webm", webm_with(b"webm")),
        ("elf", exe),
        ("html", b"<html><body>hello</body></html>".to_vec()),
        ("random", pseudo_random(10_000, 3)),
        ("png + zip", with(png(), b"PK\x03\x04")),
    ]
}

/// Feeds `bytes` cut at `cuts`, checking on the way that the early verdict, once given, never
/// changes and never contradicts the final one.
fn sniff_cut(bytes: &[u8], cuts: &[usize]) -> Result<FileType, Refusal> {
    let mut sniffer = Sniffer::new(bytes.len() as u64);
    let mut early: Option<Result<FileType, Refusal>> = None;
    let mut start = 0;
    for &end in cuts.iter().chain([bytes.len()].iter()) {
        sniffer.update(&bytes[start..end]);
        start = end;
        let now = sniffer.early();
        if let Some(before) = &early {
            assert_eq!(now.as_ref(), Some(before), "the early verdict changed");
        }
        if now.is_some() {
            early = now;
        }
        if start >= HEAD_LEN.min(bytes.len()) {
            assert!(sniffer.early().is_some(), "undecided after the head");
        }
    }
    let verdict = sniffer.finish();
    match (&early, &verdict) {
        (Some(Err(early)), final_verdict) => assert_eq!(final_verdict, &Err(early.clone())),
        (Some(Ok(early)), Ok(final_type)) => assert_eq!(early, final_type),
        _ => {}
    }
    verdict
}

#[test]
fn verdict_is_the_same_one_byte_at_a_time_and_all_at_once() {
    let samples = samples();
    let refused =
        |name: &str| name.starts_with("truncated") || ["elf", "html", "random", "png + zip"].contains(&name);
    for (name, bytes) in samples {
        let whole = sniff(&bytes);
        assert_eq!(whole.is_err(), refused(name), "{name}: {whole:?}");
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(sniff_cut(&bytes, &cuts), whole, "{name}: one byte at a time");
        for size in [2, 3, 7, 64, 1000, 4096, 8191, 8193] {
            assert_eq!(sniff_in(&bytes, size), whole, "{name}: chunks of {size}");
        }
    }
}

#[test]
fn verdict_is_the_same_at_every_split_point() {
    for (name, bytes) in samples() {
        let whole = sniff(&bytes);
        // Every split point for small samples; a stride for larger ones keeps this fast.
        let stride = (bytes.len() / 400).max(1);
        for first in (0..=bytes.len()).step_by(stride) {
            assert_eq!(sniff_cut(&bytes, &[first]), whole, "{name}: split at {first}");
            let second = first + (bytes.len() - first) / 3;
            assert_eq!(sniff_cut(&bytes, &[first, second]), whole, "{name}: split at {first}, {second}");
        }
    }
}

#[test]
fn verdict_is_the_same_for_random_chunkings() {
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for (name, bytes) in samples() {
        let whole = sniff(&bytes);
        for _ in 0..20 {
            let mut cuts = Vec::new();
            let mut at = 0;
            loop {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                at += 1 + (seed % 3000) as usize;
                if at >= bytes.len() {
                    break;
                }
                cuts.push(at);
            }
            assert_eq!(sniff_cut(&bytes, &cuts), whole, "{name}: cuts {cuts:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory stays flat.

/// Feeds a file of `size` bytes made of `start`, then `fill` bytes, then `end`, in 64 KiB chunks,
/// never holding it whole; returns the verdict and the most memory the sniffer held meanwhile.
fn stream_large(start: &[u8], fill: u8, end: &[u8], size: usize) -> (Result<FileType, Refusal>, usize) {
    const CHUNK: usize = 64 * 1024;
    let mut sniffer = Sniffer::new(size as u64);
    let mut chunk = vec![fill; CHUNK];
    let (mut at, mut max_retained) = (0, 0);
    while at < size {
        let piece = &mut chunk[..CHUNK.min(size - at)];
        piece.fill(fill);
        overlay(piece, at, start, 0);
        overlay(piece, at, end, size - end.len());
        sniffer.update(piece);
        max_retained = max_retained.max(sniffer.retained_bytes());
        at += piece.len();
    }
    (sniffer.finish(), max_retained)
}

/// Copies the part of `bytes` (which sits at `bytes_at` in the file) that falls in `piece` (at
/// `piece_at`).
fn overlay(piece: &mut [u8], piece_at: usize, bytes: &[u8], bytes_at: usize) {
    let from = bytes_at.max(piece_at);
    let to = (bytes_at + bytes.len()).min(piece_at + piece.len());
    if from < to {
        piece[from - piece_at..to - piece_at].copy_from_slice(&bytes[from - bytes_at..to - bytes_at]);
    }
}

const FLAT: usize = HEAD_LEN + TAIL_LEN + 512;

#[test]
fn a_50_mb_binary_stl_keeps_memory_flat() {
    let triangles = 1_000_000_u32;
    let mut header = b"solid big scan".to_vec();
    header.resize(80, b' ');
    header.extend(triangles.to_le_bytes());
    let (verdict, retained) = stream_large(&header, 0, b"", 84 + 50 * triangles as usize);
    assert_eq!(verdict, Ok(FileType::StlBinary));
    assert!(retained <= FLAT, "retained {retained} bytes");
}

#[test]
fn large_walked_formats_keep_memory_flat() {
    let size = 20 * 1024 * 1024;
    let head = jpeg_with(&exif_app1(), b"");
    let (verdict, retained) = stream_large(&head[..head.len() - 2], 0x11, b"\xFF\xD9", size);
    assert_eq!(verdict, Ok(FileType::Jpeg));
    assert!(retained <= FLAT, "jpeg retained {retained} bytes");

    let mut start = ftyp(b"M4A ", &[b"isom"]);
    let mdat = u32::try_from(size - start.len()).unwrap();
    start.extend(mdat.to_be_bytes());
    start.extend(b"mdat");
    let (verdict, retained) = stream_large(&start, 0x22, b"", size);
    assert_eq!(verdict, Ok(FileType::Mp4Audio));
    assert!(retained <= FLAT, "mp4 retained {retained} bytes");

    let (verdict, retained) = stream_large(b"%PDF-1.7\n", b' ', b"\n%%EOF\n", size);
    assert_eq!(verdict, Ok(FileType::Pdf));
    assert!(retained <= FLAT, "pdf retained {retained} bytes");
}

// ---------------------------------------------------------------------------------------------
// Types and kinds.

#[test]
fn types_fit_their_kinds() {
    use FileKind::*;
    for file_type in FileType::iter() {
        assert!(file_type.mime().contains('/'));
        assert!(FileKind::iter().any(|kind| file_type.fits(kind)), "{file_type:?} fits no kind");
    }
    let kinds = |t: FileType| FileKind::iter().filter(|&k| t.fits(k)).collect::<Vec<_>>();
    assert_eq!(kinds(FileType::StlBinary), [Scan, Design]);
    assert_eq!(kinds(FileType::Ply), [Scan, Design]);
    assert_eq!(kinds(FileType::Jpeg), [Photo, Document]);
    assert_eq!(kinds(FileType::Heic), [Photo]);
    assert_eq!(kinds(FileType::Pdf), [Document]);
    assert_eq!(kinds(FileType::Mp4Audio), [VoiceNote]);
    assert_eq!(kinds(FileType::Ogg), [VoiceNote]);
    let compressible: Vec<_> = FileType::iter().filter(|t| t.compressible()).collect();
    assert_eq!(
        compressible,
        [FileType::StlBinary, FileType::StlAscii, FileType::Ply, FileType::Obj, FileType::Pdf]
    );
    assert_eq!(FileType::StlAscii.mime(), "model/stl");
    assert_eq!(FileType::Heic.as_str(), "heic");
    assert_eq!(accepted_for(Scan), "STL, PLY or OBJ");
}
