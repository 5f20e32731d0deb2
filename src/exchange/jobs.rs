//! Background import jobs. The database is the queue: a job row is created once per
//! (session, filename) — a unique key, so repeated or concurrent `mode=import` calls can never
//! start a second import — and one worker thread per instance runs queued jobs in order. A job is
//! claimed by one conditional update and leased by the instance running it (renewed while it
//! runs); a job whose lease ran out (its instance died mid-import) is queued again — on SQLite,
//! where one process owns the file, every `running` job is requeued at start. Imports are
//! idempotent.

use crate::per_backend;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;

use crate::catalog::{self, ImportStats};
use crate::i18n::Lang;
use crate::store::schema::import_jobs::dsl as j;
use crate::store::{now_ms, DbPool, StoreError, StoreResult};

/// How long a running import job stays its instance's without a renewal (default of
/// `exchange.import_lease_secs`).
pub const JOB_LEASE: Duration = Duration::from_secs(60);

/// Queue again the jobs left `running` by an instance that died: those whose lease ran out, or
/// (`everything`, at the start of the one process of a SQLite database) all of them.
fn requeue_abandoned(conn: &mut crate::store::Conn, everything: bool) -> StoreResult<usize> {
    let running = j::import_jobs.filter(j::state.eq("running"));
    let n = if everything {
        diesel::update(running)
            .set(j::state.eq("queued"))
            .execute(conn)?
    } else {
        diesel::update(running.filter(j::lease_until.lt(now_ms()).or(j::lease_until.is_null())))
            .set(j::state.eq("queued"))
            .execute(conn)?
    };
    if n > 0 {
        tracing::warn!(jobs = n, "import jobs of a stopped instance queued again");
    }
    Ok(n)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => JobState::Queued,
        }
    }
}

/// What a waiter learns about a job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub id: i32,
    pub state: JobState,
    pub stats: ImportStats,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct JobRunner {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    lang: Lang,
    wake: Mutex<mpsc::Sender<()>>,
    progress: Mutex<HashMap<i32, ImportStats>>,
    finished: tokio::sync::Notify,
    /// Where the images of imported goods are kept (set by the server).
    media_dir: Mutex<Option<PathBuf>>,
    /// Count of imports finished with success: relays watch it to push what changed.
    imported: tokio::sync::watch::Sender<u64>,
    /// The lease of a running job (renewed every quarter of it).
    lease: Duration,
}

impl JobRunner {
    /// Start the worker thread. Jobs left `running` by a crash are queued again.
    pub fn start(pool: DbPool, lang: Lang) -> StoreResult<JobRunner> {
        Self::start_with_lease(pool, lang, JOB_LEASE)
    }

    /// [`JobRunner::start`] with the lease of a running job: on PostgreSQL, how long a job of
    /// an instance that died waits before another instance (or the restarted one) takes it.
    pub fn start_with_lease(pool: DbPool, lang: Lang, lease: Duration) -> StoreResult<JobRunner> {
        {
            let mut conn = pool.get()?;
            let everything = !conn.is_pg();
            requeue_abandoned(&mut conn, everything)?;
        }
        let (tx, rx) = mpsc::channel::<()>();
        let runner = JobRunner {
            inner: Arc::new(Inner {
                pool,
                lang,
                wake: Mutex::new(tx),
                progress: Mutex::new(HashMap::new()),
                finished: tokio::sync::Notify::new(),
                media_dir: Mutex::new(None),
                imported: tokio::sync::watch::channel(0).0,
                lease,
            }),
        };
        let worker = runner.clone();
        std::thread::Builder::new()
            .name("obmen-import".into())
            .spawn(move || worker.run(rx))
            .expect("spawn import worker");
        runner.wake();
        Ok(runner)
    }

    pub fn wake(&self) {
        if let Ok(tx) = self.inner.wake.lock() {
            let _ = tx.send(());
        }
    }

