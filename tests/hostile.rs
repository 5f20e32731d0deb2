//! The hostile input corpus: every case is named, sends one kind of bad input to the real binary
//! and asserts the exact answer (status and text) and that nothing stored changed (catalog,
//! orders and files outside the hostile session's own upload folder). See RELIABILITY.md.
//!
//! Table-driven: each test runs its cases against one server and reports every mismatch by case
//! name at the end, so one run shows all differences.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Differences collected over the cases of one test; panics at the end naming every case.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!(
                "[{case}] {what}:\n   got:  {got:?}\n   want: {want:?}"
            ));
        }
    }
    fn ok(&mut self, case: &str, what: &str, cond: bool) {
        if !cond {
            self.0.push(format!("[{case}] {what}"));
        }
    }
    fn finish(self) {
        assert!(self.0.is_empty(), "\n{}", self.0.join("\n"));
    }
}

/// What must not change: the catalog, goods and offers of the seed, the orders, and every file
/// in the data folder except the database and the upload folders of `skip` (hostile sessions,
/// which keep what they uploaded: the raw upload of the current set is kept for the journal).
async fn fingerprint(srv: &Server, skip: &[String]) -> String {
    let mut s = String::new();
    s.push_str(&srv.summary().await.to_string());
    for p in [
        "/api/v1/goods/g1",
        "/api/v1/goods/g2",
        "/api/v1/offers/g1",
        "/api/v1/offers/g2",
        "/api/v1/orders",
    ] {
        let (st, v) = srv.api(p).await;
        s.push_str(&format!("\n{p} {st} {v}"));
    }
    for f in srv.files() {
        let name = f.to_string_lossy().to_string();
        if name.starts_with("obmen.db") || skip.iter().any(|sid| name.contains(sid.as_str())) {
            continue;
        }
        let len = std::fs::metadata(srv.data.path().join(&f))
            .map(|m| m.len())
            .unwrap_or(0);
        s.push_str(&format!("\n{name} {len}"));
    }
    s
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

/// The session id in a `Cookie:` value from [`Server::login`].
fn sid(cookie: &str) -> String {
    cookie.split_once('=').unwrap().1.to_string()
}

/// A fresh session: checkauth, init, upload `bytes` as `name` in one chunk, then the import loop
/// for `import`. Returns (session id, the upload answer, the import answer).
async fn upload_then_import(
    srv: &Server,
    name: &str,
    bytes: Vec<u8>,
    import: &str,
) -> (String, Reply, Reply) {
    let cookie = srv.login("catalog").await;
    let init = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.first(), "zip=yes", "{}", init.body);
    let up = srv
        .post(
            &format!("type=catalog&mode=file&filename={name}"),
            bytes,
            Some(&cookie),
        )
        .await;
    let imp = srv.import_loop(import, &cookie).await;
    (sid(&cookie), up, imp)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

// ------------------------------------------------------------------------------------------
// XML content
// ------------------------------------------------------------------------------------------

/// Broken XML of every kind, uploaded and imported in its own session: a failure answer with
/// the reason, and the catalog exactly as before.
#[tokio::test]
async fn malformed_xml_is_refused_and_changes_nothing() {
    let srv = Server::start();
    seed(&srv).await;
    let valid = import_xml(&["g1", "n1", "n2"], None).replace("Товар g1<", "Переименован<");
    let at = |needle: &str, extra: usize| valid.find(needle).unwrap() + extra;
    // Cut offsets: mid-tag name, mid-attribute value, mid two-byte UTF-8 character, right after
    // the XML declaration, before the root closes.
    let mid_tag = at("<Товары>", 5);
    let mid_attr = at("СодержитТолькоИзменения=\"fa", 0) + "СодержитТолькоИзменения=\"fa".len();
    let mid_utf8 = at("Переименован", 1);
    let after_decl = at("?>", 2);
    let before_root_end = at("</Каталог>", 0);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated mid-tag",
            valid.as_bytes()[..mid_tag].to_vec(),
            "failure\nОшибка в XML (unclosed tag): строка 8, столбец 1",
        ),
        (
            "truncated mid-attribute",
            valid.as_bytes()[..mid_attr].to_vec(),
            "failure\nОшибка в XML (syntax error: attribute value not closed: `\"` not found before end of input): строка 7, столбец 1",
        ),
        (
            "truncated mid-UTF-8 character",
            valid.as_bytes()[..mid_utf8].to_vec(),
            "failure
Файл оборван посреди символа UTF-8: он передан не полностью, повторите выгрузку: строка 9, столбец 56",
        ),
        (
            "truncated after the declaration",
            valid.as_bytes()[..after_decl].to_vec(),
            "failure\nФайл пуст или не содержит XML-элементов: строка 1, столбец 39",
        ),
        (
            "truncated before the root closes",
            valid.as_bytes()[..before_root_end].to_vec(),
            "failure\nФайл оборван: элемент <КоммерческаяИнформация> не закрыт до конца файла: строка 13, столбец 1",
        ),
    ];
    // Garbage bytes (deterministic), and an empty file.
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    cases.push((
        "garbage bytes",
        garbage,
        "failure\nФайл не объявляет кодировку (значит, UTF-8), но содержит байты, недопустимые в UTF-8; похоже, он записан в windows-1251 — укажите её в заголовке <?xml … encoding=\"windows-1251\"?>: строка 1, столбец 1",
    ));
    cases.push((
        "empty file",
        Vec::new(),
        "failure\nФайл пуст или не содержит XML-элементов: строка 1, столбец 1",
    ));
    // Invalid UTF-8 in a file declared UTF-8 (a lone continuation byte inside a name).
    let bad_utf8 = valid
        .replacen("Переименован", "Пере\u{1}именован", 1)
        .into_bytes()
        .into_iter()
        .map(|b| if b == 1 { 0x80 } else { b })
        .collect::<Vec<u8>>();
    cases.push((
        "invalid UTF-8 in a UTF-8 file",
        bad_utf8,
        "failure\nФайл объявлен в кодировке UTF-8, но содержит байты, недопустимые в UTF-8; похоже, он записан в windows-1251 — укажите её в заголовке <?xml … encoding=\"windows-1251\"?>: строка 9, столбец 60",
    ));
    // A UTF-8 file with one name written in windows-1251.
    let (n2_1251, _, _) = encoding_rs::WINDOWS_1251.encode("Товар n2");
    let mut mixed = Vec::new();
    let cut = valid.find("Товар n2").unwrap();
    mixed.extend_from_slice(&valid.as_bytes()[..cut]);
    mixed.extend_from_slice(&n2_1251);
    mixed.extend_from_slice(&valid.as_bytes()[cut + "Товар n2".len()..]);
    cases.push((
        "windows-1251 inside a UTF-8 file",
        mixed,
        "failure\nФайл объявлен в кодировке UTF-8, но содержит байты, недопустимые в UTF-8; похоже, он записан в windows-1251 — укажите её в заголовке <?xml … encoding=\"windows-1251\"?>: строка 11, столбец 56",
    ));
    // Declared windows-1251, written in UTF-8.
    let utf8_as_1251 = valid
        .replace('\u{feff}', "")
        .replace("encoding=\"UTF-8\"", "encoding=\"windows-1251\"");
    cases.push((
        "UTF-8 declared windows-1251",
        utf8_as_1251.into_bytes(),
        "failure\nФайл объявлен в кодировке windows-1251, но на самом деле записан в UTF-8 — исправьте encoding в заголовке <?xml?>: строка 2, столбец 2",
    ));

    let mut checks = Checks::default();
    let mut sessions = Vec::new();
    let before = fingerprint(&srv, &[]).await;
    for (case, bytes, want) in cases {
        let (sid, up, imp) =
            upload_then_import(&srv, "import0_1.xml", bytes, "import0_1.xml").await;
        sessions.push(sid);
        checks.eq(case, "upload", up.body.as_str(), "success");
        checks.eq(case, "import answer", imp.status, 200);
        checks.eq(case, "import answer", imp.body.as_str(), want);
        checks.eq(
            case,
            "stored data",
            fingerprint(&srv, &sessions).await,
            before.clone(),
        );
    }
    checks.ok(
        "all",
        "new goods absent",
        srv.api("/api/v1/goods/n1").await.0 == 404,
    );
    checks.finish();
}

