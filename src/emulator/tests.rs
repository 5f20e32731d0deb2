//! The emulator against a small in-test fake 1C exchange server that records every request.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use super::*;

/// How the fake server behaves.
#[derive(Clone)]
struct FakeCfg {
    zip: bool,
    file_limit: i64,
    /// `progress` answers before `success` for each imported file.
    progress: u32,
    /// Answer `failure` to the import of this file.
    fail_import: Option<String>,
    /// Put a BOM in front of every text answer.
    bom: bool,
    /// Answer init with three lines.
    init_three_lines: bool,
    /// No charset in Content-Type.
    no_charset: bool,
    /// Line 4 of checkauth is `timestamp=…` (like bigperson).
    checkauth_line4_timestamp: bool,
}

impl Default for FakeCfg {
    fn default() -> Self {
        FakeCfg {
            zip: false,
            file_limit: 1000,
            progress: 2,
            fail_import: None,
            bom: false,
            init_three_lines: false,
            no_charset: false,
            checkauth_line4_timestamp: false,
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    cookie: Option<String>,
    basic: bool,
    content_length: Option<u64>,
    chunked: bool,
    body_len: usize,
    user_agent: String,
}

impl Seen {
    fn mode(&self) -> String {
        self.param("mode").unwrap_or_default()
    }
    fn param(&self, k: &str) -> Option<String> {
        self.query
            .split(['&', '?'])
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
    }
    /// Compact form for sequence assertions: `mode` or `mode:filename`.
    fn short(&self) -> String {
        match self.param("filename") {
            Some(f) => format!("{}:{}", self.mode(), f),
            None => self.mode(),
        }
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Uploaded bytes by filename (appended).
    files: HashMap<String, Vec<u8>>,
    /// Progress answers left per imported file.
    left: HashMap<String, u32>,
    /// Zip archives already unpacked.
    unpacked: Vec<String>,
    sessions: u32,
}

struct Fake {
    cfg: FakeCfg,
    state: Mutex<State>,
}

fn answer(cfg: &FakeCfg, body: &str) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.insert_header((
        "Content-Type",
        if cfg.no_charset {
            "text/plain"
        } else {
            "text/plain; charset=windows-1251"
        },
    ));
    let mut bytes = Vec::new();
    if cfg.bom {
        bytes.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
    }
    bytes.extend_from_slice(&encoding_rs::WINDOWS_1251.encode(body).0);
    b.body(bytes)
}

async fn handle(req: HttpRequest, body: web::Bytes, fake: web::Data<Arc<Fake>>) -> HttpResponse {
    let cfg = &fake.cfg;
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        cookie: h("cookie"),
        basic: h("authorization").is_some_and(|a| a.starts_with("Basic ")),
        content_length: h("content-length").and_then(|v| v.parse().ok()),
        chunked: h("transfer-encoding").is_some_and(|v| v.contains("chunked")),
        body_len: body.len(),
        user_agent: h("user-agent").unwrap_or_default(),
    };
    let mode = seen.mode();
    let filename = seen.param("filename");
    let typ = seen.param("type").unwrap_or_default();
    let mut st = fake.state.lock().unwrap();
    st.seen.push(seen.clone());
    if mode != "checkauth" && seen.cookie.as_deref() != Some(&format!("FAKESID=v{}", st.sessions)) {
        return answer(cfg, "failure\nno cookie");
    }
    match mode.as_str() {
        "checkauth" => {
            st.sessions += 1;
            let l4 = if cfg.checkauth_line4_timestamp {
                "timestamp=1700000000".to_string()
            } else {
                "sessid=tok123\ntimestamp=1700000000".to_string()
            };
            answer(cfg, &format!("success\nFAKESID\nv{}\n{l4}", st.sessions))
        }
        "init" => {
            let mut b = format!(
                "zip={}\nfile_limit={}",
                if cfg.zip { "yes" } else { "no" },
                cfg.file_limit
            );
            if seen.param("version").is_some() {
                b.push_str("\nsessid=tok123\nversion=2.09");
            } else if cfg.init_three_lines {
                b.push_str("\nextra=1");
            }
            answer(cfg, &b)
        }
        "file" => {
            let f = filename.unwrap_or_default();
            st.files.entry(f).or_default().extend_from_slice(&body);
            answer(cfg, "success")
        }
        "import" => {
            let f = filename.unwrap_or_default();
            // Unpack a pending archive first (answers progress), like Bitrix.
            let pending: Vec<String> = st
                .files
                .keys()
                .filter(|k| k.ends_with(".zip"))
                .filter(|k| !st.unpacked.contains(k))
                .cloned()
                .collect();
            if let Some(z) = pending.into_iter().next() {
                let data = st.files[&z].clone();
                let mut a = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
                for i in 0..a.len() {
                    let mut e = a.by_index(i).unwrap();
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
                    st.files.insert(format!("unzipped/{}", e.name().unwrap()), buf);
                }
                st.unpacked.push(z);
                return answer(cfg, "progress\nРаспаковка архива завершена.");
            }
            if !st.files.contains_key(&f) && !st.files.contains_key(&format!("unzipped/{f}")) {
                return answer(cfg, &format!("failure\nФайл {f} не найден"));
            }
            if cfg.fail_import.as_deref() == Some(f.as_str()) {
                return answer(cfg, "failure\nОшибка разбора XML: строка 3, столбец 7");
            }
            let left = st.left.entry(f.clone()).or_insert(cfg.progress);
            if *left > 0 {
                *left -= 1;
                answer(cfg, "progress\nЗагружено 10 товаров")
            } else {
                answer(cfg, "success\nИмпорт успешно завершен.")
            }
        }
        "deactivate" => answer(cfg, "success\nДеактивация элементов завершена."),
        "complete" => answer(cfg, "success\nОбмен завершен."),
        "query" if typ == "sale" => HttpResponse::Ok()
            .insert_header(("Content-Type", "application/xml; charset=windows-1251"))
            .body(
                encoding_rs::WINDOWS_1251
                    .encode(
                        "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<КоммерческаяИнформация ВерсияСхемы=\"2.05\"><Документ><Ид>1</Ид><Номер>OB-1</Номер><Товары><Товар><Номер>nested</Номер></Товар></Товары></Документ><Документ><Ид>2</Ид><Номер>OB-&amp;2</Номер></Документ></КоммерческаяИнформация>",
                    )
                    .0
                    .into_owned(),
            ),
        "success" if typ == "sale" => answer(cfg, "success"),
        _ => answer(cfg, "failure\nUnknown command."),
    }
}

struct Running {
    base: String,
    fake: Arc<Fake>,
    handle: actix_web::dev::ServerHandle,
}

impl Running {
    fn seen(&self) -> Vec<Seen> {
        self.fake.state.lock().unwrap().seen.clone()
    }
    fn sequence(&self) -> Vec<String> {
        self.seen().iter().map(Seen::short).collect()
    }
    fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.fake.state.lock().unwrap().files.get(name).cloned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let h = self.handle.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(h.stop(false));
        });
    }
}

