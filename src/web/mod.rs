//! HTTP wiring: the exchange endpoints, health checks and the JSON API.

pub mod api;
pub mod orders_api;

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::exchange::handler::exchange_endpoint;
use crate::exchange::Exchange;

/// Paths 1C may be pointed at. UT11 with a bare host name uses the Bitrix path.
pub const EXCHANGE_PATHS: [&str; 3] = [
    "/1c_exchange.php",
    "/bitrix/admin/1c_exchange.php",
    "/exchange",
];

pub fn configure(cfg: &mut web::ServiceConfig, ex: Arc<Exchange>) {
    let data = web::Data::new(ex);
    cfg.app_data(data.clone());
    for p in EXCHANGE_PATHS {
        cfg.route(p, web::route().to(exchange_endpoint));
    }
    cfg.route("/healthz", web::get().to(healthz));
    cfg.service(
        web::scope("/api/v1")
            .route("/catalog/summary", web::get().to(api::summary))
            .route("/goods/{id:.*}", web::get().to(api::good))
            .route("/offers/{id:.*}", web::get().to(api::offer))
            .route("/exchanges", web::get().to(api::exchanges))
            .route("/orders", web::post().to(orders_api::create))
            .route("/orders", web::get().to(orders_api::list))
            .route("/orders/{number}", web::get().to(orders_api::get))
            .default_service(web::to(api::not_found)),
    );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}
