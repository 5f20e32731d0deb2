//! The SQLite page-cache slab (`store::sqlite_page_slab`): pages of every connection come from one
//! block set aside at start, so the churn of WAL readers dropping and refilling their caches does
//! not go through (and fragment) the heap. A test binary of its own: SQLite takes the slab only
//! before it initializes, and in this process nothing has opened a database before this test.

use libsqlite3_sys as ffi;

/// Pages of the slab in use now (`SQLITE_STATUS_PAGECACHE_USED`).
fn slab_pages_used() -> i64 {
    let (mut current, mut highwater) = (0i64, 0i64);
    // SAFETY: sqlite3_status64 only reads SQLite's counters into the two locals.
    let rc = unsafe {
        ffi::sqlite3_status64(
            ffi::SQLITE_STATUS_PAGECACHE_USED,
            &mut current,
            &mut highwater,
            0,
        )
    };
    assert_eq!(rc, ffi::SQLITE_OK);
    current
}

#[test]
fn connections_take_their_pages_from_the_slab() {
    assert!(
        obmen::store::sqlite_page_slab(),
        "SQLite refused the slab although no database was open yet"
    );
    assert_eq!(slab_pages_used(), 0);

    let dir = tempfile::tempdir().unwrap();
    let pool = obmen::store::open(dir.path().join("slab.db").to_str().unwrap(), 2).unwrap();
    let mut conn = pool.get().unwrap();
    use diesel::connection::SimpleConnection;
    // About 2 MiB of rows: more pages than a few, fewer than the slab holds.
    conn.batch_execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, printf('%.1000c', 'x') FROM n;
         SELECT count(*), sum(length(v)) FROM t;",
    )
    .unwrap();
    let used = slab_pages_used();
    assert!(
        used > 100,
        "the connection's page cache should be in the slab, {used} pages are"
    );
    let slots = obmen::store::PAGE_SLAB_BYTES / 4096;
    assert!(used < slots as i64, "{used} pages of at most {slots}");

    // Asked again, the answer stands (SQLite is initialized by now and would refuse a new slab).
    assert!(obmen::store::sqlite_page_slab());
}
