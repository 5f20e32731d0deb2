//! Start-up: configuration, storage, credentials, workers, schedules and the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use anyhow::Context;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Config;
use crate::connectors::ozon::Ozon;
use crate::connectors::shipping::{self, Carrier, Carriers};
use crate::exchange::{self, Exchange, JobRunner};
use crate::relay::{Policy, Relay};
use crate::store;

/// The relay and the connectors, shared by the web handlers and the schedules.
pub struct Services {
    pub relay: Arc<Relay>,
    pub ozon: Option<Arc<Ozon>>,
    /// Wakes the Ozon order dispatcher (after a sale import from 1C).
    pub dispatch_now: tokio::sync::Notify,
    /// The couriers configured (CDEK, DPD).
    pub carriers: Carriers,
    /// Wakes the courier dispatcher (after a sale import from 1C).
    pub ship_now: tokio::sync::Notify,
}

pub fn relay_policy(cfg: &Config) -> Policy {
    Policy {
        max_attempts: cfg.relay.max_attempts.max(1),
        backoff_base: Duration::from_millis(cfg.relay.backoff_ms.max(1)),
        backoff_max: Duration::from_secs(cfg.relay.backoff_max_secs.max(1)),
        lease: Duration::from_secs(cfg.relay.lease_secs.max(5)),
        wait_max: Duration::from_secs(cfg.relay.wait_secs.max(1)),
        ..Policy::default()
    }
}

/// Build the connectors and the relay (nothing runs yet).
pub fn build_services(ex: &Arc<Exchange>) -> anyhow::Result<Arc<Services>> {
    let ozon = Ozon::new(ex.cfg.clone(), ex.pool.clone())?;
    let mut handlers = Vec::new();
    if let Some(o) = &ozon {
        handlers.extend(o.handlers());
    }
    let (carriers, extra) = build_carriers(&ex.cfg, &ex.pool);
    handlers.extend(carriers.handlers(ex.cfg.clone(), ex.pool.clone()));
    handlers.extend(extra);
    handlers.extend(crate::alerts::handlers(&ex.pool));
    let relay = Relay::new(ex.pool.clone(), relay_policy(&ex.cfg), handlers);
    Ok(Arc::new(Services {
        relay,
        ozon,
        dispatch_now: tokio::sync::Notify::new(),
        carriers,
        ship_now: tokio::sync::Notify::new(),
    }))
}

/// The couriers whose `base_url` is set, and their handlers besides the shipment steps.
pub fn build_carriers(
    cfg: &Config,
    pool: &store::DbPool,
) -> (Carriers, Vec<Arc<dyn crate::relay::Handler>>) {
    let mut list: Vec<Arc<dyn Carrier>> = Vec::new();
    let mut extra: Vec<Arc<dyn crate::relay::Handler>> = Vec::new();
    if cfg.cdek.enabled() {
        let c = &cfg.cdek;
        let client = crate::connectors::cdek::CdekClient::new(
            c.base_url.as_deref().unwrap_or_default(),
            c.client_id.as_deref().unwrap_or_default(),
            c.client_secret.as_deref().unwrap_or_default(),
            Duration::from_secs(c.timeout_secs.max(1)),
            pool.clone(),
        );
        extra.push(Arc::new(
            crate::connectors::cdek::carrier::SubscribeHandler {
                client: client.clone(),
            },
        ));
        list.push(Arc::new(crate::connectors::cdek::carrier::Cdek {
            client,
            cfg: c.clone(),
        }));
    }
    if cfg.dpd.enabled() {
        let d = &cfg.dpd;
        list.push(Arc::new(crate::connectors::dpd::carrier::Dpd {
            client: crate::connectors::dpd::client::DpdClient::new(
                d.base_url.as_deref().unwrap_or_default(),
                d.client_number.as_deref().unwrap_or_default(),
                d.client_key.as_deref().unwrap_or_default(),
                Duration::from_secs(d.timeout_secs.max(1)),
                pool.clone(),
            ),
            cfg: d.clone(),
        }));
    }
    (Carriers { list }, extra)
}

