//! The outbox and the call journal over the JSON API: `GET /api/v1/outbox?state=&target=&kind=
//! &order_id=&before=&limit=`, `GET /api/v1/outbox/{id}`, `POST /api/v1/outbox/{id}/retry`,
//! `GET /api/v1/outbox/counts`, `GET /api/v1/calls?target=&before=&limit=`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::api::{authorize, error, run};
use crate::exchange::Exchange;
use crate::relay::store::{self as ostore, ListFilter, RetryResult};
use crate::relay::{journal, state};

#[derive(Deserialize)]
pub struct OutboxQuery {
    state: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    order_id: Option<i32>,
    before: Option<i32>,
    limit: Option<i64>,
}

pub async fn list(
    req: HttpRequest,
    q: web::Query<OutboxQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let q = q.into_inner();
    if let Some(s) = &q.state {
        if !state::ALL.contains(&s.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_state",
                &format!("state must be one of {}", state::ALL.join(", ")),
            );
        }
    }
    let f = ListFilter {
        state: q.state,
        target: q.target,
        kind: q.kind,
        order_id: q.order_id,
        before_id: q.before,
        limit: q.limit.unwrap_or(100),
        ..Default::default()
    };
    match run(&ex, move |c| Ok(ostore::list(c, &f)?)).await {
        Ok(rows) => {
            let next = rows.last().map(|r| r.id);
            HttpResponse::Ok().json(json!({"messages": rows, "next_before": next}))
        }
        Err(r) => r,
    }
}

pub async fn get(
    req: HttpRequest,
    id: web::Path<i32>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let id = id.into_inner();
    match run(&ex, move |c| {
        let m = ostore::get(c, id)?;
        let call = match m.as_ref().and_then(|m| m.last_call_id) {
            Some(cid) => journal::get_call(c, cid)?,
            None => None,
        };
        Ok((m, call))
    })
    .await
    {
        Ok((Some(m), call)) => HttpResponse::Ok().json(json!({"message": m, "last_call": call})),
        Ok((None, _)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no message {id}"),
        ),
        Err(r) => r,
    }
}

pub async fn retry(
    req: HttpRequest,
    id: web::Path<i32>,
    ex: web::Data<Arc<Exchange>>,
    relay: web::Data<Arc<crate::relay::Relay>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let id = id.into_inner();
    match run(&ex, move |c| Ok(ostore::retry_now(c, id)?)).await {
        Ok(RetryResult::Queued) => {
            relay.wake();
            HttpResponse::Ok().json(json!({"id": id, "queued": true}))
        }
        Ok(RetryResult::NotFound) => {
            error(StatusCode::NOT_FOUND, "not_found", &format!("no message {id}"))
        }
        Ok(RetryResult::NotRetryable(st)) => error(
            StatusCode::CONFLICT,
            "not_retryable",
            &format!("message {id} is {st}: only failed, dead, cancelled or pending messages can be retried"),
        ),
        Err(r) => r,
    }
}

pub async fn counts(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    match run(&ex, |c| Ok(ostore::counts(c)?)).await {
        Ok(rows) => {
            let mut out = serde_json::Map::new();
            for (target, st, n) in rows {
                let e = out.entry(target).or_insert_with(|| json!({}));
                e[st] = json!(n);
            }
            HttpResponse::Ok().json(out)
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct CallsQuery {
    target: Option<String>,
    before: Option<i32>,
    limit: Option<i64>,
}

pub async fn calls(
    req: HttpRequest,
    q: web::Query<CallsQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let q = q.into_inner();
    match run(&ex, move |c| {
        Ok(journal::list_calls(
            c,
            q.target.as_deref(),
            q.before,
            q.limit.unwrap_or(100),
        )?)
    })
    .await
    {
        Ok(rows) => HttpResponse::Ok().json(json!({"calls": rows})),
        Err(r) => r,
    }
}
