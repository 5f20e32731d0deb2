//! Black-box harness: start the real `obmen` binary on a free port with a fresh data folder and
//! speak to it over HTTP exactly as 1C does.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

pub const LOGIN: &str = "1c";
pub const PASSWORD: &str = "s3cret-пароль";
pub const API_TOKEN: &str = "test-token";

pub struct Server {
    child: Child,
    pub base: String,
    pub data: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start with extra environment variables (e.g. `OBMEN_EXCHANGE_ZIP=false`).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        Server::start_in(data, env)
    }

    pub fn start_in(data: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        Server::start_full(data, &[], env)
    }

    /// `obmen serve` with extra arguments (e.g. `--demo`).
    pub fn start_full(data: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_obmen"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("OBMEN_CONFIG")
            .env("OBMEN_EXCHANGE_LOGIN", LOGIN)
            .env("OBMEN_EXCHANGE_PASSWORD", PASSWORD)
            .env("OBMEN_API_TOKEN", API_TOKEN)
            .env("OBMEN_IMPORT_WAIT_SECS", "2")
            .env("OBMEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        with_db(&mut cmd, data.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start obmen");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    // `http://ADDR`, or `https://ADDR` with TLS.
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(url);
                        sent = true;
                    }
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("obmen did not report its address");
        Server {
            child,
            base,
            data,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(200))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/1c_exchange.php", self.base)
    }

    /// Stop the process and keep the data folder (for restart tests).
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    pub fn basic() -> String {
        basic(LOGIN, PASSWORD)
    }

    /// GET `<url>?<query>` with optional Basic and cookie; returns (status, decoded body).
    pub async fn get(&self, query: &str, auth: Option<&str>, cookie: Option<&str>) -> Reply {
        let mut rb = self.client.get(format!("{}?{}", self.url(), query));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        if let Some(c) = cookie {
            rb = rb.header("Cookie", c);
        }
        Reply::from(rb.send().await.expect("request")).await
    }

    pub async fn post(&self, query: &str, body: Vec<u8>, cookie: Option<&str>) -> Reply {
        let mut rb = self
            .client
            .post(format!("{}?{}", self.url(), query))
            .body(body);
        if let Some(c) = cookie {
            rb = rb.header("Cookie", c);
        }
        Reply::from(rb.send().await.expect("request")).await
    }

    /// checkauth with the right credentials; returns the `Cookie:` header value 1C would send.
    pub async fn login(&self, typ: &str) -> String {
        let r = self
            .get(
                &format!("type={typ}&mode=checkauth"),
                Some(&Self::basic()),
                None,
            )
            .await;
        assert_eq!(r.first(), "success", "checkauth: {}", r.body);
        let lines: Vec<&str> = r.body.split('\n').collect();
        format!("{}={}", lines[1], lines[2])
    }

    /// A whole catalog session: checkauth, init, file (in chunks), import loop.
    /// Returns the final import answer.
    pub async fn upload_and_import(&self, files: &[(&str, &[u8])], import: &[&str]) -> Reply {
        let cookie = self.login("catalog").await;
        let init = self
            .get("type=catalog&mode=init", None, Some(&cookie))
            .await;
        assert_eq!(init.body.split('\n').count(), 2, "init: {}", init.body);
        for (name, bytes) in files {
            let r = self
                .post(
                    &format!("type=catalog&mode=file&filename={name}"),
                    bytes.to_vec(),
                    Some(&cookie),
                )
                .await;
            assert_eq!(r.first(), "success", "file {name}: {}", r.body);
        }
        let mut last = None;
        for name in import {
            last = Some(self.import_loop(name, &cookie).await);
            if last.as_ref().unwrap().first() != "success" {
                break;
            }
        }
        last.expect("at least one import")
    }

    pub async fn import_loop(&self, name: &str, cookie: &str) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let r = self
                .get(
                    &format!("type=catalog&mode=import&filename={name}"),
                    None,
                    Some(cookie),
                )
                .await;
            if r.first() != "progress" || Instant::now() > deadline {
                return r;
            }
        }
    }

    pub async fn api(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .send()
            .await
            .expect("api request");
        let status = r.status().as_u16();
        let v = r
            .json::<serde_json::Value>()
            .await
            .unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    pub async fn summary(&self) -> serde_json::Value {
        let (s, v) = self.api("/api/v1/catalog/summary").await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// All files under the data folder (relative paths), to prove nothing was written elsewhere.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(self.data.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Point an `obmen` command at the test database of a data folder: a fresh PostgreSQL database
/// when the suite runs on PostgreSQL (`OBMEN_TEST_PG_URL`), else the folder's SQLite default.
pub fn with_db(cmd: &mut Command, data: &Path) {
    if obmen::store::testing::on_pg() {
        cmd.env("OBMEN_DATABASE_URL", obmen::store::testing::url(data));
    } else {
        cmd.env_remove("OBMEN_DATABASE_URL");
    }
}

/// The environment that points an `obmen` command at a data folder's test database (see
/// [`with_db`]); empty on SQLite.
pub fn db_envs(data: impl AsRef<Path>) -> Vec<(&'static str, String)> {
    if obmen::store::testing::on_pg() {
        vec![(
            "OBMEN_DATABASE_URL",
            obmen::store::testing::url(data.as_ref()),
        )]
    } else {
        Vec::new()
    }
}

pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
    }
    out.sort();
    out
}

