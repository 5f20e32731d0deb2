//! Orders: the list (status, channel, text, "not yet in 1C" filters; keyset pages) and an
//! order's page: its 1C state, lines, customer and delivery, the timeline across 1C, Ozon,
//! couriers and the API, its shipments and stored documents.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::Ctx;
use crate::connectors::ozon::labels::{self, StoredDocument};
use crate::connectors::shipping::{self, Shipment};
use crate::exchange::Exchange;
use crate::orders::model::{Money, Order, Status};
use crate::orders::store::{self, Event, OrderRow, PageFilter};
use crate::store::StoreError;
use crate::users::Role;

pub const TEXT: Table = &[
    ("ord_title", "Заказы", "Orders"),
    ("ord_number", "Номер", "Number"),
    ("ord_channel", "Канал", "Channel"),
    ("ord_external", "Внешний номер", "External id"),
    ("ord_status", "Статус", "Status"),
    ("ord_date", "Дата", "Date"),
    ("ord_total", "Сумма", "Total"),
    ("ord_customer", "Покупатель", "Customer"),
    ("ord_onec", "В 1С", "In 1C"),
    ("ord_pending", "ещё не передан в 1С", "not yet handed to 1C"),
    (
        "ord_pending_only",
        "Только не переданные в 1С",
        "Only not yet handed to 1C",
    ),
    ("ord_exported", "передан в 1С", "handed to 1C"),
    (
        "ord_q",
        "Номер, внешний номер или покупатель",
        "Number, external id or customer",
    ),
    ("ord_order", "Заказ", "Order"),
    ("ord_onec_state", "Состояние в 1С", "State in 1C"),
    ("ord_onec_number", "Номер в 1С", "1C number"),
    ("ord_posted", "Проведён", "Posted"),
    ("ord_paid", "Оплачен", "Paid"),
    ("ord_shipped", "Отгружен", "Shipped"),
    ("ord_cancelled", "Отменён", "Cancelled"),
    ("ord_lines", "Строки", "Lines"),
    ("ord_offer", "Предложение", "Offer"),
    ("ord_article", "Артикул", "Article"),
    ("ord_name", "Наименование", "Name"),
    ("ord_qty", "Количество", "Quantity"),
    ("ord_price", "Цена", "Price"),
    ("ord_discount", "Скидка", "Discount"),
    ("ord_sum", "Сумма", "Sum"),
    ("ord_delivery", "Доставка", "Delivery"),
    ("ord_payment", "Оплата", "Payment"),
    ("ord_comment", "Комментарий", "Comment"),
    ("ord_phone", "Телефон", "Phone"),
    ("ord_email", "Эл. почта", "E-mail"),
    ("ord_address", "Адрес", "Address"),
    ("ord_method", "Способ", "Method"),
    ("ord_cost", "Стоимость", "Cost"),
    ("ord_timeline", "История заказа", "Timeline"),
    ("ord_source", "Источник", "Source"),
    ("ord_event", "Событие", "Event"),
    ("ord_shipments", "Отправления", "Shipments"),
    ("ord_carrier", "Перевозчик", "Carrier"),
    (
        "ord_carrier_number",
        "Номер у перевозчика",
        "Carrier number",
    ),
    ("ord_tracking", "Трек-номер", "Tracking number"),
    ("ord_waybill", "Накладная", "Waybill"),
    ("ord_documents", "Документы", "Documents"),
    ("ord_kind", "Вид", "Kind"),
    (
        "ord_messages",
        "Сообщения заказа в очереди отправки",
        "The order's outbox messages",
    ),
    ("ord_requisites", "Реквизиты для 1С", "Requisites for 1C"),
    ("ord_version", "Версия", "Version"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list));
    cfg.route("/orders/{number}", web::get().to(show));
}

pub const PAGE: i64 = 50;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    channel: Option<String>,
    q: Option<String>,
    pending: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<OrderRow>,
    statuses: Vec<(&'static str, &'static str)>,
    channels: Vec<String>,
    status: String,
    channel: String,
    q: String,
    pending: bool,
    next: Option<String>,
    first: bool,
}

