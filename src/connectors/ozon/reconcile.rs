//! Reconciliation: read back what Ozon has (`/v4/product/info/stocks`, `/v5/product/info/prices`,
//! cursor pages of 1000) and compare it with what obmen wants now (the planner's own
//! computation) and with the stored `ozon_offers` links. Differences go into a report
//! (`reconciliation_reports` + `reconciliation_items`).
//!
//! Fields: `stock:<warehouse_id>` (one Ozon warehouse configured) or `stock` (the sum over
//! several; Ozon's `fbs` entries' `present` summed), `price`, `old_price`, `min_price`,
//! `missing_on_ozon` (linked here, unknown there), `unknown_to_obmen` (there, not linked here).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use super::client::{CallError, Client, TARGET};
use super::plan::{self, ozon_price};
use crate::config::OzonConfig;
use crate::store::schema::{ozon_offers, reconciliation_items, reconciliation_reports};
use crate::store::{now_ms, Conn};

/// What obmen wants for one linked offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ours {
    pub offer_ref: String,
    pub offer_id: String,
    /// (stock field name, desired stock).
    pub stock: Option<(String, i64)>,
    /// (price, old_price, min_price), Ozon format.
    pub prices: Option<(String, String, Option<String>)>,
}

/// What Ozon has for one offer_id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Theirs {
    /// Sum of `present` over the `fbs` stock entries; None when the stocks page lacks the offer.
    pub present: Option<i64>,
    pub price: Option<String>,
    pub old_price: Option<String>,
    pub min_price: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub offer_ref: Option<String>,
    pub offer_id: String,
    pub field: String,
    pub obmen: Option<String>,
    pub ozon: Option<String>,
}

/// Prices compare as numbers: `1390`, `1390.0`, `"1390.000000"` are the same; empty or 0 old
/// price are the same.
fn norm_price(v: &str) -> String {
    let p = ozon_price(v.trim()).unwrap_or_else(|| v.trim().to_string());
    if p == "0.00" || p.is_empty() {
        "0".into()
    } else {
        p
    }
}

/// The differences between obmen's wishes and Ozon's state.
pub fn diff(ours: &[Ours], theirs: &BTreeMap<String, Theirs>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut linked = std::collections::HashSet::new();
    for o in ours {
        linked.insert(o.offer_id.as_str());
        let item = |field: &str, a: Option<String>, b: Option<String>| Item {
            offer_ref: Some(o.offer_ref.clone()),
            offer_id: o.offer_id.clone(),
            field: field.into(),
            obmen: a,
            ozon: b,
        };
        let Some(t) = theirs.get(&o.offer_id) else {
            out.push(item("missing_on_ozon", Some(o.offer_ref.clone()), None));
            continue;
        };
        if let Some((field, want)) = &o.stock {
            if t.present != Some(*want) {
                out.push(item(
                    field,
                    Some(want.to_string()),
                    t.present.map(|p| p.to_string()),
                ));
            }
        }
        if let Some((price, old, min)) = &o.prices {
            let pairs = [
                ("price", Some(price), &t.price),
                ("old_price", Some(old), &t.old_price),
                ("min_price", min.as_ref(), &t.min_price),
            ];
            for (field, want, have) in pairs {
                let Some(want) = want else { continue };
                let w = norm_price(want);
                let h = have.as_deref().map(norm_price);
                let same = match &h {
                    Some(h) => *h == w,
                    None => w == "0",
                };
                if !same {
                    out.push(item(field, Some(w), h));
                }
            }
        }
    }
    for id in theirs.keys() {
        if !linked.contains(id.as_str()) {
            out.push(Item {
                offer_ref: None,
                offer_id: id.clone(),
                field: "unknown_to_obmen".into(),
                obmen: None,
                ozon: Some(id.clone()),
            });
        }
    }
    out
}

fn num_str(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Merge one page of `/v4/product/info/stocks` items.
pub fn add_stocks(theirs: &mut BTreeMap<String, Theirs>, items: &[Value]) {
    for it in items {
        let Some(oid) = it["offer_id"].as_str() else {
            continue;
        };
        let present: i64 = it["stocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"].as_str().is_none_or(|t| t == "fbs"))
            .filter_map(|s| s["present"].as_i64())
            .sum();
        theirs.entry(oid.to_string()).or_default().present = Some(present);
    }
}

