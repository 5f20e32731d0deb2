//! HTTP wiring: the exchange endpoints, health checks and the JSON API.

pub mod api;
pub mod carrier_hooks;
pub mod dash;
pub mod documents;
pub mod media;
pub mod orders_api;
pub mod ozon_push;
pub mod relay_api;
pub mod reports_api;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::exchange::handler::exchange_endpoint;
use crate::exchange::Exchange;

/// Paths 1C may be pointed at. UT11 with a bare host name uses the Bitrix path.
pub const EXCHANGE_PATHS: [&str; 3] = [
    "/1c_exchange.php",
    "/bitrix/admin/1c_exchange.php",
    "/exchange",
];

pub fn configure(
    cfg: &mut web::ServiceConfig,
    ex: Arc<Exchange>,
    svc: Arc<crate::server::Services>,
) {
    let data = web::Data::new(ex);
    cfg.app_data(data.clone());
    cfg.app_data(web::Data::new(svc.relay.clone()));
    cfg.app_data(web::Data::new(svc.clone()));
    for p in EXCHANGE_PATHS {
        cfg.route(p, web::route().to(exchange));
    }
    cfg.route("/healthz", web::get().to(healthz));
    cfg.route("/readyz", web::get().to(readyz));
    cfg.route("/metrics", web::get().to(metrics));
    dash::configure(cfg);
    cfg.route("/ozon/push", web::post().to(ozon_push::push));
    cfg.route("/cdek/webhook", web::post().to(carrier_hooks::cdek));
    cfg.route(
        "/documents/{id}/{token}/{name}",
        web::get().to(documents::download),
    );
    cfg.route("/media/{path:.*}", web::get().to(media::get));
    cfg.service(
        web::scope("/api/v1")
            .route("/catalog/summary", web::get().to(api::summary))
            .route("/goods/{id:.*}", web::get().to(api::good))
            .route("/offers/{id:.*}", web::get().to(api::offer))
            .route("/exchanges", web::get().to(api::exchanges))
            .route("/orders", web::post().to(orders_api::create))
            .route("/orders", web::get().to(orders_api::list))
            .route("/orders/{number}", web::get().to(orders_api::get))
            .route(
                "/orders/{number}/tracking",
                web::get().to(orders_api::tracking),
            )
            .route("/outbox", web::get().to(relay_api::list))
            .route("/outbox/counts", web::get().to(relay_api::counts))
            .route("/outbox/{id}", web::get().to(relay_api::get))
            .route("/outbox/{id}/retry", web::post().to(relay_api::retry))
            .route("/calls", web::get().to(relay_api::calls))
            .route(
                "/reports/reconciliation",
                web::post().to(reports_api::run_now),
            )
            .route(
                "/reports/reconciliation/latest.csv",
                web::get().to(reports_api::latest_csv),
            )
            .route(
                "/reports/reconciliation/latest",
                web::get().to(reports_api::latest),
            )
            // A known path with a method it does not take: 405 with a JSON error.
            .route("/orders", web::route().to(api::method_not_allowed))
            .route("/catalog/summary", web::route().to(api::method_not_allowed))
            .route("/exchanges", web::route().to(api::method_not_allowed))
            .route("/outbox", web::route().to(api::method_not_allowed))
            .route("/calls", web::route().to(api::method_not_allowed))
            .default_service(web::to(api::not_found)),
    );
}

/// The exchange endpoint; after a sale import (1C's statuses came in) the Ozon order
/// dispatcher looks at once for orders to ship or cancel.
async fn exchange(
    req: HttpRequest,
    payload: web::Payload,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<crate::server::Services>>,
) -> HttpResponse {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let sale_import = q.get("type").map(String::as_str) == Some("sale")
        && q.get("mode").map(String::as_str) == Some("import");
    let r = exchange_endpoint(req, payload, ex).await;
    if sale_import {
        svc.dispatch_now.notify_one();
        svc.ship_now.notify_one();
    }
    r
}

/// Ready when the database answers a query (the process itself is up, or nothing would answer).
async fn readyz(ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    use diesel::prelude::*;
    let pool = ex.pool.clone();
    let res = web::block(move || -> Result<(), String> {
        let mut c = pool.get().map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut c)
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await;
    match res {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready"),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: database: {e}")),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {e}")),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// Prometheus metrics (text format). Not authenticated: it carries counts only, no data; keep
/// it off the public network (bind obmen privately or filter `/metrics` at the proxy).
async fn metrics(ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let pool = ex.pool.clone();
    let res = web::block(move || -> Result<String, String> {
        let mut c = pool.get().map_err(|e| e.to_string())?;
        crate::metrics::render(&mut c).map_err(|e| e.to_string())
    })
    .await;
    match res {
        Ok(Ok(body)) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("metrics: {e}")),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("metrics: {e}")),
    }
}
