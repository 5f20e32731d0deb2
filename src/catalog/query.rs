//! Read side of the catalog: the shapes the JSON API returns.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Double, Nullable};
use serde::Serialize;
use serde_json::{json, Value};

use super::OfferData;
use crate::cml;
use crate::store::models::{OfferRow, PriceRow, StockRow};
use crate::store::schema;
use crate::store::{Conn, StoreResult};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub goods: i64,
    pub offers: i64,
    pub groups: i64,
    pub properties: i64,
    pub price_types: i64,
    pub warehouses: i64,
    pub deleted_goods: i64,
    pub stock_total: f64,
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = Nullable<Double>)]
    total: Option<f64>,
}

/// Parse a stored decimal string into a JSON number (null when absent or not a number).
pub fn num(s: Option<&str>) -> Value {
    s.and_then(|v| v.parse::<f64>().ok())
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn summary(conn: &mut Conn) -> StoreResult<Summary> {
    use schema::*;
    // Quantities are kept as 1C sent them (decimal text). SQLite's CAST reads what it can;
    // PostgreSQL's refuses text that is not a number, so it is asked only for numbers.
    let num = if conn.is_pg() {
        "CASE WHEN quantity ~ '^\\s*-?[0-9]+(\\.[0-9]*)?\\s*$' \
         THEN CAST(quantity AS DOUBLE PRECISION) ELSE 0 END"
    } else {
        "CAST(quantity AS DOUBLE PRECISION)"
    };
    let stock_total = diesel::sql_query(format!(
        "SELECT (SELECT COALESCE(SUM({num}), 0) FROM stock) \
         + (SELECT COALESCE(SUM({num}), 0) FROM offers WHERE NOT by_warehouse) AS total",
    ))
    .get_result::<Total>(conn)?
    .total
    .unwrap_or(0.0);
    Ok(Summary {
        goods: goods::table.count().get_result(conn)?,
        offers: offers::table.count().get_result(conn)?,
        groups: catalog_groups::table.count().get_result(conn)?,
        properties: properties::table.count().get_result(conn)?,
        price_types: price_types::table.count().get_result(conn)?,
        warehouses: warehouses::table.count().get_result(conn)?,
        deleted_goods: goods::table
            .filter(goods::deleted.eq(true))
            .count()
            .get_result(conn)?,
        stock_total: (stock_total * 1e6).round() / 1e6,
    })
}

fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn offers_json(conn: &mut Conn, rows: Vec<OfferRow>) -> StoreResult<Vec<Value>> {
    use schema::price_types::dsl as pt;
    use schema::prices::dsl as p;
    use schema::stock::dsl as s;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut prices: HashMap<String, Vec<PriceRow>> = HashMap::new();
    for r in p::prices
        .filter(p::offer_id.eq_any(&ids))
        .order((p::offer_id, p::price_type_id))
        .select(PriceRow::as_select())
        .load::<PriceRow>(conn)?
    {
        prices.entry(r.offer_id.clone()).or_default().push(r);
    }
    let mut stock: HashMap<String, Vec<StockRow>> = HashMap::new();
    for r in s::stock
        .filter(s::offer_id.eq_any(&ids))
        .order((s::offer_id, s::warehouse_id))
        .select(StockRow::as_select())
        .load::<StockRow>(conn)?
    {
        stock.entry(r.offer_id.clone()).or_default().push(r);
    }
    let names: HashMap<String, (String, Option<String>)> = pt::price_types
        .select((pt::id, pt::name, pt::currency))
        .load::<(String, String, Option<String>)>(conn)?
        .into_iter()
        .map(|(id, n, c)| (id, (n, c)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let data: OfferData = serde_json::from_str(&r.data).unwrap_or_default();
            let prices: Vec<Value> = prices
                .remove(&r.id)
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let (ptname, ptcur) = names.get(&p.price_type_id).cloned().unwrap_or_default();
                    json!({
                        "price_type_id": p.price_type_id,
                        "price_type": if ptname.is_empty() { Value::Null } else { Value::String(ptname) },
                        "value": num(Some(&p.value)),
                        "currency": p.currency.or(ptcur),
                    })
                })
                .collect();
            let stock: Vec<Value> = stock
                .remove(&r.id)
                .unwrap_or_default()
                .into_iter()
                .map(|s| json!({"warehouse_id": s.warehouse_id, "quantity": num(Some(&s.quantity))}))
                .collect();
            json!({
                "id": r.id,
                "good_id": r.good_id,
                "article": r.article,
                "name": r.name,
                "quantity": num(r.quantity.as_deref()),
                "prices": prices,
                "stock": stock,
                "characteristics": data.characteristics,
                "barcode": data.barcode,
                "deleted": r.deleted,
                "active": r.active,
                "changed_at": ms_to_rfc3339(r.changed_at),
            })
        })
        .collect())
}

/// One offer as the API shows it.
pub fn offer(conn: &mut Conn, id: &str) -> StoreResult<Option<Value>> {
    use schema::offers::dsl as o;
    let rows = o::offers
        .filter(o::id.eq(id))
        .select(OfferRow::as_select())
        .load::<OfferRow>(conn)?;
    Ok(offers_json(conn, rows)?.into_iter().next())
}

