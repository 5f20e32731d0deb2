//! The Ozon Seller API simulator, driven through the real binary (`obmen sim ozon`) over HTTP.

mod common;

use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};

const WH: i64 = 22142605386000;

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
    async fn raw(&self, path: &str, key: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("Client-Id", "123456")
            .header("Api-Key", key)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.raw(path, "sim-api-key", &body.to_string()).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        (status, v)
    }

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
}

fn stock(offer: &str, n: i64) -> Value {
    json!({"offer_id": offer, "stock": n, "warehouse_id": WH})
}

#[tokio::test]
async fn auth_errors_batch_cap_and_pair_cooldown() {
    let sim = spawn(&[]);
    let r = sim.raw("/v1/warehouse/list", "wrong", "{}").await;
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 5);
    assert_eq!(
        v["message"],
        "Invalid Api-Key, please check the key and try again"
    );
    assert_eq!(v["details"], json!([]));

    let r = sim
        .http
        .post(format!("{}/v1/warehouse/list", sim.url))
        .header("Client-Id", "abc")
        .header("Api-Key", "sim-api-key")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 3);

    let r = sim.raw("/v2/products/stocks", "sim-api-key", "{oops").await;
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["code"].clone(), v["message"].clone()),
        (json!(3), json!("Invalid request body"))
    );

    let (s, v) = sim.call("/v1/warehouse/list", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(v["result"][0]["warehouse_id"], WH);

    let many: Vec<Value> = (0..101).map(|i| stock(&format!("B{i}"), 1)).collect();
    let (s, v) = sim
        .call("/v2/products/stocks", json!({ "stocks": many }))
        .await;
    assert_eq!((s, v["code"].clone()), (400, json!(3)));

    let (s, v) = sim
        .call("/v2/products/stocks", json!({"stocks": [stock("A1", 5)]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["result"][0]["updated"], true, "{v}");
    let (s, v) = sim
        .call("/v2/products/stocks", json!({"stocks": [stock("A1", 6)]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["result"][0]["updated"], false);
    assert_eq!(v["result"][0]["errors"][0]["code"], "TOO_MANY_REQUESTS");

    let p = sim.get("/sim/products/A1").await;
    assert_eq!(p["stocks"][WH.to_string()], 5);
    assert_eq!(p["stock_updates"], 1);
    let stats = sim.get("/sim/stats").await;
    assert_eq!(stats["stock_updates"], 1);
    assert_eq!(stats["rejected"]["auth"], 1);
}

#[tokio::test]
async fn the_81st_stocks_call_in_a_minute_is_429() {
    let sim = spawn(&[]);
    for i in 0..80 {
        let (s, v) = sim
            .call(
                "/v2/products/stocks",
                json!({"stocks": [stock(&format!("R{i}"), 1)]}),
            )
            .await;
        assert_eq!(s, 200, "call {i}: {v}");
        // Stay under the 50 rps global limit.
        tokio::time::sleep(Duration::from_millis(22)).await;
    }
    let (s, v) = sim
        .call("/v2/products/stocks", json!({"stocks": [stock("R80", 1)]}))
        .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["code"], 8);
    assert_eq!(
        v["message"],
        "You have reached request rate limit per second"
    );
    // Other methods are still allowed.
    assert_eq!(sim.call("/v1/warehouse/list", json!({})).await.0, 200);
}

#[tokio::test]
async fn product_import_is_pending_then_imported_or_failed() {
    let sim = spawn(&["--import-pending-polls", "2"]);
    let good = json!({"offer_id": "C1", "name": "Чайник", "description_category_id": 17028922,
        "type_id": 91565, "price": "1000", "vat": "0.2", "depth": 10, "width": 150, "height": 250,
        "dimension_unit": "mm", "weight": 100, "weight_unit": "g", "images": ["https://x/1.jpg"]});
    let bad = json!({"offer_id": "C2", "name": "Без категории", "description_category_id": 0,
        "type_id": 91565, "vat": "0.2", "depth": 10, "width": 150, "height": 250, "weight": 100});
    let (s, v) = sim
        .call("/v3/product/import", json!({"items": [good, bad]}))
        .await;
    assert_eq!(s, 200, "{v}");
    let task = v["result"]["task_id"].as_i64().unwrap();
    for _ in 0..2 {
        let (_, v) = sim
            .call(
                "/v1/product/import/info",
                json!({"task_id": task.to_string()}),
            )
            .await;
        assert_eq!(v["result"]["items"][0]["status"], "pending", "{v}");
    }
    let (_, v) = sim
        .call("/v1/product/import/info", json!({ "task_id": task }))
        .await;
    let items = &v["result"]["items"];
    assert_eq!(items[0]["status"], "imported", "{v}");
    assert!(items[0]["product_id"].as_i64().unwrap() > 0);
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(items[1]["errors"][0]["field"], "description_category_id");

    let (_, v) = sim
        .call("/v3/product/info/list", json!({"offer_id": ["C1", "C2"]}))
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["items"][0]["images"][0], "https://x/1.jpg");

    let many: Vec<Value> = (0..101)
        .map(|i| json!({"offer_id": format!("X{i}")}))
        .collect();
    assert_eq!(
        sim.call("/v3/product/import", json!({ "items": many }))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn posting_ship_label_and_cancel_flow() {
    let sim = spawn(&["--label-delay-secs", "1"]);
    let seeded = sim
        .control(
            "/sim/products",
            json!([{"offer_id": "A1", "name": "Товар", "price": "1390"}]),
        )
        .await;
    let pid = seeded["result"][0]["product_id"].as_i64().unwrap();
    let sku = seeded["result"][0]["sku"].as_i64().unwrap();
    assert_ne!(pid, sku);
    let posting = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "A1", "quantity": 2}]}),
        )
        .await;
    let number = posting["posting_number"].as_str().unwrap().to_string();
    assert_eq!(posting["status"], "awaiting_packaging");
    assert_eq!(posting["products"][0]["price"], "1390.000000");
    assert!(number.starts_with(posting["order_number"].as_str().unwrap()));

    let (s, v) = sim
        .call(
            "/v3/posting/fbs/unfulfilled/list",
            json!({"filter": {}, "limit": 100, "offset": 0, "with": {"barcodes": true}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["count"], 1);
    assert_eq!(v["result"]["postings"][0]["posting_number"], number);
    assert!(v["result"]["postings"][0]["barcodes"]["upper_barcode"].is_string());
    assert!(v["result"]["postings"][0]["financial_data"].is_null());

    let ship = |id: i64| json!({"posting_number": number, "packages": [{"products": [{"product_id": id, "quantity": 2}]}]});
    let (s, v) = sim.call("/v4/posting/fbs/ship", ship(pid)).await;
    assert_eq!((s, v["message"].as_str()), (400, Some("UNKNOWN_PRODUCT")));
    let (s, v) = sim.call("/v4/posting/fbs/ship", ship(sku)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], json!([number]));
    let (_, v) = sim.call("/v4/posting/fbs/ship", ship(sku)).await;
    assert_eq!(v["message"], "POSTING_ALREADY_SHIPPED");

    // The label is not ready right after ship.
    let labels = json!({ "posting_number": [number] });
    let r = sim
        .raw(
            "/v2/posting/fbs/package-label",
            "sim-api-key",
            &labels.to_string(),
        )
        .await;
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "The next postings aren't ready"
    );
    let (s, v) = sim
        .call("/v2/posting/fbs/package-label/create", labels.clone())
        .await;
    assert_eq!(s, 200, "{v}");
    let task = v["result"]["tasks"][0]["task_id"].as_i64().unwrap();
    let (_, v) = sim
        .call(
            "/v1/posting/fbs/package-label/get",
            json!({ "task_id": task }),
        )
        .await;
    assert_eq!(v["result"]["status"], "pending");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = sim
        .raw(
            "/v2/posting/fbs/package-label",
            "sim-api-key",
            &labels.to_string(),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/pdf"
    );
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));
    let (_, v) = sim
        .call(
            "/v1/posting/fbs/package-label/get",
            json!({ "task_id": task }),
        )
        .await;
    assert_eq!(v["result"]["status"], "completed", "{v}");
    let file = sim
        .http
        .get(v["result"]["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status().as_u16(), 200);
    assert!(file.bytes().await.unwrap().starts_with(b"%PDF-"));

    // Cancel: a bad reason first, then a valid one.
    let other = sim
        .control(
            "/sim/postings",
            json!({"products": [{"offer_id": "A1", "quantity": 1}]}),
        )
        .await;
    let other = other["posting_number"].as_str().unwrap();
    let (s, v) = sim
        .call(
            "/v2/posting/fbs/cancel",
            json!({"posting_number": other, "cancel_reason_id": 12345}),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("HAS_INCORRECT_CANCEL_REASON"))
    );
    let (s, v) = sim
        .call(
            "/v2/posting/fbs/cancel",
            json!({"posting_number": other, "cancel_reason_id": 352}),
        )
        .await;
    assert_eq!((s, &v), (200, &json!({"result": true})));
    let (_, v) = sim
        .call("/v3/posting/fbs/get", json!({ "posting_number": other }))
        .await;
    assert_eq!(v["result"]["status"], "cancelled");
    assert_eq!(v["result"]["cancellation"]["cancel_reason_id"], 352);

    let stats = sim.get("/sim/stats").await;
    assert_eq!(stats["ships"][&number], 1);
    let pushes = sim.get("/sim/pushes").await;
    let kinds: Vec<&str> = pushes["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "TYPE_NEW_POSTING",
            "TYPE_STATE_CHANGED",
            "TYPE_NEW_POSTING",
            "TYPE_POSTING_CANCELLED"
        ]
    );
    assert_eq!(stats["labels"], 2);
}

