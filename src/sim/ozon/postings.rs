//! FBS posting methods: lists, get, ship, labels, cancel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::rules::{self, as_i64};
use super::state::{ts, LabelTask, Posting, PostingProduct, State};
use super::{err, ok, pdf, Out};

fn limit(b: &Value) -> Result<usize, Out> {
    match as_i64(&b["limit"]) {
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        _ => Err(err(
            400,
            3,
            "Request validation error: limit must be between 1 and 1000",
        )),
    }
}

fn date(v: &Value) -> Result<Option<DateTime<Utc>>, Out> {
    match v.as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|_| err(400, 3, format!("Request validation error: bad date {s}"))),
    }
}

fn warehouse_filter(filter: &Value) -> Vec<i64> {
    filter["warehouse_id"]
        .as_array()
        .map(|a| a.iter().filter_map(as_i64).collect())
        .unwrap_or_default()
}

pub fn unfulfilled(st: &mut State, b: &Value) -> Out {
    let run = || -> Result<Value, Out> {
        let limit = limit(b)?;
        let offset = as_i64(&b["offset"]).unwrap_or(0).max(0) as usize;
        let f = &b["filter"];
        let (cf, ct) = (date(&f["cutoff_from"])?, date(&f["cutoff_to"])?);
        let (df, dt) = (
            date(&f["delivering_date_from"])?,
            date(&f["delivering_date_to"])?,
        );
        if (cf.is_some() || ct.is_some()) && (df.is_some() || dt.is_some()) {
            return Err(err(
                400,
                3,
                "Request validation error: use either cutoff or delivering_date",
            ));
        }
        let status = f["status"].as_str().filter(|s| !s.is_empty());
        let whs = warehouse_filter(f);
        let mut all: Vec<&Posting> = st
            .posting_order
            .iter()
            .map(|n| &st.postings[n])
            .filter(|p| rules::is_unfulfilled(&p.status))
            .filter(|p| status.is_none_or(|s| p.status == s))
            .filter(|p| whs.is_empty() || whs.contains(&p.warehouse_id))
            .filter(|p| cf.is_none_or(|d| p.shipment_date >= d))
            .filter(|p| ct.is_none_or(|d| p.shipment_date <= d))
            .collect();
        if b["dir"]
            .as_str()
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"))
        {
            all.reverse();
        }
        let count = all.len();
        let postings: Vec<Value> = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|p| p.json_with(&b["with"]))
            .collect();
        Ok(json!({"result": {"postings": postings, "count": count}}))
    };
    match run() {
        Ok(v) => ok(v),
        Err(e) => e,
    }
}

pub fn list(st: &mut State, b: &Value) -> Out {
    let run = || -> Result<Value, Out> {
        let limit = limit(b)?;
        let offset = as_i64(&b["offset"]).unwrap_or(0).max(0) as usize;
        let f = &b["filter"];
        let (Some(since), Some(to)) = (date(&f["since"])?, date(&f["to"])?) else {
            return Err(err(
                400,
                3,
                "Request validation error: filter.since and filter.to are required",
            ));
        };
        if to < since || to - since > chrono::Duration::days(366) {
            return Err(err(
                400,
                3,
                "Request validation error: the period must not exceed one year",
            ));
        }
        let status = f["status"].as_str().filter(|s| !s.is_empty());
        let whs = warehouse_filter(f);
        let order_id = as_i64(&f["order_id"]).filter(|n| *n != 0);
        let (lf, lt) = (
            date(&f["last_changed_status_date"]["from"])?,
            date(&f["last_changed_status_date"]["to"])?,
        );
        let dir_desc = b["dir"]
            .as_str()
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        let mut all: Vec<&Posting> = st
            .posting_order
            .iter()
            .map(|n| &st.postings[n])
            .filter(|p| p.in_process_at >= since && p.in_process_at <= to)
            .filter(|p| status.is_none_or(|s| p.status == s))
            .filter(|p| whs.is_empty() || whs.contains(&p.warehouse_id))
            .filter(|p| order_id.is_none_or(|o| p.order_id == o))
            .filter(|p| lf.is_none_or(|d| p.status_changed_at >= d))
            .filter(|p| lt.is_none_or(|d| p.status_changed_at <= d))
            .collect();
        if dir_desc {
            all.reverse();
        }
        let has_next = all.len() > offset + limit;
        let postings: Vec<Value> = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|p| p.json_with(&b["with"]))
            .collect();
        Ok(json!({"result": {"postings": postings, "has_next": has_next}}))
    };
    match run() {
        Ok(v) => ok(v),
        Err(e) => e,
    }
}

