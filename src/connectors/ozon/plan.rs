//! What Ozon should have: for every 1C offer that goes to Ozon, the stock per Ozon warehouse and
//! the prices, compared with what was last queued; only differences become outbox messages.
//!
//! Runs after every catalog import and on a schedule. Only offers changed since the last run
//! (offers.changed_at / goods.changed_at past a watermark) are looked at, unless the mapping
//! configuration changed or a full run is asked for.

use crate::per_backend;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::OzonConfig;
use crate::orders::model::parse_decimal;
use crate::relay::{enqueue, Enqueue, NewMessage};
use crate::store::schema::{
    catalog_groups, goods, import_jobs, offers, ozon_offers, ozon_price_state, ozon_stock_state,
    price_types, prices, properties, property_values, stock, warehouses,
};
use crate::store::{get_setting, now_ms, set_setting, Conn};

use super::client::TARGET;

pub const KIND_STOCK: &str = "ozon.stock";
pub const KIND_PRICE: &str = "ozon.price";

const WATERMARK: &str = "ozon.plan.watermark";
const CONFIG_HASH: &str = "ozon.plan.config";
/// Ozon warehouse found through /v1/warehouse/list when none is configured.
pub const DEFAULT_WAREHOUSE: &str = "ozon.default_warehouse";

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanStats {
    pub full: bool,
    pub checked: usize,
    pub stock_queued: usize,
    pub price_queued: usize,
    /// Offers that would go to Ozon but have no article (with `offer_id = article`).
    pub no_offer_id: usize,
    /// Two 1C offers wanting the same Ozon offer_id: the later one is skipped.
    pub conflicts: usize,
    /// Articles changed in 1C after the first export (the stored link is kept).
    pub article_changed: usize,
    pub millis: u64,
    /// Why stocks were not planned (no Ozon warehouse known).
    pub note: Option<String>,
}

/// The message bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockItem {
    pub offer_ref: String,
    pub offer_id: String,
    pub warehouse_id: i64,
    pub stock: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceItem {
    pub offer_ref: String,
    pub offer_id: String,
    pub price: String,
    pub old_price: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_price: Option<String>,
    pub currency_code: String,
}

impl PriceItem {
    /// The part compared with what was queued before.
    fn state_key(&self) -> String {
        serde_json::json!({"price": self.price, "old_price": self.old_price, "min_price": self.min_price})
            .to_string()
    }
}

/// Ozon price string: `.` separator, at most two decimals (`1234.5` → `1234.50`).
pub fn ozon_price(v: &str) -> Option<String> {
    let k = parse_decimal(v, 2)?;
    Some(format!("{}.{:02}", k / 100, (k % 100).abs()))
}

/// Whole units from a 1C quantity (`5.000` → 5, `-2` → -2, `1.9` → 1).
pub fn whole_units(v: &str) -> i64 {
    parse_decimal(v, 3).map(|m| m / 1000).unwrap_or(0)
}

pub(crate) struct WarehouseRule {
    pub ozon_id: i64,
    /// 1C warehouse ids; None = every warehouse.
    from: Option<HashSet<String>>,
    reserve: i64,
}

pub(crate) struct Context {
    pub rules: Vec<WarehouseRule>,
    pub price: Option<String>,
    pub old_price: Option<String>,
    pub min_price: Option<String>,
    by_id: bool,
    filter_property: Option<HashSet<String>>,
    truthy_values: HashSet<(String, String)>,
    filter_groups: Option<HashSet<String>>,
    pub currency: String,
}

impl Context {
    /// The filters need the goods' data.
    pub fn needs_data(&self) -> bool {
        self.filter_property.is_some() || self.filter_groups.is_some()
    }
}

fn resolve_price_type(
    conn: &mut Conn,
    want: Option<&str>,
    default_first: bool,
) -> QueryResult<Option<String>> {
    let rows: Vec<(String, String)> = price_types::table
        .filter(price_types::deleted.eq(false))
        .order((price_types::created_at, price_types::id))
        .select((price_types::id, price_types::name))
        .load(conn)?;
    Ok(match want.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => rows
            .iter()
            .find(|(id, name)| id == w || name.trim().eq_ignore_ascii_case(w))
            .map(|(id, _)| id.clone()),
        // Unset: the only price type, else a retail one (`Розничная`), else the first.
        None if default_first => rows
            .iter()
            .find(|(_, name)| rows.len() == 1 || name.to_lowercase().contains("розн"))
            .or(rows.first())
            .map(|(id, _)| id.clone()),
        None => None,
    })
}

