//! TEMPORARY stub.
use crate::i18n::Lang;
#[derive(Debug)]
pub struct ParamError;
impl ParamError {
    pub fn describe(&self, _l: Lang) -> String {
        "bad".into()
    }
}
pub struct Params(Vec<(String, String)>);
impl Params {
    pub fn parse(_r: &str) -> Result<Params, ParamError> {
        Ok(Params(vec![]))
    }
    pub fn parse_body(_b: &[u8]) -> Result<Params, ParamError> {
        Ok(Params(vec![]))
    }
    pub fn merge(self, _o: Params) -> Params {
        self
    }
    pub fn get(&self, _k: &str) -> Result<Option<&str>, ParamError> {
        Ok(self.0.first().map(|x| x.1.as_str()))
    }
}
