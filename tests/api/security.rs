//! TLS 1.3 only, security headers, OpenAPI coverage, bad input, configuration errors, CLI.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    tls_1_2_is_refused_and_1_3_accepted,
    every_response_carries_the_security_headers,
    openapi_documents_every_rest_route,
    bad_bodies_get_clear_codes_and_change_nothing,
    health_and_metrics_answer,
    the_cli_administers_users,
    server_errors_answer_without_details,
);

crate::both_backends_with!(
    behind_a_proxy_with_slow_quotas;
    the_rate_limiters_forget_idle_clients,
);

/// Client addresses from `X-Forwarded-For`; quotas slow enough that a key used once stays
/// distinguishable from a fresh one for seconds (a sign-in spends 5 s of its address's quota,
/// a socket command 1 s of its user's).
fn behind_a_proxy_with_slow_quotas(s: &mut articula::config::Settings) {
    s.trust_proxy = true;
    s.login_rate_per_minute = 12;
    s.ws_commands_per_second = 1;
    s.ws_command_burst = 1;
}

/// The value of a gauge on `/metrics`.
async fn gauge(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.http.get(app.path("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
}

/// The per-address sign-in limiter and the per-user socket command limiter forget clients whose
/// quota has refilled: their sizes (gauges on `/metrics`) rise with new clients and fall back.
async fn the_rate_limiters_forget_idle_clients(app: TestApp) {
    let clinic = app.org("C", articula_protocol::OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, articula_protocol::Role::Doctor).await;
    assert_eq!(gauge(&app, "articula_login_limiter_keys").await, Some(0.0));
    // 50 sign-ins, each from its own address (one of them as an IPv6 address).
    let logins = (0..50u8).map(|i| {
        let app = &app;
        async move {
            let from = if i == 0 { "2001:db8::1".to_owned() } else { format!("203.0.113.{i}") };
            app.http
                .post(app.path("/api/v1/auth/login"))
                .header("x-forwarded-for", from)
                .json(&json!({"email": "doc@t.test", "password": PASSWORD, "portal": "clinic"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    for status in futures_util::future::join_all(logins).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(gauge(&app, "articula_login_limiter_keys").await, Some(50.0));
    // The sessions list the addresses the proxy named.
    let s = app.login("doc@t.test", "clinic").await;
    let sessions = app.get_json("/api/v1/auth/sessions", &s).await;
    assert!(sessions.as_array().unwrap().iter().any(|x| x["ip"] == "203.0.113.7"), "{sessions}");
    // One command on a socket: its user is in the command limiter.
    let mut ws = app.ws(&s, articula_protocol::Codec::Json).await;
    let case = app.case(&s, "Crown", None).await;
    ws.subscribe(case, 0).await;
    assert_eq!(gauge(&app, "articula_ws_limiter_keys").await, Some(1.0));

    // Once their quotas have refilled, the limiters forget them (pruned every 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let (login, ws) =
            (gauge(&app, "articula_login_limiter_keys").await, gauge(&app, "articula_ws_limiter_keys").await);
        if login == Some(0.0) && ws == Some(0.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still held: {login:?} addresses, {ws:?} users");
        // Polling a gauge: there is no event to wait on.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

fn handshake(
    port: u16,
    cert: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<String, String> {
    let config = tls_client_config(cert, versions);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(format!("{:?}", conn.protocol_version()))
}

async fn tls_1_2_is_refused_and_1_3_accepted(app: TestApp) {
    let (port, cert) = (app.port, app.cert_pem.clone());
    let res = tokio::task::spawn_blocking(move || {
        (
            handshake(port, &cert, &[&rustls::version::TLS12]),
            handshake(port, &cert, &[&rustls::version::TLS13]),
        )
    })
    .await
    .unwrap();
    assert!(res.0.is_err(), "TLS 1.2 handshake succeeded: {:?}", res.0);
    assert_eq!(res.1, Ok("Some(TLSv1_3)".to_owned()));
    // Plain HTTP on the TLS port gets nowhere either.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", app.port)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

async fn every_response_carries_the_security_headers(app: TestApp) {
    let clinic = app.org("C", articula_protocol::OrgKind::Clinic).await;
    app.user("doc@t.test", clinic, articula_protocol::Role::Doctor).await;
    let s = app.login("doc@t.test", "clinic").await;
    let responses = vec![
        app.http.get(app.path("/healthz")).send().await.unwrap(),
        app.http.get(app.path("/api/v1/cases")).send().await.unwrap(),
        app.get("/api/v1/cases", &s).await,
        app.http.get(app.path("/api/v1/nope")).send().await.unwrap(),
        app.http.get(app.path("/")).send().await.unwrap(),
        app.http.post(app.path("/api/v1/auth/login")).body("{").send().await.unwrap(),
    ];
    for res in responses {
        let h = res.headers();
        let status = res.status();
        assert!(h["strict-transport-security"].to_str().unwrap().contains("max-age="), "{status}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    }
}

/// Every REST route registered in src/http is in the OpenAPI document.
async fn openapi_documents_every_rest_route(app: TestApp) {
    let res = app.http.get(app.path("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    let paths = doc["paths"].as_object().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut registered = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let top_level = path.file_name().unwrap() == "mod.rs";
        for part in src.split("resource(\"").skip(1) {
            let route = part.split('"').next().unwrap();
            if route == "/ws" {
                continue; // the WebSocket is documented in protocol/README.md
            }
            let full = if top_level && matches!(route, "/healthz" | "/metrics" | "/.well-known/security.txt")
            {
                route.to_owned()
            } else {
                format!("/api/v1{route}")
            };
            registered.push(full);
        }
    }
    assert!(registered.len() >= 20, "found {registered:?}");
    for r in registered {
        assert!(paths.contains_key(&r), "route {r} is not in the OpenAPI document");
    }
}

async fn bad_bodies_get_clear_codes_and_change_nothing(app: TestApp) {
    let w = app.world().await;
    let url = app.path("/api/v1/cases");
    let send = |body: Vec<u8>, ct: &'static str| {
        app.http.post(&url).bearer_auth(&w.doctor.access).header("content-type", ct).body(body).send()
    };
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (b"{\"label\": ".to_vec(), "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        (b"not json".to_vec(), "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            b"{\"label\": \"x\", \"extra\": 1}".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            b"{\"label\": 42}".to_vec(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            b"{\"label\": \"x\"}".to_vec(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            format!("{{\"label\": \"{}\"}}", "x".repeat(300_000)).into_bytes(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (body, ct, status, code) in cases {
        let res = send(body, ct).await.unwrap();
        assert_eq!(res.status(), status, "{code}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], code);
        assert!(v["message"].is_string());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);

    let res = app
        .http
        .post(app.path("/api/v1/auth/login"))
        .json(&json!({"email": "not-an-email", "password": "x", "portal": "clinic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_email");
    let res = app
        .http
        .post(app.path("/api/v1/auth/login"))
        .json(&json!({"email": "a@b.test", "password": "x", "portal": "dentist"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app.http.delete(app.path("/api/v1/cases")).bearer_auth(&w.doctor.access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "method_not_allowed");
    let res = app.http.get(app.path("/api/v1/does-not-exist")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "not_found");
}

async fn health_and_metrics_answer(app: TestApp) {
    let v: Value = app.http.get(app.path("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"], if app.backend == Backend::Sqlite { "sqlite" } else { "postgres" });
    let w = app.world().await;
    app.submitted_case(&w.doctor, "x", w.lab).await;
    let text = app.http.get(app.path("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("articula_db_commits_total"), "{text}");
}

pub fn cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_articula"));
    cmd.args(args)
        .env_clear()
        .env("ARTICULA_DATA_DIR", app.dir.path())
        .env("ARTICULA_ARGON2_MEMORY_KIB", "64")
        .env("ARTICULA_ARGON2_ITERATIONS", "1")
        .env("ARTICULA_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &app.settings.database_url {
        cmd.env("ARTICULA_DATABASE_URL", url.expose());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        // A command that does not read its input may exit first (a broken pipe here): its
        // output says what it did.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

async fn the_cli_administers_users(app: TestApp) {
    let (ok, out, err) = cli(&app, &["org", "create", "--name", "Bright Smiles", "--kind", "clinic"], None);
    assert!(ok, "{err}");
    assert!(out.trim().parse::<uuid::Uuid>().is_ok(), "{out}");
    let (ok, _, err) = cli(
        &app,
        &[
            "user",
            "create",
            "--email",
            "Dr.Who@T.test",
            "--name",
            "Dr Who",
            "--org",
            "Bright Smiles",
            "--role",
            "doctor",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(ok, "{err}");
    // The e-mail is normalised; the user signs in.
    assert_eq!(app.login_raw("dr.who@t.test", PASSWORD, "clinic").await.status(), StatusCode::OK);
    // Wrong role for the organisation, unknown organisation, duplicate user: clear errors.
    let (ok, _, err) = cli(
        &app,
        &[
            "user",
            "create",
            "--email",
            "x@t.test",
            "--name",
            "X",
            "--org",
            "Bright Smiles",
            "--role",
            "lab_tech",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(!ok && err.contains("does not exist in a clinic"), "{err}");
    let (ok, _, err) = cli(
        &app,
        &["user", "create", "--email", "x@t.test", "--name", "X", "--org", "Nowhere", "--role", "doctor"],
        None,
    );
    assert!(!ok && err.contains("no organisation"), "{err}");
    let (ok, _, err) = cli(
        &app,
        &[
            "user",
            "create",
            "--email",
            "dr.who@t.test",
            "--name",
            "X",
            "--org",
            "Bright Smiles",
            "--role",
            "doctor",
        ],
        None,
    );
    assert!(!ok && err.contains("exists already"), "{err}");
    // Invitations.
    let (ok, out, err) = cli(
        &app,
        &[
            "user",
            "invite",
            "--email",
            "new@t.test",
            "--name",
            "New",
            "--org",
            "Bright Smiles",
            "--role",
            "clinic_admin",
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("invitation (valid 7 days, once): "))
        .unwrap()
        .trim()
        .to_owned();
    let res = app
        .http
        .post(app.path("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (ok, out, _) = cli(&app, &["user", "list", "--org", "Bright Smiles"], None);
    assert!(
        ok && out.contains("dr.who@t.test")
            && out.contains("new@t.test\tactive")
            && out.contains("clinic_admin@Bright Smiles"),
        "{out}"
    );
    // Revocation ends sign-in and sessions.
    let s = app.login("dr.who@t.test", "clinic").await;
    let (ok, _, err) = cli(&app, &["user", "revoke", "--email", "dr.who@t.test"], None);
    assert!(ok, "{err}");
    assert_eq!(app.get("/api/v1/me", &s).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login_raw("dr.who@t.test", PASSWORD, "clinic").await.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn login_attempts_are_rate_limited_per_address() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.login_rate_per_minute = 3).await;
    for _ in 0..3 {
        let res = app.login_raw("a@b.test", "whatever pw", "clinic").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app.login_raw("a@b.test", "whatever pw", "clinic").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "rate_limited");
}

#[test]
fn bad_configuration_stops_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("ARTICULA_BIND", "nowhere"),
        ("ARTICULA_WS_HEARTBEAT_SECS", "soon"),
        ("ARTICULA_TLS", "maybe"),
        ("ARTICULA_DATABASE_URL", "mysql://root:hunter2@db/x"),
        ("ARTICULA_COLOUR", "blue"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_articula"))
            .arg("serve")
            .env_clear()
            .env("ARTICULA_DATA_DIR", dir.path())
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        let setting = var.trim_start_matches("ARTICULA_").to_lowercase();
        assert!(err.contains(var) || err.contains(&setting), "{var}: {err}");
        assert!(!err.contains("hunter2"), "a secret was printed: {err}");
    }
}

/// `articula serve` as its own process, killed when dropped; its output is collected by threads.
struct Served {
    child: std::process::Child,
    url: String,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// Starts `articula serve` with only `env` (and `--config` when given), and waits for the URL
    /// it prints once it listens.
    fn start(config: Option<&std::path::Path>, env: &[(&str, &str)]) -> Self {
        Self::start_with(&[], config, env)
    }

    fn start_with(args: &[&str], config: Option<&std::path::Path>, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        // Plain reqwest clients talk to it; they need the process's TLS provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_articula"));
        cmd.arg("serve")
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        // Waited for by `Drop` (and below when it never starts).
        #[allow(clippy::zombie_processes)]
        let mut child = cmd.spawn().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let (tx, output) = (tx.clone(), output.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("Articula is running at ") {
                        return Self { child, url: url.trim().to_owned(), output, lines: rx };
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server did not start ({e}): {}", output.lock().unwrap());
                }
            }
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for a line of output containing `text` (printed after the URL).
    fn wait_for_line(&self, text: &str) {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(e) => panic!("no line with {text:?} ({e}): {}", self.output()),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod the_request_log_shows_paths_but_no_link_signature_session_or_token {
    use crate::helpers::Backend;
    #[actix_web::test]
    async fn sqlite() {
        super::the_request_log_shows_paths_but_no_link_signature_session_or_token(Backend::Sqlite).await
    }
    #[actix_web::test]
    async fn postgres() {
        super::the_request_log_shows_paths_but_no_link_signature_session_or_token(Backend::Postgres).await
    }
}

/// The server's own JSON log (a real `articula serve`, its stdout): a signed-link download and
/// requests with an access token in the URL are logged by path, without the link's signature, the
/// session id, or the token.
async fn the_request_log_shows_paths_but_no_link_signature_session_or_token(backend: Backend) {
    struct Database(Option<String>);
    impl Drop for Database {
        fn drop(&mut self) {
            if let Some(url) = &self.0 {
                drop_pg_db(url);
            }
        }
    }
    // Declared before the server, so dropped after it.
    let db = Database((backend == Backend::Postgres).then(fresh_pg_db));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let mut env = vec![
        ("ARTICULA_DATA_DIR", data.as_str()),
        ("ARTICULA_BIND", "127.0.0.1:0"),
        ("ARTICULA_TLS", "off"),
        ("ARTICULA_LOG", "info"),
        ("ARTICULA_LOG_FORMAT", "json"),
        ("ARTICULA_ARGON2_MEMORY_KIB", "64"),
        ("ARTICULA_ARGON2_ITERATIONS", "1"),
        ("ARTICULA_DEMO_PASSWORD", "demo pass 4711"),
    ];
    if let Some(url) = &db.0 {
        env.push(("ARTICULA_DATABASE_URL", url));
    }
    let served = Served::start_with(&["--demo"], None, &env);
    served.wait_for_line("Password for all");
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", served.url);

    let login: Value = http
        .post(url("/api/v1/auth/login"))
        .json(&json!({"email": "doctor@demo.test", "password": "demo pass 4711", "portal": "clinic"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let session = login["session_id"].as_str().unwrap().to_owned();
    let cases: Value =
        http.get(url("/api/v1/cases")).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    let mut file = None;
    for c in cases.as_array().unwrap() {
        let files: Value = http
            .get(url(&format!("/api/v1/cases/{}/files", c["id"].as_str().unwrap())))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        file =
            file.or_else(|| files.as_array().unwrap().first().map(|f| f["id"].as_str().unwrap().to_owned()));
    }
    let file = file.expect("the demo has files");
    let link: Value = http
        .post(url(&format!("/api/v1/files/{file}/link")))
        .bearer_auth(&access)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = link["url"].as_str().unwrap().to_owned();
    let link = link.strip_prefix(&served.url).unwrap_or(&link).to_owned();
    let (path, query) = link.split_once('?').unwrap();
    let param =
        |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().to_owned();
    let (sig, link_session) = (param("sig"), param("s"));
    assert_eq!(link_session, session);
    let res = http.get(url(&link)).bearer_auth(&access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // An access token in the URL is refused (tokens go in the Authorization header), but it is a
    // live token all the same.
    let res = http.get(url(&format!("/api/v1/me?access_token={access}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http.get(url(&format!("/api/v1/cases?token={access}&q=Crown"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Both refusals are logged (in order, after the download).
    served.wait_for_line("/api/v1/me");
    served.wait_for_line("/api/v1/cases");

    let out = served.output();
    let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let download = lines
        .iter()
        .find(|v| v["message"] == "download")
        .unwrap_or_else(|| panic!("no download line: {out}"));
    assert_eq!(download["span"]["http.target"], path, "{download}");
    let refused = lines
        .iter()
        .find(|v| {
            v["level"] == "WARN"
                && v["span"]["http.target"].as_str().is_some_and(|t| t.starts_with("/api/v1/me"))
        })
        .unwrap_or_else(|| panic!("the refused request is not logged: {out}"));
    assert_eq!(refused["span"]["http.target"], "/api/v1/me", "{refused}");
    for (what, secret) in [
        ("link signature", &sig),
        ("session id", &session),
        ("access token", &access),
        ("refresh token", &refresh),
    ] {
        assert!(!out.contains(secret.as_str()), "the {what} is in the log: {out}");
    }
    // What people searched for stays out too (case labels name patients).
    assert!(!out.contains("q=Crown"), "a search is in the log: {out}");
}

#[actix_web::test]
async fn a_configuration_file_with_certificate_files_is_served_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("articula.toml");
    std::fs::write(
        &config,
        format!(
            "# the file's bind is overridden by ARTICULA_BIND below\n\
             bind = \"nowhere\"\n\
             data_dir = {:?}\n\
             tls = \"files\"\n\
             tls_cert = {:?}\n\
             tls_key = {:?}\n\
             log = \"info\"\n\
             argon2_memory_kib = 64\n\
             argon2_iterations = 1\n",
            dir.path().join("data"),
            cert,
            key
        ),
    )
    .unwrap();
    // The variable wins over the file: with the file's value the server could not start.
    let served = Served::start(Some(&config), &[("ARTICULA_BIND", "127.0.0.1:0")]);
    assert!(served.url.starts_with("https://"), "{}", served.url);
    // Only the configured certificate is trusted here: a handshake with any other one fails.
    let http = client(ck.cert.pem().as_bytes(), false);
    let res = http.get(format!("{}/healthz", served.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(dir.path().join("data").join("articula.db").exists(), "{}", served.output());
    assert!(!dir.path().join("data").join("tls").exists(), "a certificate was generated anyway");
    // Not on a terminal, the logs are JSON lines.
    let out = served.output();
    let log = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "listening");
    assert!(log.is_some_and(|v| v["level"] == "INFO"), "{out}");
}

#[actix_web::test]
async fn tls_off_is_plain_http_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let served = Served::start(
        None,
        &[
            ("ARTICULA_DATA_DIR", &data),
            ("ARTICULA_BIND", "127.0.0.1:0"),
            ("ARTICULA_TLS", "off"),
            ("ARTICULA_LOG", "warn"),
            // Set by the Makefile for every target: the harnesses' variables are not settings.
            ("ARTICULA_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            ("ARTICULA_LT_SERVER", "/nowhere"),
        ],
    );
    assert!(served.url.starts_with("http://"), "{}", served.url);
    let res = reqwest::get(format!("{}/healthz", served.url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let out = served.output();
    assert!(out.lines().any(|l| l.contains("WARN") && l.contains("TLS is off")), "{out}");
}

#[actix_web::test]
async fn the_demo_seeds_sign_ins_cases_and_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let env = [
        ("ARTICULA_DATA_DIR", data.as_str()),
        ("ARTICULA_BIND", "127.0.0.1:0"),
        ("ARTICULA_TLS", "off"),
        ("ARTICULA_LOG", "warn"),
        ("ARTICULA_ARGON2_MEMORY_KIB", "64"),
        ("ARTICULA_ARGON2_ITERATIONS", "1"),
        ("ARTICULA_DEMO_PASSWORD", "demo pass 4711"),
    ];
    let served = Served::start_with(&["--demo"], None, &env);
    served.wait_for_line("Password for all");
    let out = served.output();
    for email in ["doctor@demo.test", "admin@demo.test", "tech@demo.test", "labadmin@demo.test"] {
        assert!(out.contains(email), "{email} not printed: {out}");
    }
    assert!(out.contains("Stored files:") && out.contains("saved by compression"), "{out}");
    assert!(!out.contains("demo pass 4711"), "the configured password was printed");
    let http = reqwest::Client::new();
    let login = |email: &'static str, portal: &'static str| {
        let (http, url) = (http.clone(), served.url.clone());
        async move {
            let res = http
                .post(format!("{url}/api/v1/auth/login"))
                .json(&json!({"email": email, "password": "demo pass 4711", "portal": portal}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{email}");
            res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
        }
    };
    let get = |token: String, path: String| {
        let (http, url) = (http.clone(), served.url.clone());
        async move {
            let res = http.get(format!("{url}{path}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.json::<Value>().await.unwrap()
        }
    };
    let doctor = login("doctor@demo.test", "clinic").await;
    let tech = login("tech@demo.test", "lab").await;
    let labels = |v: &Value| -> Vec<String> {
        let mut l: Vec<String> =
            v.as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap().to_owned()).collect();
        l.sort();
        l
    };
    // The doctor's own cases, one not yet routed to the lab; the colleague's case is not among them.
    let mine = get(doctor.clone(), "/api/v1/cases".into()).await;
    assert_eq!(labels(&mine), ["Bridge 34–36", "Crown 11 — shade A2", "Veneers 12–22"]);
    assert!(mine.as_array().unwrap().iter().any(|c| c["lab_id"].is_null()));
    // The lab sees cases of both doctors routed to it, never the unrouted one.
    let lab = labels(&get(tech.clone(), "/api/v1/cases".into()).await);
    assert!(
        lab.contains(&"Implant crown 46".to_owned()) && lab.contains(&"Crown 11 — shade A2".to_owned()),
        "{lab:?}"
    );
    assert!(!lab.contains(&"Veneers 12–22".to_owned()) && !lab.contains(&"Inlay 26".to_owned()), "{lab:?}");
    // Sample files went through the real storage path: listed, typed by content, downloadable.
    let mut types = Vec::new();
    for c in mine.as_array().unwrap() {
        let files = get(doctor.clone(), format!("/api/v1/cases/{}/files", c["id"].as_str().unwrap())).await;
        types
            .extend(files.as_array().unwrap().iter().map(|f| f["content_type"].as_str().unwrap().to_owned()));
    }
    assert!(
        types.iter().any(|t| t == "model/stl") && types.iter().any(|t| t.starts_with("image/")),
        "{types:?}"
    );
    let crown = mine.as_array().unwrap().iter().find(|c| c["label"] == "Crown 11 — shade A2").unwrap();
    let files = get(doctor.clone(), format!("/api/v1/cases/{}/files", crown["id"].as_str().unwrap())).await;
    let stl = files.as_array().unwrap().iter().find(|f| f["content_type"] == "model/stl").unwrap();
    let res = http
        .post(format!("{}/api/v1/files/{}/link", served.url, stl["id"].as_str().unwrap()))
        .bearer_auth(&doctor)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let link: Value = res.json().await.unwrap();
    let url = link["url"].as_str().unwrap();
    let url = if url.starts_with("http") { url.to_owned() } else { format!("{}{url}", served.url) };
    let bytes = http.get(url).bearer_auth(&doctor).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, stl["size"].as_u64().unwrap());

    // Started again on the same data, the demo adds nothing twice.
    drop(served);
    let served = Served::start_with(&["--demo"], None, &env);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/api/v1/auth/login", served.url))
        .json(&json!({"email": "doctor@demo.test", "password": "demo pass 4711", "portal": "clinic"}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let again = http.get(format!("{}/api/v1/cases", served.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(labels(&again.json::<Value>().await.unwrap()).len(), 3);
}

async fn server_errors_answer_without_details(app: TestApp) {
    let w = app.world().await;
    let case = app.submitted_case(&w.doctor, "Crown", w.lab).await;
    // A database that lost a table: the query fails inside the server.
    app.sql("DROP TABLE messages").await;
    let res = app.get(&format!("/api/v1/cases/{case}/messages"), &w.doctor).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/json");
    // The body says nothing of the database, the query or the table.
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"error": "internal", "message": "internal error"}));
}
