//! File names 1C sends (`filename=` of `mode=file`/`mode=import`, and zip entry names), made
//! into safe relative paths inside a session's upload folder.
//!
//! What arrives in the wild (spec §3.3, §4.1, §8.9): bare names (`import0_1.xml`), relative paths
//! with `/` (`import_files/5c/….jpg`), backslashes, absolute Windows temp paths from old clients
//! (`C:\v8_8789_c.xml`), absolute Linux temp paths from a 1C server on Linux (`/tmp/…`,
//! `upload/1c/webdata…`, which Bitrix strips), nested `import_files/tmp/webdata/N/N/import_files/`
//! prefixes inside zips, spaces, Cyrillic, `+`, even non-breaking spaces.
//!
//! Rules: `\` → `/`; a drive prefix (`C:`) and leading `/` are dropped (the name is sandboxed as
//! relative, for uploads; archive entries with an absolute name are refused); empty and `.`
//! components are dropped; a `..` component is refused (never resolved); control characters
//! (NUL included) are refused; over-long names are refused. For orders (`type=sale`) only the
//! base name is kept.

use std::path::{Path, PathBuf};

use crate::i18n::Lang;

/// Longest name accepted (bytes of the raw string).
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest single component (bytes); what common file systems allow.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Deepest folder nesting accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Nothing left after normalisation.
    Empty { name: String },
    /// A `..` component.
    Traversal { name: String },
    /// An absolute name where only relative ones are acceptable (zip entries).
    Absolute { name: String },
    /// A control character (NUL, CR, LF, …).
    Control { name: String },
    /// Longer than [`MAX_NAME_BYTES`], a component longer than [`MAX_COMPONENT_BYTES`], or
    /// deeper than [`MAX_DEPTH`].
    TooLong { name: String },
    /// A component obmen keeps for itself (the unpacker's staging folders, `.unpack-…`).
    Reserved { name: String },
}

impl PathError {
    pub fn describe(&self, lang: Lang) -> String {
        let (name, ru, en) = match self {
            PathError::Empty { name } => (name, "имя пустое", "the name is empty"),
            PathError::Traversal { name } => (
                name,
                "переход в родительскую папку (..) запрещен",
                "a parent folder reference (..) is not allowed",
            ),
            PathError::Absolute { name } => (
                name,
                "абсолютный путь запрещен",
                "an absolute path is not allowed",
            ),
            PathError::Control { name } => (
                name,
                "имя содержит управляющие символы",
                "the name contains control characters",
            ),
            PathError::TooLong { name } => (name, "имя слишком длинное", "the name is too long"),
            PathError::Reserved { name } => (
                name,
                "имена, начинающиеся с .unpack-, зарезервированы",
                "names starting with .unpack- are reserved",
            ),
        };
        match lang {
            Lang::Ru => format!("Недопустимое имя файла «{}»: {ru}.", printable(name)),
            Lang::En => format!("Invalid file name \"{}\": {en}.", printable(name)),
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(Lang::En))
    }
}

impl std::error::Error for PathError {}

/// A name for messages: control characters shown as `?`, shortened.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(120)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// A normalised relative name: `key` is the lookup key (`components` joined by `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadName {
    pub key: String,
    pub components: Vec<String>,
}

impl UploadName {
    fn from_components(components: Vec<String>) -> UploadName {
        UploadName {
            key: components.join("/"),
            components,
        }
    }

    /// The path under `root`. Always inside `root`: components that are not plain names (which
    /// the constructors never produce) are skipped rather than trusted.
    pub fn to_path(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in &self.components {
            if is_plain_component(c) {
                p.push(c);
            }
        }
        p
    }

    /// The last component.
    pub fn base_name(&self) -> &str {
        self.components.last().map(String::as_str).unwrap_or("")
    }
}

fn is_plain_component(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && !c.contains('/')
        && !c.contains('\\')
        && !c.contains('\0')
}

