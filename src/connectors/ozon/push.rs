//! Delivering stock and price messages: `/v2/products/stocks` (≤100 pairs, 80 calls a minute,
//! one update of a pair per 30 s) and `/v1/product/import/prices` (≤1000, 10 changes of a
//! product's price an hour). Per-item results decide per message.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::client::{Client, TARGET};
use super::plan::{PriceItem, StockItem, KIND_PRICE, KIND_STOCK};
use crate::relay::{Handler, Message, Outcome, OutcomeKind};
use crate::store::schema::{ozon_price_state, ozon_stock_state};
use crate::store::{now_ms, Conn};

/// Per-item error codes of stocks and prices that no retry will cure (the data must change).
fn permanent(code: &str) -> bool {
    matches!(
        code,
        "offer_id_not_found"
            | "NOT_FOUND_ERROR"
            | "WAREHOUSE_NOT_FOUND"
            | "STOCK_TOO_BIG"
            | "NON_KGT_ON_KGT_WAREHOUSE"
            | "OVER_MAX_OVH_KGT"
            | "OVER_MAX_OVH_NON_KGT"
            | "MP_DELIVERY_ONLY_3PL_ERROR"
            | "FLAMMABLE_ONLY_ON_SELF_OR_PROVIDER_DELIVERY"
            | "FLAMMABLE_ON_NON_KGT_WAREHOUSE"
            | "MULTIBOX_NOT_ALLOWED_FOR_FBS"
            | "SOURCE_TYPE_NOT_FOUND"
            | "CB_DELIVERY_ONLY_FBP"
            | "discount_for_low_price_is_too_small"
            | "discount_for_average_price_is_too_small"
            | "discount_for_top_price_is_too_small"
            | "discount_too_big"
            | "price_negative"
            | "invalid_category_price"
            | "action_price_enabled_min_price_missing"
    )
}

