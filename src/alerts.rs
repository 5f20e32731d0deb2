//! Alerts: rules checked every minute against the database, channels that carry the alerts
//! (a webhook, a Telegram bot, e-mail over plain SMTP), and every firing remembered by its
//! fingerprint so one incident alerts once.
//!
//! A firing is delivered through the outbox: one message per channel (target `alerts`, kinds
//! `alert.webhook`, `alert.telegram`, `alert.email`), so a channel that is down is retried with
//! the relay's backoff. The message carries the channel id, not its secrets: the handler reads
//! the channel when it delivers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

use crate::exchange::history;
use crate::i18n::Lang;
use crate::relay::journal::{record_call, Call};
use crate::relay::store::{enqueue, Enqueue, NewMessage};
use crate::relay::{Handler, Message, Outcome, OutcomeKind};
use crate::store::schema::{
    alert_channels, alert_events, alert_rules, api_calls, exchange_sessions, outbox,
    reconciliation_reports,
};
use crate::store::{now_ms, Conn, DbPool, StoreError, StoreResult};

pub const TARGET: &str = "alerts";

/// The rules obmen knows (each has a row in `alert_rules`).
pub const RULES: [&str; 5] = [
    EXCHANGE_FAILED,
    NO_EXCHANGE,
    MESSAGES_DEAD,
    RECONCILIATION_DIFF,
    OZON_KEY_REJECTED,
];
pub const EXCHANGE_FAILED: &str = "exchange_failed";
pub const NO_EXCHANGE: &str = "no_exchange";
pub const MESSAGES_DEAD: &str = "messages_dead";
pub const RECONCILIATION_DIFF: &str = "reconciliation_diff";
pub const OZON_KEY_REJECTED: &str = "ozon_key_rejected";

/// Channel kinds.
pub const CHANNEL_KINDS: [&str; 3] = ["webhook", "telegram", "email"];

/// Failed 1C sessions older than this are not alerted on (e.g. when the rule is first enabled).
const FAILED_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = alert_rules)]
pub struct Rule {
    pub rule: String,
    pub enabled: bool,
    pub threshold: i64,
    pub channels: String,
    pub active: bool,
    pub episode: i32,
    pub cursor: i64,
    pub last_checked_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    pub updated_at: i64,
}

impl Rule {
    pub fn channel_ids(&self) -> Vec<i32> {
        parse_ids(&self.channels)
    }
}

fn parse_ids(s: &str) -> Vec<i32> {
    s.split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = alert_channels)]
