//! Settings (administrators only): the effective configuration with its secrets masked, the
//! dashboard's users with their role and lock, and unlocking a locked user.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::{field, Ctx};
use crate::exchange::Exchange;
use crate::store::now_ms;
use crate::users::{Role, UserRow};

pub const TEXT: Table = &[
    ("set_title", "Настройки", "Settings"),
    ("set_config", "Действующая конфигурация (секреты скрыты)", "Effective configuration (secrets masked)"),
    ("set_config_note", "Изменяется в файле конфигурации или переменных окружения OBMEN_*; применяется после перезапуска.", "Changed in the configuration file or the OBMEN_* environment variables; applies after a restart."),
    ("set_users", "Пользователи панели", "Dashboard users"),
    ("set_role", "Роль", "Role"),
    ("set_last_login", "Последний вход", "Last sign-in"),
    ("set_failed", "Неудачных входов подряд", "Failed sign-ins in a row"),
    ("set_locked", "Заблокирован до", "Locked until"),
    ("set_disabled", "отключён", "disabled"),
    ("set_unlock", "Разблокировать", "Unlock"),
    ("set_unlocked", "Пользователь разблокирован:", "User unlocked:"),
    ("set_no_user", "Нет такого пользователя", "No such user"),
    ("set_add_user", "Новый пользователь или новый пароль: obmen user add ИМЯ --role admin|operator|viewer", "A new user or a new password: obmen user add NAME --role admin|operator|viewer"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(show));
    cfg.route("/settings/users/unlock", web::post().to(unlock));
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    ctx: Ctx,
    config: String,
    users: Vec<UserRow>,
    now: i64,
}

impl SettingsPage {
    fn locked(&self, u: &UserRow) -> bool {
        u.locked_until.is_some_and(|t| t > self.now)
    }
    fn role_text(&self, u: &UserRow) -> &'static str {
        self.ctx.t(u.role().as_str())
    }
}

async fn show(req: HttpRequest, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Admin, "settings").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let config = toml::to_string_pretty(&ex.cfg.masked()).unwrap_or_else(|e| e.to_string());
    let users = match super::db(&ex, |c| Ok(crate::users::list(c)?)).await {
        Ok(u) => u,
        Err(e) => return super::db_error(ctx, e),
    };
    super::html(&SettingsPage {
        ctx,
        config,
        users,
        now: now_ms(),
    })
}

async fn unlock(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let name = field(&form, "name").unwrap_or("").trim().to_string();
    let n2 = name.clone();
    match super::db(&ex, move |c| Ok(crate::users::unlock(c, &n2)?)).await {
        Ok(Some(before)) => {
            let state = |failed: i32, until: Option<i64>| {
                serde_json::json!({"failed_logins": failed, "locked_until": until}).to_string()
            };
            super::audit(
                &ex,
                &req,
                &ctx,
                "unlock_user",
                Some(name.clone()),
                Some(state(before.failed_logins, before.locked_until)),
                Some(state(0, None)),
            )
            .await;
            super::redirect_flash("/settings", &format!("{} {name}", ctx.t("set_unlocked")))
        }
        Ok(None) => {
            super::redirect_flash("/settings", &format!("{}: {name}", ctx.t("set_no_user")))
        }
        Err(e) => super::db_error(ctx, e),
    }
}
