use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::{Rng, SeedableRng};

use super::*;
use crate::relay::state;
use crate::relay::store::{enqueue, Enqueue, NewMessage};
use crate::store::schema::outbox;
use diesel::prelude::*;

fn pool() -> (tempfile::TempDir, DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&crate::store::testing::url(dir.path()), 4).unwrap();
    (dir, pool)
}

fn fast() -> Policy {
    Policy {
        max_attempts: 50,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        lease: Duration::from_secs(30),
        idle: Duration::from_millis(10),
        wait_max: Duration::from_secs(60),
    }
}

/// A fake remote: applies a share of messages, fails the rest (before or after "applying",
/// like a lost answer). Counts what it applied per key and value.
struct Flaky {
    fail: f64,
    rng: Mutex<rand::rngs::StdRng>,
    applied: Mutex<HashMap<String, Vec<i64>>>,
    calls: AtomicUsize,
    mode: &'static str,
}

impl Handler for Flaky {
    fn target(&self) -> &'static str {
        "fake"
    }
    fn kind(&self) -> &'static str {
        "fake.set"
    }
    fn batch(&self) -> usize {
        7
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let roll: f64 = self.rng.lock().unwrap().gen();
            if self.mode == "wait" {
                return batch
                    .iter()
                    .map(|m| {
                        Outcome::with_kind(
                            m.id,
                            None,
                            OutcomeKind::Wait {
                                error: "key rejected".into(),
                                after: Duration::from_millis(50),
                            },
                        )
                    })
                    .collect();
            }
            if roll < self.fail {
                // The whole call failed: nothing applied.
                return batch
                    .iter()
                    .map(|m| Outcome::retry(m.id, None, "HTTP 500"))
                    .collect();
            }
            let mut out = Vec::new();
            for m in &batch {
                let v = m.payload["v"].as_i64().unwrap();
                if m.key == "bad" {
                    out.push(Outcome::dead(m.id, None, "offer_id_not_found"));
                    continue;
                }
                self.applied
                    .lock()
                    .unwrap()
                    .entry(m.key.clone())
                    .or_default()
                    .push(v);
                out.push(Outcome::done(m.id, None, None));
            }
            out
        })
    }
}

fn flaky(fail: f64, mode: &'static str) -> Arc<Flaky> {
    Arc::new(Flaky {
        fail,
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(7)),
        applied: Mutex::new(HashMap::new()),
        calls: AtomicUsize::new(0),
        mode,
    })
}

fn put(pool: &DbPool, key: &str, v: i64, mode: Enqueue) -> Option<i32> {
    let mut c = pool.get().unwrap();
    enqueue(
        &mut c,
        &NewMessage::new("fake", "fake.set", key, serde_json::json!({ "v": v })),
        mode,
    )
    .unwrap()
}

