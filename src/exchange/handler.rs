//! The HTTP edge of the exchange: one handler for every mode, answers exactly as 1C reads them
//! (HTTP 200, non-empty body, first line `success` / `progress` / `failure`, charset declared,
//! no BOM). Every request is journaled.

use crate::per_backend;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use futures_util::StreamExt;

use super::jobs::JobState;
use super::query::Params;
use super::{auth, paths, random_token, zipx, Exchange, SessionRow, UploadRow};
use crate::catalog;
use crate::i18n::Lang;
use crate::store::schema::{exchange_requests, exchange_sessions, uploaded_files};
use crate::store::{now_ms, Conn, StoreError};

/// An answer as 1C reads it.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub www_authenticate: bool,
    /// An XML document (sale query) rather than text lines.
    pub xml: bool,
    /// A body streamed from a file (the sale query document), already encoded.
    pub file: Option<FileBody>,
}

/// A response body read from a file.
pub struct FileBody {
    pub path: std::path::PathBuf,
    pub content_type: &'static str,
    /// Remove the file once it is open (a temporary document).
    pub delete: bool,
}

impl Answer {
    pub(crate) fn lines(lines: &[&str]) -> Answer {
        Answer {
            status: 200,
            body: lines.join("\n"),
            www_authenticate: false,
            xml: false,
            file: None,
        }
    }
    pub(crate) fn file(body: FileBody) -> Answer {
        Answer {
            file: Some(body),
            xml: true,
            ..Answer::lines(&["success"])
        }
    }
    fn success(detail: &str) -> Answer {
        if detail.is_empty() {
            Answer::lines(&["success"])
        } else {
            Answer::lines(&["success", detail])
        }
    }
    fn progress(detail: &str) -> Answer {
        Answer::lines(&["progress", detail])
    }
    fn failure(reason: &str) -> Answer {
        Answer::lines(&["failure", reason])
    }
}

/// Encode a text answer in windows-1251 (characters it lacks become numeric references).
fn encode_text(body: &str) -> Vec<u8> {
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(body);
    bytes.into_owned()
}

/// An open file as a response body: 64 KiB reads on the blocking pool, never the whole file in
/// memory.
pub(crate) fn file_stream(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let res = web::block(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, file))
        })
        .await;
        match res {
            Ok(Ok((buf, _))) if buf.is_empty() => None,
            Ok(Ok((buf, file))) => Some((Ok(web::Bytes::from(buf)), Some(file))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    })
}

/// Stream a file body with its length.
fn respond_file(f: &FileBody) -> Option<HttpResponse> {
    let file = std::fs::File::open(&f.path).ok()?;
    let len = file.metadata().ok()?.len();
    if f.delete {
        // The open handle keeps the data readable (unix); nothing is left behind.
        let _ = std::fs::remove_file(&f.path);
    }
    let stream = file_stream(file);
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, f.content_type))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("Pragma", "no-cache"))
            .body(actix_web::body::SizedStream::new(len, Box::pin(stream))),
    )
}

fn respond(a: &Answer) -> HttpResponse {
    if let Some(f) = &a.file {
        if let Some(r) = respond_file(f) {
            return r;
        }
        return respond(&Answer::failure("cannot read the generated document"));
    }
    let mut b = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(a.status).unwrap_or(actix_web::http::StatusCode::OK),
    );
    let ctype = if a.xml {
        "application/xml; charset=windows-1251"
    } else {
        "text/plain; charset=windows-1251"
    };
    b.insert_header((header::CONTENT_TYPE, ctype))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Pragma", "no-cache"));
    if a.www_authenticate {
        b.insert_header((
            header::WWW_AUTHENTICATE,
            "Basic realm=\"1C exchange\", charset=\"UTF-8\"",
        ));
    }
    let body = if a.body.is_empty() {
        "failure".to_string()
    } else {
        a.body.clone()
    };
    b.body(encode_text(&body))
}

/// How much of a session's file names is kept on the session for the history's search.
pub const FILES_KEPT_BYTES: usize = 8 * 1024;

/// Facts about a request for the journal.
struct Journal {
    started: Instant,
    client: String,
    method: String,
    typ: Option<String>,
    mode: Option<String>,
    filename: Option<String>,
    session: Option<String>,
    bytes: u64,
}

fn record(ex: &Exchange, j: &Journal, a: &Answer) {
    let mut lines = a.body.splitn(2, '\n');
    let first = lines.next().unwrap_or("").to_string();
    let detail = lines
        .next()
        .map(|d| d.chars().take(2000).collect::<String>());
    let row = (
        exchange_requests::session_id.eq(j.session.clone()),
        exchange_requests::at.eq(now_ms()),
        exchange_requests::client_addr.eq(j.client.clone()),
        exchange_requests::method.eq(j.method.clone()),
        exchange_requests::exchange_type.eq(j.typ.clone()),
        exchange_requests::mode.eq(j.mode.clone()),
        exchange_requests::filename.eq(j.filename.clone()),
        exchange_requests::bytes.eq(j.bytes as i64),
        exchange_requests::http_status.eq(a.status as i32),
        exchange_requests::answer.eq(first.chars().take(200).collect::<String>()),
        exchange_requests::detail.eq(detail),
        exchange_requests::duration_ms.eq(j.started.elapsed().as_millis() as i64),
    );
    let res = ex.pool.get().map_err(StoreError::from).and_then(|mut c| {
        if let Some(sid) = &j.session {
            let _ = diesel::update(exchange_sessions::table.filter(exchange_sessions::id.eq(sid)))
                .set(exchange_sessions::last_seen_at.eq(now_ms()))
                .execute(&mut c);
            if first == "failure" {
                let _ = diesel::update(exchange_sessions::table.find(sid))
                    .set(exchange_sessions::failed.eq(true))
                    .execute(&mut c);
            }
            // The session's file names, for the history's search (once per name; the first
            // FILES_KEPT_BYTES of them: UT 11 sends each of thousands of images on its own).
            if let (Some(name), Some("file" | "import")) = (&j.filename, j.mode.as_deref()) {
                let files: Option<String> = exchange_sessions::table
                    .find(sid)
                    .select(exchange_sessions::files)
                    .first(&mut c)
                    .optional()
                    .unwrap_or(None);
                if let Some(files) = files
                    .filter(|f| f.len() + name.len() < FILES_KEPT_BYTES)
                    .filter(|f| !f.lines().any(|l| l == name))
                {
                    let joined = if files.is_empty() {
                        name.clone()
                    } else {
                        format!("{files}\n{name}")
                    };
                    let _ = diesel::update(exchange_sessions::table.find(sid))
                        .set(exchange_sessions::files.eq(joined))
                        .execute(&mut c);
                }
            }
        }
        diesel::insert_into(exchange_requests::table)
            .values(row)
            .execute(&mut c)
            .map_err(StoreError::from)
    });
    if let Err(e) = res {
        tracing::error!(error = %e, "cannot journal an exchange request");
    }
    crate::metrics::exchange_request(
        j.typ.as_deref().unwrap_or(""),
        j.mode.as_deref().unwrap_or(""),
        &first,
    );
    tracing::info!(
        client = %j.client,
        r#type = j.typ.as_deref().unwrap_or(""),
        mode = j.mode.as_deref().unwrap_or(""),
        filename = j.filename.as_deref().unwrap_or(""),
        bytes = j.bytes,
        answer = %first,
        ms = j.started.elapsed().as_millis() as u64,
        "1c exchange"
    );
}

