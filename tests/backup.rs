//! `obmen backup` / `obmen restore`: an online backup of a running server restores into a fresh
//! data folder with the same state; damaged or foreign backups are refused and change nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{import_xml, obmen, offers_xml, Server, API_TOKEN};
use serde_json::{json, Value};

fn run(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = obmen()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run obmen");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn backup(data: &Path, dir: &Path) -> PathBuf {
    let (ok, out, err) = run(&["backup", dir.to_str().unwrap()], data);
    assert!(ok, "backup failed: {err}");
    let v: Value = serde_json::from_str(out.trim()).expect("backup prints JSON");
    assert_eq!(v["database"], "sqlite", "{v}");
    assert!(v["migration"].is_string(), "{v}");
    PathBuf::from(v["backup"].as_str().unwrap())
}

/// The state a user sees: catalog summary, orders, one good, one offer.
async fn state(s: &Server) -> Value {
    let mut out = serde_json::Map::new();
    for p in [
        "/api/v1/catalog/summary",
        "/api/v1/orders?limit=100",
        "/api/v1/goods/g2",
        "/api/v1/offers/g3",
    ] {
        let (st, v) = s.api(p).await;
        assert_eq!(st, 200, "{p}: {v}");
        out.insert(p.to_string(), v);
    }
    Value::Object(out)
}

/// A way to damage a copy of a backup folder.
type Damage = Box<dyn Fn(&Path)>;

fn copy_dir(from: &Path, to: &Path) {
    for rel in common::walk(from) {
        let t = to.join(&rel);
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), t).unwrap();
    }
}

#[actix_web::test]
async fn online_backup_restores_the_same_state_and_bad_backups_change_nothing() {
    // The SQLite path (a data folder's file and `VACUUM INTO`); PostgreSQL's has its own test.
    if obmen::store::testing::on_pg() {
        eprintln!(
            "the SQLite backup test runs in the SQLite pass (postgres_backup_round_trip here)"
        );
        return;
    }
    let s = Server::start();
    let ids = ["g1", "g2", "g3"];
    let r = s
        .upload_and_import(
            &[
                ("import.xml", import_xml(&ids, None).as_bytes()),
                ("offers.xml", offers_xml(&ids).as_bytes()),
            ],
            &["import.xml", "offers.xml"],
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
    let order = json!({"channel":"api","external_id":"B-1","date":"2026-11-23T10:00:00+03:00","currency":"RUB",
        "customer":{"name":"Иванов Иван","phone":"+79990000000","address":"Москва, Ленина 1"},
        "lines":[{"offer_id":"g2","quantity":2,"price":101.5}],
        "delivery":{"method":"pickup","cost":0},"payment":{"method":"card","paid":true}});
    let resp = s
        .client
        .post(format!("{}/api/v1/orders", s.base))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    // A stored document (as a label would be) and a card image.
    let doc = s.data.path().join("documents/1/label.pdf");
    std::fs::create_dir_all(doc.parent().unwrap()).unwrap();
    std::fs::write(&doc, b"%PDF-1.4 label").unwrap();
    let img = s.data.path().join("media/ab/cd.jpg");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    std::fs::write(&img, b"\xff\xd8\xff image").unwrap();

    let before = state(&s).await;
    assert_eq!(before["/api/v1/catalog/summary"]["goods"], 3, "{before}");

    // Online: the server keeps running and answering.
    let store = tempfile::tempdir().unwrap();
    let b = backup(s.data.path(), store.path());
    assert!(b.join("manifest.json").is_file());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for p in ["obmen.db", "documents/1/label.pdf", "media/ab/cd.jpg"] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    assert!(
        paths.iter().any(|p| p.starts_with("uploads/")),
        "kept exchange files: {paths:?}"
    );
    assert_eq!(s.summary().await["goods"], 3);

    // A running server's data folder is never restored over, even with --force.
    let (ok, _, err) = run(&["restore", b.to_str().unwrap(), "--force"], s.data.path());
    assert!(!ok);
    assert!(err.contains("in use by a running obmen"), "{err}");

    drop(s);

    // Restore into a fresh folder and start there: the same state.
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&["restore", b.to_str().unwrap()], fresh.path());
    assert!(ok, "restore failed: {err}");
    assert!(out.contains("\"restored\""), "{out}");
    assert_eq!(
        std::fs::read(fresh.path().join("documents/1/label.pdf")).unwrap(),
        b"%PDF-1.4 label"
    );
    // A second restore over the restored database needs --force.
    let (ok, _, err) = run(&["restore", b.to_str().unwrap()], fresh.path());
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");
    let s2 = Server::start_in(fresh, &[]);
    let after = state(&s2).await;
    assert_eq!(before, after);
    drop(s2);

    // Damaged backups: refused with a reason, the target folder stays empty.
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "flipped database byte",
            Box::new(|d: &Path| {
                let p = d.join("obmen.db");
                let mut bytes = std::fs::read(&p).unwrap();
                let i = bytes.len() / 2;
                bytes[i] ^= 0x55;
                std::fs::write(p, bytes).unwrap();
            }),
            "obmen.db is damaged",
        ),
        (
            "missing document",
            Box::new(|d: &Path| std::fs::remove_file(d.join("documents/1/label.pdf")).unwrap()),
            "documents/1/label.pdf is missing",
        ),
        (
            "garbage manifest",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), b"{\"format\":").unwrap()),
            "manifest.json is damaged",
        ),
        (
            "no manifest",
            Box::new(|d: &Path| std::fs::remove_file(d.join("manifest.json")).unwrap()),
            "is not an obmen backup",
        ),
        (
            "foreign manifest",
            Box::new(|d: &Path| {
                let p = d.join("manifest.json");
                let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                v["format"] = json!("something-else");
                std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
            }),
            "not an obmen backup",
        ),
        (
            "path escaping the backup",
            Box::new(|d: &Path| {
                let p = d.join("manifest.json");
                let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                v["files"][0]["path"] = json!("../outside");
                std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
            }),
            "outside the backup",
        ),
    ];
    for (what, damage, reason) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&b, copy.path());
        damage(copy.path());
        let target = tempfile::tempdir().unwrap();
        let (ok, _, err) = run(&["restore", copy.path().to_str().unwrap()], target.path());
        assert!(!ok, "{what}: restored");
        assert!(err.contains(reason), "{what}: {err}");
        let left: Vec<PathBuf> = common::walk(target.path())
            .into_iter()
            .filter(|p| p != Path::new(obmen::backup::LOCK_FILE))
            .collect();
        assert!(left.is_empty(), "{what}: wrote {left:?}");
    }
}

