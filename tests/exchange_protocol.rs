//! The 1C catalog protocol over HTTP against the real binary: answers exactly as 1C reads them,
//! and every kind of bad input gets a clear answer while nothing stored changes.

mod common;

use std::io::Write;

use common::*;

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn seed(srv: &Server) {
    let imp = import_xml(&["g1", "g2"], None);
    let off = offers_xml(&["g1", "g2"]);
    let r = srv
        .upload_and_import(
            &[
                ("import0_1.xml", imp.as_bytes()),
                ("offers0_1.xml", off.as_bytes()),
            ],
            &["import0_1.xml", "offers0_1.xml"],
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
}

#[tokio::test]
async fn checkauth_answers_five_lines_and_init_exactly_two() {
    let srv = Server::start();
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&Server::basic()), None)
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.contains("charset=windows-1251"),
        "{}",
        r.content_type
    );
    assert!(!r.raw.starts_with(&[0xEF, 0xBB, 0xBF]), "no BOM");
    let lines: Vec<&str> = r.body.split('\n').collect();
    assert_eq!(lines[0], "success");
    assert_eq!(lines[1], "OBMENSID");
    assert!(lines[2].chars().all(|c| c.is_ascii_alphanumeric()) && lines[2].len() >= 16);
    assert!(lines[3].starts_with("sessid="));
    assert!(lines[4].starts_with("timestamp="));
    let ts: i64 = lines[4]["timestamp=".len()..].parse().unwrap();
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);

    // 1C builds the Cookie header itself from lines 2-3 and sends Basic preemptively as well.
    let cookie = format!("{}={}", lines[1], lines[2]);
    let init = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body, "zip=yes\nfile_limit=104857600");
    // A versioned init (1C-Bitrix module) gets sessid and version lines.
    let v = srv
        .get("type=catalog&mode=init&version=2.10", None, Some(&cookie))
        .await;
    let vl: Vec<&str> = v.body.split('\n').collect();
    assert_eq!(vl.len(), 4, "{}", v.body);
    assert_eq!(vl[2], lines[3]);
    assert_eq!(vl[3], "version=2.10");
}

#[tokio::test]
async fn init_reflects_configured_zip_and_file_limit_and_all_paths_work() {
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_ZIP", "false"),
        ("OBMEN_EXCHANGE_FILE_LIMIT", "204800"),
    ]);
    for path in [
        "/1c_exchange.php",
        "/bitrix/admin/1c_exchange.php",
        "/exchange",
    ] {
        let r = srv
            .client
            .get(format!("{}{path}?type=catalog&mode=checkauth", srv.base))
            .header("Authorization", Server::basic())
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(body.starts_with("success\n"), "{path}: {body}");
        let l: Vec<&str> = body.split('\n').collect();
        let init = srv
            .client
            .post(format!("{}{path}?type=catalog&mode=init", srv.base))
            .header("Cookie", format!("{}={}", l[1], l[2]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(init, "zip=no\nfile_limit=204800", "{path}");
    }
}

#[tokio::test]
async fn doubled_question_mark_and_form_body_are_understood() {
    let srv = Server::start();
    // A URL typed in 1C with its own query string: 1C appends "?type=…" blindly.
    let r = srv
        .client
        .get(format!(
            "{}/exchange?token=abc?type=catalog&mode=checkauth",
            srv.base
        ))
        .header("Authorization", Server::basic())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.starts_with("success\n"), "{r}");
    // type/mode in an urlencoded POST body.
    let r = srv
        .client
        .post(format!("{}/1c_exchange.php", srv.base))
        .header("Authorization", Server::basic())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("type=catalog&mode=checkauth")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.starts_with("success\n"), "{r}");
}

