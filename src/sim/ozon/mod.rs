//! A local simulator of the Ozon Seller API (`api-seller.ozon.ru`), for tests and demo mode.
//!
//! Facts follow `shared/reference/ozon-seller-api.md`. Everything lives in memory behind one
//! mutex (HashMaps keyed by offer_id; a BTreeMap by product_id for cursor pages), so 100 000
//! products and bulk calls are fast. Start it with [`start`] (tests) or [`run`] / the CLI
//! `obmen sim ozon --listen ADDR` (prints `obmen sim ozon: listening on http://ADDR`).
//!
//! # Transport
//! Every API method is `POST` + JSON with headers `Client-Id` (must be a positive integer equal to
//! the configured client id) and `Api-Key`. Errors use the gRPC shape `{code,message,details:[]}`:
//! - missing/malformed `Client-Id` → 400 code 3 `Client-Id header value should be positive integer`;
//! - wrong/missing `Api-Key` (or another Client-Id) → 404 code 5 `Invalid Api-Key, please check the key and try again`;
//! - body not a JSON object → 400 code 3 `Invalid request body`; unknown path → 404 code 5 `Not Found`;
//! - rate limits (per Client-Id, `rate_limits: true`): 50 requests/s on all methods, 80/min on
//!   `/v2/products/stocks` → 429 code 8 `You have reached request rate limit per second`.
//!
//! int64 ids are accepted as JSON numbers or strings. product_id and sku are different numbers
//! (product_id from 100000001, sku from 1500000001), so mixing them up is caught.
//!
//! # Methods
//! - `/v2/products/stocks`: ≤100 pairs (else 400 code 3); missing `warehouse_id`/`stock` → 400 for
//!   the whole request; per item (HTTP 200, `updated:false` + `errors`): same product×warehouse
//!   accepted less than 30 s ago → `TOO_MANY_REQUESTS`, unknown warehouse → `WAREHOUSE_NOT_FOUND`,
//!   unknown offer with `auto_products:false` → `offer_id_not_found` (unknown product_id →
//!   `NOT_FOUND_ERROR`), stock ≥ 1 000 000 → `STOCK_TOO_BIG`, negative → `INVALID_STOCK` (sim-only).
//!   `offer_id` wins over `product_id`. With `auto_products:true` an unknown offer_id is created.
//! - `/v1/product/import/prices`: ≤1000 (else 400); per item `{product_id,offer_id,updated,errors}`;
//!   discount gap (old_price > 0): <400 RUB needs ≥20 RUB, 400–10 000 needs ≥5 %, above needs
//!   ≥500 RUB, and the discount must be <90 % (`discount_for_low|average|top_price_is_too_small`,
//!   `discount_too_big`), `price_negative`; more than 10 accepted updates per product per hour →
//!   `TOO_MANY_REQUESTS`; unknown offer in strict mode → `NOT_FOUND_ERROR`.
//! - `/v3/product/import` (≤100 items) → `{"result":{"task_id":N}}`. Items are validated and applied
//!   at once (description_category_id/type_id non-zero, offer_id 1..50 chars, name 1..500, vat in
//!   0/0.05/0.07/0.1/0.2, weight/depth/width/height > 0, ≤15 images, price a number ≥ 0,
//!   currency RUB/BYN/KZT/EUR/USD/CNY); `/v1/product/import/info` answers `pending` for
//!   `import_pending_polls` polls, then `imported` / `failed` (with errors) / `skipped` (same card).
//! - `/v3/product/list` (last_id), `/v3/product/info/list` (offer_id|product_id|sku ≤1000, not
//!   wrapped in result), `/v4/product/info/stocks` and `/v5/product/info/prices` (cursor; prices as
//!   numbers); limit 1..1000. `/v1/product/info/stocks-by-warehouse/fbs` (`{"sku":[…]}`, ≤500).
//!   `/v1/warehouse/list`.
//! - Postings: `/v3/posting/fbs/unfulfilled/list` (offset/limit, count; never delivered/cancelled),
//!   `/v3/posting/fbs/list` (filter.since/to required, ≤1 year; has_next), `/v3/posting/fbs/get`
//!   (404 code 5 `POSTING_NOT_FOUND`); lists and get honour `with.barcodes|analytics_data|
//!   financial_data` (else those blocks are null) and `dir` ASC/DESC.
//!   `/v4/posting/fbs/ship` (products[].product_id is the SKU; only from awaiting_packaging; `POSTING_ALREADY_SHIPPED`, `POSTING_ALREADY_CANCELLED`,
//!   `HAS_INCORRECT_STATUS`, `UNKNOWN_PRODUCT`, `HAS_INCORRECT_PRODUCT_QUANTITY`, all 400 code 3;
//!   several packages split the posting into `<order>-2`, …; success → awaiting_deliver /
//!   posting_registered), `/v2/posting/fbs/package-label` (≤20; raw PDF when every posting is
//!   awaiting_deliver and shipped ≥ `label_delay_secs` ago, else HTTP `label_not_ready_status` code 9
//!   `The next postings aren't ready`; another status → 400 code 3 `INVALID_ARGUMENT`),
//!   `/v2/posting/fbs/package-label/create` (big_label + small_label tasks),
//!   `/v1/posting/fbs/package-label/get` (pending → in_progress → completed with `file_url` =
//!   `<public_url>/sim/files/label-<task_id>.pdf`, a plain GET without auth; `error` if a posting
//!   left awaiting_deliver), `/v2/posting/fbs/cancel` (reason from the list; 402 needs
//!   `cancel_reason_message` else `CANCEL_REASON_MESSAGE_REQUIRED`; others
//!   `HAS_INCORRECT_CANCEL_REASON`), `/v2/posting/fbs/cancel-reason/list`,
//!   `/v1/posting/fbs/cancel-reason`, `/v2/posting/fbs/awaiting-delivery` (≤100; only from
//!   arbitration/client_arbitration, else `HAS_INCORRECT_STATUS`; back to awaiting_deliver).
//!
//! # Control API (no auth, under `/sim/`)
//! - `POST /sim/faults` `{"rate_429":0.1,"rate_500":0.1,"rate_timeout":0.1,"rate_garbage":0.0,
//!   "timeout_ms":5000,"delay_ms":0,"apply_before_timeout":false,"seed":1}`: shares of API calls
//!   that fail with 429 code 8, 500 code 13 `Internal error`, a timeout (held `timeout_ms`, then 504;
//!   with `apply_before_timeout` the change is applied first), garbage (200 with broken JSON, not
//!   applied). `delay_ms` slows every API answer. All zero = off; `{}` resets. Answers the settings
//!   (also `GET /sim/faults`). Faults are rolled after auth and rate limits.
//! - `POST /sim/config` partial `{label_delay_secs, label_not_ready_status, import_pending_polls,
//!   auto_products, push_url (null = off), rate_limits, api_key}` → the whole config (also
//!   `GET /sim/config`).
//! - `POST /sim/products` `[{"offer_id":"A1","name":"…","price":"100","old_price"?,"stocks"?:{"<wh>":5}}]`
//!   seeds cards → `{"result":[{offer_id,product_id,sku}]}`; `GET /sim/products/{offer_id}` → the
//!   card, stocks per warehouse, prices, images, counts of accepted stock/price updates.
//! - `POST /sim/postings` `{"posting_number"?,"warehouse_id"?,"status"?,"products":[{"offer_id","quantity","price"?}]}`
//!   → the posting JSON (unknown offer → 400); pushes TYPE_NEW_POSTING.
//!   `GET /sim/postings/{posting_number}` → the posting JSON.
//! - `POST /sim/postings/{posting_number}/status` `{"status":"delivered","tracking_number"?}` → the
//!   posting; pushes TYPE_STATE_CHANGED. For `"cancelled"` optional `cancel_reason_id` (default 0),
//!   `cancel_reason` (default `Отменено Ozon`), `cancellation_initiator` (default `Ozon`); pushes
//!   TYPE_POSTING_CANCELLED. Moving to awaiting_deliver starts the label delay.
//! - `GET /sim/stats` → `{calls{path:n}, rejected{reason:n}, stock_updates, stock_same_value,
//!   price_updates, price_same_value, ships{posting:n}, imports, labels, pushes_sent, pushes_failed}`.
//!   Rejection reasons: bad_client_id, auth, rate_limit, fault_429, fault_500, fault_timeout, fault_garbage.
//! - `GET /sim/pushes` → `{"pushes":[…]}` the last 200 pushes produced (kept even when push_url is off).
//! - `POST /sim/reset` clears products, postings, tasks, faults, rate windows, stats and the push
//!   log (keeps config).
//! - `GET /sim/files/label-<task_id>.pdf` the label of an async task.
//!
//! Not simulated: moderation/`price_sent` gating of stocks, reserved stock (always 0; postings do
//! not change stocks), daily import quotas, partial ship
//! (`/v4/posting/fbs/ship/package`), acts/carriages, FBO, the old `{"error":{…}}` error shape,
//! the push ping handshake and subscription suspension.
//!
//! Pushes (§8 shapes: TYPE_NEW_POSTING, TYPE_POSTING_CANCELLED, TYPE_STATE_CHANGED on ship and
//! on control moves, TYPE_CREATE_OR_UPDATE_ITEM on import) are POSTed to `push_url` in the
//! background, each retried 5 times with growing delay (0.2 s … 4 s), then dropped.

