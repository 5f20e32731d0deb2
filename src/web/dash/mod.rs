//! The web dashboard: server-rendered pages (askama templates in src/web/templates), signed-in
//! users with roles, CSRF tokens on every form, an audit of every action.
//!
//! Each page module exposes its routes through [`configure`]; every handler starts with
//! [`guard`] (a page) or [`guard_post`] (a form), which answer for it when the visitor may not.

pub mod alerts;
pub mod audit_log;
pub mod auth;
pub mod catalog;
pub mod exchanges;
pub mod home;
pub mod mapping;
pub mod messages;
pub mod orders;
pub mod reports;
pub mod settings;
pub mod text;

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::exchange::Exchange;
use crate::i18n::Lang;
use crate::store::{Conn, StoreError};
use crate::users::{Role, SessionUser};

pub const SESSION_COOKIE: &str = "obmen_session";
pub const LOGIN_CSRF_COOKIE: &str = "obmen_login_csrf";
pub const LANG_COOKIE: &str = "obmen_lang";
/// Name of the hidden CSRF field on every form.
pub const CSRF_FIELD: &str = "csrf_token";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().limit(2 * 1024 * 1024));
    cfg.route("/static/app.css", web::get().to(css));
    cfg.route("/static/app.js", web::get().to(js));
    auth::configure(cfg);
    home::configure(cfg);
    exchanges::configure(cfg);
    mapping::configure(cfg);
    orders::configure(cfg);
    catalog::configure(cfg);
    reports::configure(cfg);
    messages::configure(cfg);
    audit_log::configure(cfg);
    settings::configure(cfg);
    alerts::configure(cfg);
}

/// What every page's frame needs: language, the signed-in user, the CSRF token for its forms.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub user: Option<SessionUser>,
    /// The navigation entry to highlight.
    pub nav: &'static str,
    /// Refresh the page's main part in place every few seconds.
    pub live: bool,
    pub flash: Option<String>,
    /// The request path with its query, for the language switch.
    pub here: String,
}

impl Ctx {
    pub fn t(&self, key: &str) -> &'static str {
        text::t(self.lang, key)
    }
    pub fn lang_code(&self) -> &'static str {
        match self.lang {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
    pub fn csrf(&self) -> &str {
        self.user.as_ref().map(|u| u.csrf.as_str()).unwrap_or("")
    }
    pub fn can(&self, role: &str) -> bool {
        let need: Role = role.parse().unwrap_or(Role::Admin);
        self.user.as_ref().is_some_and(|u| u.role >= need)
    }
    pub fn user_name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("")
    }
    pub fn role_name(&self) -> &'static str {
        self.user
            .as_ref()
            .map(|u| self.t(u.role.as_str()))
            .unwrap_or("")
    }
    /// A time (unix ms) as the dashboard shows it: local date and time to the second.
    pub fn when(&self, ms: impl std::borrow::Borrow<i64>) -> String {
        when(*ms.borrow())
    }
    pub fn when_opt(&self, ms: impl std::borrow::Borrow<Option<i64>>) -> String {
        ms.borrow().map(when).unwrap_or_default()
    }
    pub fn bytes(&self, n: impl std::borrow::Borrow<i64>) -> String {
        human_bytes(*n.borrow())
    }
    /// The same page in the other language.
    pub fn other_lang(&self) -> (&'static str, &'static str) {
        match self.lang {
            Lang::Ru => ("en", "English"),
            Lang::En => ("ru", "Русский"),
        }
    }
}

pub fn when(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

/// The dashboard language: the visitor's choice (cookie), else the configured one.
pub fn lang_of(req: &HttpRequest, ex: &Exchange) -> Lang {
    req.cookie(LANG_COOKIE)
        .and_then(|c| c.value().parse().ok())
        .unwrap_or(ex.cfg.lang)
}

pub fn client_addr(req: &HttpRequest, ex: &Exchange) -> String {
    crate::web::client_addr(req, &ex.cfg.server)
}

/// Whether cookies must carry `Secure`: the public URL or this request is https.
pub fn secure_cookies(req: &HttpRequest, ex: &Exchange) -> bool {
    ex.cfg
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || req.connection_info().scheme() == "https"
}

pub fn cookie<'a>(req: &HttpRequest, ex: &Exchange, name: &'a str, value: String) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure_cookies(req, ex))
        .finish()
}

/// Headers every dashboard answer carries.
pub fn secure_headers(b: &mut actix_web::HttpResponseBuilder) {
    b.insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'",
        ));
}

pub fn html_status(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => {
            let mut b = HttpResponse::build(status);
            secure_headers(&mut b);
            b.content_type("text/html; charset=utf-8").body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard: template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(format!("template error: {e}"))
        }
    }
}

pub fn html(t: &impl Template) -> HttpResponse {
    html_status(StatusCode::OK, t)
}

pub fn redirect(to: &str) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    secure_headers(&mut b);
    b.insert_header((header::LOCATION, to.to_string())).finish()
}

/// Back to a page, with a short message shown once on it.
pub fn redirect_flash(to: &str, flash: &str) -> HttpResponse {
    let sep = if to.contains('?') { '&' } else { '?' };
    let msg: String = url_encode(flash);
    redirect(&format!("{to}{sep}flash={msg}"))
}

pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub ctx: Ctx,
    pub title: String,
    pub text: String,
}

/// A page with a title and a sentence (errors, refusals).
pub fn message(ctx: Ctx, status: StatusCode, title: &str, text: &str) -> HttpResponse {
    html_status(
        status,
        &MessagePage {
            ctx,
            title: title.to_string(),
            text: text.to_string(),
        },
    )
}

fn base_ctx(req: &HttpRequest, ex: &Exchange, nav: &'static str) -> Ctx {
    let flash =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("flash").cloned())
            .map(|f| f.chars().take(300).collect());
    let here = match req.uri().query() {
        Some(q) => format!("{}?{}", req.path(), q),
        None => req.path().to_string(),
    };
    Ctx {
        lang: lang_of(req, ex),
        user: None,
        nav,
        live: false,
        flash,
        here,
    }
}

/// Run `f` on a pooled connection off the async workers.
pub async fn db<T: Send + 'static>(
    ex: &Arc<Exchange>,
    f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let pool = ex.pool.clone();
    match web::block(move || {
        let mut c = pool.get()?;
        f(&mut c)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Err(StoreError::Task(e.to_string())),
    }
}

/// The answer to a database failure on a page.
pub fn db_error(ctx: Ctx, e: StoreError) -> HttpResponse {
    tracing::error!(error = %e, "dashboard: database error");
    let title = ctx.t("error");
    message(
        ctx.clone(),
        StatusCode::INTERNAL_SERVER_ERROR,
        title,
        &e.to_string(),
    )
}

async fn signed_in(req: &HttpRequest, ex: &Arc<Exchange>) -> Option<SessionUser> {
    let token = req.cookie(SESSION_COOKIE)?.value().to_string();
    if token.is_empty() || token.len() > 256 {
        return None;
    }
    db(ex, move |c| Ok(crate::users::session_user(c, &token)?))
        .await
        .ok()
        .flatten()
}

/// A page for users of at least `role`: the frame's context, or the answer to send instead
/// (a redirect to /login for a visitor who is not signed in, 403 for a lower role).
#[allow(clippy::result_large_err)]
pub async fn guard(
    req: &HttpRequest,
    ex: &Arc<Exchange>,
    role: Role,
    nav: &'static str,
) -> Result<Ctx, HttpResponse> {
    let mut ctx = base_ctx(req, ex, nav);
    let Some(user) = signed_in(req, ex).await else {
        let next = url_encode(&ctx.here);
        return Err(redirect(&format!("/login?next={next}")));
    };
    let ok = user.role >= role;
    ctx.user = Some(user);
    if !ok {
        let title = ctx.t("forbidden");
        let text = ctx.t("forbidden_text");
        return Err(message(ctx.clone(), StatusCode::FORBIDDEN, title, text));
    }
    Ok(ctx)
}

/// A form post for users of at least `role` carrying the session's CSRF token: 403 without it.
#[allow(clippy::result_large_err)]
pub async fn guard_post(
    req: &HttpRequest,
    ex: &Arc<Exchange>,
    role: Role,
    form: &[(String, String)],
) -> Result<Ctx, HttpResponse> {
    let mut ctx = base_ctx(req, ex, "");
    let Some(user) = signed_in(req, ex).await else {
        // A form from a stale page: nothing is done; sign in again.
        return Err(redirect("/login"));
    };
    let given = form
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let csrf_ok = !given.is_empty()
        && crate::exchange::auth::constant_time_eq(given.as_bytes(), user.csrf.as_bytes());
    let role_ok = user.role >= role;
    ctx.user = Some(user);
    if !csrf_ok {
        let (title, text) = (ctx.t("forbidden"), ctx.t("csrf_text"));
        return Err(message(ctx.clone(), StatusCode::FORBIDDEN, title, text));
    }
    if !role_ok {
        let (title, text) = (ctx.t("forbidden"), ctx.t("forbidden_text"));
        return Err(message(ctx.clone(), StatusCode::FORBIDDEN, title, text));
    }
    Ok(ctx)
}

/// The value of a form field.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Record an action of the signed-in user.
pub async fn audit(
    ex: &Arc<Exchange>,
    req: &HttpRequest,
    ctx: &Ctx,
    action: &str,
    target: Option<String>,
    before: Option<String>,
    after: Option<String>,
) {
    let (user, action, addr) = (
        ctx.user_name().to_string(),
        action.to_string(),
        client_addr(req, ex),
    );
    let res = db(ex, move |c| {
        Ok(crate::users::audit(
            c,
            &crate::users::Audit {
                username: &user,
                action: &action,
                target,
                before,
                after,
                addr: Some(&addr),
            },
        )?)
    })
    .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "dashboard: cannot write the audit log");
    }
}

/// Keyset paging: the `before` cursor of the next page, when this one was full.
pub fn next_cursor<T>(rows: &[T], limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
    (rows.len() >= limit)
        .then(|| rows.last().map(key))
        .flatten()
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("../templates/app.css"))
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("../templates/app.js"))
}