fn not_found() -> Out {
    err(404, 5, "POSTING_NOT_FOUND")
}

pub fn get(st: &mut State, b: &Value) -> Out {
    let Some(p) = b["posting_number"]
        .as_str()
        .and_then(|n| st.postings.get(n))
    else {
        return not_found();
    };
    let mut v = p.json_with(&b["with"]);
    v["previous_substatus"] = json!(p.previous_substatus);
    let related: Vec<&String> = st
        .posting_order
        .iter()
        .filter(|n| **n != p.posting_number && st.postings[*n].order_number == p.order_number)
        .collect();
    v["related_postings"] = json!({"related_posting_numbers": related});
    v["additional_data"] = json!([]);
    v["product_exemplars"] = Value::Null;
    v["provider_status"] = json!("");
    v["delivery_price"] = json!("");
    v["courier"] = Value::Null;
    ok(json!({ "result": v }))
}

/// Creates a posting (control API and ship splits). The posting number must be new.
pub fn insert(st: &mut State, p: Posting) {
    st.posting_order.push(p.posting_number.clone());
    st.postings.insert(p.posting_number.clone(), p);
}

pub fn ship(st: &mut State, b: &Value) -> Out {
    let Some(number) = b["posting_number"].as_str() else {
        return err(
            400,
            3,
            "Request validation error: posting_number is required",
        );
    };
    let Some(posting) = st.postings.get(number) else {
        return not_found();
    };
    if let Some(code) = rules::ship_refusal(&posting.status) {
        return err(400, 3, code);
    }
    let Some(packages) = b["packages"].as_array().filter(|p| !p.is_empty()) else {
        return err(
            400,
            3,
            "Request validation error: packages must not be empty",
        );
    };
    // sku -> quantity per package, and the totals.
    let mut per_package: Vec<BTreeMap<i64, i64>> = Vec::new();
    let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
    for pkg in packages {
        let mut m = BTreeMap::new();
        for it in pkg["products"].as_array().into_iter().flatten() {
            let sku = as_i64(&it["product_id"]).unwrap_or(0);
            let qty = as_i64(&it["quantity"]).unwrap_or(0);
            if !posting.products.iter().any(|p| p.sku == sku) {
                return err(400, 3, "UNKNOWN_PRODUCT");
            }
            if qty <= 0 {
                return err(400, 3, "HAS_INCORRECT_PRODUCT_QUANTITY");
            }
            *m.entry(sku).or_insert(0) += qty;
            *totals.entry(sku).or_insert(0) += qty;
        }
        if m.is_empty() {
            return err(
                400,
                3,
                "Request validation error: a package has no products",
            );
        }
        per_package.push(m);
    }
    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for p in &posting.products {
        *expected.entry(p.sku).or_insert(0) += p.quantity;
    }
    if expected != totals {
        return err(400, 3, "HAS_INCORRECT_PRODUCT_QUANTITY");
    }
    let now = Utc::now();
    let original = posting.clone();
    let mut numbers = Vec::new();
    let mut n = 1;
    for (i, pkg) in per_package.iter().enumerate() {
        let mut p = original.clone();
        if i > 0 {
            loop {
                n += 1;
                let candidate = format!("{}-{n}", original.order_number);
                if !st.postings.contains_key(&candidate) {
                    p.posting_number = candidate;
                    break;
                }
            }
        }
        p.products = pkg
            .iter()
            .map(|(sku, qty)| {
                let src = original
                    .products
                    .iter()
                    .find(|x| x.sku == *sku)
                    .expect("sku checked");
                PostingProduct {
                    quantity: *qty,
                    ..src.clone()
                }
            })
            .collect();
        p.set_status("awaiting_deliver", now);
        p.shipped_at = Some(Instant::now());
        p.tracking_number = String::new();
        numbers.push(p.posting_number.clone());
        if i == 0 {
            st.postings.insert(p.posting_number.clone(), p);
        } else {
            insert(st, p);
        }
    }
    let mut additional = Vec::new();
    for number in &numbers {
        *st.stats.ships.entry(number.clone()).or_default() += 1;
        let p = &st.postings[number];
        additional.push(json!({
            "posting_number": number,
            "products": p.products.iter().map(|x| json!({
                "sku": x.sku, "offer_id": x.offer_id, "name": x.name,
                "price": super::state::money(x.price), "quantity": x.quantity,
                "mandatory_mark": [], "currency_code": "RUB",
            })).collect::<Vec<_>>(),
        }));
        let push = state_changed(st, number);
        st.push(push);
    }
    ok(json!({"result": numbers, "additional_data": additional}))
}

