//! Unpacking the zip archives 1C uploads (spec §3.4, §4.2).
//!
//! * Entry names: UTF-8 when the archive says so (flag bit 11, or an Info-ZIP Unicode Path
//!   field); otherwise cp866, which is what 1C on Windows writes.
//! * Every name goes through [`paths::normalize_archive_entry`]: an entry with `..` or an
//!   absolute name refuses the whole archive before anything is written.
//! * Limits are checked on the bytes actually produced, not on the sizes the headers claim:
//!   number of entries, bytes per entry, bytes in total, and the compression ratio of an entry
//!   once it has produced [`RATIO_CHECK_AFTER`] bytes.
//! * Symlinks, devices/FIFOs, encrypted entries and methods other than stored/deflate are refused.
//! * All-or-nothing: entries are written into a staging folder inside `dest` and moved into place
//!   only when the whole archive has been read; on any failure nothing of this unpack remains.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;

use super::paths::{self, PathError};
use crate::i18n::Lang;

/// An entry's compression ratio is checked once it has produced this many bytes.
pub const RATIO_CHECK_AFTER: u64 = 16 * 1024 * 1024;

/// Prefix of the staging folder an unpack writes into (skipped by folder scans).
pub const STAGING_PREFIX: &str = ".unpack-";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipLimits {
    /// Bytes written for the whole archive.
    pub max_total_bytes: u64,
    /// Entries (files and folders) in the archive.
    pub max_entries: usize,
    /// Uncompressed : compressed, per entry (after [`RATIO_CHECK_AFTER`] bytes).
    pub max_ratio: u64,
    /// Bytes written for one entry.
    pub max_entry_bytes: u64,
}

impl ZipLimits {
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 20 * 1024 * 1024 * 1024;
    pub const DEFAULT_MAX_ENTRIES: usize = 200_000;
    pub const DEFAULT_MAX_RATIO: u64 = 200;
    pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 8 * 1024 * 1024 * 1024;

    /// These limits with every zero replaced by its default.
    pub fn effective(&self) -> ZipLimits {
        fn or<T: PartialEq + Default>(v: T, d: T) -> T {
            if v == T::default() {
                d
            } else {
                v
            }
        }
        ZipLimits {
            max_total_bytes: or(self.max_total_bytes, Self::DEFAULT_MAX_TOTAL_BYTES),
            max_entries: or(self.max_entries, Self::DEFAULT_MAX_ENTRIES),
            max_ratio: or(self.max_ratio, Self::DEFAULT_MAX_RATIO),
            max_entry_bytes: or(self.max_entry_bytes, Self::DEFAULT_MAX_ENTRY_BYTES),
        }
    }
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_ratio: Self::DEFAULT_MAX_RATIO,
            max_entry_bytes: Self::DEFAULT_MAX_ENTRY_BYTES,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Normalised relative names of the files written, in archive order.
    pub files: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
}

#[derive(Debug)]
pub enum ZipError {
    /// Reading the archive or writing the files failed.
    Io(io::Error),
    /// Not a zip, truncated, or damaged (bad CRC, bad headers).
    Corrupt(String),
    /// An entry name that is unsafe (`..`, absolute, control characters, too long).
    UnsafeName {
        entry: String,
        reason: PathError,
    },
    /// Two entries that land on the same file.
    Duplicate {
        entry: String,
    },
    Symlink {
        entry: String,
    },
    /// A device, FIFO or socket.
    SpecialFile {
        entry: String,
    },
    Encrypted {
        entry: String,
    },
    UnsupportedMethod {
        entry: String,
        method: String,
    },
    TooManyEntries {
        count: usize,
        limit: usize,
    },
    EntryTooLarge {
        entry: String,
        limit: u64,
    },
    TotalTooLarge {
        limit: u64,
    },
    /// A compression ratio only a zip bomb has.
    Ratio {
        entry: String,
        limit: u64,
    },
}

impl From<io::Error> for ZipError {
    fn from(e: io::Error) -> Self {
        ZipError::Io(e)
    }
}

fn mib(n: u64) -> String {
    if n >= 1024 * 1024 * 1024 && n.is_multiple_of(1024 * 1024 * 1024) {
        format!("{} GiB", n / (1024 * 1024 * 1024))
    } else if n >= 1024 * 1024 {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} B")
    }
}

