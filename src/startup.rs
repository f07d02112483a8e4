//! Builds the application from settings: database, actors, HTTP server.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::Actor;
use actix_http::{Extensions, HttpService};
use actix_rt::net::TcpStream;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{AppConfig, Server};
use actix_web::{App, middleware, web};
use anyhow::Context;
use articula_actors::ports::CaseStore;
use articula_actors::{CaseConfig, CaseRegistry, OrgHubs, PersistenceActor, PersistenceConfig, QueueDepth};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::Auth;
use crate::auth::password::Passwords;
use crate::config::Settings;
use crate::revocation::Revocations;
use crate::state::AppState;
use crate::store::Db;
use crate::store::events::SqlCaseStore;
use crate::{http, tls};

/// A socket that leaves sent data unacknowledged this long (a vanished or frozen client) is
/// aborted by the kernel — the last line of defence for sockets whose readers stopped reading.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes the kernel holds unsent per socket. Without it, send buffers autotune to
/// megabytes, and a reader that stopped reading would be noticed (resync) only after the kernel
/// had swallowed megabytes on its behalf. Unacknowledged in-flight data is not limited by this,
/// so throughput over long links is unaffected.
const TCP_NOTSENT_LOWAT: u32 = 128 * 1024;

/// How long a client may take to finish closing (actix-web's default; keep-alive and request
/// timeouts keep actix-http's defaults, 5 s each).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    // Only the first application of a process installs the recorder (tests start many, in
    // parallel: `get_or_init` makes the others wait for it rather than race it).
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Installs the TLS crypto provider once per process.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn tune_socket(tcp: &TcpStream) {
    let sock = socket2::SockRef::from(tcp);
    let _ = sock.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
    let _ = sock.set_tcp_notsent_lowat(TCP_NOTSENT_LOWAT);
    let _ = sock.set_tcp_nodelay(true);
}

/// The HTTP server: actix-web's application for REST and assets, and the WebSocket transport
/// for upgrades (which actix-http hands over with the connection; see `ws/transport.rs` for
/// why). `HttpServer` offers no upgrade hook, so the service is assembled here from the same
/// parts and with the same defaults.
fn serve(
    listener: TcpListener,
    settings: &Settings,
    tls: Option<rustls::ServerConfig>,
    state: web::Data<AppState>,
) -> anyhow::Result<Server> {
    let max_body = settings.max_body_bytes;
    let addr = listener.local_addr()?;
    let app = move |state: web::Data<AppState>| {
        App::new()
            .app_data(state)
            .wrap(http::headers::security_headers())
            .wrap(middleware::Compress::default())
            .wrap(tracing_actix_web::TracingLogger::<crate::telemetry::RequestSpan>::new())
            .configure(|cfg| http::routes(cfg, max_body))
            .into_factory()
            .map_err(|e: actix_web::Error| e.error_response())
    };
    let mut server = actix_server::Server::build().shutdown_timeout(5);
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    let server = match tls {
        Some(cfg) => server.listen("articula-https", listener, move || {
            HttpService::build()
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(addr)
                .on_connect_ext(|io: &TlsStream<TcpStream>, _: &mut Extensions| tune_socket(io.get_ref().0))
                .upgrade(crate::ws::upgrade::<TlsStream<TcpStream>>(state.clone()))
                .finish(map_config(app(state.clone()), |_| AppConfig::default()))
                .rustls_0_23(cfg.clone())
        })?,
        None => server.listen("articula-http", listener, move || {
            HttpService::build()
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(addr)
                .on_connect_ext(|io: &TcpStream, _: &mut Extensions| tune_socket(io))
                .upgrade(crate::ws::upgrade::<TcpStream>(state.clone()))
                .finish(map_config(app(state.clone()), |_| AppConfig::default()))
                .tcp()
        })?,
    };
    Ok(server.run())
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    url: String,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects the database, starts the actors and binds the listener. Must run inside an
    /// actix system.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let metrics = metrics_handle();
        let settings = Arc::new(settings);
        let db = Db::connect(&settings).await.context("database")?;
        let passwords = Passwords::new(settings.argon2_memory_kib, settings.argon2_iterations)?;
        let revocations = Arc::new(Revocations::default());
        revocations.spawn_watcher(db.clone(), Duration::from_millis(250));

        let truncate_wal = db.spawn_checkpointer(&settings).await.context("database")?;
        let log_writer = db.log_writer(&settings).await.context("database")?;
        let store: Arc<dyn CaseStore> = Arc::new(SqlCaseStore::new(db.clone(), log_writer, truncate_wal));
        let commit_queue = QueueDepth::new(settings.commit_queue_max);
        let persistence = PersistenceActor::new(
            store.clone(),
            PersistenceConfig {
                max_batch: settings.commit_max_batch,
                interval: Duration::from_millis(settings.commit_interval_ms),
                max_queued: settings.commit_queue_max,
                ..Default::default()
            },
            commit_queue.clone(),
        )
        .start();
        let hubs = Arc::new(OrgHubs::new(settings.subscriber_queue));
        let registry = CaseRegistry::new(
            store,
            persistence,
            commit_queue,
            hubs,
            CaseConfig {
                subscriber_queue: settings.subscriber_queue,
                resume_ring: settings.resume_ring,
                idle_after: Duration::from_secs(settings.case_idle_secs),
                max_queued: settings.case_queue_max,
                snapshot_every: settings.snapshot_every,
                ..Default::default()
            },
        );

        // The audit log tails the event feed and the audit inbox from its checkpoint.
        // On a thread of its own: reading the feeds and hashing entries take CPU in bursts, and
        // on the main arbiter they held up the group commit that runs there (S3's delivery p99
        // on SQLite rose by ~9 ms with the audit on; BENCHMARKS.md).
        let audit_db = db.clone();
        crate::audit::AuditActor::start_in_arbiter(&actix::Arbiter::new().handle(), move |_| {
            crate::audit::AuditActor::new(audit_db)
        });

        let keyring = Arc::new(crate::objects::keys::Keyring::load(&settings, db.clone())?);
        let files = Arc::new(crate::uploads::Files::new(&settings, keyring).await.context("object storage")?);
        files.spawn_expiry(db.clone());
        let state = web::Data::new(AppState {
            auth: Auth::new(&settings, db.clone(), passwords, revocations.clone()),
            ws_limiter: AppState::command_limiter(&settings),
            settings: settings.clone(),
            db,
            registry,
            revocations,
            metrics,
            files,
            security_txt: crate::http::wellknown::security_txt(&settings, articula_actors::clock::now_ms()),
            label_names: settings.label_names()?.into(),
        });
        AppState::spawn_limiter_pruning(&state.clone().into_inner());
        if let Some(t) = crate::uploads::transcribe::Transcriber::from_settings(&settings) {
            crate::uploads::transcribe::spawn(state.clone().into_inner(), t);
        }

        let tls = tls::server_config(&settings)?;
        let listener =
            TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let url = settings.public_url(port);
        let server = serve(listener, &settings, tls, state.clone())?;
        Ok(Self { port, url, server, state })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL people open.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The shared state (for the demo seeder and tests).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
