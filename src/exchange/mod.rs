//! The 1C exchange protocol ("1c_exchange.php"): sessions, uploads, archives, background imports
//! and the answers 1C reads. See ../shared/reference/1c-exchange-protocol.md.

pub mod auth;
pub mod handler;
pub mod history;
pub mod jobs;
pub mod lockout;
pub mod paths;
pub mod query;
pub mod sale;
pub mod zipx;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use diesel::prelude::*;
use rand::Rng;
use serde::Serialize;

use crate::config::Config;
use crate::i18n::Lang;
use crate::store::schema::{exchange_requests, exchange_sessions, import_jobs, uploaded_files};
use crate::store::{self, now_ms, Conn, DbPool, StoreResult};

pub use jobs::JobRunner;

/// Setting key of the generated exchange password's argon2 hash.
pub const PASSWORD_HASH_KEY: &str = "exchange_password_hash";

/// How the exchange password is checked.
pub struct Credentials {
    login: String,
    secret: Secret,
    /// Passwords already verified against the argon2 hash in this process (keyed hash), so that
    /// 1C's Basic header on every chunk does not cost an argon2 run each time.
    verified: Mutex<HashSet<u128>>,
    key: u64,
}

enum Secret {
    Plain(String),
    Hash(String),
}

impl Credentials {
    pub fn plain(login: &str, password: &str) -> Self {
        Self::new(login, Secret::Plain(password.to_string()))
    }

    pub fn hashed(login: &str, phc: &str) -> Self {
        Self::new(login, Secret::Hash(phc.to_string()))
    }

    fn new(login: &str, secret: Secret) -> Self {
        Credentials {
            login: login.to_string(),
            secret,
            verified: Mutex::new(HashSet::new()),
            key: rand::thread_rng().gen(),
        }
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn verify(&self, login: &str, password: &str) -> bool {
        if !constant_eq(login.as_bytes(), self.login.as_bytes()) {
            return false;
        }
        match &self.secret {
            Secret::Plain(p) => constant_eq(password.as_bytes(), p.as_bytes()),
            Secret::Hash(phc) => {
                let key = xxhash_rust::xxh3::xxh3_128_with_seed(password.as_bytes(), self.key);
                if self
                    .verified
                    .lock()
                    .map(|s| s.contains(&key))
                    .unwrap_or(false)
                {
                    return true;
                }
                let ok = PasswordHash::new(phc)
                    .map(|h| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false);
                if ok {
                    if let Ok(mut s) = self.verified.lock() {
                        s.insert(key);
                    }
                }
                ok
            }
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    auth::constant_time_eq(a, b)
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing")
        .to_string()
}

/// A random token of `n` lowercase hex characters (cookie values, sessid).
pub fn random_token(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

/// A password that is easy to type into 1C: letters and digits without look-alikes.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Decide the exchange credentials at start. Without a configured password, the first start
/// generates one and stores only its hash; the password is returned so the caller prints it once.
pub fn setup_credentials(
    cfg: &Config,
    conn: &mut Conn,
) -> StoreResult<(Credentials, Option<String>)> {
    if let Some(p) = &cfg.exchange.password {
        return Ok((Credentials::plain(&cfg.exchange.login, p), None));
    }
    if let Some(phc) = store::get_setting(conn, PASSWORD_HASH_KEY)? {
        return Ok((Credentials::hashed(&cfg.exchange.login, &phc), None));
    }
    let password = random_password();
    let phc = hash_password(&password);
    store::set_setting(conn, PASSWORD_HASH_KEY, &phc)?;
    Ok((
        Credentials::hashed(&cfg.exchange.login, &phc),
        Some(password),
    ))
}

/// Everything the protocol handler needs.
pub struct Exchange {
    pub cfg: Arc<Config>,
    pub pool: DbPool,
    pub creds: Credentials,
    pub jobs: JobRunner,
}

impl Exchange {
    pub fn lang(&self) -> Lang {
        self.cfg.lang
    }

    pub fn session_dir(&self, session_id: &str) -> PathBuf {
        self.cfg.uploads_dir().join(session_id)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = exchange_sessions)]
pub struct SessionRow {
    pub id: String,
    pub sessid: String,
    pub exchange_type: String,
    pub client_addr: String,
    pub user_agent: Option<String>,
    pub login: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub auth_timestamp: i64,
    pub version: Option<String>,
    pub cml_version: Option<String>,
    pub zip: bool,
    pub file_limit: i64,
    pub initialized: bool,
    pub closed: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = uploaded_files)]
pub struct UploadRow {
    pub id: i32,
    pub session_id: String,
    pub name: String,
    pub original_name: String,
    pub stored_path: String,
    pub bytes: i64,
    pub chunks: i32,
    pub is_archive: bool,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why an archive could not be unpacked (state `failed`).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = exchange_requests)]
pub struct RequestRow {
    pub id: i32,
    pub session_id: Option<String>,
    pub at: i64,
    pub client_addr: String,
    pub method: String,
    pub exchange_type: Option<String>,
    pub mode: Option<String>,
    pub filename: Option<String>,
    pub bytes: i64,
    pub http_status: i32,
    pub answer: String,
    pub detail: Option<String>,
    pub duration_ms: i64,
}

/// XML files of an upload folder that an import would process: top-level first, then nested
/// folders (CML 3.1 packages put files into `goods/`, `offers/` …), never inside `import_files/`.
/// Sorted so that classifier and goods come before offers, prices and stock.
pub fn xml_files_in(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>, depth: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Not image folders, nor an unpack's staging folder (`.unpack-…`).
                if depth < 4
                    && e.file_name() != "import_files"
                    && !e.file_name().to_string_lossy().starts_with('.')
                {
                    walk(root, &p, out, depth + 1);
                }
            } else if ft.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x.eq_ignore_ascii_case("xml"))
            {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out, 0);
    out.sort_by(|a, b| (file_rank(&a.0), &a.0).cmp(&(file_rank(&b.0), &b.0)));
    out
}

