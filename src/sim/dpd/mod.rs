//! A local simulator of DPD Russia's SOAP web services (`ws.dpd.ru/services/…`), for tests and
//! demo mode. Facts follow `shared/reference/other-apis.md` §1; the element names are those of
//! the DPD WSDLs as far as known and are written down in [`crate::connectors::dpd`] (the client
//! speaks the same shapes). Start it with [`start`] (tests) or [`run`] / the CLI
//! `obmen sim dpd --listen ADDR` (prints `obmen sim dpd: listening on http://ADDR`).
//!
//! # Transport
//! SOAP 1.1: `POST /services/order2` (`createOrder`, `getOrderStatus`, `cancelOrder`) and
//! `POST /services/tracing` (`getStatesByClientOrder`, `getStatesByDPDOrder`); the operation is
//! the first element of the SOAP Body, read by local name (any namespace prefix). Answers are
//! `text/xml` envelopes with `<ns2:{op}Response>` in the service namespace. `GET
//! /services/<svc>?wsdl` gives a minimal WSDL naming the operations.
//!
//! Faults (HTTP 500, SOAP `Fault` with `detail/WSFault{code,message}`): a body that is not a
//! SOAP envelope or misses the request wrapper → `S:Client` code `invalid-request`; unknown
//! operation → code `unknown-operation`; wrong or missing `auth{clientNumber, clientKey}` →
//! `S:Client` code `no-auth`.
//!
//! # Orders
//! - createOrder validates each order: `header.datePickup` a YYYY-MM-DD date, `orderNumberInternal`
//!   1..20 chars, `serviceCode`, `receiverAddress.{name,city,street}`, `cargoWeight` > 0. A refused
//!   order answers `status` OrderError with every reason in `errorMessage` (joined by "; ").
//!   An existing orderNumberInternal → `OrderDuplicate`, "order with number N already exists".
//!   Else `OrderPending` (mode `pending`, default) or `OK` + `orderNum` (mode `ok`).
//! - getOrderStatus answers `OrderPending` for `pending_polls` polls, then `OK` + `orderNum`
//!   (`RU` + 9 digits, unique); an unknown number (or another `datePickup`) → `OrderError`
//!   "order N not found". A cancelled order answers `OrderCancelled`.
//! - cancelOrder by orderNumberInternal or orderNum → `Canceled`, `CanceledPreviously`, `NotFound`.
//! - Getting a number adds the tracking state `NewOrderByClient`; cancelling adds `NotDone`.
//!   Tracing lists the states of numbered orders only.
//!
//! # Control API (no auth, JSON, under `/sim/`)
//! - `POST /sim/faults {"rate_500","rate_timeout","timeout_ms","apply_before_timeout","seed"}`
//!   (also GET): shares of SOAP calls answered 500 (a plain text body, nothing applied) or held
//!   `timeout_ms` then 504 (with `apply_before_timeout` the operation is applied first — the
//!   "the order exists although the client saw a timeout" case). `{}` turns faults off.
//! - `POST /sim/config {"mode":"pending|ok","pending_polls":N}` (also GET).
//! - `POST /sim/orders/{orderNumberInternal}/state {"state":"Delivering"}` adds a tracking state.
//! - `GET /sim/orders`, `GET /sim/orders/{orderNumberInternal}`.
//! - `GET /sim/stats` → `{"calls":{op:n},"orders_created":{orderNumberInternal:n},"duplicates":n,
//!   "auth_failures":n,"faults":{kind:n}}`; `orders_created` counts createOrder attempts per number
//!   that passed validation, duplicates included, so a blind re-create shows as 2.
//! - `POST /sim/reset`: orders, faults and stats cleared (config kept).

mod ops;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::connectors::dpd::xml::{self, Node, NS_ORDER, NS_TRACING};
use ops::Answer;
pub use state::Mode;
use state::{Faults, State, TrackState};

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub client_number: String,
    pub client_key: String,
    pub mode: Mode,
    /// getOrderStatus answers OrderPending this many times before OK.
    pub pending_polls: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_number: "1001234567".into(),
            client_key: "sim-client-key".into(),
            mode: Mode::Pending,
            pending_polls: 2,
        }
    }
}

/// The shared simulator state.
pub struct Sim {
    state: Mutex<State>,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `GET /sim/stats` document.
    pub fn stats(&self) -> Value {
        self.lock().stats.json()
    }

    /// The order as the sim holds it (`GET /sim/orders/{n}`).
    pub fn order(&self, number_internal: &str) -> Option<Value> {
        self.lock().orders.get(number_internal).map(|o| o.json())
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

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// The operations of each service.
fn service_ops(service: &str) -> Option<&'static [&'static str]> {
    match service {
        "order2" => Some(&["createOrder", "getOrderStatus", "cancelOrder"]),
        "tracing" => Some(&["getStatesByClientOrder", "getStatesByDPDOrder"]),
        _ => None,
    }
}

fn namespace(service: &str) -> &'static str {
    if service == "tracing" {
        NS_TRACING
    } else {
        NS_ORDER
    }
}

