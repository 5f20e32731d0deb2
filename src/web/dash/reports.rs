//! Reconciliation reports: the list, a report's items (keyset pages), its CSV export and
//! "run now" for operators (the same as `POST /api/v1/reports/reconciliation`).

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::Ctx;
use crate::connectors::ozon::reconcile::{self, Item, Report};
use crate::exchange::Exchange;
use crate::server::Services;
use crate::users::Role;

pub const TEXT: Table = &[
    ("rep_title", "Сверка с Ozon", "Reconciliation with Ozon"),
    ("rep_report", "Отчёт сверки", "Reconciliation report"),
    ("rep_started", "Начата", "Started"),
    ("rep_finished", "Закончена", "Finished"),
    ("rep_checked", "Проверено предложений", "Offers checked"),
    ("rep_differences", "Расхождений", "Differences"),
    ("rep_run", "Сверить сейчас", "Reconcile now"),
    (
        "rep_run_confirm",
        "Прочитать остатки и цены из Ozon и сверить сейчас?",
        "Read stocks and prices from Ozon and reconcile now?",
    ),
    (
        "rep_no_ozon",
        "Ozon не настроен (не задан [ozon] base_url): сверять не с чем.",
        "Ozon is not configured ([ozon] base_url is not set): nothing to reconcile with.",
    ),
    ("rep_done", "Сверка выполнена", "Reconciliation done"),
    ("rep_failed", "Сверка не удалась", "Reconciliation failed"),
    ("rep_csv", "Скачать CSV", "Download CSV"),
    ("rep_offer", "Предложение", "Offer"),
    ("rep_field", "Поле", "Field"),
    ("rep_obmen", "obmen", "obmen"),
    ("rep_ozon", "Ozon", "Ozon"),
    ("rep_state_running", "выполняется", "running"),
    ("rep_state_done", "готов", "done"),
    ("rep_state_failed", "ошибка", "failed"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports", web::get().to(list));
    cfg.route("/reports/run", web::post().to(run_now));
    cfg.route("/reports/{id}.csv", web::get().to(csv));
    cfg.route("/reports/{id}", web::get().to(show));
}

pub const PAGE: i64 = 50;
pub const ITEMS_PAGE: i64 = 50;

fn state_class(state: &str) -> &'static str {
    match state {
        "done" => "ok",
        "failed" => "bad",
        _ => "warn",
    }
}

fn state_key(state: &str) -> &'static str {
    match state {
        "done" => "rep_state_done",
        "failed" => "rep_state_failed",
        _ => "rep_state_running",
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<Report>,
    next: Option<String>,
    first: bool,
}

impl ListPage {
    fn class(&self, r: &Report) -> &'static str {
        state_class(&r.state)
    }
    fn state(&self, r: &Report) -> &'static str {
        self.ctx.t(state_key(&r.state))
    }
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "reports").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let before = q.before.as_deref().and_then(|b| b.parse::<i32>().ok());
    let first = before.is_none();
    ctx.live = first;
    let res = super::db(&ex, move |c| Ok(reconcile::list(c, before, PAGE)?)).await;
    let rows = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&rows, PAGE as usize, |r| r.id.to_string());
    super::html(&ListPage {
        ctx,
        rows,
        next,
        first,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ShowPage {
    ctx: Ctx,
    r: Report,
    items: Vec<(i32, Item)>,
    next: Option<String>,
    first: bool,
}

impl ShowPage {
    fn class(&self) -> &'static str {
        state_class(&self.r.state)
    }
    fn state(&self) -> &'static str {
        self.ctx.t(state_key(&self.r.state))
    }
    fn offer_link(&self, id: &str) -> String {
        super::catalog::offer_link(id)
    }
    fn opt(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ShowQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "reports").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let raw = path.into_inner();
    let Ok(id) = raw.parse::<i32>() else {
        let t = ctx.t("not_found");
        return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &raw);
    };
    let after = q.after.as_deref().and_then(|a| a.parse::<i32>().ok());
    let res = super::db(&ex, move |c| {
        let Some(r) = reconcile::report(c, id)? else {
            return Ok(None);
        };
        let items = reconcile::items(c, id, after, Some(ITEMS_PAGE))?;
        Ok(Some((r, items)))
    })
    .await;
    let (r, items) = match res {
        Ok(Some(v)) => v,
        Ok(None) => {
            let t = ctx.t("not_found");
            return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &raw);
        }
        Err(e) => return super::db_error(ctx, e),
    };
    ctx.live = r.state == "running";
    let next = super::next_cursor(&items, ITEMS_PAGE as usize, |(p, _)| p.to_string());
    super::html(&ShowPage {
        ctx,
        r,
        items,
        next,
        first: after.is_none(),
    })
}

async fn csv(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "reports").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let raw = path.into_inner();
    let Ok(id) = raw.parse::<i32>() else {
        let t = ctx.t("not_found");
        return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &raw);
    };
    match super::db(&ex, move |c| Ok(reconcile::with_items(c, id)?)).await {
        Ok(Some((report, items))) => {
            let mut b = HttpResponse::Ok();
            super::secure_headers(&mut b);
            b.content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"reconciliation-{}.csv\"", report.id),
                ))
                .body(reconcile::to_csv(&items))
        }
        Ok(None) => {
            let t = ctx.t("not_found");
            super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &raw)
        }
        Err(e) => super::db_error(ctx, e),
    }
}

async fn run_now(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<Services>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(ozon) = svc.ozon.clone() else {
        return super::redirect_flash("/reports", ctx.t("rep_no_ozon"));
    };
    let describe = |r: &Report| {
        format!(
            "report {} {}: checked {}, differences {}",
            r.id, r.state, r.checked, r.differences
        )
    };
    let newest_report = || async {
        super::db(&ex, |c| Ok(reconcile::list(c, None, 1)?))
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
    };
    let previous = newest_report().await;
    let res = ozon.reconcile().await;
    // The report just written (done or failed) is the newest one.
    let newest = newest_report().await;
    let before = previous.as_ref().map(describe);
    let after = newest.as_ref().map(describe);
    super::audit(
        &ex,
        &req,
        &ctx,
        "run_reconciliation",
        newest.as_ref().map(|r| r.id.to_string()),
        before,
        after,
    )
    .await;
    let to = newest
        .as_ref()
        .map(|r| format!("/reports/{}", r.id))
        .unwrap_or_else(|| "/reports".into());
    match res {
        Ok(_) => super::redirect_flash(&to, ctx.t("rep_done")),
        Err(e) => super::redirect_flash(&to, &format!("{}: {e}", ctx.t("rep_failed"))),
    }
}