#[tokio::test]
async fn full_exchange_chunked_then_api_matches() {
    let srv = Server::start();
    let imp = import_xml(&["g1", "g2", "g3"], None);
    let off = offers_xml(&["g1", "g2", "g3"]);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    // Upload in 100-byte chunks: boundaries fall inside multi-byte characters.
    for (name, data) in [
        ("import0_1.xml", imp.as_bytes()),
        ("offers0_1.xml", off.as_bytes()),
    ] {
        for chunk in data.chunks(100) {
            let r = srv
                .post(
                    &format!("type=catalog&mode=file&filename={name}"),
                    chunk.to_vec(),
                    Some(&cookie),
                )
                .await;
            assert_eq!(r.first(), "success", "{}", r.body);
        }
    }
    for name in ["import0_1.xml", "offers0_1.xml"] {
        let r = srv.import_loop(name, &cookie).await;
        assert_eq!(r.first(), "success", "{}", r.body);
        // A repeated import of a finished file answers success again and imports nothing twice.
        let again = srv
            .get(
                &format!("type=catalog&mode=import&filename={name}"),
                None,
                Some(&cookie),
            )
            .await;
        assert_eq!(again.first(), "success");
    }
    let s = srv.summary().await;
    assert_eq!(s["goods"], 3, "{s}");
    assert_eq!(s["offers"], 3);
    assert_eq!(s["groups"], 1);
    assert_eq!(s["properties"], 1);
    assert_eq!(s["price_types"], 1);
    assert_eq!(s["warehouses"], 2);
    // stock_total = Σ per-warehouse quantities = (1+2)+(2+2)+(3+2)
    assert_eq!(s["stock_total"].as_f64(), Some(12.0), "{s}");

    let (st, o) = srv.api("/api/v1/offers/g2").await;
    assert_eq!(st, 200);
    assert_eq!(o["id"], "g2");
    assert_eq!(o["good_id"], "g2");
    assert_eq!(o["article"], "A-g2");
    assert_eq!(o["prices"][0]["price_type_id"], "pt1");
    assert_eq!(o["prices"][0]["price_type"], "Розничная");
    assert_eq!(o["prices"][0]["value"].as_f64(), Some(101.5));
    assert_eq!(o["prices"][0]["currency"], "руб");
    let stock = o["stock"].as_array().unwrap();
    assert_eq!(stock.len(), 2);
    let (st, g) = srv.api("/api/v1/goods/g3").await;
    assert_eq!(st, 200);
    assert_eq!(g["name"], "Товар g3");
    assert_eq!(g["groups"][0], "grp1");
    assert_eq!(g["offers"].as_array().unwrap().len(), 1);

    // The journal shows the sessions with their requests.
    let (st, j) = srv.api("/api/v1/exchanges?limit=10").await;
    assert_eq!(st, 200);
    let text = j.to_string();
    assert!(
        text.contains("import0_1.xml") && text.contains("\"file\"") && text.contains("\"import\""),
        "{text}"
    );
}

