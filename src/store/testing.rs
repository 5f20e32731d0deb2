//! Databases for tests. With `OBMEN_TEST_PG_URL` set to a PostgreSQL server URL (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), every test folder gets a fresh database of its
//! own on that server, so the whole suite runs on PostgreSQL; without it, a SQLite file in the
//! folder (the server's default path there).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::SimpleConnection;
use diesel::Connection;

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "OBMEN_TEST_PG_URL";
/// Prefix of the databases made for tests (`.ci/run` drops them before and after a run).
pub const DB_PREFIX: &str = "obmen_t_";
const MARKER: &str = ".test-database-url";

/// Whether tests run on PostgreSQL.
pub fn on_pg() -> bool {
    std::env::var(PG_ENV).is_ok_and(|v| !v.is_empty())
}

/// The database URL for a test's data folder: the same one every time for the same folder (a
/// restarted server finds its data), a new database for a new folder.
pub fn url(dir: &Path) -> String {
    let base = match std::env::var(PG_ENV) {
        Ok(v) if !v.is_empty() => v,
        _ => return dir.join("obmen.db").to_string_lossy().into_owned(),
    };
    let marker = dir.join(MARKER);
    if let Ok(u) = std::fs::read_to_string(&marker) {
        return u;
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{DB_PREFIX}{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = diesel::PgConnection::establish(&base)
        .unwrap_or_else(|e| panic!("{PG_ENV}={base}: cannot connect: {e}"));
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
        ))
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    let url = with_database(&base, &name);
    let _ = std::fs::create_dir_all(dir);
    std::fs::write(&marker, &url).expect("write the test database marker");
    url
}

/// `base` with its database name replaced by `name`.
pub fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (base, None),
    };
    let after_scheme = main.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = main[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(main.len());
    let mut u = format!("{}/{name}", &main[..host_end]);
    if let Some(q) = query {
        u.push('?');
        u.push_str(q);
    }
    u
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        use super::with_database as w;
        assert_eq!(w("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(w("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            w("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