const ENTITIES_REFUSED: &str = "failure\nФайл содержит DOCTYPE с объявлениями сущностей (<!ENTITY>); такие файлы не принимаются (защита от атаки «billion laughs»): строка 2, столбец 1";

/// Entity tricks and depth: billion laughs, an external entity, 100 000 nested elements.
#[tokio::test]
async fn entities_and_deep_nesting_are_refused() {
    let srv = Server::start();
    seed(&srv).await;
    let mut laughs = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE КоммерческаяИнформация [\n<!ENTITY lol \"lol\">\n",
    );
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    laughs.push_str("]>\n<КоммерческаяИнформация ВерсияСхемы=\"2.07\"><Каталог><Ид>c</Ид><Товары><Товар><Ид>bl1</Ид><Наименование>&lol9;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>\n");
    let xxe = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE КоммерческаяИнформация [\n<!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n]>\n<КоммерческаяИнформация ВерсияСхемы=\"2.07\"><Каталог><Ид>c</Ид><Товары><Товар><Ид>xxe1</Ид><Наименование>&xxe;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>\n".to_string();
    let xxe_param = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE КоммерческаяИнформация [\n<!ENTITY % ext SYSTEM \"file:///etc/passwd\">\n%ext;\n]>\n<КоммерческаяИнформация ВерсияСхемы=\"2.07\"><Каталог><Ид>c</Ид><Товары><Товар><Ид>xxe2</Ид><Наименование>x</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>\n".to_string();
    let mut deep = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<КоммерческаяИнформация ВерсияСхемы=\"2.07\"><Каталог><Ид>c</Ид><Товары><Товар><Ид>deep1</Ид><Наименование>Глубокий</Наименование>");
    deep.push_str(&"<a>".repeat(100_000));
    deep.push_str(&"</a>".repeat(100_000));
    deep.push_str("</Товар></Товары></Каталог></КоммерческаяИнформация>\n");
    let cases: Vec<(&str, String, &str)> = vec![
        ("billion laughs", laughs, ENTITIES_REFUSED),
        ("external entity file:///etc/passwd", xxe, ENTITIES_REFUSED),
        ("external parameter entity", xxe_param, ENTITIES_REFUSED),
        (
            "100 000 nested elements",
            deep,
            "failure\nСлишком глубокая вложенность элементов (больше 256): строка 2, столбец 885",
        ),
    ];
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let secret_line = passwd.lines().next().unwrap_or("root:x:0:0").to_string();
    let mut checks = Checks::default();
    let mut sessions = Vec::new();
    let before = fingerprint(&srv, &[]).await;
    for (case, doc, want) in cases {
        let started = Instant::now();
        let (sid, up, imp) =
            upload_then_import(&srv, "import0_1.xml", doc.into_bytes(), "import0_1.xml").await;
        sessions.push(sid);
        checks.eq(case, "upload", up.body.as_str(), "success");
        checks.eq(case, "import answer", imp.body.as_str(), want);
        checks.ok(case, "answered in < 20 s", started.elapsed().as_secs() < 20);
        checks.eq(
            case,
            "stored data",
            fingerprint(&srv, &sessions).await,
            before.clone(),
        );
    }
    // The file's content appears nowhere: not in answers, the journal or the catalog.
    let (_, journal) = srv.api("/api/v1/exchanges?limit=50").await;
    for id in ["xxe1", "xxe2", "deep1", "bl1"] {
        let (st, g) = srv.api(&format!("/api/v1/goods/{id}")).await;
        checks.eq(id, "good absent", st, 404);
        checks.ok(
            id,
            "no passwd in the good",
            !g.to_string().contains(&secret_line),
        );
    }
    checks.ok(
        "external entity",
        "passwd never in the journal",
        !journal.to_string().contains(&secret_line),
    );
    checks.finish();
}

