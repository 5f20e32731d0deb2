//! Alerts end to end: channels and a rule configured through the /alerts forms, a broken 1C
//! upload, "check now" → one alert at an in-test webhook, a fake Telegram Bot API and a tiny SMTP
//! server; no resend on a second check; a failing webhook is retried by the outbox. Also
//! /metrics, and that a viewer cannot change rules.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{add_user, eventually, import_xml, Dash, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One HTTP request as received: (path, body).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A minimal HTTP receiver: records every request; answers 500 to the first `fail_first`, then
/// 200 `{"ok":true}`.
async fn http_receiver(fail_first: usize) -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let mut first = String::new();
                if r.read_line(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push((path, String::from_utf8_lossy(&body).into_owned()));
                    s.len()
                };
                let (status, text) = if n <= fail_first {
                    ("500 Internal Server Error", "{\"ok\":false}")
                } else {
                    ("200 OK", "{\"ok\":true}")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let mut sock = r.into_inner();
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, seen)
}

/// A minimal SMTP server: records the DATA of every mail.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let m2 = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let mails = m2.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let _ = r.get_mut().write_all(b"220 test ESMTP\r\n").await;
                let mut data: Option<String> = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(d) = data.as_mut() {
                        if line == ".\r\n" {
                            mails.lock().unwrap().push(data.take().unwrap());
                            let _ = r.get_mut().write_all(b"250 queued\r\n").await;
                        } else {
                            d.push_str(&line);
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let answer: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 test\r\n"
                    } else if cmd.starts_with("DATA") {
                        data = Some(String::new());
                        b"354 go on\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = r.get_mut().write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    let _ = r.get_mut().write_all(answer).await;
                }
            });
        }
    });
    (port, mails)
}

fn count_of(seen: &Seen) -> usize {
    seen.lock().unwrap().len()
}

async fn created(d: &Dash, path: &str, fields: &[(&str, &str)]) {
    let p = d.post(path, fields).await;
    assert_eq!(p.status, 303, "{path}: {}", p.body);
    let loc = p.location.unwrap_or_default();
    assert!(loc.starts_with("/alerts"), "{loc}");
}

