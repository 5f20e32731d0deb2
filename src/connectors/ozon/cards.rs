//! Product cards: goods of a mapped category (`[ozon] categories`) become `/v3/product/import`
//! items. The card planner runs after the stock/price planner; a card is queued when its hash
//! (the card without the price, plus each image's size and mtime) differs from the last queued
//! one. `ozon.card` posts batches of ≤100 and leaves an `ozon.card_task` message per import task,
//! which polls `/v1/product/import/info` until no item is `pending`.
//!
//! Goods without a matching category are taken to have cards on Ozon already: nothing is sent
//! for them (their stocks and prices still go through [`super::plan`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{Client, TARGET};
use super::plan::{self, PlanStats};
use crate::cml::Good;
use crate::config::{OzonCategory, OzonConfig};
use crate::orders::model::parse_decimal;
use crate::relay::{enqueue, Enqueue, Handler, Message, NewMessage, Outcome, OutcomeKind};
use crate::store::schema::{
    catalog_groups, goods, offers, ozon_offers, properties, property_values,
};
use crate::store::{now_ms, Conn};

pub const KIND_CARD: &str = "ozon.card";
pub const KIND_CARD_TASK: &str = "ozon.card_task";

/// How long an import task may stay `pending` before its message is given up.
const TASK_GIVE_UP: Duration = Duration::from_secs(3600);
/// Between two polls of a pending import task.
const TASK_POLL: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default, Serialize)]
pub struct CardStats {
    /// Offers looked at.
    pub checked: usize,
    /// Offers in a mapped category.
    pub mapped: usize,
    pub queued: usize,
    pub unchanged: usize,
    /// Mapped offers without an Ozon offer_id (no article, or a conflict).
    pub no_offer_id: usize,
    pub millis: u64,
}

/// The `ozon.card` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardMessage {
    pub offer_ref: String,
    pub offer_id: String,
    pub card: Value,
}

/// The `ozon.card_task` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskMessage {
    pub task_id: i64,
    pub offer_refs: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Category matching

/// One mapping row resolved against the catalog.
struct Rule {
    /// Group ids (the named ones and all their subgroups).
    groups: Option<HashSet<String>>,
    /// Property ids, and the raw values (text or Справочник value ids) that match.
    property: Option<(HashSet<String>, HashSet<String>)>,
}

/// The category mapping, resolved: which row a good falls into.
pub struct Matcher {
    rules: Vec<Rule>,
    /// Property Ид → name, and (property, value id) → text (for attribute values and dimensions).
    prop_names: HashMap<String, String>,
    value_text: HashMap<(String, String), String>,
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

impl Matcher {
    /// `groups`: (id, parent, name); `props`: (id, name); `values`: (property, value id, text).
    pub fn new(
        cats: &[OzonCategory],
        groups: &[(String, Option<String>, String)],
        props: &[(String, String)],
        values: &[(String, String, String)],
    ) -> Matcher {
        let mut rules = Vec::new();
        for c in cats {
            let groups = c
                .group
                .as_deref()
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|want| {
                    let mut set: HashSet<String> = HashSet::new();
                    set.insert(want.to_string());
                    for (id, _, name) in groups {
                        if eq_ci(name, want) {
                            set.insert(id.clone());
                        }
                    }
                    loop {
                        let before = set.len();
                        for (id, parent, _) in groups {
                            if parent.as_ref().is_some_and(|p| set.contains(p)) {
                                set.insert(id.clone());
                            }
                        }
                        if set.len() == before {
                            break;
                        }
                    }
                    set
                });
            let property = c.property.as_deref().and_then(|p| {
                let (name, value) = p.split_once('=')?;
                let (name, value) = (name.trim(), value.trim());
                let mut ids: HashSet<String> = HashSet::new();
                ids.insert(name.to_string());
                for (id, n) in props {
                    if eq_ci(n, name) {
                        ids.insert(id.clone());
                    }
                }
                let mut raw: HashSet<String> = HashSet::new();
                raw.insert(value.to_lowercase());
                for (pid, vid, text) in values {
                    if ids.contains(pid) && eq_ci(text, value) {
                        raw.insert(vid.to_lowercase());
                    }
                }
                Some((ids, raw))
            });
            rules.push(Rule { groups, property });
        }
        Matcher {
            rules,
            prop_names: props.iter().cloned().collect(),
            value_text: values
                .iter()
                .map(|(p, v, t)| ((p.clone(), v.clone()), t.clone()))
                .collect(),
        }
    }

