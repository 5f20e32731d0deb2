//! Bounded load harness (bench/load.sh): SESSIONS concurrent 1C clients run full catalog exchanges
//! in a loop (checkauth, init, chunked upload of a small generated catalog, import loop, complete;
//! every SALE_EVERY-th round also a sale exchange: checkauth, init, query, success) while DASH
//! dashboard clients, signed in through the login form, fetch pages in a loop. Concurrency is
//! fixed (one task per client, one request in flight per task), files are a few KB, latencies go
//! into fixed-size histograms: nothing grows with the duration of the run.
//!
//! Counted per request kind: requests, errors (HTTP status other than 200, or a 1C answer whose
//! first line is not the expected keyword), p50/p95/p99 latency. The server's RSS is sampled
//! every 5 s from /proc/PID/status. Prints a table and one line `LOAD_JSON {...}`; exits 1 when
//! any request failed.
//!
//! Each 1C client connects from its own loopback address (127.1.N.1, 127.2.N.1, …), as separate 1C bases do;
//! `--same-address` makes them all come from 127.0.0.1.
//!
//! cargo run --release --example load -- --base http://127.0.0.1:PORT --pid PID \
//!   --login 1c --password PW --dash-user load --dash-password PW [--duration 600] [--sessions 50]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

#[derive(Clone)]
struct Opts {
    base: String,
    pid: Option<u32>,
    login: String,
    password: String,
    dash_user: String,
    dash_password: String,
    duration: u64,
    sessions: usize,
    dash: usize,
    goods: usize,
    chunk: usize,
    sale_every: u64,
    same_address: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        base: String::new(),
        pid: None,
        login: "1c".into(),
        password: String::new(),
        dash_user: "load".into(),
        dash_password: String::new(),
        duration: 600,
        sessions: 50,
        dash: 4,
        goods: 30,
        chunk: 4096,
        sale_every: 3,
        same_address: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--same-address" {
            o.same_address = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .unwrap_or_else(|| panic!("{flag} needs a value"))
            .clone();
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| panic!("{flag}: a number")) };
        match flag {
            "--base" => o.base = v.trim_end_matches('/').to_string(),
            "--pid" => o.pid = Some(num(&v) as u32),
            "--login" => o.login = v,
            "--password" => o.password = v,
            "--dash-user" => o.dash_user = v,
            "--dash-password" => o.dash_password = v,
            "--duration" => o.duration = num(&v),
            "--sessions" => o.sessions = num(&v) as usize,
            "--dash" => o.dash = num(&v) as usize,
            "--goods" => o.goods = num(&v).max(1) as usize,
            "--chunk" => o.chunk = num(&v).max(256) as usize,
            "--sale-every" => o.sale_every = num(&v),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(!o.base.is_empty(), "--base URL is required");
    o
}

/// Latency histogram with fixed memory: buckets grow by 2 % (so quantiles are within 2 %),
/// from 10 µs to beyond an hour.
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max_us: u64,
}

const GROWTH: f64 = 1.02;

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; 1000],
            n: 0,
            max_us: 0,
        }
    }
    fn record(&mut self, us: u64) {
        let us = us.max(10);
        let i = (((us as f64) / 10.0).ln() / GROWTH.ln()) as usize;
        let i = i.min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }
    /// The upper bound of the bucket holding quantile `q`, in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((self.n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = 10.0 * GROWTH.powi(i as i32 + 1);
                return (upper.min(self.max_us as f64)) / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }
}

#[derive(Default)]
struct Stats {
    kinds: BTreeMap<&'static str, (Hist, u64)>,
    errors: u64,
    samples: Vec<String>,
    rounds: u64,
    sale_rounds: u64,
    /// RSS samples: (seconds since start, KiB).
    rss: Vec<(f64, u64)>,
}

impl Stats {
    fn record(&mut self, kind: &'static str, us: u64, error: Option<String>) {
        let e = self.kinds.entry(kind).or_insert_with(|| (Hist::new(), 0));
        e.0.record(us);
        if let Some(msg) = error {
            e.1 += 1;
            self.errors += 1;
            if self.samples.len() < 20 {
                self.samples.push(format!("{kind}: {msg}"));
            }
        }
    }
}

