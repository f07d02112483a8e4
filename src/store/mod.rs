//! Storage on SQLite or PostgreSQL through sqlx. Each query is written once, with `$n`
//! placeholders both backends accept, and runs on whichever pool is configured: the
//! [`with_db!`] macro expands the same body for each driver, so both are type-checked and
//! nothing is lost to a lowest-common-denominator driver.

pub mod audit;
pub mod cases;
pub mod events;
pub mod files;
pub mod members;
pub mod notices;
pub mod search;
pub mod sessions;
pub mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::config::{Backend, Settings};

/// A pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite (default): one file in the data dir, WAL mode.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Opens a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`, which takes the write
/// lock at once, waiting for it up to the busy timeout. sqlx's plain `begin()` is `BEGIN`
/// (deferred): the transaction starts as a reader and asks for the write lock at its first
/// write, and SQLite refuses that upgrade at once with `SQLITE_BUSY` ("database is locked") when
/// another connection (the event log's group commit, many times a second) holds the lock or has
/// committed since the transaction's first read — the busy timeout does not apply, since waiting
/// could deadlock two upgrading readers. Every transaction that writes uses this. On PostgreSQL,
/// an ordinary `BEGIN` (row locks wait by themselves).
pub trait BeginWrite {
    /// The driver.
    type Database: sqlx::Database;
    /// Begins the transaction.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// A storage failure (details go to the log, never to clients).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying can help: the database unreachable, restarting, overloaded, locked or
    /// out of space — not the data refused (a constraint, an encoding), which a retry meets
    /// again. Transient failures are answered `unavailable` (503), never `internal`.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => {
                let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
                if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // SQLite reports extended codes; the primary code is the low byte: BUSY,
                    // LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
                    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14 | 15))
                } else {
                    // PostgreSQL SQLSTATE: connection (08), resources incl. disk full (53),
                    // operator intervention incl. shutdown (57), system I/O (58), serialization
                    // failures and deadlocks (40001, 40P01), lock not available (55P03).
                    ["08", "53", "57", "58"].iter().any(|p| code.starts_with(p))
                        || matches!(code.as_str(), "40001" | "40P01" | "55P03")
                }
            }
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    }

    /// Whether the error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Parses a stored id or enum.
pub fn parse<T: FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("{what}: {s:?}")))
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How often the WAL is checkpointed into the database file (SQLite).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How long emptying the log waits for readers (holding the next commit back meanwhile).
const CHECKPOINT_PATIENCE: Duration = Duration::from_millis(10);
/// How long a query waits for a PostgreSQL connection. sqlx keeps retrying a refused
/// connection until then, so this is also how long everything waits while the database is
/// down before answering `unavailable` (a case reloading its log holds its commands that
/// long): short, or a restart of the database would look like a hung server. A free connection
/// of a healthy pool comes in milliseconds; waiting longer than this for one is an overload,
/// which `unavailable` answers too.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a statement waits for SQLite's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Empties SQLite's write-ahead log, on the group commit's connection between two commits.
/// Readers still in the log hold it back; it waits [`CHECKPOINT_PATIENCE`] for them (the next
/// commit waits too), else gives up until the checkpointer asks again.
pub async fn truncate_wal(pool: &SqlitePool) {
    let patience = format!("PRAGMA busy_timeout = {}", CHECKPOINT_PATIENCE.as_millis());
    let usual = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
    let res = async {
        sqlx::query(sqlx::AssertSqlSafe(patience)).execute(pool).await?;
        let res = checkpoint(pool, Checkpoint::Truncate).await;
        sqlx::query(sqlx::AssertSqlSafe(usual)).execute(pool).await?;
        res
    }
    .await;
    if let Err(e) = res {
        tracing::debug!(error = %e, "emptying the WAL postponed");
    }
}

/// How a checkpoint treats the writers and readers it meets.
#[derive(Clone, Copy)]
enum Checkpoint {
    /// Copies what it can, waits for no one.
    Passive,
    /// Copies everything and starts the log over (waiting briefly for readers).
    Truncate,
}

/// Runs a checkpoint; answers the frames in the log.
async fn checkpoint(pool: &SqlitePool, mode: Checkpoint) -> Result<i64, sqlx::Error> {
    let (sql, name) = match mode {
        Checkpoint::Passive => ("PRAGMA wal_checkpoint(PASSIVE)", "passive"),
        Checkpoint::Truncate => ("PRAGMA wal_checkpoint(TRUNCATE)", "truncate"),
    };
    let (_busy, in_log, copied): (i64, i64, i64) = sqlx::query_as(sql).fetch_one(pool).await?;
    metrics::counter!("articula_sqlite_checkpoints_total", "mode" => name).increment(1);
    metrics::gauge!("articula_sqlite_wal_frames").set(in_log as f64);
    metrics::gauge!("articula_sqlite_wal_checkpointed_frames").set(copied as f64);
    Ok(in_log)
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed event survives a power cut; group commit pays the fsync once per batch.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // Checkpoints run in the background (`spawn_checkpointer`), never inside a commit: an
        // automatic checkpoint copies and fsyncs a thousand pages in the middle of whichever
        // commit crossed the threshold, and every event waiting on that commit waits for it.
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", (64 * 1024 * 1024).to_string()))
}