    /// Create the job for (session, filename) unless it exists; returns its id either way.
    pub fn enqueue(
        &self,
        session_id: &str,
        filename: &str,
        path: &Path,
        trigger: &str,
    ) -> StoreResult<i32> {
        let mut conn = self.inner.pool.get()?;
        let bytes = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
        per_backend!(&mut conn, |c| {
            diesel::insert_into(j::import_jobs)
                .values((
                    j::session_id.eq(session_id),
                    j::filename.eq(filename),
                    j::path.eq(path.to_string_lossy().as_ref()),
                    j::trigger.eq(trigger),
                    j::state.eq("queued"),
                    j::created_at.eq(now_ms()),
                    j::bytes.eq(bytes),
                ))
                .on_conflict_do_nothing()
                .execute(c)
        })?;
        let id = j::import_jobs
            .filter(j::session_id.eq(session_id).and(j::filename.eq(filename)))
            .select(j::id)
            .first::<i32>(&mut conn)?;
        drop(conn);
        self.wake();
        Ok(id)
    }

    /// Run a job in the calling thread (the offline `obmen import`); returns its final status.
    pub fn run_inline(
        &self,
        session_id: &str,
        filename: &str,
        path: &Path,
        trigger: &str,
    ) -> StoreResult<JobStatus> {
        let mut conn = self.inner.pool.get()?;
        let bytes = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
        let now = now_ms();
        diesel::insert_into(j::import_jobs)
            .values((
                j::session_id.eq(session_id),
                j::filename.eq(filename),
                j::path.eq(path.to_string_lossy().as_ref()),
                j::trigger.eq(trigger),
                j::state.eq("running"),
                j::created_at.eq(now),
                j::started_at.eq(now),
                j::bytes.eq(bytes),
            ))
            .execute(&mut conn)?;
        let id = j::import_jobs
            .filter(j::session_id.eq(session_id).and(j::filename.eq(filename)))
            .select(j::id)
            .first::<i32>(&mut conn)?;
        drop(conn);
        self.run_job(id, path);
        self.status(id)
    }

    /// Keep the images of imported goods in this folder after each successful import.
    pub fn set_media_dir(&self, dir: PathBuf) {
        if let Ok(mut m) = self.inner.media_dir.lock() {
            *m = Some(dir);
        }
    }

    /// A runner without a worker thread (for the offline import).
    pub fn inline(pool: DbPool, lang: Lang) -> JobRunner {
        let (tx, _rx) = mpsc::channel::<()>();
        JobRunner {
            inner: Arc::new(Inner {
                pool,
                lang,
                wake: Mutex::new(tx),
                progress: Mutex::new(HashMap::new()),
                finished: tokio::sync::Notify::new(),
                media_dir: Mutex::new(None),
                imported: tokio::sync::watch::channel(0).0,
                lease: JOB_LEASE,
            }),
        }
    }

    /// The job of (session, filename), if any.
    pub fn find(&self, session_id: &str, filename: &str) -> StoreResult<Option<i32>> {
        let mut conn = self.inner.pool.get()?;
        Ok(j::import_jobs
            .filter(j::session_id.eq(session_id).and(j::filename.eq(filename)))
            .select(j::id)
            .first::<i32>(&mut conn)
            .optional()?)
    }

    pub fn status(&self, id: i32) -> StoreResult<JobStatus> {
        let mut conn = self.inner.pool.get()?;
        let row = j::import_jobs
            .filter(j::id.eq(id))
            .select(JobRow::as_select())
            .first::<JobRow>(&mut conn)?;
        let state = JobState::parse(&row.state);
        let stats = match state {
            JobState::Running | JobState::Queued => self
                .inner
                .progress
                .lock()
                .ok()
                .and_then(|m| m.get(&id).cloned())
                .unwrap_or_else(|| row.stats()),
            _ => row.stats(),
        };
        Ok(JobStatus {
            id,
            state,
            stats,
            error: row.error,
        })
    }

