//! `obmen backup DIR` / `obmen restore DIR`, the data-folder lock a running server holds, and the
//! retention of old backups and journal rows.
//!
//! A backup is one folder `DIR/obmen-<UTC time>/` holding:
//! - the database: SQLite → `obmen.db`, an online consistent snapshot made with `VACUUM INTO`
//!   (readers and writers of the running server are not stopped); PostgreSQL → `obmen.pgdump`
//!   from `pg_dump --format=custom`;
//! - the files the database refers to, from the data folder: `documents/` (labels and waybills
//!   handed to 1C), `media/` (card images served to Ozon) and `uploads/` (the kept raw files of
//!   the latest exchanges, for download and replay). `tmp/` and the demo folders are not kept;
//! - `manifest.json`: format, version, creation time, database kind and schema migration
//!   version, and every file with its size and sha256.
//!
//! Files are copied while the server may write new ones: a file that appears during the copy
//! may be missing from the backup, and one removed during the copy is skipped. The database
//! snapshot is consistent on its own.

use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The manifest's `format`.
pub const FORMAT: &str = "obmen-backup";
/// The manifest's `version` this build writes and reads.
pub const VERSION: u32 = 1;
/// Data-folder sub-folders that go into a backup.
pub const DATA_FOLDERS: [&str; 3] = ["documents", "media", "uploads"];
/// The lock file a running `serve` holds (exclusively) in the data folder.
pub const LOCK_FILE: &str = "obmen.lock";
/// Backup folder names start with this.
pub const PREFIX: &str = "obmen-";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub obmen_version: String,
    pub created_at: String,
    pub database: DatabaseInfo,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseInfo {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The file in the backup holding the database.
    pub file: String,
    /// The newest applied schema migration.
    pub migration: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq)]
pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

pub fn database(cfg: &Config) -> Db {
    let url = cfg.database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Db::Postgres(url)
    } else {
        let p = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(&url);
        Db::Sqlite(PathBuf::from(p))
    }
}

/// The exclusive lock on `<data_dir>/obmen.lock`, held by `serve` for its whole life (the OS
/// drops it when the process ends, also on kill -9). `restore` takes the same lock, so it
/// refuses while a server uses the data folder.
pub struct DataLock {
    _file: fs::File,
}