// ------------------------------------------------------------------------------------------
// Archives
// ------------------------------------------------------------------------------------------

/// A zip whose only extra entry is a symbolic link `name` → `target`.
fn zip_with_symlink(good: &[u8], name: &str, target: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("import0_1.xml", opts).unwrap();
    w.write_all(good).unwrap();
    w.add_symlink(name, target, opts).unwrap();
    w.finish().unwrap().into_inner()
}

/// A zip with `import0_1.xml` and 20 MiB of zeros (ratio about 1000:1), written in 1 MiB steps.
fn zip_bomb(good: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("import0_1.xml", opts).unwrap();
    w.write_all(good).unwrap();
    w.start_file("zeros.bin", opts).unwrap();
    let mib = vec![0u8; 1024 * 1024];
    for _ in 0..20 {
        w.write_all(&mib).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Hostile archives: refused at the first import with the reason; nothing of them is unpacked
/// (the session folder keeps only the uploaded archive) and nothing is written outside.
#[tokio::test]
async fn hostile_archives_are_refused_and_unpack_nothing() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("obmen.toml");
    std::fs::write(&cfg, "[exchange]\nzip_max_entries = 20\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let srv = Server::start_with(&[("OBMEN_CONFIG", cfg.to_str().unwrap())]);
    seed(&srv).await;
    let good = import_xml(&["z1"], None);
    let good = good.as_bytes();
    let outside = srv.data.path().parent().unwrap().to_path_buf();
    let slip_name = format!("../../hostile-slip-{}.xml", std::process::id());
    let many: Vec<(String, Vec<u8>)> = (0..25).map(|i| (format!("f{i}.txt"), vec![b'x'])).collect();
    let many_refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "zip slip ../",
            zip_of(&[("import0_1.xml", good), (&slip_name, b"x")]),
            format!("failure\nАрхив отклонен: файл «{slip_name}» в архиве. Недопустимое имя файла «{slip_name}»: переход в родительскую папку (..) запрещен."),
        ),
        (
            "zip slip ..\\",
            zip_of(&[("import0_1.xml", good), ("..\\..\\evil.xml", b"x")]),
            "failure\nАрхив отклонен: файл «..\\..\\evil.xml» в архиве. Недопустимое имя файла «..\\..\\evil.xml»: переход в родительскую папку (..) запрещен.".into(),
        ),
        (
            "absolute entry /tmp/…",
            zip_of(&[("import0_1.xml", good), ("/tmp/hostile-abs.xml", b"x")]),
            "failure\nАрхив отклонен: файл «/tmp/hostile-abs.xml» в архиве. Недопустимое имя файла «/tmp/hostile-abs.xml»: абсолютный путь запрещен.".into(),
        ),
        (
            "absolute entry C:\\",
            zip_of(&[("import0_1.xml", good), ("C:\\evil.xml", b"x")]),
            "failure\nАрхив отклонен: файл «C:\\evil.xml» в архиве. Недопустимое имя файла «C:\\evil.xml»: абсолютный путь запрещен.".into(),
        ),
        (
            "symlink entry",
            zip_with_symlink(good, "link.xml", "/etc/passwd"),
            "failure\nАрхив отклонен: «link.xml» — символическая ссылка, такие файлы не принимаются.".into(),
        ),
        (
            "zip bomb by ratio",
            zip_bomb(good),
            "failure\nАрхив отклонен: файл «zeros.bin» сжат более чем в 200 раз — похоже на zip-бомбу.".into(),
        ),
        (
            "zip bomb by entry count",
            zip_of(&many_refs),
            "failure\nАрхив отклонен: в нем 25 файлов, допускается не больше 20.".into(),
        ),
        (
            "duplicate entries",
            zip_of(&[("import0_1.xml", good), ("./import0_1.xml", b"x")]),
            "failure\nАрхив отклонен: файл «./import0_1.xml» встречается в архиве несколько раз.".into(),
        ),
        (
            "truncated archive",
            zip_of(&[("import0_1.xml", good)])[..200].to_vec(),
            "failure\nАрхив поврежден или передан не полностью (Could not find EOCD). Повторите выгрузку.".into(),
        ),
    ];
    let mut checks = Checks::default();
    let mut sessions = Vec::new();
    let before = fingerprint(&srv, &[]).await;
    for (case, archive, want) in cases {
        let (sid, up, imp) = upload_then_import(&srv, "v8_1.zip", archive, "import0_1.xml").await;
        checks.eq(case, "upload", up.body.as_str(), "success");
        checks.eq(case, "import answer", imp.body.as_str(), want.as_str());
        let mine: Vec<String> = srv
            .files()
            .into_iter()
            .map(|p| p.to_string_lossy().to_string())
            .filter(|p| p.contains(&sid))
            .collect();
        checks.eq(
            case,
            "session folder holds only the archive",
            mine,
            vec![format!("uploads/{sid}/v8_1.zip")],
        );
        sessions.push(sid);
        checks.eq(
            case,
            "stored data",
            fingerprint(&srv, &sessions).await,
            before.clone(),
        );
    }
    checks.ok(
        "zip slip ../",
        "nothing written outside",
        !outside
            .join(slip_name.trim_start_matches("../../"))
            .exists()
            && !outside.join("evil.xml").exists()
            && !std::path::Path::new("/tmp/hostile-abs.xml").exists(),
    );
    checks.eq("all", "z1 absent", srv.api("/api/v1/goods/z1").await.0, 404);
    checks.finish();
}