pub fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub raw: Vec<u8>,
    pub body: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let www_authenticate = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let raw = r.bytes().await.expect("body").to_vec();
        let body = if content_type.to_ascii_lowercase().contains("windows-1251") {
            encoding_rs::WINDOWS_1251
                .decode_without_bom_handling(&raw)
                .0
                .into_owned()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        Reply {
            status,
            content_type,
            www_authenticate,
            raw,
            body,
        }
    }

    /// The status keyword as 1C reads it: first line, trimmed, lower-cased.
    pub fn first(&self) -> String {
        self.body
            .split('\n')
            .next()
            .unwrap_or("")
            .trim()
            .to_lowercase()
    }

    pub fn detail(&self) -> String {
        self.body
            .split_once('\n')
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    }
}

/// A small CommerceML catalog written for the tests: `n` goods `g1..gn` in group `grp1`,
/// optionally a broken element after good number `break_after`.
pub fn import_xml(ids: &[&str], break_after: Option<usize>) -> String {
    let mut s = String::from(
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<Классификатор><Ид>cls1</Ид><Наименование>Классификатор</Наименование>\n\
<Группы><Группа><Ид>grp1</Ид><Наименование>Инструменты</Наименование></Группа></Группы>\n\
<Свойства><Свойство><Ид>prop1</Ид><Наименование>Цвет</Наименование><ТипЗначений>Строка</ТипЗначений></Свойство></Свойства>\n\
</Классификатор>\n\
<Каталог СодержитТолькоИзменения=\"false\"><Ид>cat1</Ид><ИдКлассификатора>cls1</ИдКлассификатора><Наименование>Каталог</Наименование>\n<Товары>\n",
    );
    for (i, id) in ids.iter().enumerate() {
        s.push_str(&format!(
            "<Товар><Ид>{id}</Ид><Артикул>A-{id}</Артикул><Наименование>Товар {id}</Наименование>\
<БазоваяЕдиница Код=\"796 \">шт</БазоваяЕдиница><Группы><Ид>grp1</Ид></Группы>\
<ЗначенияСвойств><ЗначенияСвойства><Ид>prop1</Ид><Значение>красный</Значение></ЗначенияСвойства></ЗначенияСвойств></Товар>\n"
        ));
        if break_after == Some(i + 1) {
            s.push_str("<Товар><Ид>broken</Ид><Наименование>Сломанный</Артикул></Товар>\n");
        }
    }
    s.push_str("</Товары>\n</Каталог>\n</КоммерческаяИнформация>\n");
    s
}

