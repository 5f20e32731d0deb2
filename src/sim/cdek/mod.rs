//! A local simulator of the CDEK API v2 (`api.cdek.ru/v2`, test host `api.edu.cdek.ru/v2`), for
//! tests and demo mode.
//!
//! Facts follow `shared/reference/cdek-api-v2.md` (§10 is the checklist). Everything lives in
//! memory behind one mutex. Start it with [`start`] (tests) or [`run`] / the CLI
//! `obmen sim cdek --listen ADDR` (prints `obmen sim cdek: listening on http://ADDR`). The API
//! base URL a client should use is `http://ADDR/v2`.
//!
//! # Auth
//! - `POST /v2/oauth/token`: `grant_type=client_credentials`, `client_id`, `client_secret` from a
//!   form body **or** the query string (CDEK's own plugin uses the query string). 200
//!   `{access_token, token_type:"bearer", expires_in, scope, jti}`; wrong credentials → 401
//!   `{"error":"invalid_client","error_description":…}`; another grant type → 400
//!   `unsupported_grant_type`. Default credentials: the public test account. Tokens are random
//!   and expire after `token_ttl_secs` (3599).
//! - Every other `/v2` call needs `Authorization: Bearer <token>`; a missing, unknown or expired
//!   token → 401 `{"requests":[{"type":"AUTH","state":"INVALID","errors":[{"code":"v2_token_expired",…}]}]}`
//!   (the same code for unknown tokens: clients key on it to refresh).
//!
//! # Orders (async model, §3)
//! - `POST /v2/orders`: static validation runs at once → 400 with the INVALID request envelope
//!   (all errors found): `v2_field_is_empty` (`[path] is empty`) for tariff_code, recipient,
//!   recipient.name, recipient.phones (+ each `number`), packages, packages[i].number/weight,
//!   packages[i].items (type 1), items[j].name/ware_key/payment/cost/weight/amount;
//!   `v2_order_location_from_and_shipment_point_empty`, `v2_order_location_to_and_delivery_point_empty`,
//!   `v2_shipment_address_multivalued`, `v2_delivery_address_multivalued`,
//!   `v2_number_items_is_more_126`. `phones` may be an array or one object. Otherwise 202
//!   `{"entity":{"uuid"},"requests":[{…"type":"CREATE","state":"ACCEPTED"…}],"related_entities":[]}`
//!   (never a cdek_number) and the order has status `ACCEPTED`.
//! - After `process_delay_ms` (300) the background step checks: location `code` 0 or > 100 000 →
//!   `v2_sender_location_not_recognized` / `v2_recipient_location_not_recognized`; a tariff not in
//!   [`rules::TARIFFS`] (reference §4.2) → `v2_tariff_not_available`; `fail_next_create` (control)
//!   → an error with that code. Errors: request `INVALID`, status `INVALID`. Else request
//!   `SUCCESSFUL`, status `CREATED`, a 10-digit `cdek_number`.
//! - **Production mode** (`--production`, or `{"production":true}` in `/sim/config`) adds static
//!   rules the public test server does not check (answered 400 like the others):
//!   recipient phones must be `+7` and 10 more digits (`v2_invalid_format`); `number` at most 40
//!   printable ASCII characters (`v2_invalid_format`); `length`/`width`/`height` required for a
//!   package of 100 g or more (`v2_field_is_empty`); item `payment.vat_rate` one of
//!   0/5/7/10/20/22/null (`v2_invalid_value_type`).
//! - `GET /v2/orders/{uuid}` → `{entity, requests, related_entities}` per §4.3: statuses newest
//!   first, `cdek_number` once created, a `waybill` related entity (with url) once printed;
//!   unknown → 404 `{"errors":[{"code":"v2_entity_not_found",…}]}`. `GET /v2/orders?im_number=`
//!   (the latest order with that number) / `?cdek_number=`; none → 404 with a GET INVALID request
//!   envelope (`v2_entity_not_found_im_number` / `v2_entity_not_found`); neither → 400
//!   `v2_parameters_empty`.
//! - `DELETE /v2/orders/{uuid}` → 202 with an ACCEPTED `DELETE` request (`WAITING` while the
//!   create or an earlier delete is still running); after the process delay: current status
//!   `CREATED` or `INVALID` → request `SUCCESSFUL`, status `REMOVED`; already `REMOVED` → `INVALID`
//!   with `v2_entity_not_found`; otherwise the request turns `INVALID` with
//!   `v2_entity_has_final_status` ("… the parcel has already moved …"). Removed orders stay
//!   readable.
//!
//! # Print forms (waybills)
//! `POST /v2/print/orders` (`orders` an array or one object, 1..100, each `order_uuid` or
//! `cdek_number`; `copy_count`) → 202. Statuses `ACCEPTED` → `PROCESSING` (half the print delay)
//! → `READY` after `print_delay_ms` (500), or `INVALID` (`v2_entity_empty`) when none of the
//! orders exists with a cdek_number. `GET /v2/print/orders/{uuid}` has `entity.url` only when
//! READY. `GET /v2/print/orders/{uuid}.pdf` needs the Bearer token and returns a one-page PDF with
//! the CDEK numbers; `print_ttl_secs` (3600) after READY the form is `REMOVED` and the download
//! answers 404 `v2_entity_expired`.
//!
//! # Webhooks (§7)
//! `POST /v2/webhooks {url,type}` (type `ORDER_STATUS` or `PRINT_FORM`, else 400
//! `v2_webhook_type_incorrect`; a second subscription of a type replaces the first) → 200
//! `{entity:{uuid}, requests:[…SUCCESSFUL]}`; `GET /v2/webhooks` (array), `GET|DELETE
//! /v2/webhooks/{uuid}`. ORDER_STATUS fires on every status change (ACCEPTED, CREATED, INVALID,
//! REMOVED, control moves), PRINT_FORM when a form is READY. One POST each, 3 s timeout, no retry;
//! counted in stats as `webhooks_sent` / `webhooks_failed`.
//!
//! # Control API (no auth, under `/sim/`)
//! - `POST /sim/faults {"rate_429","rate_500","rate_timeout","rate_garbage","timeout_ms","apply_before_timeout","seed","only":["POST /v2/orders"]}`:
//!   shares of API calls (after auth; `only` limits them to some endpoints) answered 429
//!   `{"errors":[{"code":"too_many_requests"}]}` (test-only shape), 500 `v2_internal_error`, or held
//!   `timeout_ms` then 504 (with `apply_before_timeout` the call is performed first — a create
//!   that "timed out" exists), or garbage: half of those a proxy's HTML `502 Bad Gateway` page
//!   (not performed), half the real JSON answer cut in the middle (performed; a PDF download
//!   gets the page instead; stats
//!   `garbage_html` / `garbage_truncated`). `{}` resets; `GET /sim/faults`.
//! - `POST /sim/config` partial `{production, process_delay_ms, print_delay_ms, token_ttl_secs,
//!   print_ttl_secs, client_id, client_secret, fail_next_create:"<code>"}` → the config (also GET).
//! - `POST /sim/orders/{uuid}/status {"code":"RECEIVED_AT_SHIPMENT_WAREHOUSE"}` appends a status
//!   (a known code, only once the order is CREATED) and fires ORDER_STATUS → the order document.
//! - `POST /sim/tokens/expire` expires every token now.
//! - `GET /sim/orders` → `{"orders":[{uuid, number, cdek_number, status, request_state}]}` (oldest first).
//! - `GET /sim/webhooks` → `{"webhooks":[…]}` the last 200 payloads produced.
//! - `GET /sim/stats` → `{calls{"METHOD /path":n}, orders_created{im_number:n}, tokens_issued,
//!   token_rejections, webhooks_sent, webhooks_failed, deletes, prints, faults{kind:n}}`.
//! - `POST /sim/reset` clears tokens, orders, forms, webhooks, faults and stats (keeps config).
//!
//! Not simulated: PATCH, refusal/client return, barcodes, intakes, the calculator,
//! `v2_similar_request_still_processed`, per-client visibility, logistics-driven status changes
//! (use the control API).