#[tokio::test]
async fn zip_mode_unpacks_at_first_import_with_progress() {
    let srv = Server::start();
    let imp = import_xml(&["z1", "z2"], None);
    let off = offers_xml(&["z1", "z2"]);
    let archive = zip_bytes(&[
        ("import0_1.xml", imp.as_bytes()),
        ("offers0_1.xml", off.as_bytes()),
        ("import_files/5c/z1_img.jpg", b"\xFF\xD8\xFF\xE0 fake jpeg"),
    ]);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    for chunk in archive.chunks(300) {
        let r = srv
            .post(
                "type=catalog&mode=file&filename=v8_1065_3a.zip",
                chunk.to_vec(),
                Some(&cookie),
            )
            .await;
        assert_eq!(r.first(), "success");
    }
    let first = srv
        .get(
            "type=catalog&mode=import&filename=import0_1.xml",
            None,
            Some(&cookie),
        )
        .await;
    assert_eq!(first.body, "progress\nРаспаковка архива завершена.");
    assert_eq!(
        srv.import_loop("import0_1.xml", &cookie).await.first(),
        "success"
    );
    assert_eq!(
        srv.import_loop("offers0_1.xml", &cookie).await.first(),
        "success"
    );
    let s = srv.summary().await;
    assert_eq!(s["goods"], 2);
    assert_eq!(s["offers"], 2);
    assert!(
        srv.files()
            .iter()
            .any(|p| p.ends_with("import_files/5c/z1_img.jpg")),
        "{:?}",
        srv.files()
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials() {
    let srv = Server::start();
    // No Authorization at all on checkauth: a 401 challenge with a failure body.
    let r = srv.get("type=catalog&mode=checkauth", None, None).await;
    assert_eq!(r.status, 401);
    assert!(r
        .www_authenticate
        .clone()
        .unwrap_or_default()
        .starts_with("Basic"));
    assert_eq!(r.first(), "failure");
    assert!(!r.detail().is_empty());
    // Wrong password: HTTP 200 failure with the reason, no session.
    let r = srv
        .get(
            "type=catalog&mode=checkauth",
            Some(&basic(LOGIN, "nope")),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.first(), "failure");
    assert!(
        r.detail().contains("Неверное имя пользователя или пароль"),
        "{}",
        r.body
    );
    // Wrong login.
    let r = srv
        .get(
            "type=catalog&mode=checkauth",
            Some(&basic("admin", PASSWORD)),
            None,
        )
        .await;
    assert_eq!(r.first(), "failure");
    // Garbage Authorization.
    let r = srv
        .get(
            "type=catalog&mode=checkauth",
            Some("Basic !!!notbase64"),
            None,
        )
        .await;
    assert_ne!(r.first(), "success");
    // Wrong Basic on a later mode, even with a valid cookie, is refused.
    let cookie = srv.login("catalog").await;
    let r = srv
        .client
        .get(format!("{}?type=catalog&mode=init", srv.url()))
        .header("Cookie", &cookie)
        .header("Authorization", basic(LOGIN, "nope"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.starts_with("failure\n"), "{r}");
}

#[tokio::test]
async fn requests_without_cookie_or_basic_and_stale_cookies_are_refused() {
    let srv = Server::start();
    seed(&srv).await;
    let before = srv.summary().await;
    // Neither cookie nor Basic.
    let r = srv.get("type=catalog&mode=init", None, None).await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    let r = srv
        .post(
            "type=catalog&mode=file&filename=import0_1.xml",
            import_xml(&["x1"], None).into_bytes(),
            None,
        )
        .await;
    assert_eq!(r.first(), "failure");
    let r = srv
        .get(
            "type=catalog&mode=import&filename=import0_1.xml",
            None,
            None,
        )
        .await;
    assert_eq!(r.first(), "failure");
    // A stale or forged cookie without Basic.
    let r = srv
        .get(
            "type=catalog&mode=init",
            None,
            Some("OBMENSID=deadbeefdeadbeef"),
        )
        .await;
    assert_eq!(r.first(), "failure");
    assert!(r.detail().contains("checkauth"), "{}", r.body);
    assert_eq!(srv.summary().await, before);

    // A cookie from before a restart plus valid Basic keeps working (session made on the fly).
    let cookie = srv.login("catalog").await;
    let data = srv.stop();
    let srv = Server::start_in(data, &[]);
    let r = srv
        .get(
            "type=catalog&mode=init",
            Some(&Server::basic()),
            Some(&cookie),
        )
        .await;
    assert_eq!(r.body.split('\n').count(), 2, "{}", r.body);
}

#[tokio::test]
async fn malformed_xml_mid_list_fails_with_position_and_keeps_earlier_data() {
    let srv = Server::start();
    seed(&srv).await;
    let before = srv.summary().await;
    let (_, g1_before) = srv.api("/api/v1/goods/g1").await;
    // g1 renamed, g9 new, then a broken element on line 10: nothing of this file may land.
    let bad = import_xml(&["g1", "g9"], Some(2)).replace("Товар g1<", "Переименован<");
    let line = bad.lines().position(|l| l.contains("broken")).unwrap() + 1;
    let r = srv
        .upload_and_import(&[("import0_1.xml", bad.as_bytes())], &["import0_1.xml"])
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    assert!(
        r.detail().contains(&format!("{line}")),
        "line {line} expected in: {}",
        r.body
    );
    assert!(r.detail().to_lowercase().contains("строк"), "{}", r.body);
    assert_eq!(srv.summary().await, before);
    assert_eq!(srv.api("/api/v1/goods/g9").await.0, 404);
    assert_eq!(srv.api("/api/v1/goods/g1").await.1, g1_before);
    // The failure is in the journal.
    let (_, j) = srv.api("/api/v1/exchanges?limit=5").await;
    assert!(j.to_string().contains("failure"), "{j}");
}

#[tokio::test]
async fn wrong_declared_encoding_is_refused() {
    let srv = Server::start();
    seed(&srv).await;
    let before = srv.summary().await;
    // Declared UTF-8, written in windows-1251.
    let text = import_xml(&["e1"], None).replace('\u{feff}', "");
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    let r = srv
        .upload_and_import(&[("import0_1.xml", &cp1251)], &["import0_1.xml"])
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    assert!(r.detail().contains("UTF-8"), "{}", r.body);
    // Declared windows-1251, written in UTF-8.
    let text = text.replace("encoding=\"UTF-8\"", "encoding=\"windows-1251\"");
    let r = srv
        .upload_and_import(&[("import0_1.xml", text.as_bytes())], &["import0_1.xml"])
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    assert_eq!(srv.summary().await, before);
    assert_eq!(srv.api("/api/v1/goods/e1").await.0, 404);
}

#[tokio::test]
async fn a_real_windows_1251_file_imports() {
    let srv = Server::start();
    let text = import_xml(&["w1"], None)
        .replace('\u{feff}', "")
        .replace("encoding=\"UTF-8\"", "encoding=\"windows-1251\"");
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    let r = srv
        .upload_and_import(&[("import.xml", &cp1251)], &["import.xml"])
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    let (_, g) = srv.api("/api/v1/goods/w1").await;
    assert_eq!(g["name"], "Товар w1");
}

#[tokio::test]
async fn hostile_zips_are_refused_and_write_nothing_outside() {
    let srv = Server::start();
    seed(&srv).await;
    let before = srv.summary().await;
    let imp = import_xml(&["h1"], None);
    let zeros = vec![0u8; 60 * 1024 * 1024];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "slip",
            zip_bytes(&[("import0_1.xml", imp.as_bytes()), ("../../evil.xml", b"x")]),
        ),
        (
            "absolute",
            zip_bytes(&[
                ("import0_1.xml", imp.as_bytes()),
                ("/tmp/obmen-evil-abs.xml", b"x"),
            ]),
        ),
        (
            "bomb",
            zip_bytes(&[("import0_1.xml", imp.as_bytes()), ("zeros.bin", &zeros)]),
        ),
        (
            "truncated",
            zip_bytes(&[("import0_1.xml", imp.as_bytes())])[..200].to_vec(),
        ),
    ];
    for (what, archive) in cases {
        let cookie = srv.login("catalog").await;
        srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
        let r = srv
            .post(
                "type=catalog&mode=file&filename=v8_1_1.zip",
                archive,
                Some(&cookie),
            )
            .await;
        assert_eq!(r.first(), "success");
        let r = srv.import_loop("import0_1.xml", &cookie).await;
        assert_eq!(r.first(), "failure", "{what}: {}", r.body);
        assert!(
            r.detail().chars().count() > 10,
            "{what}: a reason is given: {}",
            r.body
        );
    }
    assert!(!std::path::Path::new("/tmp/obmen-evil-abs.xml").exists());
    assert!(!srv.data.path().parent().unwrap().join("evil.xml").exists());
    assert!(
        !srv.files()
            .iter()
            .any(|p| p.ends_with("evil.xml") || p.ends_with("zeros.bin")),
        "{:?}",
        srv.files()
    );
    assert_eq!(srv.summary().await, before);
    assert_eq!(srv.api("/api/v1/goods/h1").await.0, 404);
}

#[tokio::test]
async fn concurrent_first_imports_unpack_an_archive_once() {
    let srv = Server::start();
    let imp = import_xml(&["u1"], None);
    let images: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("import_files/{:02x}/img{i}.jpg", i % 256),
                vec![i as u8; 2000],
            )
        })
        .collect();
    let mut entries: Vec<(&str, &[u8])> = vec![("import0_1.xml", imp.as_bytes())];
    entries.extend(images.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let archive = zip_bytes(&entries);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    let r = srv
        .post(
            "type=catalog&mode=file&filename=v8_1065_3a.zip",
            archive,
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "success");
    let calls = (0..6).map(|_| {
        srv.get(
            "type=catalog&mode=import&filename=import0_1.xml",
            None,
            Some(&cookie),
        )
    });
    let answers = futures_util::future::join_all(calls).await;
    let unpacked = answers
        .iter()
        .filter(|a| a.body == "progress\nРаспаковка архива завершена.")
        .count();
    assert_eq!(
        unpacked,
        1,
        "exactly one caller unpacks: {:?}",
        answers.iter().map(|a| a.body.clone()).collect::<Vec<_>>()
    );
    for a in &answers {
        assert!(
            matches!(a.first().as_str(), "progress" | "success"),
            "{}",
            a.body
        );
    }
    assert_eq!(
        srv.import_loop("import0_1.xml", &cookie).await.first(),
        "success"
    );
    let jpgs = srv
        .files()
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".jpg"))
        .count();
    assert_eq!(jpgs, 300);
}

