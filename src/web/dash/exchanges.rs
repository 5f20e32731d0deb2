//! Exchange history: one row per 1C session, a session's requests and imports, its kept raw
//! files (download) and replaying its import.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::Ctx;
use crate::exchange::history::{self, Detail, Filter, KeptFile, Summary};
use crate::exchange::jobs::JobRow;
use crate::exchange::{Exchange, RequestRow};
use crate::users::Role;

pub const TEXT: Table = &[
    ("ex_title", "История обменов с 1С", "1C exchange history"),
    ("ex_client", "Клиент", "Client"),
    ("ex_type", "Тип", "Type"),
    ("ex_files", "Файлы", "Files"),
    ("ex_bytes", "Объём", "Size"),
    ("ex_created", "Создано", "Created"),
    ("ex_updated", "Изменено", "Updated"),
    ("ex_unchanged", "Без изменений", "Unchanged"),
    ("ex_deleted", "Удалено", "Deleted"),
    ("ex_duration", "Длительность", "Duration"),
    ("outcome_ok", "успешно", "success"),
    ("outcome_warn", "выполняется", "in progress"),
    ("outcome_bad", "ошибка", "failed"),
    ("ex_refused", "Отклонённые запросы (без сеанса: неверный пароль, нет учётных данных)", "Refused requests (no session: wrong password, no credentials)"),
    ("ex_requests", "Запросы", "Requests"),
    ("ex_mode", "Режим", "Mode"),
    ("ex_file", "Файл", "File"),
    ("ex_answer", "Ответ", "Answer"),
    ("ex_imports", "Загрузка", "Imports"),
    ("ex_log", "Журнал загрузки", "Import log"),
    ("ex_kept", "Сохранённые файлы", "Kept files"),
    ("ex_kept_none", "Файлы этого обмена не сохранены (хранятся файлы последних обменов, см. exchange.keep_exchanges).", "No files of this exchange are kept (files of the latest exchanges are kept, see exchange.keep_exchanges)."),
    ("ex_replay", "Повторить загрузку из сохранённых файлов", "Replay the import from the kept files"),
    ("ex_replay_confirm", "Загрузить эти файлы ещё раз?", "Import these files again?"),
    ("ex_replayed", "Загрузка запущена заново: новый обмен", "Import replayed: new exchange"),
    ("ex_more_requests", "Показаны первые запросы; остальные — в API.", "The first requests are shown; the rest are in the API."),
    ("ex_q", "Ид сеанса, клиент, пользователь или файл", "Session id, client, user or file"),
    ("ex_session", "Сеанс", "Session"),
    ("ex_version", "Версия схемы", "Schema version"),
    ("log_started", "начата загрузка", "import started"),
    ("log_done", "загрузка завершена", "import finished"),
    ("log_failed", "загрузка прервана", "import failed"),
    ("log_queued", "в очереди", "queued"),
    ("log_at", "строка", "line"),
    ("log_col", "столбец", "column"),
    ("catalog_type", "каталог", "catalog"),
    ("goods_n", "товаров", "goods"),
    ("offers_n", "предложений", "offers"),
    ("sale_type", "заказы", "orders"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/exchanges", web::get().to(list));
    cfg.route("/exchanges/{id}", web::get().to(show));
    cfg.route("/exchanges/{id}/files/{path:.*}", web::get().to(download));
    cfg.route("/exchanges/{id}/replay", web::post().to(replay));
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    result: Option<String>,
    q: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "exchanges.html")]
struct ListPage {
    ctx: Ctx,
    rows: Vec<Summary>,
    refused: Vec<RequestRow>,
    kind: String,
    result: String,
    q: String,
    next: Option<String>,
    first: bool,
}

impl ListPage {
    fn next_link(&self, cursor: &str) -> String {
        format!(
            "/exchanges?type={}&result={}&q={}&before={}",
            super::url_encode(&self.kind),
            super::url_encode(&self.result),
            super::url_encode(&self.q),
            super::url_encode(cursor)
        )
    }
}

pub const PAGE: i64 = 50;

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "exchanges").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let before = q.before.as_deref().and_then(history::parse_cursor);
    let first = before.is_none();
    ctx.live = first;
    let f = Filter {
        kind: q.kind.clone().filter(|k| k == "catalog" || k == "sale"),
        outcome: q
            .result
            .clone()
            .filter(|r| ["ok", "warn", "bad"].contains(&r.as_str())),
        q: q.q.clone(),
        before,
    };
    let show_refused =
        first && f.kind.is_none() && f.q.is_none() && f.outcome.as_deref() != Some("ok");
    let res = super::db(&ex, move |c| {
        let rows = history::page(c, &f, PAGE)?;
        let refused = if show_refused {
            history::refused(c, 20)?
        } else {
            Vec::new()
        };
        Ok((rows, refused))
    })
    .await;
    let (rows, refused) = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&rows, PAGE as usize, |r| history::cursor(&r.session));
    super::html(&ListPage {
        ctx,
        rows,
        refused,
        kind: q.kind.unwrap_or_default(),
        result: q.result.unwrap_or_default(),
        q: q.q.unwrap_or_default(),
        next,
        first,
    })
}

#[derive(Template)]
#[template(path = "exchange.html")]
struct ShowPage {
    ctx: Ctx,
    rows: Vec<Summary>,
    requests: Vec<RequestRow>,
    more_requests: bool,
    jobs: Vec<JobRow>,
    files: Vec<KeptFile>,
    id: String,
    replayable: bool,
}

