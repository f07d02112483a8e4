//! Faults of the parts underneath the server: the database restarting under load (a PostgreSQL
//! cluster of the test's own, stopped with `-m immediate` and started again) and a full disk
//! (SQLite on a small tmpfs). While the fault lasts, commands are refused with a retryable error
//! and nothing is acknowledged that is not durable; when the part returns, the server recovers by
//! itself, and every acknowledged message is there exactly once, in a gapless log.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use articula_protocol::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Debian's PostgreSQL 15 binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Messages sent in one write (a pipelining client).
const WINDOW: usize = 8;
/// How long a part may take to come back and the server to notice.
const RECOVERY: Duration = Duration::from_secs(60);

/// Settings for tests that send many commands quickly.
fn no_rate_limit(s: &mut articula::config::Settings) {
    s.ws_commands_per_second = 1_000_000;
    s.ws_command_burst = 1_000_000;
}

/// A socket posting chat messages to one case, pipelined, each with its own client id, keeping
/// every answer.
struct Publisher {
    ws: Ws,
    case: CaseId,
    /// Text padding (a full disk fills faster with longer messages).
    pad: String,
    sent: usize,
    /// Every id sent, with its text (a retry sends the same text under the same id).
    texts: BTreeMap<String, String>,
    /// Acknowledged ids and their seqs.
    acked: BTreeMap<String, u64>,
    /// Ids refused (`unavailable`) and not acknowledged since.
    refused: BTreeMap<String, String>,
}

impl Publisher {
    fn new(ws: Ws, case: CaseId, pad: usize) -> Self {
        Self {
            ws,
            case,
            pad: if pad == 0 { String::new() } else { format!(" {}", "x".repeat(pad)) },
            sent: 0,
            texts: BTreeMap::new(),
            acked: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    /// Sends a window of new messages in one write; answers come with [`Publisher::collect`].
    async fn send_window(&mut self) -> Vec<String> {
        let frames: Vec<(String, ClientBody)> = (0..WINDOW)
            .map(|_| {
                self.sent += 1;
                let id = format!("p{}", self.sent);
                let text = format!("m{}{}", self.sent, self.pad);
                self.texts.insert(id.clone(), text.clone());
                (id, post(self.case, &text))
            })
            .collect();
        self.ws.send_all(&frames).await;
        frames.into_iter().map(|(id, _)| id).collect()
    }

    /// Waits for one answer per id and records it; returns (acked, refused). Any answer but an
    /// ack or `unavailable` fails the test: a fault underneath is never the client's fault, and
    /// never a reason to stop retrying.
    async fn collect(&mut self, ids: &[String]) -> (usize, usize) {
        let (mut acked, mut refused) = (0, 0);
        for (id, answer) in self.ws.answers_in_order(ids).await {
            match answer {
                Ok(Some(seq)) => {
                    acked += 1;
                    self.refused.remove(&id);
                    assert!(self.acked.insert(id.clone(), seq).is_none_or(|s| s == seq), "{id} acked twice");
                }
                Err(e) if e.code == ErrorCode::Unavailable => {
                    refused += 1;
                    if !self.acked.contains_key(&id) {
                        self.refused.insert(id.clone(), self.texts[&id].clone());
                    }
                }
                other => panic!("{id}: expected an ack or `unavailable`, got {other:?}"),
            }
        }
        (acked, refused)
    }

    async fn round(&mut self) -> (usize, usize) {
        let ids = self.send_window().await;
        self.collect(&ids).await
    }

    /// Sends new windows until one is acknowledged whole (the server recovered by itself).
    async fn until_acked(&mut self, what: &str) {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let (_, refused) = self.round().await;
            if refused == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: the server did not recover by itself");
        }
    }

    /// Retries every refused command with its id and text: each is acknowledged once, a
    /// command that was stored although its answer was lost with the connection included.
    async fn retry_refused(&mut self) {
        let deadline = Instant::now() + RECOVERY;
        while !self.refused.is_empty() {
            assert!(Instant::now() < deadline, "retries still refused: {:?}", self.refused.keys());
            let frames: Vec<(String, ClientBody)> =
                self.refused.iter().take(64).map(|(id, text)| (id.clone(), post(self.case, text))).collect();
            self.ws.send_all(&frames).await;
            let ids: Vec<String> = frames.into_iter().map(|(id, _)| id).collect();
            self.collect(&ids).await;
        }
    }

    /// Every message sent was acknowledged, is in the case's messages exactly once, under the
    /// seq of its ack, and the log has no gap.
    async fn assert_exactly_once(&self, app: &TestApp, reader: &Session) {
        assert!(self.refused.is_empty());
        assert_eq!(self.acked.len(), self.texts.len(), "every message is acknowledged in the end");
        let mut by_text: HashMap<String, Vec<u64>> = HashMap::new();
        let mut before: Option<u64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let page =
                app.get_json(&format!("/api/v1/cases/{}/messages?limit=200{q}", self.case), reader).await;
            let page = page.as_array().expect("messages").clone();
            let Some(first) = page.first() else { break };
            before = first["seq"].as_u64();
            for m in &page {
                let text = m["text"].as_str().expect("text").to_owned();
                by_text.entry(text).or_default().push(m["seq"].as_u64().expect("seq"));
            }
        }
        for (id, seq) in &self.acked {
            let text = &self.texts[id];
            assert_eq!(
                by_text.get(text),
                Some(&vec![*seq]),
                "{id}: stored exactly once, at the seq of its ack"
            );
        }
        assert_eq!(by_text.len(), self.texts.len(), "nothing stored that was not sent");
        // The log: 1..=head, no gap, no seq twice.
        let mut seqs = Vec::new();
        let mut after = 0;
        loop {
            let page = app
                .get_json(&format!("/api/v1/cases/{}/events?after={after}&limit=1000", self.case), reader)
                .await;
            let events = page["events"].as_array().expect("events");
            seqs.extend(events.iter().map(|e| e["seq"].as_u64().expect("seq")));
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => break,
            }
        }
        let head = *seqs.last().expect("events");
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "the log is gapless");
    }
}

