//! Product cards and reconciliation, end to end: `obmen emulate-1c` sends a generated catalog
//! with images to `obmen serve`, which builds Ozon cards from a category mapping, imports them
//! into `obmen sim ozon`, polls the import tasks, serves the images under its public URL and
//! reconciles Ozon's stocks and prices against its own — with faults injected on Ozon's side.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const CATEGORY: i64 = 17028922;
const TYPE_ID: i64 = 91565;
const PUBLIC: &str = "http://shop.example/obmen";

/// Every group name of the generated classifier.
fn group_names(dir: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(dir.join("import.xml")).unwrap();
    let mut names: Vec<String> = xml
        .split("<Группа>")
        .skip(1)
        .filter_map(|piece| {
            let start = piece.find("<Наименование>")? + "<Наименование>".len();
            let end = piece[start..].find("</Наименование>")? + start;
            Some(piece[start..end].to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn env_for(sim: &Sim, dir: &Path) -> Vec<(&'static str, String)> {
    let cats: Vec<Value> = group_names(dir)
        .into_iter()
        .map(|g| json!({"group": g, "description_category_id": CATEGORY, "type_id": TYPE_ID}))
        .collect();
    assert!(!cats.is_empty());
    let mut env = sim.obmen_env();
    env.extend([
        ("OBMEN_OZON_CATEGORIES", Value::from(cats).to_string()),
        ("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1".into()),
        ("OBMEN_PUBLIC_URL", PUBLIC.into()),
        ("OBMEN_RELAY_MAX_ATTEMPTS", "1000".into()),
    ]);
    env
}

fn start(env: &[(&'static str, String)]) -> Server {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(&e)
}

async fn outbox(srv: &Server, query: &str) -> Vec<Value> {
    let (s, v) = srv.api(&format!("/api/v1/outbox?limit=5000&{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

/// Card and import-task messages all done (and at least one card).
async fn cards_settled(srv: &Server) -> Option<usize> {
    let cards = outbox(srv, "kind=ozon.card").await;
    let tasks = outbox(srv, "kind=ozon.card_task").await;
    (!cards.is_empty()
        && cards.iter().all(|m| m["state"] == "done")
        && !tasks.is_empty()
        && tasks.iter().all(|m| m["state"] == "done"))
    .then_some(cards.len())
}

/// A sample good with images and exactly one offer without characteristics, and that offer.
fn sample_with_images(exp: &Value) -> (Value, Value) {
    let offers = exp["sample_offers"].as_array().unwrap();
    exp["sample_goods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["deleted"] == false
                && !g["images"].as_array().unwrap().is_empty()
                && !g["article"].as_str().unwrap_or("").is_empty()
                && g["offers"].as_array().unwrap().len() == 1
        })
        .find_map(|g| {
            let oid = g["offers"][0].as_str().unwrap();
            offers
                .iter()
                .find(|o| o["id"] == oid && !oid.contains('#'))
                .map(|o| (g.clone(), o.clone()))
        })
        .expect("a sample good with images and one offer")
}

fn stock_of(o: &Value) -> i64 {
    o["stock"]
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
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_from_1c_goods_reach_ozon_with_images_and_only_a_changed_card_is_sent_again() {
    // Strict: Ozon refuses stocks and prices of offers it has no card for, so they can only
    // arrive after the card was imported.
    let sim = Sim::start(&["--strict-products", "--stock-cooldown-secs", "1"]);
    sim.control(
        "/sim/faults",
        json!({"rate_429": 0.1, "rate_500": 0.1, "rate_timeout": 0.05, "timeout_ms": 1500, "seed": 7}),
    )
    .await;
    sim.control("/sim/config", json!({"import_pending_polls": 2}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 40, 23, true);
    assert!(
        exp["images"].as_u64().unwrap() > 0,
        "the catalog has images"
    );
    let (good, offer) = sample_with_images(&exp);
    let article = good["article"].as_str().unwrap();

    // First without a category mapping: Ozon has no card, so it refuses the offer's stock.
    let env = env_for(&sim, dir.path());
    let no_cards: Vec<(&'static str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "OBMEN_OZON_CATEGORIES")
        .cloned()
        .collect();
    let srv = start(&no_cards);
    emulate(&srv.url(), &[], &[dir.path()]);
    let refused = eventually(120, "the stock refused for the unknown offer", || async {
        outbox(&srv, "kind=ozon.stock&state=dead")
            .await
            .into_iter()
            .find(|m| {
                m["payload"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("\"offer_id\":\"{article}\""))
            })
    })
    .await;
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("offer_id_not_found"),
        "{refused}"
    );
    assert!(outbox(&srv, "kind=ozon.card").await.is_empty());

    // The administrator maps the 1C groups to an Ozon category; the next exchange makes cards.
    let data = srv.stop();
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_in(data, &e);
    emulate(&srv.url(), &[], &[dir.path()]);

    let cards = eventually(180, "every card imported and its task polled", || async {
        cards_settled(&srv).await
    })
    .await;
    let (s, p) = sim.get(&format!("/sim/products/{article}")).await;
    assert_eq!(s, 200, "{article} has a card on Ozon: {p}");
    assert_eq!(p["name"], good["name"], "{p}");
    assert_eq!(p["description_category_id"], CATEGORY, "{p}");
    assert_eq!(p["type_id"], TYPE_ID, "{p}");
    let mut urls: Vec<String> = p["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    if let Some(primary) = p["primary_image"].as_str().filter(|s| !s.is_empty()) {
        urls.insert(0, primary.to_string());
    }
    assert_eq!(
        urls.len(),
        good["images"].as_array().unwrap().len(),
        "every image of the good: {p}"
    );
    // Served by obmen under its public URL: the path after it fetches the same bytes locally.
    let first = &urls[0];
    assert!(first.starts_with(&format!("{PUBLIC}/media/")), "{first}");
    let local = format!("{}{}", srv.base, &first[PUBLIC.len()..]);
    let body = reqwest::get(&local).await.unwrap();
    assert_eq!(body.status(), 200, "{local}");
    assert!(!body.bytes().await.unwrap().is_empty());

    // The stock of the offer was refused while Ozon had no card, and went again once the card
    // was imported.
    let want = stock_of(&offer);
    eventually(
        90,
        "the stock on Ozon after the card was imported",
        || async {
            let (_, p) = sim.get(&format!("/sim/products/{article}")).await;
            (p["stocks"][SIM_WAREHOUSE] == want).then_some(())
        },
    )
    .await;

    // Every card applied once, whatever failed on the way (faults refuse before applying).
    let stats = sim.stats().await;
    assert_eq!(stats["imports"], cards as u64, "{stats}");
    let tasks = outbox(&srv, "kind=ozon.card_task&state=done").await;
    assert!(!tasks.is_empty());

    // Change one image of the good in 1C and export again: only that card goes to Ozon again.
    let img = good["images"][0].as_str().unwrap();
    let path = dir.path().join(img);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"a new photo");
    std::fs::write(&path, bytes).unwrap();
    emulate(&srv.url(), &[], &[dir.path()]);
    eventually(120, "the changed card imported", || async {
        let s = sim.stats().await;
        (s["imports"] == cards as u64 + 1 && cards_settled(&srv).await.is_some()).then_some(())
    })
    .await;
    // Nothing else follows (the planner runs after the import once the queue is idle).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(sim.stats().await["imports"], cards as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_lists_a_difference_made_on_ozon_and_exports_it_as_csv() {
    let sim = Sim::start(&["--stock-cooldown-secs", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 30, 29, false);
    let srv = start(&env_for(&sim, dir.path()));
    emulate(&srv.url(), &[], &[dir.path()]);
    eventually(120, "everything delivered", || async {
        let all = outbox(&srv, "target=ozon").await;
        (!all.is_empty() && all.iter().all(|m| m["state"] == "done")).then_some(())
    })
    .await;

    let run = |srv: &Server| {
        let c = srv.client.clone();
        let url = format!("{}/api/v1/reports/reconciliation", srv.base);
        async move {
            let r = c
                .post(url)
                .header("Authorization", format!("Bearer {API_TOKEN}"))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // In step: no differences.
    let (s, v) = run(&srv).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");

    // Someone changes a stock in Ozon's cabinet; Ozon fails now and then while obmen reads.
    let (_, offer) = sample_with_images_or_any(&exp);
    let article = offer["article"].as_str().unwrap().to_string();
    let want = stock_of(&offer);
    let theirs = want + 7;
    let body = json!({"stocks": [{"offer_id": article, "stock": theirs,
        "warehouse_id": SIM_WAREHOUSE.parse::<i64>().unwrap()}]});
    eventually(
        10,
        "the stock changed on Ozon (after its 1 s pause)",
        || async {
            let (s, v) = sim.ozon("/v2/products/stocks", body.clone()).await;
            assert_eq!(s, 200, "{v}");
            (v["result"][0]["updated"] == true).then_some(())
        },
    )
    .await;
    sim.control(
        "/sim/faults",
        json!({"rate_429": 0.2, "rate_500": 0.2, "seed": 3}),
    )
    .await;

    let (s, v) = run(&srv).await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "exactly the one difference: {v}");
    let it = &items[0];
    assert_eq!(it["offer_id"], article.as_str());
    assert!(it["field"].as_str().unwrap().contains("stock"), "{it}");
    assert_eq!(it["obmen"], want.to_string());
    assert_eq!(it["ozon"], theirs.to_string());

    let (s, latest) = srv.api("/api/v1/reports/reconciliation/latest").await;
    assert_eq!(s, 200);
    assert_eq!(latest["items"], v["items"]);
    let csv = srv
        .client
        .get(format!(
            "{}/api/v1/reports/reconciliation/latest.csv",
            srv.base
        ))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.trim_end().lines().collect();
    assert_eq!(lines[0], "\u{feff}offer_id,offer_ref,field,obmen,ozon");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with(&format!("{article},")), "{text}");
    assert!(lines[1].ends_with(&format!(",{want},{theirs}")), "{text}");
}

/// Any sample offer without characteristics that has an article (and its good).
fn sample_with_images_or_any(exp: &Value) -> (Value, Value) {
    let o = exp["sample_offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            !o["id"].as_str().unwrap().contains('#')
                && !o["article"].as_str().unwrap_or("").is_empty()
        })
        .expect("a simple sample offer")
        .clone();
    (Value::Null, o)
}
