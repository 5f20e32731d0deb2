//! The 1C request parameters (src/exchange/query.rs) and the file/entry name checks
//! (src/exchange/paths.rs, zip entry name decoding in src/exchange/zipx.rs) on arbitrary input.
//! The input is parsed as a query string and as a form body; every value, and the input itself,
//! goes through the name checks, whose results must be plain relative names that stay inside
//! any root they are joined to.
//!
//! Shared by the fuzz target (fuzz/fuzz_targets/query.rs) and the regression tests
//! (tests/fuzz_regressions.rs): a panic here is a finding.

use std::path::Path;

use obmen::exchange::paths::{normalize_archive_entry, normalize_upload_name, UploadName};
use obmen::exchange::query::{Params, MAX_PARAMS};
use obmen::exchange::zipx::decode_entry_name;
use obmen::i18n::Lang;

fn check_name(raw: &str, name: &UploadName) {
    assert!(!name.components.is_empty(), "empty name from {raw:?}");
    assert_eq!(name.key, name.components.join("/"));
    for c in &name.components {
        assert!(
            !c.is_empty()
                && c != "."
                && c != ".."
                && !c.contains('/')
                && !c.contains('\\')
                && !c.contains('\0'),
            "component {c:?} of {raw:?} is not a plain name"
        );
    }
    assert!(!name.base_name().is_empty());
    let root = Path::new("/srv/obmen/exchange");
    let p = name.to_path(root);
    assert!(p.starts_with(root), "{raw:?} leaves the root: {p:?}");
    assert_eq!(
        p.components().count(),
        root.components().count() + name.components.len(),
        "{raw:?}: path {p:?} does not have one part per component"
    );
}

fn check_names(raw: &str) {
    for sale in [false, true] {
        match normalize_upload_name(raw, sale) {
            Ok(n) => {
                check_name(raw, &n);
                if sale {
                    assert_eq!(n.components.len(), 1, "sale name {raw:?} not flat");
                }
            }
            Err(e) => {
                assert!(!e.describe(Lang::Ru).is_empty());
                assert!(!e.describe(Lang::En).is_empty());
            }
        }
    }
    match normalize_archive_entry(raw) {
        Ok(n) => check_name(raw, &n),
        Err(e) => {
            assert!(!e.describe(Lang::Ru).is_empty());
            let _ = e.to_string();
        }
    }
}

fn check_params(p: &Params) {
    assert!(p.len() <= MAX_PARAMS);
    for (k, v) in p.iter() {
        assert!(!k.is_empty());
        match p.get(k) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("key {k:?} listed but not found"),
            Err(e) => {
                assert!(!e.describe(Lang::Ru).is_empty());
                assert!(!e.describe(Lang::En).is_empty());
            }
        }
        check_names(v);
    }
    for key in ["type", "mode", "filename", "version", "sessid"] {
        let _ = p.get(key);
    }
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let query = Params::parse(&text);
    let body = Params::parse_body(data);
    match (&query, &body) {
        (Ok(q), Ok(b)) => {
            check_params(q);
            check_params(b);
            let merged = q.clone().merge(b.clone());
            assert!(merged.len() >= q.len());
            for (k, _) in b.iter() {
                assert!(merged.iter().any(|(mk, _)| mk.eq_ignore_ascii_case(k)));
            }
        }
        (Ok(p), Err(e)) | (Err(e), Ok(p)) => {
            check_params(p);
            let _ = e.describe(Lang::Ru);
        }
        (Err(a), Err(b)) => {
            let _ = (a.describe(Lang::Ru), b.describe(Lang::En));
        }
    }
    check_names(&text);
    for flag in [false, true] {
        let name = decode_entry_name(data, flag);
        check_names(&name);
    }
}
