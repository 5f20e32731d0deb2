//! The dashboard's doors and the exchange history: sign-in (CSRF, lockout), roles, forged forms,
//! escaping of what 1C sent, kept files and replay. Black-box against the real binary.

mod common;

use common::{Dash, Server};

const ADMIN_PW: &str = "admin-password-1";
const OPER_PW: &str = "operator-pass-2";
const VIEW_PW: &str = "viewer-pass-3";

fn server() -> Server {
    let srv = Server::start_with(&[("OBMEN_EXCHANGE_KEEP_EXCHANGES", "50")]);
    common::add_user(srv.data.path(), "admin", "admin", ADMIN_PW);
    common::add_user(srv.data.path(), "oper", "operator", OPER_PW);
    common::add_user(srv.data.path(), "viewer", "viewer", VIEW_PW);
    srv
}

/// The newest exchange session's id (from the JSON API).
async fn newest_session(srv: &Server) -> String {
    let (s, v) = srv.api("/api/v1/exchanges?limit=5").await;
    assert_eq!(s, 200);
    v.as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["id"].as_str().map(str::to_string))
        .expect("an exchange session")
}

#[tokio::test]
async fn pages_need_a_signed_in_user_and_forms_need_their_token() {
    let srv = server();
    let anon = common::no_redirect_client();
    for path in [
        "/",
        "/exchanges",
        "/exchanges/abc",
        "/messages",
        "/orders",
        "/catalog",
        "/reports",
        "/alerts",
        "/settings",
        "/audit",
        "/mappings",
    ] {
        let r = anon
            .get(format!("{}{path}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path} without a session");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
    }
    // A forged session cookie is no session.
    let r = anon
        .get(format!("{}/exchanges", srv.base))
        .header("cookie", "obmen_session=0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // The API without its token.
    let r = anon
        .get(format!("{}/api/v1/exchanges", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // The login form: username, password and a hidden csrf… field.
    let form = anon
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap();
    let login_cookie = common::set_cookie(form.headers(), "obmen_login_csrf").unwrap();
    let body = form.text().await.unwrap();
    assert!(body.contains("name=\"username\"") && body.contains("name=\"password\""));
    let token = common::csrf_of(&body).unwrap();
    // A cross-site post without the token is refused before the password is even looked at.
    let r = anon
        .post(format!("{}/login", srv.base))
        .header("cookie", format!("obmen_login_csrf={login_cookie}"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(common::set_cookie(r.headers(), "obmen_session").is_none());
    // A token that does not match the cookie is refused too.
    let r = anon
        .post(format!("{}/login", srv.base))
        .header("cookie", "obmen_login_csrf=other")
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Signed in: pages answer, with the security headers.
    let admin = Dash::login(&srv.base, "admin", ADMIN_PW).await.unwrap();
    let p = admin.get("/exchanges").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert!(p.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    // The session cookie is HttpOnly.
    let page = common::no_redirect_client()
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap();
    let raw = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(raw.contains("HttpOnly"), "{raw}");

    // Logout needs the token: without it the session stays.
    let r = admin.post_raw("/logout", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(admin.get("/").await.status, 200);
    let r = admin.post("/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(admin.get("/").await.status, 303, "the session ended");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account() {
    let srv = server();
    for i in 0..5 {
        let r = Dash::login(&srv.base, "oper", "wrong-password").await;
        let p = r.err().expect("a wrong password signs nobody in");
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let locked = Dash::login(&srv.base, "oper", OPER_PW)
        .await
        .err()
        .expect("locked");
    assert_eq!(locked.status, 401);
    assert!(
        locked.body.contains("заблокирован"),
        "the lock is explained: {}",
        locked.body
    );
    // Others are not affected; the admin resets the password from the CLI, which unlocks.
    assert!(Dash::login(&srv.base, "viewer", VIEW_PW).await.is_ok());
    common::add_user(srv.data.path(), "oper", "operator", "new-operator-pw");
    assert!(Dash::login(&srv.base, "oper", "new-operator-pw")
        .await
        .is_ok());
}

#[tokio::test]
async fn exchange_history_shows_each_session_keeps_its_files_and_replays_them() {
    let srv = server();
    let ids = ["g1", "g2", "g3"];
    let import = common::import_xml(&ids, None);
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
    assert_eq!(r.first(), "success", "{}", r.body);
    let good_session = newest_session(&srv).await;

    // A broken file: its session is red, with the reason escaped.
    let broken = common::import_xml(&["b1", "b2"], Some(1));
    let r = srv
        .upload_and_import(&[("import.xml", broken.as_bytes())], &["import.xml"])
        .await;
    assert_eq!(r.first(), "failure");
    let bad_session = newest_session(&srv).await;
    assert_ne!(bad_session, good_session);

    let viewer = Dash::login(&srv.base, "viewer", VIEW_PW).await.unwrap();
    let list = viewer.get("/exchanges").await;
    assert_eq!(list.status, 200);
    let row = |id: &str| {
        let i = list.body.find(&format!("data-session=\"{id}\"")).unwrap();
        let start = list.body[..i].rfind("<tr").unwrap();
        let end = i + list.body[i..].find("</tr>").unwrap();
        list.body[start..end].to_string()
    };
    let good_row = row(&good_session);
    assert!(good_row.contains("exchange ok"), "{good_row}");
    assert!(good_row.contains("import.xml") && good_row.contains("offers.xml"));
    let bad_row = row(&bad_session);
    assert!(bad_row.contains("exchange bad"), "{bad_row}");
    // The XML error names the tags: shown as text, never as markup.
    assert!(
        bad_row.contains("&#60;/Артикул&#62;") || bad_row.contains("&lt;/Артикул&gt;"),
        "{bad_row}"
    );
    assert!(!bad_row.contains("</Артикул>"));

    // Filters.
    let reds = viewer.get("/exchanges?result=bad").await.body;
    assert!(reds.contains(&bad_session) && !reds.contains(&good_session));
    let greens = viewer.get("/exchanges?result=ok").await.body;
    assert!(greens.contains(&good_session) && !greens.contains(&bad_session));
    let by_file = viewer.get("/exchanges?q=offers.xml").await.body;
    assert!(by_file.contains(&good_session) && !by_file.contains(&bad_session));

    // Drill-down: requests, the import log with line and column, the kept files.
    let page = viewer.get(&format!("/exchanges/{bad_session}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("import-error"), "{}", page.body);
    assert!(page.body.contains("строка") && page.body.contains("столбец"));
    let page = viewer.get(&format!("/exchanges/{good_session}")).await;
    assert!(page.body.contains("kept-file"));
    // checkauth's answer carries the 1C session's cookie: not shown.
    assert!(page.body.contains("checkauth") && !page.body.contains("sessid="));
    // The viewer sees no replay button, and a replay post is refused.
    assert!(!page.body.contains("id=\"replay\""));
    let r = viewer
        .post(&format!("/exchanges/{good_session}/replay"), &[])
        .await;
    assert_eq!(r.status, 403);

    // Download a kept file: exactly the bytes 1C sent.
    let f = viewer
        .get(&format!("/exchanges/{good_session}/files/offers.xml"))
        .await;
    assert_eq!(f.status, 200);
    assert_eq!(f.body, offers);
    // Nothing outside the session's folder can be named.
    for bad in [
        "../../obmen.db",
        "..%2F..%2Fobmen.db",
        "%2e%2e/%2e%2e/obmen.db",
        "/etc/passwd",
    ] {
        let r = viewer
            .get(&format!("/exchanges/{good_session}/files/{bad}"))
            .await;
        assert_eq!(r.status, 404, "{bad}");
    }
    let r = viewer.get("/exchanges/..%2F..%2F/files/obmen.db").await;
    assert!(r.status == 404 || r.status == 400, "{}", r.status);

    // The operator: a forged replay (no token) does nothing; the real one re-imports.
    let oper = Dash::login(&srv.base, "oper", OPER_PW).await.unwrap();
    let before = srv.api("/api/v1/exchanges?limit=100").await.1;
    let r = oper
        .post_raw(&format!("/exchanges/{good_session}/replay"), &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        srv.api("/api/v1/exchanges?limit=100")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        before.as_array().unwrap().len(),
        "a forged form changes nothing"
    );
    let r = oper
        .post(&format!("/exchanges/{good_session}/replay"), &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.location.unwrap();
    let new_id = to
        .trim_start_matches("/exchanges/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_id, good_session);
    // The replay runs both files again: everything is unchanged this time.
    let replayed = common::eventually(60, "the replay's imports finish", || {
        let srv = &srv;
        let new_id = new_id.clone();
        async move {
            let v = srv.api("/api/v1/exchanges?limit=10").await.1;
            let s = v
                .as_array()?
                .iter()
                .find(|e| e["id"].as_str() == Some(new_id.as_str()))?
                .clone();
            let imports = s["imports"].as_array()?;
            (imports.len() == 2 && imports.iter().all(|j| j["state"] == "done")).then_some(s)
        }
    })
    .await;
    assert_eq!(replayed["user"], "oper");
    assert_eq!(replayed["counts"]["created"], 0);
    assert!(replayed["counts"]["unchanged"].as_i64().unwrap() >= 3);
    let page = oper.get(&format!("/exchanges/{new_id}")).await;
    assert!(page.body.contains("exchange ok"), "{}", page.body);
    assert!(page.body.contains(&format!("replay of {good_session}")));
    // A broken exchange replays as broken (the same file, the same error).
    let r = oper
        .post(&format!("/exchanges/{bad_session}/replay"), &[])
        .await;
    assert_eq!(r.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_demo_signs_in_and_shows_its_exchange_and_messages() {
    let srv = Server::start_full(tempfile::tempdir().unwrap(), &["--demo"], &[]);
    let d = Dash::login(
        &srv.base,
        obmen::server::DEMO_USER,
        obmen::server::DEMO_USER_PASSWORD,
    )
    .await
    .expect("the demo's dashboard user signs in");
    // The demo catalog arrived as a 1C exchange: a green row with its files.
    common::eventually(120, "the demo exchange in the history", || async {
        let p = d.get("/exchanges").await;
        (p.body.contains("exchange ok") && p.body.contains("offers.xml")).then_some(())
    })
    .await;
    // …and its goods went to the Ozon simulator through the outbox: counted on the home page.
    common::eventually(120, "Ozon messages counted on the home page", || async {
        let p = d.get("/").await;
        (p.body.contains("<td>ozon</td>") && p.body.contains("count-done")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_corrects_an_ozon_offer_id_and_the_new_one_gets_the_stock() {
    let sim = common::Sim::start(&[]);
    let env = sim.obmen_env();
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&e);
    common::add_user(srv.data.path(), "admin", "admin", ADMIN_PW);
    common::add_user(srv.data.path(), "oper", "operator", OPER_PW);
    let ids = ["m1", "m2"];
    let import = common::import_xml(&ids, None);
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
    // The first export links m1 to its article A-m1 and delivers its stock (1 + 2).
    common::eventually(60, "A-m1's stock at Ozon", || async {
        let (s, v) = sim.get("/sim/products/A-m1").await;
        (s == 200 && v.to_string().contains("\"stock_updates\":1")).then_some(())
    })
    .await;
    let admin = Dash::login(&srv.base, "admin", ADMIN_PW).await.unwrap();
    let page = admin.get("/mappings?q=m1").await;
    assert!(page.body.contains("A-m1"), "{}", page.body);
    // The operator may look but not change; a taken offer_id is refused.
    let oper = Dash::login(&srv.base, "oper", OPER_PW).await.unwrap();
    let r = oper
        .post("/mappings", &[("offer_ref", "m1"), ("offer_id", "OZ-1")])
        .await;
    assert_eq!(r.status, 403);
    let r = admin
        .post("/mappings", &[("offer_ref", "m1"), ("offer_id", "A-m2")])
        .await;
    assert_eq!(r.status, 303);
    assert!(admin
        .get("/mappings?q=m1")
        .await
        .body
        .contains("value=\"A-m1\""));
    // The correction: the stock goes to the new offer_id.
    let r = admin
        .post("/mappings", &[("offer_ref", "m1"), ("offer_id", "OZ-1")])
        .await;
    assert_eq!(r.status, 303);
    common::eventually(60, "OZ-1's stock at Ozon", || async {
        let (s, v) = sim.get("/sim/products/OZ-1").await;
        (s == 200 && v.to_string().contains("\"stock_updates\":1")).then_some(())
    })
    .await;
    assert!(admin
        .get("/mappings?q=m1")
        .await
        .body
        .contains("value=\"OZ-1\""));
}

#[tokio::test]
async fn a_session_with_thousands_of_files_keeps_only_the_first_names_for_the_search() {
    let srv = server();
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    // UT 11 without zip sends every image on its own: the names kept for the search stop at
    // 8 KiB, so a big exchange does not rewrite a growing list on every request.
    for i in 0..400 {
        let name = format!("import_files/ab/{i:04}-0123456789abcdef0123456789abcdef.jpg");
        let r = srv
            .post(
                &format!("type=catalog&mode=file&filename={name}"),
                b"jpg".to_vec(),
                Some(&cookie),
            )
            .await;
        assert_eq!(r.first(), "success");
    }
    let admin = Dash::login(&srv.base, "admin", ADMIN_PW).await.unwrap();
    let sid = newest_session(&srv).await;
    let first = admin.get("/exchanges?q=0000-0123456789abcdef").await.body;
    assert!(first.contains(&sid), "the first names are searchable");
    let last = admin.get("/exchanges?q=0399-0123456789abcdef").await.body;
    assert!(!last.contains(&sid), "names past 8 KiB are not kept");
}
