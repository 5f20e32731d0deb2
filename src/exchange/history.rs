//! The exchange history as people read it: one row per 1C session (files, bytes, counts, result),
//! the raw files kept for the last exchanges, and replaying an import from them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use diesel::dsl::{count_star, exists, max, not};
use diesel::prelude::*;
use serde::Serialize;

use super::jobs::JobRow;
use super::{xml_files_in, Exchange, RequestRow, SessionRow};
use crate::store::schema::{exchange_requests, exchange_sessions, import_jobs};
use crate::store::{now_ms, Conn, StoreError, StoreResult};

/// How a session ended, as a colour: green, amber (still importing), red (a failure answer or a
/// failed import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Warn,
    Bad,
}

impl Outcome {
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Bad => "bad",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub session: SessionRow,
    pub requests: i64,
    pub files: Vec<String>,
    pub bytes: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub documents: i64,
    pub duration_ms: i64,
    pub outcome: Outcome,
    /// The first failure: a failure answer's reason or a failed import's error.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// catalog or sale
    pub kind: Option<String>,
    /// ok, warn or bad
    pub outcome: Option<String>,
    /// Part of a session id, client address, login, user agent or uploaded file name.
    pub q: Option<String>,
    /// Keyset cursor: sessions older than (created_at, id).
    pub before: Option<(i64, String)>,
}

/// Parse a cursor `created_at:id`.
pub fn parse_cursor(s: &str) -> Option<(i64, String)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.to_string()))
}

pub fn cursor(s: &SessionRow) -> String {
    format!("{}:{}", s.created_at, s.id)
}

/// One page of sessions, newest first.
pub fn page(conn: &mut Conn, f: &Filter, limit: i64) -> StoreResult<Vec<Summary>> {
    use exchange_sessions::dsl as s;
    // `failed` is set when 1C is answered `failure` or an import fails (indexed with the time).
    let pending_job = exists(
        import_jobs::table
            .filter(import_jobs::session_id.eq(s::id))
            .filter(import_jobs::state.eq_any(["queued", "running"])),
    );
    // UT 11 opens a session with a lone checkauth before the real one: not an exchange. (A
    // session that sent files worked: checked first, it spares the lookup.)
    let worked = s::files.ne("").or(exists(
        exchange_requests::table
            .filter(exchange_requests::session_id.eq(s::id.nullable()))
            .filter(exchange_requests::mode.ne("checkauth")),
    ));
    let mut q = exchange_sessions::table.into_boxed();
    if f.outcome.as_deref() != Some("bad") {
        q = q.filter(s::failed.or(worked));
    }
    if let Some(k) = f.kind.as_deref().filter(|k| !k.is_empty()) {
        q = q.filter(s::exchange_type.eq(k.to_string()));
    }
    match f.outcome.as_deref() {
        Some("bad") => q = q.filter(s::failed.eq(true)),
        Some("warn") => q = q.filter(s::failed.eq(false)).filter(pending_job),
        Some("ok") => q = q.filter(s::failed.eq(false)).filter(not(pending_job)),
        _ => {}
    }
    if let Some(text) = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pat = crate::store::like_contains(text);
        q = q.filter(
            s::id
                .like(pat.clone())
                .escape('\\')
                .or(s::client_addr.like(pat.clone()).escape('\\'))
                .or(s::login.like(pat.clone()).escape('\\'))
                .or(s::user_agent
                    .like(pat.clone())
                    .escape('\\')
                    .assume_not_null())
                .or(s::files.like(pat).escape('\\')),
        );
    }
    if let Some((at, id)) = &f.before {
        q = q.filter(
            s::created_at
                .lt(*at)
                .or(s::created_at.eq(*at).and(s::id.lt(id.clone()))),
        );
    }
    let sessions: Vec<SessionRow> = q
        .order((s::created_at.desc(), s::id.desc()))
        .limit(limit)
        .select(SessionRow::as_select())
        .load(conn)?;
    summarize(conn, sessions)
}