// ------------------------------------------------------------------------------------------
// File names
// ------------------------------------------------------------------------------------------

/// `filename` in every hostile form, on `mode=file` and `mode=import`. Refused names leave no
/// file; the absolute forms 1C really sends are sandboxed inside the session folder.
#[tokio::test]
async fn hostile_filenames_are_refused_or_sandboxed() {
    let srv = Server::start();
    seed(&srv).await;
    let long = "a".repeat(1100);
    let long_component = format!("{}.xml", "b".repeat(300));
    // (case, raw filename as it appears in the query string, expected answer, where a
    // successful upload must land relative to the session folder)
    let cases: Vec<(&str, String, String, Option<&str>)> = vec![
        (
            "../",
            "../../etc/x.xml".into(),
            traversal("../../etc/x.xml"),
            None,
        ),
        (
            "..\\",
            "..\\..\\x.xml".into(),
            traversal("..\\..\\x.xml"),
            None,
        ),
        (
            "nested ../",
            "import_files/../../../x.xml".into(),
            traversal("import_files/../../../x.xml"),
            None,
        ),
        (
            "URL-encoded %2e%2e%2f",
            "%2e%2e%2f%2e%2e%2fx.xml".into(),
            traversal("../../x.xml"),
            None,
        ),
        (
            "URL-encoded backslash %5c",
            "..%5c..%5cx.xml".into(),
            traversal("..\\..\\x.xml"),
            None,
        ),
        (
            "double-encoded %252e%252e%252f",
            "%252e%252e%252fx.xml".into(),
            "success".into(),
            Some("%2e%2e%2fx.xml"),
        ),
        (
            "absolute /etc/x",
            "/etc/x".into(),
            "success".into(),
            Some("etc/x"),
        ),
        (
            "absolute C:\\x",
            "C:\\x.xml".into(),
            "success".into(),
            Some("x.xml"),
        ),
        (
            "NUL byte",
            "x.xml%00.jpg".into(),
            "failure\nНедопустимое имя файла «x.xml?.jpg»: имя содержит управляющие символы."
                .into(),
            None,
        ),
        (
            "CR LF",
            "x%0d%0a.xml".into(),
            "failure\nНедопустимое имя файла «x??.xml»: имя содержит управляющие символы.".into(),
            None,
        ),
        (
            "very long name",
            long.clone(),
            format!(
                "failure\nНедопустимое имя файла «{}…»: имя слишком длинное.",
                &long[..120]
            ),
            None,
        ),
        (
            "very long component",
            long_component.clone(),
            format!(
                "failure\nНедопустимое имя файла «{}…»: имя слишком длинное.",
                &long_component[..120]
            ),
            None,
        ),
        (
            "empty name",
            "".into(),
            "failure\nНе указано имя файла (параметр filename).".into(),
            None,
        ),
        (
            "blank name",
            "%20%20".into(),
            "failure\nНе указано имя файла (параметр filename).".into(),
            None,
        ),
        (
            ".",
            ".".into(),
            "failure\nНедопустимое имя файла «.»: имя пустое.".into(),
            None,
        ),
        (
            "./.",
            "./.".into(),
            "failure\nНедопустимое имя файла «./.»: имя пустое.".into(),
            None,
        ),
        ("..", "..".into(), traversal(".."), None),
        (
            "/",
            "/".into(),
            "failure\nНедопустимое имя файла «/»: имя пустое.".into(),
            None,
        ),
        ("only dots ...", "...".into(), "success".into(), Some("...")),
    ];
    let mut checks = Checks::default();
    let mut sessions = Vec::new();
    let before = fingerprint(&srv, &[]).await;
    for (case, name, want, lands) in cases {
        let cookie = srv.login("catalog").await;
        let sid = sid(&cookie);
        srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
        let r = srv
            .post(
                &format!("type=catalog&mode=file&filename={name}"),
                b"<x/>".to_vec(),
                Some(&cookie),
            )
            .await;
        checks.eq(case, "file answer", r.status, 200);
        checks.eq(case, "file answer", r.body.as_str(), want.as_str());
        let mine: Vec<String> = srv
            .files()
            .into_iter()
            .map(|p| p.to_string_lossy().to_string())
            .filter(|p| p.contains(&sid))
            .collect();
        let want_files: Vec<String> = lands
            .map(|l| vec![format!("uploads/{sid}/{l}")])
            .unwrap_or_default();
        checks.eq(case, "files of the session", mine, want_files);
        if lands.is_none() {
            // The same name on import is refused the same way (or as not uploaded).
            let r = srv
                .get(
                    &format!("type=catalog&mode=import&filename={name}"),
                    None,
                    Some(&cookie),
                )
                .await;
            checks.eq(case, "import answer", r.body.as_str(), want.as_str());
        }
        sessions.push(sid);
        checks.eq(
            case,
            "stored data",
            fingerprint(&srv, &sessions).await,
            before.clone(),
        );
    }
    checks.ok(
        "all",
        "nothing outside",
        !std::path::Path::new("/etc/x").exists()
            && !srv.data.path().parent().unwrap().join("x.xml").exists(),
    );
    checks.finish();
}

