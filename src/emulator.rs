//! `obmen emulate-1c`: a 1C client for the "Обмен с сайтом" protocol.
//!
//! It performs a full exchange the way the built-in UT 11 client (or, with `--style bitrix`, the
//! 1C-Bitrix exchange module) does — checkauth (twice for UT 11), init, chunked uploads at the
//! server's `file_limit`, one zip per session when the server offers zip, the `import` loop on
//! `progress`, `deactivate`/`complete` for the Bitrix style, and optionally the orders exchange —
//! and it checks every answer the way 1C reads it (first line trimmed and lower-cased, exact line
//! counts, charset, no BOM). Integrators use it to test their server; obmen's tests use it against
//! obmen. See `1c-exchange-protocol.md` §1.2, §2, §3, §5, §7.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::i18n::Lang;

/// Which 1C client to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// The built-in "Обмен с сайтом" of УТ 11 / ERP / КА / УНФ: checkauth twice, init without
    /// `version`, exactly two init lines, no deactivate/complete.
    Ut11,
    /// The 1C-Bitrix exchange module: `sessid` on every request, `version=` on init,
    /// `deactivate&timestamp=` and `complete` at the end.
    Bitrix,
}

/// Whether to send a zip archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZipMode {
    /// Zip when the server's init says `zip=yes` (what 1C does).
    Auto,
    /// Always zip (even if the server said `zip=no`; reported as a warning).
    Yes,
    /// Never zip.
    No,
}

/// How files are grouped into exchange sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sessions {
    /// One session (checkauth → init → file → import) per XML file, as UT 11 does per portion.
    PerFile,
    /// All files in one session.
    One,
}

/// Everything the emulator needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The site address as a 1C user types it (scheme optional; no path means
    /// `bitrix/admin/1c_exchange.php`).
    pub url: String,
    /// XML files, folders (top-level `*.xml` plus subfolders such as `import_files/`) and zip files.
    pub inputs: Vec<PathBuf>,
    pub user: String,
    pub password: String,
    pub style: Style,
    pub zip: ZipMode,
    /// Chunk size override; `None` = the server's `file_limit`; 0 = no splitting.
    pub chunk: Option<u64>,
    pub sessions: Sessions,
    /// UT 11's "send files without waiting for the server's import": no `mode=import` at all.
    pub no_import: bool,
    /// Also run the orders exchange (`type=sale`: query → success, then upload of order files).
    pub sale: bool,
    /// Skip `mode=success` after the orders query (a dropped success: the server must hand the
    /// same orders out again at the next query).
    pub no_success: bool,
    /// Save the raw orders query answer (as received, in its own charset) to this file.
    pub save_query: Option<PathBuf>,
    /// Append `&sessid=` (UT 11 setting "use session id"; the Bitrix style always does).
    pub use_sessid: bool,
    /// Per-request timeout (1C: 180 s).
    pub timeout: Duration,
    pub lang: Lang,
    /// Print a line per request to stderr.
    pub verbose: bool,
}

impl Options {
    pub fn new(url: &str, inputs: Vec<PathBuf>) -> Options {
        Options {
            url: url.to_string(),
            inputs,
            user: "1c".into(),
            password: String::new(),
            style: Style::Ut11,
            zip: ZipMode::Auto,
            chunk: None,
            sessions: Sessions::PerFile,
            no_import: false,
            sale: false,
            no_success: false,
            save_query: None,
            use_sessid: false,
            timeout: Duration::from_secs(180),
            lang: Lang::Ru,
            verbose: false,
        }
    }
}

/// The result of one XML file's upload and import.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileResult {
    /// The name sent as `filename=`.
    pub file: String,
    /// `catalog` or `sale`.
    #[serde(rename = "type")]
    pub typ: String,
    pub bytes: u64,
    /// Number of `mode=file` requests for this file (0 when it travelled inside a zip).
    pub chunks: u64,
    /// `success`, `failure`, `error` (a deviation 1C would stop at), `skipped` (`--no-import`,
    /// or not reached after an earlier failure).
    pub import: String,
    /// `mode=import` requests made for this file.
    pub import_requests: u64,
    pub import_seconds: f64,
    /// The server's last answer (lines after the first), for the human.
    pub answer: String,
}

/// What the orders query returned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SaleResult {
    pub query_bytes: u64,
    /// `Документ` elements received.
    pub documents: u64,
    /// Their `Номер` (obmen's order numbers), in document order.
    pub numbers: Vec<String>,
    pub charset: String,
    /// Whether `mode=success` was sent (false with `--no-success`).
    pub success: bool,
}

/// The JSON summary of one emulated exchange.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub url: String,
    pub style: String,
    pub sessions: u64,
    pub requests: u64,
    /// Request body bytes (uploads).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
    /// Time spent in `mode=file` requests and their throughput.
    pub upload_seconds: f64,
    pub upload_mb_per_s: f64,
    /// Whether a zip archive was sent; the server's `file_limit`; the chunk size used.
    pub zip: bool,
    pub file_limit: Option<i64>,
    pub chunk: u64,
    pub files: Vec<FileResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale: Option<SaleResult>,
    /// Anything 1C would stop at, and deviations from the protocol 1C tolerates (BOM, no
    /// charset, non-200 status). Non-empty ⇒ `ok` is false.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Inputs and session plans