fn states(pool: &DbPool) -> HashMap<String, i64> {
    let mut c = pool.get().unwrap();
    let rows: Vec<(String, i64)> = outbox::table
        .group_by(outbox::state)
        .select((outbox::state, diesel::dsl::count_star()))
        .load(&mut c)
        .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn with_30_percent_failures_every_message_is_delivered_once() {
    let (_d, pool) = pool();
    for i in 0..200 {
        put(&pool, &format!("k{i}"), i, Enqueue::Coalesce);
    }
    let h = flaky(0.3, "");
    let relay = Relay::new(pool.clone(), fast(), vec![h.clone() as Arc<dyn Handler>]);
    for _ in 0..200 {
        relay.drain().await.unwrap();
        if states(&pool).get(state::DONE) == Some(&200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(6)).await;
    }
    assert_eq!(
        states(&pool).get(state::DONE),
        Some(&200),
        "{:?}",
        states(&pool)
    );
    let applied = h.applied.lock().unwrap();
    assert_eq!(applied.len(), 200);
    assert!(
        applied.values().all(|v| v.len() == 1),
        "a message applied twice"
    );
    assert!(
        h.calls.load(Ordering::SeqCst) > 200 / 7,
        "failures caused retries"
    );
}

#[tokio::test]
async fn a_newer_value_supersedes_an_unsent_one() {
    let (_d, pool) = pool();
    let a = put(&pool, "offer×wh", 5, Enqueue::Coalesce);
    let b = put(&pool, "offer×wh", 7, Enqueue::Coalesce);
    assert_eq!(a, b, "coalesced into one message");
    let h = flaky(0.0, "");
    let relay = Relay::new(pool.clone(), fast(), vec![h.clone() as Arc<dyn Handler>]);
    relay.drain().await.unwrap();
    assert_eq!(h.applied.lock().unwrap()["offer×wh"], vec![7]);
    // Once sent, a new value is a new message.
    let c = put(&pool, "offer×wh", 9, Enqueue::Coalesce);
    assert_ne!(c, a);
    relay.drain().await.unwrap();
    assert_eq!(h.applied.lock().unwrap()["offer×wh"], vec![7, 9]);
}

#[tokio::test]
async fn once_means_once_per_key() {
    let (_d, pool) = pool();
    assert!(put(&pool, "ship:1", 1, Enqueue::Once).is_some());
    assert!(put(&pool, "ship:1", 1, Enqueue::Once).is_none());
    let h = flaky(0.0, "");
    let relay = Relay::new(pool.clone(), fast(), vec![h.clone() as Arc<dyn Handler>]);
    relay.drain().await.unwrap();
    assert!(
        put(&pool, "ship:1", 1, Enqueue::Once).is_none(),
        "done still counts"
    );
    assert_eq!(h.applied.lock().unwrap()["ship:1"].len(), 1);
}

#[tokio::test]
async fn permanent_refusals_go_dead_and_others_are_delivered() {
    let (_d, pool) = pool();
    put(&pool, "bad", 1, Enqueue::Coalesce);
    put(&pool, "good", 2, Enqueue::Coalesce);
    let h = flaky(0.0, "");
    let relay = Relay::new(pool.clone(), fast(), vec![h.clone() as Arc<dyn Handler>]);
    relay.drain().await.unwrap();
    let s = states(&pool);
    assert_eq!(s.get(state::DEAD), Some(&1));
    assert_eq!(s.get(state::DONE), Some(&1));
    let mut c = pool.get().unwrap();
    let err: Option<String> = outbox::table
        .filter(outbox::key.eq("bad"))
        .select(outbox::last_error)
        .first(&mut c)
        .unwrap();
    assert_eq!(err.as_deref(), Some("offer_id_not_found"));
}

#[tokio::test]
async fn retries_end_in_dead_after_max_attempts() {
    let (_d, pool) = pool();
    put(&pool, "k", 1, Enqueue::Coalesce);
    let h = flaky(1.0, "");
    let mut p = fast();
    p.max_attempts = 3;
    let relay = Relay::new(pool.clone(), p, vec![h.clone() as Arc<dyn Handler>]);
    for _ in 0..50 {
        relay.drain().await.unwrap();
        tokio::time::sleep(Duration::from_millis(6)).await;
    }
    assert_eq!(states(&pool).get(state::DEAD), Some(&1));
    assert_eq!(h.calls.load(Ordering::SeqCst), 3);
    // An operator's retry gives it its attempts back.
    let mut c = pool.get().unwrap();
    let id: i32 = outbox::table.select(outbox::id).first(&mut c).unwrap();
    assert_eq!(
        crate::relay::store::retry_now(&mut c, id).unwrap(),
        crate::relay::store::RetryResult::Queued
    );
    let (st, attempts): (String, i32) = outbox::table
        .find(id)
        .select((outbox::state, outbox::attempts))
        .first(&mut c)
        .unwrap();
    assert_eq!((st.as_str(), attempts), (state::FAILED, 0));
}

#[tokio::test]
async fn a_rejected_key_makes_messages_wait_without_spending_attempts() {
    let (_d, pool) = pool();
    put(&pool, "k", 1, Enqueue::Coalesce);
    let h = flaky(0.0, "wait");
    let mut p = fast();
    p.max_attempts = 2;
    let relay = Relay::new(pool.clone(), p, vec![h.clone() as Arc<dyn Handler>]);
    for _ in 0..10 {
        relay.drain().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let mut c = pool.get().unwrap();
    let (st, attempts, err): (String, i32, Option<String>) = outbox::table
        .select((outbox::state, outbox::attempts, outbox::last_error))
        .first(&mut c)
        .unwrap();
    assert_eq!(st, state::PENDING, "still waiting, not dead");
    assert_eq!(attempts, 0);
    assert_eq!(err.as_deref(), Some("key rejected"));
    // Paused between tries: far fewer calls than drains would allow without the pause.
    assert!(h.calls.load(Ordering::SeqCst) <= 10);
}

#[tokio::test]
async fn a_lease_that_ran_out_is_claimed_again_and_the_old_owner_cannot_record() {
    let (_d, pool) = pool();
    put(&pool, "k", 1, Enqueue::Coalesce);
    let mut c = pool.get().unwrap();
    let first = crate::relay::store::claim(&mut c, "fake.set", 10, "A", Duration::ZERO).unwrap();
    assert_eq!(first.len(), 1);
    std::thread::sleep(Duration::from_millis(2));
    let second =
        crate::relay::store::claim(&mut c, "fake.set", 10, "B", Duration::from_secs(60)).unwrap();
    assert_eq!(second.len(), 1, "expired lease is claimable");
    let backoff = crate::relay::store::Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        max_attempts: 5,
    };
    let o = Outcome::done(first[0].id, None, None);
    assert!(!crate::relay::store::record_outcome(&mut c, &first[0], &o, "A", &backoff).unwrap());
    assert!(crate::relay::store::record_outcome(&mut c, &second[0], &o, "B", &backoff).unwrap());
}
