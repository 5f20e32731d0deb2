//! Product methods: stocks, prices, card import, lists and info.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

use super::rules::{self, as_f64, as_i64, as_str};
use super::state::{money, ts, ImportItem, ImportTask, Product, State};
use super::{err, ok, Out};

fn item_error(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// Finds the offer an item refers to: `offer_id` wins over `product_id`. Creates an unknown offer
/// when `auto_products`. Err = the item error.
fn resolve(st: &mut State, item: &Value, strict_code: &str) -> Result<String, Value> {
    if let Some(offer) = as_str(&item["offer_id"]) {
        if st.products.contains_key(offer) {
            return Ok(offer.to_string());
        }
        if st.cfg.auto_products {
            st.create_product(offer);
            return Ok(offer.to_string());
        }
        return Err(item_error(strict_code, "Product not found"));
    }
    match as_i64(&item["product_id"]).and_then(|p| st.offer_of_pid(p)) {
        Some(o) => Ok(o.to_string()),
        None => Err(item_error("NOT_FOUND_ERROR", "Product not found")),
    }
}

pub fn stocks(st: &mut State, b: &Value) -> Out {
    let Some(items) = b["stocks"].as_array() else {
        return err(400, 3, "Request validation error: stocks is required");
    };
    if items.len() > rules::STOCKS_MAX_PAIRS {
        return err(
            400,
            3,
            format!(
                "Request validation error: invalid ProductsStocksRequest.Stocks: value must contain no more than {} item(s)",
                rules::STOCKS_MAX_PAIRS
            ),
        );
    }
    for (i, it) in items.iter().enumerate() {
        if as_i64(&it["warehouse_id"]).is_none() || as_i64(&it["stock"]).is_none() {
            return err(
                400,
                3,
                format!("Request validation error: invalid ProductsStocksRequest.Stocks[{i}]: embedded message failed validation"),
            );
        }
    }
    let now = Instant::now();
    let mut result = Vec::with_capacity(items.len());
    for it in items {
        let wh = as_i64(&it["warehouse_id"]).unwrap_or(0);
        let stock = as_i64(&it["stock"]).unwrap_or(0);
        let mut out = json!({
            "warehouse_id": wh,
            "product_id": as_i64(&it["product_id"]).unwrap_or(0),
            "offer_id": it["offer_id"].as_str().unwrap_or(""),
            "updated": false,
            "errors": [],
        });
        let outcome = (|| {
            if st.warehouse_name(wh).is_none() {
                return Err(item_error("WAREHOUSE_NOT_FOUND", "Warehouse not found"));
            }
            let offer = resolve(st, it, "offer_id_not_found")?;
            if stock >= rules::STOCK_MAX {
                return Err(item_error(
                    "STOCK_TOO_BIG",
                    "Stock must be less than 1000000",
                ));
            }
            if stock < 0 {
                return Err(item_error("INVALID_STOCK", "Stock must not be negative"));
            }
            Ok(offer)
        })();
        match outcome {
            Err(e) => out["errors"] = json!([e]),
            Ok(offer) => {
                let p = st.products.get_mut(&offer).expect("resolved offer exists");
                out["product_id"] = json!(p.product_id);
                out["offer_id"] = json!(p.offer_id);
                let cooldown = std::time::Duration::from_secs(st.cfg.stock_cooldown_secs);
                let p = st.products.get_mut(&offer).expect("resolved offer exists");
                if rules::in_cooldown(p.stock_at.get(&wh).copied(), now, cooldown) {
                    out["errors"] = json!([item_error(
                        "TOO_MANY_REQUESTS",
                        "Stock is updated too frequently"
                    )]);
                } else {
                    let old = p.stocks.insert(wh, stock);
                    p.stock_at.insert(wh, now);
                    p.stock_updates += 1;
                    p.updated_at = Utc::now();
                    st.stats.stock_updates += 1;
                    if old == Some(stock) {
                        st.stats.stock_same_value += 1;
                    }
                    out["updated"] = json!(true);
                }
            }
        }
        result.push(out);
    }
    ok(json!({ "result": result }))
}

pub fn prices(st: &mut State, b: &Value) -> Out {
    let Some(items) = b["prices"].as_array() else {
        return err(400, 3, "Request validation error: prices is required");
    };
    if items.len() > rules::PRICES_MAX_ITEMS {
        return err(
            400,
            3,
            format!(
                "Request validation error: invalid ImportProductsPricesRequest.Prices: value must contain no more than {} item(s)",
                rules::PRICES_MAX_ITEMS
            ),
        );
    }
    let now = Instant::now();
    let hour = Duration::from_secs(3600);
    let mut result = Vec::with_capacity(items.len());
    for it in items {
        let mut out = json!({
            "product_id": as_i64(&it["product_id"]).unwrap_or(0),
            "offer_id": it["offer_id"].as_str().unwrap_or(""),
            "updated": false,
            "errors": [],
        });
        let outcome = (|| {
            let parse = |key: &str| -> Result<Option<f64>, Value> {
                match &it[key] {
                    Value::Null => Ok(None),
                    Value::String(s) if s.is_empty() => Ok(None),
                    v => as_f64(v).map(Some).ok_or_else(|| {
                        item_error("INVALID_PRICE", &format!("{key} is not a number"))
                    }),
                }
            };
            let price = parse("price")?;
            let old_price = parse("old_price")?;
            let min_price = parse("min_price")?;
            let offer = resolve(st, it, "NOT_FOUND_ERROR")?;
            let p = st.products.get(&offer).expect("resolved offer exists");
            let new_price = price.unwrap_or(p.price);
            let new_old = old_price.unwrap_or(p.old_price);
            if min_price.is_some_and(|m| m < 0.0) {
                return Err(item_error(
                    "price_negative",
                    rules::price_error_message("price_negative"),
                ));
            }
            if let Some(code) = rules::price_error(new_price, new_old) {
                return Err(item_error(code, rules::price_error_message(code)));
            }
            if let Some(c) = it["currency_code"].as_str().filter(|c| !c.is_empty()) {
                if c != p.currency_code {
                    return Err(item_error(
                        "CURRENCY_CODE_MISMATCH",
                        "currency_code must equal the cabinet currency",
                    ));
                }
            }
            Ok((offer, new_price, new_old, min_price))
        })();
        match outcome {
            Err(e) => out["errors"] = json!([e]),
            Ok((offer, price, old_price, min_price)) => {
                let p = st.products.get_mut(&offer).expect("resolved offer exists");
                out["product_id"] = json!(p.product_id);
                out["offer_id"] = json!(p.offer_id);
                if !p
                    .price_window
                    .admit(now, hour, rules::PRICE_UPDATES_PER_HOUR)
                {
                    out["errors"] = json!([item_error(
                        "TOO_MANY_REQUESTS",
                        "The price of a product can be updated no more than 10 times per hour"
                    )]);
                } else {
                    let min_price = min_price.unwrap_or(p.min_price);
                    let same =
                        p.price == price && p.old_price == old_price && p.min_price == min_price;
                    p.price = price;
                    p.old_price = old_price;
                    p.min_price = min_price;
                    if let Some(v) = it["vat"].as_str().filter(|v| rules::VATS.contains(v)) {
                        p.vat = v.to_string();
                    }
                    p.price_updates += 1;
                    p.updated_at = Utc::now();
                    st.stats.price_updates += 1;
                    if same {
                        st.stats.price_same_value += 1;
                    }
                    out["updated"] = json!(true);
                }
            }
        }
        result.push(out);
    }
    ok(json!({ "result": result }))
}

/// Validates one import item; the errors of §3.2 shape.
pub fn validate_card(it: &Value) -> Vec<Value> {
    let mut errors = Vec::new();
    let mut fail = |code: &str, field: &str, message: &str| {
        errors.push(json!({
            "code": code, "field": field, "message": message, "state": "imported",
            "level": "error", "description": message, "attribute_id": 0, "attribute_name": "",
        }));
    };
    if as_i64(&it["description_category_id"]).unwrap_or(0) == 0 {
        fail(
            "invalid_category",
            "description_category_id",
            "description_category_id is required",
        );
    }
    if as_i64(&it["type_id"]).unwrap_or(0) == 0 {
        fail("invalid_type", "type_id", "type_id is required");
    }
    let offer = it["offer_id"].as_str().unwrap_or("");
    if offer.is_empty() || offer.chars().count() > 50 {
        fail(
            "invalid_offer_id",
            "offer_id",
            "offer_id must be 1 to 50 characters",
        );
    }
    let name = it["name"].as_str().unwrap_or("");
    if name.trim().is_empty() || name.chars().count() > 500 {
        fail("invalid_name", "name", "name must be 1 to 500 characters");
    }
    if !it["vat"].as_str().is_some_and(|v| rules::VATS.contains(&v)) {
        fail(
            "invalid_vat",
            "vat",
            "vat must be one of 0, 0.05, 0.07, 0.1, 0.2",
        );
    }
    for key in ["weight", "depth", "width", "height"] {
        if !as_f64(&it[key]).is_some_and(|v| v > 0.0) {
            fail(
                "invalid_dimensions",
                key,
                &format!("{key} must be greater than 0"),
            );
        }
    }
    for key in ["price", "old_price"] {
        if !it[key].is_null() && !as_f64(&it[key]).is_some_and(|v| v >= 0.0) {
            fail(
                "invalid_price",
                key,
                &format!("{key} must be a number of at least 0"),
            );
        }
    }
    if let Some(c) = it["currency_code"].as_str() {
        if !["RUB", "BYN", "KZT", "EUR", "USD", "CNY"].contains(&c) {
            fail(
                "invalid_currency",
                "currency_code",
                "unsupported currency_code",
            );
        }
    }
    let images = it["images"].as_array().map_or(0, |a| a.len())
        + usize::from(as_str(&it["primary_image"]).is_some());
    if images > 15 {
        fail("too_many_images", "images", "at most 15 images per product");
    }
    errors
}

fn apply_card(p: &mut Product, it: &Value, card: String) {
    p.name = it["name"].as_str().unwrap_or("").to_string();
    p.description_category_id = as_i64(&it["description_category_id"]).unwrap_or(0);
    p.type_id = as_i64(&it["type_id"]).unwrap_or(0);
    p.barcode = it["barcode"].as_str().unwrap_or("").to_string();
    if let Some(v) = as_f64(&it["price"]) {
        p.price = v;
    }
    if let Some(v) = as_f64(&it["old_price"]) {
        p.old_price = v;
    }
    if let Some(c) = as_str(&it["currency_code"]) {
        p.currency_code = c.to_string();
    }
    p.vat = it["vat"].as_str().unwrap_or("0").to_string();
    let int = |k: &str| as_f64(&it[k]).unwrap_or(0.0).round() as i64;
    p.depth = int("depth");
    p.width = int("width");
    p.height = int("height");
    p.weight = int("weight");
    p.dimension_unit = as_str(&it["dimension_unit"]).unwrap_or("mm").to_string();
    p.weight_unit = as_str(&it["weight_unit"]).unwrap_or("g").to_string();
    p.images = it["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    p.primary_image = it["primary_image"].as_str().unwrap_or("").to_string();
    p.attributes = if it["attributes"].is_array() {
        it["attributes"].clone()
    } else {
        json!([])
    };
    p.card = card;
    p.updated_at = Utc::now();
}

pub fn import(st: &mut State, b: &Value) -> Out {
    let Some(items) = b["items"].as_array() else {
        return err(400, 3, "Request validation error: items is required");
    };
    if items.is_empty() || items.len() > rules::IMPORT_MAX_ITEMS {
        return err(
            400,
            3,
            "Request validation error: invalid ImportProductsV3Request.Items: value must contain between 1 and 100 items",
        );
    }
    let mut results = Vec::with_capacity(items.len());
    for it in items {
        let offer = it["offer_id"].as_str().unwrap_or("").to_string();
        let errors = validate_card(it);
        st.stats.imports += 1;
        if !errors.is_empty() {
            let product_id = st.products.get(&offer).map_or(0, |p| p.product_id);
            results.push(ImportItem {
                offer_id: offer,
                product_id,
                status: "failed",
                errors,
            });
            continue;
        }
        let card = it.to_string();
        let status = match st.products.get(&offer) {
            Some(p) if p.card == card => "skipped",
            Some(_) => "imported",
            None => {
                st.create_product(&offer);
                "imported"
            }
        };
        let p = st.products.get_mut(&offer).expect("product exists");
        if status == "imported" {
            apply_card(p, it, card);
        }
        let (product_id, pushed) = (p.product_id, status == "imported");
        results.push(ImportItem {
            offer_id: offer.clone(),
            product_id,
            status,
            errors: Vec::new(),
        });
        if pushed {
            let seller_id = st.seller_id();
            st.push(json!({
                "message_type": "TYPE_CREATE_OR_UPDATE_ITEM", "seller_id": seller_id,
                "offer_id": offer, "product_id": product_id, "is_error": false,
                "changed_at": ts(Utc::now()),
            }));
        }
    }
    let id = st.next_task_id();
    st.import_tasks.insert(
        id,
        ImportTask {
            items: results,
            polls: 0,
        },
    );
    ok(json!({"result": {"task_id": id}}))
}

pub fn import_info(st: &mut State, b: &Value) -> Out {
    let Some(id) = as_i64(&b["task_id"]) else {
        return err(400, 3, "Request validation error: task_id is required");
    };
    let pending_polls = st.cfg.import_pending_polls;
    let Some(task) = st.import_tasks.get_mut(&id) else {
        return err(404, 5, "task not found");
    };
    task.polls += 1;
    let pending = task.polls <= pending_polls;
    let items: Vec<Value> = task
        .items
        .iter()
        .map(|i| {
            if pending {
                json!({"offer_id": i.offer_id, "product_id": 0, "status": "pending", "errors": []})
            } else {
                json!({"offer_id": i.offer_id, "product_id": i.product_id, "status": i.status, "errors": i.errors})
            }
        })
        .collect();
    let total = items.len();
    ok(json!({"result": {"items": items, "total": total}}))
}

/// Limit 1..=1000 (default 100).
fn limit(b: &Value) -> Result<usize, Out> {
    match &b["limit"] {
        Value::Null => Ok(100),
        v => match as_i64(v) {
            Some(n) if (1..=rules::LIST_MAX as i64).contains(&n) => Ok(n as usize),
            _ => Err(err(
                400,
                3,
                "Request validation error: limit must be between 1 and 1000",
            )),
        },
    }
}

/// The products a filter selects, in product_id order, from the cursor (exclusive), at most
/// `limit`; plus the total and the next cursor ("" when this is the last page).
fn select<'a>(
    st: &'a State,
    filter: &Value,
    cursor: &Value,
    limit: usize,
) -> (Vec<&'a Product>, usize, String) {
    let after = as_i64(cursor).unwrap_or(0);
    let visibility = filter["visibility"].as_str().unwrap_or("ALL");
    if visibility == "ARCHIVED" {
        return (Vec::new(), 0, String::new());
    }
    let offers: Vec<&str> = filter["offer_id"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let pids: Vec<i64> = filter["product_id"]
        .as_array()
        .map(|a| a.iter().filter_map(as_i64).collect())
        .unwrap_or_default();
    let in_stock = |p: &Product| p.present() > 0;
    let keep = |p: &Product| match visibility {
        "EMPTY_STOCK" => !in_stock(p),
        _ => true,
    };
    if offers.is_empty() && pids.is_empty() {
        let total = if visibility == "EMPTY_STOCK" {
            st.products.values().filter(|p| keep(p)).count()
        } else {
            st.products.len()
        };
        let mut page = Vec::with_capacity(limit);
        let mut more = false;
        for (_, offer) in st.by_pid.range(after + 1..) {
            let p = &st.products[offer];
            if !keep(p) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(p);
        }
        let next = if more {
            page.last()
                .map(|p| p.product_id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        return (page, total, next);
    }
    let mut all: Vec<&Product> = offers
        .iter()
        .filter_map(|o| st.products.get(*o))
        .chain(
            pids.iter()
                .filter_map(|id| st.by_pid.get(id).and_then(|o| st.products.get(o))),
        )
        .filter(|p| keep(p))
        .collect();
    all.sort_by_key(|p| p.product_id);
    all.dedup_by_key(|p| p.product_id);
    let total = all.len();
    let rest: Vec<&Product> = all.into_iter().filter(|p| p.product_id > after).collect();
    let more = rest.len() > limit;
    let page: Vec<&Product> = rest.into_iter().take(limit).collect();
    let next = if more {
        page.last()
            .map(|p| p.product_id.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    (page, total, next)
}

pub fn list(st: &mut State, b: &Value) -> Out {
    let limit = match limit(b) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (page, total, next) = select(st, &b["filter"], &b["last_id"], limit);
    let items: Vec<Value> = page
        .iter()
        .map(|p| {
            json!({
                "product_id": p.product_id, "offer_id": p.offer_id, "archived": false,
                "has_fbo_stocks": false, "has_fbs_stocks": p.present() > 0,
                "is_discounted": false, "quants": [],
            })
        })
        .collect();
    ok(json!({"result": {"items": items, "total": total, "last_id": next}}))
}

fn info_item(p: &Product) -> Value {
    json!({
        "id": p.product_id, "offer_id": p.offer_id, "sku": p.sku, "name": p.name,
        "barcodes": if p.barcode.is_empty() { vec![] } else { vec![p.barcode.clone()] },
        "description_category_id": p.description_category_id, "type_id": p.type_id,
        "price": money(p.price), "old_price": money(p.old_price), "min_price": money(p.min_price),
        "marketing_price": money(p.price), "currency_code": p.currency_code, "vat": p.vat,
        "images": p.images,
        "primary_image": if p.primary_image.is_empty() { vec![] } else { vec![p.primary_image.clone()] },
        "is_archived": false, "is_autoarchived": false,
        "stocks": {
            "has_stock": p.present() > 0,
            "stocks": [{"present": p.present(), "reserved": 0, "sku": p.sku, "source": "fbs"}],
        },
        "statuses": {
            "status": "price_sent", "status_name": "Продается", "moderate_status": "approved",
            "validation_status": "success", "is_created": true,
            "status_updated_at": ts(p.updated_at),
        },
        "errors": [],
        "created_at": ts(p.created_at), "updated_at": ts(p.updated_at),
        "sources": [{"sku": p.sku, "source": "sds", "shipment_type": "SHIPMENT_TYPE_GENERAL"}],
    })
}

pub fn info_list(st: &mut State, b: &Value) -> Out {
    let list = |k: &str| b[k].as_array().cloned().unwrap_or_default();
    let (offers, pids, skus) = (list("offer_id"), list("product_id"), list("sku"));
    if offers.len() + pids.len() + skus.len() > rules::LIST_MAX {
        return err(400, 3, "Request validation error: at most 1000 ids");
    }
    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::new();
    let found = offers
        .iter()
        .filter_map(|v| v.as_str().and_then(|o| st.products.get(o)))
        .chain(pids.iter().filter_map(|v| {
            as_i64(v)
                .and_then(|id| st.by_pid.get(&id))
                .and_then(|o| st.products.get(o))
        }))
        .chain(skus.iter().filter_map(|v| {
            as_i64(v)
                .and_then(|id| st.by_sku.get(&id))
                .and_then(|o| st.products.get(o))
        }));
    for p in found {
        if seen.insert(p.product_id) {
            items.push(info_item(p));
        }
    }
    ok(json!({ "items": items }))
}

pub fn info_stocks(st: &mut State, b: &Value) -> Out {
    let limit = match limit(b) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (page, total, next) = select(st, &b["filter"], &b["cursor"], limit);
    let items: Vec<Value> = page
        .iter()
        .map(|p| {
            json!({
                "product_id": p.product_id, "offer_id": p.offer_id,
                "stocks": [{
                    "type": "fbs", "present": p.present(), "reserved": 0, "sku": p.sku,
                    "shipment_type": "SHIPMENT_TYPE_GENERAL",
                    "warehouse_ids": p.stocks.keys().collect::<Vec<_>>(),
                }],
            })
        })
        .collect();
    ok(json!({"items": items, "cursor": next, "total": total}))
}

pub fn info_prices(st: &mut State, b: &Value) -> Out {
    let limit = match limit(b) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (page, total, next) = select(st, &b["filter"], &b["cursor"], limit);
    let items: Vec<Value> = page
        .iter()
        .map(|p| {
            json!({
                "product_id": p.product_id, "offer_id": p.offer_id,
                "price": {
                    "price": p.price, "old_price": p.old_price, "min_price": p.min_price,
                    "marketing_price": p.price, "marketing_seller_price": p.price,
                    "currency_code": p.currency_code,
                    "vat": p.vat.parse::<f64>().unwrap_or(0.0),
                    "auto_action_enabled": false,
                },
                "commissions": {"fbs_direct_flow_trans_max_amount": 0.0, "sales_percent_fbs": 15.0},
                "price_indexes": {"color_index": "WITHOUT_INDEX"},
                "volume_weight": 0.1,
            })
        })
        .collect();
    ok(json!({"items": items, "cursor": next, "total": total}))
}

pub fn stocks_by_warehouse(st: &mut State, b: &Value) -> Out {
    let skus: Vec<i64> = b["sku"]
        .as_array()
        .map(|a| a.iter().filter_map(as_i64).collect())
        .unwrap_or_default();
    if skus.is_empty() || skus.len() > 500 {
        return err(
            400,
            3,
            "Request validation error: sku must contain 1 to 500 items",
        );
    }
    let mut result = Vec::new();
    for sku in skus {
        let Some(p) = st.by_sku.get(&sku).and_then(|o| st.products.get(o)) else {
            continue;
        };
        for (wh, present) in &p.stocks {
            result.push(json!({
                "sku": p.sku, "product_id": p.product_id, "warehouse_id": wh,
                "warehouse_name": st.warehouse_name(*wh).unwrap_or_default(),
                "present": present, "reserved": 0,
            }));
        }
    }
    ok(json!({ "result": result }))
}

pub fn warehouses(st: &mut State) -> Out {
    let result: Vec<Value> = st
        .cfg
        .warehouses
        .iter()
        .map(|(id, name)| {
            json!({
                "warehouse_id": id, "name": name, "is_rfbs": false, "is_kgt": false,
                "is_economy": false, "status": "created", "has_entrusted_acceptance": false,
                "can_print_act_in_advance": false,
                "first_mile_type": {"first_mile_type": "DropOff", "dropoff_point_id": "",
                    "dropoff_timeslot_id": 0, "first_mile_is_changing": false},
                "has_postings_limit": false, "postings_limit": -1, "min_postings_limit": 0,
                "working_days": ["1", "2", "3", "4", "5"], "min_working_days": 5,
                "is_timetable_editable": true, "is_karantin": false,
            })
        })
        .collect();
    ok(json!({ "result": result }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ozon::SimConfig;

    fn state() -> State {
        State::new(SimConfig::default())
    }

    fn body(out: Out) -> (u16, Value) {
        match out {
            Out::Json(s, v) => (s, v),
            Out::Pdf(_) => panic!("pdf"),
        }
    }

    const WH: i64 = 22142605386000;

    #[test]
    fn stocks_batch_cap_and_cooldown() {
        let mut st = state();
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"offer_id": format!("A{i}"), "stock": 1, "warehouse_id": WH}))
            .collect();
        assert_eq!(body(stocks(&mut st, &json!({"stocks": many}))).0, 400);
        let req = json!({"stocks": [{"offer_id": "A1", "stock": 5, "warehouse_id": WH}]});
        let (s, v) = body(stocks(&mut st, &req));
        assert_eq!(s, 200);
        assert_eq!(v["result"][0]["updated"], true);
        let (_, v) = body(stocks(&mut st, &req));
        assert_eq!(v["result"][0]["updated"], false);
        assert_eq!(v["result"][0]["errors"][0]["code"], "TOO_MANY_REQUESTS");
        assert_eq!(st.stats.stock_updates, 1);
        // Another warehouse is another pair, but unknown here.
        let (_, v) = body(stocks(
            &mut st,
            &json!({"stocks": [{"offer_id": "A1", "stock": 5, "warehouse_id": "1"}]}),
        ));
        assert_eq!(v["result"][0]["errors"][0]["code"], "WAREHOUSE_NOT_FOUND");
        // Missing warehouse fails the whole request.
        assert_eq!(
            body(stocks(
                &mut st,
                &json!({"stocks": [{"offer_id": "A1", "stock": 5}]})
            ))
            .0,
            400
        );
        let (_, v) = body(stocks(
            &mut st,
            &json!({"stocks": [{"offer_id": "A2", "stock": 1_000_000, "warehouse_id": WH}]}),
        ));
        assert_eq!(v["result"][0]["errors"][0]["code"], "STOCK_TOO_BIG");
        st.cfg.auto_products = false;
        let (_, v) = body(stocks(
            &mut st,
            &json!({"stocks": [{"offer_id": "NEW", "stock": 1, "warehouse_id": WH}]}),
        ));
        assert_eq!(v["result"][0]["errors"][0]["code"], "offer_id_not_found");
    }

    #[test]
    fn prices_hourly_limit_and_gaps() {
        let mut st = state();
        for i in 0..10 {
            let (_, v) = body(prices(
                &mut st,
                &json!({"prices": [{"offer_id": "P", "price": format!("{}", 100 + i)}]}),
            ));
            assert_eq!(v["result"][0]["updated"], true, "{v}");
        }
        let (_, v) = body(prices(
            &mut st,
            &json!({"prices": [{"offer_id": "P", "price": "1"}]}),
        ));
        assert_eq!(v["result"][0]["errors"][0]["code"], "TOO_MANY_REQUESTS");
        let (_, v) = body(prices(
            &mut st,
            &json!({"prices": [{"offer_id": "Q", "price": "1000", "old_price": "1010"}]}),
        ));
        assert_eq!(
            v["result"][0]["errors"][0]["code"],
            "discount_for_average_price_is_too_small"
        );
        let big: Vec<Value> = (0..1001)
            .map(|i| json!({"offer_id": format!("X{i}"), "price": "1"}))
            .collect();
        assert_eq!(body(prices(&mut st, &json!({"prices": big}))).0, 400);
    }

    #[test]
    fn import_validates_and_skips_unchanged() {
        let mut st = state();
        let good = json!({"offer_id": "C1", "name": "Card", "description_category_id": 1, "type_id": 2,
            "vat": "0.2", "weight": 100, "depth": 10, "width": 10, "height": 10, "price": "100"});
        let bad = json!({"offer_id": "C2", "name": "", "description_category_id": 0, "type_id": 2,
            "vat": "0.3", "weight": 0, "depth": 10, "width": 10, "height": 10});
        assert_eq!(validate_card(&good).len(), 0);
        assert!(validate_card(&bad).len() >= 4);
        st.cfg.import_pending_polls = 1;
        let (_, v) = body(import(&mut st, &json!({"items": [good.clone(), bad]})));
        let task = v["result"]["task_id"].clone();
        let (_, v) = body(import_info(&mut st, &json!({"task_id": task})));
        assert_eq!(v["result"]["items"][0]["status"], "pending");
        let (_, v) = body(import_info(&mut st, &json!({"task_id": task})));
        assert_eq!(v["result"]["items"][0]["status"], "imported");
        assert_eq!(v["result"]["items"][1]["status"], "failed");
        let (_, v) = body(import(&mut st, &json!({"items": [good]})));
        let task = v["result"]["task_id"].to_string();
        body(import_info(&mut st, &json!({"task_id": task})));
        let (_, v) = body(import_info(&mut st, &json!({"task_id": task})));
        assert_eq!(v["result"]["items"][0]["status"], "skipped");
    }

    #[test]
    fn hundred_thousand_products_page_and_stats_stay_compact() {
        let mut st = state();
        for k in 0..1000 {
            let pairs: Vec<Value> = (0..100)
                .map(|j| json!({"offer_id": format!("O{}", k * 100 + j), "stock": 3, "warehouse_id": WH}))
                .collect();
            let (s, _) = body(stocks(&mut st, &json!({ "stocks": pairs })));
            assert_eq!(s, 200);
        }
        assert_eq!(st.products.len(), 100_000);
        assert_eq!(st.stats.stock_updates, 100_000);
        let mut cursor = json!("");
        let mut seen = 0;
        let mut pages = 0;
        loop {
            let (page, total, next) = select(&st, &json!({}), &cursor, 1000);
            assert_eq!(total, 100_000);
            seen += page.len();
            pages += 1;
            if next.is_empty() {
                break;
            }
            cursor = json!(next);
        }
        assert_eq!((seen, pages), (100_000, 100));
        // The stats document does not grow with the catalog.
        assert!(st.stats.json().to_string().len() < 1000);
    }

    #[test]
    fn cursor_pages_cover_everything_once() {
        let mut st = state();
        for i in 0..25 {
            st.create_product(&format!("O{i}"));
        }
        let mut cursor = String::new();
        let mut seen = 0;
        loop {
            let (_, v) = body(info_prices(
                &mut st,
                &json!({"cursor": cursor, "limit": 10}),
            ));
            assert_eq!(v["total"], 25);
            seen += v["items"].as_array().unwrap().len();
            cursor = v["cursor"].as_str().unwrap().to_string();
            if cursor.is_empty() {
                break;
            }
        }
        assert_eq!(seen, 25);
        assert_eq!(body(list(&mut st, &json!({"limit": 1001}))).0, 400);
    }
}
