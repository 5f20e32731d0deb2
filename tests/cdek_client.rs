//! The low-level CDEK client against the CDEK simulator started in-process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use obmen::connectors::cdek::client::{order_state, CallError, CdekClient, RequestState};
use obmen::relay::journal;
use obmen::sim::cdek::{self, SimConfig, SimHandle, TEST_CLIENT_ID, TEST_CLIENT_SECRET};
use obmen::store::DbPool;
use serde_json::{json, Value};

struct Env {
    sim: SimHandle,
    pool: DbPool,
    client: Arc<CdekClient>,
    _dir: tempfile::TempDir,
}

async fn env(timeout: Duration) -> Env {
    let sim = cdek::start(
        SimConfig {
            process_delay_ms: 50,
            print_delay_ms: 100,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = obmen::store::open(&obmen::store::testing::url(dir.path()), 2).unwrap();
    let client = CdekClient::new(
        &sim.api_url(),
        TEST_CLIENT_ID,
        TEST_CLIENT_SECRET,
        timeout,
        pool.clone(),
    );
    Env {
        sim,
        pool,
        client,
        _dir: dir,
    }
}

impl Env {
    /// Journal rows of the cdek target, oldest first: "endpoint outcome".
    fn journal(&self) -> Vec<journal::CallRow> {
        let mut c = self.pool.get().unwrap();
        let mut rows = journal::list_calls(&mut c, Some("cdek"), None, 100).unwrap();
        rows.reverse();
        rows
    }

    async fn control(&self, path: &str, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Polls until the CREATE (or DELETE) request leaves ACCEPTED.
    async fn settle(&self, uuid: &str, delete: bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.client.get_order(uuid).await.unwrap();
            let s = order_state(&v);
            let state = if delete {
                s.delete_state.clone().unwrap()
            } else {
                s.request_state.clone()
            };
            let pending = matches!(state, RequestState::Accepted | RequestState::Waiting);
            if !pending {
                return v;
            }
            assert!(Instant::now() < deadline, "still pending: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn order(number: &str) -> Value {
    json!({ "type": 1, "number": number, "tariff_code": 136,
      "recipient": { "name": "Пётр", "phones": [ { "number": "+79001234567" } ] },
      "shipment_point": "MSK1", "delivery_point": "SPB7",
      "packages": [ { "number": "1", "weight": 500, "length": 10, "width": 10, "height": 10,
        "items": [ { "name": "Книга", "ware_key": "B-1", "payment": { "value": 0 }, "cost": 300, "weight": 500, "amount": 1 } ] } ] })
}

#[tokio::test]
async fn the_token_is_cached_and_refreshed_after_expiry() {
    let e = env(Duration::from_secs(5)).await;
    assert_eq!(e.client.find_by_im_number("none").await.unwrap(), None);
    assert_eq!(e.client.find_by_im_number("none").await.unwrap(), None);
    assert_eq!(e.sim.sim.stats()["tokens_issued"], 1, "cached");
    e.sim.sim.expire_tokens();
    assert_eq!(e.client.find_by_im_number("none").await.unwrap(), None);
    let st = e.sim.sim.stats();
    assert_eq!(
        (
            st["tokens_issued"].as_u64(),
            st["token_rejections"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let rows = e.journal();
    let seen: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.endpoint, r.outcome))
        .collect();
    assert_eq!(
        seen,
        vec![
            "POST /oauth/token ok",
            "GET /orders?im_number= refused",
            "GET /orders?im_number= refused",
            "GET /orders?im_number= wait",
            "POST /oauth/token ok",
            "GET /orders?im_number= refused",
        ]
    );
    assert!(rows.iter().all(|r| !r
        .request
        .as_deref()
        .unwrap_or("")
        .contains(TEST_CLIENT_SECRET)));
    assert!(rows
        .iter()
        .all(|r| !r.response.as_deref().unwrap_or("").contains("access_token")));
    e.sim.stop().await;
}

#[tokio::test]
async fn a_token_with_under_a_minute_left_is_refreshed_before_use() {
    let e = env(Duration::from_secs(5)).await;
    e.control("/sim/config", json!({"token_ttl_secs": 50}))
        .await;
    e.client.find_by_im_number("x").await.unwrap();
    e.client.find_by_im_number("x").await.unwrap();
    let st = e.sim.sim.stats();
    assert_eq!(st["tokens_issued"], 2);
    assert_eq!(st["token_rejections"], 0);
    e.sim.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error() {
    let e = env(Duration::from_secs(5)).await;
    let bad = CdekClient::new(
        &e.sim.url(),
        TEST_CLIENT_ID,
        "wrong",
        Duration::from_secs(5),
        e.pool.clone(),
    );
    assert!(bad.base_url().ends_with("/v2"));
    match bad.create_order(&order("A")).await {
        Err(CallError::Auth(m)) => assert!(m.contains("invalid_client"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.sim.sim.stats()["orders_created"], json!({}));
    e.sim.stop().await;
}

#[tokio::test]
async fn create_poll_find_delete() {
    let e = env(Duration::from_secs(5)).await;
    let uuid = e.client.create_order(&order("C-1")).await.unwrap();
    let v = e.settle(&uuid, false).await;
    let s = order_state(&v);
    assert_eq!(s.request_state, RequestState::Successful);
    assert_eq!(s.status_code.as_deref(), Some("CREATED"));
    let cdek = s.cdek_number.clone().unwrap();
    assert_eq!(cdek.len(), 10);
    let found = e.client.find_by_im_number("C-1").await.unwrap().unwrap();
    assert_eq!(found["entity"]["uuid"], uuid.as_str());
    let found = e.client.find_by_cdek_number(&cdek).await.unwrap().unwrap();
    assert_eq!(found["entity"]["uuid"], uuid.as_str());

    let d = e.client.delete_order(&uuid).await.unwrap();
    assert_eq!(d["requests"][0]["type"], "DELETE");
    let s = order_state(&e.settle(&uuid, true).await);
    assert_eq!(s.delete_state, Some(RequestState::Successful));
    assert_eq!(s.status_code.as_deref(), Some("REMOVED"));

    // A static refusal is Rejected with the CDEK code, certainly not applied.
    let mut bad = order("C-2");
    bad["packages"][0]["items"][0]["ware_key"] = json!("");
    match e.client.create_order(&bad).await {
        Err(err @ CallError::Rejected { .. }) => {
            assert_eq!(err.code(), Some("v2_field_is_empty"));
            assert!(err
                .to_string()
                .contains("[packages[0].items[0].ware_key] is empty"));
            assert!(err.not_applied());
        }
        other => panic!("{other:?}"),
    }
    // An async failure shows in order_state.
    let mut late = order("C-3");
    late["tariff_code"] = json!(1);
    let u = e.client.create_order(&late).await.unwrap();
    match order_state(&e.settle(&u, false).await).request_state {
        RequestState::Invalid(errs) => assert_eq!(errs[0].code, "v2_tariff_not_available"),
        other => panic!("{other:?}"),
    }
    match e
        .client
        .get_order("00000000-0000-4000-8000-000000000000")
        .await
    {
        Err(err) => assert_eq!(err.code(), Some("v2_entity_not_found")),
        Ok(v) => panic!("{v}"),
    }
    e.sim.stop().await;
}

#[tokio::test]
async fn print_and_download_the_waybill() {
    let e = env(Duration::from_secs(5)).await;
    let uuid = e.client.create_order(&order("P-1")).await.unwrap();
    let cdek = order_state(&e.settle(&uuid, false).await)
        .cdek_number
        .unwrap();
    let form = e.client.print_waybill(&uuid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let url = loop {
        let v = e.client.get_print(&form).await.unwrap();
        if let Some(u) = v["entity"]["url"].as_str() {
            break u.to_string();
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Expire the token on the way: the download refreshes it.
    e.sim.sim.expire_tokens();
    let pdf = e.client.download(&url).await.unwrap();
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.starts_with("%PDF-"));
    assert!(text.contains(&cdek));
    assert!(e
        .journal()
        .iter()
        .any(|r| r.endpoint == "GET /print/{file}" && r.outcome == "ok"));
    let hook = e
        .client
        .subscribe_webhook("http://127.0.0.1:9/hook", "PRINT_FORM")
        .await
        .unwrap();
    assert_eq!(hook.len(), 36);
    e.sim.stop().await;
}

#[tokio::test]
async fn a_create_that_timed_out_is_found_by_its_number() {
    let e = env(Duration::from_millis(400)).await;
    e.client.find_by_im_number("warm-up").await.unwrap();
    e.control(
        "/sim/faults",
        json!({"rate_timeout": 1.0, "timeout_ms": 2000, "apply_before_timeout": true,
               "only": ["POST /v2/orders"]}),
    )
    .await;
    match e.client.create_order(&order("T-1")).await {
        Err(err @ CallError::Timeout(_)) => assert!(!err.not_applied()),
        other => panic!("{other:?}"),
    }
    let found = e.client.find_by_im_number("T-1").await.unwrap();
    assert!(found.is_some());
    assert_eq!(e.sim.sim.stats()["orders_created"]["T-1"], 1);
    e.control("/sim/faults", json!({"rate_429": 1.0})).await;
    assert!(matches!(
        e.client.find_by_im_number("T-1").await,
        Err(CallError::RateLimited(_))
    ));
    e.sim.stop().await;
}
