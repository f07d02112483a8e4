//! Storage on SQLite or PostgreSQL through sqlx. Each query is written once, with `$n`
//! placeholders both backends accept, and runs on whichever pool is configured: the
//! [`with_db!`] macro expands the same body for each driver, so both are type-checked and
//! nothing is lost to a lowest-common-denominator driver.

pub mod cases;
pub mod events;
pub mod files;
pub mod sessions;
pub mod users;

use std::str::FromStr;
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

impl Db {
    /// Connects to the configured database and runs pending migrations.
    pub async fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let (backend, url) = settings.database();
        let max = settings.database_max_connections;
        let db = match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(&settings.data_dir)
                    .map_err(|e| StoreError::Corrupt(format!("data dir: {e}")))?;
                let opts = SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a committed event survives a power cut; group commit pays the fsync once per batch.
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new().max_connections(max).connect_with(opts).await?;
                SQLITE_MIGRATIONS.run(&pool).await?;
                Db::Sqlite(pool)
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(&url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
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

    /// Closes the pool.
    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await)
    }
}
