//! TEMPORARY stub (replaced by the real reader).
use super::model::*;
use crate::i18n::Lang;
#[derive(Debug, thiserror::Error)]
pub enum CmlError {
    #[error("io {0}")]
    Io(#[from] std::io::Error),
}
impl CmlError {
    pub fn describe(&self, _l: Lang) -> String {
        self.to_string()
    }
    pub fn position(&self) -> Option<(u64, u64)> {
        None
    }
}
pub struct CmlReader<R> {
    _r: R,
    h: Header,
}
impl CmlReader<std::io::BufReader<std::fs::File>> {
    pub fn open(p: &std::path::Path) -> Result<Self, CmlError> {
        Ok(Self {
            _r: std::io::BufReader::new(std::fs::File::open(p)?),
            h: Header::default(),
        })
    }
}
impl<R: std::io::Read> CmlReader<R> {
    pub fn next_item(&mut self) -> Result<Option<Item>, CmlError> {
        Ok(None)
    }
    pub fn bytes_read(&self) -> u64 {
        0
    }
    pub fn header(&self) -> &Header {
        &self.h
    }
}