    pub fn load(conn: &mut Conn, cats: &[OzonCategory]) -> QueryResult<Matcher> {
        let groups: Vec<(String, Option<String>, String)> = catalog_groups::table
            .select((
                catalog_groups::id,
                catalog_groups::parent_id,
                catalog_groups::name,
            ))
            .load(conn)?;
        let props: Vec<(String, String)> = properties::table
            .select((properties::id, properties::name))
            .load(conn)?;
        let values: Vec<(String, String, String)> = property_values::table
            .select((
                property_values::property_id,
                property_values::value_id,
                property_values::value,
            ))
            .load(conn)?;
        Ok(Matcher::new(cats, &groups, &props, &values))
    }

    /// The index of the first mapping row the good matches.
    pub fn find(&self, good: &Good) -> Option<usize> {
        self.rules.iter().position(|r| {
            let by_group = r
                .groups
                .as_ref()
                .is_some_and(|set| good.groups.iter().any(|g| set.contains(g)));
            let by_prop = r.property.as_ref().is_some_and(|(ids, raw)| {
                good.properties.iter().any(|p| {
                    ids.contains(&p.id)
                        && p.values
                            .iter()
                            .any(|v| raw.contains(&v.trim().to_lowercase()))
                })
            });
            by_group || by_prop
        })
    }

