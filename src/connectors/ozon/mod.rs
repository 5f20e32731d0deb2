//! The Ozon connector: stocks, prices and product cards out through the relay; FBS postings in
//! as orders; shipping, labels and cancellation driven by 1C statuses; reconciliation.
//! Facts: ../shared/reference/ozon-seller-api.md. On when `[ozon] base_url` is set.

pub mod cards;
pub mod client;
pub mod labels;
pub mod orders;
pub mod plan;
pub mod push;
pub mod reconcile;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::relay::Handler;
use crate::store::DbPool;

pub use client::{CallError, Client, TARGET};

pub struct Ozon {
    pub cfg: Arc<Config>,
    pub pool: DbPool,
    pub client: Arc<Client>,
    /// One postings poll at a time (a slow round is not overtaken by the next tick).
    pub poll_lock: tokio::sync::Mutex<()>,
}

impl Ozon {
    /// The connector, or None when `[ozon] base_url` is not set.
    pub fn new(cfg: Arc<Config>, pool: DbPool) -> anyhow::Result<Option<Arc<Ozon>>> {
        if !cfg.ozon.enabled() {
            return Ok(None);
        }
        let client = Client::new(&cfg.ozon, pool.clone())?;
        Ok(Some(Arc::new(Ozon {
            cfg,
            pool,
            client,
            poll_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// The relay handlers of every Ozon message kind.
    pub fn handlers(self: &Arc<Self>) -> Vec<Arc<dyn Handler>> {
        let o = &self.cfg.ozon;
        vec![
            Arc::new(push::StockHandler::new(
                self.client.clone(),
                Duration::from_secs(o.stock_pair_cooldown_secs),
            )),
            Arc::new(push::PriceHandler::new(
                self.client.clone(),
                o.price_changes_per_hour,
            )),
            Arc::new(orders::FetchHandler { ozon: self.clone() }),
            Arc::new(orders::ShipHandler { ozon: self.clone() }),
            Arc::new(orders::CancelHandler { ozon: self.clone() }),
            Arc::new(labels::LabelHandler { ozon: self.clone() }),
            Arc::new(labels::LabelTaskHandler { ozon: self.clone() }),
            Arc::new(cards::CardHandler {
                client: self.client.clone(),
            }),
            Arc::new(cards::CardTaskHandler {
                client: self.client.clone(),
                cfg: self.cfg.ozon.clone(),
            }),
        ]
    }

    /// Queue what changed: stocks and prices, then cards (off the async workers).
    pub async fn plan(
        self: &Arc<Self>,
        full: bool,
    ) -> anyhow::Result<(plan::PlanStats, cards::CardStats)> {
        let me = self.clone();
        let (stats, cs) = tokio::task::spawn_blocking(
            move || -> anyhow::Result<(plan::PlanStats, cards::CardStats)> {
                let mut c = me.pool.get()?;
                let stats = plan::plan(&mut c, &me.cfg.ozon, full)?;
                let cs = cards::plan_cards(
                    &mut c,
                    &me.cfg.ozon,
                    &me.cfg.media_dir(),
                    &me.cfg.public_base(),
                )?;
                Ok((stats, cs))
            },
        )
        .await??;
        tracing::info!(
            full = stats.full,
            checked = stats.checked,
            stock_queued = stats.stock_queued,
            price_queued = stats.price_queued,
            ms = stats.millis,
            "ozon: planned stocks and prices"
        );
        if cs.mapped > 0 || cs.queued > 0 {
            tracing::info!(
                checked = cs.checked,
                mapped = cs.mapped,
                queued = cs.queued,
                unchanged = cs.unchanged,
                no_offer_id = cs.no_offer_id,
                ms = cs.millis,
                "ozon: planned cards"
            );
        }
        Ok((stats, cs))
    }

    /// Read back what Ozon has and store the differences as a report; returns the report id
    /// (a failed read leaves a `failed` report).
    pub async fn reconcile(self: &Arc<Self>) -> anyhow::Result<i32> {
        let pool = self.pool.clone();
        let id = tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
            let mut c = pool.get()?;
            Ok(reconcile::start_report(&mut c)?)
        })
        .await??;
        let theirs = reconcile::read_ozon(&self.client).await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
            let mut c = me.pool.get()?;
            let theirs = match theirs {
                Ok(t) => t,
                Err(e) => {
                    reconcile::fail_report(&mut c, id, &e.to_string())?;
                    anyhow::bail!("ozon: reconciliation failed: {e}");
                }
            };
            let ours = reconcile::load_ours(&mut c, &me.cfg.ozon)?;
            let items = reconcile::diff(&ours, &theirs);
            reconcile::finish_report(&mut c, id, ours.len(), &items)?;
            tracing::info!(
                report = id,
                checked = ours.len(),
                differences = items.len(),
                "ozon: reconciliation done"
            );
            Ok(id)
        })
        .await?
    }

    /// Without a configured warehouse, take the first active one Ozon lists and remember it.
    pub async fn ensure_warehouse(self: &Arc<Self>) {
        let o = &self.cfg.ozon;
        if o.warehouse_id.is_some() || !o.warehouses.is_empty() {
            return;
        }
        let (res, _) = self
            .client
            .post_json("/v1/warehouse/list", &serde_json::json!({}), 0)
            .await;
        let Ok(v) = res else {
            tracing::warn!("ozon: no warehouse configured and the warehouse list is unavailable");
            return;
        };
        let id = v["result"].as_array().and_then(|a| {
            a.iter()
                .find(|w| w["status"].as_str().is_none_or(|s| s == "created"))
                .and_then(|w| w["warehouse_id"].as_i64())
        });
        if let Some(id) = id {
            let pool = self.pool.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut c = pool.get().ok()?;
                crate::store::set_setting(&mut c, plan::DEFAULT_WAREHOUSE, &id.to_string()).ok()
            })
            .await;
            tracing::info!(warehouse_id = id, "ozon: using the first active warehouse");
        }
    }
}