fn resolve_warehouses(conn: &mut Conn, names: &[String]) -> QueryResult<Option<HashSet<String>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let rows: Vec<(String, Option<String>)> = warehouses::table
        .select((warehouses::id, warehouses::name))
        .load(conn)?;
    let mut out = HashSet::new();
    for n in names {
        let n = n.trim();
        out.insert(n.to_string());
        for (id, name) in &rows {
            if name
                .as_deref()
                .is_some_and(|x| x.trim().eq_ignore_ascii_case(n))
            {
                out.insert(id.clone());
            }
        }
    }
    Ok(Some(out))
}

pub(crate) fn context(conn: &mut Conn, cfg: &OzonConfig) -> QueryResult<(Context, Option<String>)> {
    let mut note = None;
    let mut rules = Vec::new();
    if !cfg.warehouses.is_empty() {
        for w in &cfg.warehouses {
            rules.push(WarehouseRule {
                ozon_id: w.id,
                from: resolve_warehouses(conn, &w.from)?,
                reserve: w.reserve,
            });
        }
    } else {
        let id = match cfg.warehouse_id {
            Some(id) => Some(id),
            None => get_setting(conn, DEFAULT_WAREHOUSE)
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?
                .and_then(|v| v.parse().ok()),
        };
        match id {
            Some(id) => rules.push(WarehouseRule {
                ozon_id: id,
                from: None,
                reserve: cfg.stock_reserve,
            }),
            None => {
                note = Some("no Ozon warehouse configured or found: stocks are not planned".into())
            }
        }
    }
    let price = resolve_price_type(conn, cfg.price_type.as_deref(), true)?;
    let old_price = resolve_price_type(conn, cfg.old_price_type.as_deref(), false)?;
    let min_price = resolve_price_type(conn, cfg.min_price_type.as_deref(), false)?;

    let mut filter_property = None;
    let mut truthy_values = HashSet::new();
    if let Some(p) = cfg
        .filter_property
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let ids: HashSet<String> = properties::table
            .filter(properties::id.eq(p).or(properties::name.eq(p)))
            .select(properties::id)
            .load::<String>(conn)?
            .into_iter()
            .chain(std::iter::once(p.to_string()))
            .collect();
        let vals: Vec<(String, String, String)> = property_values::table
            .filter(property_values::property_id.eq_any(ids.iter().cloned().collect::<Vec<_>>()))
            .select((
                property_values::property_id,
                property_values::value_id,
                property_values::value,
            ))
            .load(conn)?;
        for (pid, vid, v) in vals {
            if truthy(&v) {
                truthy_values.insert((pid, vid));
            }
        }
        filter_property = Some(ids);
    }
    let filter_groups = if cfg.filter_groups.is_empty() {
        None
    } else {
        let all: Vec<(String, Option<String>, String)> = catalog_groups::table
            .select((
                catalog_groups::id,
                catalog_groups::parent_id,
                catalog_groups::name,
            ))
            .load(conn)?;
        let mut set: HashSet<String> = HashSet::new();
        for want in &cfg.filter_groups {
            let w = want.trim();
            set.insert(w.to_string());
            for (id, _, name) in &all {
                if name.trim().eq_ignore_ascii_case(w) {
                    set.insert(id.clone());
                }
            }
        }
        // Subgroups: grow the set until it stops growing.
        loop {
            let before = set.len();
            for (id, parent, _) in &all {
                if parent.as_ref().is_some_and(|p| set.contains(p)) {
                    set.insert(id.clone());
                }
            }
            if set.len() == before {
                break;
            }
        }
        Some(set)
    };
    Ok((
        Context {
            rules,
            price,
            old_price,
            min_price,
            by_id: cfg.offer_id.trim().eq_ignore_ascii_case("id"),
            filter_property,
            truthy_values,
            filter_groups,
            currency: cfg.currency_code.clone(),
        },
        note,
    ))
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_lowercase().as_str(),
        "да" | "true" | "1" | "yes" | "истина" | "y" | "д"
    )
}