#[tokio::test]
async fn a_failed_unpack_fails_the_following_imports_and_other_archives_unpack() {
    let srv = Server::start();
    let imp = import_xml(&["f1"], None);
    let off = offers_xml(&["f1"]);
    let bad = zip_bytes(&[("import0_1.xml", imp.as_bytes()), ("../../evil.xml", b"x")]);
    let good = zip_bytes(&[
        ("offers0_1.xml", off.as_bytes()),
        ("import_files/ab/good.jpg", b"jpg"),
    ]);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    for (name, bytes) in [("v8_1_1.zip", bad), ("v8_1_2.zip", good)] {
        let r = srv
            .post(
                &format!("type=catalog&mode=file&filename={name}"),
                bytes,
                Some(&cookie),
            )
            .await;
        assert_eq!(r.first(), "success");
    }
    let first = srv.import_loop("import0_1.xml", &cookie).await;
    assert_eq!(first.first(), "failure", "{}", first.body);
    assert!(first.detail().contains("evil.xml"), "{}", first.body);
    // The next calls answer the archive's error, not "file not found".
    for name in ["import0_1.xml", "offers0_1.xml"] {
        let r = srv
            .get(
                &format!("type=catalog&mode=import&filename={name}"),
                None,
                Some(&cookie),
            )
            .await;
        assert_eq!(r.body, first.body, "{name}");
    }
    // The other archive was unpacked, not left pending.
    let files = srv.files();
    assert!(
        files
            .iter()
            .any(|p| p.ends_with("import_files/ab/good.jpg")),
        "{files:?}"
    );
    assert!(!files.iter().any(|p| p.ends_with("evil.xml")));
}