/// Offers for the goods of [`import_xml`]: one price type, two warehouses.
pub fn offers_xml(ids: &[&str]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<ПакетПредложений СодержитТолькоИзменения=\"false\"><Ид>cat1#</Ид><Наименование>Пакет</Наименование><ИдКаталога>cat1</ИдКаталога><ИдКлассификатора>cls1</ИдКлассификатора>\n\
<ТипыЦен><ТипЦены><Ид>pt1</Ид><Наименование>Розничная</Наименование><Валюта>руб</Валюта></ТипЦены></ТипыЦен>\n\
<Склады><Склад><Ид>wh1</Ид><Наименование>Основной</Наименование></Склад><Склад><Ид>wh2</Ид><Наименование>Второй</Наименование></Склад></Склады>\n\
<Предложения>\n",
    );
    for (i, id) in ids.iter().enumerate() {
        let q1 = i + 1;
        s.push_str(&format!(
            "<Предложение><Ид>{id}</Ид><Артикул>A-{id}</Артикул><Наименование>Товар {id}</Наименование>\
<Цены><Цена><Представление>{p} руб. за шт</Представление><ИдТипаЦены>pt1</ИдТипаЦены><ЦенаЗаЕдиницу>{p}.50</ЦенаЗаЕдиницу><Валюта>руб</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>\
<Количество>{total}</Количество><Склад ИдСклада=\"wh1\" КоличествоНаСкладе=\"{q1}\"/><Склад ИдСклада=\"wh2\" КоличествоНаСкладе=\"2\"/></Предложение>\n",
            p = 100 + i,
            total = q1 + 2,
        ));
    }
    s.push_str("</Предложения>\n</ПакетПредложений>\n</КоммерческаяИнформация>\n");
    s
}

/// The `obmen` binary with a clean environment (no config file, database URL or password).
pub fn obmen() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_obmen"));
    c.env_remove("OBMEN_CONFIG")
        .env_remove("OBMEN_DATABASE_URL")
        .env_remove("OBMEN_EXCHANGE_PASSWORD")
        .env("OBMEN_LOG", "warn");
    c
}

