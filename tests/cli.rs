//! The command line: offline import, migrate, and the first-start password.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn import_prints_one_json_line_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let imp = dir.path().join("import.xml");
    let off = dir.path().join("offers.xml");
    std::fs::write(&imp, import_xml(&["a", "b", "c"], None)).unwrap();
    std::fs::write(&off, offers_xml(&["a", "b", "c"])).unwrap();
    let out = obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .envs(db_envs(dir.path().join("data")))
        .arg(&imp)
        .arg(&off)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Regression: a fresh data folder used to log "database is locked" while the pool's
    // connections raced to switch the journal mode.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("locked"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["files"], 2);
    assert_eq!(v["goods"], 3);
    assert_eq!(v["offers"], 3);
    let bytes = std::fs::metadata(&imp).unwrap().len() + std::fs::metadata(&off).unwrap().len();
    assert_eq!(v["bytes"], bytes);
    assert!(v["seconds"].as_f64().is_some() && v["mb_per_s"].as_f64().is_some());
}

#[test]
fn import_of_bad_input_fails_clearly_and_keeps_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let good = dir.path().join("import.xml");
    std::fs::write(&good, import_xml(&["a", "b"], None)).unwrap();
    assert!(obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(&data)
        .envs(db_envs(&data))
        .arg(&good)
        .output()
        .unwrap()
        .status
        .success());

    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, import_xml(&["a", "z"], Some(1))).unwrap();
    let out = obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(&data)
        .envs(db_envs(&data))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.xml") && err.contains("строк"), "{err}");

    let missing = obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(&data)
        .envs(db_envs(&data))
        .arg(dir.path().join("nope.xml"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.xml"));

    let notzip = dir.path().join("x.zip");
    std::fs::write(&notzip, b"PK\x03\x04garbage").unwrap();
    let out = obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(&data)
        .envs(db_envs(&data))
        .arg(&notzip)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The store still has exactly the two goods of the good import, unchanged.
    let out = obmen()
        .arg("import")
        .arg("--data-dir")
        .arg(&data)
        .envs(db_envs(&data))
        .arg(&good)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["goods"], 2);
    assert!(v["unchanged"].as_i64().unwrap() >= 2, "{v}");
    assert_eq!(v["created"], 0, "{v}");
}

#[test]
fn migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = obmen()
            .arg("migrate")
            .arg("--data-dir")
            .arg(dir.path())
            .envs(db_envs(dir.path()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["up_to_date"], true);
    }
    if !obmen::store::testing::on_pg() {
        assert!(dir.path().join("obmen.db").exists());
    }
}

/// Start `serve` without a configured password; returns (stdout lines until "listening", child).
fn serve_capture(data: &std::path::Path) -> (Vec<String>, std::process::Child) {
    let mut child = obmen()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(db_envs(data))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("listening on");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = l.contains("listening on");
        lines.push(l);
        if done {
            break;
        }
    }
    (lines, child)
}

#[tokio::test]
async fn first_start_generates_a_password_shown_once_and_stores_only_its_hash() {
    let data = tempfile::tempdir().unwrap();
    let (lines, mut child) = serve_capture(data.path());
    let password = lines
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("password:")
                .map(|p| p.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no password printed: {lines:?}"));
    assert!(password.len() >= 12);
    let addr = lines
        .last()
        .unwrap()
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    let body = client
        .get(format!(
            "http://{addr}/1c_exchange.php?type=catalog&mode=checkauth"
        ))
        .header("Authorization", basic("1c", &password))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("success\n"), "{body}");
    let _ = child.kill();
    let _ = child.wait();

    // Only the hash is kept: in the data folder's files, and (on PostgreSQL) in the settings.
    let mut db = Vec::new();
    for f in walk(data.path()) {
        if let Ok(bytes) = std::fs::read(data.path().join(f)) {
            db.extend(bytes);
        }
    }
    if obmen::store::testing::on_pg() {
        use diesel::prelude::*;
        use obmen::store::schema::settings;
        let pool = obmen::store::open(&obmen::store::testing::url(data.path()), 1).unwrap();
        let values: Vec<String> = settings::table
            .select(settings::value)
            .load(&mut pool.get().unwrap())
            .unwrap();
        for v in values {
            db.extend(v.into_bytes());
        }
    }
    assert!(
        !db.windows(password.len()).any(|w| w == password.as_bytes()),
        "the plain password is stored"
    );
    assert!(
        db.windows(9).any(|w| w == b"$argon2id"),
        "an argon2 hash is stored"
    );

    // The second start prints no password and the old one still works.
    let (lines, mut child) = serve_capture(data.path());
    assert!(!lines.iter().any(|l| l.contains("password:")), "{lines:?}");
    let addr = lines
        .last()
        .unwrap()
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let body = client
        .get(format!(
            "http://{addr}/1c_exchange.php?type=catalog&mode=checkauth"
        ))
        .header("Authorization", basic("1c", &password))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("success\n"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}
