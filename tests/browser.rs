//! The dashboard in a real browser (headless Chromium through ChromeDriver): sign in, watch an
//! exchange appear while `obmen emulate-1c` runs, see a red row for a broken file, download a kept
//! file, retry a dead message. Screenshots go to target/browser-artifacts (CI keeps them).
//!
//! Needs `chromedriver` and `chromium` (Debian: chromium, chromium-driver). Without them the test
//! says so and passes, unless OBMEN_REQUIRE_BROWSER=1 (as in .ci/run), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::{Server, Sim};

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ChromeDriver and Chromium, or None (with the reason printed) when the machine lacks them.
async fn start_browser() -> Option<(Driver, Client)> {
    let required = std::env::var("OBMEN_REQUIRE_BROWSER").as_deref() == Ok("1");
    let driver = find_program(&["chromedriver"]);
    let chrome = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(chrome)) = (driver, chrome) else {
        assert!(
            !required,
            "OBMEN_REQUIRE_BROWSER=1 but chromedriver/chromium are not installed"
        );
        eprintln!("browser tests skipped: chromedriver or chromium not found");
        return None;
    };
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome.to_string_lossy(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--lang=ru"],
        }),
    );
    let mut last = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&d.url)
            .await
        {
            Ok(c) => return Some((d, c)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot start a browser session: {last:?}");
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("OBMEN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    match c.screenshot().await {
        Ok(png) => std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap(),
        Err(e) => eprintln!("screenshot {name} failed: {e}"),
    }
}

async fn wait_css(c: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            let src = c.source().await.unwrap_or_default();
            panic!("{what}: {css} did not appear ({e}); page: {src}");
        }
    }
}

/// Run `obmen emulate-1c` in the background (it must not block the browser).
fn emulate_bg(url: &str, files: Vec<PathBuf>) -> tokio::task::JoinHandle<bool> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        common::obmen()
            .arg("emulate-1c")
            .arg(&url)
            .args(&files)
            .args(["--user", common::LOGIN, "--password", common::PASSWORD])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_in_watches_exchanges_downloads_and_retries() {
    let Some((_driver, c)) = start_browser().await else {
        return;
    };
    // Ozon answers 500 to everything at first; one attempt makes a message dead.
    let sim = Sim::start(&[]);
    sim.control("/sim/faults", json!({"rate_500": 1.0})).await;
    let mut env = sim.obmen_env();
    env.push(("OBMEN_RELAY_MAX_ATTEMPTS", "1".into()));
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&e);
    common::add_user(srv.data.path(), "anna", "admin", "anna-password");

    // Sign in through the form (the first page asked for was /exchanges).
    c.goto(&format!("{}/exchanges", srv.base)).await.unwrap();
    wait_css(&c, "#login-form", "the login form").await;
    shot(&c, "01-login").await;
    c.find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys("anna")
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("anna-password")
        .await
        .unwrap();
    c.find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&c, "#current-user", "signed in").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/exchanges"));
    assert!(c
        .find_all(Locator::Css("tr.exchange"))
        .await
        .unwrap()
        .is_empty());

    // 1C exchanges while the page is open: the row appears by itself (live refresh).
    let dir = tempfile::tempdir().unwrap();
    common::gen_catalog(dir.path(), 20, 5, false);
    let ok = emulate_bg(
        &srv.url(),
        vec![dir.path().join("import.xml"), dir.path().join("offers.xml")],
    );
    assert!(ok.await.unwrap(), "emulate-1c succeeded");
    let row = wait_css(&c, "tr.exchange.ok", "a green exchange row").await;
    let text = row.text().await.unwrap();
    assert!(
        text.contains("import.xml") || text.contains(".zip"),
        "{text}"
    );
    shot(&c, "02-exchange-appeared").await;

    // A broken file: a red row with the reason.
    let broken = dir.path().join("broken.xml");
    std::fs::write(&broken, common::import_xml(&["b1", "b2"], Some(1))).unwrap();
    assert!(!emulate_bg(&srv.url(), vec![broken]).await.unwrap());
    let red = wait_css(&c, "tr.exchange.bad", "a red exchange row").await;
    assert!(red.text().await.unwrap().contains("Артикул"));
    shot(&c, "03-red-row").await;

    // The good exchange's page: download a kept file in the browser (its own session cookie).
    let good = c.find(Locator::Css("tr.exchange.ok td a")).await.unwrap();
    good.click().await.unwrap();
    let link = wait_css(&c, "a.kept-file", "kept files").await;
    shot(&c, "04-exchange-page").await;
    let href = link.attr("href").await.unwrap().unwrap();
    let body = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('ERR ' + e));",
            vec![json!(href)],
        )
        .await
        .unwrap();
    let body = body.as_str().unwrap_or_default().to_string();
    let kept = srv.api("/api/v1/exchanges?limit=20").await.1;
    assert!(kept.is_array());
    assert!(
        body.contains("КоммерческаяИнформация"),
        "the kept file downloads: {}",
        &body[..body.len().min(300)]
    );

    // Messages to Ozon went dead (500 each time). Ozon recovers; the operator retries one.
    common::eventually(60, "a dead Ozon message", || async {
        let (_, v) = srv.api("/api/v1/outbox?state=dead&limit=5").await;
        (!v["messages"].as_array()?.is_empty()).then_some(())
    })
    .await;
    sim.control("/sim/faults", json!({"rate_500": 0.0})).await;
    c.goto(&format!("{}/messages?state=dead", srv.base))
        .await
        .unwrap();
    let first = wait_css(&c, "a.message-link", "a dead message in the register").await;
    first.click().await.unwrap();
    let retry = wait_css(&c, "#retry", "the retry button").await;
    shot(&c, "05-dead-message").await;
    let url = c.current_url().await.unwrap();
    let id: i64 = url.path().trim_start_matches("/messages/").parse().unwrap();
    retry.click().await.unwrap();
    common::eventually(60, "the retried message is delivered", || async {
        let (_, v) = srv.api(&format!("/api/v1/outbox/{id}")).await;
        (v["state"] == "done" || v["message"]["state"] == "done").then_some(())
    })
    .await;
    c.goto(&format!("{}/messages/{id}", srv.base))
        .await
        .unwrap();
    shot(&c, "06-retried").await;

    // Sign out.
    c.find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&c, "#login-form", "signed out").await;
    c.close().await.unwrap();
}