fn start(cfg: FakeCfg) -> Running {
    let fake = Arc::new(Fake {
        cfg,
        state: Mutex::new(State::default()),
    });
    let f2 = fake.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::new(f2);
            let srv = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .app_data(web::PayloadConfig::new(64 << 20))
                    .default_service(web::to(handle))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
            let addr = srv.addrs()[0];
            let server = srv.run();
            tx.send((addr, server.handle())).unwrap();
            let _ = server.await;
        })
    });
    let (addr, handle) = rx.recv().unwrap();
    Running {
        base: format!("http://{addr}"),
        fake,
        handle,
    }
}

/// A folder like UT 11's exchange folder: import0_1.xml, offers0_1.xml, one image.
fn exchange_dir(import_len: usize, offers_len: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let body = |tag: &str, n: usize| {
        let mut s = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><{tag}>");
        let mut i = 0;
        while s.len() + 20 < n {
            s.push_str(&format!("<x>{i}ё</x>"));
            i += 1;
        }
        s.push_str(&format!("</{tag}>"));
        s
    };
    std::fs::write(d.path().join("offers0_1.xml"), body("o", offers_len)).unwrap();
    std::fs::write(d.path().join("import0_1.xml"), body("i", import_len)).unwrap();
    std::fs::create_dir_all(d.path().join("import_files/5c")).unwrap();
    std::fs::write(d.path().join("import_files/5c/ab_cd.jpg"), [0xFFu8; 1500]).unwrap();
    std::fs::write(d.path().join("expected.json"), "{}").unwrap();
    d
}

fn opts(url: &str, inputs: Vec<PathBuf>) -> Options {
    let mut o = Options::new(url, inputs);
    o.user = "1c".into();
    o.password = "пароль".into();
    o.timeout = Duration::from_secs(20);
    o
}

