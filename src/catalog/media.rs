//! Card images kept past the exchange session: 1C uploads images into the session folder, which
//! the next `init` clears, so after each successful catalog import the images its goods refer to
//! are hard-linked (or copied) into the media folder under the same relative path. A file whose
//! content did not change is left alone (its mtime is part of the card hash).

use std::path::{Component, Path, PathBuf};

use diesel::prelude::*;

use crate::store::schema::{goods, images};
use crate::store::Conn;

/// A `/`-separated relative path without `..`, root or drive: the path under a base folder.
pub fn safe_relative(p: &str) -> Option<PathBuf> {
    if p.is_empty() || p.contains('\\') || p.contains('\0') {
        return None;
    }
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn same_content(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {
            matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// Put one file into the media folder (hard link, else copy). Returns whether it changed.
pub fn store_file(src: &Path, dst: &Path) -> std::io::Result<bool> {
    if dst.exists() && same_content(src, dst) {
        return Ok(false);
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dst.with_extension(format!(
        "{}.tmp",
        dst.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp)?;
    }
    std::fs::rename(&tmp, dst)?;
    Ok(true)
}

/// Where an image path of a file imported from `xml` is: next to the XML, or in a folder above
/// it (CommerceML 3.1 packages put the XML into subfolders of the exchange folder).
fn source_of(xml: &Path, rel: &Path) -> Option<PathBuf> {
    xml.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(rel))
        .find(|p| p.is_file())
}

/// Copy the images of the goods seen by the import that started at `since_ms` from `xml`'s
/// folder into `media_dir`. Returns (files stored or replaced, files not found).
pub fn sync_images(
    conn: &mut Conn,
    xml: &Path,
    media_dir: &Path,
    since_ms: i64,
) -> QueryResult<(usize, usize)> {
    let mut paths: Vec<String> = images::table
        .inner_join(goods::table.on(goods::id.eq(images::good_id)))
        .filter(goods::seen_at.ge(since_ms))
        .select(images::path)
        .load(conn)?;
    paths.sort();
    paths.dedup();
    let (mut stored, mut missing) = (0, 0);
    for p in paths {
        let Some(rel) = safe_relative(&p) else {
            continue;
        };
        let Some(src) = source_of(xml, &rel) else {
            missing += 1;
            continue;
        };
        match store_file(&src, &media_dir.join(&rel)) {
            Ok(true) => stored += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(image = %p, error = %e, "cannot store the image"),
        }
    }
    Ok((stored, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert_eq!(
            safe_relative("import_files/ab/x.jpg"),
            Some(PathBuf::from("import_files/ab/x.jpg"))
        );
        assert!(safe_relative("../x.jpg").is_none());
        assert!(safe_relative("a/../../x.jpg").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("a\\..\\x").is_none());
        assert!(safe_relative("").is_none());
    }

    #[test]
    fn unchanged_files_keep_their_copy() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src.jpg");
        let dst = d.path().join("media/a/x.jpg");
        std::fs::write(&src, b"one").unwrap();
        assert!(store_file(&src, &dst).unwrap());
        assert!(!store_file(&src, &dst).unwrap());
        // A new upload with the same bytes is a new file: still unchanged.
        std::fs::remove_file(&src).unwrap();
        std::fs::write(&src, b"one").unwrap();
        assert!(!store_file(&src, &dst).unwrap());
        std::fs::remove_file(&src).unwrap();
        std::fs::write(&src, b"two").unwrap();
        assert!(store_file(&src, &dst).unwrap());
        assert_eq!(std::fs::read(&dst).unwrap(), b"two");
    }
}
