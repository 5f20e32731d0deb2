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

/// The client's address: the TCP peer, or, when the peer is one of `server.trusted_proxies`, the
/// right-most address of `X-Forwarded-For` that is not a trusted proxy itself (the left part of
/// that header is whatever the client wrote, so it is never believed).
pub fn client_addr(req: &HttpRequest, server: &crate::config::ServerConfig) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".into();
    };
    if server.trusted_proxies.is_empty() {
        return peer.to_string();
    }
    let nets = server.proxy_nets().unwrap_or_default();
    let trusted = |ip: &std::net::IpAddr| nets.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer.to_string();
    }
    let mut hops: Vec<std::net::IpAddr> = Vec::new();
    for v in req.headers().get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else {
            return peer.to_string();
        };
        for part in v.split(',') {
            match part.trim().parse() {
                Ok(ip) => hops.push(ip),
                // Garbage in the chain: nothing left of it can be trusted; stop at the proxy.
                Err(_) => hops.clear(),
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
        .to_string()
}

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

#[cfg(test)]
mod client_addr_tests {
    use super::client_addr;
    use crate::config::ServerConfig;
    use actix_web::test::TestRequest;

    fn addr(peer: &str, xff: &[&str], trusted: &[&str]) -> String {
        let mut r = TestRequest::default().peer_addr(format!("{peer}:40000").parse().unwrap());
        for v in xff {
            r = r.append_header(("X-Forwarded-For", *v));
        }
        let server = ServerConfig {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        client_addr(&r.to_http_request(), &server)
    }

    #[test]
    fn the_peer_unless_it_is_a_trusted_proxy() {
        // No trusted proxies: the header is never believed.
        assert_eq!(addr("10.0.0.5", &["1.2.3.4"], &[]), "10.0.0.5");
        // A peer that is not trusted: the header is ignored.
        assert_eq!(addr("10.9.0.5", &["1.2.3.4"], &["10.0.0.0/16"]), "10.9.0.5");
        // A trusted peer: the right-most untrusted hop; what the client prepended is ignored.
        assert_eq!(
            addr("10.0.0.5", &["6.6.6.6, 1.2.3.4"], &["10.0.0.0/16"]),
            "1.2.3.4"
        );
        // Proxies behind proxies are skipped; headers repeated count in order.
        assert_eq!(
            addr(
                "10.0.0.5",
                &["6.6.6.6, 1.2.3.4", "10.0.0.7"],
                &["10.0.0.0/16"]
            ),
            "1.2.3.4"
        );
        // Plain address entry; IPv6.
        assert_eq!(
            addr("10.0.0.5", &["2001:db8::1"], &["10.0.0.5"]),
            "2001:db8::1"
        );
        // Trusted peer, no header or only proxies in it: the peer.
        assert_eq!(addr("10.0.0.5", &[], &["10.0.0.5"]), "10.0.0.5");
        assert_eq!(addr("10.0.0.5", &["10.0.0.6"], &["10.0.0.0/8"]), "10.0.0.5");
        // Garbage after a good hop: nothing before it is believed.
        assert_eq!(
            addr("10.0.0.5", &["1.2.3.4, junk"], &["10.0.0.5"]),
            "10.0.0.5"
        );
        assert_eq!(
            addr("10.0.0.5", &["junk, 1.2.3.4"], &["10.0.0.5"]),
            "1.2.3.4"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        let s = ServerConfig {
            trusted_proxies: vec!["10.0.0.0/8".into(), "proxy.local".into()],
            ..Default::default()
        };
        assert!(s.proxy_nets().unwrap_err().contains("proxy.local"));
    }
}
