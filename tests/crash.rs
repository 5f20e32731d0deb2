//! Crash suite: the real `obmen serve` with the real Ozon and CDEK simulators is SIGKILLed at a
//! seeded random moment of one phase of the work (catalog upload, catalog import, Ozon posting
//! pull, between 1C's `query` and `success`, outbox sends to Ozon, CDEK order creation), restarted
//! on the same data folder, and the client resumes as 1C does (an interrupted exchange starts
//! again from `checkauth`; after a lost `success` it asks `query` again). When the trial has
//! finished: every Ozon posting reached 1C, no order was handed to 1C as new again after a
//! `success`, no Ozon ship or CDEK order was made twice, the stocks and prices on Ozon and the
//! catalog equal those of a reference run without kills.
//!
//! `OBMEN_CRASH_TRIALS` (default 6: one per phase) sets the number of trials, `OBMEN_CRASH_SEED`
//! the first seed. The long run: `OBMEN_CRASH_TRIALS=100 cargo test --release --test crash -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    basic, spawn_listening, Reply, API_TOKEN, LOGIN, PASSWORD, SIM_API_KEY, SIM_CLIENT_ID,
    SIM_WAREHOUSE,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const PHASES: [&str; 6] = ["upload", "import", "pull", "query", "outbox", "cdek"];
const UPLOAD: usize = 0;
const IMPORT: usize = 1;
const PULL: usize = 2;
const QUERY: usize = 3;
const OUTBOX: usize = 4;
const CDEK: usize = 5;
/// Not a kill target: the set-up before and the checks after the phases.
const IDLE: usize = 99;

const GOODS: usize = 600;
const POSTINGS: usize = 3;
const CDEK_ORDERS: usize = 2;
const CHUNK: usize = 16 * 1024;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Error of one step: the server went away (killed) or answered something unexpected.
#[derive(Debug)]
enum StepErr {
    Down(String),
}

type R<T> = Result<T, StepErr>;

fn down<E: std::fmt::Display>(e: E) -> StepErr {
    StepErr::Down(e.to_string())
}

