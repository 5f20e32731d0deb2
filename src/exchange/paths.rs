//! TEMPORARY stub.
use crate::i18n::Lang;
#[derive(Debug)]
pub struct PathError;
impl PathError {
    pub fn describe(&self, _l: Lang) -> String {
        "bad".into()
    }
}
pub struct UploadName {
    pub key: String,
    pub components: Vec<String>,
}
impl UploadName {
    pub fn to_path(&self, root: &std::path::Path) -> std::path::PathBuf {
        root.join(&self.key)
    }
}
pub fn normalize_upload_name(raw: &str, _sale: bool) -> Result<UploadName, PathError> {
    Ok(UploadName {
        key: raw.into(),
        components: vec![],
    })
}
