//! The JSON read API (Bearer token `OBMEN_API_TOKEN`; without a token configured the API is off).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalog::query;
use crate::exchange::jobs::JobRow;
use crate::exchange::{Exchange, RequestRow, SessionRow};
use crate::store::schema::{exchange_requests, exchange_sessions, import_jobs};
use crate::store::StoreError;

pub(crate) fn error(
    status: actix_web::http::StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

/// Check the Bearer token; `Err` is the response to send.
#[allow(clippy::result_large_err)] // an HttpResponse is the natural error here
pub(crate) fn authorize(req: &HttpRequest, ex: &Exchange) -> Result<(), HttpResponse> {
    use actix_web::http::StatusCode;
    let Some(token) = ex.cfg.api.token.as_deref() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "api_disabled",
            "The API is off: no API token is configured (OBMEN_API_TOKEN).",
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "An Authorization: Bearer token is required.",
        )),
        Some(g)
            if g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0 =>
        {
            Ok(())
        }
        Some(_) => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The API token is wrong.",
        )),
    }
}

/// Run `f` on a pooled connection off the async workers; `on_error` turns its error into the
/// response (a connection that cannot be had arrives there as `E::from(StoreError)`).
pub(crate) async fn run_with<T, E>(
    ex: &Arc<Exchange>,
    f: impl FnOnce(&mut crate::store::Conn) -> Result<T, E> + Send + 'static,
    on_error: impl FnOnce(E) -> HttpResponse,
) -> Result<T, HttpResponse>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let pool = ex.pool.clone();
    let res = web::block(move || -> Result<T, E> {
        let mut c = pool.get().map_err(StoreError::from)?;
        f(&mut c)
    })
    .await;
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(on_error(e)),
        Err(e) => Err(error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        )),
    }
}

/// [`run_with`] for store queries: any error is a 500 `database`.
pub(crate) async fn run<T: Send + 'static>(
    ex: &Arc<Exchange>,
    f: impl FnOnce(&mut crate::store::Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, HttpResponse> {
    run_with(ex, f, |e| {
        error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "database",
            &e.to_string(),
        )
    })
    .await
}

pub async fn summary(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    match run(&ex, query::summary).await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(r) => r,
    }
}

pub async fn good(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let id = path.into_inner();
    let id2 = id.clone();
    match run(&ex, move |c| query::good(c, &id2)).await {
        Ok(Some(v)) => HttpResponse::Ok().json(v),
        Ok(None) => error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            &format!("No good with Ид {id}."),
        ),
        Err(r) => r,
    }
}