type Shared = Arc<Mutex<Stats>>;

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn first(&self) -> String {
        self.body
            .split('\n')
            .next()
            .unwrap_or("")
            .trim()
            .to_lowercase()
    }
}

fn short(s: &str) -> String {
    let s = s.replace('\n', "\\n");
    s.chars().take(300).collect()
}

/// Send a request, time it and record it under `kind`; `ok` decides whether the answer is a
/// success. Returns the answer (None on a transport error).
async fn timed(
    stats: &Shared,
    kind: &'static str,
    rb: reqwest::RequestBuilder,
    ok: impl Fn(&Reply) -> bool,
) -> Option<Reply> {
    let t = Instant::now();
    let res = rb.send().await;
    let reply = match res {
        Ok(r) => {
            let status = r.status().as_u16();
            let is_1251 = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("windows-1251"));
            match r.bytes().await {
                Ok(b) => {
                    let body = if is_1251 {
                        encoding_rs::WINDOWS_1251
                            .decode_without_bom_handling(&b)
                            .0
                            .into_owned()
                    } else {
                        String::from_utf8_lossy(&b).into_owned()
                    };
                    Ok(Reply { status, body })
                }
                Err(e) => Err(format!("reading the body: {e}")),
            }
        }
        Err(e) => Err(format!("transport: {e}")),
    };
    let us = t.elapsed().as_micros() as u64;
    let mut s = stats.lock().unwrap();
    match reply {
        Ok(r) => {
            let err = if r.status != 200 {
                Some(format!("HTTP {}: {}", r.status, short(&r.body)))
            } else if !ok(&r) {
                Some(short(&r.body))
            } else {
                None
            };
            s.record(kind, us, err);
            Some(r)
        }
        Err(e) => {
            s.record(kind, us, Some(e));
            None
        }
    }
}

/// A small catalog for client `w`, round `round`: `goods` goods with ids unique to the client,
/// prices that change every round (so each import updates rows).
fn catalog(w: usize, round: u64, goods: usize) -> (String, String) {
    let mut import = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<Классификатор><Ид>cls1</Ид><Наименование>Классификатор</Наименование>\n\
<Группы><Группа><Ид>grp1</Ид><Наименование>Инструменты</Наименование></Группа></Группы>\n\
<Свойства><Свойство><Ид>prop1</Ид><Наименование>Цвет</Наименование><ТипЗначений>Строка</ТипЗначений></Свойство></Свойства>\n\
</Классификатор>\n\
<Каталог СодержитТолькоИзменения=\"true\"><Ид>cat1</Ид><ИдКлассификатора>cls1</ИдКлассификатора><Наименование>Каталог</Наименование>\n<Товары>\n",
    );
    let mut offers = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<ПакетПредложений СодержитТолькоИзменения=\"true\"><Ид>cat1#</Ид><Наименование>Пакет</Наименование><ИдКаталога>cat1</ИдКаталога><ИдКлассификатора>cls1</ИдКлассификатора>\n\
<ТипыЦен><ТипЦены><Ид>pt1</Ид><Наименование>Розничная</Наименование><Валюта>руб</Валюта></ТипЦены></ТипыЦен>\n\
<Склады><Склад><Ид>wh1</Ид><Наименование>Основной</Наименование></Склад></Склады>\n\
<Предложения>\n",
    );
    for g in 0..goods {
        let id = format!("load-{w}-{g}");
        import.push_str(&format!(
            "<Товар><Ид>{id}</Ид><Артикул>A-{id}</Артикул><Наименование>Товар {id}</Наименование>\
<БазоваяЕдиница Код=\"796 \">шт</БазоваяЕдиница><Группы><Ид>grp1</Ид></Группы>\
<ЗначенияСвойств><ЗначенияСвойства><Ид>prop1</Ид><Значение>красный</Значение></ЗначенияСвойства></ЗначенияСвойств></Товар>\n"
        ));
        let p = 100 + g as u64 + round % 50;
        offers.push_str(&format!(
            "<Предложение><Ид>{id}</Ид><Артикул>A-{id}</Артикул><Наименование>Товар {id}</Наименование>\
<Цены><Цена><Представление>{p} руб. за шт</Представление><ИдТипаЦены>pt1</ИдТипаЦены><ЦенаЗаЕдиницу>{p}.50</ЦенаЗаЕдиницу><Валюта>руб</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>\
<Количество>{q}</Количество><Склад ИдСклада=\"wh1\" КоличествоНаСкладе=\"{q}\"/></Предложение>\n",
            q = (round + g as u64) % 20,
        ));
    }
    import.push_str("</Товары>\n</Каталог>\n</КоммерческаяИнформация>\n");
    offers.push_str("</Предложения>\n</ПакетПредложений>\n</КоммерческаяИнформация>\n");
    (import, offers)
}

