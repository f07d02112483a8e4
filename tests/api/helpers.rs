//! Test harness: a real server per test (port 0, TLS 1.3 with its self-signed certificate, a
//! fresh SQLite file or a fresh PostgreSQL database), real HTTPS and WebSocket clients.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::web;
use articula::config::{Secret, Settings};
use articula::startup::Application;
use articula::state::AppState;
use articula::store::users::UserStatus;
use articula_actors::clock::now_ms;
use articula_protocol::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body against a fresh app on each backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await).await
            }
            #[actix_web::test]
            async fn postgres() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await).await
            }
        }
    )+};
}

/// Like [`both_backends!`], with settings changed by `$tweak`, a `fn(&mut Settings)` of the calling module.
#[macro_export]
macro_rules! both_backends_with {
    ($tweak:ident; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, super::$tweak).await).await
            }
            #[actix_web::test]
            async fn postgres() {
                super::$name($crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, super::$tweak).await).await
            }
        }
    )+};
}

pub struct TestApp {
    pub backend: Backend,
    pub url: String,
    pub port: u16,
    pub state: web::Data<AppState>,
    pub settings: Settings,
    pub cert_pem: Vec<u8>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_rt::spawn(async move { h.stop(false).await });
        // Each PostgreSQL test owns a database; left behind, hundreds of them slow the server
        // down for everything that runs after (the load tests included). FORCE ends the pool's
        // connections, which the stopping server no longer needs.
        if let Some(url) = self.settings.database_url.as_ref() {
            drop_pg_db(url.expose());
        }
    }
}

/// Drops a database [`fresh_pg_db`] made (nothing for other URLs).
pub fn drop_pg_db(url: &str) {
    if let Some(name) = pg_db_name(url) {
        let _ = std::process::Command::new("psql")
            .arg(pg_admin_url())
            .arg("-qc")
            .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .output();
    }
}

/// The name of a database this harness created, from its URL.
fn pg_db_name(url: &str) -> Option<&str> {
    url.rsplit_once('/').map(|(_, n)| n).filter(|n| n.starts_with("articula_t_"))
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn test_settings(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        workers: 2,
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        log: "warn".into(),
        // A silent upload body ends quickly in tests (the cut-connection test relies on it).
        upload_idle_secs: 2,
        ..Default::default()
    };
    if backend == Backend::Postgres {
        s.database_url = Some(Secret::new(fresh_pg_db()));
        s.database_max_connections = 8;
    }
    s
}