/// One good with its offers.
pub fn good(conn: &mut Conn, id: &str) -> StoreResult<Option<Value>> {
    use schema::goods::dsl as g;
    use schema::offers::dsl as o;
    use schema::properties::dsl as p;
    use schema::property_values::dsl as pv;
    let Some((data, deleted, active, changed_at)) = g::goods
        .filter(g::id.eq(id))
        .select((g::data, g::deleted, g::active, g::changed_at))
        .first::<(String, bool, bool, i64)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let good: cml::Good = serde_json::from_str(&data).unwrap_or_else(|_| cml::Good {
        id: id.to_string(),
        article: None,
        name: None,
        full_name: None,
        code: None,
        barcode: None,
        description: None,
        unit: None,
        groups: vec![],
        category: None,
        properties: vec![],
        requisites: vec![],
        characteristics: vec![],
        taxes: vec![],
        images: vec![],
        manufacturer: None,
        country: None,
        weight: None,
        status: None,
        deleted,
    });
    let prop_ids: Vec<&str> = good.properties.iter().map(|p| p.id.as_str()).collect();
    let prop_names: HashMap<String, String> = p::properties
        .filter(p::id.eq_any(&prop_ids))
        .select((p::id, p::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let value_texts: HashMap<(String, String), String> = pv::property_values
        .filter(pv::property_id.eq_any(&prop_ids))
        .select((pv::property_id, pv::value_id, pv::value))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(p, v, t)| ((p, v), t))
        .collect();
    let properties: Vec<Value> = good
        .properties
        .iter()
        .map(|pv| {
            let texts: Vec<String> = pv
                .values
                .iter()
                .map(|v| {
                    value_texts
                        .get(&(pv.id.clone(), v.clone()))
                        .cloned()
                        .unwrap_or_else(|| v.clone())
                })
                .collect();
            json!({
                "id": pv.id,
                "name": prop_names.get(&pv.id),
                "value": pv.values.first(),
                "values": pv.values,
                "text": texts.join("; "),
            })
        })
        .collect();
    let offer_rows = o::offers
        .filter(o::good_id.eq(id))
        .order(o::id)
        .select(OfferRow::as_select())
        .load::<OfferRow>(conn)?;
    let offers = offers_json(conn, offer_rows)?;
    Ok(Some(json!({
        "id": good.id,
        "article": good.article,
        "name": good.name,
        "full_name": good.full_name,
        "code": good.code,
        "barcode": good.barcode,
        "description": good.description,
        "unit": good.unit,
        "groups": good.groups,
        "category": good.category,
        "properties": properties,
        "requisites": good.requisites,
        "characteristics": good.characteristics,
        "taxes": good.taxes,
        "images": good.images,
        "manufacturer": good.manufacturer,
        "country": good.country,
        "status": good.status,
        "deleted": deleted,
        "active": active,
        "changed_at": ms_to_rfc3339(changed_at),
        "offers": offers,
    })))
}

/// One offer found by the dashboard's catalog search.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub good_id: String,
    pub article: Option<String>,
    pub name: Option<String>,
    pub good_name: Option<String>,
    pub quantity: Option<String>,
    pub deleted: bool,
}

/// Offers whose Ид, article or name (or their good's) contains `text`, by id, after the
/// keyset cursor `after`; all offers without a text.
pub fn search(
    conn: &mut Conn,
    text: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Hit>> {
    use schema::goods::dsl as g;
    use schema::offers::dsl as o;
    let mut q = o::offers.into_boxed();
    if let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) {
        let m = |p: &String| {
            let good_ids = g::goods
                .filter(
                    g::name
                        .like(p.clone())
                        .escape('\\')
                        .or(g::article.like(p.clone()).escape('\\')),
                )
                .select(g::id);
            o::id
                .like(p.clone())
                .escape('\\')
                .or(o::article.like(p.clone()).escape('\\'))
                .or(o::name.like(p.clone()).escape('\\'))
                .or(o::good_id.eq_any(good_ids))
        };
        let [a, b, c, d] = crate::orders::store::like_patterns(t);
        q = q.filter(m(&a).or(m(&b)).or(m(&c)).or(m(&d)));
    }
    if let Some(a) = after {
        q = q.filter(o::id.gt(a.to_string()));
    }
    let rows = q
        .order(o::id)
        .limit(limit)
        .select((
            o::id,
            o::good_id,
            o::article,
            o::name,
            o::quantity,
            o::deleted,
        ))
        .load::<(
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        )>(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let names: HashMap<String, Option<String>> = g::goods
        .filter(g::id.eq_any(&ids))
        .select((g::id, g::name))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|(id, good_id, article, name, quantity, deleted)| Hit {
            good_name: names.get(&good_id).cloned().flatten(),
            id,
            good_id,
            article,
            name,
            quantity,
            deleted,
        })
        .collect())
}

/// Names of price types and warehouses by id (for showing an offer's prices and stock).
pub fn reference_names(
    conn: &mut Conn,
) -> StoreResult<(HashMap<String, String>, HashMap<String, String>)> {
    use schema::price_types::dsl as pt;
    use schema::warehouses::dsl as w;
    let prices = pt::price_types
        .select((pt::id, pt::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let warehouses = w::warehouses
        .select((w::id, w::name))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .map(|(id, n)| {
            let n = n.unwrap_or_else(|| id.clone());
            (id, n)
        })
        .collect();
    Ok((prices, warehouses))
}
