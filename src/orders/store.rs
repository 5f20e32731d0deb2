//! Orders in the database: intake (idempotent on channel + external id), reads, the timeline,
//! changes from our side (which bump `version`, so 1C gets the order again) and the export
//! bookkeeping of `mode=query` / `mode=success`.

use crate::per_backend;
use diesel::prelude::*;
use serde::Serialize;

use super::model::*;
use super::OrderError;
use crate::store::schema::{offers, order_events, order_exports, order_lines, orders};
use crate::store::{like_contains, now_ms, Conn};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: i32,
    pub number: String,
    pub channel: String,
    pub external_id: Option<String>,
    pub date: String,
    pub currency: String,
    pub total: i64,
    pub status: String,
    pub customer: String,
    pub delivery: Option<String>,
    pub payment: Option<String>,
    pub comment: Option<String>,
    pub requisites: String,
    pub onec_id: Option<String>,
    pub onec_number: Option<String>,
    pub onec_date: Option<String>,
    pub onec_posted: bool,
    pub onec_paid: bool,
    pub onec_payment_number: Option<String>,
    pub onec_payment_date: Option<String>,
    pub onec_shipped: bool,
    pub onec_shipment_number: Option<String>,
    pub onec_shipment_date: Option<String>,
    pub onec_cancelled: bool,
    pub onec_deleted: bool,
    pub onec_status: Option<String>,
    pub onec_updated_at: Option<i64>,
    pub version: i64,
    pub exported_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_lines)]
pub struct LineRow {
    pub order_id: i32,
    pub position: i32,
    pub offer_id: Option<String>,
    pub article: Option<String>,
    pub name: String,
    pub quantity: i64,
    pub price: i64,
    pub discount: i64,
    pub vat: Option<String>,
    pub sum: i64,
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = order_events)]
pub struct Event {
    pub id: i32,
    pub order_id: i32,
    pub at: i64,
    pub source: String,
    pub kind: String,
    pub message: String,
    pub data: Option<String>,
}

impl OrderRow {
    pub fn into_order(self, lines: Vec<Line>) -> Order {
        let requisites: Vec<(String, String)> =
            serde_json::from_str(&self.requisites).unwrap_or_default();
        Order {
            id: self.id,
            number: self.number,
            channel: self.channel,
            external_id: self.external_id,
            date: self.date,
            currency: self.currency,
            total: Money(self.total),
            status: Status::parse(&self.status).unwrap_or(Status::New),
            customer: serde_json::from_str(&self.customer).unwrap_or_default(),
            delivery: self
                .delivery
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok()),
            payment: self
                .payment
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok()),
            comment: self.comment,
            requisites,
            onec: OneCState {
                id: self.onec_id,
                number: self.onec_number,
                date: self.onec_date,
                posted: self.onec_posted,
                paid: self.onec_paid,
                payment_number: self.onec_payment_number,
                payment_date: self.onec_payment_date,
                shipped: self.onec_shipped,
                shipment_number: self.onec_shipment_number,
                shipment_date: self.onec_shipment_date,
                cancelled: self.onec_cancelled,
                deleted: self.onec_deleted,
                status: self.onec_status,
            },
            version: self.version,
            exported_version: self.exported_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            lines,
        }
    }
}

