//! Settings: an optional TOML file (`--config` or `ARTICULA_CONFIG`) overlaid with `ARTICULA_*`
//! environment variables, validated before anything starts. Errors name the setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret value: never printed, never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the server terminates TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// A self-signed certificate made in the data dir at first start.
    Auto,
    /// Certificate and key files (PEM).
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Plain HTTP, only behind a TLS-terminating proxy.
    Off,
}

/// Where the log goes and in which form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human text otherwise.
    Auto,
    /// Always JSON lines.
    Json,
    /// Always human text.
    Pretty,
}

/// Every setting, with its default. Field `x` is set by `ARTICULA_X` or by `x = …` in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address and port to listen on.
    pub bind: String,
    /// Public base URL (for links in e-mails and the printed URL); derived from `bind` if unset.
    pub public_url: Option<String>,
    /// Where the SQLite database, the self-signed certificate and local files live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite file `articula.db` in the data dir.
    pub database_url: Option<Secret>,
    /// Most database connections.
    pub database_max_connections: u32,
    /// `auto`, `off`, or `files` (with `tls_cert` and `tls_key`).
    pub tls: String,
    /// Certificate chain (PEM) for `tls = files`.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for `tls = files`.
    pub tls_key: Option<PathBuf>,
    /// Trust `X-Forwarded-For` for client addresses (only with `tls = off` behind a proxy).
    pub trust_proxy: bool,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// `auto`, `json` or `pretty`.
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `articula=debug,info`.
    pub log: String,

    /// Access token lifetime, seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh token (and session) lifetime, days.
    pub refresh_token_ttl_days: u64,
    /// A session unused for this long ends, minutes.
    pub session_idle_minutes: u64,
    /// Failed sign-ins in a row that lock an account.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked, minutes.
    pub lockout_minutes: u64,
    /// Sign-in attempts per minute per client address.
    pub login_rate_per_minute: u32,
    /// Argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,

    /// Largest WebSocket frame accepted, bytes (up to 1 MiB is answered `frame_too_large`).
    pub ws_max_frame_bytes: usize,
    /// Seconds between server pings.
    pub ws_heartbeat_secs: u64,
    /// Commands per second per user on sockets.
    pub ws_commands_per_second: u32,
    /// Burst of commands per user.
    pub ws_command_burst: u32,
    /// Frames a socket may fall behind a case or board before it must resync.
    pub subscriber_queue: usize,
    /// Committed events kept in memory per live case, to serve resumes.
    pub resume_ring: usize,
    /// A case with no subscriber stops after this many seconds of quiet.
    pub case_idle_secs: u64,
    /// Most items in one group commit.
    pub commit_max_batch: usize,
    /// Least milliseconds between the starts of two group commits.
    pub commit_interval_ms: u64,
    /// Most changes waiting for the group commit (all cases); beyond it commands are refused
    /// with a retryable `unavailable`.
    pub commit_queue_max: usize,
    /// Most changes of one case waiting behind its commit in flight; beyond it, as above.
    pub case_queue_max: usize,
    /// A snapshot of a case's state is stored every this many events (start-up reads the
    /// latest snapshot and the events after it).
    pub snapshot_every: usize,
    /// SQLite: write-ahead log frames (4 KiB pages) after which the background checkpointer
    /// restarts the log from its beginning.
    pub sqlite_wal_restart_frames: u64,

    /// `fs` (files under the data dir, the default) or `s3` (S3-compatible: AWS, R2, MinIO…).
    pub object_store: String,
    /// S3 endpoint URL (e.g. `https://<account>.r2.cloudflarestorage.com`); AWS's when unset.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: String,
    /// S3 bucket (at least 3 characters).
    pub s3_bucket: Option<String>,
    /// S3 access key id.
    pub s3_access_key: Option<Secret>,
    /// S3 secret key.
    pub s3_secret_key: Option<Secret>,
    /// Path-style S3 addressing (MinIO, most self-hosted servers); virtual-hosted when false.
    pub s3_path_style: bool,
    /// The master key (base64 of 32 bytes) that wraps the organisations' keys. When unset, one is
    /// made at first start in `<data dir>/keys/master.key` (fine for a single machine; set it
    /// explicitly when the data dir is not the only safe place for it).
    pub master_key: Option<Secret>,
    /// Earlier master keys (base64, comma-separated), still accepted to unwrap older keys.
    pub master_keys_old: Option<Secret>,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// An unfinished upload untouched this long expires and is deleted, hours.
    pub upload_expiry_hours: u64,
    /// An upload request whose body sends nothing for this long ends, keeping what arrived, s.
    pub upload_idle_secs: u64,
    /// zstd level for compressible formats (STL, PLY, OBJ, PDF); 0 turns compression off.
    pub compression_level: i32,
    /// `host:port` of clamd (TCP); every file is streamed to it before it is committed. The
    /// EICAR test file is refused with or without it.
    pub clamd: Option<String>,
    /// Base URL of an OpenAI-compatible transcription API (`…/v1/audio/transcriptions` is
    /// appended); voice notes are kept without transcript when unset.
    pub transcription_url: Option<String>,
    /// API key of the transcription service.
    pub transcription_api_key: Option<Secret>,
    /// Transcription model.
    pub transcription_model: String,

    /// Password of the demo users (`serve --demo`); random when unset.
    pub demo_password: Option<Secret>,

    /// Where vulnerabilities are reported (`mailto:…` or `https://…`), published in
    /// `/.well-known/security.txt` (RFC 9116); without it that file is not served.
    pub security_contact: Option<String>,
    /// The vulnerability disclosure policy (`https://…`), in `security.txt` as `Policy`.
    pub security_policy_url: Option<String>,

    /// A file of names (UTF-8, one a line, `#` comments): a case label containing one makes the
    /// web client warn that it looks like a patient's name.
    pub label_name_list: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8443".into(),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 16,
            tls: "auto".into(),
            tls_cert: None,
            tls_key: None,
            trust_proxy: false,
            workers: 0,
            log_format: LogFormat::Auto,
            log: "info".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            session_idle_minutes: 8 * 60,
            lockout_threshold: 5,
            lockout_minutes: 15,
            login_rate_per_minute: 20,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            max_body_bytes: 256 * 1024,
            ws_max_frame_bytes: 64 * 1024,
            ws_heartbeat_secs: 15,
            ws_commands_per_second: 50,
            ws_command_burst: 200,
            subscriber_queue: 1024,
            resume_ring: 512,
            case_idle_secs: 600,
            commit_max_batch: 2048,
            commit_interval_ms: 5,
            commit_queue_max: 32_768,
            case_queue_max: 1024,
            snapshot_every: 256,
            sqlite_wal_restart_frames: 1024,
            object_store: "fs".into(),
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_bucket: None,
            s3_access_key: None,
            s3_secret_key: None,
            s3_path_style: true,
            master_key: None,
            master_keys_old: None,
            max_upload_bytes: 4 * 1024 * 1024 * 1024,
            upload_expiry_hours: 24,
            upload_idle_secs: 30,
            compression_level: 3,
            clamd: None,
            transcription_url: None,
            transcription_api_key: None,
            transcription_model: "whisper-1".into(),
            demo_password: None,
            security_contact: None,
            security_policy_url: None,
            label_name_list: None,
        }
    }
}

