//! Carriers (CDEK, DPD …) behind one process, whatever the carrier: the order's status in 1C
//! decides. `Готов к отгрузке` on an order whose delivery method maps to a carrier → a shipment
//! (checked first: weight, address, phone; a refusal is on the order and goes to 1C, nothing is
//! sent) → `<carrier>.create` → registered (carrier number, tracking number) → `<carrier>.waybill`
//! (stored PDF, linked to 1C); `Удалить заказ на доставку` → `<carrier>.delete` → deleted or
//! refused with the carrier's reason; `<carrier>.track` on a schedule (and webhooks) → delivery
//! status. Every step is an outbox message (retries, dead letters, the call journal) and a line
//! on the order's timeline; one shipment per order and carrier however often 1C re-sends.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::orders::model::{parse_decimal, requisite, Order, Source, Status};
use crate::orders::{normalize_status, store as ostore};
use crate::relay::store::{enqueue, Enqueue, NewMessage};
use crate::relay::{Handler, Message, Outcome, OutcomeKind};
use crate::store::schema::{goods, offers, order_events, orders, shipments};
use crate::store::{now_ms, Conn, DbPool};

/// Requisites obmen writes to 1C for a shipment (besides those of [`requisite`]).
pub mod req {
    pub const CARRIER: &str = "Служба доставки";
    pub const CARRIER_NUMBER: &str = "Номер заказа перевозчика";
    pub const TRACKING: &str = "Трек-номер";
    pub const STATUS: &str = "Статус доставки";
    pub const ERROR: &str = "Ошибка доставки";
}

/// Shipment states.
pub mod state {
    /// obmen refused it (no weight, no address …): nothing was sent.
    pub const INVALID: &str = "invalid";
    pub const CREATING: &str = "creating";
    pub const REGISTERED: &str = "registered";
    /// The carrier refused it.
    pub const FAILED: &str = "failed";
    pub const DELETING: &str = "deleting";
    pub const DELETED: &str = "deleted";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Delete,
    Waybill,
    Track,
}

/// A shipment as stored.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct Shipment {
    pub id: i32,
    pub order_id: i32,
    pub order_number: String,
    pub carrier: String,
    pub state: String,
    pub carrier_ref: Option<String>,
    pub carrier_number: Option<String>,
    pub tracking_number: Option<String>,
    pub status_code: Option<String>,
    pub status_name: Option<String>,
    pub waybill_url: Option<String>,
    pub error: Option<String>,
    pub data: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Shipment {
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| json!({}))
    }
    /// A flag or value of the carrier's progress data.
    pub fn get(&self, key: &str) -> Value {
        self.data()[key].clone()
    }
}

/// One good in a parcel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub name: String,
    pub article: String,
    /// Whole units.
    pub quantity: u32,
    /// Price per unit (declared value), RUB.
    pub price: f64,
    pub weight_g: u64,
}

/// What a carrier needs to know about an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parcel {
    pub order_number: String,
    pub recipient_name: String,
    pub phone: String,
    pub email: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub city_code: Option<i64>,
    pub postal_code: Option<String>,
    pub pickup_point: Option<String>,
    pub items: Vec<Item>,
    pub weight_g: u64,
    /// To collect from the recipient (0 when paid).
    pub cod: f64,
    pub total: f64,
    pub comment: Option<String>,
}

/// What a step found out, to store on the shipment (None = unchanged).
#[derive(Debug, Default, Clone)]
pub struct Update {
    pub state: Option<&'static str>,
    pub carrier_ref: Option<String>,
    pub carrier_number: Option<String>,
    pub tracking_number: Option<String>,
    pub status_code: Option<String>,
    pub status_name: Option<String>,
    /// Some(None) clears the error.
    pub error: Option<Option<String>>,
    /// Keys merged into the progress data.
    pub data: Option<Value>,
    pub waybill_pdf: Option<Vec<u8>>,
    /// A deletion the carrier refused, with its reason.
    pub delete_refused: Option<String>,
    /// A line for the order's timeline.
    pub note: Option<String>,
}

/// The result of one step: what to store, and what becomes of the message.
pub struct Step {
    pub update: Update,
    pub outcome: OutcomeKind,
}