fn t(lang: Lang, ru: &str, en: &str) -> String {
    lang.pick(ru, en).to_string()
}

/// The actix entry point for `/1c_exchange.php`, `/bitrix/admin/1c_exchange.php` and `/exchange`.
pub async fn exchange_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ex: Arc<Exchange> = ex.get_ref().clone();
    let mut j = Journal {
        started: Instant::now(),
        client: crate::web::client_addr(&req, &ex.cfg.server),
        method: req.method().to_string(),
        typ: None,
        mode: None,
        filename: None,
        session: None,
        bytes: 0,
    };
    let answer = handle(&req, payload, &ex, &mut j).await;
    let ex2 = ex.clone();
    let response = respond(&answer);
    let _ = web::block(move || record(&ex2, &j, &answer)).await;
    response
}

async fn handle(
    req: &HttpRequest,
    mut payload: web::Payload,
    ex: &Arc<Exchange>,
    j: &mut Journal,
) -> Answer {
    let lang = ex.lang();
    // 1C sends GET and POST only; anything else (PUT, DELETE, …) is refused before any effect.
    if !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::POST
    ) {
        return Answer::failure(&match lang {
            Lang::Ru => format!(
                "Метод {} не поддерживается: обмен принимает только GET и POST.",
                req.method()
            ),
            Lang::En => format!(
                "Method {} is not supported: the exchange accepts GET and POST only.",
                req.method()
            ),
        });
    }
    let mut params = match Params::parse(req.query_string()) {
        Ok(p) => p,
        Err(e) => return Answer::failure(&e.describe(lang)),
    };
    // type/mode may come in an urlencoded body (never for mode=file, whose body is the file).
    let needs_body_params =
        params.get("mode").ok().flatten().is_none() || params.get("type").ok().flatten().is_none();
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if needs_body_params && is_form && req.method() == actix_web::http::Method::POST {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else { break };
            if body.len() + chunk.len() > 64 * 1024 {
                return Answer::failure(&t(lang, "Слишком большой запрос.", "Request too large."));
            }
            body.extend_from_slice(&chunk);
        }
        j.bytes = body.len() as u64;
        match Params::parse_body(&body) {
            Ok(b) => params = params.merge(b),
            Err(e) => return Answer::failure(&e.describe(lang)),
        }
    }
    let get = |k: &str| params.get(k).map(|v| v.map(|s| s.to_string()));
    let (typ, mode, filename) = match (get("type"), get("mode"), get("filename")) {
        (Ok(t), Ok(m), Ok(f)) => (
            t.map(|s| s.trim().to_lowercase()),
            m.map(|s| s.trim().to_lowercase()),
            f,
        ),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return Answer::failure(&e.describe(lang))
        }
    };
    j.typ = typ.clone();
    j.mode = mode.clone();
    j.filename = filename.clone();
    let typ = typ.unwrap_or_default();
    let mode = mode.unwrap_or_default();
    if !matches!(typ.as_str(), "catalog" | "sale" | "reference") {
        return unknown(lang, &typ, &mode);
    }

    // --- authentication ---------------------------------------------------------------------
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::parse_basic);
    let basic_ok = basic.as_ref().map(|(l, p)| {
        let creds = (l.clone(), p.clone());
        (creds.0.clone(), ex.creds.verify(&creds.0, &creds.1))
    });
    // A password was presented: the address's lockout decides first, then the count.
    if let Some((_, ok)) = &basic_ok {
        if let Some(refusal) = password_gate(ex, &j.client, *ok).await {
            return refusal;
        }
    }
    if mode == "checkauth" {
        return match basic_ok {
            None => Answer {
                status: 401,
                body: format!(
                    "failure\n{}",
                    t(lang, "Требуется авторизация.", "Authorization required.")
                ),
                www_authenticate: true,
                xml: false,
                file: None,
            },
            Some((_, false)) => Answer::failure(&t(
                lang,
                "Ошибка авторизации. Неверное имя пользователя или пароль.",
                "Authorization failed: wrong user name or password.",
            )),
            Some((login, true)) => checkauth(ex, req, &typ, &login, j).await,
        };
    }
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| auth::cookie_value(c, &ex.cfg.exchange.cookie_name));
    let session = match authorize(ex, cookie.as_deref(), basic_ok.as_ref(), &typ, &j.client).await {
        Ok(s) => s,
        Err(reason) => return Answer::failure(&reason),
    };
    j.session = Some(session.id.clone());

    match mode.as_str() {
        "init" => init(ex, &session, &params).await,
        "file" => file(ex, &session, filename.as_deref(), req, payload, j).await,
        "import" if typ == "sale" => super::sale::import(ex, &session, filename.as_deref()).await,
        "import" => import(ex, &session, filename.as_deref()).await,
        "deactivate" if typ == "catalog" => deactivate(ex, &params).await,
        "complete" => {
            let ex2 = ex.clone();
            let sid = session.id.clone();
            let _ = web::block(move || -> Result<(), StoreError> {
                let mut c = ex2.pool.get()?;
                diesel::update(exchange_sessions::table.filter(exchange_sessions::id.eq(sid)))
                    .set(exchange_sessions::closed.eq(true))
                    .execute(&mut c)?;
                Ok(())
            })
            .await;
            Answer::success(&t(lang, "Обмен завершен.", "Exchange complete."))
        }
        "query" if typ == "sale" => super::sale::query(ex, &session).await,
        "success" if typ == "sale" => super::sale::success(ex, &session).await,
        "info" if typ == "sale" => super::sale::info(ex),
        _ => unknown(lang, &typ, &mode),
    }
}

