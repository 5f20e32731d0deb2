//! Postings → orders, the dispatcher and the outcome rules, against a temporary SQLite store.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use super::*;
use crate::connectors::ozon::labels::KIND_LABEL;
use crate::connectors::ozon::labels::{label_error_outcome, pdf_bytes};
use crate::orders::model::Money;
use crate::store::schema::{order_events, orders, outbox, ozon_offers};
use crate::store::DbPool;

fn db() -> (tempfile::TempDir, DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
    let mut c = pool.get().unwrap();
    diesel::sql_query(
        "INSERT INTO offers (id, good_id, article, name, data, hash, created_at, changed_at, seen_at) \
         VALUES ('g1#c1', 'g1', 'ART-1', 'Кроссовки 42', '{}', 'h', 0, 0, 0)",
    )
    .execute(&mut c)
    .unwrap();
    diesel::insert_into(ozon_offers::table)
        .values((
            ozon_offers::offer_ref.eq("g1#c1"),
            ozon_offers::offer_id.eq("ART-1"),
            ozon_offers::sku.eq(111i64),
            ozon_offers::created_at.eq(0i64),
            ozon_offers::updated_at.eq(0i64),
        ))
        .execute(&mut c)
        .unwrap();
    (dir, pool)
}

/// obmen's configuration pointing at an Ozon simulator at `url` with its credentials.
fn sim_config(data_dir: &std::path::Path, url: String) -> crate::config::Config {
    let mut cfg = crate::config::Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    cfg.ozon.base_url = Some(url);
    cfg.ozon.client_id = Some("123456".into());
    cfg.ozon.api_key = Some("sim-api-key".into());
    cfg.ozon.warehouse_id = Some(22142605386000);
    cfg
}

/// A control call to the simulator (`POST {url}{path}`); its JSON answer.
async fn sim_ctl(url: String, path: String, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

fn posting(number: &str, status: &str) -> Value {
    json!({
        "posting_number": number, "order_id": 1, "order_number": "0001-1",
        "status": status, "substatus": "posting_created",
        "in_process_at": "2026-11-20T07:07:32Z", "shipment_date": "2026-11-21T10:00:00Z",
        "cancellation": {"cancel_reason_id": 0, "cancel_reason": "", "cancellation_initiator": ""},
        "products": [
            {"sku": 111, "offer_id": "ART-1", "name": "Кроссовки", "quantity": 2, "price": "1390.000000", "currency_code": "RUB"},
            {"sku": 222, "offer_id": "NOPE-9", "name": "Шнурки", "quantity": 1, "price": "99.500000", "currency_code": "RUB"}
        ]
    })
}

fn events(c: &mut Conn) -> i64 {
    order_events::table.count().get_result(c).unwrap()
}

fn order_count(c: &mut Conn) -> i64 {
    orders::table.count().get_result(c).unwrap()
}

#[test]
fn a_posting_becomes_an_order_with_lines_mapped_back_to_1c() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let Applied::Created(number) =
        apply_posting(&mut c, "OB-", &posting("0001-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!("not created")
    };
    let o = ostore::get(&mut c, &number).unwrap().unwrap();
    assert_eq!(
        (o.channel.as_str(), o.external_id.as_deref()),
        ("ozon", Some("0001-1-1"))
    );
    assert_eq!(o.status, Status::New);
    assert_eq!(o.date, "2026-11-20T07:07:32Z");
    assert_eq!(o.lines.len(), 2);
    // Known offer_id → the 1C offer; name from the catalog.
    assert_eq!(o.lines[0].offer_id.as_deref(), Some("g1#c1"));
    assert_eq!(o.lines[0].name, "Кроссовки 42");
    assert_eq!(o.lines[0].price, Money(139000));
    assert_eq!(o.lines[0].quantity.0, 2000);
    // Unknown offer_id → a free line with Ozon's name and the offer_id as article.
    assert_eq!(o.lines[1].offer_id, None);
    assert_eq!(o.lines[1].name, "Шнурки");
    assert_eq!(o.lines[1].article.as_deref(), Some("NOPE-9"));
    assert_eq!(o.lines[1].price, Money(9950));
    assert_eq!(o.total, Money(139000 * 2 + 9950));
    assert!(o.payment.as_ref().unwrap().paid);
    assert_eq!(o.delivery.as_ref().unwrap().method.as_deref(), Some("ozon"));
    assert!(o.comment.as_deref().unwrap().contains("0001-1-1"));
    // SKUs kept for shipping.
    let data: String = ozon_postings::table
        .find("0001-1-1")
        .select(ozon_postings::data)
        .first(&mut c)
        .unwrap();
    let lines = stored_lines(&data);
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.sku, l.quantity))
            .collect::<Vec<_>>(),
        vec![(111, 2), (222, 1)]
    );
}