    /// The text of a good's property (by Ид or name), Справочник ids resolved.
    pub fn property_text(&self, good: &Good, want: &str) -> Option<String> {
        let want = want.trim();
        good.properties
            .iter()
            .find(|p| p.id == want || self.prop_names.get(&p.id).is_some_and(|n| eq_ci(n, want)))
            .and_then(|p| {
                let texts: Vec<String> = p
                    .values
                    .iter()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| {
                        self.value_text
                            .get(&(p.id.clone(), v.clone()))
                            .cloned()
                            .unwrap_or_else(|| v.clone())
                    })
                    .collect();
                (!texts.is_empty()).then(|| texts.join(", "))
            })
    }

    /// Every named value of a good: requisites, then properties (for dimensions).
    fn named_values(&self, good: &Good) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = good
            .requisites
            .iter()
            .map(|r| (r.name.clone(), r.value.clone()))
            .collect();
        for p in &good.properties {
            if let Some(name) = self.prop_names.get(&p.id) {
                if let Some(t) = self.property_text(good, &p.id) {
                    out.push((name.clone(), t));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Building a card

/// One image as the card refers to it: the path under the media folder and its signature
/// (size and mtime: a changed file re-sends the card).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub path: String,
    pub sig: String,
}

/// The images of a good that are in the media folder (at most 15), with their signatures.
pub fn media_images(media_dir: &Path, paths: &[String]) -> Vec<ImageRef> {
    paths
        .iter()
        .filter(|p| crate::catalog::media::safe_relative(p).is_some())
        .filter_map(|p| {
            let md = std::fs::metadata(media_dir.join(p)).ok()?;
            let mtime = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            Some(ImageRef {
                path: p.clone(),
                sig: format!("{}:{}", md.len(), mtime),
            })
        })
        .take(15)
        .collect()
}

/// The 1C side of one card.
pub struct CardInput<'a> {
    pub offer_id: &'a str,
    pub good: &'a Good,
    /// The offer's own name and barcode (characteristics), if any.
    pub offer_name: Option<&'a str>,
    pub offer_barcode: Option<&'a str>,
    pub price: Option<String>,
    pub images: &'a [ImageRef],
}

/// A dimension in mm from a name like `Длина`, `Длина, см`, `Высота (м)` and its value.
fn dimension_mm(name: &str, value: &str) -> Option<(usize, u64)> {
    let n = name.trim().to_lowercase();
    let which = ["длина", "ширина", "высота"]
        .iter()
        .position(|w| n.starts_with(w))?;
    let unit = n
        .split([',', '(', ' '])
        .map(|s| s.trim_matches(|c: char| c == ')' || c == '.' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .nth(1)
        .unwrap_or("мм")
        .to_string();
    let factor = match unit.as_str() {
        "см" | "cm" => 10,
        "м" | "m" => 1000,
        _ => 1,
    };
    let v = parse_decimal(value, 3)?;
    let mm = (v * factor + 500) / 1000;
    (mm > 0).then_some((which, mm as u64))
}

/// The `/v3/product/import` item and its hash.
pub fn build_card(
    cfg: &OzonConfig,
    public_base: &str,
    cat: &OzonCategory,
    m: &Matcher,
    input: &CardInput,
) -> (Value, String) {
    let g = input.good;
    let name = input
        .offer_name
        .filter(|n| !n.trim().is_empty())
        .or(g.name.as_deref())
        .or(g.full_name.as_deref())
        .unwrap_or(input.offer_id)
        .trim()
        .chars()
        .take(500)
        .collect::<String>();
    let barcode = input
        .offer_barcode
        .filter(|b| !b.trim().is_empty())
        .or(g.barcode.as_deref())
        .unwrap_or("")
        .trim()
        .to_string();
    let weight = g
        .weight
        .as_deref()
        .and_then(|w| parse_decimal(w, 3))
        .filter(|&grams| grams > 0)
        .map(|grams| grams as u64)
        .unwrap_or(cfg.default_weight_g);
    let mut dims = [
        cfg.default_depth_mm,
        cfg.default_width_mm,
        cfg.default_height_mm,
    ];
    for (n, v) in m.named_values(g) {
        if let Some((i, mm)) = dimension_mm(&n, &v) {
            dims[i] = mm;
        }
    }
    let url = |p: &str| format!("{}/media/{}", public_base, p.replace(' ', "%20"));
    let primary = input
        .images
        .first()
        .map(|i| url(&i.path))
        .unwrap_or_default();
    let images: Vec<String> = input.images.iter().skip(1).map(|i| url(&i.path)).collect();
    let attributes: Vec<Value> = cat
        .attributes
        .iter()
        .filter_map(|a| {
            let value = match &a.property {
                Some(p) => m.property_text(g, p),
                None => a.value.clone(),
            };
            if value.is_none() && a.dictionary_value_id.is_none() {
                return None;
            }
            let mut v = json!({});
            if let Some(d) = a.dictionary_value_id {
                v["dictionary_value_id"] = json!(d);
            }
            v["value"] = json!(value.unwrap_or_default());
            Some(json!({"id": a.id, "complex_id": 0, "values": [v]}))
        })
        .collect();
    let mut card = json!({
        "offer_id": input.offer_id,
        "name": name,
        "description_category_id": cat.description_category_id,
        "type_id": cat.type_id,
        "barcode": barcode,
        "currency_code": cfg.currency_code,
        "vat": cfg.vat,
        "depth": dims[0], "width": dims[1], "height": dims[2], "dimension_unit": "mm",
        "weight": weight, "weight_unit": "g",
        "primary_image": primary,
        "images": images,
        "attributes": attributes,
    });
    if let Some(d) = g.description.as_deref().filter(|d| !d.trim().is_empty()) {
        // Not a card field of its own in v3: Ozon takes the description as attribute 4191.
        card["attributes"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"id": 4191, "complex_id": 0, "values": [{"value": d.trim()}]}));
    }
    // The hash leaves the price out (prices go through ozon.price) and adds the image files.
    let sigs: Vec<&str> = input.images.iter().map(|i| i.sig.as_str()).collect();
    let hash = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(json!([card, sigs]).to_string().as_bytes())
    );
    if let Some(p) = &input.price {
        card["price"] = json!(p);
    }
    (card, hash)
}

