//! Outbox rows: enqueue (with coalescing), claim with a lease, record outcomes, list and retry.

use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;

use super::{state, Message, Outcome, OutcomeKind};
use crate::store::schema::outbox;
use crate::store::{now_ms, Conn};

/// How a new message relates to earlier ones with the same kind and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// A newer value supersedes an unsent older one (stock, price): the payload of a `pending`
    /// or `failed` message with the same key is replaced; otherwise a new message is added.
    Coalesce,
    /// Once per key, ever (ship a posting, create a delivery order): nothing is added when any
    /// message with the key exists, whatever its state (a cancelled one excepted).
    Once,
    /// Always add.
    Always,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub target: String,
    pub kind: String,
    pub key: String,
    pub payload: serde_json::Value,
    pub order_id: Option<i32>,
    /// Not before this time (unix ms); default now.
    pub not_before: Option<i64>,
}

impl NewMessage {
    pub fn new(
        target: &str,
        kind: &str,
        key: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        NewMessage {
            target: target.into(),
            kind: kind.into(),
            key: key.into(),
            payload,
            order_id: None,
            not_before: None,
        }
    }
    pub fn for_order(mut self, order_id: i32) -> Self {
        self.order_id = Some(order_id);
        self
    }
}

/// Put a message into the outbox (call it inside the transaction that decided the change).
/// Returns the message id, or None when [`Enqueue::Once`] found one already.
pub fn enqueue(conn: &mut Conn, m: &NewMessage, mode: Enqueue) -> QueryResult<Option<i32>> {
    if conn.is_pg() && !matches!(mode, Enqueue::Always) {
        // Instances deciding the same message at once: the key lock (held to the end of the
        // transaction; a savepoint inside the caller's) makes the second see the first's row.
        return conn.transaction(|conn| {
            crate::store::lock_key(conn, &m.kind, &m.key)?;
            enqueue_checked(conn, m, mode)
        });
    }
    enqueue_checked(conn, m, mode)
}

fn enqueue_checked(conn: &mut Conn, m: &NewMessage, mode: Enqueue) -> QueryResult<Option<i32>> {
    let now = now_ms();
    let payload = m.payload.to_string();
    match mode {
        Enqueue::Coalesce => {
            let existing: Option<i32> = outbox::table
                .filter(outbox::kind.eq(&m.kind))
                .filter(outbox::key.eq(&m.key))
                .filter(outbox::state.eq_any([state::PENDING, state::FAILED]))
                .select(outbox::id)
                .first(conn)
                .optional()?;
            if let Some(id) = existing {
                diesel::update(outbox::table.find(id))
                    .set((outbox::payload.eq(&payload), outbox::updated_at.eq(now)))
                    .execute(conn)?;
                return Ok(Some(id));
            }
        }
        Enqueue::Once => {
            let exists: Option<i32> = outbox::table
                .filter(outbox::kind.eq(&m.kind))
                .filter(outbox::key.eq(&m.key))
                .filter(outbox::state.ne(state::CANCELLED))
                .select(outbox::id)
                .first(conn)
                .optional()?;
            if exists.is_some() {
                return Ok(None);
            }
        }
        Enqueue::Always => {}
    }
    let id = diesel::insert_into(outbox::table)
        .values((
            outbox::target.eq(&m.target),
            outbox::kind.eq(&m.kind),
            outbox::key.eq(&m.key),
            outbox::payload.eq(&payload),
            outbox::state.eq(state::PENDING),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(m.not_before.unwrap_or(now)),
            outbox::order_id.eq(m.order_id),
            outbox::created_at.eq(now),
            outbox::updated_at.eq(now),
        ))
        .returning(outbox::id)
        .get_result(conn)?;
    Ok(Some(id))
}

type ClaimRow = (i32, String, String, String, String, i32, Option<i32>, i64);

/// Claim up to `limit` due messages of a kind for `owner` for `lease`. Due: `pending`/`failed`
/// whose time has come, or `in_flight` whose lease ran out (its worker died).
///
/// On PostgreSQL several instances claim at once: the due rows are locked `FOR UPDATE SKIP
/// LOCKED`, so each instance takes rows no other is taking, and the lease marks them taken until
/// the outcome is recorded. On SQLite the writer lock of `BEGIN IMMEDIATE` serialises claims.
pub fn claim(
    conn: &mut Conn,
    kind: &str,
    limit: usize,
    owner: &str,
    lease: Duration,
) -> QueryResult<Vec<Message>> {
    match conn {
        Conn::Pg(_) => conn.transaction(|conn| claim_in(conn, kind, limit, owner, lease)),
        Conn::Sqlite(_) => {
            conn.immediate_transaction(|conn| claim_in(conn, kind, limit, owner, lease))
        }
    }
}