fn config_hash(cfg: &OzonConfig) -> String {
    let v = serde_json::json!([
        cfg.warehouse_id,
        cfg.warehouses,
        cfg.stock_reserve,
        cfg.price_type,
        cfg.old_price_type,
        cfg.min_price_type,
        cfg.offer_id,
        cfg.filter_property,
        cfg.filter_groups,
        cfg.currency_code,
    ]);
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct GoodData {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    properties: Vec<crate::cml::PropertyValue>,
}

pub(crate) struct GoodInfo {
    article: Option<String>,
    live: bool,
    data: Option<GoodData>,
}

/// Plan stock and price messages. `full`: look at every offer, not only the changed ones.
pub fn plan(conn: &mut Conn, cfg: &OzonConfig, full: bool) -> QueryResult<PlanStats> {
    let started = Instant::now();
    let start_ms = now_ms();
    let setting = |conn: &mut Conn, k: &str| {
        get_setting(conn, k)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    };
    let hash = config_hash(cfg);
    let wm: Option<i64> = setting(conn, WATERMARK)?.and_then(|v| v.parse().ok());
    let full =
        full || wm.is_none() || setting(conn, CONFIG_HASH)?.as_deref() != Some(hash.as_str());
    let (ctx, note) = context(conn, cfg)?;
    let mut stats = PlanStats {
        full,
        note,
        ..Default::default()
    };

    // An import still running commits rows stamped with its start: the next watermark must not
    // pass it.
    let running_since: Option<i64> = import_jobs::table
        .filter(import_jobs::state.eq("running"))
        .select(diesel::dsl::min(import_jobs::started_at))
        .first::<Option<i64>>(conn)?;
    let next_wm = running_since.map_or(start_ms, |r| r.min(start_ms)) - 1000;

    let candidates: Vec<String> = if full {
        offers::table
            .select(offers::id)
            .order(offers::id)
            .load(conn)?
    } else {
        let wm = wm.unwrap_or(0);
        let mut ids: Vec<String> = offers::table
            .filter(offers::changed_at.gt(wm))
            .select(offers::id)
            .load(conn)?;
        let changed_goods: Vec<String> = goods::table
            .filter(goods::changed_at.gt(wm))
            .select(goods::id)
            .load(conn)?;
        for chunk in changed_goods.chunks(500) {
            ids.extend(
                offers::table
                    .filter(offers::good_id.eq_any(chunk))
                    .select(offers::id)
                    .load::<String>(conn)?,
            );
        }
        ids.sort();
        ids.dedup();
        ids
    };

    let needs_data = ctx.needs_data();
    let mut to_queue: Vec<NewMessage> = Vec::new();
    conn.immediate_transaction(|conn| {
        for chunk in candidates.chunks(500) {
            plan_chunk(conn, &ctx, chunk, needs_data, &mut stats, &mut to_queue)?;
            for m in to_queue.drain(..) {
                enqueue(conn, &m, Enqueue::Coalesce)?;
            }
        }
        set_setting(conn, WATERMARK, &next_wm.to_string())
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
        set_setting(conn, CONFIG_HASH, &hash)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
        QueryResult::Ok(())
    })?;
    stats.millis = started.elapsed().as_millis() as u64;
    Ok(stats)
}

/// Queue stock and price again for some offers, whatever was queued before: used once Ozon
/// has imported a new card, since pushes for an offer Ozon did not know yet were refused.
pub fn replan_offers(
    conn: &mut Conn,
    cfg: &OzonConfig,
    offer_refs: &[String],
) -> QueryResult<PlanStats> {
    let mut stats = PlanStats::default();
    if offer_refs.is_empty() {
        return Ok(stats);
    }
    let (ctx, note) = context(conn, cfg)?;
    stats.note = note;
    let needs_data = ctx.needs_data();
    let mut to_queue: Vec<NewMessage> = Vec::new();
    for chunk in offer_refs.chunks(500) {
        diesel::delete(ozon_stock_state::table.filter(ozon_stock_state::offer_ref.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(ozon_price_state::table.filter(ozon_price_state::offer_ref.eq_any(chunk)))
            .execute(conn)?;
        plan_chunk(conn, &ctx, chunk, needs_data, &mut stats, &mut to_queue)?;
        for m in to_queue.drain(..) {
            enqueue(conn, &m, Enqueue::Coalesce)?;
        }
    }
    Ok(stats)
}

/// Why an offer's Ozon offer_id could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    #[error("offer_id must be 1–50 characters")]
    Invalid,
    #[error("this 1C offer has no Ozon link yet")]
    NotLinked,
    #[error("offer_id {0:?} already belongs to the 1C offer {1}")]
    Taken(String, String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// An administrator's correction of the stored link (e.g. the Ozon cabinet already had the good
/// under another offer_id): the new offer_id gets the card, stock and price again. Returns the
/// old offer_id.
pub fn remap_offer(
    conn: &mut Conn,
    cfg: &OzonConfig,
    offer_ref: &str,
    new_offer_id: &str,
) -> Result<String, RemapError> {
    let oid = new_offer_id.trim();
    if oid.is_empty() || oid.chars().count() > 50 {
        return Err(RemapError::Invalid);
    }
    crate::orders::store::write_tx(conn, |c| {
        let old: Option<String> = ozon_offers::table
            .find(offer_ref)
            .select(ozon_offers::offer_id)
            .first(c)
            .optional()?;
        let old = old.ok_or(RemapError::NotLinked)?;
        if old == oid {
            return Ok(old);
        }
        let taken: Option<String> = ozon_offers::table
            .filter(ozon_offers::offer_id.eq(oid))
            .select(ozon_offers::offer_ref)
            .first(c)
            .optional()?;
        if let Some(other) = taken {
            return Err(RemapError::Taken(oid.to_string(), other));
        }
        diesel::update(ozon_offers::table.find(offer_ref))
            .set((
                ozon_offers::offer_id.eq(oid),
                ozon_offers::product_id.eq(None::<i64>),
                ozon_offers::sku.eq(None::<i64>),
                ozon_offers::card_hash.eq(None::<String>),
                ozon_offers::card_state.eq(None::<String>),
                ozon_offers::card_task_id.eq(None::<i64>),
                ozon_offers::card_errors.eq(None::<String>),
                ozon_offers::updated_at.eq(now_ms()),
            ))
            .execute(c)?;
        replan_offers(c, cfg, &[offer_ref.to_string()])?;
        Ok(old)
    })
}

pub(crate) type OfferRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    bool,
    bool,
);

/// The 1C side of a chunk of offers: the rows, their goods, stocks and prices.
pub(crate) struct Chunk {
    pub rows: Vec<OfferRow>,
    pub goods: HashMap<String, GoodInfo>,
    stock_rows: HashMap<String, Vec<(String, String)>>,
    price_rows: HashMap<(String, String), String>,
}

pub(crate) fn load_chunk(
    conn: &mut Conn,
    ctx: &Context,
    ids: &[String],
    needs_data: bool,
) -> QueryResult<Chunk> {
    let rows: Vec<OfferRow> = offers::table
        .filter(offers::id.eq_any(ids))
        .select((
            offers::id,
            offers::good_id,
            offers::article,
            offers::quantity,
            offers::by_warehouse,
            offers::deleted,
            offers::active,
        ))
        .load(conn)?;
    let good_ids: Vec<String> = {
        let mut g: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        g.sort();
        g.dedup();
        g
    };
    let mut goods_map: HashMap<String, GoodInfo> = HashMap::new();
    if needs_data {
        let g: Vec<(String, Option<String>, bool, bool, String)> = goods::table
            .filter(goods::id.eq_any(&good_ids))
            .select((
                goods::id,
                goods::article,
                goods::deleted,
                goods::active,
                goods::data,
            ))
            .load(conn)?;
        for (id, article, deleted, active, data) in g {
            goods_map.insert(
                id,
                GoodInfo {
                    article,
                    live: !deleted && active,
                    data: Some(serde_json::from_str(&data).unwrap_or_default()),
                },
            );
        }
    } else {
        let g: Vec<(String, Option<String>, bool, bool)> = goods::table
            .filter(goods::id.eq_any(&good_ids))
            .select((goods::id, goods::article, goods::deleted, goods::active))
            .load(conn)?;
        for (id, article, deleted, active) in g {
            goods_map.insert(
                id,
                GoodInfo {
                    article,
                    live: !deleted && active,
                    data: None,
                },
            );
        }
    }
    let mut stock_rows: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (o, w, q) in stock::table
        .filter(stock::offer_id.eq_any(ids))
        .select((stock::offer_id, stock::warehouse_id, stock::quantity))
        .load::<(String, String, String)>(conn)?
    {
        stock_rows.entry(o).or_default().push((w, q));
    }
    let wanted_types: Vec<String> = [&ctx.price, &ctx.old_price, &ctx.min_price]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let mut price_rows: HashMap<(String, String), String> = HashMap::new();
    for (o, t, v) in prices::table
        .filter(prices::offer_id.eq_any(ids))
        .filter(prices::price_type_id.eq_any(&wanted_types))
        .select((prices::offer_id, prices::price_type_id, prices::value))
        .load::<(String, String, String)>(conn)?
    {
        price_rows.insert((o, t), v);
    }
    Ok(Chunk {
        rows,
        goods: goods_map,
        stock_rows,
        price_rows,
    })
}

/// What obmen wants Ozon to have for one offer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Desired {
    /// Goes to Ozon at all (live, active, passes the filters).
    pub eligible: bool,
    /// The article that becomes the offer_id of a new link.
    pub article: Option<String>,
    /// Stock per Ozon warehouse.
    pub stocks: Vec<(i64, i64)>,
    /// `(price, old_price, min_price)` in Ozon's format; None without a price.
    pub prices: Option<(String, String, Option<String>)>,
}

/// The desired stocks and prices of one offer row of a chunk (the one computation the planner
/// and the reconciliation share).
pub(crate) fn desired(ctx: &Context, chunk: &Chunk, row: &OfferRow) -> Desired {
    let (id, good_id, offer_article, quantity, by_warehouse, deleted, active) = row;
    let good = chunk.goods.get(good_id);
    let article = offer_article_for(
        id,
        offer_article.as_deref(),
        good.and_then(|g| g.article.as_deref()),
    );
    let eligible = !deleted
        && *active
        && good.is_some_and(|g| g.live)
        && passes_filters(ctx, good.and_then(|g| g.data.as_ref()));
    // Stocks: per Ozon warehouse, the sum of its 1C warehouses (negatives count as 0),
    // less the safety reserve. Not for sale any more → 0.
    let stocks = ctx
        .rules
        .iter()
        .map(|rule| {
            let desired = if !eligible {
                0
            } else {
                let total: i64 = if *by_warehouse {
                    chunk
                        .stock_rows
                        .get(id)
                        .map(|rows| {
                            rows.iter()
                                .filter(|(w, _)| rule.from.as_ref().is_none_or(|s| s.contains(w)))
                                .map(|(_, q)| whole_units(q).max(0))
                                .sum()
                        })
                        .unwrap_or(0)
                } else if rule.from.is_none() {
                    quantity.as_deref().map(whole_units).unwrap_or(0).max(0)
                } else {
                    0
                };
                (total - rule.reserve).clamp(0, 999_999)
            };
            (rule.ozon_id, desired)
        })
        .collect();
    let get = |t: &Option<String>| -> Option<String> {
        t.as_ref()
            .and_then(|t| chunk.price_rows.get(&(id.clone(), t.clone())))
            .and_then(|v| ozon_price(v))
    };
    let prices = if eligible {
        get(&ctx.price).map(|p| {
            (
                p,
                get(&ctx.old_price).unwrap_or_else(|| "0".into()),
                get(&ctx.min_price),
            )
        })
    } else {
        None
    };
    Desired {
        eligible,
        article,
        stocks,
        prices,
    }
}

/// The stored link of an offer, created at its first export (never changed by a new article).
/// None: not eligible and never linked, no article, or the offer_id is taken by another offer.
pub(crate) fn ensure_link(
    conn: &mut Conn,
    ctx: &Context,
    mapping: &mut HashMap<String, (String, Option<String>)>,
    id: &str,
    d: &Desired,
    stats: &mut PlanStats,
) -> QueryResult<Option<String>> {
    let now = now_ms();
    let article = &d.article;
    Ok(Some(match mapping.get(id) {
        Some((oid, article_now)) => {
            if !ctx.by_id
                && article.is_some()
                && article.as_deref() != Some(oid.as_str())
                && article != article_now
            {
                stats.article_changed += 1;
                tracing::warn!(offer = %id, ozon_offer_id = %oid, new_article = ?article,
                    "the 1C article changed after the first export; Ozon keeps the stored offer_id");
                diesel::update(ozon_offers::table.find(id))
                    .set((
                        ozon_offers::article_now.eq(article),
                        ozon_offers::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                let oid = oid.clone();
                mapping.insert(id.to_string(), (oid.clone(), article.clone()));
                return Ok(Some(oid));
            }
            oid.clone()
        }
        None => {
            if !d.eligible {
                return Ok(None);
            }
            let Some(oid) = (if ctx.by_id {
                Some(id.to_string())
            } else {
                article.clone()
            }) else {
                stats.no_offer_id += 1;
                return Ok(None);
            };
            let oid: String = oid.chars().take(50).collect();
            let taken: Option<String> = ozon_offers::table
                .filter(ozon_offers::offer_id.eq(&oid))
                .select(ozon_offers::offer_ref)
                .first(conn)
                .optional()?;
            if taken.is_some() {
                stats.conflicts += 1;
                tracing::warn!(offer = %id, ozon_offer_id = %oid, "another 1C offer already uses this Ozon offer_id; skipped");
                return Ok(None);
            }
            diesel::insert_into(ozon_offers::table)
                .values((
                    ozon_offers::offer_ref.eq(id),
                    ozon_offers::offer_id.eq(&oid),
                    ozon_offers::article_now.eq(article),
                    ozon_offers::created_at.eq(now),
                    ozon_offers::updated_at.eq(now),
                ))
                .execute(conn)?;
            mapping.insert(id.to_string(), (oid.clone(), article.clone()));
            oid
        }
    }))
}

/// The stored links of some offers: offer_ref → (offer_id, article_now).
pub(crate) fn load_links(
    conn: &mut Conn,
    ids: &[String],
) -> QueryResult<HashMap<String, (String, Option<String>)>> {
    Ok(ozon_offers::table
        .filter(ozon_offers::offer_ref.eq_any(ids))
        .select((
            ozon_offers::offer_ref,
            ozon_offers::offer_id,
            ozon_offers::article_now,
        ))
        .load::<(String, String, Option<String>)>(conn)?
        .into_iter()
        .map(|(r, o, a)| (r, (o, a)))
        .collect())
}

fn plan_chunk(
    conn: &mut Conn,
    ctx: &Context,
    ids: &[String],
    needs_data: bool,
    stats: &mut PlanStats,
    out: &mut Vec<NewMessage>,
) -> QueryResult<()> {
    let chunk = load_chunk(conn, ctx, ids, needs_data)?;
    let mut mapping = load_links(conn, ids)?;
    let stock_state: HashMap<(String, i64), i64> = ozon_stock_state::table
        .filter(ozon_stock_state::offer_ref.eq_any(ids))
        .select((
            ozon_stock_state::offer_ref,
            ozon_stock_state::warehouse_id,
            ozon_stock_state::queued,
        ))
        .load::<(String, i64, i64)>(conn)?
        .into_iter()
        .map(|(r, w, q)| ((r, w), q))
        .collect();
    let price_state: HashMap<String, String> = ozon_price_state::table
        .filter(ozon_price_state::offer_ref.eq_any(ids))
        .select((ozon_price_state::offer_ref, ozon_price_state::queued))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();

    for row in &chunk.rows {
        stats.checked += 1;
        let id = &row.0;
        let d = desired(ctx, &chunk, row);
        let Some(offer_id) = ensure_link(conn, ctx, &mut mapping, id, &d, stats)? else {
            continue;
        };

        for &(warehouse_id, desired) in &d.stocks {
            let key = (id.clone(), warehouse_id);
            if stock_state.get(&key) == Some(&desired) {
                continue;
            }
            per_backend!(conn, |c| {
                diesel::insert_into(ozon_stock_state::table)
                    .values((
                        ozon_stock_state::offer_ref.eq(id),
                        ozon_stock_state::warehouse_id.eq(warehouse_id),
                        ozon_stock_state::queued.eq(desired),
                    ))
                    .on_conflict((ozon_stock_state::offer_ref, ozon_stock_state::warehouse_id))
                    .do_update()
                    .set(ozon_stock_state::queued.eq(desired))
                    .execute(c)
            })?;
            let item = StockItem {
                offer_ref: id.clone(),
                offer_id: offer_id.clone(),
                warehouse_id,
                stock: desired,
            };
            out.push(NewMessage::new(
                TARGET,
                KIND_STOCK,
                format!("{}|{}", id, warehouse_id),
                serde_json::to_value(&item).unwrap_or_default(),
            ));
            stats.stock_queued += 1;
        }

        // Prices.
        let Some((price, old_price, min_price)) = d.prices else {
            continue;
        };
        let item = PriceItem {
            offer_ref: id.clone(),
            offer_id: offer_id.clone(),
            price,
            old_price,
            min_price,
            currency_code: ctx.currency.clone(),
        };
        let state = item.state_key();
        if price_state.get(id) == Some(&state) {
            continue;
        }
        per_backend!(conn, |c| {
            diesel::insert_into(ozon_price_state::table)
                .values((
                    ozon_price_state::offer_ref.eq(id),
                    ozon_price_state::queued.eq(&state),
                ))
                .on_conflict(ozon_price_state::offer_ref)
                .do_update()
                .set(ozon_price_state::queued.eq(&state))
                .execute(c)
        })?;
        out.push(NewMessage::new(
            TARGET,
            KIND_PRICE,
            id.clone(),
            serde_json::to_value(&item).unwrap_or_default(),
        ));
        stats.price_queued += 1;
    }
    Ok(())
}

/// The article an offer goes to Ozon under. A variant (`good#characteristic`) usually carries
/// its good's article in 1C, but each variant is its own Ozon card: then the article gets the
/// first eight characters of the characteristic Ид (`AR-1-8b8180ff`). A variant with an article
/// of its own keeps it.
pub fn offer_article_for(
    id: &str,
    offer_article: Option<&str>,
    good_article: Option<&str>,
) -> Option<String> {
    let own = offer_article.map(str::trim).filter(|a| !a.is_empty());
    let good = good_article.map(str::trim).filter(|a| !a.is_empty());
    match id.split_once('#') {
        Some((_, ch)) if !ch.is_empty() && (own.is_none() || own == good) => {
            let base = own.or(good)?;
            let suffix: String = ch.chars().filter(|c| *c != '-').take(8).collect();
            Some(format!("{base}-{suffix}"))
        }
        _ => own.or(good).map(str::to_string),
    }
}

pub(crate) fn passes_filters(ctx: &Context, data: Option<&GoodData>) -> bool {
    if let Some(groups) = &ctx.filter_groups {
        if !data.is_some_and(|d| d.groups.iter().any(|g| groups.contains(g))) {
            return false;
        }
    }
    if let Some(props) = &ctx.filter_property {
        let ok = data.is_some_and(|d| {
            d.properties.iter().any(|p| {
                props.contains(&p.id)
                    && p.values.iter().any(|v| {
                        truthy(v) || ctx.truthy_values.contains(&(p.id.clone(), v.clone()))
                    })
            })
        });
        if !ok {
            return false;
        }
    }
    true
}

/// The Ozon offer_id of a 1C offer, and back (orders map posting lines to 1C goods by it).
pub fn offer_ref_for(conn: &mut Conn, ozon_offer_id: &str) -> QueryResult<Option<String>> {
    ozon_offers::table
        .filter(ozon_offers::offer_id.eq(ozon_offer_id))
        .select(ozon_offers::offer_ref)
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests;
