//! The `obmen` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::json;

use obmen::catalog::ImportStats;
use obmen::config::Config;
use obmen::exchange::jobs::JobState;
use obmen::exchange::{self, zipx, JobRunner};
use obmen::store;

#[derive(Parser)]
#[command(
    name = "obmen",
    version,
    about = "The gateway between 1C:Enterprise and marketplaces and couriers"
)]
struct Cli {
    /// Configuration file (TOML); also OBMEN_CONFIG. Without one, defaults apply.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder (SQLite database, uploads); also OBMEN_DATA_DIR. Default: ./data
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the 1C exchange endpoint, the API and the background jobs.
    Serve {
        /// Address to listen on (also OBMEN_LISTEN), e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Demo: start the built-in Ozon simulator, wire obmen to it, import a demo catalog and
        /// let demo orders arrive (no credentials needed; data under DATA_DIR/demo).
        #[arg(long)]
        demo: bool,
    },
    /// Import CommerceML files (XML or zip) offline through the same pipeline; prints one JSON line.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Set a new 1C exchange password (stored as an argon2 hash) and print it once.
    ResetPassword,
    /// The lockout after wrong 1C exchange passwords: without arguments, list the addresses
    /// with counted failures or a lock; with ADDR (or --all), lift it.
    #[command(name = "unlock-1c")]
    Unlock1c {
        /// The client address to unlock, as the exchange journal shows it.
        addr: Option<String>,
        /// Unlock every address.
        #[arg(long, conflicts_with = "addr")]
        all: bool,
    },
    /// Act as 1C ("Обмен с сайтом"): run a full exchange against URL and check every answer
    /// the way 1C reads it. Exit code 0 only if everything succeeded.
    #[command(name = "emulate-1c")]
    Emulate1c(EmulateArgs),
    /// Write a deterministic CommerceML 2.07 catalog (import.xml, offers.xml, expected.json).
    GenCatalog {
        /// Number of goods.
        #[arg(long)]
        goods: u64,
        /// Seed: the same seed and size give byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Add image paths to goods and write the images under DIR/import_files/.
        #[arg(long)]
        images: bool,
        /// Output folder (created if missing).
        dir: PathBuf,
    },
    /// Dashboard users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Write a backup (database snapshot, documents, media, kept exchange files, manifest.json)
    /// into a new folder DIR/obmen-<time>; safe while the server runs. Prints one JSON line.
    Backup { dir: PathBuf },
    /// Restore a backup folder (the one holding manifest.json) into the configured database and
    /// data folder. Checks every checksum first; refuses while a server uses the data folder.
    Restore {
        dir: PathBuf,
        /// Replace an existing database and data files.
        #[arg(long)]
        force: bool,
    },
    /// Run a local simulator of an external API (for tests and demo mode).
    Sim {
        #[command(subcommand)]
        target: SimTarget,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a dashboard user, or set an existing one's role and password. Without
    /// --password-stdin a random password is generated and printed once.
    Add {
        name: String,
        /// admin (everything), operator (retry, edit, replay), viewer (read only).
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the dashboard users.
    List,
}

#[derive(Subcommand)]
enum SimTarget {
    /// The Ozon Seller API simulator; prints `obmen sim ozon: listening on http://ADDR`.
    Ozon(SimOzonArgs),
    /// The CDEK API v2 simulator; prints `obmen sim cdek: listening on http://ADDR` (API base
    /// `http://ADDR/v2`).
    Cdek(SimCdekArgs),
    /// The DPD Russia SOAP simulator (order2, tracing); prints
    /// `obmen sim dpd: listening on http://ADDR`.
    Dpd(SimDpdArgs),
}

#[derive(clap::Args)]
struct SimCdekArgs {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
    /// The accepted client_id (default: CDEK's public test account).
    #[arg(long, default_value = obmen::sim::cdek::TEST_CLIENT_ID)]
    client_id: String,
    /// The accepted client_secret (default: CDEK's public test account).
    #[arg(long, default_value = obmen::sim::cdek::TEST_CLIENT_SECRET)]
    client_secret: String,
    /// Milliseconds before a create or delete is processed in the background.
    #[arg(long, default_value_t = 300)]
    process_delay_ms: u64,
    /// Milliseconds before a print form is READY.
    #[arg(long, default_value_t = 500)]
    print_delay_ms: u64,
    /// Lifetime of an access token.
    #[arg(long, default_value_t = 3599)]
    token_ttl_secs: u64,
    /// Production mode: stricter validation than the public test server.
    #[arg(long)]
    production: bool,
}

#[derive(clap::Args)]
struct SimDpdArgs {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
    /// The accepted auth.clientNumber.
    #[arg(long, default_value = "1001234567")]
    client_number: String,
    /// The accepted auth.clientKey.
    #[arg(long, default_value = "sim-client-key")]
    client_key: String,
    /// How many getOrderStatus polls answer OrderPending before OK.
    #[arg(long, default_value_t = 2)]
    pending_polls: u32,
    /// createOrder answers OK with the number at once instead of OrderPending.
    #[arg(long)]
    immediate: bool,
}

#[derive(clap::Args)]
struct SimOzonArgs {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// The accepted Client-Id.
    #[arg(long, default_value = "123456")]
    client_id: String,
    /// The accepted Api-Key.
    #[arg(long, default_value = "sim-api-key")]
    api_key: String,
    /// Seconds after ship during which the package label is not ready.
    #[arg(long, default_value_t = 45)]
    label_delay_secs: u64,
    /// How many /v1/product/import/info polls answer "pending".
    #[arg(long, default_value_t = 2)]
    import_pending_polls: u32,
    /// Seconds between two accepted stock updates of the same offer × warehouse (Ozon: 30).
    #[arg(long, default_value_t = 30)]
    stock_cooldown_secs: u64,
    /// Unknown offer_id in stocks/prices is an item error instead of a new product.
    #[arg(long)]
    strict_products: bool,
    /// Send push notifications to this URL.
    #[arg(long)]
    push_url: Option<String>,
    /// Do not enforce the rate limits (50 rps, 80 stocks calls/min).
    #[arg(long)]
    no_rate_limits: bool,
    /// Base URL used in file_url of label tasks (default: the listen address).
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(clap::Args)]
struct EmulateArgs {
    /// The site address as typed into 1C (scheme optional; only a host means
    /// /bitrix/admin/1c_exchange.php).
    url: String,
    /// XML files, exchange folders (top-level *.xml plus import_files/…) or zip archives.
    files: Vec<PathBuf>,
    /// Login (default: the configured exchange login).
    #[arg(long)]
    user: Option<String>,
    /// Password (default: OBMEN_EXCHANGE_PASSWORD / the configured one).
    #[arg(long)]
    password: Option<String>,
    /// Which 1C client to imitate.
    #[arg(long, value_enum, default_value = "ut11")]
    style: obmen::emulator::Style,
    /// Zip: follow the server's init answer (auto), always, or never.
    #[arg(long, value_enum, default_value = "auto")]
    zip: obmen::emulator::ZipMode,
    /// Chunk size in bytes (default: the server's file_limit; 0 = whole files).
    #[arg(long)]
    chunk: Option<u64>,
    /// One session per XML file (as UT11 does per portion) or all files in one session.
    #[arg(long, value_enum, default_value = "per-file")]
    sessions: obmen::emulator::Sessions,
    /// Upload only, never call mode=import (UT11 "send without waiting for the import").
    #[arg(long)]
    no_import: bool,
    /// Also run the orders exchange (type=sale: query, success, upload of orders*.xml files).
    #[arg(long)]
    sale: bool,
    /// With --sale: do not send mode=success after the query (a dropped success; the server must
    /// hand the same orders out again).
    #[arg(long, requires = "sale")]
    no_success: bool,
    /// With --sale: save the raw query answer (as received) to this file.
    #[arg(long, value_name = "FILE", requires = "sale")]
    save_query: Option<PathBuf>,
    /// Append &sessid= to every request (UT11 "use session id"; always on for --style bitrix).
    #[arg(long)]
    use_sessid: bool,
    /// Timeout of each request, seconds (1C uses 180).
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Print one JSON summary line on stdout.
    #[arg(long)]
    json: bool,
    /// Quiet: no per-request log on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut cfg = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OBMEN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,actix_server=warn,tokio_cron_scheduler=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// glibc gives threads that contend for the heap arenas of their own (up to 8 per core) and keeps
/// what is freed in each. Under the load harness (50 1C clients, tokio's blocking pool of about a
/// hundred threads) the RSS climbed 17 MiB a minute while the live heap stayed near 65 MiB
/// (heaptrack); with 2 arenas the climb was a third of that (BENCHMARKS.md, load).
/// `MALLOC_ARENA_MAX` in the environment still decides when it is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, and no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_tracing();
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("obmen: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { listen, demo } => {
            let mut cfg = cfg;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if demo {
                // The demo keeps its own SQLite database beside a real installation's.
                cfg.data_dir = cfg.data_dir.join("demo");
                cfg.database_url = None;
            }
            actix_web::rt::System::new()
                .block_on(obmen::server::serve(cfg, demo))
                .map_err(|e| format!("{e:#}"))
        }
        Command::Import { files } => import(cfg, &files),
        Command::Migrate => migrate(&cfg),
        Command::ResetPassword => reset_password(&cfg),
        Command::Emulate1c(args) => emulate(&cfg, args),
        Command::GenCatalog {
            goods,
            seed,
            images,
            dir,
        } => gen_catalog(goods, seed, images, &dir),
        Command::Sim { target } => sim(target),
        Command::User { action } => user(&cfg, action),
        Command::Unlock1c { addr, all } => unlock_1c(&cfg, addr, all),
        Command::Backup { dir } => obmen::backup::backup(&cfg, &dir)
            .map(|(path, m)| {
                println!(
                    "{}",
                    json!({"backup": path, "database": m.database.kind, "migration": m.database.migration, "files": m.files.len(), "bytes": m.files.iter().map(|f| f.size).sum::<u64>()})
                )
            })
            .map_err(|e| e.to_string()),
        Command::Restore { dir, force } => obmen::backup::restore(&cfg, &dir, force)
            .map(|r| println!("{}", json!({"restored": r})))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("obmen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(cfg: &Config) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
    let pool = store::open(&cfg.database_url(), 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let applied = store::migrate(&mut conn).map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"database": cfg.database_url(), "up_to_date": true, "applied_now": applied})
    );
    Ok(())
}

fn unlock_1c(cfg: &Config, addr: Option<String>, all: bool) -> Result<(), String> {
    use obmen::exchange::lockout;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
    let pool = store::open(&cfg.database_url(), 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    store::migrate(&mut conn).map_err(|e| e.to_string())?;
    if addr.is_none() && !all {
        let now = store::now_ms();
        for f in lockout::list(&mut conn).map_err(|e| e.to_string())? {
            let until = f.locked_until.filter(|t| *t > now);
            println!(
                "{}",
                json!({"addr": f.client_addr, "failures": f.failures, "last_failed_at": f.last_failed_at, "locked_until": until})
            );
        }
        return Ok(());
    }
    let n = lockout::unlock(&mut conn, addr.as_deref()).map_err(|e| e.to_string())?;
    println!("{}", json!({"unlocked": n}));
    Ok(())
}

fn user(cfg: &Config, action: UserAction) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
    let pool = store::open(&cfg.database_url(), 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    store::migrate(&mut conn).map_err(|e| e.to_string())?;
    match action {
        UserAction::Add {
            name,
            role,
            password_stdin,
        } => {
            let role: obmen::users::Role = role.parse()?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the password: {e}"))?;
                (line.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (exchange::random_password(), true)
            };
            let created = obmen::users::upsert(&mut conn, &name, role, &password)
                .map_err(|e| e.to_string())?;
            obmen::users::audit(
                &mut conn,
                &obmen::users::Audit {
                    username: "cli",
                    action: if created { "user_add" } else { "user_update" },
                    target: Some(name.clone()),
                    after: Some(format!("role={}", role.as_str())),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            println!(
                "{} {name} ({})",
                if created { "created" } else { "updated" },
                role.as_str()
            );
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        UserAction::List => {
            for u in obmen::users::list(&mut conn).map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    u.name,
                    u.role,
                    if u.disabled { "disabled" } else { "active" }
                );
            }
            Ok(())
        }
    }
}

fn reset_password(cfg: &Config) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
    let pool = store::open(&cfg.database_url(), 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let password = exchange::random_password();
    store::set_setting(
        &mut conn,
        exchange::PASSWORD_HASH_KEY,
        &exchange::hash_password(&password),
    )
    .map_err(|e| e.to_string())?;
    println!("login:    {}", cfg.exchange.login);
    println!("password: {password}");
    Ok(())
}

fn is_zip(path: &Path) -> bool {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|_| &magic == b"PK\x03\x04")
        .unwrap_or(false)
}

fn import(cfg: Config, files: &[PathBuf]) -> Result<(), String> {
    let lang = cfg.lang;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
    let pool = store::open(&cfg.database_url(), 4).map_err(|e| e.to_string())?;
    let runner = JobRunner::inline(pool, lang);
    let session = format!("cli-{}", exchange::random_token(12));
    let started = Instant::now();
    let mut total = ImportStats::default();
    let mut done = 0usize;
    for file in files {
        if !file.is_file() {
            return Err(lang
                .pick("файл не найден: ", "file not found: ")
                .to_string()
                + &file.display().to_string());
        }
        let targets: Vec<(String, PathBuf)> = if is_zip(file) {
            let dir = cfg.uploads_dir().join(&session).join(format!("zip{done}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let limits = zipx::ZipLimits {
                max_total_bytes: cfg.exchange.zip_max_total_bytes,
                max_entries: cfg.exchange.zip_max_entries,
                max_ratio: cfg.exchange.zip_max_ratio,
                ..Default::default()
            };
            zipx::unpack(file, &dir, &limits)
                .map_err(|e| format!("{}: {}", file.display(), e.describe(lang)))?;
            exchange::xml_files_in(&dir)
        } else {
            vec![(file.display().to_string(), file.clone())]
        };
        for (name, path) in targets {
            let key = format!("{done}:{name}");
            done += 1;
            let st = runner
                .run_inline(&session, &key, &path, "cli")
                .map_err(|e| e.to_string())?;
            if st.state != JobState::Done {
                return Err(format!(
                    "{}: {}",
                    path.display(),
                    st.error.unwrap_or_default()
                ));
            }
            let s = st.stats;
            total.bytes += s.bytes;
            total.groups += s.groups;
            total.properties += s.properties;
            total.price_types += s.price_types;
            total.warehouses += s.warehouses;
            total.goods += s.goods;
            total.offers += s.offers;
            total.documents += s.documents;
            total.created += s.created;
            total.updated += s.updated;
            total.unchanged += s.unchanged;
            total.deleted += s.deleted;
        }
    }
    let _ = std::fs::remove_dir_all(cfg.uploads_dir().join(&session));
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "files": done,
            "bytes": total.bytes,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "mb_per_s": if secs > 0.0 { ((total.bytes as f64 / 1e6 / secs) * 10.0).round() / 10.0 } else { 0.0 },
            "groups": total.groups,
            "properties": total.properties,
            "price_types": total.price_types,
            "warehouses": total.warehouses,
            "goods": total.goods,
            "offers": total.offers,
            "documents": total.documents,
            "created": total.created,
            "updated": total.updated,
            "unchanged": total.unchanged,
            "deleted": total.deleted,
        })
    );
    Ok(())
}

