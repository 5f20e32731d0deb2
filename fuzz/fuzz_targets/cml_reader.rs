//! Fuzz target; the checks are in fuzz/checks/cml_reader.rs.
#![no_main]

#[path = "../checks/cml_reader.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