mod control;
pub(crate) mod pdf;
mod postings;
mod products;
mod push;
pub mod rules;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use state::State;

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub client_id: String,
    pub api_key: String,
    /// FBS warehouses (id, name).
    pub warehouses: Vec<(i64, String)>,
    /// A label is not ready this long after ship.
    pub label_delay_secs: u64,
    /// HTTP status of "The next postings aren't ready".
    pub label_not_ready_status: u16,
    /// `/v1/product/import/info` answers `pending` this many times.
    pub import_pending_polls: u32,
    /// Seconds between two accepted stock updates of one offer × warehouse (Ozon: 30).
    pub stock_cooldown_secs: u64,
    /// An unknown offer_id in stocks/prices is created (true) or an item error (false).
    pub auto_products: bool,
    /// Push notifications target; None = off.
    pub push_url: Option<String>,
    /// Enforce 50 rps global and 80/min stocks per Client-Id.
    pub rate_limits: bool,
    /// Base of `file_url` of label tasks; default the listen address.
    pub public_url: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "123456".into(),
            api_key: "sim-api-key".into(),
            warehouses: vec![(22142605386000, "Основной склад".into())],
            label_delay_secs: 45,
            label_not_ready_status: 409,
            import_pending_polls: 2,
            stock_cooldown_secs: rules::STOCK_COOLDOWN.as_secs(),
            auto_products: true,
            push_url: None,
            rate_limits: true,
            public_url: None,
        }
    }
}

