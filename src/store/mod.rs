//! Storage: diesel + r2d2 over SQLite (the embedded default: a file in the data folder, WAL,
//! migrations applied at start). Every time is unix milliseconds.

pub mod models;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type Conn = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<Conn>>;
pub type PooledConn = PooledConnection<ConnectionManager<Conn>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database connection error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database connection error: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migration error: {0}")]
    Migration(String),
    /// A blocking task around the store failed (panicked or was cancelled), or what it produced
    /// could not be encoded.
    #[error("background task failed: {0}")]
    Task(String),
    #[error(
        "unsupported database URL {0:?}: this build supports SQLite (a file path or sqlite://…)"
    )]
    UnsupportedUrl(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A LIKE pattern matching `s` anywhere, `%`, `_` and `\\` taken literally (use with
/// `.escape('\\')`).
pub fn like_contains(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Page cache of a pooled connection, KiB (`PRAGMA cache_size` below; the importer raises its own).
pub const CACHE_KIB: u32 = 16_384;

#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            // busy_timeout first: every later statement may wait for a lock. journal_mode=WAL is
            // persistent and was set once by `open`, so this one is a no-op that takes no lock.
            "PRAGMA busy_timeout = 60000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Turn a database URL (or a plain path) into the SQLite path diesel expects.
pub fn sqlite_path(url: &str) -> StoreResult<String> {
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("mysql://")
    {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
        .to_string())
}

/// Open the pool and bring the schema up to date.
pub fn open(url: &str, max_size: u32) -> StoreResult<DbPool> {
    let path = sqlite_path(url)?;
    if let Some(parent) = Path::new(&path).parent() {
        if !parent.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(parent);
        }
    }
    // Switch to WAL and migrate over one connection before the pool opens its connections in
    // parallel: on a fresh file, several connections racing to switch the journal mode get
    // "database is locked".
    {
        let mut first = Conn::establish(&path)?;
        first
            .batch_execute("PRAGMA busy_timeout = 60000; PRAGMA journal_mode = WAL;")
            .map_err(StoreError::Db)?;
        migrate(&mut first)?;
    }
    let manager = ConnectionManager::<Conn>::new(path);
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(60))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?;
    Ok(pool)
}

/// Apply pending migrations; returns the versions applied.
pub fn migrate(conn: &mut Conn) -> StoreResult<Vec<String>> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

pub fn get_setting(conn: &mut Conn, key: &str) -> StoreResult<Option<String>> {
    use schema::settings::dsl as s;
    Ok(s::settings
        .filter(s::key.eq(key))
        .select(s::value)
        .first::<String>(conn)
        .optional()?)
}

pub fn set_setting(conn: &mut Conn, key: &str, value: &str) -> StoreResult<()> {
    use schema::settings::dsl as s;
    diesel::insert_into(s::settings)
        .values((
            s::key.eq(key),
            s::value.eq(value),
            s::updated_at.eq(now_ms()),
        ))
        .on_conflict(s::key)
        .do_update()
        .set((s::value.eq(value), s::updated_at.eq(now_ms())))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_contains_takes_wildcards_literally() {
        assert_eq!(super::like_contains("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(super::like_contains("Дрель"), "%Дрель%");
        assert_eq!(super::like_contains(""), "%%");
    }
}
