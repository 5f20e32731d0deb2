//! Alerts: the rules with their state, the channels (secrets masked) and recent firings with
//! the state of their outbox messages. Admins edit rules and channels; operators may run a check
//! now. Every change is audited.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::text::Table;
use super::{field, Ctx};
use crate::alerts::{self, Channel, ChannelInput, Event, Rule};
use crate::exchange::Exchange;
use crate::server::Services;
use crate::users::Role;

pub const TEXT: Table = &[
    ("al_title", "Оповещения", "Alerts"),
    ("al_rules", "Правила", "Rules"),
    ("al_rule", "Правило", "Rule"),
    ("al_enabled", "Включено", "Enabled"),
    ("al_threshold", "Порог", "Threshold"),
    ("al_channels", "Каналы", "Channels"),
    ("al_last_fired", "Последнее срабатывание", "Last fired"),
    ("al_last_checked", "Проверено", "Checked"),
    ("al_save", "Сохранить", "Save"),
    ("al_saved", "Сохранено.", "Saved."),
    ("al_check_now", "Проверить сейчас", "Check now"),
    ("al_checked", "Правила проверены, отправлено оповещений:", "Rules checked, alerts queued:"),
    ("al_exchange_failed", "Обмен с 1С завершился ошибкой (ответ failure или ошибка загрузки)", "A 1C exchange failed (a failure answer or a failed import)"),
    ("al_no_exchange", "Нет обменов с 1С дольше порога (часов)", "No 1C exchange for longer than the threshold (hours)"),
    ("al_messages_dead", "Недоставленных сообщений (dead) не меньше порога", "Undeliverable (dead) outbox messages at or above the threshold"),
    ("al_reconciliation_diff", "В последней сверке расхождений не меньше порога", "The latest reconciliation has at least the threshold of differences"),
    ("al_ozon_key_rejected", "Ozon отклонил ключ API (ответы 401/403) не меньше порога раз с прошлой проверки", "Ozon rejected the API key (401/403) at least the threshold times since the last check"),
    ("al_channel_list", "Каналы доставки", "Delivery channels"),
    ("al_kind", "Вид", "Kind"),
    ("al_name", "Название", "Name"),
    ("al_settings", "Параметры", "Settings"),
    ("al_add_channel", "Добавить канал", "Add a channel"),
    ("al_added", "Канал добавлен.", "Channel added."),
    ("al_delete", "Удалить", "Delete"),
    ("al_disable", "Выключить", "Disable"),
    ("al_enable", "Включить", "Enable"),
    ("al_off", "выключен", "disabled"),
    ("al_deleted", "Канал удалён.", "Channel deleted."),
    ("al_delete_confirm", "Удалить этот канал?", "Delete this channel?"),
    ("al_url", "Адрес (webhook)", "URL (webhook)"),
    ("al_base_url", "Адрес Bot API (Telegram)", "Bot API URL (Telegram)"),
    ("al_token", "Токен бота", "Bot token"),
    ("al_chat_id", "Чат (chat_id)", "Chat (chat_id)"),
    ("al_host", "SMTP-сервер", "SMTP host"),
    ("al_port", "Порт", "Port"),
    ("al_from", "От кого", "From"),
    ("al_to", "Кому", "To"),
    ("al_user", "SMTP-пользователь", "SMTP user"),
    ("al_smtp_note", "Почта отправляется по SMTP без шифрования (без TLS): используйте почтовый релей в доверенной сети.", "Mail is sent over plain SMTP (no TLS): use a mail relay on a trusted network."),
    ("al_bad_url", "Адрес должен начинаться с http:// или https://.", "The URL must start with http:// or https://."),
    ("al_need_token", "Нужны токен бота и chat_id.", "The bot token and chat_id are required."),
    ("al_bad_port", "Неверный порт.", "Invalid port."),
    ("al_need_mail", "Нужны SMTP-сервер и правильные адреса «от кого» и «кому».", "The SMTP host and valid From and To addresses are required."),
    ("al_bad_kind", "Неизвестный вид канала.", "Unknown channel kind."),
    ("al_unknown_rule", "Неизвестное правило.", "Unknown rule."),
    ("al_events", "Последние оповещения", "Recent alerts"),
    ("al_text", "Текст", "Text"),
    ("al_delivery", "Доставка", "Delivery"),
    ("al_no_channels", "Каналов нет: оповещения только записываются здесь.", "No channels: alerts are only recorded here."),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alerts", web::get().to(page));
    cfg.route("/alerts/check", web::post().to(check_now));
    cfg.route("/alerts/rules/{rule}", web::post().to(save_rule));
    cfg.route("/alerts/channels", web::post().to(add_channel));
    cfg.route(
        "/alerts/channels/{id}/delete",
        web::post().to(delete_channel),
    );
    cfg.route(
        "/alerts/channels/{id}/enabled",
        web::post().to(enable_channel),
    );
}