#[tokio::test]
async fn fault_injection_fails_every_call_then_turns_off() {
    let sim = spawn(&[]);
    sim.control("/sim/faults", json!({"rate_500": 1.0, "seed": 7}))
        .await;
    for _ in 0..3 {
        let (s, v) = sim.call("/v1/warehouse/list", json!({})).await;
        assert_eq!((s, v["code"].clone()), (500, json!(13)));
    }
    sim.control("/sim/faults", json!({})).await;
    assert_eq!(sim.call("/v1/warehouse/list", json!({})).await.0, 200);
    let stats = sim.get("/sim/stats").await;
    assert_eq!(stats["rejected"]["fault_500"], 3);

    // A timeout with apply_before_timeout still applies the change (a lost answer).
    sim.control(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 100, "apply_before_timeout": true}),
    )
    .await;
    let (s, _) = sim
        .call("/v2/products/stocks", json!({"stocks": [stock("T1", 3)]}))
        .await;
    assert_eq!(s, 504);
    sim.control("/sim/faults", json!({})).await;
    assert_eq!(
        sim.get("/sim/products/T1").await["stocks"][WH.to_string()],
        3
    );
}

/// A tiny HTTP receiver for pushes: answers the first `fail_first` requests with 500, the rest
/// with 200 `{"result":true}`; every received body goes to the channel.
async fn push_receiver(fail_first: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0usize;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let body = loop {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::Null));
            served += 1;
            let answer = if served <= fail_first {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"result\":true}"
            };
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (url, rx)
}