fn traversal(name: &str) -> String {
    format!("failure\nНедопустимое имя файла «{name}»: переход в родительскую папку (..) запрещен.")
}

// ------------------------------------------------------------------------------------------
// Credentials, sessions, parameters, methods
// ------------------------------------------------------------------------------------------

const WRONG_PASSWORD: &str = "failure\nОшибка авторизации. Неверное имя пользователя или пароль.";
const NO_SESSION: &str = "failure\nСессия обмена не найдена или устарела. Выполните авторизацию (mode=checkauth) заново.";
const NO_AUTH: &str =
    "failure\nТребуется авторизация: нет ни cookie сессии, ни имени пользователя и пароля.";

/// Wrong credentials, forged and stale cookies, repeated and unknown parameters.
#[tokio::test]
async fn credentials_cookies_and_parameters() {
    let srv = Server::start();
    seed(&srv).await;
    let good = Server::basic();
    let wrong_pw = basic(LOGIN, "nope");
    let wrong_login = basic("admin", PASSWORD);
    let cookie = srv.login("catalog").await;
    let other_cookie = format!("PHPSESSID={}", sid(&cookie));
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}=v")).collect();
    let many = format!("type=catalog&mode=init&{}", many.join("&"));
    // (case, query, Authorization, Cookie, status, answer)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, String, Option<&str>, Option<&str>, u16, &str)> = vec![
        ("checkauth without credentials", "type=catalog&mode=checkauth".into(), None, None, 401, "failure\nТребуется авторизация."),
        ("checkauth wrong password", "type=catalog&mode=checkauth".into(), Some(&wrong_pw), None, 200, WRONG_PASSWORD),
        ("checkauth wrong login", "type=catalog&mode=checkauth".into(), Some(&wrong_login), None, 200, WRONG_PASSWORD),
        ("checkauth garbage Basic", "type=catalog&mode=checkauth".into(), Some("Basic !!!notbase64"), None, 401, "failure\nТребуется авторизация."),
        ("checkauth Bearer instead of Basic", "type=catalog&mode=checkauth".into(), Some("Bearer abc"), None, 401, "failure\nТребуется авторизация."),
        ("init wrong password with a valid cookie", "type=catalog&mode=init".into(), Some(&wrong_pw), Some(&cookie), 200, WRONG_PASSWORD),
        ("init without cookie or credentials", "type=catalog&mode=init".into(), None, None, 200, NO_AUTH),
        ("forged cookie", "type=catalog&mode=init".into(), None, Some("OBMENSID=deadbeefdeadbeefdeadbeefdeadbeef"), 200, NO_SESSION),
        ("forged cookie with SQL", "type=catalog&mode=init".into(), None, Some("OBMENSID=x' OR '1'='1"), 200, NO_SESSION),
        ("cookie of another name", "type=catalog&mode=init".into(), None, Some(&other_cookie), 200, NO_AUTH),
        ("mode twice", "type=catalog&mode=checkauth&mode=import".into(), Some(&good), None, 200, "failure\nНеоднозначный запрос: параметр mode указан несколько раз с разными значениями («checkauth», «import»)."),
        ("type twice", "type=catalog&type=sale&mode=checkauth".into(), Some(&good), None, 200, "failure\nНеоднозначный запрос: параметр type указан несколько раз с разными значениями («catalog», «sale»)."),
        ("filename twice", "type=catalog&mode=import&filename=a.xml&filename=b.xml".into(), None, Some(&cookie), 200, "failure\nНеоднозначный запрос: параметр filename указан несколько раз с разными значениями («a.xml», «b.xml»)."),
        ("too many parameters", many, None, Some(&cookie), 200, "failure\nСлишком много параметров в запросе (больше 1000)."),
        ("unknown mode", "type=catalog&mode=frobnicate".into(), None, Some(&cookie), 200, "failure\nUnknown command.\nНеизвестная команда: type=catalog, mode=frobnicate."),
        ("unknown type", "type=nonsense&mode=checkauth".into(), Some(&good), None, 200, "failure\nUnknown command.\nНеизвестная команда: type=nonsense, mode=checkauth."),
        ("sale mode on catalog", "type=catalog&mode=query".into(), None, Some(&cookie), 200, "failure\nUnknown command.\nНеизвестная команда: type=catalog, mode=query."),
        ("no parameters", "".into(), Some(&good), None, 200, "failure\nUnknown command.\nНеизвестная команда: type=, mode=."),
        ("deactivate without timestamp", "type=catalog&mode=deactivate".into(), None, Some(&cookie), 200, "failure\nОшибка деактивации элементов: не указан параметр timestamp."),
        ("deactivate with garbage timestamp", "type=catalog&mode=deactivate&timestamp=-5".into(), None, Some(&cookie), 200, "failure\nОшибка деактивации элементов: не указан параметр timestamp."),
        ("import of a file never uploaded", "type=catalog&mode=import&filename=nothing.xml".into(), None, Some(&cookie), 200, "failure\nФайл nothing.xml не найден на сервере: он не был загружен в этой сессии (mode=file)."),
    ];
    let mut checks = Checks::default();
    let before = fingerprint(&srv, &[]).await;
    for (case, q, auth, ck, status, want) in cases {
        let r = srv.get(&q, auth, ck).await;
        checks.eq(case, "status", r.status, status);
        checks.eq(case, "answer", r.body.as_str(), want);
        checks.eq(
            case,
            "stored data",
            fingerprint(&srv, &[]).await,
            before.clone(),
        );
    }
    checks.finish();
}