/// One trial's world: obmen (killable, restartable on the same data folder) and the simulators.
struct World {
    obmen: Option<Proc>,
    pid: Arc<AtomicUsize>,
    base: String,
    data: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
    _ozon: Proc,
    ozon_url: String,
    _cdek: Proc,
    cdek_url: String,
    restarts: usize,
    /// The config file (only the outbox lease, short so a killed worker's claims come back soon).
    _conf: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let bin = env!("CARGO_BIN_EXE_obmen");
        let mut c = Command::new(bin);
        c.args([
            "sim",
            "ozon",
            "--listen",
            "127.0.0.1:0",
            "--stock-cooldown-secs",
            "1",
            "--label-delay-secs",
            "0",
        ])
        .env_remove("OBMEN_CONFIG")
        .env("OBMEN_LOG", "warn");
        let (ozon, ozon_url) = spawn_listening(c);
        let mut c = Command::new(bin);
        c.args(["sim", "cdek", "--listen", "127.0.0.1:0"])
            .env_remove("OBMEN_CONFIG")
            .env("OBMEN_LOG", "warn");
        let (cdek, cdek_url) = spawn_listening(c);
        let conf = tempfile::tempdir().unwrap();
        let conf_file = conf.path().join("obmen.toml");
        std::fs::write(
            &conf_file,
            "[relay]\nlease_secs = 5\n[exchange]\nimport_lease_secs = 3\n",
        )
        .unwrap();
        let env = vec![
            ("OBMEN_CONFIG", conf_file.to_string_lossy().into_owned()),
            ("OBMEN_EXCHANGE_LOGIN", LOGIN.to_string()),
            ("OBMEN_EXCHANGE_PASSWORD", PASSWORD.to_string()),
            ("OBMEN_API_TOKEN", API_TOKEN.to_string()),
            ("OBMEN_IMPORT_WAIT_SECS", "1".into()),
            ("OBMEN_LOG", "error".into()),
            ("OBMEN_OZON_BASE_URL", ozon_url.clone()),
            ("OBMEN_OZON_CLIENT_ID", SIM_CLIENT_ID.into()),
            ("OBMEN_OZON_API_KEY", SIM_API_KEY.into()),
            ("OBMEN_OZON_WAREHOUSE_ID", SIM_WAREHOUSE.into()),
            ("OBMEN_OZON_ORDERS_POLL", "*/1 * * * * *".into()),
            ("OBMEN_OZON_TIMEOUT_SECS", "2".into()),
            ("OBMEN_OZON_LABEL_RETRY_SECS", "1".into()),
            ("OBMEN_CDEK_BASE_URL", format!("{cdek_url}/v2")),
            (
                "OBMEN_CDEK_CLIENT_ID",
                "wqGwiQx0gg8mLtiEKsUinjVSICCjtTEP".into(),
            ),
            (
                "OBMEN_CDEK_CLIENT_SECRET",
                "RmAmgvSgSl1yirlz9QupbzOJVqhCxcP5".into(),
            ),
            ("OBMEN_CDEK_TARIFF_CODE", "137".into()),
            ("OBMEN_CDEK_FROM_LOCATION", "44".into()),
            ("OBMEN_CDEK_TIMEOUT_SECS", "2".into()),
            ("OBMEN_CDEK_DEFAULT_WEIGHT_G", "700".into()),
            ("OBMEN_OZON_STOCK_PAIR_COOLDOWN_SECS", "1".into()),
            ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
            ("OBMEN_RELAY_BACKOFF_MAX_SECS", "1".into()),
            ("OBMEN_RELAY_MAX_ATTEMPTS", "100".into()),
        ];
        let mut w = World {
            obmen: None,
            pid: Arc::new(AtomicUsize::new(0)),
            base: String::new(),
            data: tempfile::tempdir().unwrap(),
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _ozon: Proc(ozon),
            ozon_url,
            _cdek: Proc(cdek),
            cdek_url,
            restarts: 0,
            _conf: conf,
        };
        w.start();
        w
    }

    fn start(&mut self) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_obmen"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data.path());
        common::with_db(&mut c, self.data.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let (child, base) = spawn_listening(c);
        self.pid.store(child.id() as usize, Ordering::SeqCst);
        self.obmen = Some(Proc(child));
        self.base = base;
    }

    /// After a step failed: if obmen was killed, start it again on the same data folder.
    fn recover(&mut self) -> bool {
        let dead = match self.obmen.as_mut() {
            Some(p) => p.0.try_wait().ok().flatten().is_some(),
            None => true,
        };
        if dead {
            self.obmen = None;
            self.restarts += 1;
            self.start();
        }
        dead
    }

    /// Keep a copy of the data folder (database, uploads) after a failure, for a post-mortem.
    fn keep(&self, what: &str) {
        let to = std::env::temp_dir().join(format!("obmen-crash-{}", std::process::id()));
        let _ = Command::new("cp")
            .arg("-r")
            .arg(self.data.path())
            .arg(&to)
            .status();
        eprintln!("{what}: the data folder is kept in {}", to.display());
    }

    fn url(&self, q: &str) -> String {
        format!("{}/1c_exchange.php?{q}", self.base)
    }

    async fn reply(r: reqwest::Response) -> R<Reply> {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let raw = r.bytes().await.map_err(down)?.to_vec();
        let body = if ct.to_ascii_lowercase().contains("windows-1251") {
            encoding_rs::WINDOWS_1251
                .decode_without_bom_handling(&raw)
                .0
                .into_owned()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        Ok(Reply {
            status,
            content_type: ct,
            www_authenticate: None,
            raw,
            body,
        })
    }

    async fn get(&self, q: &str, cookie: &str) -> R<Reply> {
        let r = self
            .http
            .get(self.url(q))
            .header("Cookie", cookie)
            .send()
            .await
            .map_err(down)?;
        Self::reply(r).await
    }

    async fn post(&self, q: &str, body: Vec<u8>, cookie: &str) -> R<Reply> {
        let r = self
            .http
            .post(self.url(q))
            .header("Cookie", cookie)
            .body(body)
            .send()
            .await
            .map_err(down)?;
        Self::reply(r).await
    }

    async fn login(&self, typ: &str) -> R<String> {
        let r = self
            .http
            .get(self.url(&format!("type={typ}&mode=checkauth")))
            .header("Authorization", basic(LOGIN, PASSWORD))
            .send()
            .await
            .map_err(down)?;
        let r = Self::reply(r).await?;
        let lines: Vec<&str> = r.body.split('\n').collect();
        if r.first() != "success" || lines.len() < 3 {
            return Err(StepErr::Down(format!("checkauth: {}", r.body)));
        }
        Ok(format!("{}={}", lines[1].trim(), lines[2].trim()))
    }

    async fn api(&self, path: &str) -> R<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .send()
            .await
            .map_err(down)?;
        let st = r.status().as_u16();
        let v: Value = r.json().await.map_err(down)?;
        if st != 200 && st != 404 {
            return Err(StepErr::Down(format!("{path}: {st} {v}")));
        }
        Ok(v)
    }

    async fn sim(&self, url: &str) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn sim_post(&self, url: &str, body: Value) -> Value {
        let r = self.http.post(url).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.json().await.unwrap()
    }
}