struct OneC {
    o: Opts,
    http: reqwest::Client,
    stats: Shared,
    url: String,
    basic: String,
}

impl OneC {
    fn get(&self, query: &str, cookie: Option<&str>) -> reqwest::RequestBuilder {
        let mut rb = self.http.get(format!("{}?{query}", self.url));
        if let Some(c) = cookie {
            rb = rb.header("Cookie", c);
        }
        rb
    }

    /// checkauth; returns the cookie 1C sends afterwards.
    async fn checkauth(&self, typ: &str) -> Option<String> {
        let rb = self
            .get(&format!("type={typ}&mode=checkauth"), None)
            .header("Authorization", &self.basic);
        let r = timed(&self.stats, "1c checkauth", rb, |r| {
            r.first() == "success" && r.body.split('\n').count() >= 3
        })
        .await?;
        let l: Vec<&str> = r.body.split('\n').collect();
        (r.first() == "success" && l.len() >= 3).then(|| format!("{}={}", l[1], l[2]))
    }

    /// init; returns the server's file_limit.
    async fn init(&self, typ: &str, cookie: &str) -> Option<usize> {
        let rb = self.get(&format!("type={typ}&mode=init"), Some(cookie));
        let r = timed(&self.stats, "1c init", rb, |r| {
            r.body.contains("file_limit=")
        })
        .await?;
        r.body
            .split('\n')
            .find_map(|l| l.trim().strip_prefix("file_limit="))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn catalog_round(&self, w: usize, round: u64) -> bool {
        let Some(cookie) = self.checkauth("catalog").await else {
            return false;
        };
        let Some(limit) = self.init("catalog", &cookie).await else {
            return false;
        };
        let chunk = self.o.chunk.min(limit.max(1));
        let (import, offers) = catalog(w, round, self.o.goods);
        for (name, body) in [("import.xml", import), ("offers.xml", offers)] {
            for part in body.as_bytes().chunks(chunk) {
                let rb = self
                    .http
                    .post(format!(
                        "{}?type=catalog&mode=file&filename={name}",
                        self.url
                    ))
                    .header("Cookie", &cookie)
                    .body(part.to_vec());
                let r = timed(&self.stats, "1c file", rb, |r| r.first() == "success").await;
                if r.is_none_or(|r| r.first() != "success") {
                    return false;
                }
            }
        }
        for name in ["import.xml", "offers.xml"] {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let rb = self.get(
                    &format!("type=catalog&mode=import&filename={name}"),
                    Some(&cookie),
                );
                let r = timed(&self.stats, "1c import", rb, |r| {
                    matches!(r.first().as_str(), "success" | "progress")
                })
                .await;
                match r.map(|r| r.first()) {
                    Some(f) if f == "success" => break,
                    Some(f) if f == "progress" && Instant::now() < deadline => continue,
                    _ => return false,
                }
            }
        }
        let rb = self.get("type=catalog&mode=complete", Some(&cookie));
        timed(&self.stats, "1c complete", rb, |r| r.first() == "success")
            .await
            .is_some_and(|r| r.first() == "success")
    }

