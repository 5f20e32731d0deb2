//! Reader-only throughput: `cargo run --release --example cml_bench -- FILE...`
//!
//! Reads every file with `CmlReader` (nothing is stored) and prints, per file, the items of each
//! kind, the encoding, and the speed in MB/s (10^6 bytes of the raw file per second).

use std::time::Instant;

use obmen::cml::{CmlReader, Item};

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: cml_bench FILE...");
        std::process::exit(2);
    }
    let mut failed = false;
    for file in files {
        let started = Instant::now();
        let mut reader = match CmlReader::open(std::path::Path::new(&file)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
                continue;
            }
        };
        let mut counts = [0u64; 8];
        let result = loop {
            match reader.next_item() {
                Ok(Some(item)) => {
                    let i = match item {
                        Item::Group(_) => 0,
                        Item::Property(_) => 1,
                        Item::PriceType(_) => 2,
                        Item::Warehouse(_) => 3,
                        Item::Good(_) => 4,
                        Item::Offer(_) => 5,
                        Item::Document(_) => 6,
                        _ => 7,
                    };
                    counts[i] += 1;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let bytes = reader.bytes_read();
        let mbs = bytes as f64 / 1e6 / secs.max(1e-9);
        let [groups, props, price_types, warehouses, goods, offers, docs, other] = counts;
        let status = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failed = true;
                format!("ERROR {e}")
            }
        };
        println!(
            "{file}: {status}; encoding {}, version {}; goods {goods}, offers {offers}, documents {docs}, groups {groups}, properties {props}, price types {price_types}, warehouses {warehouses}, other {other}; {bytes} bytes in {secs:.3} s = {mbs:.1} MB/s",
            reader.header().encoding,
            reader.header().schema_version.as_deref().unwrap_or("?"),
        );
    }
    if failed {
        std::process::exit(1);
    }
}