    /// Wait up to `timeout` for the job to finish; returns its status then.
    pub async fn wait(&self, id: i32, timeout: Duration) -> StoreResult<JobStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.finished.notified();
            let st = self.status(id)?;
            if matches!(st.state, JobState::Done | JobState::Failed) {
                return Ok(st);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(st);
            }
            let step = (deadline - now).min(Duration::from_millis(500));
            let _ = tokio::time::timeout(step, notified).await;
        }
    }

    /// True when no job is queued or running.
    pub fn idle(&self) -> StoreResult<bool> {
        let mut conn = self.inner.pool.get()?;
        let n: i64 = j::import_jobs
            .filter(j::state.eq_any(["queued", "running"]))
            .count()
            .get_result(&mut conn)?;
        Ok(n == 0)
    }

    fn run(&self, rx: mpsc::Receiver<()>) {
        loop {
            match self.next_job() {
                Ok(Some((id, path))) => self.run_job(id, &path),
                Ok(None) => match rx.recv_timeout(Duration::from_secs(2)) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                Err(e) => {
                    tracing::error!(error = %e, "import queue unavailable");
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }

    fn next_job(&self) -> StoreResult<Option<(i32, PathBuf)>> {
        let mut conn = self.inner.pool.get()?;
        requeue_abandoned(&mut conn, false)?;
        loop {
            let next = j::import_jobs
                .filter(j::state.eq("queued"))
                .order(j::id)
                .select((j::id, j::path))
                .first::<(i32, String)>(&mut conn)
                .optional()?;
            let Some((id, path)) = next else {
                return Ok(None);
            };
            // Another instance may take the same job at the same moment: the conditional
            // update lets exactly one of them have it.
            let now = now_ms();
            let won = diesel::update(
                j::import_jobs
                    .filter(j::id.eq(id))
                    .filter(j::state.eq("queued")),
            )
            .set((
                j::state.eq("running"),
                j::started_at.eq(now),
                j::owner.eq(crate::store::instance_id()),
                j::lease_until.eq(now + self.inner.lease.as_millis() as i64),
            ))
            .execute(&mut conn)?;
            if won == 1 {
                return Ok(Some((id, PathBuf::from(path))));
            }
        }
    }

    fn run_job(&self, id: i32, path: &Path) {
        // Renew the lease while the import runs, so no other instance takes the job over.
        let (stop, stopped) = mpsc::channel::<()>();
        let pool = self.inner.pool.clone();
        let lease = self.inner.lease;
        let heartbeat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 4) {
                if let Ok(mut c) = pool.get() {
                    let _ = diesel::update(
                        j::import_jobs
                            .filter(j::id.eq(id))
                            .filter(j::owner.eq(crate::store::instance_id())),
                    )
                    .set(j::lease_until.eq(now_ms() + lease.as_millis() as i64))
                    .execute(&mut c);
                }
            }
        });
        self.run_job_leased(id, path);
        drop(stop);
        let _ = heartbeat.join();
    }

    fn run_job_leased(&self, id: i32, path: &Path) {
        let started = std::time::Instant::now();
        let started_ms = now_ms();
        let result = self
            .inner
            .pool
            .get()
            .map_err(StoreError::from)
            .map(|mut conn| {
                let inner = self.inner.clone();
                let mut report = move |st: &ImportStats| {
                    if let Ok(mut m) = inner.progress.lock() {
                        m.insert(id, st.clone());
                    }
                };
                catalog::import_file(&mut conn, path, Some(id as i64), &mut report)
            });
        let media = self.inner.media_dir.lock().ok().and_then(|m| m.clone());
        if let (Some(media), Ok(Ok(_))) = (media, &result) {
            let synced = self
                .inner
                .pool
                .get()
                .map_err(StoreError::from)
                .and_then(|mut c| {
                    Ok(catalog::media::sync_images(
                        &mut c, path, &media, started_ms,
                    )?)
                });
            match synced {
                Ok((stored, missing)) => tracing::debug!(job = id, stored, missing, "images kept"),
                Err(e) => tracing::warn!(job = id, error = %e, "cannot keep the images"),
            }
        }
        let (state, stats, error, pos) = match result {
            Ok(Ok(stats)) => ("done", stats, None, None),
            Ok(Err(e)) => {
                let pos = e.position();
                let stats = self
                    .inner
                    .progress
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&id).cloned())
                    .unwrap_or_default();
                ("failed", stats, Some(e.describe(self.inner.lang)), pos)
            }
            Err(e) => ("failed", ImportStats::default(), Some(e.to_string()), None),
        };
        crate::metrics::import_finished(
            state,
            if state == "done" {
                stats.bytes.max(stats.bytes_done)
            } else {
                stats.bytes_done
            },
            stats.goods,
            stats.offers,
            stats.documents,
            started.elapsed().as_secs_f64(),
        );
        tracing::info!(
            job = id,
            file = %path.display(),
            state,
            goods = stats.goods,
            offers = stats.offers,
            seconds = started.elapsed().as_secs_f64(),
            error = error.as_deref().unwrap_or(""),
            "import finished"
        );
        let saved = self
            .inner
            .pool
            .get()
            .map_err(StoreError::from)
            .and_then(|mut conn| {
                diesel::update(j::import_jobs.filter(j::id.eq(id)))
                    .set((
                        j::state.eq(state),
                        j::finished_at.eq(now_ms()),
                        j::kind.eq(stats.kind.as_str()),
                        j::goods_total.eq(stats.goods_total as i64),
                        j::offers_total.eq(stats.offers_total as i64),
                        j::groups.eq(stats.groups as i32),
                        j::properties.eq(stats.properties as i32),
                        j::price_types.eq(stats.price_types as i32),
                        j::warehouses.eq(stats.warehouses as i32),
                        j::goods.eq(stats.goods as i32),
                        j::offers.eq(stats.offers as i32),
                        j::documents.eq(stats.documents as i32),
                        j::created.eq(stats.created as i32),
                        j::updated.eq(stats.updated as i32),
                        j::unchanged.eq(stats.unchanged as i32),
                        j::deleted.eq(stats.deleted as i32),
                        j::only_changes.eq(stats.only_changes),
                        j::error.eq(&error),
                        j::error_line.eq(pos.map(|p| p.0 as i64)),
                        j::error_column.eq(pos.map(|p| p.1 as i64)),
                    ))
                    .execute(&mut conn)?;
                if state == "failed" {
                    use crate::store::schema::exchange_sessions as s;
                    diesel::update(s::table.filter(
                        s::id.eq_any(j::import_jobs.filter(j::id.eq(id)).select(j::session_id)),
                    ))
                    .set(s::failed.eq(true))
                    .execute(&mut conn)?;
                }
                Ok::<_, StoreError>(())
            });
        if let Err(e) = saved {
            tracing::error!(job = id, error = %e, "cannot record the import result");
        }
        if let Ok(mut m) = self.inner.progress.lock() {
            m.remove(&id);
        }
        if state == "done" {
            self.inner.imported.send_modify(|n| *n += 1);
        }
        self.inner.finished.notify_waiters();
    }

    /// Watch successful imports (the value counts them).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.imported.subscribe()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = crate::store::schema::import_jobs)]