fn pg_admin_url() -> String {
    std::env::var("ARTICULA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty PostgreSQL database for one test (dropped by `make test` before each run).
pub fn fresh_pg_db() -> String {
    let name = format!("articula_t_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::Relaxed));
    let admin = pg_admin_url();
    let out = std::process::Command::new("psql")
        .arg(&admin)
        .arg("-qc")
        .arg(format!("CREATE DATABASE \"{name}\""))
        .output()
        .expect("psql must be installed to run the PostgreSQL tests");
    assert!(out.status.success(), "creating {name}: {}", String::from_utf8_lossy(&out.stderr));
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
    format!("{base}/{name}")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(backend, dir.path());
    tweak(&mut settings);
    // ARTICULA_TEST_LOG=debug (a log filter) shows the servers' logs while debugging a test.
    if let Ok(filter) = std::env::var("ARTICULA_TEST_LOG") {
        articula::telemetry::init(&Settings {
            log: filter,
            log_format: articula::config::LogFormat::Pretty,
            ..settings.clone()
        });
    }
    let app = Application::build(settings.clone()).await.expect("build app");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    actix_rt::spawn(app.run_until_stopped());
    let (cert_path, _) = articula::tls::auto_paths(dir.path());
    let cert_pem = std::fs::read(cert_path).expect("self-signed cert");
    let http = client(&cert_pem, false);
    TestApp {
        backend,
        url: format!("https://127.0.0.1:{port}"),
        port,
        state,
        settings,
        cert_pem,
        http,
        dir,
        handle,
    }
}

pub fn client(cert_pem: &[u8], cookies: bool) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(cert_pem).expect("cert");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .cookie_store(cookies)
        .build()
        .expect("client")
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: UserId,
    pub session_id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
    pub csrf: String,
}

/// A clinic, its lab and a foreign clinic and lab, with one user per role.
pub struct World {
    pub clinic: OrgId,
    pub lab: OrgId,
    pub other_clinic: OrgId,
    pub other_lab: OrgId,
    pub doctor: Session,
    pub doctor2: Session,
    pub admin: Session,
    pub owner: Session,
    pub auditor: Session,
    pub tech: Session,
    pub lab_admin: Session,
    pub foreign_doctor: Session,
    pub foreign_admin: Session,
    pub foreign_tech: Session,
}

impl TestApp {
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.url)
    }

    pub async fn org(&self, name: &str, kind: OrgKind) -> OrgId {
        self.state.db.create_org(name, kind, now_ms()).await.expect("org").id
    }

    pub async fn user(&self, email: &str, org: OrgId, role: Role) -> UserId {
        let hash = self.state.auth.passwords().hash(PASSWORD).await.expect("hash");
        let id = self
            .state
            .db
            .create_user(email, email, Some(&hash), UserStatus::Active, now_ms())
            .await
            .expect("user");
        self.state.db.add_membership(id, org, role, now_ms()).await.expect("membership");
        id
    }

    pub async fn login_raw(&self, email: &str, password: &str, portal: &str) -> reqwest::Response {
        self.http
            .post(self.path("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password, "portal": portal}))
            .send()
            .await
            .expect("login request")
    }

    pub async fn login(&self, email: &str, portal: &str) -> Session {
        let res = self.login_raw(email, PASSWORD, portal).await;
        assert_eq!(res.status(), StatusCode::OK, "login {email}");
        let v: Value = res.json().await.expect("json");
        Session {
            user_id: v["user"]["id"].as_str().and_then(|s| s.parse().ok()).expect("user id"),
            email: email.into(),
            session_id: v["session_id"].as_str().expect("session id").into(),
            access: v["access_token"].as_str().expect("access").into(),
            refresh: v["refresh_token"].as_str().expect("refresh").into(),
            csrf: v["csrf_token"].as_str().expect("csrf").into(),
        }
    }

    pub async fn member(&self, email: &str, org: OrgId, role: Role, portal: &str) -> Session {
        self.user(email, org, role).await;
        self.login(email, portal).await
    }

    pub async fn world(&self) -> World {
        let clinic = self.org("Smile Clinic", OrgKind::Clinic).await;
        let lab = self.org("Precise Lab", OrgKind::Lab).await;
        let other_clinic = self.org("Other Clinic", OrgKind::Clinic).await;
        let other_lab = self.org("Other Lab", OrgKind::Lab).await;
        World {
            doctor: self.member("doctor@t.test", clinic, Role::Doctor, "clinic").await,
            doctor2: self.member("doctor2@t.test", clinic, Role::Doctor, "clinic").await,
            admin: self.member("admin@t.test", clinic, Role::ClinicAdmin, "clinic").await,
            owner: self.member("owner@t.test", clinic, Role::Owner, "clinic").await,
            auditor: self.member("auditor@t.test", clinic, Role::Auditor, "clinic").await,
            tech: self.member("tech@t.test", lab, Role::LabTech, "lab").await,
            lab_admin: self.member("labadmin@t.test", lab, Role::LabAdmin, "lab").await,
            foreign_doctor: self.member("fdoctor@t.test", other_clinic, Role::Doctor, "clinic").await,
            foreign_admin: self.member("fadmin@t.test", other_clinic, Role::ClinicAdmin, "clinic").await,
            foreign_tech: self.member("ftech@t.test", other_lab, Role::LabTech, "lab").await,
            clinic,
            lab,
            other_clinic,
            other_lab,
        }
    }

    pub async fn get(&self, path: &str, s: &Session) -> reqwest::Response {
        self.http.get(self.path(path)).bearer_auth(&s.access).send().await.expect("get")
    }

    pub async fn get_json(&self, path: &str, s: &Session) -> Value {
        let res = self.get(path, s).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, s: &Session, body: Value) -> reqwest::Response {
        self.http.post(self.path(path)).bearer_auth(&s.access).json(&body).send().await.expect("post")
    }

    pub async fn patch(&self, path: &str, s: &Session, body: Value) -> reqwest::Response {
        self.http.patch(self.path(path)).bearer_auth(&s.access).json(&body).send().await.expect("patch")
    }

    /// Creates a case as a doctor; returns its id.
    pub async fn case(&self, doctor: &Session, label: &str, lab: Option<OrgId>) -> CaseId {
        let mut body = json!({"label": label});
        if let Some(l) = lab {
            body["lab_id"] = json!(l);
        }
        let res = self.post("/api/v1/cases", doctor, body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.expect("json");
        v["id"].as_str().and_then(|s| s.parse().ok()).expect("case id")
    }

    /// Creates a case routed to `lab` and submitted, so the lab sees it.
    pub async fn submitted_case(&self, doctor: &Session, label: &str, lab: OrgId) -> CaseId {
        let id = self.case(doctor, label, Some(lab)).await;
        let res =
            self.post(&format!("/api/v1/cases/{id}/status"), doctor, json!({"status": "submitted"})).await;
        assert_eq!(res.status(), StatusCode::OK);
        id
    }

    /// Runs SQL on the app's database (to simulate time passing, or inspect).
    pub async fn sql(&self, q: &str) {
        articula::with_db!(&self.state.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(q.to_owned())).execute(pool).await.expect("sql");
        })
    }

    pub async fn count(&self, q: &str) -> i64 {
        articula::with_db!(&self.state.db, pool => {
            use sqlx::Row;
            sqlx::query(sqlx::AssertSqlSafe(q.to_owned())).fetch_one(pool).await.expect("sql").get::<i64, _>(0)
        })
    }

    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        tls_client_config(&self.cert_pem, &[&rustls::version::TLS13])
    }

    pub async fn ws(&self, s: &Session, codec: Codec) -> Ws {
        Ws::connect(self, Some(&s.access), codec).await.expect("ws connect")
    }
}