impl From<LineRow> for Line {
    fn from(r: LineRow) -> Line {
        Line {
            offer_id: r.offer_id,
            article: r.article,
            name: r.name,
            quantity: Qty(r.quantity),
            price: Money(r.price),
            discount: Money(r.discount),
            vat: r.vat,
            sum: Money(r.sum),
        }
    }
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Validate the intake: every line either references a known offer or is a free line with a
/// name; quantities positive, prices not negative. Line numbers in errors are 1-based.
pub fn validate(conn: &mut Conn, input: &OrderInput) -> Result<Vec<Line>, OrderError> {
    if input.channel.trim().is_empty() {
        return Err(OrderError::Invalid {
            field: "channel".into(),
            message: "channel is required".into(),
        });
    }
    if input.lines.is_empty() {
        return Err(OrderError::Invalid {
            field: "lines".into(),
            message: "an order needs at least one line".into(),
        });
    }
    if let Some(d) = &input.date {
        if chrono::DateTime::parse_from_rfc3339(d.trim()).is_err()
            && chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").is_err()
        {
            return Err(OrderError::Invalid {
                field: "date".into(),
                message: format!("date {d:?} is not an RFC 3339 date-time"),
            });
        }
    }
    let mut out = Vec::with_capacity(input.lines.len());
    for (i, l) in input.lines.iter().enumerate() {
        let n = i + 1;
        let bad = |message: String| OrderError::Line {
            line: n,
            offer_id: l.offer_id.clone(),
            message,
        };
        let quantity = Qty::from_f64(l.quantity)
            .filter(|q| q.0 > 0)
            .ok_or_else(|| bad(format!("quantity must be positive, got {}", l.quantity)))?;
        let price = Money::from_f64(l.price)
            .filter(|p| p.0 >= 0)
            .ok_or_else(|| bad(format!("price must not be negative, got {}", l.price)))?;
        let discount = match l.discount {
            None => Money(0),
            Some(d) => Money::from_f64(d)
                .filter(|d| d.0 >= 0)
                .ok_or_else(|| bad(format!("discount must not be negative, got {d}")))?,
        };
        let (offer_id, mut name, mut article) = (
            nonempty(&l.offer_id),
            nonempty(&l.name),
            nonempty(&l.article),
        );
        if let Some(id) = &offer_id {
            let found: Option<(Option<String>, Option<String>, String)> = offers::table
                .filter(offers::id.eq(id))
                .select((offers::name, offers::article, offers::good_id))
                .first(conn)
                .optional()?;
            // An offer may also be named by the good's Ид when the good has no variants.
            let found = match found {
                Some(f) => Some(f),
                None => crate::store::schema::goods::table
                    .filter(crate::store::schema::goods::id.eq(id))
                    .select((
                        crate::store::schema::goods::name,
                        crate::store::schema::goods::article,
                        crate::store::schema::goods::id,
                    ))
                    .first(conn)
                    .optional()?,
            };
            let Some((oname, oarticle, _)) = found else {
                return Err(OrderError::UnknownOffer {
                    line: n,
                    offer_id: id.clone(),
                });
            };
            if name.is_none() {
                name = oname;
            }
            if article.is_none() {
                article = oarticle;
            }
        } else if name.is_none() {
            return Err(bad(
                "a line needs an offer_id (a known offer) or a name (a free line)".into(),
            ));
        }
        let sum = Money(quantity.times(price).0 - discount.0);
        out.push(Line {
            offer_id: offer_id.clone(),
            article,
            name: name.unwrap_or_else(|| offer_id.clone().unwrap_or_default()),
            quantity,
            price,
            discount,
            vat: nonempty(&l.vat),
            sum,
        });
    }
    Ok(out)
}

/// Take in an order. Returns its number and whether it was created now (false: the same
/// channel + external id was taken in before; nothing changed).
pub fn create(
    conn: &mut Conn,
    input: &OrderInput,
    number_prefix: &str,
    source: Source,
) -> Result<(String, bool), OrderError> {
    conn.immediate_transaction(|conn| {
        let channel = input.channel.trim().to_string();
        let external_id = nonempty(&input.external_id);
        if let Some(ext) = &external_id {
            if let Some(n) = find_by_ref(conn, &channel, ext)? {
                return Ok((n, false));
            }
        }
        let lines = validate(conn, input)?;
        let delivery_cost = input
            .delivery
            .as_ref()
            .and_then(|d| d.cost)
            .and_then(Money::from_f64)
            .unwrap_or_default();
        let total = Money(lines.iter().map(|l| l.sum.0).sum::<i64>() + delivery_cost.0);
        let now = now_ms();
        let date = input
            .date
            .as_deref()
            .map(|d| d.trim().to_string())
            .unwrap_or_else(|| {
                chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            });
        let currency = input
            .currency
            .as_deref()
            .map(|c| c.trim().to_uppercase())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "RUB".into());
        let temp = format!("tmp-{}", crate::exchange::random_token(16));
        let id: i32 = diesel::insert_into(orders::table)
            .values((
                orders::number.eq(&temp),
                orders::channel.eq(&channel),
                orders::external_id.eq(&external_id),
                orders::date.eq(&date),
                orders::currency.eq(&currency),
                orders::total.eq(total.0),
                orders::status.eq(Status::New.as_str()),
                orders::customer.eq(serde_json::to_string(&input.customer).unwrap_or_default()),
                orders::delivery.eq(input
                    .delivery
                    .as_ref()
                    .map(|d| serde_json::to_string(d).unwrap_or_default())),
                orders::payment.eq(input
                    .payment
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap_or_default())),
                orders::comment.eq(nonempty(&input.comment)),
                orders::created_at.eq(now),
                orders::updated_at.eq(now),
            ))
            .returning(orders::id)
            .get_result(conn)?;
        let number = format!("{number_prefix}{id:06}");
        diesel::update(orders::table.filter(orders::id.eq(id)))
            .set(orders::number.eq(&number))
            .execute(conn)?;
        insert_lines(conn, id, &lines)?;
        add_event(
            conn,
            id,
            source,
            "created",
            &format!("order {number} taken in from channel {channel}"),
            Some(serde_json::json!({"external_id": external_id, "total": total.to_string()})),
        )?;
        Ok((number, true))
    })
}

