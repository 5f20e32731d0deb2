//! Storage: diesel + r2d2 over SQLite (the embedded default: a file in the data folder, WAL,
//! migrations applied at start) or PostgreSQL (`OBMEN_DATABASE_URL=postgres://…`, several
//! instances may share it). Every time is unix milliseconds.
//!
//! [`Conn`] is one connection type for both (diesel's `MultiConnection`): queries written with
//! diesel's DSL run on either. What the common subset cannot say (upserts, raw SQL, row locks)
//! goes through [`per_backend!`], which instantiates the same code for each backend's own
//! connection.

pub mod models;
pub mod schema;
#[doc(hidden)]
pub mod testing;

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A database connection: SQLite or PostgreSQL.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

/// The query backend of [`Conn`] (for boxed queries).
pub type Backend = MultiBackend;
pub type DbPool = Pool<Manager>;
pub type PooledConn = PooledConnection<Manager>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Run `$body` with `$c` bound to the backend's own connection (`&mut SqliteConnection` or
/// `&mut PgConnection`): the body is compiled once per backend. For what diesel's common subset
/// cannot express: `ON CONFLICT` upserts, raw SQL, `FOR UPDATE SKIP LOCKED`.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::store::AsConn::as_conn($conn) {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Pg($c) => $body,
        }
    };
}
pub use per_backend;

/// A [`Conn`] or a pooled one (for [`per_backend!`]).
pub trait AsConn {
    fn as_conn(&mut self) -> &mut Conn;
}

impl AsConn for Conn {
    fn as_conn(&mut self) -> &mut Conn {
        self
    }
}

impl AsConn for PooledConn {
    fn as_conn(&mut self) -> &mut Conn {
        self
    }
}

impl Conn {
    pub fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// A write transaction that may read first: SQLite's `BEGIN IMMEDIATE` (the writer lock is
    /// taken at the start, so a read-then-write never fails on a lock upgrade); on PostgreSQL a
    /// transaction that first takes the cluster-wide transaction advisory lock
    /// [`WRITE_LOCK`], which gives the same one-writer-at-a-time guarantee to the code written
    /// for it, across every instance sharing the database. Hot paths that need concurrency
    /// (outbox claiming) use row locks instead.
    pub fn immediate_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
            Conn::Pg(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?;
                if let Err(e) =
                    c.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
                {
                    let _ = AnsiTransactionManager::rollback_transaction(c);
                    return Err(e.into());
                }
            }
        }
        self.finish_transaction(f)
    }
}

/// Raw SQL for either backend: `?` placeholders (outside quotes) become `$1`, `$2` … on
/// PostgreSQL.
pub fn sql_query(conn: &Conn, sql: &str) -> diesel::query_builder::SqlQuery {
    if conn.is_pg() {
        diesel::sql_query(numbered_placeholders(sql))
    } else {
        diesel::sql_query(sql)
    }
}

fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut n, mut quoted) = (0, false);
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            _ => out.push(ch),
        }
    }
    out
}

/// This process's name among the instances sharing a database (host, process id and a random
/// part): owner of leases.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!(
            "{}-{}-{:08x}",
            if host.is_empty() { "obmen" } else { &host },
            std::process::id(),
            rand::random::<u32>()
        )
    })
}

/// Claim this run of a schedule for this instance: true when no instance ran `job` in the last
/// `min_gap_ms` (instances sharing a database fire the same cron at about the same moment; one
/// of them runs it).
pub fn claim_schedule(conn: &mut Conn, job: &str, min_gap_ms: i64) -> StoreResult<bool> {
    use schema::schedule_runs::dsl as r;
    per_backend!(conn, |c| {
        diesel::insert_into(r::schedule_runs)
            .values((r::job.eq(job), r::last_at.eq(0i64), r::owner.eq("")))
            .on_conflict_do_nothing()
            .execute(c)
    })?;
    let now = now_ms();
    let n = diesel::update(
        r::schedule_runs
            .filter(r::job.eq(job))
            .filter(r::last_at.le(now - min_gap_ms)),
    )
    .set((r::last_at.eq(now), r::owner.eq(instance_id())))
    .execute(conn)?;
    Ok(n == 1)
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Take the session advisory lock named `name` if free (PostgreSQL; true on SQLite).
pub fn try_lock_named(conn: &mut Conn, name: &str) -> QueryResult<bool> {
    if !conn.is_pg() {
        return Ok(true);
    }
    let r: Locked = sql_query(conn, "SELECT pg_try_advisory_lock(hashtext(?)) AS locked")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)?;
    Ok(r.locked)
}

