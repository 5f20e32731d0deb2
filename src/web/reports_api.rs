//! Reconciliation reports over the JSON API (bearer auth):
//! - `POST /api/v1/reports/reconciliation` runs a reconciliation now and answers when it is done:
//!   200 with the report and its items (502 with the failed report when Ozon could not be read);
//! - `GET /api/v1/reports/reconciliation/latest` → `{"report": {…}, "items": [{offer_ref,
//!   offer_id, field, obmen, ozon}]}` (404 before the first report);
//! - `GET /api/v1/reports/reconciliation/latest.csv` (or `latest?format=csv`) → the items as CSV
//!   `offer_id,offer_ref,field,obmen,ozon`, UTF-8 with a BOM so Excel opens it.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::api::{authorize, error, run};
use crate::connectors::ozon::reconcile;
use crate::exchange::Exchange;
use crate::server::Services;

fn no_ozon() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "ozon_disabled",
        "The Ozon connector is off ([ozon] base_url is not set).",
    )
}

async fn latest_json(ex: &Arc<Exchange>, status: StatusCode) -> HttpResponse {
    match run(ex, |c| Ok(reconcile::latest(c)?)).await {
        Ok(Some((report, items))) => {
            HttpResponse::build(status).json(json!({"report": report, "items": items}))
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No reconciliation report yet.",
        ),
        Err(r) => r,
    }
}

pub async fn run_now(
    req: HttpRequest,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<Services>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let Some(ozon) = svc.ozon.clone() else {
        return no_ozon();
    };
    match ozon.reconcile().await {
        Ok(_) => latest_json(&ex, StatusCode::OK).await,
        Err(e) => {
            tracing::warn!(error = %e, "reconciliation on demand failed");
            latest_json(&ex, StatusCode::BAD_GATEWAY).await
        }
    }
}

#[derive(Deserialize)]
pub struct LatestQuery {
    format: Option<String>,
}

pub async fn latest(
    req: HttpRequest,
    q: web::Query<LatestQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    if q.format.as_deref() == Some("csv") {
        return csv(&ex).await;
    }
    latest_json(&ex, StatusCode::OK).await
}

pub async fn latest_csv(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    csv(&ex).await
}

async fn csv(ex: &Arc<Exchange>) -> HttpResponse {
    match run(ex, |c| Ok(reconcile::latest(c)?)).await {
        Ok(Some((report, items))) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"reconciliation-{}.csv\"", report.id),
            ))
            .body(reconcile::to_csv(&items)),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No reconciliation report yet.",
        ),
        Err(r) => r,
    }
}