pub fn lock_data_dir(data_dir: &Path) -> Result<DataLock, BackupError> {
    fs::create_dir_all(data_dir).map_err(io(data_dir.display().to_string()))?;
    let path = data_dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(path.display().to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => Err(BackupError::Refused(format!(
            "the data folder {} is in use by a running obmen (stop it first)",
            data_dir.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(BackupError::Io {
            what: path.display().to_string(),
            source: e,
        }),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Every regular file under `root` (relative paths with `/`), sorted; symlinks are not followed.
fn walk(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                if let Ok(rel) = e.path().strip_prefix(root) {
                    let parts: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push(parts.join("/"));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A manifest path that stays inside the folder (no `..`, no root, no drive).
fn safe_rel(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty() || p.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(x) => out.push(x),
            _ => return None,
        }
    }
    Some(out)
}

fn newest_migration_sqlite(path: &Path) -> Result<Option<String>, BackupError> {
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    let mut c = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| BackupError::Db(e.to_string()))?;
    let v = c
        .applied_migrations()
        .map_err(|e| BackupError::Db(e.to_string()))?;
    Ok(v.iter().map(|m| m.to_string()).max())
}

fn newest_migration_available() -> Option<String> {
    use diesel::migration::MigrationSource;
    let m: Vec<_> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&crate::store::MIGRATIONS).ok()?;
    m.iter().map(|m| m.name().version().to_string()).max()
}

fn need_tool(name: &str) -> Result<(), BackupError> {
    match Command::new(name).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(BackupError::Refused(format!(
            "{name} is needed for a PostgreSQL database and was not found on PATH"
        ))),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String, BackupError> {
    let out = cmd.output().map_err(io(what.to_string()))?;
    if !out.status.success() {
        return Err(BackupError::Db(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// psql one value (`-At`); None when the query fails (e.g. no such table).
fn psql_value(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Write a backup into a new folder under `dir`; returns it and its manifest.
pub fn backup(cfg: &Config, dir: &Path) -> Result<(PathBuf, Manifest), BackupError> {
    let now = chrono::Utc::now();
    fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    let mut name = format!("{PREFIX}{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
    let mut n = 1;
    while dir.join(&name).exists() {
        n += 1;
        name = format!("{PREFIX}{}-{n}", now.format("%Y%m%dT%H%M%S%.3fZ"));
    }
    let target = dir.join(&name);
    // Written under a temporary name and renamed at the end: a half-written backup is never
    // taken for one (nor counted by the retention).
    let partial = dir.join(format!(".partial-{name}"));
    fs::create_dir_all(&partial).map_err(io(partial.display().to_string()))?;
    let res = write_backup(cfg, &partial, now);
    let manifest = match res {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, &target).map_err(io(target.display().to_string()))?;
    Ok((target, manifest))
}

fn write_backup(
    cfg: &Config,
    out: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Manifest, BackupError> {
    let database = match database(cfg) {
        Db::Sqlite(path) => {
            if !path.is_file() {
                return Err(BackupError::Refused(format!(
                    "no database at {}",
                    path.display()
                )));
            }
            let file = "obmen.db";
            let snap = out.join(file);
            snapshot_sqlite(&path, &snap)?;
            DatabaseInfo {
                kind: "sqlite".into(),
                file: file.into(),
                migration: newest_migration_sqlite(&snap)?,
            }
        }
        Db::Postgres(url) => {
            need_tool("pg_dump")?;
            let file = "obmen.pgdump";
            run(
                Command::new("pg_dump")
                    .args(["--format=custom", "--no-owner", "--file"])
                    .arg(out.join(file))
                    .arg("--dbname")
                    .arg(&url),
                "pg_dump",
            )?;
            DatabaseInfo {
                kind: "postgres".into(),
                file: file.into(),
                migration: psql_value(&url, "select max(version) from __diesel_schema_migrations")
                    .filter(|s| !s.is_empty()),
            }
        }
    };
    for folder in DATA_FOLDERS {
        let src = cfg.data_dir.join(folder);
        for rel in walk(&src).map_err(io(src.display().to_string()))? {
            let from = src.join(&rel);
            let to = out.join(folder).join(&rel);
            if let Some(p) = to.parent() {
                fs::create_dir_all(p).map_err(io(p.display().to_string()))?;
            }
            match fs::copy(&from, &to) {
                Ok(_) => {}
                // Removed by the running server meanwhile (an old exchange pruned).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(from.display().to_string())(e)),
            }
        }
    }
    let mut files = Vec::new();
    for rel in walk(out).map_err(io(out.display().to_string()))? {
        let (size, sha256) = sha256_file(&out.join(&rel)).map_err(io(rel.clone()))?;
        files.push(FileEntry {
            path: rel,
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        obmen_version: env!("CARGO_PKG_VERSION").into(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        database,
        files,
    };
    let path = out.join("manifest.json");
    let mut f = fs::File::create(&path).map_err(io(path.display().to_string()))?;
    f.write_all(&serde_json::to_vec_pretty(&manifest).expect("a manifest serializes"))
        .and_then(|_| f.sync_all())
        .map_err(io(path.display().to_string()))?;
    Ok(manifest)
}

/// `VACUUM INTO`: a consistent copy of a live SQLite database (one read transaction; the
/// server's writers go on in WAL mode).
fn snapshot_sqlite(db: &Path, to: &Path) -> Result<(), BackupError> {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::sqlite::SqliteConnection::establish(&db.to_string_lossy())
        .map_err(|e| BackupError::Db(e.to_string()))?;
    c.batch_execute("PRAGMA busy_timeout = 60000;")
        .map_err(|e| BackupError::Db(e.to_string()))?;
    let target = to.to_string_lossy().replace('\'', "''");
    diesel::sql_query(format!("VACUUM INTO '{target}'"))
        .execute(&mut c)
        .map_err(|e| BackupError::Db(format!("snapshot: {e}")))?;
    Ok(())
}

/// Read and check a backup folder: the manifest is ours and every file is there with its size
/// and checksum. Nothing is written.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join("manifest.json");
    let text = fs::read(&path).map_err(|e| {
        BackupError::Refused(format!(
            "{} is not an obmen backup (manifest.json: {e})",
            dir.display()
        ))
    })?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BackupError::Refused(format!(
            "{}: manifest.json is damaged or not an obmen backup manifest ({e})",
            dir.display()
        ))
    })?;
    if m.format != FORMAT {
        return Err(BackupError::Refused(format!(
            "{}: not an obmen backup (format {:?})",
            dir.display(),
            m.format
        )));
    }
    if m.version != VERSION {
        return Err(BackupError::Refused(format!(
            "{}: backup format version {} is not supported (this obmen reads {VERSION})",
            dir.display(),
            m.version
        )));
    }
    if !m.files.iter().any(|f| f.path == m.database.file) {
        return Err(BackupError::Refused(format!(
            "{}: the database file {} is not listed in manifest.json",
            dir.display(),
            m.database.file
        )));
    }
    for f in &m.files {
        let rel = safe_rel(&f.path).ok_or_else(|| {
            BackupError::Refused(format!(
                "{}: manifest.json names a path outside the backup: {:?}",
                dir.display(),
                f.path
            ))
        })?;
        let (size, sha) = sha256_file(&dir.join(&rel)).map_err(|e| {
            BackupError::Refused(format!("{}: {} is missing ({e})", dir.display(), f.path))
        })?;
        if size != f.size || sha != f.sha256 {
            return Err(BackupError::Refused(format!(
                "{}: {} is damaged (size or sha256 differs from manifest.json)",
                dir.display(),
                f.path
            )));
        }
    }
    Ok(m)
}

/// What `restore` did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub database: String,
    pub files: usize,
    pub migration: Option<String>,
}

/// Restore a backup folder into the configured database and data folder. Refuses (changing
/// nothing) a damaged or foreign backup, a backup of another database kind, a schema newer
/// than this build, an existing database without `force`, and (SQLite) a data folder a
/// running server holds.
pub fn restore(cfg: &Config, dir: &Path, force: bool) -> Result<Restored, BackupError> {
    let m = verify(dir)?;
    if let (Some(theirs), Some(ours)) = (&m.database.migration, newest_migration_available()) {
        if theirs.as_str() > ours.as_str() {
            return Err(BackupError::Refused(format!(
                "the backup's schema {theirs} is newer than this obmen knows ({ours}); restore it with a newer obmen"
            )));
        }
    }
    let lock = lock_data_dir(&cfg.data_dir)?;
    let db = database(cfg);
    let restored_db = match (&db, m.database.kind.as_str()) {
        (Db::Sqlite(path), "sqlite") => {
            let exists = fs::metadata(path).map(|md| md.len() > 0).unwrap_or(false);
            if exists && !force {
                return Err(BackupError::Refused(format!(
                    "the database {} already exists; restore over it with --force",
                    path.display()
                )));
            }
            if !force {
                refuse_nonempty_folders(cfg)?;
            }
            if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(p).map_err(io(p.display().to_string()))?;
            }
            let tmp = path.with_extension("db.restoring");
            fs::copy(dir.join(&m.database.file), &tmp).map_err(io(tmp.display().to_string()))?;
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(tmp.display().to_string()))?;
            for ext in ["-wal", "-shm"] {
                let mut s = path.as_os_str().to_owned();
                s.push(ext);
                let _ = fs::remove_file(PathBuf::from(s));
            }
            fs::rename(&tmp, path).map_err(io(path.display().to_string()))?;
            path.display().to_string()
        }
        (Db::Postgres(url), "postgres") => {
            need_tool("pg_restore")?;
            need_tool("psql")?;
            let has_schema = psql_value(url, "select count(*) from __diesel_schema_migrations")
                .is_some_and(|n| n != "0");
            if has_schema && !force {
                return Err(BackupError::Refused(
                    "the PostgreSQL database already holds an obmen schema; restore over it with --force"
                        .into(),
                ));
            }
            if !force {
                refuse_nonempty_folders(cfg)?;
            }
            run(
                Command::new("pg_restore")
                    .args(["--clean", "--if-exists", "--no-owner", "--exit-on-error"])
                    .arg("--dbname")
                    .arg(url)
                    .arg(dir.join(&m.database.file)),
                "pg_restore",
            )?;
            crate::config::Config::masked(cfg)
                .database_url
                .unwrap_or_default()
        }
        (_, kind) => {
            return Err(BackupError::Refused(format!(
                "the backup holds a {kind} database, the configured database is {}",
                match db {
                    Db::Sqlite(_) => "SQLite",
                    Db::Postgres(_) => "PostgreSQL",
                }
            )))
        }
    };
    let mut files = 0;
    for folder in DATA_FOLDERS {
        let _ = fs::remove_dir_all(cfg.data_dir.join(folder));
    }
    for f in &m.files {
        let Some(rel) = safe_rel(&f.path) else {
            continue;
        };
        let first = rel.components().next().map(|c| c.as_os_str().to_owned());
        if !DATA_FOLDERS
            .iter()
            .any(|d| first.as_deref() == Some(d.as_ref()))
        {
            continue;
        }
        let to = cfg.data_dir.join(&rel);
        if let Some(p) = to.parent() {
            fs::create_dir_all(p).map_err(io(p.display().to_string()))?;
        }
        fs::copy(dir.join(&rel), &to).map_err(io(to.display().to_string()))?;
        files += 1;
    }
    drop(lock);
    Ok(Restored {
        database: restored_db,
        files,
        migration: m.database.migration,
    })
}

fn refuse_nonempty_folders(cfg: &Config) -> Result<(), BackupError> {
    for folder in DATA_FOLDERS {
        let p = cfg.data_dir.join(folder);
        if walk(&p).map(|v| !v.is_empty()).unwrap_or(false) {
            return Err(BackupError::Refused(format!(
                "{} is not empty; restore over it with --force",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Remove the oldest complete backup folders under `dir` beyond the newest `keep`; also
/// leftovers of interrupted backups. Returns the folders removed.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut found: Vec<String> = Vec::new();
    let mut removed = 0;
    for e in fs::read_dir(dir)?.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if name.starts_with(PREFIX) && e.path().join("manifest.json").is_file() {
            found.push(name);
        } else if name.starts_with(&format!(".partial-{PREFIX}")) {
            // An interrupted backup older than an hour.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 3600);
            if old && fs::remove_dir_all(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    // The names sort by time (UTC, fixed width).
    found.sort();
    let excess = found.len().saturating_sub(keep.max(1));
    for name in found.into_iter().take(excess) {
        fs::remove_dir_all(dir.join(&name))?;
        removed += 1;
    }
    Ok(removed)
}

/// Rows deleted by the journal retention.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct JournalPruned {
    pub exchange_requests: usize,
    pub api_calls: usize,
}

/// Delete the 1C request journal rows and the API call journal rows older than `before_ms`
/// (unix ms). Exchange sessions, orders, messages and their events are kept.
pub fn prune_journals(
    conn: &mut crate::store::Conn,
    before_ms: i64,
) -> Result<JournalPruned, diesel::result::Error> {
    use crate::store::schema::{api_calls, exchange_requests};
    use diesel::prelude::*;
    let exchange_requests =
        diesel::delete(exchange_requests::table.filter(exchange_requests::at.lt(before_ms)))
            .execute(conn)?;
    let api_calls =
        diesel::delete(api_calls::table.filter(api_calls::at.lt(before_ms))).execute(conn)?;
    Ok(JournalPruned {
        exchange_requests,
        api_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_rel_keeps_paths_inside() {
        assert!(safe_rel("documents/1/label.pdf").is_some());
        assert!(safe_rel("../etc/passwd").is_none());
        assert!(safe_rel("/etc/passwd").is_none());
        assert!(safe_rel("media/../../x").is_none());
        assert!(safe_rel("").is_none());
        assert!(safe_rel("a\\..\\b").is_none());
    }

    #[test]
    fn prune_keeps_the_newest() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "obmen-20260101T000000.000Z",
            "obmen-20260102T000000.000Z",
            "obmen-20260103T000000.000Z",
        ] {
            fs::create_dir_all(d.path().join(n)).unwrap();
            fs::write(d.path().join(n).join("manifest.json"), "{}").unwrap();
        }
        // Not a backup of ours: never touched.
        fs::create_dir_all(d.path().join("other")).unwrap();
        assert_eq!(prune(d.path(), 2).unwrap(), 1);
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "obmen-20260102T000000.000Z",
                "obmen-20260103T000000.000Z",
                "other"
            ]
        );
        assert_eq!(prune(d.path(), 2).unwrap(), 0);
    }

    #[test]
    fn journal_retention_removes_old_rows_and_keeps_recent_ones() {
        use crate::store::schema::{api_calls, exchange_requests};
        use diesel::prelude::*;
        let d = tempfile::tempdir().unwrap();
        let pool = crate::store::open(d.path().join("t.db").to_str().unwrap(), 1).unwrap();
        let mut c = pool.get().unwrap();
        let now = crate::store::now_ms();
        let day = 86_400_000;
        for (i, at) in [now - 100 * day, now - 91 * day, now - 89 * day, now]
            .iter()
            .enumerate()
        {
            diesel::insert_into(exchange_requests::table)
                .values((
                    exchange_requests::at.eq(at),
                    exchange_requests::client_addr.eq("127.0.0.1"),
                    exchange_requests::method.eq("GET"),
                    exchange_requests::bytes.eq(0i64),
                    exchange_requests::http_status.eq(200),
                    exchange_requests::answer.eq(format!("success {i}")),
                    exchange_requests::duration_ms.eq(1i64),
                ))
                .execute(&mut c)
                .unwrap();
            crate::relay::journal::record_call(
                &mut c,
                &crate::relay::journal::Call {
                    target: "ozon".into(),
                    endpoint: format!("/v{i}"),
                    at: *at,
                    outcome: "ok".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let n = prune_journals(&mut c, now - 90 * day).unwrap();
        assert_eq!(
            n,
            JournalPruned {
                exchange_requests: 2,
                api_calls: 2
            }
        );
        let answers: Vec<String> = exchange_requests::table
            .order(exchange_requests::at)
            .select(exchange_requests::answer)
            .load(&mut c)
            .unwrap();
        assert_eq!(answers, ["success 2", "success 3"]);
        let endpoints: Vec<String> = api_calls::table
            .order(api_calls::at)
            .select(api_calls::endpoint)
            .load(&mut c)
            .unwrap();
        assert_eq!(endpoints, ["/v2", "/v3"]);
        assert_eq!(
            prune_journals(&mut c, now - 90 * day).unwrap(),
            JournalPruned::default()
        );
    }

    #[test]
    fn lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let first = lock_data_dir(d.path()).unwrap();
        let second = lock_data_dir(d.path());
        assert!(matches!(second, Err(BackupError::Refused(_))));
        drop(first);
        assert!(lock_data_dir(d.path()).is_ok());
    }
}