/// Couriers: create / delete delivery orders as 1C's statuses ask (a loop woken after every
/// sale import), track them on their schedules, subscribe to CDEK's status webhook.
async fn start_carriers(
    ex: Arc<Exchange>,
    svc: Arc<Services>,
    sched: &JobScheduler,
) -> anyhow::Result<()> {
    if svc.carriers.is_empty() {
        return Ok(());
    }
    let (ex2, svc2) = (ex.clone(), svc.clone());
    tokio::spawn(async move {
        loop {
            let (pool, cfg, carriers) = (ex2.pool.clone(), ex2.cfg.clone(), svc2.carriers.clone());
            let res = tokio::task::spawn_blocking(move || {
                let mut c = pool.get()?;
                shipping::dispatch(&mut c, &cfg, &carriers)
            })
            .await;
            match res {
                Ok(Ok(s)) if s.created + s.deleted > 0 => svc2.relay.wake(),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "couriers: dispatch failed")
                }
                Err(e) => tracing::warn!(error = %e, "couriers: dispatch failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = svc2.ship_now.notified() => {}
            }
        }
    });
    for c in svc.carriers.list.clone() {
        let cron = match c.name() {
            "cdek" => ex.cfg.cdek.track_poll.clone(),
            _ => ex.cfg.dpd.track_poll.clone(),
        };
        let (pool, relay) = (ex.pool.clone(), svc.relay.clone());
        on_schedule(
            sched,
            &ex.pool,
            &cron,
            move || {
                let (pool, relay, c) = (pool.clone(), relay.clone(), c.clone());
                async move {
                    let n = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                        let mut conn = pool.get()?;
                        Ok(shipping::queue_tracking(&mut conn, c.as_ref())?)
                    })
                    .await??;
                    if n > 0 {
                        relay.wake();
                    }
                    Ok(())
                }
            },
            "couriers: tracking schedule failed",
        )
        .await?;
    }
    if ex.cfg.cdek.enabled() && ex.cfg.cdek.webhooks && ex.cfg.public_url.is_some() {
        let url = format!("{}/cdek/webhook", ex.cfg.public_base());
        let pool = ex.pool.clone();
        let relay = svc.relay.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = pool.get()?;
            crate::relay::store::enqueue(
                &mut c,
                &crate::relay::store::NewMessage::new(
                    "cdek",
                    crate::connectors::cdek::carrier::KIND_WEBHOOK,
                    url.clone(),
                    serde_json::json!({"url": url, "type": "ORDER_STATUS"}),
                ),
                crate::relay::store::Enqueue::Once,
            )?;
            Ok(())
        })
        .await??;
        relay.wake();
    }
    Ok(())
}