/// Lockout after wrong passwords (`exchange.lock_after`, default 10, per client address):
/// nine wrong tries get the plain answer, the tenth locks the address; while locked even the
/// right password is refused, from that address only; a session opened before goes on; the
/// count and the lock change no stored data; `obmen unlock-1c ADDR` lifts it.
#[tokio::test]
async fn wrong_passwords_lock_the_address_out() {
    let srv = Server::start();
    seed(&srv).await;
    let cookie = srv.login("catalog").await;
    let before = fingerprint(&srv, &[]).await;
    let wrong = basic(LOGIN, "guess");
    for i in 1..10 {
        let r = srv
            .get("type=catalog&mode=checkauth", Some(&wrong), None)
            .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, WRONG_PASSWORD),
            "try {i}"
        );
    }
    let locked =
        "failure\nСлишком много неверных паролей с адреса 127.0.0.1: вход заблокирован до ";
    let check_locked = |r: &Reply, what: &str| {
        assert_eq!(r.status, 200, "{what}");
        let rest = r
            .body
            .strip_prefix(locked)
            .unwrap_or_else(|| panic!("{what}: {}", r.body));
        // `YYYY-MM-DD HH:MM:SS.`, fifteen minutes from now (local time).
        assert_eq!(rest.len(), 20, "{what}: {}", r.body);
        assert!(rest.ends_with('.'), "{what}: {}", r.body);
    };
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&wrong), None)
        .await;
    check_locked(&r, "the tenth wrong password");
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&Server::basic()), None)
        .await;
    check_locked(&r, "the right password while locked");
    let r = srv
        .get("type=sale&mode=query", Some(&Server::basic()), None)
        .await;
    check_locked(&r, "Basic on a later mode while locked");
    // The session opened before the lock goes on (its cookie is not a password).
    let r = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(r.body, "zip=yes\nfile_limit=104857600");
    // Another address is not locked.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = Reply::from(
        other
            .get(format!("{}?type=catalog&mode=checkauth", srv.url()))
            .header("Authorization", Server::basic())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    assert_eq!(fingerprint(&srv, &[sid(&cookie)]).await, before);

    // The administrator lists and lifts the lock.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_obmen"));
        cmd.arg("--data-dir")
            .arg(srv.data.path())
            .args(args)
            .env_remove("OBMEN_CONFIG");
        with_db(&mut cmd, srv.data.path());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = cli(&["unlock-1c"]);
    assert!(
        list.contains(r#""addr":"127.0.0.1","failures":10"#),
        "{list}"
    );
    assert!(!list.contains(r#""locked_until":null"#), "{list}");
    assert_eq!(cli(&["unlock-1c", "127.0.0.1"]).trim(), r#"{"unlocked":1}"#);
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&Server::basic()), None)
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    assert_eq!(cli(&["unlock-1c"]), "");
}

/// A cookie stays valid after `complete` and across a restart (the session row is kept so that
/// an exchange interrupted by a restart goes on); a cookie alone never creates a session.
#[tokio::test]
async fn stale_cookies_after_complete_and_restart() {
    let srv = Server::start();
    seed(&srv).await;
    let before = fingerprint(&srv, &[]).await;
    let cookie = srv.login("catalog").await;
    let r = srv
        .get("type=catalog&mode=complete", None, Some(&cookie))
        .await;
    assert_eq!(r.body, "success\nОбмен завершен.");
    let r = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(r.body, "zip=yes\nfile_limit=104857600");
    let data = srv.stop();
    let srv = Server::start_in(data, &[]);
    let r = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(r.body, "zip=yes\nfile_limit=104857600");
    // A cookie that was never issued, after the restart.
    let r = srv
        .get(
            "type=catalog&mode=init",
            None,
            Some("OBMENSID=0123456789abcdef0123456789abcdef"),
        )
        .await;
    assert_eq!(r.body, NO_SESSION);
    assert_eq!(fingerprint(&srv, &[sid(&cookie)]).await, before);
}

/// Methods 1C never uses, and an oversize urlencoded form body.
#[tokio::test]
async fn wrong_methods_and_oversize_form_body() {
    let srv = Server::start();
    seed(&srv).await;
    let before = fingerprint(&srv, &[]).await;
    let auth = Server::basic();
    let mut checks = Checks::default();
    for method in ["PUT", "DELETE", "PATCH"] {
        let r = srv
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}?type=catalog&mode=checkauth", srv.url()),
            )
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = encoding_rs::WINDOWS_1251
            .decode_without_bom_handling(&r.bytes().await.unwrap())
            .0
            .into_owned();
        checks.eq(method, "status", status, 200);
        checks.eq(
            method,
            "answer",
            body,
            format!(
                "failure\nМетод {method} не поддерживается: обмен принимает только GET и POST."
            ),
        );
    }
    // type/mode in a form body bigger than 64 KiB.
    let mut form = b"type=catalog&mode=checkauth&pad=".to_vec();
    form.resize(70 * 1024, b'a');
    let r = srv
        .client
        .post(srv.url())
        .header("Authorization", &auth)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    checks.eq("form body > 64 KiB", "status", r.status().as_u16(), 200);
    let body = encoding_rs::WINDOWS_1251
        .decode_without_bom_handling(&r.bytes().await.unwrap())
        .0
        .into_owned();
    checks.eq(
        "form body > 64 KiB",
        "answer",
        body.as_str(),
        "failure\nСлишком большой запрос.",
    );
    checks.eq("all", "stored data", fingerprint(&srv, &[]).await, before);
    checks.finish();
}