fn item_errors(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["code"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn describe(errs: &[(String, String)]) -> String {
    errs.iter()
        .map(|(c, m)| {
            if m.is_empty() {
                c.clone()
            } else {
                format!("{c}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An item's per-item errors → the message's outcome.
fn item_outcome(
    id: i32,
    call_id: Option<i64>,
    errs: &[(String, String)],
    cooldown: Duration,
) -> Outcome {
    let text = describe(errs);
    let kind = if errs.iter().any(|(c, _)| permanent(c)) {
        OutcomeKind::Dead { error: text }
    } else if errs
        .iter()
        .any(|(c, m)| c == "TOO_MANY_REQUESTS" || m.contains("too frequently"))
    {
        OutcomeKind::Later {
            reason: text,
            after: cooldown,
        }
    } else {
        OutcomeKind::Retry {
            error: if text.is_empty() {
                "Ozon did not update the item and gave no reason".into()
            } else {
                text
            },
            after: None,
        }
    };
    Outcome::with_kind(id, call_id, kind)
}

pub struct StockHandler {
    pub client: Arc<Client>,
    pub cooldown: Duration,
    /// When each offer × warehouse pair was last sent (Ozon refuses a second update within 30 s).
    last_sent: Mutex<HashMap<(String, i64), Instant>>,
}

impl StockHandler {
    pub fn new(client: Arc<Client>, cooldown: Duration) -> StockHandler {
        StockHandler {
            client,
            cooldown,
            last_sent: Mutex::new(HashMap::new()),
        }
    }
}

impl Handler for StockHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_STOCK
    }
    fn batch(&self) -> usize {
        100
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut send: Vec<(i32, StockItem)> = Vec::new();
            {
                let mut last = self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                last.retain(|_, t| now.duration_since(*t) < self.cooldown);
                for m in &batch {
                    let Ok(item) = serde_json::from_value::<StockItem>(m.payload.clone()) else {
                        out.push(Outcome::dead(m.id, None, "malformed stock message"));
                        continue;
                    };
                    let pair = (item.offer_id.clone(), item.warehouse_id);
                    if let Some(t) = last.get(&pair) {
                        out.push(Outcome::with_kind(
                            m.id,
                            None,
                            OutcomeKind::Later {
                                reason:
                                    "the same offer and warehouse was updated less than 30 s ago"
                                        .into(),
                                after: self.cooldown.saturating_sub(now.duration_since(*t))
                                    + Duration::from_millis(50),
                            },
                        ));
                        continue;
                    }
                    last.insert(pair, now);
                    send.push((m.id, item));
                }
            }
            if send.is_empty() {
                return out;
            }
            let body = json!({
                "stocks": send.iter().map(|(_, i)| json!({
                    "offer_id": i.offer_id, "stock": i.stock, "warehouse_id": i.warehouse_id,
                })).collect::<Vec<_>>()
            });
            let (res, call_id) = self
                .client
                .post_json("/v2/products/stocks", &body, send.len())
                .await;
            let result = match res {
                Err(e) => {
                    if e.not_applied() {
                        // Ozon did not take the call: the pairs may go again without waiting.
                        let mut last = self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
                        for (_, i) in &send {
                            last.remove(&(i.offer_id.clone(), i.warehouse_id));
                        }
                    }
                    let k = e.outcome();
                    out.extend(
                        send.iter()
                            .map(|(id, _)| Outcome::with_kind(*id, call_id, k.clone())),
                    );
                    return out;
                }
                Ok(v) => v,
            };
            let Some(items) = result["result"].as_array() else {
                let e = format!(
                    "no result list in the answer: {}",
                    crate::relay::journal::excerpt(&result.to_string())
                );
                out.extend(
                    send.iter()
                        .map(|(id, _)| Outcome::retry(*id, call_id, e.clone())),
                );
                return out;
            };
            let mut by_pair: HashMap<(String, i64), &Value> = HashMap::new();
            for it in items {
                let oid = it["offer_id"].as_str().unwrap_or("").to_string();
                let wh = it["warehouse_id"]
                    .as_i64()
                    .or_else(|| it["warehouse_id"].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or(0);
                by_pair.insert((oid, wh), it);
            }
            for (id, item) in &send {
                match by_pair.get(&(item.offer_id.clone(), item.warehouse_id)) {
                    None => out.push(Outcome::retry(
                        *id,
                        call_id,
                        "Ozon's answer does not mention this item",
                    )),
                    Some(it) if it["updated"].as_bool() == Some(true) => {
                        out.push(Outcome::done(*id, call_id, Some(it.to_string())))
                    }
                    Some(it) => {
                        let mut o = item_outcome(*id, call_id, &item_errors(it), self.cooldown);
                        o.response = Some(it.to_string());
                        out.push(o)
                    }
                }
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Ok(item) = serde_json::from_value::<StockItem>(msg.payload.clone()) else {
            return Ok(());
        };
        let row = ozon_stock_state::table.find((&item.offer_ref, item.warehouse_id));
        match &outcome.kind {
            OutcomeKind::Done => diesel::update(row)
                .set((
                    ozon_stock_state::acked.eq(item.stock),
                    ozon_stock_state::acked_at.eq(now_ms()),
                    ozon_stock_state::error.eq(None::<String>),
                ))
                .execute(conn)?,
            OutcomeKind::Dead { error } | OutcomeKind::Retry { error, .. } => diesel::update(row)
                .set(ozon_stock_state::error.eq(error))
                .execute(conn)?,
            _ => 0,
        };
        Ok(())
    }
}

pub struct PriceHandler {
    pub client: Arc<Client>,
    pub per_hour: usize,
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl PriceHandler {
    pub fn new(client: Arc<Client>, per_hour: u32) -> PriceHandler {
        PriceHandler {
            client,
            per_hour: per_hour.max(1) as usize,
            sent: Mutex::new(HashMap::new()),
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

impl Handler for PriceHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_PRICE
    }
    fn batch(&self) -> usize {
        1000
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut send: Vec<(i32, PriceItem)> = Vec::new();
            {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                for m in &batch {
                    let Ok(item) = serde_json::from_value::<PriceItem>(m.payload.clone()) else {
                        out.push(Outcome::dead(m.id, None, "malformed price message"));
                        continue;
                    };
                    let q = sent.entry(item.offer_id.clone()).or_default();
                    while q.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
                        q.pop_front();
                    }
                    if q.len() >= self.per_hour {
                        let wait = HOUR - now.duration_since(q[0]);
                        out.push(Outcome::with_kind(
                            m.id,
                            None,
                            OutcomeKind::Later {
                                reason: format!(
                                    "Ozon allows {} price changes of a product an hour",
                                    self.per_hour
                                ),
                                after: wait + Duration::from_secs(1),
                            },
                        ));
                        continue;
                    }
                    q.push_back(now);
                    send.push((m.id, item));
                }
            }
            if send.is_empty() {
                return out;
            }
            let body = json!({
                "prices": send.iter().map(|(_, i)| {
                    let mut p = json!({
                        "offer_id": i.offer_id, "price": i.price, "old_price": i.old_price,
                        "currency_code": i.currency_code,
                        "auto_action_enabled": "UNKNOWN", "price_strategy_enabled": "UNKNOWN",
                    });
                    if let Some(m) = &i.min_price {
                        p["min_price"] = json!(m);
                    }
                    p
                }).collect::<Vec<_>>()
            });
            let (res, call_id) = self
                .client
                .post_json("/v1/product/import/prices", &body, send.len())
                .await;
            let mut res_out: Vec<Outcome> = Vec::new();
            let sent = async {
                let result = match res {
                    Err(e) => {
                        let k = e.outcome();
                        res_out.extend(
                            send.iter()
                                .map(|(id, _)| Outcome::with_kind(*id, call_id, k.clone())),
                        );
                        return res_out;
                    }
                    Ok(v) => v,
                };
                let Some(items) = result["result"].as_array() else {
                    let e = format!(
                        "no result list in the answer: {}",
                        crate::relay::journal::excerpt(&result.to_string())
                    );
                    res_out.extend(
                        send.iter()
                            .map(|(id, _)| Outcome::retry(*id, call_id, e.clone())),
                    );
                    return res_out;
                };
                let by_offer: HashMap<&str, &Value> = items
                    .iter()
                    .map(|it| (it["offer_id"].as_str().unwrap_or(""), it))
                    .collect();
                for (id, item) in &send {
                    match by_offer.get(item.offer_id.as_str()) {
                        None => res_out.push(Outcome::retry(
                            *id,
                            call_id,
                            "Ozon's answer does not mention this item",
                        )),
                        Some(it) if it["updated"].as_bool() == Some(true) => {
                            res_out.push(Outcome::done(*id, call_id, Some(it.to_string())))
                        }
                        Some(it) => {
                            let mut o = item_outcome(
                                *id,
                                call_id,
                                &item_errors(it),
                                Duration::from_secs(600),
                            );
                            o.response = Some(it.to_string());
                            res_out.push(o)
                        }
                    }
                }
                res_out
            }
            .await;
            // Only changes Ozon took count against its hourly limit: a failed call or an item
            // error gives the slot back.
            {
                let done: std::collections::HashSet<i32> = sent
                    .iter()
                    .filter(|o| o.kind == OutcomeKind::Done)
                    .map(|o| o.id)
                    .collect();
                let mut q = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                for (id, item) in &send {
                    if !done.contains(id) {
                        if let Some(times) = q.get_mut(&item.offer_id) {
                            times.pop_back();
                        }
                    }
                }
            }
            out.extend(sent);
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Ok(item) = serde_json::from_value::<PriceItem>(msg.payload.clone()) else {
            return Ok(());
        };
        let row = ozon_price_state::table.find(&item.offer_ref);
        match &outcome.kind {
            OutcomeKind::Done => {
                let acked = json!({"price": item.price, "old_price": item.old_price, "min_price": item.min_price}).to_string();
                diesel::update(row)
                    .set((
                        ozon_price_state::acked.eq(acked),
                        ozon_price_state::acked_at.eq(now_ms()),
                        ozon_price_state::error.eq(None::<String>),
                    ))
                    .execute(conn)?
            }
            OutcomeKind::Dead { error } | OutcomeKind::Retry { error, .. } => diesel::update(row)
                .set(ozon_price_state::error.eq(error))
                .execute(conn)?,
            _ => 0,
        };
        Ok(())
    }
}
