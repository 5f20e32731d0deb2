//! Fuzz target; the checks are in fuzz/checks/zip.rs.
#![no_main]

#[path = "../checks/zip.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
