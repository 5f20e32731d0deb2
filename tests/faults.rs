//! The fault suite: the whole flow with 30 % of the calls to Ozon and CDEK failing — 429s, 5xx,
//! timeouts after the call took effect, garbage bodies (a broken JSON; for CDEK also a proxy's
//! HTML page and an answer cut short after the call was performed).
//!
//! One scenario, run once without faults and then with seeded faults, all real binaries
//! (`obmen serve`, `obmen sim ozon`, `obmen sim cdek`): 1C sends a catalog (goods, prices,
//! stocks) that obmen relays to Ozon (cards, prices, stocks); Ozon postings become orders handed
//! to 1C; 1C's "ready to ship" ships the postings on Ozon and creates CDEK orders for the orders
//! delivered by CDEK; CDEK's status changes come back as tracking. Asserted:
//! - eventual delivery of everything: what the simulators hold at the end (cards, prices,
//!   stocks, postings, CDEK orders) and what obmen holds (orders, shipments, tracking) equals
//!   the fault-free run, and the outbox is drained (every message `done`);
//! - no side effect twice: every posting shipped once, every CDEK order created once, one obmen
//!   order per posting, every order handed to 1C;
//! - the journal explains each retry: every injected fault is an `api_calls` row with its
//!   status and reason, and each stock/price/card message's `attempts` equals the tries the
//!   journal shows for it.
//!
//! The seed is printed; `OBMEN_FAULT_SEED=N` replays one. `OBMEN_FAULT_ROUNDS=N` runs N seeds
//! in a row (the long, opt-in variant whose figures are kept in RELIABILITY.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const GOODS: usize = 12;
const POSTINGS: usize = 6;
const CDEK_ORDERS: usize = 4;
const DEFAULT_SEED: u64 = 20261123;
const TRACK_CODE: &str = "RECEIVED_AT_SHIPMENT_WAREHOUSE";

struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn control(base: &str, path: &str, body: Value) -> Value {
    let r = http()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn sim_get(base: &str, path: &str) -> Value {
    http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn ids() -> Vec<String> {
    (1..=GOODS).map(|i| format!("g{i}")).collect()
}

fn article(id: &str) -> String {
    format!("A-{id}")
}

fn env(ozon: &Proc, cdek: &Proc) -> Vec<(&'static str, String)> {
    let cats =
        json!([{"group": "Инструменты", "description_category_id": 17028922, "type_id": 91565}]);
    vec![
        ("OBMEN_OZON_BASE_URL", ozon.1.clone()),
        ("OBMEN_OZON_CLIENT_ID", SIM_CLIENT_ID.into()),
        ("OBMEN_OZON_API_KEY", SIM_API_KEY.into()),
        ("OBMEN_OZON_WAREHOUSE_ID", SIM_WAREHOUSE.into()),
        ("OBMEN_OZON_CATEGORIES", cats.to_string()),
        ("OBMEN_OZON_ORDERS_POLL", "*/1 * * * * *".into()),
        ("OBMEN_OZON_TIMEOUT_SECS", "1".into()),
        ("OBMEN_OZON_LABEL_RETRY_SECS", "1".into()),
        ("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1".into()),
        ("OBMEN_CDEK_BASE_URL", format!("{}/v2", cdek.1)),
        (
            "OBMEN_CDEK_CLIENT_ID",
            "wqGwiQx0gg8mLtiEKsUinjVSICCjtTEP".into(),
        ),
        (
            "OBMEN_CDEK_CLIENT_SECRET",
            "RmAmgvSgSl1yirlz9QupbzOJVqhCxcP5".into(),
        ),
        ("OBMEN_CDEK_TARIFF_CODE", "137".into()),
        ("OBMEN_CDEK_FROM_LOCATION", "44".into()),
        ("OBMEN_CDEK_TIMEOUT_SECS", "1".into()),
        ("OBMEN_CDEK_DEFAULT_WEIGHT_G", "700".into()),
        ("OBMEN_CDEK_WEBHOOKS", "false".into()),
        ("OBMEN_CDEK_TRACK_POLL", "*/2 * * * * *".into()),
        // Short retry delays for the test; enough attempts never to give up.
        ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
        ("OBMEN_RELAY_BACKOFF_MAX_SECS", "1".into()),
        ("OBMEN_RELAY_MAX_ATTEMPTS", "1000".into()),
    ]
}

/// 30 % of the calls fail, a mix of every kind; timeouts happen after the call took effect.
fn ozon_faults(seed: u64) -> Value {
    json!({"rate_429": 0.08, "rate_500": 0.08, "rate_timeout": 0.07, "rate_garbage": 0.07,
           "timeout_ms": 1500, "apply_before_timeout": true, "seed": seed})
}

fn cdek_faults(seed: u64) -> Value {
    json!({"rate_429": 0.08, "rate_500": 0.08, "rate_timeout": 0.07, "rate_garbage": 0.07,
           "timeout_ms": 1500, "apply_before_timeout": true, "seed": seed})
}

async fn api_list(s: &Server, path: &str, key: &str) -> Vec<Value> {
    let (st, v) = s.api(path).await;
    assert_eq!(st, 200, "{path}: {v}");
    v[key]
        .as_array()
        .or(v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// Every row of the call journal, oldest first.
async fn all_calls(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/calls?limit=1000&before={b}"),
            None => "/api/v1/calls?limit=1000".to_string(),
        };
        let page = api_list(s, &path, "calls").await;
        if page.is_empty() {
            break;
        }
        before = page.last().and_then(|c| c["id"].as_i64());
        out.extend(page);
    }
    out.reverse();
    out
}

async fn outbox(s: &Server) -> Vec<Value> {
    api_list(s, "/api/v1/outbox?limit=5000", "messages").await
}

/// `mode=query` then `mode=success`; the order numbers of the documents, as many times as
/// they occur.
async fn query_and_confirm(s: &Server) -> Vec<String> {
    let cookie = s.login("sale").await;
    let r = s.get("type=sale&mode=query", None, Some(&cookie)).await;
    assert_eq!(r.status, 200);
    let ok = s.get("type=sale&mode=success", None, Some(&cookie)).await;
    assert_eq!(ok.first(), "success", "{}", ok.body);
    r.body
        .split("<Документ>")
        .skip(1)
        .filter_map(|d| {
            let a = d.find("<Номер>")? + "<Номер>".len();
            let b = d[a..].find("</Номер>")? + a;
            Some(d[a..b].to_string())
        })
        .collect()
}

/// What UT 11 sends back for an order: its number, posted, and a status.
async fn send_status(s: &Server, number: &str, status: &str, n: usize) {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T10:00:00\">\r\n\
<Документ><Ид>7d1c2a9e-0000-11e4-a522-{n:012}</Ид><Номер>{number}</Номер><Дата>2026-11-23</Дата>\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>\
<ЗначенияРеквизитов>\
<ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>\
<ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>{status}</Значение></ЗначениеРеквизита>\
</ЗначенияРеквизитов></Документ>\r\n</КоммерческаяИнформация>\r\n"
    );
    let cookie = s.login("sale").await;
    let init = s.get("type=sale&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body.split('\n').count(), 2, "init: {}", init.body);
    let name = format!("orders-status_{n}.xml");
    let r = s
        .post(
            &format!("type=sale&mode=file&filename={name}"),
            xml.into_bytes(),
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "success", "file: {}", r.body);
    let r = s
        .get(
            &format!("type=sale&mode=import&filename={name}"),
            None,
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "success", "import: {}", r.body);
}

async fn orders(s: &Server, channel: &str) -> Vec<Value> {
    api_list(
        s,
        &format!("/api/v1/orders?channel={channel}&limit=1000"),
        "orders",
    )
    .await
}

async fn order(s: &Server, number: &str) -> Value {
    let (st, v) = s.api(&format!("/api/v1/orders/{number}")).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Counters of one run.
#[derive(Debug, Default)]
struct Figures {
    messages: usize,
    retries: i64,
    ozon_faults: u64,
    cdek_faults: u64,
    failed_calls: usize,
    drain: Duration,
}

/// One run of the whole flow; returns what the systems hold at the end and its figures.
async fn scenario(seed: Option<u64>) -> (BTreeMap<String, Value>, Figures) {
    let started = Instant::now();
    let (c, u) = spawn_sim(&["--stock-cooldown-secs", "1", "--label-delay-secs", "1"]);
    let ozon = Proc(c, u);
    let (c, u) = spawn_cdek_sim(&["--process-delay-ms", "200", "--print-delay-ms", "300"]);
    let cdek = Proc(c, u);
    if let Some(seed) = seed {
        control(&ozon.1, "/sim/faults", ozon_faults(seed)).await;
        control(&cdek.1, "/sim/faults", cdek_faults(seed)).await;
    }
    let e = env(&ozon, &cdek);
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&e);

    // 1C sends the catalog.
    let ids = ids();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let import = import_xml(&refs, None);
    let offers = offers_xml(&refs);
    let r = srv
        .upload_and_import(
            &[
                ("import.xml", import.as_bytes()),
                ("offers.xml", offers.as_bytes()),
            ],
            &["import.xml", "offers.xml"],
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);

    // Cards, prices and stocks reach Ozon.
    eventually(120, "the catalog on Ozon", || async {
        for (i, id) in ids.iter().enumerate() {
            let p = sim_get(&ozon.1, &format!("/sim/products/{}", article(id))).await;
            let want_stock = (i + 3) as i64;
            let want_price = format!("{}.500000", 100 + i);
            if p["stocks"][SIM_WAREHOUSE] != want_stock
                || p["price"] != want_price.as_str()
                || p["name"] != format!("Товар {id}").as_str()
            {
                return None;
            }
        }
        Some(())
    })
    .await;

    // Ozon postings become orders.
    let mut postings = Vec::new();
    for k in 0..POSTINGS {
        let a = article(&ids[k % GOODS]);
        let b = article(&ids[(k + 5) % GOODS]);
        let p = control(
            &ozon.1,
            "/sim/postings",
            json!({"products": [{"offer_id": a, "quantity": 1 + k, "price": "150"},
                                {"offer_id": b, "quantity": 1, "price": "99.5"}]}),
        )
        .await;
        let n = p["posting_number"]
            .as_str()
            .or_else(|| p["result"]["posting_number"].as_str())
            .unwrap_or_else(|| panic!("no posting number in {p}"))
            .to_string();
        postings.push(n);
    }
    let ozon_orders = eventually(120, "every posting an order", || async {
        let os = orders(&srv, "ozon").await;
        let have: BTreeSet<String> = os
            .iter()
            .filter_map(|o| o["external_id"].as_str().map(String::from))
            .collect();
        postings.iter().all(|p| have.contains(p)).then_some(os)
    })
    .await;
    // One order per posting.
    assert_eq!(ozon_orders.len(), POSTINGS, "{ozon_orders:#?}");

    // Orders delivered by CDEK come in through the API.
    let mut cdek_numbers = Vec::new();
    for k in 0..CDEK_ORDERS {
        let body = json!({"channel":"api","external_id":format!("c-{k}"),"date":"2026-11-23T10:00:00+03:00",
            "currency":"RUB","customer":{"name":"Иванов Иван","phone":"+79990000000","email":"ivan@example.ru"},
            "lines":[{"name":"Товар g1","article":"A-g1","quantity":1 + k,"price":1200.00}],
            "delivery":{"method":"cdek","cost":300.00,"address":format!("ул. Ленина, д. {}", k + 1),
                "city":"Новосибирск","city_code":270},
            "payment":{"method":"card","paid":false}});
        let r = srv
            .client
            .post(format!("{}/api/v1/orders", srv.base))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(st, 201, "{v}");
        cdek_numbers.push(v["number"].as_str().unwrap().to_string());
    }

    // Every order reaches 1C once.
    let ozon_numbers: Vec<String> = postings
        .iter()
        .map(|p| {
            ozon_orders
                .iter()
                .find(|o| o["external_id"] == p.as_str())
                .and_then(|o| o["number"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    let all_numbers: Vec<String> = ozon_numbers.iter().chain(&cdek_numbers).cloned().collect();
    let mut handed: BTreeMap<String, usize> = BTreeMap::new();
    for n in query_and_confirm(&srv).await {
        *handed.entry(n).or_default() += 1;
    }
    for n in &all_numbers {
        assert_eq!(
            handed.get(n),
            Some(&1),
            "order {n} handed to 1C: {handed:?}"
        );
    }
    assert_eq!(handed.len(), all_numbers.len(), "{handed:?}");

    // 1C: ready to ship.
    for (i, n) in all_numbers.iter().enumerate() {
        send_status(&srv, n, "Готов к отгрузке", i + 1).await;
    }
    eventually(120, "every posting shipped", || async {
        let st = sim_get(&ozon.1, "/sim/stats").await;
        postings
            .iter()
            .all(|p| st["ships"][p].as_u64().unwrap_or(0) >= 1)
            .then_some(())
    })
    .await;
    eventually(120, "every CDEK order registered", || async {
        for n in &cdek_numbers {
            let o = order(&srv, n).await;
            if o["shipments"][0]["state"] != "registered" {
                return None;
            }
        }
        Some(())
    })
    .await;

    // CDEK moves the parcels: the tracking comes back.
    let at_cdek = sim_get(&cdek.1, "/sim/orders").await["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for n in &cdek_numbers {
        let uuid = at_cdek
            .iter()
            .find(|x| x["number"] == n.as_str())
            .and_then(|x| x["uuid"].as_str())
            .unwrap_or_else(|| panic!("no CDEK order {n}: {at_cdek:?}"));
        control(
            &cdek.1,
            &format!("/sim/orders/{uuid}/status"),
            json!({"code": TRACK_CODE}),
        )
        .await;
    }
    eventually(120, "the tracking of every CDEK order", || async {
        for n in &cdek_numbers {
            let o = order(&srv, n).await;
            if o["shipments"][0]["status"] != TRACK_CODE {
                return None;
            }
        }
        Some(())
    })
    .await;

    // Everything delivered: the outbox drains.
    let msgs = eventually(180, "the outbox drained", || async {
        let m = outbox(&srv).await;
        m.iter().all(|x| x["state"] == "done").then_some(m)
    })
    .await;
    let drain = started.elapsed();
    // The polls keep running: faults off, and time for the calls still under way (a timeout
    // is journaled when obmen gives up, 1 s) before the counts are compared. Nothing more is
    // on its way: no second ship, no second CDEK order, no unknown order handed to 1C.
    if seed.is_some() {
        control(&ozon.1, "/sim/faults", json!({})).await;
        control(&cdek.1, "/sim/faults", json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = query_and_confirm(&srv).await;
    for n in &again {
        assert!(all_numbers.contains(n), "an unknown order {n} went to 1C");
    }

    // --- The end state ---
    let mut snap = BTreeMap::new();
    for id in &ids {
        let mut p = sim_get(&ozon.1, &format!("/sim/products/{}", article(id))).await;
        for k in [
            "product_id",
            "sku",
            "created_at",
            "updated_at",
            "stock_updates",
            "price_updates",
        ] {
            p.as_object_mut().unwrap().remove(k);
        }
        snap.insert(format!("ozon product {id}"), p);
    }
    let ozon_stats = sim_get(&ozon.1, "/sim/stats").await;
    for (k, p) in postings.iter().enumerate() {
        let v = sim_get(&ozon.1, &format!("/sim/postings/{p}")).await;
        let v = if v["result"].is_object() {
            v["result"].clone()
        } else {
            v
        };
        snap.insert(
            format!("ozon posting {k}"),
            json!({"status": v["status"], "products": v["products"],
                   "ships": ozon_stats["ships"][p]}),
        );
    }
    let cdek_stats = sim_get(&cdek.1, "/sim/stats").await;
    let at_cdek = sim_get(&cdek.1, "/sim/orders").await["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (k, n) in cdek_numbers.iter().enumerate() {
        let mine: Vec<&Value> = at_cdek
            .iter()
            .filter(|x| x["number"] == n.as_str())
            .collect();
        let statuses: Vec<Value> = mine.iter().map(|x| x["status"].clone()).collect();
        snap.insert(
            format!("cdek order {k}"),
            json!({"orders": mine.len(), "created": cdek_stats["orders_created"][n],
                   "status": statuses}),
        );
    }
    for (k, n) in all_numbers.iter().enumerate() {
        let o = order(&srv, n).await;
        let shipments: Vec<Value> = o["shipments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| json!({"carrier": s["carrier"], "state": s["state"], "status": s["status"]}))
            .collect();
        snap.insert(
            format!("obmen order {k}"),
            json!({"status": o["status"], "external_id": o["external_id"], "lines": o["lines"],
                   "shipments": shipments, "handed": handed.get(n)}),
        );
    }
    // The kinds of messages sent. Not how many: a newer stock or price supersedes one not sent
    // yet, a card import that timed out after Ozon took it gets a new task, tracking is a poll.
    let kinds: BTreeSet<String> = msgs
        .iter()
        .filter_map(|m| m["kind"].as_str().map(String::from))
        .collect();
    snap.insert("outbox kinds".into(), json!(kinds));

    // Side effects once each, in this run already.
    for p in &postings {
        assert_eq!(ozon_stats["ships"][p], 1, "posting {p}: {ozon_stats}");
    }
    for n in &cdek_numbers {
        assert_eq!(
            cdek_stats["orders_created"][n], 1,
            "order {n}: {cdek_stats}"
        );
    }

    // --- The journal explains each retry ---
    let calls = all_calls(&srv).await;
    let failed_calls = calls.iter().filter(|c| c["outcome"] != "ok").count();
    let ozon_faults: u64 = ["fault_429", "fault_500", "fault_timeout", "fault_garbage"]
        .iter()
        .filter_map(|k| ozon_stats["rejected"][k].as_u64())
        .sum();
    let cdek_faults: u64 = cdek_stats["faults"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    check_journal(&calls, &ozon_stats, &cdek_stats);
    check_attempts(&calls, &msgs);
    if seed.is_some() {
        assert!(
            ozon_faults >= 5 && cdek_faults >= 3,
            "faults were injected: {ozon_stats} {cdek_stats}"
        );
    }
    let figures = Figures {
        messages: msgs.len(),
        retries: msgs
            .iter()
            .map(|m| m["attempts"].as_i64().unwrap_or(1) - 1)
            .sum(),
        ozon_faults,
        cdek_faults,
        failed_calls,
        drain,
    };
    (snap, figures)
}

fn count(calls: &[Value], f: impl Fn(&Value) -> bool) -> u64 {
    calls.iter().filter(|c| f(c)).count() as u64
}

fn stat(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Every fault a simulator injected is one journal row with its status and reason, failed.
fn check_journal(calls: &[Value], ozon: &Value, cdek: &Value) {
    let of = |t: &'static str| {
        let v: Vec<Value> = calls.iter().filter(|c| c["target"] == t).cloned().collect();
        v
    };
    let oz = of("ozon");
    let failed = |c: &Value| c["outcome"] != "ok";
    let error_has = |c: &Value, s: &str| c["error"].as_str().is_some_and(|e| e.contains(s));
    assert_eq!(
        count(&oz, |c| c["http_status"] == 429 && failed(c)),
        stat(&ozon["rejected"]["fault_429"]) + stat(&ozon["rejected"]["rate_limit"]),
        "Ozon 429s in the journal"
    );
    assert_eq!(
        count(&oz, |c| c["http_status"] == 500
            && failed(c)
            && error_has(c, "Internal error")),
        stat(&ozon["rejected"]["fault_500"]),
        "Ozon 500s in the journal"
    );
    assert_eq!(
        count(&oz, |c| c["http_status"].is_null()
            && failed(c)
            && error_has(c, "in time")),
        stat(&ozon["rejected"]["fault_timeout"]),
        "Ozon timeouts in the journal"
    );
    assert_eq!(
        count(&oz, |c| c["http_status"] == 200
            && failed(c)
            && error_has(c, "not JSON")),
        stat(&ozon["rejected"]["fault_garbage"]),
        "Ozon garbage answers in the journal"
    );
    let cd = of("cdek");
    assert_eq!(
        count(&cd, |c| c["http_status"] == 429 && failed(c)),
        stat(&cdek["faults"]["429"]),
        "CDEK 429s in the journal"
    );
    assert_eq!(
        count(&cd, |c| c["http_status"] == 500 && failed(c)),
        stat(&cdek["faults"]["500"]),
        "CDEK 500s in the journal"
    );
    assert_eq!(
        count(&cd, |c| c["http_status"].is_null()
            && failed(c)
            && error_has(c, "in time")),
        stat(&cdek["faults"]["timeout"]),
        "CDEK timeouts in the journal"
    );
    assert_eq!(
        count(&cd, |c| c["http_status"] == 502 && failed(c)),
        stat(&cdek["faults"]["garbage_html"]),
        "CDEK proxy pages in the journal"
    );
    // An answer cut short: a success status with a body that is not JSON, or an error status
    // whose body (an excerpt of a short error) does not parse.
    assert_eq!(
        count(&cd, |c| {
            let s = c["http_status"].as_i64().unwrap_or(0);
            failed(c)
                && s != 502
                && ((200..300).contains(&s) && error_has(c, "not JSON")
                    || (400..500).contains(&s)
                        && s != 429
                        && c["response"]
                            .as_str()
                            .is_some_and(|r| serde_json::from_str::<Value>(r).is_err()))
        }),
        stat(&cdek["faults"]["garbage_truncated"]),
        "CDEK answers cut short in the journal"
    );
    // No failure without a reason.
    for c in calls.iter().filter(|c| failed(c)) {
        assert!(
            c["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a failed call without a reason: {c}"
        );
    }
}

/// How a journaled call ended for one item of a batch: a counted try, or not counted (Ozon's
/// "too many requests" for one item is a wait, not a failure).
fn counted_try(call: &Value, offer: &str) -> bool {
    if call["outcome"] != "ok" {
        return true;
    }
    let Some(v) = call["response"]
        .as_str()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    else {
        return true;
    };
    let item = v["result"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["offer_id"] == offer));
    match item {
        Some(i) if i["updated"] == false => !i["errors"].to_string().contains("TOO_MANY_REQUESTS"),
        _ => true,
    }
}

/// Each stock and price message's `attempts` is the number of tries the journal shows for its
/// offer (summed over messages of the same kind and offer); likewise for the cards in all.
fn check_attempts(calls: &[Value], msgs: &[Value]) {
    // Card imports answer for the whole batch: every try of the call is a try of each card it
    // carries (`messages`), and the request excerpt is too short to name them all.
    let card_attempts: i64 = msgs
        .iter()
        .filter(|m| m["kind"] == "ozon.card")
        .map(|m| m["attempts"].as_i64().unwrap())
        .sum();
    let card_tries: i64 = calls
        .iter()
        .filter(|c| c["endpoint"] == "/v3/product/import")
        .map(|c| c["messages"].as_i64().unwrap())
        .sum();
    assert!(card_attempts > 0, "no card message");
    assert_eq!(
        card_attempts, card_tries,
        "card attempts in the outbox vs tries in the journal"
    );
    for (kind, endpoint) in [
        ("ozon.stock", "/v2/products/stocks"),
        ("ozon.price", "/v1/product/import/prices"),
    ] {
        let mut attempts: BTreeMap<String, i64> = BTreeMap::new();
        for m in msgs.iter().filter(|m| m["kind"] == kind) {
            let p: Value = m["payload"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| m["payload"].clone());
            let offer = p["offer_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no offer_id in {kind} payload {p}"))
                .to_string();
            *attempts.entry(offer).or_default() += m["attempts"].as_i64().unwrap();
        }
        assert!(!attempts.is_empty(), "no {kind} message");
        for (offer, n) in attempts {
            let needle = format!("\"offer_id\":\"{offer}\"");
            let tries = calls
                .iter()
                .filter(|c| c["endpoint"] == endpoint)
                .filter(|c| c["request"].as_str().is_some_and(|r| r.contains(&needle)))
                .filter(|c| counted_try(c, &offer))
                .count() as i64;
            assert_eq!(
                n, tries,
                "{kind} {offer}: the outbox counts {n} attempts, the journal shows {tries} tries"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_faults_everything_arrives_once_and_every_retry_is_journaled() {
    let seed: u64 = std::env::var("OBMEN_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let rounds: u64 = std::env::var("OBMEN_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (clean, f) = scenario(None).await;
    println!(
        "fault-free run: {} messages, {} retries, drained in {:.1} s",
        f.messages,
        f.retries,
        f.drain.as_secs_f64()
    );
    assert_eq!(f.retries, 0, "no retry without faults");
    for round in 0..rounds {
        let seed = seed + round;
        println!("fault seed {seed} (replay: OBMEN_FAULT_SEED={seed})");
        let (faulty, f) = scenario(Some(seed)).await;
        println!(
            "round {} seed {seed}: {} messages, {} Ozon + {} CDEK faults injected, {} failed calls journaled, {} retries, drained in {:.1} s",
            round + 1,
            f.messages,
            f.ozon_faults,
            f.cdek_faults,
            f.failed_calls,
            f.retries,
            f.drain.as_secs_f64()
        );
        for (k, v) in &clean {
            assert_eq!(
                faulty.get(k),
                Some(v),
                "seed {seed}: {k} differs from the fault-free run"
            );
        }
        assert_eq!(faulty.len(), clean.len(), "seed {seed}");
    }
}