// ---------------------------------------------------------------------------------------------
// The planner

#[derive(Deserialize, Default)]
struct OfferData {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    barcode: Option<String>,
}

/// Queue the cards whose content changed. Looks at every offer (an image may change without its
/// good changing), so it only runs when categories are configured.
pub fn plan_cards(
    conn: &mut Conn,
    cfg: &OzonConfig,
    media_dir: &Path,
    public_base: &str,
) -> QueryResult<CardStats> {
    let started = Instant::now();
    let mut stats = CardStats::default();
    if cfg.categories.is_empty() {
        return Ok(stats);
    }
    let (ctx, _) = plan::context(conn, cfg)?;
    let matcher = Matcher::load(conn, &cfg.categories)?;
    let ids: Vec<String> = offers::table
        .select(offers::id)
        .order(offers::id)
        .load(conn)?;
    let mut pstats = PlanStats::default();
    conn.immediate_transaction(|conn| {
        for chunk_ids in ids.chunks(500) {
            let chunk = plan::load_chunk(conn, &ctx, chunk_ids, ctx.needs_data())?;
            let good_ids: Vec<String> = chunk.goods.keys().cloned().collect();
            let full: HashMap<String, Good> = goods::table
                .filter(goods::id.eq_any(&good_ids))
                .select((goods::id, goods::data))
                .load::<(String, String)>(conn)?
                .into_iter()
                .map(|(id, d)| (id, serde_json::from_str(&d).unwrap_or_default()))
                .collect();
            let offer_data: HashMap<String, OfferData> = offers::table
                .filter(offers::id.eq_any(chunk_ids))
                .select((offers::id, offers::data))
                .load::<(String, String)>(conn)?
                .into_iter()
                .map(|(id, d)| (id, serde_json::from_str(&d).unwrap_or_default()))
                .collect();
            let mut links = plan::load_links(conn, chunk_ids)?;
            let hashes: HashMap<String, Option<String>> = ozon_offers::table
                .filter(ozon_offers::offer_ref.eq_any(chunk_ids))
                .select((ozon_offers::offer_ref, ozon_offers::card_hash))
                .load::<(String, Option<String>)>(conn)?
                .into_iter()
                .collect();
            for row in &chunk.rows {
                stats.checked += 1;
                let d = plan::desired(&ctx, &chunk, row);
                if !d.eligible {
                    continue;
                }
                let Some(good) = full.get(&row.1) else {
                    continue;
                };
                let Some(ci) = matcher.find(good) else {
                    continue;
                };
                stats.mapped += 1;
                let before = pstats.no_offer_id + pstats.conflicts;
                let Some(offer_id) =
                    plan::ensure_link(conn, &ctx, &mut links, &row.0, &d, &mut pstats)?
                else {
                    if pstats.no_offer_id + pstats.conflicts > before {
                        stats.no_offer_id += 1;
                    }
                    continue;
                };
                let od = offer_data.get(&row.0);
                let images = media_images(media_dir, &good.images);
                let (card, hash) = build_card(
                    cfg,
                    public_base,
                    &cfg.categories[ci],
                    &matcher,
                    &CardInput {
                        offer_id: &offer_id,
                        good,
                        offer_name: od.and_then(|o| o.name.as_deref()),
                        offer_barcode: od.and_then(|o| o.barcode.as_deref()),
                        price: d.prices.as_ref().map(|p| p.0.clone()),
                        images: &images,
                    },
                );
                if hashes.get(&row.0).and_then(|h| h.as_deref()) == Some(hash.as_str()) {
                    stats.unchanged += 1;
                    continue;
                }
                diesel::update(ozon_offers::table.find(&row.0))
                    .set((
                        ozon_offers::card_hash.eq(&hash),
                        ozon_offers::card_state.eq("queued"),
                        ozon_offers::updated_at.eq(now_ms()),
                    ))
                    .execute(conn)?;
                let msg = CardMessage {
                    offer_ref: row.0.clone(),
                    offer_id,
                    card,
                };
                enqueue(
                    conn,
                    &NewMessage::new(
                        TARGET,
                        KIND_CARD,
                        row.0.clone(),
                        serde_json::to_value(&msg).unwrap_or_default(),
                    ),
                    Enqueue::Coalesce,
                )?;
                stats.queued += 1;
            }
        }
        QueryResult::Ok(())
    })?;
    stats.millis = started.elapsed().as_millis() as u64;
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub struct CardHandler {
    pub client: std::sync::Arc<Client>,
}

impl Handler for CardHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_CARD
    }
    fn batch(&self) -> usize {
        100
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut send: Vec<(i32, CardMessage)> = Vec::new();
            for m in &batch {
                match serde_json::from_value::<CardMessage>(m.payload.clone()) {
                    Ok(c) => send.push((m.id, c)),
                    Err(_) => out.push(Outcome::dead(m.id, None, "malformed card message")),
                }
            }
            if send.is_empty() {
                return out;
            }
            let body =
                json!({"items": send.iter().map(|(_, c)| c.card.clone()).collect::<Vec<_>>()});
            let (res, call_id) = self
                .client
                .post_json("/v3/product/import", &body, send.len())
                .await;
            let task_id = match res {
                Err(e) => {
                    let k = e.outcome();
                    out.extend(
                        send.iter()
                            .map(|(id, _)| Outcome::with_kind(*id, call_id, k.clone())),
                    );
                    return out;
                }
                Ok(v) => v["result"]["task_id"]
                    .as_i64()
                    .or_else(|| v["result"]["task_id"].as_str().and_then(|s| s.parse().ok())),
            };
            let Some(task_id) = task_id else {
                out.extend(
                    send.iter()
                        .map(|(id, _)| Outcome::retry(*id, call_id, "no task_id in the answer")),
                );
                return out;
            };
            let task = TaskMessage {
                task_id,
                offer_refs: send.iter().map(|(_, c)| c.offer_ref.clone()).collect(),
            };
            let response = serde_json::to_string(&task).unwrap_or_default();
            out.extend(
                send.iter()
                    .map(|(id, _)| Outcome::done(*id, call_id, Some(response.clone()))),
            );
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Ok(card) = serde_json::from_value::<CardMessage>(msg.payload.clone()) else {
            return Ok(());
        };
        match &outcome.kind {
            OutcomeKind::Done => {
                let Some(task) = outcome
                    .response
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<TaskMessage>(r).ok())
                else {
                    return Ok(());
                };
                diesel::update(ozon_offers::table.find(&card.offer_ref))
                    .set((
                        ozon_offers::card_state.eq("pending"),
                        ozon_offers::card_task_id.eq(task.task_id),
                        ozon_offers::updated_at.eq(now_ms()),
                    ))
                    .execute(conn)?;
                enqueue(
                    conn,
                    &NewMessage::new(
                        TARGET,
                        KIND_CARD_TASK,
                        task.task_id.to_string(),
                        serde_json::to_value(&task).unwrap_or_default(),
                    ),
                    Enqueue::Once,
                )?;
            }
            OutcomeKind::Dead { error } => {
                diesel::update(ozon_offers::table.find(&card.offer_ref))
                    .set((
                        ozon_offers::card_state.eq("failed"),
                        ozon_offers::card_errors.eq(json!([{"message": error}]).to_string()),
                        ozon_offers::updated_at.eq(now_ms()),
                    ))
                    .execute(conn)?;
            }
            _ => {}
        }
        Ok(())
    }
}