fn soap(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("text/xml; charset=utf-8")
    .body(body)
}

fn fault(faultcode: &str, code: &str, msg: &str) -> HttpResponse {
    soap(500, xml::fault(faultcode, code, msg))
}

fn response(service: &str, op: &str, inner: &str) -> HttpResponse {
    soap(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <S:Envelope xmlns:S=\"{}\"><S:Body>\
             <ns2:{op}Response xmlns:ns2=\"{}\">{inner}</ns2:{op}Response>\
             </S:Body></S:Envelope>",
            xml::SOAP_ENV,
            namespace(service)
        ),
    )
}

fn wsdl(service: &str, ops: &[&str], base: &str) -> HttpResponse {
    let ns = namespace(service);
    let mut port = String::new();
    for op in ops {
        port.push_str(&format!(
            "<wsdl:operation name=\"{op}\"><wsdl:input message=\"tns:{op}\"/>\
             <wsdl:output message=\"tns:{op}Response\"/></wsdl:operation>"
        ));
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" \
         xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" xmlns:tns=\"{ns}\" \
         targetNamespace=\"{ns}\" name=\"DPD{service}\">\
         <wsdl:portType name=\"DPD{service}\">{port}</wsdl:portType>\
         <wsdl:service name=\"DPD{service}\"><wsdl:port name=\"DPD{service}Port\" binding=\"tns:DPD{service}Binding\">\
         <soap:address location=\"{base}/services/{service}\"/></wsdl:port></wsdl:service>\
         </wsdl:definitions>"
    );
    soap(200, body)
}

fn run_op(st: &mut State, op_name: &str, op: &Node) -> Answer {
    match op_name {
        "createOrder" => ops::create_order(st, op),
        "getOrderStatus" => ops::order_status(st, op),
        "cancelOrder" => ops::cancel_order(st, op),
        "getStatesByClientOrder" => ops::states_by_client_order(st, op),
        _ => ops::states_by_dpd_order(st, op),
    }
}

fn answer(service: &str, op_name: &str, a: Answer) -> HttpResponse {
    match a {
        Answer::Ok(inner) => response(service, op_name, &inner),
        Answer::Fault(fc, code, msg) => fault(fc, code, &msg),
    }
}

enum Roll {
    None,
    Internal,
    Timeout,
}

async fn services(
    req: HttpRequest,
    body: web::Bytes,
    sim: web::Data<Sim>,
    path: web::Path<String>,
) -> HttpResponse {
    let service = path.into_inner();
    let Some(ops_of) = service_ops(&service) else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such service");
    };
    if req.method() == actix_web::http::Method::GET {
        if req.query_string().to_ascii_lowercase().contains("wsdl") {
            let base = format!("http://{}", req.connection_info().host());
            return wsdl(&service, ops_of, &base);
        }
        return HttpResponse::MethodNotAllowed().body("POST a SOAP envelope, or GET ?wsdl");
    }
    let root = match xml::parse(&body) {
        Ok(r) => r,
        Err(e) => return fault("Client", "invalid-request", &format!("bad XML: {e}")),
    };
    let op = match xml::body_element(&root) {
        Ok(op) => op.clone(),
        Err(e) => return fault("Client", "invalid-request", &e),
    };
    let Some(op_name) = ops_of.iter().find(|o| **o == op.name).copied() else {
        let msg = format!("operation {} is not in service {service}", op.name);
        return fault("Client", "unknown-operation", &msg);
    };
    let admitted = {
        let mut st = sim.lock();
        let auth = op.find("auth");
        let number = auth.map(|a| a.str("clientNumber")).unwrap_or("");
        let key = auth.map(|a| a.str("clientKey")).unwrap_or("");
        if number != st.cfg.client_number || key != st.cfg.client_key {
            st.stats.auth_failures += 1;
            None
        } else {
            *st.stats.calls.entry(op_name.to_string()).or_default() += 1;
            let f = st.faults.clone();
            let r: f64 = st.rng.gen();
            let roll = if r < f.rate_500 {
                Roll::Internal
            } else if r < f.rate_500 + f.rate_timeout {
                Roll::Timeout
            } else {
                Roll::None
            };
            let kind = match roll {
                Roll::Internal => Some("500"),
                Roll::Timeout => Some("timeout"),
                Roll::None => None,
            };
            if let Some(k) = kind {
                *st.stats.faults.entry(k.to_string()).or_default() += 1;
            }
            Some((roll, f))
        }
    };
    let Some((roll, f)) = admitted else {
        return fault(
            "Client",
            "no-auth",
            "Ошибка авторизации: неверный clientNumber или clientKey",
        );
    };
    match roll {
        Roll::Internal => HttpResponse::InternalServerError()
            .content_type("text/plain")
            .body("Internal Server Error"),
        Roll::Timeout => {
            if f.apply_before_timeout {
                let _ = run_op(&mut sim.lock(), op_name, &op);
            }
            tokio::time::sleep(Duration::from_millis(f.timeout_ms)).await;
            HttpResponse::GatewayTimeout()
                .content_type("text/plain")
                .body("Gateway Timeout")
        }
        Roll::None => {
            let a = run_op(&mut sim.lock(), op_name, &op);
            answer(&service, op_name, a)
        }
    }
}

