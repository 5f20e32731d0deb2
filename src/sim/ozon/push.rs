//! Push notifications (§8): POSTed to `push_url` in the background, each retried with growing delay.

use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::Sim;

/// Delays before the retries of one push.
const RETRY_DELAYS_MS: [u64; 5] = [200, 500, 1000, 2000, 4000];

/// Delivers queued pushes until the simulator is dropped.
pub async fn worker(mut rx: mpsc::UnboundedReceiver<Value>, sim: Weak<Sim>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("sim ozon: push client: {e}");
            return;
        }
    };
    while let Some(msg) = rx.recv().await {
        let Some(strong) = sim.upgrade() else {
            return;
        };
        let Some(url) = strong.lock().cfg.push_url.clone() else {
            continue;
        };
        drop(strong);
        let client = client.clone();
        let sim = sim.clone();
        tokio::spawn(async move {
            let mut attempt = 0;
            loop {
                let sent = client.post(&url).json(&msg).send().await;
                if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                    if let Some(s) = sim.upgrade() {
                        s.lock().stats.pushes_sent += 1;
                    }
                    return;
                }
                if attempt >= RETRY_DELAYS_MS.len() {
                    tracing::warn!("sim ozon: push to {url} dropped after retries");
                    if let Some(s) = sim.upgrade() {
                        s.lock().stats.pushes_failed += 1;
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(RETRY_DELAYS_MS[attempt])).await;
                attempt += 1;
            }
        });
    }
}