/// Release what [`try_lock_named`] took.
pub fn unlock_named(conn: &mut Conn, name: &str) -> QueryResult<()> {
    if conn.is_pg() {
        sql_query(conn, "SELECT pg_advisory_unlock(hashtext(?)) AS locked")
            .bind::<diesel::sql_types::Text, _>(name)
            .execute(conn)?;
    }
    Ok(())
}

/// Serialise, across every instance, the check-then-insert of outbox messages with one key (a
/// no-op on SQLite, whose writer lock already does): a transaction advisory lock on the key,
/// held until the surrounding transaction ends.
pub fn lock_key(conn: &mut Conn, kind: &str, key: &str) -> QueryResult<()> {
    if conn.is_pg() {
        sql_query(conn, "SELECT pg_advisory_xact_lock(hashtext(?))")
            .bind::<diesel::sql_types::Text, _>(format!("{kind}\n{key}"))
            .execute(conn)?;
    }
    Ok(())
}

impl Conn {
    /// A read transaction whose statements all see one moment of the database: SQLite's
    /// deferred transaction (its read snapshot), PostgreSQL's `REPEATABLE READ` (under the
    /// default `READ COMMITTED` every statement would see the latest commits).
    pub fn snapshot_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?,
            Conn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(
                c,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )?,
        }
        self.finish_transaction(f)
    }
}

impl Conn {
    /// Run `f` in the transaction just begun on the inner connection, then commit it, or roll
    /// it back when `f` fails (the transaction manager of the inner connection keeps the depth).
    fn finish_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Conn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match f(self) {
            Ok(v) => {
                <Conn as Connection>::TransactionManager::commit_transaction(self)?;
                Ok(v)
            }
            Err(e) => {
                <Conn as Connection>::TransactionManager::rollback_transaction(self)?;
                Err(e)
            }
        }
    }
}

/// The advisory lock key of [`Conn::immediate_transaction`] on PostgreSQL.
pub const WRITE_LOCK: i64 = 0x6f62_6d65_6e01;

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
        "unsupported database URL {0:?}: obmen supports SQLite (a file path or sqlite://…) and PostgreSQL (postgres://…)"
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
/// The server's pool holds 16 connections and each one's cache fills as the database grows, so
/// this bounds their share of the process's memory: 16 × 4 MiB (16 MiB each let the RSS climb to
/// ≈ 350 MiB under the load harness, BENCHMARKS.md).
pub const CACHE_KIB: u32 = 4_096;

/// What a WAL file of SQLite is cut back to once a checkpoint has emptied it
/// (`PRAGMA journal_size_limit`); without it the file keeps the largest size it ever reached.
pub const WAL_LIMIT_BYTES: u64 = 64 << 20;

/// How long a pooled SQLite connection waits for a lock (`PRAGMA busy_timeout`).
const BUSY_TIMEOUT_MS: u32 = 60_000;

/// How long the periodic checkpoint waits for readers and writers (`checkpoint_wal`): short, so
/// that it never holds up 1C's requests, and it simply runs again at the next turn.
const CHECKPOINT_WAIT_MS: u32 = 2_000;

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file (a plain path, `sqlite://…` or `sqlite:…`).
    Sqlite(String),
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Pg(String),
}

impl Target {
    pub fn of(url: &str) -> StoreResult<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Pg(url.to_string()));
        }
        if url.contains("://") && !url.starts_with("sqlite://") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        Ok(Target::Sqlite(
            url.strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url)
                .to_string(),
        ))
    }
}

/// Turn a database URL (or a plain path) into the SQLite path diesel expects.
pub fn sqlite_path(url: &str) -> StoreResult<String> {
    match Target::of(url)? {
        Target::Sqlite(p) => Ok(p),
        Target::Pg(_) => Err(StoreError::UnsupportedUrl(url.to_string())),
    }
}

