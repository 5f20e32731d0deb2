//! FBS postings in as orders (polling and push), and the effects 1C statuses drive on Ozon:
//! shipping (`ozon.ship`) and cancelling (`ozon.cancel`). Labels: [`super::labels`].
//!
//! One function applies a posting, whoever saw it ([`apply_posting`]): a posting not seen
//! before becomes an order once; later Ozon statuses move the order (cancelled, shipped,
//! delivered). The dispatcher ([`dispatch`]) only reads the database and queues messages; every
//! call to Ozon that changes something goes through the relay.

use crate::per_backend;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{CallError, TARGET};
use super::labels::KIND_LABEL;
use super::{plan, Ozon};
use crate::orders::model::{Customer, Delivery, LineInput, OrderInput, Payment, Source, Status};
use crate::orders::{store as ostore, OrderError};
use crate::relay::{enqueue, Enqueue, Handler, Message, NewMessage, Outcome, OutcomeKind};
use crate::store::schema::{goods, offers, order_events, ozon_postings, ozon_push};
use crate::store::{now_ms, Conn, DbPool};

pub const CHANNEL: &str = "ozon";
pub const KIND_FETCH: &str = "ozon.posting_fetch";
pub const KIND_SHIP: &str = "ozon.ship";
pub const KIND_CANCEL: &str = "ozon.cancel";
/// Setting: the `to` of the last completed `/v3/posting/fbs/list` window (RFC 3339).
pub const CURSOR: &str = "ozon.postings_cursor";
/// Postings listed per page (Ozon's maximum).
const PAGE: usize = 1000;

/// What a posting carries that shipping needs, stored in `ozon_postings.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostingLine {
    pub sku: i64,
    pub offer_id: String,
    pub name: String,
    pub quantity: i64,
    pub price: String,
    pub currency_code: Option<String>,
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