/// The answer of a REST write while the database cannot write: 503 `unavailable`, whose message
/// says nothing of the database's own.
async fn assert_rest_write_unavailable(app: &TestApp, doctor: &Session) {
    let res = app.post("/api/v1/cases", doctor, json!({"label": "While it is down"})).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "unavailable", "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_lowercase();
    for leak in ["sql", "database", "disk", "connection", "postgres"] {
        assert!(!message.contains(leak), "the message leaks {leak:?}: {message}");
    }
}

/// `GET /healthz`'s status.
async fn health(app: &TestApp) -> StatusCode {
    app.http.get(app.path("/healthz")).send().await.expect("healthz").status()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL restarted under load

/// A PostgreSQL cluster of the test's own (the shared server is left alone), stopped on drop.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
    /// `runuser -u postgres --` when running as root (initdb refuses root).
    as_postgres: bool,
}

impl OwnPostgres {
    /// Initialises and starts a cluster; `None` when the binaries are not installed.
    fn start() -> Option<Self> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return None;
        }
        let as_postgres = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let dir = tempfile::Builder::new().prefix("articula-pg-").tempdir().expect("tempdir");
        if as_postgres {
            let out = Command::new("chown").arg("postgres:").arg(dir.path()).output().expect("chown");
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("port").port();
        let pg = Self { dir, port, as_postgres };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        pg.ctl_start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, bin: &str) -> Command {
        let path = PathBuf::from(PG_BIN).join(bin);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, bin: &str, args: &[&str]) {
        let out = self.command(bin).args(args).output().expect(bin);
        assert!(
            out.status.success(),
            "{bin}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl_start(&self) {
        let opts = format!("-c listen_addresses=127.0.0.1 -p {} -k {}", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "-t", "60", "start"]);
    }

    /// Kills the server at once (no checkpoint, connections cut): a crash, as far as clients see.
    fn stop_immediate(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "-w", "stop"]).output();
    }
}