mod control;
pub mod rules;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use rules::ApiError;
use state::{now_str, Job, Order, PrintForm, Request, State, Status, Webhook};

/// The public test account (reference §1).
pub const TEST_CLIENT_ID: &str = "wqGwiQx0gg8mLtiEKsUinjVSICCjtTEP";
pub const TEST_CLIENT_SECRET: &str = "RmAmgvSgSl1yirlz9QupbzOJVqhCxcP5";

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Delay of the background step of creates and deletes.
    pub process_delay_ms: u64,
    /// A print form is READY this long after its request.
    pub print_delay_ms: u64,
    pub token_ttl_secs: u64,
    /// A READY print form expires this long after it was made.
    pub print_ttl_secs: u64,
    /// Stricter validation (see the module docs).
    pub production: bool,
    /// Base of print form URLs; default the listen address.
    pub public_url: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: TEST_CLIENT_ID.into(),
            client_secret: TEST_CLIENT_SECRET.into(),
            process_delay_ms: 300,
            print_delay_ms: 500,
            token_ttl_secs: 3599,
            print_ttl_secs: 3600,
            production: false,
            public_url: None,
        }
    }
}

/// The shared simulator: state plus the webhook queue.
pub struct Sim {
    state: Mutex<State>,
    hook_tx: mpsc::UnboundedSender<(String, Value)>,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs due jobs, then `f`, and queues the webhooks produced.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, hooks) = {
            let mut st = self.lock();
            st.tick(Instant::now());
            let r = f(&mut st);
            (r, std::mem::take(&mut st.outbox))
        };
        for h in hooks {
            let _ = self.hook_tx.send(h);
        }
        r
    }

    /// The `GET /sim/stats` document.
    pub fn stats(&self) -> Value {
        self.lock().stats.json()
    }

    /// The `GET /v2/orders/{uuid}` document of an order.
    pub fn order(&self, uuid: &str) -> Option<Value> {
        self.with(|st| st.orders.get(uuid).map(Order::json))
    }

    /// Expires every token now (`POST /sim/tokens/expire`).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Appends a status to an order (as `POST /sim/orders/{uuid}/status`).
    pub fn set_status(&self, uuid: &str, code: &str) -> bool {
        self.with(|st| {
            if st.orders.contains_key(uuid) {
                st.set_status(uuid, code);
                true
            } else {
                false
            }
        })
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

    /// `http://ADDR/v2`, the base URL of the API.
    pub fn api_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// An answer of a handler.
pub(crate) enum Out {
    Json(u16, Value),
    Pdf(Vec<u8>),
}

/// The top-level error shape `{"errors":[{code,message}]}`.
pub(crate) fn errors(status: u16, code: &str, msg: impl Into<String>) -> Out {
    Out::Json(
        status,
        json!({"errors": [{"code": code, "message": msg.into()}]}),
    )
}

/// The request-journal error shape (static validation, failed searches).
pub(crate) fn invalid(status: u16, kind: &str, errs: &[ApiError]) -> Out {
    Out::Json(
        status,
        json!({"requests": [{"type": kind, "date_time": now_str(), "state": "INVALID",
            "errors": errs.iter().map(ApiError::json).collect::<Vec<_>>(), "warnings": []}],
            "related_entities": []}),
    )
}

fn accepted(uuid: &str, req: &Request) -> Out {
    Out::Json(
        202,
        json!({"entity": {"uuid": uuid}, "requests": [req.json()], "related_entities": []}),
    )
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

/// `key=value&…` (form or query string), percent- and `+`-decoded.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    let dec = |x: &str| {
        percent_encoding::percent_decode_str(&x.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// `METHOD /path` with the id segments replaced, for stats and fault filters.
fn endpoint_key(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let p = match parts.as_slice() {
        ["v2", "oauth", "token"] => "/v2/oauth/token",
        ["v2", "orders"] => "/v2/orders",
        ["v2", "orders", _] => "/v2/orders/{uuid}",
        ["v2", "print", "orders"] => "/v2/print/orders",
        ["v2", "print", "orders", x] if x.ends_with(".pdf") => "/v2/print/orders/{uuid}.pdf",
        ["v2", "print", "orders", _] => "/v2/print/orders/{uuid}",
        ["v2", "webhooks"] => "/v2/webhooks",
        ["v2", "webhooks", _] => "/v2/webhooks/{uuid}",
        _ => return "<unknown>".into(),
    };
    format!("{method} {p}")
}

fn token(st: &mut State, query: &str, body: &[u8]) -> Out {
    let mut fields = parse_form(query);
    fields.extend(parse_form(&String::from_utf8_lossy(body)));
    let get = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some("client_credentials") {
        return Out::Json(
            400,
            json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}),
        );
    }
    if get("client_id") != Some(st.cfg.client_id.as_str())
        || get("client_secret") != Some(st.cfg.client_secret.as_str())
    {
        return Out::Json(
            401,
            json!({"error": "invalid_client", "error_description": "Bad client credentials"}),
        );
    }
    let t = st.issue_token();
    let jti = st.uuid();
    Out::Json(
        200,
        json!({"access_token": t, "token_type": "bearer", "expires_in": st.cfg.token_ttl_secs,
               "scope": "order:all payment:all", "jti": jti}),
    )
}

fn parse_json(body: &[u8], kind: &str) -> Result<Value, Out> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(invalid(
            400,
            kind,
            &[ApiError::new(
                "v2_invalid_format",
                "the body is not a JSON object",
            )],
        )),
    }
}