pub fn posting_lines(p: &Value) -> Vec<PostingLine> {
    p["products"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| PostingLine {
                    sku: int(&x["sku"]).unwrap_or(0),
                    offer_id: x["offer_id"].as_str().unwrap_or("").to_string(),
                    name: x["name"].as_str().unwrap_or("").to_string(),
                    quantity: int(&x["quantity"]).unwrap_or(1),
                    price: match &x["price"] {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => "0".into(),
                    },
                    currency_code: x["currency_code"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The stored lines of a posting (for shipping).
pub fn stored_lines(data: &str) -> Vec<PostingLine> {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| serde_json::from_value(v["lines"].clone()).ok())
        .unwrap_or_default()
}

/// True when the 1C offer (or good) still exists in the catalog.
fn offer_exists(conn: &mut Conn, id: &str) -> QueryResult<bool> {
    let o: i64 = offers::table
        .filter(offers::id.eq(id))
        .count()
        .get_result(conn)?;
    if o > 0 {
        return Ok(true);
    }
    let g: i64 = goods::table
        .filter(goods::id.eq(id))
        .count()
        .get_result(conn)?;
    Ok(g > 0)
}

/// The order intake of a posting: lines mapped back to 1C offers through the stored
/// `ozon_offers` link; an offer obmen does not know becomes a free line.
pub fn order_input(conn: &mut Conn, p: &Value) -> QueryResult<OrderInput> {
    let number = p["posting_number"].as_str().unwrap_or("").to_string();
    let lines = posting_lines(p);
    let mut out = Vec::with_capacity(lines.len());
    for l in &lines {
        let offer_ref = match plan::offer_ref_for(conn, &l.offer_id)? {
            Some(r) if offer_exists(conn, &r)? => Some(r),
            _ => None,
        };
        let price = crate::orders::model::Money::parse(&l.price)
            .map(|m| m.as_f64())
            .unwrap_or(0.0);
        out.push(LineInput {
            name: match (&offer_ref, l.name.trim().is_empty()) {
                (Some(_), _) => None,
                (None, false) => Some(l.name.clone()),
                (None, true) => Some(l.offer_id.clone()),
            },
            article: offer_ref.is_none().then(|| l.offer_id.clone()),
            offer_id: offer_ref,
            quantity: l.quantity as f64,
            price,
            discount: None,
            vat: None,
        });
    }
    let date = p["in_process_at"]
        .as_str()
        .filter(|d| DateTime::parse_from_rfc3339(d.trim()).is_ok())
        .map(str::to_string);
    Ok(OrderInput {
        channel: CHANNEL.into(),
        external_id: Some(number.clone()),
        date: date.clone(),
        currency: lines
            .iter()
            .find_map(|l| l.currency_code.clone())
            .or_else(|| Some("RUB".into())),
        customer: Customer {
            name: Some("Ozon".into()),
            ..Customer::default()
        },
        lines: out,
        delivery: Some(Delivery {
            method: Some("ozon".into()),
            address: None,
            cost: None,
            ..Default::default()
        }),
        payment: Some(Payment {
            method: Some("ozon".into()),
            paid: true,
            date,
        }),
        comment: Some(format!("Ozon FBS posting {number}")),
    })
}

/// What applying a posting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new order (its number).
    Created(String),
    /// Ozon's status changed; the order followed when the move is one we map.
    Updated,
    /// Seen before with this status: nothing changed.
    Unchanged,
    /// First seen already cancelled: remembered, no order.
    SkippedCancelled,
}

/// Our status for an Ozon status, with the timeline note.
fn mapped_status(p: &Value) -> Option<(Status, String)> {
    let st = p["status"].as_str().unwrap_or("");
    match st {
        "cancelled" => {
            let reason = p["cancellation"]["cancel_reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .unwrap_or("no reason given");
            Some((Status::Cancelled, format!("cancelled on Ozon: {reason}")))
        }
        "delivering" | "driver_pickup" | "sent_by_seller" => {
            Some((Status::Shipped, format!("Ozon status {st}")))
        }
        "delivered" => Some((Status::Delivered, "delivered (Ozon)".into())),
        _ => None,
    }
}

fn follow_status(conn: &mut Conn, order_number: &str, p: &Value) -> Result<(), OrderError> {
    if let Some((to, note)) = mapped_status(p) {
        ostore::set_status(conn, order_number, to, Source::Ozon, &note)?;
    }
    Ok(())
}

/// Apply one posting as Ozon returned it (poll, push fetch). Idempotent.
pub fn apply_posting(
    conn: &mut Conn,
    number_prefix: &str,
    p: &Value,
) -> Result<Applied, OrderError> {
    let number = p["posting_number"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OrderError::Invalid {
            field: "posting_number".into(),
            message: "a posting without a number".into(),
        })?
        .to_string();
    let status = p["status"].as_str().unwrap_or("").to_string();
    let data = json!({"lines": posting_lines(p), "posting": p}).to_string();
    let existing: Option<(Option<String>, String, String)> = ozon_postings::table
        .find(&number)
        .select((
            ozon_postings::order_number,
            ozon_postings::status,
            ozon_postings::data,
        ))
        .first(conn)
        .optional()?;
    let upsert = |conn: &mut Conn, order_number: Option<&str>| -> QueryResult<usize> {
        per_backend!(conn, |c| diesel::insert_into(ozon_postings::table)
            .values((
                ozon_postings::posting_number.eq(&number),
                ozon_postings::order_number.eq(order_number),
                ozon_postings::status.eq(&status),
                ozon_postings::data.eq(&data),
                ozon_postings::updated_at.eq(now_ms()),
            ))
            .on_conflict(ozon_postings::posting_number)
            .do_update()
            .set((
                ozon_postings::status.eq(&status),
                ozon_postings::data.eq(&data),
                ozon_postings::updated_at.eq(now_ms()),
            ))
            .execute(c))
    };
    match existing {
        None if status == "cancelled" => {
            upsert(conn, None)?;
            Ok(Applied::SkippedCancelled)
        }
        None => {
            let input = order_input(conn, p)?;
            let (order_number, created) =
                ostore::create(conn, &input, number_prefix, Source::Ozon)?;
            follow_status(conn, &order_number, p)?;
            upsert(conn, Some(&order_number))?;
            diesel::update(ozon_postings::table.find(&number))
                .set(ozon_postings::order_number.eq(&order_number))
                .execute(conn)?;
            Ok(if created {
                Applied::Created(order_number)
            } else {
                Applied::Updated
            })
        }
        Some((order_number, old_status, old_data)) => {
            if old_status == status {
                if old_data != data {
                    upsert(conn, order_number.as_deref())?;
                }
                return Ok(Applied::Unchanged);
            }
            if let Some(o) = &order_number {
                follow_status(conn, o, p)?;
            }
            upsert(conn, order_number.as_deref())?;
            Ok(Applied::Updated)
        }
    }
}

// --- polling ---------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Serialize)]
pub struct PollStats {
    pub seen: usize,
    pub created: usize,
    pub updated: usize,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn apply_all(
    pool: &DbPool,
    prefix: &str,
    postings: Vec<Value>,
    stats: &mut PollStats,
) -> anyhow::Result<()> {
    let pool = pool.clone();
    let prefix = prefix.to_string();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Applied>> {
        let mut c = pool.get()?;
        let mut out = Vec::new();
        for p in &postings {
            match apply_posting(&mut c, &prefix, p) {
                Ok(a) => out.push(a),
                // A posting obmen cannot take in (no lines, a bad date …) must not stop the
                // others nor hold the cursor back forever; a database failure does stop it.
                Err(e @ (OrderError::Db(_) | OrderError::Store(_))) => return Err(e.into()),
                Err(e) => tracing::warn!(
                    posting = p["posting_number"].as_str().unwrap_or(""),
                    error = %e,
                    "ozon: a posting was not taken in"
                ),
            }
        }
        Ok(out)
    })
    .await??;
    for a in res {
        stats.seen += 1;
        match a {
            Applied::Created(_) => stats.created += 1,
            Applied::Updated => stats.updated += 1,
            _ => {}
        }
    }
    Ok(())
}

fn postings_of(v: &Value) -> Vec<Value> {
    v["result"]["postings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

impl Ozon {
    /// One polling round: the unfulfilled list, then everything changed since the cursor
    /// (1 h overlap). The cursor moves only after the postings were stored. Reads, not side
    /// effects: the client journals them; no outbox.
    pub async fn poll_postings(self: &Arc<Self>) -> anyhow::Result<PollStats> {
        let Ok(_guard) = self.poll_lock.try_lock() else {
            return Ok(PollStats::default());
        };
        let prefix = self.cfg.orders.number_prefix.clone();
        let mut stats = PollStats::default();
        let now = Utc::now();
        let (from, to) = (
            now - chrono::Duration::days(30),
            now + chrono::Duration::days(30),
        );
        let mut offset = 0usize;
        loop {
            let body = json!({
                "dir": "ASC",
                "filter": {"cutoff_from": rfc(from), "cutoff_to": rfc(to)},
                "limit": PAGE, "offset": offset,
                "with": {"analytics_data": false, "barcodes": false, "financial_data": false, "translit": false},
            });
            let (res, _) = self
                .client
                .post_json("/v3/posting/fbs/unfulfilled/list", &body, 0)
                .await;
            let v = res.map_err(|e| anyhow::anyhow!("{e}"))?;
            let page = postings_of(&v);
            let n = page.len();
            let count = v["result"]["count"].as_u64().unwrap_or(0) as usize;
            apply_all(&self.pool, &prefix, page, &mut stats).await?;
            offset += n;
            if n < PAGE || offset >= count {
                break;
            }
        }
        let pool = self.pool.clone();
        let cursor = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
            let mut c = pool.get()?;
            Ok(crate::store::get_setting(&mut c, CURSOR)?)
        })
        .await??;
        let since = cursor
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now - chrono::Duration::days(30))
            - chrono::Duration::hours(1);
        let since = since.max(now - chrono::Duration::days(365));
        let mut offset = 0usize;
        loop {
            let body = json!({
                "dir": "ASC",
                "filter": {"since": rfc(since), "to": rfc(now)},
                "limit": PAGE, "offset": offset,
                "with": {"analytics_data": false, "barcodes": false, "financial_data": false, "translit": false},
            });
            let (res, _) = self
                .client
                .post_json("/v3/posting/fbs/list", &body, 0)
                .await;
            let v = res.map_err(|e| anyhow::anyhow!("{e}"))?;
            let page = postings_of(&v);
            let n = page.len();
            let has_next = v["result"]["has_next"].as_bool().unwrap_or(false);
            apply_all(&self.pool, &prefix, page, &mut stats).await?;
            offset += n;
            if !has_next || n == 0 {
                break;
            }
        }
        let pool = self.pool.clone();
        let to = rfc(now);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = pool.get()?;
            Ok(crate::store::set_setting(&mut c, CURSOR, &to)?)
        })
        .await??;
        if stats.created + stats.updated > 0 {
            tracing::info!(
                seen = stats.seen,
                created = stats.created,
                updated = stats.updated,
                "ozon: postings polled"
            );
        }
        Ok(stats)
    }

    /// Queue ships and cancels the order statuses call for (off the async workers).
    pub async fn dispatch(self: &Arc<Self>) -> anyhow::Result<DispatchStats> {
        let pool = self.pool.clone();
        let reason = self.cfg.ozon.cancel_reason_id;
        tokio::task::spawn_blocking(move || -> anyhow::Result<DispatchStats> {
            let mut c = pool.get()?;
            Ok(dispatch(&mut c, reason)?)
        })
        .await?
    }
}