/// Order of XML files inside a run: catalog structure and goods first, then offers, prices,
/// stock, then anything else (orders).
fn rank(name: &str) -> u8 {
    let n = name.to_lowercase();
    let base = n.rsplit('/').next().unwrap_or(&n);
    const ORDER: &[(&str, u8)] = &[
        ("import", 0),
        ("groups", 0),
        ("properties", 0),
        ("units", 0),
        ("storages", 0),
        ("goods", 1),
        ("offers", 2),
        ("prices", 3),
        ("pricelists", 3),
        ("rests", 4),
    ];
    ORDER
        .iter()
        .find(|(p, _)| base.starts_with(p))
        .map(|(_, r)| *r)
        .unwrap_or(5)
}

fn is_sale_file(name: &str) -> bool {
    let n = name.to_lowercase();
    ["orders", "documents", "contragents"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// Compare names with digit runs compared as numbers (`import0_2` < `import0_10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..la], &b[..lb]);
                let ta = da.iter().skip_while(|c| **c == b'0').count();
                let tb = db.iter().skip_while(|c| **c == b'0').count();
                let ord = ta
                    .cmp(&tb)
                    .then_with(|| da[la - ta..].cmp(&db[lb - tb..]))
                    .then_with(|| la.cmp(&lb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[la..];
                b = &b[lb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// A file to upload under a name.
#[derive(Debug, Clone)]
struct Upload {
    name: String,
    path: PathBuf,
    size: u64,
}

/// One exchange session to perform.
#[derive(Debug, Clone, Default)]
struct Plan {
    typ: &'static str,
    /// XML files, in import order.
    xml: Vec<Upload>,
    /// Other files (images) uploaded with the session, by relative `/`-path.
    attachments: Vec<Upload>,
    /// A ready zip given on the command line, with its top-level XML entries.
    archive: Option<(Upload, Vec<String>)>,
}

fn upload(name: String, path: &Path) -> Result<Upload, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(Upload {
        name,
        path: path.to_path_buf(),
        size,
    })
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<Upload>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rel = format!("{rel}/{name}");
        if path.is_dir() {
            walk(&path, &rel, out)?;
        } else if path.is_file() {
            out.push(upload(rel, &path)?);
        }
    }
    Ok(())
}

fn zip_xml_entries(path: &Path) -> Result<Vec<String>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let z = zip::ZipArchive::new(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut names: Vec<String> = z
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| !n.contains('/') && n.to_lowercase().ends_with(".xml"))
        .collect();
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| natural_cmp(a, b)));
    Ok(names)
}

fn is_zip_file(path: &Path) -> bool {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|_| &magic == b"PK\x03\x04")
        .unwrap_or(false)
}

/// Turn the command-line inputs into sessions, in the order 1C would run them.
fn plan(opts: &Options) -> Result<Vec<Plan>, String> {
    let lang = opts.lang;
    let mut xml: Vec<Upload> = Vec::new();
    let mut attachments: Vec<Upload> = Vec::new();
    let mut archives: Vec<Plan> = Vec::new();
    for input in &opts.inputs {
        if input.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(input)
                .map_err(|e| format!("{}: {e}", input.display()))?
                .filter_map(|e| e.ok())
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if path.is_dir() {
                    walk(&path, &name, &mut attachments)?;
                } else if name.to_lowercase().ends_with(".xml") {
                    xml.push(upload(name, &path)?);
                }
                // Other top-level files (expected.json, logs) are not part of an exchange folder.
            }
        } else if input.is_file() {
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if is_zip_file(input) {
                let entries = zip_xml_entries(input)?;
                archives.push(Plan {
                    typ: "catalog",
                    archive: Some((upload(name, input)?, entries)),
                    ..Plan::default()
                });
            } else if name.to_lowercase().ends_with(".xml") {
                xml.push(upload(name, input)?);
            } else {
                attachments.push(upload(name, input)?);
            }
        } else {
            return Err(format!(
                "{}{}",
                lang.pick("файл не найден: ", "file not found: "),
                input.display()
            ));
        }
    }
    xml.sort_by(|a, b| {
        rank(&a.name)
            .cmp(&rank(&b.name))
            .then_with(|| natural_cmp(&a.name, &b.name))
    });
    let (sale_xml, catalog_xml): (Vec<Upload>, Vec<Upload>) = xml
        .into_iter()
        .partition(|u| opts.sale && is_sale_file(&u.name));

    let mut plans: Vec<Plan> = Vec::new();
    match opts.sessions {
        Sessions::One => {
            if !catalog_xml.is_empty() || !attachments.is_empty() {
                plans.push(Plan {
                    typ: "catalog",
                    xml: catalog_xml,
                    attachments,
                    archive: None,
                });
            }
        }
        Sessions::PerFile => {
            // Images travel with the goods: the session of the first import*/goods* file
            // (UT 11 writes import_files/ next to the goods portion), else the first session.
            let host = catalog_xml
                .iter()
                .position(|u| rank(&u.name) <= 1)
                .unwrap_or(0);
            let mut attachments = Some(attachments);
            for (i, u) in catalog_xml.into_iter().enumerate() {
                plans.push(Plan {
                    typ: "catalog",
                    xml: vec![u],
                    attachments: if i == host {
                        attachments.take().unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                    archive: None,
                });
            }
            if let Some(a) = attachments.filter(|a| !a.is_empty()) {
                plans.push(Plan {
                    typ: "catalog",
                    attachments: a,
                    ..Plan::default()
                });
            }
        }
    }
    plans.extend(archives);
    if opts.sale {
        // Phase A (site → 1C: query, success), then phase B (1C → site: order files).
        plans.push(Plan {
            typ: "sale",
            ..Plan::default()
        });
        for u in sale_xml {
            plans.push(Plan {
                typ: "sale",
                xml: vec![u],
                ..Plan::default()
            });
        }
    }
    if plans.is_empty() {
        return Err(lang
            .pick(
                "нечего отправлять: укажите XML-файлы, папки обмена или zip (или --sale)",
                "nothing to send: give XML files, exchange folders or zips (or --sale)",
            )
            .into());
    }
    Ok(plans)
}

