//! U1 upload: one large binary STL sent over tus (creation, then PATCH requests streamed from
//! memory) to the Articula server, which encrypts it in segments, checks it by content, hashes
//! it, compresses it and commits it as a case event. The same bytes are then copied raw over a
//! loopback TCP socket into a file on the same disk (written and fsynced): the least any server
//! has to do with an upload. Both are timed from the first byte to the answer that the file is
//! safe; the server's RSS growth is its peak during the upload minus its RSS before it.
//!
//! The STL is a synthetic scan: a wavy surface of triangles whose coordinates drift smoothly
//! with a little noise, so that it compresses about as well as a real intraoral scan does
//! (rather than as well as zeros, or as badly as random bytes).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Ctx, Monitor, failed};
use crate::report::{Compare, Report, print};
use crate::target::Kind;

/// Sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Triangles in the STL (file size = 84 + 50 × triangles).
    pub triangles: u64,
    /// Bytes per PATCH request (tus-js-client's default is the whole file in one).
    pub patch_bytes: u64,
}

impl Params {
    /// The full run: 1 GiB.
    pub fn full() -> Self {
        Self { triangles: (1u64 << 30).div_ceil(50), patch_bytes: u64::MAX }
    }

    /// The smoke run: 12 MB in three PATCH requests.
    pub fn smoke() -> Self {
        Self { triangles: 240_000, patch_bytes: 4 << 20 }
    }

    fn size(&self) -> u64 {
        84 + 50 * self.triangles
    }
}

/// A chunk of the STL is made this big at a time.
const CHUNK: usize = 1 << 20;

/// Generates the STL's bytes `[from, to)`, chunk by chunk, deterministically.
struct Stl {
    triangles: u64,
}

impl Stl {
    fn byte_at_range(&self, from: u64, to: u64) -> Vec<u8> {
        // Triangles are 50 bytes; render the covering triangles and cut.
        let mut out = Vec::with_capacity((to - from) as usize + 100);
        let mut pos = from;
        if pos < 84 {
            let mut header = [0u8; 84];
            header[..22].copy_from_slice(b"articula U1 test scan ");
            header[80..84].copy_from_slice(&(self.triangles as u32).to_le_bytes());
            let end = to.min(84);
            out.extend_from_slice(&header[pos as usize..end as usize]);
            pos = end;
        }
        if pos >= to {
            return out;
        }
        let first = (pos - 84) / 50;
        let last = (to - 84).div_ceil(50);
        let skip = ((pos - 84) % 50) as usize;
        let start_len = out.len();
        for t in first..last {
            out.extend_from_slice(&triangle(t));
        }
        out.drain(start_len..start_len + skip);
        out.truncate((to - from) as usize);
        out
    }
}

fn triangle(t: u64) -> [u8; 50] {
    // A 2,000-wide grid of points on a gently curved surface, two triangles per cell, with a
    // few bits of noise (a scanner's).
    let cell = t / 2;
    let (gx, gy) = ((cell % 2000) as f32, (cell / 2000 % 2000) as f32);
    let noise = |k: u64| {
        let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k;
        x ^= x >> 29;
        (x & 0xff) as f32 / 25_600.0
    };
    let z = |x: f32, y: f32| 0.002 * (x - 1000.0) * (x - 1000.0) / 1000.0 + 0.001 * y;
    let p = |dx: f32, dy: f32, k: u64| {
        let (x, y) = ((gx + dx) * 0.02, (gy + dy) * 0.02);
        [x, y, z(gx + dx, gy + dy) + noise(k)]
    };
    let v = if t.is_multiple_of(2) {
        [p(0.0, 0.0, 1), p(1.0, 0.0, 2), p(0.0, 1.0, 3)]
    } else {
        [p(1.0, 0.0, 4), p(1.0, 1.0, 5), p(0.0, 1.0, 6)]
    };
    let mut out = [0u8; 50];
    let normal = [0.0f32, 0.0, 1.0];
    let floats = normal.iter().chain(v.iter().flatten());
    for (i, f) in floats.enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
    }
    out
}

/// Runs U1 and prints its table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let size = p.size();
    let title =
        format!("U1 upload: a {:.2} GiB binary STL over tus, encrypted", size as f64 / (1u64 << 30) as f64);
    let mut reports = Vec::new();
    if ctx.baseline && !ctx.smoke {
        let r = raw_copy(p).await.unwrap_or_else(|e| failed("U1", Kind::Baseline, &e));
        reports.push(r);
    }
    let r = match upload(ctx, p).await {
        Ok(r) => r,
        Err(e) => failed("U1", Kind::Sqlite, &e),
    };
    reports.push(r);
    print(&title, &reports, Compare::Extra("seconds"));
    // The ratio the target is written in: MB/s against the raw copy's.
    if let [base, server] = reports.as_slice()
        && let (Some(b), Some(s)) = (mbps(base), mbps(server))
        && b > 0.0
    {
        println!("U1 server MB/s / raw copy MB/s = {:.2}", s / b);
    }
    reports
}

fn mbps(r: &Report) -> Option<f64> {
    r.extra.get("mb_per_sec").and_then(|v| v.as_f64())
}