// --- push ------------------------------------------------------------------------------------

/// Remember a push notification; a new one about a posting queues a fetch of that posting.
/// Returns false for a duplicate (same body seen before).
pub fn store_push(conn: &mut Conn, body: &str, v: &Value) -> QueryResult<bool> {
    let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body.as_bytes()));
    let posting = v["posting_number"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    conn.immediate_transaction(|conn| {
        let n = per_backend!(conn, |c| {
            diesel::insert_into(ozon_push::table)
                .values((
                    ozon_push::hash.eq(&hash),
                    ozon_push::message_type.eq(v["message_type"].as_str().unwrap_or("")),
                    ozon_push::posting_number.eq(&posting),
                    ozon_push::body.eq(body),
                    ozon_push::at.eq(now_ms()),
                ))
                .on_conflict_do_nothing()
                .execute(c)
        })?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(p) = posting {
            enqueue(
                conn,
                &NewMessage::new(TARGET, KIND_FETCH, p.clone(), json!({"posting_number": p})),
                Enqueue::Coalesce,
            )?;
        }
        Ok(true)
    })
}

// --- the dispatcher --------------------------------------------------------------------------

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchStats {
    pub ship: usize,
    pub cancel: usize,
}

#[derive(QueryableByName)]
struct Candidate {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    posting_number: String,
    #[diesel(sql_type = Text)]
    data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipItem {
    pub posting_number: String,
    pub order_number: String,
    pub products: Vec<ShipProduct>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipProduct {
    pub sku: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelItem {
    pub posting_number: String,
    pub order_number: String,
    pub reason_id: i64,
}

/// Ozon orders 1C made ready to ship → `ozon.ship` (once per posting); Ozon orders 1C cancelled
/// while the posting is alive on Ozon → `ozon.cancel` (once). Reads the database only.
pub fn dispatch(conn: &mut Conn, cancel_reason_id: i64) -> QueryResult<DispatchStats> {
    let mut stats = DispatchStats::default();
    let ready: Vec<Candidate> = crate::store::sql_query(
        conn,
        "SELECT o.id, o.number, p.posting_number, p.data FROM orders o \
         JOIN ozon_postings p ON p.order_number = o.number \
         WHERE o.channel = ? AND o.status = ? AND NOT EXISTS (SELECT 1 FROM outbox m \
         WHERE m.kind = ? AND m.key = p.posting_number AND m.state <> 'cancelled')",
    )
    .bind::<Text, _>(CHANNEL)
    .bind::<Text, _>(Status::ReadyToShip.as_str())
    .bind::<Text, _>(KIND_SHIP)
    .load(conn)?;
    for c in ready {
        let item = ShipItem {
            posting_number: c.posting_number.clone(),
            order_number: c.number.clone(),
            products: stored_lines(&c.data)
                .into_iter()
                .map(|l| ShipProduct {
                    sku: l.sku,
                    quantity: l.quantity,
                })
                .collect(),
        };
        let m = NewMessage::new(
            TARGET,
            KIND_SHIP,
            c.posting_number,
            serde_json::to_value(&item).unwrap_or_default(),
        )
        .for_order(c.id);
        if enqueue(conn, &m, Enqueue::Once)?.is_some() {
            stats.ship += 1;
        }
    }
    let cancelled: Vec<Candidate> = crate::store::sql_query(
        conn,
        "SELECT o.id, o.number, p.posting_number, p.data FROM orders o \
         JOIN ozon_postings p ON p.order_number = o.number \
         WHERE o.channel = ? AND o.status = ? AND p.status <> 'cancelled' AND NOT EXISTS \
         (SELECT 1 FROM outbox m WHERE m.kind = ? AND m.key = p.posting_number \
         AND m.state <> 'cancelled')",
    )
    .bind::<Text, _>(CHANNEL)
    .bind::<Text, _>(Status::Cancelled.as_str())
    .bind::<Text, _>(KIND_CANCEL)
    .load(conn)?;
    for c in cancelled {
        // Only a cancellation that came from 1C goes to Ozon.
        let source: Option<String> = order_events::table
            .filter(order_events::order_id.eq(c.id))
            .filter(order_events::kind.eq("status"))
            .order(order_events::id.desc())
            .select(order_events::source)
            .first(conn)
            .optional()?;
        if source.as_deref() != Some(Source::OneC.as_str()) {
            continue;
        }
        let item = CancelItem {
            posting_number: c.posting_number.clone(),
            order_number: c.number.clone(),
            reason_id: cancel_reason_id,
        };
        let m = NewMessage::new(
            TARGET,
            KIND_CANCEL,
            c.posting_number,
            serde_json::to_value(&item).unwrap_or_default(),
        )
        .for_order(c.id);
        if enqueue(conn, &m, Enqueue::Once)?.is_some() {
            stats.cancel += 1;
        }
    }
    Ok(stats)
}

// --- handlers --------------------------------------------------------------------------------

/// `ozon.posting_fetch`: `/v3/posting/fbs/get`, then apply the posting.
pub struct FetchHandler {
    pub ozon: Arc<Ozon>,
}

impl Handler for FetchHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_FETCH
    }
    fn batch(&self) -> usize {
        20
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                let Some(n) = m.payload["posting_number"].as_str() else {
                    out.push(Outcome::dead(
                        m.id,
                        None,
                        "no posting_number in the message",
                    ));
                    continue;
                };
                let body = json!({"posting_number": n, "with": {
                    "analytics_data": false, "barcodes": false, "financial_data": false,
                    "product_exemplars": false, "translit": false}});
                let (res, call_id) = self
                    .ozon
                    .client
                    .post_json("/v3/posting/fbs/get", &body, 1)
                    .await;
                let v = match res {
                    Err(e) => {
                        out.push(Outcome::with_kind(m.id, call_id, e.outcome()));
                        continue;
                    }
                    Ok(v) => v,
                };
                let posting = v["result"].clone();
                let pool = self.ozon.pool.clone();
                let prefix = self.ozon.cfg.orders.number_prefix.clone();
                let applied = tokio::task::spawn_blocking(
                    move || -> anyhow::Result<Result<Applied, OrderError>> {
                        let mut c = pool.get()?;
                        Ok(apply_posting(&mut c, &prefix, &posting))
                    },
                )
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
                out.push(match applied {
                    Ok(Ok(a)) => Outcome::done(m.id, call_id, Some(format!("{a:?}"))),
                    // A posting obmen cannot take in (no lines …): no retry will change it.
                    Ok(Err(e)) if !matches!(e, OrderError::Db(_) | OrderError::Store(_)) => {
                        Outcome::dead(
                            m.id,
                            call_id,
                            format!("the posting cannot be taken in: {e}"),
                        )
                    }
                    Ok(Err(e)) => {
                        Outcome::retry(m.id, call_id, format!("cannot apply the posting: {e}"))
                    }
                    Err(e) => {
                        Outcome::retry(m.id, call_id, format!("cannot apply the posting: {e}"))
                    }
                });
            }
            out
        })
    }
}

