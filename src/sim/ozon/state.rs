//! The in-memory state of the simulator: products, postings, tasks, faults, rate windows, stats.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::{self, Window};
use super::SimConfig;

/// One product card as the simulator holds it.
#[derive(Debug, Clone)]
pub struct Product {
    pub product_id: i64,
    pub sku: i64,
    pub offer_id: String,
    pub name: String,
    pub description_category_id: i64,
    pub type_id: i64,
    pub barcode: String,
    pub price: f64,
    pub old_price: f64,
    pub min_price: f64,
    pub currency_code: String,
    pub vat: String,
    pub depth: i64,
    pub width: i64,
    pub height: i64,
    pub dimension_unit: String,
    pub weight: i64,
    pub weight_unit: String,
    pub images: Vec<String>,
    pub primary_image: String,
    pub attributes: Value,
    /// The last imported card (canonical JSON), to answer `skipped` for an unchanged card.
    pub card: String,
    /// Stock per warehouse.
    pub stocks: BTreeMap<i64, i64>,
    /// Last accepted stock update per warehouse.
    pub stock_at: HashMap<i64, Instant>,
    /// Accepted price updates in the last hour.
    pub price_window: Window,
    pub stock_updates: u64,
    pub price_updates: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    pub fn new(product_id: i64, sku: i64, offer_id: &str, now: DateTime<Utc>) -> Product {
        Product {
            product_id,
            sku,
            offer_id: offer_id.to_string(),
            name: offer_id.to_string(),
            description_category_id: 17028922,
            type_id: 91565,
            barcode: String::new(),
            price: 0.0,
            old_price: 0.0,
            min_price: 0.0,
            currency_code: "RUB".into(),
            vat: "0".into(),
            depth: 100,
            width: 100,
            height: 100,
            dimension_unit: "mm".into(),
            weight: 100,
            weight_unit: "g".into(),
            images: Vec::new(),
            primary_image: String::new(),
            attributes: json!([]),
            card: String::new(),
            stocks: BTreeMap::new(),
            stock_at: HashMap::new(),
            price_window: Window::default(),
            stock_updates: 0,
            price_updates: 0,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn present(&self) -> i64 {
        self.stocks.values().sum()
    }

    /// The `/sim/products/{offer_id}` view.
    pub fn sim_json(&self) -> Value {
        json!({
            "offer_id": self.offer_id, "product_id": self.product_id, "sku": self.sku,
            "name": self.name, "description_category_id": self.description_category_id,
            "type_id": self.type_id, "barcode": self.barcode,
            "price": money(self.price), "old_price": money(self.old_price), "min_price": money(self.min_price),
            "currency_code": self.currency_code, "vat": self.vat,
            "depth": self.depth, "width": self.width, "height": self.height,
            "dimension_unit": self.dimension_unit, "weight": self.weight, "weight_unit": self.weight_unit,
            "images": self.images, "primary_image": self.primary_image, "attributes": self.attributes,
            "stocks": self.stocks.iter().map(|(w, s)| (w.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            "stock_updates": self.stock_updates, "price_updates": self.price_updates,
            "created_at": ts(self.created_at), "updated_at": ts(self.updated_at),
        })
    }
}

/// A price the way Ozon writes it in strings ("1390.000000").
pub fn money(v: f64) -> String {
    format!("{v:.6}")
}

/// RFC3339 UTC with a Z.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Debug, Clone)]
pub struct PostingProduct {
    pub sku: i64,
    pub offer_id: String,
    pub name: String,
    pub quantity: i64,
    pub price: f64,
}

#[derive(Debug, Clone)]
pub struct Posting {
    pub posting_number: String,
    pub order_id: i64,
    pub order_number: String,
    pub status: String,
    pub substatus: String,
    pub previous_substatus: String,
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub products: Vec<PostingProduct>,
    pub tracking_number: String,
    pub in_process_at: DateTime<Utc>,
    pub shipment_date: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    pub shipped_at: Option<Instant>,
    /// (reason id, reason title, initiator, after ship)
    pub cancellation: Option<(i64, String, String, bool)>,
}

impl Posting {
    pub fn set_status(&mut self, status: &str, now: DateTime<Utc>) {
        self.previous_substatus = std::mem::take(&mut self.substatus);
        self.status = status.to_string();
        self.substatus = rules::substatus_for(status).to_string();
        self.status_changed_at = now;
    }

    /// The posting object of §7.4 without optional blocks.
    pub fn json(&self) -> Value {
        self.json_with(&Value::Null)
    }

    /// The posting object of §7.4; `with` (`{"barcodes":true,…}`) fills the optional blocks.
    pub fn json_with(&self, with: &Value) -> Value {
        let want = |k: &str| with[k].as_bool().unwrap_or(false);
        let cancellation = match &self.cancellation {
            Some((id, reason, initiator, after_ship)) => json!({
                "cancel_reason_id": id, "cancel_reason": reason,
                "cancellation_type": if initiator == "Продавец" { "seller" } else { "ozon" },
                "cancelled_after_ship": after_ship, "affect_cancellation_rating": initiator == "Продавец",
                "cancellation_initiator": initiator,
            }),
            None => json!({
                "cancel_reason_id": 0, "cancel_reason": "", "cancellation_type": "",
                "cancelled_after_ship": false, "affect_cancellation_rating": false,
                "cancellation_initiator": "",
            }),
        };
        json!({
            "posting_number": self.posting_number,
            "order_id": self.order_id,
            "order_number": self.order_number,
            "status": self.status,
            "substatus": self.substatus,
            "delivery_method": {
                "id": self.warehouse_id, "name": format!("Ozon Логистика, {}", self.warehouse_name),
                "warehouse_id": self.warehouse_id, "warehouse": self.warehouse_name,
                "tpl_provider_id": 24, "tpl_provider": "Ozon Логистика",
            },
            "tracking_number": self.tracking_number,
            "tpl_integration_type": "ozon",
            "in_process_at": ts(self.in_process_at),
            "shipment_date": ts(self.shipment_date),
            "delivering_date": null,
            "cancellation": cancellation,
            "products": self.products.iter().map(|p| json!({
                "sku": p.sku, "offer_id": p.offer_id, "name": p.name, "quantity": p.quantity,
                "price": money(p.price), "currency_code": "RUB",
            })).collect::<Vec<_>>(),
            "customer": null, "addressee": null,
            "barcodes": if want("barcodes") {
                json!({"upper_barcode": format!("%101%{}", self.order_id), "lower_barcode": format!("{}1", self.order_id)})
            } else {
                Value::Null
            },
            "analytics_data": if want("analytics_data") {
                json!({
                    "region": "Москва", "city": "Москва", "delivery_type": "PVZ", "is_premium": false,
                    "payment_type_group_name": "Карты оплаты", "warehouse_id": self.warehouse_id,
                    "warehouse": self.warehouse_name, "tpl_provider_id": 24,
                    "tpl_provider": "Ozon Логистика", "delivery_date_begin": null,
                    "delivery_date_end": null, "is_legal": false,
                })
            } else {
                Value::Null
            },
            "financial_data": if want("financial_data") {
                json!({
                    "products": self.products.iter().map(|p| json!({
                        "commission_amount": 0.0, "commission_percent": 0, "payout": p.price * p.quantity as f64,
                        "product_id": p.sku, "old_price": p.price, "price": p.price,
                        "total_discount_value": 0.0, "total_discount_percent": 0.0, "actions": [],
                        "picking": null, "quantity": p.quantity, "client_price": "", "currency_code": "RUB",
                    })).collect::<Vec<_>>(),
                    "posting_services": null, "cluster_from": "", "cluster_to": "",
                })
            } else {
                Value::Null
            },
            "is_express": false,
            "requirements": {
                "products_requiring_gtd": [], "products_requiring_country": [],
                "products_requiring_mandatory_mark": [], "products_requiring_rnpt": [],
                "products_requiring_change_country": [],
            },
            "available_actions": rules::available_actions(&self.status),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ImportItem {
    pub offer_id: String,
    pub product_id: i64,
    /// Final status: imported / failed / skipped.
    pub status: &'static str,
    pub errors: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct ImportTask {
    pub items: Vec<ImportItem>,
    pub polls: u32,
}

#[derive(Debug, Clone)]
pub struct LabelTask {
    pub postings: Vec<String>,
    pub polls: u32,
}

/// Fault injection settings (`POST /sim/faults`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub rate_429: f64,
    pub rate_500: f64,
    pub rate_timeout: f64,
    pub rate_garbage: f64,
    pub timeout_ms: u64,
    pub delay_ms: u64,
    pub apply_before_timeout: bool,
    pub seed: Option<u64>,
}

/// Counters of `GET /sim/stats` (compact: no per-product data).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub stock_updates: u64,
    pub stock_same_value: u64,
    pub price_updates: u64,
    pub price_same_value: u64,
    pub ships: BTreeMap<String, u64>,
    pub imports: u64,
    pub labels: u64,
    pub pushes_sent: u64,
    pub pushes_failed: u64,
}

impl Stats {
    pub fn json(&self) -> Value {
        json!({
            "calls": self.calls, "rejected": self.rejected,
            "stock_updates": self.stock_updates, "stock_same_value": self.stock_same_value,
            "price_updates": self.price_updates, "price_same_value": self.price_same_value,
            "ships": self.ships, "imports": self.imports, "labels": self.labels,
            "pushes_sent": self.pushes_sent, "pushes_failed": self.pushes_failed,
        })
    }

    pub fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_default() += 1;
    }
}

/// Rate windows of one Client-Id.
#[derive(Debug, Default)]
pub struct Rate {
    pub global: Window,
    pub stocks: Window,
}

pub struct State {
    pub cfg: SimConfig,
    pub products: HashMap<String, Product>,
    pub by_pid: BTreeMap<i64, String>,
    pub by_sku: HashMap<i64, String>,
    pub next_pid: i64,
    pub next_sku: i64,
    pub postings: HashMap<String, Posting>,
    pub posting_order: Vec<String>,
    pub next_order: i64,
    pub import_tasks: HashMap<i64, ImportTask>,
    pub label_tasks: HashMap<i64, LabelTask>,
    pub next_task: i64,
    pub faults: Faults,
    pub rng: StdRng,
    pub rate: HashMap<String, Rate>,
    pub stats: Stats,
    /// Push notifications produced by the last operation, sent after the lock is released.
    pub outbox: Vec<Value>,
    /// The last pushes produced (also when push_url is off), newest last.
    pub push_log: std::collections::VecDeque<Value>,
}

/// How many pushes `GET /sim/pushes` keeps.
pub const PUSH_LOG_MAX: usize = 200;

impl State {
    pub fn new(cfg: SimConfig) -> State {
        State {
            cfg,
            products: HashMap::new(),
            by_pid: BTreeMap::new(),
            by_sku: HashMap::new(),
            next_pid: 100_000_001,
            next_sku: 1_500_000_001,
            postings: HashMap::new(),
            posting_order: Vec::new(),
            next_order: 1,
            import_tasks: HashMap::new(),
            label_tasks: HashMap::new(),
            next_task: 5_819_327_210_001,
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(1),
            rate: HashMap::new(),
            stats: Stats::default(),
            outbox: Vec::new(),
            push_log: std::collections::VecDeque::new(),
        }
    }

    /// Clears everything but the configuration.
    pub fn reset(&mut self) {
        let cfg = self.cfg.clone();
        *self = State::new(cfg);
    }

    pub fn seller_id(&self) -> i64 {
        self.cfg.client_id.parse().unwrap_or(0)
    }

    /// Creates a product with fresh product_id/sku (the offer must be new).
    pub fn create_product(&mut self, offer_id: &str) -> &mut Product {
        if self.products.contains_key(offer_id) {
            return self.products.get_mut(offer_id).expect("checked");
        }
        let pid = self.next_pid;
        let sku = self.next_sku;
        self.next_pid += 1;
        self.next_sku += 1;
        self.by_pid.insert(pid, offer_id.to_string());
        self.by_sku.insert(sku, offer_id.to_string());
        self.products
            .entry(offer_id.to_string())
            .or_insert_with(|| Product::new(pid, sku, offer_id, Utc::now()))
    }

    /// The offer id of a product_id.
    pub fn offer_of_pid(&self, pid: i64) -> Option<&str> {
        self.by_pid.get(&pid).map(|s| s.as_str())
    }

    pub fn warehouse_name(&self, id: i64) -> Option<String> {
        self.cfg
            .warehouses
            .iter()
            .find(|w| w.0 == id)
            .map(|w| w.1.clone())
    }

    pub fn next_task_id(&mut self) -> i64 {
        let id = self.next_task;
        self.next_task += 1;
        id
    }

    /// A new order number `NNNNNNNN-NNNN`.
    pub fn new_order_number(&mut self) -> (i64, String) {
        let n = self.next_order;
        self.next_order += 1;
        (
            680_420_000 + n,
            format!("{:08}-{:04}", 5_708_000 + n / 10_000, n % 10_000),
        )
    }

    pub fn push(&mut self, v: Value) {
        if self.push_log.len() == PUSH_LOG_MAX {
            self.push_log.pop_front();
        }
        self.push_log.push_back(v.clone());
        if self.cfg.push_url.is_some() {
            self.outbox.push(v);
        }
    }
}