/// The lockout after wrong passwords (see `lockout`): a refusal when `addr` is locked (whatever
/// the password) or this wrong password locks it; otherwise counts a wrong password, or clears
/// the count on the right one, and lets the request go on.
async fn password_gate(ex: &Arc<Exchange>, addr: &str, ok: bool) -> Option<Answer> {
    let lang = ex.lang();
    let (lock_after, lock_ms) = (
        ex.cfg.exchange.lock_after,
        (ex.cfg.exchange.lock_minutes as i64).saturating_mul(60_000),
    );
    if lock_after == 0 {
        return None;
    }
    let ex2 = ex.clone();
    let addr2 = addr.to_string();
    // (locked until, whether this request locked it)
    let res = web::block(move || -> Result<Option<(i64, bool)>, StoreError> {
        let mut c = ex2.pool.get()?;
        let now = now_ms();
        if let Some(until) = super::lockout::locked_until(&mut c, &addr2, now)? {
            return Ok(Some((until, false)));
        }
        if ok {
            super::lockout::succeeded(&mut c, &addr2)?;
            Ok(None)
        } else {
            let lock = super::lockout::failed(&mut c, &addr2, now, lock_after, lock_ms)?;
            Ok(lock.map(|until| (until, true)))
        }
    })
    .await;
    match res {
        Ok(Ok(Some((until, now_locked)))) => {
            if now_locked {
                tracing::warn!(addr = %addr, lock_after, "exchange: address locked after repeated wrong passwords");
            }
            let at = crate::web::dash::when(until);
            Some(Answer::failure(&match lang {
                Lang::Ru => format!(
                    "Слишком много неверных паролей с адреса {addr}: вход заблокирован до {at}."
                ),
                Lang::En => format!(
                    "Too many wrong passwords from {addr}: signing in is locked until {at}."
                ),
            }))
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => Some(Answer::failure(&db_failure(lang, &e))),
        Err(e) => Some(Answer::failure(&e.to_string())),
    }
}

fn unknown(lang: Lang, typ: &str, mode: &str) -> Answer {
    let detail = match lang {
        Lang::Ru => format!("Неизвестная команда: type={typ}, mode={mode}."),
        Lang::En => format!("Unknown command: type={typ}, mode={mode}."),
    };
    Answer::lines(&["failure", "Unknown command.", &detail])
}

async fn checkauth(
    ex: &Arc<Exchange>,
    req: &HttpRequest,
    typ: &str,
    login: &str,
    j: &mut Journal,
) -> Answer {
    let id = random_token(32);
    let sessid = random_token(32);
    let now = now_ms();
    let ts = now / 1000;
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let ex2 = ex.clone();
    let (id2, sessid2, typ2, login2, client) = (
        id.clone(),
        sessid.clone(),
        typ.to_string(),
        login.to_string(),
        j.client.clone(),
    );
    let res = web::block(move || -> Result<(), StoreError> {
        let mut c = ex2.pool.get()?;
        diesel::insert_into(exchange_sessions::table)
            .values((
                exchange_sessions::id.eq(&id2),
                exchange_sessions::sessid.eq(&sessid2),
                exchange_sessions::exchange_type.eq(&typ2),
                exchange_sessions::client_addr.eq(&client),
                exchange_sessions::user_agent.eq(ua),
                exchange_sessions::login.eq(&login2),
                exchange_sessions::created_at.eq(now),
                exchange_sessions::last_seen_at.eq(now),
                exchange_sessions::auth_timestamp.eq(ts),
                exchange_sessions::zip.eq(ex2.cfg.exchange.zip),
                exchange_sessions::file_limit.eq(ex2.cfg.exchange.file_limit as i64),
            ))
            .execute(&mut c)?;
        Ok(())
    })
    .await;
    match res {
        Ok(Ok(())) => {
            // Earlier sessions of this client that uploaded files but never called import are
            // complete now: process them (UT11 "send files without waiting"). In the background:
            // unpacking their archives must not delay this answer.
            let ex3 = ex.clone();
            let client = j.client.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = super::queue_orphan_uploads(&ex3, 0, Some((&client, now))) {
                    tracing::warn!(error = %e, "cannot queue the uploads of earlier sessions");
                }
                if let Err(e) = super::sale::process_orphans(&ex3, 0, Some((&client, now))) {
                    tracing::warn!(error = %e, "cannot apply the orders files of earlier sessions");
                }
            });
            j.session = Some(id.clone());
            Answer::lines(&[
                "success",
                &ex.cfg.exchange.cookie_name,
                &id,
                &format!("sessid={sessid}"),
                &format!("timestamp={ts}"),
            ])
        }
        Ok(Err(e)) => Answer::failure(&db_failure(ex.lang(), &e)),
        Err(e) => Answer::failure(&e.to_string()),
    }
}

fn db_failure(lang: Lang, e: &StoreError) -> String {
    match lang {
        Lang::Ru => format!("Внутренняя ошибка сервера: {e}"),
        Lang::En => format!("Internal server error: {e}"),
    }
}