#[tokio::test]
async fn ut11_plain_sequence_chunks_and_cookie() {
    let srv = start(FakeCfg::default());
    let dir = exchange_dir(2500, 900);
    let o = opts(
        &format!("{}/1c_exchange.php", srv.base),
        vec![dir.path().into()],
    );
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(
        srv.sequence(),
        vec![
            // Session 1: goods (+ images), checkauth twice.
            "checkauth",
            "checkauth",
            "init",
            "file:import0_1.xml",
            "file:import0_1.xml",
            "file:import0_1.xml",
            "file:import_files/5c/ab_cd.jpg",
            "file:import_files/5c/ab_cd.jpg",
            "import:import0_1.xml",
            "import:import0_1.xml",
            "import:import0_1.xml",
            // Session 2: offers.
            "checkauth",
            "checkauth",
            "init",
            "file:offers0_1.xml",
            "import:offers0_1.xml",
            "import:offers0_1.xml",
            "import:offers0_1.xml",
        ]
    );
    let seen = srv.seen();
    for r in &seen {
        assert!(r.basic, "Basic on every request: {r:?}");
        assert_eq!(r.user_agent, "1C+Enterprise/8.3");
        assert_eq!(r.path, "/1c_exchange.php");
        assert!(
            r.param("sessid").is_none(),
            "UT11 without use-sessid: {r:?}"
        );
        assert!(r.param("version").is_none());
        if r.mode() == "file" {
            assert_eq!(r.method, "POST");
            assert!(r.body_len <= 1000);
            assert_eq!(r.content_length, Some(r.body_len as u64), "{r:?}");
            assert!(!r.chunked);
        } else {
            assert_eq!(r.method, "GET");
        }
    }
    // The cookie is 1C's own header from checkauth lines 2-3 (the second checkauth's).
    assert_eq!(seen[2].cookie.as_deref(), Some("FAKESID=v2"));
    assert!(seen[0].cookie.is_none());
    assert_eq!(seen[13].cookie.as_deref(), Some("FAKESID=v4"));
    // Chunks of 1000 bytes, reassembled byte-exact.
    let sizes: Vec<usize> = seen
        .iter()
        .filter(|r| r.short() == "file:import0_1.xml")
        .map(|r| r.body_len)
        .collect();
    assert_eq!(sizes[..2], [1000, 1000]);
    assert_eq!(
        srv.file("import0_1.xml").unwrap(),
        std::fs::read(dir.path().join("import0_1.xml")).unwrap()
    );
    assert!(
        srv.file("expected.json").is_none(),
        "top-level non-XML is not sent"
    );
    assert_eq!(s.sessions, 2);
    assert_eq!(s.requests as usize, seen.len());
    assert_eq!(s.files.len(), 2);
    assert_eq!(s.files[0].file, "import0_1.xml");
    assert_eq!(s.files[0].chunks, 3);
    assert_eq!(s.files[0].import_requests, 3);
    assert_eq!(s.files[0].import, "success");
    assert_eq!(s.files[0].answer, "Импорт успешно завершен.");
    assert_eq!(s.file_limit, Some(1000));
    assert!(!s.zip);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["files"][1]["type"], "catalog");
}

