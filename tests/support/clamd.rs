//! A real ClamAV `clamd` for tests: started in the foreground on a free loopback port, with its own
//! configuration and a signature database of test hashes only (no download needed), ready once it
//! answers `PING`, killed when dropped.
//!
//! Self-contained so any test crate can include it:
//! `#[path = "../support/clamd.rs"] mod clamd;` (the path is relative to the including file).
//! Needs Debian's `clamav-daemon` (`.ci/deps.sh` installs it); `$CLAMD` overrides the binary.
//!
//! The database always holds EICAR (`Eicar-Test`); [`ClamdBuilder::signature`] adds the SHA-256
//! and size of any blob. clamd reports test signatures with `.UNOFFICIAL` appended, see
//! [`reported`].

#![allow(dead_code)] // each including crate uses part of it

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// EICAR's MD5 and size (`.hdb`: `md5:size:name`).
const EICAR_HDB: &str = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test\n";
/// Loading a two-line database takes well under a second; this only bounds a broken install.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Attempts when the free port found is taken again before clamd binds it.
const ATTEMPTS: usize = 3;

/// The name clamd reports for a test signature `name`.
pub fn reported(name: &str) -> String {
    format!("{name}.UNOFFICIAL")
}

/// A running clamd.
pub struct Clamd {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// What the clamd to start knows and allows.
pub struct ClamdBuilder {
    signatures: Vec<(Vec<u8>, String)>,
    stream_max_length: String,
}

impl Clamd {
    /// A clamd that knows EICAR, with a 2000M stream limit; add signatures on the builder.
    pub fn builder() -> ClamdBuilder {
        ClamdBuilder { signatures: Vec::new(), stream_max_length: "2000M".to_owned() }
    }

    /// Its TCP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills it and waits for it to exit: its port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        read_logs(self.dir.path())
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ClamdBuilder {
    /// Adds a signature matching exactly `content` (its SHA-256 and size), reported as
    /// [`reported(name)`](reported).
    pub fn signature(mut self, content: &[u8], name: &str) -> Self {
        self.signatures.push((content.to_vec(), name.to_owned()));
        self
    }

    /// Sets clamd's `StreamMaxLength` (e.g. `1M`).
    pub fn stream_max_length(mut self, limit: &str) -> Self {
        self.stream_max_length = limit.to_owned();
        self
    }

    /// Starts clamd and returns once it answers `PING`. Blocking: from async code, call it in
    /// `spawn_blocking`. Panics with clamd's log if it does not start.
    pub fn start(self) -> Clamd {
        let dir = tempfile::tempdir().expect("temp dir for clamd");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("clamd database dir");
        std::fs::write(db.join("test.hdb"), EICAR_HDB).expect("write test.hdb");
        let hsb: String = self
            .signatures
            .iter()
            .map(|(content, name)| format!("{}:{}:{name}\n", hex(&Sha256::digest(content)), content.len()))
            .collect();
        if !hsb.is_empty() {
            // `.hsb`: SHA-1/SHA-256 hash signatures, `hash:size:name`.
            std::fs::write(db.join("test.hsb"), hsb).expect("write test.hsb");
        }
        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let addr = free_port();
            let config = dir.path().join("clamd.conf");
            std::fs::write(&config, config_text(dir.path(), &db, addr, &self.stream_max_length))
                .expect("write clamd.conf");
            let output = std::fs::File::create(dir.path().join("clamd.out")).expect("clamd output file");
            let errors = output.try_clone().expect("clamd output file");
            let mut child = Command::new(binary())
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(output)
                .stderr(errors)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {} (install clamav-daemon): {e}", binary().display()));
            match wait_ready(&mut child, addr) {
                Ok(()) => return Clamd { child: Some(child), addr, dir },
                Err(failure) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = format!("{failure}\n{}", read_logs(dir.path()));
                }
            }
        }
        panic!("clamd did not start: {last_failure}");
    }
}

fn config_text(dir: &Path, db: &Path, addr: SocketAddr, stream_max_length: &str) -> String {
    // No LocalSocket and no User: TCP only, running as whoever runs the tests.
    format!(
        "Foreground yes\n\
         TCPAddr {ip}\n\
         TCPSocket {port}\n\
         DatabaseDirectory {db}\n\
         LogFile {log}\n\
         PidFile {pid}\n\
         StreamMaxLength {stream_max_length}\n\
         MaxFileSize 2000M\n\
         MaxScanSize 2000M\n\
         LogClean yes\n\
         SelfCheck 0\n",
        ip = addr.ip(),
        port = addr.port(),
        db = db.display(),
        log = dir.join("clamd.log").display(),
        pid = dir.join("clamd.pid").display(),
    )
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLAMD") {
        return path.into();
    }
    let debian = Path::new("/usr/sbin/clamd");
    if debian.exists() { debian.to_path_buf() } else { PathBuf::from("clamd") }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// Polls `PING` with a growing backoff until clamd answers, exits or the deadline passes.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut backoff = Duration::from_millis(10);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("clamd exited with {status}"));
        }
        if ping(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("clamd did not answer PING within {READY_WITHIN:?}"));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
}

fn ping(addr: SocketAddr) -> bool {
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"zPING\0")?;
        let mut reply = Vec::new();
        let mut byte = [0_u8; 1];
        while stream.read(&mut byte)? == 1 && byte[0] != 0 {
            reply.push(byte[0]);
        }
        Ok(reply)
    };
    exchange().is_ok_and(|reply| reply == b"PONG")
}

fn read_logs(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("--- clamd.log\n{}--- output\n{}", read("clamd.log"), read("clamd.out"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
