//! The in-memory state of the CDEK simulator: tokens, orders, print forms, webhooks, the queue of
//! background jobs, faults and stats.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::{self, ApiError};
use super::SimConfig;

/// CDEK's date format: `2020-02-10T11:10:34+0700`.
pub fn now_str() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// A random UUID v4 string.
pub fn new_uuid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.gen();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &h[17..20],
        &h[20..32]
    )
}

/// One entry of a request journal (`requests[]`).
#[derive(Debug, Clone)]
pub struct Request {
    pub request_uuid: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub date_time: String,
    pub errors: Vec<ApiError>,
}

impl Request {
    pub fn json(&self) -> Value {
        json!({
            "request_uuid": self.request_uuid, "type": self.kind, "state": self.state,
            "date_time": self.date_time,
            "errors": self.errors.iter().map(ApiError::json).collect::<Vec<_>>(),
            "warnings": [],
        })
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub code: String,
    pub date_time: String,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub uuid: String,
    pub seq: u64,
    pub number: Option<String>,
    pub cdek_number: Option<String>,
    /// The request body as sent (phones normalised to an array).
    pub body: Value,
    /// Oldest first (rendered newest first).
    pub statuses: Vec<Status>,
    pub requests: Vec<Request>,
    pub related: Vec<Value>,
    /// Set by `fail_next_create`: the create ends INVALID with this code.
    pub forced_failure: Option<String>,
}

impl Order {
    pub fn status(&self) -> Option<&str> {
        self.statuses.last().map(|s| s.code.as_str())
    }

    /// The state of the CREATE request.
    pub fn create_state(&self) -> &'static str {
        self.requests
            .iter()
            .find(|r| r.kind == "CREATE")
            .map_or("ACCEPTED", |r| r.state)
    }

