//! Package labels of shipped postings: fetched (synchronously, or through a label task), stored
//! as an order document, and linked to the order in the requisite `Этикетка Ozon` so 1C gets the
//! link at its next query.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::client::{CallError, TARGET};
use super::Ozon;
use crate::config::Config;
use crate::orders::model::Source;
use crate::orders::store as ostore;
use crate::relay::{enqueue, Enqueue, Handler, Message, NewMessage, Outcome, OutcomeKind};
use crate::store::schema::{order_documents, orders};
use crate::store::{now_ms, Conn};

pub const KIND_LABEL: &str = "ozon.label";
pub const KIND_LABEL_TASK: &str = "ozon.label_task";
pub const DOC_KIND: &str = "ozon_label";
/// The requisite 1C receives with the label link.
pub const REQUISITE: &str = "Этикетка Ozon";

/// A refused label call → the message's outcome: "The next postings aren't ready" (whatever
/// the 4xx status) is not a failure, only too early.
pub fn label_error_outcome(e: &CallError, retry: Duration) -> OutcomeKind {
    match e {
        CallError::Rejected { message, .. }
            if message.contains("aren't ready") || message.contains("are not ready") =>
        {
            OutcomeKind::Later {
                reason: format!("Ozon: {message}"),
                after: retry,
            }
        }
        _ => e.outcome(),
    }
}

