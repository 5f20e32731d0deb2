//! The control API under `/sim/` (no auth): faults, config, seeding, posting moves, stats, reset,
//! and the label files of async tasks.

use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::postings;
use super::rules::{self, as_f64, as_i64, as_str};
use super::state::{ts, Faults, Posting, PostingProduct, State};
use super::{err, ok, Out, Sim};

pub fn handle(sim: &Sim, method: &str, path: &str, body: &[u8]) -> Out {
    let body: Value = if body.iter().all(|b| b.is_ascii_whitespace()) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return err(400, 3, format!("Invalid request body: {e}")),
        }
    };
    let rest = path.trim_start_matches("/sim/");
    let parts: Vec<&str> = rest.split('/').collect();
    sim.with(|st| match (method, parts.as_slice()) {
        ("POST", ["faults"]) => faults(st, &body),
        ("GET", ["faults"]) => ok(faults_json(&st.faults)),
        ("POST", ["config"]) => config(st, &body),
        ("GET", ["config"]) => ok(config_json(st)),
        ("POST", ["products"]) => seed_products(st, &body),
        ("GET", ["products", offer]) => {
            let offer = percent_encoding::percent_decode_str(offer).decode_utf8_lossy();
            match st.products.get(offer.as_ref()) {
                Some(p) => ok(p.sim_json()),
                None => err(404, 5, "product not found"),
            }
        }
        ("POST", ["postings"]) => create_posting(st, &body),
        ("GET", ["postings", number]) => match st.postings.get(*number) {
            Some(p) => ok(p.json()),
            None => err(404, 5, "POSTING_NOT_FOUND"),
        },
        ("POST", ["postings", number, "status"]) => move_posting(st, number, &body),
        ("GET", ["stats"]) => ok(st.stats.json()),
        ("GET", ["pushes"]) => ok(json!({ "pushes": st.push_log })),
        ("POST", ["reset"]) => {
            st.reset();
            ok(json!({"result": true}))
        }
        ("GET", ["files", file]) => match file
            .strip_prefix("label-")
            .and_then(|f| f.strip_suffix(".pdf"))
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => postings::label_file(st, id),
            None => err(404, 5, "Not Found"),
        },
        _ => err(404, 5, "Not Found"),
    })
}

fn faults_json(f: &Faults) -> Value {
    json!({
        "rate_429": f.rate_429, "rate_500": f.rate_500, "rate_timeout": f.rate_timeout,
        "rate_garbage": f.rate_garbage, "timeout_ms": f.timeout_ms, "delay_ms": f.delay_ms,
        "apply_before_timeout": f.apply_before_timeout, "seed": f.seed,
    })
}

fn faults(st: &mut State, b: &Value) -> Out {
    let f: Faults = match serde_json::from_value(b.clone()) {
        Ok(f) => f,
        Err(e) => return err(400, 3, format!("Invalid request body: {e}")),
    };
    for r in [f.rate_429, f.rate_500, f.rate_timeout, f.rate_garbage] {
        if !(0.0..=1.0).contains(&r) {
            return err(400, 3, "rates must be between 0 and 1");
        }
    }
    st.rng = StdRng::seed_from_u64(f.seed.unwrap_or_else(rand::random));
    st.faults = f;
    ok(faults_json(&st.faults))
}

fn config_json(st: &State) -> Value {
    let c = &st.cfg;
    json!({
        "client_id": c.client_id, "api_key": c.api_key,
        "warehouses": c.warehouses.iter().map(|(id, n)| json!({"warehouse_id": id, "name": n})).collect::<Vec<_>>(),
        "label_delay_secs": c.label_delay_secs, "label_not_ready_status": c.label_not_ready_status,
        "import_pending_polls": c.import_pending_polls, "auto_products": c.auto_products,
        "stock_cooldown_secs": c.stock_cooldown_secs,
        "push_url": c.push_url, "rate_limits": c.rate_limits, "public_url": c.public_url,
    })
}

fn config(st: &mut State, b: &Value) -> Out {
    let c = &mut st.cfg;
    if let Some(v) = b.get("label_delay_secs").and_then(Value::as_u64) {
        c.label_delay_secs = v;
    }
    if let Some(v) = b.get("stock_cooldown_secs").and_then(Value::as_u64) {
        c.stock_cooldown_secs = v;
    }
    if let Some(v) = b.get("label_not_ready_status").and_then(Value::as_u64) {
        if !(400..=599).contains(&v) {
            return err(400, 3, "label_not_ready_status must be 400..599");
        }
        c.label_not_ready_status = v as u16;
    }
    if let Some(v) = b.get("import_pending_polls").and_then(Value::as_u64) {
        c.import_pending_polls = v as u32;
    }
    if let Some(v) = b.get("auto_products").and_then(Value::as_bool) {
        c.auto_products = v;
    }
    if let Some(v) = b.get("rate_limits").and_then(Value::as_bool) {
        c.rate_limits = v;
    }
    if let Some(v) = b.get("push_url") {
        c.push_url = v.as_str().filter(|s| !s.is_empty()).map(String::from);
    }
    if let Some(v) = b.get("api_key").and_then(Value::as_str) {
        c.api_key = v.to_string();
    }
    ok(config_json(st))
}