pub fn tls_client_config(
    cert_pem: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that keeps every frame it has not been asked about yet.
pub struct Ws {
    pub stream: WsStream,
    pub codec: Codec,
    pub buffered: VecDeque<ServerBody>,
    next: u64,
    pub closed: Option<Option<u16>>,
}

impl Ws {
    pub async fn connect(
        app: &TestApp,
        token: Option<&str>,
        codec: Codec,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::connect_with(app, codec, |req| {
            if let Some(t) = token {
                req.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
            }
        })
        .await
    }

    pub async fn connect_with(
        app: &TestApp,
        codec: Codec,
        edit: impl FnOnce(&mut tokio_tungstenite::tungstenite::handshake::client::Request),
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("wss://127.0.0.1:{}/api/v1/ws", app.port).into_client_request()?;
        req.headers_mut().insert("sec-websocket-protocol", codec.subprotocol().parse().expect("header"));
        edit(&mut req);
        let connector = tokio_tungstenite::Connector::Rustls(app.tls_config());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector)).await?;
        Ok(Self { stream, codec, buffered: VecDeque::new(), next: 0, closed: None })
    }

    /// Connects with a tiny receive buffer, so that a reader that stops reading is noticed by the
    /// server after little data rather than after megabytes of kernel buffers.
    pub async fn connect_small_buffer(app: &TestApp, token: &str, codec: Codec) -> Self {
        let mut req =
            format!("wss://127.0.0.1:{}/api/v1/ws", app.port).into_client_request().expect("request");
        req.headers_mut().insert("sec-websocket-protocol", codec.subprotocol().parse().expect("header"));
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let tcp = socket.connect(([127, 0, 0, 1], app.port).into()).await.expect("connect");
        let connector = tokio_tungstenite::Connector::Rustls(app.tls_config());
        let (stream, _) = tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector))
            .await
            .expect("ws");
        Self { stream, codec, buffered: VecDeque::new(), next: 0, closed: None }
    }

    pub fn new_id(&mut self) -> String {
        self.next += 1;
        format!("c{}-{}", self.next, uuid::Uuid::new_v4().simple())
    }

    pub async fn send_with_id(&mut self, id: &str, body: ClientBody) {
        let msg = ClientMessage::new(id, body);
        let bytes = self.codec.encode_client(&msg).expect("encode");
        self.send_raw(bytes).await;
    }

    /// Sends every frame in one write (as a client pipelining them does), flushing once.
    pub async fn send_all(&mut self, frames: &[(String, ClientBody)]) {
        for (id, body) in frames {
            let bytes = self.codec.encode_client(&ClientMessage::new(id, body.clone())).expect("encode");
            let m = if self.codec.is_binary() {
                Message::Binary(bytes.into())
            } else {
                Message::Text(String::from_utf8(bytes).expect("utf8").into())
            };
            self.stream.feed(m).await.expect("feed");
        }
        self.stream.flush().await.expect("flush");
    }

    /// The answers (ack or error) in the order they arrive, until one per id has come; other
    /// frames stay buffered.
    pub async fn answers_in_order(
        &mut self,
        ids: &[String],
    ) -> Vec<(String, Result<Option<u64>, ErrorFrame>)> {
        let mut out = Vec::new();
        while out.len() < ids.len() {
            let f = self
                .wait_for(|f| match f {
                    ServerBody::Ack(a) => ids.contains(&a.id),
                    ServerBody::Error(e) => e.id.as_ref().is_some_and(|i| ids.contains(i)),
                    _ => false,
                })
                .await;
            match f {
                ServerBody::Ack(a) => out.push((a.id, Ok(a.seq))),
                ServerBody::Error(e) => out.push((e.id.clone().unwrap_or_default(), Err(e))),
                _ => unreachable!(),
            }
        }
        out
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        let m = if self.codec.is_binary() {
            Message::Binary(bytes.into())
        } else {
            Message::Text(String::from_utf8(bytes).expect("utf8").into())
        };
        self.stream.send(m).await.expect("send");
    }

    /// The next frame from the socket (not from the buffer). `None` when the socket closed.
    async fn read_frame(&mut self) -> Option<ServerBody> {
        loop {
            let msg =
                tokio::time::timeout(WAIT, self.stream.next()).await.expect("timed out waiting for a frame");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Some(self.codec.decode_server(t.as_bytes()).expect("decode").body);
                }
                Some(Ok(Message::Binary(b))) => {
                    return Some(self.codec.decode_server(&b).expect("decode").body);
                }
                Some(Ok(Message::Close(c))) => {
                    self.closed = Some(c.map(|c| u16::from(c.code)));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(None);
                    return None;
                }
            }
        }
    }

    /// The next frame, buffered first.
    pub async fn recv(&mut self) -> Option<ServerBody> {
        if let Some(f) = self.buffered.pop_front() {
            return Some(f);
        }
        self.read_frame().await
    }

    /// Waits for the first frame matching `pred` (buffered or new); others stay buffered.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&ServerBody) -> bool) -> ServerBody {
        if let Some(i) = self.buffered.iter().position(&mut pred) {
            return self.buffered.remove(i).expect("buffered");
        }
        loop {
            let f = self.read_frame().await.expect("socket closed while waiting");
            if pred(&f) {
                return f;
            }
            self.buffered.push_back(f);
        }
    }

    /// Sends a command and waits for its answer.
    pub async fn call(&mut self, body: ClientBody) -> Result<Option<u64>, ErrorFrame> {
        let id = self.new_id();
        self.call_with_id(&id, body).await
    }

    pub async fn call_with_id(&mut self, id: &str, body: ClientBody) -> Result<Option<u64>, ErrorFrame> {
        self.send_with_id(id, body).await;
        self.answer(id).await
    }

    pub async fn answer(&mut self, id: &str) -> Result<Option<u64>, ErrorFrame> {
        let f = self
            .wait_for(|f| match f {
                ServerBody::Ack(a) => a.id == id,
                ServerBody::Error(e) => e.id.as_deref() == Some(id),
                _ => false,
            })
            .await;
        match f {
            ServerBody::Ack(a) => Ok(a.seq),
            ServerBody::Error(e) => Err(e),
            _ => unreachable!(),
        }
    }

    pub async fn subscribe(&mut self, case_id: CaseId, since: u64) -> u64 {
        self.call(ClientBody::Subscribe(Subscribe { case_id, since: Some(since) }))
            .await
            .expect("subscribe")
            .expect("head")
    }

    pub async fn post(&mut self, case_id: CaseId, text: &str) -> u64 {
        self.call(post(case_id, text)).await.expect("post").expect("seq")
    }

    /// Waits for the event with this seq of this case, asserting events arrive in order.
    pub async fn event(&mut self, case_id: CaseId, seq: u64) -> Event {
        match self
            .wait_for(|f| matches!(f, ServerBody::Event(e) if e.case_id == case_id && e.seq == seq))
            .await
        {
            ServerBody::Event(e) => e,
            _ => unreachable!(),
        }
    }

    /// Every event frame of a case received so far or until `upto`, in arrival order.
    pub async fn events_until(&mut self, case_id: CaseId, upto: u64) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let f = self.recv().await.expect("socket closed");
            if let ServerBody::Event(e) = f
                && e.case_id == case_id
            {
                let done = e.seq >= upto;
                out.push(e);
                if done {
                    return out;
                }
            }
        }
    }

    /// Reads until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        while self.closed.is_none() {
            if let Some(f) = self.read_frame().await {
                self.buffered.push_back(f);
            }
        }
        self.closed.flatten()
    }
}