/// Counts and outcome of these sessions (a few grouped queries, not one per session).
pub fn summarize(conn: &mut Conn, sessions: Vec<SessionRow>) -> StoreResult<Vec<Summary>> {
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    // exchange_requests.session_id is nullable.
    let req_ids: Vec<Option<&str>> = ids.iter().map(|i| Some(i.as_str())).collect();
    let mut reqs: HashMap<String, (i64, Option<i64>)> = HashMap::new();
    for (sid, n, last) in exchange_requests::table
        .filter(exchange_requests::session_id.eq_any(&req_ids))
        .group_by(exchange_requests::session_id)
        .select((
            exchange_requests::session_id,
            count_star(),
            max(exchange_requests::at + exchange_requests::duration_ms),
        ))
        .load::<(Option<String>, i64, Option<i64>)>(conn)?
    {
        reqs.insert(sid.unwrap_or_default(), (n, last));
    }
    let mut files: HashMap<String, (Vec<String>, i64)> = HashMap::new();
    for (sid, name, bytes) in exchange_requests::table
        .filter(exchange_requests::session_id.eq_any(&req_ids))
        .filter(exchange_requests::mode.eq("file"))
        .group_by((exchange_requests::session_id, exchange_requests::filename))
        .select((
            exchange_requests::session_id,
            exchange_requests::filename,
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "CAST(COALESCE(SUM(bytes), 0) AS BIGINT)",
            ),
        ))
        .load::<(Option<String>, Option<String>, i64)>(conn)?
    {
        let e = files.entry(sid.unwrap_or_default()).or_default();
        if let Some(n) = name {
            e.0.push(n);
        }
        e.1 += bytes;
    }
    let mut failures: HashMap<String, String> = HashMap::new();
    for (sid, mode, detail) in exchange_requests::table
        .filter(exchange_requests::session_id.eq_any(&req_ids))
        .filter(exchange_requests::answer.eq("failure"))
        .order(exchange_requests::id)
        .select((
            exchange_requests::session_id,
            exchange_requests::mode,
            exchange_requests::detail,
        ))
        .load::<(Option<String>, Option<String>, Option<String>)>(conn)?
    {
        failures.entry(sid.unwrap_or_default()).or_insert_with(|| {
            format!(
                "{}: {}",
                mode.unwrap_or_default(),
                detail.unwrap_or_default()
            )
        });
    }
    let mut jobs: HashMap<String, Vec<JobRow>> = HashMap::new();
    for j in import_jobs::table
        .filter(import_jobs::session_id.eq_any(&ids))
        .order(import_jobs::id)
        .select(JobRow::as_select())
        .load::<JobRow>(conn)?
    {
        jobs.entry(j.session_id.clone()).or_default().push(j);
    }
    let mut out = Vec::with_capacity(sessions.len());
    for s in sessions {
        let (requests, last) = reqs.get(&s.id).copied().unwrap_or((0, None));
        let (mut names, bytes) = files.remove(&s.id).unwrap_or_default();
        let js = jobs.remove(&s.id).unwrap_or_default();
        // What was imported, too: an archive's name says little.
        for j in &js {
            let name = j
                .filename
                .split(" (before init")
                .next()
                .unwrap_or(&j.filename);
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        let sum = |f: fn(&JobRow) -> i32| js.iter().map(|j| f(j) as i64).sum::<i64>();
        let failed_job = js.iter().find(|j| j.state == "failed");
        let pending = js
            .iter()
            .any(|j| j.state == "queued" || j.state == "running");
        let problem = failures.remove(&s.id).or_else(|| {
            failed_job.map(|j| {
                let pos = match (j.error_line, j.error_column) {
                    (Some(l), Some(c)) => format!(" ({l}:{c})"),
                    _ => String::new(),
                };
                format!(
                    "{}: {}{pos}",
                    j.filename,
                    j.error.clone().unwrap_or_default()
                )
            })
        });
        let outcome = if problem.is_some() {
            Outcome::Bad
        } else if pending {
            Outcome::Warn
        } else {
            Outcome::Ok
        };
        let end = js
            .iter()
            .filter_map(|j| j.finished_at)
            .chain(last)
            .max()
            .unwrap_or(s.created_at);
        out.push(Summary {
            requests,
            files: names,
            bytes,
            created: sum(|j| j.created),
            updated: sum(|j| j.updated),
            unchanged: sum(|j| j.unchanged),
            deleted: sum(|j| j.deleted),
            documents: sum(|j| j.documents),
            duration_ms: (end - s.created_at).max(0),
            outcome,
            problem,
            session: s,
        });
    }
    Ok(out)
}