pub async fn offer(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let id = path.into_inner();
    let id2 = id.clone();
    match run(&ex, move |c| query::offer(c, &id2)).await {
        Ok(Some(v)) => HttpResponse::Ok().json(v),
        Ok(None) => error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            &format!("No offer with Ид {id}."),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct ExchangesQuery {
    limit: Option<i64>,
}

pub async fn exchanges(
    req: HttpRequest,
    q: web::Query<ExchangesQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    match run(&ex, move |c| journal(c, limit)).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(r) => r,
    }
}

fn ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn request_json(r: &RequestRow) -> Value {
    json!({
        "at": ms(r.at),
        "method": r.method,
        "type": r.exchange_type,
        "mode": r.mode,
        "filename": r.filename,
        "bytes": r.bytes,
        "http_status": r.http_status,
        "answer": r.answer,
        "detail": r.detail,
        "duration_ms": r.duration_ms,
    })
}

/// Exchange sessions, newest first, each with its requests and imports; requests refused before a
/// session existed (wrong password, no credentials) appear as entries without an id.
pub fn journal(c: &mut crate::store::Conn, limit: i64) -> Result<Value, StoreError> {
    let sessions: Vec<SessionRow> = exchange_sessions::table
        .order(exchange_sessions::created_at.desc())
        .limit(limit)
        .select(SessionRow::as_select())
        .load(c)?;
    let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    let mut requests: HashMap<String, Vec<RequestRow>> = HashMap::new();
    for r in exchange_requests::table
        .filter(exchange_requests::session_id.eq_any(&ids))
        .order(exchange_requests::id)
        .select(RequestRow::as_select())
        .load::<RequestRow>(c)?
    {
        requests
            .entry(r.session_id.clone().unwrap_or_default())
            .or_default()
            .push(r);
    }
    let mut jobs: HashMap<String, Vec<JobRow>> = HashMap::new();
    for j in import_jobs::table
        .filter(import_jobs::session_id.eq_any(&ids))
        .order(import_jobs::id)
        .select(JobRow::as_select())
        .load::<JobRow>(c)?
    {
        jobs.entry(j.session_id.clone()).or_default().push(j);
    }
    let mut out: Vec<(i64, Value)> = Vec::new();
    for s in sessions {
        let reqs = requests.remove(&s.id).unwrap_or_default();
        let imports = jobs.remove(&s.id).unwrap_or_default();
        let mut counts = json!({"goods":0,"offers":0,"groups":0,"properties":0,"documents":0,"created":0,"updated":0,"unchanged":0,"deleted":0});
        for j in &imports {
            for (k, v) in [
                ("goods", j.goods),
                ("offers", j.offers),
                ("groups", j.groups),
                ("properties", j.properties),
                ("documents", j.documents),
                ("created", j.created),
                ("updated", j.updated),
                ("unchanged", j.unchanged),
                ("deleted", j.deleted),
            ] {
                counts[k] = json!(counts[k].as_i64().unwrap_or(0) + v as i64);
            }
        }
        let failed = reqs
            .iter()
            .any(|r| r.answer.trim().eq_ignore_ascii_case("failure"))
            || imports.iter().any(|j| j.state == "failed");
        let pending = imports
            .iter()
            .any(|j| j.state == "queued" || j.state == "running");
        let result = if failed {
            "failure"
        } else if pending {
            "progress"
        } else {
            "success"
        };
        let files: Vec<&str> = reqs
            .iter()
            .filter(|r| r.mode.as_deref() == Some("file"))
            .filter_map(|r| r.filename.as_deref())
            .collect();
        let mut uniq: Vec<&str> = Vec::new();
        for f in files {
            if !uniq.contains(&f) {
                uniq.push(f);
            }
        }
        let bytes: i64 = reqs
            .iter()
            .filter(|r| r.mode.as_deref() == Some("file"))
            .map(|r| r.bytes)
            .sum();
        let duration = reqs
            .last()
            .map(|r| r.at + r.duration_ms - s.created_at)
            .unwrap_or(0);
        out.push((
            s.created_at,
            json!({
                "id": s.id,
                "client_addr": s.client_addr,
                "user": s.login,
                "user_agent": s.user_agent,
                "type": s.exchange_type,
                "version": s.version,
                "started_at": ms(s.created_at),
                "last_seen_at": ms(s.last_seen_at),
                "duration_ms": duration,
                "files": uniq,
                "bytes": bytes,
                "result": result,
                "counts": counts,
                "requests": reqs.iter().map(request_json).collect::<Vec<_>>(),
                "imports": imports.iter().map(|j| json!({
                    "filename": j.filename,
                    "state": j.state,
                    "trigger": j.trigger,
                    "kind": j.kind,
                    "bytes": j.bytes,
                    "goods": j.goods,
                    "offers": j.offers,
                    "groups": j.groups,
                    "properties": j.properties,
                    "price_types": j.price_types,
                    "warehouses": j.warehouses,
                    "documents": j.documents,
                    "created": j.created,
                    "updated": j.updated,
                    "unchanged": j.unchanged,
                    "deleted": j.deleted,
                    "error": j.error,
                    "error_line": j.error_line,
                    "error_column": j.error_column,
                    "started_at": j.started_at.map(ms),
                    "finished_at": j.finished_at.map(ms),
                })).collect::<Vec<_>>(),
            }),
        ));
    }
    let rejected: Vec<RequestRow> = exchange_requests::table
        .filter(exchange_requests::session_id.is_null())
        .order(exchange_requests::id.desc())
        .limit(limit)
        .select(RequestRow::as_select())
        .load(c)?;
    for r in rejected {
        out.push((
            r.at,
            json!({
                "id": null,
                "client_addr": r.client_addr,
                "user": null,
                "type": r.exchange_type,
                "started_at": ms(r.at),
                "duration_ms": r.duration_ms,
                "files": [],
                "bytes": r.bytes,
                "result": "failure",
                "counts": {},
                "requests": [request_json(&r)],
                "imports": [],
            }),
        ));
    }
    out.sort_by_key(|x| std::cmp::Reverse(x.0));
    out.truncate(limit as usize);
    Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
}

pub async fn not_found(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    error(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "No such API endpoint.",
    )
}

/// A known API path asked with a method it does not take.
pub async fn method_not_allowed(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    if let Err(r) = authorize(&req, &ex) {
        return r;
    }
    error(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("Method {} is not allowed here.", req.method()),
    )
}

/// Largest JSON body the API reads (bytes).
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// Read a request body of at most [`MAX_JSON_BODY`] bytes; `Err` is the JSON error to send
/// (413 when it is larger, refused as soon as the limit is passed).
#[allow(clippy::result_large_err)] // an HttpResponse is the natural error here
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, HttpResponse> {
    use actix_web::http::StatusCode;
    use futures_util::StreamExt;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("The body is larger than the limit of {MAX_JSON_BODY} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                &format!("The body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_JSON_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