async fn next_push(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a push within 5 s")
        .unwrap()
}

#[tokio::test]
async fn pushes_new_and_cancelled_postings_and_retries_a_failed_push() {
    let (url, mut rx) = push_receiver(1).await;
    let sim = spawn(&["--push-url", &url]);
    sim.control("/sim/products", json!([{"offer_id": "P1", "price": 10}]))
        .await;
    let posting = sim
        .control("/sim/postings", json!({"products": [{"offer_id": "P1"}]}))
        .await;
    let number = posting["posting_number"].as_str().unwrap();
    // The first delivery is answered 500, so the same push comes again.
    let first = next_push(&mut rx).await;
    let again = next_push(&mut rx).await;
    assert_eq!(first, again);
    assert_eq!(first["message_type"], "TYPE_NEW_POSTING");
    assert_eq!(first["posting_number"], number);
    assert_eq!(first["products"][0]["sku"], posting["products"][0]["sku"]);
    sim.control(
        &format!("/sim/postings/{number}/status"),
        json!({"status": "cancelled"}),
    )
    .await;
    let cancelled = next_push(&mut rx).await;
    assert_eq!(cancelled["message_type"], "TYPE_POSTING_CANCELLED");
    assert_eq!(cancelled["new_state"], "posting_canceled");
    assert_eq!(cancelled["old_state"], "posting_created");
    let (_, v) = sim
        .call(
            "/v3/posting/fbs/unfulfilled/list",
            json!({"filter": {}, "limit": 10, "offset": 0}),
        )
        .await;
    assert_eq!(v["result"]["count"], 0, "{v}");
}