#[tokio::test]
async fn broken_upload_alerts_once_per_channel_and_retries() {
    let (hook_url, hook) = http_receiver(1).await;
    let (tg_url, tg) = http_receiver(0).await;
    let (smtp_port, mails) = smtp_receiver().await;
    let srv = Server::start_with(&[("OBMEN_RELAY_BACKOFF_MS", "300"), ("OBMEN_LANG", "en")]);
    add_user(srv.data.path(), "root", "admin", "password1");
    add_user(srv.data.path(), "vera", "viewer", "password1");
    let d = Dash::login(&srv.base, "root", "password1").await.unwrap();

    // Channels and the rule, through the page's forms.
    created(
        &d,
        "/alerts/channels",
        &[
            ("kind", "webhook"),
            ("name", "hook"),
            ("url", &format!("{hook_url}/hook")),
        ],
    )
    .await;
    created(
        &d,
        "/alerts/channels",
        &[
            ("kind", "telegram"),
            ("name", "tg"),
            ("base_url", &tg_url),
            ("token", "123:SECRET-TOKEN"),
            ("chat_id", "42"),
        ],
    )
    .await;
    let port = smtp_port.to_string();
    created(
        &d,
        "/alerts/channels",
        &[
            ("kind", "email"),
            ("name", "mail"),
            ("host", "127.0.0.1"),
            ("port", &port),
            ("from", "obmen@example.com"),
            ("to", "ops@example.com"),
        ],
    )
    .await;
    let page = d.get("/alerts").await;
    assert_eq!(page.status, 200);
    for id in 1..=3 {
        assert!(
            page.body.contains(&format!("id=\"channel-{id}\"")),
            "{}",
            page.body
        );
    }
    assert!(
        !page.body.contains("SECRET-TOKEN"),
        "the bot token must be masked"
    );
    assert!(page.body.contains("token=••••••"), "{}", page.body);

    // A viewer cannot change the rule; a form without the CSRF token is refused.
    let v = Dash::login(&srv.base, "vera", "password1").await.unwrap();
    let refused = v
        .post(
            "/alerts/rules/exchange_failed",
            &[("enabled", "on"), ("threshold", "1")],
        )
        .await;
    assert_eq!(refused.status, 403);
    let refused = v
        .post(
            "/alerts/channels",
            &[("kind", "webhook"), ("url", "http://x/")],
        )
        .await;
    assert_eq!(refused.status, 403);
    let no_csrf = d
        .post_raw("/alerts/rules/exchange_failed", &[("enabled", "on")])
        .await;
    assert_eq!(no_csrf.status, 403);
    let page = d.get("/alerts").await;
    assert!(!page.body.contains("checked"), "nothing may be enabled yet");

    created(
        &d,
        "/alerts/rules/exchange_failed",
        &[
            ("enabled", "on"),
            ("threshold", "1"),
            ("channel", "1"),
            ("channel", "2"),
            ("channel", "3"),
        ],
    )
    .await;
    let page = d.get("/alerts").await;
    assert_eq!(
        page.body.matches("checked").count(),
        4,
        "enabled + 3 channels"
    );

    // Nothing failed yet: a check sends nothing.
    created(&d, "/alerts/check", &[]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!((count_of(&hook), count_of(&tg)), (0, 0));

    // A broken catalog file: the session ends red.
    let bad = import_xml(&["g1", "g2"], Some(1));
    let r = srv
        .upload_and_import(&[("import0_1.xml", bad.as_bytes())], &["import0_1.xml"])
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);

    created(&d, "/alerts/check", &[]).await;
    eventually(20, "the Telegram alert", || async {
        (count_of(&tg) >= 1).then_some(())
    })
    .await;
    // The webhook answered 500 first: the outbox tries again.
    eventually(20, "the webhook alert after a retry", || async {
        (count_of(&hook) >= 2).then_some(())
    })
    .await;
    eventually(20, "the mail", || async {
        (!mails.lock().unwrap().is_empty()).then_some(())
    })
    .await;

    // An admin switches a channel off and on again.
    created(&d, "/alerts/channels/3/enabled", &[]).await;
    let page = d.get("/alerts").await;
    assert!(
        page.body.contains("<tr id=\"channel-3\" class=\"muted\">"),
        "{}",
        page.body
    );
    created(&d, "/alerts/channels/3/enabled", &[("enabled", "on")]).await;
    let page = d.get("/alerts").await;
    assert!(
        page.body.contains("<tr id=\"channel-3\" class=\"\">"),
        "{}",
        page.body
    );

    // A second check does not resend.
    created(&d, "/alerts/check", &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_of(&tg), 1);
    assert_eq!(count_of(&hook), 2);
    assert_eq!(mails.lock().unwrap().len(), 1);

    let (path, body) = tg.lock().unwrap()[0].clone();
    assert_eq!(path, "/bot123:SECRET-TOKEN/sendMessage");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["chat_id"], 42);
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("A 1C exchange failed"),
        "{v}"
    );
    let hooks = hook.lock().unwrap().clone();
    assert_eq!(hooks[0], hooks[1], "the retry carries the same alert");
    assert_eq!(hooks[1].0, "/hook");
    let v: serde_json::Value = serde_json::from_str(&hooks[1].1).unwrap();
    assert_eq!(v["rule"], "exchange_failed");
    assert_eq!(v["title"], "A 1C exchange failed");
    assert!(v["text"].as_str().unwrap().contains("catalog"), "{v}");
    assert!(v["at"].as_str().is_some_and(|a| a.len() >= 20), "{v}");
    let mail = mails.lock().unwrap()[0].clone();
    assert!(mail.contains("Subject: A 1C exchange failed"), "{mail}");
    assert!(mail.contains("To: ops@example.com"), "{mail}");

    // The bot token is in no message and no journaled call.
    for path in [
        "/api/v1/outbox?target=alerts",
        "/api/v1/calls?target=alerts",
    ] {
        let (status, v) = srv.api(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert!(v.to_string().contains("alert"), "{path}: {v}");
        assert!(!v.to_string().contains("SECRET-TOKEN"), "{path}: {v}");
    }

    // The page shows one firing, delivered on all three channels.
    let page = eventually(10, "three messages done", || async {
        let p = d.get("/alerts").await;
        (p.body.matches("data-state=\"done\"").count() == 3).then_some(p)
    })
    .await;
    assert_eq!(
        page.body.matches("class=\"alert-event\"").count(),
        1,
        "{}",
        page.body
    );
    assert!(page.body.contains("data-fingerprint=\"exchange_failed:"));
    assert!(page.body.contains("href=\"/messages/"));

    // Metrics: the exchange requests by type/mode/answer, the outbox depth, the alert calls.
    let m = reqwest::get(format!("{}/metrics", srv.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |name: &str, labels: &[&str]| {
        m.lines()
            .any(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
    };
    assert!(
        has(
            "obmen_exchange_requests_total{",
            &["type=\"catalog\"", "mode=\"import\"", "answer=\"failure\""]
        ),
        "{m}"
    );
    assert!(
        has(
            "obmen_exchange_requests_total{",
            &[
                "type=\"catalog\"",
                "mode=\"checkauth\"",
                "answer=\"success\""
            ]
        ),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l == "obmen_outbox_messages{state=\"done\",target=\"alerts\"} 3"),
        "{m}"
    );
    assert!(
        has(
            "obmen_api_call_errors_total{",
            &[
                "target=\"alerts\"",
                "endpoint=\"webhook\"",
                "outcome=\"retry\""
            ]
        ),
        "{m}"
    );
    assert!(
        has(
            "obmen_import_duration_seconds_count{",
            &["state=\"failed\""]
        ),
        "{m}"
    );
    assert!(m.contains("obmen_orders_pending_1c 0"), "{m}");
    // SQLite's heap (statements, and page caches beyond the page slab `store::sqlite_page_slab`
    // sets aside; BENCHMARKS.md, load).
    let sqlite: Option<i64> = m
        .lines()
        .find_map(|l| l.strip_prefix("obmen_sqlite_memory_bytes "))
        .map(|v| v.parse().unwrap());
    if obmen::store::testing::on_pg() {
        assert_eq!(sqlite, Some(0), "{m}");
    } else {
        assert!(sqlite.is_some_and(|b| b > 100_000), "{m}");
    }
}

#[tokio::test]
async fn metrics_count_exchanges_and_need_no_login() {
    let srv = Server::start();
    let r = srv
        .upload_and_import(
            &[("import.xml", import_xml(&["g1", "g2"], None).as_bytes())],
            &["import.xml"],
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    let resp = reqwest::get(format!("{}/metrics", srv.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let m = resp.text().await.unwrap();
    let line = m
        .lines()
        .find(|l| {
            l.starts_with("obmen_exchange_requests_total{")
                && l.contains("mode=\"import\"")
                && l.contains("answer=\"success\"")
        })
        .unwrap_or_else(|| panic!("{m}"));
    assert!(line.ends_with(" 1"), "{line}");
    let items = m
        .lines()
        .find(|l| l.starts_with("obmen_import_items_total{item=\"goods\"}"))
        .unwrap_or_else(|| panic!("{m}"));
    assert!(items.ends_with(" 2"), "{items}");
    assert!(
        m.contains("obmen_import_duration_seconds_count{state=\"done\"} 1"),
        "{m}"
    );
}

/// The "done when": the Ozon simulator is made to fail, messages go dead, and the
/// administrator gets an alert (once) through the webhook channel; re-armed after a retry fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_simulator_alerts_through_the_messages_dead_rule() {
    let (hook_url, hook) = http_receiver(0).await;
    let sim = common::Sim::start(&[]);
    sim.control("/sim/faults", serde_json::json!({"rate_500": 1.0}))
        .await;
    let mut env = sim.obmen_env();
    env.push(("OBMEN_RELAY_MAX_ATTEMPTS", "1".into()));
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&e);
    add_user(srv.data.path(), "root", "admin", "password1");
    let d = Dash::login(&srv.base, "root", "password1").await.unwrap();
    created(
        &d,
        "/alerts/channels",
        &[
            ("kind", "webhook"),
            ("name", "hook"),
            ("url", &format!("{hook_url}/hook")),
        ],
    )
    .await;
    created(
        &d,
        "/alerts/rules/messages_dead",
        &[("enabled", "on"), ("threshold", "1"), ("channel", "1")],
    )
    .await;
    created(&d, "/alerts/check", &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count_of(&hook), 0, "nothing is dead yet");

    let ids = ["d1", "d2"];
    let import = import_xml(&ids, None);
    let offers = common::offers_xml(&ids);
    let r = srv
        .upload_and_import(
            &[
                ("import.xml", import.as_bytes()),
                ("offers.xml", offers.as_bytes()),
            ],
            &["import.xml", "offers.xml"],
        )
        .await;
    assert_eq!(r.first(), "success");
    eventually(60, "dead Ozon messages", || async {
        let (_, v) = srv.api("/api/v1/outbox?state=dead&target=ozon").await;
        (!v["messages"].as_array()?.is_empty()).then_some(())
    })
    .await;
    created(&d, "/alerts/check", &[]).await;
    eventually(30, "the alert at the webhook", || async {
        (count_of(&hook) == 1).then_some(())
    })
    .await;
    let (_, body) = hook.lock().unwrap()[0].clone();
    assert!(body.contains("messages_dead"), "{body}");
    // A second check: the same incident, no second alert.
    created(&d, "/alerts/check", &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count_of(&hook), 1);
}
