//! The DPD SOAP simulator, driven through the real binary (`obmen sim dpd`) with hand-written
//! SOAP (various namespace prefixes), as DPD's own clients would send it.

mod common;

use std::process::Child;
use std::time::Duration;

use obmen::connectors::dpd::xml::{self, Node};
use serde_json::{json, Value};

const NUM: &str = "1001234567";
const KEY: &str = "sim-client-key";

struct Sim {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(extra: &[&str]) -> Sim {
    let (child, url) = common::spawn_named_sim("dpd", extra);
    Sim {
        child,
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

fn auth(key: &str) -> String {
    format!("<auth><clientNumber>{NUM}</clientNumber><clientKey>{key}</clientKey></auth>")
}

/// An envelope with the `soapenv`/`ns` prefixes SoapUI uses.
fn env(op: &str, ns: &str, inner: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="{ns}">
<soapenv:Header/><soapenv:Body><ns:{op}>{inner}</ns:{op}></soapenv:Body></soapenv:Envelope>"#
    )
}

const ORDER2: &str = "http://dpd.ru/ws/order2/2012-04-04";
const TRACING: &str = "http://dpd.ru/ws/tracing/2012-04-04";

fn create_body(key: &str, date: &str, orders: &[(&str, &str, &str)]) -> String {
    // (orderNumberInternal, cargoWeight, receiver city)
    let mut s = format!(
        "<orders>{}<header><datePickup>{date}</datePickup><payer>{NUM}</payer>\
         <senderAddress><name>Склад</name><city>Москва</city><street>Складская</street></senderAddress>\
         <pickupTimePeriod>9-18</pickupTimePeriod></header>",
        auth(key)
    );
    for (n, w, city) in orders {
        s.push_str(&format!(
            "<order><orderNumberInternal>{n}</orderNumberInternal><serviceCode>PCL</serviceCode>\
             <serviceVariant>ДД</serviceVariant><cargoNumPack>1</cargoNumPack><cargoWeight>{w}</cargoWeight>\
             <cargoRegistered>false</cargoRegistered><cargoCategory>Товары</cargoCategory>\
             <receiverAddress><name>Иванов</name><city>{city}</city><street>Тверская</street><house>1</house></receiverAddress></order>"
        ));
    }
    s.push_str("</orders>");
    env("createOrder", ORDER2, &s)
}

fn status_body(n: &str, date: &str) -> String {
    env(
        "getOrderStatus",
        ORDER2,
        &format!(
            "<orderStatus>{}<order><orderNumberInternal>{n}</orderNumberInternal><datePickup>{date}</datePickup></order></orderStatus>",
            auth(KEY)
        ),
    )
}

/// (HTTP status, the first element of the SOAP Body).
async fn soap(sim: &Sim, service: &str, body: String) -> (u16, Node) {
    let r = sim
        .http
        .post(format!("{}/services/{service}", sim.url))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let root = xml::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, xml::body_element(&root).unwrap().clone())
}

/// The `return` elements as (orderNumberInternal, orderNum, status, errorMessage).
fn returns(n: &Node) -> Vec<(String, String, String, String)> {
    n.all("return")
        .map(|r| {
            (
                r.str("orderNumberInternal").to_string(),
                r.str("orderNum").to_string(),
                r.str("status").to_string(),
                r.str("errorMessage").to_string(),
            )
        })
        .collect()
}

async fn control(sim: &Sim, path: &str, body: Value) -> Value {
    let r = sim
        .http
        .post(format!("{}{path}", sim.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn get(sim: &Sim, path: &str) -> (u16, Value) {
    let r = sim
        .http
        .get(format!("{}{path}", sim.url))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn wsdl_auth_and_bad_requests() {
    let sim = spawn(&[]);
    let r = sim
        .http
        .get(format!("{}/services/order2?wsdl", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let w = r.text().await.unwrap();
    for op in ["createOrder", "getOrderStatus", "cancelOrder"] {
        assert!(w.contains(&format!("name=\"{op}\"")), "{op}: {w}");
    }
    let w = sim
        .http
        .get(format!("{}/services/tracing?wsdl", sim.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(w.contains("getStatesByClientOrder") && w.contains(TRACING));
    let r = sim
        .http
        .post(format!("{}/services/geography", sim.url))
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Wrong key → SOAP fault no-auth, nothing created.
    let (s, f) = soap(
        &sim,
        "order2",
        create_body("wrong", "2026-11-25", &[("A1", "1", "Москва")]),
    )
    .await;
    assert_eq!((s, f.name.as_str()), (500, "Fault"));
    assert_eq!(f.find("code").unwrap().text, "no-auth");
    assert!(f.str("faultcode").ends_with("Client"));
    // Missing auth too.
    let (s, f) = soap(
        &sim,
        "order2",
        status_body("A1", "2026-11-25").replace(&auth(KEY), ""),
    )
    .await;
    assert_eq!((s, f.find("code").unwrap().text.as_str()), (500, "no-auth"));
    // Not XML, an operation of another service, a missing wrapper.
    let (s, f) = soap(&sim, "order2", "<soapenv:Envelope".into()).await;
    assert_eq!(
        (s, f.find("code").unwrap().text.as_str()),
        (500, "invalid-request")
    );
    let (s, f) = soap(
        &sim,
        "order2",
        env(
            "getStatesByClientOrder",
            TRACING,
            &format!("<request>{}</request>", auth(KEY)),
        ),
    )
    .await;
    assert_eq!(
        (s, f.find("code").unwrap().text.as_str()),
        (500, "unknown-operation")
    );
    let (s, f) = soap(&sim, "order2", env("createOrder", ORDER2, &auth(KEY))).await;
    assert_eq!(
        (s, f.find("code").unwrap().text.as_str()),
        (500, "invalid-request")
    );

    let (_, stats) = get(&sim, "/sim/stats").await;
    assert_eq!(stats["auth_failures"], 2);
    assert_eq!(stats["orders_created"], json!({}));
}

#[tokio::test]
async fn pending_orders_get_a_number_after_the_configured_polls() {
    let sim = spawn(&["--pending-polls", "1"]);
    let date = "2026-11-25";
    let (s, r) = soap(
        &sim,
        "order2",
        create_body(
            KEY,
            date,
            &[("P-1", "2.5", "Москва"), ("P-2", "1", "Казань")],
        ),
    )
    .await;
    assert_eq!((s, r.name.as_str()), (200, "createOrderResponse"));
    let rs = returns(&r);
    assert_eq!(rs.len(), 2);
    assert_eq!(
        (rs[0].0.as_str(), rs[0].2.as_str()),
        ("P-1", "OrderPending")
    );
    assert_eq!(rs[0].1, "");
    assert_eq!(
        (rs[1].0.as_str(), rs[1].2.as_str()),
        ("P-2", "OrderPending")
    );

    let (_, r) = soap(&sim, "order2", status_body("P-1", date)).await;
    assert_eq!(r.name, "getOrderStatusResponse");
    assert_eq!(returns(&r)[0].2, "OrderPending");
    let (_, r) = soap(&sim, "order2", status_body("P-1", date)).await;
    let (n, num, st, _) = returns(&r).remove(0);
    assert_eq!((n.as_str(), st.as_str()), ("P-1", "OK"));
    assert!(
        num.starts_with("RU") && num[2..].chars().all(|c| c.is_ascii_digit()),
        "{num}"
    );
    // Stable afterwards; another order gets another number.
    let (_, r) = soap(&sim, "order2", status_body("P-1", date)).await;
    assert_eq!(returns(&r)[0].1, num);
    soap(&sim, "order2", status_body("P-2", date)).await;
    let (_, r) = soap(&sim, "order2", status_body("P-2", date)).await;
    let other = returns(&r).remove(0);
    assert_eq!(other.2, "OK");
    assert_ne!(other.1, num);

    // Unknown number, or the right number with another pickup date → not found.
    let (_, r) = soap(&sim, "order2", status_body("NOPE", date)).await;
    let (_, _, st, err) = returns(&r).remove(0);
    assert_eq!(st, "OrderError");
    assert!(err.contains("not found"), "{err}");
    let (_, r) = soap(&sim, "order2", status_body("P-1", "2026-11-26")).await;
    assert_eq!(returns(&r)[0].2, "OrderError");

    // A re-create is a duplicate, not a second order.
    let (_, r) = soap(
        &sim,
        "order2",
        create_body(KEY, date, &[("P-1", "2.5", "Москва")]),
    )
    .await;
    let (_, dnum, st, err) = returns(&r).remove(0);
    assert_eq!(st, "OrderDuplicate");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(dnum, num);

    let (_, stats) = get(&sim, "/sim/stats").await;
    assert_eq!(stats["orders_created"]["P-1"], 2);
    assert_eq!(stats["orders_created"]["P-2"], 1);
    assert_eq!(stats["duplicates"], 1);
    assert_eq!(stats["calls"]["createOrder"], 2);
    assert_eq!(stats["calls"]["getOrderStatus"], 7);
    let (_, orders) = get(&sim, "/sim/orders").await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn validation_refuses_each_bad_order_with_its_reasons() {
    let sim = spawn(&[]);
    let (_, r) = soap(
        &sim,
        "order2",
        create_body(
            KEY,
            "2026-11-25",
            &[
                ("GOOD-1", "1", "Москва"),
                ("W-0", "0", "Москва"),
                ("NO-CITY", "1", ""),
                ("123456789012345678901", "1", "Москва"),
                ("W-X", "abc", "Москва"),
            ],
        ),
    )
    .await;
    let rs = returns(&r);
    assert_eq!(rs.len(), 5);
    assert_eq!(rs[0].2, "OrderPending");
    for (i, part) in [
        (1, "cargoWeight"),
        (2, "receiverAddress.city"),
        (3, "longer than 20"),
        (4, "cargoWeight"),
    ] {
        assert_eq!(rs[i].2, "OrderError", "{:?}", rs[i]);
        assert!(rs[i].3.contains(part), "{part}: {:?}", rs[i]);
    }
    assert!(!rs[1].3.contains("city"), "{:?}", rs[1]);
    // A bad pickup date refuses every order of the request.
    let (_, r) = soap(
        &sim,
        "order2",
        create_body(KEY, "25.11.2026", &[("D-1", "1", "Москва")]),
    )
    .await;
    let (_, _, st, err) = returns(&r).remove(0);
    assert_eq!(st, "OrderError");
    assert!(err.contains("datePickup"), "{err}");
    let (_, orders) = get(&sim, "/sim/orders").await;
    let names: Vec<_> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_number_internal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["GOOD-1"]);
}

#[tokio::test]
async fn ok_mode_cancel_tracing_and_reset() {
    let sim = spawn(&["--immediate", "--client-key", "k2"]);
    let key = "k2";
    let date = "2026-11-25";
    let (_, r) = soap(
        &sim,
        "order2",
        create_body(key, date, &[("T-1", "3", "Тула")]),
    )
    .await;
    let (_, num, st, _) = returns(&r).remove(0);
    assert_eq!(st, "OK");
    assert!(num.starts_with("RU"));

    // Tracing by client order, with an unprefixed default namespace this time.
    let tr = |inner: String| {
        format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>
<getStatesByClientOrder xmlns="{TRACING}"><request>{inner}</request></getStatesByClientOrder></Body></Envelope>"#
        )
    };
    let auth2 =
        format!("<auth><clientNumber>{NUM}</clientNumber><clientKey>{key}</clientKey></auth>");
    let (s, r) = soap(
        &sim,
        "tracing",
        tr(format!("{auth2}<clientOrderNr>T-1</clientOrderNr>")),
    )
    .await;
    assert_eq!(
        (s, r.name.as_str()),
        (200, "getStatesByClientOrderResponse")
    );
    let states: Vec<_> = r.child("return").unwrap().all("states").collect();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].str("newState"), "NewOrderByClient");
    assert_eq!(states[0].str("dpdOrderNr"), num);
    assert_eq!(states[0].str("clientOrderNr"), "T-1");
    assert_eq!(states[0].str("transitionTime").len(), 19);

    control(&sim, "/sim/orders/T-1/state", json!({"state": "OnRoad"})).await;
    control(
        &sim,
        "/sim/orders/T-1/state",
        json!({"state": "Delivering"}),
    )
    .await;
    let by_dpd = env(
        "getStatesByDPDOrder",
        TRACING,
        &format!("<request>{auth2}<dpdOrderNr>{num}</dpdOrderNr></request>"),
    );
    let (_, r) = soap(&sim, "tracing", by_dpd).await;
    let names: Vec<_> = r
        .child("return")
        .unwrap()
        .all("states")
        .map(|s| s.str("newState").to_string())
        .collect();
    assert_eq!(names, ["NewOrderByClient", "OnRoad", "Delivering"]);
    let r = sim
        .http
        .post(format!("{}/sim/orders/NOPE/state", sim.url))
        .json(&json!({"state": "OnRoad"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Cancel: once, again, unknown.
    let cancel = |n: &str| {
        env(
            "cancelOrder",
            ORDER2,
            &format!("<orders>{auth2}<cancel><orderNumberInternal>{n}</orderNumberInternal></cancel></orders>"),
        )
    };
    let (_, r) = soap(&sim, "order2", cancel("T-1")).await;
    assert_eq!(r.name, "cancelOrderResponse");
    assert_eq!(returns(&r)[0].2, "Canceled");
    let (_, r) = soap(&sim, "order2", cancel("T-1")).await;
    assert_eq!(returns(&r)[0].2, "CanceledPreviously");
    let (_, r) = soap(&sim, "order2", cancel("NOPE")).await;
    assert_eq!(returns(&r)[0].2, "NotFound");
    let st = env(
        "getOrderStatus",
        ORDER2,
        &format!("<orderStatus>{auth2}<order><orderNumberInternal>T-1</orderNumberInternal></order></orderStatus>"),
    );
    let (_, r) = soap(&sim, "order2", st).await;
    assert_eq!(returns(&r)[0].2, "OrderCancelled");

    // Config switch back to pending.
    let cfg = control(
        &sim,
        "/sim/config",
        json!({"mode": "pending", "pending_polls": 0}),
    )
    .await;
    assert_eq!(cfg["mode"], "pending");
    let (_, r) = soap(
        &sim,
        "order2",
        create_body(key, date, &[("T-2", "1", "Тула")]),
    )
    .await;
    assert_eq!(returns(&r)[0].2, "OrderPending");

    control(&sim, "/sim/reset", json!({})).await;
    let (_, orders) = get(&sim, "/sim/orders").await;
    assert_eq!(orders["orders"], json!([]));
    let (_, stats) = get(&sim, "/sim/stats").await;
    assert_eq!(stats["calls"], json!({}));
    let (_, cfg) = get(&sim, "/sim/config").await;
    assert_eq!(cfg["mode"], "pending");
}

#[tokio::test]
async fn faults_500_and_timeouts_with_and_without_applying() {
    let sim = spawn(&["--immediate"]);
    let date = "2026-11-25";
    control(&sim, "/sim/faults", json!({"rate_500": 1.0})).await;
    let r = sim
        .http
        .post(format!("{}/services/order2", sim.url))
        .body(create_body(KEY, date, &[("F-1", "1", "Москва")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert!(!r.text().await.unwrap().contains("Fault"));
    assert_eq!(get(&sim, "/sim/orders/F-1").await.0, 404);

    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    control(
        &sim,
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": true}),
    )
    .await;
    let e = short
        .post(format!("{}/services/order2", sim.url))
        .body(create_body(KEY, date, &[("F-2", "1", "Москва")]))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout());
    let (s, o) = get(&sim, "/sim/orders/F-2").await;
    assert_eq!(s, 200);
    assert!(o["order_num"].as_str().unwrap().starts_with("RU"));

    control(
        &sim,
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": false}),
    )
    .await;
    let e = short
        .post(format!("{}/services/order2", sim.url))
        .body(create_body(KEY, date, &[("F-3", "1", "Москва")]))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(get(&sim, "/sim/orders/F-3").await.0, 404);

    // Faults off: the lookup of F-2 finds it, a re-create is a duplicate.
    control(&sim, "/sim/faults", json!({})).await;
    let (_, r) = soap(&sim, "order2", status_body("F-2", date)).await;
    assert_eq!(returns(&r)[0].2, "OK");
    let (_, stats) = get(&sim, "/sim/stats").await;
    assert_eq!(stats["faults"]["500"], 1);
    assert_eq!(stats["faults"]["timeout"], 2);
    assert_eq!(stats["orders_created"], json!({"F-2": 1}));
}