/// Merge one page of `/v5/product/info/prices` items.
pub fn add_prices(theirs: &mut BTreeMap<String, Theirs>, items: &[Value]) {
    for it in items {
        let Some(oid) = it["offer_id"].as_str() else {
            continue;
        };
        let t = theirs.entry(oid.to_string()).or_default();
        t.price = num_str(&it["price"]["price"]);
        t.old_price = num_str(&it["price"]["old_price"]);
        t.min_price = num_str(&it["price"]["min_price"]);
    }
}

/// Reading pages: a page that failed for a passing reason (429, 5xx, timeout, garbled answer)
/// is read again, up to this many times, before the reconciliation gives up.
const PAGE_ATTEMPTS: u32 = 6;

/// One page, read again after passing failures (reads change nothing, so repeating is safe).
async fn read_page(client: &Client, endpoint: &str, body: &Value) -> Result<Value, CallError> {
    let mut attempt = 1;
    loop {
        let (res, _) = client.post_json(endpoint, body, 0).await;
        match res {
            Err(e) if attempt < PAGE_ATTEMPTS && e.passing() => {
                tracing::debug!(endpoint, attempt, error = %e, "ozon: reading a page again");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every page of a cursor list.
async fn read_all(client: &Client, endpoint: &str) -> Result<Vec<Value>, CallError> {
    let mut cursor = String::new();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let body = json!({"filter": {"visibility": "ALL"}, "cursor": cursor, "limit": 1000});
        let v = read_page(client, endpoint, &body).await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let n = items.len();
        out.extend(items);
        let next = v["cursor"].as_str().unwrap_or("").to_string();
        if n == 0 || next.is_empty() || next == cursor {
            break;
        }
        cursor = next;
    }
    Ok(out)
}

/// What Ozon has, all pages of both lists.
pub async fn read_ozon(client: &Client) -> Result<BTreeMap<String, Theirs>, CallError> {
    let mut theirs = BTreeMap::new();
    add_stocks(
        &mut theirs,
        &read_all(client, "/v4/product/info/stocks").await?,
    );
    add_prices(
        &mut theirs,
        &read_all(client, "/v5/product/info/prices").await?,
    );
    Ok(theirs)
}

/// What obmen wants for every linked offer.
pub fn load_ours(conn: &mut Conn, cfg: &OzonConfig) -> QueryResult<Vec<Ours>> {
    let (ctx, _) = plan::context(conn, cfg)?;
    let links: Vec<(String, String)> = ozon_offers::table
        .select((ozon_offers::offer_ref, ozon_offers::offer_id))
        .order(ozon_offers::offer_ref)
        .load(conn)?;
    let mut out = Vec::with_capacity(links.len());
    for part in links.chunks(500) {
        let ids: Vec<String> = part.iter().map(|(r, _)| r.clone()).collect();
        let chunk = plan::load_chunk(conn, &ctx, &ids, ctx.needs_data())?;
        let by_ref: HashMap<&str, &plan::OfferRow> =
            chunk.rows.iter().map(|r| (r.0.as_str(), r)).collect();
        for (offer_ref, offer_id) in part {
            let (stock, prices) = match by_ref.get(offer_ref.as_str()) {
                Some(row) => {
                    let d = plan::desired(&ctx, &chunk, row);
                    let stock = match d.stocks.as_slice() {
                        [] => None,
                        [(wh, s)] => Some((format!("stock:{wh}"), *s)),
                        many => Some(("stock".to_string(), many.iter().map(|x| x.1).sum())),
                    };
                    (stock, d.prices)
                }
                // The 1C offer is gone: Ozon should have nothing in stock.
                None => (ctx.rules.first().map(|_| ("stock".to_string(), 0)), None),
            };
            out.push(Ours {
                offer_ref: offer_ref.clone(),
                offer_id: offer_id.clone(),
                stock,
                prices,
            });
        }
    }
    Ok(out)
}

pub fn start_report(conn: &mut Conn) -> QueryResult<i32> {
    diesel::insert_into(reconciliation_reports::table)
        .values((
            reconciliation_reports::target.eq(TARGET),
            reconciliation_reports::started_at.eq(now_ms()),
            reconciliation_reports::state.eq("running"),
        ))
        .returning(reconciliation_reports::id)
        .get_result(conn)
}

pub fn fail_report(conn: &mut Conn, id: i32, error: &str) -> QueryResult<()> {
    diesel::update(reconciliation_reports::table.find(id))
        .set((
            reconciliation_reports::state.eq("failed"),
            reconciliation_reports::finished_at.eq(now_ms()),
            reconciliation_reports::error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn finish_report(conn: &mut Conn, id: i32, checked: usize, items: &[Item]) -> QueryResult<()> {
    conn.immediate_transaction(|conn| {
        for (i, it) in items.iter().enumerate() {
            diesel::insert_into(reconciliation_items::table)
                .values((
                    reconciliation_items::report_id.eq(id),
                    reconciliation_items::position.eq(i as i32),
                    reconciliation_items::offer_ref.eq(&it.offer_ref),
                    reconciliation_items::offer_id.eq(&it.offer_id),
                    reconciliation_items::field.eq(&it.field),
                    reconciliation_items::ours.eq(&it.obmen),
                    reconciliation_items::theirs.eq(&it.ozon),
                ))
                .execute(conn)?;
        }
        diesel::update(reconciliation_reports::table.find(id))
            .set((
                reconciliation_reports::state.eq("done"),
                reconciliation_reports::finished_at.eq(now_ms()),
                reconciliation_reports::checked.eq(checked as i32),
                reconciliation_reports::differences.eq(items.len() as i32),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// A stored report.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Report {
    pub id: i32,
    pub target: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub state: String,
    pub checked: i32,
    pub differences: i32,
    pub error: Option<String>,
}

type ReportCols = (
    reconciliation_reports::id,
    reconciliation_reports::target,
    reconciliation_reports::started_at,
    reconciliation_reports::finished_at,
    reconciliation_reports::state,
    reconciliation_reports::checked,
    reconciliation_reports::differences,
    reconciliation_reports::error,
);

const REPORT_COLS: ReportCols = (
    reconciliation_reports::id,
    reconciliation_reports::target,
    reconciliation_reports::started_at,
    reconciliation_reports::finished_at,
    reconciliation_reports::state,
    reconciliation_reports::checked,
    reconciliation_reports::differences,
    reconciliation_reports::error,
);

type ItemRow = (
    i32,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn item_of(r: ItemRow) -> (i32, Item) {
    let (position, offer_ref, offer_id, field, obmen, ozon) = r;
    (
        position,
        Item {
            offer_ref,
            offer_id,
            field,
            obmen,
            ozon,
        },
    )
}

/// The newest report of the target with its items.
pub fn latest(conn: &mut Conn) -> QueryResult<Option<(Report, Vec<Item>)>> {
    let id: Option<i32> = reconciliation_reports::table
        .filter(reconciliation_reports::target.eq(TARGET))
        .order(reconciliation_reports::id.desc())
        .select(reconciliation_reports::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => with_items(conn, id),
        None => Ok(None),
    }
}

/// One report with all its items (the CSV export of any report).
pub fn with_items(conn: &mut Conn, id: i32) -> QueryResult<Option<(Report, Vec<Item>)>> {
    let Some(r) = report(conn, id)? else {
        return Ok(None);
    };
    let items = items(conn, id, None, None)?
        .into_iter()
        .map(|(_, it)| it)
        .collect();
    Ok(Some((r, items)))
}

/// One report.
pub fn report(conn: &mut Conn, id: i32) -> QueryResult<Option<Report>> {
    reconciliation_reports::table
        .find(id)
        .select(REPORT_COLS)
        .first(conn)
        .optional()
}

/// Reports newest first, `before` an id (keyset pages).
pub fn list(conn: &mut Conn, before: Option<i32>, limit: i64) -> QueryResult<Vec<Report>> {
    let mut q = reconciliation_reports::table
        .filter(reconciliation_reports::target.eq(TARGET))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(reconciliation_reports::id.lt(b));
    }
    q.order(reconciliation_reports::id.desc())
        .limit(limit)
        .select(REPORT_COLS)
        .load(conn)
}

/// A report's items in order as (position, item): those after position `after`, at most
/// `limit` (all without one).
pub fn items(
    conn: &mut Conn,
    id: i32,
    after: Option<i32>,
    limit: Option<i64>,
) -> QueryResult<Vec<(i32, Item)>> {
    let mut q = reconciliation_items::table
        .filter(reconciliation_items::report_id.eq(id))
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(reconciliation_items::position.gt(a));
    }
    if let Some(l) = limit {
        q = q.limit(l);
    }
    Ok(q.order(reconciliation_items::position)
        .select((
            reconciliation_items::position,
            reconciliation_items::offer_ref,
            reconciliation_items::offer_id,
            reconciliation_items::field,
            reconciliation_items::ours,
            reconciliation_items::theirs,
        ))
        .load::<ItemRow>(conn)?
        .into_iter()
        .map(item_of)
        .collect())
}

/// The differences of one of our offers in the latest finished report (with that report).
pub fn latest_for_offer(
    conn: &mut Conn,
    offer_ref: &str,
) -> QueryResult<Option<(Report, Vec<Item>)>> {
    let r: Option<Report> = reconciliation_reports::table
        .filter(reconciliation_reports::target.eq(TARGET))
        .filter(reconciliation_reports::state.eq("done"))
        .order(reconciliation_reports::id.desc())
        .select(REPORT_COLS)
        .first(conn)
        .optional()?;
    let Some(r) = r else { return Ok(None) };
    let items = reconciliation_items::table
        .filter(reconciliation_items::report_id.eq(r.id))
        .filter(reconciliation_items::offer_ref.eq(offer_ref))
        .order(reconciliation_items::position)
        .select((
            reconciliation_items::position,
            reconciliation_items::offer_ref,
            reconciliation_items::offer_id,
            reconciliation_items::field,
            reconciliation_items::ours,
            reconciliation_items::theirs,
        ))
        .load::<ItemRow>(conn)?
        .into_iter()
        .map(|r| item_of(r).1)
        .collect();
    Ok(Some((r, items)))
}

/// The report as CSV (`offer_id,offer_ref,field,obmen,ozon`), UTF-8 with a BOM for Excel.
pub fn to_csv(items: &[Item]) -> Vec<u8> {
    fn q(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r', ';']) || s.starts_with(' ') || s.ends_with(' ') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::from("\u{feff}offer_id,offer_ref,field,obmen,ozon\r\n");
    for it in items {
        let cols = [
            it.offer_id.as_str(),
            it.offer_ref.as_deref().unwrap_or(""),
            it.field.as_str(),
            it.obmen.as_deref().unwrap_or(""),
            it.ozon.as_deref().unwrap_or(""),
        ];
        out.push_str(&cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(r: &str, o: &str, stock: i64, price: &str) -> Ours {
        Ours {
            offer_ref: r.into(),
            offer_id: o.into(),
            stock: Some(("stock:7".into(), stock)),
            prices: Some((price.into(), "0".into(), None)),
        }
    }

    #[test]
    fn differences_per_field() {
        let mut theirs = BTreeMap::new();
        add_stocks(
            &mut theirs,
            &[
                json!({"offer_id":"A","stocks":[{"type":"fbs","present":5},{"type":"fbo","present":100}]}),
                json!({"offer_id":"B","stocks":[{"type":"fbs","present":2}]}),
                json!({"offer_id":"Z","stocks":[]}),
            ],
        );
        add_prices(
            &mut theirs,
            &[
                json!({"offer_id":"A","price":{"price":100,"old_price":0,"min_price":0}}),
                json!({"offer_id":"B","price":{"price":"250.000000","old_price":"300","min_price":0}}),
            ],
        );
        let items = diff(
            &[
                ours("ra", "A", 5, "100.00"),
                ours("rb", "B", 3, "250.00"),
                ours("rc", "C", 1, "1.00"),
            ],
            &theirs,
        );
        let got: Vec<(String, String, Option<String>, Option<String>)> = items
            .iter()
            .map(|i| {
                (
                    i.offer_id.clone(),
                    i.field.clone(),
                    i.obmen.clone(),
                    i.ozon.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "B".into(),
                    "stock:7".into(),
                    Some("3".into()),
                    Some("2".into())
                ),
                (
                    "B".into(),
                    "old_price".into(),
                    Some("0".into()),
                    Some("300.00".into())
                ),
                (
                    "C".into(),
                    "missing_on_ozon".into(),
                    Some("rc".into()),
                    None
                ),
                (
                    "Z".into(),
                    "unknown_to_obmen".into(),
                    None,
                    Some("Z".into())
                ),
            ]
        );
    }

    #[test]
    fn csv_has_bom_and_quotes() {
        let csv = to_csv(&[Item {
            offer_ref: Some("a,b".into()),
            offer_id: "X\"1".into(),
            field: "price".into(),
            obmen: Some("1.00".into()),
            ozon: None,
        }]);
        let s = String::from_utf8(csv).unwrap();
        assert!(s.starts_with('\u{feff}'));
        assert!(s.contains("\"X\"\"1\",\"a,b\",price,1.00,\r\n"), "{s}");
    }
}