/// The shared simulator: state plus the push queue.
pub struct Sim {
    state: Mutex<State>,
    push_tx: mpsc::UnboundedSender<Value>,
    base_url: String,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state and queues the pushes it produced.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, pushes) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (r, std::mem::take(&mut st.outbox))
        };
        for p in pushes {
            let _ = self.push_tx.send(p);
        }
        r
    }

    /// The `GET /sim/stats` document.
    pub fn stats(&self) -> Value {
        self.lock().stats.json()
    }

    /// The product as the sim holds it (`GET /sim/products/{offer_id}`).
    pub fn product(&self, offer_id: &str) -> Option<Value> {
        self.lock().products.get(offer_id).map(|p| p.sim_json())
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    server: actix_web::dev::ServerHandle,
}

impl SimHandle {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server (gracefully, without waiting for open connections for long).
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// An answer of a handler.
pub(crate) enum Out {
    Json(u16, Value),
    Pdf(Vec<u8>),
}

/// A gRPC-shaped error.
pub(crate) fn err(status: u16, code: i64, msg: impl Into<String>) -> Out {
    Out::Json(
        status,
        json!({"code": code, "message": msg.into(), "details": []}),
    )
}

pub(crate) fn ok(v: Value) -> Out {
    Out::Json(200, v)
}

fn respond(out: Out) -> HttpResponse {
    match out {
        Out::Json(status, v) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .content_type("application/json")
        .body(v.to_string()),
        Out::Pdf(bytes) => HttpResponse::Ok()
            .content_type("application/pdf")
            .body(bytes),
    }
}

/// Every Ozon method the simulator serves.
pub const API_PATHS: [&str; 21] = [
    "/v2/products/stocks",
    "/v1/product/import/prices",
    "/v3/product/import",
    "/v1/product/import/info",
    "/v3/product/list",
    "/v3/product/info/list",
    "/v4/product/info/stocks",
    "/v5/product/info/prices",
    "/v1/product/info/stocks-by-warehouse/fbs",
    "/v1/warehouse/list",
    "/v3/posting/fbs/unfulfilled/list",
    "/v3/posting/fbs/list",
    "/v3/posting/fbs/get",
    "/v4/posting/fbs/ship",
    "/v2/posting/fbs/package-label",
    "/v2/posting/fbs/package-label/create",
    "/v1/posting/fbs/package-label/get",
    "/v2/posting/fbs/cancel",
    "/v2/posting/fbs/cancel-reason/list",
    "/v1/posting/fbs/cancel-reason",
    "/v2/posting/fbs/awaiting-delivery",
];

fn api(st: &mut State, path: &str, b: &Value, base: &str) -> Out {
    match path {
        "/v2/products/stocks" => products::stocks(st, b),
        "/v1/product/import/prices" => products::prices(st, b),
        "/v3/product/import" => products::import(st, b),
        "/v1/product/import/info" => products::import_info(st, b),
        "/v3/product/list" => products::list(st, b),
        "/v3/product/info/list" => products::info_list(st, b),
        "/v4/product/info/stocks" => products::info_stocks(st, b),
        "/v5/product/info/prices" => products::info_prices(st, b),
        "/v1/product/info/stocks-by-warehouse/fbs" => products::stocks_by_warehouse(st, b),
        "/v1/warehouse/list" => products::warehouses(st),
        "/v3/posting/fbs/unfulfilled/list" => postings::unfulfilled(st, b),
        "/v3/posting/fbs/list" => postings::list(st, b),
        "/v3/posting/fbs/get" => postings::get(st, b),
        "/v4/posting/fbs/ship" => postings::ship(st, b),
        "/v2/posting/fbs/package-label" => postings::label(st, b),
        "/v2/posting/fbs/package-label/create" => postings::label_create(st, b),
        "/v1/posting/fbs/package-label/get" => postings::label_get(st, b, base),
        "/v2/posting/fbs/cancel" => postings::cancel(st, b),
        "/v2/posting/fbs/cancel-reason/list" => postings::cancel_reasons(),
        "/v1/posting/fbs/cancel-reason" => postings::cancel_reason(st, b),
        "/v2/posting/fbs/awaiting-delivery" => postings::awaiting_delivery(st, b),
        _ => err(404, 5, "Not Found"),
    }
}

enum Fault {
    None,
    TooMany,
    Internal,
    Timeout,
    Garbage,
}

/// Auth, rate limits and the fault roll of one API call. Err = the answer to give at once.
fn admit(st: &mut State, req: &HttpRequest, path: &str) -> Result<Fault, Out> {
    let key = if API_PATHS.contains(&path) {
        path
    } else {
        "<unknown>"
    };
    *st.stats.calls.entry(key.to_string()).or_default() += 1;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
    };
    let client = header("Client-Id").unwrap_or_default();
    if !client.parse::<i64>().is_ok_and(|n| n > 0) {
        st.stats.reject("bad_client_id");
        return Err(err(
            400,
            3,
            "Client-Id header value should be positive integer",
        ));
    }
    if header("Api-Key").as_deref() != Some(st.cfg.api_key.as_str()) || client != st.cfg.client_id {
        st.stats.reject("auth");
        return Err(err(
            404,
            5,
            "Invalid Api-Key, please check the key and try again",
        ));
    }
    if key == "<unknown>" {
        return Err(err(404, 5, "Not Found"));
    }
    if st.cfg.rate_limits {
        let now = Instant::now();
        let rate = st.rate.entry(client).or_default();
        let mut admitted = rate
            .global
            .admit(now, Duration::from_secs(1), rules::GLOBAL_RPS);
        if admitted && path == "/v2/products/stocks" {
            admitted = rate
                .stocks
                .admit(now, Duration::from_secs(60), rules::STOCKS_PER_MINUTE);
        }
        if !admitted {
            st.stats.reject("rate_limit");
            return Err(too_many());
        }
    }
    let f = &st.faults;
    let total = f.rate_429 + f.rate_500 + f.rate_timeout + f.rate_garbage;
    if total <= 0.0 {
        return Ok(Fault::None);
    }
    let (r429, r500, rto, rgb) = (f.rate_429, f.rate_500, f.rate_timeout, f.rate_garbage);
    let r: f64 = st.rng.gen();
    let fault = if r < r429 {
        Fault::TooMany
    } else if r < r429 + r500 {
        Fault::Internal
    } else if r < r429 + r500 + rto {
        Fault::Timeout
    } else if r < r429 + r500 + rto + rgb {
        Fault::Garbage
    } else {
        Fault::None
    };
    let reason = match fault {
        Fault::TooMany => "fault_429",
        Fault::Internal => "fault_500",
        Fault::Timeout => "fault_timeout",
        Fault::Garbage => "fault_garbage",
        Fault::None => return Ok(Fault::None),
    };
    st.stats.reject(reason);
    Ok(fault)
}

