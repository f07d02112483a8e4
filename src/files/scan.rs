//! Malware scanning before a file is committed.
//!
//! The EICAR test file is always refused, recognised here by its bytes, so the refusal path can be
//! checked on any install. When ClamAV's `clamd` is configured (TCP), every upload is also
//! streamed to it with `INSTREAM` while it arrives: `[u32 big-endian length][bytes]` chunks, then a
//! zero-length chunk, then one reply (`stream: OK`, `stream: <name> FOUND` or `… ERROR`).
//!
//! Scanning fails closed: an unreachable, slow or refusing clamd (its `StreamMaxLength` exceeded,
//! a protocol error) is a [`ScanError`], never a clean verdict. clamd's own limits matter too: a
//! file above its `MaxFileSize`/`MaxScanSize` is reported clean without being scanned unless
//! `AlertExceedsMax` is set, so its limits must cover the largest upload.
//!
//! No ClamAV client crate is used: `clamav-client` scans a whole stream in one call, while an
//! upload arrives here as PATCH requests that push chunks; the protocol is a few lines.

use std::net::SocketAddr;
use std::time::Duration;

use articula_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The EICAR anti-malware test file.
pub const EICAR: &[u8; 68] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The signature name reported for EICAR when it is recognised here rather than by clamd.
pub const EICAR_SIGNATURE: &str = "Eicar-Test-Signature";
/// The EICAR file may be followed by whitespace up to this length in all.
const EICAR_MAX_LEN: usize = 128;
/// How long any single wait on clamd may last: connecting, accepting one chunk, the verdict.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest chunk sent to clamd: bounds the frame buffer held per session.
const MAX_CHUNK: usize = 64 * 1024;
/// A reply longer than this is not clamd's.
const MAX_REPLY: usize = 4096;
/// How long to wait for clamd's reason after it closed a stream we were writing.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// Starts scans; cheap to clone.
#[derive(Clone, Debug)]
pub struct Scanner {
    clamd: Option<SocketAddr>,
    timeout: Duration,
}

/// The outcome of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// Malware found: the signature's name (e.g. `Eicar-Test-Signature`).
    Infected(String),
}

impl Verdict {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::Clean)
    }
}

/// The scan could not be done; the file must not be committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// clamd is unreachable, too slow, refused the stream (size limit) or answered nonsense.
    #[error("malware scanner unavailable: {0}")]
    Unavailable(String),
}

impl ScanError {
    /// The error code it is answered with.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Unavailable
    }
}

impl From<ScanError> for crate::error::ApiError {
    fn from(e: ScanError) -> Self {
        // The cause names the scanner's address and replies: logged, not answered.
        tracing::warn!(error = %e, "malware scan failed");
        Self::new(ErrorCode::Unavailable, "the malware scanner is unavailable; retry later")
    }
}

impl Scanner {
    /// A scanner; `clamd` is the daemon's TCP address, if one is configured.
    pub fn new(clamd: Option<SocketAddr>) -> Self {
        Self { clamd, timeout: DEFAULT_TIMEOUT }
    }

    /// Bounds each wait on clamd (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configured clamd.
    pub fn clamd(&self) -> Option<SocketAddr> {
        self.clamd
    }

    /// Whether clamd answers `PING` (always `Ok` when none is configured): for readiness checks.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let Some(addr) = self.clamd else { return Ok(()) };
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(b"zPING\0").await?;
            read_reply(&mut stream).await
        };
        match timeout(self.timeout, exchange).await {
            Ok(Ok(reply)) if reply == b"PONG" => Ok(()),
            Ok(Ok(reply)) => Err(unavailable(format!("clamd answered PING with {:?}", lossy(&reply)))),
            Ok(Err(e)) => Err(unavailable(format!("clamd at {addr}: {e}"))),
            Err(_) => Err(unavailable(format!("clamd at {addr} did not answer within {:?}", self.timeout))),
        }
    }

    /// Starts scanning one file: connects to clamd when configured.
    pub async fn start(&self) -> Result<ScanSession, ScanError> {
        let clamd = match self.clamd {
            Some(addr) => Some(Instream::open(addr, self.timeout).await?),
            None => None,
        };
        Ok(ScanSession { eicar: EicarCheck::default(), clamd, broken: None })
    }
}

/// The scan of one file, fed in order while it uploads.
pub struct ScanSession {
    eicar: EicarCheck,
    clamd: Option<Instream>,
    /// Set once clamd failed: every later call fails the same way (never a clean verdict).
    broken: Option<ScanError>,
}