fn api(st: &mut State, method: &str, path: &str, query: &str, body: &[u8]) -> Out {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["v2", "orders"]) => match parse_json(body, "CREATE") {
            Ok(b) => create_order(st, b),
            Err(o) => o,
        },
        ("GET", ["v2", "orders"]) => search(st, query),
        ("GET", ["v2", "orders", uuid]) => match st.orders.get(*uuid) {
            Some(o) => Out::Json(200, o.json()),
            None => not_found(),
        },
        ("DELETE", ["v2", "orders", uuid]) => delete_order(st, uuid),
        ("POST", ["v2", "print", "orders"]) => match parse_json(body, "CREATE") {
            Ok(b) => print_create(st, &b),
            Err(o) => o,
        },
        ("GET", ["v2", "print", "orders", f]) if f.ends_with(".pdf") => {
            print_pdf(st, f.trim_end_matches(".pdf"))
        }
        ("GET", ["v2", "print", "orders", uuid]) => {
            let base = st.cfg.public_url.clone().unwrap_or_default();
            match st.prints.get(*uuid) {
                Some(p) => Out::Json(200, p.json(&base)),
                None => not_found(),
            }
        }
        ("POST", ["v2", "webhooks"]) => match parse_json(body, "CREATE") {
            Ok(b) => subscribe(st, &b),
            Err(o) => o,
        },
        ("GET", ["v2", "webhooks"]) => Out::Json(
            200,
            Value::Array(st.webhooks.iter().map(Webhook::json).collect()),
        ),
        ("GET", ["v2", "webhooks", uuid]) => match st.webhooks.iter().find(|w| w.uuid == *uuid) {
            Some(w) => Out::Json(200, json!({"entity": w.json(), "requests": []})),
            None => not_found(),
        },
        ("DELETE", ["v2", "webhooks", uuid]) => {
            let before = st.webhooks.len();
            st.webhooks.retain(|w| w.uuid != *uuid);
            if st.webhooks.len() == before {
                return not_found();
            }
            let req = new_request(st, "DELETE", "SUCCESSFUL");
            Out::Json(
                200,
                json!({"entity": {"uuid": uuid}, "requests": [req.json()], "related_entities": []}),
            )
        }
        _ => errors(404, "v2_bad_request", format!("no method {method} {path}")),
    }
}