/// Start the relay loops, and the Ozon planner: after every successful catalog import (once
/// the import queue is idle) and on its schedule, queue what changed.
pub async fn start_services(
    ex: Arc<Exchange>,
    svc: Arc<Services>,
    sched: &JobScheduler,
) -> anyhow::Result<()> {
    svc.relay.spawn();
    start_carriers(ex.clone(), svc.clone(), sched).await?;
    // Alerts: every rule checked each minute; firings go out through the outbox.
    let (ex4, relay) = (ex.clone(), svc.relay.clone());
    on_schedule(
        sched,
        &ex.pool,
        "0 * * * * *",
        move || {
            let (ex, relay) = (ex4.clone(), relay.clone());
            async move {
                let n = check_alerts(&ex).await?;
                if n > 0 {
                    relay.wake();
                }
                Ok(())
            }
        },
        "alerts: scheduled check failed",
    )
    .await?;
    if let Some(ozon) = svc.ozon.clone() {
        let mut imported = ex.jobs.subscribe();
        let relay = svc.relay.clone();
        let ex2 = ex.clone();
        let o2 = ozon.clone();
        tokio::spawn(async move {
            o2.ensure_warehouse().await;
            loop {
                // Wait for the import queue to be idle so a multi-file exchange is planned once.
                loop {
                    let jobs = ex2.jobs.clone();
                    let idle = tokio::task::spawn_blocking(move || jobs.idle().unwrap_or(true))
                        .await
                        .unwrap_or(true);
                    if idle {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                match o2.plan(false).await {
                    Ok(_) => relay.wake(),
                    Err(e) => tracing::warn!(error = %e, "ozon: planning failed"),
                }
                if imported.changed().await.is_err() {
                    return;
                }
            }
        });
        let relay = svc.relay.clone();
        on_schedule(
            sched,
            &ex.pool,
            &ozon.cfg.ozon.push_schedule,
            {
                let (o, relay) = (ozon.clone(), relay.clone());
                move || {
                    let (o, relay) = (o.clone(), relay.clone());
                    async move {
                        o.plan(false).await?;
                        relay.wake();
                        Ok(())
                    }
                }
            },
            "ozon: scheduled planning failed",
        )
        .await?;
        // FBS postings: polled once at start and on `orders_poll`.
        let poll = {
            let (o, relay) = (ozon.clone(), relay.clone());
            move || {
                let (o, relay) = (o.clone(), relay.clone());
                async move {
                    o.poll_postings().await?;
                    relay.wake();
                    Ok(())
                }
            }
        };
        let first = poll.clone();
        tokio::spawn(async move {
            if let Err(e) = first().await {
                tracing::warn!(error = %format!("{e:#}"), "ozon: polling postings failed");
            }
        });
        on_schedule(
            sched,
            &ex.pool,
            &ozon.cfg.ozon.orders_poll,
            poll,
            "ozon: polling postings failed",
        )
        .await?;
        on_schedule(
            sched,
            &ex.pool,
            &ozon.cfg.ozon.reconcile,
            {
                let o = ozon.clone();
                move || {
                    let o = o.clone();
                    async move {
                        o.reconcile().await?;
                        Ok(())
                    }
                }
            },
            "ozon: scheduled reconciliation failed",
        )
        .await?;
        // Ship / cancel on Ozon what 1C's statuses call for (reads the database only).
        let (o6, relay, svc2) = (ozon.clone(), svc.relay.clone(), svc.clone());
        tokio::spawn(async move {
            loop {
                match o6.dispatch().await {
                    Ok(s) if s.ship + s.cancel > 0 => relay.wake(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "ozon: order dispatch failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(crate::connectors::ozon::orders::DISPATCH_EVERY) => {}
                    _ = svc2.dispatch_now.notified() => {}
                }
            }
        });
    }
    Ok(())
}

/// Check the alert rules once (off the async workers); returns the outbox messages queued.
pub async fn check_alerts(ex: &Arc<Exchange>) -> anyhow::Result<usize> {
    let (pool, lang) = (ex.pool.clone(), ex.cfg.lang);
    let n = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let mut c = pool.get()?;
        Ok(crate::alerts::evaluate(&mut c, lang)?)
    })
    .await??;
    Ok(n)
}

/// Run `f` on a cron schedule (with seconds), logging its failure as `what`.
///
/// On PostgreSQL, where several instances may share the database, each run happens once per
/// cluster: the instance that claims the slot ([`store::claim_schedule`]: nobody ran it in the
/// last half period) and gets the schedule's advisory lock (nobody is still running it) runs it;
/// the others skip it.
async fn on_schedule<F, Fut>(
    sched: &JobScheduler,
    pool: &store::DbPool,
    cron: &str,
    f: F,
    what: &'static str,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let f = Arc::new(f);
    let pool = pool.clone();
    let key: Arc<str> = Arc::from(format!("{what} [{cron}]"));
    let min_gap_ms = half_period_ms(cron);
    // SQLite has one instance: its runs need no claim.
    let clustered = pool.get()?.is_pg();
    sched
        .add(Job::new_async(cron, move |_id, _l| {
            let (f, pool, key) = (f.clone(), pool.clone(), key.clone());
            Box::pin(async move {
                let lock = if clustered {
                    match cluster_turn(&pool, &key, min_gap_ms).await {
                        Ok(Some(lock)) => Some(lock),
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "{what}");
                            return;
                        }
                    }
                } else {
                    None
                };
                if let Err(e) = f().await {
                    tracing::warn!(error = %format!("{e:#}"), "{what}");
                }
                if let Some(mut c) = lock {
                    let key = key.clone();
                    let _ = tokio::task::spawn_blocking(move || store::unlock_named(&mut c, &key))
                        .await;
                }
            })
        })?)
        .await?;
    Ok(())
}

