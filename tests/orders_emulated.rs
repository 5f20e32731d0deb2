//! The orders round trip of issue 3 with the real binaries: orders posted through the REST
//! intake reach 1C (`obmen emulate-1c --sale`, UT11 and 1C-Bitrix styles) exactly once across
//! a dropped `success`, 1C sends statuses back in an orders file, and `GET /api/v1/orders/{n}`
//! shows the 1C block and the timeline.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post_order(s: &Server, body: &Value) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}/api/v1/orders", s.base))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

fn order_body(ext: &str, lines: Value) -> Value {
    json!({"channel":"api","external_id":ext,"date":"2026-11-23T10:00:00+03:00","currency":"RUB",
        "customer":{"name":"Петрова Анна","phone":"+79990000001","email":"anna@example.ru","address":"Казань, Баумана 5"},
        "lines":lines,
        "delivery":{"method":"cdek","cost":300.00},"payment":{"method":"card","paid":false},"comment":"Код домофона 12"})
}

/// What 1C reports back for one order.
struct Back<'a> {
    number: &'a str,
    number_1c: &'a str,
    status: &'a str,
    /// (payment number, date)
    paid: Option<(&'a str, &'a str)>,
    /// (shipment number, date)
    shipped: Option<(&'a str, &'a str)>,
    cancelled: bool,
}

fn req(name: &str, value: &str) -> String {
    format!(
        "<ЗначениеРеквизита><Наименование>{name}</Наименование><Значение>{value}</Значение></ЗначениеРеквизита>"
    )
}

/// The orders file 1C writes after the accountant's work, mirroring fixtures/orders/: UT11 writes
/// flat 2.07 documents with `Номер по 1С`/`Дата по 1С` requisites (UTF-8 with a BOM, CRLF); the
/// Bitrix exchange writes 3.1 with `Контейнер` and `Номер1С`/`Дата1С` elements.
fn orders_file(bitrix: bool, docs: &[Back]) -> Vec<u8> {
    let mut s = String::new();
    if bitrix {
        s.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_3\" \
ВерсияСхемы=\"3.1\" ДатаФормирования=\"2026-11-24T13:51:03\">\r\n",
        );
    } else {
        s.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" \
ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T06:45:59\">\r\n",
        );
    }
    for (i, d) in docs.iter().enumerate() {
        let mut reqs = String::new();
        if !bitrix {
            reqs.push_str(&req("Номер по 1С", d.number_1c));
            reqs.push_str(&req("Дата по 1С", "2026-11-24T09:15:00"));
        }
        reqs.push_str(&req("Проведен", "true"));
        reqs.push_str(&req("ПометкаУдаления", "false"));
        if let Some((n, dt)) = d.paid {
            reqs.push_str(&req("Номер оплаты по 1С", n));
            reqs.push_str(&req("Дата оплаты по 1С", dt));
        }
        if let Some((n, dt)) = d.shipped {
            reqs.push_str(&req("Отгружен", "true"));
            reqs.push_str(&req("Номер отгрузки по 1С", n));
            reqs.push_str(&req("Дата отгрузки по 1С", dt));
        }
        reqs.push_str(&req("Отменен", if d.cancelled { "true" } else { "false" }));
        reqs.push_str(&req("Статус заказа", d.status));
        let doc = format!(
            "<Документ><Ид>{id}</Ид><Номер>{number}</Номер>{n1c}<Дата>2026-11-23</Дата>{d1c}\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>\
<ЗначенияРеквизитов>{reqs}</ЗначенияРеквизитов></Документ>",
            id = if bitrix {
                d.number.to_string()
            } else {
                format!("7c79f0f3-8c0a-11e4-a897-00505690000{i}")
            },
            number = d.number,
            n1c = if bitrix {
                format!("<Номер1С>{}       </Номер1С>", d.number_1c)
            } else {
                String::new()
            },
            d1c = if bitrix {
                "<Дата1С>2026-11-24</Дата1С><Время>09:15:00</Время>"
            } else {
                "<Время>09:15:00</Время>"
            },
        );
        if bitrix {
            s.push_str(&format!("<Контейнер>{doc}</Контейнер>\r\n"));
        } else {
            s.push_str(&doc);
            s.push_str("\r\n");
        }
    }
    s.push_str("</КоммерческаяИнформация>\r\n");
    let mut b = if bitrix {
        Vec::new()
    } else {
        b"\xEF\xBB\xBF".to_vec()
    };
    b.extend_from_slice(s.as_bytes());
    b
}