fn not_found() -> Out {
    errors(404, "v2_entity_not_found", "Entity is not found")
}

fn new_request(st: &mut State, kind: &'static str, state: &'static str) -> Request {
    Request {
        request_uuid: st.uuid(),
        kind,
        state,
        date_time: now_str(),
        errors: Vec::new(),
    }
}

fn create_order(st: &mut State, mut b: Value) -> Out {
    let mut errs = rules::check_static(&b);
    if st.cfg.production {
        errs.extend(rules::check_production(&b));
    }
    if !errs.is_empty() {
        return invalid(400, "CREATE", &errs);
    }
    let phones = rules::phones(&b["recipient"]);
    b["recipient"]["phones"] = Value::Array(phones);
    let uuid = st.uuid();
    let req = new_request(st, "CREATE", "ACCEPTED");
    let number = b["number"].as_str().map(String::from);
    let seq = st.next_seq;
    st.next_seq += 1;
    let order = Order {
        uuid: uuid.clone(),
        seq,
        number: number.clone(),
        cdek_number: None,
        body: b,
        statuses: Vec::new(),
        requests: vec![req.clone()],
        related: Vec::new(),
        forced_failure: st.fail_next_create.take(),
    };
    st.orders.insert(uuid.clone(), order);
    *st.stats
        .orders_created
        .entry(number.unwrap_or_default())
        .or_default() += 1;
    st.set_status(&uuid, "ACCEPTED");
    st.schedule(
        Duration::from_millis(st.cfg.process_delay_ms),
        Job::Create(uuid.clone()),
    );
    accepted(&uuid, &req)
}