fn json_out(status: u16, v: Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("application/json")
    .body(v.to_string())
}

fn config_json(c: &SimConfig) -> Value {
    json!({"mode": c.mode, "pending_polls": c.pending_polls, "client_number": c.client_number})
}

fn control(sim: &Sim, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    let parsed: Result<Value, _> = if body.iter().all(|b| b.is_ascii_whitespace()) {
        Ok(json!({}))
    } else {
        serde_json::from_slice(body)
    };
    let Ok(b) = parsed else {
        return json_out(400, json!({"error": "body is not JSON"}));
    };
    let mut st = sim.lock();
    let parts: Vec<&str> = path.trim_start_matches("/sim/").split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["faults"]) => match serde_json::from_value::<Faults>(b) {
            Ok(f) => {
                if let Some(seed) = f.seed {
                    st.rng = rand::rngs::StdRng::seed_from_u64(seed);
                }
                st.faults = f;
                json_out(200, serde_json::to_value(&st.faults).unwrap_or_default())
            }
            Err(e) => json_out(400, json!({"error": e.to_string()})),
        },
        ("GET", ["faults"]) => json_out(200, serde_json::to_value(&st.faults).unwrap_or_default()),
        ("POST", ["config"]) => {
            if let Some(m) = b.get("mode") {
                match serde_json::from_value::<Mode>(m.clone()) {
                    Ok(m) => st.cfg.mode = m,
                    Err(_) => return json_out(400, json!({"error": "mode: pending or ok"})),
                }
            }
            if let Some(n) = b.get("pending_polls") {
                match n.as_u64() {
                    Some(n) => st.cfg.pending_polls = n.min(u32::MAX as u64) as u32,
                    None => return json_out(400, json!({"error": "pending_polls: a number"})),
                }
            }
            json_out(200, config_json(&st.cfg))
        }
        ("GET", ["config"]) => json_out(200, config_json(&st.cfg)),
        ("GET", ["orders"]) => {
            let list: Vec<Value> = st.orders.values().map(|o| o.json()).collect();
            json_out(200, json!({ "orders": list }))
        }
        ("GET", ["orders", n]) => match st.orders.get(*n) {
            Some(o) => json_out(200, o.json()),
            None => json_out(404, json!({"error": format!("order {n} not found")})),
        },
        ("POST", ["orders", n, "state"]) => {
            let Some(state) = b.get("state").and_then(|s| s.as_str()) else {
                return json_out(400, json!({"error": "state is required"}));
            };
            match st.orders.get_mut(*n) {
                Some(o) => {
                    o.states.push(TrackState {
                        state: state.to_string(),
                        at: state::now(),
                    });
                    json_out(200, o.json())
                }
                None => json_out(404, json!({"error": format!("order {n} not found")})),
            }
        }
        ("GET", ["stats"]) => json_out(200, st.stats.json()),
        ("POST", ["reset"]) => {
            st.reset();
            json_out(200, json!({"ok": true}))
        }
        _ => json_out(404, json!({"error": "unknown control path"})),
    }
}

async fn control_route(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    control(&sim, req.method().as_str(), req.path(), &body)
}

type Bound = (actix_web::dev::Server, SocketAddr, Arc<Sim>);

fn bind(cfg: SimConfig, listen: &str) -> anyhow::Result<Bound> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        state: Mutex::new(State::new(cfg)),
    });
    let data = web::Data::from(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/services/{service}", web::route().to(services))
            .route("/sim/{tail:.*}", web::route().to(control_route))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, addr, sim))
}

/// Binds (port 0 allowed) and spawns the server on the current runtime; returns at once.
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

/// Blocking run for the CLI: prints `obmen sim dpd: listening on http://ADDR` and serves until
/// interrupted.
pub async fn run(cfg: SimConfig, listen: &str) -> anyhow::Result<()> {
    let (server, addr, _sim) = bind(cfg, listen)?;
    println!("obmen sim dpd: listening on http://{addr}");
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
