//! Orders documents from 1C (`orders-<uuid>_N.xml` from UT11, `documents___<guid>.xml` from the
//! 1C-Bitrix module; CML 2.03–2.10 flat `Документ`s and 3.1 `Контейнер`s): a streaming parser
//! over quick-xml that yields one document at a time, and the import that applies a whole file
//! in one transaction (a malformed or wrongly encoded file changes no order).

use crate::per_backend;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use diesel::prelude::*;
use quick_xml::events::Event as XmlEvent;
use serde::Serialize;

use super::model::*;
use super::store::{self, add_event, move_status, OrderRow};
use super::StatusMap;
use crate::i18n::Lang;
use crate::store::schema::{order_imports, order_unknown, orders};
use crate::store::{now_ms, Conn};

/// A good line of a 1C document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OnecLine {
    pub id: Option<String>,
    pub article: Option<String>,
    pub name: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<String>,
    pub sum: Option<String>,
    pub kind: Option<String>,
}

/// One `Документ` as 1C sent it (values trimmed; requisites in document order).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OnecDoc {
    pub id: Option<String>,
    pub number: Option<String>,
    pub date: Option<String>,
    pub time: Option<String>,
    pub operation: Option<String>,
    pub currency: Option<String>,
    pub sum: Option<String>,
    pub comment: Option<String>,
    pub number_1c: Option<String>,
    pub date_1c: Option<String>,
    pub deletion_mark: Option<String>,
    pub requisites: Vec<(String, String)>,
    pub lines: Vec<OnecLine>,
    /// Whether the document had a `Товары` element at all.
    pub has_goods: bool,
    /// 1-based index of the `Контейнер` (3.1) the document came in; None for flat documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<u64>,
}

impl OnecDoc {
    /// The first requisite with one of these names (case-insensitive), non-empty.
    pub fn req(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| {
            self.requisites
                .iter()
                .find(|(k, v)| k.trim().to_lowercase() == n.to_lowercase() && !v.trim().is_empty())
                .map(|(_, v)| v.trim())
        })
    }
    pub fn req_bool(&self, names: &[&str]) -> Option<bool> {
        self.req(names).and_then(parse_bool)
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "true" | "1" | "да" | "yes" | "истина" => Some(true),
        "false" | "0" | "нет" | "no" | "ложь" => Some(false),
        _ => None,
    }
}

/// 1C date-times as seen: `2014-12-12T9:51:39`, `2007-10-16 15:44:47`, `2015-06-29`,
/// `11.02.2021 18:45:21`, `0001-01-01` (empty) → `YYYY-MM-DDTHH:MM:SS` (or the input trimmed).
pub fn normalize_datetime(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.starts_with("0001-01-01") {
        return None;
    }
    let t2 = t.replace(' ', "T");
    let (d, tm) = t2.split_once('T').unwrap_or((&t2, ""));
    let date = if let Ok(x) = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
        x
    } else if let Ok(x) = chrono::NaiveDate::parse_from_str(d, "%d.%m.%Y") {
        x
    } else {
        return Some(t.to_string());
    };
    let mut parts = tm.split(':').map(|p| p.trim().parse::<u32>().ok());
    let (h, m, sec) = (
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    );
    let time = chrono::NaiveTime::from_hms_opt(h, m, sec).unwrap_or_default();
    Some(date.and_time(time).format("%Y-%m-%dT%H:%M:%S").to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{message}")]
    Xml { message: String, offset: u64 },
    #[error("{0}")]
    Encoding(String),
    #[error("not a CommerceML file: the root element is <{0}>")]
    NotCommerceMl(String),
}

impl ParseError {
    pub fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (ParseError::Io(e), Lang::Ru) => format!("Ошибка чтения файла: {e}"),
            (ParseError::Io(e), Lang::En) => format!("Cannot read the file: {e}"),
            (ParseError::Xml { message, offset }, Lang::Ru) => {
                format!("Ошибка разбора XML (байт {offset}): {message}")
            }
            (ParseError::Xml { message, offset }, Lang::En) => {
                format!("XML syntax error (byte {offset}): {message}")
            }
            (ParseError::Encoding(m), Lang::Ru) => format!("Неверная кодировка файла: {m}"),
            (ParseError::Encoding(m), Lang::En) => format!("Wrong file encoding: {m}"),
            (ParseError::NotCommerceMl(r), Lang::Ru) => format!(
                "Это не файл CommerceML: корневой элемент <{r}> вместо <КоммерческаяИнформация>"
            ),
            (ParseError::NotCommerceMl(r), Lang::En) => format!(
                "Not a CommerceML file: the root element is <{r}>, not <КоммерческаяИнформация>"
            ),
        }
    }
}

/// Reads bytes of another encoding as UTF-8 (streaming).
struct Transcode<R: Read> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    in_len: usize,
    output: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> Read for Transcode<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if !self.eof && self.in_len < self.input.len() {
                let n = self.inner.read(&mut self.input[self.in_len..])?;
                if n == 0 {
                    self.eof = true;
                }
                self.in_len += n;
            }
            let (res, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[..self.in_len],
                &mut self.output,
                self.eof,
            );
            self.input.copy_within(read..self.in_len, 0);
            self.in_len -= read;
            self.out_pos = 0;
            self.out_len = written;
            match res {
                encoding_rs::DecoderResult::Malformed(_, _) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "bytes that are not valid {}",
                            self.decoder.encoding().name()
                        ),
                    ))
                }
                encoding_rs::DecoderResult::InputEmpty if self.eof => {
                    self.done = self.out_len == 0 || self.done
                }
                _ => {}
            }
            if self.eof && self.in_len == 0 && written == 0 {
                self.done = true;
            }
        }
    }
}

