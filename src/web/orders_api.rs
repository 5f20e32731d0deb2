//! The orders API (Bearer `OBMEN_API_TOKEN`):
//! `POST /api/v1/orders` (intake, idempotent on channel + external_id),
//! `GET /api/v1/orders/{number}` (with `shipments`), `GET /api/v1/orders/{number}/tracking`,
//! `GET /api/v1/orders?status=&channel=&limit=`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{authorize, error, run_with};
use crate::exchange::Exchange;
use crate::orders::model::{Order, OrderInput, Source, Status};
use crate::orders::{store, OrderError};

fn ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn order_json(o: &Order, timeline: Option<&[store::Event]>) -> Value {
    let mut v = json!({
        "number": o.number,
        "status": o.status.as_str(),
        "channel": o.channel,
        "external_id": o.external_id,
        "date": o.date,
        "currency": o.currency,
        "total": o.total.as_f64(),
        "exported_to_1c": o.exported_to_1c(),
        "pending_for_1c": o.version > o.exported_version,
        "customer": o.customer,
        "delivery": o.delivery,
        "payment": o.payment,
        "comment": o.comment,
        "requisites": o.requisites.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "onec": {
            "id": o.onec.id,
            "number": o.onec.number,
            "date": o.onec.date,
            "posted": o.onec.posted,
            "paid": o.onec.paid,
            "payment_number": o.onec.payment_number,
            "payment_date": o.onec.payment_date,
            "shipped": o.onec.shipped,
            "shipment_number": o.onec.shipment_number,
            "shipment_date": o.onec.shipment_date,
            "cancelled": o.onec.cancelled,
            "deleted": o.onec.deleted,
            "status": o.onec.status,
        },
        "lines": o.lines.iter().map(|l| json!({
            "offer_id": l.offer_id,
            "article": l.article,
            "name": l.name,
            "quantity": l.quantity.as_f64(),
            "price": l.price.as_f64(),
            "discount": l.discount.as_f64(),
            "vat": l.vat,
            "sum": l.sum.as_f64(),
        })).collect::<Vec<_>>(),
        "created_at": ms(o.created_at),
        "updated_at": ms(o.updated_at),
    });
    if let Some(t) = timeline {
        v["timeline"] = Value::Array(
            t.iter()
                .map(|e| {
                    json!({
                        "at": ms(e.at),
                        "source": e.source,
                        "kind": e.kind,
                        "message": e.message,
                        "data": e.data.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
                    })
                })
                .collect(),
        );
    }
    v
}

async fn block<T: Send + 'static>(
    ex: &Arc<Exchange>,
    f: impl FnOnce(&mut crate::store::Conn) -> Result<T, OrderError> + Send + 'static,
) -> Result<T, HttpResponse> {
    let lang = ex.lang();
    run_with(ex, f, |e| order_error(&e, lang)).await
}

fn order_error(e: &OrderError, lang: crate::i18n::Lang) -> HttpResponse {
    let msg = e.describe(lang);
    match e {
        OrderError::UnknownOffer { line, offer_id } => {
            HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(json!({
                "error": "unknown_offer", "message": msg, "line": line, "offer_id": offer_id,
            }))
        }
        OrderError::Line { line, offer_id, .. } => {
            HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(json!({
                "error": "invalid_line", "message": msg, "line": line, "offer_id": offer_id,
            }))
        }
        OrderError::Invalid { field, .. } => HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
            .json(json!({
                "error": "invalid", "message": msg, "field": field,
            })),
        OrderError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &msg),
        OrderError::Db(_) | OrderError::Store(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "database", &msg)
        }
    }
}

/// `POST /api/v1/orders` → 201 `{"number"}`; the same channel + external_id again → 200.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let body = match super::api::read_body(&req, payload).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let input: OrderInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                &format!("The body is not a valid order: {e}"),
            )
        }
    };
    let prefix = ex.cfg.orders.number_prefix.clone();
    let ex2 = ex.get_ref().clone();
    match block(&ex2, move |c| {
        store::create(c, &input, &prefix, Source::Api)
    })
    .await
    {
        Ok((number, true)) => HttpResponse::Created().json(json!({"number": number})),
        Ok((number, false)) => HttpResponse::Ok().json(json!({"number": number})),
        Err(r) => r,
    }
}

/// `GET /api/v1/orders/{number}` → the order with its 1C side and timeline.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let number = path.into_inner();
    let n2 = number.clone();
    let ex2 = ex.get_ref().clone();
    let res = block(&ex2, move |c| {
        // One read transaction: the order, its timeline and shipments from the same moment.
        c.snapshot_transaction::<_, OrderError, _>(|c| {
            let Some(o) = store::get(c, &n2)? else {
                return Ok(None);
            };
            let t = store::timeline(c, o.id)?;
            let mut v = order_json(&o, Some(&t));
            v["shipments"] = Value::from(crate::connectors::shipping::shipments_json(c, o.id)?);
            Ok(Some(v))
        })
    })
    .await;
    match res {
        Ok(Some(v)) => HttpResponse::Ok().json(v),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("No order {number}."),
        ),
        Err(r) => r,
    }
}

/// `GET /api/v1/orders/{number}/tracking` → carrier, tracking number and delivery status.
pub async fn tracking(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<crate::server::Services>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let number = path.into_inner();
    let n2 = number.clone();
    let ex2 = ex.get_ref().clone();
    let carriers = svc.carriers.clone();
    let res = block(&ex2, move |c| {
        Ok(crate::connectors::shipping::tracking_json(
            c, &carriers, &n2,
        )?)
    })
    .await;
    match res {
        Ok(Some(v)) => HttpResponse::Ok().json(v),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("No order {number}."),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    channel: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/orders?status=&channel=&limit=` → newest first.
pub async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let q = q.into_inner();
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if Status::parse(s).is_none() {
            let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            return error(
                StatusCode::BAD_REQUEST,
                "bad_status",
                &format!("Unknown status {s:?}; one of {}.", all.join(", ")),
            );
        }
    }
    let channel = q.channel.filter(|s| !s.is_empty());
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let ex2 = ex.get_ref().clone();
    let res = block(&ex2, move |c| {
        Ok(
            store::list(c, status.as_deref(), channel.as_deref(), limit)?
                .iter()
                .map(|o| order_json(o, None))
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match res {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(r) => r,
    }
}