fn search(st: &mut State, query: &str) -> Out {
    let q = parse_form(query);
    let get = |k: &str| {
        q.iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let (found, code, what) = if let Some(n) = get("im_number") {
        (
            st.orders
                .values()
                .filter(|o| o.number.as_deref() == Some(n.as_str()))
                .max_by_key(|o| o.seq),
            "v2_entity_not_found_im_number",
            format!("no order with im_number {n}"),
        )
    } else if let Some(n) = get("cdek_number") {
        (
            st.find_cdek(&n),
            "v2_entity_not_found",
            format!("no order with cdek_number {n}"),
        )
    } else {
        return invalid(
            400,
            "GET",
            &[ApiError::new(
                "v2_parameters_empty",
                "give uuid, cdek_number or im_number",
            )],
        );
    };
    match found {
        Some(o) => Out::Json(200, o.json()),
        None => invalid(404, "GET", &[ApiError::new(code, what)]),
    }
}

fn delete_order(st: &mut State, uuid: &str) -> Out {
    if !st.orders.contains_key(uuid) {
        return not_found();
    }
    // A mutation behind another one still running waits for it (§3).
    let busy = st.orders[uuid]
        .requests
        .iter()
        .any(|r| r.state == "ACCEPTED" || r.state == "WAITING");
    let req = new_request(st, "DELETE", if busy { "WAITING" } else { "ACCEPTED" });
    st.orders
        .get_mut(uuid)
        .expect("checked")
        .requests
        .push(req.clone());
    st.stats.deletes += 1;
    st.schedule(
        Duration::from_millis(st.cfg.process_delay_ms),
        Job::Delete(uuid.to_string(), req.request_uuid.clone()),
    );
    accepted(uuid, &req)
}

fn print_create(st: &mut State, b: &Value) -> Out {
    let orders: Vec<Value> = match &b["orders"] {
        Value::Array(a) => a.clone(),
        v @ Value::Object(_) => vec![v.clone()],
        _ => Vec::new(),
    };
    if orders.is_empty() {
        return invalid(
            400,
            "CREATE",
            &[ApiError::new("v2_field_is_empty", "[orders] is empty")],
        );
    }
    if orders.len() > 100 {
        return invalid(
            400,
            "CREATE",
            &[ApiError::new(
                "v2_bad_request",
                "[orders] may hold at most 100 orders",
            )],
        );
    }
    for (i, o) in orders.iter().enumerate() {
        let has = |k: &str| match &o[k] {
            Value::String(s) => !s.is_empty(),
            Value::Number(_) => true,
            _ => false,
        };
        if !has("order_uuid") && !has("cdek_number") {
            return invalid(
                400,
                "CREATE",
                &[ApiError::new(
                    "v2_field_is_empty",
                    format!("[orders[{i}].order_uuid] is empty"),
                )],
            );
        }
    }
    let uuid = st.uuid();
    let req = new_request(st, "CREATE", "ACCEPTED");
    st.prints.insert(
        uuid.clone(),
        PrintForm {
            uuid: uuid.clone(),
            orders,
            copy_count: b["copy_count"].as_i64().unwrap_or(2),
            statuses: vec![Status {
                code: "ACCEPTED".into(),
                date_time: now_str(),
            }],
            request: req.clone(),
            cdek_numbers: Vec::new(),
            expires_at: None,
        },
    );
    st.stats.prints += 1;
    let d = st.cfg.print_delay_ms;
    st.schedule(
        Duration::from_millis(d / 2),
        Job::PrintProcessing(uuid.clone()),
    );
    st.schedule(Duration::from_millis(d), Job::PrintReady(uuid.clone()));
    accepted(&uuid, &req)
}

fn print_pdf(st: &mut State, uuid: &str) -> Out {
    let Some(p) = st.prints.get(uuid) else {
        return not_found();
    };
    let expired = p.expires_at.is_some_and(|t| t <= Instant::now());
    match p.status() {
        "REMOVED" => errors(404, "v2_entity_expired", "the print form has expired"),
        _ if expired => errors(404, "v2_entity_expired", "the print form has expired"),
        "READY" => Out::Pdf(crate::sim::ozon::pdf::document(
            "CDEK simulator waybill",
            &p.cdek_numbers,
        )),
        s => errors(
            404,
            "v2_entity_not_found",
            format!("the print form is not ready (status {s})"),
        ),
    }
}

fn subscribe(st: &mut State, b: &Value) -> Out {
    let url = b["url"].as_str().unwrap_or("").trim().to_string();
    let kind = b["type"].as_str().unwrap_or("").to_string();
    if url.is_empty() {
        return invalid(
            400,
            "CREATE",
            &[ApiError::new("v2_field_is_empty", "[url] is empty")],
        );
    }
    if kind != "ORDER_STATUS" && kind != "PRINT_FORM" {
        return invalid(
            400,
            "CREATE",
            &[ApiError::new(
                "v2_webhook_type_incorrect",
                format!("webhook type {kind:?} is incorrect"),
            )],
        );
    }
    st.webhooks.retain(|w| w.kind != kind);
    let uuid = st.uuid();
    st.webhooks.push(Webhook {
        uuid: uuid.clone(),
        url,
        kind,
    });
    let req = new_request(st, "CREATE", "SUCCESSFUL");
    Out::Json(
        200,
        json!({"entity": {"uuid": uuid}, "requests": [req.json()], "related_entities": []}),
    )
}

enum Fault {
    None,
    TooMany,
    Internal,
    Timeout,
    /// A proxy's HTML error page (502); the call never reached CDEK.
    ProxyPage,
    /// The real answer cut short (200); the call was performed.
    Truncated,
}

fn roll_fault(st: &mut State, key: &str) -> Fault {
    let f = &st.faults;
    if !f.only.is_empty() && !f.only.iter().any(|k| k == key) {
        return Fault::None;
    }
    if f.rate_429 + f.rate_500 + f.rate_timeout + f.rate_garbage <= 0.0 {
        return Fault::None;
    }
    let (a, b, c, d) = (f.rate_429, f.rate_500, f.rate_timeout, f.rate_garbage);
    let r: f64 = st.rng.gen();
    let (fault, name) = if r < a {
        (Fault::TooMany, "429")
    } else if r < a + b {
        (Fault::Internal, "500")
    } else if r < a + b + c {
        (Fault::Timeout, "timeout")
    } else if r < a + b + c + d {
        // A file download is not cut (nothing in its bytes would tell): a proxy page instead.
        if st.rng.gen_bool(0.5) || key.ends_with(".pdf") {
            (Fault::ProxyPage, "garbage_html")
        } else {
            (Fault::Truncated, "garbage_truncated")
        }
    } else {
        return Fault::None;
    };
    *st.stats.faults.entry(name.into()).or_default() += 1;
    fault
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get("Authorization")?.to_str().ok()?.trim();
    let (scheme, t) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| t.trim().to_string())
}