#[tokio::test]
async fn strict_products_price_rules_and_key_change() {
    let sim = spawn(&["--strict-products"]);
    let (_, v) = sim
        .call("/v2/products/stocks", json!({"stocks": [stock("NOPE", 1)]}))
        .await;
    assert_eq!(
        v["result"][0]["errors"][0]["code"], "offer_id_not_found",
        "{v}"
    );
    let (_, v) = sim
        .call(
            "/v1/product/import/prices",
            json!({"prices": [{"offer_id": "NOPE", "price": "100"}]}),
        )
        .await;
    assert_eq!(
        v["result"][0]["errors"][0]["code"], "NOT_FOUND_ERROR",
        "{v}"
    );

    let seeded = sim
        .control("/sim/products", json!([{"offer_id": "S1", "price": "500"}]))
        .await;
    let pid = seeded["result"][0]["product_id"].as_i64().unwrap();
    // Identified by product_id (as a string); 5 % gap needed at 400..10000.
    let (_, v) = sim
        .call(
            "/v1/product/import/prices",
            json!({"prices": [
                {"product_id": pid.to_string(), "price": "1000", "old_price": "1040"},
                {"product_id": pid, "price": "-5"},
                {"product_id": pid, "price": "950", "old_price": "1000"}]}),
        )
        .await;
    let r = &v["result"];
    assert_eq!(
        r[0]["errors"][0]["code"], "discount_for_average_price_is_too_small",
        "{v}"
    );
    assert_eq!(r[1]["errors"][0]["code"], "price_negative");
    assert_eq!(
        (r[2]["updated"].clone(), r[2]["offer_id"].clone()),
        (json!(true), json!("S1"))
    );
    let (_, v) = sim
        .call(
            "/v5/product/info/prices",
            json!({"filter": {"offer_id": ["S1"]}, "cursor": "", "limit": 10}),
        )
        .await;
    assert_eq!(v["items"][0]["price"]["price"], 950.0, "{v}");
    assert_eq!(v["items"][0]["price"]["old_price"], 1000.0);
    assert_eq!(sim.get("/sim/products/S1").await["price_updates"], 1);

    // A key change: the old key is refused from now on.
    sim.control("/sim/config", json!({"api_key": "new-key"}))
        .await;
    assert_eq!(sim.call("/v1/warehouse/list", json!({})).await.0, 404);
    let r = sim.raw("/v1/warehouse/list", "new-key", "{}").await;
    assert_eq!(r.status().as_u16(), 200);
}
