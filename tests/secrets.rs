//! Secrets never reach the logs: the server runs at `OBMEN_LOG=trace` with distinctive
//! credentials, every flow that uses them runs (1C checkauth right and wrong, the JSON API,
//! Ozon and CDEK calls against the simulators, dashboard sign-in right and wrong), and the
//! captured stdout+stderr must contain none of them, nor their Basic/base64 forms.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{basic, eventually, import_xml, offers_xml, spawn_cdek_sim, Dash, Sim};

const LOGIN: &str = "1c";
const PASSWORD: &str = "Xchg-Pw-7f3a91c2";
const WRONG_PASSWORD: &str = "Xchg-Wrong-5be17d04";
const API_TOKEN: &str = "Api-Tok-c0ffee42d1";
const OZON_CLIENT: &str = "777001";
const OZON_KEY: &str = "Ozon-Key-9d8e7f60ab";
const CDEK_CLIENT: &str = "CdekClient-31ab77";
const CDEK_SECRET: &str = "Cdek-Secret-4a5b6c7d8e";
const DASH_USER: &str = "boss";
const DASH_PASSWORD: &str = "Dash-Pw-e1e2e3e4e5";
const DASH_WRONG: &str = "Dash-Wrong-f9f8f7f6";

struct Logged {
    child: std::process::Child,
    base: String,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, log: &Path, env: &[(&str, String)]) -> Logged {
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_obmen"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("OBMEN_CONFIG")
        .env("OBMEN_LOG", "trace")
        .env("OBMEN_EXCHANGE_LOGIN", LOGIN)
        .env("OBMEN_EXCHANGE_PASSWORD", PASSWORD)
        .env("OBMEN_API_TOKEN", API_TOKEN)
        .env("OBMEN_IMPORT_WAIT_SECS", "2")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out));
    common::with_db(&mut cmd, data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut srv = Logged {
        child: cmd.spawn().expect("start obmen"),
        base: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            srv.base = format!("http://{addr}");
            return srv;
        }
        assert!(Instant::now() < deadline, "obmen did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_trace_logs() {
    let ozon = Sim::start(&[
        "--client-id",
        OZON_CLIENT,
        "--api-key",
        OZON_KEY,
        "--no-rate-limits",
    ]);
    let (mut cdek, cdek_base) =
        spawn_cdek_sim(&["--client-id", CDEK_CLIENT, "--client-secret", CDEK_SECRET]);
    let data = tempfile::tempdir().unwrap();
    common::add_user(data.path(), DASH_USER, "admin", DASH_PASSWORD);
    let log = data.path().join("obmen.log");
    let srv = serve(
        data.path(),
        &log,
        &[
            ("OBMEN_OZON_BASE_URL", ozon.base.clone()),
            ("OBMEN_OZON_CLIENT_ID", OZON_CLIENT.into()),
            ("OBMEN_OZON_API_KEY", OZON_KEY.into()),
            ("OBMEN_OZON_WAREHOUSE_ID", common::SIM_WAREHOUSE.into()),
            ("OBMEN_RELAY_BACKOFF_MS", "100".into()),
            ("OBMEN_RELAY_BACKOFF_MAX_SECS", "2".into()),
            ("OBMEN_CDEK_BASE_URL", format!("{cdek_base}/v2")),
            ("OBMEN_CDEK_CLIENT_ID", CDEK_CLIENT.into()),
            ("OBMEN_CDEK_CLIENT_SECRET", CDEK_SECRET.into()),
            ("OBMEN_CDEK_FROM_LOCATION", "44".into()),
            // With a public URL obmen subscribes to CDEK webhooks at start (an OAuth call).
            ("OBMEN_PUBLIC_URL", "http://127.0.0.1:9".into()),
        ],
    );
    let client = reqwest::Client::new();
    let ex = format!("{}/1c_exchange.php", srv.base);

    // 1C: wrong then right password, then a catalog exchange (which Ozon then receives).
    let r = client
        .get(format!("{ex}?type=catalog&mode=checkauth"))
        .header("Authorization", basic(LOGIN, WRONG_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.starts_with("failure"), "{r}");
    let r = client
        .get(format!("{ex}?type=catalog&mode=checkauth"))
        .header("Authorization", basic(LOGIN, PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = r.split('\n').collect();
    assert_eq!(lines[0], "success", "{r}");
    let cookie = format!("{}={}", lines[1], lines[2]);
    let ids = ["s1", "s2"];
    for (name, body) in [
        ("import.xml", import_xml(&ids, None)),
        ("offers.xml", offers_xml(&ids)),
    ] {
        let r = client
            .post(format!("{ex}?type=catalog&mode=file&filename={name}"))
            .header("Cookie", &cookie)
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(r.starts_with("success"), "{r}");
    }
    for name in ["import.xml", "offers.xml"] {
        loop {
            let r = client
                .get(format!("{ex}?type=catalog&mode=import&filename={name}"))
                .header("Cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if !r.starts_with("progress") {
                assert!(r.starts_with("success"), "{r}");
                break;
            }
        }
    }

    // The JSON API: the token, a wrong token.
    let api = |token: &'static str, path: &'static str| {
        let (client, base) = (client.clone(), srv.base.clone());
        async move {
            client
                .get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(api(API_TOKEN, "/api/v1/catalog/summary").await, 200);
    assert_eq!(api("Api-Tok-wrong", "/api/v1/catalog/summary").await, 401);

    // Both marketplace and courier calls happened (the call journal shows them).
    eventually(60, "an Ozon call and a CDEK call in the journal", || {
        let (client, base) = (client.clone(), srv.base.clone());
        async move {
            let v: serde_json::Value = client
                .get(format!("{base}/api/v1/calls?limit=200"))
                .header("Authorization", format!("Bearer {API_TOKEN}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let text = v.to_string();
            (text.contains("\"ozon\"") && text.contains("\"cdek\"")).then_some(())
        }
    })
    .await;

    // Dashboard: a wrong password, then the right one.
    assert!(Dash::login(&srv.base, DASH_USER, DASH_WRONG).await.is_err());
    let d = Dash::login(&srv.base, DASH_USER, DASH_PASSWORD)
        .await
        .expect("dashboard sign-in");
    assert_eq!(d.get("/").await.status, 200);

    drop(srv);
    let _ = cdek.kill();
    let _ = cdek.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    // The capture is real: trace-level lines about these very flows are there.
    assert!(text.contains("TRACE") || text.contains("DEBUG"), "{text}");
    assert!(text.contains("listening on"), "{text}");
    let mut secrets = vec![
        PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        API_TOKEN.to_string(),
        OZON_KEY.to_string(),
        CDEK_SECRET.to_string(),
        DASH_PASSWORD.to_string(),
        DASH_WRONG.to_string(),
    ];
    for (u, p) in [
        (LOGIN, PASSWORD),
        (LOGIN, WRONG_PASSWORD),
        (CDEK_CLIENT, CDEK_SECRET),
    ] {
        secrets.push(b64(&format!("{u}:{p}")));
    }
    for s in &secrets {
        if let Some(i) = text.find(s.as_str()) {
            let from = text[..i].rfind('\n').map(|j| j + 1).unwrap_or(0);
            let to = text[i..].find('\n').map(|j| i + j).unwrap_or(text.len());
            panic!("secret {s:?} in the log: {}", &text[from..to]);
        }
    }
}
