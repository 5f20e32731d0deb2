//! Couriers end to end, all real binaries: an order taken in by the API reaches 1C; 1C's
//! `Готов к отгрузке` makes obmen create the CDEK order (`obmen sim cdek`), store its waybill
//! PDF and hand 1C `Зарегистрирован перевозчиком`, the CDEK number and the waybill link;
//! `Удалить заказ на доставку` deletes it, or is refused with CDEK's reason once the parcel
//! moved; DPD (`obmen sim dpd`) gives the tracking number to 1C and to the API. With faults:
//! timeouts mid-create, token expiry, 500s.

mod common;

use std::process::Child;

use common::*;
use serde_json::{json, Value};

struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cdek_sim(args: &[&str]) -> Proc {
    let (c, u) = spawn_cdek_sim(args);
    Proc(c, u)
}

fn dpd_sim(args: &[&str]) -> Proc {
    let (c, u) = spawn_named_sim("dpd", args);
    Proc(c, u)
}

async fn control(base: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn sim_get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn cdek_env(sim: &Proc, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("OBMEN_CDEK_BASE_URL", format!("{}/v2", sim.1)),
        (
            "OBMEN_CDEK_CLIENT_ID",
            "wqGwiQx0gg8mLtiEKsUinjVSICCjtTEP".to_string(),
        ),
        (
            "OBMEN_CDEK_CLIENT_SECRET",
            "RmAmgvSgSl1yirlz9QupbzOJVqhCxcP5".to_string(),
        ),
        ("OBMEN_CDEK_TARIFF_CODE", "137".into()),
        ("OBMEN_CDEK_FROM_LOCATION", "44".into()),
        ("OBMEN_CDEK_TIMEOUT_SECS", "1".into()),
        ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
        ("OBMEN_RELAY_BACKOFF_MAX_SECS", "1".into()),
        ("OBMEN_RELAY_MAX_ATTEMPTS", "50".into()),
    ];
    v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
    v
}

