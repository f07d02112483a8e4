//! The servers under test, each a child process of the harness so that its memory and CPU are
//! its own: the Articula server (SQLite or PostgreSQL), the baseline (this binary's `baseline`
//! subcommand) and the Socket.IO peer (`node peer/server.js`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use articula_protocol::{CaseId, Codec};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::{Endpoint, Wire};
use crate::procstat::{self, Sample};

const PASSWORD: &str = "password-123";
const EMAIL: &str = "d1@lt.test";

/// What runs behind a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The tokio-tungstenite baseline.
    Baseline,
    /// The Articula server on SQLite.
    Sqlite,
    /// The Articula server on PostgreSQL.
    Postgres,
    /// The Socket.IO 4 peer.
    SocketIo,
}

impl Kind {
    /// Name for `--only`.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::SocketIo => "socketio",
        }
    }

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Sqlite => "articula/sqlite",
            Kind::Postgres => "articula/postgres",
            Kind::SocketIo => "socket.io",
        }
    }
}

/// How to start targets.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The `articula` binary.
    pub server: PathBuf,
    /// Where the peer's `server.js` and `node_modules` are.
    pub peer_dir: PathBuf,
    /// A PostgreSQL URL with the right to create databases.
    pub pg_admin_url: String,
    /// Codec the client speaks to Articula targets.
    pub codec: Codec,
    /// Decode every frame fully (smoke).
    pub full_decode: bool,
    /// Extra `ARTICULA_*` settings.
    pub server_env: Vec<(String, String)>,
    /// Events the baseline keeps per case for resumes.
    pub baseline_ring: usize,
}

/// A running target.
pub struct Target {
    /// What it is.
    pub kind: Kind,
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: PathBuf,
    pg_db: Option<(String, String)>,
    http: reqwest::Client,
    token: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn scratch_dir(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "articula-lt-{}-{tag}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Reads lines of the child's stdout until `listening <port>`.
async fn await_listening(child: &mut Child) -> Result<u16> {
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(out).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(p) = line.strip_prefix("listening ") {
            let port = p.trim().parse()?;
            // Keep draining so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(port);
        }
    }
    bail!("the process exited before listening")
}

impl Launcher {
    /// Starts a target of `kind`.
    pub async fn start(&self, kind: Kind) -> Result<Target> {
        match kind {
            Kind::Baseline => self.start_baseline().await,
            Kind::SocketIo => self.start_peer().await,
            Kind::Sqlite | Kind::Postgres => self.start_articula(kind).await,
        }
    }

    async fn start_baseline(&self) -> Result<Target> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["baseline", "--bind", "127.0.0.1:0", "--ring", &self.baseline_ring.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| anyhow!("baseline has no pid"))?;
        let port = await_listening(&mut child).await?;
        Ok(Target::new(Kind::Baseline, child, pid, port, scratch_dir("baseline")?, None, "baseline".into()))
    }

    async fn start_peer(&self) -> Result<Target> {
        if !self.peer_dir.join("node_modules/socket.io").exists() {
            let ok = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&self.peer_dir)
                .status()
                .await
                .context("running npm ci for the Socket.IO peer")?;
            if !ok.success() {
                bail!("npm ci failed in {}", self.peer_dir.display());
            }
        }
        let mut child = Command::new("node")
            .arg(self.peer_dir.join("server.js"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node")?;
        let pid = child.id().ok_or_else(|| anyhow!("peer has no pid"))?;
        let port = await_listening(&mut child).await?;
        Ok(Target::new(Kind::SocketIo, child, pid, port, scratch_dir("peer")?, None, String::new()))
    }

    fn articula_env(&self, dir: &Path, port: u16, db_url: Option<&str>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("ARTICULA_BIND", format!("127.0.0.1:{port}")),
            ("ARTICULA_DATA_DIR", dir.display().to_string()),
            ("ARTICULA_TLS", "off".into()),
            ("ARTICULA_LOG", "warn".into()),
            ("ARTICULA_ARGON2_MEMORY_KIB", "64".into()),
            ("ARTICULA_ARGON2_ITERATIONS", "1".into()),
            ("ARTICULA_WS_COMMANDS_PER_SECOND", "1000000".into()),
            ("ARTICULA_WS_COMMAND_BURST", "1000000".into()),
            ("ARTICULA_LOGIN_RATE_PER_MINUTE", "1000000".into()),
            // Long runs must not outlive the token.
            ("ARTICULA_ACCESS_TOKEN_TTL_SECS", "86400".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(url) = db_url {
            env.push(("ARTICULA_DATABASE_URL".into(), url.into()));
        }
        env.extend(self.server_env.iter().cloned());
        env
    }

    async fn cli(&self, env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = std::process::Command::new(&self.server);
        for (k, _) in inherited_settings() {
            cmd.env_remove(k);
        }
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().with_context(|| format!("running {}", self.server.display()))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        if !out.status.success() {
            bail!("articula {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn start_articula(&self, kind: Kind) -> Result<Target> {
        let dir = scratch_dir(kind.name().rsplit('/').next().unwrap_or("server"))?;
        let port = free_port()?;
        let pg_db = if kind == Kind::Postgres {
            let name = format!("articula_lt_{}", uuid::Uuid::new_v4().simple());
            psql(&self.pg_admin_url, &format!("CREATE DATABASE {name}"))?;
            Some((self.pg_admin_url.clone(), name))
        } else {
            None
        };
        let db_url = pg_db.as_ref().map(|(admin, name)| db_url(admin, name));
        let env = self.articula_env(&dir, port, db_url.as_deref());
        self.cli(&env, &["org", "create", "--name", "LT Clinic", "--kind", "clinic"], None).await?;
        self.cli(
            &env,
            &[
                "user",
                "create",
                "--email",
                EMAIL,
                "--name",
                "D1",
                "--org",
                "LT Clinic",
                "--role",
                "doctor",
                "--password-stdin",
            ],
            Some(PASSWORD),
        )
        .await?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut serve = Command::new(&self.server);
        for (k, _) in inherited_settings() {
            serve.env_remove(k);
        }
        let child = serve
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.server.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("server has no pid"))?;
        let mut t = Target::new(kind, child, pid, port, dir, pg_db, String::new());
        t.await_healthy().await?;
        t.token = t.login().await?;
        Ok(t)
    }
}

/// `ARTICULA_*` variables of the harness's own environment (`ARTICULA_TEST_PG_URL`,
/// `ARTICULA_LT_SERVER`…): the server refuses unknown settings, so a target gets exactly the
/// ones the harness gives it.
fn inherited_settings() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("ARTICULA_")))
}

