//! The CDEK API v2 simulator, driven through the real binary (`obmen sim cdek`) over HTTP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ID: &str = "wqGwiQx0gg8mLtiEKsUinjVSICCjtTEP";
const SECRET: &str = "RmAmgvSgSl1yirlz9QupbzOJVqhCxcP5";

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
    let mut args = vec!["--process-delay-ms", "100", "--print-delay-ms", "200"];
    args.extend_from_slice(extra);
    let (child, url) = common::spawn_cdek_sim(&args);
    Sim {
        child,
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

fn order(number: &str) -> Value {
    json!({ "type": 1, "number": number, "tariff_code": 137,
      "recipient": { "name": "Иван Иванов", "phones": [ { "number": "+79001234567" } ] },
      "from_location": { "code": 44, "address": "ул. Ленина, 1" },
      "to_location": { "code": 137, "address": "пр. Мира, 5, кв. 7" },
      "packages": [ { "number": "1", "weight": 1200, "length": 30, "width": 20, "height": 10,
        "items": [ { "name": "Кружка", "ware_key": "SKU-1", "payment": { "value": 0 }, "cost": 500, "weight": 600, "amount": 2 } ] } ] })
}

async fn reply(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    let b = r.bytes().await.unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

impl Sim {
    async fn token(&self) -> String {
        let r = self
            .http
            .post(format!("{}/v2/oauth/token", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={ID}&client_secret={SECRET}"
            ))
            .send()
            .await
            .unwrap();
        let (s, v) = reply(r).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        reply(rb.send().await.unwrap()).await
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let (s, v) = reply(
            self.http
                .post(format!("{}{path}", self.url))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    async fn stats(&self) -> Value {
        reply(
            self.http
                .get(format!("{}/sim/stats", self.url))
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    }

    async fn create(&self, token: &str, body: Value) -> String {
        let (s, v) = self.call("POST", "/v2/orders", token, Some(body)).await;
        assert_eq!(s, 202, "{v}");
        v["entity"]["uuid"].as_str().unwrap().to_string()
    }

    /// Polls the order until the CREATE (or the last request of `kind`) leaves ACCEPTED.
    async fn settled(&self, token: &str, uuid: &str, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (s, v) = self
                .call("GET", &format!("/v2/orders/{uuid}"), token, None)
                .await;
            assert_eq!(s, 200, "{v}");
            let last = v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|r| r["type"] == kind)
                .cloned()
                .unwrap();
            if last["state"] != "ACCEPTED" && last["state"] != "WAITING" {
                return v;
            }
            assert!(Instant::now() < deadline, "still ACCEPTED: {v}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

#[tokio::test]
async fn token_by_form_and_by_query_and_bad_credentials() {
    let sim = spawn(&[]);
    let t1 = sim.token().await;
    let (s, v) = reply(
        sim.http
            .post(format!(
                "{}/v2/oauth/token?grant_type=client_credentials&client_id={ID}&client_secret={SECRET}",
                sim.url
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3599);
    let t2 = v["access_token"].as_str().unwrap();
    assert_ne!(t1, t2);
    for t in [t1.as_str(), t2] {
        let (s, _) = sim.call("GET", "/v2/webhooks", t, None).await;
        assert_eq!(s, 200);
    }
    let (s, v) = reply(
        sim.http
            .post(format!("{}/v2/oauth/token", sim.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={ID}&client_secret=wrong"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(sim.stats().await["tokens_issued"], 2);
}

#[tokio::test]
async fn expired_and_unknown_tokens_get_v2_token_expired() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    assert_eq!(sim.call("GET", "/v2/webhooks", &t, None).await.0, 200);
    sim.control("/sim/tokens/expire", json!({})).await;
    for token in [t.as_str(), "made-up"] {
        let (s, v) = sim.call("GET", "/v2/webhooks", token, None).await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(v["requests"][0]["type"], "AUTH");
        assert_eq!(v["requests"][0]["errors"][0]["code"], "v2_token_expired");
    }
    let (s, _) = reply(
        sim.http
            .get(format!("{}/v2/webhooks", sim.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401, "no Authorization header");
    let fresh = sim.token().await;
    assert_eq!(sim.call("GET", "/v2/webhooks", &fresh, None).await.0, 200);
    assert_eq!(sim.stats().await["token_rejections"], 3);
}

#[tokio::test]
async fn static_validation_answers_400_at_once() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let mut o = order("BAD-1");
    o["packages"][0]["items"][0]
        .as_object_mut()
        .unwrap()
        .remove("ware_key");
    o["shipment_point"] = json!("MSK1");
    let (s, v) = sim.call("POST", "/v2/orders", &t, Some(o)).await;
    assert_eq!(s, 400, "{v}");
    let r = &v["requests"][0];
    assert_eq!(
        (r["type"].as_str(), r["state"].as_str()),
        (Some("CREATE"), Some("INVALID"))
    );
    let codes: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec!["v2_shipment_address_multivalued", "v2_field_is_empty"]
    );
    assert_eq!(
        r["errors"][1]["message"],
        "[packages[0].items[0].ware_key] is empty"
    );
    assert!(v.get("entity").is_none());
    let all = reply(
        sim.http
            .get(format!("{}/sim/orders", sim.url))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    assert_eq!(all["orders"], json!([]));
}

#[tokio::test]
async fn a_valid_order_becomes_created_with_a_cdek_number_and_is_found() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let mut o = order("ORD-1");
    o["recipient"]["phones"] = json!({"number": "+79001234567"});
    let (s, v) = sim.call("POST", "/v2/orders", &t, Some(o)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["requests"][0]["state"], "ACCEPTED");
    assert!(v["entity"].get("cdek_number").is_none());
    let uuid = v["entity"]["uuid"].as_str().unwrap().to_string();
    let (_, now) = sim
        .call("GET", &format!("/v2/orders/{uuid}"), &t, None)
        .await;
    assert!(now["entity"].get("cdek_number").is_none(), "{now}");
    let done = sim.settled(&t, &uuid, "CREATE").await;
    assert_eq!(done["requests"][0]["state"], "SUCCESSFUL", "{done}");
    let e = &done["entity"];
    let cdek = e["cdek_number"].as_str().unwrap().to_string();
    assert_eq!(cdek.len(), 10);
    assert!(cdek.bytes().all(|b| b.is_ascii_digit()));
    let codes: Vec<&str> = e["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["CREATED", "ACCEPTED"]);
    // A second order with the same number: the search answers the latest.
    let second = sim.create(&t, order("ORD-1")).await;
    let (s, v) = sim
        .call("GET", "/v2/orders?im_number=ORD-1", &t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["entity"]["uuid"], second.as_str());
    let (s, v) = sim
        .call("GET", &format!("/v2/orders?cdek_number={cdek}"), &t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["entity"]["uuid"], uuid.as_str());
    let (s, v) = sim.call("GET", "/v2/orders?im_number=NOPE", &t, None).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = sim
        .call(
            "GET",
            "/v2/orders/00000000-0000-4000-8000-000000000000",
            &t,
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(v["errors"][0]["code"], "v2_entity_not_found");
    assert_eq!(sim.stats().await["orders_created"]["ORD-1"], 2);
}

#[tokio::test]
async fn unknown_cities_and_tariffs_fail_in_the_background() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let mut o = order("ORD-2");
    o["to_location"]["code"] = json!(0);
    o["tariff_code"] = json!(999);
    let uuid = sim.create(&t, o).await;
    let v = sim.settled(&t, &uuid, "CREATE").await;
    let r = &v["requests"][0];
    assert_eq!(r["state"], "INVALID", "{v}");
    let codes: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![
            "v2_recipient_location_not_recognized",
            "v2_tariff_not_available"
        ]
    );
    assert_eq!(v["entity"]["statuses"][0]["code"], "INVALID");
    assert!(v["entity"].get("cdek_number").is_none());
    // fail_next_create makes the next valid order fail once.
    sim.control(
        "/sim/config",
        json!({"fail_next_create": "v2_entity_invalid"}),
    )
    .await;
    let bad = sim.create(&t, order("ORD-3")).await;
    let good = sim.create(&t, order("ORD-4")).await;
    let v = sim.settled(&t, &bad, "CREATE").await;
    assert_eq!(v["requests"][0]["errors"][0]["code"], "v2_entity_invalid");
    let v = sim.settled(&t, &good, "CREATE").await;
    assert_eq!(v["requests"][0]["state"], "SUCCESSFUL");
}

#[tokio::test]
async fn production_mode_refuses_what_the_test_server_accepts() {
    let mut o = order("Заказ-1");
    o["recipient"]["phones"] = json!([{"number": "89001234567"}]);
    o["packages"][0]["items"][0]["payment"]["vat_rate"] = json!(18);
    let test = spawn(&[]);
    let t = test.token().await;
    assert_eq!(
        test.call("POST", "/v2/orders", &t, Some(o.clone())).await.0,
        202
    );
    let prod = spawn(&["--production"]);
    let t = prod.token().await;
    let (s, v) = prod.call("POST", "/v2/orders", &t, Some(o.clone())).await;
    assert_eq!(s, 400, "{v}");
    let codes: Vec<&str> = v["requests"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![
            "v2_invalid_format",
            "v2_invalid_format",
            "v2_invalid_value_type"
        ]
    );
    // The switch works at run time too.
    prod.control("/sim/config", json!({"production": false}))
        .await;
    assert_eq!(prod.call("POST", "/v2/orders", &t, Some(o)).await.0, 202);
}

#[tokio::test]
async fn delete_works_while_created_and_is_refused_once_the_parcel_moved() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let a = sim.create(&t, order("DEL-1")).await;
    let b = sim.create(&t, order("DEL-2")).await;
    sim.settled(&t, &a, "CREATE").await;
    sim.settled(&t, &b, "CREATE").await;
    let (s, v) = sim
        .call("DELETE", &format!("/v2/orders/{a}"), &t, None)
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["requests"][0]["type"], "DELETE");
    assert_eq!(v["requests"][0]["state"], "ACCEPTED");
    let v = sim.settled(&t, &a, "DELETE").await;
    assert_eq!(v["requests"][1]["state"], "SUCCESSFUL", "{v}");
    assert_eq!(v["entity"]["statuses"][0]["code"], "REMOVED");

    sim.control(
        &format!("/sim/orders/{b}/status"),
        json!({"code": "RECEIVED_AT_SHIPMENT_WAREHOUSE"}),
    )
    .await;
    let (s, _) = sim
        .call("DELETE", &format!("/v2/orders/{b}"), &t, None)
        .await;
    assert_eq!(s, 202);
    let v = sim.settled(&t, &b, "DELETE").await;
    let del = &v["requests"][1];
    assert_eq!(del["state"], "INVALID", "{v}");
    assert_eq!(del["errors"][0]["code"], "v2_entity_has_final_status");
    assert!(del["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("already moved"));
    assert_eq!(
        v["entity"]["statuses"][0]["code"],
        "RECEIVED_AT_SHIPMENT_WAREHOUSE"
    );
    assert_eq!(sim.stats().await["deletes"], 2);
}

#[tokio::test]
async fn print_form_becomes_ready_and_downloads_only_with_a_token() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let uuid = sim.create(&t, order("PR-1")).await;
    let o = sim.settled(&t, &uuid, "CREATE").await;
    let cdek = o["entity"]["cdek_number"].as_str().unwrap().to_string();
    // `orders` as a single object, as CDEK's plugin sends it.
    let (s, v) = sim
        .call(
            "POST",
            "/v2/print/orders",
            &t,
            Some(json!({"orders": {"order_uuid": uuid}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let form = v["entity"]["uuid"].as_str().unwrap().to_string();
    let (_, v) = sim
        .call("GET", &format!("/v2/print/orders/{form}"), &t, None)
        .await;
    assert!(v["entity"].get("url").is_none(), "{v}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let url = loop {
        let (_, v) = sim
            .call("GET", &format!("/v2/print/orders/{form}"), &t, None)
            .await;
        if let Some(u) = v["entity"]["url"].as_str() {
            let codes: Vec<&str> = v["entity"]["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["code"].as_str().unwrap())
                .collect();
            assert_eq!(codes, vec!["ACCEPTED", "PROCESSING", "READY"]);
            break u.to_string();
        }
        assert!(Instant::now() < deadline, "never READY: {v}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(url, format!("{}/v2/print/orders/{form}.pdf", sim.url));
    let r = sim.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = sim.http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.starts_with("%PDF-1.4"));
    assert!(text.contains(&format!("({cdek}) Tj")), "{text}");
    // The order links to its waybill.
    let (_, o) = sim
        .call("GET", &format!("/v2/orders/{uuid}"), &t, None)
        .await;
    assert_eq!(o["related_entities"][0]["type"], "waybill");
    assert_eq!(o["related_entities"][0]["url"], url.as_str());
    assert_eq!(sim.stats().await["prints"], 1);
}

/// A one-thread HTTP receiver: every POST body is sent down the channel, answered 200.
fn receiver() -> (String, std::sync::mpsc::Receiver<Value>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (format!("http://{addr}/cdek"), rx)
}

#[tokio::test]
async fn webhooks_are_delivered_to_the_subscriber() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let (url, rx) = receiver();
    let (s, v) = sim
        .call(
            "POST",
            "/v2/webhooks",
            &t,
            Some(json!({"url": url, "type": "NOPE"})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["requests"][0]["errors"][0]["code"],
        "v2_webhook_type_incorrect"
    );
    // Subscribed twice: the second replaces the first.
    for u in ["http://127.0.0.1:9/old", url.as_str()] {
        let (s, v) = sim
            .call(
                "POST",
                "/v2/webhooks",
                &t,
                Some(json!({"url": u, "type": "ORDER_STATUS"})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, list) = sim.call("GET", "/v2/webhooks", &t, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["url"], url.as_str());
    let uuid = sim.create(&t, order("WH-1")).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let v = rx.recv_timeout(Duration::from_secs(5)).expect("a webhook");
        assert_eq!(v["type"], "ORDER_STATUS");
        assert_eq!(v["uuid"], uuid.as_str());
        assert_eq!(v["attributes"]["number"], "WH-1");
        seen.push(v["attributes"]["code"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, vec!["ACCEPTED", "CREATED"]);
    sim.control(
        &format!("/sim/orders/{uuid}/status"),
        json!({"code": "DELIVERED"}),
    )
    .await;
    let v = rx.recv_timeout(Duration::from_secs(5)).expect("a webhook");
    assert_eq!(v["attributes"]["code"], "DELIVERED");
    assert_eq!(v["attributes"]["cdek_number"].as_str().unwrap().len(), 10);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.stats().await["webhooks_sent"] != 3 {
        assert!(Instant::now() < deadline, "{}", sim.stats().await);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(sim.stats().await["webhooks_failed"], 0);
}

#[tokio::test]
async fn a_create_that_times_out_after_applying_exists_once() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    sim.control(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 1500, "apply_before_timeout": true, "only": ["POST /v2/orders"]}),
    )
    .await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = quick
        .post(format!("{}/v2/orders", sim.url))
        .bearer_auth(&t)
        .json(&order("TO-1"))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    // Other endpoints are not affected; the order is there exactly once.
    let (s, v) = sim.call("GET", "/v2/orders?im_number=TO-1", &t, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(sim.stats().await["orders_created"]["TO-1"], 1);
    sim.control("/sim/faults", json!({"rate_429": 1.0})).await;
    let (s, v) = sim.call("GET", "/v2/webhooks", &t, None).await;
    assert_eq!(s, 429);
    assert_eq!(v["errors"][0]["code"], "too_many_requests");
}

#[tokio::test]
async fn print_forms_expire_and_print_form_webhooks_fire() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    let (url, rx) = receiver();
    let (s, _) = sim
        .call(
            "POST",
            "/v2/webhooks",
            &t,
            Some(json!({"url": url, "type": "PRINT_FORM"})),
        )
        .await;
    assert_eq!(s, 200);
    sim.control("/sim/config", json!({"print_ttl_secs": 1}))
        .await;
    let uuid = sim.create(&t, order("EX-1")).await;
    let o = sim.settled(&t, &uuid, "CREATE").await;
    let cdek = o["entity"]["cdek_number"].as_str().unwrap().to_string();
    // By CDEK number this time.
    let (s, v) = sim
        .call(
            "POST",
            "/v2/print/orders",
            &t,
            Some(json!({"orders": [{"cdek_number": cdek}]})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let form = v["entity"]["uuid"].as_str().unwrap().to_string();
    let hook = rx.recv_timeout(Duration::from_secs(5)).expect("PRINT_FORM");
    assert_eq!(hook["type"], "PRINT_FORM");
    assert_eq!(hook["uuid"], form.as_str());
    let pdf_url = hook["attributes"]["url"].as_str().unwrap().to_string();
    let r = sim.http.get(&pdf_url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, v) = sim
        .call("GET", &format!("/v2/print/orders/{form}"), &t, None)
        .await;
    assert_eq!(
        v["entity"]["statuses"].as_array().unwrap().last().unwrap()["code"],
        "REMOVED"
    );
    assert!(v["entity"].get("url").is_none());
    let (s, v) = reply(sim.http.get(&pdf_url).bearer_auth(&t).send().await.unwrap()).await;
    assert_eq!(s, 404);
    assert_eq!(v["errors"][0]["code"], "v2_entity_expired");
    // A form for orders that do not exist ends INVALID.
    let (_, v) = sim
        .call(
            "POST",
            "/v2/print/orders",
            &t,
            Some(json!({"orders": [{"order_uuid": "nope"}]})),
        )
        .await;
    let bad = v["entity"]["uuid"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, v) = sim
        .call("GET", &format!("/v2/print/orders/{bad}"), &t, None)
        .await;
    assert_eq!(v["requests"][0]["state"], "INVALID", "{v}");
    assert_eq!(v["requests"][0]["errors"][0]["code"], "v2_entity_empty");
    let (s, _) = sim
        .call("POST", "/v2/print/orders", &t, Some(json!({"orders": []})))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn an_unreachable_webhook_is_counted_as_failed_and_not_retried() {
    let sim = spawn(&[]);
    let t = sim.token().await;
    // A port that was free a moment ago: the connection is refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    sim.call(
        "POST",
        "/v2/webhooks",
        &t,
        Some(json!({"url": dead, "type": "ORDER_STATUS"})),
    )
    .await;
    let uuid = sim.create(&t, order("WF-1")).await;
    sim.settled(&t, &uuid, "CREATE").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.stats().await["webhooks_failed"] != 2 {
        assert!(Instant::now() < deadline, "{}", sim.stats().await);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = sim.stats().await;
    assert_eq!(
        (st["webhooks_failed"].as_u64(), st["webhooks_sent"].as_u64()),
        (Some(2), Some(0))
    );
    let (_, list) = sim.call("GET", "/v2/webhooks", &t, None).await;
    let hook = list[0]["uuid"].as_str().unwrap().to_string();
    let (s, _) = sim
        .call("DELETE", &format!("/v2/webhooks/{hook}"), &t, None)
        .await;
    assert_eq!(s, 200);
    let (_, list) = sim.call("GET", "/v2/webhooks", &t, None).await;
    assert_eq!(list, json!([]));
}