/// Pick the encoding from the BOM or the XML declaration; refuse a file that declares a
/// single-byte encoding but is plainly UTF-8 (its Cyrillic would turn into mojibake).
fn detect(head: &[u8]) -> Result<(&'static encoding_rs::Encoding, usize), ParseError> {
    if head.starts_with(b"\xEF\xBB\xBF") {
        return Ok((encoding_rs::UTF_8, 3));
    }
    if head.starts_with(b"\xFF\xFE") {
        return Ok((encoding_rs::UTF_16LE, 2));
    }
    if head.starts_with(b"\xFE\xFF") {
        return Ok((encoding_rs::UTF_16BE, 2));
    }
    let decl_end = head
        .windows(2)
        .position(|w| w == b"?>")
        .filter(|_| head.starts_with(b"<?xml"))
        .unwrap_or(0);
    let decl = String::from_utf8_lossy(&head[..decl_end]).to_string();
    let label = decl.split("encoding").nth(1).and_then(|rest| {
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let q = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        rest[1..].split(q).next().map(|s| s.to_string())
    });
    let enc = match label {
        None => encoding_rs::UTF_8,
        Some(l) => encoding_rs::Encoding::for_label(l.trim().as_bytes()).ok_or_else(|| {
            ParseError::Encoding(format!("the declared encoding {l:?} is not known"))
        })?,
    };
    if enc != encoding_rs::UTF_8 && enc.is_single_byte() {
        // Cyrillic in UTF-8 is D0/D1 followed by 80–BF: in a real windows-1251 file that pair is
        // "Р"/"С" + a rare symbol; many of them and valid UTF-8 means a mislabelled file.
        let body = &head[decl_end..];
        let pairs = body
            .windows(2)
            .filter(|w| (w[0] == 0xD0 || w[0] == 0xD1) && (0x80..=0xBF).contains(&w[1]))
            .count();
        let valid = match std::str::from_utf8(body) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(), // cut in the middle of a character at the end
        };
        if pairs >= 8 && valid {
            return Err(ParseError::Encoding(format!(
                "the file declares {} but its contents are UTF-8",
                enc.name()
            )));
        }
    }
    Ok((enc, 0))
}

/// Pull parser: one `Документ` at a time (`Контейнер`s are looked through).
pub struct DocReader {
    reader: quick_xml::Reader<Box<dyn BufRead + Send>>,
    buf: Vec<u8>,
    stack: Vec<String>,
    text: String,
    doc: Option<OnecDoc>,
    doc_depth: usize,
    req: (Option<String>, Option<String>),
    root_seen: bool,
    /// `Контейнер`s opened so far, and the one the parser is inside of (if any).
    containers: u64,
    in_container: Option<u64>,
    pub encoding: &'static str,
}

impl DocReader {
    pub fn open(path: &Path) -> Result<DocReader, ParseError> {
        DocReader::from_read(Box::new(std::fs::File::open(path)?))
    }