pub struct Channel {
    pub id: i32,
    pub kind: String,
    pub name: String,
    pub config: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Keys of a channel's config that are secrets: never shown, never logged.
pub const SECRET_KEYS: [&str; 2] = ["token", "password"];

impl Channel {
    pub fn config(&self) -> Value {
        serde_json::from_str(&self.config).unwrap_or(Value::Null)
    }
    /// The config with secrets masked, as `key=value` pairs for people to read.
    pub fn masked(&self) -> String {
        masked_config(&self.config())
    }
}

pub fn masked_config(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return String::new();
    };
    o.iter()
        .filter(|(_, v)| !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| {
            let shown = if SECRET_KEYS.contains(&k.as_str()) {
                "••••••".to_string()
            } else {
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            };
            format!("{k}={shown}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = alert_events)]
pub struct Event {
    pub id: i32,
    pub rule: String,
    pub fingerprint: String,
    pub at: i64,
    pub title: String,
    pub text: String,
    pub message_ids: String,
}

impl Event {
    pub fn message_ids(&self) -> Vec<i32> {
        parse_ids(&self.message_ids)
    }
}

pub fn rules(conn: &mut Conn) -> QueryResult<Vec<Rule>> {
    let mut all: Vec<Rule> = alert_rules::table.select(Rule::as_select()).load(conn)?;
    all.sort_by_key(|r| RULES.iter().position(|x| *x == r.rule).unwrap_or(99));
    Ok(all)
}

pub fn rule(conn: &mut Conn, name: &str) -> QueryResult<Option<Rule>> {
    alert_rules::table
        .find(name)
        .select(Rule::as_select())
        .first(conn)
        .optional()
}

/// What an admin may change on a rule, as the audit log shows it.
pub fn rule_settings(r: &Rule) -> String {
    json!({"enabled": r.enabled, "threshold": r.threshold, "channels": r.channel_ids()}).to_string()
}

/// Change a rule; returns (before, after) settings, or None for an unknown rule.
pub fn update_rule(
    conn: &mut Conn,
    name: &str,
    enabled: bool,
    threshold: i64,
    channels: &[i32],
) -> QueryResult<Option<(String, String)>> {
    conn.immediate_transaction(|conn| {
        let Some(before) = rule(conn, name)? else {
            return Ok(None);
        };
        let known: Vec<i32> = alert_channels::table
            .select(alert_channels::id)
            .load(conn)?;
        let mut ids: Vec<i32> = channels
            .iter()
            .copied()
            .filter(|c| known.contains(c))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let list = ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        diesel::update(alert_rules::table.find(name))
            .set((
                alert_rules::enabled.eq(enabled),
                alert_rules::threshold.eq(threshold.max(1)),
                alert_rules::channels.eq(list),
                alert_rules::updated_at.eq(now_ms()),
            ))
            .execute(conn)?;
        let after = rule(conn, name)?.expect("rule just updated");
        Ok(Some((rule_settings(&before), rule_settings(&after))))
    })
}

pub fn channels(conn: &mut Conn) -> QueryResult<Vec<Channel>> {
    alert_channels::table
        .order(alert_channels::id)
        .select(Channel::as_select())
        .load(conn)
}

pub fn channel(conn: &mut Conn, id: i32) -> QueryResult<Option<Channel>> {
    alert_channels::table
        .find(id)
        .select(Channel::as_select())
        .first(conn)
        .optional()
}

/// A channel as entered on the page: kind, name and the fields of its kind.
#[derive(Debug, Clone, Default)]
pub struct ChannelInput {
    pub kind: String,
    pub name: String,
    pub url: String,
    pub base_url: String,
    pub token: String,
    pub chat_id: String,
    pub host: String,
    pub port: String,
    pub from: String,
    pub to: String,
    pub user: String,
    pub password: String,
}

/// Why a channel cannot be saved (a text key of the dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// The stored config of a channel, checked.
pub fn channel_config(i: &ChannelInput) -> Result<Value, Invalid> {
    let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    match i.kind.as_str() {
        "webhook" => {
            let url = i.url.trim();
            if !http(url) {
                return Err(Invalid("al_bad_url"));
            }
            Ok(json!({"url": url}))
        }
        "telegram" => {
            let base = i.base_url.trim().trim_end_matches('/');
            let base = if base.is_empty() {
                "https://api.telegram.org"
            } else {
                base
            };
            if !http(base) {
                return Err(Invalid("al_bad_url"));
            }
            if i.token.trim().is_empty() || i.chat_id.trim().is_empty() {
                return Err(Invalid("al_need_token"));
            }
            Ok(json!({"base_url": base, "token": i.token.trim(), "chat_id": i.chat_id.trim()}))
        }
        "email" => {
            let port: u16 = if i.port.trim().is_empty() {
                25
            } else {
                i.port.trim().parse().map_err(|_| Invalid("al_bad_port"))?
            };
            let (from, to) = (i.from.trim(), i.to.trim());
            if i.host.trim().is_empty()
                || from.parse::<lettre::message::Mailbox>().is_err()
                || to.parse::<lettre::message::Mailbox>().is_err()
            {
                return Err(Invalid("al_need_mail"));
            }
            let mut v = json!({"host": i.host.trim(), "port": port, "from": from, "to": to});
            if !i.user.trim().is_empty() {
                v["user"] = json!(i.user.trim());
                v["password"] = json!(i.password);
            }
            Ok(v)
        }
        _ => Err(Invalid("al_bad_kind")),
    }
}

/// Add a channel; returns its id.
pub fn add_channel(conn: &mut Conn, kind: &str, name: &str, config: &Value) -> QueryResult<i32> {
    let now = now_ms();
    diesel::insert_into(alert_channels::table)
        .values((
            alert_channels::kind.eq(kind),
            alert_channels::name.eq(name),
            alert_channels::config.eq(config.to_string()),
            alert_channels::enabled.eq(true),
            alert_channels::created_at.eq(now),
            alert_channels::updated_at.eq(now),
        ))
        .returning(alert_channels::id)
        .get_result(conn)
}

/// Switch a channel on or off; returns it as it was.
pub fn set_channel_enabled(
    conn: &mut Conn,
    id: i32,
    enabled: bool,
) -> QueryResult<Option<Channel>> {
    conn.immediate_transaction(|conn| {
        let Some(c) = channel(conn, id)? else {
            return Ok(None);
        };
        diesel::update(alert_channels::table.find(id))
            .set((
                alert_channels::enabled.eq(enabled),
                alert_channels::updated_at.eq(now_ms()),
            ))
            .execute(conn)?;
        Ok(Some(c))
    })
}

/// Remove a channel (and from the rules that used it); returns it as it was.
pub fn delete_channel(conn: &mut Conn, id: i32) -> QueryResult<Option<Channel>> {
    conn.immediate_transaction(|conn| {
        let Some(c) = channel(conn, id)? else {
            return Ok(None);
        };
        diesel::delete(alert_channels::table.find(id)).execute(conn)?;
        for r in rules(conn)? {
            let ids: Vec<String> = r
                .channel_ids()
                .into_iter()
                .filter(|x| *x != id)
                .map(|x| x.to_string())
                .collect();
            diesel::update(alert_rules::table.find(&r.rule))
                .set(alert_rules::channels.eq(ids.join(",")))
                .execute(conn)?;
        }
        Ok(Some(c))
    })
}

/// Newest first, below an id.
pub fn events(conn: &mut Conn, before: Option<i32>, limit: i64) -> QueryResult<Vec<Event>> {
    let mut q = alert_events::table.into_boxed();
    if let Some(b) = before {
        q = q.filter(alert_events::id.lt(b));
    }
    q.order(alert_events::id.desc())
        .limit(limit.clamp(1, 500))
        .select(Event::as_select())
        .load(conn)
}

/// The state of outbox messages, by id.
pub fn message_states(
    conn: &mut Conn,
    ids: &[i32],
) -> QueryResult<std::collections::HashMap<i32, (String, String)>> {
    Ok(outbox::table
        .filter(outbox::id.eq_any(ids))
        .select((outbox::id, outbox::kind, outbox::state))
        .load::<(i32, String, String)>(conn)?
        .into_iter()
        .map(|(id, k, s)| (id, (k, s)))
        .collect())
}

/// Record a firing and queue it to the rule's channels, unless this fingerprint fired before.
/// Returns the outbox ids queued (None: already fired).
pub fn fire(
    conn: &mut Conn,
    r: &Rule,
    fingerprint: &str,
    title: &str,
    text: &str,
) -> QueryResult<Option<Vec<i32>>> {
    conn.immediate_transaction(|conn| {
        let seen: Option<i32> = alert_events::table
            .filter(alert_events::fingerprint.eq(fingerprint))
            .select(alert_events::id)
            .first(conn)
            .optional()?;
        if seen.is_some() {
            return Ok(None);
        }
        let now = now_ms();
        let event_id: i32 = diesel::insert_into(alert_events::table)
            .values((
                alert_events::rule.eq(&r.rule),
                alert_events::fingerprint.eq(fingerprint),
                alert_events::at.eq(now),
                alert_events::title.eq(title),
                alert_events::text.eq(text),
            ))
            .returning(alert_events::id)
            .get_result(conn)?;
        let wanted = r.channel_ids();
        let chans: Vec<Channel> = alert_channels::table
            .filter(alert_channels::id.eq_any(&wanted))
            .filter(alert_channels::enabled.eq(true))
            .select(Channel::as_select())
            .load(conn)?;
        let at = chrono::DateTime::from_timestamp_millis(now)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        let mut ids = Vec::new();
        for c in chans {
            let m = NewMessage::new(
                TARGET,
                &format!("alert.{}", c.kind),
                format!("{fingerprint}#{}", c.id),
                json!({
                    "channel": c.id,
                    "event": event_id,
                    "rule": r.rule,
                    "title": title,
                    "text": text,
                    "at": at,
                }),
            );
            if let Some(id) = enqueue(conn, &m, Enqueue::Once)? {
                ids.push(id);
            }
        }
        diesel::update(alert_events::table.find(event_id))
            .set(
                alert_events::message_ids.eq(ids
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")),
            )
            .execute(conn)?;
        diesel::update(alert_rules::table.find(&r.rule))
            .set(alert_rules::last_fired_at.eq(now))
            .execute(conn)?;
        Ok(Some(ids))
    })
}

/// Check every enabled rule once; returns the outbox messages queued (wake the relay then).
pub fn evaluate(conn: &mut Conn, lang: Lang) -> StoreResult<usize> {
    let mut queued = 0;
    for r in rules(conn)?.into_iter().filter(|r| r.enabled) {
        match check(conn, &r, lang) {
            Ok(n) => queued += n,
            Err(e) => tracing::warn!(rule = %r.rule, error = %e, "alerts: rule check failed"),
        }
        diesel::update(alert_rules::table.find(&r.rule))
            .set(alert_rules::last_checked_at.eq(now_ms()))
            .execute(conn)?;
    }
    Ok(queued)
}

fn fired(res: Option<Vec<i32>>) -> usize {
    res.map(|v| v.len()).unwrap_or(0)
}

fn check(conn: &mut Conn, r: &Rule, lang: Lang) -> StoreResult<usize> {
    let now = now_ms();
    let thr = r.threshold.max(1);
    let mut n = 0;
    match r.rule.as_str() {
        EXCHANGE_FAILED => {
            let f = history::Filter {
                outcome: Some("bad".into()),
                ..Default::default()
            };
            for s in history::page(conn, &f, 20)? {
                if s.session.last_seen_at < now - FAILED_LOOKBACK_MS {
                    continue;
                }
                let title = lang.pick("Обмен с 1С завершился ошибкой", "A 1C exchange failed");
                let text = format!(
                    "{} {} ({}, {}): {}",
                    lang.pick("Сеанс", "Session"),
                    s.session.id,
                    s.session.exchange_type,
                    s.session.client_addr,
                    s.problem.as_deref().unwrap_or("")
                );
                let fp = format!("{EXCHANGE_FAILED}:{}", s.session.id);
                n += fired(fire(conn, r, &fp, title, &text)?);
            }
        }
        NO_EXCHANGE => {
            let last: Option<i64> = exchange_sessions::table
                .select(diesel::dsl::max(exchange_sessions::last_seen_at))
                .first(conn)?;
            let limit = thr * 3600 * 1000;
            let since = last.unwrap_or(r.updated_at);
            if now - since >= limit {
                // One alert per silence: keyed by the hour of the last exchange.
                let fp = match last {
                    Some(l) => format!("{NO_EXCHANGE}:{}", l / 3_600_000),
                    None => format!("{NO_EXCHANGE}:never"),
                };
                let title = lang.pick("Нет обменов с 1С", "No 1C exchanges");
                let text = match last {
                    Some(l) => format!(
                        "{} {} {} ({})",
                        lang.pick("Больше", "No exchange for more than"),
                        thr,
                        lang.pick("ч. не было обмена с 1С", "hours"),
                        lang.pick(
                            &format!("последний: {}", crate::web::dash::when(l)),
                            &format!("last: {}", crate::web::dash::when(l))
                        )
                    ),
                    None => lang
                        .pick(
                            "1С ещё ни разу не выполняла обмен.",
                            "1C has never exchanged yet.",
                        )
                        .to_string(),
                };
                n += fired(fire(conn, r, &fp, title, &text)?);
            }
        }
        MESSAGES_DEAD => {
            let dead: i64 = outbox::table
                .filter(outbox::state.eq(crate::relay::state::DEAD))
                .filter(outbox::target.ne(TARGET))
                .count()
                .get_result(conn)?;
            n += count_rule(
                conn,
                r,
                dead >= thr,
                |lang| {
                    (
                        lang.pick("Сообщения не доставлены", "Messages undeliverable")
                            .to_string(),
                        format!(
                            "{}: {dead}",
                            lang.pick(
                                "Сообщений, доставка которых прекращена (dead)",
                                "Outbox messages given up (dead)"
                            )
                        ),
                    )
                },
                lang,
            )?;
        }
        RECONCILIATION_DIFF => {
            let latest: Option<(i32, String, i32)> = reconciliation_reports::table
                .filter(reconciliation_reports::state.eq("done"))
                .order(reconciliation_reports::id.desc())
                .select((
                    reconciliation_reports::id,
                    reconciliation_reports::target,
                    reconciliation_reports::differences,
                ))
                .first(conn)
                .optional()?;
            if let Some((id, target, diff)) = latest.filter(|l| l.2 as i64 >= thr) {
                let title = lang.pick("Расхождения при сверке", "Reconciliation differences");
                let text = format!(
                    "{} #{id} ({target}): {diff} {}",
                    lang.pick("Сверка", "Report"),
                    lang.pick("расхождений", "differences")
                );
                let fp = format!("{RECONCILIATION_DIFF}:{id}");
                n += fired(fire(conn, r, &fp, title, &text)?);
            }
        }
        OZON_KEY_REJECTED => {
            let rows: Vec<(i32, Option<i32>)> = api_calls::table
                .filter(api_calls::target.eq("ozon"))
                .filter(api_calls::http_status.eq_any([401, 403]))
                .filter(api_calls::id.gt(r.cursor as i32))
                .order(api_calls::id)
                .select((api_calls::id, api_calls::http_status))
                .load(conn)?;
            if let Some((last, status)) = rows.last().copied() {
                diesel::update(alert_rules::table.find(&r.rule))
                    .set(alert_rules::cursor.eq(last as i64))
                    .execute(conn)?;
                if rows.len() as i64 >= thr {
                    let title = lang.pick("Ozon отклонил ключ API", "Ozon rejected the API key");
                    let text = format!(
                        "{} {} ({}: {})",
                        lang.pick("Ozon ответил", "Ozon answered"),
                        status.unwrap_or_default(),
                        lang.pick(
                            "отказов с прошлой проверки",
                            "refusals since the last check"
                        ),
                        rows.len()
                    );
                    let fp = format!("{OZON_KEY_REJECTED}:{last}");
                    n += fired(fire(conn, r, &fp, title, &text)?);
                }
            }
        }
        _ => {}
    }
    Ok(n)
}

/// A count rule: fires once when `over` becomes true, re-arms when it becomes false.
fn count_rule(
    conn: &mut Conn,
    r: &Rule,
    over: bool,
    texts: impl Fn(Lang) -> (String, String),
    lang: Lang,
) -> StoreResult<usize> {
    if over && !r.active {
        let (title, text) = texts(lang);
        let fp = format!("{}:{}", r.rule, r.episode);
        let n = fired(fire(conn, r, &fp, &title, &text)?);
        diesel::update(alert_rules::table.find(&r.rule))
            .set(alert_rules::active.eq(true))
            .execute(conn)?;
        return Ok(n);
    }
    if !over && r.active {
        diesel::update(alert_rules::table.find(&r.rule))
            .set((
                alert_rules::active.eq(false),
                alert_rules::episode.eq(r.episode + 1),
            ))
            .execute(conn)?;
    }
    Ok(0)
}

// --- delivery -----------------------------------------------------------------------------------

/// Delivers one kind of alert message (`alert.webhook`, `alert.telegram`, `alert.email`).
pub struct AlertHandler {
    kind: &'static str,
    channel_kind: &'static str,
    pool: DbPool,
    http: reqwest::Client,
}

/// The handlers of all channel kinds.
pub fn handlers(pool: &DbPool) -> Vec<Arc<dyn Handler>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    [
        ("alert.webhook", "webhook"),
        ("alert.telegram", "telegram"),
        ("alert.email", "email"),
    ]
    .into_iter()
    .map(|(kind, channel_kind)| {
        Arc::new(AlertHandler {
            kind,
            channel_kind,
            pool: pool.clone(),
            http: http.clone(),
        }) as Arc<dyn Handler>
    })
    .collect()
}

/// What one try came to.
struct Try {
    status: Option<i32>,
    outcome: OutcomeKind,
    response: Option<String>,
    endpoint: &'static str,
    request: String,
}

fn http_outcome(status: u16, body: &str) -> OutcomeKind {
    match status {
        200..=299 => OutcomeKind::Done,
        408 | 429 | 500..=599 => OutcomeKind::Retry {
            error: format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
            after: None,
        },
        _ => OutcomeKind::Dead {
            error: format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        },
    }
}

impl AlertHandler {
    async fn load_channel(&self, id: i64) -> StoreResult<Option<Channel>> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get()?;
            Ok(channel(&mut c, id as i32)?)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn post_json(&self, url: &str, body: &Value, endpoint: &'static str) -> Try {
        let request = body.to_string();
        match self.http.post(url).json(body).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                Try {
                    status: Some(status as i32),
                    outcome: http_outcome(status, &text),
                    response: Some(text),
                    endpoint,
                    request,
                }
            }
            // Without the URL: a Telegram URL carries the bot token.
            Err(e) => Try {
                status: None,
                outcome: OutcomeKind::Retry {
                    error: format!("{}", e.without_url()),
                    after: None,
                },
                response: None,
                endpoint,
                request,
            },
        }
    }

    async fn send(&self, c: &Channel, m: &Message) -> Try {
        let cfg = c.config();
        let s = |k: &str| cfg[k].as_str().unwrap_or("").to_string();
        let title = m.payload["title"].as_str().unwrap_or("");
        let text = m.payload["text"].as_str().unwrap_or("");
        match c.kind.as_str() {
            "webhook" => {
                let body = json!({
                    "rule": m.payload["rule"],
                    "title": title,
                    "text": text,
                    "at": m.payload["at"],
                });
                self.post_json(&s("url"), &body, "webhook").await
            }
            "telegram" => {
                let url = format!(
                    "{}/bot{}/sendMessage",
                    s("base_url").trim_end_matches('/'),
                    s("token")
                );
                let chat: Value = match s("chat_id").parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(s("chat_id")),
                };
                let body = json!({"chat_id": chat, "text": format!("{title}\n{text}")});
                self.post_json(&url, &body, "telegram.sendMessage").await
            }
            "email" => self.email(&cfg, title, text).await,
            other => Try {
                status: None,
                outcome: OutcomeKind::Dead {
                    error: format!("unknown channel kind {other}"),
                },
                response: None,
                endpoint: "unknown",
                request: String::new(),
            },
        }
    }

    /// Plain SMTP (no TLS: use a relay on a trusted network).
    async fn email(&self, cfg: &Value, title: &str, text: &str) -> Try {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        let s = |k: &str| cfg[k].as_str().unwrap_or("").to_string();
        let request = format!("From: {}\nTo: {}\nSubject: {title}", s("from"), s("to"));
        let fail = |outcome: OutcomeKind| Try {
            status: None,
            outcome,
            response: None,
            endpoint: "smtp",
            request: request.clone(),
        };
        let msg = match (s("from").parse(), s("to").parse()) {
            (Ok(from), Ok(to)) => lettre::Message::builder()
                .from(from)
                .to(to)
                .subject(title)
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(text.to_string()),
            _ => {
                return fail(OutcomeKind::Dead {
                    error: "bad from/to address".into(),
                })
            }
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                return fail(OutcomeKind::Dead {
                    error: e.to_string(),
                })
            }
        };
        let port = cfg["port"].as_u64().unwrap_or(25) as u16;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s("host"))
            .port(port)
            .timeout(Some(Duration::from_secs(20)));
        if !s("user").is_empty() {
            b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                s("user"),
                s("password"),
            ));
        }
        match b.build().send(msg).await {
            Ok(resp) => Try {
                status: Some(resp.code().to_string().parse().unwrap_or(250)),
                outcome: OutcomeKind::Done,
                response: Some(resp.message().collect::<Vec<_>>().join(" ")),
                endpoint: "smtp",
                request,
            },
            Err(e) if e.is_permanent() => fail(OutcomeKind::Dead {
                error: e.to_string(),
            }),
            Err(e) => fail(OutcomeKind::Retry {
                error: e.to_string(),
                after: None,
            }),
        }
    }

    async fn deliver_one(&self, m: Message) -> Outcome {
        let id = m.payload["channel"].as_i64().unwrap_or(0);
        let c = match self.load_channel(id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Outcome::dead(m.id, None, format!("channel {id} was deleted")),
            Err(e) => return Outcome::retry(m.id, None, e.to_string()),
        };
        if !c.enabled {
            return Outcome::dead(m.id, None, format!("channel {id} is disabled"));
        }
        let started = Instant::now();
        let t = self.send(&c, &m).await;
        let (label, error) = match &t.outcome {
            OutcomeKind::Done => ("ok", None),
            OutcomeKind::Retry { error, .. } => ("retry", Some(error.clone())),
            OutcomeKind::Dead { error } => ("fatal", Some(error.clone())),
            OutcomeKind::Later { reason, .. } => ("retry", Some(reason.clone())),
            OutcomeKind::Wait { error, .. } => ("wait", Some(error.clone())),
        };
        let call = Call {
            target: TARGET.into(),
            endpoint: t.endpoint.into(),
            at: 0,
            duration_ms: started.elapsed().as_millis() as i64,
            http_status: t.status,
            outcome: label.into(),
            messages: 1,
            error,
            // The request as sent, minus secrets (the bot token is only in the URL).
            request: Some(t.request.clone()),
            response: t.response.clone(),
        };
        let pool = self.pool.clone();
        let call_id = tokio::task::spawn_blocking(move || {
            let mut c = pool.get().ok()?;
            record_call(&mut c, &call).ok()
        })
        .await
        .ok()
        .flatten();
        let mut o = Outcome::with_kind(m.id, call_id, t.outcome);
        o.response = t.response;
        o
    }
}

