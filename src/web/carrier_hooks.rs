//! `POST /cdek/webhook`: CDEK's ORDER_STATUS notifications. For a known shipment obmen reads
//! the order back from CDEK (a `cdek.track` message: the body is not signed, so it is not
//! trusted); the status then goes to 1C as `Статус доставки`. Anything else is acknowledged and
//! ignored — CDEK does not retry, and the tracking schedule polls anyway.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::connectors::cdek::carrier::webhook_order;
use crate::connectors::shipping;
use crate::exchange::Exchange;

const KIND_TRACK: &str = "cdek.track";

pub async fn cdek(
    body: web::Bytes,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<crate::server::Services>>,
) -> HttpResponse {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body("not JSON");
    };
    let Some(uuid) = webhook_order(&v) else {
        return HttpResponse::Ok().body("OK");
    };
    let ex = ex.get_ref().clone();
    // Webhooks carry no signature: the status is read back from CDEK (a `cdek.track` message)
    // rather than taken from the body.
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let mut c = ex.pool.get()?;
        let Some(s) = shipping::by_ref(&mut c, "cdek", &uuid)? else {
            return Ok(false);
        };
        shipping::queue_track_one(&mut c, "cdek", KIND_TRACK, &s)?;
        Ok(true)
    })
    .await;
    if matches!(res, Ok(Ok(true))) {
        svc.relay.wake();
    }
    match res {
        Ok(Ok(_)) => HttpResponse::Ok().body("OK"),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "cdek webhook: cannot store");
            HttpResponse::InternalServerError().body("error")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cdek webhook: cannot store");
            HttpResponse::InternalServerError().body("error")
        }
    }
}