/// An error frame's code.
/// A plain `post_message` (no attachments, reply or mentions).
pub fn post(case_id: CaseId, text: &str) -> ClientBody {
    ClientBody::PostMessage(PostMessage {
        case_id,
        text: text.into(),
        attachments: vec![],
        reply_to: None,
        mentions: vec![],
    })
}

pub fn code(e: &ErrorFrame) -> ErrorCode {
    e.code
}

/// Holds the database's write lock from a separate connection.
pub enum Locker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Locker {
    pub async fn lock(app: &TestApp) -> Self {
        use sqlx::Connection;
        match &app.state.db {
            articula::store::Db::Sqlite(_) => {
                let url = format!("sqlite://{}", app.dir.path().join("articula.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("locker");
                sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.expect("locker");
                Locker::Sqlite(conn)
            }
            articula::store::Db::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("locker");
                sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .expect("locker");
                Locker::Postgres(tx)
            }
        }
    }

    /// Waits until the server's group commit is running and held back by the lock: the
    /// server says a commit is running (on both backends), and PostgreSQL also shows the
    /// waiting lock in pg_locks.
    pub async fn wait_until_blocked(&self, app: &TestApp) {
        let deadline = std::time::Instant::now() + WAIT;
        while !app.state.registry.commit_queue().commit_running() {
            assert!(std::time::Instant::now() < deadline, "no commit started");
            tokio::task::yield_now().await;
        }
        if let (Locker::Postgres(_), articula::store::Db::Postgres(pool)) = (self, &app.state.db) {
            loop {
                let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
                    .fetch_one(pool)
                    .await
                    .expect("pg_locks");
                if waiting > 0 {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "the commit never waited for the lock");
                tokio::task::yield_now().await;
            }
        }
    }

    pub async fn release(self) {
        match self {
            Locker::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.expect("locker");
            }
            Locker::Postgres(tx) => tx.rollback().await.expect("locker"),
        }
    }
}

/// A server on the database at `database_url` — one the test owns (its own PostgreSQL cluster,
/// or a SQLite file on a filesystem it controls) — with settings changed by `tweak`.
pub async fn spawn_app_on(database_url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let backend = if database_url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
    // Built as SQLite so that no database is made on the shared PostgreSQL server.
    let mut app = spawn_app_with(Backend::Sqlite, |s| {
        s.database_url = Some(Secret::new(database_url.to_owned()));
        if backend == Backend::Postgres {
            s.database_max_connections = 8;
        }
        tweak(s);
    })
    .await;
    app.backend = backend;
    app
}