fn claim_in(
    conn: &mut Conn,
    kind: &str,
    limit: usize,
    owner: &str,
    lease: Duration,
) -> QueryResult<Vec<Message>> {
    {
        let now = now_ms();
        let due = outbox::table
            .filter(outbox::kind.eq(kind))
            .filter(
                outbox::state
                    .eq_any([state::PENDING, state::FAILED])
                    .and(outbox::next_attempt_at.le(now))
                    .or(outbox::state
                        .eq(state::IN_FLIGHT)
                        .and(outbox::lease_until.lt(now))),
            )
            .order((outbox::next_attempt_at, outbox::id))
            .limit(limit as i64)
            .select((
                outbox::id,
                outbox::target,
                outbox::kind,
                outbox::key,
                outbox::payload,
                outbox::attempts,
                outbox::order_id,
                outbox::created_at,
            ));
        let rows: Vec<ClaimRow> = match conn {
            Conn::Pg(c) => due.for_update().skip_locked().load(c)?,
            Conn::Sqlite(c) => due.load(c)?,
        };
        let rows = in_key_order(conn, kind, rows)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i32> = rows.iter().map(|r| r.0).collect();
        for chunk in ids.chunks(500) {
            diesel::update(outbox::table.filter(outbox::id.eq_any(chunk)))
                .set((
                    outbox::state.eq(state::IN_FLIGHT),
                    outbox::lease_until.eq(now + lease.as_millis() as i64),
                    outbox::lease_owner.eq(owner),
                    outbox::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(rows
            .into_iter()
            .map(
                |(id, target, kind, key, payload, attempts, order_id, created_at)| Message {
                    id,
                    target,
                    kind,
                    key,
                    payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                    attempts,
                    order_id,
                    created_at,
                },
            )
            .collect())
    }
}

/// At the start of the only process of a SQLite database: messages left `in_flight` by the
/// process before it (killed mid-send) are due again now rather than when their lease runs out.
/// On PostgreSQL other instances may hold live leases, so they are left to expire.
pub fn release_dead_leases(conn: &mut Conn) -> QueryResult<usize> {
    if conn.is_pg() {
        return Ok(0);
    }
    diesel::update(outbox::table.filter(outbox::state.eq(state::IN_FLIGHT)))
        .set(outbox::lease_until.eq(0i64))
        .execute(conn)
}

/// Messages of one key go out one at a time, oldest first (a newer stock must not be overtaken
/// by an older one sent late by another worker or instance): of the due rows, keep only the
/// oldest of each key, and only when no older message of the key is still in flight.
fn in_key_order(conn: &mut Conn, kind: &str, rows: Vec<ClaimRow>) -> QueryResult<Vec<ClaimRow>> {
    use std::collections::HashMap;
    if rows.is_empty() {
        return Ok(rows);
    }
    let mut oldest: HashMap<&str, i32> = HashMap::new();
    for r in &rows {
        let e = oldest.entry(r.3.as_str()).or_insert(r.0);
        *e = (*e).min(r.0);
    }
    let keys: Vec<&str> = oldest.keys().copied().collect();
    let mut busy: Vec<(String, i32)> = Vec::new();
    for chunk in keys.chunks(500) {
        busy.extend(
            outbox::table
                .filter(outbox::kind.eq(kind))
                .filter(outbox::state.eq(state::IN_FLIGHT))
                .filter(outbox::key.eq_any(chunk))
                .select((outbox::key, outbox::id))
                .load::<(String, i32)>(conn)?,
        );
    }
    let blocked = |key: &str, id: i32| busy.iter().any(|(k, b)| k == key && *b < id);
    let keep: Vec<bool> = rows
        .iter()
        .map(|r| oldest.get(r.3.as_str()) == Some(&r.0) && !blocked(&r.3, r.0))
        .collect();
    Ok(rows
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect())
}

/// Retry policy numbers (see [`super::Policy`]).
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: i32,
}

impl Backoff {
    /// Delay before try number `attempts + 1`: base·2^(attempts-1), capped, ±25 % jitter.
    pub fn delay(&self, attempts: i32) -> Duration {
        use rand::Rng;
        let exp = (attempts.max(1) - 1).min(20) as u32;
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        raw.mul_f64(jitter)
    }
}

/// Record one message's outcome (inside the caller's transaction). Only a message still leased
/// by `owner` is touched, so a worker that lost its lease cannot overwrite a newer result.
/// Returns false when the lease was lost.
pub fn record_outcome(
    conn: &mut Conn,
    msg: &Message,
    outcome: &Outcome,
    owner: &str,
    backoff: &Backoff,
) -> QueryResult<bool> {
    let now = now_ms();
    let mine = outbox::table
        .filter(outbox::id.eq(msg.id))
        .filter(outbox::state.eq(state::IN_FLIGHT))
        .filter(outbox::lease_owner.eq(owner));
    let response = outcome.response.as_deref().map(super::journal::excerpt);
    let n = match &outcome.kind {
        OutcomeKind::Done => diesel::update(mine)
            .set((
                outbox::state.eq(state::DONE),
                outbox::attempts.eq(msg.attempts + 1),
                outbox::lease_until.eq(None::<i64>),
                outbox::last_error.eq(None::<String>),
                outbox::response.eq(response),
                outbox::last_call_id.eq(outcome.call_id),
                outbox::updated_at.eq(now),
                outbox::done_at.eq(now),
            ))
            .execute(conn)?,
        OutcomeKind::Retry { error, after } => {
            let attempts = msg.attempts + 1;
            let (st, next) = if attempts >= backoff.max_attempts {
                (state::DEAD, now)
            } else {
                let d = after.unwrap_or_else(|| backoff.delay(attempts));
                (state::FAILED, now + d.as_millis() as i64)
            };
            diesel::update(mine)
                .set((
                    outbox::state.eq(st),
                    outbox::attempts.eq(attempts),
                    outbox::next_attempt_at.eq(next),
                    outbox::lease_until.eq(None::<i64>),
                    outbox::last_error.eq(error),
                    outbox::response.eq(response),
                    outbox::last_call_id.eq(outcome.call_id),
                    outbox::updated_at.eq(now),
                ))
                .execute(conn)?
        }
        OutcomeKind::Later {
            reason: error,
            after,
        }
        | OutcomeKind::Wait { error, after } => {
            // Back to the state it had: `pending` if never failed, else `failed`.
            let st = if msg.attempts == 0 {
                state::PENDING
            } else {
                state::FAILED
            };
            diesel::update(mine)
                .set((
                    outbox::state.eq(st),
                    outbox::next_attempt_at.eq(now + after.as_millis() as i64),
                    outbox::lease_until.eq(None::<i64>),
                    outbox::last_error.eq(error),
                    outbox::response.eq(response),
                    outbox::last_call_id.eq(outcome.call_id),
                    outbox::updated_at.eq(now),
                ))
                .execute(conn)?
        }
        OutcomeKind::Dead { error } => diesel::update(mine)
            .set((
                outbox::state.eq(state::DEAD),
                outbox::attempts.eq(msg.attempts + 1),
                outbox::lease_until.eq(None::<i64>),
                outbox::last_error.eq(error),
                outbox::response.eq(response),
                outbox::last_call_id.eq(outcome.call_id),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// A message as listed by the API and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable)]
pub struct MessageRow {
    pub id: i32,
    pub target: String,
    pub kind: String,
    pub key: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    pub response: Option<String>,
    pub last_call_id: Option<i64>,
    pub order_id: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub done_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<String>,
    pub target: Option<String>,
    pub kind: Option<String>,
    pub order_id: Option<i32>,
    /// Text contained in the message key.
    pub key_contains: Option<String>,
    /// Only messages of the order with this number (`orders.number`).
    pub order_number: Option<String>,
    /// Keyset pagination: only ids below this.
    pub before_id: Option<i32>,
    pub limit: i64,
}

/// The filter's conditions (no order, no paging).
fn filtered<'a>(f: &ListFilter) -> outbox::BoxedQuery<'a, crate::store::Backend> {
    use crate::store::schema::orders;
    let mut q = outbox::table.into_boxed();
    if let Some(s) = &f.state {
        q = q.filter(outbox::state.eq(s.clone()));
    }
    if let Some(t) = &f.target {
        q = q.filter(outbox::target.eq(t.clone()));
    }
    if let Some(k) = &f.kind {
        q = q.filter(outbox::kind.eq(k.clone()));
    }
    if let Some(o) = f.order_id {
        q = q.filter(outbox::order_id.eq(o));
    }
    if let Some(text) = f.key_contains.as_deref().filter(|t| !t.is_empty()) {
        q = q.filter(
            outbox::key
                .like(crate::store::like_contains(text))
                .escape('\\'),
        );
    }
    if let Some(n) = f.order_number.as_deref().filter(|n| !n.is_empty()) {
        let ids = orders::table
            .filter(orders::number.eq(n.to_string()))
            .select(orders::id.nullable());
        q = q.filter(outbox::order_id.eq_any(ids));
    }
    q
}

/// Newest first.
pub fn list(conn: &mut Conn, f: &ListFilter) -> QueryResult<Vec<MessageRow>> {
    let mut q = filtered(f);
    if let Some(b) = f.before_id {
        q = q.filter(outbox::id.lt(b));
    }
    q.order(outbox::id.desc())
        .limit(f.limit.clamp(1, 1000))
        .load::<MessageRow>(conn)
}

pub fn get(conn: &mut Conn, id: i32) -> QueryResult<Option<MessageRow>> {
    outbox::table.find(id).first(conn).optional()
}

/// The targets that have messages (an index walk, not a count).
pub fn targets(conn: &mut Conn) -> QueryResult<Vec<String>> {
    outbox::table
        .select(outbox::target)
        .distinct()
        .order(outbox::target)
        .load(conn)
}

/// Counts per (target, state).
pub fn counts(conn: &mut Conn) -> QueryResult<Vec<(String, String, i64)>> {
    use diesel::dsl::count_star;
    outbox::table
        .group_by((outbox::target, outbox::state))
        .select((outbox::target, outbox::state, count_star()))
        .load(conn)
}

#[derive(Debug, PartialEq, Eq)]
pub enum RetryResult {
    Queued,
    NotFound,
    /// Done or in flight: nothing to retry.
    NotRetryable(String),
}

/// An operator's "retry now": a failed, dead or cancelled message is due again with its attempt
/// count reset (so `max_attempts` applies afresh).
pub fn retry_now(conn: &mut Conn, id: i32) -> QueryResult<RetryResult> {
    conn.immediate_transaction(|conn| {
        let Some(st) = outbox::table
            .find(id)
            .select(outbox::state)
            .first::<String>(conn)
            .optional()?
        else {
            return Ok(RetryResult::NotFound);
        };
        if st == state::DONE || st == state::IN_FLIGHT {
            return Ok(RetryResult::NotRetryable(st));
        }
        let now = now_ms();
        diesel::update(outbox::table.find(id))
            .set((
                outbox::state.eq(if st == state::PENDING {
                    state::PENDING
                } else {
                    state::FAILED
                }),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(RetryResult::Queued)
    })
}

/// The earliest time a message of these kinds is due (to sleep until then).
pub fn next_due(conn: &mut Conn, kind: &str) -> QueryResult<Option<i64>> {
    use diesel::dsl::min;
    outbox::table
        .filter(outbox::kind.eq(kind))
        .filter(outbox::state.eq_any([state::PENDING, state::FAILED]))
        .select(min(outbox::next_attempt_at))
        .first(conn)
}

/// What became of an operator's change to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Done; the message as it was before.
    Changed(Box<MessageRow>),
    NotFound,
    /// Its state does not allow it (the state).
    NotAllowed(String),
}

/// Apply `update` to message `id` only while its state is one of `allowed`, in one immediate
/// transaction (the relay's claim cannot slip in between the check and the change).
fn change_if(
    conn: &mut Conn,
    id: i32,
    allowed: &[&str],
    update: impl FnOnce(&mut Conn) -> QueryResult<usize>,
) -> QueryResult<Change> {
    conn.immediate_transaction(|conn| {
        let Some(before) = get(conn, id)? else {
            return Ok(Change::NotFound);
        };
        if !allowed.contains(&before.state.as_str()) {
            return Ok(Change::NotAllowed(before.state));
        }
        update(conn)?;
        Ok(Change::Changed(Box::new(before)))
    })
}

/// An operator's retry of one message that is waiting, failed, dead: due now, attempts reset.
/// Unlike [`retry_now`] a cancelled message stays cancelled (cancelling is final on the
/// dashboard: a cancelled `Once` message may already have been replaced by a new one).
pub fn retry_open(conn: &mut Conn, id: i32) -> QueryResult<Change> {
    change_if(
        conn,
        id,
        &[state::PENDING, state::FAILED, state::DEAD],
        |conn| {
            let now = now_ms();
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::state.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
                        "CASE state WHEN 'pending' THEN 'pending' ELSE 'failed' END",
                    )),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_at.eq(now),
                    outbox::updated_at.eq(now),
                ))
                .execute(conn)
        },
    )
}

/// Retry every failed or dead message matching the filter (its paging ignored): due now,
/// attempts reset. Returns the ids retried.
pub fn retry_matching(conn: &mut Conn, f: &ListFilter) -> QueryResult<Vec<i32>> {
    conn.immediate_transaction(|conn| {
        let ids: Vec<i32> = filtered(f)
            .filter(outbox::state.eq_any([state::FAILED, state::DEAD]))
            .select(outbox::id)
            .load(conn)?;
        let now = now_ms();
        for chunk in ids.chunks(500) {
            diesel::update(
                outbox::table
                    .filter(outbox::id.eq_any(chunk))
                    .filter(outbox::state.eq_any([state::FAILED, state::DEAD])),
            )
            .set((
                outbox::state.eq(state::FAILED),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        Ok(ids)
    })
}

/// Cancel a message not sent yet (pending, failed, dead): the relay claims only pending and
/// failed messages, so a cancelled one is never sent.
pub fn cancel(conn: &mut Conn, id: i32) -> QueryResult<Change> {
    change_if(
        conn,
        id,
        &[state::PENDING, state::FAILED, state::DEAD],
        |conn| {
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::state.eq(state::CANCELLED),
                    outbox::updated_at.eq(now_ms()),
                ))
                .execute(conn)
        },
    )
}

/// Replace the payload of a message that is neither delivered nor being sent.
pub fn edit_payload(conn: &mut Conn, id: i32, payload: &serde_json::Value) -> QueryResult<Change> {
    let text = payload.to_string();
    change_if(
        conn,
        id,
        &[state::PENDING, state::FAILED, state::DEAD, state::CANCELLED],
        |conn| {
            diesel::update(outbox::table.find(id))
                .set((outbox::payload.eq(&text), outbox::updated_at.eq(now_ms())))
                .execute(conn)
        },
    )
}

/// Delete a message that is not being sent.
pub fn delete(conn: &mut Conn, id: i32) -> QueryResult<Change> {
    change_if(
        conn,
        id,
        &[
            state::PENDING,
            state::FAILED,
            state::DEAD,
            state::CANCELLED,
            state::DONE,
        ],
        |conn| diesel::delete(outbox::table.find(id)).execute(conn),
    )
}

#[cfg(test)]
mod dash_tests {
    use super::*;

    fn pool() -> (tempfile::TempDir, crate::store::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
        crate::store::migrate(&mut pool.get().unwrap()).unwrap();
        (dir, pool)
    }

    fn set_state(c: &mut Conn, id: i32, st: &str) {
        diesel::update(outbox::table.find(id))
            .set(outbox::state.eq(st))
            .execute(c)
            .unwrap();
    }

    #[test]
    fn one_key_goes_out_oldest_first_and_never_twice_at_once() {
        let (_d, pool) = pool();
        let c = &mut pool.get().unwrap();
        let m = |n: i64| NewMessage::new("t", "t.k", "k", serde_json::json!({ "n": n }));
        let first = enqueue(c, &m(1), Enqueue::Coalesce).unwrap().unwrap();
        let lease = Duration::from_secs(60);
        let got: Vec<i32> = claim(c, "t.k", 10, "a", lease)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, vec![first]);
        // A newer value while the first is in flight: a message of its own, which waits.
        let second = enqueue(c, &m(2), Enqueue::Coalesce).unwrap().unwrap();
        assert_ne!(first, second);
        assert!(claim(c, "t.k", 10, "b", lease).unwrap().is_empty());
        // The first one's worker died (its lease gone): the first goes again, still before the
        // second, and never both in one claim.
        diesel::update(outbox::table.find(first))
            .set(outbox::lease_until.eq(0i64))
            .execute(c)
            .unwrap();
        let got: Vec<i32> = claim(c, "t.k", 10, "b", lease)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, vec![first]);
        assert!(claim(c, "t.k", 10, "c", lease).unwrap().is_empty());
        // The first delivered: now the second.
        set_state(c, first, state::DONE);
        let got: Vec<i32> = claim(c, "t.k", 10, "c", lease)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, vec![second]);
    }

    #[test]
    fn a_restarted_sqlite_process_releases_what_its_predecessor_had_in_flight() {
        let (_d, pool) = pool();
        let c = &mut pool.get().unwrap();
        let m = NewMessage::new("t", "t.k", "k", serde_json::json!({}));
        let id = enqueue(c, &m, Enqueue::Always).unwrap().unwrap();
        let lease = Duration::from_secs(600);
        assert_eq!(claim(c, "t.k", 10, "dead", lease).unwrap().len(), 1);
        assert!(claim(c, "t.k", 10, "new", lease).unwrap().is_empty());
        let released = release_dead_leases(c).unwrap();
        let again = claim(c, "t.k", 10, "new", lease).unwrap();
        if c.is_pg() {
            // Other instances may be alive: their leases are kept.
            assert_eq!(released, 0);
            assert!(again.is_empty());
        } else {
            assert_eq!(released, 1);
            assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
        }
    }

    #[test]
    fn operator_changes_respect_states_and_a_cancelled_message_is_never_claimed() {
        let (_d, pool) = pool();
        let c = &mut pool.get().unwrap();
        let m = |key: &str| NewMessage::new("t", "t.k", key, serde_json::json!({"n": 1}));
        let a = enqueue(c, &m("a_1"), Enqueue::Always).unwrap().unwrap();
        let b = enqueue(c, &m("b%1"), Enqueue::Always).unwrap().unwrap();
        let d = enqueue(c, &m("c_2"), Enqueue::Always).unwrap().unwrap();
        set_state(c, a, state::DEAD);
        set_state(c, b, state::FAILED);
        // Key search takes % and _ literally.
        let f = ListFilter {
            key_contains: Some("%".into()),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(list(c, &f).unwrap().len(), 1);
        // Cancel: never claimed; retry and cancel again refused.
        assert!(matches!(cancel(c, d).unwrap(), Change::Changed(_)));
        assert_eq!(
            cancel(c, d).unwrap(),
            Change::NotAllowed(state::CANCELLED.into())
        );
        assert_eq!(
            retry_open(c, d).unwrap(),
            Change::NotAllowed(state::CANCELLED.into())
        );
        let claimed = claim(c, "t.k", 10, "me", Duration::from_secs(60)).unwrap();
        assert!(claimed.iter().all(|m| m.id != d), "{claimed:?}");
        // Bulk retry: failed and dead only.
        set_state(c, b, state::FAILED);
        let all = ListFilter {
            target: Some("t".into()),
            limit: 50,
            ..Default::default()
        };
        let mut ids = retry_matching(c, &all).unwrap();
        ids.sort();
        assert_eq!(ids, vec![a, b]);
        assert_eq!(get(c, a).unwrap().unwrap().state, state::FAILED);
        assert_eq!(get(c, d).unwrap().unwrap().state, state::CANCELLED);
        // In flight: no edit, no delete.
        set_state(c, a, state::IN_FLIGHT);
        let p = serde_json::json!({"n": 2});
        assert_eq!(
            edit_payload(c, a, &p).unwrap(),
            Change::NotAllowed(state::IN_FLIGHT.into())
        );
        assert_eq!(
            delete(c, a).unwrap(),
            Change::NotAllowed(state::IN_FLIGHT.into())
        );
        match edit_payload(c, b, &p).unwrap() {
            Change::Changed(before) => assert_eq!(before.payload, r#"{"n":1}"#),
            o => panic!("{o:?}"),
        }
        assert_eq!(get(c, b).unwrap().unwrap().payload, r#"{"n":2}"#);
        assert!(matches!(delete(c, b).unwrap(), Change::Changed(_)));
        assert!(get(c, b).unwrap().is_none());
        assert_eq!(retry_open(c, 9999).unwrap(), Change::NotFound);
    }
}
