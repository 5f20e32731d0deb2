//! TLS: rustls with the ring provider (aws-lc-rs would need cmake to build), for `serve` over
//! HTTPS (`[server] tls_cert` / `tls_key`) and for outgoing https (reqwest).

use std::path::Path;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig;

/// `Strict-Transport-Security` sent with every answer when `serve` speaks HTTPS: a year.
pub const HSTS: &str = "max-age=31536000";

/// Make ring the process-wide rustls provider (reqwest is built without one of its own).
/// Idempotent; runs by itself before `main` and before every test (see [`init`]).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only if another thread installed one in between: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Before `main` of the binaries that link this file's object (the server, the simulators, the
/// test binaries): without a provider installed, building any `reqwest::Client` panics. A binary
/// that uses little else of the library may not link it (the load example did not): such a
/// binary calls [`install_crypto_provider`] itself.
/// Safe before `main`: it only allocates and sets a `OnceLock`.
#[ctor::ctor]
unsafe fn init() {
    install_crypto_provider();
}

/// The TLS settings for `serve`: `None` for plain HTTP (neither path set); an error that names
/// the file and what is wrong with it when only one path is set or a file is missing,
/// unreadable or not a PEM certificate chain / private key matching each other.
pub fn server_config(cfg: &ServerConfig) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            bail!("TLS: tls_cert is set but tls_key is not (OBMEN_TLS_KEY); set both or neither")
        }
        (None, Some(_)) => {
            bail!("TLS: tls_key is set but tls_cert is not (OBMEN_TLS_CERT); set both or neither")
        }
    };
    install_crypto_provider();
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "TLS: the certificate {} and the key {} cannot be used together: {e}",
                cert.display(),
                key_path(cfg).display()
            )
        })?;
    Ok(Some(config))
}

fn key_path(cfg: &ServerConfig) -> &Path {
    cfg.tls_key.as_deref().unwrap_or(Path::new(""))
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("TLS: cannot read the {what} {}", path.display()))
}

/// Every `CERTIFICATE` block of a PEM file, the server's own first.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "TLS: the certificate {} is not valid PEM: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "TLS: the certificate {} holds no PEM CERTIFICATE block",
            path.display()
        );
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "TLS: the private key {} holds no PEM PRIVATE KEY block",
            path.display()
        ),
        e => anyhow::anyhow!(
            "TLS: the private key {} is not valid PEM: {e}",
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cert: Option<&Path>, key: Option<&Path>) -> ServerConfig {
        ServerConfig {
            tls_cert: cert.map(Path::to_path_buf),
            tls_key: key.map(Path::to_path_buf),
            ..Default::default()
        }
    }

    fn err(c: &ServerConfig) -> String {
        format!("{:#}", server_config(c).expect_err("must refuse"))
    }

    #[test]
    fn provider_is_installed_before_main() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        reqwest::Client::builder().build().expect("client");
    }

    #[test]
    fn plain_http_without_paths() {
        assert!(server_config(&cfg(None, None)).unwrap().is_none());
    }

    #[test]
    fn clear_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        assert!(server_config(&cfg(Some(&cert), Some(&key)))
            .unwrap()
            .is_some());

        let e = err(&cfg(Some(&cert), None));
        assert!(e.contains("tls_key is not"), "{e}");
        let e = err(&cfg(None, Some(&key)));
        assert!(e.contains("tls_cert is not"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = err(&cfg(Some(&cert), Some(&missing)));
        assert!(
            e.contains("cannot read the private key") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(&cfg(Some(&missing), Some(&key)));
        assert!(e.contains("cannot read the certificate"), "{e}");
        // Swapped files: no CERTIFICATE block in the key, no key in the certificate.
        let e = err(&cfg(Some(&key), Some(&key)));
        assert!(e.contains("no PEM CERTIFICATE block"), "{e}");
        let e = err(&cfg(Some(&cert), Some(&cert)));
        assert!(e.contains("no PEM PRIVATE KEY block"), "{e}");
        // Garbage inside a PEM frame.
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = err(&cfg(Some(&bad), Some(&key)));
        assert!(e.contains("is not valid PEM"), "{e}");
        // A key of another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key2 = dir.path().join("key2.pem");
        std::fs::write(&key2, other.signing_key.serialize_pem()).unwrap();
        let e = err(&cfg(Some(&cert), Some(&key2)));
        assert!(e.contains("cannot be used together"), "{e}");
    }
}
