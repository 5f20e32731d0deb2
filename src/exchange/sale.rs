//! `type=sale`: the protocol side of the orders round trip (src/orders holds the domain).
//! `query` streams the document from a temporary file (memory does not grow with the number of
//! orders) in the configured charset; `success` commits what this session's last query handed
//! out; `import` applies an uploaded orders file in one transaction; `info` answers the
//! Bitrix-shaped reference book. Uploads of sale sessions that never called `import` are
//! processed by [`process_orphans`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::web;
use diesel::prelude::*;

use super::handler::{unpack_pending, Answer, FileBody};
use super::{paths, xml_files_in, Exchange, SessionRow};
use crate::i18n::Lang;
use crate::orders::cml_out::{Charset, Schema};
use crate::orders::{self, cml_in, StatusMap};
use crate::store::schema::{exchange_sessions, order_imports, uploaded_files};
use crate::store::{now_ms, StoreError};

fn t(lang: Lang, ru: &str, en: &str) -> String {
    lang.pick(ru, en).to_string()
}

fn failure(reason: &str) -> Answer {
    Answer::lines(&["failure", reason])
}

/// `mode=query`: the orders 1C has not confirmed, as a CommerceML document.
pub async fn query(ex: &Arc<Exchange>, session: &SessionRow) -> Answer {
    let lang = ex.lang();
    let charset = Charset::parse(&ex.cfg.orders.encoding);
    let schema = Schema::choose(
        &ex.cfg.orders.schema,
        session.version.as_deref(),
        session.cml_version.as_deref(),
    );
    let dir = ex.cfg.data_dir.join("tmp");
    let path = dir.join(format!("query-{}-{}.xml", session.id, now_ms()));
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let p2 = path.clone();
    let res = web::block(move || -> Result<usize, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let f = std::fs::File::create(&p2).map_err(|e| e.to_string())?;
        let mut c = ex2.pool.get().map_err(|e| e.to_string())?;
        let (_, n) = orders::write_query(
            &mut c,
            &sid,
            std::io::BufWriter::with_capacity(256 * 1024, f),
            charset,
            schema,
            lang,
        )
        .map_err(|e| e.to_string())?;
        Ok(n)
    })
    .await;
    match res {
        Ok(Ok(n)) => {
            tracing::info!(session = %session.id, orders = n, schema = schema.as_str(), "sale query");
            Answer::file(FileBody {
                path,
                content_type: charset.content_type(),
                delete: true,
            })
        }
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&path);
            failure(&match lang {
                Lang::Ru => format!("Не удалось сформировать документ заказов: {e}"),
                Lang::En => format!("Cannot write the orders document: {e}"),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            failure(&e.to_string())
        }
    }
}

/// `mode=success`: commit exactly what this session's last query handed out.
pub async fn success(ex: &Arc<Exchange>, session: &SessionRow) -> Answer {
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let res = web::block(move || -> Result<usize, StoreError> {
        let mut c = ex2.pool.get()?;
        Ok(orders::store::commit_export(&mut c, &sid)?)
    })
    .await;
    match res {
        Ok(Ok(n)) => {
            tracing::info!(session = %session.id, orders = n, "sale success: export committed");
            Answer::lines(&["success"])
        }
        Ok(Err(e)) => failure(&e.to_string()),
        Err(e) => failure(&e.to_string()),
    }
}

/// `mode=info`: statuses, payment systems and delivery services (always windows-1251, as Bitrix).
pub fn info(ex: &Arc<Exchange>) -> Answer {
    let mut a = Answer::lines(&[&orders::info::reference_book_text(
        "windows-1251",
        ex.lang(),
    )]);
    a.xml = true;
    a
}

