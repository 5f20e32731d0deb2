//! The message register: the outbox with filters and keyset pages, one message with its payload
//! and the API call behind its last outcome, and the operator's actions (retry, edit the payload,
//! cancel, delete, retry everything failed that a filter shows).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;

use super::text::Table;
use super::{field, Ctx};
use crate::exchange::Exchange;
use crate::relay::journal::{self, CallRow};
use crate::relay::state;
use crate::relay::store::{self as ostore, Change, ListFilter, MessageRow};
use crate::server::Services;
use crate::users::Role;

pub const TEXT: Table = &[
    ("msg_title", "Исходящие сообщения", "Outgoing messages"),
    ("msg_one", "Сообщение", "Message"),
    ("msg_id", "№", "No."),
    ("msg_created", "Создано", "Created"),
    ("msg_kind", "Вид", "Kind"),
    ("msg_key", "Ключ", "Key"),
    ("msg_attempts", "Попыток", "Attempts"),
    ("msg_next", "Следующая попытка", "Next attempt"),
    ("msg_error", "Последняя ошибка", "Last error"),
    ("msg_response", "Ответ", "Response"),
    ("msg_payload", "Содержимое", "Payload"),
    ("msg_order", "Заказ", "Order"),
    ("msg_order_number", "Номер заказа", "Order number"),
    ("msg_key_q", "Часть ключа", "Part of the key"),
    ("msg_updated", "Изменено", "Updated"),
    ("msg_done_at", "Доставлено", "Delivered"),
    (
        "msg_lease",
        "Занято обработчиком до",
        "Held by a worker until",
    ),
    (
        "msg_call",
        "Вызов API, решивший последний исход",
        "The API call behind the last outcome",
    ),
    (
        "msg_no_call",
        "Вызовов API для этого сообщения ещё не было.",
        "No API call was made for this message yet.",
    ),
    ("msg_endpoint", "Адрес", "Endpoint"),
    ("msg_http", "HTTP", "HTTP"),
    ("msg_duration", "Длительность", "Duration"),
    ("msg_outcome", "Исход", "Outcome"),
    ("msg_request", "Запрос", "Request"),
    (
        "msg_calls",
        "Вызовы API, где упоминается это сообщение",
        "API calls that mention this message",
    ),
    (
        "msg_calls_note",
        "По сохранённым отрывкам запросов (не длиннее 2000 байт): список может быть неполным.",
        "Found in the kept request excerpts (up to 2000 bytes each): the list may be incomplete.",
    ),
    ("msg_retry", "Повторить сейчас", "Retry now"),
    (
        "msg_retried",
        "Сообщение поставлено на повтор.",
        "The message is queued for a retry.",
    ),
    (
        "msg_retry_bulk",
        "Повторить все ошибочные и недоставленные по этому фильтру",
        "Retry every failed and dead message of this filter",
    ),
    (
        "msg_retry_bulk_confirm",
        "Повторить все ошибочные и недоставленные сообщения по этому фильтру?",
        "Retry every failed and dead message of this filter?",
    ),
    (
        "msg_retried_bulk",
        "Поставлено на повтор сообщений:",
        "Messages queued for a retry:",
    ),
    ("msg_cancel", "Отменить отправку", "Cancel sending"),
    (
        "msg_cancel_confirm",
        "Отменить это сообщение? Оно не будет отправлено.",
        "Cancel this message? It will not be sent.",
    ),
    (
        "msg_cancelled",
        "Сообщение отменено и не будет отправлено.",
        "The message is cancelled and will not be sent.",
    ),
    ("msg_delete", "Удалить", "Delete"),
    (
        "msg_delete_confirm",
        "Удалить это сообщение навсегда?",
        "Delete this message for good?",
    ),
    (
        "msg_deleted",
        "Сообщение удалено.",
        "The message is deleted.",
    ),
    (
        "msg_edit",
        "Изменить содержимое (JSON)",
        "Edit the payload (JSON)",
    ),
    ("msg_save", "Сохранить", "Save"),
    (
        "msg_saved",
        "Содержимое сообщения изменено.",
        "The payload is changed.",
    ),
    (
        "msg_bad_json",
        "Содержимое не сохранено: это не JSON",
        "The payload is not saved: not valid JSON",
    ),
    (
        "msg_not_allowed",
        "Действие невозможно в состоянии сообщения",
        "Not possible in the message's state",
    ),
    (
        "msg_no_edit",
        "Доставленное или отправляемое сообщение изменить нельзя.",
        "A delivered message or one being sent cannot be edited.",
    ),
    ("msg_not_found", "Сообщения нет", "No such message"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::get().to(list));
    cfg.route("/messages/retry", web::post().to(retry_bulk));
    cfg.route("/messages/{id}", web::get().to(show));
    cfg.route("/messages/{id}/retry", web::post().to(retry));
    cfg.route("/messages/{id}/payload", web::post().to(edit_payload));
    cfg.route("/messages/{id}/cancel", web::post().to(cancel));
    cfg.route("/messages/{id}/delete", web::post().to(delete));
}