/// A later request is authorised by a known session cookie, or by valid Basic credentials (then a
/// session is made on the fly, keeping the cookie's id if one was sent, so a restarted server or
/// another instance does not break an exchange in progress).
async fn authorize(
    ex: &Arc<Exchange>,
    cookie: Option<&str>,
    basic: Option<&(String, bool)>,
    typ: &str,
    client: &str,
) -> Result<SessionRow, String> {
    let lang = ex.lang();
    if let Some((_, false)) = basic {
        return Err(t(
            lang,
            "Ошибка авторизации. Неверное имя пользователя или пароль.",
            "Authorization failed: wrong user name or password.",
        ));
    }
    let ex2 = ex.clone();
    let cookie = cookie.map(|c| c.to_string());
    let basic_login = basic.and_then(|(l, ok)| ok.then(|| l.clone()));
    let typ = typ.to_string();
    let client = client.to_string();
    let res = web::block(move || -> Result<Result<SessionRow, String>, StoreError> {
        let mut c = ex2.pool.get()?;
        if let Some(id) = &cookie {
            if let Some(s) = exchange_sessions::table
                .filter(exchange_sessions::id.eq(id))
                .select(SessionRow::as_select())
                .first::<SessionRow>(&mut c)
                .optional()?
            {
                return Ok(Ok(s));
            }
        }
        let Some(login) = basic_login else {
            return Ok(Err(match (&cookie, lang) {
                (Some(_), Lang::Ru) => "Сессия обмена не найдена или устарела. Выполните авторизацию (mode=checkauth) заново.".into(),
                (Some(_), Lang::En) => "Unknown or expired exchange session. Authorize again (mode=checkauth).".into(),
                (None, Lang::Ru) => "Требуется авторизация: нет ни cookie сессии, ни имени пользователя и пароля.".into(),
                (None, Lang::En) => "Authorization required: neither a session cookie nor a user name and password.".into(),
            }));
        };
        let id = cookie
            .filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| random_token(32));
        let now = now_ms();
        per_backend!(&mut c, |c| {
            diesel::insert_into(exchange_sessions::table)
                .values((
                    exchange_sessions::id.eq(&id),
                    exchange_sessions::sessid.eq(random_token(32)),
                    exchange_sessions::exchange_type.eq(&typ),
                    exchange_sessions::client_addr.eq(&client),
                    exchange_sessions::login.eq(&login),
                    exchange_sessions::created_at.eq(now),
                    exchange_sessions::last_seen_at.eq(now),
                    exchange_sessions::auth_timestamp.eq(now / 1000),
                    exchange_sessions::zip.eq(ex2.cfg.exchange.zip),
                    exchange_sessions::file_limit.eq(ex2.cfg.exchange.file_limit as i64),
                ))
                .on_conflict_do_nothing()
                .execute(c)
        })?;
        Ok(Ok(exchange_sessions::table
            .filter(exchange_sessions::id.eq(&id))
            .select(SessionRow::as_select())
            .first::<SessionRow>(&mut c)?))
    })
    .await;
    match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(db_failure(lang, &e)),
        Err(e) => Err(e.to_string()),
    }
}

async fn init(ex: &Arc<Exchange>, session: &SessionRow, params: &Params) -> Answer {
    let version = params
        .get("version")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let cml_version = params
        .get("cmlVersion")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let (v2, c2) = (version.clone(), cml_version.clone());
    let res = web::block(move || -> Result<(), StoreError> {
        let mut c = ex2.pool.get()?;
        // A fresh start for this session's uploads (as Bitrix empties its folder): uploaded
        // and unpacked files go, so a file sent again is not appended to the earlier one.
        // Files an unfinished import job still reads stay (a re-sent file of that name
        // replaces it, see `file`).
        fresh_upload_set(&ex2, &mut c, &sid)?;
        diesel::update(exchange_sessions::table.filter(exchange_sessions::id.eq(&sid)))
            .set((
                exchange_sessions::initialized.eq(true),
                exchange_sessions::version.eq(v2),
                exchange_sessions::cml_version.eq(c2),
                exchange_sessions::zip.eq(ex2.cfg.exchange.zip),
                exchange_sessions::file_limit.eq(ex2.cfg.exchange.file_limit as i64),
            ))
            .execute(&mut c)?;
        Ok(())
    })
    .await;
    if let Ok(Err(e)) = res {
        return Answer::failure(&db_failure(ex.lang(), &e));
    }
    let zip = format!("zip={}", if ex.cfg.exchange.zip { "yes" } else { "no" });
    let limit = format!("file_limit={}", ex.cfg.exchange.file_limit);
    match version {
        // UT11 requires exactly two lines; extra lines only when the client sent `version`.
        None => Answer::lines(&[&zip, &limit]),
        Some(v) => {
            let echo = negotiate_version(&v);
            Answer::lines(&[
                &zip,
                &limit,
                &format!("sessid={}", session.sessid),
                &format!("version={echo}"),
            ])
        }
    }
}

/// Empty the session's upload area for a new upload set (`mode=init`): every file except those
/// an unfinished import job reads, the upload records, and the (session, file) keys of finished
/// import jobs, which are renamed so that a file of the same name sent again is imported again
/// (the journal keeps them).
pub fn fresh_upload_set(ex: &Exchange, c: &mut Conn, session_id: &str) -> Result<(), StoreError> {
    use crate::store::schema::import_jobs;
    let active: std::collections::HashSet<std::path::PathBuf> = import_jobs::table
        .filter(import_jobs::session_id.eq(session_id))
        .filter(import_jobs::state.eq_any(["queued", "running"]))
        .select(import_jobs::path)
        .load::<String>(c)?
        .into_iter()
        .map(std::path::PathBuf::from)
        .collect();
    let dir = ex.session_dir(session_id);
    if dir.is_dir() {
        if let Err(e) = remove_tree_except(&dir, &active) {
            tracing::warn!(session = %session_id, error = %e, "cannot empty the upload folder at init");
        }
    }
    diesel::delete(uploaded_files::table.filter(uploaded_files::session_id.eq(session_id)))
        .execute(c)?;
    let now = now_ms();
    diesel::update(
        import_jobs::table
            .filter(import_jobs::session_id.eq(session_id))
            .filter(import_jobs::state.eq_any(["done", "failed"])),
    )
    .set(import_jobs::filename.eq(import_jobs::filename.concat(format!(" (before init {now})"))))
    .execute(c)?;
    Ok(())
}

/// Remove everything under `dir` except the files in `keep` (and the folders holding them).
fn remove_tree_except(
    dir: &Path,
    keep: &std::collections::HashSet<std::path::PathBuf>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            remove_tree_except(&p, keep)?;
            let _ = std::fs::remove_dir(&p); // fails while something kept is inside
        } else if !keep.contains(&p) {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// The schema version answered to a versioned init: what the client asked, capped at 3.1.
pub fn negotiate_version(requested: &str) -> String {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next().unwrap_or("0").parse().ok()?;
        Some((major, minor))
    };
    match parse(requested) {
        Some((major, minor)) if (major, minor) <= (3, 1) && major >= 2 => {
            requested.trim().to_string()
        }
        _ => "3.1".to_string(),
    }
}

