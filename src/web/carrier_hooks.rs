//! `POST /cdek/webhook`: CDEK's ORDER_STATUS notifications. A status of a known shipment is
//! stored (and goes to 1C as `Статус доставки`); anything else is acknowledged and ignored —
//! CDEK does not retry, and the tracking schedule polls anyway.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::connectors::cdek::carrier::{status_name, webhook_status};
use crate::connectors::shipping::{self, Update};
use crate::exchange::Exchange;

pub async fn cdek(body: web::Bytes, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body("not JSON");
    };
    let Some((uuid, code, number)) = webhook_status(&v) else {
        return HttpResponse::Ok().body("OK");
    };
    let ex = ex.get_ref().clone();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let mut c = ex.pool.get()?;
        let Some(s) = shipping::by_ref(&mut c, "cdek", &uuid)? else {
            return Ok(false);
        };
        if s.status_code.as_deref() == Some(code.as_str()) {
            return Ok(true);
        }
        let u = Update {
            status_name: Some(status_name(&code).to_string()),
            note: Some(format!("CDEK webhook: {code}")),
            status_code: Some(code),
            carrier_number: number.filter(|n| s.carrier_number.as_ref() != Some(n)),
            ..Default::default()
        };
        shipping::apply(&mut c, &ex.cfg, "СДЭК", s.id, &u)?;
        Ok(true)
    })
    .await;
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