impl ZipError {
    pub fn describe(&self, lang: Lang) -> String {
        let ru = matches!(lang, Lang::Ru);
        match self {
            ZipError::Io(e) => {
                if ru {
                    format!("Ошибка распаковки архива: {e}")
                } else {
                    format!("Cannot unpack the archive: {e}")
                }
            }
            ZipError::Corrupt(m) => {
                if ru {
                    format!("Архив поврежден или передан не полностью ({m}). Повторите выгрузку.")
                } else {
                    format!("The archive is damaged or incomplete ({m}). Send it again.")
                }
            }
            ZipError::UnsafeName { entry, reason } => {
                if ru {
                    format!(
                        "Архив отклонен: файл «{entry}» в архиве. {}",
                        reason.describe(lang)
                    )
                } else {
                    format!(
                        "Archive refused: entry \"{entry}\". {}",
                        reason.describe(lang)
                    )
                }
            }
            ZipError::Duplicate { entry } => {
                if ru {
                    format!("Архив отклонен: файл «{entry}» встречается в архиве несколько раз.")
                } else {
                    format!("Archive refused: entry \"{entry}\" occurs more than once.")
                }
            }
            ZipError::Symlink { entry } => {
                if ru {
                    format!("Архив отклонен: «{entry}» — символическая ссылка, такие файлы не принимаются.")
                } else {
                    format!(
                        "Archive refused: \"{entry}\" is a symbolic link, which is not accepted."
                    )
                }
            }
            ZipError::SpecialFile { entry } => {
                if ru {
                    format!("Архив отклонен: «{entry}» — не обычный файл (устройство, канал или сокет).")
                } else {
                    format!("Archive refused: \"{entry}\" is not a regular file (device, pipe or socket).")
                }
            }
            ZipError::Encrypted { entry } => {
                if ru {
                    format!(
                        "Архив отклонен: файл «{entry}» зашифрован. Выгружайте архив без пароля."
                    )
                } else {
                    format!("Archive refused: \"{entry}\" is encrypted. Send the archive without a password.")
                }
            }
            ZipError::UnsupportedMethod { entry, method } => {
                if ru {
                    format!("Архив отклонен: файл «{entry}» сжат неподдерживаемым методом {method} (поддерживаются только Deflate и без сжатия).")
                } else {
                    format!("Archive refused: \"{entry}\" uses the unsupported compression method {method} (only Deflate and stored are supported).")
                }
            }
            ZipError::TooManyEntries { count, limit } => {
                if ru {
                    format!("Архив отклонен: в нем {count} файлов, допускается не больше {limit}.")
                } else {
                    format!("Archive refused: it has {count} entries, the limit is {limit}.")
                }
            }
            ZipError::EntryTooLarge { entry, limit } => {
                if ru {
                    format!(
                        "Архив отклонен: файл «{entry}» больше допустимого размера {}.",
                        mib(*limit)
                    )
                } else {
                    format!(
                        "Archive refused: \"{entry}\" is larger than the limit of {}.",
                        mib(*limit)
                    )
                }
            }
            ZipError::TotalTooLarge { limit } => {
                if ru {
                    format!(
                        "Архив отклонен: распакованные данные больше допустимого размера {}.",
                        mib(*limit)
                    )
                } else {
                    format!(
                        "Archive refused: the unpacked data is larger than the limit of {}.",
                        mib(*limit)
                    )
                }
            }
            ZipError::Ratio { entry, limit } => {
                if ru {
                    format!("Архив отклонен: файл «{entry}» сжат более чем в {limit} раз — похоже на zip-бомбу.")
                } else {
                    format!("Archive refused: \"{entry}\" is compressed more than {limit}:1, which looks like a zip bomb.")
                }
            }
        }
    }
}

impl std::fmt::Display for ZipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(Lang::En))
    }
}

impl std::error::Error for ZipError {}

fn from_zip(e: zip::result::ZipError) -> ZipError {
    use zip::result::ZipError as Z;
    match e {
        Z::Io(e) => io_or_corrupt(e),
        Z::InvalidArchive(m) => ZipError::Corrupt(m.into_owned()),
        Z::UnsupportedArchive(m) => ZipError::Corrupt(m.to_string()),
        other => ZipError::Corrupt(other.to_string()),
    }
}