/// Requests refused before any session existed (wrong password, no credentials), newest first.
pub fn refused(conn: &mut Conn, limit: i64) -> StoreResult<Vec<RequestRow>> {
    Ok(exchange_requests::table
        .filter(exchange_requests::session_id.is_null())
        .order(exchange_requests::at.desc())
        .limit(limit)
        .select(RequestRow::as_select())
        .load(conn)?)
}

pub struct Detail {
    pub summary: Summary,
    pub requests: Vec<RequestRow>,
    /// More requests exist than were loaded.
    pub more_requests: bool,
    pub jobs: Vec<JobRow>,
}

/// Requests shown on a session's page (a chunked upload of a big file can send thousands).
pub const DETAIL_REQUESTS: i64 = 2000;

pub fn detail(conn: &mut Conn, id: &str) -> StoreResult<Option<Detail>> {
    let s: Option<SessionRow> = exchange_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?;
    let Some(s) = s else { return Ok(None) };
    let mut requests: Vec<RequestRow> = exchange_requests::table
        .filter(exchange_requests::session_id.eq(id))
        .order(exchange_requests::id)
        .limit(DETAIL_REQUESTS + 1)
        .select(RequestRow::as_select())
        .load(conn)?;
    let more_requests = requests.len() as i64 > DETAIL_REQUESTS;
    requests.truncate(DETAIL_REQUESTS as usize);
    let jobs: Vec<JobRow> = import_jobs::table
        .filter(import_jobs::session_id.eq(id))
        .order(import_jobs::id)
        .select(JobRow::as_select())
        .load(conn)?;
    let summary = summarize(conn, vec![s])?.remove(0);
    Ok(Some(Detail {
        summary,
        requests,
        more_requests,
        jobs,
    }))
}

/// A file kept from an exchange: its path inside the session's upload folder.
#[derive(Debug, Clone, Serialize)]
pub struct KeptFile {
    pub path: String,
    pub bytes: i64,
}

/// Regular files under the session's upload folder (symlinks are never followed), sorted.
pub fn kept_files(ex: &Exchange, session_id: &str) -> Vec<KeptFile> {
    if !safe_session_id(session_id) {
        return Vec::new();
    }
    let root = ex.session_dir(session_id);
    let mut out = Vec::new();
    walk(&root, &root, &mut out, 0);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<KeptFile>, depth: usize) {
    if depth > 16 || out.len() > 100_000 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            walk(root, &p, out, depth + 1);
        } else if ft.is_file() {
            if let (Ok(rel), Ok(meta)) = (p.strip_prefix(root), e.metadata()) {
                out.push(KeptFile {
                    path: rel.to_string_lossy().replace('\\', "/"),
                    bytes: meta.len() as i64,
                });
            }
        }
    }
}

