//! End to end: `obmen emulate-1c` (the binary) against `obmen serve` (the binary) with a
//! generated catalog and the real-world corpus; the summary and per-offer API answers must match
//! the files (`expected.json` from `obmen gen-catalog`).
//!
//! The corpus test is skipped when the corpus is absent, unless `OBMEN_REQUIRE_CORPUS=1`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

async fn check_against_expected(srv: &Server, exp: &serde_json::Value) {
    let s = srv.summary().await;
    for k in [
        "goods",
        "offers",
        "groups",
        "properties",
        "price_types",
        "warehouses",
        "deleted_goods",
    ] {
        assert_eq!(s[k], exp[k], "summary {k}: {s}");
    }
    let want: f64 = exp["stock_total"].as_str().unwrap().parse().unwrap();
    let got = s["stock_total"]
        .as_f64()
        .or_else(|| s["stock_total"].as_str().and_then(|x| x.parse().ok()))
        .unwrap();
    assert!((got - want).abs() < 1e-6, "stock_total {got} != {want}");
    for o in exp["sample_offers"].as_array().unwrap() {
        let id = o["id"].as_str().unwrap();
        let enc = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
        let (st, v) = srv.api(&format!("/api/v1/offers/{enc}")).await;
        assert_eq!(st, 200, "{id}: {v}");
        assert_eq!(v["good_id"], o["good_id"]);
        let num = |x: &serde_json::Value| -> f64 {
            x.as_f64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(f64::NAN)
        };
        assert_eq!(num(&v["quantity"]), num(&o["quantity"]), "{id}: {v}");
        for p in o["prices"].as_array().unwrap() {
            let got = v["prices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["price_type_id"] == p["price_type_id"])
                .unwrap_or_else(|| panic!("{id}: no price {p} in {v}"));
            assert_eq!(num(&got["value"]), num(&p["value"]), "{id}");
            assert_eq!(got["currency"], p["currency"]);
        }
        let stock = v["stock"].as_array().unwrap();
        assert_eq!(
            stock.len(),
            o["stock"].as_array().unwrap().len(),
            "{id}: {v}"
        );
        for w in o["stock"].as_array().unwrap() {
            let got = stock
                .iter()
                .find(|x| x["warehouse_id"] == w["warehouse_id"])
                .unwrap_or_else(|| panic!("{id}: no stock {w} in {v}"));
            assert_eq!(num(&got["quantity"]), num(&w["quantity"]));
        }
    }
}

#[tokio::test]
async fn ut11_plain_generated_catalog_in_200k_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 3000, 5, true);
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_ZIP", "false"),
        ("OBMEN_EXCHANGE_FILE_LIMIT", "204800"),
    ]);
    let v = emulate(&srv.url(), &[], &[dir.path()]);
    assert_eq!(v["zip"], false);
    assert_eq!(v["sessions"], 2);
    assert!(v["files"][0]["chunks"].as_u64().unwrap() > 10);
    check_against_expected(&srv, &exp).await;
    // A second full exchange changes nothing.
    emulate(&srv.url(), &[], &[dir.path()]);
    check_against_expected(&srv, &exp).await;
}

#[tokio::test]
async fn ut11_zip_generated_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 2000, 5, true);
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_ZIP", "true"),
        ("OBMEN_EXCHANGE_FILE_LIMIT", "204800"),
    ]);
    let v = emulate(&srv.url(), &[], &[dir.path()]);
    assert_eq!(v["zip"], true);
    check_against_expected(&srv, &exp).await;
}

#[tokio::test]
async fn bitrix_style_zip_one_session_with_deactivate_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 1500, 5, false);
    let srv = Server::start_with(&[("OBMEN_EXCHANGE_ZIP", "true")]);
    let v = emulate(
        &srv.url(),
        &["--style", "bitrix", "--sessions", "one"],
        &[dir.path()],
    );
    assert_eq!(v["sessions"], 1);
    check_against_expected(&srv, &exp).await;
}

#[tokio::test]
async fn send_without_waiting_is_imported_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let exp = gen_catalog(dir.path(), 500, 5, false);
    let srv = Server::start_with(&[
        ("OBMEN_EXCHANGE_ZIP", "false"),
        ("OBMEN_AUTO_IMPORT_AFTER_SECS", "1"),
    ]);
    emulate(&srv.url(), &["--no-import"], &[dir.path()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let s = srv.summary().await;
        if s["offers"] == exp["offers"] && s["goods"] == exp["goods"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not imported: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    check_against_expected(&srv, &exp).await;
}

/// The corpus folder, as tests/corpus.rs finds it.
fn corpus_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OBMEN_REALWORLD") {
        return Some(PathBuf::from(p));
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared/realworld");
        if c.is_dir() {
            return Some(c);
        }
        dir = d.parent();
    }
    None
}

/// Every repository's files of the real-world corpus, sent as 1C would (one exchange per source
/// repository), both styles, zip and plain: all succeed, and the store ends up exactly as an
/// offline `obmen import` of the same files leaves it — the transport changes nothing.
#[tokio::test]
async fn realworld_corpus_through_the_emulator() {
    let Some(corpus) = corpus_dir() else {
        assert!(
            std::env::var("OBMEN_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "the real-world corpus is required (OBMEN_REQUIRE_CORPUS=1) but was not found"
        );
        eprintln!("skipped: no shared/realworld corpus found (set OBMEN_REALWORLD)");
        return;
    };
    let mut by_repo: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(&corpus).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".xml") {
            continue;
        }
        let repo = name.split("__").take(2).collect::<Vec<_>>().join("__");
        by_repo.entry(repo).or_default().push(p);
    }
    assert!(by_repo.len() > 10, "corpus looks empty: {corpus:?}");
    for (i, (repo, files)) in by_repo.iter().enumerate() {
        // Each file under its own plain name, as 1C names them, in a folder of its own.
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Vec::new();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let plain = name.rsplit("__").next().unwrap().to_string();
            let target = dir
                .path()
                .join(if staged.iter().any(|s: &PathBuf| s.ends_with(&plain)) {
                    name.clone()
                } else {
                    plain
                });
            std::fs::copy(f, &target).unwrap();
            staged.push(target);
        }
        // 1C's order: catalogs, then offers, prices and rests, then documents.
        staged.sort_by_key(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_lowercase();
            let rank = if n.starts_with("import") {
                0
            } else if n.starts_with("offers") {
                1
            } else if n.starts_with("prices") || n.starts_with("rests") {
                2
            } else {
                3
            };
            (rank, n)
        });
        // Reference: the offline pipeline.
        let offline = tempfile::tempdir().unwrap();
        let out = obmen()
            .arg("import")
            .arg("--data-dir")
            .arg(offline.path())
            .envs(db_envs(offline.path()))
            .args(&staged)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{repo}: offline import failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let reference = Server::start_in(offline, &[]);
        let want = reference.summary().await;
        drop(reference);

        let (style, zip) = if i % 2 == 0 {
            ("ut11", "no")
        } else {
            ("bitrix", "yes")
        };
        let srv = Server::start_with(&[("OBMEN_EXCHANGE_ZIP", zip)]);
        let inputs: Vec<&Path> = staged.iter().map(|p| p.as_path()).collect();
        emulate(&srv.url(), &["--style", style, "--zip", zip], &inputs);
        assert_eq!(srv.summary().await, want, "{repo} via {style}/{zip}");
    }
}