/// Read errors of an archive are damage (bad data, unexpected end), not server trouble.
fn io_or_corrupt(e: io::Error) -> ZipError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            ZipError::Corrupt(e.to_string())
        }
        _ => ZipError::Io(e),
    }
}

/// Decode an entry name: UTF-8 if flagged; otherwise cp866 (1C on Windows), unless the bytes are
/// valid UTF-8 that uses byte values cp866 only has for box-drawing characters (0xB0–0xDF), i.e.
/// an unflagged UTF-8 name (every Cyrillic letter in UTF-8 starts with 0xD0/0xD1).
pub fn decode_entry_name(raw: &[u8], utf8_flag: bool) -> String {
    if raw.is_ascii() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    if let Ok(s) = std::str::from_utf8(raw) {
        if utf8_flag || raw.iter().any(|b| (0xB0..=0xDF).contains(b)) {
            return s.to_string();
        }
    }
    let (s, _) = encoding_rs::IBM866.decode_without_bom_handling(raw);
    s.into_owned()
}

/// Unix file type bits of an entry, when the archive was made on Unix.
fn unix_type(system: zip::System, external: u32) -> Option<u32> {
    (system == zip::System::Unix && external != 0).then_some((external >> 16) & 0o170000)
}

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

struct Planned {
    index: usize,
    display: String,
    name: paths::UploadName,
    compressed: u64,
}

/// Unpack `archive` into `dest` (created if missing) under `limits` (zeros mean defaults).
pub fn unpack(archive: &Path, dest: &Path, limits: &ZipLimits) -> Result<UnpackReport, ZipError> {
    let limits = limits.effective();
    let file = fs::File::open(archive)?;
    let archive_len = file.metadata()?.len();
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(from_zip)?;
    if zip.len() > limits.max_entries {
        return Err(ZipError::TooManyEntries {
            count: zip.len(),
            limit: limits.max_entries,
        });
    }

    // 1. Check every entry before writing anything.
    let mut plan = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..zip.len() {
        let e = zip.by_index_data(i).map_err(from_zip)?;
        let utf8 = e.flags().as_u16() & 0x0800 != 0;
        let display = decode_entry_name(e.name_raw(), utf8);
        let raw_dir = display.ends_with('/') || display.ends_with('\\');
        let kind = unix_type(e.system(), e.external_attributes());
        if kind == Some(S_IFLNK) {
            return Err(ZipError::Symlink { entry: display });
        }
        if matches!(kind, Some(k) if k != 0 && k != S_IFREG && k != S_IFDIR) {
            return Err(ZipError::SpecialFile { entry: display });
        }
        let name =
            paths::normalize_archive_entry(&display).map_err(|reason| ZipError::UnsafeName {
                entry: display.clone(),
                reason,
            })?;
        if raw_dir || kind == Some(S_IFDIR) {
            continue; // folders are made as the files in them need them
        }
        if e.encrypted() {
            return Err(ZipError::Encrypted { entry: display });
        }
        let method = e.compression();
        if !matches!(
            method,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(ZipError::UnsupportedMethod {
                entry: display,
                method: format!("{method:?}"),
            });
        }
        if !seen.insert(name.key.clone()) {
            return Err(ZipError::Duplicate { entry: display });
        }
        plan.push(Planned {
            index: i,
            display,
            compressed: e.compressed_size().min(archive_len),
            name,
        });
    }
    // A file that is also a folder of another entry (`a` and `a/b`) cannot be unpacked.
    for p in &plan {
        for depth in 1..p.name.components.len() {
            let prefix = p.name.components[..depth].join("/");
            if seen.contains(&prefix) {
                return Err(ZipError::Duplicate { entry: prefix });
            }
        }
    }

    // 2. Write into a staging folder; 3. move into place.
    fs::create_dir_all(dest)?;
    let staging = dest.join(format!("{STAGING_PREFIX}{}", super::random_token(16)));
    fs::create_dir(&staging)?;
    let result = extract_all(&mut zip, &plan, &staging, &limits)
        .and_then(|bytes| commit(&plan, &staging, dest).map(|()| bytes));
    let _ = fs::remove_dir_all(&staging);
    let bytes = result?;
    Ok(UnpackReport {
        files: plan.into_iter().map(|p| p.name.key).collect(),
        bytes,
    })
}

