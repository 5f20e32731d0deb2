//! `POST /ozon/push`: Ozon's push notifications (no bearer token — Ozon calls it). A ping is
//! answered at once; any other notification is stored (duplicates ignored) and, when it is
//! about a posting, a fetch of that posting is queued. Ozon gets its answer without waiting
//! for Ozon (its limit is 5 s).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::connectors::ozon::orders::store_push;
use crate::server::Services;

fn push_error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .json(json!({"error": {"code": code, "message": message, "details": null}}))
}

pub async fn push(body: web::Bytes, svc: web::Data<Arc<Services>>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(ozon) = svc.ozon.clone() else {
        return push_error(
            StatusCode::NOT_FOUND,
            "ERROR_UNKNOWN",
            "the Ozon connector is off",
        );
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return push_error(
                StatusCode::BAD_REQUEST,
                "ERROR_PARAMETER_VALUE_MISSED",
                "the body is not a JSON object",
            )
        }
        Err(e) => {
            return push_error(
                StatusCode::BAD_REQUEST,
                "ERROR_PARAMETER_VALUE_MISSED",
                &format!("the body is not JSON: {e}"),
            )
        }
    };
    let Some(kind) = v["message_type"].as_str().filter(|s| !s.is_empty()) else {
        return push_error(
            StatusCode::BAD_REQUEST,
            "ERROR_PARAMETER_VALUE_MISSED",
            "message_type is missing",
        );
    };
    if kind == "TYPE_PING" {
        return HttpResponse::Ok().json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "name": "obmen",
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let pool = ozon.pool.clone();
    let res = web::block(move || -> anyhow::Result<bool> {
        let mut c = pool.get()?;
        Ok(store_push(&mut c, &text, &v)?)
    })
    .await;
    match res {
        Ok(Ok(new)) => {
            if new {
                svc.relay.wake();
            }
            HttpResponse::Ok().json(json!({"result": true}))
        }
        Ok(Err(e)) => push_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERROR_UNKNOWN",
            &format!("cannot store the notification: {e}"),
        ),
        Err(e) => push_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERROR_UNKNOWN",
            &e.to_string(),
        ),
    }
}
