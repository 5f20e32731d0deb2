//! `obmen serve --demo`: obmen wired to its built-in Ozon simulator, with a demo catalog imported
//! as if 1C had sent it and new Ozon postings arriving every minute, so a newcomer sees the
//! whole flow (catalog → Ozon, Ozon orders → 1C) without credentials.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::exchange::Exchange;

pub const DEMO_CLIENT_ID: &str = "123456";
pub const DEMO_API_KEY: &str = "demo-api-key";
pub const DEMO_WAREHOUSE: i64 = 22142605386000;
/// Goods in the demo catalog.
pub const DEMO_GOODS: u64 = 300;

pub struct Demo {
    pub ozon_sim: String,
}

/// Start the simulators and point the configuration at them (before the server is built).
pub async fn prepare(cfg: &mut Config) -> anyhow::Result<Demo> {
    let sim = crate::sim::ozon::start(
        crate::sim::ozon::SimConfig {
            client_id: DEMO_CLIENT_ID.into(),
            api_key: DEMO_API_KEY.into(),
            label_delay_secs: 15,
            auto_products: true,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .context("cannot start the Ozon simulator")?;
    let url = format!("http://{}", sim.addr);
    let o = &mut cfg.ozon;
    o.base_url = Some(url.clone());
    o.client_id = Some(DEMO_CLIENT_ID.into());
    o.api_key = Some(DEMO_API_KEY.into());
    if o.warehouse_id.is_none() && o.warehouses.is_empty() {
        o.warehouse_id = Some(DEMO_WAREHOUSE);
    }
    o.orders_poll = "*/10 * * * * *".into();
    if cfg.api.token.is_none() {
        cfg.api.token = Some("demo".into());
    }
    if cfg.exchange.password.is_none() {
        cfg.exchange.password = Some("demo".into());
    }
    // Keep the simulator alive for the life of the process.
    std::mem::forget(sim);
    Ok(Demo { ozon_sim: url })
}

impl Demo {
    /// Once obmen listens: tell the simulator where to push, import the demo catalog, and start
    /// the stream of demo postings.
    pub async fn start(&self, ex: Arc<Exchange>, obmen_url: String) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let sim = self.ozon_sim.clone();
        http.post(format!("{sim}/sim/config"))
            .json(&serde_json::json!({"push_url": format!("{obmen_url}/ozon/push")}))
            .send()
            .await
            .context("cannot configure the Ozon simulator")?;
        let dir: PathBuf = ex.cfg.data_dir.join("demo-catalog");
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            crate::gen::generate(
                &dir2,
                &crate::gen::GenOptions {
                    goods: DEMO_GOODS,
                    seed: 42,
                    images: true,
                },
            )?;
            Ok(())
        })
        .await??;
        // The catalog arrives as 1C would send it, so the exchange shows in the dashboard's
        // history like any other.
        let mut o =
            crate::emulator::Options::new(&format!("{obmen_url}/1c_exchange.php"), vec![dir]);
        o.user = ex.cfg.exchange.login.clone();
        o.password = ex.cfg.exchange.password.clone().unwrap_or_default();
        o.lang = ex.cfg.lang;
        o.verbose = false;
        let s = crate::emulator::run(&o).await;
        if !s.ok {
            anyhow::bail!("the demo catalog exchange failed: {}", s.errors.join("; "));
        }
        println!(
            "obmen demo: imported {DEMO_GOODS} demo goods; they go to the Ozon simulator at {sim}"
        );
        tokio::spawn(async move {
            // Orders name Ozon offer_ids: the links the relay stored at first export.
            let mut offers: Vec<String> = Vec::new();
            for _ in 0..60 {
                let pool = ex.pool.clone();
                offers = tokio::task::spawn_blocking(move || {
                    use crate::store::schema::ozon_offers;
                    use diesel::prelude::*;
                    let mut c = pool.get().ok()?;
                    ozon_offers::table
                        .select(ozon_offers::offer_id)
                        .order(ozon_offers::offer_id)
                        .limit(100)
                        .load::<String>(&mut c)
                        .ok()
                })
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
                if !offers.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut n: usize = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(if n == 0 { 20 } else { 60 })).await;
                if offers.is_empty() {
                    return;
                }
                let a = &offers[(n * 7) % offers.len()];
                let b = &offers[(n * 13 + 5) % offers.len()];
                let body = serde_json::json!({"products": [
                    {"offer_id": a, "quantity": 1},
                    {"offer_id": b, "quantity": 2},
                ]});
                if let Err(e) = http
                    .post(format!("{sim}/sim/postings"))
                    .json(&body)
                    .send()
                    .await
                {
                    tracing::warn!(error = %e, "demo: cannot create a posting");
                }
                n += 1;
            }
        });
        Ok(())
    }
}