#[tokio::test]
async fn init_starts_a_fresh_upload_set() {
    let srv = Server::start();
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    let archive = zip_bytes(&[
        ("offers0_1.xml", offers_xml(&["i1"]).as_bytes()),
        ("import_files/ab/old.jpg", b"old"),
    ]);
    srv.post(
        "type=catalog&mode=file&filename=v8_1.zip",
        archive,
        Some(&cookie),
    )
    .await;
    let r = srv
        .get(
            "type=catalog&mode=import&filename=offers0_1.xml",
            None,
            Some(&cookie),
        )
        .await;
    assert_eq!(r.body, "progress\nРаспаковка архива завершена.");
    // An interrupted upload: half a file.
    srv.post(
        "type=catalog&mode=file&filename=import0_1.xml",
        b"<?xml version=\"1.0\"?><half".to_vec(),
        Some(&cookie),
    )
    .await;
    // 1C starts over in the same session.
    let r = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(r.body.split('\n').count(), 2, "{}", r.body);
    let left: Vec<_> = srv
        .files()
        .into_iter()
        .filter(|p| p.starts_with("uploads"))
        .filter(|p| p.extension().is_some())
        .collect();
    assert!(
        left.is_empty(),
        "init removed uploaded and unpacked files: {left:?}"
    );
    let fresh = import_xml(&["i1"], None);
    let r = srv
        .post(
            "type=catalog&mode=file&filename=import0_1.xml",
            fresh.clone().into_bytes(),
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "success");
    let stored: Vec<_> = srv
        .files()
        .into_iter()
        .filter(|p| p.ends_with("import0_1.xml"))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::read(srv.data.path().join(&stored[0])).unwrap(),
        fresh.as_bytes(),
        "the re-sent file replaced the earlier upload"
    );
}

