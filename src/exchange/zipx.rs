//! TEMPORARY stub.
use crate::i18n::Lang;
#[derive(Debug)]
pub enum ZipError {
    Io(std::io::Error),
}
impl ZipError {
    pub fn describe(&self, _l: Lang) -> String {
        "bad".into()
    }
}
#[derive(Default)]
pub struct ZipLimits {
    pub max_total_bytes: u64,
    pub max_entries: usize,
    pub max_ratio: u64,
    pub max_entry_bytes: u64,
}
pub struct UnpackReport {
    pub files: Vec<String>,
    pub bytes: u64,
}
pub fn unpack(
    _a: &std::path::Path,
    _d: &std::path::Path,
    _l: &ZipLimits,
) -> Result<UnpackReport, ZipError> {
    Ok(UnpackReport {
        files: vec![],
        bytes: 0,
    })
}