#[test]
fn applying_the_same_posting_twice_changes_nothing() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let p = posting("0002-1-1", "awaiting_packaging");
    let Applied::Created(number) = apply_posting(&mut c, "OB-", &p).unwrap() else {
        panic!()
    };
    let before = ostore::get(&mut c, &number).unwrap().unwrap();
    let ev = events(&mut c);
    assert_eq!(
        apply_posting(&mut c, "OB-", &p).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(
        apply_posting(&mut c, "OB-", &p).unwrap(),
        Applied::Unchanged
    );
    let after = ostore::get(&mut c, &number).unwrap().unwrap();
    assert_eq!(order_count(&mut c), 1);
    assert_eq!(events(&mut c), ev);
    assert_eq!(
        (after.version, after.status, after.updated_at),
        (before.version, before.status, before.updated_at)
    );
}

#[test]
fn an_ozon_cancellation_cancels_the_order_once_with_the_reason() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let Applied::Created(number) =
        apply_posting(&mut c, "OB-", &posting("0003-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!()
    };
    let mut p = posting("0003-1-1", "cancelled");
    p["cancellation"]["cancel_reason"] = json!("Покупатель отменил заказ");
    assert_eq!(apply_posting(&mut c, "OB-", &p).unwrap(), Applied::Updated);
    let o = ostore::get(&mut c, &number).unwrap().unwrap();
    assert_eq!(o.status, Status::Cancelled);
    let t = ostore::timeline(&mut c, o.id).unwrap();
    let last = t.last().unwrap();
    assert_eq!(
        (last.source.as_str(), last.kind.as_str()),
        ("ozon", "status")
    );
    assert!(
        last.message.contains("Покупатель отменил заказ"),
        "{}",
        last.message
    );
    let ev = events(&mut c);
    assert_eq!(
        apply_posting(&mut c, "OB-", &p).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(events(&mut c), ev);
    // Nothing goes back to Ozon for a cancellation that came from Ozon.
    assert_eq!(dispatch(&mut c, 352).unwrap(), DispatchStats::default());
}

#[test]
fn a_posting_first_seen_cancelled_makes_no_order() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let p = posting("0004-1-1", "cancelled");
    assert_eq!(
        apply_posting(&mut c, "OB-", &p).unwrap(),
        Applied::SkippedCancelled
    );
    assert_eq!(
        apply_posting(&mut c, "OB-", &p).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(order_count(&mut c), 0);
}

#[test]
fn ozon_statuses_move_the_order_forward() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let Applied::Created(number) =
        apply_posting(&mut c, "OB-", &posting("0005-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!()
    };
    apply_posting(&mut c, "OB-", &posting("0005-1-1", "awaiting_deliver")).unwrap();
    assert_eq!(
        ostore::get(&mut c, &number).unwrap().unwrap().status,
        Status::New
    );
    apply_posting(&mut c, "OB-", &posting("0005-1-1", "delivering")).unwrap();
    assert_eq!(
        ostore::get(&mut c, &number).unwrap().unwrap().status,
        Status::Shipped
    );
    apply_posting(&mut c, "OB-", &posting("0005-1-1", "delivered")).unwrap();
    assert_eq!(
        ostore::get(&mut c, &number).unwrap().unwrap().status,
        Status::Delivered
    );
}

fn ship_messages(c: &mut Conn) -> Vec<(String, String, Option<i32>)> {
    outbox::table
        .filter(outbox::kind.eq(KIND_SHIP))
        .select((outbox::key, outbox::payload, outbox::order_id))
        .load(c)
        .unwrap()
}

#[test]
fn ready_to_ship_queues_exactly_one_ship_however_often_it_arrives() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let Applied::Created(number) =
        apply_posting(&mut c, "OB-", &posting("0006-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!()
    };
    assert_eq!(dispatch(&mut c, 352).unwrap().ship, 0, "not ready yet");
    ostore::set_status(&mut c, &number, Status::ReadyToShip, Source::OneC, "1C").unwrap();
    assert_eq!(dispatch(&mut c, 352).unwrap().ship, 1);
    assert_eq!(dispatch(&mut c, 352).unwrap().ship, 0);
    // The message done, the status arriving again: still one.
    diesel::update(outbox::table)
        .set(outbox::state.eq("done"))
        .execute(&mut c)
        .unwrap();
    ostore::set_status(
        &mut c,
        &number,
        Status::ReadyToShip,
        Source::OneC,
        "1C again",
    )
    .unwrap();
    assert_eq!(dispatch(&mut c, 352).unwrap().ship, 0);
    let msgs = ship_messages(&mut c);
    assert_eq!(msgs.len(), 1);
    let (key, payload, order_id) = &msgs[0];
    assert_eq!(key, "0006-1-1");
    let o = ostore::get(&mut c, &number).unwrap().unwrap();
    assert_eq!(*order_id, Some(o.id));
    let item: ShipItem = serde_json::from_str(payload).unwrap();
    assert_eq!(item.order_number, number);
    assert_eq!(
        item.products
            .iter()
            .map(|p| (p.sku, p.quantity))
            .collect::<Vec<_>>(),
        vec![(111, 2), (222, 1)]
    );
}

#[test]
fn a_cancellation_from_1c_queues_one_cancel_on_ozon() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let Applied::Created(n1) =
        apply_posting(&mut c, "OB-", &posting("0007-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!()
    };
    let Applied::Created(n2) =
        apply_posting(&mut c, "OB-", &posting("0008-1-1", "awaiting_packaging")).unwrap()
    else {
        panic!()
    };
    ostore::set_status(&mut c, &n1, Status::Cancelled, Source::OneC, "1C status").unwrap();
    ostore::set_status(
        &mut c,
        &n2,
        Status::Cancelled,
        Source::Dashboard,
        "operator",
    )
    .unwrap();
    assert_eq!(
        dispatch(&mut c, 402).unwrap(),
        DispatchStats { ship: 0, cancel: 1 }
    );
    assert_eq!(dispatch(&mut c, 402).unwrap().cancel, 0);
    let (key, payload): (String, String) = outbox::table
        .filter(outbox::kind.eq(KIND_CANCEL))
        .select((outbox::key, outbox::payload))
        .first(&mut c)
        .unwrap();
    assert_eq!(key, "0007-1-1");
    let item: CancelItem = serde_json::from_str(&payload).unwrap();
    assert_eq!(item.reason_id, 402);
}

#[test]
fn a_duplicate_push_is_stored_once_and_fetches_once() {
    let (_d, pool) = db();
    let mut c = pool.get().unwrap();
    let body = r#"{"message_type":"TYPE_NEW_POSTING","posting_number":"0009-1-1","products":[{"sku":111,"quantity":2}],"warehouse_id":1,"seller_id":15}"#;
    let v: Value = serde_json::from_str(body).unwrap();
    assert!(store_push(&mut c, body, &v).unwrap());
    assert!(!store_push(&mut c, body, &v).unwrap());
    let other = r#"{"message_type":"TYPE_STATE_CHANGED","posting_number":"0009-1-1","new_state":"posting_delivered"}"#;
    assert!(store_push(&mut c, other, &serde_json::from_str(other).unwrap()).unwrap());
    // Two distinct notifications of one posting: one pending fetch (coalesced).
    let fetches: Vec<String> = outbox::table
        .filter(outbox::kind.eq(KIND_FETCH))
        .select(outbox::key)
        .load(&mut c)
        .unwrap();
    assert_eq!(fetches, vec!["0009-1-1".to_string()]);
    let pushes: i64 = ozon_push::table.count().get_result(&mut c).unwrap();
    assert_eq!(pushes, 2);
}

#[test]
fn a_label_not_ready_is_later_without_an_attempt() {
    let retry = Duration::from_secs(15);
    let not_ready = CallError::Rejected {
        status: 409,
        code: Some(9),
        message: "The next postings aren't ready".into(),
    };
    assert_eq!(
        label_error_outcome(&not_ready, retry),
        OutcomeKind::Later {
            reason: "Ozon: The next postings aren't ready".into(),
            after: retry
        }
    );
    let other = CallError::Rejected {
        status: 400,
        code: Some(3),
        message: "INVALID_ARGUMENT".into(),
    };
    assert!(matches!(
        label_error_outcome(&other, retry),
        OutcomeKind::Dead { .. }
    ));
    assert!(matches!(
        label_error_outcome(&CallError::Server(500, "x".into()), retry),
        OutcomeKind::Retry { .. }
    ));
    assert_eq!(
        pdf_bytes(b"%PDF-1.4 x").as_deref(),
        Some(&b"%PDF-1.4 x"[..])
    );
    assert_eq!(pdf_bytes(br#"{"code":3}"#), None);
}

#[test]
fn ship_answers_decide_the_message() {
    let rej = |m: &str| -> Result<Value, CallError> {
        Err(CallError::Rejected {
            status: 400,
            code: Some(3),
            message: m.into(),
        })
    };
    assert_eq!(
        ship_outcome(&Ok(json!({"result": ["x"]}))),
        OutcomeKind::Done
    );
    assert_eq!(
        ship_outcome(&rej("POSTING_ALREADY_SHIPPED")),
        OutcomeKind::Done
    );
    assert!(matches!(
        ship_outcome(&rej("POSTING_ALREADY_CANCELLED")),
        OutcomeKind::Dead { .. }
    ));
    assert!(matches!(
        ship_outcome(&rej("HAS_INCORRECT_STATUS")),
        OutcomeKind::Dead { .. }
    ));
    assert!(matches!(
        ship_outcome(&Err(CallError::Timeout("t".into()))),
        OutcomeKind::Retry { .. }
    ));
    assert_eq!(
        cancel_outcome(&rej("POSTING_ALREADY_CANCELLED")),
        OutcomeKind::Done
    );
}

/// The whole path in process against the simulator: poll → order → ready to ship → one ship →
/// label not ready (later, no attempt) → label stored and linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_ship_and_label_against_the_simulator() {
    use crate::sim::ozon::{start, SimConfig};
    let sim = start(
        SimConfig {
            label_delay_secs: 1,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let (dir, pool) = db();
    let mut cfg = sim_config(dir.path(), sim.url());
    cfg.ozon.label_retry_secs = 1;
    let cfg = std::sync::Arc::new(cfg);
    let ozon = Ozon::new(cfg.clone(), pool.clone()).unwrap().unwrap();
    let ctl = |path: &str, body: Value| sim_ctl(sim.url(), path.to_string(), body);
    ctl(
        "/sim/products",
        json!([{"offer_id": "ART-1", "name": "Кроссовки", "price": "1390"}]),
    )
    .await;
    let p = ctl(
        "/sim/postings",
        json!({"products": [{"offer_id": "ART-1", "quantity": 2, "price": "1390"}]}),
    )
    .await;
    let posting = p["posting_number"].as_str().unwrap().to_string();

    let s = ozon.poll_postings().await.unwrap();
    assert_eq!(s.created, 1, "{s:?}");
    let cursor = {
        let mut c = pool.get().unwrap();
        crate::store::get_setting(&mut c, CURSOR).unwrap()
    };
    assert!(cursor.is_some());
    assert_eq!(ozon.poll_postings().await.unwrap().created, 0);

    let number = {
        let mut c = pool.get().unwrap();
        let n: String = ozon_postings::table
            .find(&posting)
            .select(ozon_postings::order_number)
            .first::<Option<String>>(&mut c)
            .unwrap()
            .unwrap();
        let o = ostore::get(&mut c, &n).unwrap().unwrap();
        // The link of ART-1 is to g1#c1 in this store: mapped back to the 1C offer.
        assert_eq!(o.lines[0].offer_id.as_deref(), Some("g1#c1"));
        ostore::set_status(&mut c, &n, Status::ReadyToShip, Source::OneC, "1C").unwrap();
        n
    };
    assert_eq!(ozon.dispatch().await.unwrap().ship, 1);
    let policy = crate::relay::Policy {
        backoff_base: Duration::from_millis(10),
        ..Default::default()
    };
    let relay = crate::relay::Relay::new(pool.clone(), policy, ozon.handlers());
    relay.drain().await.unwrap();
    assert_eq!(sim.sim.stats()["ships"][&posting], 1);
    let label_state = || {
        let mut c = pool.get().unwrap();
        outbox::table
            .filter(outbox::kind.eq(KIND_LABEL))
            .select((outbox::state, outbox::attempts))
            .first::<(String, i32)>(&mut c)
            .unwrap()
    };
    // Asked at once after the ship: not ready, back to pending without an attempt.
    assert_eq!(label_state(), ("pending".to_string(), 0));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    relay.drain().await.unwrap();
    assert_eq!(label_state(), ("done".to_string(), 1));
    let o = {
        let mut c = pool.get().unwrap();
        ostore::get(&mut c, &number).unwrap().unwrap()
    };
    let (_, link) = o
        .requisites
        .iter()
        .find(|(n, _)| n == crate::connectors::ozon::labels::REQUISITE)
        .expect("the label requisite");
    let tail = link.split("/documents/").nth(1).unwrap();
    let parts: Vec<&str> = tail.split('/').collect();
    let file = {
        let mut c = pool.get().unwrap();
        crate::connectors::ozon::labels::document_for_download(
            &mut c,
            dir.path(),
            parts[0].parse().unwrap(),
            parts[1],
            parts[2],
        )
        .unwrap()
        .expect("the document")
    };
    assert!(std::fs::read(&file.0).unwrap().starts_with(b"%PDF"));
    // A wrong token finds nothing.
    let mut c = pool.get().unwrap();
    assert!(crate::connectors::ozon::labels::document_for_download(
        &mut c,
        dir.path(),
        parts[0].parse().unwrap(),
        "nope",
        parts[2],
    )
    .unwrap()
    .is_none());
    // Dispatching again queues nothing more.
    drop(c);
    assert_eq!(ozon.dispatch().await.unwrap(), DispatchStats::default());
    sim.stop().await;
}

/// A ship whose answer is lost (applied, then a timeout) is retried; Ozon's
/// `POSTING_ALREADY_SHIPPED` then counts as done, and the label is queued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ship_with_a_lost_answer_is_done_on_retry() {
    use crate::sim::ozon::{start, SimConfig};
    let sim = start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let (dir, pool) = db();
    let mut cfg = sim_config(dir.path(), sim.url());
    cfg.ozon.timeout_secs = 1;
    let ozon = Ozon::new(std::sync::Arc::new(cfg), pool.clone())
        .unwrap()
        .unwrap();
    let ctl = |path: &str, body: Value| sim_ctl(sim.url(), path.to_string(), body);
    ctl(
        "/sim/products",
        json!([{"offer_id": "ART-1", "name": "Кроссовки", "price": "1390"}]),
    )
    .await;
    let p = ctl(
        "/sim/postings",
        json!({"products": [{"offer_id": "ART-1", "quantity": 1, "price": "1390"}]}),
    )
    .await;
    let posting = p["posting_number"].as_str().unwrap().to_string();
    assert_eq!(ozon.poll_postings().await.unwrap().created, 1);
    {
        let mut c = pool.get().unwrap();
        let n: Option<String> = ozon_postings::table
            .find(&posting)
            .select(ozon_postings::order_number)
            .first(&mut c)
            .unwrap();
        ostore::set_status(&mut c, &n.unwrap(), Status::ReadyToShip, Source::OneC, "1C").unwrap();
    }
    assert_eq!(ozon.dispatch().await.unwrap().ship, 1);
    ctl(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": true}),
    )
    .await;
    let ship = crate::relay::Relay::new(
        pool.clone(),
        crate::relay::Policy {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_millis(500),
            ..Default::default()
        },
        vec![std::sync::Arc::new(ShipHandler { ozon: ozon.clone() })],
    );
    ship.drain().await.unwrap();
    let state = || {
        let mut c = pool.get().unwrap();
        outbox::table
            .filter(outbox::kind.eq(KIND_SHIP))
            .select((outbox::state, outbox::attempts))
            .first::<(String, i32)>(&mut c)
            .unwrap()
    };
    assert_eq!(state(), ("failed".to_string(), 1), "the answer was lost");
    assert_eq!(sim.sim.stats()["ships"][&posting], 1, "but Ozon shipped");
    ctl("/sim/faults", json!({})).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    ship.drain().await.unwrap();
    assert_eq!(state(), ("done".to_string(), 2));
    assert_eq!(sim.sim.stats()["ships"][&posting], 1);
    let mut c = pool.get().unwrap();
    let labels: i64 = outbox::table
        .filter(outbox::kind.eq(KIND_LABEL))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(labels, 1);
    let kinds: Vec<String> = order_events::table
        .select(order_events::kind)
        .load(&mut c)
        .unwrap();
    assert!(kinds.iter().any(|k| k == "ozon_ship_error"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "ozon_shipped").count(), 1);
    drop(c);
    sim.stop().await;
}

/// The state a SIGKILL during the ships leaves (crash suite, seed 1016): 1C's `Готов к отгрузке`
/// committed, the `ozon.ship` messages claimed by the dead worker (`in_flight` under its lease),
/// one of them already sent to Ozon and its answer never recorded. The restarted obmen queues no
/// second ship, leaves the claims alone while the lease holds, then sends each posting once: the
/// unsent one ships, the sent one counts as done on `POSTING_ALREADY_SHIPPED`; one
/// `ozon_shipped` event and one label message per posting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ships_claimed_by_a_killed_worker_go_out_once_after_the_lease() {
    use crate::sim::ozon::{start, SimConfig};
    let sim = start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let (dir, pool) = db();
    let mut cfg = sim_config(dir.path(), sim.url());
    cfg.ozon.timeout_secs = 2;
    let ozon = Ozon::new(std::sync::Arc::new(cfg), pool.clone())
        .unwrap()
        .unwrap();
    let ctl = |path: &str, body: Value| sim_ctl(sim.url(), path.to_string(), body);
    ctl(
        "/sim/products",
        json!([{"offer_id": "ART-1", "name": "Кроссовки", "price": "1390"}]),
    )
    .await;
    let mut postings = Vec::new();
    for _ in 0..2 {
        let p = ctl(
            "/sim/postings",
            json!({"products": [{"offer_id": "ART-1", "quantity": 1, "price": "1390"}]}),
        )
        .await;
        postings.push(p["posting_number"].as_str().unwrap().to_string());
    }
    assert_eq!(ozon.poll_postings().await.unwrap().created, 2);
    {
        let mut c = pool.get().unwrap();
        for p in &postings {
            let n: Option<String> = ozon_postings::table
                .find(p)
                .select(ozon_postings::order_number)
                .first(&mut c)
                .unwrap();
            ostore::set_status(&mut c, &n.unwrap(), Status::ReadyToShip, Source::OneC, "1C")
                .unwrap();
        }
    }
    assert_eq!(ozon.dispatch().await.unwrap().ship, 2);

    // The process that is killed: claims both, sends the second, dies before recording.
    let lease = Duration::from_millis(800);
    let claimed = {
        let mut c = pool.get().unwrap();
        crate::relay::store::claim(&mut c, KIND_SHIP, 10, "killed-worker", lease).unwrap()
    };
    assert_eq!(claimed.len(), 2);
    let handler: std::sync::Arc<dyn crate::relay::Handler> =
        std::sync::Arc::new(ShipHandler { ozon: ozon.clone() });
    let sent: Vec<Message> = claimed
        .into_iter()
        .filter(|m| m.key == postings[1])
        .collect();
    let outcomes = handler.deliver(sent).await;
    assert!(matches!(outcomes[0].kind, OutcomeKind::Done));
    assert_eq!(sim.sim.stats()["ships"][&postings[1]], 1);

    // The restarted process.
    assert_eq!(ozon.dispatch().await.unwrap(), DispatchStats::default());
    let relay = crate::relay::Relay::new(pool.clone(), Default::default(), vec![handler]);
    assert_eq!(
        relay.drain().await.unwrap(),
        0,
        "the dead worker's lease still holds"
    );
    assert!(sim.sim.stats()["ships"][&postings[0]].is_null());
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    assert_eq!(relay.drain().await.unwrap(), 2);
    assert_eq!(ozon.dispatch().await.unwrap(), DispatchStats::default());
    let stats = sim.sim.stats();
    let mut c = pool.get().unwrap();
    for p in &postings {
        assert_eq!(stats["ships"][p], 1, "{p} shipped once");
        let states: Vec<String> = outbox::table
            .filter(outbox::key.eq(p))
            .filter(outbox::kind.eq(KIND_SHIP))
            .select(outbox::state)
            .load(&mut c)
            .unwrap();
        assert_eq!(states, ["done"]);
        let labels: i64 = outbox::table
            .filter(outbox::key.eq(p))
            .filter(outbox::kind.eq(KIND_LABEL))
            .count()
            .get_result(&mut c)
            .unwrap();
        assert_eq!(labels, 1);
    }
    let shipped: i64 = order_events::table
        .filter(order_events::kind.eq("ozon_shipped"))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(shipped, 2);
    drop(c);
    sim.stop().await;
}