/// The TYPE_STATE_CHANGED push of a posting.
pub fn state_changed(st: &State, number: &str) -> Value {
    let p = &st.postings[number];
    json!({
        "message_type": "TYPE_STATE_CHANGED", "posting_number": p.posting_number,
        "new_state": rules::push_state_for(&p.status),
        "changed_state_date": ts(p.status_changed_at),
        "warehouse_id": p.warehouse_id, "seller_id": st.seller_id(),
    })
}

/// Posting numbers of a label request, validated: Err = the error answer.
fn label_postings(st: &State, b: &Value) -> Result<Vec<String>, Out> {
    let numbers: Vec<String> = b["posting_number"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if numbers.is_empty() || numbers.len() > rules::LABEL_MAX {
        return Err(err(
            400,
            3,
            "Request validation error: posting_number must contain 1 to 20 items",
        ));
    }
    for n in &numbers {
        match st.postings.get(n) {
            None => return Err(err(400, 3, "INVALID_ARGUMENT")),
            Some(p) if p.status != "awaiting_deliver" => {
                return Err(err(400, 3, "INVALID_ARGUMENT"));
            }
            Some(_) => {}
        }
    }
    Ok(numbers)
}

/// True when every posting was shipped at least `label_delay_secs` ago.
fn labels_ready(st: &State, numbers: &[String]) -> bool {
    let delay = Duration::from_secs(st.cfg.label_delay_secs);
    numbers.iter().all(|n| {
        st.postings
            .get(n)
            .and_then(|p| p.shipped_at)
            .is_none_or(|t| t.elapsed() >= delay)
    })
}

pub fn label(st: &mut State, b: &Value) -> Out {
    let numbers = match label_postings(st, b) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if !labels_ready(st, &numbers) {
        let status = st.cfg.label_not_ready_status;
        return err(status, grpc_code(status), "The next postings aren't ready");
    }
    st.stats.labels += 1;
    Out::Pdf(pdf::label(&numbers))
}

/// The gRPC code that usually goes with an HTTP status.
fn grpc_code(status: u16) -> i64 {
    match status {
        400 => 3,
        404 => 5,
        409 => 9,
        429 => 8,
        500 => 13,
        503 => 14,
        _ => 2,
    }
}

pub fn label_create(st: &mut State, b: &Value) -> Out {
    let numbers = match label_postings(st, b) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut tasks = Vec::new();
    for kind in ["big_label", "small_label"] {
        let id = st.next_task_id();
        st.label_tasks.insert(
            id,
            LabelTask {
                postings: numbers.clone(),
                polls: 0,
            },
        );
        tasks.push(json!({"task_id": id, "task_type": kind}));
    }
    ok(json!({"result": {"tasks": tasks}}))
}

pub fn label_get(st: &mut State, b: &Value, base: &str) -> Out {
    let Some(id) = as_i64(&b["task_id"]) else {
        return err(400, 3, "Request validation error: task_id is required");
    };
    let Some(task) = st.label_tasks.get(&id).cloned() else {
        return err(404, 5, "task not found");
    };
    let broken = task.postings.iter().find(|n| {
        st.postings
            .get(*n)
            .is_none_or(|p| p.status != "awaiting_deliver")
    });
    let (status, url, error) = if let Some(n) = broken {
        (
            "error",
            String::new(),
            format!("posting {n} is not awaiting_deliver"),
        )
    } else if labels_ready(st, &task.postings) {
        (
            "completed",
            format!("{base}/sim/files/label-{id}.pdf"),
            String::new(),
        )
    } else if task.polls == 0 {
        ("pending", String::new(), String::new())
    } else {
        ("in_progress", String::new(), String::new())
    };
    if let Some(t) = st.label_tasks.get_mut(&id) {
        t.polls += 1;
    }
    ok(json!({"result": {"status": status, "file_url": url, "error": error}}))
}

/// The PDF of an async label task (`GET /sim/files/label-<id>.pdf`).
pub fn label_file(st: &mut State, id: i64) -> Out {
    let Some(task) = st.label_tasks.get(&id) else {
        return err(404, 5, "Not Found");
    };
    if !labels_ready(st, &task.postings) {
        return err(404, 5, "Not Found");
    }
    let bytes = pdf::label(&task.postings);
    st.stats.labels += 1;
    Out::Pdf(bytes)
}

pub fn awaiting_delivery(st: &mut State, b: &Value) -> Out {
    let numbers: Vec<String> = b["posting_number"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if numbers.is_empty() || numbers.len() > 100 {
        return err(
            400,
            3,
            "Request validation error: posting_number must contain 1 to 100 items",
        );
    }
    for n in &numbers {
        match st.postings.get(n) {
            None => return not_found(),
            Some(p) if !matches!(p.status.as_str(), "arbitration" | "client_arbitration") => {
                return err(400, 3, "HAS_INCORRECT_STATUS");
            }
            Some(_) => {}
        }
    }
    let now = Utc::now();
    for n in &numbers {
        if let Some(p) = st.postings.get_mut(n) {
            p.set_status("awaiting_deliver", now);
        }
        let push = state_changed(st, n);
        st.push(push);
    }
    ok(json!({"result": true}))
}

pub fn cancel_reasons() -> Out {
    let result: Vec<Value> = rules::CANCEL_REASONS
        .iter()
        .map(|(id, title, kind, avail)| {
            json!({"id": id, "title": title, "type_id": kind, "is_available_for_cancellation": avail})
        })
        .collect();
    ok(json!({ "result": result }))
}

pub fn cancel_reason(st: &mut State, b: &Value) -> Out {
    let numbers: Vec<&str> = b["related_posting_numbers"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let reasons: Vec<Value> = rules::CANCEL_REASONS
        .iter()
        .filter(|r| r.3)
        .map(|(id, title, kind, _)| json!({"id": id, "title": title, "type_id": kind}))
        .collect();
    let result: Vec<Value> = numbers
        .iter()
        .filter(|n| st.postings.contains_key(**n))
        .map(|n| json!({"posting_number": n, "reasons": reasons}))
        .collect();
    ok(json!({ "result": result }))
}

/// Cancels a posting (also the control API). `initiator` is "Продавец" or "Ozon".
pub fn do_cancel(st: &mut State, number: &str, reason_id: i64, reason: &str, initiator: &str) {
    let now = Utc::now();
    let seller_id = st.seller_id();
    let Some(p) = st.postings.get_mut(number) else {
        return;
    };
    let old_state = rules::push_state_for(&p.status);
    let after_ship = p.shipped_at.is_some();
    p.set_status("cancelled", now);
    p.cancellation = Some((
        reason_id,
        reason.to_string(),
        initiator.to_string(),
        after_ship,
    ));
    let push = json!({
        "message_type": "TYPE_POSTING_CANCELLED", "posting_number": p.posting_number,
        "products": p.products.iter().map(|x| json!({"sku": x.sku, "quantity": x.quantity})).collect::<Vec<_>>(),
        "old_state": old_state, "new_state": "posting_canceled",
        "changed_state_date": ts(now), "reason": {"id": reason_id, "message": reason},
        "warehouse_id": p.warehouse_id, "seller_id": seller_id,
    });
    st.push(push);
}

pub fn cancel(st: &mut State, b: &Value) -> Out {
    let Some(number) = b["posting_number"].as_str() else {
        return err(
            400,
            3,
            "Request validation error: posting_number is required",
        );
    };
    let Some(p) = st.postings.get(number) else {
        return not_found();
    };
    if let Some(code) = rules::cancel_refusal(&p.status) {
        return err(400, 3, code);
    }
    let id = as_i64(&b["cancel_reason_id"]).unwrap_or(0);
    let Some(title) = rules::seller_cancel_reason(id) else {
        return err(400, 3, "HAS_INCORRECT_CANCEL_REASON");
    };
    let message = b["cancel_reason_message"].as_str().unwrap_or("").trim();
    if id == 402 && message.is_empty() {
        return err(400, 3, "CANCEL_REASON_MESSAGE_REQUIRED");
    }
    let reason = if message.is_empty() {
        title.to_string()
    } else {
        message.to_string()
    };
    do_cancel(st, number, id, &reason, "Продавец");
    ok(json!({"result": true}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ozon::SimConfig;

    fn body(out: Out) -> (u16, Value) {
        match out {
            Out::Json(s, v) => (s, v),
            Out::Pdf(b) => (200, json!({"pdf": b.len()})),
        }
    }

    fn posting(st: &mut State, qty: i64) -> (String, i64, i64) {
        let p = st.create_product("A1");
        let (sku, pid) = (p.sku, p.product_id);
        let (order_id, order_number) = st.new_order_number();
        let now = Utc::now();
        let number = format!("{order_number}-1");
        insert(
            st,
            Posting {
                posting_number: number.clone(),
                order_id,
                order_number,
                status: "awaiting_packaging".into(),
                substatus: "posting_created".into(),
                previous_substatus: String::new(),
                warehouse_id: 22142605386000,
                warehouse_name: "W".into(),
                products: vec![PostingProduct {
                    sku,
                    offer_id: "A1".into(),
                    name: "A1".into(),
                    quantity: qty,
                    price: 100.0,
                }],
                tracking_number: String::new(),
                in_process_at: now,
                shipment_date: now,
                status_changed_at: now,
                shipped_at: None,
                cancellation: None,
            },
        );
        (number, sku, pid)
    }

    #[test]
    fn ship_needs_sku_and_exact_quantities_then_label_waits() {
        let mut st = State::new(SimConfig::default());
        let (number, sku, pid) = posting(&mut st, 2);
        let ship_with = |id: i64, q: i64| json!({"posting_number": number, "packages": [{"products": [{"product_id": id, "quantity": q}]}]});
        let (s, v) = body(ship(&mut st, &ship_with(pid, 2)));
        assert_eq!((s, v["message"].as_str()), (400, Some("UNKNOWN_PRODUCT")));
        let (_, v) = body(ship(&mut st, &ship_with(sku, 1)));
        assert_eq!(v["message"], "HAS_INCORRECT_PRODUCT_QUANTITY");
        let (s, v) = body(ship(&mut st, &ship_with(sku, 2)));
        assert_eq!(s, 200, "{v}");
        assert_eq!(st.postings[&number].status, "awaiting_deliver");
        let (_, v) = body(ship(&mut st, &ship_with(sku, 2)));
        assert_eq!(v["message"], "POSTING_ALREADY_SHIPPED");
        // Label: not ready during the delay, then a PDF.
        let req = json!({"posting_number": [number]});
        let (s, v) = body(label(&mut st, &req));
        assert_eq!(
            (s, v["message"].as_str()),
            (409, Some("The next postings aren't ready"))
        );
        st.cfg.label_delay_secs = 0;
        assert_eq!(body(label(&mut st, &req)).0, 200);
        assert_eq!(st.stats.labels, 1);
    }

    #[test]
    fn split_ship_and_cancel_rules() {
        let mut st = State::new(SimConfig::default());
        let (number, sku, _) = posting(&mut st, 2);
        let req = json!({"posting_number": number, "packages": [
            {"products": [{"product_id": sku, "quantity": 1}]},
            {"products": [{"product_id": sku.to_string(), "quantity": 1}]}]});
        let (s, v) = body(ship(&mut st, &req));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["result"].as_array().unwrap().len(), 2);
        assert_eq!(st.postings.len(), 2);
        let (n2, _, _) = posting(&mut st, 1);
        let c = |id: i64, msg: &str| json!({"posting_number": n2, "cancel_reason_id": id, "cancel_reason_message": msg});
        assert_eq!(
            body(cancel(&mut st, &c(1, ""))).1["message"],
            "HAS_INCORRECT_CANCEL_REASON"
        );
        assert_eq!(
            body(cancel(&mut st, &c(665, ""))).1["message"],
            "HAS_INCORRECT_CANCEL_REASON"
        );
        assert_eq!(body(cancel(&mut st, &c(402, ""))).0, 400);
        assert_eq!(body(cancel(&mut st, &c(352, ""))).0, 200);
        assert_eq!(st.postings[&n2].status, "cancelled");
        assert_eq!(
            body(cancel(&mut st, &c(352, ""))).1["message"],
            "POSTING_ALREADY_CANCELLED"
        );
        let ship_req = json!({"posting_number": n2, "packages": [{"products": [{"product_id": sku, "quantity": 1}]}]});
        assert_eq!(
            body(ship(&mut st, &ship_req)).1["message"],
            "POSTING_ALREADY_CANCELLED"
        );
    }
}