/// What a ship call's result means for the message.
pub fn ship_outcome(res: &Result<Value, CallError>) -> OutcomeKind {
    match res {
        Ok(_) => OutcomeKind::Done,
        Err(e) => match e.rejected_message() {
            // A retry after a lost answer: it did ship.
            Some(m) if m.contains("POSTING_ALREADY_SHIPPED") => OutcomeKind::Done,
            Some(m)
                if m.contains("POSTING_ALREADY_CANCELLED")
                    || m.contains("HAS_INCORRECT_STATUS") =>
            {
                OutcomeKind::Dead {
                    error: format!("Ozon will not ship the posting: {m}"),
                }
            }
            _ => e.outcome(),
        },
    }
}

/// `ozon.ship`: `/v4/posting/fbs/ship` with the posting's SKUs and quantities.
pub struct ShipHandler {
    pub ozon: Arc<Ozon>,
}

impl Handler for ShipHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_SHIP
    }
    fn batch(&self) -> usize {
        10
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                let Ok(item) = serde_json::from_value::<ShipItem>(m.payload.clone()) else {
                    out.push(Outcome::dead(m.id, None, "malformed ship message"));
                    continue;
                };
                if item.products.is_empty() || item.products.iter().any(|p| p.sku == 0) {
                    out.push(Outcome::dead(
                        m.id,
                        None,
                        "the posting has no products with an Ozon SKU to ship",
                    ));
                    continue;
                }
                let body = json!({
                    "posting_number": item.posting_number,
                    "packages": [{"products": item.products.iter().map(|p| json!({
                        "product_id": p.sku, "quantity": p.quantity,
                    })).collect::<Vec<_>>()}],
                    "with": {"additional_data": false},
                });
                let (res, call_id) = self
                    .ozon
                    .client
                    .post_json("/v4/posting/fbs/ship", &body, 1)
                    .await;
                let mut o = Outcome::with_kind(m.id, call_id, ship_outcome(&res));
                o.response = match &res {
                    Ok(v) => Some(v.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                out.push(o);
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Some(order_id) = msg.order_id else {
            return Ok(());
        };
        let posting = msg.key.as_str();
        match &outcome.kind {
            OutcomeKind::Done => {
                ostore::add_event(
                    conn,
                    order_id,
                    Source::Ozon,
                    "ozon_shipped",
                    &format!("posting {posting} assembled and shipped on Ozon"),
                    None,
                )?;
                let order_number = msg.payload["order_number"].as_str().unwrap_or("");
                enqueue(
                    conn,
                    &NewMessage::new(
                        TARGET,
                        KIND_LABEL,
                        posting,
                        json!({"posting_number": posting, "order_number": order_number}),
                    )
                    .for_order(order_id),
                    Enqueue::Once,
                )?;
            }
            OutcomeKind::Dead { error } => ostore::add_event(
                conn,
                order_id,
                Source::Ozon,
                "ozon_ship_failed",
                &format!("posting {posting} was not shipped on Ozon: {error}"),
                None,
            )?,
            OutcomeKind::Retry { error, .. } => ostore::add_event(
                conn,
                order_id,
                Source::Ozon,
                "ozon_ship_error",
                &format!(
                    "shipping posting {posting} on Ozon failed (try {}), will retry: {error}",
                    msg.attempts + 1
                ),
                None,
            )?,
            _ => {}
        }
        Ok(())
    }
}

/// `ozon.cancel`: `/v2/posting/fbs/cancel` with the configured reason.
pub struct CancelHandler {
    pub ozon: Arc<Ozon>,
}

pub fn cancel_outcome(res: &Result<Value, CallError>) -> OutcomeKind {
    match res {
        Ok(_) => OutcomeKind::Done,
        Err(e) => match e.rejected_message() {
            Some(m) if m.contains("POSTING_ALREADY_CANCELLED") => OutcomeKind::Done,
            _ => e.outcome(),
        },
    }
}

impl Handler for CancelHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_CANCEL
    }
    fn batch(&self) -> usize {
        10
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                let Ok(item) = serde_json::from_value::<CancelItem>(m.payload.clone()) else {
                    out.push(Outcome::dead(m.id, None, "malformed cancel message"));
                    continue;
                };
                let mut body = json!({
                    "posting_number": item.posting_number,
                    "cancel_reason_id": item.reason_id,
                });
                if item.reason_id == 402 {
                    body["cancel_reason_message"] = json!(format!(
                        "Cancelled by the seller (order {})",
                        item.order_number
                    ));
                }
                let (res, call_id) = self
                    .ozon
                    .client
                    .post_json("/v2/posting/fbs/cancel", &body, 1)
                    .await;
                let mut o = Outcome::with_kind(m.id, call_id, cancel_outcome(&res));
                o.response = res.as_ref().ok().map(|v| v.to_string());
                out.push(o);
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Some(order_id) = msg.order_id else {
            return Ok(());
        };
        let posting = msg.key.as_str();
        match &outcome.kind {
            OutcomeKind::Done => ostore::add_event(
                conn,
                order_id,
                Source::Ozon,
                "ozon_cancelled",
                &format!("posting {posting} cancelled on Ozon"),
                None,
            )?,
            OutcomeKind::Dead { error } | OutcomeKind::Retry { error, .. } => ostore::add_event(
                conn,
                order_id,
                Source::Ozon,
                "ozon_cancel_error",
                &format!("cancelling posting {posting} on Ozon failed: {error}"),
                None,
            )?,
            _ => {}
        }
        Ok(())
    }
}

/// How often the dispatcher looks for orders to ship or cancel.
pub const DISPATCH_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests;
