//! Fuzz target; the checks are in fuzz/checks/orders_reader.rs.
#![no_main]

#[path = "../checks/orders_reader.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