async fn dispatch(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    let method = req.method().as_str().to_string();
    if path.starts_with("/sim/") {
        return respond(control::handle(&sim, &method, &path, &body));
    }
    let query = req.query_string().to_string();
    let key = endpoint_key(&method, &path);
    let token_call = key == "POST /v2/oauth/token";
    let admitted = sim.with(|st| {
        *st.stats.calls.entry(key.clone()).or_default() += 1;
        if !token_call {
            let ok = bearer(&req).is_some_and(|t| st.token_valid(&t));
            if !ok {
                st.stats.token_rejections += 1;
                return Err(Out::Json(
                    401,
                    json!({"requests": [{"type": "AUTH", "state": "INVALID", "date_time": now_str(),
                        "errors": [{"code": "v2_token_expired", "message": "Token is expired or invalid"}],
                        "warnings": []}]}),
                ));
            }
        }
        Ok((
            roll_fault(st, &key),
            st.faults.timeout_ms,
            st.faults.apply_before_timeout,
        ))
    });
    let (fault, timeout_ms, apply_before) = match admitted {
        Ok(a) => a,
        Err(out) => return respond(out),
    };
    let run = || {
        sim.with(|st| {
            if token_call {
                token(st, &query, &body)
            } else {
                api(st, &method, &path, &query, &body)
            }
        })
    };
    match fault {
        Fault::TooMany => respond(errors(
            429,
            "too_many_requests",
            "Too many requests (simulated)",
        )),
        Fault::Internal => respond(errors(
            500,
            "v2_internal_error",
            "Internal error (simulated)",
        )),
        Fault::Timeout => {
            if apply_before {
                let _ = run();
            }
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            respond(errors(
                504,
                "v2_internal_error",
                "Gateway timeout (simulated)",
            ))
        }
        Fault::ProxyPage => HttpResponse::BadGateway()
            .content_type("text/html")
            .body(PROXY_PAGE),
        Fault::Truncated => {
            let (status, body) = match run() {
                Out::Json(status, v) => (status, v.to_string()),
                other => return respond(other),
            };
            let cut = body.len() / 2;
            let cut = (0..=cut)
                .rev()
                .find(|i| body.is_char_boundary(*i))
                .unwrap_or(0);
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::OK),
            )
            .content_type("application/json")
            .body(body[..cut].to_string())
        }
        Fault::None => respond(run()),
    }
}