pub const PAGE: i64 = 50;

/// The list's filter as GET parameters (and as the bulk retry's form fields).
#[derive(serde::Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    order: String,
    before: Option<String>,
}

impl ListQuery {
    fn from_form(form: &[(String, String)]) -> ListQuery {
        let f = |n| field(form, n).unwrap_or("").trim().to_string();
        ListQuery {
            state: f("state"),
            target: f("target"),
            kind: f("kind"),
            q: f("q"),
            order: f("order"),
            before: None,
        }
    }

    fn filter(&self) -> ListFilter {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        ListFilter {
            state: some(&self.state).filter(|s| state::ALL.contains(&s.as_str())),
            target: some(&self.target),
            kind: some(&self.kind),
            key_contains: some(&self.q),
            order_number: some(&self.order),
            before_id: self.before.as_deref().and_then(|b| b.parse().ok()),
            limit: PAGE,
            ..Default::default()
        }
    }

    /// The filter as a query string (without the page).
    fn query(&self) -> String {
        format!(
            "state={}&target={}&kind={}&q={}&order={}",
            super::url_encode(&self.state),
            super::url_encode(&self.target),
            super::url_encode(&self.kind),
            super::url_encode(&self.q),
            super::url_encode(&self.order)
        )
    }

    fn describe(&self) -> String {
        [
            ("state", &self.state),
            ("target", &self.target),
            ("kind", &self.kind),
            ("q", &self.q),
            ("order", &self.order),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// The dashboard text of a state.
pub fn state_key(s: &str) -> &'static str {
    match s {
        state::PENDING => "st_pending",
        state::IN_FLIGHT => "st_inflight",
        state::FAILED => "st_failed",
        state::DEAD => "st_dead",
        state::DONE => "st_done",
        state::CANCELLED => "st_cancelled",
        _ => "st_waiting",
    }
}

/// The colour of a state's badge.
pub fn state_class(s: &str) -> &'static str {
    match s {
        state::DONE => "ok",
        state::DEAD => "bad",
        state::FAILED | state::PENDING | state::IN_FLIGHT => "warn",
        _ => "",
    }
}

/// The first `n` characters, with … when cut.
pub fn cut(s: &str, n: usize) -> String {
    let mut it = s.chars();
    let head: String = it.by_ref().take(n).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Pretty JSON when it is JSON, else the text.
fn pretty(s: &str) -> String {
    serde_json::from_str::<serde_json::Value>(s)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| s.to_string())
}

#[derive(Template)]
#[template(path = "msg_list.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<MessageRow>,
    q: ListQuery,
    states: Vec<&'static str>,
    targets: Vec<String>,
    next: Option<String>,
    first: bool,
}

impl ListPage {
    fn next_link(&self, cursor: &str) -> String {
        format!(
            "/messages?{}&before={}",
            self.q.query(),
            super::url_encode(cursor)
        )
    }
    fn state_text(&self, s: &str) -> &'static str {
        self.ctx.t(state_key(s))
    }
    fn class(&self, s: &str) -> &'static str {
        state_class(s)
    }
    fn short(&self, s: &Option<String>) -> String {
        cut(s.as_deref().unwrap_or(""), 120)
    }
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "messages").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let f = q.filter();
    let first = f.before_id.is_none();
    ctx.live = first;
    let res = super::db(&ex, move |c| {
        let rows = ostore::list(c, &f)?;
        let targets = ostore::targets(c)?;
        Ok((rows, targets))
    })
    .await;
    let (rows, mut targets) = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    targets.sort();
    targets.dedup();
    let next = super::next_cursor(&rows, PAGE as usize, |r| r.id.to_string());
    super::html(&ListPage {
        ctx,
        rows,
        q,
        states: state::ALL.to_vec(),
        targets,
        next,
        first,
    })
}