/// The PDF in a label answer: raw bytes, or (as Ozon's docs draw it) JSON with base64
/// `file_content`.
pub fn pdf_bytes(body: &[u8]) -> Option<Vec<u8>> {
    if body.starts_with(b"%PDF") {
        return Some(body.to_vec());
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = v["file_content"]
        .as_str()
        .or_else(|| v["result"]["file_content"].as_str())?;
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    b.starts_with(b"%PDF").then_some(b)
}

fn link(cfg: &Config, id: i32, token: &str, name: &str) -> String {
    format!("{}/documents/{id}/{token}/{name}", cfg.public_base())
}

/// The label link of an order, when its label is stored.
fn stored_link(conn: &mut Conn, cfg: &Config, order_id: i32) -> QueryResult<Option<String>> {
    let row: Option<(i32, String, String)> = order_documents::table
        .filter(order_documents::order_id.eq(order_id))
        .filter(order_documents::kind.eq(DOC_KIND))
        .order(order_documents::id.desc())
        .select((
            order_documents::id,
            order_documents::token,
            order_documents::name,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(id, t, n)| link(cfg, id, &t, &n)))
}

/// When the label is stored already (a retry after a crash), make sure 1C gets its link.
/// Returns true when there was one.
pub fn ensure_linked(conn: &mut Conn, cfg: &Config, order_number: &str) -> anyhow::Result<bool> {
    let Some(order_id) = order_id(conn, order_number)? else {
        anyhow::bail!("no order {order_number}");
    };
    match stored_link(conn, cfg, order_id)? {
        Some(url) => {
            ostore::set_requisite(conn, order_number, REQUISITE, &url, Source::Ozon)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn order_id(conn: &mut Conn, number: &str) -> QueryResult<Option<i32>> {
    orders::table
        .filter(orders::number.eq(number))
        .select(orders::id)
        .first(conn)
        .optional()
}

/// Store a label PDF under `<data>/documents/<order id>/`, record it, and set the requisite.
/// Returns the link.
pub fn store_label(
    conn: &mut Conn,
    cfg: &Config,
    order_number: &str,
    posting: &str,
    pdf: &[u8],
) -> anyhow::Result<String> {
    let safe: String = posting
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    store_document(
        conn,
        cfg,
        &Document {
            order_number,
            kind: DOC_KIND,
            name: &format!("ozon-label-{safe}.pdf"),
            body: pdf,
            requisite: REQUISITE,
            source: Source::Ozon,
        },
    )
}

/// A PDF for an order (label, waybill) and the requisite that carries its link to 1C.
pub struct Document<'a> {
    pub order_number: &'a str,
    pub kind: &'a str,
    /// File name, safe characters only.
    pub name: &'a str,
    pub body: &'a [u8],
    pub requisite: &'a str,
    pub source: Source,
}

/// Store a document under `<data>/documents/<order id>/`, record it with an unguessable link,
/// and set the requisite. Returns the link.
pub fn store_document(conn: &mut Conn, cfg: &Config, d: &Document) -> anyhow::Result<String> {
    let Some(order_id) = order_id(conn, d.order_number)? else {
        anyhow::bail!("no order {}", d.order_number);
    };
    let name = d.name;
    let dir = cfg.documents_dir().join(order_id.to_string());
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, d.body)?;
    std::fs::rename(&tmp, dir.join(name))?;
    let rel = Path::new("documents")
        .join(order_id.to_string())
        .join(name)
        .to_string_lossy()
        .replace('\\', "/");
    let token = crate::exchange::random_token(32);
    let id: i32 = diesel::insert_into(order_documents::table)
        .values((
            order_documents::order_id.eq(order_id),
            order_documents::kind.eq(d.kind),
            order_documents::name.eq(name),
            order_documents::path.eq(&rel),
            order_documents::content_type.eq("application/pdf"),
            order_documents::bytes.eq(d.body.len() as i64),
            order_documents::created_at.eq(now_ms()),
            order_documents::token.eq(&token),
        ))
        .returning(order_documents::id)
        .get_result(conn)?;
    let url = link(cfg, id, &token, name);
    ostore::set_requisite(conn, d.order_number, d.requisite, &url, d.source)?;
    Ok(url)
}

/// A stored document for download: (path, content type, name) when id, token and name match.
pub fn document_for_download(
    conn: &mut Conn,
    data_dir: &Path,
    id: i32,
    token: &str,
    name: &str,
) -> QueryResult<Option<(std::path::PathBuf, String)>> {
    let row: Option<(String, String, String)> = order_documents::table
        .find(id)
        .select((
            order_documents::token,
            order_documents::name,
            order_documents::path,
        ))
        .first::<(String, String, String)>(conn)
        .optional()?;
    let Some((t, n, p)) = row else {
        return Ok(None);
    };
    let same = t.len() == token.len()
        && !t.is_empty()
        && t.bytes()
            .zip(token.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !same || n != name {
        return Ok(None);
    }
    let ct: String = order_documents::table
        .find(id)
        .select(order_documents::content_type)
        .first(conn)?;
    Ok(Some((data_dir.join(p), ct)))
}

struct LabelJob {
    posting: String,
    order_number: String,
}

fn job(m: &Message) -> Option<LabelJob> {
    Some(LabelJob {
        posting: m.payload["posting_number"].as_str()?.to_string(),
        order_number: m.payload["order_number"].as_str()?.to_string(),
    })
}

impl Ozon {
    fn label_retry(&self) -> Duration {
        Duration::from_secs(self.cfg.ozon.label_retry_secs.max(1))
    }

    async fn already_linked(&self, order_number: &str) -> anyhow::Result<bool> {
        let (pool, cfg, n) = (
            self.pool.clone(),
            self.cfg.clone(),
            order_number.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get()?;
            ensure_linked(&mut c, &cfg, &n)
        })
        .await?
    }

    async fn store_pdf(&self, j: &LabelJob, pdf: Vec<u8>) -> anyhow::Result<String> {
        let (pool, cfg) = (self.pool.clone(), self.cfg.clone());
        let (n, p) = (j.order_number.clone(), j.posting.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get()?;
            store_label(&mut c, &cfg, &n, &p, &pdf)
        })
        .await?
    }
}

/// `ozon.label`: the synchronous label (`/v2/posting/fbs/package-label`), or — with
/// `label_flow = "task"` — a label task whose id a follow-up `ozon.label_task` polls.
pub struct LabelHandler {
    pub ozon: Arc<Ozon>,
}

impl Handler for LabelHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_LABEL
    }
    fn batch(&self) -> usize {
        10
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let retry = self.ozon.label_retry();
            let task_flow = self.ozon.cfg.ozon.label_flow.trim() == "task";
            for m in batch {
                let Some(j) = job(&m) else {
                    out.push(Outcome::dead(m.id, None, "malformed label message"));
                    continue;
                };
                match self.ozon.already_linked(&j.order_number).await {
                    Ok(true) => {
                        out.push(Outcome::done(
                            m.id,
                            None,
                            Some("label stored before".into()),
                        ));
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        out.push(Outcome::retry(m.id, None, e.to_string()));
                        continue;
                    }
                }
                let body = json!({"posting_number": [j.posting]});
                if task_flow {
                    let (res, call_id) = self
                        .ozon
                        .client
                        .post_json("/v2/posting/fbs/package-label/create", &body, 1)
                        .await;
                    let o = match res {
                        Err(e) => Outcome::with_kind(m.id, call_id, label_error_outcome(&e, retry)),
                        Ok(v) => match task_id(&v) {
                            Some(id) => Outcome::done(
                                m.id,
                                call_id,
                                Some(json!({"task_id": id}).to_string()),
                            ),
                            None => Outcome::retry(m.id, call_id, "no label task in Ozon's answer"),
                        },
                    };
                    out.push(o);
                    continue;
                }
                let (res, call_id) = self
                    .ozon
                    .client
                    .post("/v2/posting/fbs/package-label", &body, 1)
                    .await;
                let o = match res {
                    Err(e) => Outcome::with_kind(m.id, call_id, label_error_outcome(&e, retry)),
                    Ok(r) => match pdf_bytes(&r.body) {
                        None => Outcome::retry(
                            m.id,
                            call_id,
                            format!("the label answer is not a PDF ({})", r.content_type),
                        ),
                        Some(pdf) => match self.ozon.store_pdf(&j, pdf).await {
                            Ok(url) => Outcome::done(m.id, call_id, Some(url)),
                            Err(e) => Outcome::retry(
                                m.id,
                                call_id,
                                format!("cannot store the label: {e}"),
                            ),
                        },
                    },
                };
                out.push(o);
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        record_label(conn, msg, outcome)?;
        let task = outcome
            .response
            .as_deref()
            .filter(|_| outcome.kind == OutcomeKind::Done)
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .and_then(|v| v["task_id"].as_i64());
        if let Some(task_id) = task {
            let mut payload = msg.payload.clone();
            payload["task_id"] = json!(task_id);
            let mut m = NewMessage::new(TARGET, KIND_LABEL_TASK, msg.key.clone(), payload);
            m.order_id = msg.order_id;
            enqueue(conn, &m, Enqueue::Once)?;
        }
        Ok(())
    }
}