pub struct JobRow {
    pub id: i32,
    pub session_id: String,
    pub filename: String,
    pub path: String,
    pub trigger: String,
    pub state: String,
    pub kind: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub bytes: i64,
    pub goods_total: i64,
    pub offers_total: i64,
    pub groups: i32,
    pub properties: i32,
    pub price_types: i32,
    pub warehouses: i32,
    pub goods: i32,
    pub offers: i32,
    pub documents: i32,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub deleted: i32,
    pub only_changes: Option<bool>,
    pub error: Option<String>,
    pub error_line: Option<i64>,
    pub error_column: Option<i64>,
}

impl JobRow {
    pub fn stats(&self) -> ImportStats {
        ImportStats {
            bytes: self.bytes as u64,
            goods_total: self.goods_total as u64,
            offers_total: self.offers_total as u64,
            groups: self.groups as u64,
            properties: self.properties as u64,
            price_types: self.price_types as u64,
            warehouses: self.warehouses as u64,
            goods: self.goods as u64,
            offers: self.offers as u64,
            documents: self.documents as u64,
            created: self.created as u64,
            updated: self.updated as u64,
            unchanged: self.unchanged as u64,
            deleted: self.deleted as u64,
            only_changes: self.only_changes,
            ..Default::default()
        }
    }
}