pub const PAGE: i64 = 50;

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    before: Option<i32>,
}

pub struct EventView {
    pub event: Event,
    /// (outbox id, kind, state)
    pub messages: Vec<(i32, String, String)>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    ctx: Ctx,
    rules: Vec<Rule>,
    channels: Vec<Channel>,
    events: Vec<EventView>,
    next: Option<String>,
    first: bool,
}

impl AlertsPage {
    fn rule_text(&self, r: &Rule) -> &'static str {
        self.ctx.t(match r.rule.as_str() {
            alerts::EXCHANGE_FAILED => "al_exchange_failed",
            alerts::NO_EXCHANGE => "al_no_exchange",
            alerts::MESSAGES_DEAD => "al_messages_dead",
            alerts::RECONCILIATION_DIFF => "al_reconciliation_diff",
            alerts::OZON_KEY_REJECTED => "al_ozon_key_rejected",
            _ => "al_unknown_rule",
        })
    }
    fn uses(&self, r: &Rule, c: &Channel) -> bool {
        r.channel_ids().contains(&c.id)
    }
    fn channel_names(&self, r: &Rule) -> String {
        let ids = r.channel_ids();
        self.channels
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| format!("{} ({})", c.name, c.kind))
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn state_class(&self, state: &str) -> &'static str {
        match state {
            "done" => "ok",
            "dead" | "failed" => "bad",
            _ => "warn",
        }
    }
}

async fn page(
    req: HttpRequest,
    q: web::Query<PageQuery>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard(&req, &ex, Role::Viewer, "alerts").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let before = q.before;
    let res = super::db(&ex, move |c| {
        let rules = alerts::rules(c)?;
        let channels = alerts::channels(c)?;
        let events = alerts::events(c, before, PAGE)?;
        let ids: Vec<i32> = events.iter().flat_map(|e| e.message_ids()).collect();
        let states: HashMap<i32, (String, String)> = alerts::message_states(c, &ids)?;
        let events = events
            .into_iter()
            .map(|e| {
                let messages = e
                    .message_ids()
                    .into_iter()
                    .map(|id| {
                        let (k, s) = states.get(&id).cloned().unwrap_or_default();
                        (id, k, s)
                    })
                    .collect();
                EventView { event: e, messages }
            })
            .collect::<Vec<_>>();
        Ok((rules, channels, events))
    })
    .await;
    let (rules, channels, events) = match res {
        Ok(v) => v,
        Err(e) => return super::db_error(ctx, e),
    };
    let next = super::next_cursor(&events, PAGE as usize, |e| e.event.id.to_string());
    super::html(&AlertsPage {
        ctx,
        rules,
        channels,
        events,
        next,
        first: before.is_none(),
    })
}

async fn check_now(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
    svc: web::Data<Arc<Services>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Operator, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::server::check_alerts(&ex).await {
        Ok(n) => {
            if n > 0 {
                svc.relay.wake();
            }
            super::audit(
                &ex,
                &req,
                &ctx,
                "alerts_check",
                None,
                None,
                Some(format!("{{\"queued\":{n}}}")),
            )
            .await;
            super::redirect_flash("/alerts", &format!("{} {n}", ctx.t("al_checked")))
        }
        Err(e) => super::redirect_flash("/alerts", &format!("{e:#}")),
    }
}