/// What the test-1C saw.
#[derive(Default)]
struct OneC {
    /// Order numbers acknowledged by a `success` answered `success`.
    acked: BTreeSet<String>,
    /// Orders handed again as new after their `success` (violations).
    again: Vec<String>,
}

/// Order numbers in a sale query document.
fn numbers_in(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in doc.split("<Документ>").skip(1) {
        if let Some(n) = part
            .split("<Номер>")
            .nth(1)
            .and_then(|r| r.split("</Номер>").next())
        {
            out.push(n.to_string());
        }
    }
    out
}

/// 1C's status document for some orders (UT 11 shape: number, posted, status).
fn status_doc(numbers: &[String], status: &str) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T10:00:00\">\r\n",
    );
    for (i, number) in numbers.iter().enumerate() {
        s.push_str(&format!(
            "<Документ><Ид>7d1c2a9e-0000-11e4-a522-{:012}</Ид><Номер>{number}</Номер><Дата>2026-11-23</Дата>\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>\
<ЗначенияРеквизитов>\
<ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>\
<ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>{status}</Значение></ЗначениеРеквизита>\
</ЗначенияРеквизитов></Документ>\r\n",
            i + 1
        ));
    }
    s.push_str("</КоммерческаяИнформация>\r\n");
    s.into_bytes()
}

/// The killer: once the world enters `target`, wait `delay` and SIGKILL obmen; records the phase
/// it was really in.
struct Killer {
    phase: Arc<AtomicUsize>,
    fired: Arc<AtomicBool>,
    killed_in: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn sigkill(pid: usize) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

impl Killer {
    fn arm(pid: Arc<AtomicUsize>, target: usize, delay: Duration) -> Killer {
        let phase = Arc::new(AtomicUsize::new(IDLE));
        let fired = Arc::new(AtomicBool::new(false));
        let killed_in = Arc::new(AtomicUsize::new(IDLE));
        let (p, f, k) = (phase.clone(), fired.clone(), killed_in.clone());
        let task = tokio::spawn(async move {
            if target == QUERY {
                return; // fired by the driver right between query and success
            }
            while p.load(Ordering::SeqCst) != target {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::time::sleep(delay).await;
            k.store(p.load(Ordering::SeqCst), Ordering::SeqCst);
            f.store(true, Ordering::SeqCst);
            sigkill(pid.load(Ordering::SeqCst));
        });
        Killer {
            phase,
            fired,
            killed_in,
            task,
        }
    }

    fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// The driver's own kill (between query and success).
    fn kill_now(&self, pid: usize) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            self.killed_in
                .store(self.phase.load(Ordering::SeqCst), Ordering::SeqCst);
            sigkill(pid);
        }
    }
}