impl ScanSession {
    /// Feeds the next bytes (streamed to clamd in chunks of at most 64 KiB).
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        self.eicar.update(chunk);
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let Some(clamd) = &mut self.clamd else { return Ok(()) };
        if let Err(e) = clamd.send(chunk).await {
            self.clamd = None;
            self.broken = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Ends the stream and returns the verdict. A hit wins over a scanner failure: EICAR is
    /// refused even when clamd is down.
    pub async fn finish(self) -> Result<Verdict, ScanError> {
        let clamd = match (self.broken, self.clamd) {
            (Some(e), _) => Some(Err(e)),
            (None, Some(clamd)) => Some(clamd.finish().await),
            (None, None) => None,
        };
        match clamd {
            Some(Ok(Verdict::Infected(name))) => Ok(Verdict::Infected(name)),
            _ if self.eicar.matches() => Ok(Verdict::Infected(EICAR_SIGNATURE.to_owned())),
            Some(Err(e)) => Err(e),
            Some(Ok(Verdict::Clean)) | None => Ok(Verdict::Clean),
        }
    }
}

impl std::fmt::Debug for ScanSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanSession")
            .field("clamd", &self.clamd.as_ref().map(|c| c.addr))
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Recognises the EICAR test file: its 68 bytes at the start, then only whitespace (space, tab,
/// CR, LF, Ctrl-Z), 128 bytes at most in all — as the EICAR definition says.
#[derive(Default)]
pub(crate) struct EicarCheck {
    /// The first bytes, one more than the longest EICAR file.
    head: Vec<u8>,
    len: u64,
}

impl EicarCheck {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.len = self.len.saturating_add(chunk.len() as u64);
        let room = (EICAR_MAX_LEN + 1).saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..room]);
    }

    pub(crate) fn matches(&self) -> bool {
        self.len <= EICAR_MAX_LEN as u64
            && self.head.starts_with(EICAR)
            && self.head[EICAR.len()..].iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x1A))
    }
}

/// One `INSTREAM` exchange with clamd.
struct Instream {
    addr: SocketAddr,
    stream: TcpStream,
    /// Length prefix and payload of one chunk, written at once: two small writes would meet
    /// Nagle's algorithm and delayed ACKs.
    frame: Vec<u8>,
    timeout: Duration,
}

impl Instream {
    async fn open(addr: SocketAddr, wait: Duration) -> Result<Self, ScanError> {
        let stream = match timeout(wait, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(unavailable(format!("cannot connect to clamd at {addr}: {e}"))),
            Err(_) => return Err(unavailable(format!("clamd at {addr} did not accept within {wait:?}"))),
        };
        let mut instream = Self { addr, stream, frame: Vec::with_capacity(4 + MAX_CHUNK), timeout: wait };
        instream.write(b"zINSTREAM\0").await?;
        Ok(instream)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), ScanError> {
        let mut frame = std::mem::take(&mut self.frame);
        for piece in data.chunks(MAX_CHUNK) {
            frame.clear();
            // A piece is at most MAX_CHUNK bytes, so its length fits in a u32.
            frame.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            frame.extend_from_slice(piece);
            self.write(&frame).await?;
        }
        self.frame = frame;
        Ok(())
    }

    async fn finish(mut self) -> Result<Verdict, ScanError> {
        self.write(&0_u32.to_be_bytes()).await?;
        match timeout(self.timeout, read_reply(&mut self.stream)).await {
            Ok(Ok(reply)) => parse_reply(&reply),
            Ok(Err(e)) => Err(unavailable(format!("reading clamd's verdict failed: {e}"))),
            Err(_) => Err(unavailable(format!("clamd gave no verdict within {:?}", self.timeout))),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        match timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // clamd closes a stream it refuses (size limit) after saying why.
                match timeout(REASON_WAIT, read_reply(&mut self.stream)).await {
                    Ok(Ok(reply)) if !reply.is_empty() => {
                        Err(unavailable(format!("clamd refused the stream: {}", lossy(&reply))))
                    }
                    _ => Err(unavailable(format!("writing to clamd at {} failed: {e}", self.addr))),
                }
            }
            Err(_) => {
                Err(unavailable(format!("clamd at {} accepted no data for {:?}", self.addr, self.timeout)))
            }
        }
    }
}

/// Reads a NUL-terminated reply (or up to EOF), without the NUL.
async fn read_reply(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    let mut buf = [0_u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(reply);
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = memchr::memchr(0, &reply) {
            reply.truncate(end);
            return Ok(reply);
        }
        if reply.len() > MAX_REPLY {
            return Err(std::io::Error::other("the reply is too long"));
        }
    }
}