/// Apply one sale file of a session (after unpacking its archives). Idempotent.
fn apply(
    ex: &Exchange,
    session_id: &str,
    key: &str,
    path: &Path,
) -> Result<cml_in::ImportStats, String> {
    let lang = ex.lang();
    if let Err(e) = unpack_pending(ex, session_id) {
        return Err(e.describe(lang));
    }
    let mut c = ex.pool.get().map_err(|e| e.to_string())?;
    if !path.is_file() {
        return Err(match lang {
            Lang::Ru => format!(
                "Файл {key} не найден на сервере: он не был загружен в этой сессии (mode=file)."
            ),
            Lang::En => {
                format!("File {key} not found on the server: it was not uploaded in this session (mode=file).")
            }
        });
    }
    let map = StatusMap::from_config(&ex.cfg.orders.status_map);
    let res = cml_in::import_file(&mut c, path, session_id, key, &map);
    let state = if res.is_ok() { "imported" } else { "failed" };
    let _ = diesel::update(
        uploaded_files::table
            .filter(uploaded_files::session_id.eq(session_id))
            .filter(uploaded_files::name.eq(key)),
    )
    .set((
        uploaded_files::state.eq(state),
        uploaded_files::updated_at.eq(now_ms()),
    ))
    .execute(&mut c);
    res.map_err(|e| {
        let what = e.describe(lang);
        match lang {
            Lang::Ru => format!("Файл {key}: {what}. Ни один заказ не изменен."),
            Lang::En => format!("File {key}: {what}. No order was changed."),
        }
    })
}

/// `mode=import` for sale: apply the file now (orders files are small; 10 000 documents take
/// well under the 180 s 1C waits) and answer `success` or `failure`.
pub async fn import(ex: &Arc<Exchange>, session: &SessionRow, filename: Option<&str>) -> Answer {
    let lang = ex.lang();
    let Some(raw) = filename.filter(|f| !f.trim().is_empty()) else {
        return failure(&t(
            lang,
            "Не указано имя файла (параметр filename).",
            "No file name given (filename parameter).",
        ));
    };
    let name = match paths::normalize_upload_name(raw, true) {
        Ok(n) => n,
        Err(e) => return failure(&e.describe(lang)),
    };
    let path = name.to_path(&ex.session_dir(&session.id));
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let key = name.key.clone();
    match web::block(move || apply(&ex2, &sid, &key, &path)).await {
        Ok(Ok(st)) => Answer::lines(&["success", &st.line(lang)]),
        Ok(Err(e)) => failure(&e),
        Err(e) => failure(&e.to_string()),
    }
}

/// Sale sessions that uploaded files but never called `import` (old clients; UT11 "send without
/// waiting"): apply their XML files. `quiet_ms`: only sessions idle that long; `client`: only
/// sessions of that address created before the given time (a new checkauth means they are done).
pub fn process_orphans(
    ex: &Exchange,
    quiet_ms: i64,
    client: Option<(&str, i64)>,
) -> Result<usize, StoreError> {
    use exchange_sessions::dsl as s;
    let mut conn = ex.pool.get()?;
    let now = now_ms();
    let mut q = exchange_sessions::table
        .filter(s::exchange_type.eq("sale"))
        .filter(s::closed.eq(false))
        .into_boxed();
    match client {
        Some((addr, before)) => {
            q = q
                .filter(s::client_addr.eq(addr.to_string()))
                .filter(s::created_at.lt(before))
        }
        None => q = q.filter(s::last_seen_at.lt(now - quiet_ms)),
    }
    let sessions: Vec<String> = q.order(s::created_at).select(s::id).load(&mut conn)?;
    let mut applied = 0;
    for sid in sessions {
        let uploads: i64 = uploaded_files::table
            .filter(uploaded_files::session_id.eq(&sid))
            .filter(uploaded_files::state.eq_any(["receiving", "unpacked"]))
            .count()
            .get_result(&mut conn)?;
        if uploads > 0 {
            drop(conn);
            let _ = unpack_pending(ex, &sid);
            conn = ex.pool.get()?;
            let done: Vec<String> = order_imports::table
                .filter(order_imports::session_id.eq(&sid))
                .select(order_imports::filename)
                .load(&mut conn)?;
            let files: Vec<(String, PathBuf)> = xml_files_in(&ex.session_dir(&sid))
                .into_iter()
                .filter(|(n, _)| !done.contains(n))
                .collect();
            for (name, path) in files {
                match apply(ex, &sid, &name, &path) {
                    Ok(st) => {
                        applied += 1;
                        tracing::info!(session = %sid, file = %name, documents = st.documents, changed = st.changed, "applied an orders file sent without import");
                    }
                    Err(e) => {
                        tracing::warn!(session = %sid, file = %name, error = %e, "orders file sent without import failed")
                    }
                }
            }
        }
        diesel::update(exchange_sessions::table.filter(s::id.eq(&sid)))
            .set(s::closed.eq(true))
            .execute(&mut conn)?;
    }
    Ok(applied)
}