async fn save_rule(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let name = path.into_inner();
    let enabled = matches!(field(&form, "enabled"), Some("on" | "1" | "true"));
    let threshold = field(&form, "threshold")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let channels: Vec<i32> = form
        .iter()
        .filter(|(k, _)| k == "channel")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let n2 = name.clone();
    let res = super::db(&ex, move |c| {
        Ok(alerts::update_rule(c, &n2, enabled, threshold, &channels)?)
    })
    .await;
    match res {
        Ok(Some((before, after))) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "alert_rule",
                Some(name),
                Some(before),
                Some(after),
            )
            .await;
            super::redirect_flash("/alerts", ctx.t("al_saved"))
        }
        Ok(None) => super::redirect_flash("/alerts", ctx.t("al_unknown_rule")),
        Err(e) => super::db_error(ctx, e),
    }
}

async fn add_channel(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let f = |k: &str| field(&form, k).unwrap_or("").to_string();
    let input = ChannelInput {
        kind: f("kind"),
        name: f("name"),
        url: f("url"),
        base_url: f("base_url"),
        token: f("token"),
        chat_id: f("chat_id"),
        host: f("host"),
        port: f("port"),
        from: f("from"),
        to: f("to"),
        user: f("user"),
        password: f("password"),
    };
    let config = match alerts::channel_config(&input) {
        Ok(c) => c,
        Err(alerts::Invalid(key)) => return super::redirect_flash("/alerts", ctx.t(key)),
    };
    let name = match input.name.trim() {
        "" => input.kind.clone(),
        n => n.chars().take(100).collect(),
    };
    let (kind, n2, cfg2) = (input.kind.clone(), name.clone(), config.clone());
    let res = super::db(&ex, move |c| Ok(alerts::add_channel(c, &kind, &n2, &cfg2)?)).await;
    match res {
        Ok(id) => {
            // The audit shows the settings with the secrets masked.
            let after = format!(
                "{} {}: {}",
                input.kind,
                name,
                alerts::masked_config(&config)
            );
            super::audit(
                &ex,
                &req,
                &ctx,
                "alert_channel_add",
                Some(id.to_string()),
                None,
                Some(after),
            )
            .await;
            super::redirect_flash("/alerts", ctx.t("al_added"))
        }
        Err(e) => super::db_error(ctx, e),
    }
}

async fn delete_channel(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let res = super::db(&ex, move |c| Ok(alerts::delete_channel(c, id)?)).await;
    match res {
        Ok(Some(ch)) => {
            let before = format!("{} {}: {}", ch.kind, ch.name, ch.masked());
            super::audit(
                &ex,
                &req,
                &ctx,
                "alert_channel_delete",
                Some(id.to_string()),
                Some(before),
                None,
            )
            .await;
            super::redirect_flash("/alerts", ctx.t("al_deleted"))
        }
        Ok(None) => super::redirect_flash("/alerts", ctx.t("not_found")),
        Err(e) => super::db_error(ctx, e),
    }
}

async fn enable_channel(
    req: HttpRequest,
    path: web::Path<i32>,
    form: web::Form<Vec<(String, String)>>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let ctx = match super::guard_post(&req, &ex, Role::Admin, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let on = matches!(field(&form, "enabled"), Some("on" | "1" | "true"));
    let res = super::db(&ex, move |c| Ok(alerts::set_channel_enabled(c, id, on)?)).await;
    match res {
        Ok(Some(ch)) => {
            super::audit(
                &ex,
                &req,
                &ctx,
                "alert_channel_enabled",
                Some(id.to_string()),
                Some(format!("{{\"enabled\":{}}}", ch.enabled)),
                Some(format!("{{\"enabled\":{on}}}")),
            )
            .await;
            super::redirect_flash("/alerts", ctx.t("al_saved"))
        }
        Ok(None) => super::redirect_flash("/alerts", ctx.t("not_found")),
        Err(e) => super::db_error(ctx, e),
    }
}