// ------------------------------------------------------------------------------------------
// The JSON API
// ------------------------------------------------------------------------------------------

/// Token missing or wrong, an oversize or broken JSON body, a wrong method: a JSON error with a
/// clear message, and nothing stored.
#[tokio::test]
async fn api_refuses_bad_tokens_bodies_and_methods() {
    let srv = Server::start();
    seed(&srv).await;
    let before = fingerprint(&srv, &[]).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    // (case, method, path, Authorization, body, status, JSON answer)
    let bearer = format!("Bearer {API_TOKEN}");
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        &str,
        &str,
        Option<String>,
        Option<String>,
        u16,
        serde_json::Value,
    )> = vec![
        (
            "token missing",
            "GET",
            "/api/v1/catalog/summary",
            None,
            None,
            401,
            serde_json::json!({"error": "unauthorized", "message": "An Authorization: Bearer token is required."}),
        ),
        (
            "token wrong",
            "GET",
            "/api/v1/catalog/summary",
            Some("Bearer nope".into()),
            None,
            401,
            serde_json::json!({"error": "unauthorized", "message": "The API token is wrong."}),
        ),
        (
            "token as Basic",
            "GET",
            "/api/v1/catalog/summary",
            Some(basic("x", API_TOKEN)),
            None,
            401,
            serde_json::json!({"error": "unauthorized", "message": "An Authorization: Bearer token is required."}),
        ),
        (
            "token prefix",
            "GET",
            "/api/v1/catalog/summary",
            Some(format!("Bearer {}", &API_TOKEN[..4])),
            None,
            401,
            serde_json::json!({"error": "unauthorized", "message": "The API token is wrong."}),
        ),
        (
            "orders without token",
            "POST",
            "/api/v1/orders",
            None,
            Some("{}".into()),
            401,
            serde_json::json!({"error": "unauthorized", "message": "An Authorization: Bearer token is required."}),
        ),
        (
            "oversize JSON body",
            "POST",
            "/api/v1/orders",
            Some(bearer.clone()),
            Some(big),
            413,
            serde_json::json!({"error": "too_large", "message": "The body is larger than the limit of 262144 bytes."}),
        ),
        (
            "broken JSON body",
            "POST",
            "/api/v1/orders",
            Some(bearer.clone()),
            Some("{\"external_id\":".into()),
            400,
            serde_json::json!({"error": "bad_json", "message": "The body is not a valid order: EOF while parsing a value at line 1 column 15"}),
        ),
        (
            "wrong method",
            "DELETE",
            "/api/v1/orders",
            Some(bearer.clone()),
            None,
            405,
            serde_json::json!({"error": "method_not_allowed", "message": "Method DELETE is not allowed here."}),
        ),
    ];
    let mut checks = Checks::default();
    for (case, method, path, auth, body, status, want) in cases {
        let mut rb = srv.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", srv.base),
        );
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b);
        }
        let r = rb.send().await.unwrap();
        checks.eq(case, "status", r.status().as_u16(), status);
        let text = r.text().await.unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        checks.eq(case, "answer", v, want);
    }
    checks.eq("all", "stored data", fingerprint(&srv, &[]).await, before);
    checks.finish();
}