impl Handler for AlertHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn batch(&self) -> usize {
        1
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                debug_assert_eq!(m.kind, format!("alert.{}", self.channel_kind));
                out.push(self.deliver_one(m).await);
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
        (dir, pool)
    }

    fn enable(c: &mut Conn, rule: &str, threshold: i64) -> i32 {
        let ch = add_channel(c, "webhook", "h", &json!({"url": "http://127.0.0.1:9/"})).unwrap();
        update_rule(c, rule, true, threshold, &[ch])
            .unwrap()
            .unwrap();
        ch
    }

    fn alert_messages(c: &mut Conn) -> i64 {
        outbox::table
            .filter(outbox::target.eq(TARGET))
            .count()
            .get_result(c)
            .unwrap()
    }

    fn dead_message(c: &mut Conn, key: &str) -> i32 {
        let id = enqueue(
            c,
            &NewMessage::new("ozon", "ozon.stock", key, json!({})),
            Enqueue::Always,
        )
        .unwrap()
        .unwrap();
        diesel::update(outbox::table.find(id))
            .set(outbox::state.eq("dead"))
            .execute(c)
            .unwrap();
        id
    }

    #[test]
    fn dead_messages_fire_once_and_rearm_below_the_threshold() {
        let (_d, pool) = db();
        let c = &mut pool.get().unwrap();
        enable(c, MESSAGES_DEAD, 2);
        let a = dead_message(c, "a");
        assert_eq!(evaluate(c, Lang::Ru).unwrap(), 0, "one dead is below 2");
        dead_message(c, "b");
        assert_eq!(evaluate(c, Lang::Ru).unwrap(), 1);
        assert_eq!(
            evaluate(c, Lang::Ru).unwrap(),
            0,
            "same incident: no resend"
        );
        dead_message(c, "c");
        assert_eq!(evaluate(c, Lang::Ru).unwrap(), 0, "still the same incident");
        // Below the threshold again: re-armed; the next rise is a new incident.
        diesel::delete(
            outbox::table
                .filter(outbox::state.eq("dead"))
                .filter(outbox::id.ne(a)),
        )
        .execute(c)
        .unwrap();
        assert_eq!(evaluate(c, Lang::Ru).unwrap(), 0);
        dead_message(c, "d");
        assert_eq!(evaluate(c, Lang::Ru).unwrap(), 1);
        assert_eq!(alert_messages(c), 2);
        let ev = events(c, None, 10).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].fingerprint, "messages_dead:1");
        assert!(ev[0].title.contains("не доставлены"), "{}", ev[0].title);
    }

    #[test]
    fn ozon_rejections_since_the_last_check() {
        let (_d, pool) = db();
        let c = &mut pool.get().unwrap();
        enable(c, OZON_KEY_REJECTED, 1);
        let call = |c: &mut Conn, target: &str, status: i32| {
            record_call(
                c,
                &Call {
                    target: target.into(),
                    endpoint: "/v1/x".into(),
                    http_status: Some(status),
                    outcome: "wait".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        };
        call(c, "ozon", 200);
        call(c, "cdek", 401);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        call(c, "ozon", 403);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 1);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0, "already seen");
        call(c, "ozon", 401);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 1, "a new rejection");
    }

    #[test]
    fn latest_reconciliation_with_differences() {
        let (_d, pool) = db();
        let c = &mut pool.get().unwrap();
        enable(c, RECONCILIATION_DIFF, 3);
        let report = |c: &mut Conn, state: &str, diff: i32| {
            diesel::insert_into(reconciliation_reports::table)
                .values((
                    reconciliation_reports::target.eq("ozon"),
                    reconciliation_reports::started_at.eq(now_ms()),
                    reconciliation_reports::state.eq(state),
                    reconciliation_reports::differences.eq(diff),
                ))
                .execute(c)
                .unwrap();
        };
        report(c, "done", 2);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        report(c, "running", 9);
        assert_eq!(
            evaluate(c, Lang::En).unwrap(),
            0,
            "only finished reports count"
        );
        report(c, "done", 5);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 1);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
    }

    #[test]
    fn disabled_rules_and_deleted_channels() {
        let (_d, pool) = db();
        let c = &mut pool.get().unwrap();
        let ch = enable(c, MESSAGES_DEAD, 1);
        update_rule(c, MESSAGES_DEAD, false, 1, &[ch]).unwrap();
        dead_message(c, "a");
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        assert!(events(c, None, 10).unwrap().is_empty());
        update_rule(c, MESSAGES_DEAD, true, 1, &[ch, 999]).unwrap();
        assert_eq!(
            rule(c, MESSAGES_DEAD).unwrap().unwrap().channel_ids(),
            vec![ch]
        );
        delete_channel(c, ch).unwrap().unwrap();
        assert!(rule(c, MESSAGES_DEAD)
            .unwrap()
            .unwrap()
            .channel_ids()
            .is_empty());
        // Recorded, but no channel to deliver to.
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        assert_eq!(events(c, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn no_exchange_for_longer_than_the_threshold() {
        let (_d, pool) = db();
        let c = &mut pool.get().unwrap();
        enable(c, NO_EXCHANGE, 2);
        let hours = |h: i64| now_ms() - h * 3_600_000;
        assert_eq!(
            evaluate(c, Lang::En).unwrap(),
            0,
            "just enabled, never exchanged"
        );
        diesel::update(alert_rules::table.find(NO_EXCHANGE))
            .set(alert_rules::updated_at.eq(hours(3)))
            .execute(c)
            .unwrap();
        assert_eq!(evaluate(c, Lang::En).unwrap(), 1);
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        let seen = hours(1);
        diesel::insert_into(exchange_sessions::table)
            .values((
                exchange_sessions::id.eq("s1"),
                exchange_sessions::sessid.eq("x"),
                exchange_sessions::exchange_type.eq("catalog"),
                exchange_sessions::client_addr.eq("127.0.0.1"),
                exchange_sessions::login.eq("1c"),
                exchange_sessions::created_at.eq(seen),
                exchange_sessions::last_seen_at.eq(seen),
                exchange_sessions::auth_timestamp.eq(seen),
                exchange_sessions::zip.eq(false),
                exchange_sessions::file_limit.eq(0),
                exchange_sessions::initialized.eq(true),
                exchange_sessions::closed.eq(true),
            ))
            .execute(c)
            .unwrap();
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0, "an exchange an hour ago");
        let silent = hours(5);
        diesel::update(exchange_sessions::table)
            .set(exchange_sessions::last_seen_at.eq(silent))
            .execute(c)
            .unwrap();
        assert_eq!(evaluate(c, Lang::En).unwrap(), 1, "a new silence");
        assert_eq!(evaluate(c, Lang::En).unwrap(), 0);
        let ev = events(c, None, 10).unwrap();
        assert_eq!(ev[1].fingerprint, "no_exchange:never");
        assert_eq!(
            ev[0].fingerprint,
            format!("no_exchange:{}", silent / 3_600_000)
        );
    }

    #[test]
    fn channel_configs_are_checked_and_secrets_masked() {
        let tg = ChannelInput {
            kind: "telegram".into(),
            token: "123:abc".into(),
            chat_id: "-100".into(),
            ..Default::default()
        };
        let v = channel_config(&tg).unwrap();
        assert_eq!(v["base_url"], "https://api.telegram.org");
        let shown = masked_config(&v);
        assert!(
            !shown.contains("123:abc") && shown.contains("token=••••••"),
            "{shown}"
        );
        let mail = ChannelInput {
            kind: "email".into(),
            host: "mx".into(),
            from: "a@b.c".into(),
            to: "d@e.f".into(),
            user: "u".into(),
            password: "p4ss".into(),
            ..Default::default()
        };
        let v = channel_config(&mail).unwrap();
        assert_eq!(v["port"], 25);
        assert!(!masked_config(&v).contains("p4ss"));
        let bad = |i: ChannelInput| channel_config(&i).unwrap_err().0;
        assert_eq!(
            bad(ChannelInput {
                kind: "webhook".into(),
                url: "ftp://x".into(),
                ..Default::default()
            }),
            "al_bad_url"
        );
        assert_eq!(
            bad(ChannelInput {
                kind: "email".into(),
                host: "mx".into(),
                from: "nope".into(),
                to: "d@e.f".into(),
                ..Default::default()
            }),
            "al_need_mail"
        );
        assert_eq!(
            bad(ChannelInput {
                kind: "sms".into(),
                ..Default::default()
            }),
            "al_bad_kind"
        );
    }
}