impl ListPage {
    fn is_status(&self, s: &str) -> bool {
        self.status == s
    }
    fn is_channel(&self, c: &str) -> bool {
        self.channel == c
    }
    fn next_link(&self, cursor: &str) -> String {
        format!(
            "/orders?status={}&channel={}&q={}&pending={}&before={}",
            super::url_encode(&self.status),
            super::url_encode(&self.channel),
            super::url_encode(&self.q),
            if self.pending { "1" } else { "" },
            super::url_encode(cursor)
        )
    }
    fn link(&self, r: &OrderRow) -> String {
        order_link(&r.number)
    }
    fn status_title(&self, s: &str) -> &'static str {
        status_title(&self.ctx, s)
    }
    fn total(&self, r: &OrderRow) -> String {
        format!("{} {}", Money(r.total), r.currency)
    }
    fn customer(&self, r: &OrderRow) -> String {
        let c: crate::orders::model::Customer =
            serde_json::from_str(&r.customer).unwrap_or_default();
        [c.name, c.legal_name, c.phone, c.email]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn order_link(number: &str) -> String {
    format!("/orders/{}", super::url_encode(number))
}

fn status_title(ctx: &Ctx, s: &str) -> &'static str {
    match Status::parse(s) {
        Some(st) => st.title(ctx.lang),
        None => "?",
    }
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "orders").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let before = q.before.as_deref().and_then(|b| b.parse::<i32>().ok());
    let first = before.is_none();
    ctx.live = first;
    let status = q.status.clone().filter(|s| Status::parse(s).is_some());
    let channel = q.channel.clone().filter(|c| !c.is_empty());
    let text = q.q.clone().filter(|t| !t.trim().is_empty());
    let pending = matches!(q.pending.as_deref(), Some("1" | "on" | "true"));
    let f = PageFilter {
        status: status.clone(),
        channel: channel.clone(),
        text: text.clone(),
        pending,
        before,
    };
    let res = super::db(&ex, move |c| {
        let rows = store::page(c, &f, PAGE)?;
        let channels = store::channels(c)?;
        Ok((rows, channels))
    })
    .await;
    let (rows, channels) = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&rows, PAGE as usize, |r| r.id.to_string());
    let statuses = Status::ALL
        .iter()
        .map(|s| (s.as_str(), s.title(ctx.lang)))
        .collect();
    super::html(&ListPage {
        ctx,
        rows,
        statuses,
        channels,
        status: status.unwrap_or_default(),
        channel: channel.unwrap_or_default(),
        q: text.unwrap_or_default(),
        pending,
        next,
        first,
    })
}

#[derive(Template)]
#[template(path = "order.html")]
struct ShowPage {
    ctx: Ctx,
    o: Order,
    timeline: Vec<Event>,
    shipments: Vec<Shipment>,
    documents: Vec<StoredDocument>,
}

impl ShowPage {
    fn status_title(&self) -> &'static str {
        self.o.status.title(self.ctx.lang)
    }
    fn pending(&self) -> bool {
        self.o.version > self.o.exported_version
    }
    fn yes_no(&self, b: &bool) -> &'static str {
        self.ctx.t(if *b { "yes" } else { "no" })
    }
    fn messages_link(&self) -> String {
        format!("/messages?order={}", super::url_encode(&self.o.number))
    }
    fn offer_link(&self, id: &str) -> String {
        super::catalog::offer_link(id)
    }
    fn opt(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
    fn delivery_cost(&self) -> String {
        self.o
            .delivery
            .as_ref()
            .and_then(|d| d.cost)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
    /// The event's data as compact JSON (shown as text).
    fn data(&self, e: &Event) -> String {
        e.data.clone().unwrap_or_default()
    }
    fn is_link(&self, url: &str) -> bool {
        url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/')
    }
}

async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "orders").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let number = path.into_inner();
    let n2 = number.clone();
    // One read transaction, as the API: order, timeline, shipments and documents together.
    let res = super::db(&ex, move |c| {
        c.snapshot_transaction::<_, StoreError, _>(|c| {
            let Some(o) = store::get(c, &n2)? else {
                return Ok(None);
            };
            let timeline = store::timeline(c, o.id)?;
            let shipments = shipping::for_order(c, o.id)?;
            let documents = labels::documents(c, o.id)?;
            Ok(Some((o, timeline, shipments, documents)))
        })
    })
    .await;
    match res {
        Ok(Some((o, timeline, shipments, documents))) => super::html(&ShowPage {
            ctx,
            o,
            timeline,
            shipments,
            documents,
        }),
        Ok(None) => {
            let t = ctx.t("not_found");
            super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &number)
        }
        Err(e) => super::db_error(ctx, e),
    }
}
