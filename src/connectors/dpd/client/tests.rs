//! The client against the DPD simulator started in-process, with a temporary SQLite journal.

use serde_json::{json, Value};

use super::*;
use crate::sim::dpd::{self as sim, Mode, SimConfig, SimHandle};

const NUMBER: &str = "1001234567";
const KEY: &str = "test-key";

struct Env {
    _dir: tempfile::TempDir,
    pool: DbPool,
    sim: SimHandle,
    http: reqwest::Client,
}

async fn env(mode: Mode, pending_polls: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
    let sim = sim::start(
        SimConfig {
            client_number: NUMBER.into(),
            client_key: KEY.into(),
            mode,
            pending_polls,
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    Env {
        _dir: dir,
        pool,
        sim,
        http: reqwest::Client::new(),
    }
}

impl Env {
    fn client(&self, timeout: Duration) -> Arc<DpdClient> {
        DpdClient::new(&self.sim.url(), NUMBER, KEY, timeout, self.pool.clone())
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    fn journal(&self) -> Vec<journal::CallRow> {
        let mut c = self.pool.get().unwrap();
        let mut rows = journal::list_calls(&mut c, Some(TARGET), None, 100).unwrap();
        rows.reverse();
        rows
    }
}

fn order(n: &str) -> DpdOrder {
    DpdOrder {
        number_internal: n.into(),
        date_pickup: "2026-11-25".into(),
        service_code: "PCL".into(),
        service_variant: "ДД".into(),
        weight_kg: 1.25,
        packages: 1,
        value: Some(2500.0),
        receiver_name: "Иванов & Сын <ООО>".into(),
        receiver_phone: "+79990001122".into(),
        receiver_city: "Москва".into(),
        receiver_street: "Тверская".into(),
        receiver_house: "1".into(),
        sender: DpdAddress {
            name: "Склад".into(),
            city: "Москва".into(),
            street: "Складская".into(),
            house: "5".into(),
            contact_fio: "Петров".into(),
            contact_phone: "+79990000000".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn pending_then_polls_then_ok_and_tracing() {
    let env = env(Mode::Pending, 2).await;
    let c = env.client(Duration::from_secs(5));
    let o = order("ORD-1");
    let r = c.create_order(&o).await.unwrap();
    assert_eq!(r.status, DpdStatus::Pending);
    assert_eq!(r.order_num, None);
    for _ in 0..2 {
        let r = c.order_status("ORD-1", &o.date_pickup).await.unwrap();
        assert_eq!(r.status, DpdStatus::Pending);
    }
    let r = c.order_status("ORD-1", &o.date_pickup).await.unwrap();
    assert_eq!(r.status, DpdStatus::Ok);
    let num = r.order_num.clone().unwrap();
    assert!(num.starts_with("RU") && num.len() == 11, "{num}");
    // Asked again: the same number.
    let again = c.order_status("ORD-1", &o.date_pickup).await.unwrap();
    assert_eq!(again.order_num.as_deref(), Some(num.as_str()));

    let st = c.states("ORD-1").await.unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, "NewOrderByClient");
    assert_eq!(st[0].dpd_order_nr, num);
    env.control("/sim/orders/ORD-1/state", json!({"state": "Delivering"}))
        .await;
    let st = c.states_by_dpd_order(&num).await.unwrap();
    let names: Vec<_> = st.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(names, ["NewOrderByClient", "Delivering"]);
    assert!(c.states("NO-SUCH").await.unwrap().is_empty());

    // The sim got the receiver name intact through escaping.
    let held = env.sim.sim.order("ORD-1").unwrap();
    assert_eq!(held["receiver_city"], "Москва");
    assert_eq!(held["cargo_weight"], 1.25);

    // Every call journaled, the key masked.
    let rows = env.journal();
    let eps: Vec<_> = rows.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(eps[0], "order2/createOrder");
    assert_eq!(eps.len(), 8, "{eps:?}");
    assert!(rows.iter().all(|r| r.outcome == "ok"));
    let req = rows[0].request.as_deref().unwrap();
    assert!(req.contains("<clientKey>***</clientKey>"), "{req}");
    assert!(!req.contains(KEY));
    env.sim.stop().await;
}

#[tokio::test]
async fn obtain_number_polls_a_pending_order() {
    let env = env(Mode::Pending, 3).await;
    let c = env.client(Duration::from_secs(5));
    let r = c
        .obtain_number(&order("ORD-P"), 10, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(r.status, DpdStatus::Ok);
    assert!(r.order_num.is_some());
    let stats = env.sim.sim.stats();
    assert_eq!(stats["calls"]["createOrder"], 1);
    assert_eq!(stats["calls"]["getOrderStatus"], 4);
    // Too few polls: still pending, not an error.
    let r = c
        .obtain_number(&order("ORD-Q"), 2, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(r.status, DpdStatus::Pending);
    env.sim.stop().await;
}

#[tokio::test]
async fn duplicate_is_reported_and_resolved_to_the_existing_number() {
    let env = env(Mode::Ok, 0).await;
    let c = env.client(Duration::from_secs(5));
    let o = order("ORD-D");
    let first = c.create_order(&o).await.unwrap();
    assert_eq!(first.status, DpdStatus::Ok);
    let num = first.order_num.unwrap();
    let dup = c.create_order(&o).await.unwrap();
    assert_eq!(dup.status, DpdStatus::Duplicate);
    assert!(
        dup.error.as_deref().unwrap().contains("already exists"),
        "{dup:?}"
    );
    let r = c
        .obtain_number(&o, 3, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.order_num.as_deref()),
        (DpdStatus::Ok, Some(num.as_str()))
    );
    let stats = env.sim.sim.stats();
    assert_eq!(stats["duplicates"], 2);
    assert_eq!(stats["orders_created"]["ORD-D"], 3);
    // Another number gets another tracking number.
    let other = c.create_order(&order("ORD-E")).await.unwrap();
    assert_ne!(other.order_num.unwrap(), num);
    env.sim.stop().await;
}

#[tokio::test]
async fn a_timed_out_create_is_looked_up_not_sent_again() {
    let env = env(Mode::Ok, 0).await;
    env.control(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": true}),
    )
    .await;
    let c = env.client(Duration::from_millis(400));
    let o = order("ORD-T");
    let task = {
        let c = c.clone();
        let o = o.clone();
        tokio::spawn(async move { c.obtain_number(&o, 5, Duration::from_millis(200)).await })
    };
    // As soon as the create has been taken in (and will hang), the faults go away.
    for _ in 0..200 {
        if env.sim.sim.stats()["calls"]["createOrder"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.control("/sim/faults", json!({})).await;
    let r = task.await.unwrap().unwrap();
    assert_eq!(r.status, DpdStatus::Ok);
    let num = r.order_num.unwrap();
    assert_eq!(env.sim.sim.order("ORD-T").unwrap()["order_num"], json!(num));
    let stats = env.sim.sim.stats();
    assert_eq!(stats["orders_created"]["ORD-T"], 1, "{stats}");
    assert_eq!(stats["calls"]["createOrder"], 1);
    assert_eq!(stats["duplicates"], 0);
    let rows = env.journal();
    assert_eq!(rows[0].outcome, "retry");
    assert!(rows[0].error.as_deref().unwrap().contains("in time"));
    assert_eq!(rows[1].endpoint, "order2/getOrderStatus");

    // A timeout with nothing applied: the lookup says not found, so the timeout comes back
    // (the caller may create again later) and still nothing was created twice.
    env.control(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": false}),
    )
    .await;
    let task = {
        let c = c.clone();
        tokio::spawn(async move {
            c.obtain_number(&order("ORD-U"), 3, Duration::from_millis(200))
                .await
        })
    };
    for _ in 0..200 {
        if env.sim.sim.stats()["calls"]["createOrder"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.control("/sim/faults", json!({})).await;
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    assert!(!err.not_applied());
    let stats = env.sim.sim.stats();
    assert_eq!(stats["calls"]["createOrder"], 2, "{stats}");
    assert_eq!(stats["calls"]["getOrderStatus"], 2, "{stats}");
    assert!(env.sim.sim.order("ORD-U").is_none());
    let r = c.order_status("ORD-U", "2026-11-25").await.unwrap();
    assert_eq!(r.status, DpdStatus::Error);
    assert!(r.error.unwrap().contains("not found"));
    env.sim.stop().await;
}

#[tokio::test]
async fn validation_errors_come_back_with_the_reasons() {
    let env = env(Mode::Pending, 0).await;
    let c = env.client(Duration::from_secs(5));
    let mut o = order("THIS-NUMBER-IS-FAR-TOO-LONG");
    o.weight_kg = 0.0;
    o.receiver_city = String::new();
    o.date_pickup = "25.11.2026".into();
    let r = c.create_order(&o).await.unwrap();
    assert_eq!(r.status, DpdStatus::Error);
    let msg = r.error.unwrap();
    for part in [
        "longer than 20",
        "receiverAddress.city",
        "cargoWeight",
        "datePickup",
    ] {
        assert!(msg.contains(part), "{part} in {msg}");
    }
    assert!(!msg.contains("receiverAddress.street"), "{msg}");
    assert!(env.sim.sim.order("THIS-NUMBER-IS-FAR-TOO-LONG").is_none());
    env.sim.stop().await;
}

#[tokio::test]
async fn auth_faults_and_server_errors_are_classified() {
    let env = env(Mode::Ok, 0).await;
    let bad = DpdClient::new(
        &env.sim.url(),
        NUMBER,
        "wrong",
        Duration::from_secs(5),
        env.pool.clone(),
    );
    let err = bad.create_order(&order("A-1")).await.unwrap_err();
    assert!(matches!(err, CallError::Auth(_)), "{err:?}");
    assert!(matches!(err.outcome(), OutcomeKind::Wait { .. }));
    assert!(err.not_applied());
    assert!(env.sim.sim.order("A-1").is_none());

    env.control("/sim/faults", json!({"rate_500": 1.0})).await;
    let c = env.client(Duration::from_secs(5));
    let err = c.create_order(&order("A-2")).await.unwrap_err();
    assert!(matches!(err, CallError::Server(500, _)), "{err:?}");
    assert!(matches!(err.outcome(), OutcomeKind::Retry { .. }));
    assert!(!err.not_applied());

    let rows = env.journal();
    assert_eq!(rows[0].outcome, "wait");
    assert_eq!(rows[1].outcome, "retry");
    assert_eq!(rows[1].http_status, Some(500));
    env.sim.stop().await;
}

#[test]
fn answers_are_interpreted_by_local_name() {
    let ok = br#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
      <createOrderResponse xmlns="http://dpd.ru/ws/order2/2012-04-04"><return>
      <orderNumberInternal>X</orderNumberInternal><orderNum>RU1</orderNum><status>OK</status>
      </return></createOrderResponse></soap:Body></soap:Envelope>"#;
    let n = interpret(200, ok, "createOrder").unwrap();
    let r = order_result(pick(&n, "X").unwrap());
    assert_eq!(
        (r.status, r.order_num.as_deref()),
        (DpdStatus::Ok, Some("RU1"))
    );
    assert!(matches!(
        interpret(200, ok, "getOrderStatus"),
        Err(CallError::Malformed(_))
    ));
    assert!(matches!(
        interpret(200, b"<html>oops", "createOrder"),
        Err(CallError::Malformed(_))
    ));
    let f = xml::fault("Client", "invalid-request", "bad");
    match interpret(500, f.as_bytes(), "createOrder") {
        Err(CallError::Fault { code, message }) => {
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("invalid-request", "bad")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        interpret(502, b"bad gateway", "createOrder"),
        Err(CallError::Server(502, _))
    ));
    assert_eq!(
        masked("<a><clientKey>s3cret</clientKey><b/><clientKey>x</clientKey></a>"),
        "<a><clientKey>***</clientKey><b/><clientKey>***</clientKey></a>"
    );
    assert_eq!(num(1.0), "1");
    assert_eq!(num(0.125), "0.125");
}