#[derive(Template)]
#[template(path = "msg_show.html")]
struct ShowPage {
    ctx: Ctx,
    m: MessageRow,
    payload: String,
    call: Option<CallRow>,
    /// Calls whose request names this message.
    calls: Vec<CallRow>,
    order_number: Option<String>,
    /// The payload text in the editor (the rejected text after a refused edit).
    draft: String,
    error: Option<String>,
}

impl ShowPage {
    fn state_text(&self) -> &'static str {
        self.ctx.t(state_key(&self.m.state))
    }
    fn class(&self) -> &'static str {
        state_class(&self.m.state)
    }
    fn editable(&self) -> bool {
        self.m.state != state::DONE && self.m.state != state::IN_FLIGHT
    }
    fn retryable(&self) -> bool {
        [state::PENDING, state::FAILED, state::DEAD].contains(&self.m.state.as_str())
    }
    fn cancellable(&self) -> bool {
        self.retryable()
    }
    fn deletable(&self) -> bool {
        self.m.state != state::IN_FLIGHT
    }
    fn pretty(&self, s: &Option<String>) -> String {
        pretty(s.as_deref().unwrap_or(""))
    }
    fn short(&self, s: &Option<String>) -> String {
        cut(s.as_deref().unwrap_or(""), 160)
    }
}

type Loaded = (MessageRow, Option<CallRow>, Option<String>, Vec<CallRow>);

/// What identifies a message in a request: its key and the identifier-like string fields of its
/// payload (`offer_id`, `posting_number`, `…_uuid`).
fn needles(m: &MessageRow) -> Vec<String> {
    let mut out = vec![m.key.clone()];
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&m.payload) {
        for (k, v) in map {
            let idish = k.ends_with("_id") || k.ends_with("number") || k.ends_with("uuid");
            if let (true, Some(s)) = (idish, v.as_str()) {
                out.push(s.to_string());
            }
        }
    }
    out
}

async fn load(ex: &Arc<Exchange>, id: i32) -> Result<Option<Loaded>, crate::store::StoreError> {
    super::db(ex, move |c| {
        let Some(m) = ostore::get(c, id)? else {
            return Ok(None);
        };
        let call = match m.last_call_id {
            Some(cid) => journal::get_call(c, cid)?,
            None => None,
        };
        let number = match m.order_id {
            Some(oid) => {
                use crate::store::schema::orders;
                orders::table
                    .find(oid)
                    .select(orders::number)
                    .first::<String>(c)
                    .optional()?
            }
            None => None,
        };
        let calls = journal::calls_mentioning(c, &m.target, &needles(&m), 20)?;
        Ok(Some((m, call, number, calls)))
    })
    .await
}

async fn render_show(
    ctx: Ctx,
    ex: &Arc<Exchange>,
    id: i32,
    status: StatusCode,
    draft: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let (m, call, order_number, calls) = match load(ex, id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            let t = ctx.t("msg_not_found");
            return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &id.to_string());
        }
        Err(e) => return super::db_error(ctx, e),
    };
    let payload = pretty(&m.payload);
    super::html_status(
        status,
        &ShowPage {
            ctx,
            draft: draft.unwrap_or_else(|| payload.clone()),
            payload,
            m,
            call,
            calls,
            order_number,
            error,
        },
    )
}

async fn show(
    req: HttpRequest,
    path: web::Path<i32>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "messages").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    render_show(ctx, &ex, path.into_inner(), StatusCode::OK, None, None).await
}

/// What the audit keeps of a message's delivery state.
fn brief(m: &MessageRow) -> String {
    serde_json::json!({
        "state": m.state,
        "attempts": m.attempts,
        "next_attempt_at": m.next_attempt_at,
    })
    .to_string()
}