/// This instance's turn at a schedule's run (PostgreSQL): the connection holding the
/// schedule's lock, or None when another instance has it or has just run it.
async fn cluster_turn(
    pool: &store::DbPool,
    key: &Arc<str>,
    min_gap_ms: i64,
) -> anyhow::Result<Option<store::PooledConn>> {
    let (pool, key) = (pool.clone(), key.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<store::PooledConn>> {
        let mut c = pool.get()?;
        if !store::try_lock_named(&mut c, &key)? {
            return Ok(None);
        }
        if !store::claim_schedule(&mut c, &key, min_gap_ms)? {
            store::unlock_named(&mut c, &key)?;
            return Ok(None);
        }
        Ok(Some(c))
    })
    .await?
}

/// Half the shortest gap between the next runs of a cron expression (with seconds), at least one
/// second: two instances' runs of one slot fall within it, two slots never do.
fn half_period_ms(cron: &str) -> i64 {
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(cron);
    let Ok(c) = parsed else {
        return 1000;
    };
    let times: Vec<_> = c.iter_after(chrono::Utc::now()).take(4).collect();
    let gap = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .min()
        .unwrap_or(2000);
    (gap / 2).max(1000)
}

/// Open the store and build the shared exchange state. Returns the generated exchange password
/// when this start created one (to be printed once).
pub fn build(cfg: Config) -> anyhow::Result<(Arc<Exchange>, Option<String>)> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data folder {}", cfg.data_dir.display()))?;
    std::fs::create_dir_all(cfg.uploads_dir())?;
    let pool = store::open(&cfg.database_url(), 16).context("cannot open the database")?;
    let (creds, generated) = {
        let mut c = pool.get()?;
        exchange::handler::reset_interrupted_unpacks(&mut c)?;
        let released = crate::relay::store::release_dead_leases(&mut c)?;
        if released > 0 {
            tracing::warn!(
                messages = released,
                "messages left in flight by the last run are due again"
            );
        }
        exchange::setup_credentials(&cfg, &mut c)?
    };
    let jobs = JobRunner::start_with_lease(
        pool.clone(),
        cfg.lang,
        Duration::from_secs(cfg.exchange.import_lease_secs.max(2)),
    )?;
    jobs.set_media_dir(cfg.media_dir());
    Ok((
        Arc::new(Exchange {
            cfg: Arc::new(cfg),
            pool,
            creds,
            jobs,
        }),
        generated,
    ))
}

/// Schedules: sessions that uploaded files but never called import get processed.
pub async fn start_schedules(ex: Arc<Exchange>) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new().await?;
    let quiet_ms = (ex.cfg.exchange.auto_import_after_secs as i64) * 1000;
    let ex2 = ex.clone();
    sched
        .add(Job::new_async("*/10 * * * * *", move |_id, _l| {
            let ex = ex2.clone();
            Box::pin(async move {
                let res = tokio::task::spawn_blocking(move || {
                    if let Err(e) = exchange::sale::process_orphans(&ex, quiet_ms, None) {
                        tracing::warn!(error = %e, "orders files sent without import: sweep failed");
                    }
                    exchange::queue_orphan_uploads(&ex, quiet_ms, None)
                })
                .await;
                if let Ok(Err(e)) = res {
                    tracing::warn!(error = %e, "auto-import sweep failed");
                }
            })
        })?)
        .await?;
    // Raw files of the latest exchanges are kept (download, replay); older ones go.
    let keep = ex.cfg.exchange.keep_exchanges.max(1);
    let ex3 = ex.clone();
    on_schedule(
        &sched,
        &ex.pool,
        "0 */5 * * * *",
        move || {
            let ex = ex3.clone();
            async move {
                let n =
                    tokio::task::spawn_blocking(move || exchange::history::prune_kept(&ex, keep))
                        .await??;
                if n > 0 {
                    tracing::info!(removed = n, "old exchange files removed");
                }
                Ok(())
            }
        },
        "removing old exchange files failed",
    )
    .await?;
    // SQLite: the WAL is cut back when it outgrows its limit (store::checkpoint_wal says why);
    // every 10 s, as it can grow by hundreds of MB a minute under load.
    if !ex.pool.get()?.is_pg() {
        let pool = ex.pool.clone();
        on_schedule(
            &sched,
            &ex.pool,
            "*/10 * * * * *",
            move || {
                let pool = pool.clone();
                async move {
                    let r = tokio::task::spawn_blocking(move || {
                        store::checkpoint_wal(&pool, store::WAL_LIMIT_BYTES as i64)
                    })
                    .await??;
                    if let Some(r) = r.filter(|r| r.busy) {
                        tracing::debug!(
                            wal_bytes = r.wal_bytes,
                            "WAL checkpoint: readers still busy, again in 10 s"
                        );
                    }
                    Ok(())
                }
            },
            "SQLite WAL checkpoint failed",
        )
        .await?;
    }
    // Free heap pages back to the system each minute (see release_free_memory).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    sched
        .add(Job::new_async("45 * * * * *", |_id, _l| {
            Box::pin(async {
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            })
        })?)
        .await?;
    start_retention(&ex, &sched).await?;
    sched.start().await?;
    Ok(sched)
}