    async fn sale_round(&self) -> bool {
        let Some(cookie) = self.checkauth("sale").await else {
            return false;
        };
        if self.init("sale", &cookie).await.is_none() {
            return false;
        }
        let rb = self.get("type=sale&mode=query", Some(&cookie));
        let ok = timed(&self.stats, "1c sale query", rb, |r| {
            r.body.contains("КоммерческаяИнформация")
        })
        .await
        .is_some_and(|r| r.body.contains("КоммерческаяИнформация"));
        if !ok {
            return false;
        }
        let rb = self.get("type=sale&mode=success", Some(&cookie));
        timed(&self.stats, "1c sale success", rb, |r| {
            r.first() == "success"
        })
        .await
        .is_some_and(|r| r.first() == "success")
    }
}

async fn one_c(w: usize, o: Opts, stats: Shared, until: Instant) {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(120));
    if !o.same_address {
        // 127.0.1.1 … : one loopback address per 1C base.
        let n = w + 1;
        b = b.local_address(IpAddr::V4(Ipv4Addr::new(
            127,
            1 + (n / 250) as u8,
            (n % 250) as u8 + 1,
            1,
        )));
    }
    let c = OneC {
        url: format!("{}/1c_exchange.php", o.base),
        basic: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", o.login, o.password))
        ),
        http: b.build().expect("http client"),
        stats: stats.clone(),
        o,
    };
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        if c.catalog_round(w, round).await {
            stats.lock().unwrap().rounds += 1;
        }
        if c.o.sale_every > 0
            && (round + w as u64).is_multiple_of(c.o.sale_every)
            && Instant::now() < until
            && c.sale_round().await
        {
            stats.lock().unwrap().sale_rounds += 1;
        }
    }
}

fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie").iter().find_map(|v| {
        let first = v.to_str().ok()?.split(';').next()?;
        let (k, val) = first.split_once('=')?;
        (k.trim() == name && !val.trim().is_empty()).then(|| val.trim().to_string())
    })
}

