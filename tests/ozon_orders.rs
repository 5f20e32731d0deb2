//! Ozon FBS orders end to end: the real `obmen` against the real simulator (`obmen sim ozon`).
//! A posting becomes an order, reaches 1C, 1C's "ready to ship" ships it on Ozon exactly once
//! (also with faults), the label is stored and its link reaches 1C; push notifications.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

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

fn sim(extra: &[&str]) -> Sim {
    let (child, url) = common::spawn_sim(extra);
    Sim {
        child,
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

impl Sim {
    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An Ozon API call; retried while faults make it fail.
    async fn call_until_ok(&self, path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .post(format!("{}{path}", self.url))
                .header("Client-Id", "123456")
                .header("Api-Key", "sim-api-key")
                .json(&body)
                .send()
                .await;
            if let Ok(r) = r {
                if r.status().as_u16() == 200 {
                    if let Ok(v) = r.json::<Value>().await {
                        return v;
                    }
                }
            }
            assert!(Instant::now() < deadline, "{path} never answered 200");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ships(&self, posting: &str) -> u64 {
        self.get("/sim/stats").await["ships"][posting]
            .as_u64()
            .unwrap_or(0)
    }
}

fn obmen_with(sim: &Sim) -> Server {
    obmen_env(sim, &[])
}

fn obmen_env(sim: &Sim, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("OBMEN_OZON_BASE_URL", sim.url.as_str()),
        ("OBMEN_OZON_CLIENT_ID", "123456"),
        ("OBMEN_OZON_API_KEY", "sim-api-key"),
        ("OBMEN_OZON_WAREHOUSE_ID", "22142605386000"),
        ("OBMEN_OZON_ORDERS_POLL", "*/1 * * * * *"),
        ("OBMEN_OZON_TIMEOUT_SECS", "1"),
        ("OBMEN_OZON_LABEL_RETRY_SECS", "1"),
        ("OBMEN_RELAY_BACKOFF_MS", "100"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

async fn wait_until<F, Fut>(what: &str, secs: u64, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The ozon order of a posting, once obmen has it.
async fn ozon_order(s: &Server, posting: &str) -> Option<Value> {
    let (st, v) = s.api("/api/v1/orders?channel=ozon").await;
    assert_eq!(st, 200, "{v}");
    v.as_array()?
        .iter()
        .find(|o| o["external_id"] == posting)
        .cloned()
}

/// `mode=query` then `mode=success`, as 1C does; returns the query document.
async fn query_and_confirm(s: &Server) -> String {
    let cookie = s.login("sale").await;
    let r = s.get("type=sale&mode=query", None, Some(&cookie)).await;
    assert_eq!(r.status, 200);
    let ok = s.get("type=sale&mode=success", None, Some(&cookie)).await;
    assert_eq!(ok.first(), "success", "{}", ok.body);
    r.body
}

/// What UT11 sends back for an order: its number, posted, and a status (no lines: unchanged).
fn onec_status_doc(number: &str, status: &str) -> Vec<u8> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T10:00:00\">\r\n\
<Документ><Ид>7d1c2a9e-0000-11e4-a522-0050569c5934</Ид><Номер>{number}</Номер><Дата>2026-11-23</Дата>\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>\
<ЗначенияРеквизитов>\
<ЗначениеРеквизита><Наименование>Номер по 1С</Наименование><Значение>ЗК-000777</Значение></ЗначениеРеквизита>\
<ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>\
<ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>{status}</Значение></ЗначениеРеквизита>\
</ЗначенияРеквизитов></Документ>\r\n</КоммерческаяИнформация>\r\n"
    );
    xml.into_bytes()
}

async fn send_status(s: &Server, number: &str, status: &str) {
    let cookie = s.login("sale").await;
    let init = s.get("type=sale&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body.split('\n').count(), 2, "init: {}", init.body);
    let name = "orders-7d1c2a9e-1111-2222-3333-444455556666_1.xml";
    let r = s
        .post(
            &format!("type=sale&mode=file&filename={name}"),
            onec_status_doc(number, status),
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

fn requisite(o: &Value, name: &str) -> Option<String> {
    o["requisites"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["value"].as_str())
        .map(str::to_string)
}

async fn round_trip(faults: bool, label_flow: &str) {
    let sim = sim(&["--label-delay-secs", "2"]);
    sim.control(
        "/sim/products",
        json!([{"offer_id": "DRILL-1", "name": "Дрель", "price": "1200"}]),
    )
    .await;
    if faults {
        sim.control(
            "/sim/faults",
            json!({"rate_429": 0.1, "rate_500": 0.1, "rate_timeout": 0.1,
                   "timeout_ms": 1500, "apply_before_timeout": true, "seed": 42}),
        )
        .await;
    }
    let s = obmen_env(&sim, &[("OBMEN_OZON_LABEL_FLOW", label_flow)]);
    let created = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "DRILL-1", "quantity": 2, "price": "1200"}]}),
        )
        .await;
    let posting = created["posting_number"]
        .as_str()
        .or_else(|| created["result"]["posting_number"].as_str())
        .unwrap_or_else(|| panic!("no posting number in {created}"))
        .to_string();

    // The posting becomes an order.
    let o = wait_until("the order", 30, || ozon_order(&s, &posting)).await;
    let number = o["number"].as_str().unwrap().to_string();
    assert_eq!(o["status"], "new");
    assert_eq!(o["lines"][0]["article"], "DRILL-1", "{o}");
    assert_eq!(o["lines"][0]["quantity"], 2.0);
    assert_eq!(o["lines"][0]["price"], 1200.0);
    assert_eq!(o["payment"]["paid"], true);

    // It reaches 1C.
    let q = query_and_confirm(&s).await;
    assert!(q.contains(&format!("<Номер>{number}</Номер>")), "{q}");
    assert!(q.contains(&posting), "the posting number is in the comment");

    // 1C: ready to ship → shipped on Ozon once, label stored, its link back to 1C.
    send_status(&s, &number, "Готов к отгрузке").await;
    wait_until("the ship on Ozon", 60, || async {
        (sim.ships(&posting).await >= 1).then_some(Value::Null)
    })
    .await;
    let o = wait_until("the label requisite", 90, || async {
        let (_, o) = s.api(&format!("/api/v1/orders/{number}")).await;
        requisite(&o, "Этикетка Ozon").map(|_| o)
    })
    .await;
    let link = requisite(&o, "Этикетка Ozon").unwrap();
    let path = &link[link.find("/documents/").expect("a documents link")..];
    let pdf = s
        .client
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status().as_u16(), 200);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    // A guessed token gets nothing.
    let mut parts: Vec<&str> = path.split('/').collect();
    parts[3] = "0000";
    let r = s
        .client
        .get(format!("{}{}", s.base, parts.join("/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    let q = query_and_confirm(&s).await;
    assert!(q.contains("Этикетка Ozon"), "{q}");
    assert!(q.contains(path), "the link goes to 1C: {q}");

    let v = sim
        .call_until_ok(
            "/v3/posting/fbs/get",
            json!({"posting_number": posting, "with": {}}),
        )
        .await;
    assert_eq!(v["result"]["status"], "awaiting_deliver", "{v}");
    // Polls and the dispatcher keep running: still exactly one ship.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim.ships(&posting).await, 1);
    let stats = sim.get("/sim/stats").await;
    let endpoint = if label_flow == "task" {
        "/v1/posting/fbs/package-label/get"
    } else {
        "/v2/posting/fbs/package-label"
    };
    assert!(
        stats["calls"][endpoint].as_u64().unwrap_or(0) > 0,
        "the {label_flow} label flow was not used: {stats}"
    );
    if !faults && label_flow == "sync" {
        // Asked right after the ship, the label was refused as not ready (2 s delay) and asked
        // again later without counting a failed attempt.
        assert!(
            stats["calls"][endpoint].as_u64().unwrap_or(0) >= 2,
            "the label was never refused as not ready: {stats}"
        );
        let (_, m) = s.api("/api/v1/outbox?kind=ozon.label").await;
        let msgs = m["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "{m}");
        assert_eq!(msgs[0]["state"], "done", "{m}");
        assert_eq!(msgs[0]["attempts"], 1, "{m}");
    }
    if faults {
        let injected: u64 = ["fault_429", "fault_500", "fault_timeout"]
            .iter()
            .filter_map(|k| stats["rejected"][k].as_u64())
            .sum();
        assert!(injected > 0, "no fault was injected: {stats}");
    }
    let (_, o) = s.api(&format!("/api/v1/orders/{number}")).await;
    let kinds: Vec<&str> = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "ozon_shipped").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posting_is_taken_in_shipped_once_and_its_label_reaches_1c() {
    round_trip(false, "sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_label_task_flow_stores_the_label_too() {
    round_trip(false, "task").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_faults_the_posting_is_still_shipped_exactly_once() {
    round_trip(true, "sync").await;
}

async fn push(s: &Server, body: &str) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}/ozon/push", s.base))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_ping_duplicates_and_bad_bodies() {
    let sim = sim(&[]);
    let s = obmen_with(&sim);
    let (st, v) = push(
        &s,
        r#"{"message_type":"TYPE_PING","time":"2019-08-24T14:15:22Z"}"#,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["name"], "obmen");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).is_ok(),
        "{v}"
    );

    sim.control(
        "/sim/products",
        json!([{"offer_id": "PUSH-1", "name": "Шнурки", "price": "10"}]),
    )
    .await;
    let created = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "PUSH-1", "quantity": 1, "price": "10"}]}),
        )
        .await;
    let posting = created["posting_number"].as_str().unwrap().to_string();
    let body = json!({"message_type": "TYPE_NEW_POSTING", "posting_number": posting,
        "products": [{"sku": 1, "quantity": 1}], "in_process_at": "2026-11-23T10:00:00Z",
        "warehouse_id": 22142605386000i64, "seller_id": 15})
    .to_string();
    for _ in 0..2 {
        let (st, v) = push(&s, &body).await;
        assert_eq!((st, &v), (200, &json!({"result": true})));
    }
    // One fetch for the two identical notifications, and the order.
    let (_, m) = s.api("/api/v1/outbox?kind=ozon.posting_fetch").await;
    let msgs = m["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{m}");
    assert_eq!(msgs[0]["key"], posting);
    wait_until("the pushed order", 30, || ozon_order(&s, &posting)).await;

    let (st, v) = push(&s, "{not json").await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "ERROR_PARAMETER_VALUE_MISSED", "{v}");
    assert!(v["error"].get("details").is_some());

    // Without the connector there is no push endpoint.
    let off = Server::start();
    let (st, _) = push(
        &off,
        r#"{"message_type":"TYPE_PING","time":"2019-08-24T14:15:22Z"}"#,
    )
    .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_in_1c_cancels_the_posting_on_ozon() {
    let sim = sim(&[]);
    sim.control(
        "/sim/products",
        json!([{"offer_id": "SAW-1", "name": "Пила", "price": "500"}]),
    )
    .await;
    let s = obmen_with(&sim);
    let created = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "SAW-1", "quantity": 1, "price": "500"}]}),
        )
        .await;
    let posting = created["posting_number"].as_str().unwrap().to_string();
    let o = wait_until("the order", 30, || ozon_order(&s, &posting)).await;
    let number = o["number"].as_str().unwrap().to_string();
    query_and_confirm(&s).await;
    send_status(&s, &number, "Отменен").await;
    wait_until("the cancel on Ozon", 30, || async {
        let v = sim
            .call_until_ok(
                "/v3/posting/fbs/get",
                json!({"posting_number": posting, "with": {}}),
            )
            .await;
        (v["result"]["status"] == "cancelled").then_some(v)
    })
    .await;
    let (_, o) = s.api(&format!("/api/v1/orders/{number}")).await;
    assert_eq!(o["status"], "cancelled");
    let kinds: Vec<&str> = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let wanted = "ozon_cancelled";
    wait_until("the cancel on the timeline", 10, || async {
        let (_, o) = s.api(&format!("/api/v1/orders/{number}")).await;
        o["timeline"]
            .as_array()?
            .iter()
            .any(|e| e["kind"] == wanted)
            .then_some(Value::Null)
    })
    .await;
    assert!(!kinds.contains(&"ozon_shipped"), "{kinds:?}");
    assert_eq!(sim.ships(&posting).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_ozon_bring_new_and_cancelled_postings() {
    let sim = sim(&[]);
    sim.control(
        "/sim/products",
        json!([{"offer_id": "HAMMER-1", "name": "Молоток", "price": "300"}]),
    )
    .await;
    // Polling once a year: what arrives, arrives by push.
    let s = obmen_env(&sim, &[("OBMEN_OZON_ORDERS_POLL", "0 0 0 1 1 *")]);
    sim.control(
        "/sim/config",
        json!({"push_url": format!("{}/ozon/push", s.base)}),
    )
    .await;
    let created = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "HAMMER-1", "quantity": 1, "price": "300"}]}),
        )
        .await;
    let posting = created["posting_number"].as_str().unwrap().to_string();
    let o = wait_until("the pushed order", 30, || ozon_order(&s, &posting)).await;
    let number = o["number"].as_str().unwrap().to_string();
    sim.control(
        &format!("/sim/postings/{posting}/status"),
        json!({"status": "cancelled"}),
    )
    .await;
    wait_until("the cancellation by push", 30, || async {
        let (_, o) = s.api(&format!("/api/v1/orders/{number}")).await;
        (o["status"] == "cancelled").then_some(o)
    })
    .await;
    let (_, m) = s.api("/api/v1/outbox?kind=ozon.posting_fetch").await;
    let msgs = m["messages"].as_array().unwrap();
    assert!(
        !msgs.is_empty()
            && msgs
                .iter()
                .all(|x| x["key"] == posting && x["state"] == "done"),
        "{m}"
    );
    // Ozon cancelled it: nothing is sent back to cancel it again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, m) = s.api("/api/v1/outbox?kind=ozon.cancel").await;
    assert_eq!(m["messages"].as_array().unwrap().len(), 0, "{m}");
}