fn db_url(admin: &str, name: &str) -> String {
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin}/{name}"),
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out =
        std::process::Command::new("psql").args([url, "-q", "-c", sql]).output().context("running psql")?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Target {
    fn new(
        kind: Kind,
        child: Child,
        pid: u32,
        port: u16,
        dir: PathBuf,
        pg_db: Option<(String, String)>,
        token: String,
    ) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(32).build().unwrap_or_default();
        Self { kind, child, pid, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, pg_db, http, token }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Memory and CPU now.
    pub fn sample(&self) -> Result<Sample> {
        procstat::sample(self.pid)
    }

    /// How the client reaches it.
    pub fn endpoint(&self, codec: Codec, full_decode: bool) -> Endpoint {
        let wire = if self.kind == Kind::SocketIo { Wire::SocketIo } else { Wire::Articula(codec) };
        Endpoint { addr: self.addr, wire, token: self.token.clone(), full_decode }
    }

    /// A URL on the target.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The HTTP client (plain HTTP on loopback).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The load user's access token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The target's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log lines (empty for targets without a log).
    pub fn log_lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// The tail of the server's log, for error reports.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn await_healthy(&mut self) -> Result<()> {
        let mut wait = Duration::from_millis(20);
        for _ in 0..40 {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}) while starting:\n{}", self.log_tail());
            }
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        bail!("the server never became healthy:\n{}", self.log_tail())
    }

    async fn login(&self) -> Result<String> {
        let r = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": EMAIL, "password": PASSWORD, "portal": "clinic"}))
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("login failed ({status}): {body}"))
    }

    /// Creates `n` cases owned by the load user (any ids on the baseline and the peer).
    pub async fn create_cases(&self, n: usize) -> Result<Vec<CaseId>> {
        if matches!(self.kind, Kind::Baseline | Kind::SocketIo) {
            return Ok((0..n).map(|_| CaseId::new()).collect());
        }
        futures_util::stream::iter(0..n)
            .map(|i| async move {
                let r = self
                    .http
                    .post(self.url("/api/v1/cases"))
                    .bearer_auth(&self.token)
                    .json(&json!({"label": format!("LT {i}")}))
                    .send()
                    .await?;
                let status = r.status();
                let body: serde_json::Value = r.json().await?;
                body["id"]
                    .as_str()
                    .and_then(|s| s.parse::<CaseId>().ok())
                    .ok_or_else(|| anyhow!("creating a case failed ({status}): {body}"))
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Counters from `/metrics` (empty for targets without one).
    pub async fn metrics(&self) -> Result<Metrics> {
        if matches!(self.kind, Kind::Baseline | Kind::SocketIo) {
            return Ok(Metrics::default());
        }
        let text = self.http.get(self.url("/metrics")).send().await?.text().await?;
        Ok(Metrics::parse(&text))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::env::var_os("LT_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some((admin, name)) = &self.pg_db {
            // The server may still hold connections for a moment; FORCE ends them.
            let _ = psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Prometheus samples by full name with labels, e.g. `articula_resumes_total{source="store"}`.
#[derive(Clone, Debug, Default)]
pub struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Self {
        let map = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self(map)
    }

    /// A sample's value (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }
}