pub struct CardTaskHandler {
    pub client: std::sync::Arc<Client>,
    /// To queue stock and price again for the offers of newly imported cards.
    pub cfg: OzonConfig,
}

/// The decision about a polled import task: `None` while any item is pending.
pub fn task_done(items: &[Value]) -> bool {
    !items
        .iter()
        .any(|i| i["status"].as_str().is_none_or(|s| s == "pending"))
}

impl Handler for CardTaskHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_CARD_TASK
    }
    fn batch(&self) -> usize {
        1
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                let Ok(task) = serde_json::from_value::<TaskMessage>(m.payload.clone()) else {
                    out.push(Outcome::dead(m.id, None, "malformed import task message"));
                    continue;
                };
                let (res, call_id) = self
                    .client
                    .post_json(
                        "/v1/product/import/info",
                        &json!({"task_id": task.task_id}),
                        1,
                    )
                    .await;
                let v = match res {
                    Err(e) => {
                        out.push(Outcome::with_kind(m.id, call_id, e.outcome()));
                        continue;
                    }
                    Ok(v) => v,
                };
                let items = v["result"]["items"].as_array().cloned().unwrap_or_default();
                if items.is_empty() || !task_done(&items) {
                    let age = now_ms() - m.created_at;
                    let kind = if age > TASK_GIVE_UP.as_millis() as i64 {
                        OutcomeKind::Dead {
                            error: format!(
                                "import task {} still pending after {} minutes",
                                task.task_id,
                                age / 60_000
                            ),
                        }
                    } else {
                        OutcomeKind::Later {
                            reason: format!("import task {} is pending", task.task_id),
                            after: TASK_POLL,
                        }
                    };
                    out.push(Outcome::with_kind(m.id, call_id, kind));
                    continue;
                }
                out.push(Outcome::done(
                    m.id,
                    call_id,
                    Some(json!({ "items": items }).to_string()),
                ));
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        let Ok(task) = serde_json::from_value::<TaskMessage>(msg.payload.clone()) else {
            return Ok(());
        };
        let waiting = || {
            ozon_offers::table
                .filter(ozon_offers::card_task_id.eq(task.task_id))
                .filter(ozon_offers::card_state.eq("pending"))
        };
        match &outcome.kind {
            OutcomeKind::Done => {
                let v: Value = outcome
                    .response
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or(Value::Null);
                let mut imported: Vec<String> = Vec::new();
                for it in v["items"].as_array().into_iter().flatten() {
                    let offer_id = it["offer_id"].as_str().unwrap_or("");
                    let status = it["status"].as_str().unwrap_or("");
                    let product_id = it["product_id"].as_i64().filter(|&p| p > 0);
                    let row = waiting().filter(ozon_offers::offer_id.eq(offer_id));
                    match status {
                        "imported" | "skipped" => {
                            if status == "imported" {
                                imported.extend(
                                    waiting()
                                        .filter(ozon_offers::offer_id.eq(offer_id))
                                        .select(ozon_offers::offer_ref)
                                        .load::<String>(conn)?,
                                );
                            }
                            diesel::update(row)
                                .set((
                                    ozon_offers::card_state.eq(status),
                                    ozon_offers::card_errors.eq(None::<String>),
                                    ozon_offers::updated_at.eq(now_ms()),
                                ))
                                .execute(conn)?;
                        }
                        _ => {
                            let errors = it["errors"].to_string();
                            tracing::warn!(offer_id, task_id = task.task_id, %errors,
                                "ozon: the card was not imported");
                            diesel::update(row)
                                .set((
                                    ozon_offers::card_state.eq("failed"),
                                    ozon_offers::card_errors.eq(errors),
                                    ozon_offers::updated_at.eq(now_ms()),
                                ))
                                .execute(conn)?;
                        }
                    }
                    if let Some(pid) = product_id {
                        diesel::update(
                            ozon_offers::table.filter(ozon_offers::offer_id.eq(offer_id)),
                        )
                        .set(ozon_offers::product_id.eq(pid))
                        .execute(conn)?;
                    }
                }
                // Stocks and prices sent before Ozon knew the offer were refused: send them again.
                let stats = plan::replan_offers(conn, &self.cfg, &imported)?;
                if stats.stock_queued + stats.price_queued > 0 {
                    tracing::info!(
                        task_id = task.task_id,
                        cards = imported.len(),
                        stocks = stats.stock_queued,
                        prices = stats.price_queued,
                        "ozon: stock and price queued again for newly imported cards"
                    );
                }
            }
            OutcomeKind::Dead { error } => {
                diesel::update(waiting())
                    .set((
                        ozon_offers::card_state.eq("failed"),
                        ozon_offers::card_errors.eq(json!([{"message": error}]).to_string()),
                    ))
                    .execute(conn)?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cml::{NameValue, PropertyValue};
    use crate::config::OzonAttribute;

    fn groups() -> Vec<(String, Option<String>, String)> {
        vec![
            ("g-shoes".into(), None, "Обувь".into()),
            ("g-boots".into(), Some("g-shoes".into()), "Ботинки".into()),
            ("g-winter".into(), Some("g-boots".into()), "Зимние".into()),
            ("g-hats".into(), None, "Шапки".into()),
        ]
    }

    fn cats() -> Vec<OzonCategory> {
        vec![
            OzonCategory {
                group: Some("обувь".into()),
                description_category_id: 1,
                type_id: 10,
                ..Default::default()
            },
            OzonCategory {
                property: Some("Тип=Шарф".into()),
                description_category_id: 2,
                type_id: 20,
                attributes: vec![
                    OzonAttribute {
                        id: 85,
                        value: Some("Нет бренда".into()),
                        dictionary_value_id: Some(126745801),
                        property: None,
                    },
                    OzonAttribute {
                        id: 10096,
                        property: Some("Цвет".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ]
    }

    fn matcher() -> Matcher {
        Matcher::new(
            &cats(),
            &groups(),
            &[
                ("p-type".into(), "Тип".into()),
                ("p-color".into(), "Цвет".into()),
                ("p-len".into(), "Длина, см".into()),
            ],
            &[
                ("p-type".into(), "v-scarf".into(), "Шарф".into()),
                ("p-color".into(), "v-red".into(), "красный".into()),
            ],
        )
    }

    fn good(groups: &[&str]) -> Good {
        Good {
            id: "G1".into(),
            name: Some("Ботинки зимние".into()),
            description: Some("Тёплые".into()),
            barcode: Some("4600000000001".into()),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            weight: Some("1.25".into()),
            images: vec![
                "import_files/ab/1.jpg".into(),
                "import_files/ab/2.jpg".into(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn category_by_group_name_includes_subgroups() {
        let m = matcher();
        assert_eq!(m.find(&good(&["g-shoes"])), Some(0));
        assert_eq!(m.find(&good(&["g-winter"])), Some(0));
        assert_eq!(m.find(&good(&["g-hats"])), None);
        assert_eq!(m.find(&good(&[])), None);
    }

    #[test]
    fn category_by_property_value_text_or_id() {
        let m = matcher();
        let mut g = good(&["g-hats"]);
        g.properties = vec![PropertyValue {
            id: "p-type".into(),
            values: vec!["v-scarf".into()],
        }];
        assert_eq!(m.find(&g), Some(1));
        g.properties[0].values = vec!["шарф".into()];
        assert_eq!(m.find(&g), Some(1));
        g.properties[0].values = vec!["Шапка".into()];
        assert_eq!(m.find(&g), None);
        // The first matching row wins.
        g.groups = vec!["g-boots".into()];
        g.properties[0].values = vec!["v-scarf".into()];
        assert_eq!(m.find(&g), Some(0));
    }

    fn imgs(sig2: &str) -> Vec<ImageRef> {
        vec![
            ImageRef {
                path: "import_files/ab/1.jpg".into(),
                sig: "10:1".into(),
            },
            ImageRef {
                path: "import_files/ab/2.jpg".into(),
                sig: sig2.into(),
            },
        ]
    }

    #[test]
    fn card_from_a_good() {
        let cfg = OzonConfig {
            vat: "0.2".into(),
            ..Default::default()
        };
        let m = matcher();
        let mut g = good(&["g-shoes"]);
        g.properties = vec![
            PropertyValue {
                id: "p-color".into(),
                values: vec!["v-red".into()],
            },
            PropertyValue {
                id: "p-len".into(),
                values: vec!["30".into()],
            },
        ];
        g.requisites = vec![NameValue {
            name: "Ширина".into(),
            value: "120".into(),
        }];
        let images = imgs("20:2");
        let (card, _) = build_card(
            &cfg,
            "http://shop.example",
            &cats()[1],
            &m,
            &CardInput {
                offer_id: "ART-1",
                good: &g,
                offer_name: None,
                offer_barcode: None,
                price: Some("1990.00".into()),
                images: &images,
            },
        );
        assert_eq!(card["offer_id"], "ART-1");
        assert_eq!(card["name"], "Ботинки зимние");
        assert_eq!(card["barcode"], "4600000000001");
        assert_eq!(card["description_category_id"], 2);
        assert_eq!(card["type_id"], 20);
        assert_eq!(card["vat"], "0.2");
        assert_eq!(card["price"], "1990.00");
        assert_eq!(card["weight"], 1250);
        assert_eq!(card["weight_unit"], "g");
        // Длина, см = 30 → 300 mm; Ширина (no unit) = 120 mm; Высота from the defaults.
        assert_eq!(card["depth"], 300);
        assert_eq!(card["width"], 120);
        assert_eq!(card["height"], cfg.default_height_mm);
        assert_eq!(
            card["primary_image"],
            "http://shop.example/media/import_files/ab/1.jpg"
        );
        assert_eq!(
            card["images"],
            json!(["http://shop.example/media/import_files/ab/2.jpg"])
        );
        let attrs = card["attributes"].as_array().unwrap();
        assert_eq!(attrs[0]["id"], 85);
        assert_eq!(attrs[0]["values"][0]["dictionary_value_id"], 126745801);
        assert_eq!(attrs[1]["id"], 10096);
        assert_eq!(attrs[1]["values"][0]["value"], "красный");
        assert!(attrs
            .iter()
            .any(|a| a["id"] == 4191 && a["values"][0]["value"] == "Тёплые"));
    }

    #[test]
    fn hash_follows_images_not_price() {
        let cfg = OzonConfig::default();
        let m = matcher();
        let g = good(&["g-shoes"]);
        let hash = |sig2: &str, price: &str| {
            let images = imgs(sig2);
            build_card(
                &cfg,
                "http://x",
                &cats()[0],
                &m,
                &CardInput {
                    offer_id: "A",
                    good: &g,
                    offer_name: None,
                    offer_barcode: None,
                    price: Some(price.into()),
                    images: &images,
                },
            )
        };
        let (c1, h1) = hash("20:2", "10.00");
        let (c2, h2) = hash("21:3", "10.00");
        let (_, h3) = hash("20:2", "11.00");
        assert_eq!(c1, c2, "the card itself is the same");
        assert_ne!(h1, h2, "a changed image file changes the hash");
        assert_eq!(h1, h3, "a price change alone does not re-send the card");
    }

    #[test]
    fn dimensions_with_units() {
        assert_eq!(dimension_mm("Длина, см", "12.5"), Some((0, 125)));
        assert_eq!(dimension_mm("Высота (м)", "0.3"), Some((2, 300)));
        assert_eq!(dimension_mm("Ширина", "80"), Some((1, 80)));
        assert_eq!(dimension_mm("Вес", "1"), None);
        assert_eq!(dimension_mm("Длина", "0"), None);
    }

    #[test]
    fn task_pending_until_every_item_has_a_status() {
        assert!(!task_done(&[
            json!({"status":"pending"}),
            json!({"status":"imported"})
        ]));
        assert!(task_done(&[
            json!({"status":"failed"}),
            json!({"status":"imported"})
        ]));
    }

    #[test]
    fn images_in_media_get_signatures() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("import_files/ab")).unwrap();
        std::fs::write(d.path().join("import_files/ab/1.jpg"), b"abc").unwrap();
        let got = media_images(
            d.path(),
            &[
                "import_files/ab/1.jpg".into(),
                "import_files/ab/missing.jpg".into(),
                "../etc/passwd".into(),
            ],
        );
        assert_eq!(got.len(), 1);
        assert!(got[0].sig.starts_with("3:"));
    }
}