fn too_many() -> Out {
    err(429, 8, "You have reached request rate limit per second")
}

fn parse_body(body: &[u8]) -> Result<Value, Out> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(err(400, 3, "Invalid request body")),
    }
}

async fn dispatch(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let path = req.path().to_string();
    if path.starts_with("/sim/") {
        return respond(control::handle(&sim, req.method().as_str(), &path, &body));
    }
    let admitted = sim.with(|st| {
        admit(st, &req, &path).map(|f| {
            (
                f,
                st.faults.delay_ms,
                st.faults.timeout_ms,
                st.faults.apply_before_timeout,
            )
        })
    });
    let (fault, delay_ms, timeout_ms, apply_before) = match admitted {
        Ok(a) => a,
        Err(out) => return respond(out),
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let run = |b: &Value| sim.with(|st| api(st, &path, b, &sim.base_url));
    match fault {
        Fault::TooMany => respond(too_many()),
        Fault::Internal => respond(err(500, 13, "Internal error")),
        Fault::Garbage => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"result\": [{\"product_id\": 1, \"upd"),
        Fault::Timeout => {
            if apply_before {
                if let Ok(b) = parse_body(&body) {
                    let _ = run(&b);
                }
            }
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            respond(err(504, 4, "Deadline exceeded"))
        }
        Fault::None => match parse_body(&body) {
            Ok(b) => respond(run(&b)),
            Err(out) => respond(out),
        },
    }
}