/// What a reverse proxy in front of an API answers when the upstream is down.
const PROXY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Delivers webhooks (one POST each, 3 s timeout, no retry) until the simulator is dropped.
async fn webhook_worker(mut rx: mpsc::UnboundedReceiver<(String, Value)>, sim: Weak<Sim>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("sim cdek: webhook client: {e}");
            return;
        }
    };
    while let Some((url, payload)) = rx.recv().await {
        let client = client.clone();
        let sim = sim.clone();
        tokio::spawn(async move {
            let sent = client.post(&url).json(&payload).send().await;
            let ok = sent.as_ref().is_ok_and(|r| r.status().is_success());
            if !ok {
                tracing::info!("sim cdek: webhook to {url} failed");
            }
            if let Some(s) = sim.upgrade() {
                let mut st = s.lock();
                if ok {
                    st.stats.webhooks_sent += 1;
                } else {
                    st.stats.webhooks_failed += 1;
                }
            }
        });
    }
}

/// Runs due background jobs every 20 ms so webhooks fire without polling.
async fn ticker(sim: Weak<Sim>) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(s) = sim.upgrade() else {
            return;
        };
        s.with(|_| ());
    }
}

type Bound = (actix_web::dev::Server, SocketAddr, Arc<Sim>);

fn bind(mut cfg: SimConfig, listen: &str) -> anyhow::Result<Bound> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    cfg.public_url = Some(
        cfg.public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{addr}")),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let sim = Arc::new(Sim {
        state: Mutex::new(State::new(cfg)),
        hook_tx: tx,
    });
    tokio::spawn(webhook_worker(rx, Arc::downgrade(&sim)));
    tokio::spawn(ticker(Arc::downgrade(&sim)));
    let data = web::Data::from(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
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

/// Blocking run for the CLI: prints `obmen sim cdek: listening on http://ADDR` and serves until
/// interrupted.
pub async fn run(cfg: SimConfig, listen: &str) -> anyhow::Result<()> {
    let (server, addr, _sim) = bind(cfg, listen)?;
    println!("obmen sim cdek: listening on http://{addr}");
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

    #[test]
    fn forms_and_queries_are_decoded() {
        assert_eq!(
            parse_form("a=1&b=x+y%2Fz&c"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y/z".to_string()),
                ("c".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn endpoint_keys_hide_ids() {
        assert_eq!(
            endpoint_key("GET", "/v2/orders/abc"),
            "GET /v2/orders/{uuid}"
        );
        assert_eq!(
            endpoint_key("GET", "/v2/print/orders/abc.pdf"),
            "GET /v2/print/orders/{uuid}.pdf"
        );
        assert_eq!(endpoint_key("GET", "/v3/x"), "<unknown>");
    }

    #[tokio::test]
    async fn an_order_is_created_in_the_background() {
        let sim = start(
            SimConfig {
                process_delay_ms: 50,
                ..Default::default()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let t: Value = http
            .post(format!(
                "{}/oauth/token?grant_type=client_credentials&client_id={TEST_CLIENT_ID}&client_secret={TEST_CLIENT_SECRET}",
                sim.api_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["access_token"].as_str().unwrap().to_string();
        let order = json!({"tariff_code": 136, "number": "A1",
            "recipient": {"name": "X", "phones": {"number": "+79990000000"}},
            "shipment_point": "MSK1", "delivery_point": "SPB2",
            "packages": [{"number": "1", "weight": 10, "items": [
                {"name": "n", "ware_key": "k", "payment": {"value": 0}, "cost": 1, "weight": 10, "amount": 1}]}]});
        let r = http
            .post(format!("{}/orders", sim.api_url()))
            .bearer_auth(&token)
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let v: Value = r.json().await.unwrap();
        let uuid = v["entity"]["uuid"].as_str().unwrap().to_string();
        assert!(v["entity"].get("cdek_number").is_none());
        assert_eq!(
            sim.sim.order(&uuid).unwrap()["requests"][0]["state"],
            "ACCEPTED"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = sim.sim.order(&uuid).unwrap();
        assert_eq!(o["requests"][0]["state"], "SUCCESSFUL");
        assert_eq!(o["entity"]["statuses"][0]["code"], "CREATED");
        assert_eq!(o["entity"]["statuses"][1]["code"], "ACCEPTED");
        assert_eq!(o["entity"]["cdek_number"].as_str().unwrap().len(), 10);
        assert_eq!(
            o["entity"]["recipient"]["phones"][0]["number"],
            "+79990000000"
        );
        // A delete right behind a create waits for it, then runs.
        let r = http
            .post(format!("{}/orders", sim.api_url()))
            .bearer_auth(&token)
            .json(&order)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let second = v["entity"]["uuid"].as_str().unwrap().to_string();
        let v: Value = http
            .delete(format!("{}/orders/{second}", sim.api_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["requests"][0]["state"], "WAITING");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = sim.sim.order(&second).unwrap();
        assert_eq!(o["requests"][1]["type"], "DELETE");
        assert_eq!(o["requests"][1]["state"], "SUCCESSFUL");
        assert_eq!(o["entity"]["statuses"][0]["code"], "REMOVED");
        sim.stop().await;
    }
}
