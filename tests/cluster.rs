//! Several `obmen serve` instances on one PostgreSQL database (`OBMEN_TEST_PG_URL`): a 1C
//! exchange whose requests alternate between them, and an outbox drained by both with every
//! message delivered exactly once (the Ozon simulator counts). Without PostgreSQL the tests say
//! so and stop; `.ci/run` runs them on PostgreSQL with `OBMEN_REQUIRE_PG=1`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use diesel::prelude::*;
use serde_json::json;

/// The shared database URL, or None (and a note) when the suite runs on SQLite.
fn pg_url(dir: &std::path::Path) -> Option<String> {
    if !obmen::store::testing::on_pg() {
        assert!(
            std::env::var("OBMEN_REQUIRE_PG").as_deref() != Ok("1"),
            "OBMEN_REQUIRE_PG=1 but {} is not set",
            obmen::store::testing::PG_ENV
        );
        eprintln!(
            "cluster tests need PostgreSQL: set {} (skipped)",
            obmen::store::testing::PG_ENV
        );
        return None;
    }
    Some(obmen::store::testing::url(dir))
}

/// Two instances: own data folders, one database, one shared folder.
fn two(url: &str, shared: &std::path::Path, extra: &[(&str, String)]) -> (Server, Server) {
    let mut env: Vec<(&str, String)> = vec![
        ("OBMEN_DATABASE_URL", url.to_string()),
        ("OBMEN_SHARED_DIR", shared.to_string_lossy().into_owned()),
    ];
    env.extend(extra.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Server::start_full(tempfile::tempdir().unwrap(), &[], &env);
    let b = Server::start_full(tempfile::tempdir().unwrap(), &[], &env);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_exchange_alternating_between_two_instances() {
    let db = tempfile::tempdir().unwrap();
    let Some(url) = pg_url(db.path()) else { return };
    let shared = tempfile::tempdir().unwrap();
    let (a, b) = two(&url, shared.path(), &[]);
    let srv = [&a, &b];

    let ids: Vec<String> = (0..300).map(|i| format!("g-{i:04}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let import = import_xml(&ids, None).into_bytes();
    let offers = offers_xml(&ids).into_bytes();

    let cookie = a.login("catalog").await;
    let init = b.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body.split('\n').count(), 2, "init on B: {}", init.body);
    // Every chunk to the other instance than the one before.
    let mut n = 0;
    for (name, bytes) in [("import.xml", &import), ("offers.xml", &offers)] {
        for chunk in bytes.chunks(4096) {
            let r = srv[n % 2]
                .post(
                    &format!("type=catalog&mode=file&filename={name}"),
                    chunk.to_vec(),
                    Some(&cookie),
                )
                .await;
            assert_eq!(r.first(), "success", "chunk {n} of {name}: {}", r.body);
            n += 1;
        }
    }
    assert!(n > 10, "the files went in {n} chunks");
    for name in ["import.xml", "offers.xml"] {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let r = srv[n % 2]
                .get(
                    &format!("type=catalog&mode=import&filename={name}"),
                    None,
                    Some(&cookie),
                )
                .await;
            n += 1;
            match r.first().as_str() {
                "success" => break,
                "progress" if Instant::now() < deadline => continue,
                other => panic!(
                    "import of {name} on instance {}: {other}: {}",
                    n % 2,
                    r.body
                ),
            }
        }
    }
    let done = srv[n % 2]
        .get("type=catalog&mode=complete", None, Some(&cookie))
        .await;
    assert_eq!(done.first(), "success", "{}", done.body);
    for s in srv {
        let sum = s.summary().await;
        assert_eq!(sum["goods"], 300, "{sum}");
        assert_eq!(sum["offers"], 300, "{sum}");
    }
    // One import job per file, each run once, by one of the instances.
    let pool = obmen::store::open(&url, 1).unwrap();
    use obmen::store::schema::import_jobs as j;
    let jobs: Vec<(String, String, Option<String>)> = j::table
        .select((j::filename, j::state, j::owner))
        .load(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.iter().all(|(_, st, o)| st == "done" && o.is_some()),
        "{jobs:?}"
    );
}

const MESSAGES: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_drained_by_two_instances_are_each_delivered_once() {
    use obmen::connectors::ozon::plan::{StockItem, KIND_STOCK};
    use obmen::relay::store::{enqueue, Enqueue, NewMessage};

    let db = tempfile::tempdir().unwrap();
    let Some(url) = pg_url(db.path()) else { return };
    let sim = Sim::start(&[]);
    // The simulator knows every offer, with no stock yet.
    let offer = |i: usize| format!("OF-{i:05}");
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(1000) {
        let cards: Vec<_> = chunk
            .iter()
            .map(|&i| json!({"offer_id": offer(i), "name": format!("Товар {i}"), "price": "100"}))
            .collect();
        sim.control("/sim/products", json!(cards)).await;
    }
    // The messages, queued before the instances start (as a big catalog change would).
    {
        let pool = obmen::store::open(&url, 1).unwrap();
        let mut c = pool.get().unwrap();
        c.transaction::<_, diesel::result::Error, _>(|c| {
            for i in 0..MESSAGES {
                let item = StockItem {
                    offer_ref: offer(i),
                    offer_id: offer(i),
                    warehouse_id: SIM_WAREHOUSE.parse().unwrap(),
                    stock: (i % 50 + 1) as i64,
                };
                let m = NewMessage::new(
                    "ozon",
                    KIND_STOCK,
                    offer(i),
                    serde_json::to_value(&item).unwrap(),
                );
                enqueue(c, &m, Enqueue::Coalesce)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let shared = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (a, b) = two(&url, shared.path(), &sim.obmen_env());
    let pool = obmen::store::open(&url, 1).unwrap();
    use obmen::store::schema::outbox as o;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let open: i64 = o::table
            .filter(o::kind.eq(KIND_STOCK))
            .filter(o::state.ne("done"))
            .count()
            .get_result(&mut pool.get().unwrap())
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} messages still open; sim: {}",
            sim.stats().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();
    let stats = sim.stats().await;
    eprintln!("{MESSAGES} messages drained by two instances in {took:?}; sim: {stats}");
    // Each accepted exactly once: a second delivery of a stock would be counted as the same
    // value again (or refused by Ozon's 30 s rule per offer and warehouse).
    assert_eq!(stats["stock_updates"], MESSAGES as u64, "{stats}");
    assert_eq!(stats["stock_same_value"], 0, "{stats}");
    // Whole calls refused for Ozon's request rate (each instance keeps its own limiter, so two
    // together can go over it) are not applied and go again; nothing else may be refused.
    let rejected = stats["rejected"].as_object().cloned().unwrap_or_default();
    assert!(rejected.keys().all(|k| k == "rate_limit"), "{stats}");
    // Both instances took part.
    let owners: Vec<Option<String>> = o::table
        .filter(o::kind.eq(KIND_STOCK))
        .select(o::lease_owner)
        .distinct()
        .load(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(owners.len(), 2, "messages delivered by {owners:?}");
    // A sample of the cards: the stock the message carried.
    for i in [0, 1, MESSAGES / 2, MESSAGES - 1] {
        let (s, p) = sim.get(&format!("/sim/products/{}", offer(i))).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(
            p["stocks"][SIM_WAREHOUSE],
            json!((i % 50 + 1) as i64),
            "{p}"
        );
    }
    drop((a, b));
}
