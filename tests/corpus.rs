//! Every file of the real-world corpus (../shared/realworld) reads and imports, and what is read
//! matches the element counts of its SOURCES.md table.
//!
//! Corpus location: `OBMEN_REALWORLD`, else the first `shared/realworld` found walking up from
//! the crate folder. Without a corpus the test passes with a notice, unless
//! `OBMEN_REQUIRE_CORPUS=1` (as in CI), where it fails.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use obmen::catalog::{import_file, query};
use obmen::cml::{CmlReader, Item};

fn corpus_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("OBMEN_REALWORLD") {
        let dir = PathBuf::from(dir);
        return dir.join("SOURCES.md").is_file().then_some(dir);
    }
    let mut at = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(dir) = at {
        let candidate = dir.join("shared").join("realworld");
        if candidate.join("SOURCES.md").is_file() {
            return Some(candidate);
        }
        at = dir.parent();
    }
    None
}

fn corpus() -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        if std::env::var("OBMEN_REQUIRE_CORPUS").as_deref() == Ok("1") {
            panic!("OBMEN_REQUIRE_CORPUS=1 but no corpus: set OBMEN_REALWORLD or put it at ../shared/realworld");
        }
        eprintln!("SKIP: real-world corpus not found (set OBMEN_REALWORLD); corpus tests skipped");
    }
    dir
}

/// One row of SOURCES.md: the file, its kind and the element counts of its "contents" column.
#[derive(Debug)]
struct Row {
    file: String,
    kind: String,
    counts: BTreeMap<String, u64>,
}

fn sources(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("SOURCES.md")).expect("SOURCES.md");
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | # | file | repo | path | commit | blob | bytes | kind | schema | encoding | contents | …
        if cells.len() < 12 || cells[1].parse::<u32>().is_err() {
            continue;
        }
        let file = cells[2].trim_matches('`').to_string();
        let kind = cells[8].to_string();
        let mut counts = BTreeMap::new();
        // "Товар 4 / Предложение 0 / Документ 2; Склад 2, Контрагент 2; top: …"
        for part in cells[11].split([';', ',', '/']) {
            let mut words = part.split_whitespace();
            if let (Some(name), Some(n), None) = (words.next(), words.next(), words.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    counts.insert(name.to_string(), n);
                }
            }
        }
        rows.push(Row { file, kind, counts });
    }
    rows
}

#[derive(Debug, Default)]
struct Read {
    goods: u64,
    offers: u64,
    documents: u64,
    groups: u64,
    properties: u64,
    good_ids: HashSet<String>,
    offer_ids: HashSet<String>,
}

fn read_all(path: &Path) -> Read {
    let mut r = CmlReader::open(path).unwrap();
    let mut out = Read::default();
    let mut first = true;
    while let Some(item) = r
        .next_item()
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.describe(obmen::i18n::Lang::En)))
    {
        if first {
            assert!(
                matches!(item, Item::Header(_)),
                "{}: header first",
                path.display()
            );
            first = false;
        }
        match item {
            Item::Good(g) => {
                out.goods += 1;
                out.good_ids.insert(g.id);
            }
            Item::Offer(o) => {
                out.offers += 1;
                out.offer_ids.insert(o.id);
            }
            Item::Document(_) => out.documents += 1,
            Item::Group(_) => out.groups += 1,
            Item::Property(_) => out.properties += 1,
            _ => {}
        }
    }
    let size = std::fs::metadata(path).unwrap().len();
    assert_eq!(r.bytes_read(), size, "{}: all bytes read", path.display());
    out
}

fn fresh_store() -> (tempfile::TempDir, obmen::store::DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = obmen::store::open(&obmen::store::testing::url(dir.path()), 2).unwrap();
    (dir, pool)
}

#[test]
fn every_corpus_file_reads_with_the_documented_counts() {
    let Some(dir) = corpus() else { return };
    let rows = sources(&dir);
    assert!(rows.len() >= 60, "SOURCES.md rows: {}", rows.len());
    let mut problems = Vec::new();
    for row in &rows {
        let path = dir.join(&row.file);
        let read = read_all(&path);
        let want = |name: &str| row.counts.get(name).copied();
        // In order files `Товар` counts document lines, not catalog goods.
        let documents_file = row.kind.starts_with("orders");
        let want_goods = if documents_file {
            0
        } else {
            want("Товар").unwrap_or(0)
        };
        let checks = [
            ("Товар", read.goods, Some(want_goods)),
            ("Предложение", read.offers, want("Предложение")),
            ("Документ", read.documents, want("Документ")),
            ("Группа", read.groups, want("Группа")),
            ("Свойство", read.properties, want("Свойство")),
        ];
        for (what, got, want) in checks {
            if let Some(want) = want {
                if got != want {
                    problems.push(format!(
                        "{}: {what} read {got}, SOURCES.md {want}",
                        row.file
                    ));
                }
            }
        }
        println!(
            "{}: goods {} ({} ids), offers {} ({} ids), documents {}, groups {}, properties {}",
            row.file,
            read.goods,
            read.good_ids.len(),
            read.offers,
            read.offer_ids.len(),
            read.documents,
            read.groups,
            read.properties
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_corpus_file_imports_into_a_fresh_store() {
    let Some(dir) = corpus() else { return };
    for row in sources(&dir) {
        let path = dir.join(&row.file);
        let read = read_all(&path);
        let (_tmp, pool) = fresh_store();
        let mut conn = pool.get().unwrap();
        let stats = import_file(&mut conn, &path, None, &mut |_| {})
            .unwrap_or_else(|e| panic!("{}: {}", row.file, e.describe(obmen::i18n::Lang::En)));
        assert_eq!(stats.goods, read.goods, "{}", row.file);
        assert_eq!(stats.offers, read.offers, "{}", row.file);
        assert_eq!(stats.documents, read.documents, "{}", row.file);
        let summary = query::summary(&mut conn).unwrap();
        // The store keeps one row per distinct Ид (duplicates in a file update the same row).
        assert_eq!(summary.goods as usize, read.good_ids.len(), "{}", row.file);
        assert_eq!(
            summary.offers as usize,
            read.offer_ids.len(),
            "{}",
            row.file
        );
    }
}

#[test]
fn whole_corpus_imports_in_order_into_one_store() {
    let Some(dir) = corpus() else { return };
    let (_tmp, pool) = fresh_store();
    let mut conn = pool.get().unwrap();
    let mut good_ids = HashSet::new();
    let mut offer_ids = HashSet::new();
    for row in sources(&dir) {
        let path = dir.join(&row.file);
        let read = read_all(&path);
        good_ids.extend(read.good_ids);
        offer_ids.extend(read.offer_ids);
        import_file(&mut conn, &path, None, &mut |_| {})
            .unwrap_or_else(|e| panic!("{}: {}", row.file, e.describe(obmen::i18n::Lang::En)));
    }
    let summary = query::summary(&mut conn).unwrap();
    assert_eq!(summary.goods as usize, good_ids.len());
    assert_eq!(summary.offers as usize, offer_ids.len());
    println!("whole corpus: {summary:?}");
}