fn report(target: &str, size: u64, took: Duration) -> Report {
    let mut r = Report { scenario: "U1".into(), target: target.into(), connections: 1, ..Report::default() };
    let secs = took.as_secs_f64();
    r.set("bytes", size);
    r.set("seconds", (secs * 100.0).round() / 100.0);
    r.set("mb_per_sec", (size as f64 / 1e6 / secs * 10.0).round() / 10.0);
    r
}

/// The raw copy: bytes over loopback TCP into a file on the same disk, then fsync.
async fn raw_copy(p: Params) -> Result<Report> {
    let size = p.size();
    let dir = std::env::temp_dir().join(format!("articula-lt-u1-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("copy.bin");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sink = {
        let path = path.clone();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await?;
            let mut file = tokio::fs::File::create(&path).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).await?;
                got += n as u64;
            }
            file.sync_all().await?;
            anyhow::Ok(got)
        })
    };
    let stl = Stl { triangles: p.triangles };
    let started = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let mut pos = 0;
    while pos < size {
        let end = (pos + CHUNK as u64).min(size);
        sock.write_all(&stl.byte_at_range(pos, end)).await?;
        pos = end;
    }
    sock.shutdown().await?;
    let got = sink.await??;
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    if got != size {
        bail!("the raw copy received {got} of {size} bytes");
    }
    let mut r = report("baseline", size, took);
    r.set("what", "raw copy: loopback TCP into a file, fsynced");
    Ok(r)
}

/// The tus upload to the server, then a check that the case lists the file with the right size.
async fn upload(ctx: &Ctx, p: Params) -> Result<Report> {
    let size = p.size();
    let t = ctx.start(Kind::Sqlite).await?;
    let case = t.create_cases(1).await?.pop().ok_or_else(|| anyhow!("no case"))?;
    let http = t.http();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let before = t.sample()?;
    let mon = Monitor::start(t.pid());
    let started = Instant::now();
    let created = http
        .post(t.url("/api/v1/uploads/"))
        .bearer_auth(t.token())
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size.to_string())
        .header(
            "upload-metadata",
            format!(
                "case_id {},filename {},kind {}",
                b64(&case.to_string()),
                b64("u1-scan.stl"),
                b64("scan")
            ),
        )
        .send()
        .await?;
    if created.status().as_u16() != 201 {
        bail!("creating the upload: {} {}", created.status(), created.text().await.unwrap_or_default());
    }
    let location = created
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("no Location"))?
        .to_owned();
    let url = if location.starts_with("http") { location } else { t.url(&location) };
    let mut offset = 0u64;
    let mut patches = 0u64;
    while offset < size {
        let end = offset.saturating_add(p.patch_bytes).min(size);
        let stl = Stl { triangles: p.triangles };
        let chunks = stream::iter((offset..end).step_by(CHUNK).map(move |from| {
            let to = (from + CHUNK as u64).min(end);
            Ok::<_, std::io::Error>(Bytes::from(stl.byte_at_range(from, to)))
        }));
        let r = http
            .patch(&url)
            .bearer_auth(t.token())
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", (end - offset).to_string())
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await?;
        if r.status().as_u16() != 204 {
            bail!("PATCH at {offset}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        let new_offset: u64 = r
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no Upload-Offset"))?;
        if new_offset != end {
            bail!("the server took {new_offset} of {end} bytes");
        }
        offset = end;
        patches += 1;
    }
    let took = started.elapsed();
    let peak = mon.stop();
    let after = t.sample()?;
    let files: serde_json::Value = http
        .get(t.url(&format!("/api/v1/cases/{case}/files")))
        .bearer_auth(t.token())
        .send()
        .await?
        .json()
        .await
        .context("listing the case's files")?;
    let listed = files
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == "u1-scan.stl"))
        .ok_or_else(|| anyhow!("the uploaded file is not listed: {files}"))?;
    if listed["size"].as_u64() != Some(size) {
        bail!("the case lists the file with size {} instead of {size}", listed["size"]);
    }
    let mut r = report(Kind::Sqlite.name(), size, took);
    r.rss_mib = after.rss_kib as f64 / 1024.0;
    r.rss_peak_mib = peak.max(r.rss_mib);
    r.cpu_cores = after.cores_since(&before);
    r.set("patch_requests", patches);
    r.set("rss_before_mib", (before.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0);
    r.set("rss_growth_mib", ((r.rss_peak_mib - before.rss_kib as f64 / 1024.0) * 10.0).round() / 10.0);
    let stored = dir_bytes(&t.data_dir().join("objects"));
    r.set("stored_bytes", stored);
    r.set("saved_by_compression_pct", ((1.0 - stored as f64 / size as f64) * 1000.0).round() / 10.0);
    Ok(r)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_the_stl_join_up_to_the_whole_file() {
        let stl = Stl { triangles: 1000 };
        let whole = stl.byte_at_range(0, 84 + 50_000);
        assert_eq!(whole.len(), 50_084);
        assert_eq!(u32::from_le_bytes([whole[80], whole[81], whole[82], whole[83]]), 1000);
        let mut joined = Vec::new();
        let cuts = [0u64, 3, 84, 85, 133, 134, 9_999, 50_084];
        for w in cuts.windows(2) {
            joined.extend(stl.byte_at_range(w[0], w[1]));
        }
        assert_eq!(joined, whole);
        assert_eq!(&whole[84..134], &triangle(0));
        assert_eq!(&whole[134..184], &triangle(1));
    }
}