#[tokio::test]
async fn ut11_zip_one_archive_per_session_then_import_by_xml_name() {
    let srv = start(FakeCfg {
        zip: true,
        file_limit: 700,
        progress: 0,
        ..FakeCfg::default()
    });
    let dir = exchange_dir(5000, 300);
    let o = opts(&format!("{}/exchange", srv.base), vec![dir.path().into()]);
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert!(s.zip);
    let seq = srv.sequence();
    let zips: Vec<&String> = seq.iter().filter(|x| x.starts_with("file:")).collect();
    assert!(
        zips.iter()
            .all(|x| x.starts_with("file:v8_") && x.ends_with(".zip")),
        "{seq:?}"
    );
    // The first import call unpacks (progress), the next succeeds; the name is the XML's.
    let imports: Vec<&String> = seq.iter().filter(|x| x.starts_with("import")).collect();
    assert_eq!(
        imports,
        [
            "import:import0_1.xml",
            "import:import0_1.xml",
            "import:offers0_1.xml",
            "import:offers0_1.xml"
        ]
    );
    // The archive held the XML at the root and the image by relative path.
    let imp = srv.file("unzipped/import0_1.xml").unwrap();
    assert_eq!(
        imp,
        std::fs::read(dir.path().join("import0_1.xml")).unwrap()
    );
    assert_eq!(
        srv.file("unzipped/import_files/5c/ab_cd.jpg")
            .unwrap()
            .len(),
        1500
    );
    assert!(srv.file("unzipped/offers0_1.xml").is_some());
    // Two sessions, each with its own archive name.
    let names: std::collections::HashSet<String> = srv
        .seen()
        .iter()
        .filter(|r| r.mode() == "file")
        .map(|r| r.param("filename").unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for r in srv.seen().iter().filter(|r| r.mode() == "file") {
        assert!(r.body_len <= 700);
    }
}

#[tokio::test]
async fn bitrix_style_sessid_version_deactivate_complete() {
    let srv = start(FakeCfg {
        zip: false,
        file_limit: 0,
        progress: 1,
        ..FakeCfg::default()
    });
    let dir = exchange_dir(3000, 300);
    let mut o = opts(&srv.base, vec![dir.path().into()]);
    o.style = Style::Bitrix;
    o.sessions = Sessions::One;
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(
        srv.sequence(),
        vec![
            "checkauth",
            "init",
            "file:import0_1.xml",
            "file:offers0_1.xml",
            "file:import_files/5c/ab_cd.jpg",
            "import:import0_1.xml",
            "import:import0_1.xml",
            "import:offers0_1.xml",
            "import:offers0_1.xml",
            "deactivate",
            "complete",
        ]
    );
    let seen = srv.seen();
    // Address with only a host: the default Bitrix script path.
    assert!(seen
        .iter()
        .all(|r| r.path == "/bitrix/admin/1c_exchange.php"));
    assert_eq!(seen[1].param("version").as_deref(), Some("2.10"));
    for r in &seen[1..] {
        assert_eq!(r.param("sessid").as_deref(), Some("tok123"), "{r:?}");
    }
    assert_eq!(seen[9].param("timestamp").as_deref(), Some("1700000000"));
    // file_limit=0: whole files in one request.
    assert_eq!(seen[2].body_len as u64, s.files[0].bytes);
}

#[tokio::test]
async fn chunk_override_and_no_import() {
    let srv = start(FakeCfg::default());
    let dir = exchange_dir(2500, 300);
    let mut o = opts(&srv.base, vec![dir.path().join("import0_1.xml")]);
    o.chunk = Some(512);
    o.no_import = true;
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(
        srv.sequence(),
        ["checkauth", "checkauth", "init"]
            .into_iter()
            .chain(std::iter::repeat_n("file:import0_1.xml", 5))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.files[0].import, "skipped");
}

#[tokio::test]
async fn import_failure_stops_the_exchange_with_the_reason() {
    let srv = start(FakeCfg {
        fail_import: Some("import0_1.xml".into()),
        ..FakeCfg::default()
    });
    let dir = exchange_dir(500, 300);
    let o = opts(&srv.base, vec![dir.path().into()]);
    let s = run(&o).await;
    assert!(!s.ok);
    assert!(
        s.errors[0].contains("Ошибка разбора XML: строка 3"),
        "{:?}",
        s.errors
    );
    assert_eq!(s.files[0].import, "failure");
    assert_eq!(s.files[1].import, "skipped");
    // 1C stops: no offers session.
    assert!(!srv.sequence().iter().any(|x| x.contains("offers")));
}

#[tokio::test]
async fn three_line_init_is_rejected_like_ut11() {
    let srv = start(FakeCfg {
        init_three_lines: true,
        ..FakeCfg::default()
    });
    let dir = exchange_dir(500, 300);
    let o = opts(&srv.base, vec![dir.path().into()]);
    let s = run(&o).await;
    assert!(!s.ok);
    assert!(
        s.errors[0].contains("Параметры обмена не получены"),
        "{:?}",
        s.errors
    );
    assert_eq!(srv.sequence(), ["checkauth", "checkauth", "init"]);
}

#[tokio::test]
async fn bom_and_missing_charset_are_deviations() {
    let srv = start(FakeCfg {
        bom: true,
        no_charset: true,
        progress: 0,
        ..FakeCfg::default()
    });
    let dir = exchange_dir(500, 300);
    let mut o = opts(&srv.base, vec![dir.path().join("offers0_1.xml")]);
    o.lang = Lang::En;
    let s = run(&o).await;
    // 1C copes (it trims and decodes), so the exchange runs to the end, but it is not ok.
    assert_eq!(s.files[0].import, "success");
    assert!(!s.ok);
    assert!(s.errors.iter().any(|e| e.contains("BOM")), "{:?}", s.errors);
    assert!(
        s.errors.iter().any(|e| e.contains("no charset")),
        "{:?}",
        s.errors
    );
}

#[tokio::test]
async fn checkauth_line4_must_be_sessid() {
    let srv = start(FakeCfg {
        checkauth_line4_timestamp: true,
        progress: 0,
        ..FakeCfg::default()
    });
    let dir = exchange_dir(500, 300);
    let mut o = opts(&srv.base, vec![dir.path().join("offers0_1.xml")]);
    o.use_sessid = true;
    let s = run(&o).await;
    assert!(!s.ok);
    assert!(s.errors[0].contains("sessid"), "{:?}", s.errors);
    // And UT11 really sends the line verbatim as sessid.
    let seen = srv.seen();
    assert_eq!(
        seen[2].param("sessid").as_deref(),
        Some("timestamp=1700000000")
    );
}

#[tokio::test]
async fn sale_query_success_then_orders_upload() {
    let srv = start(FakeCfg {
        progress: 0,
        ..FakeCfg::default()
    });
    let d = tempfile::tempdir().unwrap();
    let orders = d.path().join("orders-1234_1.xml");
    std::fs::write(&orders, "<?xml version=\"1.0\"?><КоммерческаяИнформация/>").unwrap();
    let mut o = opts(&srv.base, vec![orders]);
    o.sale = true;
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(
        srv.sequence(),
        [
            "checkauth",
            "checkauth",
            "query",
            "success",
            "checkauth",
            "checkauth",
            "init",
            "file:orders-1234_1.xml",
            "import:orders-1234_1.xml"
        ]
    );
    assert!(srv
        .seen()
        .iter()
        .all(|r| r.param("type").as_deref() == Some("sale")));
    let q = s.sale.unwrap();
    assert_eq!(q.documents, 2);
    assert_eq!(q.numbers, ["OB-1", "OB-&2"]);
    assert!(q.success);
    assert_eq!(q.charset, "windows-1251");
    assert_eq!(s.files[0].typ, "sale");
}

#[tokio::test]
async fn sale_query_without_success_and_saved_answer() {
    let srv = start(FakeCfg::default());
    let d = tempfile::tempdir().unwrap();
    let saved = d.path().join("query.xml");
    let mut o = opts(&srv.base, vec![]);
    o.sale = true;
    o.no_success = true;
    o.save_query = Some(saved.clone());
    let s = run(&o).await;
    assert!(s.ok, "{s:#?}");
    assert_eq!(srv.sequence(), ["checkauth", "checkauth", "query"]);
    let q = s.sale.unwrap();
    assert!(!q.success);
    assert_eq!(q.documents, 2);
    // Saved as received: windows-1251 bytes.
    let raw = std::fs::read(&saved).unwrap();
    assert_eq!(raw.len() as u64, q.query_bytes);
    assert!(raw.starts_with(b"<?xml version=\"1.0\" encoding=\"windows-1251\"?>"));
    assert!(encoding_rs::WINDOWS_1251
        .decode(&raw)
        .0
        .contains("<КоммерческаяИнформация"));
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    let mut o = opts("http://127.0.0.1:9/x", vec![]);
    o.sale = true;
    o.timeout = Duration::from_secs(3);
    let s = run(&o).await;
    assert!(!s.ok);
    assert!(
        s.errors[0].contains("не удалось соединиться"),
        "{:?}",
        s.errors
    );
}

#[test]
fn script_url_like_ut11() {
    assert_eq!(
        script_url("shop.example"),
        "http://shop.example/bitrix/admin/1c_exchange.php"
    );
    assert_eq!(
        script_url("https://shop.example/"),
        "https://shop.example/bitrix/admin/1c_exchange.php"
    );
    assert_eq!(
        script_url("shop.example:8080\\ex change?token=1"),
        "http://shop.example:8080/exchange?token=1"
    );
}

#[test]
fn natural_order_and_ranks() {
    let mut v = vec![
        "offers0_1.xml",
        "rests___a.xml",
        "import0_10.xml",
        "prices___b.xml",
        "import0_2.xml",
        "import___z.xml",
    ];
    v.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| natural_cmp(a, b)));
    assert_eq!(
        v,
        [
            "import0_2.xml",
            "import0_10.xml",
            "import___z.xml",
            "offers0_1.xml",
            "prices___b.xml",
            "rests___a.xml"
        ]
    );
}

#[test]
fn pack_writes_a_readable_archive() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.xml");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"<a/>").unwrap();
    let u = upload("a.xml".into(), &p).unwrap();
    let z = d.path().join("x.zip");
    pack(&[&u], &z).unwrap();
    assert_eq!(zip_xml_entries(&z).unwrap(), ["a.xml"]);
}