fn task_id(v: &Value) -> Option<i64> {
    let tasks = v["result"]["tasks"].as_array();
    let pick = tasks.and_then(|t| {
        t.iter()
            .find(|x| x["task_type"].as_str() == Some("big_label"))
            .or_else(|| t.first())
    });
    pick.and_then(|t| t["task_id"].as_i64())
        .or_else(|| v["result"]["task_id"].as_i64())
}

/// Errors of the label messages go to the order timeline; the stored label is there already
/// (as the requisite change).
fn record_label(conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
    let Some(order_id) = msg.order_id else {
        return Ok(());
    };
    if let OutcomeKind::Dead { error } | OutcomeKind::Retry { error, .. } = &outcome.kind {
        ostore::add_event(
            conn,
            order_id,
            Source::Ozon,
            "ozon_label_error",
            &format!("the Ozon label of posting {} failed: {error}", msg.key),
            None,
        )?;
    }
    Ok(())
}

/// `ozon.label_task`: poll the label task until `completed`, then download its file.
pub struct LabelTaskHandler {
    pub ozon: Arc<Ozon>,
}

impl Handler for LabelTaskHandler {
    fn target(&self) -> &'static str {
        TARGET
    }
    fn kind(&self) -> &'static str {
        KIND_LABEL_TASK
    }
    fn batch(&self) -> usize {
        10
    }
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let retry = self.ozon.label_retry();
            for m in batch {
                let (Some(j), Some(task)) = (job(&m), m.payload["task_id"].as_i64()) else {
                    out.push(Outcome::dead(m.id, None, "malformed label task message"));
                    continue;
                };
                let (res, call_id) = self
                    .ozon
                    .client
                    .post_json(
                        "/v1/posting/fbs/package-label/get",
                        &json!({"task_id": task}),
                        1,
                    )
                    .await;
                let v = match res {
                    Err(e) => {
                        out.push(Outcome::with_kind(
                            m.id,
                            call_id,
                            label_error_outcome(&e, retry),
                        ));
                        continue;
                    }
                    Ok(v) => v,
                };
                let status = v["result"]["status"].as_str().unwrap_or("");
                let o = match status {
                    "completed" => {
                        let url = v["result"]["file_url"].as_str().unwrap_or("");
                        match self.ozon.client.download(url).await {
                            Err(e) => {
                                Outcome::with_kind(m.id, call_id, label_error_outcome(&e, retry))
                            }
                            Ok(b) if !b.starts_with(b"%PDF") => {
                                Outcome::retry(m.id, call_id, "the label file is not a PDF")
                            }
                            Ok(b) => match self.ozon.store_pdf(&j, b).await {
                                Ok(url) => Outcome::done(m.id, call_id, Some(url)),
                                Err(e) => Outcome::retry(
                                    m.id,
                                    call_id,
                                    format!("cannot store the label: {e}"),
                                ),
                            },
                        }
                    }
                    "error" => Outcome::retry(
                        m.id,
                        call_id,
                        format!(
                            "the label task failed: {}",
                            v["result"]["error"].as_str().unwrap_or("")
                        ),
                    ),
                    _ => Outcome::with_kind(
                        m.id,
                        call_id,
                        OutcomeKind::Later {
                            reason: format!("label task {task} is {status}"),
                            after: retry,
                        },
                    ),
                };
                out.push(o);
            }
            out
        })
    }

    fn record(&self, conn: &mut Conn, msg: &Message, outcome: &Outcome) -> QueryResult<()> {
        record_label(conn, msg, outcome)
    }
}

/// A stored document of an order as the dashboard lists it.
#[derive(Debug, Clone, Queryable)]
pub struct StoredDocument {
    pub id: i32,
    pub kind: String,
    pub name: String,
    pub content_type: String,
    pub bytes: i64,
    pub created_at: i64,
    pub token: String,
}

impl StoredDocument {
    /// The download path (`/documents/{id}/{token}/{name}`), relative to the server.
    pub fn path(&self) -> String {
        format!(
            "/documents/{}/{}/{}",
            self.id,
            self.token,
            percent_encoding::utf8_percent_encode(&self.name, percent_encoding::NON_ALPHANUMERIC)
        )
    }
}

/// The stored documents (labels, waybills) of an order, oldest first.
pub fn documents(conn: &mut Conn, order_id: i32) -> QueryResult<Vec<StoredDocument>> {
    order_documents::table
        .filter(order_documents::order_id.eq(order_id))
        .order(order_documents::id)
        .select((
            order_documents::id,
            order_documents::kind,
            order_documents::name,
            order_documents::content_type,
            order_documents::bytes,
            order_documents::created_at,
            order_documents::token,
        ))
        .load(conn)
}
