//! Catalog: search offers by Ид, article or name; an offer's page with its good, prices and
//! stock, what obmen last pushed to Ozon for it and the differences the latest reconciliation
//! found.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::text::Table;
use super::Ctx;
use crate::catalog::query::{self, Hit};
use crate::connectors::ozon::reconcile::{self, Item, Report};
use crate::connectors::ozon::view::{self, OfferOzon, PriceState, StockState};
use crate::exchange::Exchange;
use crate::users::Role;

pub const TEXT: Table = &[
    ("cat_title", "Каталог", "Catalog"),
    (
        "cat_q",
        "Ид, артикул или наименование",
        "Id, article or name",
    ),
    ("cat_id", "Ид", "Id"),
    ("cat_article", "Артикул", "Article"),
    ("cat_name", "Наименование", "Name"),
    ("cat_good", "Товар", "Good"),
    ("cat_qty", "Остаток", "Stock"),
    ("cat_deleted", "удалён", "deleted"),
    ("cat_offer", "Предложение", "Offer"),
    ("cat_group", "Группы", "Groups"),
    ("cat_prices", "Цены", "Prices"),
    ("cat_price_type", "Тип цены", "Price type"),
    ("cat_price", "Цена", "Price"),
    ("cat_stock", "Остатки по складам", "Stock per warehouse"),
    ("cat_warehouse", "Склад", "Warehouse"),
    ("cat_total", "Всего", "Total"),
    (
        "cat_ozon",
        "Что отправлено в Ozon",
        "What was pushed to Ozon",
    ),
    (
        "cat_ozon_none",
        "Предложение не связано с Ozon.",
        "The offer is not linked to Ozon.",
    ),
    ("cat_ozon_offer", "offer_id в Ozon", "Ozon offer_id"),
    ("cat_card", "Карточка", "Card"),
    ("cat_queued", "Отправлено", "Queued"),
    ("cat_acked", "Принято Ozon", "Acknowledged by Ozon"),
    ("cat_acked_at", "Когда принято", "Acknowledged at"),
    (
        "cat_diffs",
        "Расхождения по последней сверке",
        "Differences in the latest reconciliation",
    ),
    (
        "cat_no_report",
        "Сверки ещё не было.",
        "No reconciliation yet.",
    ),
    ("cat_no_diffs", "Расхождений нет.", "No differences."),
    ("cat_field", "Поле", "Field"),
    ("cat_obmen", "obmen", "obmen"),
    ("cat_ozon_value", "Ozon", "Ozon"),
    ("cat_characteristics", "Характеристики", "Characteristics"),
    ("cat_barcode", "Штрихкод", "Barcode"),
    ("cat_changed", "Изменено", "Changed"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/catalog", web::get().to(list));
    cfg.route("/catalog/offers", web::get().to(show_query));
    cfg.route("/catalog/offers/{id}", web::get().to(show_path));
}

pub const PAGE: i64 = 50;

/// The page of an offer: its id in the query (ids can hold `#`, `/` and other characters).
pub fn offer_link(id: &str) -> String {
    format!("/catalog/offers?id={}", super::url_encode(id))
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<Hit>,
    q: String,
    next: Option<String>,
    first: bool,
}

impl ListPage {
    fn next_link(&self, cursor: &str) -> String {
        format!(
            "/catalog?q={}&after={}",
            super::url_encode(&self.q),
            super::url_encode(cursor)
        )
    }
    fn link(&self, h: &Hit) -> String {
        offer_link(&h.id)
    }
    fn name(&self, h: &Hit) -> String {
        h.name
            .clone()
            .or_else(|| h.good_name.clone())
            .unwrap_or_default()
    }
    fn opt(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "catalog").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let text: String = q.q.unwrap_or_default().trim().chars().take(200).collect();
    let after = q.after.filter(|a| !a.is_empty());
    let first = after.is_none();
    let (t2, a2) = (text.clone(), after.clone());
    let res = super::db(&ex, move |c| {
        query::search(
            c,
            Some(t2.as_str()).filter(|t| !t.is_empty()),
            a2.as_deref(),
            PAGE,
        )
    })
    .await;
    let rows = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&rows, PAGE as usize, |h| h.id.clone());
    super::html(&ListPage {
        ctx,
        rows,
        q: text,
        next,
        first,
    })
}

/// An offer's prices and stock, from the API's JSON of it.
pub struct PriceView {
    pub price_type: String,
    pub value: String,
    pub currency: String,
}