// ---------------------------------------------------------------------------------------------
// URL handling as UT 11 does it (РазобратьАдресСайта)

/// Build the script address the way UT 11 does: `\` → `/`, spaces removed, scheme optional,
/// an empty script path means `bitrix/admin/1c_exchange.php`. Parameters are later appended by
/// plain concatenation (`script + "?type=…"`), so an address with its own query string yields
/// a second `?` exactly like 1C.
pub fn script_url(address: &str) -> String {
    let s: String = address
        .replace('\\', "/")
        .chars()
        .filter(|c| *c != ' ')
        .collect();
    let lower = s.to_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &s[8..])
    } else if lower.starts_with("http://") {
        ("http", &s[7..])
    } else {
        ("http", &s[..])
    };
    let (host, script) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let script = if script.is_empty() {
        "bitrix/admin/1c_exchange.php"
    } else {
        script
    };
    format!("{scheme}://{host}/{script}")
}

// ---------------------------------------------------------------------------------------------
// Answers

/// A server answer as 1C sees it.
#[derive(Debug, Clone)]
struct Reply {
    /// Decoded text (BOM removed).
    text: String,
    raw_len: u64,
    /// The raw body, kept only for the orders query (for `--save-query`).
    raw: Vec<u8>,
    /// `Content-Type` value.
    content_type: String,
}

impl Reply {
    /// `СокрЛП(НРег(СтрПолучитьСтроку(Ответ, 1)))`.
    fn keyword(&self) -> String {
        self.text
            .split('\n')
            .next()
            .unwrap_or("")
            .trim()
            .to_lowercase()
    }
    /// Lines 2.. joined, for messages.
    fn detail(&self) -> String {
        self.text
            .split('\n')
            .skip(1)
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    }
    /// Lines as `СтрЧислоСтрок`/`СтрПолучитьСтроку` see them: split on `\n`, a single trailing
    /// newline does not make an extra line.
    fn lines(&self) -> Vec<&str> {
        let t = self.text.strip_suffix('\n').unwrap_or(&self.text);
        t.split('\n').collect()
    }
}

fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A cookie name/value as 1C puts it into its own `Cookie` header (untrimmed).
fn cookie_token_ok(s: &str, is_name: bool) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b > 0x20 && b < 0x7f && b != b';' && b != b',' && b != b'"' && !(is_name && b == b'=')
        })
}

// ---------------------------------------------------------------------------------------------
// The client

struct Client {
    http: reqwest::Client,
    script: String,
    user: String,
    password: String,
    cookie: Option<String>,
    sessid: Option<String>,
    send_sessid: bool,
    verbose: bool,
    lang: Lang,
    /// `--no-success` and `--save-query`.
    no_success: bool,
    save_query: Option<PathBuf>,
    summary: Summary,
}

/// A stop of the exchange (1C shows the message and ends the session).
struct Stop(String);

type Step<T> = Result<T, Stop>;

impl Client {
    fn t(&self, ru: &str, en: &str) -> String {
        self.lang.pick(ru, en).to_string()
    }

    fn error(&mut self, msg: String) {
        if self.verbose {
            eprintln!("  ✗ {msg}");
        }
        self.summary.errors.push(msg);
    }

    fn warn(&mut self, msg: String) {
        if self.verbose {
            eprintln!("  ! {msg}");
        }
        self.summary.warnings.push(msg);
    }

    fn url(&self, typ: &str, mode: &str, extra: &[(&str, &str)]) -> String {
        // Plain concatenation, exactly like 1C (no URL encoding of the values by 1C itself).
        let mut u = format!("{}?type={typ}&mode={mode}", self.script);
        for (k, v) in extra {
            u.push('&');
            u.push_str(k);
            u.push('=');
            u.push_str(v);
        }
        if self.send_sessid {
            if let Some(s) = &self.sessid {
                u.push_str("&sessid=");
                u.push_str(s);
            }
        }
        u
    }