    /// The `GET /v2/orders/{uuid}` document.
    pub fn json(&self) -> Value {
        let mut entity = self.body.clone();
        let m = entity.as_object_mut().expect("orders are objects");
        m.insert("uuid".into(), json!(self.uuid));
        m.entry("type").or_insert(json!(1));
        m.insert("is_return".into(), json!(false));
        m.insert("is_reverse".into(), json!(false));
        m.insert("is_client_return".into(), json!(false));
        m.insert(
            "delivery_mode".into(),
            json!(rules::delivery_mode(&self.body)),
        );
        if let Some(c) = &self.cdek_number {
            m.insert("cdek_number".into(), json!(c));
        }
        if let Some(pk) = m.get_mut("packages").and_then(Value::as_array_mut) {
            for (i, p) in pk.iter_mut().enumerate() {
                if let Some(p) = p.as_object_mut() {
                    let w = p.get("weight").cloned().unwrap_or(json!(0));
                    p.insert(
                        "package_id".into(),
                        json!(format!("{}-{}", &self.uuid[..8], i + 1)),
                    );
                    p.insert("weight_volume".into(), w.clone());
                    p.insert("weight_calc".into(), w);
                }
            }
        }
        m.insert(
            "statuses".into(),
            Value::Array(
                self.statuses
                    .iter()
                    .rev()
                    .map(|s| {
                        json!({"code": s.code, "name": rules::status_name(&s.code),
                               "date_time": s.date_time, "city": "Москва"})
                    })
                    .collect(),
            ),
        );
        json!({
            "entity": entity,
            "requests": self.requests.iter().map(Request::json).collect::<Vec<_>>(),
            "related_entities": self.related,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PrintForm {
    pub uuid: String,
    /// `{"order_uuid": …}` / `{"cdek_number": …}` as given.
    pub orders: Vec<Value>,
    pub copy_count: i64,
    pub statuses: Vec<Status>,
    pub request: Request,
    /// CDEK numbers printed on the form (resolved when processing).
    pub cdek_numbers: Vec<String>,
    pub expires_at: Option<Instant>,
}

impl PrintForm {
    pub fn status(&self) -> &str {
        self.statuses.last().map_or("ACCEPTED", |s| s.code.as_str())
    }

    pub fn url(&self, base: &str) -> String {
        format!("{base}/v2/print/orders/{}.pdf", self.uuid)
    }

    pub fn json(&self, base: &str) -> Value {
        let mut entity = json!({
            "uuid": self.uuid, "orders": self.orders, "copy_count": self.copy_count,
            "statuses": self.statuses.iter().map(|s| json!({
                "code": s.code,
                "name": match s.code.as_str() { "ACCEPTED" => "Принят", "PROCESSING" => "Формируется",
                    "READY" => "Сформирован", "REMOVED" => "Удален", _ => "Некорректный запрос" },
                "date_time": s.date_time,
            })).collect::<Vec<_>>(),
        });
        if self.status() == "READY" {
            entity["url"] = json!(self.url(base));
        }
        json!({"entity": entity, "requests": [self.request.json()], "related_entities": []})
    }
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub uuid: String,
    pub url: String,
    pub kind: String,
}

impl Webhook {
    pub fn json(&self) -> Value {
        json!({"uuid": self.uuid, "url": self.url, "type": self.kind})
    }
}

/// Work done in the background when its time comes.
#[derive(Debug, Clone)]
pub enum Job {
    Create(String),
    Delete(String, String),
    PrintProcessing(String),
    PrintReady(String),
    PrintExpire(String),
}

/// Fault injection settings (`POST /sim/faults`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub rate_429: f64,
    pub rate_500: f64,
    pub rate_timeout: f64,
    /// Share of calls answered with garbage: half of them a proxy's HTML error page (502, the
    /// call not performed), half the real answer cut short (200, the call performed).
    pub rate_garbage: f64,
    pub timeout_ms: u64,
    /// With a timeout fault, perform the call first, then hang.
    pub apply_before_timeout: bool,
    pub seed: Option<u64>,
    /// Only these endpoints (`"POST /v2/orders"` …); empty = all API endpoints.
    pub only: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: BTreeMap<String, u64>,
    pub orders_created: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub token_rejections: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
    pub deletes: u64,
    pub prints: u64,
    pub faults: BTreeMap<String, u64>,
}

impl Stats {
    pub fn json(&self) -> Value {
        json!({
            "calls": self.calls, "orders_created": self.orders_created,
            "tokens_issued": self.tokens_issued, "token_rejections": self.token_rejections,
            "webhooks_sent": self.webhooks_sent, "webhooks_failed": self.webhooks_failed,
            "deletes": self.deletes, "prints": self.prints, "faults": self.faults,
        })
    }
}

/// How many webhook payloads `GET /sim/webhooks` keeps.
pub const WEBHOOK_LOG_MAX: usize = 200;

pub struct State {
    pub cfg: SimConfig,
    pub tokens: HashMap<String, Instant>,
    pub orders: HashMap<String, Order>,
    pub next_seq: u64,
    pub prints: HashMap<String, PrintForm>,
    pub webhooks: Vec<Webhook>,
    pub jobs: Vec<(Instant, Job)>,
    pub faults: Faults,
    pub rng: StdRng,
    pub stats: Stats,
    /// Webhook deliveries produced by the last operation: (url, payload).
    pub outbox: Vec<(String, Value)>,
    /// The last webhook payloads produced (also without a subscription), newest last.
    pub webhook_log: VecDeque<Value>,
    /// `fail_next_create`: the next accepted create ends INVALID with this code.
    pub fail_next_create: Option<String>,
}

impl State {
    pub fn new(cfg: SimConfig) -> State {
        State {
            cfg,
            tokens: HashMap::new(),
            orders: HashMap::new(),
            next_seq: 1,
            prints: HashMap::new(),
            webhooks: Vec::new(),
            jobs: Vec::new(),
            faults: Faults::default(),
            rng: StdRng::from_entropy(),
            stats: Stats::default(),
            outbox: Vec::new(),
            webhook_log: VecDeque::new(),
            fail_next_create: None,
        }
    }

    /// Clears everything but the configuration.
    pub fn reset(&mut self) {
        let cfg = self.cfg.clone();
        *self = State::new(cfg);
    }

    pub fn uuid(&mut self) -> String {
        new_uuid(&mut self.rng)
    }

    pub fn issue_token(&mut self) -> String {
        let b: [u8; 24] = self.rng.gen();
        let t = format!("eyJhbGciOiJSUzI1NiJ9.sim{}", hex::encode(b));
        self.tokens.insert(
            t.clone(),
            Instant::now() + Duration::from_secs(self.cfg.token_ttl_secs),
        );
        self.stats.tokens_issued += 1;
        t
    }

    /// True when the token is known and not expired.
    pub fn token_valid(&mut self, t: &str) -> bool {
        let now = Instant::now();
        self.tokens.retain(|_, exp| *exp > now);
        self.tokens.contains_key(t)
    }

    pub fn schedule(&mut self, after: Duration, job: Job) {
        self.jobs.push((Instant::now() + after, job));
    }

    /// Looks an order up by uuid or CDEK number.
    pub fn find_cdek(&self, number: &str) -> Option<&Order> {
        self.orders
            .values()
            .find(|o| o.cdek_number.as_deref() == Some(number))
    }

    fn webhook(&mut self, kind: &str, payload: Value) {
        if self.webhook_log.len() == WEBHOOK_LOG_MAX {
            self.webhook_log.pop_front();
        }
        self.webhook_log.push_back(payload.clone());
        if let Some(w) = self.webhooks.iter().find(|w| w.kind == kind) {
            self.outbox.push((w.url.clone(), payload));
        }
    }

    /// Appends a status to an order and produces its ORDER_STATUS webhook.
    pub fn set_status(&mut self, uuid: &str, code: &str) {
        let Some(o) = self.orders.get_mut(uuid) else {
            return;
        };
        let now = now_str();
        o.statuses.push(Status {
            code: code.to_string(),
            date_time: now.clone(),
        });
        let payload = json!({
            "type": "ORDER_STATUS", "date_time": now, "uuid": o.uuid,
            "attributes": {
                "is_return": false, "cdek_number": o.cdek_number, "number": o.number,
                "code": code, "status_code": code, "status_reason_code": "",
                "status_date_time": now, "city_name": "Москва", "city_code": "44",
                "is_reverse": false, "is_client_return": false,
                "deleted": code == "REMOVED",
            },
        });
        self.webhook("ORDER_STATUS", payload);
    }

    /// Runs the background jobs that are due.
    pub fn tick(&mut self, now: Instant) {
        if self.jobs.iter().all(|(t, _)| *t > now) {
            return;
        }
        let mut due: Vec<(Instant, Job)> = Vec::new();
        let mut rest = Vec::new();
        for j in std::mem::take(&mut self.jobs) {
            if j.0 <= now {
                due.push(j);
            } else {
                rest.push(j);
            }
        }
        self.jobs = rest;
        due.sort_by_key(|j| j.0);
        for (_, job) in due {
            self.run(job);
        }
    }

    fn run(&mut self, job: Job) {
        match job {
            Job::Create(uuid) => self.process_create(&uuid),
            Job::Delete(uuid, req) => self.process_delete(&uuid, &req),
            Job::PrintProcessing(uuid) => {
                if let Some(p) = self.prints.get_mut(&uuid) {
                    p.statuses.push(Status {
                        code: "PROCESSING".into(),
                        date_time: now_str(),
                    });
                }
            }
            Job::PrintReady(uuid) => self.process_print(&uuid),
            Job::PrintExpire(uuid) => {
                if let Some(p) = self.prints.get_mut(&uuid) {
                    p.statuses.push(Status {
                        code: "REMOVED".into(),
                        date_time: now_str(),
                    });
                }
            }
        }
    }

    fn process_create(&mut self, uuid: &str) {
        let cdek_number = format!("{}", self.rng.gen_range(1_000_000_000u64..10_000_000_000));
        let Some(o) = self.orders.get_mut(uuid) else {
            return;
        };
        let mut errors = rules::check_async(&o.body);
        if let Some(code) = o.forced_failure.take() {
            errors.push(ApiError::new(
                &code,
                format!("simulated failure ({code}), set by fail_next_create"),
            ));
        }
        let ok = errors.is_empty();
        if let Some(r) = o.requests.iter_mut().find(|r| r.kind == "CREATE") {
            r.state = if ok { "SUCCESSFUL" } else { "INVALID" };
            r.date_time = now_str();
            r.errors = errors;
        }
        if ok {
            o.cdek_number = Some(cdek_number);
            self.set_status(uuid, "CREATED");
        } else {
            self.set_status(uuid, "INVALID");
        }
    }

    fn process_delete(&mut self, uuid: &str, req: &str) {
        let Some(o) = self.orders.get_mut(uuid) else {
            return;
        };
        let current = o.status().unwrap_or("ACCEPTED").to_string();
        let deletable = current == "CREATED" || current == "INVALID";
        let Some(r) = o.requests.iter_mut().find(|r| r.request_uuid == req) else {
            return;
        };
        r.date_time = now_str();
        if deletable {
            r.state = "SUCCESSFUL";
            self.set_status(uuid, "REMOVED");
        } else if current == "REMOVED" {
            r.state = "INVALID";
            r.errors = vec![ApiError::new(
                "v2_entity_not_found",
                "The order is already deleted",
            )];
        } else {
            r.state = "INVALID";
            r.errors = vec![ApiError::new(
                "v2_entity_has_final_status",
                format!(
                    "The order cannot be deleted: its status is {current}, the parcel has already moved (register a refusal instead)"
                ),
            )];
        }
    }

    fn process_print(&mut self, uuid: &str) {
        let Some(p) = self.prints.get(uuid) else {
            return;
        };
        let mut numbers = Vec::new();
        let mut order_uuids = Vec::new();
        for r in &p.orders {
            let found = if let Some(u) = r["order_uuid"].as_str() {
                self.orders.get(u)
            } else {
                let n = match &r["cdek_number"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                self.find_cdek(&n)
            };
            if let Some(o) = found {
                if let Some(n) = &o.cdek_number {
                    if o.status() != Some("REMOVED") {
                        numbers.push(n.clone());
                        order_uuids.push(o.uuid.clone());
                    }
                }
            }
        }
        let ttl = Duration::from_secs(self.cfg.print_ttl_secs);
        let base = self.cfg.public_url.clone().unwrap_or_default();
        let p = self.prints.get_mut(uuid).expect("checked");
        p.request.date_time = now_str();
        if numbers.is_empty() {
            p.statuses.push(Status {
                code: "INVALID".into(),
                date_time: now_str(),
            });
            p.request.state = "INVALID";
            p.request.errors = vec![ApiError::new(
                "v2_entity_empty",
                "no order of the request can be printed",
            )];
            return;
        }
        p.statuses.push(Status {
            code: "READY".into(),
            date_time: now_str(),
        });
        p.request.state = "SUCCESSFUL";
        p.cdek_numbers = numbers;
        p.expires_at = Some(Instant::now() + ttl);
        let url = p.url(&base);
        let payload = json!({
            "type": "PRINT_FORM", "date_time": now_str(), "uuid": uuid,
            "attributes": {"type": "WAYBILL", "url": url},
        });
        self.schedule(ttl, Job::PrintExpire(uuid.to_string()));
        for ou in order_uuids {
            if let Some(o) = self.orders.get_mut(&ou) {
                o.related.retain(|r| r["type"] != "waybill");
                o.related
                    .push(json!({"type": "waybill", "uuid": uuid, "url": url}));
            }
        }
        self.webhook("PRINT_FORM", payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_v4() {
        let mut rng = StdRng::seed_from_u64(7);
        let u = new_uuid(&mut rng);
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
        assert_ne!(u, new_uuid(&mut rng));
    }

    #[test]
    fn date_format_has_a_numeric_offset() {
        let s = now_str();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with("+0000"), "{s}");
    }
}