fn emulate(cfg: &Config, a: EmulateArgs) -> Result<(), String> {
    use obmen::emulator::{self, Options};
    let lang = cfg.lang;
    let mut o = Options::new(&a.url, a.files);
    o.user = a.user.unwrap_or_else(|| cfg.exchange.login.clone());
    o.password = a
        .password
        .or_else(|| cfg.exchange.password.clone())
        .unwrap_or_default();
    o.style = a.style;
    o.zip = a.zip;
    o.chunk = a.chunk;
    o.sessions = a.sessions;
    o.no_import = a.no_import;
    o.sale = a.sale;
    o.no_success = a.no_success;
    o.save_query = a.save_query;
    o.use_sessid = a.use_sessid;
    o.timeout = std::time::Duration::from_secs(a.timeout.max(1));
    o.lang = lang;
    o.verbose = !a.quiet;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let s = rt.block_on(emulator::run(&o));
    if a.json {
        println!("{}", serde_json::to_string(&s).map_err(|e| e.to_string())?);
    } else {
        println!("{}", emulator::human_summary(&s, lang));
    }
    if s.ok {
        Ok(())
    } else {
        Err(s.errors.first().cloned().unwrap_or_else(|| {
            lang.pick("обмен не завершен", "the exchange did not complete")
                .to_string()
        }))
    }
}