/// PostgreSQL: pg_dump / pg_restore round trip. Needs OBMEN_TEST_PG_URL (a server URL such as
/// postgres://postgres@127.0.0.1:5432/postgres; fresh databases are created next to it).
#[test]
fn postgres_backup_round_trip() {
    let Ok(base) = std::env::var("OBMEN_TEST_PG_URL") else {
        eprintln!("skipped: set OBMEN_TEST_PG_URL to run the PostgreSQL backup test");
        return;
    };
    let psql = |url: &str, sql: &str| -> String {
        let out = std::process::Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let tag = format!("obmen_bk_{}", std::process::id());
    let (src, dst) = (format!("{tag}_src"), format!("{tag}_dst"));
    let url_of = |db: &str| {
        let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
        let prefix = match base[host_start..].find('/') {
            Some(i) => &base[..host_start + i],
            None => base.as_str(),
        };
        format!("{prefix}/{db}")
    };
    for db in [&src, &dst] {
        psql(&base, &format!("DROP DATABASE IF EXISTS {db}"));
        psql(&base, &format!("CREATE DATABASE {db}"));
    }
    let (src_url, dst_url) = (url_of(&src), url_of(&dst));
    // obmen's schema, plus a probe table with Cyrillic rows.
    let migrated = obmen()
        .arg("migrate")
        .env("OBMEN_DATABASE_URL", &src_url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "migrate on PostgreSQL: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    psql(
        &src_url,
        "CREATE TABLE bk_probe (id int PRIMARY KEY, name text); INSERT INTO bk_probe VALUES (1, 'Дрель'), (2, 'Пила')",
    );
    let data = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = obmen()
        .args(["backup", store.path().to_str().unwrap(), "--data-dir"])
        .arg(data.path())
        .env("OBMEN_DATABASE_URL", &src_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["database"], "postgres");
    let b = v["backup"].as_str().unwrap().to_string();
    let restore = |force: bool| {
        let mut c = obmen();
        c.args(["restore", &b, "--data-dir"])
            .arg(data.path())
            .env("OBMEN_DATABASE_URL", &dst_url);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let out = restore(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        psql(
            &dst_url,
            "SELECT string_agg(name, ',' ORDER BY id) FROM bk_probe"
        ),
        "Дрель,Пила"
    );
    let out = restore(false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(restore(true).status.success());
    for db in [&src, &dst] {
        psql(&base, &format!("DROP DATABASE IF EXISTS {db}"));
    }
}