    /// Send one request and read the answer as text the way the platform does
    /// (`ПолучитьТелоКакСтроку()`: decoded with the charset of `Content-Type`).
    async fn send(
        &mut self,
        typ: &str,
        mode: &str,
        extra: &[(&str, &str)],
        body: Option<(&Path, u64, u64)>,
    ) -> Step<Reply> {
        let url = self.url(typ, mode, extra);
        let started = Instant::now();
        let mut req = match body {
            Some(_) => self.http.post(&url),
            None => self.http.get(&url),
        };
        req = req
            .basic_auth(&self.user, Some(&self.password))
            .header(reqwest::header::USER_AGENT, "1C+Enterprise/8.3")
            .header(reqwest::header::ACCEPT, "*/*");
        if let Some(c) = &self.cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        if let Some((path, offset, len)) = body {
            req = req.header(reqwest::header::CONTENT_LENGTH, len).body(
                file_body(path, offset, len)
                    .map_err(|e| Stop(format!("{}: {e}", path.display())))?,
            );
            self.summary.bytes_sent += len;
        }
        self.summary.requests += 1;
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                self.t(
                    "сервер не ответил за отведенное время",
                    "the server did not answer in time",
                )
            } else if e.is_connect() {
                self.t(
                    "не удалось соединиться с сервером",
                    "cannot connect to the server",
                )
            } else {
                self.t("ошибка HTTP", "HTTP error")
            };
            Stop(format!("{mode}: {what}: {}", error_chain(&e)))
        })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let raw = resp.bytes().await.map_err(|e| {
            Stop(format!(
                "{mode}: {}: {}",
                self.t("ответ сервера не прочитан", "cannot read the answer"),
                error_chain(&e)
            ))
        })?;
        self.summary.bytes_received += raw.len() as u64;
        let charset = charset_of(&content_type);
        let enc = charset
            .as_deref()
            .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        let has_bom = raw.starts_with(&[0xEF, 0xBB, 0xBF])
            || raw.starts_with(&[0xFF, 0xFE])
            || raw.starts_with(&[0xFE, 0xFF]);
        let (text, _, _) = enc.decode(&raw);
        let text = text.trim_start_matches('\u{feff}').to_string();
        let reply = Reply {
            text,
            raw_len: raw.len() as u64,
            raw: if typ == "sale" && mode == "query" {
                raw.to_vec()
            } else {
                Vec::new()
            },
            content_type,
        };
        if self.verbose {
            let shown = reply.text.replace('\n', "\\n");
            let shown: String = shown.chars().take(160).collect();
            eprintln!(
                "→ {} {}{}  ← {} {} ({:.2} s)",
                if body.is_some() { "POST" } else { "GET " },
                url.strip_prefix(&self.script).unwrap_or(&url),
                body.map(|b| format!(" [{} B]", b.2)).unwrap_or_default(),
                status,
                shown,
                started.elapsed().as_secs_f64()
            );
        }
        // Deviations 1C survives but the protocol forbids.
        let what = format!("{typ}/{mode}");
        if status != 200 {
            let m = format!(
                "{what}: {} {status} ({})",
                self.t("HTTP-статус", "HTTP status"),
                self.t(
                    "1С только запишет его в журнал и прочитает тело; ошибки сообщают ответом 200 с failure",
                    "1C only logs it and reads the body; errors belong in a 200 answer with failure"
                )
            );
            self.error(m);
        }
        if reply.raw_len == 0 {
            return Err(Stop(format!(
                "{what}: {}",
                self.t(
                    "Получен пустой ответ сервера",
                    "empty answer from the server"
                )
            )));
        }
        let xml = mode == "query" && typ == "sale";
        if charset.is_none() {
            let m = format!(
                "{what}: {} ({})",
                self.t("в Content-Type нет charset", "no charset in Content-Type"),
                if reply.content_type.is_empty() {
                    "-".to_string()
                } else {
                    reply.content_type.clone()
                }
            );
            self.error(m);
        } else if enc != encoding_rs::UTF_8 && charset.is_some() && {
            let (_, _, bad) = enc.decode(&raw);
            bad
        } {
            let m = format!(
                "{what}: {}",
                self.t(
                    "тело не соответствует кодировке из Content-Type",
                    "the body does not match the charset of Content-Type"
                )
            );
            self.error(m);
        }
        if enc == encoding_rs::UTF_8 && std::str::from_utf8(&raw).is_err() {
            let m = format!(
                "{what}: {}",
                self.t("тело не в кодировке UTF-8", "the body is not valid UTF-8")
            );
            self.error(m);
        }
        if has_bom && !xml {
            let m = format!(
                "{what}: {}",
                self.t(
                    "ответ начинается с BOM (текстовые ответы — без BOM)",
                    "the answer starts with a BOM (text answers must not have one)"
                )
            );
            self.error(m);
        }
        if !xml && reply.text.contains('\r') {
            let m = format!(
                "{what}: {}",
                self.t(
                    "в ответе есть \\r: строки разделяются только \\n (1С берет строки cookie без обрезки)",
                    "the answer contains \\r: lines are separated by a bare \\n (1C takes the cookie lines untrimmed)"
                )
            );
            self.error(m);
        }
        Ok(reply)
    }

    /// `checkauth`, returns the `timestamp=` of line 5 if any.
    async fn checkauth(&mut self, typ: &str) -> Step<Option<String>> {
        let r = self.send(typ, "checkauth", &[], None).await?;
        if r.keyword() != "success" {
            return Err(Stop(format!(
                "{typ}/checkauth: {} {}",
                self.t(
                    "Авторизация не выполнена. Проверьте имя пользователя и пароль.",
                    "Authorisation failed. Check the user name and password."
                ),
                answer_for_humans(&r)
            )));
        }
        let lines = r.lines();
        if lines.len() < 3 {
            return Err(Stop(format!(
                "{typ}/checkauth: {} ({})",
                self.t(
                    "в ответе нет имени и значения cookie (строки 2 и 3)",
                    "the answer lacks the cookie name and value (lines 2 and 3)"
                ),
                lines.len()
            )));
        }
        // 1C takes lines 2-4 untrimmed.
        let (name, value) = (lines[1], lines[2]);
        if !cookie_token_ok(name, true) || !cookie_token_ok(value, false) {
            let m = format!(
                "{typ}/checkauth: {} {:?}={:?}",
                self.t(
                    "имя или значение cookie непригодно для заголовка Cookie",
                    "the cookie name or value is not a plain token"
                ),
                name,
                value
            );
            self.error(m);
        }
        self.cookie = Some(format!("{name}={value}"));
        let mut timestamp = None;
        if lines.len() >= 4 {
            if let Some(s) = lines[3].strip_prefix("sessid=") {
                self.sessid = Some(s.to_string());
            } else {
                // UT 11 would send `&sessid=<line 4>` verbatim.
                let m = format!(
                    "{typ}/checkauth: {} {:?}",
                    self.t(
                        "строка 4 должна быть sessid=…, а не",
                        "line 4 must be sessid=…, not"
                    ),
                    lines[3]
                );
                self.error(m);
                self.sessid = Some(lines[3].replace("sessid=", ""));
            }
        } else if self.send_sessid {
            let m = format!(
                "{typ}/checkauth: {}",
                self.t(
                    "нет строки sessid=… (модуль 1С-Битрикс: «CSRF токен не поддерживается»)",
                    "no sessid=… line (the 1C-Bitrix module: \"CSRF token not supported\")"
                )
            );
            self.warn(m);
        }
        for l in lines.iter().skip(3) {
            if let Some(ts) = l.trim().strip_prefix("timestamp=") {
                timestamp = Some(ts.to_string());
            }
        }
        Ok(timestamp)
    }

    /// `init`: returns (zip offered, file_limit).
    async fn init(&mut self, typ: &str, style: Style) -> Step<(bool, i64)> {
        let extra: Vec<(&str, &str)> = match style {
            Style::Ut11 => vec![],
            Style::Bitrix => vec![("version", "2.10")],
        };
        let r = self.send(typ, "init", &extra, None).await?;
        let lines = r.lines();
        if r.keyword() == "failure" {
            return Err(Stop(format!(
                "{typ}/init: {} {}",
                self.t("Параметры обмена не получены.", "No exchange parameters."),
                answer_for_humans(&r)
            )));
        }
        let ok_count = match style {
            Style::Ut11 => lines.len() == 2,
            Style::Bitrix => lines.len() == 2 || lines.len() == 4,
        };
        if !ok_count {
            // UT 11: Если СтрЧислоСтрок(ОтветСервера) <> 2 → "Параметры обмена не получены".
            return Err(Stop(format!(
                "{typ}/init: {} ({}: {}, {:?})",
                self.t("Параметры обмена не получены", "No exchange parameters"),
                self.t("строк в ответе", "lines in the answer"),
                lines.len(),
                r.text
            )));
        }
        let l1 = lines[0].trim().to_lowercase();
        if !l1.starts_with("zip=") {
            let m = format!(
                "{typ}/init: {} {:?}",
                self.t("строка 1 не zip=…:", "line 1 is not zip=…:"),
                lines[0]
            );
            self.error(m);
        }
        let zip = l1 == "zip=yes";
        let l2 = lines[1].trim();
        let limit = match l2
            .strip_prefix("file_limit=")
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            Some(n) => n,
            None => {
                let m = format!(
                    "{typ}/init: {} {:?} ({})",
                    self.t(
                        "строка 2 не file_limit=<число>:",
                        "line 2 is not file_limit=<number>:"
                    ),
                    lines[1],
                    self.t(
                        "1С возьмет -1, файлы не делятся",
                        "1C then uses -1 and does not split files"
                    )
                );
                self.error(m);
                -1
            }
        };
        if lines.len() == 4 {
            if let Some(s) = lines[2].trim().strip_prefix("sessid=") {
                self.sessid = Some(s.to_string());
            } else {
                let m = format!(
                    "{typ}/init: {} {:?}",
                    self.t("строка 3 не sessid=…:", "line 3 is not sessid=…:"),
                    lines[2]
                );
                self.error(m);
            }
            if !lines[3].trim().starts_with("version=") {
                let m = format!(
                    "{typ}/init: {} {:?}",
                    self.t("строка 4 не version=…:", "line 4 is not version=…:"),
                    lines[3]
                );
                self.error(m);
            }
        }
        Ok((zip, limit))
    }

    /// Upload a file in chunks of `chunk` bytes (0 = whole), appending under one name.
    async fn upload(&mut self, typ: &str, u: &Upload, chunk: u64) -> Step<u64> {
        let started = Instant::now();
        let mut offset = 0u64;
        let mut n = 0u64;
        loop {
            let len = if chunk == 0 {
                u.size - offset
            } else {
                chunk.min(u.size - offset)
            };
            let r = self
                .send(
                    typ,
                    "file",
                    &[("filename", &u.name)],
                    Some((&u.path, offset, len)),
                )
                .await?;
            n += 1;
            match r.keyword().as_str() {
                "success" => {}
                "failure" => {
                    self.summary.upload_seconds += started.elapsed().as_secs_f64();
                    return Err(Stop(format!(
                        "{}: {} {}",
                        u.name,
                        self.t(
                            "Произошла ошибка на стороне сервера. Файл не отправлен.",
                            "Server-side error. The file was not sent."
                        ),
                        answer_for_humans(&r)
                    )));
                }
                _ => {
                    self.summary.upload_seconds += started.elapsed().as_secs_f64();
                    return Err(Stop(format!(
                        "{}: {} {:?}",
                        u.name,
                        self.t(
                            "неожиданный ответ на mode=file (ожидается success):",
                            "unexpected answer to mode=file (success expected):"
                        ),
                        first_line(&r)
                    )));
                }
            }
            if r.lines().len() > 1 && !r.detail().is_empty() && self.verbose {
                eprintln!(
                    "  (Получен расширенный статус успешного завершения сеанса: {})",
                    r.detail()
                );
            }
            offset += len;
            if offset >= u.size {
                break;
            }
        }
        self.summary.upload_seconds += started.elapsed().as_secs_f64();
        Ok(n)
    }

    /// The `import` loop for one file: repeat on `progress`, stop on `failure`.
    async fn import(&mut self, typ: &str, res: &mut FileResult) -> Step<()> {
        let started = Instant::now();
        let mut last_detail = String::new();
        loop {
            let r = self
                .send(typ, "import", &[("filename", &res.file)], None)
                .await?;
            res.import_requests += 1;
            res.import_seconds = round3(started.elapsed().as_secs_f64());
            res.answer = r.detail();
            match r.keyword().as_str() {
                "progress" => {
                    let d = r.detail();
                    if self.verbose && d != last_detail {
                        eprintln!("  … {d}");
                    }
                    last_detail = d;
                    if res.import_requests > 1_000_000 {
                        res.import = "error".into();
                        return Err(Stop(format!(
                            "{}: {}",
                            res.file,
                            self.t("бесконечный progress", "endless progress")
                        )));
                    }
                }
                "success" => {
                    res.import = "success".into();
                    return Ok(());
                }
                "failure" => {
                    res.import = "failure".into();
                    return Err(Stop(format!(
                        "{}: {} {}",
                        res.file,
                        self.t(
                            "Произошла ошибка на стороне сервера. Ответ сервера:",
                            "Server-side error. Server answer:"
                        ),
                        r.detail()
                    )));
                }
                _ => {
                    res.import = "error".into();
                    return Err(Stop(format!(
                        "{}: {} {:?}",
                        res.file,
                        self.t(
                            "неизвестный ответ на mode=import (ожидается success, progress или failure):",
                            "unknown answer to mode=import (success, progress or failure expected):"
                        ),
                        first_line(&r)
                    )));
                }
            }
        }
    }

    /// A mode that must answer success (looping on progress): deactivate, complete, sale success.
    async fn simple(&mut self, typ: &str, mode: &str, extra: &[(&str, &str)]) -> Step<()> {
        for _ in 0..100_000 {
            let r = self.send(typ, mode, extra, None).await?;
            match r.keyword().as_str() {
                "success" => return Ok(()),
                "progress" => continue,
                _ => {
                    return Err(Stop(format!(
                        "{typ}/{mode}: {} {}",
                        self.t("сервер ответил", "the server answered"),
                        answer_for_humans(&r)
                    )))
                }
            }
        }
        Err(Stop(format!(
            "{typ}/{mode}: {}",
            self.t("бесконечный progress", "endless progress")
        )))
    }

    /// Orders phase A: `query` must start with `<?xml` and be well-formed; then `success`.
    async fn sale_query(&mut self) -> Step<SaleResult> {
        let r = self.send("sale", "query", &[], None).await?;
        if !r.text.starts_with("<?xml") {
            if r.text.starts_with("PK") {
                return Err(Stop(format!(
                    "sale/query: {}",
                    self.t(
                        "ответ — zip: 1С прочитает его как строку и испортит",
                        "the answer is a zip: 1C reads it as a string and corrupts it"
                    )
                )));
            }
            return Err(Stop(format!(
                "sale/query: {} {:?}",
                self.t(
                    "ответ должен начинаться с <?xml, а начинается с",
                    "the answer must start with <?xml, not"
                ),
                r.text.chars().take(40).collect::<String>()
            )));
        }
        if let Some(path) = &self.save_query {
            std::fs::write(path, &r.raw).map_err(|e| Stop(format!("{}: {e}", path.display())))?;
        }
        use quick_xml::events::Event;
        let mut documents = 0u64;
        let mut numbers: Vec<String> = Vec::new();
        let mut rd = quick_xml::Reader::from_str(&r.text);
        let mut root: Option<String> = None;
        // Open elements; the text of a `Номер` directly inside a `Документ` is collected.
        let mut stack: Vec<String> = Vec::new();
        let mut number: Option<String> = None;
        loop {
            match rd.read_event() {
                Ok(Event::Start(e)) => {
                    let name = e.local_name().as_ref().to_string();
                    if root.is_none() {
                        root = Some(name.clone());
                    }
                    if name == "Документ" {
                        documents += 1;
                    }
                    if name == "Номер" && stack.last().map(String::as_str) == Some("Документ")
                    {
                        number = Some(String::new());
                    }
                    stack.push(name);
                }
                Ok(Event::Empty(e)) => {
                    let name = e.local_name().as_ref().to_string();
                    if root.is_none() {
                        root = Some(name.clone());
                    }
                    if name == "Документ" {
                        documents += 1;
                    }
                }
                Ok(Event::Text(t)) => {
                    if let Some(n) = number.as_mut() {
                        n.push_str(&t.xml10_content());
                    }
                }
                Ok(Event::GeneralRef(g)) => {
                    if let Some(n) = number.as_mut() {
                        match g.resolve_char_ref() {
                            Ok(Some(c)) => n.push(c),
                            _ => n.push_str(match g.as_ref() {
                                "amp" => "&",
                                "lt" => "<",
                                "gt" => ">",
                                "quot" => "\"",
                                "apos" => "'",
                                _ => "",
                            }),
                        }
                    }
                }
                Ok(Event::End(_)) => {
                    if stack.pop().as_deref() == Some("Номер") {
                        if let Some(n) = number.take() {
                            numbers.push(n.trim().to_string());
                        }
                    }
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(Stop(format!(
                        "sale/query: {} {} ({} {})",
                        self.t("XML не разобран:", "malformed XML:"),
                        e,
                        self.t("позиция", "position"),
                        rd.buffer_position()
                    )))
                }
            }
        }
        if root.as_deref() != Some("КоммерческаяИнформация") {
            let m = format!(
                "sale/query: {} {:?}",
                self.t(
                    "корневой элемент не КоммерческаяИнформация:",
                    "the root is not КоммерческаяИнформация:"
                ),
                root
            );
            self.error(m);
        }
        let charset = charset_of(&r.content_type).unwrap_or_default();
        let success = !self.no_success;
        if success {
            self.simple("sale", "success", &[]).await?;
        }
        Ok(SaleResult {
            query_bytes: r.raw_len,
            documents,
            numbers,
            charset,
            success,
        })
    }
}