    pub fn from_read(mut r: Box<dyn Read + Send>) -> Result<DocReader, ParseError> {
        let mut head = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < head.len() {
            let k = r.read(&mut head[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        head.truncate(n);
        let (enc, skip) = detect(&head)?;
        let rest: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(r));
        let mut rest = rest;
        if skip > 0 {
            let mut b = vec![0u8; skip];
            rest.read_exact(&mut b)?;
        }
        let source: Box<dyn BufRead + Send> = if enc == encoding_rs::UTF_8 {
            Box::new(BufReader::with_capacity(64 * 1024, rest))
        } else {
            Box::new(BufReader::with_capacity(
                64 * 1024,
                Transcode {
                    inner: rest,
                    decoder: enc.new_decoder_without_bom_handling(),
                    input: vec![0u8; 32 * 1024],
                    in_len: 0,
                    output: vec![0u8; 32 * 1024 * 3 + 16],
                    out_pos: 0,
                    out_len: 0,
                    eof: false,
                    done: false,
                },
            ))
        };
        let mut reader = quick_xml::Reader::from_reader(source);
        reader.config_mut().check_end_names = true;
        Ok(DocReader {
            reader,
            buf: Vec::with_capacity(4096),
            stack: Vec::new(),
            text: String::new(),
            doc: None,
            doc_depth: 0,
            req: (None, None),
            root_seen: false,
            containers: 0,
            in_container: None,
            encoding: enc.name(),
        })
    }

    fn xml_err(&self, e: impl std::fmt::Display) -> ParseError {
        ParseError::Xml {
            message: e.to_string(),
            offset: self.reader.error_position(),
        }
    }

    /// The next document, or None at the end of the file.
    pub fn next_doc(&mut self) -> Result<Option<OnecDoc>, ParseError> {
        loop {
            self.buf.clear();
            let ev = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => {
                    if let quick_xml::Error::Io(io) = &e {
                        if io.kind() == std::io::ErrorKind::InvalidData {
                            return Err(ParseError::Encoding(io.to_string()));
                        }
                    }
                    if matches!(e, quick_xml::Error::Encoding(_)) {
                        return Err(ParseError::Encoding(format!(
                            "{e} (the file is not valid {})",
                            self.encoding
                        )));
                    }
                    let pos = self.reader.error_position();
                    return Err(ParseError::Xml {
                        message: e.to_string(),
                        offset: pos,
                    });
                }
            };
            match ev {
                XmlEvent::Start(s) => {
                    let name = s.local_name().as_ref().to_string();
                    let attrs = Self::attributes(self.doc.is_some(), &name, &s);
                    drop(s);
                    let attrs = attrs.map_err(|e| self.xml_err(e))?;
                    self.start(name)?;
                    self.take_attributes(attrs);
                }
                XmlEvent::Empty(s) => {
                    let name = s.local_name().as_ref().to_string();
                    let attrs = Self::attributes(self.doc.is_some(), &name, &s);
                    drop(s);
                    let attrs = attrs.map_err(|e| self.xml_err(e))?;
                    self.start(name)?;
                    self.take_attributes(attrs);
                    if let Some(d) = self.end()? {
                        return Ok(Some(d));
                    }
                }
                XmlEvent::End(_) => {
                    if let Some(d) = self.end()? {
                        return Ok(Some(d));
                    }
                }
                XmlEvent::Text(t) if self.doc.is_some() => {
                    let s = t.xml10_content();
                    self.text.push_str(&s);
                }
                XmlEvent::CData(c) if self.doc.is_some() => {
                    let s = c.xml10_content();
                    self.text.push_str(&s);
                }
                XmlEvent::GeneralRef(r) if self.doc.is_some() => {
                    let ch = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        Ok(None) => match &*r {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            other => {
                                let msg = format!("unknown entity &{other};");
                                return Err(self.xml_err(msg));
                            }
                        },
                        Err(e) => return Err(self.xml_err(e)),
                    };
                    if let Some(c) = ch {
                        self.text.push(c);
                    }
                }
                XmlEvent::Eof => {
                    if !self.stack.is_empty() {
                        return Err(ParseError::Xml {
                            message: format!(
                                "the file ends inside <{}>",
                                self.stack.last().cloned().unwrap_or_default()
                            ),
                            offset: self.reader.buffer_position(),
                        });
                    }
                    if !self.root_seen {
                        return Err(ParseError::Xml {
                            message: "the file has no root element".into(),
                            offset: 0,
                        });
                    }
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// Attributes of `Документ` and of its `ЗначениеРеквизита` (old 1C versions write documents
    /// as `<Документ Номер="…" Дата="…" ХозОперация="…"/>`); none of other elements.
    fn attributes(
        in_doc: bool,
        name: &str,
        s: &quick_xml::events::BytesStart,
    ) -> Result<Vec<(String, String)>, String> {
        let wanted = (name == "Документ" && !in_doc) || (name == "ЗначениеРеквизита" && in_doc);
        if !wanted {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for a in s.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let key = a.key.local_name().as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            out.push((key, value.trim().to_string()));
        }
        Ok(out)
    }

    /// Apply the attributes of the element just started (see `attributes`); child elements of
    /// the same name, read later, do not override them.
    fn take_attributes(&mut self, attrs: Vec<(String, String)>) {
        let Some(doc) = self.doc.as_mut() else {
            return;
        };
        for (k, v) in attrs {
            if v.is_empty() {
                continue;
            }
            match self.stack.last().map(String::as_str) {
                Some("Документ") if self.stack.len() == self.doc_depth + 1 => {
                    let slot = match k.as_str() {
                        "Ид" => &mut doc.id,
                        "Номер" => &mut doc.number,
                        "Дата" => &mut doc.date,
                        "Время" => &mut doc.time,
                        "ХозОперация" => &mut doc.operation,
                        "Валюта" => &mut doc.currency,
                        "Сумма" => &mut doc.sum,
                        "Комментарий" => &mut doc.comment,
                        "Номер1С" => &mut doc.number_1c,
                        "Дата1С" => &mut doc.date_1c,
                        "ПометкаУдаления" => &mut doc.deletion_mark,
                        _ => continue,
                    };
                    *slot = Some(v);
                }
                Some("ЗначениеРеквизита") => match k.as_str() {
                    "Наименование" => self.req.0 = Some(v),
                    "Значение" => self.req.1 = Some(v),
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn start(&mut self, name: String) -> Result<(), ParseError> {
        if self.stack.is_empty() {
            if self.root_seen {
                return Err(self.xml_err("a second root element"));
            }
            self.root_seen = true;
            if name != "КоммерческаяИнформация" {
                return Err(ParseError::NotCommerceMl(name));
            }
        }
        if name == "Контейнер" && self.doc.is_none() {
            self.containers += 1;
            self.in_container = Some(self.containers);
        }
        if name == "Документ" && self.doc.is_none() {
            self.doc = Some(OnecDoc {
                container: self.in_container,
                ..Default::default()
            });
            self.doc_depth = self.stack.len();
        } else if self.doc.is_some() {
            let rel = &self.stack[self.doc_depth + 1..];
            if rel.is_empty() && name == "Товары" {
                if let Some(d) = self.doc.as_mut() {
                    d.has_goods = true;
                }
            }
            if rel.len() == 1 && rel[0] == "Товары" && name == "Товар" {
                if let Some(d) = self.doc.as_mut() {
                    d.lines.push(OnecLine::default());
                }
            }
            if name == "ЗначениеРеквизита" {
                self.req = (None, None);
            }
        }
        self.stack.push(name);
        self.text.clear();
        Ok(())
    }

    fn end(&mut self) -> Result<Option<OnecDoc>, ParseError> {
        let Some(name) = self.stack.pop() else {
            return Err(self.xml_err("an end tag without a start"));
        };
        let text = std::mem::take(&mut self.text);
        let value = text.trim().to_string();
        let Some(doc) = self.doc.as_mut() else {
            if name == "Контейнер" {
                self.in_container = None;
            }
            return Ok(None);
        };
        if self.stack.len() == self.doc_depth {
            // </Документ>
            return Ok(self.doc.take());
        }
        let rel: Vec<&str> = self.stack[self.doc_depth + 1..]
            .iter()
            .map(|s| s.as_str())
            .collect();
        let set = |slot: &mut Option<String>| {
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.clone());
            }
        };
        match (rel.as_slice(), name.as_str()) {
            ([], "Ид") => set(&mut doc.id),
            ([], "Номер") => set(&mut doc.number),
            ([], "Дата") => set(&mut doc.date),
            ([], "Время") => set(&mut doc.time),
            ([], "ХозОперация") => set(&mut doc.operation),
            ([], "Валюта") => set(&mut doc.currency),
            ([], "Сумма") => set(&mut doc.sum),
            ([], "Комментарий") => set(&mut doc.comment),
            ([], "Номер1С") => set(&mut doc.number_1c),
            ([], "Дата1С") => set(&mut doc.date_1c),
            ([], "ПометкаУдаления") => set(&mut doc.deletion_mark),
            (["ЗначенияРеквизитов", "ЗначениеРеквизита"], "Наименование") => {
                self.req.0 = Some(value)
            }
            (["ЗначенияРеквизитов", "ЗначениеРеквизита"], "Значение") if self.req.1.is_none() => {
                self.req.1 = Some(value)
            }
            (["ЗначенияРеквизитов"], "ЗначениеРеквизита") => {
                if let (Some(n), v) = std::mem::take(&mut self.req) {
                    doc.requisites.push((n, v.unwrap_or_default()));
                }
            }
            (["Товары", "Товар"], field) => {
                if let Some(l) = doc.lines.last_mut() {
                    match field {
                        "Ид" => set(&mut l.id),
                        "Артикул" => set(&mut l.article),
                        "Наименование" => set(&mut l.name),
                        "ЦенаЗаЕдиницу" | "Цена" => set(&mut l.price),
                        "Количество" => set(&mut l.quantity),
                        "Сумма" => set(&mut l.sum),
                        _ => {}
                    }
                }
            }
            (["Товары", "Товар", "ЗначенияРеквизитов", "ЗначениеРеквизита"], "Наименование") => {
                self.req.0 = Some(value)
            }
            (["Товары", "Товар", "ЗначенияРеквизитов", "ЗначениеРеквизита"], "Значение") => {
                self.req.1 = Some(value)
            }
            (["Товары", "Товар", "ЗначенияРеквизитов"], "ЗначениеРеквизита") =>
            {
                let (n, v) = std::mem::take(&mut self.req);
                if n.as_deref() == Some("ТипНоменклатуры") {
                    if let Some(l) = doc.lines.last_mut() {
                        l.kind = v;
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

// --- applying a file --------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportStats {
    pub documents: u64,
    pub matched: u64,
    pub changed: u64,
    pub unknown: u64,
    pub skipped: u64,
    /// Payment / shipment documents of a 3.1 `Контейнер` applied to the container's order.
    pub payments: u64,
    pub shipments: u64,
    /// The same file (session + name, or the same content) was applied before: nothing done.
    pub already: bool,
}

impl ImportStats {
    pub fn line(&self, lang: Lang) -> String {
        if self.already {
            return lang
                .pick(
                    "Файл уже был загружен, изменений нет.",
                    "The file was applied before; nothing changed.",
                )
                .to_string();
        }
        match lang {
            Lang::Ru => format!(
                "Документов: {}, найдено заказов: {}, изменено: {}, неизвестных: {}, пропущено: {}.",
                self.documents, self.matched, self.changed, self.unknown, self.skipped
            ),
            Lang::En => format!(
                "Documents: {}, orders matched: {}, changed: {}, unknown: {}, skipped: {}.",
                self.documents, self.matched, self.changed, self.unknown, self.skipped
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Order(#[from] super::OrderError),
}

impl ImportError {
    pub fn describe(&self, lang: Lang) -> String {
        match self {
            ImportError::Parse(p) => p.describe(lang),
            ImportError::Db(e) => match lang {
                Lang::Ru => format!("Ошибка базы данных: {e}"),
                Lang::En => format!("Database error: {e}"),
            },
            ImportError::Order(e) => e.to_string(),
        }
    }
}

fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut f = std::fs::File::open(path)?;
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut b)?;
        if n == 0 {
            break;
        }
        h.update(&b[..n]);
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// Apply a 1C orders file in one transaction. Idempotent per (session, filename) and per content.
pub fn import_file(
    conn: &mut Conn,
    path: &Path,
    session_id: &str,
    filename: &str,
    map: &StatusMap,
) -> Result<ImportStats, ImportError> {
    let hash = file_hash(path).map_err(ParseError::Io)?;
    // Check and apply in one write transaction: two concurrent imports of the same file cannot
    // both apply it.
    conn.immediate_transaction(|conn| {
        let seen: i64 = order_imports::table
            .filter(
                order_imports::hash.eq(&hash).or(order_imports::session_id
                    .eq(session_id)
                    .and(order_imports::filename.eq(filename))),
            )
            .count()
            .get_result(conn)?;
        if seen > 0 {
            return Ok(ImportStats {
                already: true,
                ..Default::default()
            });
        }
        let mut reader = DocReader::open(path)?;
        let mut st = ImportStats::default();
        // Documents of one `Контейнер` are applied together (the order first, then its payments
        // and shipments, whatever their order in the file); flat documents one by one.
        let mut group: Vec<OnecDoc> = Vec::new();
        while let Some(doc) = reader.next_doc()? {
            st.documents += 1;
            if group.first().is_some_and(|g| g.container != doc.container) {
                apply_group(conn, std::mem::take(&mut group), map, &mut st)?;
            }
            if doc.container.is_some() {
                group.push(doc);
            } else {
                apply_group(conn, vec![doc], map, &mut st)?;
            }
        }
        apply_group(conn, group, map, &mut st)?;
        per_backend!(conn, |c| {
            diesel::insert_into(order_imports::table)
                .values((
                    order_imports::session_id.eq(session_id),
                    order_imports::filename.eq(filename),
                    order_imports::hash.eq(&hash),
                    order_imports::documents.eq(st.documents as i32),
                    order_imports::matched.eq(st.matched as i32),
                    order_imports::changed.eq(st.changed as i32),
                    order_imports::unknown.eq(st.unknown as i32),
                    order_imports::at.eq(now_ms()),
                ))
                .on_conflict_do_nothing()
                .execute(c)
        })?;
        Ok(st)
    })
}

/// What a document is, by its `ХозОперация` (CML 2.05–2.10 enumeration plus the names UT 11
/// and the 1C-Bitrix module use for subordinate documents of a `Контейнер`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DocKind {
    Order,
    Payment,
    Shipment,
    Other,
}

pub fn doc_kind(doc: &OnecDoc) -> DocKind {
    let Some(op) = doc.operation.as_deref() else {
        return DocKind::Order;
    };
    let op = op.trim().to_lowercase();
    match op.as_str() {
        "заказ товара" => DocKind::Order,
        "выплата наличных денег"
        | "выплата безналичных денег"
        | "эквайринговая операция"
        | "поступление наличных денежных средств"
        | "поступление безналичных денежных средств"
        | "оплата"
        | "приходный кассовый ордер"
        | "поступление денежных средств" => DocKind::Payment,
        "отпуск товара" | "реализация товаров" | "реализация товаров и услуг" | "отгрузка" => {
            DocKind::Shipment
        }
        _ => DocKind::Other,
    }
}

/// Apply the documents of one `Контейнер` (or one flat document): orders as such; a payment or a
/// shipment document goes to the order of its container, as the equivalent order requisites of
/// 2.x files (`Номер оплаты по 1С`/`Дата оплаты по 1С`/`Заказ оплачен`, `Номер отгрузки по 1С`/
/// `Дата отгрузки по 1С`/`Отгружен`) would. Without a known order in the container it is skipped.
fn apply_group(
    conn: &mut Conn,
    group: Vec<OnecDoc>,
    map: &StatusMap,
    st: &mut ImportStats,
) -> Result<(), ImportError> {
    let (orders_, subs): (Vec<OnecDoc>, Vec<OnecDoc>) = group
        .into_iter()
        .partition(|d| d.container.is_none() || doc_kind(d) == DocKind::Order);
    let mut target: Option<(String, bool)> = None;
    for doc in &orders_ {
        match apply_doc(conn, doc, map)? {
            Applied::Changed => {
                st.matched += 1;
                st.changed += 1;
                if target.is_none() {
                    target = find_order(conn, doc)?.map(|r| (r.number, true));
                }
            }
            Applied::Unchanged => {
                st.matched += 1;
                if target.is_none() {
                    target = find_order(conn, doc)?.map(|r| (r.number, false));
                }
            }
            Applied::Unknown => st.unknown += 1,
            Applied::Skipped => st.skipped += 1,
        }
    }
    for doc in &subs {
        let kind = doc_kind(doc);
        let Some((number, counted)) = target.as_mut() else {
            st.skipped += 1;
            continue;
        };
        let Some(synthetic) = subordinate_as_requisites(conn, number, doc, kind)? else {
            st.skipped += 1;
            continue;
        };
        match kind {
            DocKind::Payment => st.payments += 1,
            _ => st.shipments += 1,
        }
        if apply_doc(conn, &synthetic, map)? == Applied::Changed && !*counted {
            *counted = true;
            st.changed += 1;
        }
    }
    Ok(())
}

/// A payment or shipment document rewritten as the order requisites of a 2.x file (matched by
/// our order number). A document not in force (unposted, cancelled or marked for deletion)
/// withdraws the payment / shipment only if it is the one the order records; else None.
fn subordinate_as_requisites(
    conn: &mut Conn,
    order_number: &str,
    doc: &OnecDoc,
    kind: DocKind,
) -> Result<Option<OnecDoc>, ImportError> {
    let (num_req, date_req, flag_req) = match kind {
        DocKind::Payment => ("Номер оплаты по 1С", "Дата оплаты по 1С", "Заказ оплачен"),
        DocKind::Shipment => ("Номер отгрузки по 1С", "Дата отгрузки по 1С", "Отгружен"),
        _ => return Ok(None),
    };
    let number = doc
        .req(&[num_req])
        .map(str::to_string)
        .or_else(|| doc.number_1c.as_deref().map(|x| x.trim().to_string()))
        .or_else(|| doc.number.as_deref().map(|x| x.trim().to_string()))
        .filter(|x| !x.is_empty());
    let date = doc
        .req(&[date_req])
        .map(str::to_string)
        .or_else(|| doc.date_1c.clone())
        .or_else(|| {
            doc.date.as_ref().map(|d| match doc.time.as_deref() {
                Some(t) if !d.contains('T') => format!("{}T{}", d.trim(), t.trim()),
                _ => d.trim().to_string(),
            })
        });
    let deleted = doc
        .deletion_mark
        .as_deref()
        .and_then(parse_bool)
        .or_else(|| doc.req_bool(&["ПометкаУдаления"]))
        .unwrap_or(false);
    let in_force = doc.req_bool(&["Проведен"]).unwrap_or(true)
        && !doc.req_bool(&["Отменен"]).unwrap_or(false)
        && !deleted
        && doc
            .req_bool(match kind {
                DocKind::Payment => &["Заказ оплачен", "Оплачен"],
                _ => &["Отгружен"],
            })
            .unwrap_or(true);
    let mut requisites = Vec::new();
    if in_force {
        if let Some(n) = number {
            requisites.push((num_req.to_string(), n));
        }
        if let Some(d) = date {
            requisites.push((date_req.to_string(), d));
        }
        requisites.push((flag_req.to_string(), "true".to_string()));
    } else {
        let row = orders::table
            .select(OrderRow::as_select())
            .filter(orders::number.eq(order_number))
            .first(conn)
            .optional()?;
        let recorded = row.map(|r| {
            let o = r.into_order(Vec::new()).onec;
            match kind {
                DocKind::Payment => o.payment_number,
                _ => o.shipment_number,
            }
        });
        if number.is_none() || recorded.flatten() != number {
            return Ok(None);
        }
        requisites.push((flag_req.to_string(), "false".to_string()));
    }
    Ok(Some(OnecDoc {
        number: Some(order_number.to_string()),
        requisites,
        ..Default::default()
    }))
}

#[derive(Debug, PartialEq)]
pub enum Applied {
    Changed,
    Unchanged,
    Unknown,
    Skipped,
}

fn find_order(conn: &mut Conn, doc: &OnecDoc) -> QueryResult<Option<OrderRow>> {
    let q = |conn: &mut Conn, col: &str, v: &str| -> QueryResult<Option<OrderRow>> {
        let base = orders::table.select(OrderRow::as_select());
        match col {
            "number" => base.filter(orders::number.eq(v)).first(conn).optional(),
            _ => base.filter(orders::onec_id.eq(v)).first(conn).optional(),
        }
    };
    if let Some(n) = doc.number.as_deref() {
        if let Some(r) = q(conn, "number", n)? {
            return Ok(Some(r));
        }
    }
    if let Some(id) = doc.id.as_deref() {
        if let Some(r) = q(conn, "number", id)? {
            return Ok(Some(r));
        }
        if let Some(r) = q(conn, "onec_id", id)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Apply one document (inside the file's transaction).
pub fn apply_doc(conn: &mut Conn, doc: &OnecDoc, map: &StatusMap) -> Result<Applied, ImportError> {
    if let Some(op) = doc.operation.as_deref() {
        if op.trim().to_lowercase() != "заказ товара" {
            return Ok(Applied::Skipped);
        }
    }
    let Some(row) = find_order(conn, doc)? else {
        record_unknown(conn, doc)?;
        return Ok(Applied::Unknown);
    };
    let id = row.id;
    let our_number = row.number.clone();
    let old = row.into_order(Vec::new());
    let before = old.onec.clone();
    let mut new = before.clone();

    if let Some(x) = doc.id.as_deref().filter(|x| *x != our_number) {
        new.id = Some(x.to_string());
    }
    if let Some(x) = doc
        .number_1c
        .as_deref()
        .or_else(|| doc.req(&["Номер по 1С"]))
    {
        new.number = Some(x.trim().to_string());
    }
    if let Some(x) = doc.date_1c.as_deref().or_else(|| doc.req(&["Дата по 1С"])) {
        new.date = normalize_datetime(x);
    }
    if let Some(b) = doc.req_bool(&["Проведен"]) {
        new.posted = b;
    }
    if let Some(b) = doc
        .deletion_mark
        .as_deref()
        .and_then(parse_bool)
        .or_else(|| doc.req_bool(&["ПометкаУдаления"]))
    {
        new.deleted = b;
    }
    if let Some(x) = doc.req(&["Номер оплаты по 1С", "Номер платежного документа"])
    {
        new.payment_number = Some(x.to_string());
        new.paid = true;
    }
    if let Some(x) = doc.req(&["Дата оплаты по 1С", "Дата оплаты"]) {
        new.payment_date = normalize_datetime(x);
    }
    let doc_payment = doc
        .req(&["Номер оплаты по 1С", "Номер платежного документа"])
        .is_some();
    if let Some(b) = doc.req_bool(&["Заказ оплачен", "Оплачен"]) {
        new.paid = b || doc_payment;
    }
    if let Some(x) = doc.req(&["Номер отгрузки по 1С"]) {
        new.shipment_number = Some(x.to_string());
        new.shipped = true;
    }
    if let Some(x) = doc.req(&["Дата отгрузки по 1С"]) {
        new.shipment_date = normalize_datetime(x);
    }
    if let Some(b) = doc.req_bool(&["Отгружен"]) {
        new.shipped = b || doc.req(&["Номер отгрузки по 1С"]).is_some();
    }
    if let Some(b) = doc.req_bool(&["Отменен"]) {
        new.cancelled = b;
    }
    if let Some(x) = doc.req(&["Статус заказа"]) {
        new.status = Some(x.to_string());
    }

    let mut changed = false;
    let ev = |conn: &mut Conn, kind: &str, msg: String, data: serde_json::Value| {
        add_event(conn, id, Source::OneC, kind, &msg, Some(data))
    };
    if new.number != before.number || new.date != before.date {
        changed = true;
        ev(
            conn,
            "onec_number",
            format!(
                "1C number {} of {}",
                new.number.as_deref().unwrap_or("—"),
                new.date.as_deref().unwrap_or("—")
            ),
            serde_json::json!({"number": new.number, "date": new.date}),
        )?;
    }
    if new.id != before.id {
        changed = true;
    }
    if new.posted != before.posted {
        changed = true;
        ev(
            conn,
            "posted",
            if new.posted {
                "posted in 1C"
            } else {
                "unposted in 1C"
            }
            .into(),
            serde_json::json!({"posted": new.posted}),
        )?;
    }
    if new.deleted != before.deleted {
        changed = true;
        ev(
            conn,
            "deleted",
            if new.deleted {
                "marked for deletion in 1C"
            } else {
                "deletion mark removed in 1C"
            }
            .into(),
            serde_json::json!({"deleted": new.deleted}),
        )?;
    }
    if new.paid != before.paid
        || new.payment_number != before.payment_number
        || new.payment_date != before.payment_date
    {
        changed = true;
        ev(
            conn,
            "paid",
            format!(
                "payment in 1C: {} {}",
                new.payment_number.as_deref().unwrap_or("—"),
                new.payment_date.as_deref().unwrap_or("")
            )
            .trim()
            .to_string(),
            serde_json::json!({"paid": new.paid, "number": new.payment_number, "date": new.payment_date}),
        )?;
    }
    if new.shipped != before.shipped
        || new.shipment_number != before.shipment_number
        || new.shipment_date != before.shipment_date
    {
        changed = true;
        ev(
            conn,
            "shipped",
            format!(
                "shipment in 1C: {} {}",
                new.shipment_number.as_deref().unwrap_or("—"),
                new.shipment_date.as_deref().unwrap_or("")
            )
            .trim()
            .to_string(),
            serde_json::json!({"shipped": new.shipped, "number": new.shipment_number, "date": new.shipment_date}),
        )?;
    }
    if new.cancelled != before.cancelled {
        changed = true;
        ev(
            conn,
            "cancelled",
            if new.cancelled {
                "cancelled in 1C"
            } else {
                "cancellation withdrawn in 1C"
            }
            .into(),
            serde_json::json!({"cancelled": new.cancelled}),
        )?;
    }
    let status_changed = new.status != before.status;
    if status_changed {
        changed = true;
        ev(
            conn,
            "onec_status",
            format!("1C status: {}", new.status.as_deref().unwrap_or("—")),
            serde_json::json!({"from": before.status, "to": new.status}),
        )?;
    }

    // Lines and sums changed in 1C.
    let mut new_total: Option<Money> = None;
    if doc.has_goods && !doc.lines.is_empty() {
        let (lines, delivery) = lines_from_doc(doc);
        let ours = store::load_lines(conn, id)?;
        let key = |ls: &[Line]| {
            let mut v: Vec<(Option<String>, i64, i64, i64)> = ls
                .iter()
                .map(|l| (l.offer_id.clone(), l.quantity.0, l.price.0, l.sum.0))
                .collect();
            v.sort();
            v
        };
        if key(&lines) != key(&ours) {
            changed = true;
            store::insert_lines(conn, id, &lines)?;
            let total = doc.sum.as_deref().and_then(Money::parse).unwrap_or(Money(
                lines.iter().map(|l| l.sum.0).sum::<i64>() + delivery.map(|d| d.0).unwrap_or(0),
            ));
            new_total = Some(total);
            ev(
                conn,
                "lines_changed",
                format!(
                    "lines changed in 1C: {} lines, total {}",
                    lines.len(),
                    total
                ),
                serde_json::json!({
                    "before": ours.iter().map(|l| serde_json::json!({"offer_id": l.offer_id, "quantity": l.quantity.to_string(), "price": l.price.to_string(), "sum": l.sum.to_string()})).collect::<Vec<_>>(),
                    "after": lines.iter().map(|l| serde_json::json!({"offer_id": l.offer_id, "quantity": l.quantity.to_string(), "price": l.price.to_string(), "sum": l.sum.to_string()})).collect::<Vec<_>>(),
                }),
            )?;
        } else if let Some(total) = doc.sum.as_deref().and_then(Money::parse) {
            if total != old.total {
                changed = true;
                new_total = Some(total);
                ev(
                    conn,
                    "total_changed",
                    format!("total changed in 1C: {} → {}", old.total, total),
                    serde_json::json!({"from": old.total.to_string(), "to": total.to_string()}),
                )?;
            }
        }
    }

    if !changed {
        return Ok(Applied::Unchanged);
    }
    diesel::update(orders::table.filter(orders::id.eq(id)))
        .set((
            orders::onec_id.eq(&new.id),
            orders::onec_number.eq(&new.number),
            orders::onec_date.eq(&new.date),
            orders::onec_posted.eq(new.posted),
            orders::onec_paid.eq(new.paid),
            orders::onec_payment_number.eq(&new.payment_number),
            orders::onec_payment_date.eq(&new.payment_date),
            orders::onec_shipped.eq(new.shipped),
            orders::onec_shipment_number.eq(&new.shipment_number),
            orders::onec_shipment_date.eq(&new.shipment_date),
            orders::onec_cancelled.eq(new.cancelled),
            orders::onec_deleted.eq(new.deleted),
            orders::onec_status.eq(&new.status),
            orders::onec_updated_at.eq(now_ms()),
            orders::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    if let Some(t) = new_total {
        diesel::update(orders::table.filter(orders::id.eq(id)))
            .set(orders::total.eq(t.0))
            .execute(conn)?;
    }

    // Our state machine follows what changed in 1C (no re-send: the source is 1C).
    let mut status = old.status;
    let step =
        |conn: &mut Conn, status: &mut Status, to: Status, note: &str| -> Result<(), ImportError> {
            if move_status(conn, id, *status, to, Source::OneC, note)? {
                *status = to;
            }
            Ok(())
        };
    if (new.posted && !before.posted) || (new.number.is_some() && before.number.is_none()) {
        step(conn, &mut status, Status::Accepted, "1C accepted the order")?;
    }
    let action = if status_changed {
        new.status.as_deref().and_then(|s| map.action(s))
    } else {
        None
    };
    match action {
        Some(super::StatusAction::ReadyToShip) => {
            step(conn, &mut status, Status::ReadyToShip, "1C status")?;
            if status == Status::ReadyToShip {
                add_event(
                    conn,
                    id,
                    Source::OneC,
                    "ready_to_ship",
                    "ready to ship: ship on the marketplace / create the delivery order",
                    None,
                )?;
            }
        }
        Some(super::StatusAction::DeleteDelivery) => {
            add_event(
                conn,
                id,
                Source::OneC,
                "delete_delivery",
                "1C asks to delete the delivery order",
                None,
            )?;
        }
        Some(super::StatusAction::Shipped) => {
            step(conn, &mut status, Status::Shipped, "1C status")?
        }
        Some(super::StatusAction::Delivered) => {
            step(conn, &mut status, Status::Delivered, "1C status")?
        }
        Some(super::StatusAction::Cancelled) => {
            step(conn, &mut status, Status::Cancelled, "1C status")?
        }
        None => {}
    }
    if new.shipped && !before.shipped {
        step(conn, &mut status, Status::Shipped, "1C shipment")?;
    }
    if new.cancelled && !before.cancelled {
        step(conn, &mut status, Status::Cancelled, "cancelled in 1C")?;
    }
    Ok(Applied::Changed)
}

fn lines_from_doc(doc: &OnecDoc) -> (Vec<Line>, Option<Money>) {
    let mut out = Vec::new();
    let mut delivery = None;
    for l in &doc.lines {
        let qty = l
            .quantity
            .as_deref()
            .and_then(Qty::parse)
            .unwrap_or(Qty(1000));
        let price = l
            .price
            .as_deref()
            .and_then(Money::parse)
            .unwrap_or_default();
        let sum = l
            .sum
            .as_deref()
            .and_then(Money::parse)
            .unwrap_or_else(|| qty.times(price));
        if l.id.as_deref() == Some("ORDER_DELIVERY") {
            delivery = Some(sum);
            continue;
        }
        let offer_id = l.id.clone().filter(|x| x != "ORDER_SERVICE");
        let discount = Money((qty.times(price).0 - sum.0).max(0));
        out.push(Line {
            offer_id,
            article: l.article.clone(),
            name: l.name.clone().unwrap_or_default(),
            quantity: qty,
            price,
            discount,
            vat: None,
            sum,
        });
    }
    (out, delivery)
}

fn record_unknown(conn: &mut Conn, doc: &OnecDoc) -> QueryResult<()> {
    let key = doc
        .id
        .clone()
        .or_else(|| doc.number.clone())
        .unwrap_or_else(|| "(no id)".into());
    let data = serde_json::to_string(doc).unwrap_or_default();
    let now = now_ms();
    per_backend!(conn, |c| {
        diesel::insert_into(order_unknown::table)
            .values((
                order_unknown::onec_id.eq(&key),
                order_unknown::number.eq(&doc.number),
                order_unknown::date.eq(&doc.date),
                order_unknown::total.eq(&doc.sum),
                order_unknown::data.eq(&data),
                order_unknown::first_seen_at.eq(now),
                order_unknown::last_seen_at.eq(now),
            ))
            .on_conflict(order_unknown::onec_id)
            .do_update()
            .set((
                order_unknown::number.eq(&doc.number),
                order_unknown::date.eq(&doc.date),
                order_unknown::total.eq(&doc.sum),
                order_unknown::data.eq(&data),
                order_unknown::last_seen_at.eq(now),
                order_unknown::times.eq(order_unknown::times + 1),
            ))
            .execute(c)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/orders")
            .join(name)
    }

    fn all(name: &str) -> Result<Vec<OnecDoc>, ParseError> {
        let mut r = DocReader::open(&fixture(name))?;
        let mut v = Vec::new();
        while let Some(d) = r.next_doc()? {
            v.push(d);
        }
        Ok(v)
    }

    #[test]
    fn datetimes_of_1c_normalise() {
        assert_eq!(
            normalize_datetime("2014-12-12T9:51:39").as_deref(),
            Some("2014-12-12T09:51:39")
        );
        assert_eq!(
            normalize_datetime("2007-10-16 15:44:47").as_deref(),
            Some("2007-10-16T15:44:47")
        );
        assert_eq!(
            normalize_datetime("11.02.2021 18:45:21").as_deref(),
            Some("2021-02-11T18:45:21")
        );
        assert_eq!(
            normalize_datetime("2015-06-29").as_deref(),
            Some("2015-06-29T00:00:00")
        );
        assert_eq!(normalize_datetime("0001-01-01"), None);
    }

    #[test]
    fn ut11_flat_documents_with_bom_namespace_and_crlf() {
        let docs = all("ut11-2.07.xml").unwrap();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.number.as_deref(), Some("OB-000001"));
        assert_eq!(
            d.id.as_deref(),
            Some("91777ce0-81cc-11e4-a522-0050569c5934")
        );
        assert_eq!(d.req(&["Номер по 1С"]), Some("НФS-004512"));
        assert_eq!(d.req_bool(&["Проведен"]), Some(true));
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[0].id.as_deref(), Some("g1#c1"));
        assert_eq!(d.lines[1].id.as_deref(), Some("ORDER_DELIVERY"));
        assert_eq!(d.lines[1].kind.as_deref(), Some("Услуга"));
        assert_eq!(d.comment.as_deref(), Some("№ 4512 <сайт> & ко"));
    }

    #[test]
    fn bitrix_containers_of_3_1() {
        let docs = all("bitrix-3.1.xml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].number_1c.as_deref(), Some("L319"));
        assert_eq!(docs[0].lines[0].price.as_deref(), Some("1320"));
        assert_eq!(docs[1].req_bool(&["Отгружен"]), Some(true));
    }

    #[test]
    fn windows_1251_documents() {
        let docs = all("old-2.03-cp1251.xml").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].req(&["Статус заказа"]), Some("[F] Доставлен"));
        assert_eq!(docs[0].req(&["Метод оплаты"]), Some("Наличный расчет"));
    }

    #[test]
    fn old_attribute_style_documents() {
        let docs = all("old-attributes-cp1251.xml").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].number.as_deref(), Some("OB-000001"));
        assert_eq!(docs[0].number_1c.as_deref(), Some("ЗК-0042"));
        assert_eq!(docs[0].date_1c.as_deref(), Some("2008-03-28 10:11:12"));
        assert_eq!(docs[0].sum.as_deref(), Some("2700"));
        assert_eq!(docs[1].req_bool(&["Проведен"]), Some(true));
        assert_eq!(docs[1].req(&["Номер оплаты по 1С"]), Some("ПКО-7 & 8"));
        assert_eq!(docs[2].operation.as_deref(), Some("Отпуск товара"));
        assert_eq!(doc_kind(&docs[2]), DocKind::Shipment);
    }

    #[test]
    fn malformed_and_mislabelled_files_are_errors() {
        assert!(matches!(all("broken.xml"), Err(ParseError::Xml { .. })));
        let e = all("declared-utf8-is-cp1251.xml").unwrap_err();
        assert!(matches!(e, ParseError::Encoding(_)), "{e:?}");
        let e = all("declared-cp1251-is-utf8.xml").unwrap_err();
        assert!(matches!(e, ParseError::Encoding(_)), "{e:?}");
        assert!(matches!(
            all("not-cml.xml"),
            Err(ParseError::NotCommerceMl(_))
        ));
    }
}
