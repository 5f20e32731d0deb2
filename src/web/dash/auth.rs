//! Signing in and out, and the language switch.

use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{Ctx, CSRF_FIELD, LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::exchange::Exchange;
use crate::users::{self, LoginError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_form));
    cfg.route("/login", web::post().to(login));
    cfg.route("/logout", web::post().to(logout));
    cfg.route("/lang/{code}", web::get().to(set_lang));
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Ctx,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    no_users: bool,
}

/// Only local paths are followed after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn render_login(
    req: &HttpRequest,
    ex: &Exchange,
    status: StatusCode,
    next: String,
    username: String,
    error: Option<String>,
    no_users: bool,
) -> HttpResponse {
    let csrf = crate::exchange::random_token(48);
    let page = LoginPage {
        ctx: super::base_ctx(req, ex, "login"),
        csrf: csrf.clone(),
        next,
        username,
        error,
        no_users,
    };
    let mut resp = super::html_status(status, &page);
    let c = super::cookie(req, ex, LOGIN_CSRF_COOKIE, csrf);
    let _ = resp.add_cookie(&c);
    resp
}

async fn login_form(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let no_users = super::db(&ex, |c| Ok(users::count(c)?)).await.unwrap_or(1) == 0;
    render_login(
        &req,
        &ex,
        StatusCode::OK,
        safe_next(q.get("next").map(String::as_str)),
        String::new(),
        None,
        no_users,
    )
}

async fn login(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let form = form.into_inner();
    let lang = super::lang_of(&req, &ex);
    let t = |k| super::text::t(lang, k);
    let next = safe_next(super::field(&form, "next"));
    let name = super::field(&form, "username")
        .unwrap_or("")
        .trim()
        .to_string();
    let password = super::field(&form, "password").unwrap_or("").to_string();
    // The form's token must match the cookie set with the form (a forged cross-site post has
    // neither).
    let given = super::field(&form, CSRF_FIELD).unwrap_or("");
    let expected = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if given.is_empty()
        || !crate::exchange::auth::constant_time_eq(given.as_bytes(), expected.as_bytes())
    {
        let ctx = super::base_ctx(&req, &ex, "login");
        return super::message(ctx, StatusCode::FORBIDDEN, t("forbidden"), t("csrf_text"));
    }
    let addr = super::client_addr(&req, &ex);
    let (n2, a2) = (name.clone(), addr.clone());
    let res = super::db(&ex, move |c| {
        let r = users::check_login(c, &n2, &password)?;
        let (action, session) = match &r {
            Ok(u) => ("login", Some(users::open_session(c, u.id, &a2)?)),
            Err(LoginError::Locked(_)) => ("login_locked", None),
            Err(_) => ("login_failed", None),
        };
        users::audit(
            c,
            &users::Audit {
                username: &n2,
                action,
                addr: Some(&a2),
                ..Default::default()
            },
        )?;
        Ok((r, session))
    })
    .await;
    match res {
        Ok((Ok(_), Some(token))) => {
            let mut resp = super::redirect(&next);
            let _ = resp.add_cookie(&super::cookie(&req, &ex, SESSION_COOKIE, token));
            let mut gone = Cookie::new(LOGIN_CSRF_COOKIE, "");
            gone.set_path("/");
            gone.make_removal();
            let _ = resp.add_cookie(&gone);
            resp
        }
        Ok((Err(e), _)) => {
            let msg = match e {
                LoginError::Locked(until) => {
                    format!("{} {}", t("login_locked"), super::when(until))
                }
                _ => t("login_wrong").to_string(),
            };
            tracing::info!(user = %name, addr = %addr, "dashboard: login refused");
            render_login(
                &req,
                &ex,
                StatusCode::UNAUTHORIZED,
                next,
                name,
                Some(msg),
                false,
            )
        }
        Ok((Ok(_), None)) => super::redirect("/login"),
        Err(e) => super::db_error(super::base_ctx(&req, &ex, "login"), e),
    }
}

async fn logout(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, users::Role::Viewer, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let token = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let _ = super::db(&ex, move |c| Ok(users::close_session(c, &token)?)).await;
    super::audit(&ex, &req, &ctx, "logout", None, None, None).await;
    let mut resp = super::redirect("/login");
    let mut gone = Cookie::new(SESSION_COOKIE, "");
    gone.set_path("/");
    gone.make_removal();
    let _ = resp.add_cookie(&gone);
    resp
}

async fn set_lang(
    req: HttpRequest,
    path: web::Path<String>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let back = safe_next(q.get("back").map(String::as_str));
    let lang: crate::i18n::Lang = path.into_inner().parse().unwrap_or(ex.cfg.lang);
    let code = match lang {
        crate::i18n::Lang::Ru => "ru",
        crate::i18n::Lang::En => "en",
    };
    let mut resp = super::redirect(&back);
    let _ = resp.add_cookie(&super::cookie(&req, &ex, LANG_COOKIE, code.to_string()));
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(super::safe_next(Some("/exchanges?x=1")), "/exchanges?x=1");
        assert_eq!(super::safe_next(Some("//evil.example/")), "/");
        assert_eq!(super::safe_next(Some("https://evil.example/")), "/");
        assert_eq!(super::safe_next(Some("/\\evil.example")), "/");
        assert_eq!(super::safe_next(None), "/");
    }
}