/// Largest `label_name_list` file (the client downloads the list).
const MAX_LABEL_NAME_LIST_BYTES: u64 = 4 * 1024 * 1024;

/// A setting is missing or wrong. The message names it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(setting: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("ARTICULA_{} ({}): {why}", setting.to_uppercase(), setting))
}

/// The database backend a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Settings {
    /// Reads the file (if any) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file =
            file.map(Path::to_path_buf).or_else(|| std::env::var_os("ARTICULA_CONFIG").map(PathBuf::from));
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &file {
            if !path.exists() {
                return Err(ConfigError(format!("configuration file {} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        // ARTICULA_TEST_* and ARTICULA_LT_* belong to the test and load-test harnesses (the
        // Makefile exports ARTICULA_TEST_PG_URL for every target, `make run` included); they are
        // not settings, so they are neither read nor refused as unknown.
        fig = fig.merge(Env::prefixed("ARTICULA_").ignore(&["config"]).filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            !(k.starts_with("test_") || k.starts_with("lt_"))
        }));
        let settings: Settings = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let msg = e.kind.to_string();
            if key.is_empty() { ConfigError(msg) } else { bad(&key, msg) }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every setting that can be wrong in a way types do not catch.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind.parse::<SocketAddr>().map_err(|e| bad("bind", format!("not an address:port ({e})")))?;
        if let Some(url) = &self.public_url {
            let u = url::Url::parse(url).map_err(|e| bad("public_url", e))?;
            if !matches!(u.scheme(), "https" | "http") {
                return Err(bad("public_url", "must be an https:// URL"));
            }
        }
        if let Some(url) = &self.database_url {
            self.backend_of(url.expose())?;
        }
        self.tls_mode()?;
        if self.database_max_connections == 0 {
            return Err(bad("database_max_connections", "must be at least 1"));
        }
        let positive = [
            ("access_token_ttl_secs", self.access_token_ttl_secs),
            ("refresh_token_ttl_days", self.refresh_token_ttl_days),
            ("session_idle_minutes", self.session_idle_minutes),
            ("lockout_minutes", self.lockout_minutes),
            ("ws_heartbeat_secs", self.ws_heartbeat_secs),
            ("case_idle_secs", self.case_idle_secs),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(bad(name, "must be greater than 0"));
            }
        }
        if self.lockout_threshold == 0 {
            return Err(bad("lockout_threshold", "must be at least 1"));
        }
        if self.login_rate_per_minute == 0 || self.ws_commands_per_second == 0 || self.ws_command_burst == 0 {
            return Err(bad(
                "login_rate_per_minute / ws_commands_per_second / ws_command_burst",
                "must be at least 1",
            ));
        }
        if self.argon2_memory_kib < 8 || self.argon2_iterations == 0 {
            return Err(bad("argon2_memory_kib", "argon2 needs at least 8 KiB and 1 iteration"));
        }
        if !(1024..=MAX_WS_FRAME).contains(&self.ws_max_frame_bytes) {
            return Err(bad("ws_max_frame_bytes", format!("must be between 1024 and {MAX_WS_FRAME}")));
        }
        if self.max_body_bytes < 1024 {
            return Err(bad("max_body_bytes", "must be at least 1024"));
        }
        if self.sqlite_wal_restart_frames < 16 {
            return Err(bad("sqlite_wal_restart_frames", "must be at least 16"));
        }
        if self.subscriber_queue < 16 || self.resume_ring == 0 || self.commit_max_batch == 0 {
            return Err(bad("subscriber_queue / resume_ring / commit_max_batch", "too small"));
        }
        if self.commit_queue_max == 0 || self.case_queue_max == 0 {
            return Err(bad("commit_queue_max / case_queue_max", "must be at least 1"));
        }
        if !(16..=1_000_000).contains(&self.snapshot_every) {
            return Err(bad("snapshot_every", "must be between 16 and 1000000"));
        }
        match self.object_store.as_str() {
            "fs" => {}
            "s3" => {
                if self.s3_bucket.as_deref().is_none_or(|b| b.len() < 3) {
                    return Err(bad(
                        "s3_bucket",
                        "the s3 object store needs a bucket name of at least 3 characters",
                    ));
                }
                if self.s3_access_key.is_none() || self.s3_secret_key.is_none() {
                    return Err(bad(
                        "s3_access_key",
                        "the s3 object store needs ARTICULA_S3_ACCESS_KEY and ARTICULA_S3_SECRET_KEY",
                    ));
                }
                if let Some(e) = &self.s3_endpoint {
                    url::Url::parse(e).map_err(|e| bad("s3_endpoint", e))?;
                }
            }
            other => return Err(bad("object_store", format!("`{other}` is not one of fs, s3"))),
        }
        if let Some(k) = &self.master_key
            && crate::objects::crypto::Key::from_base64(k.expose()).is_err()
        {
            return Err(bad(
                "master_key",
                "must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)",
            ));
        }
        if let Some(keys) = &self.master_keys_old
            && keys.expose().split(',').any(|k| crate::objects::crypto::Key::from_base64(k).is_err())
        {
            return Err(bad("master_keys_old", "must be base64 keys of 32 bytes, comma-separated"));
        }
        if self.max_upload_bytes < 1024 {
            return Err(bad("max_upload_bytes", "must be at least 1024"));
        }
        if self.upload_expiry_hours == 0 {
            return Err(bad("upload_expiry_hours", "must be greater than 0"));
        }
        if self.upload_idle_secs == 0 {
            return Err(bad("upload_idle_secs", "must be greater than 0"));
        }
        if !(0..=19).contains(&self.compression_level) {
            return Err(bad("compression_level", "must be between 0 (off) and 19"));
        }
        if let Some(c) = &self.clamd {
            c.parse::<SocketAddr>().map_err(|e| bad("clamd", format!("not a host:port address ({e})")))?;
        }
        if let Some(u) = &self.transcription_url {
            url::Url::parse(u).map_err(|e| bad("transcription_url", e))?;
        }
        if let Some(p) = &self.demo_password
            && p.expose().len() < 8
        {
            return Err(bad("demo_password", "must have at least 8 characters"));
        }
        if let Some(c) = &self.security_contact {
            let ok = url::Url::parse(c).is_ok_and(|u| matches!(u.scheme(), "mailto" | "https" | "tel"))
                && !c.chars().any(char::is_whitespace);
            if !ok {
                return Err(bad(
                    "security_contact",
                    "must be a mailto:, https:// or tel: URI (e.g. mailto:security@example.org)",
                ));
            }
        }
        if let Some(p) = &self.security_policy_url
            && url::Url::parse(p).map(|u| u.scheme() != "https").unwrap_or(true)
        {
            return Err(bad("security_policy_url", "must be an https:// URL"));
        }
        self.label_names()?;
        Ok(())
    }

    /// The names of `label_name_list`, in lower case, without blanks, comments or repeats.
    pub fn label_names(&self) -> Result<Vec<String>, ConfigError> {
        let Some(path) = &self.label_name_list else { return Ok(Vec::new()) };
        let meta = std::fs::metadata(path)
            .map_err(|e| bad("label_name_list", format!("{}: {e}", path.display())))?;
        if meta.len() > MAX_LABEL_NAME_LIST_BYTES {
            return Err(bad("label_name_list", "the file must be at most 4 MiB"));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("label_name_list", format!("{}: {e}", path.display())))?;
        let mut names: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn backend_of(&self, url: &str) -> Result<Backend, ConfigError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(bad("database_url", "must start with sqlite: or postgres://"))
        }
    }

    /// The database URL (default: SQLite in the data dir).
    pub fn database(&self) -> (Backend, String) {
        match &self.database_url {
            Some(url) => {
                let backend = self.backend_of(url.expose()).unwrap_or(Backend::Sqlite);
                (backend, url.expose().to_owned())
            }
            None => (Backend::Sqlite, format!("sqlite://{}", self.data_dir.join("articula.db").display())),
        }
    }

    /// The TLS mode.
    pub fn tls_mode(&self) -> Result<TlsMode, ConfigError> {
        match self.tls.as_str() {
            "auto" => Ok(TlsMode::Auto),
            "off" => Ok(TlsMode::Off),
            "files" => match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => {
                    for (name, p) in [("tls_cert", cert), ("tls_key", key)] {
                        if !p.is_file() {
                            return Err(bad(name, format!("{} is not a readable file", p.display())));
                        }
                    }
                    Ok(TlsMode::Files { cert: cert.clone(), key: key.clone() })
                }
                _ => Err(bad("tls", "`files` needs ARTICULA_TLS_CERT and ARTICULA_TLS_KEY")),
            },
            other => Err(bad("tls", format!("`{other}` is not one of auto, off, files"))),
        }
    }

    /// The URL people open.
    pub fn public_url(&self, port: u16) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls == "off" { "http" } else { "https" };
        let host = match self.bind.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() || a.ip().is_unspecified() => "localhost".to_owned(),
            Ok(a) => a.ip().to_string(),
            Err(_) => "localhost".to_owned(),
        };
        format!("{scheme}://{host}:{port}")
    }

    /// Access token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }
}

