//! Stocks and prices to Ozon, end to end: `obmen emulate-1c` sends a generated catalog to
//! `obmen serve`, whose relay pushes it to `obmen sim ozon` (all three real binaries). Checks the
//! batching, the delta, faults, a rejected key, an unknown offer and malformed answers.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// What the sample offers of expected.json must look like on Ozon: (article, stock, price).
fn expected_on_ozon(exp: &Value) -> Vec<(String, i64, String)> {
    exp["sample_offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !o["article"].as_str().unwrap_or("").is_empty())
        .map(|o| {
            let stock: i64 = o["stock"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    s["quantity"]
                        .as_str()
                        .unwrap()
                        .parse::<f64>()
                        .unwrap()
                        .floor()
                        .max(0.0) as i64
                })
                .sum();
            let price = o["prices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["price_type"] == "Розничная")
                .map(|p| {
                    format!(
                        "{:.6}",
                        p["value"].as_str().unwrap().parse::<f64>().unwrap()
                    )
                })
                .unwrap_or_default();
            (ozon_offer_id(o), stock, price)
        })
        .collect()
}

/// The Ozon offer_id of a sample offer: its article; a variant sharing its good's article gets
/// the first eight characters of the characteristic Ид (as obmen's planner does).
fn ozon_offer_id(o: &Value) -> String {
    let article = o["article"].as_str().unwrap();
    match o["id"].as_str().unwrap().split_once('#') {
        Some((_, ch)) => format!(
            "{article}-{}",
            ch.replace('-', "").chars().take(8).collect::<String>()
        ),
        None => article.to_string(),
    }
}

async fn outbox(srv: &Server, query: &str) -> Vec<Value> {
    let (s, v) = srv.api(&format!("/api/v1/outbox?limit=1000&{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

fn env_of(sim: &Sim, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = sim.obmen_env();
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

fn start(env: &[(&'static str, String)]) -> Server {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(&e)
}

/// An offers delta (only changes) moving the first warehouse of one sample offer to `qty`.
fn stock_delta(dir: &Path, exp: &Value, qty: i64) -> (std::path::PathBuf, String, i64) {
    let offers = std::fs::read_to_string(dir.join("offers.xml")).unwrap();
    let head_end = offers.find("<Предложения>").unwrap();
    let head = offers[..head_end].replace(
        "СодержитТолькоИзменения=\"false\"",
        "СодержитТолькоИзменения=\"true\"",
    );
    let o = exp["sample_offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| !o["article"].as_str().unwrap_or("").is_empty())
        .unwrap();
    let article = ozon_offer_id(o);
    let mut total = 0;
    let stock: String = o["stock"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let q = if i == 0 {
                qty
            } else {
                s["quantity"].as_str().unwrap().parse::<f64>().unwrap() as i64
            };
            total += q.max(0);
            format!(
                "<Остаток><Склад><Ид>{}</Ид><Количество>{q}</Количество></Склад></Остаток>",
                s["warehouse_id"].as_str().unwrap()
            )
        })
        .collect();
    let xml = format!(
        "{head}<Предложения><Предложение><Ид>{}</Ид><Наименование>{}</Наименование><Остатки>{stock}</Остатки></Предложение></Предложения></ПакетПредложений></КоммерческаяИнформация>",
        o["id"].as_str().unwrap(),
        o["name"].as_str().unwrap()
    );
    let d = dir.join("delta");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("offers.xml");
    std::fs::write(&p, xml).unwrap();
    (p, article, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_reaches_ozon_in_full_batches_and_a_delta_sends_only_the_delta() {
    let sim = Sim::start(&["--stock-cooldown-secs", "1"]);
    let srv = start(&env_of(
        &sim,
        &[("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1")],
    ));
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 120, 11, false);
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    let want = expected_on_ozon(&exp);
    assert!(!want.is_empty());
    // Every pair and price acknowledged.
    let done = eventually(60, "every stock and price message done", || async {
        let open: Vec<Value> = outbox(&srv, "target=ozon")
            .await
            .into_iter()
            .filter(|m| m["state"] != "done")
            .collect();
        let done = outbox(&srv, "kind=ozon.stock&state=done").await;
        (open.is_empty() && !done.is_empty()).then_some(done)
    })
    .await;
    let pairs = done.len() as u64;
    let stats = sim.stats().await;
    assert_eq!(stats["stock_updates"], pairs, "{stats}");
    assert_eq!(
        stats["calls"]["/v2/products/stocks"],
        pairs.div_ceil(100),
        "full batches of 100: {stats}"
    );
    assert_eq!(stats["stock_same_value"], 0);
    let prices = outbox(&srv, "kind=ozon.price&state=done").await.len() as u64;
    assert_eq!(stats["price_updates"], prices);
    assert_eq!(
        stats["calls"]["/v1/product/import/prices"], 1,
        "≤1000 prices: one call"
    );
    for (article, stock, price) in &want {
        let (s, p) = sim.get(&format!("/sim/products/{article}")).await;
        assert_eq!(s, 200, "{article} not on Ozon");
        assert_eq!(
            p["stocks"][SIM_WAREHOUSE], *stock,
            "{article}: sum of the 1C warehouses"
        );
        assert_eq!(p["price"], *price, "{article}");
    }

    // A delta: one offer's stock changes → exactly one more pair, in one more call.
    let (delta, article, total) = stock_delta(dir.path(), &exp, 3);
    emulate(&srv.url(), &[], &[&delta]);
    eventually(30, "the changed stock on Ozon", || async {
        let (_, p) = sim.get(&format!("/sim/products/{article}")).await;
        (p["stocks"][SIM_WAREHOUSE] == total).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = sim.stats().await;
    assert_eq!(after["stock_updates"], pairs + 1, "{after}");
    assert_eq!(
        after["calls"]["/v2/products/stocks"],
        pairs.div_ceil(100) + 1
    );
    assert_eq!(
        after["price_updates"], stats["price_updates"],
        "prices did not change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_faults_everything_arrives_exactly_once() {
    let sim = Sim::start(&["--stock-cooldown-secs", "1"]);
    sim.control(
        "/sim/faults",
        json!({"rate_429": 0.1, "rate_500": 0.1, "rate_timeout": 0.1, "timeout_ms": 1500, "seed": 3}),
    )
    .await;
    let srv = start(&env_of(
        &sim,
        &[
            ("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1"),
            ("OBMEN_OZON_TIMEOUT_SECS", "1"),
            ("OBMEN_RELAY_MAX_ATTEMPTS", "100"),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 60, 12, false);
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    let done = eventually(120, "every message done despite faults", || async {
        let all = outbox(&srv, "target=ozon").await;
        (!all.is_empty() && all.iter().all(|m| m["state"] == "done")).then_some(all)
    })
    .await;
    let stats = sim.stats().await;
    let rejected: u64 = stats["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(rejected > 0, "faults were injected: {stats}");
    let stocks = done.iter().filter(|m| m["kind"] == "ozon.stock").count();
    assert_eq!(stats["stock_updates"], stocks as u64, "none twice: {stats}");
    assert_eq!(stats["stock_same_value"], 0);
    assert!(
        done.iter().any(|m| m["attempts"].as_i64().unwrap() > 1),
        "some messages needed retries"
    );
    for (article, stock, _) in expected_on_ozon(&exp) {
        let (_, p) = sim.get(&format!("/sim/products/{article}")).await;
        assert_eq!(p["stocks"][SIM_WAREHOUSE], stock, "{article}");
    }
    // The journal explains the retries.
    let (_, calls) = srv.api("/api/v1/calls?target=ozon&limit=1000").await;
    let calls = calls["calls"].as_array().unwrap();
    let count = |f: &dyn Fn(&Value) -> bool| calls.iter().filter(|c| f(c)).count() as u64;
    let rej = |k: &str| stats["rejected"][k].as_u64().unwrap_or(0);
    assert_eq!(
        count(&|c| c["http_status"] == 429 && c["outcome"] == "retry"),
        rej("fault_429") + rej("rate_limit"),
        "every 429 journaled as a retry: {stats}"
    );
    assert_eq!(
        count(&|c| c["http_status"] == 500 && c["outcome"] == "retry"),
        rej("fault_500"),
        "{stats}"
    );
    assert_eq!(
        count(&|c| c["http_status"].is_null()
            && c["error"].as_str().unwrap_or("").contains("in time")),
        rej("fault_timeout"),
        "every timeout journaled with its reason: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_makes_messages_wait_with_a_clear_error_until_it_is_right() {
    let sim = Sim::start(&[]);
    let mut env = env_of(&sim, &[("OBMEN_RELAY_WAIT_SECS", "1")]);
    env.retain(|(k, _)| *k != "OBMEN_OZON_API_KEY");
    env.push(("OBMEN_OZON_API_KEY", "wrong-key".into()));
    let srv = start(&env);
    let dir = tempfile::tempdir().unwrap();
    gen_catalog(dir.path(), 10, 13, false);
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    let waiting = eventually(30, "messages waiting with the key error", || async {
        let all = outbox(&srv, "kind=ozon.stock").await;
        (!all.is_empty()
            && all.iter().all(|m| {
                m["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Invalid Api-Key"))
            }))
        .then_some(all)
    })
    .await;
    // Several pauses later: still waiting, no attempt spent, nothing dead.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let all = outbox(&srv, "target=ozon").await;
    assert!(all.len() >= waiting.len());
    for m in &all {
        assert_eq!(m["state"], "pending", "{m}");
        assert_eq!(m["attempts"], 0, "{m}");
    }
    let (_, calls) = srv.api("/api/v1/calls?target=ozon").await;
    assert!(calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["http_status"] == 404 && c["outcome"] == "wait"));
    // The key becomes right (as when the seller fixes it in the cabinet): everything goes.
    sim.control("/sim/config", json!({"api_key": "wrong-key"}))
        .await;
    eventually(30, "delivered after the key was fixed", || async {
        let all = outbox(&srv, "target=ozon").await;
        all.iter().all(|m| m["state"] == "done").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_unknown_to_ozon_is_an_item_error_and_the_others_are_delivered() {
    let sim = Sim::start(&["--strict-products"]);
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 10, 14, false);
    // offer_id = the 1C Ид here, so the test knows every offer_id from the file.
    let offers = std::fs::read_to_string(dir.path().join("offers.xml")).unwrap();
    let ids: Vec<String> = offers
        .split("<Предложение>")
        .skip(1)
        .map(|s| {
            s.split("<Ид>")
                .nth(1)
                .unwrap()
                .split("</Ид>")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let sample: Vec<(String, i64)> = exp["sample_offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let stock = o["stock"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    s["quantity"]
                        .as_str()
                        .unwrap()
                        .parse::<f64>()
                        .unwrap()
                        .max(0.0) as i64
                })
                .sum();
            // Ozon's offer_id holds at most 50 characters.
            (
                o["id"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .take(50)
                    .collect::<String>(),
                stock,
            )
        })
        .collect();
    let missing = sample[0].0.clone();
    // Ozon knows every card but one.
    let seed: Vec<Value> = ids
        .iter()
        .map(|id| id.chars().take(50).collect::<String>())
        .filter(|id| *id != missing)
        .map(|id| json!({"offer_id": id, "name": id}))
        .collect();
    sim.control("/sim/products", Value::Array(seed)).await;
    let srv = start(&env_of(&sim, &[("OBMEN_OZON_OFFER_ID", "id")]));
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    let all = eventually(30, "all stock messages settled", || async {
        let all = outbox(&srv, "kind=ozon.stock").await;
        (!all.is_empty()
            && all
                .iter()
                .all(|m| m["state"] == "done" || m["state"] == "dead"))
        .then_some(all)
    })
    .await;
    let dead: Vec<&Value> = all.iter().filter(|m| m["state"] == "dead").collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let payload: Value = serde_json::from_str(dead[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["offer_id"], missing);
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("offer_id_not_found"),
        "{}",
        dead[0]
    );
    assert!(all.iter().filter(|m| m["state"] == "done").count() >= 1);
    for (id, stock) in sample.iter().skip(1) {
        let (_, p) = sim
            .get(&format!("/sim/products/{}", id.replace('#', "%23")))
            .await;
        assert_eq!(p["stocks"][SIM_WAREHOUSE], *stock, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_from_ozon_is_retried_with_the_reason_recorded() {
    let sim = Sim::start(&[]);
    sim.control("/sim/faults", json!({"rate_garbage": 1.0}))
        .await;
    // Enough attempts to outlast the garbage phase (fast backoff in tests).
    let srv = start(&env_of(&sim, &[("OBMEN_RELAY_MAX_ATTEMPTS", "1000")]));
    let dir = tempfile::tempdir().unwrap();
    gen_catalog(dir.path(), 5, 15, false);
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    // Generous: on a loaded machine the import and the first attempts take a while, and a try
    // inside the 30 s pause after a garbled answer records the pause as the last error, so the
    // reason shows on every message at once only after a later garbled answer.
    eventually(180, "stock messages failed with the reason", || async {
        let all = outbox(&srv, "kind=ozon.stock").await;
        (!all.is_empty()
            && all.iter().all(|m| {
                m["state"] != "done"
                    && m["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("malformed JSON"))
            }))
        .then_some(())
    })
    .await;
    assert_eq!(sim.stats().await["stock_updates"], 0);
    sim.control("/sim/faults", json!({"rate_garbage": 0.0}))
        .await;
    // A garbled answer may hide an applied update, so obmen keeps the 30 s per-pair pause
    // after it: the wait covers that pause plus the backoff, on a loaded machine too.
    eventually(90, "delivered once Ozon answers properly", || async {
        let all = outbox(&srv, "target=ozon").await;
        all.iter().all(|m| m["state"] == "done").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_pushes_its_catalog_to_the_built_in_simulator() {
    let srv = Server::start_full(tempfile::tempdir().unwrap(), &["--demo"], &[]);
    let counts = eventually(
        60,
        "the demo catalog's stocks and prices delivered",
        || async {
            let (_, v) = srv.api("/api/v1/outbox/counts").await;
            let done = v["ozon"]["done"].as_u64().unwrap_or(0);
            let open: u64 = v["ozon"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k != "done")
                        .map(|(_, n)| n.as_u64().unwrap())
                        .sum()
                })
                .unwrap_or(1);
            (done > 0 && open == 0).then_some(v)
        },
    )
    .await;
    assert!(counts["ozon"]["done"].as_u64().unwrap() >= 300, "{counts}");
    let (_, calls) = srv.api("/api/v1/calls?target=ozon").await;
    assert!(calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["endpoint"] == "/v2/products/stocks" && c["http_status"] == 200));
}