fn first_line(r: &Reply) -> String {
    r.text.split('\n').next().unwrap_or("").to_string()
}

fn answer_for_humans(r: &Reply) -> String {
    let t: String = r.text.replace('\n', " / ").chars().take(300).collect();
    format!("«{t}»")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A request body streaming `len` bytes of `path` from `offset` (flat memory whatever the
/// chunk size).
fn file_body(path: &Path, offset: u64, len: u64) -> std::io::Result<reqwest::Body> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let stream = futures_util::stream::unfold((f, len), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(256 * 1024) as usize;
        let mut buf = vec![0u8; n];
        match f.read_exact(&mut buf) {
            Ok(()) => Some((Ok::<Vec<u8>, std::io::Error>(buf), (f, left - n as u64))),
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// A platform-like temp archive name, e.g. `v8_1A76_155ae.zip`.
fn archive_name(seq: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let pid = std::process::id() as u64;
    format!(
        "v8_{:04X}_{:x}.zip",
        (pid ^ nanos) & 0xFFFF,
        (nanos >> 4) + seq
    )
}

/// Pack the session's files into one archive as 1C does: XML at the root by bare name, other
/// files by relative path.
fn pack(files: &[&Upload], dest: &Path) -> Result<u64, String> {
    let f = std::fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut w = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, f));
    for u in files {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .large_file(u.size >= u32::MAX as u64);
        w.start_file(u.name.as_str(), opts)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        let mut src =
            std::fs::File::open(&u.path).map_err(|e| format!("{}: {e}", u.path.display()))?;
        std::io::copy(&mut src, &mut w).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    let mut inner = w.finish().map_err(|e| format!("{}: {e}", dest.display()))?;
    std::io::Write::flush(&mut inner).map_err(|e| e.to_string())?;
    drop(inner);
    Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
}

/// Removes a temporary archive when dropped.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run the exchange. Never panics on server behaviour; everything ends up in the summary.
pub async fn run(opts: &Options) -> Summary {
    let started = Instant::now();
    let mut summary = Summary {
        url: opts.url.clone(),
        style: match opts.style {
            Style::Ut11 => "ut11".into(),
            Style::Bitrix => "bitrix".into(),
        },
        ..Summary::default()
    };
    let plans = match plan(opts) {
        Ok(p) => p,
        Err(e) => {
            summary.errors.push(e);
            return summary;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            summary.errors.push(error_chain(&e));
            return summary;
        }
    };
    let mut c = Client {
        http,
        script: script_url(&opts.url),
        user: opts.user.clone(),
        password: opts.password.clone(),
        cookie: None,
        sessid: None,
        send_sessid: opts.use_sessid || opts.style == Style::Bitrix,
        verbose: opts.verbose,
        lang: opts.lang,
        no_success: opts.no_success,
        save_query: opts.save_query.clone(),
        summary,
    };
    // Every XML file appears in the summary from the start (import: skipped until reached).
    for p in &plans {
        for u in &p.xml {
            c.summary.files.push(FileResult {
                file: u.name.clone(),
                typ: p.typ.into(),
                bytes: u.size,
                import: "skipped".into(),
                ..FileResult::default()
            });
        }
        if let Some((a, entries)) = &p.archive {
            for e in entries {
                c.summary.files.push(FileResult {
                    file: e.clone(),
                    typ: p.typ.into(),
                    import: "skipped".into(),
                    answer: a.name.clone(),
                    ..FileResult::default()
                });
            }
        }
    }
    let last_catalog = plans.iter().rposition(|p| p.typ == "catalog");
    let mut seq = 0u64;
    for (i, p) in plans.iter().enumerate() {
        if let Err(Stop(msg)) = session(&mut c, opts, p, Some(i) == last_catalog, &mut seq).await {
            c.error(msg);
            break;
        }
    }
    let mut s = c.summary;
    s.seconds = round3(started.elapsed().as_secs_f64());
    s.upload_seconds = round3(s.upload_seconds);
    s.upload_mb_per_s = if s.upload_seconds > 0.0 {
        ((s.bytes_sent as f64 / 1e6 / s.upload_seconds) * 10.0).round() / 10.0
    } else {
        0.0
    };
    s.ok = s.errors.is_empty()
        && s.files
            .iter()
            .all(|f| f.import == "success" || (opts.no_import && f.import == "skipped"));
    s
}

async fn session(
    c: &mut Client,
    opts: &Options,
    p: &Plan,
    last_catalog: bool,
    seq: &mut u64,
) -> Step<()> {
    let typ = p.typ;
    c.summary.sessions += 1;
    c.cookie = None;
    c.sessid = None;
    if c.verbose {
        let names: Vec<&str> = p.xml.iter().map(|u| u.name.as_str()).collect();
        eprintln!(
            "== {} {} ({typ}) {}",
            c.t("сеанс", "session"),
            c.summary.sessions,
            names.join(", ")
        );
    }
    let mut timestamp = c.checkauth(typ).await?;
    if opts.style == Style::Ut11 {
        // UT 11 checks authorisation twice in a row (masterflash log); the second answer's
        // cookie is the one used.
        timestamp = c.checkauth(typ).await?.or(timestamp);
    }
    // Orders phase A: UT 11 calls query right after checkauth (no init); the Bitrix module inits
    // with version first.
    if typ == "sale" && p.xml.is_empty() {
        if opts.style == Style::Bitrix {
            c.init(typ, opts.style).await?;
        }
        let r = c.sale_query().await?;
        c.summary.sale = Some(r);
        return Ok(());
    }
    let (zip_offered, limit) = c.init(typ, opts.style).await?;
    c.summary.file_limit = Some(limit);
    let chunk = match opts.chunk {
        Some(n) => n,
        None if limit > 0 => limit as u64,
        None => 0,
    };
    c.summary.chunk = chunk;
    let use_zip = match opts.zip {
        ZipMode::Auto => zip_offered,
        ZipMode::Yes => {
            if !zip_offered {
                let m = c.t(
                    "сервер не предлагал zip (zip=no), архив отправлен по --zip yes",
                    "the server did not offer zip (zip=no); sending an archive because of --zip yes",
                );
                c.warn(m);
            }
            true
        }
        ZipMode::No => false,
    };
    // What gets imported in this session, in order.
    let mut to_import: Vec<String> = p.xml.iter().map(|u| u.name.clone()).collect();
    if let Some((archive, entries)) = &p.archive {
        if !zip_offered {
            let m = format!(
                "{}: {}",
                archive.name,
                c.t(
                    "сервер не предлагал zip (zip=no)",
                    "the server did not offer zip (zip=no)"
                )
            );
            c.warn(m);
        }
        c.upload(typ, archive, chunk).await?;
        to_import.extend(entries.iter().cloned());
    } else if use_zip && !(p.xml.is_empty() && p.attachments.is_empty()) {
        c.summary.zip = true;
        *seq += 1;
        let name = archive_name(*seq);
        let tmp = TempFile(
            std::env::temp_dir().join(format!("obmen-emulate-{}-{name}", std::process::id())),
        );
        let files: Vec<Upload> = p.xml.iter().chain(p.attachments.iter()).cloned().collect();
        let dest = tmp.0.clone();
        let packed = tokio::task::spawn_blocking(move || {
            let refs: Vec<&Upload> = files.iter().collect();
            pack(&refs, &dest)
        })
        .await
        .map_err(|e| Stop(e.to_string()))?
        .map_err(Stop)?;
        let archive = Upload {
            name,
            path: tmp.0.clone(),
            size: packed,
        };
        c.upload(typ, &archive, chunk).await?;
    } else {
        for u in &p.xml {
            let n = c.upload(typ, u, chunk).await?;
            if let Some(f) = c
                .summary
                .files
                .iter_mut()
                .find(|f| f.file == u.name && f.import == "skipped" && f.chunks == 0)
            {
                f.chunks = n;
            }
        }
        for u in &p.attachments {
            c.upload(typ, u, chunk).await?;
        }
    }
    if opts.no_import {
        return Ok(());
    }
    for name in to_import {
        let idx = c
            .summary
            .files
            .iter()
            .position(|f| f.file == name && f.import == "skipped" && f.import_requests == 0);
        let mut res = match idx {
            Some(i) => c.summary.files[i].clone(),
            None => FileResult {
                file: name.clone(),
                typ: typ.into(),
                ..FileResult::default()
            },
        };
        let r = c.import(typ, &mut res).await;
        match idx {
            Some(i) => c.summary.files[i] = res,
            None => c.summary.files.push(res),
        }
        r?;
    }
    if opts.style == Style::Bitrix && typ == "catalog" && last_catalog {
        match timestamp {
            Some(ts) => c.simple(typ, "deactivate", &[("timestamp", &ts)]).await?,
            None => {
                let m = c.t(
                    "checkauth не вернул timestamp=…: deactivate не вызван",
                    "checkauth gave no timestamp=…: deactivate not called",
                );
                c.warn(m);
            }
        }
        c.simple(typ, "complete", &[]).await?;
    }
    Ok(())
}

/// A few lines for a human (the JSON summary is the machine form).
pub fn human_summary(s: &Summary, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} {} ({}: {}, {}: {}, {}: {}, {:.1} MB, {:.2} s{})\n",
        if s.ok {
            "OK"
        } else {
            lang.pick("ОШИБКА", "FAILED")
        },
        s.url,
        lang.pick("сеансов", "sessions"),
        s.sessions,
        lang.pick("запросов", "requests"),
        s.requests,
        "zip",
        if s.zip { "yes" } else { "no" },
        s.bytes_sent as f64 / 1e6,
        s.seconds,
        if s.upload_seconds > 0.0 {
            format!(", upload {:.1} MB/s", s.upload_mb_per_s)
        } else {
            String::new()
        }
    ));
    for f in &s.files {
        out.push_str(&format!(
            "  {:<8} {} ({} B, {} {}, {:.2} s) {}\n",
            f.import, f.file, f.bytes, f.import_requests, "import", f.import_seconds, f.answer
        ));
    }
    if let Some(q) = &s.sale {
        out.push_str(&format!(
            "  sale/query: {} {} ({} B, {}){}\n",
            q.documents,
            lang.pick("документов", "documents"),
            q.query_bytes,
            q.charset,
            if q.success {
                ""
            } else {
                lang.pick(", success не отправлен", ", success not sent")
            }
        ));
    }
    for w in &s.warnings {
        out.push_str(&format!("  ! {w}\n"));
    }
    for e in &s.errors {
        out.push_str(&format!("  ✗ {e}\n"));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests;
