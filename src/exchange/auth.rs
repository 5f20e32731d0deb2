//! TEMPORARY stub.
pub fn parse_basic(_h: &str) -> Option<(String, String)> {
    None
}
pub fn cookie_value(_c: &str, _n: &str) -> Option<String> {
    None
}