/// Order hint by name: import/goods/classifier first, then offers, prices, rests, documents.
pub fn file_rank(name: &str) -> u8 {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let prefixes: [(&str, u8); 12] = [
        ("groups", 0),
        ("properties", 0),
        ("units", 0),
        ("storages", 0),
        ("import", 1),
        ("goods", 1),
        ("offers", 2),
        ("pricelists", 3),
        ("prices", 3),
        ("rests", 4),
        ("orders", 5),
        ("documents", 5),
    ];
    prefixes
        .iter()
        .find(|(p, _)| base.starts_with(p))
        .map(|(_, r)| *r)
        .unwrap_or(6)
}

/// Sessions whose uploads were never imported (UT11 "send files without waiting for the server
/// import"): queue their XML files. `quiet_ms`: only sessions idle that long; `client`: only
/// sessions of that address created before `before_ms` (a new checkauth from the same client means
/// its earlier sessions are complete).
pub fn queue_orphan_uploads(
    ex: &Exchange,
    quiet_ms: i64,
    client: Option<(&str, i64)>,
) -> StoreResult<usize> {
    use exchange_sessions::dsl as s;
    let mut conn = ex.pool.get()?;
    let now = now_ms();
    let mut q = exchange_sessions::table
        .filter(s::exchange_type.eq("catalog"))
        .filter(s::closed.eq(false))
        .into_boxed();
    match client {
        Some((addr, before)) => {
            q = q
                .filter(s::client_addr.eq(addr.to_string()))
                .filter(s::created_at.lt(before))
        }
        None => q = q.filter(s::last_seen_at.lt(now - quiet_ms)),
    }
    let sessions: Vec<String> = q.order(s::created_at).select(s::id).load(&mut conn)?;
    drop(conn);
    let mut queued = 0;
    for sid in sessions {
        let mut conn = ex.pool.get()?;
        let uploads: i64 = uploaded_files::table
            .filter(uploaded_files::session_id.eq(&sid))
            .count()
            .get_result(&mut conn)?;
        let jobs: i64 = import_jobs::table
            .filter(import_jobs::session_id.eq(&sid))
            .count()
            .get_result(&mut conn)?;
        if uploads > 0 && jobs == 0 {
            let dir = ex.session_dir(&sid);
            // No connection is held while archives are unpacked.
            drop(conn);
            let unpacked = handler::unpack_pending(ex, &sid);
            conn = ex.pool.get()?;
            if let Err(e) = unpacked {
                tracing::warn!(session = %sid, error = %e.describe(ex.lang()), "cannot unpack an archive of a session without import calls");
            }
            for (name, path) in xml_files_in(&dir) {
                ex.jobs.enqueue(&sid, &name, &path, "auto")?;
                queued += 1;
            }
            tracing::info!(session = %sid, files = queued, "queued uploads of a session that never called import");
        }
        diesel::update(exchange_sessions::table.filter(s::id.eq(&sid)))
            .set(s::closed.eq(true))
            .execute(&mut conn)?;
    }
    Ok(queued)
}