#[tokio::test]
async fn hostile_filenames_stay_inside_the_session_folder() {
    let srv = Server::start();
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    for name in [
        "../../etc/passwd",
        "..%2F..%2Fescape.xml",
        "import_files/../../../escape.xml",
    ] {
        let r = srv
            .post(
                &format!("type=catalog&mode=file&filename={name}"),
                b"x".to_vec(),
                Some(&cookie),
            )
            .await;
        assert_eq!(r.first(), "failure", "{name}: {}", r.body);
        assert!(!r.detail().is_empty());
    }
    // A Windows absolute path from an old 1C is either refused or kept inside the sandbox.
    let r = srv
        .post(
            "type=catalog&mode=file&filename=C:\\x.xml",
            b"x".to_vec(),
            Some(&cookie),
        )
        .await;
    assert!(
        matches!(r.first().as_str(), "success" | "failure"),
        "{}",
        r.body
    );
    assert!(!r.body.trim().is_empty());
    let tmp = srv.data.path().parent().unwrap();
    assert!(!tmp.join("escape.xml").exists());
    assert!(!std::path::Path::new("/x.xml").exists());
    for p in srv.files() {
        assert!(!p.to_string_lossy().contains(".."), "{p:?}");
    }
}

#[tokio::test]
async fn body_over_the_limit_is_refused_and_not_kept() {
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_FILE_LIMIT", "1000"),
        ("OBMEN_EXCHANGE_MAX_BODY", "2000"),
    ]);
    let cookie = srv.login("catalog").await;
    assert_eq!(
        srv.get("type=catalog&mode=init", None, Some(&cookie))
            .await
            .body,
        "zip=yes\nfile_limit=1000"
    );
    let ok = srv
        .post(
            "type=catalog&mode=file&filename=import.xml",
            vec![b' '; 1500],
            Some(&cookie),
        )
        .await;
    assert_eq!(ok.first(), "success");
    let r = srv
        .post(
            "type=catalog&mode=file&filename=import.xml",
            vec![b' '; 5000],
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    assert!(r.detail().contains("2000"), "{}", r.body);
    // The refused chunk left nothing behind: the file still has its first 1500 bytes.
    let stored: Vec<_> = srv
        .files()
        .into_iter()
        .filter(|p| p.ends_with("import.xml"))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::metadata(srv.data.path().join(&stored[0]))
            .unwrap()
            .len(),
        1500
    );
}

#[tokio::test]
async fn billion_laughs_is_refused() {
    let srv = Server::start();
    seed(&srv).await;
    let before = srv.summary().await;
    let mut doc = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE КоммерческаяИнформация [\n<!ENTITY lol \"lol\">\n",
    );
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        doc.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    doc.push_str("]>\n<КоммерческаяИнформация ВерсияСхемы=\"2.07\"><Каталог><Ид>c</Ид><Товары><Товар><Ид>bl1</Ид><Наименование>&lol9;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>\n");
    let started = std::time::Instant::now();
    let r = srv
        .upload_and_import(&[("import.xml", doc.as_bytes())], &["import.xml"])
        .await;
    assert_eq!(r.first(), "failure", "{}", r.body);
    assert!(started.elapsed().as_secs() < 30);
    assert_eq!(srv.summary().await, before);
}