/// The r2d2 connection manager: opens the backend the URL names (diesel's own manager would
/// try each backend in turn, and take a PostgreSQL URL for a file name when the server is down).
#[derive(Debug, Clone)]
pub struct Manager(Target);

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        match &self.0 {
            Target::Sqlite(p) => diesel::SqliteConnection::establish(p).map(Conn::Sqlite),
            Target::Pg(u) => diesel::PgConnection::establish(u).map(Conn::Pg),
        }
        .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        if let Conn::Sqlite(c) = conn {
            c.batch_execute(&format!(
                // busy_timeout first: every later statement may wait for a lock. journal_mode=WAL
                // is persistent and was set once by `open`, so this one is a no-op that takes no
                // lock.
                "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{CACHE_KIB}; \
                 PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Size of the page-cache slab all SQLite connections of the process share (see
/// [`sqlite_page_slab`]).
pub const PAGE_SLAB_BYTES: usize = 32 << 20;

/// A slot of the slab: one 4 KiB database page and SQLite's header for it.
const PAGE_SLOT_PAGE: usize = 4096;

/// Give SQLite one slab for the page caches of all connections (`SQLITE_CONFIG_PAGECACHE`),
/// before it initializes; pages beyond the slab (a large import's cache) still come from the
/// heap. In WAL mode a connection drops its whole page cache whenever another one has written
/// since its last read, so under 1C's load (a journal row on every request) each of the pool's
/// connections freed and refilled its cache many times a second. From the heap, those 4 KiB
/// pages fragmented glibc's arenas and the RSS kept climbing while the live heap stayed
/// near 10 MiB (BENCHMARKS.md, load); in the slab they are reused in place. Returns whether
/// SQLite took the slab: it cannot once the process has opened a database, which is why
/// [`open`] calls this first.
pub fn sqlite_page_slab() -> bool {
    static TAKEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TAKEN.get_or_init(give_sqlite_page_slab)
}

/// [`sqlite_page_slab`] without its once-per-process guard.
fn give_sqlite_page_slab() -> bool {
    use libsqlite3_sys as ffi;
    use std::os::raw::c_int;
    let mut header: c_int = 0;
    // SAFETY: sqlite3_config only reads or sets SQLite's global configuration; the header
    // size may be asked at any time and `header` outlives the call.
    if unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE_HDRSZ, &mut header as *mut c_int) }
        != ffi::SQLITE_OK
    {
        return false;
    }
    let slot = (PAGE_SLOT_PAGE + header.max(0) as usize).next_multiple_of(8);
    let slots = PAGE_SLAB_BYTES / slot;
    // u64 elements keep the slab 8-byte aligned, as SQLite requires.
    let mut slab = vec![0u64; slots * slot / 8];
    // SAFETY: SQLite keeps the pointer for the rest of the process (the slab is forgotten
    // below once SQLite has taken it) and refuses it (SQLITE_MISUSE) once initialized, in
    // which case it keeps nothing and the slab is dropped here.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PAGECACHE,
            slab.as_mut_ptr() as *mut std::ffi::c_void,
            slot as c_int,
            slots as c_int,
        )
    };
    if rc != ffi::SQLITE_OK {
        tracing::debug!(rc, "SQLite was initialized before its page slab was set");
        return false;
    }
    std::mem::forget(slab);
    true
}

/// Open the pool and bring the schema up to date.
pub fn open(url: &str, max_size: u32) -> StoreResult<DbPool> {
    let target = Target::of(url)?;
    match &target {
        Target::Sqlite(path) => {
            sqlite_page_slab();
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
            // Switch to WAL and migrate over one connection before the pool opens its
            // connections in parallel: on a fresh file, several connections racing to switch the
            // journal mode get "database is locked".
            let mut first = diesel::SqliteConnection::establish(path)?;
            first
                .batch_execute(&format!(
                    "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL;"
                ))
                .map_err(StoreError::Db)?;
            migrate(&mut Conn::Sqlite(first))?;
        }
        Target::Pg(u) => {
            migrate(&mut Conn::Pg(diesel::PgConnection::establish(u)?))?;
        }
    }
    let pg = matches!(target, Target::Pg(_));
    let pool = Pool::builder()
        .max_size(max_size)
        // A PostgreSQL server is shared (several instances, max_connections): open connections
        // as they are needed rather than all at start, and never in the background: r2d2 keeps
        // `min_idle` topped up from a thread of its own, and a process ending while that thread
        // was inside libpq's connect crashed in libpq's libraries' exit handlers (Kerberos,
        // TLS; `obmen import` on PostgreSQL died by SIGSEGV or SIGABRT in 2 runs of 60).
        .min_idle(if pg { Some(0) } else { None })
        .connection_timeout(Duration::from_secs(60))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(Manager(target))?;
    Ok(pool)
}