fn safe_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The file behind a kept path: only a path the listing itself shows is ever opened.
pub fn kept_file_path(ex: &Exchange, session_id: &str, rel: &str) -> Option<PathBuf> {
    kept_files(ex, session_id)
        .into_iter()
        .find(|f| f.path == rel)
        .map(|f| ex.session_dir(session_id).join(f.path))
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such exchange")]
    NotFound,
    #[error("only a catalog exchange can be replayed")]
    NotCatalog,
    #[error("no files of this exchange are kept any more")]
    NoFiles,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot copy the kept files: {0}")]
    Io(#[from] std::io::Error),
}

/// Re-run a catalog exchange's import from its kept files: a new session (client `dashboard`,
/// login = who asked) gets a copy of the files and import jobs in the usual order. Returns the
/// new session's id.
pub fn replay(ex: &Exchange, session_id: &str, by: &str) -> Result<String, ReplayError> {
    if !safe_session_id(session_id) {
        return Err(ReplayError::NotFound);
    }
    let src: Option<SessionRow> = {
        let mut c = ex.pool.get().map_err(StoreError::from)?;
        exchange_sessions::table
            .find(session_id)
            .select(SessionRow::as_select())
            .first(&mut c)
            .optional()
            .map_err(StoreError::from)?
    };
    let src = src.ok_or(ReplayError::NotFound)?;
    if src.exchange_type != "catalog" {
        return Err(ReplayError::NotCatalog);
    }
    let from = ex.session_dir(session_id);
    if xml_files_in(&from).is_empty() {
        return Err(ReplayError::NoFiles);
    }
    let id = super::random_token(32);
    let to = ex.session_dir(&id);
    let copied = copy_tree(&from, &to, 0);
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&to);
        return Err(e.into());
    }
    let now = now_ms();
    {
        let mut c = ex.pool.get().map_err(StoreError::from)?;
        diesel::insert_into(exchange_sessions::table)
            .values((
                exchange_sessions::id.eq(&id),
                exchange_sessions::sessid.eq(super::random_token(32)),
                exchange_sessions::exchange_type.eq("catalog"),
                exchange_sessions::client_addr.eq("dashboard"),
                exchange_sessions::user_agent.eq(format!("replay of {session_id}")),
                exchange_sessions::login.eq(by),
                exchange_sessions::created_at.eq(now),
                exchange_sessions::last_seen_at.eq(now),
                exchange_sessions::auth_timestamp.eq(now / 1000),
                exchange_sessions::version.eq(&src.version),
                exchange_sessions::cml_version.eq(&src.cml_version),
                exchange_sessions::zip.eq(false),
                exchange_sessions::file_limit.eq(src.file_limit),
                exchange_sessions::initialized.eq(true),
                exchange_sessions::closed.eq(true),
                exchange_sessions::files.eq(xml_files_in(&to)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
                    .join("\n")),
            ))
            .execute(&mut c)
            .map_err(StoreError::from)?;
    }
    for (name, path) in xml_files_in(&to) {
        ex.jobs.enqueue(&id, &name, &path, "replay")?;
    }
    Ok(id)
}