fn sorted(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn kinds(o: &Value) -> Vec<String> {
    o["timeline"]
        .as_array()
        .unwrap_or_else(|| panic!("no timeline: {o}"))
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn round_trip(style: &str) {
    let bitrix = style == "bitrix";
    let srv = Server::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // A tiny catalog through the emulator, so that the offers exist.
    let ids = ["g1", "g2", "g3"];
    let cat = dir.join("catalog");
    std::fs::create_dir(&cat).unwrap();
    std::fs::write(cat.join("import0_1.xml"), import_xml(&ids, None)).unwrap();
    std::fs::write(cat.join("offers0_1.xml"), offers_xml(&ids)).unwrap();
    emulate(&srv.url(), &["--style", style], &[&cat]);
    assert_eq!(srv.summary().await["offers"], 3);

    // Three orders through the REST intake (one with a service line).
    let mut numbers = Vec::new();
    for (ext, lines) in [
        (
            "E-1",
            json!([{"offer_id":"g1","quantity":2,"price":1200.00}]),
        ),
        (
            "E-2",
            json!([{"offer_id":"g2","quantity":1,"price":990.50},{"offer_id":"g3","quantity":3,"price":10}]),
        ),
        (
            "E-3",
            json!([{"offer_id":"g3","quantity":1,"price":500},{"name":"Сборка","quantity":1,"price":150}]),
        ),
    ] {
        let (st, v) = post_order(&srv, &order_body(ext, lines)).await;
        assert_eq!(st, 201, "{ext}: {v}");
        numbers.push(v["number"].as_str().unwrap().to_string());
    }
    let mut want = numbers.clone();
    want.sort();

    // 1. Query, success dropped: the orders come, nothing is committed.
    let q1 = dir.join("query1.xml");
    let v = emulate(
        &srv.url(),
        &[
            "--style",
            style,
            "--sale",
            "--no-success",
            "--save-query",
            q1.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(v["sale"]["documents"], 3, "{v:#}");
    assert_eq!(v["sale"]["success"], false);
    assert_eq!(sorted(&v["sale"]["numbers"]), want);
    let raw = std::fs::read(&q1).unwrap();
    assert!(raw.starts_with(b"<?xml"), "saved query");
    assert_eq!(raw.len() as u64, v["sale"]["query_bytes"].as_u64().unwrap());
    let text = if v["sale"]["charset"]
        .as_str()
        .unwrap()
        .eq_ignore_ascii_case("windows-1251")
    {
        encoding_rs::WINDOWS_1251.decode(&raw).0.into_owned()
    } else {
        String::from_utf8(raw).unwrap()
    };
    assert_eq!(text.contains("<Контейнер>"), bitrix, "{text}");
    assert!(text.contains("<Ид>g2</Ид>"), "{text}");
    for n in &numbers {
        let (_, o) = srv.api(&format!("/api/v1/orders/{n}")).await;
        assert_eq!(o["exported_to_1c"], false, "{o}");
    }

    // 2. The normal exchange: the same orders again, now confirmed.
    let v = emulate(&srv.url(), &["--style", style, "--sale"], &[]);
    assert_eq!(v["sale"]["documents"], 3, "{v:#}");
    assert_eq!(v["sale"]["success"], true);
    assert_eq!(sorted(&v["sale"]["numbers"]), want);
    for n in &numbers {
        let (_, o) = srv.api(&format!("/api/v1/orders/{n}")).await;
        assert_eq!(o["exported_to_1c"], true, "{o}");
    }

    // 3. Nothing more to hand out.
    let v = emulate(&srv.url(), &["--style", style, "--sale"], &[]);
    assert_eq!(v["sale"]["documents"], 0, "{v:#}");

    // 4. 1C sends back what the accountant did: posted and ready to ship with a payment;
    //    shipped; cancelled.
    let file = orders_file(
        bitrix,
        &[
            Back {
                number: &numbers[0],
                number_1c: "ЗК-000101",
                status: "Готов к отгрузке",
                paid: Some(("ПП-000007", "2026-11-24T10:00:00")),
                shipped: None,
                cancelled: false,
            },
            Back {
                number: &numbers[1],
                number_1c: "ЗК-000102",
                status: "Отгружен",
                paid: None,
                shipped: Some(("РТУ-000055", "2026-11-24T11:00:00")),
                cancelled: false,
            },
            Back {
                number: &numbers[2],
                number_1c: "ЗК-000103",
                status: "Отменен",
                paid: None,
                shipped: None,
                cancelled: true,
            },
        ],
    );
    let name = if bitrix {
        "documents___8f2c1e4a-1d2b-4c3d-9e8f-0a1b2c3d4e5f.xml"
    } else {
        "orders-0f6c7a9e-1111-2222-3333-444455556666_1.xml"
    };
    let back = dir.join(name);
    std::fs::write(&back, file).unwrap();
    let v = emulate(&srv.url(), &["--style", style, "--sale"], &[&back]);
    assert_eq!(v["sale"]["documents"], 0, "{v:#}");
    let f = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == name)
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(f["type"], "sale");
    assert_eq!(f["import"], "success", "{v:#}");

    // 5. The REST read shows 1C's block and the timeline.
    let (st, o) = srv.api(&format!("/api/v1/orders/{}", numbers[0])).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["onec"]["number"], "ЗК-000101", "{o:#}");
    assert_eq!(o["onec"]["posted"], true);
    assert_eq!(o["onec"]["paid"], true);
    assert_eq!(o["onec"]["cancelled"], false);
    assert_eq!(o["onec"]["status"], "Готов к отгрузке");
    assert!(o["onec"]["date"].as_str().is_some(), "{o:#}");
    assert_eq!(o["status"], "ready_to_ship");
    let k = kinds(&o);
    for want in [
        "created",
        "exported",
        "onec_number",
        "posted",
        "paid",
        "ready_to_ship",
    ] {
        assert!(k.iter().any(|x| x == want), "{want} missing in {k:?}");
    }
    for e in o["timeline"].as_array().unwrap() {
        assert!(e["source"].as_str().is_some(), "no source: {e}");
    }

    let (_, o) = srv.api(&format!("/api/v1/orders/{}", numbers[1])).await;
    assert_eq!(o["onec"]["number"], "ЗК-000102", "{o:#}");
    assert_eq!(o["onec"]["shipped"], true, "{o:#}");
    assert_eq!(o["status"], "shipped", "{o:#}");
    assert!(kinds(&o).iter().any(|x| x == "shipped"), "{o:#}");

    let (_, o) = srv.api(&format!("/api/v1/orders/{}", numbers[2])).await;
    assert_eq!(o["onec"]["number"], "ЗК-000103", "{o:#}");
    assert_eq!(o["onec"]["cancelled"], true, "{o:#}");
    assert_eq!(o["status"], "cancelled", "{o:#}");
    assert!(kinds(&o).iter().any(|x| x == "cancelled"), "{o:#}");

    // 6. Changes that came from 1C are not handed back to 1C.
    let v = emulate(&srv.url(), &["--style", style, "--sale"], &[]);
    assert_eq!(v["sale"]["documents"], 0, "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ut11_receives_orders_once_across_a_dropped_success_and_sends_statuses_back() {
    round_trip("ut11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix_receives_orders_once_across_a_dropped_success_and_sends_statuses_back() {
    round_trip("bitrix").await;
}