fn start(env: &[(&'static str, String)]) -> Server {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(&e)
}

async fn post_order(s: &Server, body: &Value) -> String {
    let r = s
        .client
        .post(format!("{}/api/v1/orders", s.base))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(st, 201, "{v}");
    v["number"].as_str().unwrap().to_string()
}

fn order_body(ext: &str, method: &str, address: Option<&str>) -> Value {
    json!({"channel":"api","external_id":ext,"date":"2026-11-23T10:00:00+03:00","currency":"RUB",
        "customer":{"name":"Иванов Иван","phone":"+79990000000","email":"ivan@example.ru"},
        "lines":[{"name":"Дрель","article":"DRILL-1","quantity":2,"price":1200.00}],
        "delivery":{"method":method,"cost":300.00,"address":address,"city":"Новосибирск","city_code":270},
        "payment":{"method":"card","paid":false}})
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

/// What UT11 sends back for an order: its number, posted, and a status.
async fn send_status(s: &Server, number: &str, status: &str) {
    let id = format!(
        "7d1c2a9e-0000-11e4-a522-{:012}",
        number
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .unwrap()
    );
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T10:00:00\">\r\n\
<Документ><Ид>{id}</Ид><Номер>{number}</Номер><Дата>2026-11-23</Дата>\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>\
<ЗначенияРеквизитов>\
<ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>\
<ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>{status}</Значение></ЗначениеРеквизита>\
</ЗначенияРеквизитов></Документ>\r\n</КоммерческаяИнформация>\r\n"
    );
    let cookie = s.login("sale").await;
    let init = s.get("type=sale&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body.split('\n').count(), 2, "init: {}", init.body);
    let name = "orders-status_1.xml";
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

async fn order(s: &Server, number: &str) -> Value {
    let (st, v) = s.api(&format!("/api/v1/orders/{number}")).await;
    assert_eq!(st, 200, "{v}");
    v
}

fn requisite(o: &Value, name: &str) -> Option<String> {
    o["requisites"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["value"].as_str())
        .map(str::to_string)
}

async fn shipment_where(s: &Server, number: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    eventually(90, what, || async {
        let o = order(s, number).await;
        let sh = o["shipments"].as_array().and_then(|a| a.first()).cloned()?;
        f(&sh).then_some(o)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdek_order_from_1c_status_with_waybill_delete_and_refusal_under_faults() {
    let sim = cdek_sim(&["--process-delay-ms", "300", "--print-delay-ms", "500"]);
    // The create call times out after CDEK took it (then the others are plain 500s / timeouts).
    control(
        &sim.1,
        "/sim/faults",
        json!({"rate_timeout": 0.5, "timeout_ms": 1500, "apply_before_timeout": true,
               "only": ["POST /v2/orders"], "seed": 5}),
    )
    .await;
    let srv = start(&cdek_env(&sim, &[("OBMEN_CDEK_DEFAULT_WEIGHT_G", "700")]));
    let number = post_order(&srv, &order_body("c-1", "cdek", Some("ул. Ленина, д. 5"))).await;
    let q = query_and_confirm(&srv).await;
    assert!(q.contains(&number));

    // "Ready" three times: one CDEK order.
    for _ in 0..3 {
        send_status(&srv, &number, "Готов к отгрузке").await;
    }
    let o = shipment_where(&srv, &number, "registered with a waybill", |sh| {
        sh["state"] == "registered" && sh["waybill_url"].is_string()
    })
    .await;
    let sh = &o["shipments"][0];
    assert_eq!(sh["carrier"], "cdek");
    let cdek_number = sh["carrier_number"].as_str().unwrap().to_string();
    assert_eq!(cdek_number.len(), 10, "{sh}");
    let stats = sim_get(&sim.1, "/sim/stats").await;
    assert_eq!(
        stats["orders_created"][&number], 1,
        "one CDEK order: {stats}"
    );
    assert_eq!(
        requisite(&o, "Зарегистрирован перевозчиком").as_deref(),
        Some("Да")
    );
    // The stored waybill is a PDF with the CDEK number, reachable by its link.
    let url = sh["waybill_url"].as_str().unwrap();
    let path = &url[url.find("/documents/").unwrap()..];
    let pdf = reqwest::get(format!("{}{path}", srv.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(
        String::from_utf8_lossy(&pdf).contains(&cdek_number),
        "the waybill names the CDEK number"
    );
    // 1C's next query carries the registration, the number and the link.
    let q = query_and_confirm(&srv).await;
    assert!(q.contains("Зарегистрирован перевозчиком"), "{q}");
    assert!(q.contains(&cdek_number), "{q}");
    assert!(q.contains(path), "{q}");

    // Delete (the token expired meanwhile: refreshed without anyone noticing).
    control(&sim.1, "/sim/tokens/expire", json!({})).await;
    send_status(&srv, &number, "Удалить заказ на доставку").await;
    let o = shipment_where(&srv, &number, "deleted", |sh| sh["state"] == "deleted").await;
    assert_eq!(
        requisite(&o, "Заказ на доставку удален").as_deref(),
        Some("Да")
    );
    let orders = sim_get(&sim.1, "/sim/orders").await;
    let at_cdek = orders
        .as_array()
        .or(orders["orders"].as_array())
        .unwrap()
        .iter()
        .find(|x| x["number"] == number.as_str())
        .cloned()
        .unwrap();
    assert!(at_cdek.to_string().contains("REMOVED"), "{at_cdek}");

    // A second order moves at CDEK before 1C asks to delete it: refused with the reason.
    let n2 = post_order(&srv, &order_body("c-2", "cdek", Some("пр. Мира, 7"))).await;
    query_and_confirm(&srv).await;
    send_status(&srv, &n2, "Готов к отгрузке").await;
    let o = shipment_where(&srv, &n2, "second registered", |sh| {
        sh["state"] == "registered"
    })
    .await;
    let uuid_list = sim_get(&sim.1, "/sim/orders").await;
    let uuid = uuid_list
        .as_array()
        .or(uuid_list["orders"].as_array())
        .unwrap()
        .iter()
        .find(|x| x["number"] == n2.as_str())
        .and_then(|x| x["uuid"].as_str())
        .unwrap()
        .to_string();
    assert!(o["shipments"][0]["carrier_number"].as_str().is_some());
    control(
        &sim.1,
        &format!("/sim/orders/{uuid}/status"),
        json!({"code": "RECEIVED_AT_SHIPMENT_WAREHOUSE"}),
    )
    .await;
    // CDEK's webhook (unsigned) makes obmen read the status back from CDEK: a forged code in
    // the body is not what gets stored, CDEK's own status is.
    let hook = reqwest::Client::new()
        .post(format!("{}/cdek/webhook", srv.base))
        .json(
            &json!({"type": "ORDER_STATUS", "uuid": uuid, "date_time": "2026-11-23T10:00:00+0300",
            "attributes": {"code": "DELIVERED", "number": n2, "is_return": false}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    let o = eventually(30, "the status read back after the webhook", || async {
        let o = order(&srv, &n2).await;
        (o["shipments"][0]["status"] == "RECEIVED_AT_SHIPMENT_WAREHOUSE").then_some(o)
    })
    .await;
    assert_eq!(
        requisite(&o, "Статус доставки").as_deref(),
        Some("Принят на склад отправителя")
    );
    send_status(&srv, &n2, "Удалить заказ на доставку").await;
    let o = eventually(60, "the refusal on the order", || async {
        let o = order(&srv, &n2).await;
        requisite(&o, "Заказ на доставку НЕ удален")
            .filter(|r| !r.is_empty())
            .map(|_| o)
    })
    .await;
    let why = requisite(&o, "Заказ на доставку НЕ удален").unwrap();
    assert!(why.contains("v2_entity_has_final_status"), "{why}");
    assert_eq!(o["shipments"][0]["state"], "registered");
    let stats = sim_get(&sim.1, "/sim/stats").await;
    assert_eq!(stats["orders_created"][&n2], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_weight_or_address_is_refused_with_the_reason_and_nothing_sent() {
    let sim = cdek_sim(&[]);
    let srv = start(&cdek_env(&sim, &[]));
    let number = post_order(&srv, &order_body("c-3", "СДЭК", None)).await;
    query_and_confirm(&srv).await;
    send_status(&srv, &number, "Готов к отгрузке").await;
    shipment_where(&srv, &number, "refused by obmen", |sh| {
        sh["state"] == "invalid"
    })
    .await;
    // (The API reads the order and its shipments one after the other: wait for both.)
    let o = eventually(30, "the reason on the order", || async {
        let o = order(&srv, &number).await;
        requisite(&o, "Ошибка доставки").map(|_| o)
    })
    .await;
    let err = o["shipments"][0]["error"].as_str().unwrap().to_string();
    assert!(err.contains("нет веса"), "{err}");
    assert!(err.contains("нет адреса"), "{err}");
    assert_eq!(
        requisite(&o, "Ошибка доставки").as_deref(),
        Some(err.as_str())
    );
    let q = query_and_confirm(&srv).await;
    assert!(q.contains("Ошибка доставки"), "{q}");
    let stats = sim_get(&sim.1, "/sim/stats").await;
    assert!(
        stats["calls"].get("POST /v2/orders").is_none()
            && stats["orders_created"]
                .as_object()
                .is_none_or(|m| m.is_empty()),
        "nothing sent to CDEK: {stats}"
    );
    // CDEK's own refusal (async INVALID) is on the order too.
    drop(srv);
    let srv = start(&cdek_env(&sim, &[("OBMEN_CDEK_DEFAULT_WEIGHT_G", "300")]));
    let n3 = post_order(&srv, &{
        let mut b = order_body("c-5", "cdek", Some("ул. Ленина, 1"));
        b["delivery"]["city_code"] = json!(0);
        b
    })
    .await;
    query_and_confirm(&srv).await;
    send_status(&srv, &n3, "Готов к отгрузке").await;
    let o = shipment_where(&srv, &n3, "refused by CDEK", |sh| sh["state"] == "failed").await;
    let err = o["shipments"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("v2_recipient_location_not_recognized"),
        "{err}"
    );
    assert!(requisite(&o, "Ошибка доставки")
        .unwrap()
        .contains("v2_recipient_location_not_recognized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpd_tracking_number_reaches_1c_and_the_api_without_a_duplicate_after_a_timeout() {
    let sim = dpd_sim(&["--pending-polls", "2"]);
    control(
        &sim.1,
        "/sim/faults",
        json!({"rate_timeout": 0.5, "timeout_ms": 2500, "apply_before_timeout": true, "seed": 9}),
    )
    .await;
    let env: Vec<(&'static str, String)> = vec![
        ("OBMEN_DPD_BASE_URL", sim.1.clone()),
        ("OBMEN_DPD_CLIENT_NUMBER", "1001234567".into()),
        ("OBMEN_DPD_CLIENT_KEY", "sim-client-key".into()),
        ("OBMEN_DPD_DEFAULT_WEIGHT_G", "1500".into()),
        ("OBMEN_DPD_SENDER_CITY", "Москва".into()),
        ("OBMEN_DPD_SENDER_STREET", "Тверская".into()),
        ("OBMEN_DPD_SENDER_HOUSE", "1".into()),
        ("OBMEN_DPD_SENDER_NAME", "ООО Ромашка".into()),
        ("OBMEN_DPD_TIMEOUT_SECS", "1".into()),
        ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
        ("OBMEN_RELAY_BACKOFF_MAX_SECS", "1".into()),
        ("OBMEN_RELAY_MAX_ATTEMPTS", "50".into()),
    ];
    let srv = start(&env);
    let number = post_order(&srv, &order_body("d-1", "dpd", Some("ул. Ленина, д. 5"))).await;
    query_and_confirm(&srv).await;
    send_status(&srv, &number, "Готов к отгрузке").await;
    let o = shipment_where(&srv, &number, "registered at DPD", |sh| {
        sh["state"] == "registered"
    })
    .await;
    let track = o["shipments"][0]["tracking_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!track.is_empty());
    assert_eq!(requisite(&o, "Трек-номер").as_deref(), Some(track.as_str()));
    let (st, t) = srv.api(&format!("/api/v1/orders/{number}/tracking")).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["carrier"], "dpd");
    assert_eq!(t["tracking_number"], track.as_str());
    let q = query_and_confirm(&srv).await;
    assert!(q.contains(&track), "{q}");
    let stats = sim_get(&sim.1, "/sim/stats").await;
    assert_eq!(
        stats["orders_created"][&number], 1,
        "created once, however the timeouts fell: {stats}"
    );
    let (st, _) = srv.api("/api/v1/orders/NO-SUCH/tracking").await;
    assert_eq!(st, 404);
}