fn csrf_of(body: &str) -> Option<String> {
    let key = "name=\"csrf_token\" value=\"";
    let rest = &body[body.find(key)? + key.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Sign in through the login form, as a browser does; returns the session cookie.
async fn dash_login(o: &Opts, http: &reqwest::Client, stats: &Shared) -> Option<String> {
    let form = http.get(format!("{}/login", o.base)).send().await.ok()?;
    let login_csrf = set_cookie(form.headers(), "obmen_login_csrf")?;
    let token = csrf_of(&form.text().await.ok()?)?;
    let t = Instant::now();
    let r = http
        .post(format!("{}/login", o.base))
        .header("cookie", format!("obmen_login_csrf={login_csrf}"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", o.dash_user.as_str()),
            ("password", o.dash_password.as_str()),
            ("next", "/"),
        ])
        .send()
        .await;
    let us = t.elapsed().as_micros() as u64;
    let session = r
        .as_ref()
        .ok()
        .and_then(|r| set_cookie(r.headers(), "obmen_session"));
    let err = match (&r, &session) {
        (_, Some(_)) => None,
        (Ok(r), None) => Some(format!("HTTP {}: no session cookie", r.status())),
        (Err(e), None) => Some(format!("transport: {e}")),
    };
    stats.lock().unwrap().record("dash login", us, err);
    session.map(|s| format!("obmen_session={s}"))
}

const PAGES: &[(&str, &str)] = &[
    ("dash /", "/"),
    ("dash /exchanges", "/exchanges"),
    ("dash /messages", "/messages"),
    ("dash /orders", "/orders"),
    ("dash /catalog?q=", "/catalog?q=A-load-1"),
];

async fn dashboard(d: usize, o: Opts, stats: Shared, until: Instant) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    let mut cookie = None;
    let mut i = d;
    while Instant::now() < until {
        let Some(c) = &cookie else {
            cookie = dash_login(&o, &http, &stats).await;
            if cookie.is_none() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        };
        let (kind, path) = PAGES[i % PAGES.len()];
        i += 1;
        let rb = http
            .get(format!("{}{path}", o.base))
            .header("cookie", c.as_str());
        // A page is a success when it is the page (HTTP 200 with a document), not a redirect
        // to the login form.
        timed(&stats, kind, rb, |r| r.body.contains("</html>")).await;
        // A person reading pages, not a crawler: a short pause between clicks.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Least-squares slope of (seconds, KiB), in MiB per minute.
fn slope_mib_per_min(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0 / 1024.0
    }
}

#[tokio::main]
async fn main() {
    // reqwest is built without a rustls provider of its own; obmen's constructor that installs
    // one is not linked into a binary that uses nothing else of the library.
    obmen::tls::install_crypto_provider();
    let o = parse_opts();
    let stats: Shared = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(o.duration);
    let mut tasks = Vec::new();
    for w in 0..o.sessions {
        tasks.push(tokio::spawn(one_c(w, o.clone(), stats.clone(), until)));
    }
    for d in 0..o.dash {
        tasks.push(tokio::spawn(dashboard(d, o.clone(), stats.clone(), until)));
    }
    if let Some(pid) = o.pid {
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    stats
                        .lock()
                        .unwrap()
                        .rss
                        .push((start.elapsed().as_secs_f64(), kib));
                }
                if Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a load task panicked");
    }
    let wall = start.elapsed().as_secs_f64();
    report(&o, &stats.lock().unwrap(), wall);
    if stats.lock().unwrap().errors > 0 {
        std::process::exit(1);
    }
}

fn report(o: &Opts, s: &Stats, wall: f64) {
    println!(
        "load: {} 1C clients, {} dashboard clients, {:.0} s; catalog rounds {}, sale rounds {}",
        o.sessions, o.dash, wall, s.rounds, s.sale_rounds
    );
    println!("| kind | requests | req/s | errors | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut kinds = serde_json::Map::new();
    let mut total = 0;
    for (k, (h, errs)) in &s.kinds {
        total += h.n;
        let (p50, p95, p99) = (h.quantile_ms(0.5), h.quantile_ms(0.95), h.quantile_ms(0.99));
        let max = h.max_us as f64 / 1000.0;
        println!(
            "| {k} | {} | {:.1} | {errs} | {p50:.1} | {p95:.1} | {p99:.1} | {max:.1} |",
            h.n,
            h.n as f64 / wall
        );
        kinds.insert(
            k.to_string(),
            serde_json::json!({"requests": h.n, "errors": errs, "p50_ms": round1(p50),
                "p95_ms": round1(p95), "p99_ms": round1(p99), "max_ms": round1(max)}),
        );
    }
    println!(
        "| all | {total} | {:.1} | {} | | | | |",
        total as f64 / wall,
        s.errors
    );
    for e in &s.samples {
        println!("error sample: {e}");
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let rss = if s.rss.is_empty() {
        serde_json::Value::Null
    } else {
        let first = s.rss[0].1;
        let mid = s.rss[s.rss.len() / 2].1;
        let last = s.rss[s.rss.len() - 1].1;
        let max = s.rss.iter().map(|p| p.1).max().unwrap_or(0);
        let slope = slope_mib_per_min(&s.rss);
        // The first half includes the warm-up (caches, pools, SQLite page cache filling).
        let slope2 = slope_mib_per_min(&s.rss[s.rss.len() / 2..]);
        println!(
            "server RSS MiB: first {:.1}, middle {:.1}, last {:.1}, max {:.1}; slope {:+.2} MiB/min over {} samples, {:+.2} MiB/min over the second half",
            mib(first),
            mib(mid),
            mib(last),
            mib(max),
            slope,
            s.rss.len(),
            slope2
        );
        serde_json::json!({"first_mib": round1(mib(first)), "middle_mib": round1(mib(mid)),
            "last_mib": round1(mib(last)), "max_mib": round1(mib(max)),
            "slope_mib_per_min": (slope * 100.0).round() / 100.0,
            "slope_second_half_mib_per_min": (slope2 * 100.0).round() / 100.0, "samples": s.rss.len()})
    };
    let json = serde_json::json!({
        "sessions": o.sessions, "dashboard_clients": o.dash, "seconds": round1(wall),
        "catalog_rounds": s.rounds, "sale_rounds": s.sale_rounds, "requests": total,
        "errors": s.errors, "kinds": kinds, "rss": rss,
    });
    println!("LOAD_JSON {json}");
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
