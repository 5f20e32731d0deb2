//! The home page: what needs attention now (messages per state, the last exchanges, orders
//! waiting for 1C).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;

use super::text::Table;
use super::Ctx;
use crate::exchange::history::{self, Summary};
use crate::exchange::Exchange;
use crate::store::schema::orders;
use crate::users::Role;

pub const TEXT: Table = &[
    ("home_title", "Состояние обмена", "Exchange status"),
    (
        "outbox_states",
        "Сообщения по состояниям",
        "Messages by state",
    ),
    (
        "recent_exchanges",
        "Последние обмены с 1С",
        "Latest 1C exchanges",
    ),
    (
        "orders_pending",
        "Заказы ждут выгрузки в 1С",
        "Orders waiting for 1C",
    ),
    ("target", "Система", "System"),
    ("st_pending", "в очереди", "pending"),
    ("st_in_flight", "отправляется", "in flight"),
    ("st_failed", "ошибка, повтор", "failed, will retry"),
    ("st_dead", "не доставлено", "dead"),
    ("st_done", "доставлено", "done"),
    ("st_cancelled", "отменено", "cancelled"),
    ("st_waiting", "ожидает", "waiting"),
];

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    ctx: Ctx,
    /// (target, [(state, count)])
    outbox: Vec<(String, Vec<(String, i64)>)>,
    states: Vec<String>,
    rows: Vec<Summary>,
    orders_pending: i64,
}

impl HomePage {
    fn count(&self, row: &[(String, i64)], state: &str) -> i64 {
        row.iter()
            .find(|(s, _)| s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
    fn state_text(&self, s: &str) -> &'static str {
        self.ctx.t(&format!("st_{s}"))
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home));
}

/// Outbox counts per (target, state), computed at most once a second: the home page refreshes
/// itself every few seconds in every open browser, and counting a large outbox walks its index.
fn cached_counts(
    c: &mut crate::store::Conn,
) -> Result<Vec<(String, String, i64)>, crate::store::StoreError> {
    type Cache = std::sync::Mutex<Option<(std::time::Instant, Vec<(String, String, i64)>)>>;
    static CACHE: Cache = std::sync::Mutex::new(None);
    if let Ok(g) = CACHE.lock() {
        if let Some((at, v)) = g.as_ref() {
            if at.elapsed() < std::time::Duration::from_secs(1) {
                return Ok(v.clone());
            }
        }
    }
    let v = crate::relay::store::counts(c)?;
    if let Ok(mut g) = CACHE.lock() {
        *g = Some((std::time::Instant::now(), v.clone()));
    }
    Ok(v)
}

async fn home(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "home").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    ctx.live = true;
    let res = super::db(&ex, |c| {
        let counts = cached_counts(c)?;
        let recent = history::page(c, &history::Filter::default(), 10)?;
        let pending: i64 = orders::table
            .filter(orders::exported_version.lt(orders::version))
            .count()
            .get_result(c)?;
        Ok((counts, recent, pending))
    })
    .await;
    let (counts, rows, orders_pending) = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let mut outbox: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    let mut states: Vec<String> = ["pending", "in_flight", "failed", "dead", "done"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (target, state, n) in counts {
        if !states.contains(&state) {
            states.push(state.clone());
        }
        match outbox.iter_mut().find(|(t, _)| *t == target) {
            Some((_, v)) => v.push((state, n)),
            None => outbox.push((target, vec![(state, n)])),
        }
    }
    outbox.sort_by(|a, b| a.0.cmp(&b.0));
    super::html(&HomePage {
        ctx,
        outbox,
        states,
        rows,
        orders_pending,
    })
}