/// Only `OK` is clean; anything unexpected fails closed.
fn parse_reply(reply: &[u8]) -> Result<Verdict, ScanError> {
    let text = lossy(reply);
    let text = text.trim();
    let body = text.strip_prefix("stream:").map_or(text, str::trim);
    if body == "OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        let name = name.trim();
        return Ok(Verdict::Infected(if name.is_empty() { "unknown".to_owned() } else { name.to_owned() }));
    }
    if text.is_empty() {
        return Err(unavailable("clamd closed the connection without a verdict".to_owned()));
    }
    Err(unavailable(format!("clamd answered {text:?}")))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unavailable(why: String) -> ScanError {
    ScanError::Unavailable(why)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

    use tokio::net::TcpListener;

    use super::*;

    async fn scan_locally(chunks: &[&[u8]]) -> Verdict {
        let mut session = Scanner::new(None).start().await.unwrap();
        for chunk in chunks {
            session.feed(chunk).await.unwrap();
        }
        session.finish().await.unwrap()
    }

    fn eicar_with(suffix: &[u8]) -> Vec<u8> {
        let mut file = EICAR.to_vec();
        file.extend_from_slice(suffix);
        file
    }

    #[tokio::test]
    async fn eicar_is_refused_without_clamd_however_it_is_cut() {
        let infected = Verdict::Infected(EICAR_SIGNATURE.to_owned());
        assert_eq!(scan_locally(&[EICAR]).await, infected);
        let bytes: Vec<&[u8]> = EICAR.chunks(1).collect();
        assert_eq!(scan_locally(&bytes).await, infected);
        assert_eq!(scan_locally(&[&eicar_with(b"\r\n")]).await, infected);
        assert_eq!(scan_locally(&[&eicar_with(&[b' '; 60])]).await, infected, "128 bytes in all");
        assert_eq!(scan_locally(&[&eicar_with(b"\t\x1A\n")]).await, infected);
    }

    #[tokio::test]
    async fn near_eicar_files_are_clean_without_clamd() {
        assert_eq!(scan_locally(&[&eicar_with(&[b' '; 61])]).await, Verdict::Clean, "129 bytes");
        assert_eq!(scan_locally(&[&eicar_with(b"x")]).await, Verdict::Clean);
        assert_eq!(scan_locally(&[&EICAR[..67]]).await, Verdict::Clean);
        assert_eq!(scan_locally(&[b"  ", EICAR]).await, Verdict::Clean, "not at the start");
        assert_eq!(scan_locally(&[]).await, Verdict::Clean);
    }

    #[test]
    fn replies_are_parsed_and_only_ok_is_clean() {
        assert_eq!(parse_reply(b"stream: OK"), Ok(Verdict::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test.UNOFFICIAL FOUND"),
            Ok(Verdict::Infected("Eicar-Test.UNOFFICIAL".to_owned()))
        );
        assert!(matches!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR"),
            Err(ScanError::Unavailable(m)) if m.contains("size limit")
        ));
        assert!(parse_reply(b"stream: lstat() failed: No such file. ERROR").is_err());
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"UNKNOWN COMMAND").is_err());
        assert!(parse_reply(b"stream: OKAY").is_err());
    }

    #[tokio::test]
    async fn a_silent_clamd_times_out_as_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and reads everything, never answers.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut sink = [0_u8; 4096];
            while socket.read(&mut sink).await.unwrap_or(0) > 0 {}
        });
        let scanner = Scanner::new(Some(addr)).with_timeout(Duration::from_millis(300));
        let mut session = scanner.start().await.unwrap();
        session.feed(b"hello").await.unwrap();
        let verdict = session.finish().await;
        assert!(matches!(verdict, Err(ScanError::Unavailable(m)) if m.contains("no verdict")));
        server.abort();
    }

    #[tokio::test]
    async fn a_clamd_that_hangs_up_is_unavailable_not_clean() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let mut session = Scanner::new(Some(addr)).start().await.unwrap();
        server.await.unwrap();
        // Writes may still land in the socket buffer; the verdict can never be clean.
        let mut failed = false;
        for _ in 0..64 {
            if session.feed(&[0; 64 * 1024]).await.is_err() {
                failed = true;
                break;
            }
        }
        let verdict = session.finish().await;
        assert!(verdict.is_err(), "{verdict:?} (a feed failed: {failed})");
    }

    #[tokio::test]
    async fn eicar_is_refused_even_when_clamd_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut sink = [0_u8; 1024];
            let _ = socket.read(&mut sink).await;
            socket.write_all(b"stream: something broke. ERROR\0").await.unwrap();
        });
        let mut session = Scanner::new(Some(addr)).start().await.unwrap();
        session.feed(EICAR).await.unwrap();
        assert_eq!(session.finish().await, Ok(Verdict::Infected(EICAR_SIGNATURE.to_owned())));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let scanner = Scanner::new(Some(addr));
        assert!(matches!(scanner.start().await, Err(ScanError::Unavailable(_))));
        assert!(scanner.ping().await.is_err());
        assert!(Scanner::new(None).ping().await.is_ok());
    }
}
