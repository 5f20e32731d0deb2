//! The Ozon offer mapping (1C offer → Ozon offer_id) as stored in the database: viewable by
//! everyone, correctable by administrators (audited; the new offer_id gets card, stock and price).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use diesel::prelude::*;

use super::text::Table;
use super::Ctx;
use crate::exchange::Exchange;
use crate::store::schema::ozon_offers;
use crate::users::Role;

pub const TEXT: Table = &[
    ("map_title", "Сопоставление предложений с Ozon", "Ozon offer mapping"),
    ("map_note", "Ид предложения 1С → offer_id на Ozon. offer_id задаётся при первой выгрузке (по артикулу) и дальше не меняется сам; администратор может исправить его здесь — новый offer_id получит карточку, остаток и цену заново.", "1C offer Ид → Ozon offer_id. The offer_id is set at the first export (from the article) and never changes by itself; an administrator can correct it here — the new offer_id gets the card, stock and price again."),
    ("map_ref", "Предложение 1С", "1C offer"),
    ("map_article", "Артикул сейчас", "Article now"),
    ("map_card", "Карточка", "Card"),
    ("map_save", "Сохранить", "Save"),
    ("map_saved", "offer_id изменён; карточка, остаток и цена поставлены в очередь", "offer_id changed; card, stock and price are queued"),
    ("map_q", "Ид, артикул или offer_id", "Ид, article or offer_id"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/mappings", web::get().to(list));
    cfg.route("/mappings", web::post().to(save));
}

#[derive(serde::Deserialize)]
struct Query {
    q: Option<String>,
    after: Option<String>,
}

type Row = (String, String, Option<String>, Option<i64>, Option<String>);

#[derive(Template)]
#[template(path = "mappings.html")]
struct Page {
    ctx: Ctx,
    rows: Vec<Row>,
    q: String,
    next: Option<String>,
}

impl Page {
    fn next_link(&self, after: &str) -> String {
        format!(
            "/mappings?q={}&after={}",
            super::url_encode(&self.q),
            super::url_encode(after)
        )
    }
}

const PAGE: i64 = 50;

async fn list(
    req: HttpRequest,
    q: web::Query<Query>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "mappings").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let text = q.q.clone().unwrap_or_default();
    let (t2, after) = (text.trim().to_string(), q.after.clone());
    let res = super::db(&ex, move |c| {
        let mut query = ozon_offers::table.into_boxed();
        if !t2.is_empty() {
            let pat = crate::store::like_contains(&t2);
            query = query.filter(
                ozon_offers::offer_ref
                    .like(pat.clone())
                    .escape('\\')
                    .or(ozon_offers::offer_id.like(pat.clone()).escape('\\'))
                    .or(ozon_offers::article_now
                        .like(pat)
                        .escape('\\')
                        .assume_not_null()),
            );
        }
        if let Some(a) = after {
            query = query.filter(ozon_offers::offer_ref.gt(a));
        }
        Ok(query
            .order(ozon_offers::offer_ref)
            .limit(PAGE)
            .select((
                ozon_offers::offer_ref,
                ozon_offers::offer_id,
                ozon_offers::article_now,
                ozon_offers::product_id,
                ozon_offers::card_state,
            ))
            .load::<Row>(c)?)
    })
    .await;
    let rows = match res {
        Ok(r) => r,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&rows, PAGE as usize, |r| r.0.clone());
    super::html(&Page {
        ctx,
        rows,
        q: text,
        next,
    })
}

async fn save(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<crate::server::Services>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let offer_ref = super::field(&form, "offer_ref").unwrap_or("").to_string();
    let offer_id = super::field(&form, "offer_id")
        .unwrap_or("")
        .trim()
        .to_string();
    let back = format!("/mappings?q={}", super::url_encode(&offer_ref));
    let cfg = ex.cfg.ozon.clone();
    let (r2, o2) = (offer_ref.clone(), offer_id.clone());
    let res = super::db(&ex, move |c| {
        Ok(crate::connectors::ozon::plan::remap_offer(
            c, &cfg, &r2, &o2,
        ))
    })
    .await;
    match res {
        Ok(Ok(old)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "ozon_offer_remap",
                Some(offer_ref),
                Some(old),
                Some(offer_id),
            )
            .await;
            svc.relay.wake();
            super::redirect_flash(&back, ctx.t("map_saved"))
        }
        Ok(Err(e)) => super::redirect_flash(&back, &e.to_string()),
        Err(e) => super::db_error(ctx, e),
    }
}