fn find_by_ref(conn: &mut Conn, channel: &str, ext: &str) -> Result<Option<String>, OrderError> {
    Ok(orders::table
        .filter(orders::channel.eq(channel))
        .filter(orders::external_id.eq(ext))
        .select(orders::number)
        .first::<String>(conn)
        .optional()?)
}

pub(crate) fn insert_lines(conn: &mut Conn, id: i32, lines: &[Line]) -> QueryResult<()> {
    diesel::delete(order_lines::table.filter(order_lines::order_id.eq(id))).execute(conn)?;
    for (i, l) in lines.iter().enumerate() {
        diesel::insert_into(order_lines::table)
            .values((
                order_lines::order_id.eq(id),
                order_lines::position.eq(i as i32 + 1),
                order_lines::offer_id.eq(&l.offer_id),
                order_lines::article.eq(&l.article),
                order_lines::name.eq(&l.name),
                order_lines::quantity.eq(l.quantity.0),
                order_lines::price.eq(l.price.0),
                order_lines::discount.eq(l.discount.0),
                order_lines::vat.eq(&l.vat),
                order_lines::sum.eq(l.sum.0),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Append to the timeline.
pub fn add_event(
    conn: &mut Conn,
    order_id: i32,
    source: Source,
    kind: &str,
    message: &str,
    data: Option<serde_json::Value>,
) -> QueryResult<()> {
    diesel::insert_into(order_events::table)
        .values((
            order_events::order_id.eq(order_id),
            order_events::at.eq(now_ms()),
            order_events::source.eq(source.as_str()),
            order_events::kind.eq(kind),
            order_events::message.eq(message),
            order_events::data.eq(data.map(|d| d.to_string())),
        ))
        .execute(conn)?;
    Ok(())
}

/// A change on our side: 1C must get the order again (unless the change came from 1C).
fn touch(conn: &mut Conn, order_id: i32, source: Source) -> QueryResult<()> {
    let now = now_ms();
    if source.resends_to_1c() {
        diesel::update(orders::table.filter(orders::id.eq(order_id)))
            .set((
                orders::version.eq(orders::version + 1),
                orders::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::update(orders::table.filter(orders::id.eq(order_id)))
            .set(orders::updated_at.eq(now))
            .execute(conn)?;
    }
    Ok(())
}

pub fn load_lines(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<Line>> {
    Ok(order_lines::table
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::position)
        .select(LineRow::as_select())
        .load::<LineRow>(conn)?
        .into_iter()
        .map(Line::from)
        .collect())
}

pub fn get(conn: &mut Conn, number: &str) -> QueryResult<Option<Order>> {
    let row = orders::table
        .filter(orders::number.eq(number))
        .select(OrderRow::as_select())
        .first::<OrderRow>(conn)
        .optional()?;
    match row {
        None => Ok(None),
        Some(r) => {
            let lines = load_lines(conn, r.id)?;
            Ok(Some(r.into_order(lines)))
        }
    }
}

pub fn timeline(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<Event>> {
    order_events::table
        .filter(order_events::order_id.eq(order_id))
        .order(order_events::id)
        .select(Event::as_select())
        .load(conn)
}

/// Orders newest first, optionally filtered (lines included).
pub fn list(
    conn: &mut Conn,
    status: Option<&str>,
    channel: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let mut q = orders::table.into_boxed();
    if let Some(s) = status {
        q = q.filter(orders::status.eq(s.to_string()));
    }
    if let Some(c) = channel {
        q = q.filter(orders::channel.eq(c.to_string()));
    }
    let rows: Vec<OrderRow> = q
        .order(orders::id.desc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let lines = load_lines(conn, r.id)?;
        out.push(r.into_order(lines));
    }
    Ok(out)
}

/// Filters of the dashboard's order list.
#[derive(Debug, Clone, Default)]
pub struct PageFilter {
    pub status: Option<String>,
    pub channel: Option<String>,
    /// Part of the number, external id or customer (name, phone, e-mail …).
    pub text: Option<String>,
    /// Only orders not yet handed to 1C in their current version.
    pub pending: bool,
    /// Keyset: orders with a smaller id.
    pub before: Option<i32>,
}

/// LIKE patterns for `s` in four cases (as typed, lower, upper, capitalised): SQLite's LIKE
/// ignores case only for ASCII, and names from 1C are mostly Cyrillic.
pub fn like_patterns(s: &str) -> [String; 4] {
    let lower = s.to_lowercase();
    let mut chars = lower.chars();
    let capital = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    [
        like_contains(s),
        like_contains(&lower),
        like_contains(&s.to_uppercase()),
        like_contains(&capital),
    ]
}

/// A page of orders, newest first, without lines.
pub fn page(conn: &mut Conn, f: &PageFilter, limit: i64) -> QueryResult<Vec<OrderRow>> {
    let mut q = orders::table.into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(orders::status.eq(s.clone()));
    }
    if let Some(c) = &f.channel {
        q = q.filter(orders::channel.eq(c.clone()));
    }
    if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let m = |p: &String| {
            orders::number
                .like(p.clone())
                .escape('\\')
                .or(orders::external_id.like(p.clone()).escape('\\'))
                .or(orders::onec_number.like(p.clone()).escape('\\'))
                .or(orders::customer.like(p.clone()).escape('\\'))
        };
        let [a, b, c, d] = like_patterns(t);
        q = q.filter(m(&a).or(m(&b)).or(m(&c)).or(m(&d)));
    }
    if f.pending {
        q = q.filter(orders::version.gt(orders::exported_version));
    }
    if let Some(b) = f.before {
        q = q.filter(orders::id.lt(b));
    }
    q.order(orders::id.desc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
}

/// The channels orders came from (for the list's filter).
pub fn channels(conn: &mut Conn) -> QueryResult<Vec<String>> {
    orders::table
        .select(orders::channel)
        .distinct()
        .order(orders::channel)
        .load(conn)
}

/// A write transaction: `BEGIN IMMEDIATE` at the top, a savepoint inside one already open (a
/// connector's bookkeeping runs inside the outbox's transaction).
pub fn write_tx<T, E, F>(conn: &mut Conn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::TransactionManager;
    let nested = <Conn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .is_some();
    if nested {
        conn.transaction(f)
    } else {
        conn.immediate_transaction(f)
    }
}

/// Set (or replace) a requisite written to 1C, e.g. `Зарегистрирован перевозчиком` or the
/// waybill link. A real change bumps the version, so the order goes to 1C again.
pub fn set_requisite(
    conn: &mut Conn,
    number: &str,
    name: &str,
    value: &str,
    source: Source,
) -> Result<bool, OrderError> {
    write_tx(conn, |conn| {
        let (id, raw): (i32, String) = orders::table
            .filter(orders::number.eq(number))
            .select((orders::id, orders::requisites))
            .first(conn)
            .optional()?
            .ok_or_else(|| OrderError::NotFound(number.to_string()))?;
        let mut reqs: Vec<(String, String)> = serde_json::from_str(&raw).unwrap_or_default();
        match reqs.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) if v == value => return Ok(false),
            Some((_, v)) => *v = value.to_string(),
            None => reqs.push((name.to_string(), value.to_string())),
        }
        diesel::update(orders::table.filter(orders::id.eq(id)))
            .set(orders::requisites.eq(serde_json::to_string(&reqs).unwrap_or_default()))
            .execute(conn)?;
        touch(conn, id, source)?;
        add_event(
            conn,
            id,
            source,
            "requisite",
            &format!("{name}: {value}"),
            Some(serde_json::json!({"name": name, "value": value})),
        )?;
        Ok(true)
    })
}

/// Move an order along the state machine. Returns false when the move is not allowed (or is no
/// move); the refusal is in the timeline.
pub fn set_status(
    conn: &mut Conn,
    number: &str,
    to: Status,
    source: Source,
    note: &str,
) -> Result<bool, OrderError> {
    conn.immediate_transaction(|conn| {
        let (id, from): (i32, String) = orders::table
            .filter(orders::number.eq(number))
            .select((orders::id, orders::status))
            .first(conn)
            .optional()?
            .ok_or_else(|| OrderError::NotFound(number.to_string()))?;
        let from = Status::parse(&from).unwrap_or(Status::New);
        move_status(conn, id, from, to, source, note)
    })
}

/// The state machine step inside a transaction.
pub(crate) fn move_status(
    conn: &mut Conn,
    id: i32,
    from: Status,
    to: Status,
    source: Source,
    note: &str,
) -> Result<bool, OrderError> {
    if from == to {
        return Ok(false);
    }
    if !from.can_move_to(to) {
        add_event(
            conn,
            id,
            source,
            "status_refused",
            format!("status {from} → {to} is not allowed; kept {from}. {note}").trim(),
            Some(serde_json::json!({"from": from.as_str(), "to": to.as_str()})),
        )?;
        return Ok(false);
    }
    diesel::update(orders::table.filter(orders::id.eq(id)))
        .set(orders::status.eq(to.as_str()))
        .execute(conn)?;
    touch(conn, id, source)?;
    add_event(
        conn,
        id,
        source,
        "status",
        format!("status {from} → {to}. {note}").trim(),
        Some(serde_json::json!({"from": from.as_str(), "to": to.as_str()})),
    )?;
    Ok(true)
}

/// Mark an order paid (or not) on our side (a marketplace or payment notice).
pub fn set_paid(
    conn: &mut Conn,
    number: &str,
    paid: bool,
    source: Source,
) -> Result<bool, OrderError> {
    conn.immediate_transaction(|conn| {
        let (id, raw): (i32, Option<String>) = orders::table
            .filter(orders::number.eq(number))
            .select((orders::id, orders::payment))
            .first(conn)
            .optional()?
            .ok_or_else(|| OrderError::NotFound(number.to_string()))?;
        let mut p: Payment = raw
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        if p.paid == paid {
            return Ok(false);
        }
        p.paid = paid;
        if paid && p.date.is_none() {
            p.date = Some(chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        }
        diesel::update(orders::table.filter(orders::id.eq(id)))
            .set(orders::payment.eq(serde_json::to_string(&p).ok()))
            .execute(conn)?;
        touch(conn, id, source)?;
        add_event(
            conn,
            id,
            source,
            "paid",
            if paid { "paid" } else { "payment cancelled" },
            None,
        )?;
        Ok(true)
    })
}

// --- export bookkeeping ----------------------------------------------------------------------

/// Orders 1C has not confirmed in their current version: (id, version), oldest first.
pub fn pending_for_1c(conn: &mut Conn) -> QueryResult<Vec<(i32, i64)>> {
    orders::table
        .filter(orders::version.gt(orders::exported_version))
        .order(orders::id)
        .select((orders::id, orders::version))
        .load(conn)
}

/// Load orders by id (in the given order), in one query per table.
pub fn load_many(conn: &mut Conn, ids: &[i32]) -> QueryResult<Vec<Order>> {
    let rows: Vec<OrderRow> = orders::table
        .filter(orders::id.eq_any(ids))
        .select(OrderRow::as_select())
        .load(conn)?;
    let lines: Vec<LineRow> = order_lines::table
        .filter(order_lines::order_id.eq_any(ids))
        .order((order_lines::order_id, order_lines::position))
        .select(LineRow::as_select())
        .load(conn)?;
    let mut by_order: std::collections::HashMap<i32, Vec<Line>> = std::collections::HashMap::new();
    for l in lines {
        by_order.entry(l.order_id).or_default().push(l.into());
    }
    let mut by_id: std::collections::HashMap<i32, OrderRow> =
        rows.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| {
            by_id
                .remove(id)
                .map(|r| r.into_order(by_order.remove(id).unwrap_or_default()))
        })
        .collect())
}

/// Remember what this session's query handed out (replacing its previous query's set).
pub fn record_export(conn: &mut Conn, session_id: &str, set: &[(i32, i64)]) -> QueryResult<()> {
    conn.immediate_transaction(|conn| {
        diesel::delete(order_exports::table.filter(order_exports::session_id.eq(session_id)))
            .execute(conn)?;
        let now = now_ms();
        for chunk in set.chunks(500) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|(id, v)| {
                    (
                        order_exports::session_id.eq(session_id),
                        order_exports::order_id.eq(*id),
                        order_exports::version.eq(*v),
                        order_exports::at.eq(now),
                    )
                })
                .collect();
            per_backend!(conn, |c| {
                diesel::insert_into(order_exports::table)
                    .values(rows)
                    .execute(c)
            })?;
        }
        Ok(())
    })
}

/// `mode=success`: commit exactly what the last query of this session handed out. Returns how
/// many orders were confirmed (0 when there was no query).
pub fn commit_export(conn: &mut Conn, session_id: &str) -> QueryResult<usize> {
    conn.immediate_transaction(|conn| {
        let set: Vec<(i32, i64)> = order_exports::table
            .filter(order_exports::session_id.eq(session_id))
            .select((order_exports::order_id, order_exports::version))
            .load(conn)?;
        let mut n = 0;
        for (id, v) in &set {
            let first: Option<i64> = orders::table
                .filter(orders::id.eq(id))
                .select(orders::exported_version)
                .first(conn)
                .optional()?;
            let Some(prev) = first else { continue };
            if prev >= *v {
                continue;
            }
            diesel::update(orders::table.filter(orders::id.eq(id)))
                .set(orders::exported_version.eq(*v))
                .execute(conn)?;
            add_event(
                conn,
                *id,
                Source::OneC,
                "exported",
                if prev == 0 {
                    "handed to 1C (mode=success)"
                } else {
                    "changes handed to 1C again (mode=success)"
                },
                Some(serde_json::json!({"version": v})),
            )?;
            n += 1;
        }
        diesel::delete(order_exports::table.filter(order_exports::session_id.eq(session_id)))
            .execute(conn)?;
        Ok(n)
    })
}