#[actix_web::test]
async fn a_database_restart_under_load_loses_nothing_and_recovers_by_itself() {
    let Some(pg) = OwnPostgres::start() else {
        println!("skipped: no PostgreSQL binaries in {PG_BIN}");
        return;
    };
    let app = spawn_app_on(&pg.url(), no_rate_limit).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut p = Publisher::new(app.ws(&w.doctor, Codec::Json).await, case, 0);
    for _ in 0..5 {
        assert_eq!(p.round().await, (WINDOW, 0), "all acked while the database is up");
    }

    // Killed with commands in flight: those may be acked (committed before) or refused.
    let in_flight = p.send_window().await;
    pg.stop_immediate();
    p.collect(&in_flight).await;
    // While it is down: every command is refused at once with a retryable error, none acked.
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(p.round().await, (0, WINDOW), "refused while the database is down");
        assert!(started.elapsed() < Duration::from_secs(8), "refusals are quick: {:?}", started.elapsed());
    }
    assert_rest_write_unavailable(&app, &w.doctor).await;
    assert_eq!(health(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    pg.ctl_start();
    p.until_acked("database restarted").await;
    let deadline = Instant::now() + RECOVERY;
    while health(&app).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "healthz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.retry_refused().await;
    for _ in 0..3 {
        assert_eq!(p.round().await, (WINDOW, 0), "all acked again");
    }
    p.assert_exactly_once(&app, &w.doctor).await;
}

// ---------------------------------------------------------------------------------------------
// A full disk under SQLite

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts `mib` MiB; `None` when this process may not mount.
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::Builder::new().prefix("articula-full-").tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            println!("mount: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the stopping server may still hold the database open.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}

/// Appends to `path` until the filesystem has no room left (again: what was freed since, e.g.
/// by a checkpoint truncating the write-ahead log, is taken too).
fn fill(path: &Path) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("filler");
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![0xa5u8; size];
        loop {
            match f.write(&chunk) {
                Ok(n) if n == size => continue,
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filler: {e}"),
            }
        }
    }
}

#[actix_web::test]
async fn a_full_disk_refuses_retryably_and_recovers_by_itself() {
    let Some(disk) = Tmpfs::mount(16) else {
        println!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("articula.db").display());
    let app = spawn_app_on(&url, no_rate_limit).await;
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    let mut p = Publisher::new(app.ws(&w.doctor, Codec::Json).await, case, 2000);
    for _ in 0..5 {
        assert_eq!(p.round().await, (WINDOW, 0), "all acked while there is room");
    }

    // Full: what is committed from here on may still find room in the log's file, but soon
    // nothing does, and then every command is refused with a retryable error.
    let filler = disk.path().join("filler");
    let deadline = Instant::now() + RECOVERY;
    loop {
        fill(&filler);
        let (_, refused) = p.round().await;
        if refused == WINDOW {
            break;
        }
        assert!(Instant::now() < deadline, "a full disk never refused a command");
    }
    for _ in 0..3 {
        fill(&filler);
        assert_eq!(p.round().await, (0, WINDOW), "refused while the disk is full");
    }
    fill(&filler);
    assert_rest_write_unavailable(&app, &w.doctor).await;
    // A refusal changed nothing: no refused command is in the log.
    let stored: Vec<String> = articula::with_db!(&app.state.db, pool => {
        sqlx::query_scalar("SELECT client_id FROM events WHERE case_id = $1 AND client_id IS NOT NULL")
            .bind(case.to_string())
            .fetch_all(pool)
            .await
            .expect("client ids")
    });
    let refused_but_stored: Vec<&String> = stored.iter().filter(|id| p.refused.contains_key(*id)).collect();
    assert!(refused_but_stored.is_empty(), "refused yet stored: {refused_but_stored:?}");

    // Room again: the same server, not restarted, acks again by itself.
    std::fs::remove_file(&filler).expect("remove filler");
    p.until_acked("disk freed").await;
    p.retry_refused().await;
    for _ in 0..3 {
        assert_eq!(p.round().await, (WINDOW, 0), "all acked again");
    }
    p.assert_exactly_once(&app, &w.doctor).await;
}
