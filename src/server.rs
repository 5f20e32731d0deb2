//! Start-up: configuration, storage, credentials, workers, schedules and the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use anyhow::Context;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Config;
use crate::exchange::{self, Exchange, JobRunner};
use crate::store;

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
        exchange::setup_credentials(&cfg, &mut c)?
    };
    let jobs = JobRunner::start(pool.clone(), cfg.lang)?;
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
    sched.start().await?;
    Ok(sched)
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listen = cfg.listen.clone();
    let login = cfg.exchange.login.clone();
    let (ex, generated) = tokio::task::spawn_blocking(move || build(cfg)).await??;
    if let Some(password) = generated {
        println!("obmen: generated the 1C exchange password (shown only this once, only its hash is stored):");
        println!("  login:    {login}");
        println!("  password: {password}");
    }
    let _sched = start_schedules(ex.clone()).await?;
    let ex2 = ex.clone();
    let server =
        HttpServer::new(move || App::new().configure(|c| crate::web::configure(c, ex2.clone())))
            .client_request_timeout(Duration::from_secs(600))
            .keep_alive(Duration::from_secs(75))
            .bind(&listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
    for addr in server.addrs() {
        tracing::info!(%addr, "obmen is listening; point 1C's \"Обмен с сайтом\" at http://{addr}/1c_exchange.php");
        println!(
            "obmen: listening on http://{addr} (1C exchange URL: http://{addr}/1c_exchange.php)"
        );
    }
    server.run().await?;
    Ok(())
}