fn seed_products(st: &mut State, b: &Value) -> Out {
    let items = match b {
        Value::Array(a) => a,
        _ => match b["products"].as_array() {
            Some(a) => a,
            None => return err(400, 3, "expected an array of products"),
        },
    };
    let mut result = Vec::with_capacity(items.len());
    for it in items {
        let Some(offer) = as_str(&it["offer_id"]) else {
            return err(400, 3, "offer_id is required");
        };
        let now = Utc::now();
        let p = st.create_product(offer);
        if let Some(n) = as_str(&it["name"]) {
            p.name = n.to_string();
        }
        for (key, slot) in [
            ("price", &mut p.price),
            ("old_price", &mut p.old_price),
            ("min_price", &mut p.min_price),
        ] {
            if let Some(v) = as_f64(&it[key]) {
                *slot = v;
            }
        }
        if let Some(v) = as_i64(&it["description_category_id"]) {
            p.description_category_id = v;
        }
        if let Some(v) = as_i64(&it["type_id"]) {
            p.type_id = v;
        }
        if let Some(v) = it["vat"].as_str().filter(|v| rules::VATS.contains(v)) {
            p.vat = v.to_string();
        }
        if let Some(a) = it["images"].as_array() {
            p.images = a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        if let Some(m) = it["stocks"].as_object() {
            for (wh, n) in m {
                if let (Ok(wh), Some(n)) = (wh.parse::<i64>(), as_i64(n)) {
                    p.stocks.insert(wh, n);
                }
            }
        }
        p.updated_at = now;
        result.push(json!({"offer_id": p.offer_id, "product_id": p.product_id, "sku": p.sku}));
    }
    ok(json!({ "result": result }))
}

fn create_posting(st: &mut State, b: &Value) -> Out {
    let Some(items) = b["products"].as_array().filter(|a| !a.is_empty()) else {
        return err(400, 3, "products must not be empty");
    };
    let mut products = Vec::new();
    for it in items {
        let offer = it["offer_id"].as_str().unwrap_or("");
        let Some(p) = st.products.get(offer) else {
            return err(400, 3, format!("unknown offer_id {offer:?}"));
        };
        let quantity = as_i64(&it["quantity"]).unwrap_or(1);
        if quantity <= 0 {
            return err(400, 3, "quantity must be positive");
        }
        products.push(PostingProduct {
            sku: p.sku,
            offer_id: p.offer_id.clone(),
            name: p.name.clone(),
            quantity,
            price: as_f64(&it["price"]).unwrap_or(p.price),
        });
    }
    let warehouse_id = match as_i64(&b["warehouse_id"]) {
        Some(w) => w,
        None => st.cfg.warehouses.first().map_or(0, |w| w.0),
    };
    let Some(warehouse_name) = st.warehouse_name(warehouse_id) else {
        return err(400, 3, format!("unknown warehouse_id {warehouse_id}"));
    };
    let status = b["status"].as_str().unwrap_or("awaiting_packaging");
    if !rules::STATUSES.contains(&status) {
        return err(400, 3, format!("unknown status {status:?}"));
    }
    let (mut order_id, mut order_number) = st.new_order_number();
    let posting_number = match as_str(&b["posting_number"]) {
        Some(n) => {
            if st.postings.contains_key(n) {
                return err(400, 3, format!("posting {n} exists"));
            }
            if let Some((order, _)) = n.rsplit_once('-') {
                order_number = order.to_string();
                if let Some(existing) = st
                    .postings
                    .values()
                    .find(|p| p.order_number == order_number)
                {
                    order_id = existing.order_id;
                }
            }
            n.to_string()
        }
        None => format!("{order_number}-1"),
    };
    let now = Utc::now();
    let posting = Posting {
        posting_number: posting_number.clone(),
        order_id,
        order_number,
        status: status.to_string(),
        substatus: rules::substatus_for(status).to_string(),
        previous_substatus: String::new(),
        warehouse_id,
        warehouse_name,
        products,
        tracking_number: String::new(),
        in_process_at: now,
        shipment_date: now + chrono::Duration::days(1),
        status_changed_at: now,
        shipped_at: None,
        cancellation: None,
    };
    let push = json!({
        "message_type": "TYPE_NEW_POSTING", "posting_number": posting_number,
        "products": posting.products.iter().map(|x| json!({"sku": x.sku, "quantity": x.quantity})).collect::<Vec<_>>(),
        "in_process_at": ts(now), "warehouse_id": warehouse_id, "seller_id": st.seller_id(),
    });
    let out = posting.json();
    postings::insert(st, posting);
    st.push(push);
    ok(out)
}

fn move_posting(st: &mut State, number: &str, b: &Value) -> Out {
    let Some(status) = b["status"].as_str() else {
        return err(400, 3, "status is required");
    };
    if !rules::STATUSES.contains(&status) {
        return err(400, 3, format!("unknown status {status:?}"));
    }
    if !st.postings.contains_key(number) {
        return err(404, 5, "POSTING_NOT_FOUND");
    }
    if status == "cancelled" {
        let id = as_i64(&b["cancel_reason_id"]).unwrap_or(0);
        let reason = as_str(&b["cancel_reason"])
            .unwrap_or("Отменено Ozon")
            .to_string();
        let initiator = as_str(&b["cancellation_initiator"])
            .unwrap_or("Ozon")
            .to_string();
        postings::do_cancel(st, number, id, &reason, &initiator);
    } else {
        let now = Utc::now();
        let p = st.postings.get_mut(number).expect("checked");
        p.set_status(status, now);
        if status == "awaiting_deliver" {
            p.shipped_at = Some(std::time::Instant::now());
        }
        if let Some(t) = as_str(&b["tracking_number"]) {
            p.tracking_number = t.to_string();
        }
        let push = postings::state_changed(st, number);
        st.push(push);
    }
    ok(st.postings[number].json())
}