// ------------------------------------------------------------------------------------------
// Body size and slow clients
// ------------------------------------------------------------------------------------------

/// Send `head` (with the session cookie) and up to `send` bytes of body in 64 KiB steps, then
/// read the answer. Writing stops quietly when the server has already answered and closed.
fn raw_upload(base: &str, head: &str, send: usize) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("{head}\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let block = vec![b'<'; 64 * 1024];
    let mut sent = 0;
    while sent < send {
        if s.write_all(&block).is_err() {
            break;
        }
        sent += block.len();
    }
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        // Stop once the whole answer (by its Content-Length) is in.
        let text = String::from_utf8_lossy(&buf);
        if let Some((h, b)) = text.split_once("\r\n\r\n") {
            let len = h
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(usize::MAX);
            if b.len() >= len {
                break;
            }
        }
    }
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(buf.len());
    let status = String::from_utf8_lossy(&buf[..head_end])
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let body = encoding_rs::WINDOWS_1251
        .decode_without_bom_handling(&buf[head_end..])
        .0
        .into_owned();
    (status, body)
}

/// A 2 GB Content-Length is refused at once (before any byte is stored), a chunked body is
/// cut off at the limit, and the limit matches what `init` advertises.
#[tokio::test]
async fn huge_bodies_are_refused_early() {
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_FILE_LIMIT", "1000000"),
        ("OBMEN_EXCHANGE_MAX_BODY", "2000000"),
    ]);
    seed(&srv).await;
    let before = fingerprint(&srv, &[]).await;
    let cookie = srv.login("catalog").await;
    let init = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert_eq!(init.body, "zip=yes\nfile_limit=1000000");
    let url = "/1c_exchange.php?type=catalog&mode=file&filename=import0_1.xml";
    let started = Instant::now();
    let (status, body) = raw_upload(
        &srv.base,
        &format!("POST {url} HTTP/1.1\r\nCookie: {cookie}\r\nContent-Length: 2147483648"),
        4 * 1024 * 1024,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "failure\nСлишком большой запрос: 2147483648 байт при ограничении 2000000 байт. Уменьшите размер порции (file_limit).")
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // Chunked (no length given): refused when the limit is passed.
    let addr = srv.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        format!("POST {url} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let block = vec![b'<'; 64 * 1024];
    for _ in 0..48 {
        let mut c = format!("{:x}\r\n", block.len()).into_bytes();
        c.extend_from_slice(&block);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break;
        }
    }
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(
        body.starts_with("failure\nСлишком большой запрос: ")
            && body.ends_with(
                " байт при ограничении 2000000 байт. Уменьшите размер порции (file_limit)."
            ),
        "{body}"
    );
    // Nothing of either body stayed.
    let mine: Vec<_> = srv
        .files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&sid(&cookie)))
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
    assert_eq!(fingerprint(&srv, &[]).await, before);
}

/// A client trickling a byte every 2 s is cut off after the idle limit with a clear answer, the
/// partial file is not kept, and other clients are served meanwhile.
#[tokio::test]
async fn slowloris_upload_times_out_and_others_are_served() {
    let srv = Server::start_with(&[("OBMEN_EXCHANGE_UPLOAD_IDLE_SECS", "1")]);
    seed(&srv).await;
    let before = fingerprint(&srv, &[]).await;
    let cookie = srv.login("catalog").await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /1c_exchange.php?type=catalog&mode=file&filename=import0_1.xml HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Length: 1000\r\n\r\n"
    );
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        for _ in 0..5 {
            if s.write_all(b"<").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2000));
        }
        let r = read_response(&mut s);
        (r, started.elapsed())
    });
    // Meanwhile another client gets its answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let r = srv
        .get("type=catalog&mode=checkauth", Some(&Server::basic()), None)
        .await;
    assert_eq!(r.first(), "success");
    assert!(t.elapsed() < Duration::from_secs(2));
    let ((status, body), took) = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "failure\nФайл получен не полностью: за 1 с не пришло ни одного байта."
        )
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    let mine: Vec<_> = srv
        .files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&sid(&cookie)))
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
    assert_eq!(fingerprint(&srv, &[]).await, before);
}
