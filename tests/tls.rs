//! `serve` over HTTPS (`OBMEN_TLS_CERT` / `OBMEN_TLS_KEY`): 1C's checkauth and a dashboard page
//! through rustls with a self-signed certificate the client trusts, HSTS and Secure cookies;
//! plain HTTP to the TLS port gets no answer; a missing key refuses the start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::Server;

/// A self-signed certificate for `localhost` / 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, reqwest::Certificate) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let trusted = reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap();
    (cert, key, trusted)
}

fn trusting(cert: &reqwest::Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(cert.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_exchange_and_dashboard() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, trusted) = self_signed(certs.path());
    let mut srv = Server::start_with(&[
        ("OBMEN_TLS_CERT", cert.to_str().unwrap()),
        ("OBMEN_TLS_KEY", key.to_str().unwrap()),
    ]);
    assert!(srv.base.starts_with("https://127.0.0.1:"), "{}", srv.base);
    srv.client = trusting(&trusted);

    // 1C: checkauth over TLS gets its session cookie.
    let cookie = srv.login("catalog").await;
    assert!(cookie.contains('='), "{cookie}");
    let r = srv.get("type=catalog&mode=init", None, Some(&cookie)).await;
    assert!(r.body.starts_with("zip="), "init: {}", r.body);

    // The dashboard: HSTS and a Secure cookie.
    let r = srv
        .client
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .expect("login page over https");
    assert_eq!(r.status(), 200);
    let hsts = r
        .headers()
        .get("strict-transport-security")
        .expect("HSTS header")
        .to_str()
        .unwrap()
        .to_string();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    let set_cookie: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        !set_cookie.is_empty(),
        "the login form sets its CSRF cookie"
    );
    for c in &set_cookie {
        assert!(c.contains("Secure"), "cookie without Secure: {c}");
    }

    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert!(untrusting.get(srv.url()).send().await.is_err());

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = srv.base.replacen("https://", "http://", 1);
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!(
            "{plain}/1c_exchange.php?type=catalog&mode=checkauth"
        ))
        .header("Authorization", Server::basic())
        .send()
        .await;
    assert!(
        r.is_err(),
        "plain http answered: {:?}",
        r.map(|r| r.status())
    );
}

#[tokio::test]
async fn plain_http_has_no_hsts() {
    let srv = Server::start();
    assert!(srv.base.starts_with("http://"), "{}", srv.base);
    let r = srv
        .client
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
}

#[test]
fn missing_key_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, _, _) = self_signed(certs.path());
    let missing = certs.path().join("no-such-key.pem");
    let mut cmd = common::obmen();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("OBMEN_CONFIG")
        .env("OBMEN_EXCHANGE_LOGIN", common::LOGIN)
        .env("OBMEN_EXCHANGE_PASSWORD", common::PASSWORD)
        .env("OBMEN_TLS_CERT", &cert)
        .env("OBMEN_TLS_KEY", &missing)
        .stdin(Stdio::null());
    common::with_db(&mut cmd, data.path());
    let out = cmd.output().expect("run obmen serve");
    assert!(!out.status.success(), "started without its key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the private key") && stderr.contains("no-such-key.pem"),
        "stderr: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening on"), "stdout: {stdout}");
}