/// The answer to an action refused by the message's state or a missing message.
fn refused(ctx: &Ctx, id: i32, c: &Change) -> HttpResponse {
    match c {
        Change::NotFound => super::message(
            ctx.clone(),
            StatusCode::NOT_FOUND,
            ctx.t("msg_not_found"),
            &id.to_string(),
        ),
        Change::NotAllowed(st) => super::redirect_flash(
            &format!("/messages/{id}"),
            &format!("{}: {}", ctx.t("msg_not_allowed"), ctx.t(state_key(st))),
        ),
        Change::Changed(_) => super::redirect(&format!("/messages/{id}")),
    }
}

async fn retry(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<Services>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let res = super::db(&ex, move |c| Ok(ostore::retry_open(c, id)?)).await;
    match res {
        Ok(Change::Changed(before)) => {
            svc.relay.wake();
            // As retry_open leaves it (not read back: the relay may have claimed it already).
            let mut after = (*before).clone();
            if after.state != state::PENDING {
                after.state = state::FAILED.to_string();
            }
            after.attempts = 0;
            after.next_attempt_at = crate::store::now_ms();
            super::audit(
                &ex,
                &req,
                &ctx,
                "retry_message",
                Some(id.to_string()),
                Some(brief(&before)),
                Some(brief(&after)),
            )
            .await;
            super::redirect_flash(&format!("/messages/{id}"), ctx.t("msg_retried"))
        }
        Ok(other) => refused(&ctx, id, &other),
        Err(e) => super::db_error(ctx, e),
    }
}

async fn retry_bulk(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<Services>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = ListQuery::from_form(&form);
    let f = q.filter();
    let res = super::db(&ex, move |c| Ok(ostore::retry_matching(c, &f)?)).await;
    match res {
        Ok(ids) => {
            if !ids.is_empty() {
                svc.relay.wake();
            }
            super::audit(
                &ex,
                &req,
                &ctx,
                "retry_messages",
                Some(q.describe()),
                None,
                Some(serde_json::json!({"count": ids.len(), "ids": ids}).to_string()),
            )
            .await;
            super::redirect_flash(
                &format!("/messages?{}", q.query()),
                &format!("{} {}", ctx.t("msg_retried_bulk"), ids.len()),
            )
        }
        Err(e) => super::db_error(ctx, e),
    }
}

async fn edit_payload(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    ctx.nav = "messages";
    let id = path.into_inner();
    let text = field(&form, "payload").unwrap_or("").to_string();
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let err = format!("{}: {e}", ctx.t("msg_bad_json"));
            return render_show(ctx, &ex, id, StatusCode::BAD_REQUEST, Some(text), Some(err)).await;
        }
    };
    let v2 = value.clone();
    let res = super::db(&ex, move |c| Ok(ostore::edit_payload(c, id, &v2)?)).await;
    match res {
        Ok(Change::Changed(before)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "edit_message_payload",
                Some(id.to_string()),
                Some(before.payload.clone()),
                Some(value.to_string()),
            )
            .await;
            super::redirect_flash(&format!("/messages/{id}"), ctx.t("msg_saved"))
        }
        Ok(other) => refused(&ctx, id, &other),
        Err(e) => super::db_error(ctx, e),
    }
}

async fn cancel(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let res = super::db(&ex, move |c| Ok(ostore::cancel(c, id)?)).await;
    match res {
        Ok(Change::Changed(before)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "cancel_message",
                Some(id.to_string()),
                Some(brief(&before)),
                Some(serde_json::json!({"state": state::CANCELLED}).to_string()),
            )
            .await;
            super::redirect_flash(&format!("/messages/{id}"), ctx.t("msg_cancelled"))
        }
        Ok(other) => refused(&ctx, id, &other),
        Err(e) => super::db_error(ctx, e),
    }
}

async fn delete(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let res = super::db(&ex, move |c| Ok(ostore::delete(c, id)?)).await;
    match res {
        Ok(Change::Changed(before)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "delete_message",
                Some(id.to_string()),
                serde_json::to_string(&before).ok(),
                None,
            )
            .await;
            super::redirect_flash("/messages", ctx.t("msg_deleted"))
        }
        Ok(other) => refused(&ctx, id, &other),
        Err(e) => super::db_error(ctx, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cut_marks_what_it_cuts() {
        assert_eq!(super::cut("абв", 3), "абв");
        assert_eq!(super::cut("абвг", 3), "абв…");
    }
}