async fn file(
    ex: &Arc<Exchange>,
    session: &SessionRow,
    filename: Option<&str>,
    req: &HttpRequest,
    mut payload: web::Payload,
    j: &mut Journal,
) -> Answer {
    let lang = ex.lang();
    let Some(raw) = filename.filter(|f| !f.trim().is_empty()) else {
        return Answer::failure(&t(
            lang,
            "Не указано имя файла (параметр filename).",
            "No file name given (filename parameter).",
        ));
    };
    let name = match paths::normalize_upload_name(raw, session.exchange_type == "sale") {
        Ok(n) => n,
        Err(e) => return Answer::failure(&e.describe(lang)),
    };
    let limit = ex.cfg.max_body();
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Answer::failure(&too_large(lang, len, limit));
        }
    }
    let dir = ex.session_dir(&session.id);
    let path = name.to_path(&dir);
    if let Some(parent) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return Answer::failure(&io_failure(lang, &e));
        }
    }
    if path.is_dir() {
        return Answer::failure(&t(
            lang,
            "Имя файла совпадает с именем папки.",
            "The file name is a folder name.",
        ));
    }
    // Chunks of one file are appended, but the first chunk of a file in this upload set (no
    // record yet: a new session, or `init` started a new set) replaces whatever is on disk
    // under that name. Unlinking rather than truncating: an import job still reading an
    // earlier file of that name keeps its own copy.
    let ex2 = ex.clone();
    let (sid, key) = (session.id.clone(), name.key.clone());
    let known = web::block(move || -> Result<bool, StoreError> {
        let mut c = ex2.pool.get()?;
        let n: i64 = uploaded_files::table
            .filter(uploaded_files::session_id.eq(&sid))
            .filter(uploaded_files::name.eq(&key))
            .count()
            .get_result(&mut c)?;
        Ok(n > 0)
    })
    .await;
    match known {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            if path.is_file() {
                if let Err(e) = std::fs::remove_file(&path) {
                    return Answer::failure(&io_failure(lang, &e));
                }
            }
        }
        Ok(Err(e)) => return Answer::failure(&db_failure(lang, &e)),
        Err(e) => return Answer::failure(&e.to_string()),
    }
    let previous = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut f = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => return Answer::failure(&io_failure(lang, &e)),
    };
    let mut written: u64 = 0;
    let mut first_bytes = Vec::new();
    let mut failure: Option<String> = None;
    // A client that stops sending (or trickles a byte now and then: slowloris) is cut off after
    // `upload_idle_secs` without data, so it cannot hold a worker and a file open for ever.
    let idle = Duration::from_secs(ex.cfg.exchange.upload_idle_secs.max(1));
    loop {
        let next = match tokio::time::timeout(idle, payload.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_) => {
                failure = Some(match lang {
                    Lang::Ru => format!(
                        "Файл получен не полностью: за {} с не пришло ни одного байта.",
                        idle.as_secs()
                    ),
                    Lang::En => format!(
                        "The upload was interrupted: no data for {} s.",
                        idle.as_secs()
                    ),
                });
                break;
            }
        };
        let chunk = match next {
            Ok(c) => c,
            Err(e) => {
                failure = Some(match lang {
                    Lang::Ru => format!("Файл получен не полностью: {e}"),
                    Lang::En => format!("The upload was interrupted: {e}"),
                });
                break;
            }
        };
        written += chunk.len() as u64;
        if written > limit {
            failure = Some(too_large(lang, written, limit));
            break;
        }
        if first_bytes.len() < 4 {
            first_bytes.extend_from_slice(&chunk[..chunk.len().min(4 - first_bytes.len())]);
        }
        if let Err(e) = f.write_all(&chunk) {
            failure = Some(io_failure(lang, &e));
            break;
        }
    }
    j.bytes = written;
    if let Some(reason) = failure {
        // Nothing of a refused chunk stays: cut the file back to what it was.
        let _ = f.set_len(previous);
        if previous == 0 {
            let _ = std::fs::remove_file(&path);
        }
        return Answer::failure(&reason);
    }
    drop(f);
    let is_archive = name.key.to_ascii_lowercase().ends_with(".zip")
        || (previous == 0 && first_bytes.starts_with(b"PK\x03\x04"));
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let key = name.key.clone();
    let original = raw.to_string();
    let stored = path.to_string_lossy().into_owned();
    let res = web::block(move || -> Result<(), StoreError> {
        let mut c = ex2.pool.get()?;
        let now = now_ms();
        per_backend!(&mut c, |c| {
            diesel::insert_into(uploaded_files::table)
                .values((
                    uploaded_files::session_id.eq(&sid),
                    uploaded_files::name.eq(&key),
                    uploaded_files::original_name.eq(&original),
                    uploaded_files::stored_path.eq(&stored),
                    uploaded_files::bytes.eq(written as i64),
                    uploaded_files::chunks.eq(1),
                    uploaded_files::is_archive.eq(is_archive),
                    uploaded_files::state.eq("receiving"),
                    uploaded_files::created_at.eq(now),
                    uploaded_files::updated_at.eq(now),
                ))
                .on_conflict((uploaded_files::session_id, uploaded_files::name))
                .do_update()
                .set((
                    uploaded_files::bytes.eq(uploaded_files::bytes + written as i64),
                    uploaded_files::chunks.eq(uploaded_files::chunks + 1),
                    uploaded_files::updated_at.eq(now),
                ))
                .execute(c)
        })?;
        Ok(())
    })
    .await;
    match res {
        Ok(Ok(())) => Answer::success(""),
        Ok(Err(e)) => Answer::failure(&db_failure(lang, &e)),
        Err(e) => Answer::failure(&e.to_string()),
    }
}

fn too_large(lang: Lang, got: u64, limit: u64) -> String {
    match lang {
        Lang::Ru => format!("Слишком большой запрос: {got} байт при ограничении {limit} байт. Уменьшите размер порции (file_limit)."),
        Lang::En => format!("Request too large: {got} bytes, the limit is {limit} bytes. Lower the chunk size (file_limit)."),
    }
}

fn io_failure(lang: Lang, e: &std::io::Error) -> String {
    match lang {
        Lang::Ru => format!("Ошибка записи файла на сервере: {e}"),
        Lang::En => format!("Cannot write the file on the server: {e}"),
    }
}

