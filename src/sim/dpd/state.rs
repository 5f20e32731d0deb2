//! The simulator's memory: orders by orderNumberInternal, faults, counters.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::SimConfig;

/// How createOrder answers a valid new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `OrderPending`; getOrderStatus gives the number after `pending_polls` polls.
    Pending,
    /// `OK` with `orderNum` at once.
    Ok,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub rate_500: f64,
    pub rate_timeout: f64,
    pub timeout_ms: u64,
    pub apply_before_timeout: bool,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackState {
    pub state: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub order_number_internal: String,
    pub date_pickup: String,
    pub service_code: String,
    pub service_variant: String,
    pub cargo_weight: f64,
    pub cargo_num_pack: u32,
    pub receiver_city: String,
    /// OrderPending, OK, OrderCancelled.
    pub status: String,
    pub order_num: Option<String>,
    /// getOrderStatus answers OrderPending this many more times.
    pub polls_left: u32,
    pub states: Vec<TrackState>,
}

impl Order {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Calls per operation (`createOrder`, `getOrderStatus`, …) that passed auth.
    pub calls: BTreeMap<String, u64>,
    /// createOrder attempts per orderNumberInternal that reached the order logic (duplicates
    /// count too, so a blind re-create shows as 2).
    pub orders_created: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub auth_failures: u64,
    pub faults: BTreeMap<String, u64>,
}

impl Stats {
    pub fn json(&self) -> Value {
        json!({
            "calls": self.calls,
            "orders_created": self.orders_created,
            "duplicates": self.duplicates,
            "auth_failures": self.auth_failures,
            "faults": self.faults,
        })
    }
}

pub struct State {
    pub cfg: SimConfig,
    pub orders: BTreeMap<String, Order>,
    pub next_num: u64,
    pub faults: Faults,
    pub stats: Stats,
    pub rng: StdRng,
}

impl State {
    pub fn new(cfg: SimConfig) -> State {
        State {
            cfg,
            orders: BTreeMap::new(),
            next_num: 0,
            faults: Faults::default(),
            stats: Stats::default(),
            rng: StdRng::from_entropy(),
        }
    }

    /// A new DPD order number: `RU` + 9 digits, unique for the life of the simulator.
    pub fn new_order_num(&mut self) -> String {
        self.next_num += 1;
        format!("RU{:09}", 12_000_000 + self.next_num)
    }

    /// Give the order its number, status OK and a first tracking state.
    pub fn assign(&mut self, key: &str) {
        let num = self.new_order_num();
        if let Some(o) = self.orders.get_mut(key) {
            o.status = "OK".into();
            o.order_num = Some(num);
            o.polls_left = 0;
            o.states.push(TrackState {
                state: "NewOrderByClient".into(),
                at: now(),
            });
        }
    }

    pub fn reset(&mut self) {
        self.orders.clear();
        self.faults = Faults::default();
        self.stats = Stats::default();
    }
}

/// `xs:dateTime` without zone, as DPD's tracing answers.
pub fn now() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}