/// Run `step` until it succeeds, restarting obmen when it died (the step starts over as 1C does).
macro_rules! retry {
    ($w:expr, $what:expr, $step:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match $step.await {
                Ok(v) => break v,
                Err(StepErr::Down(e)) => {
                    assert!(Instant::now() < deadline, "{} never completed: {e}", $what);
                    if !$w.recover() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }};
}

/// A whole catalog exchange: checkauth, init, both files in chunks, import loop for each.
async fn catalog_exchange(w: &World, k: Option<&Killer>, files: &[(String, Vec<u8>)]) -> R<()> {
    let cookie = w.login("catalog").await?;
    let init = w.get("type=catalog&mode=init", &cookie).await?;
    if !init.body.starts_with("zip=") {
        return Err(StepErr::Down(format!("init: {}", init.body)));
    }
    if let Some(k) = k {
        k.enter(UPLOAD);
    }
    for (name, bytes) in files {
        for chunk in bytes.chunks(CHUNK) {
            let r = w
                .post(
                    &format!("type=catalog&mode=file&filename={name}"),
                    chunk.to_vec(),
                    &cookie,
                )
                .await?;
            if r.first() != "success" {
                return Err(StepErr::Down(format!("file {name}: {}", r.body)));
            }
        }
    }
    if let Some(k) = k {
        k.enter(IMPORT);
    }
    for (name, _) in files {
        loop {
            let r = w
                .get(
                    &format!("type=catalog&mode=import&filename={name}"),
                    &cookie,
                )
                .await?;
            match r.first().as_str() {
                "progress" => continue,
                "success" => break,
                _ => return Err(StepErr::Down(format!("import {name}: {}", r.body))),
            }
        }
    }
    Ok(())
}

/// query → success until a query hands out nothing new; records what 1C received and confirmed.
async fn sale_cycle(w: &World, k: Option<&Killer>, onec: &mut OneC, check_new: bool) -> R<()> {
    loop {
        let cookie = w.login("sale").await?;
        let q = w.get("type=sale&mode=query", &cookie).await?;
        if q.status != 200 || !q.body.contains("КоммерческаяИнформация") {
            return Err(StepErr::Down(format!("query: {}", q.body)));
        }
        let got = numbers_in(&q.body);
        if check_new {
            for n in &got {
                if onec.acked.contains(n) && !onec.again.contains(n) {
                    onec.again.push(n.clone());
                }
            }
        }
        if let Some(k) = k {
            k.kill_now(w.pid.load(Ordering::SeqCst));
            // Let the kill land before `success` is sent.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ok = w.get("type=sale&mode=success", &cookie).await?;
        if ok.first() != "success" {
            return Err(StepErr::Down(format!("success: {}", ok.body)));
        }
        let empty = got.is_empty();
        onec.acked.extend(got);
        if empty {
            return Ok(());
        }
    }
}

/// A sale upload of statuses: checkauth, init, file, import.
async fn send_statuses(w: &World, numbers: &[String], status: &str) -> R<()> {
    let cookie = w.login("sale").await?;
    w.get("type=sale&mode=init", &cookie).await?;
    let name = "orders-7d1c2a9e-1111-2222-3333-444455556666_1.xml";
    let r = w
        .post(
            &format!("type=sale&mode=file&filename={name}"),
            status_doc(numbers, status),
            &cookie,
        )
        .await?;
    if r.first() != "success" {
        return Err(StepErr::Down(format!("file: {}", r.body)));
    }
    let r = w
        .get(&format!("type=sale&mode=import&filename={name}"), &cookie)
        .await?;
    if r.first() != "success" {
        return Err(StepErr::Down(format!("import: {}", r.body)));
    }
    Ok(())
}

/// Poll until `$check` (an async block giving `R<bool>`) says yes. obmen is restarted whenever it
/// died (as a service manager would), not only when the check failed: a check that asks only a
/// simulator (the ships) never sees obmen down, and a kill after the step that set the work off
/// would otherwise leave nobody to do it.
macro_rules! until {
    ($w:ident, $what:expr, $secs:expr, $check:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            let res: R<bool> = $check.await;
            if matches!(res, Ok(true)) {
                break;
            }
            $w.recover();
            if Instant::now() >= deadline {
                $w.keep($what);
                panic!("timed out waiting for {}", $what);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

async fn orders_of(w: &World, channel: &str) -> R<Vec<Value>> {
    let v = w.api(&format!("/api/v1/orders?channel={channel}")).await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Outbox messages not finished yet (pending, in flight, failed and waiting for a retry) and
/// those given up (dead), over all targets.
async fn outbox_open(w: &World) -> R<(u64, u64)> {
    let v = w.api("/api/v1/outbox/counts").await?;
    if std::env::var_os("OBMEN_CRASH_VERBOSE").is_some() {
        println!("  outbox {v}");
    }
    let (mut open, mut dead) = (0, 0);
    for states in v.as_object().into_iter().flat_map(|m| m.values()) {
        for (st, n) in states.as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            match st.as_str() {
                "pending" | "in_flight" | "failed" => open += n,
                "dead" => dead += n,
                _ => {}
            }
        }
    }
    Ok((open, dead))
}

/// Import jobs queued or running (one left `running` by a killed instance included: on
/// PostgreSQL it is taken over when its lease runs out).
fn imports_open(w: &World) -> R<i64> {
    use diesel::prelude::*;
    use obmen::store::schema::import_jobs::dsl as j;
    let pool = obmen::store::open(&obmen::store::testing::url(w.data.path()), 1).map_err(down)?;
    let mut c = pool.get().map_err(down)?;
    j::import_jobs
        .filter(j::state.eq_any(["queued", "running"]))
        .count()
        .get_result(&mut c)
        .map_err(down)
}

/// Everything observable at the end of a trial that must not depend on kills.
#[derive(Debug, PartialEq)]
struct Outcome {
    catalog: Value,
    ozon_products: BTreeMap<String, (Value, Value)>,
}

/// Strip what legitimately differs between runs (times, session and file ids).
fn stable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !(k.ends_with("_at")
                        || k.ends_with("_ms")
                        || k.contains("time")
                        || k.contains("session")
                        || k.as_str() == "last_exchange")
                })
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stable).collect()),
        x => x.clone(),
    }
}