/// Run `obmen emulate-1c URL ARGS INPUTS --json` as a process; returns its JSON summary, asserting
/// that the exchange succeeded.
pub fn emulate(url: &str, args: &[&str], inputs: &[&Path]) -> serde_json::Value {
    let mut c = obmen();
    c.args([
        "emulate-1c",
        url,
        "--user",
        LOGIN,
        "--password",
        PASSWORD,
        "--json",
        "-q",
    ]);
    c.args(args);
    for i in inputs {
        c.arg(i);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        out.status.success() && v["ok"] == true,
        "{v:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// `obmen gen-catalog` into `dir`; returns its expected.json.
pub fn gen_catalog(dir: &Path, goods: u64, seed: u64, images: bool) -> serde_json::Value {
    let mut c = obmen();
    c.args([
        "gen-catalog",
        "--goods",
        &goods.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    if images {
        c.arg("--images");
    }
    let out = c.arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

/// Start `obmen sim ozon` on a free port; returns the process and its base URL.
pub fn spawn_sim(args: &[&str]) -> (Child, String) {
    spawn_named_sim("ozon", args)
}

/// The CDEK simulator binary (`obmen sim cdek`) on a free port: (process, `http://ADDR`).
pub fn spawn_cdek_sim(args: &[&str]) -> (Child, String) {
    spawn_named_sim("cdek", args)
}

/// `obmen sim <name> --listen 127.0.0.1:0 ARGS`, waiting for its `listening on http://ADDR` line.
pub fn spawn_named_sim(name: &str, args: &[&str]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_obmen"));
    cmd.args(["sim", name, "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("OBMEN_CONFIG")
        .env("OBMEN_LOG", "warn");
    spawn_listening(cmd)
}

/// Start a process that prints `listening on http://ADDR` (stderr passed through); returns it
/// with `http://ADDR`.
pub fn spawn_listening(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the process did not report its address");
    (child, format!("http://{addr}"))
}

/// The Ozon simulator binary (`obmen sim ozon`) on a free port.
pub struct Sim {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

pub const SIM_CLIENT_ID: &str = "123456";
pub const SIM_API_KEY: &str = "sim-api-key";
pub const SIM_WAREHOUSE: &str = "22142605386000";

impl Sim {
    pub fn start(args: &[&str]) -> Sim {
        let (child, base) = spawn_sim(args);
        Sim {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    /// obmen's environment pointing at this simulator.
    pub fn obmen_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OBMEN_OZON_BASE_URL", self.base.clone()),
            ("OBMEN_OZON_CLIENT_ID", SIM_CLIENT_ID.into()),
            ("OBMEN_OZON_API_KEY", SIM_API_KEY.into()),
            ("OBMEN_OZON_WAREHOUSE_ID", SIM_WAREHOUSE.into()),
            ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
            ("OBMEN_RELAY_BACKOFF_MAX_SECS", "2".into()),
        ]
    }

    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v = r.json().await.unwrap_or(serde_json::Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.get("/sim/stats").await.1
    }

    /// An Ozon API call with the simulator's credentials.
    pub async fn ozon(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("Client-Id", SIM_CLIENT_ID)
            .header("Api-Key", SIM_API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` until it returns Some, or panic after `secs` with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `obmen user add NAME --role ROLE --password-stdin` on a server's data folder.
pub fn add_user(data: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = obmen()
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(data)
        .envs(db_envs(data))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("obmen user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "obmen user add {name} failed");
}

/// A signed-in dashboard visitor: the session cookie and the page's CSRF token.
pub struct Dash {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
    pub client: reqwest::Client,
}

/// An answer of the dashboard (redirects are not followed).
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn page(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Page {
        status,
        location,
        body: r.text().await.unwrap_or_default(),
        headers,
    }
}

/// The value of `name` in the Set-Cookie headers.
pub fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let first = v.split(';').next()?;
        let (k, val) = first.split_once('=')?;
        (k.trim() == name).then(|| val.trim().to_string())
    })
}

/// The value of the hidden CSRF field of a page's first form.
pub fn csrf_of(body: &str) -> Option<String> {
    let i = body.find("name=\"csrf_token\" value=\"")?;
    let rest = &body[i + "name=\"csrf_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

impl Dash {
    /// Sign in through the login form (as a browser does: GET the form, POST it back).
    pub async fn login(base: &str, user: &str, password: &str) -> Result<Dash, Page> {
        let client = no_redirect_client();
        let form = page(client.get(format!("{base}/login")).send().await.unwrap()).await;
        let login_csrf = set_cookie(&form.headers, "obmen_login_csrf").expect("login csrf cookie");
        let token = csrf_of(&form.body).expect("csrf field on the login form");
        let r = page(
            client
                .post(format!("{base}/login"))
                .header("cookie", format!("obmen_login_csrf={login_csrf}"))
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("username", user),
                    ("password", password),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        let Some(session) = set_cookie(&r.headers, "obmen_session").filter(|s| !s.is_empty())
        else {
            return Err(r);
        };
        let mut d = Dash {
            base: base.to_string(),
            cookie: format!("obmen_session={session}"),
            csrf: String::new(),
            client,
        };
        let home = d.get("/").await;
        assert_eq!(home.status, 200, "home page after login: {}", home.body);
        d.csrf = csrf_of(&home.body).expect("csrf token on the home page");
        Ok(d)
    }

    pub async fn get(&self, path: &str) -> Page {
        page(
            self.client
                .get(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST a form with the session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut f: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.as_str())];
        f.extend_from_slice(fields);
        self.post_raw(path, &f).await
    }

    /// POST exactly these fields (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        page(
            self.client
                .post(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}
