//! Unpacking an uploaded zip archive (src/exchange/zipx.rs, `unpack`) from arbitrary bytes.
//! The archive is written to a temp folder and unpacked into `dest` inside it. Checked:
//! * nothing is ever written outside `dest` (the archive is the only other file), and no
//!   symlink is created anywhere;
//! * success: every reported file exists as a regular file under `dest`, no staging folder is
//!   left, and the byte count is the sum of the file sizes;
//! * failure: `dest` holds nothing (all-or-nothing), and the error describes itself.
//!   Limits are small so that a bomb costs little but the ratio check (after 16 MiB) is reached.
//!
//! Shared by the fuzz target (fuzz/fuzz_targets/zip.rs) and the regression tests
//! (tests/fuzz_regressions.rs): a panic here is a finding.

use std::fs;
use std::path::Path;

use obmen::exchange::zipx::{unpack, ZipLimits, RATIO_CHECK_AFTER};
use obmen::i18n::Lang;

fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, fs::Metadata)>) {
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("dir entry");
        let md = fs::symlink_metadata(e.path()).expect("metadata");
        out.push((e.path(), md.clone()));
        if md.is_dir() {
            walk(&e.path(), out);
        }
    }
}

pub fn run(data: &[u8]) {
    let root = tempfile::tempdir().expect("tempdir");
    let archive = root.path().join("upload.zip");
    fs::write(&archive, data).expect("write archive");
    let dest = root.path().join("dest");
    let limits = ZipLimits {
        max_total_bytes: RATIO_CHECK_AFTER + 8 * 1024 * 1024,
        max_entries: 2_000,
        max_ratio: ZipLimits::DEFAULT_MAX_RATIO,
        max_entry_bytes: RATIO_CHECK_AFTER + 4 * 1024 * 1024,
    };
    let result = unpack(&archive, &dest, &limits);

    let mut all = Vec::new();
    walk(root.path(), &mut all);
    for (p, md) in &all {
        assert!(!md.file_type().is_symlink(), "symlink created: {p:?}");
        assert!(
            p == &archive || p.starts_with(&dest),
            "written outside dest: {p:?}"
        );
    }
    // What the unpack left in `dest` (the folder itself, which it may create, aside).
    let in_dest: Vec<_> = all
        .iter()
        .filter(|(p, _)| p.starts_with(&dest) && *p != dest)
        .collect();
    match result {
        Ok(report) => {
            for (p, _) in &in_dest {
                let name = p.file_name().unwrap().to_string_lossy();
                assert!(
                    !name.starts_with(obmen::exchange::zipx::STAGING_PREFIX),
                    "staging folder left: {p:?}"
                );
            }
            let mut sum = 0u64;
            for f in &report.files {
                let p = f.split('/').fold(dest.clone(), |p, c| p.join(c));
                let md = fs::symlink_metadata(&p)
                    .unwrap_or_else(|e| panic!("reported file {f:?} missing: {e}"));
                assert!(md.is_file(), "reported file {f:?} is not a file");
                sum += md.len();
            }
            assert_eq!(sum, report.bytes, "byte count differs from the files");
            assert!(report.bytes <= limits.max_total_bytes);
        }
        Err(e) => {
            assert!(in_dest.is_empty(), "failed unpack left {in_dest:?}");
            assert!(!e.describe(Lang::Ru).is_empty());
            assert!(!e.describe(Lang::En).is_empty());
        }
    }
}