/// Copy regular files and folders (hard links where the file system allows); symlinks are skipped.
fn copy_tree(from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
    if depth > 16 {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest, depth + 1)?;
        } else if ft.is_file() && std::fs::hard_link(e.path(), &dest).is_err() {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// A session not closed (no `complete`, no later checkauth of its client) that made a request
/// this recently is taken for one still uploading: its folder is not pruned whatever its age.
pub const OPEN_SESSION_GRACE_MS: i64 = 3_600_000;

/// Keep the raw files of the newest `keep` exchanges that have any; remove older upload folders
/// (never one an unfinished import reads, nor one of a session still uploading: see
/// [`OPEN_SESSION_GRACE_MS`]). Returns the folders removed.
pub fn prune_kept(ex: &Exchange, keep: usize) -> StoreResult<usize> {
    let root = ex.cfg.uploads_dir();
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let dirs: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| safe_session_id(n))
        .collect();
    if dirs.len() <= keep {
        return Ok(0);
    }
    let mut c = ex.pool.get()?;
    let rows: Vec<(String, i64, bool, i64)> = exchange_sessions::table
        .filter(exchange_sessions::id.eq_any(&dirs))
        .select((
            exchange_sessions::id,
            exchange_sessions::created_at,
            exchange_sessions::closed,
            exchange_sessions::last_seen_at,
        ))
        .load(&mut c)?;
    let recent = now_ms() - OPEN_SESSION_GRACE_MS;
    // Without this, a session that opened before the newest `keep` (a long upload while other
    // exchanges came and went) lost its files mid-upload: "Файл … не найден на сервере" at its
    // import (seen under the load harness, 50 clients).
    let mut busy: std::collections::HashSet<String> = rows
        .iter()
        .filter(|(_, _, closed, seen)| !closed && *seen >= recent)
        .map(|(id, ..)| id.clone())
        .collect();
    let mut known: HashMap<String, i64> = rows
        .into_iter()
        .map(|(id, created, ..)| (id, created))
        .collect();
    busy.extend(
        import_jobs::table
            .filter(import_jobs::state.eq_any(["queued", "running"]))
            .select(import_jobs::session_id)
            .load::<String>(&mut c)?,
    );
    drop(c);
    // Newest first; a folder without a session row (left by a crash) counts as oldest.
    let mut order: Vec<(i64, String)> = dirs
        .into_iter()
        .map(|d| (known.remove(&d).unwrap_or(0), d))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let mut removed = 0;
    for (_, d) in order.into_iter().skip(keep) {
        if busy.contains(&d) {
            continue;
        }
        match std::fs::remove_dir_all(root.join(&d)) {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(session = %d, error = %e, "cannot remove kept exchange files"),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> (tempfile::TempDir, std::sync::Arc<Exchange>) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        cfg.exchange.password = Some("x".into());
        let (ex, _) = crate::server::build(cfg).unwrap();
        (dir, ex)
    }

    /// A catalog session's row and its upload folder with an `import.xml`; returns the folder.
    fn session(ex: &Exchange, id: &str, created: i64, seen: i64, closed: bool) -> PathBuf {
        let mut c = ex.pool.get().unwrap();
        diesel::insert_into(exchange_sessions::table)
            .values((
                exchange_sessions::id.eq(id),
                exchange_sessions::sessid.eq(id),
                exchange_sessions::exchange_type.eq("catalog"),
                exchange_sessions::client_addr.eq("1.2.3.4"),
                exchange_sessions::login.eq("1c"),
                exchange_sessions::created_at.eq(created),
                exchange_sessions::last_seen_at.eq(seen),
                exchange_sessions::auth_timestamp.eq(1),
                exchange_sessions::zip.eq(false),
                exchange_sessions::file_limit.eq(1),
                exchange_sessions::closed.eq(closed),
            ))
            .execute(&mut c)
            .unwrap();
        let d = ex.session_dir(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("import.xml"), "<x/>").unwrap();
        d
    }

    #[test]
    fn old_upload_folders_go_the_newest_and_busy_ones_stay() {
        let (_dir, ex) = exchange();
        for (i, id) in ["aaa1", "bbb2", "ccc3", "ddd4"].iter().enumerate() {
            let d = session(&ex, id, 1000 + i as i64, 1000 + i as i64, true);
            std::fs::create_dir_all(d.join("import_files")).unwrap();
            std::fs::write(d.join("import_files/a.jpg"), "jpg").unwrap();
        }
        let mut c = ex.pool.get().unwrap();
        // The oldest one's import is still queued: its files stay whatever their age.
        diesel::insert_into(import_jobs::table)
            .values((
                import_jobs::session_id.eq("aaa1"),
                import_jobs::filename.eq("import.xml"),
                import_jobs::path.eq("x"),
                import_jobs::trigger.eq("import"),
                import_jobs::state.eq("queued"),
                import_jobs::created_at.eq(1),
            ))
            .execute(&mut c)
            .unwrap();
        drop(c);
        assert_eq!(kept_files(&ex, "ddd4").len(), 2);
        assert_eq!(prune_kept(&ex, 2).unwrap(), 1);
        assert!(ex.session_dir("aaa1").exists(), "busy");
        assert!(!ex.session_dir("bbb2").exists(), "old");
        assert!(ex.session_dir("ccc3").exists() && ex.session_dir("ddd4").exists());
        assert!(kept_files(&ex, "bbb2").is_empty());
        assert!(kept_file_path(&ex, "ddd4", "import_files/a.jpg").is_some());
        assert!(kept_file_path(&ex, "ddd4", "../ccc3/import.xml").is_none());
        assert!(kept_file_path(&ex, "../ddd4", "import.xml").is_none());
    }

    /// Regression (load harness): a session still uploading kept its folder only while it was
    /// among the newest `keep`; once newer exchanges passed it, the prune removed its files
    /// mid-upload and its import failed.
    #[test]
    fn folders_of_sessions_still_uploading_stay_past_keep() {
        let (_dir, ex) = exchange();
        let now = now_ms();
        // (id, created, last seen, closed): the two oldest are open, one busy a minute ago and
        // one silent for longer than the grace; then two newer closed exchanges.
        session(&ex, "open1", now - 7_200_000, now - 60_000, false);
        let silent = now - OPEN_SESSION_GRACE_MS - 60_000;
        session(&ex, "gone2", now - 7_200_000, silent, false);
        session(&ex, "done3", now - 30_000, now - 20_000, true);
        session(&ex, "done4", now - 10_000, now - 5_000, true);
        assert_eq!(prune_kept(&ex, 1).unwrap(), 2);
        assert!(ex.session_dir("open1").exists(), "still uploading");
        assert!(!ex.session_dir("gone2").exists(), "abandoned");
        assert!(!ex.session_dir("done3").exists(), "old");
        assert!(ex.session_dir("done4").exists(), "newest");
    }
}