/// A name split into plain components, and whether it was absolute.
struct Split {
    components: Vec<String>,
    absolute: bool,
}

fn split(raw: &str) -> Result<Split, PathError> {
    let err_name = || raw.to_string();
    if raw.len() > MAX_NAME_BYTES {
        return Err(PathError::TooLong { name: err_name() });
    }
    if raw.chars().any(char::is_control) {
        return Err(PathError::Control { name: err_name() });
    }
    let unified = raw.trim().replace('\\', "/");
    let mut s = unified.as_str();
    let mut absolute = false;
    // Win32 device / long-path prefixes: `\\?\C:\…`, `\\.\…`.
    for p in ["//?/", "//./"] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest;
            absolute = true;
        }
    }
    // A drive prefix: `C:\x.xml`, `C:x.xml`.
    let b = s.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        s = &s[2..];
        absolute = true;
    }
    if s.starts_with('/') {
        absolute = true;
    }
    let mut components = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::Traversal { name: err_name() }),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(PathError::TooLong { name: err_name() })
            }
            // The unpacker's own staging folders: folder scans skip them, so such a file would
            // vanish from the exchange.
            c if c.starts_with(super::zipx::STAGING_PREFIX) => {
                return Err(PathError::Reserved { name: err_name() })
            }
            c => components.push(c.to_string()),
        }
    }
    if components.len() > MAX_DEPTH {
        return Err(PathError::TooLong { name: err_name() });
    }
    Ok(Split {
        components,
        absolute,
    })
}

/// Drop the temp-folder prefixes some clients put in front of the real name:
/// * `upload/1c/webdata/…` (a 1C server on Linux; Bitrix strips it);
/// * `…/tmp/webdata/N/N/import_files/…` inside zips → `import_files/…` (Bitrix rewrites it).
pub fn without_webdata_prefix(components: &[String]) -> Vec<String> {
    let mut c: &[String] = components;
    if c.len() > 3 && c[0] == "upload" && c[1] == "1c" && c[2] == "webdata" {
        c = &c[3..];
    }
    // `tmp/webdata/…/import_files/rest` anywhere before the last component.
    if let Some(i) = c
        .windows(2)
        .position(|w| w[0] == "tmp" && w[1] == "webdata")
    {
        if let Some(j) = c[i + 2..].iter().position(|x| x == "import_files") {
            c = &c[i + 2 + j..];
        }
    }
    c.to_vec()
}

/// Normalise a `filename` parameter of `mode=file`/`mode=import`. Absolute names are sandboxed
/// (made relative); `sale`: only the base name is kept (orders are flat files).
pub fn normalize_upload_name(raw: &str, sale: bool) -> Result<UploadName, PathError> {
    let Split {
        mut components,
        absolute,
    } = split(raw)?;
    // `/tmp/…` from a 1C server on Linux.
    if absolute && components.len() > 1 && components[0] == "tmp" {
        components.remove(0);
    }
    let mut components = without_webdata_prefix(&components);
    if sale {
        components = components.split_off(components.len().saturating_sub(1));
    }
    if components.is_empty() {
        return Err(PathError::Empty {
            name: raw.to_string(),
        });
    }
    Ok(UploadName::from_components(components))
}