/// Claim the session's archives that wait to be unpacked: one conditional update
/// (`receiving` → `unpacking`), so that of concurrent callers (two `mode=import` requests, the
/// auto-import sweep) exactly one gets each archive.
pub fn claim_archives(conn: &mut Conn, session_id: &str) -> Result<Vec<UploadRow>, StoreError> {
    let mut rows: Vec<UploadRow> = per_backend!(conn, |c| diesel::update(
        uploaded_files::table
            .filter(uploaded_files::session_id.eq(session_id))
            .filter(uploaded_files::is_archive.eq(true))
            .filter(uploaded_files::state.eq("receiving")),
    )
    .set((
        uploaded_files::state.eq("unpacking"),
        uploaded_files::updated_at.eq(now_ms()),
    ))
    .returning(UploadRow::as_returning())
    .get_results(c))?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Archives left `unpacking` by a process that died mid-unpack are claimable again (an unpack
/// leaves nothing partial behind, so it can simply run again).
pub fn reset_interrupted_unpacks(conn: &mut Conn) -> Result<usize, StoreError> {
    Ok(
        diesel::update(uploaded_files::table.filter(uploaded_files::state.eq("unpacking")))
            .set(uploaded_files::state.eq("receiving"))
            .execute(conn)?,
    )
}

fn zip_limits(ex: &Exchange) -> zipx::ZipLimits {
    zipx::ZipLimits {
        max_total_bytes: ex.cfg.exchange.zip_max_total_bytes,
        max_entries: ex.cfg.exchange.zip_max_entries,
        max_ratio: ex.cfg.exchange.zip_max_ratio,
        ..Default::default()
    }
}

fn zip_db_error(e: StoreError) -> zipx::ZipError {
    zipx::ZipError::Io(std::io::Error::other(e.to_string()))
}

/// Unpack archives claimed by [`claim_archives`]. No database connection is held while an
/// archive is unpacked; one is taken briefly to record each outcome. Every claimed archive is
/// processed (one failing archive does not leave the others pending); the first error is
/// returned. Returns how many were unpacked.
pub fn unpack_claimed(
    ex: &Exchange,
    session_id: &str,
    archives: Vec<UploadRow>,
) -> Result<usize, zipx::ZipError> {
    let dir = ex.session_dir(session_id);
    let limits = zip_limits(ex);
    let mut unpacked = 0;
    let mut first_error = None;
    for a in archives {
        let result = zipx::unpack(Path::new(&a.stored_path), &dir, &limits);
        let (state, error) = match &result {
            Ok(r) => {
                tracing::info!(session = %session_id, archive = %a.name, files = r.files.len(), bytes = r.bytes, "archive unpacked");
                ("unpacked", None)
            }
            Err(e) => {
                tracing::warn!(session = %session_id, archive = %a.name, error = %e, "archive refused");
                ("failed", Some(e.describe(ex.lang())))
            }
        };
        let recorded = ex.pool.get().map_err(StoreError::from).and_then(|mut c| {
            diesel::update(uploaded_files::table.filter(uploaded_files::id.eq(a.id)))
                .set((
                    uploaded_files::state.eq(state),
                    uploaded_files::error.eq(error),
                    uploaded_files::updated_at.eq(now_ms()),
                ))
                .execute(&mut c)
                .map_err(StoreError::from)
        });
        match (result, recorded) {
            (Ok(_), Ok(_)) => unpacked += 1,
            (Err(e), _) => {
                first_error.get_or_insert(e);
            }
            (Ok(_), Err(e)) => {
                first_error.get_or_insert(zip_db_error(e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(unpacked),
    }
}

/// Claim and unpack the session's pending archives (for callers off the async runtime).
/// Returns how many were unpacked.
pub fn unpack_pending(ex: &Exchange, session_id: &str) -> Result<usize, zipx::ZipError> {
    let claimed = {
        let mut c = ex.pool.get().map_err(|e| zip_db_error(e.into()))?;
        claim_archives(&mut c, session_id).map_err(zip_db_error)?
    };
    if claimed.is_empty() {
        return Ok(0);
    }
    unpack_claimed(ex, session_id, claimed)
}

/// What the session's archives allow an import to do.
#[derive(Debug, PartialEq, Eq)]
pub enum ArchivesState {
    /// Nothing pending, nothing failed.
    Ready,
    /// Another request is unpacking one.
    Unpacking,
    /// One could not be unpacked: why.
    Failed(String),
}

pub fn archives_state(conn: &mut Conn, session_id: &str) -> Result<ArchivesState, StoreError> {
    let rows: Vec<(String, Option<String>)> = uploaded_files::table
        .filter(uploaded_files::session_id.eq(session_id))
        .filter(uploaded_files::is_archive.eq(true))
        .filter(uploaded_files::state.eq_any(["unpacking", "failed"]))
        .order(uploaded_files::id)
        .select((uploaded_files::state, uploaded_files::error))
        .load(conn)?;
    if let Some((_, e)) = rows.iter().find(|(s, _)| s == "failed") {
        return Ok(ArchivesState::Failed(e.clone().unwrap_or_default()));
    }
    if !rows.is_empty() {
        return Ok(ArchivesState::Unpacking);
    }
    Ok(ArchivesState::Ready)
}

async fn import(ex: &Arc<Exchange>, session: &SessionRow, filename: Option<&str>) -> Answer {
    let lang = ex.lang();
    let Some(raw) = filename.filter(|f| !f.trim().is_empty()) else {
        return Answer::failure(&t(
            lang,
            "Не указано имя файла (параметр filename).",
            "No file name given (filename parameter).",
        ));
    };
    let name = match paths::normalize_upload_name(raw, session.exchange_type == "sale") {
        Ok(n) => n,
        Err(e) => return Answer::failure(&e.describe(lang)),
    };
    let wait = Duration::from_secs(ex.cfg.exchange.import_wait_secs);

    // 1. An archive is unpacked at the first import call, which answers `progress`. The archive
    //    is claimed atomically, so only one caller unpacks it; the unpack runs on the blocking
    //    pool without a database connection, and the answer waits for it at most `wait` (it
    //    goes on in the background; later calls answer `progress` until it is done).
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let claimed = web::block(move || -> Result<Vec<UploadRow>, StoreError> {
        let mut c = ex2.pool.get()?;
        claim_archives(&mut c, &sid)
    })
    .await;
    let claimed = match claimed {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return Answer::failure(&db_failure(lang, &e)),
        Err(e) => return Answer::failure(&e.to_string()),
    };
    if !claimed.is_empty() {
        let ex2 = ex.clone();
        let sid = session.id.clone();
        let unpack = tokio::task::spawn_blocking(move || unpack_claimed(&ex2, &sid, claimed));
        return match tokio::time::timeout(wait, unpack).await {
            Ok(Ok(Ok(_))) => Answer::progress(&t(
                lang,
                "Распаковка архива завершена.",
                "Archive unpacked.",
            )),
            Ok(Ok(Err(e))) => Answer::failure(&e.describe(lang)),
            Ok(Err(e)) => Answer::failure(&e.to_string()),
            Err(_) => Answer::progress(&t(
                lang,
                "Идет распаковка архива.",
                "Unpacking the archive.",
            )),
        };
    }
    let ex2 = ex.clone();
    let sid = session.id.clone();
    let state = web::block(move || -> Result<ArchivesState, StoreError> {
        let mut c = ex2.pool.get()?;
        archives_state(&mut c, &sid)
    })
    .await;
    match state {
        Ok(Ok(ArchivesState::Ready)) => {}
        Ok(Ok(ArchivesState::Unpacking)) => {
            return Answer::progress(&t(
                lang,
                "Идет распаковка архива.",
                "Unpacking the archive.",
            ))
        }
        Ok(Ok(ArchivesState::Failed(reason))) => {
            return Answer::failure(if reason.is_empty() {
                lang.pick(
                    "Архив не удалось распаковать.",
                    "The archive could not be unpacked.",
                )
            } else {
                &reason
            })
        }
        Ok(Err(e)) => return Answer::failure(&db_failure(lang, &e)),
        Err(e) => return Answer::failure(&e.to_string()),
    }

    // 2. One job per (session, file): find it or create it.
    let jobs = ex.jobs.clone();
    let path = name.to_path(&ex.session_dir(&session.id));
    let key = name.key.clone();
    let sid = session.id.clone();
    let job = web::block(move || -> Result<Option<i32>, StoreError> {
        if let Some(id) = jobs.find(&sid, &key)? {
            return Ok(Some(id));
        }
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(jobs.enqueue(&sid, &key, &path, "import")?))
    })
    .await;
    let id = match job {
        Ok(Ok(Some(id))) => id,
        Ok(Ok(None)) => {
            return Answer::failure(&match lang {
                Lang::Ru => format!(
                    "Файл {} не найден на сервере: он не был загружен в этой сессии (mode=file).",
                    name.key
                ),
                Lang::En => format!(
                "File {} not found on the server: it was not uploaded in this session (mode=file).",
                name.key
            ),
            })
        }
        Ok(Err(e)) => return Answer::failure(&db_failure(lang, &e)),
        Err(e) => return Answer::failure(&e.to_string()),
    };

    // 3. Wait a little for it, then answer what 1C needs to hear.
    match ex.jobs.wait(id, wait).await {
        Ok(st) => match st.state {
            JobState::Done => Answer::success(&st.stats.done_line(lang)),
            JobState::Failed => Answer::failure(
                &st.error
                    .unwrap_or_else(|| t(lang, "Ошибка импорта.", "Import failed.")),
            ),
            JobState::Queued => Answer::progress(&t(
                lang,
                "Файл в очереди на импорт: ждет окончания другого импорта.",
                "The file is queued: another import is running.",
            )),
            JobState::Running => Answer::progress(&st.stats.progress_line(lang)),
        },
        Err(e) => Answer::failure(&db_failure(lang, &e)),
    }
}

async fn deactivate(ex: &Arc<Exchange>, params: &Params) -> Answer {
    let lang = ex.lang();
    let ts = params
        .get("timestamp")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0);
    let Some(ts) = ts else {
        return Answer::failure(&t(
            lang,
            "Ошибка деактивации элементов: не указан параметр timestamp.",
            "Deactivation failed: the timestamp parameter is missing.",
        ));
    };
    // Imports still running belong to this exchange: let them finish first.
    let deadline = Instant::now() + Duration::from_secs(ex.cfg.exchange.import_wait_secs);
    while !ex.jobs.idle().unwrap_or(true) {
        if Instant::now() >= deadline {
            return Answer::progress(&t(
                lang,
                "Ожидание окончания импорта.",
                "Waiting for the import to finish.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ex2 = ex.clone();
    let res = web::block(
        move || -> Result<catalog::Deactivation, catalog::ImportError> {
            let mut c = ex2.pool.get().map_err(StoreError::from)?;
            catalog::deactivate_missing(&mut c, ts * 1000)
        },
    )
    .await;
    match res {
        Ok(Ok(d)) if d.applied => Answer::success(&match lang {
            Lang::Ru => format!("Деактивация элементов завершена. Товаров: {}, предложений: {}.", d.goods, d.offers),
            Lang::En => format!("Deactivation complete. Goods: {}, offers: {}.", d.goods, d.offers),
        }),
        Ok(Ok(_)) => Answer::success(&t(
            lang,
            "Деактивация элементов завершена. С указанного момента не получено ни одного товара, поэтому ничего не деактивировано.",
            "Deactivation complete. Nothing was received since that moment, so nothing was deactivated.",
        )),
        Ok(Err(e)) => Answer::failure(&e.describe(lang)),
        Err(e) => Answer::failure(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::exchange::{Credentials, JobRunner};
    use crate::store::schema::import_jobs;

    fn exchange(tmp: &tempfile::TempDir) -> Exchange {
        let cfg = Config {
            data_dir: tmp.path().to_path_buf(),
            database_url: Some(crate::store::testing::url(tmp.path())),
            ..Config::default()
        };
        let pool = crate::store::open(&cfg.database_url(), 4).unwrap();
        Exchange {
            jobs: JobRunner::inline(pool.clone(), Lang::Ru),
            cfg: Arc::new(cfg),
            pool,
            creds: Credentials::plain("1c", "pw"),
        }
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Store an uploaded archive of session `sid` as `file` would.
    fn upload(ex: &Exchange, sid: &str, name: &str, bytes: &[u8]) -> i32 {
        let dir = ex.session_dir(sid);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut c = ex.pool.get().unwrap();
        diesel::insert_into(uploaded_files::table)
            .values((
                uploaded_files::session_id.eq(sid),
                uploaded_files::name.eq(name),
                uploaded_files::original_name.eq(name),
                uploaded_files::stored_path.eq(path.to_string_lossy().as_ref()),
                uploaded_files::bytes.eq(bytes.len() as i64),
                uploaded_files::chunks.eq(1),
                uploaded_files::is_archive.eq(name.ends_with(".zip")),
                uploaded_files::state.eq("receiving"),
                uploaded_files::created_at.eq(0),
                uploaded_files::updated_at.eq(0),
            ))
            .returning(uploaded_files::id)
            .get_result(&mut c)
            .unwrap()
    }

    fn state_of(ex: &Exchange, id: i32) -> (String, Option<String>) {
        let mut c = ex.pool.get().unwrap();
        uploaded_files::table
            .filter(uploaded_files::id.eq(id))
            .select((uploaded_files::state, uploaded_files::error))
            .first(&mut c)
            .unwrap()
    }

    #[test]
    fn an_archive_is_claimed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let ex = exchange(&tmp);
        let a = upload(&ex, "s1", "v8_1.zip", &zip_of(&[("a.xml", b"<a/>")]));
        upload(&ex, "s1", "plain.xml", b"<a/>");
        upload(&ex, "s2", "v8_2.zip", &zip_of(&[("b.xml", b"<b/>")]));
        let mut c = ex.pool.get().unwrap();
        let first = claim_archives(&mut c, "s1").unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);
        assert_eq!(first[0].state, "unpacking");
        assert!(claim_archives(&mut c, "s1").unwrap().is_empty());
        assert_eq!(
            archives_state(&mut c, "s1").unwrap(),
            ArchivesState::Unpacking
        );
        // Other sessions are untouched.
        assert_eq!(archives_state(&mut c, "s2").unwrap(), ArchivesState::Ready);
        // A restart makes an interrupted unpack claimable again.
        assert_eq!(reset_interrupted_unpacks(&mut c).unwrap(), 1);
        assert_eq!(claim_archives(&mut c, "s1").unwrap().len(), 1);
    }

    #[test]
    fn concurrent_claims_share_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let ex = Arc::new(exchange(&tmp));
        for i in 0..5 {
            upload(
                &ex,
                "s1",
                &format!("v8_{i}.zip"),
                &zip_of(&[("a.xml", b"1")]),
            );
        }
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ex = ex.clone();
                std::thread::spawn(move || {
                    let mut c = ex.pool.get().unwrap();
                    claim_archives(&mut c, "s1").unwrap().len()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn a_failed_archive_is_remembered_and_does_not_stall_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let ex = exchange(&tmp);
        let bad = upload(
            &ex,
            "s1",
            "v8_1.zip",
            &zip_of(&[("import0_1.xml", b"<a/>"), ("../../evil.xml", b"x")]),
        );
        let good = upload(
            &ex,
            "s1",
            "v8_2.zip",
            &zip_of(&[("offers0_1.xml", b"<b/>"), ("import_files/ab/x.jpg", b"j")]),
        );
        let e = unpack_pending(&ex, "s1").unwrap_err();
        assert!(matches!(e, zipx::ZipError::UnsafeName { .. }), "{e:?}");
        let (state, error) = state_of(&ex, bad);
        assert_eq!(state, "failed");
        assert!(
            error
                .as_deref()
                .unwrap_or("")
                .contains("Недопустимое имя файла"),
            "{error:?}"
        );
        assert_eq!(state_of(&ex, good).0, "unpacked");
        let dir = ex.session_dir("s1");
        assert!(dir.join("offers0_1.xml").is_file());
        assert!(dir.join("import_files/ab/x.jpg").is_file());
        assert!(
            !dir.join("import0_1.xml").exists(),
            "the bad archive left nothing"
        );
        let mut c = ex.pool.get().unwrap();
        match archives_state(&mut c, "s1").unwrap() {
            ArchivesState::Failed(m) => assert!(m.contains("evil.xml"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Nothing is pending any more: a second call unpacks nothing.
        drop(c);
        assert_eq!(unpack_pending(&ex, "s1").unwrap(), 0);
    }

    #[test]
    fn a_fresh_upload_set_keeps_only_what_running_imports_read() {
        let tmp = tempfile::tempdir().unwrap();
        let ex = exchange(&tmp);
        upload(
            &ex,
            "s1",
            "v8_1.zip",
            &zip_of(&[("import0_1.xml", b"<a/>")]),
        );
        unpack_pending(&ex, "s1").unwrap();
        let dir = ex.session_dir("s1");
        std::fs::create_dir_all(dir.join("import_files/ab")).unwrap();
        std::fs::write(dir.join("import_files/ab/x.jpg"), b"j").unwrap();
        std::fs::write(dir.join("offers0_1.xml"), b"<b/>").unwrap();
        let mut c = ex.pool.get().unwrap();
        for (name, state) in [("import0_1.xml", "done"), ("offers0_1.xml", "running")] {
            diesel::insert_into(import_jobs::table)
                .values((
                    import_jobs::session_id.eq("s1"),
                    import_jobs::filename.eq(name),
                    import_jobs::path.eq(dir.join(name).to_string_lossy().as_ref()),
                    import_jobs::trigger.eq("import"),
                    import_jobs::state.eq(state),
                    import_jobs::created_at.eq(0),
                ))
                .execute(&mut c)
                .unwrap();
        }
        fresh_upload_set(&ex, &mut c, "s1").unwrap();
        assert!(!dir.join("v8_1.zip").exists());
        assert!(
            !dir.join("import0_1.xml").exists(),
            "unpacked files removed"
        );
        assert!(!dir.join("import_files").exists());
        assert!(
            dir.join("offers0_1.xml").is_file(),
            "a running import's file stays"
        );
        let uploads: i64 = uploaded_files::table
            .filter(uploaded_files::session_id.eq("s1"))
            .count()
            .get_result(&mut c)
            .unwrap();
        assert_eq!(uploads, 0);
        // The finished job no longer holds the key, the running one does.
        let names: Vec<String> = import_jobs::table
            .filter(import_jobs::session_id.eq("s1"))
            .order(import_jobs::id)
            .select(import_jobs::filename)
            .load(&mut c)
            .unwrap();
        assert!(
            names[0].starts_with("import0_1.xml (before init "),
            "{names:?}"
        );
        assert_eq!(names[1], "offers0_1.xml");
    }
}