#[tokio::test]
async fn unknown_type_or_mode() {
    let srv = Server::start();
    let cookie = srv.login("catalog").await;
    for q in [
        "type=catalog&mode=frobnicate",
        "type=nonsense&mode=init",
        "type=catalog",
        "",
    ] {
        let r = srv.get(q, Some(&Server::basic()), Some(&cookie)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.first(), "failure", "{q}: {}", r.body);
        assert_eq!(
            r.body.split('\n').nth(1),
            Some("Unknown command."),
            "{q}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn concurrent_imports_of_one_file_run_once() {
    let srv = Server::start_with(&[("OBMEN_IMPORT_WAIT_SECS", "0")]);
    let ids: Vec<String> = (0..3000).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let imp = import_xml(&refs, None);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    srv.post(
        "type=catalog&mode=file&filename=import0_1.xml",
        imp.into_bytes(),
        Some(&cookie),
    )
    .await;
    let calls = (0..6).map(|_| {
        srv.get(
            "type=catalog&mode=import&filename=import0_1.xml",
            None,
            Some(&cookie),
        )
    });
    let answers = futures_util::future::join_all(calls).await;
    for a in &answers {
        assert!(
            matches!(a.first().as_str(), "progress" | "success"),
            "{}",
            a.body
        );
    }
    assert_eq!(
        srv.import_loop("import0_1.xml", &cookie).await.first(),
        "success"
    );
    let (_, j) = srv.api("/api/v1/exchanges?limit=1").await;
    let jobs: Vec<_> = j[0]["imports"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "one import job for the file: {j}");
    assert_eq!(srv.summary().await["goods"], 3000);
}

#[tokio::test]
async fn files_sent_without_import_are_processed() {
    // UT11 "send files without waiting for the server's import": no mode=import at all.
    let srv = Server::start_with(&[("OBMEN_AUTO_IMPORT_AFTER_SECS", "1")]);
    let cookie = srv.login("catalog").await;
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    let imp = import_xml(&["n1", "n2"], None);
    srv.post(
        "type=catalog&mode=file&filename=import0_1.xml",
        imp.into_bytes(),
        Some(&cookie),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if srv.summary().await["goods"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan upload was never imported"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn deactivate_and_complete() {
    let srv = Server::start();
    seed(&srv).await; // g1, g2
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A full export (Bitrix module style): checkauth gives the timestamp, only g1 comes again.
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&Server::basic()), None)
        .await;
    let lines: Vec<&str> = r.body.split('\n').collect();
    let cookie = format!("{}={}", lines[1], lines[2]);
    let ts = lines[4].trim_start_matches("timestamp=").to_string();
    srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    let imp = import_xml(&["g1"], None);
    srv.post(
        "type=catalog&mode=file&filename=import___a.xml",
        imp.into_bytes(),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        srv.import_loop("import___a.xml", &cookie).await.first(),
        "success"
    );
    // Not deactivated by the file itself (portions!).
    assert_eq!(srv.api("/api/v1/goods/g2").await.1["active"], true);
    let r = srv
        .get("type=catalog&mode=deactivate", None, Some(&cookie))
        .await;
    assert_eq!(r.first(), "failure", "no timestamp: {}", r.body);
    let r = srv
        .get(
            &format!("type=catalog&mode=deactivate&timestamp={ts}"),
            None,
            Some(&cookie),
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    assert_eq!(srv.api("/api/v1/goods/g2").await.1["active"], false);
    assert_eq!(srv.api("/api/v1/goods/g1").await.1["active"], true);
    let r = srv
        .get("type=catalog&mode=complete", None, Some(&cookie))
        .await;
    assert_eq!(r.first(), "success");
}

#[tokio::test]
async fn deletion_marks_are_honoured() {
    let srv = Server::start();
    seed(&srv).await;
    let del = import_xml(&["g2"], None)
        .replace("<Товар><Ид>g2</Ид>", "<Товар Статус=\"Удален\"><Ид>g2</Ид>");
    let r = srv
        .upload_and_import(&[("import0_2.xml", del.as_bytes())], &["import0_2.xml"])
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    let s = srv.summary().await;
    assert_eq!(s["goods"], 2, "deleted goods still count: {s}");
    assert_eq!(s["deleted_goods"], 1);
    assert_eq!(srv.api("/api/v1/goods/g2").await.1["deleted"], true);
}

#[tokio::test]
async fn api_requires_the_token() {
    let srv = Server::start();
    let r = srv
        .client
        .get(format!("{}/api/v1/catalog/summary", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = srv
        .client
        .get(format!("{}/api/v1/catalog/summary", srv.base))
        .header("Authorization", "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = srv
        .client
        .get(format!("{}/healthz", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(srv);
    let off = Server::start_with(&[("OBMEN_API_TOKEN", "")]);
    let r = off
        .client
        .get(format!("{}/api/v1/catalog/summary", off.base))
        .header("Authorization", "Bearer anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