impl Step {
    pub fn done(update: Update) -> Step {
        Step {
            update,
            outcome: OutcomeKind::Done,
        }
    }
    pub fn later(update: Update, after: Duration, reason: impl Into<String>) -> Step {
        Step {
            update,
            outcome: OutcomeKind::Later {
                reason: reason.into(),
                after,
            },
        }
    }
    pub fn fail(kind: OutcomeKind) -> Step {
        Step {
            update: Update::default(),
            outcome: kind,
        }
    }
}

/// A carrier: registered by name; each operation is one step of its outbox messages, called
/// again (with the stored progress) until it is done.
pub trait Carrier: Send + Sync {
    /// `cdek`, `dpd` (the outbox target too).
    fn name(&self) -> &'static str;
    /// For people and 1C: `СДЭК`.
    fn title(&self) -> &'static str;
    fn kind(&self, op: Op) -> &'static str;
    /// `delivery.method` values meaning this carrier.
    fn methods(&self) -> Vec<String>;
    fn default_weight_g(&self) -> Option<u64>;
    fn has_waybill(&self) -> bool;
    fn create<'a>(&'a self, s: &'a Shipment, p: &'a Parcel) -> BoxFuture<'a, Step>;
    fn delete<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step>;
    fn waybill<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step>;
    fn track<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step>;
}

/// The carriers configured.
#[derive(Clone, Default)]
pub struct Carriers {
    pub list: Vec<Arc<dyn Carrier>>,
}

impl Carriers {
    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Carrier>> {
        self.list.iter().find(|c| c.name() == name).cloned()
    }