/// Return the heap's free pages to the system (`malloc_trim`). Added on the guess that the RSS
/// growth under the load harness (a few MiB a minute with 2 malloc arenas, main.rs, while
/// SQLite's own share stayed near 20 MiB) was freed memory glibc kept; the 10-minute release run
/// with it showed no change (BENCHMARKS.md, load), so it is not the cause (that was SQLite's page
/// caches refilled from the heap, `store::sqlite_page_slab`). Kept as a cheap return of free pages
/// after bursts (the debug load smoke fell from its peak).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists, under its arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Journal retention (`[retention]`) and scheduled backups (`[backup]`).
async fn start_retention(ex: &Arc<Exchange>, sched: &JobScheduler) -> anyhow::Result<()> {
    let days = ex.cfg.retention.journal_days;
    if days > 0 {
        let pool = ex.pool.clone();
        on_schedule(
            sched,
            &ex.pool,
            &ex.cfg.retention.schedule,
            move || {
                let pool = pool.clone();
                async move {
                    let before = store::now_ms() - (days as i64) * 86_400_000;
                    let n = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                        let mut c = pool.get()?;
                        Ok(crate::backup::prune_journals(&mut c, before)?)
                    })
                    .await??;
                    tracing::info!(
                        exchange_requests = n.exchange_requests,
                        api_calls = n.api_calls,
                        "journal retention: old rows removed"
                    );
                    Ok(())
                }
            },
            "journal retention failed",
        )
        .await?;
    }
    if let Some(dir) = ex.cfg.backup.dir.clone() {
        let cfg = ex.cfg.clone();
        on_schedule(
            sched,
            &ex.pool,
            &ex.cfg.backup.schedule,
            move || {
                let (cfg, dir) = (cfg.clone(), dir.clone());
                async move {
                    let keep = cfg.backup.keep;
                    let (path, pruned) =
                        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                            let (path, _) = crate::backup::backup(&cfg, &dir)?;
                            Ok((path, crate::backup::prune(&dir, keep)?))
                        })
                        .await??;
                    tracing::info!(backup = %path.display(), removed = pruned, "backup written");
                    Ok(())
                }
            },
            "scheduled backup failed",
        )
        .await?;
    }
    Ok(())
}

/// The dashboard user `serve --demo` creates when there is none.
pub const DEMO_USER: &str = "admin";
pub const DEMO_USER_PASSWORD: &str = "demo-admin";

/// Threads of each HTTP worker's blocking pool (database work, file writes). Requests beyond
/// them wait for a thread rather than for one of the pool's database connections: actix's
/// default (512 shared by the workers) let the load harness's 50 1C clients hold ≈ 130 threads,
/// each with its own stack and allocator caches (BENCHMARKS.md, load).
const BLOCKING_THREADS_PER_WORKER: usize = 16;