/// Whether a SQLite connection came back to the pool still counting an open transaction, which
/// it then never leaves. SQLite rolls a transaction back by itself when a statement or the
/// COMMIT fails with SQLITE_FULL or SQLITE_IOERR (a full disk); sqlx 0.9 does not notice, its
/// ROLLBACK on drop fails ("no transaction is active"), and its transaction depth stays at 1:
/// every later `BEGIN IMMEDIATE` on that connection is refused, a permanent-looking error, and
/// the group commit's only connection would answer `not_storable` for good once the disk had
/// room again. Such a connection is closed (the pool opens a fresh one). The ping first lets a
/// rollback queued by a dropped transaction run; without an open transaction nothing is done.
async fn poisoned(conn: &mut sqlx::SqliteConnection) -> bool {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return false;
    }
    let _ = conn.ping().await;
    let stuck = conn.is_in_transaction();
    if stuck {
        tracing::warn!("a SQLite connection was left in a transaction it cannot end; closing it");
    }
    stuck
}

/// A pool of up to `max` connections to a SQLite file.
async fn sqlite_pool(opts: SqliteConnectOptions, max: u32) -> Result<SqlitePool, StoreError> {
    Ok(SqlitePoolOptions::new()
        .max_connections(max)
        // Connections to a local file do not go stale; checking costs a round trip to the
        // connection's thread on every acquire.
        .test_before_acquire(false)
        .after_release(|conn, _| Box::pin(async move { Ok(!poisoned(conn).await) }))
        .connect_with(opts)
        .await?)
}

/// A pool of up to `max` connections to PostgreSQL.
async fn pg_pool(url: &str, max: u32) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        .connect_with(PgConnectOptions::from_str(url)?)
        .await?)
}

impl Db {
    /// Connects to the configured database and runs pending migrations.
    pub async fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let (backend, url) = settings.database();
        let max = settings.database_max_connections;
        let db = match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(&settings.data_dir)
                    .map_err(|e| StoreError::Corrupt(format!("data dir: {e}")))?;
                let pool = sqlite_pool(sqlite_options(&url)?, max).await?;
                SQLITE_MIGRATIONS.run(&pool).await?;
                Db::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = pg_pool(&url, max).await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Db::Postgres(pool)
            }
        };
        Ok(db)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_db!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Where the group commit writes the event log. On SQLite, one connection of its own: its
    /// page cache and prepared statements stay warm, and it never queues behind the REST API's
    /// reads for a pooled connection (SQLite has one writer at a time anyway). On PostgreSQL
    /// too, a pool of its own (two connections: one commit runs at a time, the other is ready
    /// when a connection breaks): a burst of queries on the shared pool (thousands of sockets
    /// checking their sessions) must never make the event log wait for a connection.
    pub async fn log_writer(&self, settings: &Settings) -> Result<Self, StoreError> {
        match self {
            Db::Sqlite(_) => {
                let (_, url) = settings.database();
                Ok(Db::Sqlite(sqlite_pool(sqlite_options(&url)?.pragma("cache_size", "-65536"), 1).await?))
            }
            Db::Postgres(_) => {
                let (_, url) = settings.database();
                Ok(Db::Postgres(pg_pool(&url, 2).await?))
            }
        }
    }

    /// Checkpoints SQLite's write-ahead log into the database file in the background, so that
    /// commits never do it: every tick a PASSIVE checkpoint copies what it can without waiting
    /// for anyone. That alone would let the log grow forever under steady writes (SQLite starts
    /// the log over only when a writer begins with everything copied and no reader in the log,
    /// which a steady writer with readers around seldom meets). So once the log holds
    /// `sqlite_wal_restart_frames`, the returned flag is raised, and the group commit's own
    /// connection empties the log between two commits ([`truncate_wal`]), when only the few
    /// frames written since the PASSIVE pass remain to copy. Nothing on PostgreSQL.
    pub async fn spawn_checkpointer(&self, settings: &Settings) -> Result<Arc<AtomicBool>, StoreError> {
        let wanted = Arc::new(AtomicBool::new(false));
        let Db::Sqlite(_) = self else { return Ok(wanted) };
        let (_, url) = settings.database();
        let restart_frames = settings.sqlite_wal_restart_frames as i64;
        let pool = sqlite_pool(sqlite_options(&url)?, 1).await?;
        let flag = wanted.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match checkpoint(&pool, Checkpoint::Passive).await {
                    Ok(frames) if frames >= restart_frames => flag.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        });
        Ok(wanted)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await)
    }
}