/// The result of `checkpoint_wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Bytes of WAL frames found (before any truncation).
    pub wal_bytes: i64,
    /// The WAL was over the threshold and a truncating checkpoint ran.
    pub truncating: bool,
    /// That checkpoint could not finish: a reader or writer held on past the wait.
    pub busy: bool,
}

/// Keep SQLite's WAL bounded. A passive checkpoint first (it never waits); when the WAL still
/// holds more than `above_bytes`, a `wal_checkpoint(TRUNCATE)` that waits up to
/// `CHECKPOINT_WAIT_MS` for readers to move on and empties the file. SQLite's own checkpoints
/// after each commit cannot restart the WAL while some reader always holds an older snapshot:
/// under a steady load the file grew without end (420 MB in a 10-minute load run, and 700 MB
/// within one minute between once-a-minute checkpoints; BENCHMARKS.md). `None` on PostgreSQL.
pub fn checkpoint_wal(pool: &DbPool, above_bytes: i64) -> StoreResult<Option<Checkpoint>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        log: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct PageSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        page_size: i64,
    }
    let mut conn = pool.get()?;
    let Conn::Sqlite(c) = &mut *conn else {
        return Ok(None);
    };
    let passive = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Row>(c)?;
    let page: PageSize = diesel::sql_query("PRAGMA page_size").get_result(c)?;
    // A frame is a page plus its 24-byte header.
    let wal_bytes = passive.log.max(0) * (page.page_size + 24);
    if wal_bytes <= above_bytes {
        return Ok(Some(Checkpoint {
            wal_bytes,
            truncating: false,
            busy: false,
        }));
    }
    c.batch_execute(&format!("PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}"))?;
    let row = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<Row>(c);
    // The pooled connection goes back with the pool's own wait.
    c.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))?;
    Ok(Some(Checkpoint {
        wal_bytes,
        truncating: true,
        busy: row?.busy != 0,
    }))
}

/// Advisory lock held while migrating PostgreSQL, so instances starting together take turns.
const MIGRATE_LOCK: i64 = 0x6f62_6d65_6e02;