/// Normalise a zip entry name (already decoded to text). Unlike upload names, an absolute entry
/// name is refused: an archive that carries one is hostile or broken. A trailing `/` (folder
/// entry) is allowed; the caller knows whether the entry is a folder.
pub fn normalize_archive_entry(raw: &str) -> Result<UploadName, PathError> {
    let Split {
        components,
        absolute,
    } = split(raw)?;
    if absolute {
        return Err(PathError::Absolute {
            name: raw.to_string(),
        });
    }
    let components = without_webdata_prefix(&components);
    if components.is_empty() {
        return Err(PathError::Empty {
            name: raw.to_string(),
        });
    }
    Ok(UploadName::from_components(components))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        normalize_upload_name(raw, false).unwrap().key
    }

    #[test]
    fn staging_folder_names_are_reserved() {
        for raw in [
            ".unpack-x",
            "import_files/.unpack-к$$арт",
            "a/.unpack-/b.xml",
        ] {
            assert!(
                matches!(
                    normalize_archive_entry(raw),
                    Err(PathError::Reserved { .. })
                ),
                "{raw}"
            );
        }
        assert!(normalize_archive_entry("import_files/unpack-x.jpg").is_ok());
    }

    #[test]
    fn plain_and_nested_names() {
        assert_eq!(key("import0_1.xml"), "import0_1.xml");
        let n = normalize_upload_name("import_files/5c/abc_def.jpg", false).unwrap();
        assert_eq!(n.key, "import_files/5c/abc_def.jpg");
        assert_eq!(n.components, vec!["import_files", "5c", "abc_def.jpg"]);
        assert_eq!(n.base_name(), "abc_def.jpg");
        assert_eq!(key("goods/1/goods_1_1_x.xml"), "goods/1/goods_1_1_x.xml");
    }

    #[test]
    fn backslashes_and_redundant_components() {
        assert_eq!(key("import_files\\ab\\x.jpg"), "import_files/ab/x.jpg");
        assert_eq!(key("./a//b/./c.xml"), "a/b/c.xml");
        assert_eq!(key("a/b/"), "a/b");
    }

    #[test]
    fn windows_and_unix_absolute_paths_are_sandboxed() {
        assert_eq!(key("C:\\x.xml"), "x.xml");
        assert_eq!(key("c:/Temp/v8_8789_c.xml"), "Temp/v8_8789_c.xml");
        assert_eq!(key("D:x.xml"), "x.xml");
        assert_eq!(key("/etc/passwd"), "etc/passwd");
        assert_eq!(key("\\\\?\\C:\\Temp\\a.xml"), "Temp/a.xml");
        assert_eq!(key("//server/share/a.xml"), "server/share/a.xml");
    }

    #[test]
    fn bitrix_style_temp_prefixes_are_stripped() {
        assert_eq!(key("/tmp/import.xml"), "import.xml");
        // Only an absolute /tmp/ is a temp prefix; a relative "tmp" folder is a folder.
        assert_eq!(key("tmp/import.xml"), "tmp/import.xml");
        assert_eq!(key("upload/1c/webdata/import.xml"), "import.xml");
        assert_eq!(
            key("import_files/tmp/webdata/12/34/import_files/ab/x.jpg"),
            "import_files/ab/x.jpg"
        );
        assert_eq!(
            without_webdata_prefix(&["tmp".into(), "webdata".into(), "x.xml".into()]),
            vec!["tmp", "webdata", "x.xml"]
        );
    }

    #[test]
    fn parent_references_are_refused() {
        for raw in [
            "../../etc/passwd",
            "..\\..\\x",
            "import_files/../../../escape.xml",
            "a/../b.xml",
            "..",
            "C:\\..\\x.xml",
            "/../x",
        ] {
            let e = normalize_upload_name(raw, false).unwrap_err();
            assert!(matches!(e, PathError::Traversal { .. }), "{raw}: {e:?}");
            let ru = e.describe(Lang::Ru);
            assert!(ru.starts_with("Недопустимое имя файла «"), "{ru}");
            assert!(e.describe(Lang::En).starts_with("Invalid file name"));
            assert!(normalize_upload_name(raw, true).is_err(), "sale: {raw}");
        }
        // Dots that are not a component are names.
        assert_eq!(key("a..b.xml"), "a..b.xml");
        assert_eq!(key("...xml"), "...xml");
    }

    #[test]
    fn control_characters_are_refused() {
        for raw in [
            "a\0b.xml",
            "a\nb.xml",
            "x.xml\r",
            "a\u{7f}.xml",
            "a\u{85}.xml",
        ] {
            assert!(
                matches!(
                    normalize_upload_name(raw, false),
                    Err(PathError::Control { .. })
                ),
                "{raw:?}"
            );
        }
        let msg = normalize_upload_name("a\0b", false)
            .unwrap_err()
            .describe(Lang::Ru);
        assert!(!msg.contains('\0'), "{msg:?}");
    }

    #[test]
    fn over_long_names_are_refused() {
        let long = "a".repeat(MAX_COMPONENT_BYTES + 1);
        assert!(matches!(
            normalize_upload_name(&long, false),
            Err(PathError::TooLong { .. })
        ));
        let ok = "я".repeat(MAX_COMPONENT_BYTES / 2);
        assert!(normalize_upload_name(&ok, false).is_ok());
        let total = "a/".repeat(MAX_NAME_BYTES);
        assert!(matches!(
            normalize_upload_name(&total, false),
            Err(PathError::TooLong { .. })
        ));
        let deep = "a/".repeat(MAX_DEPTH + 1) + "x";
        assert!(matches!(
            normalize_upload_name(&deep, false),
            Err(PathError::TooLong { .. })
        ));
    }

    #[test]
    fn empty_names_are_refused() {
        for raw in ["", "   ", "/", "./.", "C:\\", "\\\\"] {
            assert!(
                matches!(
                    normalize_upload_name(raw, false),
                    Err(PathError::Empty { .. })
                ),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn unusual_but_legal_characters_are_kept() {
        assert_eq!(
            key("import_files/ab/abc+1.jpg"),
            "import_files/ab/abc+1.jpg"
        );
        assert_eq!(key("Фото товара 1.jpg"), "Фото товара 1.jpg");
        assert_eq!(
            key("orders-5c44_1\u{a0}000.xml"),
            "orders-5c44_1\u{a0}000.xml"
        );
    }

    #[test]
    fn sale_keeps_only_the_base_name() {
        let n = normalize_upload_name("C:\\v8_8789_c.xml", true).unwrap();
        assert_eq!(n.key, "v8_8789_c.xml");
        let n = normalize_upload_name("some/dir/orders-1_1.xml", true).unwrap();
        assert_eq!(n.key, "orders-1_1.xml");
        assert_eq!(n.components.len(), 1);
    }

    #[test]
    fn archive_entries_refuse_absolute_names() {
        assert_eq!(
            normalize_archive_entry("import_files/ab/x.jpg")
                .unwrap()
                .key,
            "import_files/ab/x.jpg"
        );
        assert_eq!(normalize_archive_entry("dir/").unwrap().key, "dir");
        for raw in ["/tmp/evil.xml", "C:\\evil.xml", "c:evil.xml", "\\evil.xml"] {
            assert!(
                matches!(
                    normalize_archive_entry(raw),
                    Err(PathError::Absolute { .. })
                ),
                "{raw}"
            );
        }
        assert!(matches!(
            normalize_archive_entry("../../evil.xml"),
            Err(PathError::Traversal { .. })
        ));
        assert!(normalize_archive_entry("a/../../evil.xml").is_err());
    }

    #[test]
    fn to_path_stays_inside_the_root() {
        let root = Path::new("/data/uploads/s1");
        for raw in [
            "C:\\x.xml",
            "/etc/passwd",
            "import_files/ab/abc+1.jpg",
            "//server/share/a.xml",
        ] {
            let p = normalize_upload_name(raw, false).unwrap().to_path(root);
            assert!(p.starts_with(root), "{raw}: {p:?}");
            assert!(p
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir)));
        }
        // Even a hand-built name with hostile components cannot leave the root.
        let forged = UploadName {
            key: "../x".into(),
            components: vec!["..".into(), "/etc".into(), "a\0".into(), "x".into()],
        };
        assert_eq!(forged.to_path(root), root.join("x"));
    }
}
