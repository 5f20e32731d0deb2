//! The fuzz targets' checks (fuzz/checks/) run in the normal test suite on every input kept in
//! fuzz/regressions/<target>/ (inputs that once crashed a target, each named after the bug) and
//! on the seed corpus fuzz/corpus/<target>/. A regression makes the same check panic again.

#[path = "../fuzz/checks/cml_reader.rs"]
mod cml_reader;
#[path = "../fuzz/checks/orders_reader.rs"]
mod orders_reader;
#[path = "../fuzz/checks/query.rs"]
mod query;
#[path = "../fuzz/checks/zip.rs"]
mod zipx;

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `check` on every regression input and seed of `target`; returns how many ran.
fn run_all(target: &str, check: fn(&[u8])) -> usize {
    let mut n = 0;
    for kind in ["regressions", "corpus"] {
        for p in inputs(kind, target) {
            let data = std::fs::read(&p).expect("read input");
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails its check", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn cml_reader_inputs() {
    assert!(run_all("cml_reader", cml_reader::run) > 0);
}

#[test]
fn orders_reader_inputs() {
    assert!(run_all("orders_reader", orders_reader::run) > 0);
}

#[test]
fn zip_inputs() {
    assert!(run_all("zip", zipx::run) > 0);
}

#[test]
fn query_inputs() {
    assert!(run_all("query", query::run) > 0);
}