/// Apply pending migrations; returns the versions applied.
pub fn migrate(conn: &mut Conn) -> StoreResult<Vec<String>> {
    fn names(
        r: diesel::migration::Result<Vec<diesel::migration::MigrationVersion<'_>>>,
    ) -> StoreResult<Vec<String>> {
        r.map(|v| v.iter().map(|v| v.to_string()).collect())
            .map_err(|e| StoreError::Migration(e.to_string()))
    }
    match conn {
        Conn::Sqlite(c) => names(c.run_pending_migrations(MIGRATIONS)),
        Conn::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATE_LOCK})"))?;
            let r = names(c.run_pending_migrations(PG_MIGRATIONS));
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATE_LOCK})"))?;
            r
        }
    }
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
    per_backend!(conn, |c| {
        diesel::insert_into(s::settings)
            .values((
                s::key.eq(key),
                s::value.eq(value),
                s::updated_at.eq(now_ms()),
            ))
            .on_conflict(s::key)
            .do_update()
            .set((s::value.eq(value), s::updated_at.eq(now_ms())))
            .execute(c)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b <> '?' AND c = ?"),
            "a = $1 AND b <> '?' AND c = $2"
        );
    }

    /// The pooled connections' page cache is what bounds the server's memory as the database
    /// grows (BENCHMARKS.md, load): each connection must come out of the pool with it set.
    #[test]
    fn pooled_sqlite_connections_have_the_bounded_page_cache() {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct CacheSize {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            cache_size: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = super::open(dir.path().join("t.db").to_str().unwrap(), 2).unwrap();
        // Both of the pool's connections at once, so that neither is checked twice.
        let mut held = [pool.get().unwrap(), pool.get().unwrap()];
        for conn in &mut held {
            let super::Conn::Sqlite(c) = &mut **conn else {
                panic!("a plain path opens SQLite")
            };
            let got: CacheSize = diesel::sql_query("PRAGMA cache_size")
                .get_result(c)
                .unwrap();
            assert_eq!(got.cache_size, -i64::from(super::CACHE_KIB));
        }
    }

    #[test]
    fn an_initialized_sqlite_refuses_the_page_slab_and_nothing_breaks() {
        // SAFETY: sqlite3_initialize is idempotent and safe to call from any thread.
        assert_eq!(
            unsafe { libsqlite3_sys::sqlite3_initialize() },
            libsqlite3_sys::SQLITE_OK
        );
        assert!(!super::give_sqlite_page_slab());
        // Refused, the slab was dropped and SQLite works as before from its heap.
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let pool = super::open(dir.path().join("t.db").to_str().unwrap(), 1).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }

    /// The periodic checkpoint leaves a WAL under its threshold alone, and empties one over it
    /// once the long reader that kept it growing is gone; while the reader reads, it gives up
    /// after its short wait and says so.
    #[test]
    fn checkpoint_truncates_the_wal_once_readers_move_on() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let pool = super::open(db.to_str().unwrap(), 2).unwrap();
        let wal = dir.path().join("t.db-wal");
        let mut reader = pool.get().unwrap();
        {
            let mut w = pool.get().unwrap();
            w.batch_execute("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(1000));")
                .unwrap();
            // A reader holding its snapshot: SQLite's own checkpoints cannot restart the WAL.
            reader
                .batch_execute("BEGIN; SELECT count(*) FROM t;")
                .unwrap();
            for _ in 0..200 {
                w.batch_execute("INSERT INTO t VALUES (zeroblob(8000))")
                    .unwrap();
            }
        }
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 1 << 20, "WAL of {grown} bytes");
        let under = super::checkpoint_wal(&pool, grown as i64 * 2)
            .unwrap()
            .unwrap();
        assert!(!under.truncating, "{under:?}");
        assert!(
            under.wal_bytes > 1 << 20 && under.wal_bytes <= grown as i64,
            "{under:?}"
        );
        let started = std::time::Instant::now();
        let held = super::checkpoint_wal(&pool, 0).unwrap().unwrap();
        assert!(held.truncating && held.busy, "{held:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(std::fs::metadata(&wal).unwrap().len() >= grown);
        reader.batch_execute("COMMIT").unwrap();
        drop(reader);
        let done = super::checkpoint_wal(&pool, 0).unwrap().unwrap();
        assert!(done.truncating && !done.busy, "{done:?}");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        // The connection went back to the pool with its usual wait.
        #[derive(diesel::QueryableByName)]
        struct Timeout {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            timeout: i32,
        }
        let mut c = pool.get().unwrap();
        let super::Conn::Sqlite(c) = &mut *c else {
            unreachable!()
        };
        let t: Timeout =
            diesel::RunQueryDsl::get_result(diesel::sql_query("PRAGMA busy_timeout"), c).unwrap();
        assert_eq!(t.timeout, super::BUSY_TIMEOUT_MS as i32);
    }

    /// On PostgreSQL the pool opens a connection only when one is asked for, never from r2d2's
    /// own thread: a connect in flight there when a short command (`obmen import`) ended crashed
    /// the process in libpq's exit handlers. (The suite's PostgreSQL pass runs this.)
    #[test]
    fn postgres_pool_connects_only_on_demand() {
        if !super::testing::on_pg() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = super::open(&super::testing::url(dir.path()), 4).unwrap();
        assert_eq!(pool.state().connections, 0, "{:?}", pool.state());
        let held = pool.get().unwrap();
        // r2d2 would top `min_idle` up within milliseconds; give it ample time.
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(pool.state().connections, 1, "{:?}", pool.state());
        drop(held);
        assert_eq!(pool.state().idle_connections, 1, "{:?}", pool.state());
    }

    #[test]
    fn like_contains_takes_wildcards_literally() {
        assert_eq!(super::like_contains("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(super::like_contains("Дрель"), "%Дрель%");
        assert_eq!(super::like_contains(""), "%%");
    }
}