type Bound = (actix_web::dev::Server, SocketAddr, Arc<Sim>);

fn bind(cfg: SimConfig, listen: &str) -> anyhow::Result<Bound> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let base_url = cfg
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{addr}"));
    let (tx, rx) = mpsc::unbounded_channel();
    let sim = Arc::new(Sim {
        state: Mutex::new(State::new(cfg)),
        push_tx: tx,
        base_url,
    });
    tokio::spawn(push::worker(rx, Arc::downgrade(&sim)));
    let data = web::Data::from(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(256 * 1024 * 1024))
            .default_service(web::to(dispatch))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, addr, sim))
}

/// Binds (port 0 allowed) and spawns the server on the current tokio/actix runtime; returns at once.
pub async fn start(cfg: SimConfig, listen: &str) -> anyhow::Result<SimHandle> {
    let (server, addr, sim) = bind(cfg, listen)?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok(SimHandle {
        addr,
        sim,
        server: handle,
    })
}

/// Blocking run for the CLI: prints `obmen sim ozon: listening on http://ADDR` and serves until
/// interrupted.
pub async fn run(cfg: SimConfig, listen: &str) -> anyhow::Result<()> {
    let (server, addr, _sim) = bind(cfg, listen)?;
    println!("obmen sim ozon: listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let handle = server.handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_serves_on_a_free_port_in_process() {
        let cfg = SimConfig {
            api_key: "k".into(),
            ..Default::default()
        };
        let sim = start(cfg, "127.0.0.1:0").await.unwrap();
        assert_ne!(sim.addr.port(), 0);
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/v1/warehouse/list", sim.url()))
            .header("Client-Id", "123456")
            .header("Api-Key", "k")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["result"][0]["name"], "Основной склад");
        assert_eq!(sim.sim.stats()["calls"]["/v1/warehouse/list"], 1);
        sim.stop().await;
    }
}