fn extract_all<R: Read + io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    plan: &[Planned],
    staging: &Path,
    limits: &ZipLimits,
) -> Result<u64, ZipError> {
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for p in plan {
        let mut entry = zip.by_index(p.index).map_err(from_zip)?;
        let path = p.name.to_path(staging);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = io::BufWriter::with_capacity(
            256 * 1024,
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?,
        );
        let mut written: u64 = 0;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_or_corrupt(e)),
            };
            written += n as u64;
            total += n as u64;
            if written > limits.max_entry_bytes {
                return Err(ZipError::EntryTooLarge {
                    entry: p.display.clone(),
                    limit: limits.max_entry_bytes,
                });
            }
            if total > limits.max_total_bytes {
                return Err(ZipError::TotalTooLarge {
                    limit: limits.max_total_bytes,
                });
            }
            if written > RATIO_CHECK_AFTER && written / p.compressed.max(1) > limits.max_ratio {
                return Err(ZipError::Ratio {
                    entry: p.display.clone(),
                    limit: limits.max_ratio,
                });
            }
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
    }
    Ok(total)
}

/// Move the staged files into `dest`. If a move fails, the files already moved and the folders
/// made are removed again.
fn commit(plan: &[Planned], staging: &Path, dest: &Path) -> Result<(), ZipError> {
    let mut moved: Vec<PathBuf> = Vec::new();
    let mut made_dirs: Vec<PathBuf> = Vec::new();
    let res = (|| -> io::Result<()> {
        for p in plan {
            let target = p.name.to_path(dest);
            if let Some(parent) = target.parent() {
                // Remember the folders this unpack creates, outermost first.
                let mut missing = Vec::new();
                let mut d = parent;
                while d != dest && !d.exists() {
                    missing.push(d.to_path_buf());
                    match d.parent() {
                        Some(x) => d = x,
                        None => break,
                    }
                }
                fs::create_dir_all(parent)?;
                made_dirs.extend(missing.into_iter().rev());
            }
            if target.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a folder", p.name.key),
                ));
            }
            fs::rename(p.name.to_path(staging), &target)?;
            moved.push(target);
        }
        Ok(())
    })();
    if let Err(e) = res {
        for f in &moved {
            let _ = fs::remove_file(f);
        }
        for d in made_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        return Err(ZipError::Io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn deflated() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
    }

    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, deflated()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        archive: PathBuf,
        dest: PathBuf,
    }

    fn fixture(bytes: &[u8]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("session");
        fs::create_dir_all(&dest).unwrap();
        let archive = dest.join("v8_1065_3a.zip");
        fs::write(&archive, bytes).unwrap();
        Fixture {
            archive,
            dest,
            _tmp: tmp,
        }
    }

    /// Every path under `root`, relative, sorted.
    fn tree(root: &Path) -> Vec<String> {
        fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if p.is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn only_archive_left(f: &Fixture) {
        assert_eq!(
            tree(&f.dest),
            vec!["v8_1065_3a.zip"],
            "nothing partial remains"
        );
        let outside = tree(f.dest.parent().unwrap());
        assert_eq!(outside, vec!["session", "session/v8_1065_3a.zip"]);
    }

    #[test]
    fn unpacks_nested_folders() {
        let f = fixture(&build(&[
            ("import0_1.xml", b"<a/>"),
            ("offers0_1.xml", b"<b/>"),
            ("import_files/ab/cd/x.jpg", b"\xFF\xD8\xFF"),
        ]));
        let r = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(
            r.files,
            vec!["import0_1.xml", "offers0_1.xml", "import_files/ab/cd/x.jpg"]
        );
        assert_eq!(r.bytes, 4 + 4 + 3);
        assert_eq!(
            fs::read(f.dest.join("import_files/ab/cd/x.jpg")).unwrap(),
            b"\xFF\xD8\xFF"
        );
        assert_eq!(fs::read(f.dest.join("import0_1.xml")).unwrap(), b"<a/>");
        assert!(!tree(&f.dest).iter().any(|p| p.contains(STAGING_PREFIX)));
    }

    #[test]
    fn folder_entries_and_stored_entries() {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.add_directory("import_files/", deflated()).unwrap();
        w.add_directory("empty/", deflated()).unwrap();
        w.start_file(
            "import_files/a.jpg",
            SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
        )
        .unwrap();
        w.write_all(b"jpg").unwrap();
        let f = fixture(&w.finish().unwrap().into_inner());
        let r = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(r.files, vec!["import_files/a.jpg"]);
        assert_eq!(fs::read(f.dest.join("import_files/a.jpg")).unwrap(), b"jpg");
    }

    #[test]
    fn cp866_names_without_the_utf8_flag() {
        // The 1C zip writer: cp866 names, no UTF-8 flag. Write a same-length ASCII placeholder
        // and patch the name bytes in both headers.
        let name = "Товары/Фото ёлки.jpg";
        let raw: Vec<u8> = name.chars().map(cp866_byte).collect();
        assert_eq!(decode_entry_name(&raw, false), name);
        let placeholder = "P".repeat(raw.len());
        let mut bytes = build(&[(placeholder.as_str(), b"img")]);
        replace_all(&mut bytes, placeholder.as_bytes(), &raw);
        let f = fixture(&bytes);
        let r = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(r.files, vec![name]);
        assert_eq!(fs::read(f.dest.join(name)).unwrap(), b"img");
    }

    fn cp866_byte(c: char) -> u8 {
        match c {
            'А'..='п' => 0x80 + (c as u32 - 'А' as u32) as u8,
            'р'..='я' => 0xE0 + (c as u32 - 'р' as u32) as u8,
            'Ё' => 0xF0,
            'ё' => 0xF1,
            c if c.is_ascii() => c as u8,
            c => panic!("no cp866 byte for {c}"),
        }
    }

    fn replace_all(hay: &mut [u8], from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let mut i = 0;
        let mut n = 0;
        while i + from.len() <= hay.len() {
            if &hay[i..i + from.len()] == from {
                hay[i..i + from.len()].copy_from_slice(to);
                n += 1;
                i += from.len();
            } else {
                i += 1;
            }
        }
        assert_eq!(n, 2, "local and central headers");
    }

    #[test]
    fn utf8_names() {
        let f = fixture(&build(&[("Фото/ёлка.jpg", b"1")]));
        let r = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(r.files, vec!["Фото/ёлка.jpg"]);
        // Unflagged UTF-8 (some archivers) is still recognised.
        assert_eq!(decode_entry_name("Фото.jpg".as_bytes(), false), "Фото.jpg");
        assert_eq!(decode_entry_name(b"abc+1.jpg", false), "abc+1.jpg");
    }

    #[test]
    fn zip_slip_refuses_the_whole_archive() {
        for evil in ["../../evil.xml", "a/../../evil.xml", "..\\..\\evil.xml"] {
            let f = fixture(&build(&[("import0_1.xml", b"<a/>"), (evil, b"x")]));
            let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
            assert!(
                matches!(
                    e,
                    ZipError::UnsafeName {
                        reason: PathError::Traversal { .. },
                        ..
                    }
                ),
                "{evil}: {e:?}"
            );
            assert!(e.describe(Lang::Ru).contains("Недопустимое имя файла"));
            only_archive_left(&f);
        }
    }

    #[test]
    fn absolute_entries_refuse_the_whole_archive() {
        for evil in ["/tmp/obmen-evil-abs.xml", "C:\\evil.xml", "C:/evil.xml"] {
            let f = fixture(&build(&[("import0_1.xml", b"<a/>"), (evil, b"x")]));
            let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
            assert!(
                matches!(
                    e,
                    ZipError::UnsafeName {
                        reason: PathError::Absolute { .. },
                        ..
                    }
                ),
                "{evil}: {e:?}"
            );
            only_archive_left(&f);
        }
        assert!(!Path::new("/tmp/obmen-evil-abs.xml").exists());
    }

    #[test]
    fn bomb_is_refused_by_ratio_and_rolled_back() {
        let zeros = vec![0u8; 40 * 1024 * 1024];
        let f = fixture(&build(&[("import0_1.xml", b"<a/>"), ("zeros.bin", &zeros)]));
        let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
        assert!(matches!(e, ZipError::Ratio { .. }), "{e:?}");
        assert!(
            e.describe(Lang::Ru).contains("zip-бомб"),
            "{}",
            e.describe(Lang::Ru)
        );
        only_archive_left(&f);
    }

    #[test]
    fn limits_count_actual_bytes() {
        let data = vec![7u8; 10_000];
        let bytes = build(&[("a.bin", &data), ("b.bin", &data)]);
        let f = fixture(&bytes);
        let e = unpack(
            &f.archive,
            &f.dest,
            &ZipLimits {
                max_entry_bytes: 9_999,
                ..ZipLimits::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ZipError::EntryTooLarge { .. }), "{e:?}");
        only_archive_left(&f);
        let e = unpack(
            &f.archive,
            &f.dest,
            &ZipLimits {
                max_total_bytes: 15_000,
                ..ZipLimits::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ZipError::TotalTooLarge { .. }), "{e:?}");
        assert!(e.describe(Lang::En).contains("limit"));
        only_archive_left(&f);
        let e = unpack(
            &f.archive,
            &f.dest,
            &ZipLimits {
                max_entries: 1,
                ..ZipLimits::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ZipError::TooManyEntries { count: 2, limit: 1 }));
        only_archive_left(&f);
        // Exactly at the limits is fine.
        let r = unpack(
            &f.archive,
            &f.dest,
            &ZipLimits {
                max_entry_bytes: 10_000,
                max_total_bytes: 20_000,
                max_entries: 2,
                max_ratio: 0,
            },
        )
        .unwrap();
        assert_eq!(r.bytes, 20_000);
    }

    #[test]
    fn lying_size_headers_do_not_bypass_the_limits() {
        // Claim 10 bytes uncompressed in both headers while the data inflates to 10 000.
        let data = vec![7u8; 10_000];
        let mut bytes = build(&[("a.bin", &data)]);
        let size = 10_000u32.to_le_bytes();
        let fake = 10u32.to_le_bytes();
        let mut n = 0;
        let mut i = 0;
        while i + 4 <= bytes.len() {
            if bytes[i..i + 4] == size {
                bytes[i..i + 4].copy_from_slice(&fake);
                n += 1;
            }
            i += 1;
        }
        assert!(n >= 2);
        let f = fixture(&bytes);
        match unpack(
            &f.archive,
            &f.dest,
            &ZipLimits {
                max_entry_bytes: 1_000,
                ..ZipLimits::default()
            },
        ) {
            Err(ZipError::EntryTooLarge { .. }) | Err(ZipError::Corrupt(_)) => {}
            other => panic!("{other:?}"),
        }
        only_archive_left(&f);
    }

    #[test]
    fn truncated_and_garbage_archives() {
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let good = build(&[("import0_1.xml", &noise)]);
        for cut in [0, 10, 200, good.len() - 10] {
            let f = fixture(&good[..cut]);
            let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
            assert!(matches!(e, ZipError::Corrupt(_)), "{cut}: {e:?}");
            assert!(
                e.describe(Lang::Ru).contains("поврежден"),
                "{}",
                e.describe(Lang::Ru)
            );
            only_archive_left(&f);
        }
        let f = fixture(b"<?xml version=\"1.0\"?><not-a-zip/>");
        assert!(matches!(
            unpack(&f.archive, &f.dest, &ZipLimits::default()),
            Err(ZipError::Corrupt(_))
        ));
    }

    #[test]
    fn damaged_data_is_detected_and_rolled_back() {
        let mut bytes = build(&[
            ("import0_1.xml", b"<a/>"),
            ("b.xml", &b"0123456789".repeat(500)[..]),
        ]);
        // Flip a byte inside the second entry's compressed data (after its local header).
        let name_at = bytes
            .windows(5)
            .position(|w| w == b"b.xml")
            .expect("local header");
        let header = name_at - 30;
        let extra = u16::from_le_bytes([bytes[header + 28], bytes[header + 29]]) as usize;
        let data = name_at + 5 + extra;
        bytes[data + 3] ^= 0xFF;
        let f = fixture(&bytes);
        let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
        assert!(matches!(e, ZipError::Corrupt(_)), "{e:?}");
        only_archive_left(&f);
    }

    #[test]
    fn symlinks_are_refused() {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.start_file("a.xml", deflated()).unwrap();
        w.write_all(b"<a/>").unwrap();
        w.add_symlink("link.xml", "/etc/passwd", deflated())
            .unwrap();
        let f = fixture(&w.finish().unwrap().into_inner());
        let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
        assert!(matches!(e, ZipError::Symlink { .. }), "{e:?}");
        only_archive_left(&f);
    }

    #[test]
    fn special_files_are_refused() {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        // A FIFO (S_IFIFO).
        w.start_file("fifo", deflated().unix_permissions(0o010644))
            .unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let f = fixture(&bytes);
        match unpack(&f.archive, &f.dest, &ZipLimits::default()) {
            Err(ZipError::SpecialFile { .. }) => {}
            // The writer may mask the type bits; then it is a plain empty file.
            Ok(r) => assert_eq!(r.files, vec!["fifo"]),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn encrypted_entries_are_refused() {
        let mut bytes = build(&[("a.xml", b"<a/>")]);
        // Set the encryption bit in the local and central headers' general purpose flags.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let pos = bytes.windows(4).position(|w| w == sig).unwrap();
            let flags_at = if sig == b"PK\x03\x04" {
                pos + 6
            } else {
                pos + 8
            };
            bytes[flags_at] |= 0x01;
        }
        let f = fixture(&bytes);
        let e = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap_err();
        assert!(
            matches!(e, ZipError::Encrypted { .. } | ZipError::Corrupt(_)),
            "{e:?}"
        );
        only_archive_left(&f);
    }

    #[test]
    fn duplicates_and_file_folder_clashes_are_refused() {
        let f = fixture(&build(&[("a/b.xml", b"1"), ("a\\b.xml", b"2")]));
        assert!(matches!(
            unpack(&f.archive, &f.dest, &ZipLimits::default()),
            Err(ZipError::Duplicate { .. })
        ));
        only_archive_left(&f);
        let f = fixture(&build(&[("a", b"1"), ("a/b.xml", b"2")]));
        assert!(matches!(
            unpack(&f.archive, &f.dest, &ZipLimits::default()),
            Err(ZipError::Duplicate { .. })
        ));
        only_archive_left(&f);
    }

    #[test]
    fn webdata_prefix_inside_zips_is_rewritten() {
        let f = fixture(&build(&[(
            "import_files/tmp/webdata/1/2/import_files/ab/x.jpg",
            b"j",
        )]));
        let r = unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(r.files, vec!["import_files/ab/x.jpg"]);
    }

    #[test]
    fn existing_files_are_replaced_and_kept_on_failure() {
        let f = fixture(&build(&[("import0_1.xml", b"new")]));
        fs::write(f.dest.join("import0_1.xml"), b"old").unwrap();
        unpack(&f.archive, &f.dest, &ZipLimits::default()).unwrap();
        assert_eq!(fs::read(f.dest.join("import0_1.xml")).unwrap(), b"new");
        // A failing archive leaves the earlier file alone.
        let bad = build(&[("import0_1.xml", b"newer"), ("../x", b"x")]);
        fs::write(&f.archive, bad).unwrap();
        assert!(unpack(&f.archive, &f.dest, &ZipLimits::default()).is_err());
        assert_eq!(fs::read(f.dest.join("import0_1.xml")).unwrap(), b"new");
    }

    #[test]
    fn effective_limits() {
        let z = ZipLimits {
            max_total_bytes: 0,
            max_entries: 5,
            max_ratio: 0,
            max_entry_bytes: 0,
        }
        .effective();
        assert_eq!(z.max_entries, 5);
        assert_eq!(z.max_total_bytes, ZipLimits::DEFAULT_MAX_TOTAL_BYTES);
        assert_eq!(z.max_ratio, ZipLimits::DEFAULT_MAX_RATIO);
        assert_eq!(z.max_entry_bytes, ZipLimits::DEFAULT_MAX_ENTRY_BYTES);
        let zeros = ZipLimits {
            max_total_bytes: 0,
            max_entries: 0,
            max_ratio: 0,
            max_entry_bytes: 0,
        };
        assert_eq!(zeros.effective(), ZipLimits::default());
    }

    #[test]
    fn messages_in_both_languages() {
        let errs = [
            ZipError::Corrupt("x".into()),
            ZipError::Symlink { entry: "l".into() },
            ZipError::Encrypted { entry: "e".into() },
            ZipError::TooManyEntries { count: 3, limit: 2 },
            ZipError::Ratio {
                entry: "z".into(),
                limit: 200,
            },
        ];
        for e in errs {
            let ru = e.describe(Lang::Ru);
            let en = e.describe(Lang::En);
            assert!(ru.chars().any(|c| ('а'..='я').contains(&c)), "{ru}");
            assert!(en.is_ascii() || en.contains('"'), "{en}");
            assert_ne!(ru, en);
        }
    }
}
