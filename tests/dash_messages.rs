//! The dashboard's message register, audit log and settings, end to end: real dead outbox
//! messages (the Ozon simulator failing every call, one attempt allowed), then the roles, the
//! CSRF check, retry, payload edit, cancel, delete and bulk retry, checked against the outbox
//! (JSON API), the simulator's counts and the audit page.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn outbox(srv: &Server, query: &str) -> Vec<Value> {
    let (s, v) = srv.api(&format!("/api/v1/outbox?limit=1000&{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

async fn message(srv: &Server, id: i64) -> (u16, Value) {
    let (s, v) = srv.api(&format!("/api/v1/outbox/{id}")).await;
    (s, v["message"].clone())
}

async fn state_of(srv: &Server, id: i64) -> String {
    message(srv, id).await.1["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn payload_of(m: &Value) -> Value {
    serde_json::from_str(m["payload"].as_str().unwrap()).unwrap()
}

/// Undo askama's HTML escaping of the characters JSON uses.
fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The audit page's row of an action on a target: (before, after) cells, unescaped.
fn audit_row(body: &str, action: &str, target: &str) -> Option<(String, String)> {
    body.split("<tr class=\"audit-row\"")
        .skip(1)
        .find_map(|row| {
            let row = row.split("</tr>").next()?;
            if !row.contains(&format!("data-action=\"{action}\"")) {
                return None;
            }
            let cell = |class: &str| {
                let i = row.find(&format!("class=\"{class}\">"))? + class.len() + 9;
                Some(unescape(&row[i..i + row[i..].find("</td>")?]))
            };
            let t = cell("mono")?;
            if t != target {
                return None;
            }
            Some((cell("mono before")?, cell("mono after")?))
        })
}

async fn stock_on_ozon(sim: &Sim, offer_id: &str) -> Value {
    let (_, p) = sim
        .get(&format!("/sim/products/{}", offer_id.replace('#', "%23")))
        .await;
    p["stocks"][SIM_WAREHOUSE].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_retry_edit_cancel_and_bulk_retry_dead_messages() {
    let sim = Sim::start(&["--stock-cooldown-secs", "1"]);
    // Every call fails: with one attempt allowed, every message is dead at once.
    sim.control("/sim/faults", json!({"rate_500": 1.0})).await;
    let mut env = sim.obmen_env();
    env.push(("OBMEN_RELAY_MAX_ATTEMPTS", "1".into()));
    env.push(("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1".into()));
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&e);
    let dir = tempfile::tempdir().unwrap();
    gen_catalog(dir.path(), 20, 31, false);
    emulate(
        &srv.url(),
        &[],
        &[
            &dir.path().join("import.xml"),
            &dir.path().join("offers.xml"),
        ],
    );
    eventually(60, "every stock message dead", || async {
        let all = outbox(&srv, "kind=ozon.stock").await;
        (all.len() >= 6 && all.iter().all(|m| m["state"] == "dead")).then_some(())
    })
    .await;
    // Settled: nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead = outbox(&srv, "kind=ozon.stock").await;
    assert!(dead.iter().all(|m| m["state"] == "dead"));
    assert!(
        !dead[0]["last_error"].as_str().unwrap_or("").is_empty(),
        "{}",
        dead[0]
    );
    assert_eq!(sim.stats().await["stock_updates"], 0);
    let ids: Vec<i64> = dead.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);

    add_user(srv.data.path(), "vera", "viewer", "password1");
    add_user(srv.data.path(), "anna", "operator", "password1");
    add_user(srv.data.path(), "root", "admin", "password1");
    let viewer = Dash::login(&srv.base, "vera", "password1").await.unwrap();
    let op = Dash::login(&srv.base, "anna", "password1").await.unwrap();
    let admin = Dash::login(&srv.base, "root", "password1").await.unwrap();

    // A viewer sees the register and the message, without any action.
    let list = viewer.get("/messages?kind=ozon.stock&state=dead").await;
    assert_eq!(list.status, 200, "{}", list.body);
    for id in &ids {
        assert!(
            list.body.contains(&format!("data-id=\"{id}\"")),
            "{id} listed"
        );
    }
    assert!(list.body.contains("class=\"badge bad\""));
    assert!(!list.body.contains("action=\"/messages/retry\""));
    let show = viewer.get(&format!("/messages/{a}")).await;
    assert_eq!(show.status, 200);
    assert!(show.body.contains("id=\"payload\""));
    assert!(
        show.body.contains("id=\"call\""),
        "the journaled call is shown"
    );
    assert!(!show.body.contains("/retry\""));
    assert!(!show.body.contains("/cancel\""));
    let r = viewer.post(&format!("/messages/{a}/retry"), &[]).await;
    assert_eq!(r.status, 403);
    let r = viewer
        .post("/messages/retry", &[("kind", "ozon.stock")])
        .await;
    assert_eq!(r.status, 403);
    // Keyset page: only older messages.
    let older = viewer
        .get(&format!("/messages?kind=ozon.stock&before={}", ids[2]))
        .await;
    assert!(older.body.contains(&format!("data-id=\"{}\"", ids[3])));
    assert!(!older.body.contains(&format!("data-id=\"{}\"", ids[2])));
    assert!(!older.body.contains(&format!("data-id=\"{a}\"")));
    // The operator's page has the actions; the filters narrow the list.
    let page = op.get(&format!("/messages/{a}")).await;
    assert!(page
        .body
        .contains(&format!("action=\"/messages/{a}/retry\"")));
    assert!(page.body.contains("name=\"payload\""));
    assert!(
        !page.body.contains("/delete\""),
        "delete is for administrators"
    );
    let key = dead[0]["key"].as_str().unwrap();
    let one = op
        .get(&format!("/messages?kind=ozon.stock&q={}", urlencode(key)))
        .await;
    assert!(one.body.contains(&format!("data-id=\"{a}\"")));
    assert!(!one.body.contains(&format!("data-id=\"{b}\"")), "{key}");

    // A forged form (no CSRF token) changes nothing.
    let r = op.post_raw(&format!("/messages/{a}/retry"), &[]).await;
    assert_eq!(r.status, 403);
    let r = op
        .post_raw("/messages/retry", &[("kind", "ozon.stock")])
        .await;
    assert_eq!(r.status, 403);
    let r = op
        .post_raw(&format!("/messages/{b}/payload"), &[("payload", "{}")])
        .await;
    assert_eq!(r.status, 403);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(state_of(&srv, *id).await, "dead");
    }
    assert_eq!(sim.stats().await["stock_updates"], 0);

    // Ozon works again; dead messages stay dead until an operator acts.
    sim.control("/sim/faults", json!({"rate_500": 0.0})).await;
    let r = op.post(&format!("/messages/{a}/retry"), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let a_payload = payload_of(&dead[0]);
    eventually(30, "the retried message delivered", || async {
        (state_of(&srv, a).await == "done").then_some(())
    })
    .await;
    assert_eq!(sim.stats().await["stock_updates"], 1);
    assert_eq!(
        stock_on_ozon(&sim, a_payload["offer_id"].as_str().unwrap()).await,
        a_payload["stock"]
    );
    // Its page lists the calls that name it (the refused batch call too when its kept excerpt
    // reaches this message), the delivery among them.
    let page = viewer.get(&format!("/messages/{a}")).await;
    let calls: Vec<&str> = page.body.split("<tr class=\"call\"").skip(1).collect();
    assert!(
        calls.iter().any(|c| c.contains("<td>200</td><td>ok</td>")),
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("data-state=\"done\"").count(), 1);
    let first = *ids.last().unwrap(); // first in the refused batch: in its kept excerpt
    let page = viewer.get(&format!("/messages/{first}")).await;
    assert!(
        page.body
            .split("<tr class=\"call\"")
            .skip(1)
            .any(|c| c.contains("<td>500</td>")),
        "{}",
        page.body
    );
    // Delivered: no more retry, no edit.
    let r = op.post(&format!("/messages/{a}/retry"), &[]).await;
    assert_eq!(r.status, 303);
    assert!(r.location.unwrap_or_default().contains("flash="));
    let r = op
        .post(&format!("/messages/{a}/payload"), &[("payload", "{}")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(payload_of(&message(&srv, a).await.1), a_payload);

    // Edit a payload: not JSON → refused and unchanged; JSON → stored.
    let (_, mb) = message(&srv, b).await;
    let old_b = payload_of(&mb);
    let r = op
        .post(
            &format!("/messages/{b}/payload"),
            &[("payload", "{\"stock\": ")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("id=\"payload-error\""));
    assert_eq!(payload_of(&message(&srv, b).await.1), old_b);
    let mut new_b = old_b.clone();
    new_b["stock"] = json!(77);
    let r = op
        .post(
            &format!("/messages/{b}/payload"),
            &[("payload", &serde_json::to_string_pretty(&new_b).unwrap())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (_, mb) = message(&srv, b).await;
    assert_eq!(payload_of(&mb), new_b);
    assert_eq!(mb["state"], "dead", "an edit does not send");

    // Cancel: never sent, not even by a bulk retry.
    let r = op.post(&format!("/messages/{c}/cancel"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(state_of(&srv, c).await, "cancelled");
    let r = op.post(&format!("/messages/{c}/retry"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(state_of(&srv, c).await, "cancelled");

    // Delete: administrators only.
    let r = op.post(&format!("/messages/{d}/delete"), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(message(&srv, d).await.0, 200);
    let r = admin.post(&format!("/messages/{d}/delete"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(message(&srv, d).await.0, 404);

    // Bulk retry of the stock messages: every dead one goes; the prices (another kind) stay.
    let prices_dead = outbox(&srv, "kind=ozon.price&state=dead").await.len();
    let r = op
        .post(
            "/messages/retry",
            &[
                ("state", ""),
                ("target", "ozon"),
                ("kind", "ozon.stock"),
                ("q", ""),
                ("order", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let expected = ids.len() - 3; // a done, c cancelled, d deleted
    assert!(
        urldecode(&r.location.unwrap()).ends_with(&format!(" {expected}")),
        "the count is reported"
    );
    eventually(40, "the bulk retry delivered", || async {
        let all = outbox(&srv, "kind=ozon.stock").await;
        all.iter()
            .all(|m| m["state"] == "done" || m["state"] == "cancelled")
            .then_some(())
    })
    .await;
    assert_eq!(
        outbox(&srv, "kind=ozon.price&state=dead").await.len(),
        prices_dead
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sim.stats().await["stock_updates"],
        json!(1 + expected),
        "each once; the cancelled and the deleted never"
    );
    assert_eq!(state_of(&srv, c).await, "cancelled");
    let c_payload = payload_of(&dead[2]);
    assert!(stock_on_ozon(&sim, c_payload["offer_id"].as_str().unwrap())
        .await
        .is_null());
    assert_eq!(
        stock_on_ozon(&sim, new_b["offer_id"].as_str().unwrap()).await,
        json!(77),
        "the edited payload was sent"
    );

    // The audit page: administrators only, with before and after.
    assert_eq!(op.get("/audit").await.status, 403);
    assert_eq!(viewer.get("/audit").await.status, 403);
    let audit = admin.get("/audit").await;
    assert_eq!(audit.status, 200);
    let (before, after) =
        audit_row(&audit.body, "edit_message_payload", &b.to_string()).expect("edit audited");
    let before: Value = serde_json::from_str(&before).unwrap();
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(before, old_b);
    assert_eq!(after, new_b);
    let (before, after) =
        audit_row(&audit.body, "retry_message", &a.to_string()).expect("retry audited");
    assert!(before.contains("\"dead\""), "{before}");
    assert!(after.contains("\"failed\""), "{after}");
    let (_, after) = audit_row(&audit.body, "cancel_message", &c.to_string()).unwrap();
    assert!(after.contains("cancelled"));
    let (before, _) = audit_row(&audit.body, "delete_message", &d.to_string()).unwrap();
    assert!(before.contains("ozon.stock"), "{before}");
    let (_, after) = audit_row(&audit.body, "retry_messages", "target=ozon kind=ozon.stock")
        .expect("bulk retry audited");
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["count"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_mask_secrets_and_an_administrator_unlocks_a_user() {
    let srv = Server::start_with(&[
        ("OBMEN_OZON_API_KEY", "ozon-very-secret"),
        ("OBMEN_CDEK_CLIENT_SECRET", "cdek-very-secret"),
    ]);
    add_user(srv.data.path(), "anna", "operator", "password1");
    add_user(srv.data.path(), "root", "admin", "password1");
    add_user(srv.data.path(), "lena", "viewer", "password1");
    let op = Dash::login(&srv.base, "anna", "password1").await.unwrap();
    let admin = Dash::login(&srv.base, "root", "password1").await.unwrap();
    assert_eq!(op.get("/settings").await.status, 403);
    let s = admin.get("/settings").await;
    assert_eq!(s.status, 200);
    assert!(s.body.contains("id=\"config\""));
    assert!(s.body.contains("********"));
    for secret in ["ozon-very-secret", "cdek-very-secret", PASSWORD, API_TOKEN] {
        assert!(!s.body.contains(secret), "{secret} shown");
    }
    assert!(s.body.contains("data-name=\"lena\""));

    // Five wrong passwords lock lena; the right one is refused then.
    for _ in 0..5 {
        assert!(Dash::login(&srv.base, "lena", "wrong-pass").await.is_err());
    }
    assert!(Dash::login(&srv.base, "lena", "password1").await.is_err());
    let s = admin.get("/settings").await;
    let row = s.body.split("data-name=\"lena\"").nth(1).unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("locked"), "{row}");
    // Operators cannot unlock, nor a forged form.
    let r = op.post("/settings/users/unlock", &[("name", "lena")]).await;
    assert_eq!(r.status, 403);
    let r = admin
        .post_raw("/settings/users/unlock", &[("name", "lena")])
        .await;
    assert_eq!(r.status, 403);
    assert!(Dash::login(&srv.base, "lena", "password1").await.is_err());
    let r = admin
        .post("/settings/users/unlock", &[("name", "lena")])
        .await;
    assert_eq!(r.status, 303);
    assert!(Dash::login(&srv.base, "lena", "password1").await.is_ok());
    let audit = admin.get("/audit").await;
    let (before, after) = audit_row(&audit.body, "unlock_user", "lena").expect("unlock audited");
    assert!(
        !before.contains("\"locked_until\":null"),
        "locked before: {before}"
    );
    assert!(after.contains("\"locked_until\":null"), "{after}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
