//! The audit log: who did what and when, with the state before and after (administrators only).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::Ctx;
use crate::exchange::Exchange;
use crate::users::{AuditRow, Role};

pub const TEXT: Table = &[
    (
        "aud_title",
        "Журнал действий пользователей",
        "Users' audit log",
    ),
    ("aud_user", "Пользователь", "User"),
    ("aud_action", "Действие", "Action"),
    ("aud_target", "Объект", "Target"),
    ("aud_before", "До", "Before"),
    ("aud_after", "После", "After"),
    ("aud_addr", "Адрес", "Address"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

pub const PAGE: i64 = 50;

#[derive(serde::Deserialize)]
pub struct ListQuery {
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<AuditRow>,
    next: Option<String>,
    first: bool,
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Admin, "audit").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let before: Option<i32> = q.before.as_deref().and_then(|b| b.parse().ok());
    let first = before.is_none();
    ctx.live = first;
    let rows = match super::db(&ex, move |c| Ok(crate::users::audit_page(c, before, PAGE)?)).await {
        Ok(r) => r,
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