fn sim(target: SimTarget) -> Result<(), String> {
    match target {
        SimTarget::Ozon(a) => {
            let cfg = obmen::sim::ozon::SimConfig {
                client_id: a.client_id,
                api_key: a.api_key,
                label_delay_secs: a.label_delay_secs,
                import_pending_polls: a.import_pending_polls,
                stock_cooldown_secs: a.stock_cooldown_secs,
                auto_products: !a.strict_products,
                push_url: a.push_url,
                rate_limits: !a.no_rate_limits,
                public_url: a.public_url,
                ..Default::default()
            };
            actix_web::rt::System::new()
                .block_on(obmen::sim::ozon::run(cfg, &a.listen))
                .map_err(|e| format!("{e:#}"))
        }
        SimTarget::Cdek(a) => {
            let cfg = obmen::sim::cdek::SimConfig {
                client_id: a.client_id,
                client_secret: a.client_secret,
                process_delay_ms: a.process_delay_ms,
                print_delay_ms: a.print_delay_ms,
                token_ttl_secs: a.token_ttl_secs,
                production: a.production,
                ..Default::default()
            };
            actix_web::rt::System::new()
                .block_on(obmen::sim::cdek::run(cfg, &a.listen))
                .map_err(|e| format!("{e:#}"))
        }
        SimTarget::Dpd(a) => {
            let cfg = obmen::sim::dpd::SimConfig {
                client_number: a.client_number,
                client_key: a.client_key,
                pending_polls: a.pending_polls,
                mode: if a.immediate {
                    obmen::sim::dpd::Mode::Ok
                } else {
                    obmen::sim::dpd::Mode::Pending
                },
            };
            actix_web::rt::System::new()
                .block_on(obmen::sim::dpd::run(cfg, &a.listen))
                .map_err(|e| format!("{e:#}"))
        }
    }
}

fn gen_catalog(goods: u64, seed: u64, images: bool, dir: &Path) -> Result<(), String> {
    let (report, _) = obmen::gen::generate(
        dir,
        &obmen::gen::GenOptions {
            goods,
            seed,
            images,
        },
    )
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