pub struct StockView {
    pub warehouse: String,
    pub quantity: String,
}

#[derive(Template)]
#[template(path = "offer.html")]
struct ShowPage {
    ctx: Ctx,
    id: String,
    article: String,
    name: String,
    good_id: String,
    good_name: String,
    good_article: String,
    groups: Vec<String>,
    quantity: String,
    barcode: String,
    deleted: bool,
    changed_at: String,
    characteristics: Vec<(String, String)>,
    prices: Vec<PriceView>,
    stock: Vec<StockView>,
    ozon: OfferOzon,
    report: Option<Report>,
    diffs: Vec<Item>,
}

impl ShowPage {
    fn good_link(&self) -> String {
        format!("/catalog?q={}", super::url_encode(&self.good_id))
    }
    fn report_link(&self, r: &Report) -> String {
        format!("/reports/{}", r.id)
    }
    fn opt(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
    fn stock_class(&self, s: &StockState) -> &'static str {
        if s.error.is_some() {
            "bad"
        } else if s.acked == Some(s.queued) {
            "ok"
        } else {
            "warn"
        }
    }
    fn price_class(&self, p: &PriceState) -> &'static str {
        if p.error.is_some() {
            "bad"
        } else if p.acked.as_deref() == Some(p.queued.as_str()) {
            "ok"
        } else {
            "warn"
        }
    }
    fn opt_n(&self, v: &Option<i64>) -> String {
        v.map(|n| n.to_string()).unwrap_or_default()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        // Quantities and prices are stored as decimals: 7 rather than 7.0.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[derive(serde::Deserialize)]
pub struct IdQuery {
    id: Option<String>,
}

async fn show_query(
    req: HttpRequest,
    q: web::Query<IdQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let id = q.into_inner().id.unwrap_or_default();
    show(req, ex, id).await
}

async fn show_path(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    show(req, ex, path.into_inner()).await
}

async fn show(req: HttpRequest, ex: web::Data<Arc<Exchange>>, id: String) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "catalog").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id2 = id.clone();
    type Found = (
        Value,
        Option<Value>,
        (HashMap<String, String>, HashMap<String, String>),
        OfferOzon,
        Option<(Report, Vec<Item>)>,
    );
    let res = super::db(&ex, move |c| -> Result<Option<Found>, _> {
        let Some(offer) = query::offer(c, &id2)? else {
            return Ok(None);
        };
        let good = match offer["good_id"].as_str() {
            Some(g) => query::good(c, g)?,
            None => None,
        };
        let names = query::reference_names(c)?;
        let ozon = view::offer_state(c, &id2)?;
        let diffs = reconcile::latest_for_offer(c, &id2)?;
        Ok(Some((offer, good, names, ozon, diffs)))
    })
    .await;
    let (offer, good, (price_names, wh_names), ozon, diffs) = match res {
        Ok(Some(v)) => v,
        Ok(None) => {
            let t = ctx.t("not_found");
            return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &id);
        }
        Err(e) => return super::db_error(ctx, e),
    };
    let good = good.unwrap_or(Value::Null);
    let prices = offer["prices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let pt = text(&p["price_type_id"]);
                    PriceView {
                        price_type: p["price_type"]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| price_names.get(&pt).cloned())
                            .unwrap_or(pt),
                        value: text(&p["value"]),
                        currency: text(&p["currency"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let stock = offer["stock"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let w = text(&s["warehouse_id"]);
                    StockView {
                        warehouse: wh_names.get(&w).cloned().unwrap_or(w),
                        quantity: text(&s["quantity"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let characteristics = offer["characteristics"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| (text(&c["name"]), text(&c["value"])))
                .collect()
        })
        .unwrap_or_default();
    let groups = good["groups"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let (report, diffs) = match diffs {
        Some((r, items)) => (Some(r), items),
        None => (None, Vec::new()),
    };
    super::html(&ShowPage {
        ctx,
        article: text(&offer["article"]),
        name: text(&offer["name"]),
        good_id: text(&offer["good_id"]),
        good_name: text(&good["name"]),
        good_article: text(&good["article"]),
        groups,
        quantity: text(&offer["quantity"]),
        barcode: text(&offer["barcode"]),
        deleted: offer["deleted"].as_bool().unwrap_or(false),
        changed_at: text(&offer["changed_at"]),
        characteristics,
        prices,
        stock,
        ozon,
        report,
        diffs,
        id,
    })
}