/// Hard upper bound of a WebSocket frame; larger frames close the socket.
pub const MAX_WS_FRAME: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn errors_name_the_setting() {
        let s = Settings { bind: "nowhere".into(), ..Default::default() };
        let err = s.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ARTICULA_BIND"), "{err}");
        let s = Settings { tls: "maybe".into(), ..Default::default() };
        let err = s.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ARTICULA_TLS"), "{err}");
        let s = Settings { database_url: Some(Secret::new("mysql://x")), ..Default::default() };
        let err = s.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ARTICULA_DATABASE_URL") && !err.contains("mysql://x"), "{err}");
    }

    #[test]
    fn the_label_name_list_must_be_a_readable_file() {
        let s = Settings { label_name_list: Some("/nonexistent/names.txt".into()), ..Default::default() };
        let err = s.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ARTICULA_LABEL_NAME_LIST"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.txt");
        std::fs::write(&path, "José\n# a comment\n\n  van  der Berg\njosé\n").unwrap();
        let s = Settings { label_name_list: Some(path), ..Default::default() };
        assert_eq!(s.label_names().unwrap(), ["josé", "van der berg"]);
    }

    #[test]
    fn the_security_contact_is_a_uri() {
        for bad_contact in ["security@example.org", "mailto:a b@example.org", "http://example.org/report"] {
            let s = Settings { security_contact: Some(bad_contact.into()), ..Default::default() };
            let err = s.validate().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("ARTICULA_SECURITY_CONTACT"), "{bad_contact}: {err}");
        }
        let s = Settings {
            security_contact: Some("mailto:security@example.org".into()),
            security_policy_url: Some("https://example.org/security".into()),
            ..Default::default()
        };
        assert!(s.validate().is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let s =
            Settings { database_url: Some(Secret::new("postgres://u:hunter2@h/db")), ..Default::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