    /// The carrier a delivery method names (compared loosely).
    pub fn for_method(&self, method: &str) -> Option<Arc<dyn Carrier>> {
        let m = normalize_status(method);
        self.list
            .iter()
            .find(|c| c.methods().iter().any(|x| normalize_status(x) == m))
            .cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every handler of every carrier.
    pub fn handlers(&self, cfg: Arc<Config>, pool: DbPool) -> Vec<Arc<dyn Handler>> {
        let mut out: Vec<Arc<dyn Handler>> = Vec::new();
        for c in &self.list {
            for op in [Op::Create, Op::Delete, Op::Waybill, Op::Track] {
                out.push(Arc::new(StepHandler {
                    carrier: c.clone(),
                    op,
                    cfg: cfg.clone(),
                    pool: pool.clone(),
                }));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Store

pub fn load(conn: &mut Conn, id: i32) -> QueryResult<Option<Shipment>> {
    shipments::table.find(id).first(conn).optional()
}

pub fn for_order(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<Shipment>> {
    shipments::table
        .filter(shipments::order_id.eq(order_id))
        .order(shipments::id)
        .load(conn)
}

pub fn by_ref(conn: &mut Conn, carrier: &str, carrier_ref: &str) -> QueryResult<Option<Shipment>> {
    shipments::table
        .filter(shipments::carrier.eq(carrier))
        .filter(shipments::carrier_ref.eq(carrier_ref))
        .first(conn)
        .optional()
}

/// The API's view of a shipment.
pub fn api_json(s: &Shipment) -> Value {
    json!({
        "carrier": s.carrier,
        "state": s.state,
        "carrier_number": s.carrier_number,
        "tracking_number": s.tracking_number,
        "waybill_url": s.waybill_url,
        "status": s.status_code,
        "status_name": s.status_name,
        "error": s.error,
    })
}

fn title_of(carriers: &Carriers, name: &str) -> String {
    carriers
        .by_name(name)
        .map_or_else(|| name.to_string(), |c| c.title().to_string())
}

/// Store what a step found out: the shipment row, the order's requisites for 1C, the timeline.
///
/// One write transaction from the read of the shipment to the last write: steps of one
/// shipment run at the same time (the waybill and a status check, say), and each writes back
/// every column from what it read, so without it one step's older read would undo the other's
/// change (a CDEK status read back after a webhook was lost that way).
pub fn apply(
    conn: &mut Conn,
    cfg: &Config,
    title: &str,
    id: i32,
    u: &Update,
) -> anyhow::Result<()> {
    ostore::write_tx(conn, |conn| apply_in(conn, cfg, title, id, u))
}

fn apply_in(conn: &mut Conn, cfg: &Config, title: &str, id: i32, u: &Update) -> anyhow::Result<()> {
    let Some(s) = load(conn, id)? else {
        anyhow::bail!("no shipment {id}");
    };
    let now = now_ms();
    let mut data = s.data();
    if let Some(Value::Object(m)) = &u.data {
        for (k, v) in m {
            data[k] = v.clone();
        }
    }
    let waybill_url = match &u.waybill_pdf {
        Some(pdf) => Some(crate::connectors::ozon::labels::store_document(
            conn,
            cfg,
            &crate::connectors::ozon::labels::Document {
                order_number: &s.order_number,
                kind: "waybill",
                name: &format!(
                    "{}-waybill-{}.pdf",
                    s.carrier,
                    safe(
                        u.carrier_number
                            .as_deref()
                            .or(s.carrier_number.as_deref())
                            .unwrap_or("order")
                    )
                ),
                body: pdf,
                requisite: requisite::WAYBILL,
                source: Source::Courier,
            },
        )?),
        None => None,
    };
    diesel::update(shipments::table.find(id))
        .set((
            shipments::state.eq(u.state.unwrap_or(s.state.as_str())),
            shipments::carrier_ref.eq(u.carrier_ref.as_ref().or(s.carrier_ref.as_ref())),
            shipments::carrier_number.eq(u.carrier_number.as_ref().or(s.carrier_number.as_ref())),
            shipments::tracking_number
                .eq(u.tracking_number.as_ref().or(s.tracking_number.as_ref())),
            shipments::status_code.eq(u.status_code.as_ref().or(s.status_code.as_ref())),
            shipments::status_name.eq(u.status_name.as_ref().or(s.status_name.as_ref())),
            shipments::waybill_url.eq(waybill_url.as_ref().or(s.waybill_url.as_ref())),
            shipments::error.eq(match &u.error {
                Some(e) => e.clone(),
                None => s.error.clone(),
            }),
            shipments::data.eq(data.to_string()),
            shipments::updated_at.eq(now),
        ))
        .execute(conn)?;
    let n = &s.order_number;
    let set = |conn: &mut Conn, name: &str, value: &str| {
        ostore::set_requisite(conn, n, name, value, Source::Courier).map(|_| ())
    };
    if let Some(note) = &u.note {
        ostore::add_event(
            conn,
            s.order_id,
            Source::Courier,
            &format!("{}_shipment", s.carrier),
            note,
            Some(json!({"carrier": s.carrier, "shipment": id})),
        )?;
    }
    if let Some(num) = &u.carrier_number {
        set(conn, req::CARRIER, title)?;
        set(conn, req::CARRIER_NUMBER, num)?;
    }
    if let Some(t) = &u.tracking_number {
        set(conn, req::TRACKING, t)?;
    }
    if u.state == Some(state::REGISTERED) && s.state != state::REGISTERED {
        set(conn, requisite::REGISTERED_BY_CARRIER, "Да")?;
        set(conn, req::ERROR, "")?;
    }
    if let Some(name) = u.status_name.as_ref().or(u.status_code.as_ref()) {
        set(conn, req::STATUS, name)?;
    }
    if let Some(Some(e)) = &u.error {
        set(conn, req::ERROR, e)?;
    }
    if u.state == Some(state::DELETED) && s.state != state::DELETED {
        set(conn, requisite::DELIVERY_ORDER_DELETED, "Да")?;
        set(conn, requisite::DELIVERY_ORDER_NOT_DELETED, "")?;
        set(conn, requisite::REGISTERED_BY_CARRIER, "Нет")?;
    }
    if let Some(why) = &u.delete_refused {
        set(conn, requisite::DELIVERY_ORDER_NOT_DELETED, why)?;
    }
    // Stamped after the order's requisites: the dispatcher re-checks an invalid shipment only
    // when the order changed after it.
    diesel::update(shipments::table.find(id))
        .set(shipments::updated_at.eq(now_ms()))
        .execute(conn)?;
    Ok(())
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// From the order to a parcel

/// The parcel of an order, or why it cannot go to the carrier (in the order's language).
pub fn parcel(
    conn: &mut Conn,
    o: &Order,
    default_weight_g: Option<u64>,
    needs_address: bool,
) -> QueryResult<Result<Parcel, Vec<String>>> {
    let mut problems = Vec::new();
    let d = o.delivery.clone().unwrap_or_default();
    let name = o
        .customer
        .name
        .clone()
        .or(o.customer.legal_name.clone())
        .unwrap_or_default();
    if name.trim().is_empty() {
        problems.push("нет имени получателя".to_string());
    }
    let phone = o.customer.phone.clone().unwrap_or_default();
    if phone.trim().is_empty() {
        problems.push("нет телефона получателя".to_string());
    }
    let address = d
        .address
        .clone()
        .or(o.customer.address.clone())
        .filter(|a| !a.trim().is_empty());
    if needs_address && address.is_none() && d.pickup_point.is_none() {
        problems.push("нет адреса доставки".to_string());
    }
    let mut items = Vec::new();
    let mut weight = 0u64;
    for l in &o.lines {
        let good_weight = match &l.offer_id {
            Some(oid) => good_weight_g(conn, oid)?,
            None => None,
        };
        let w = match good_weight.or(default_weight_g) {
            Some(w) => w,
            None => {
                problems.push(format!("нет веса у товара «{}»", l.name));
                0
            }
        };
        let qty = (l.quantity.as_f64().ceil().max(1.0)) as u32;
        weight += w * u64::from(qty);
        items.push(Item {
            name: l.name.clone(),
            article: l
                .article
                .clone()
                .or(l.offer_id.clone())
                .unwrap_or_else(|| format!("line-{}", items.len() + 1)),
            quantity: qty,
            price: l.price.as_f64(),
            weight_g: w,
        });
    }
    if items.is_empty() {
        problems.push("в заказе нет товаров".to_string());
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let paid = o.payment.as_ref().is_some_and(|p| p.paid) || o.onec.paid;
    let total = o.total.as_f64();
    Ok(Ok(Parcel {
        order_number: o.number.clone(),
        recipient_name: name,
        phone,
        email: o.customer.email.clone(),
        address,
        city: d.city.clone(),
        city_code: d.city_code,
        postal_code: d.postal_code.clone(),
        pickup_point: d.pickup_point.clone(),
        items,
        weight_g: weight.max(1),
        cod: if paid { 0.0 } else { total },
        total,
        comment: o.comment.clone(),
    }))
}

/// A good's weight in grams from 1C's `Вес` (kilograms), by the offer's 1C Ид.
fn good_weight_g(conn: &mut Conn, offer_id: &str) -> QueryResult<Option<u64>> {
    let good_id: Option<String> = offers::table
        .find(offer_id)
        .select(offers::good_id)
        .first(conn)
        .optional()?;
    let good_id = good_id.unwrap_or_else(|| offer_id.split('#').next().unwrap_or("").to_string());
    let data: Option<String> = goods::table
        .find(&good_id)
        .select(goods::data)
        .first(conn)
        .optional()?;
    let Some(data) = data else { return Ok(None) };
    let g: crate::cml::Good = serde_json::from_str(&data).unwrap_or_default();
    Ok(g.weight
        .as_deref()
        .and_then(|w| parse_decimal(w, 3))
        .filter(|&grams| grams > 0)
        .map(|g| g as u64))
}

// ---------------------------------------------------------------------------------------------
// Dispatch (database only): what the orders' states ask of the carriers.

#[derive(Debug, Default, Clone, Serialize)]
pub struct DispatchStats {
    pub created: usize,
    pub invalid: usize,
    pub deleted: usize,
    pub waybills: usize,
}

/// The carrier of an order: its delivery method.
fn carrier_of(carriers: &Carriers, o: &Order) -> Option<Arc<dyn Carrier>> {
    let m = o.delivery.as_ref()?.method.as_deref()?;
    carriers.for_method(m)
}

pub fn dispatch(
    conn: &mut Conn,
    cfg: &Config,
    carriers: &Carriers,
) -> anyhow::Result<DispatchStats> {
    let mut stats = DispatchStats::default();
    if carriers.is_empty() {
        return Ok(stats);
    }
    // Ready to ship with a carrier and no live shipment (an invalid one is checked again when
    // the order changed since).
    let ready: Vec<(i32, String, i64)> = orders::table
        .filter(orders::status.eq(Status::ReadyToShip.as_str()))
        .select((orders::id, orders::number, orders::updated_at))
        .load(conn)?;
    for (id, number, updated_at) in ready {
        let existing = for_order(conn, id)?;
        if existing
            .iter()
            .any(|s| s.state != state::INVALID || s.updated_at >= updated_at)
        {
            continue;
        }
        let Some(o) = ostore::get(conn, &number)? else {
            continue;
        };
        let Some(c) = carrier_of(carriers, &o) else {
            continue;
        };
        let checked = parcel(conn, &o, c.default_weight_g(), true)?;
        ostore::write_tx(conn, |conn| -> anyhow::Result<()> {
            let now = now_ms();
            let sid = match existing.iter().find(|s| s.carrier == c.name()) {
                Some(s) => s.id,
                None => diesel::insert_into(shipments::table)
                    .values((
                        shipments::order_id.eq(id),
                        shipments::order_number.eq(&number),
                        shipments::carrier.eq(c.name()),
                        shipments::state.eq(state::CREATING),
                        shipments::data.eq("{}"),
                        shipments::created_at.eq(now),
                        shipments::updated_at.eq(now),
                    ))
                    .returning(shipments::id)
                    .get_result(conn)?,
            };
            match checked {
                Err(problems) => {
                    let why = format!("Заказ не передан в {}: {}", c.title(), problems.join("; "));
                    apply(
                        conn,
                        cfg,
                        c.title(),
                        sid,
                        &Update {
                            state: Some(state::INVALID),
                            error: Some(Some(why.clone())),
                            note: Some(why),
                            ..Default::default()
                        },
                    )?;
                    stats.invalid += 1;
                }
                Ok(_) => {
                    apply(
                        conn,
                        cfg,
                        c.title(),
                        sid,
                        &Update {
                            state: Some(state::CREATING),
                            error: Some(None),
                            note: Some(format!("delivery order queued for {}", c.title())),
                            ..Default::default()
                        },
                    )?;
                    enqueue(
                        conn,
                        &NewMessage::new(
                            c.name(),
                            c.kind(Op::Create),
                            format!("{number}|{}", c.name()),
                            json!({"shipment_id": sid, "order_number": number}),
                        )
                        .for_order(id),
                        Enqueue::Once,
                    )?;
                    stats.created += 1;
                }
            }
            Ok(())
        })?;
    }

    // 1C asked to delete the delivery order: one delete per request (its timeline event).
    let asks: Vec<(i32, i32)> = order_events::table
        .filter(order_events::kind.eq("delete_delivery"))
        .select((order_events::id, order_events::order_id))
        .load(conn)?;
    for (event_id, order_id) in asks {
        for s in for_order(conn, order_id)? {
            let Some(c) = carriers.by_name(&s.carrier) else {
                continue;
            };
            if s.created_at > event_ms(conn, event_id)? {
                continue;
            }
            let key = format!("{}|{event_id}", s.order_number);
            let m = NewMessage::new(
                c.name(),
                c.kind(Op::Delete),
                key,
                json!({"shipment_id": s.id, "order_number": s.order_number}),
            )
            .for_order(order_id);
            if enqueue(conn, &m, Enqueue::Once)?.is_some() {
                stats.deleted += 1;
            }
        }
    }
    Ok(stats)
}

fn event_ms(conn: &mut Conn, id: i32) -> QueryResult<i64> {
    order_events::table
        .find(id)
        .select(order_events::at)
        .first(conn)
}

/// Queue a status check of every live shipment of a carrier (the tracking schedule).
pub fn queue_tracking(conn: &mut Conn, c: &dyn Carrier) -> QueryResult<usize> {
    let live: Vec<(i32, i32, String)> = shipments::table
        .filter(shipments::carrier.eq(c.name()))
        .filter(shipments::state.eq(state::REGISTERED))
        .select((shipments::id, shipments::order_id, shipments::order_number))
        .load(conn)?;
    let mut n = 0;
    for (id, order_id, number) in live {
        let m = NewMessage::new(
            c.name(),
            c.kind(Op::Track),
            number.clone(),
            json!({"shipment_id": id, "order_number": number}),
        )
        .for_order(order_id);
        if enqueue(conn, &m, Enqueue::Coalesce)?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// Queue a status check of one shipment (a webhook said something changed).
pub fn queue_track_one(
    conn: &mut Conn,
    target: &str,
    kind: &str,
    s: &Shipment,
) -> QueryResult<bool> {
    let m = NewMessage::new(
        target,
        kind,
        s.order_number.clone(),
        json!({"shipment_id": s.id, "order_number": s.order_number}),
    )
    .for_order(s.order_id);
    Ok(enqueue(conn, &m, Enqueue::Coalesce)?.is_some())
}

// ---------------------------------------------------------------------------------------------
// The handler: one per carrier and operation.

pub struct StepHandler {
    pub carrier: Arc<dyn Carrier>,
    pub op: Op,
    pub cfg: Arc<Config>,
    pub pool: DbPool,
}

impl StepHandler {
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get()?;
            f(&mut c)
        })
        .await?
    }

    async fn one(&self, m: &Message) -> Outcome {
        let Some(sid) = m.payload["shipment_id"].as_i64() else {
            return Outcome::dead(m.id, None, "no shipment_id in the message");
        };
        let sid = sid as i32;
        let loaded = self
            .db(
                move |c| -> anyhow::Result<Option<(Shipment, Option<Order>)>> {
                    let Some(s) = load(c, sid)? else {
                        return Ok(None);
                    };
                    let o = ostore::get(c, &s.order_number)?;
                    Ok(Some((s, o)))
                },
            )
            .await;
        let (s, o) = match loaded {
            Ok(Some(x)) => x,
            Ok(None) => return Outcome::dead(m.id, None, format!("no shipment {sid}")),
            Err(e) => return Outcome::retry(m.id, None, format!("database: {e}")),
        };
        let step = match self.op {
            Op::Create => {
                if s.state == state::REGISTERED || s.state == state::DELETED {
                    return Outcome::done(m.id, None, Some("already registered".into()));
                }
                let Some(o) = o else {
                    return Outcome::dead(m.id, None, format!("no order {}", s.order_number));
                };
                let dw = self.carrier.default_weight_g();
                let p = match self.db(move |c| Ok(parcel(c, &o, dw, true)?)).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(problems)) => {
                        return Outcome::dead(m.id, None, problems.join("; "));
                    }
                    Err(e) => return Outcome::retry(m.id, None, format!("database: {e}")),
                };
                self.carrier.create(&s, &p).await
            }
            Op::Delete => {
                if s.state == state::DELETED {
                    return Outcome::done(m.id, None, Some("already deleted".into()));
                }
                self.carrier.delete(&s).await
            }
            Op::Waybill => {
                if s.waybill_url.is_some() {
                    return Outcome::done(m.id, None, Some("waybill stored".into()));
                }
                self.carrier.waybill(&s).await
            }
            Op::Track => {
                if s.state != state::REGISTERED {
                    return Outcome::done(m.id, None, Some(format!("shipment {}", s.state)));
                }
                self.carrier.track(&s).await
            }
        };
        let cfg = self.cfg.clone();
        let title = self.carrier.title();
        let u = step.update.clone();
        if let Err(e) = self.db(move |c| apply(c, &cfg, title, sid, &u)).await {
            return Outcome::retry(m.id, None, format!("cannot store the step: {e}"));
        }
        Outcome::with_kind(m.id, None, step.outcome)
    }
}

impl Handler for StepHandler {
    fn target(&self) -> &'static str {
        self.carrier.name()
    }
    fn kind(&self) -> &'static str {
        self.carrier.kind(self.op)
    }
    fn batch(&self) -> usize {
        10
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(batch.len());
            for m in &batch {
                out.push(self.one(m).await);
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Some(sid) = msg.payload["shipment_id"].as_i64() else {
            return Ok(());
        };
        let sid = sid as i32;
        let Some(s) = load(conn, sid)? else {
            return Ok(());
        };
        let title = self.carrier.title();
        let fail =
            |e: anyhow::Error| diesel::result::Error::QueryBuilderError(e.to_string().into());
        match (&outcome.kind, self.op) {
            // Registered: the waybill next.
            (OutcomeKind::Done, Op::Create)
                if s.state == state::REGISTERED && self.carrier.has_waybill() =>
            {
                enqueue(
                    conn,
                    &NewMessage::new(
                        self.carrier.name(),
                        self.carrier.kind(Op::Waybill),
                        s.order_number.clone(),
                        json!({"shipment_id": s.id, "order_number": s.order_number}),
                    )
                    .for_order(s.order_id),
                    Enqueue::Once,
                )?;
            }
            (OutcomeKind::Dead { error }, Op::Create) => {
                let why = format!("{title} не принял заказ: {error}");
                apply(
                    conn,
                    &self.cfg,
                    title,
                    sid,
                    &Update {
                        state: Some(state::FAILED),
                        error: Some(Some(why.clone())),
                        note: Some(why),
                        ..Default::default()
                    },
                )
                .map_err(fail)?;
            }
            (OutcomeKind::Dead { error }, Op::Delete) => {
                apply(
                    conn,
                    &self.cfg,
                    title,
                    sid,
                    &Update {
                        delete_refused: Some(error.clone()),
                        note: Some(format!("delivery order not deleted: {error}")),
                        ..Default::default()
                    },
                )
                .map_err(fail)?;
            }
            (OutcomeKind::Dead { error }, Op::Waybill) => {
                apply(
                    conn,
                    &self.cfg,
                    title,
                    sid,
                    &Update {
                        note: Some(format!("waybill not received: {error}")),
                        ..Default::default()
                    },
                )
                .map_err(fail)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The shipments of an order for the API (`shipments` of `GET /api/v1/orders/{number}`).
pub fn shipments_json(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<Value>> {
    Ok(for_order(conn, order_id)?.iter().map(api_json).collect())
}

/// `GET /api/v1/orders/{number}/tracking`: the carrier, tracking number and status.
pub fn tracking_json(
    conn: &mut Conn,
    carriers: &Carriers,
    number: &str,
) -> QueryResult<Option<Value>> {
    let id: Option<i32> = orders::table
        .filter(orders::number.eq(number))
        .select(orders::id)
        .first(conn)
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let list = for_order(conn, id)?;
    let live = list
        .iter()
        .rev()
        .find(|s| s.state != state::DELETED)
        .or(list.last());
    Ok(Some(match live {
        None => json!({"number": number, "carrier": null, "tracking_number": null, "state": null}),
        Some(s) => json!({
            "number": number,
            "carrier": s.carrier,
            "carrier_title": title_of(carriers, &s.carrier),
            "state": s.state,
            "carrier_number": s.carrier_number,
            "tracking_number": s.tracking_number,
            "status": s.status_code,
            "status_name": s.status_name,
            "error": s.error,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: two steps of one shipment applied at the same time (the waybill and a status
    /// check) must not undo each other: each of them writes every column back from what it read.
    #[test]
    fn concurrent_steps_of_one_shipment_keep_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&crate::store::testing::url(dir.path()), 4).unwrap();
        let cfg = Arc::new(Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        });
        let input: crate::orders::model::OrderInput = serde_json::from_value(json!({
            "channel": "api", "external_id": "race-1", "date": "2026-11-23T10:00:00+03:00",
            "currency": "RUB", "customer": {"name": "Иванов", "phone": "+7999"},
            "lines": [{"name": "Дрель", "quantity": 1, "price": 100}],
            "delivery": {"method": "cdek", "address": "ул. Ленина, 5"}
        }))
        .unwrap();
        let sid = {
            let c = &mut pool.get().unwrap();
            let (number, _) = ostore::create(c, &input, "OB-", Source::Api).unwrap();
            let order_id: i32 = orders::table
                .filter(orders::number.eq(&number))
                .select(orders::id)
                .first(c)
                .unwrap();
            diesel::insert_into(shipments::table)
                .values((
                    shipments::order_id.eq(order_id),
                    shipments::order_number.eq(&number),
                    shipments::carrier.eq("cdek"),
                    shipments::state.eq(state::REGISTERED),
                    shipments::data.eq("{}"),
                    shipments::created_at.eq(0i64),
                    shipments::updated_at.eq(0i64),
                ))
                .returning(shipments::id)
                .get_result::<i32>(c)
                .unwrap()
        };
        const N: usize = 60;
        let statuses = {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            std::thread::spawn(move || {
                let c = &mut pool.get().unwrap();
                for i in 0..N {
                    let u = Update {
                        status_code: Some(format!("S{i:03}")),
                        ..Default::default()
                    };
                    apply(c, &cfg, "СДЭК", sid, &u).unwrap();
                }
            })
        };
        let data = {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            std::thread::spawn(move || {
                let c = &mut pool.get().unwrap();
                for i in 0..N {
                    let u = Update {
                        data: Some(json!({ format!("k{i}"): i })),
                        ..Default::default()
                    };
                    apply(c, &cfg, "СДЭК", sid, &u).unwrap();
                }
            })
        };
        // Meanwhile the status never goes back.
        let c = &mut pool.get().unwrap();
        let mut last = String::new();
        while !(statuses.is_finished() && data.is_finished()) {
            let s = load(c, sid).unwrap().unwrap();
            let now = s.status_code.unwrap_or_default();
            assert!(now >= last, "the status went back from {last} to {now}");
            last = now;
        }
        statuses.join().unwrap();
        data.join().unwrap();
        let s = load(c, sid).unwrap().unwrap();
        assert_eq!(s.status_code.as_deref(), Some("S059"));
        let d = s.data();
        for i in 0..N {
            assert_eq!(d[format!("k{i}")], json!(i), "data key k{i} lost: {d}");
        }
    }
}