impl ShowPage {
    /// A request's answer detail as shown: checkauth's cookie and sessid are credentials of the
    /// 1C session and are not shown.
    fn detail_of(&self, r: &RequestRow) -> Option<String> {
        if r.mode.as_deref() == Some("checkauth") && r.answer == "success" {
            return None;
        }
        r.detail.clone()
    }

    fn file_link(&self, f: &KeptFile) -> String {
        let path: Vec<String> = f.path.split('/').map(super::url_encode).collect();
        format!("/exchanges/{}/files/{}", self.id, path.join("/"))
    }
}

async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let mut ctx = match super::guard(&req, &ex, Role::Viewer, "exchanges").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let id2 = id.clone();
    let res = super::db(&ex, move |c| history::detail(c, &id2)).await;
    let d: Detail = match res {
        Ok(Some(d)) => d,
        Ok(None) => {
            let t = ctx.t("not_found");
            return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &id);
        }
        Err(e) => return super::db_error(ctx, e),
    };
    let ex2 = ex.get_ref().clone();
    let id3 = id.clone();
    let files = web::block(move || history::kept_files(&ex2, &id3))
        .await
        .unwrap_or_default();
    ctx.live = d.summary.outcome == history::Outcome::Warn;
    let replayable = d.summary.session.exchange_type == "catalog"
        && files
            .iter()
            .any(|f| f.path.to_ascii_lowercase().ends_with(".xml"));
    super::html(&ShowPage {
        ctx,
        rows: vec![d.summary],
        requests: d.requests,
        more_requests: d.more_requests,
        jobs: d.jobs,
        files,
        id,
        replayable,
    })
}

async fn download(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "exchanges").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (id, rel) = path.into_inner();
    let ex2 = ex.get_ref().clone();
    let (id2, rel2) = (id.clone(), rel.clone());
    let found = web::block(move || history::kept_file_path(&ex2, &id2, &rel2))
        .await
        .ok()
        .flatten();
    let Some(p) = found else {
        let t = ctx.t("not_found");
        return super::message(ctx.clone(), StatusCode::NOT_FOUND, t, &rel);
    };
    let name = rel.rsplit('/').next().unwrap_or("file").to_string();
    let opened = std::fs::File::open(&p).and_then(|f| Ok((f.metadata()?.len(), f)));
    match opened {
        Ok((len, file)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "download_file",
                Some(format!("{id}/{rel}")),
                None,
                None,
            )
            .await;
            let ascii: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut b = HttpResponse::Ok();
            super::secure_headers(&mut b);
            b.insert_header((header::CONTENT_TYPE, "application/octet-stream"))
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                        super::url_encode(&name)
                    ),
                ))
                .body(actix_web::body::SizedStream::new(
                    len,
                    Box::pin(crate::exchange::handler::file_stream(file)),
                ))
        }
        Err(e) => super::message(
            ctx.clone(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "I/O",
            &e.to_string(),
        ),
    }
}

async fn replay(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let ex2 = ex.get_ref().clone();
    let (id2, user) = (id.clone(), ctx.user_name().to_string());
    let res = web::block(move || history::replay(&ex2, &id2, &user)).await;
    match res {
        Ok(Ok(new_id)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "replay_exchange",
                Some(id.clone()),
                None,
                Some(new_id.clone()),
            )
            .await;
            super::redirect_flash(
                &format!("/exchanges/{new_id}"),
                &format!("{} {new_id}", ctx.t("ex_replayed")),
            )
        }
        Ok(Err(e)) => super::redirect_flash(&format!("/exchanges/{id}"), &e.to_string()),
        Err(e) => super::redirect_flash(&format!("/exchanges/{id}"), &e.to_string()),
    }
}

impl ShowPage {
    /// The import as log lines: queued, started, finished with its counts, or the error with
    /// its line and column.
    fn log(&self, j: &JobRow) -> Vec<(String, String, bool)> {
        let t = |k| self.ctx.t(k);
        let mut out = vec![(
            super::when(j.created_at),
            format!(
                "{}: {} ({}, {})",
                t("log_queued"),
                j.filename,
                j.trigger,
                super::human_bytes(j.bytes)
            ),
            false,
        )];
        if let Some(s) = j.started_at {
            out.push((
                super::when(s),
                format!("{}: {}", t("log_started"), j.filename),
                false,
            ));
        }
        if let Some(f) = j.finished_at {
            if j.state == "failed" {
                let pos = match (j.error_line, j.error_column) {
                    (Some(l), Some(c)) => format!(" ({} {l}, {} {c})", t("log_at"), t("log_col")),
                    _ => String::new(),
                };
                out.push((
                    super::when(f),
                    format!(
                        "{}: {}{pos}",
                        t("log_failed"),
                        j.error.clone().unwrap_or_default()
                    ),
                    true,
                ));
            } else {
                let kind = j.kind.clone().unwrap_or_default();
                let counts = [
                    ("goods_n", j.goods),
                    ("offers_n", j.offers),
                    ("ex_created", j.created),
                    ("ex_updated", j.updated),
                    ("ex_unchanged", j.unchanged),
                    ("ex_deleted", j.deleted),
                ]
                .iter()
                .map(|(k, n)| format!("{} {n}", t(k)))
                .collect::<Vec<_>>()
                .join(", ");
                out.push((
                    super::when(f),
                    format!("{} ({kind}): {counts}", t("log_done")),
                    false,
                ));
            }
        }
        out
    }
}