pub async fn serve(mut cfg: Config, demo: bool) -> anyhow::Result<()> {
    // Checked first: a bad certificate or key refuses the start before anything is touched.
    let tls = crate::tls::server_config(&cfg.server)?;
    let demo = if demo {
        Some(crate::demo::prepare(&mut cfg).await?)
    } else {
        None
    };
    let listen = cfg.listen.clone();
    let login = cfg.exchange.login.clone();
    // SQLite: held until `serve` returns (the OS drops it if the process dies); `obmen restore`
    // refuses while it is taken. (Several instances share a PostgreSQL database, so no lock.)
    let _data_lock = match crate::backup::database(&cfg) {
        crate::backup::Db::Sqlite(_) => Some(crate::backup::lock_data_dir(&cfg.data_dir)?),
        crate::backup::Db::Postgres(_) => None,
    };
    let (ex, generated) = tokio::task::spawn_blocking(move || build(cfg)).await??;
    if let Some(password) = generated {
        println!("obmen: generated the 1C exchange password (shown only this once, only its hash is stored):");
        println!("  login:    {login}");
        println!("  password: {password}");
    }
    // The dashboard needs a user: the demo makes one; a real install is told how.
    let pool = ex.pool.clone();
    let is_demo = demo.is_some();
    let made = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<bool>> {
        let mut c = pool.get()?;
        if crate::users::count(&mut c)? > 0 {
            return Ok(None);
        }
        if is_demo {
            crate::users::upsert(
                &mut c,
                DEMO_USER,
                crate::users::Role::Admin,
                DEMO_USER_PASSWORD,
            )?;
            return Ok(Some(true));
        }
        Ok(Some(false))
    })
    .await??;
    match made {
        Some(true) => println!(
            "obmen demo: dashboard user \"{DEMO_USER}\" password \"{DEMO_USER_PASSWORD}\" (administrator)"
        ),
        Some(false) => println!(
            "obmen: no dashboard users yet; create an administrator: obmen user add NAME --role admin"
        ),
        None => {}
    }
    let sched = start_schedules(ex.clone()).await?;
    let svc = build_services(&ex)?;
    start_services(ex.clone(), svc.clone(), &sched).await?;
    let ex2 = ex.clone();
    let https = tls.is_some();
    let server = HttpServer::new(move || {
        // With TLS every answer (the dashboard's among them) tells browsers to stay on https.
        let hsts = actix_web::middleware::Condition::new(
            https,
            actix_web::middleware::DefaultHeaders::new().add((
                actix_web::http::header::STRICT_TRANSPORT_SECURITY,
                crate::tls::HSTS,
            )),
        );
        App::new()
            .wrap(hsts)
            .configure(|c| crate::web::configure(c, ex2.clone(), svc.clone()))
    })
    .client_request_timeout(Duration::from_secs(600))
    .keep_alive(Duration::from_secs(75))
    .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&listen, tls),
        None => server.bind(&listen),
    }
    .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if https { "https" } else { "http" };
    for addr in server.addrs() {
        tracing::info!(%addr, "obmen is listening; point 1C's \"Обмен с сайтом\" at {scheme}://{addr}/1c_exchange.php");
        println!(
            "obmen: listening on {scheme}://{addr} (1C exchange URL: {scheme}://{addr}/1c_exchange.php)"
        );
    }
    if let (Some(demo), Some(addr)) = (demo, server.addrs().first().copied()) {
        let url = format!("{scheme}://{}", addr).replace("0.0.0.0", "127.0.0.1");
        println!(
            "obmen demo: Ozon simulator at {}; API token \"{}\"; 1C login \"{}\" password \"{}\"",
            demo.ozon_sim,
            ex.cfg.api.token.as_deref().unwrap_or(""),
            ex.cfg.exchange.login,
            ex.cfg.exchange.password.as_deref().unwrap_or("")
        );
        let ex3 = ex.clone();
        tokio::spawn(async move {
            if let Err(e) = demo.start(ex3, url).await {
                tracing::error!(error = %format!("{e:#}"), "demo: cannot start");
            }
        });
    }
    server.run().await?;
    Ok(())
}