struct Report {
    killed_in: usize,
    restarts: usize,
    violations: Vec<String>,
    outcome: Outcome,
}

fn ids() -> Vec<String> {
    (1..=GOODS).map(|i| format!("g{i}")).collect()
}

/// One trial. `plan`: (target phase, delay after entering it); None = the reference run.
async fn trial(files: &[(String, Vec<u8>)], plan: Option<(usize, Duration)>) -> Report {
    let mut w = World::new();
    let ids = ids();
    // Ozon knows every card; the postings are for the first goods.
    let cards: Vec<Value> = ids
        .iter()
        .map(|id| json!({"offer_id": format!("A-{id}"), "name": format!("Товар {id}"), "price": "1"}))
        .collect();
    w.sim_post(&format!("{}/sim/products", w.ozon_url), Value::Array(cards))
        .await;
    // Orders that go by CDEK come in through the API before anything is killed.
    let mut cdek_numbers = Vec::new();
    for i in 0..CDEK_ORDERS {
        let body = json!({"channel":"api","external_id":format!("c-{i}"),"date":"2026-11-23T10:00:00+03:00","currency":"RUB",
            "customer":{"name":"Иванов Иван","phone":"+79990000000","email":"ivan@example.ru"},
            "lines":[{"name":"Товар g1","article":"A-g1","quantity":1,"price":100.5}],
            "delivery":{"method":"cdek","cost":300.00,"address":"ул. Ленина, д. 5","city":"Новосибирск","city_code":270},
            "payment":{"method":"card","paid":false}});
        let r = w
            .http
            .post(format!("{}/api/v1/orders", w.base))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        cdek_numbers.push(v["number"].as_str().unwrap().to_string());
    }

    let t0 = Instant::now();
    let lap = |what: &str| {
        if std::env::var_os("OBMEN_CRASH_VERBOSE").is_some() {
            println!("  {:>6.1}s {what}", t0.elapsed().as_secs_f64());
        }
    };
    let pid = w.pid.clone();
    let killer = plan.map(|(target, delay)| Killer::arm(pid, target, delay));
    let k = killer.as_ref();
    let mut onec = OneC::default();

    // 1. The catalog from 1C.
    retry!(w, "the catalog exchange", catalog_exchange(&w, k, files));

    lap("catalog done");
    // 2. Ozon postings pulled into orders.
    if let Some(k) = k {
        k.enter(PULL);
    }
    let mut postings = Vec::new();
    for i in 0..POSTINGS {
        let p = w
            .sim_post(
                &format!("{}/sim/postings", w.ozon_url),
                json!({"products": [{"offer_id": format!("A-g{}", i + 1), "quantity": 1, "price": "100"}]}),
            )
            .await;
        postings.push(p["posting_number"].as_str().unwrap().to_string());
    }
    let want: BTreeSet<String> = postings.iter().cloned().collect();
    until!(w, "every posting as an order", 120, async {
        let have: BTreeSet<String> = orders_of(&w, "ozon")
            .await?
            .iter()
            .filter_map(|o| o["external_id"].as_str().map(String::from))
            .collect();
        Ok(want.is_subset(&have))
    });

    lap("postings pulled");
    // 3. The sale cycle: every order reaches 1C once.
    if let Some(k) = k {
        k.enter(QUERY);
    }
    let query_killer = k.filter(|_| plan.map(|p| p.0) == Some(QUERY));
    loop {
        match sale_cycle(
            &w,
            query_killer.filter(|k| !k.fired.load(Ordering::SeqCst)),
            &mut onec,
            true,
        )
        .await
        {
            Ok(()) => break,
            Err(_) => {
                if !w.recover() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let ozon_orders = retry!(w, "the ozon orders", orders_of(&w, "ozon"));
    let mut posting_number = BTreeMap::new();
    for o in &ozon_orders {
        posting_number.insert(
            o["number"].as_str().unwrap().to_string(),
            o["external_id"].as_str().unwrap().to_string(),
        );
    }
    let ozon_numbers: Vec<String> = posting_number.keys().cloned().collect();
    let mut violations: Vec<String> = Vec::new();
    for n in ozon_numbers.iter().chain(&cdek_numbers) {
        if !onec.acked.contains(n) {
            violations.push(format!("order {n} never reached 1C"));
        }
    }
    for n in &onec.again {
        violations.push(format!("order {n} handed to 1C as new again after success"));
    }
    if ozon_numbers.len() != POSTINGS {
        violations.push(format!(
            "{} ozon orders for {POSTINGS} postings: {ozon_numbers:?}",
            ozon_numbers.len()
        ));
    }

    lap("sale cycle done");
    // 4. Ready to ship: Ozon ships (and the stock/price sends still running).
    if let Some(k) = k {
        k.enter(OUTBOX);
    }
    retry!(
        w,
        "the ozon statuses",
        send_statuses(&w, &ozon_numbers, "Готов к отгрузке")
    );
    until!(w, "every posting shipped", 120, async {
        let s = w.sim(&format!("{}/sim/stats", w.ozon_url)).await;
        Ok(postings
            .iter()
            .all(|p| s["ships"][p].as_u64().unwrap_or(0) >= 1))
    });

    lap("ozon shipped");
    // 5. CDEK orders from 1C's status.
    if let Some(k) = k {
        k.enter(CDEK);
    }
    retry!(
        w,
        "the cdek statuses",
        send_statuses(&w, &cdek_numbers, "Готов к отгрузке")
    );
    until!(w, "every CDEK shipment registered", 120, async {
        let mut all = true;
        for n in &cdek_numbers {
            let o = w.api(&format!("/api/v1/orders/{n}")).await?;
            all &= o["shipments"]
                .as_array()
                .and_then(|a| a.first())
                .is_some_and(|s| s["state"] == "registered");
        }
        Ok(all)
    });
    if let Some(k) = k {
        k.enter(IDLE);
    }

    lap("cdek registered");
    // Settle: the outbox drained, 1C took the last changes; then nothing more is new.
    if let Some(k) = k {
        k.enter(OUTBOX);
    }
    // An import a kill interrupted is done again (on PostgreSQL after its lease, 3 s here); the
    // Ozon plan of what it changed follows once the import queue is idle.
    until!(w, "the imports finished", 120, async {
        Ok(imports_open(&w)? == 0)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    until!(w, "the outbox drained", 180, async {
        Ok(outbox_open(&w).await?.0 == 0)
    });
    let dead = retry!(w, "the outbox counts", outbox_open(&w)).1;
    if dead != 0 {
        violations.push(format!("{dead} outbox messages given up"));
    }
    if let Some(k) = k {
        k.task.abort();
        k.enter(IDLE);
    }
    retry!(
        w,
        "the last sale cycle",
        sale_cycle(&w, None, &mut onec, false)
    );
    let cookie = retry!(w, "checkauth", w.login("sale"));
    let q = retry!(w, "the last query", w.get("type=sale&mode=query", &cookie));
    let left = numbers_in(&q.body);
    if !left.is_empty() {
        violations.push(format!("handed to 1C again with nothing changed: {left:?}"));
    }

    lap("settled");
    // Side effects once.
    let ozon_stats = w.sim(&format!("{}/sim/stats", w.ozon_url)).await;
    for p in &postings {
        let n = ozon_stats["ships"][p].as_u64().unwrap_or(0);
        if n != 1 {
            violations.push(format!("posting {p} shipped {n} times"));
        }
    }
    for n in &ozon_numbers {
        let o = retry!(w, "an order", w.api(&format!("/api/v1/orders/{n}")));
        let shipped = o["timeline"]
            .as_array()
            .map(|t| t.iter().filter(|e| e["kind"] == "ozon_shipped").count())
            .unwrap_or(0);
        if shipped != 1 {
            violations.push(format!("order {n}: {shipped} ozon_shipped events"));
        }
    }
    let cdek_stats = w.sim(&format!("{}/sim/stats", w.cdek_url)).await;
    for n in &cdek_numbers {
        let c = cdek_stats["orders_created"][n].as_u64().unwrap_or(0);
        if c != 1 {
            violations.push(format!("CDEK order for {n} created {c} times"));
        }
    }
    if cdek_stats["orders_created"].as_object().map(|m| m.len()) != Some(CDEK_ORDERS) {
        violations.push(format!("CDEK orders: {}", cdek_stats["orders_created"]));
    }

    // The catalog and what Ozon holds.
    let mut catalog = serde_json::Map::new();
    catalog.insert(
        "summary".into(),
        stable(&retry!(w, "summary", w.api("/api/v1/catalog/summary"))),
    );
    for id in &ids {
        let g = retry!(w, "a good", w.api(&format!("/api/v1/goods/{id}")));
        let o = retry!(w, "an offer", w.api(&format!("/api/v1/offers/{id}")));
        catalog.insert(id.clone(), json!({"good": stable(&g), "offer": stable(&o)}));
    }
    let mut ozon_products = BTreeMap::new();
    for id in &ids {
        let p = w.sim(&format!("{}/sim/products/A-{id}", w.ozon_url)).await;
        ozon_products.insert(
            id.clone(),
            (p["stocks"][SIM_WAREHOUSE].clone(), p["price"].clone()),
        );
    }
    lap("dumped");
    let killed_in = killer
        .as_ref()
        .map(|k| k.killed_in.load(Ordering::SeqCst))
        .unwrap_or(IDLE);
    Report {
        killed_in,
        restarts: w.restarts,
        violations,
        outcome: Outcome {
            catalog: Value::Object(catalog),
            ozon_products,
        },
    }
}

fn catalog_files() -> Vec<(String, Vec<u8>)> {
    let ids = ids();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    vec![
        (
            "import.xml".to_string(),
            common::import_xml(&refs, None).into_bytes(),
        ),
        (
            "offers.xml".to_string(),
            common::offers_xml(&refs).into_bytes(),
        ),
    ]
}

/// How long after entering a phase the kill may come (the phases' usual length here).
fn window(phase: usize) -> u64 {
    match phase {
        UPLOAD => 60,
        IMPORT => 250,
        PULL => 1200,
        QUERY => 0,
        OUTBOX => 2500,
        _ => 1000,
    }
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing() {
    let trials: usize = std::env::var("OBMEN_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed0: u64 = std::env::var("OBMEN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261123);
    let files = catalog_files();
    let started = Instant::now();
    let reference = trial(&files, None).await;
    assert!(
        reference.violations.is_empty(),
        "the reference run itself: {:?}",
        reference.violations
    );
    assert_eq!(reference.restarts, 0);
    let ref_time = started.elapsed();

    let mut per_phase: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for t in 0..trials {
        let seed = seed0 + t as u64;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // `OBMEN_CRASH_PHASE` (a phase name) aims every trial at that phase.
        let target = std::env::var("OBMEN_CRASH_PHASE")
            .ok()
            .and_then(|p| PHASES.iter().position(|x| *x == p))
            .unwrap_or(t % PHASES.len());
        // `OBMEN_CRASH_WINDOW_MS` narrows (or widens) the moment of the kill within the phase.
        let window = std::env::var("OBMEN_CRASH_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(window(target));
        let delay = Duration::from_millis(rng.gen_range(0..=window));
        let r = trial(&files, Some((target, delay))).await;
        let phase = PHASES.get(r.killed_in).copied().unwrap_or("none");
        *per_phase.entry(phase).or_default() += 1;
        let mut v = r.violations;
        if r.outcome.catalog != reference.outcome.catalog {
            let mut d = Vec::new();
            diff(
                &r.outcome.catalog,
                &reference.outcome.catalog,
                "catalog",
                &mut d,
            );
            d.truncate(5);
            v.push(format!("catalog differs from a clean import: {d:?}"));
        }
        if r.outcome.ozon_products != reference.outcome.ozon_products {
            let d: Vec<_> = r
                .outcome
                .ozon_products
                .iter()
                .filter(|(k, x)| reference.outcome.ozon_products.get(*k) != Some(x))
                .take(5)
                .collect();
            v.push(format!("stocks/prices on Ozon differ: {d:?}"));
        }
        println!(
            "trial {t} seed {seed}: target {} +{}ms, killed in {phase}, restarts {}, violations {}",
            PHASES[target],
            delay.as_millis(),
            r.restarts,
            v.len()
        );
        if !v.is_empty() {
            failures.push(format!("seed {seed} (target {}): {v:?}", PHASES[target]));
        }
    }
    println!(
        "crash suite: {trials} trials in {:.0?} (reference run {:.1?}), kills per phase {per_phase:?}, violations {}",
        started.elapsed(),
        ref_time,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
