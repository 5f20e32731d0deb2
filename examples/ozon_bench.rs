//! Ozon relay benchmark: N offers (default 100 000) imported offline, a full plan, then a 1 %
//! stock delta imported and planned (the local work measured), and the delta delivered to the
//! built-in Ozon simulator with Ozon's real limits (its stock calls counted). `--full-push`
//! also pushes every pair to the simulator and reports the time against Ozon's limit
//! (80 calls a minute × 100 pairs).
//!
//! `cargo run --release --example ozon_bench -- [GOODS] [--full-push]`

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use diesel::prelude::*;
use obmen::config::Config;
use obmen::connectors::ozon::{plan, Ozon};
use obmen::relay::Relay;
use obmen::store::schema::{offers, outbox, ozon_stock_state, stock};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // See examples/load.rs: the library's constructor may not be linked into an example.
    obmen::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let goods: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let full_push = args.iter().any(|a| a == "--full-push");
    let dir = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("obmen-ozon-bench"));
    let cat = dir.join(format!("catalog-{goods}"));
    if !cat.join("offers.xml").exists() {
        let t = Instant::now();
        obmen::gen::generate(
            &cat,
            &obmen::gen::GenOptions {
                goods,
                seed: 1,
                images: false,
            },
        )?;
        eprintln!(
            "generated {goods} goods in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    let db = dir.join(format!("ozon-bench-{goods}.db"));
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(dir.join(format!("ozon-bench-{goods}.db-wal")));
    let pool = obmen::store::open(db.to_str().unwrap(), 4)?;
    let mut c = pool.get()?;
    let t = Instant::now();
    for f in ["import.xml", "offers.xml"] {
        obmen::catalog::import_file(&mut c, &cat.join(f), None, &mut |_| {})?;
    }
    eprintln!("imported in {:.1}s", t.elapsed().as_secs_f64());

    let sim = obmen::sim::ozon::start(
        obmen::sim::ozon::SimConfig {
            auto_products: true,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await?;
    let mut cfg = Config::default();
    cfg.ozon.base_url = Some(format!("http://{}", sim.addr));
    cfg.ozon.client_id = Some("123456".into());
    cfg.ozon.api_key = Some("sim-api-key".into());
    cfg.ozon.warehouse_id = Some(22142605386000);
    let cfg = Arc::new(cfg);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = Instant::now();
    let full = plan::plan(&mut c, &cfg.ozon, false)?;
    let full_secs = t.elapsed().as_secs_f64();
    let pairs = full.stock_queued;

    let ozon = Ozon::new(cfg.clone(), pool.clone())?.expect("ozon on");
    let relay = Relay::new(
        pool.clone(),
        obmen::server::relay_policy(&cfg),
        ozon.handlers(),
    );
    let mut full_push_secs = None;
    if full_push {
        let t = Instant::now();
        drain_all(&relay, &pool).await?;
        full_push_secs = Some(t.elapsed().as_secs_f64());
    } else {
        // Take the first push as done: everything acknowledged.
        diesel::update(outbox::table)
            .set(outbox::state.eq("done"))
            .execute(&mut c)?;
        diesel::update(ozon_stock_state::table)
            .set(ozon_stock_state::acked.eq(ozon_stock_state::queued.nullable()))
            .execute(&mut c)?;
    }
    let calls_before = stock_calls(&sim).await?;

    // A 1 % delta: every 100th offer's first warehouse gets one more unit.
    let ids: Vec<String> = offers::table
        .filter(offers::deleted.eq(false))
        .select(offers::id)
        .order(offers::id)
        .load(&mut c)?;
    let changed: Vec<&String> = ids.iter().step_by(100).collect();
    let offers_xml = std::fs::read_to_string(cat.join("offers.xml"))?;
    let head = &offers_xml[..offers_xml.find("<Предложения>").unwrap()];
    let mut xml = head.replace(
        "СодержитТолькоИзменения=\"false\"",
        "СодержитТолькоИзменения=\"true\"",
    );
    xml.push_str("<Предложения>");
    for id in &changed {
        let rows: Vec<(String, String)> = stock::table
            .filter(stock::offer_id.eq(*id))
            .select((stock::warehouse_id, stock::quantity))
            .load(&mut c)?;
        let mut st = String::new();
        for (i, (w, q)) in rows.iter().enumerate() {
            let q: f64 = q.parse().unwrap_or(0.0);
            let q = if i == 0 { q.max(0.0) + 1.0 } else { q };
            st.push_str(&format!(
                "<Остаток><Склад><Ид>{w}</Ид><Количество>{q}</Количество></Склад></Остаток>"
            ));
        }
        xml.push_str(&format!(
            "<Предложение><Ид>{id}</Ид><Остатки>{st}</Остатки></Предложение>"
        ));
    }
    xml.push_str("</Предложения></ПакетПредложений></КоммерческаяИнформация>");
    let delta = dir.join("delta-offers.xml");
    std::fs::File::create(&delta)?.write_all(xml.as_bytes())?;
    let t = Instant::now();
    obmen::catalog::import_file(&mut c, &delta, None, &mut |_| {})?;
    let delta_import = t.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = Instant::now();
    let d = plan::plan(&mut c, &cfg.ozon, false)?;
    let delta_plan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drain_all(&relay, &pool).await?;
    let delta_push = t.elapsed().as_secs_f64();
    let calls = stock_calls(&sim).await? - calls_before;

    println!("| what | figure |");
    println!("|---|---|");
    println!("| offers | {} |", ids.len());
    println!(
        "| full plan (first run) | {pairs} stock pairs + {} prices queued in {full_secs:.2} s |",
        full.price_queued
    );
    if let Some(s) = full_push_secs {
        let min_secs = (pairs as f64 / 100.0).ceil() / 80.0 * 60.0;
        println!("| full push to the simulator (real limits) | {s:.0} s (Ozon's limit allows ≥ {min_secs:.0} s) |");
    }
    println!(
        "| 1 % delta import | {} offers in {delta_import:.2} s |",
        changed.len()
    );
    println!(
        "| 1 % delta plan (local work) | {} offers looked at, {} stock messages queued in {delta_plan:.3} s |",
        d.checked, d.stock_queued
    );
    println!(
        "| delta push | {calls} stock calls for {} pairs (ceil = {}) in {delta_push:.1} s |",
        d.stock_queued,
        d.stock_queued.div_ceil(100)
    );
    Ok(())
}

async fn stock_calls(sim: &obmen::sim::ozon::SimHandle) -> anyhow::Result<u64> {
    let v: serde_json::Value = reqwest::get(format!("http://{}/sim/stats", sim.addr))
        .await?
        .json()
        .await?;
    Ok(v["calls"]["/v2/products/stocks"].as_u64().unwrap_or(0))
}

/// Deliver until nothing is left to send (messages deferred by a cooldown included).
async fn drain_all(relay: &Arc<Relay>, pool: &obmen::store::DbPool) -> anyhow::Result<()> {
    loop {
        relay.drain().await?;
        let mut c = pool.get()?;
        let open: i64 = outbox::table
            .filter(outbox::state.eq_any(["pending", "failed", "in_flight"]))
            .count()
            .get_result(&mut c)?;
        if open == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
