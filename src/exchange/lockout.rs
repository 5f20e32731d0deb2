//! Lockout after repeated wrong exchange passwords, per client address.
//!
//! Keyed by the address a request comes from (see `web::client_addr`, which honours
//! `server.trusted_proxies`), not by the login: a lockout per login would let anyone who can
//! reach the endpoint stop the shop's own 1C by sending wrong passwords for its login. The
//! counters live in the database, so every instance of a cluster sees the same ones.
//!
//! Rules: `lock_after` wrong passwords from one address, each less than the lock duration after
//! the one before, lock that address for the lock duration; while locked, every request that
//! presents a password (right or wrong) is refused; the right password when not locked clears
//! the count. Requests carrying only a session cookie issued before are not affected.

use diesel::prelude::*;

use crate::store::schema::exchange_auth_failures as f;
use crate::store::{per_backend, Conn};

/// The lock in force for `addr` at `now` (its end, ms), if any.
pub fn locked_until(conn: &mut Conn, addr: &str, now: i64) -> QueryResult<Option<i64>> {
    let until: Option<Option<i64>> = f::table
        .find(addr)
        .select(f::locked_until)
        .first(conn)
        .optional()?;
    Ok(until.flatten().filter(|t| *t > now))
}

/// Count a wrong password from `addr`. Returns the end of the lock when this failure locks it.
/// `lock_after` 0 never locks.
pub fn failed(
    conn: &mut Conn,
    addr: &str,
    now: i64,
    lock_after: u32,
    lock_ms: i64,
) -> QueryResult<Option<i64>> {
    if lock_after == 0 {
        return Ok(None);
    }
    conn.immediate_transaction(|conn| {
        let row: Option<(i32, i64, Option<i64>)> = f::table
            .find(addr)
            .select((f::failures, f::last_failed_at, f::locked_until))
            .first(conn)
            .optional()?;
        let failures = match row {
            // Locked now (a request raced the check): the lock stands as it is.
            Some((_, _, Some(until))) if until > now => return Ok(None),
            // A lock that ran out, or a quiet spell as long as a lock: count afresh.
            Some((_, _, Some(_))) => 1,
            Some((n, last, None)) if now - last < lock_ms => n + 1,
            _ => 1,
        };
        let lock = (failures as i64 >= i64::from(lock_after)).then_some(now + lock_ms);
        per_backend!(conn, |c| {
            diesel::insert_into(f::table)
                .values((
                    f::client_addr.eq(addr),
                    f::failures.eq(failures),
                    f::last_failed_at.eq(now),
                    f::locked_until.eq(lock),
                ))
                .on_conflict(f::client_addr)
                .do_update()
                .set((
                    f::failures.eq(failures),
                    f::last_failed_at.eq(now),
                    f::locked_until.eq(lock),
                ))
                .execute(c)
        })?;
        Ok(lock)
    })
}

/// The right password from `addr`: forget its failures (a no-op when there are none).
pub fn succeeded(conn: &mut Conn, addr: &str) -> QueryResult<()> {
    let any: Option<String> = f::table
        .find(addr)
        .select(f::client_addr)
        .first(conn)
        .optional()?;
    if any.is_some() {
        diesel::delete(f::table.find(addr)).execute(conn)?;
    }
    Ok(())
}

/// Lift the lock and the count of one address, or of every address (`None`). Returns how many
/// addresses had failures or locks.
pub fn unlock(conn: &mut Conn, addr: Option<&str>) -> QueryResult<usize> {
    match addr {
        Some(a) => diesel::delete(f::table.find(a)).execute(conn),
        None => diesel::delete(f::table).execute(conn),
    }
}

/// An address with counted failures or a lock.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = f)]
pub struct Failures {
    pub client_addr: String,
    pub failures: i32,
    pub last_failed_at: i64,
    /// The end of its lock (possibly past).
    pub locked_until: Option<i64>,
}

/// Addresses with counted failures or a lock, the latest failure first.
pub fn list(conn: &mut Conn) -> QueryResult<Vec<Failures>> {
    f::table
        .order(f::last_failed_at.desc())
        .select(Failures::as_select())
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn pool() -> (tempfile::TempDir, crate::store::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
        (dir, pool)
    }

    #[test]
    fn locks_after_n_in_a_row_and_lifts_after_the_duration() {
        let (_dir, pool) = pool();
        let c = &mut pool.get().unwrap();
        let t0 = 1_000_000;
        for i in 0..4 {
            assert_eq!(failed(c, "10.0.0.1", t0 + i, 5, 15 * MIN).unwrap(), None);
            assert_eq!(locked_until(c, "10.0.0.1", t0 + i).unwrap(), None);
        }
        let until = t0 + 4 + 15 * MIN;
        assert_eq!(
            failed(c, "10.0.0.1", t0 + 4, 5, 15 * MIN).unwrap(),
            Some(until)
        );
        assert_eq!(locked_until(c, "10.0.0.1", t0 + 5).unwrap(), Some(until));
        // Another address is not affected.
        assert_eq!(locked_until(c, "10.0.0.2", t0 + 5).unwrap(), None);
        // Failures while locked do not extend the lock.
        assert_eq!(failed(c, "10.0.0.1", t0 + 6, 5, 15 * MIN).unwrap(), None);
        assert_eq!(locked_until(c, "10.0.0.1", t0 + 7).unwrap(), Some(until));
        // The lock ends; the next failure counts from one again.
        assert_eq!(locked_until(c, "10.0.0.1", until).unwrap(), None);
        for i in 0..4 {
            assert_eq!(
                failed(c, "10.0.0.1", until + 1 + i, 5, 15 * MIN).unwrap(),
                None
            );
        }
        assert!(failed(c, "10.0.0.1", until + 9, 5, 15 * MIN)
            .unwrap()
            .is_some());
    }

    #[test]
    fn success_and_quiet_spells_reset_the_count() {
        let (_dir, pool) = pool();
        let c = &mut pool.get().unwrap();
        let t0 = 1_000_000;
        for i in 0..4 {
            failed(c, "a", t0 + i, 5, 15 * MIN).unwrap();
        }
        succeeded(c, "a").unwrap();
        for i in 0..4 {
            assert_eq!(failed(c, "a", t0 + 10 + i, 5, 15 * MIN).unwrap(), None);
        }
        // Fifteen quiet minutes: the fifth failure is the first of a new count.
        assert_eq!(
            failed(c, "a", t0 + 13 + 15 * MIN, 5, 15 * MIN).unwrap(),
            None
        );
        assert_eq!(list(c).unwrap()[0].failures, 1);
        // lock_after 0: never locks, counts nothing.
        for i in 0..20 {
            assert_eq!(failed(c, "b", t0 + i, 0, 15 * MIN).unwrap(), None);
        }
        assert_eq!(list(c).unwrap().len(), 1);
        // Unlock one address, then all.
        for i in 0..5 {
            failed(c, "b", t0 + i, 5, 15 * MIN).unwrap();
        }
        assert!(locked_until(c, "b", t0 + 10).unwrap().is_some());
        assert_eq!(unlock(c, Some("b")).unwrap(), 1);
        assert_eq!(locked_until(c, "b", t0 + 10).unwrap(), None);
        assert_eq!(unlock(c, None).unwrap(), 1);
        assert!(list(c).unwrap().is_empty());
    }
}
