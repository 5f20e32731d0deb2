//! One typed configuration: defaults that run with nothing, an optional TOML file
//! (`--config` / `OBMEN_CONFIG`), then environment variables on top.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::i18n::Lang;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`OBMEN_LISTEN`).
    pub listen: String,
    /// Folder for the SQLite database, uploads and kept files (`OBMEN_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database URL (`OBMEN_DATABASE_URL`); default: `<data_dir>/obmen.db`. `postgres://…`
    /// for PostgreSQL (several instances may share it).
    pub database_url: Option<String>,
    /// Folder for what every instance must see: 1C uploads, order documents, card images
    /// (`OBMEN_SHARED_DIR`); default: `data_dir`. With several instances behind a load balancer,
    /// a folder all of them mount.
    pub shared_dir: Option<PathBuf>,
    /// Language of user-facing text: `ru` (default) or `en` (`OBMEN_LANG`).
    pub lang: Lang,
    pub exchange: ExchangeConfig,
    pub api: ApiConfig,
    pub orders: OrdersConfig,
    pub relay: RelayConfig,
    pub ozon: OzonConfig,
    pub cdek: CdekConfig,
    pub dpd: DpdConfig,
    /// obmen's address as the outside world reaches it (`OBMEN_PUBLIC_URL`), used in links it
    /// hands out: card images for Ozon, label and waybill links to 1C. Default: from `listen`.
    pub public_url: Option<String>,
    /// HTTPS for `serve` (`[server]`).
    pub server: ServerConfig,
    /// How long journals are kept (`[retention]`).
    pub retention: RetentionConfig,
    /// Scheduled backups (`[backup]`).
    pub backup: BackupConfig,
}

/// `[server]`: optional TLS. Both paths set → `serve` speaks HTTPS only (rustls).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// PEM certificate chain (`OBMEN_TLS_CERT`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (`OBMEN_TLS_KEY`).
    pub tls_key: Option<PathBuf>,
    /// Addresses or networks (`10.0.0.5`, `10.0.0.0/8`) of reverse proxies / load balancers
    /// whose `X-Forwarded-For` is believed (`OBMEN_TRUSTED_PROXIES`, comma-separated). The
    /// client address (journal, 1C session rules, password lockout) is then the right-most
    /// address in that header that is not itself a trusted proxy. Empty: the TCP peer.
    pub trusted_proxies: Vec<String>,
}

impl ServerConfig {
    /// `trusted_proxies` parsed: a plain address is a network of one.
    pub fn proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!("{s:?} is neither an IP address nor a network like 10.0.0.0/8")
                    })
            })
            .collect()
    }
}

/// `[retention]` (`OBMEN_RETENTION_<KEY>`): rows of the journals older than this are deleted
/// by a daily schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days the 1C request journal and the API call journal are kept; 0 = forever.
    pub journal_days: u64,
    /// When the retention runs (cron with seconds).
    pub schedule: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            journal_days: 90,
            schedule: "0 15 3 * * *".into(),
        }
    }
}

/// `[backup]` (`OBMEN_BACKUP_<KEY>`): with `dir` set, `serve` writes a backup on `schedule`
/// into a new folder under `dir` and keeps the newest `keep` of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    pub dir: Option<PathBuf>,
    /// Cron with seconds; default daily at 03:30.
    pub schedule: String,
    /// Backups kept in `dir` (older `obmen-*` backup folders are removed); at least 1.
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            schedule: "0 30 3 * * *".into(),
            keep: 7,
        }
    }
}

/// The outbox's retry policy (`[relay]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// After this many failed tries a message is dead (`OBMEN_RELAY_MAX_ATTEMPTS`).
    pub max_attempts: i32,
    /// First retry delay in ms, doubled each try (`OBMEN_RELAY_BACKOFF_MS`).
    pub backoff_ms: u64,
    /// Longest retry delay, seconds.
    pub backoff_max_secs: u64,
    /// How long a claimed message is held by one worker, seconds.
    pub lease_secs: u64,
    /// Pause of a target after it refused our credentials, seconds (`OBMEN_RELAY_WAIT_SECS`).
    pub wait_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_attempts: 10,
            backoff_ms: 2000,
            backoff_max_secs: 600,
            lease_secs: 120,
            wait_secs: 60,
        }
    }
}

/// One Ozon warehouse and the 1C warehouses whose stock it receives (summed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OzonWarehouse {
    /// Ozon `warehouse_id`.
    pub id: i64,
    /// 1C warehouses by Ид or name; empty = all of them.
    pub from: Vec<String>,
    /// Safety reserve kept back from Ozon on this warehouse (units).
    pub reserve: i64,
}

/// An Ozon attribute of a card: a fixed value or the value of a 1C property.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OzonAttribute {
    pub id: i64,
    pub value: Option<String>,
    pub dictionary_value_id: Option<i64>,
    /// Take the value from this 1C property (by name or Ид).
    pub property: Option<String>,
}

/// A category mapping row: goods of a 1C group (or with a property value) become cards of this
/// Ozon category and type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OzonCategory {
    /// 1C group Ид or name (subgroups included).
    pub group: Option<String>,
    /// Or a 1C property `name=value`.
    pub property: Option<String>,
    pub description_category_id: i64,
    pub type_id: i64,
    pub attributes: Vec<OzonAttribute>,
}

/// The Ozon connector (`[ozon]`; every key also as `OBMEN_OZON_<KEY>`). On when `base_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OzonConfig {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub api_key: Option<String>,
    /// One Ozon warehouse receiving the sum of all 1C warehouses (the simple case).
    pub warehouse_id: Option<i64>,
    /// Several Ozon warehouses, each from some 1C warehouses (overrides `warehouse_id`).
    pub warehouses: Vec<OzonWarehouse>,
    /// Safety reserve per warehouse when `warehouse_id` is used.
    pub stock_reserve: i64,
    /// 1C price type (name or Ид) that becomes `price`; default: the only one, else a retail
    /// one (`Розничная`), else the first.
    pub price_type: Option<String>,
    /// 1C price type that becomes `old_price` (strike-through); none: `0`.
    pub old_price_type: Option<String>,
    /// 1C price type that becomes `min_price`.
    pub min_price_type: Option<String>,
    /// Where Ozon's offer_id comes from: `article` (default) or `id` (the 1C Ид).
    pub offer_id: String,
    /// Only goods whose 1C property of this name (or Ид) is set to a true-ish value go to Ozon.
    pub filter_property: Option<String>,
    /// Only goods in these 1C groups (Ид or name, subgroups included) go to Ozon.
    pub filter_groups: Vec<String>,
    /// Category mapping for product cards; goods without one are taken to have cards already.
    pub categories: Vec<OzonCategory>,
    /// VAT for cards and prices: `0`, `0.05`, `0.07`, `0.1`, `0.2`.
    pub vat: String,
    pub currency_code: String,
    /// FBS order polling (cron with a seconds field).
    pub orders_poll: String,
    /// Reconciliation (cron with a seconds field).
    pub reconcile: String,
    /// Stocks and prices re-check (cron), besides the check after every catalog import.
    pub push_schedule: String,
    /// Cancel reason id used when 1C cancels an Ozon order (352: out of stock).
    pub cancel_reason_id: i64,
    /// Labels: `sync` (/v2/posting/fbs/package-label, retried while not ready) or `task`
    /// (package-label/create → get → file).
    pub label_flow: String,
    /// Seconds before asking again for a label Ozon says is not ready yet.
    pub label_retry_secs: u64,
    /// HTTP timeout of one call, seconds.
    pub timeout_secs: u64,
    /// Requests per second to Ozon in all (Ozon allows 50).
    pub rps: u32,
    /// `/v2/products/stocks` calls per minute (Ozon allows 80).
    pub stocks_per_minute: u32,
    /// Seconds between two updates of the same offer × warehouse (Ozon: 30).
    pub stock_pair_cooldown_secs: u64,
    /// Price changes per product per hour (Ozon: 10).
    pub price_changes_per_hour: u32,
    /// Card weight (grams) when 1C gives none.
    pub default_weight_g: u64,
    /// Card dimensions (mm) when 1C has no Длина/Ширина/Высота.
    pub default_depth_mm: u64,
    pub default_width_mm: u64,
    pub default_height_mm: u64,
}

impl Default for OzonConfig {
    fn default() -> Self {
        OzonConfig {
            base_url: None,
            client_id: None,
            api_key: None,
            warehouse_id: None,
            warehouses: Vec::new(),
            stock_reserve: 0,
            price_type: None,
            old_price_type: None,
            min_price_type: None,
            offer_id: "article".into(),
            filter_property: None,
            filter_groups: Vec::new(),
            categories: Vec::new(),
            vat: "0".into(),
            currency_code: "RUB".into(),
            orders_poll: "0 * * * * *".into(),
            reconcile: "0 0 */2 * * *".into(),
            push_schedule: "0 */10 * * * *".into(),
            cancel_reason_id: 352,
            label_flow: "sync".into(),
            label_retry_secs: 15,
            timeout_secs: 30,
            rps: 50,
            stocks_per_minute: 80,
            stock_pair_cooldown_secs: 30,
            price_changes_per_hour: 10,
            default_weight_g: 500,
            default_depth_mm: 200,
            default_width_mm: 150,
            default_height_mm: 100,
        }
    }
}

impl OzonConfig {
    pub fn enabled(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }

    /// Every key from `OBMEN_OZON_<KEY>`: strings as they are, numbers and booleans parsed,
    /// lists and tables as JSON.
    fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        apply_env_section(self, "OBMEN_OZON", &["warehouse_id"], get)
    }
}

/// Every key of a config section from `<PREFIX>_<KEY>`: strings as they are, numbers and
/// booleans parsed, lists and tables as JSON; `numeric` options not set yet take numbers.
fn apply_env_section<T: Serialize + serde::de::DeserializeOwned>(
    section: &mut T,
    prefix: &str,
    numeric: &[&str],
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let all = format!("{prefix}_*");
    let mut v = serde_json::to_value(&*section).map_err(|e| ConfigError::Env {
        name: all.clone(),
        message: e.to_string(),
    })?;
    let map = v.as_object_mut().expect("a struct serializes to a map");
    let mut changed = false;
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let name = format!("{prefix}_{}", key.to_ascii_uppercase());
        let Some(raw) = get(&name).filter(|s| !s.is_empty()) else {
            continue;
        };
        let err = |message: String| ConfigError::Env {
            name: name.clone(),
            message,
        };
        let new = match &map[&key] {
            serde_json::Value::Number(_) => serde_json::from_str::<serde_json::Value>(raw.trim())
                .ok()
                .filter(|x| x.is_number())
                .ok_or_else(|| err(format!("expected a number, got {raw:?}")))?,
            serde_json::Value::Bool(_) => serde_json::Value::Bool(
                parse_bool(&raw).ok_or_else(|| err(format!("expected yes or no, got {raw:?}")))?,
            ),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                serde_json::from_str(&raw).map_err(|e| err(format!("expected JSON: {e}")))?
            }
            // Strings, and options not set yet: numbers where the key wants one.
            _ => match serde_json::from_str::<serde_json::Value>(raw.trim()) {
                Ok(n @ serde_json::Value::Number(_)) if numeric.contains(&key.as_str()) => n,
                _ => serde_json::Value::String(raw),
            },
        };
        map.insert(key, new);
        changed = true;
    }
    if changed {
        *section = serde_json::from_value(v).map_err(|e| ConfigError::Env {
            name: all,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// The CDEK connector (`[cdek]`; every key also as `OBMEN_CDEK_<KEY>`). On when `base_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdekConfig {
    /// `https://api.cdek.ru/v2` (test: `https://api.edu.cdek.ru/v2`).
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// CDEK tariff (137 = parcel warehouse→door, 139 door→door, 136 warehouse→warehouse …).
    pub tariff_code: i64,
    /// Tariff when the order names a pickup point (`delivery.pickup_point`).
    pub tariff_code_pickup_point: i64,
    /// Sender: a CDEK city code (`44`) or an address; for "from warehouse" tariffs use
    /// `shipment_point`.
    pub from_location: Option<String>,
    /// Sender CDEK office code (tariffs from a warehouse).
    pub shipment_point: Option<String>,
    pub sender_name: Option<String>,
    pub sender_phone: Option<String>,
    /// `delivery.method` values (or 1C `Способ доставки`) meaning CDEK, compared loosely.
    pub methods: Vec<String>,
    /// Weight (grams) of a good 1C gives none for; none: such an order is refused.
    pub default_weight_g: Option<u64>,
    /// Package dimensions (cm) when the goods give none.
    pub default_length_cm: u64,
    pub default_width_cm: u64,
    pub default_height_cm: u64,
    /// Cash on delivery for orders not paid yet.
    pub cod: bool,
    /// Subscribe to CDEK's ORDER_STATUS webhook at `<public_url>/cdek/webhook`.
    pub webhooks: bool,
    /// Delivery status polling (cron with seconds), besides webhooks.
    pub track_poll: String,
    pub timeout_secs: u64,
}

impl Default for CdekConfig {
    fn default() -> Self {
        CdekConfig {
            base_url: None,
            client_id: None,
            client_secret: None,
            tariff_code: 137,
            tariff_code_pickup_point: 136,
            from_location: None,
            shipment_point: None,
            sender_name: None,
            sender_phone: None,
            methods: vec!["cdek".into(), "сдэк".into()],
            default_weight_g: None,
            default_length_cm: 20,
            default_width_cm: 20,
            default_height_cm: 10,
            cod: true,
            webhooks: true,
            track_poll: "0 */10 * * * *".into(),
            timeout_secs: 30,
        }
    }
}

impl CdekConfig {
    pub fn enabled(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }
}

/// The DPD connector (`[dpd]`; every key also as `OBMEN_DPD_<KEY>`). On when `base_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpdConfig {
    /// `https://ws.dpd.ru` (test: `https://wstest.dpd.ru`); services under `/services/…`.
    pub base_url: Option<String>,
    pub client_number: Option<String>,
    pub client_key: Option<String>,
    /// `delivery.method` values (or 1C `Способ доставки`) meaning DPD.
    pub methods: Vec<String>,
    /// `serviceCode` (PCL, ECN, CUR …) and `serviceVariant` (ДД, ДТ, ТД, ТТ).
    pub service_code: String,
    pub service_variant: String,
    /// Pickup this many days after the order is ready.
    pub pickup_after_days: i64,
    pub sender_name: String,
    pub sender_city: String,
    pub sender_street: String,
    pub sender_house: String,
    pub sender_contact: String,
    pub sender_phone: String,
    /// Weight (grams) of a good 1C gives none for; none: such an order is refused.
    pub default_weight_g: Option<u64>,
    /// Tracking polling (cron with seconds).
    pub track_poll: String,
    pub timeout_secs: u64,
}

impl Default for DpdConfig {
    fn default() -> Self {
        DpdConfig {
            base_url: None,
            client_number: None,
            client_key: None,
            methods: vec!["dpd".into(), "дпд".into()],
            service_code: "PCL".into(),
            service_variant: "ДД".into(),
            pickup_after_days: 1,
            sender_name: String::new(),
            sender_city: String::new(),
            sender_street: String::new(),
            sender_house: String::new(),
            sender_contact: String::new(),
            sender_phone: String::new(),
            default_weight_g: None,
            track_poll: "0 */10 * * * *".into(),
            timeout_secs: 120,
        }
    }
}

impl DpdConfig {
    pub fn enabled(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Login 1C uses (`OBMEN_EXCHANGE_LOGIN`).
    pub login: String,
    /// Password (`OBMEN_EXCHANGE_PASSWORD`). When absent, obmen generates one on first start,
    /// prints it once and keeps only its argon2 hash in the database.
    pub password: Option<String>,
    /// Offer zip archives to 1C (`zip=yes` in the init answer) (`OBMEN_EXCHANGE_ZIP`).
    pub zip: bool,
    /// `file_limit` sent to 1C: the size of the chunks it splits files into (`OBMEN_EXCHANGE_FILE_LIMIT`).
    pub file_limit: u64,
    /// Largest request body accepted; default file_limit + 1 MiB.
    pub max_body: Option<u64>,
    /// How long a `mode=import` request waits for its job before answering `progress` (seconds).
    pub import_wait_secs: u64,
    /// Sessions whose files were uploaded but never imported (UT11 "send without waiting") are
    /// processed after this many quiet seconds.
    pub auto_import_after_secs: u64,
    /// Cookie name handed out by checkauth.
    pub cookie_name: String,
    /// Zip limits.
    pub zip_max_total_bytes: u64,
    pub zip_max_entries: usize,
    pub zip_max_ratio: u64,
    /// Raw files of this many latest exchanges are kept for download and replay
    /// (`OBMEN_EXCHANGE_KEEP_EXCHANGES`); older upload folders are removed by a schedule.
    pub keep_exchanges: usize,
    /// An upload (`mode=file`) with no data for this many seconds is refused
    /// (`OBMEN_EXCHANGE_UPLOAD_IDLE_SECS`): a stalled or trickling client cannot hold it open.
    pub upload_idle_secs: u64,
    /// Wrong passwords in a row from one client address that lock that address
    /// (`OBMEN_EXCHANGE_LOCK_AFTER`); 0 = never.
    pub lock_after: u32,
    /// How long such an address stays locked, and how long a quiet spell resets its count
    /// (`OBMEN_EXCHANGE_LOCK_MINUTES`).
    pub lock_minutes: u64,
    /// Lease of a running import job, renewed every quarter of it: on PostgreSQL, how long the
    /// job of an instance that died waits before another (or the restarted) instance takes it
    /// over. At least 2.
    pub import_lease_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer token for the JSON API (`OBMEN_API_TOKEN`); without one the API is off.
    pub token: Option<String>,
}

/// Orders exchanged with 1C (`type=sale`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// Encoding of the `mode=query` document: `windows-1251` (default) or `utf-8`
    /// (`OBMEN_ORDERS_ENCODING`).
    pub encoding: String,
    /// Schema of the `mode=query` document: `auto` (2.05 flat documents unless the session
    /// negotiated `version`/`cmlVersion` ≥ 2.10, then 3.1 with `Контейнер`), `2.05` or `3.1`
    /// (`OBMEN_ORDERS_SCHEMA`).
    pub schema: String,
    /// Prefix of obmen's order numbers (`OB-000042`).
    pub number_prefix: String,
    /// Which values of 1C's `Статус заказа` mean what (compared without a `[X] ` prefix,
    /// case-insensitively, `ё` = `е`).
    pub status_map: StatusMapConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusMapConfig {
    /// Ready to ship: ship on the marketplace / create the delivery order.
    pub ready_to_ship: Vec<String>,
    /// Delete the delivery order.
    pub delete_delivery: Vec<String>,
    pub cancelled: Vec<String>,
    pub shipped: Vec<String>,
    pub delivered: Vec<String>,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            encoding: "windows-1251".into(),
            schema: "auto".into(),
            number_prefix: "OB-".into(),
            status_map: StatusMapConfig::default(),
        }
    }
}

impl Default for StatusMapConfig {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        StatusMapConfig {
            ready_to_ship: v(&["Готов к отгрузке"]),
            delete_delivery: v(&["Удалить заказ на доставку"]),
            cancelled: v(&["Отменен"]),
            shipped: v(&["Отгружен"]),
            delivered: v(&["Доставлен", "Выполнен"]),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            shared_dir: None,
            lang: Lang::Ru,
            exchange: ExchangeConfig::default(),
            api: ApiConfig::default(),
            orders: OrdersConfig::default(),
            relay: RelayConfig::default(),
            ozon: OzonConfig::default(),
            cdek: CdekConfig::default(),
            dpd: DpdConfig::default(),
            public_url: None,
            server: ServerConfig::default(),
            retention: RetentionConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            login: "1c".into(),
            password: None,
            zip: true,
            file_limit: 100 * 1024 * 1024,
            max_body: None,
            import_wait_secs: 10,
            auto_import_after_secs: 60,
            cookie_name: "OBMENSID".into(),
            zip_max_total_bytes: 20 * 1024 * 1024 * 1024,
            zip_max_entries: 200_000,
            zip_max_ratio: 200,
            keep_exchanges: 30,
            upload_idle_secs: 60,
            lock_after: 10,
            lock_minutes: 15,
            import_lease_secs: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config file {path}: {message}")]
    Permissions { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// Unix: a config file that group or others may write is refused (whoever can write it can
/// point obmen anywhere); one that others may read while it holds secrets gives a warning (the
/// returned text). Group-readable is fine (a service group). Elsewhere: no check.
pub fn check_file_permissions(path: &Path, cfg: &Config) -> Result<Option<String>, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(ConfigError::Permissions {
                path: path.to_path_buf(),
                message: format!(
                    "writable by group or others (mode {:o}); run: chmod go-w {}",
                    mode & 0o777,
                    path.display()
                ),
            });
        }
        let secrets = cfg.exchange.password.is_some()
            || cfg.api.token.is_some()
            || cfg.ozon.api_key.is_some()
            || cfg.cdek.client_secret.is_some()
            || cfg.dpd.client_key.is_some()
            || cfg
                .database_url
                .as_deref()
                .is_some_and(|u| mask_url_password(u) != u);
        if secrets && mode & 0o004 != 0 {
            return Ok(Some(format!(
                "WARNING: config file {} holds secrets and is readable by every local user (mode {:o}); run: chmod o-r {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        Ok(None)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, cfg);
        Ok(None)
    }
}

impl Config {
    /// Load: defaults, then the file (if given or `OBMEN_CONFIG` is set), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env_file = std::env::var_os("OBMEN_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let cfg = toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                if let Some(warning) = check_file_permissions(&path, &cfg)? {
                    eprintln!("obmen: {warning}");
                    tracing::warn!("{warning}");
                }
                cfg
            }
            None => Config::default(),
        };
        cfg.apply_env(|name| std::env::var(name).ok())?;
        cfg.server
            .proxy_nets()
            .map_err(|message| ConfigError::Invalid {
                key: "server.trusted_proxies (OBMEN_TRUSTED_PROXIES)".into(),
                message,
            })?;
        Ok(cfg)
    }

    /// Apply environment overrides through a lookup function (testable without touching the process env).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| ConfigError::Env {
                name: name.into(),
                message: e.to_string(),
            })
        }
        let nonempty = |name: &str| get(name).filter(|v| !v.is_empty());
        if let Some(v) = nonempty("OBMEN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = nonempty("OBMEN_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = nonempty("OBMEN_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = nonempty("OBMEN_SHARED_DIR") {
            self.shared_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = nonempty("OBMEN_LANG") {
            self.lang = v.parse().map_err(|message| ConfigError::Env {
                name: "OBMEN_LANG".into(),
                message,
            })?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_LOGIN") {
            self.exchange.login = v;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_PASSWORD") {
            self.exchange.password = Some(v);
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_ZIP") {
            self.exchange.zip = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => true,
                "0" | "no" | "false" | "off" => false,
                other => {
                    return Err(ConfigError::Env {
                        name: "OBMEN_EXCHANGE_ZIP".into(),
                        message: format!("expected yes or no, got {other:?}"),
                    })
                }
            };
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_FILE_LIMIT") {
            self.exchange.file_limit = parse("OBMEN_EXCHANGE_FILE_LIMIT", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_MAX_BODY") {
            self.exchange.max_body = Some(parse("OBMEN_EXCHANGE_MAX_BODY", &v)?);
        }
        if let Some(v) = nonempty("OBMEN_IMPORT_WAIT_SECS") {
            self.exchange.import_wait_secs = parse("OBMEN_IMPORT_WAIT_SECS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_AUTO_IMPORT_AFTER_SECS") {
            self.exchange.auto_import_after_secs = parse("OBMEN_AUTO_IMPORT_AFTER_SECS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_KEEP_EXCHANGES") {
            self.exchange.keep_exchanges = parse("OBMEN_EXCHANGE_KEEP_EXCHANGES", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_UPLOAD_IDLE_SECS") {
            self.exchange.upload_idle_secs = parse("OBMEN_EXCHANGE_UPLOAD_IDLE_SECS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_LOCK_AFTER") {
            self.exchange.lock_after = parse("OBMEN_EXCHANGE_LOCK_AFTER", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_EXCHANGE_LOCK_MINUTES") {
            self.exchange.lock_minutes = parse("OBMEN_EXCHANGE_LOCK_MINUTES", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_TRUSTED_PROXIES") {
            self.server.trusted_proxies = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = nonempty("OBMEN_API_TOKEN") {
            self.api.token = Some(v);
        }
        if let Some(v) = nonempty("OBMEN_ORDERS_ENCODING") {
            self.orders.encoding = v;
        }
        if let Some(v) = nonempty("OBMEN_ORDERS_SCHEMA") {
            self.orders.schema = v;
        }
        if let Some(v) = nonempty("OBMEN_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = nonempty("OBMEN_RELAY_MAX_ATTEMPTS") {
            self.relay.max_attempts = parse("OBMEN_RELAY_MAX_ATTEMPTS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_RELAY_BACKOFF_MS") {
            self.relay.backoff_ms = parse("OBMEN_RELAY_BACKOFF_MS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_RELAY_WAIT_SECS") {
            self.relay.wait_secs = parse("OBMEN_RELAY_WAIT_SECS", &v)?;
        }
        if let Some(v) = nonempty("OBMEN_RELAY_BACKOFF_MAX_SECS") {
            self.relay.backoff_max_secs = parse("OBMEN_RELAY_BACKOFF_MAX_SECS", &v)?;
        }
        self.ozon.apply_env(&get)?;
        apply_env_section(&mut self.cdek, "OBMEN_CDEK", &["default_weight_g"], &get)?;
        apply_env_section(&mut self.dpd, "OBMEN_DPD", &["default_weight_g"], &get)?;
        if let Some(v) = nonempty("OBMEN_TLS_CERT") {
            self.server.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = nonempty("OBMEN_TLS_KEY") {
            self.server.tls_key = Some(PathBuf::from(v));
        }
        apply_env_section(&mut self.retention, "OBMEN_RETENTION", &[], &get)?;
        apply_env_section(&mut self.backup, "OBMEN_BACKUP", &[], &get)?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            self.data_dir
                .join("obmen.db")
                .to_string_lossy()
                .into_owned()
        })
    }

    pub fn max_body(&self) -> u64 {
        self.exchange
            .max_body
            .unwrap_or(self.exchange.file_limit.saturating_add(1024 * 1024))
    }

    /// The base URL of links obmen hands out (no trailing slash).
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let l = self.listen.replace("0.0.0.0", "127.0.0.1");
                format!("http://{}", l.trim_end_matches('/'))
            }
        }
    }

    /// The folder of what all instances share (see `shared_dir`).
    pub fn shared(&self) -> &Path {
        self.shared_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// Stored documents (labels, waybills) and card images.
    pub fn documents_dir(&self) -> PathBuf {
        self.shared().join("documents")
    }

    pub fn media_dir(&self) -> PathBuf {
        self.shared().join("media")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.shared().join("uploads")
    }

    /// The configuration with secrets masked, for display.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        if c.exchange.password.is_some() {
            c.exchange.password = Some("********".into());
        }
        if c.api.token.is_some() {
            c.api.token = Some("********".into());
        }
        if c.cdek.client_secret.is_some() {
            c.cdek.client_secret = Some("********".into());
        }
        if c.dpd.client_key.is_some() {
            c.dpd.client_key = Some("********".into());
        }
        if c.ozon.api_key.is_some() {
            c.ozon.api_key = Some("********".into());
        }
        // A password written into a URL (`https://user:secret@host/`).
        for url in [
            &mut c.database_url,
            &mut c.public_url,
            &mut c.ozon.base_url,
            &mut c.cdek.base_url,
            &mut c.dpd.base_url,
        ] {
            if let Some(u) = url.as_mut() {
                *u = mask_url_password(u);
            }
        }
        c
    }
}

/// `scheme://user:password@host…` with the password masked; other text unchanged.
fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:********{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_hides_every_secret() {
        let mut c = Config::default();
        c.exchange.password = Some("s3cr3t-exchange".into());
        c.api.token = Some("s3cr3t-token".into());
        c.ozon.api_key = Some("s3cr3t-ozon".into());
        c.cdek.client_secret = Some("s3cr3t-cdek".into());
        c.dpd.client_key = Some("s3cr3t-dpd".into());
        c.database_url = Some("postgres://obmen:s3cr3t-db@db:5432/obmen".into());
        c.public_url = Some("https://u:s3cr3t-public@obmen.example/".into());
        c.ozon.base_url = Some("https://api-seller.ozon.ru".into());
        let m = c.masked();
        let text = toml::to_string(&m).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(
            m.database_url.as_deref(),
            Some("postgres://obmen:********@db:5432/obmen")
        );
        assert_eq!(
            m.ozon.base_url.as_deref(),
            Some("https://api-seller.ozon.ru")
        );
        assert_eq!(m.ozon.api_key.as_deref(), Some("********"));
        // Unset secrets stay unset (the page shows they are missing).
        assert!(Config::default().masked().api.token.is_none());
        assert_eq!(mask_url_password("a@b:c"), "a@b:c");
    }

    #[test]
    fn defaults_run_with_nothing() {
        let c = Config::default();
        assert_eq!(c.exchange.login, "1c");
        assert!(c.exchange.zip);
        assert!(c.api.token.is_none());
        assert!(c.database_url().ends_with("obmen.db"));
    }

    #[test]
    fn env_overrides_file_values() {
        let mut c: Config =
            toml::from_str("listen = \"127.0.0.1:1\"\n[exchange]\nzip = false\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        c.apply_env(|k| match k {
            "OBMEN_LISTEN" => Some("127.0.0.1:2".into()),
            "OBMEN_EXCHANGE_ZIP" => Some("yes".into()),
            "OBMEN_EXCHANGE_FILE_LIMIT" => Some("204800".into()),
            "OBMEN_LANG" => Some("en".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert!(c.exchange.zip);
        assert_eq!(c.exchange.file_limit, 204800);
        assert_eq!(c.lang, Lang::En);
    }

    #[test]
    fn bad_env_value_is_an_error() {
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "OBMEN_EXCHANGE_FILE_LIMIT").then(|| "lots".into()))
            .unwrap_err();
        assert!(err.to_string().contains("OBMEN_EXCHANGE_FILE_LIMIT"));
    }

    #[test]
    fn unknown_keys_in_file_are_rejected() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    #[test]
    fn every_ozon_key_comes_from_the_environment() {
        let mut c = Config::default();
        assert!(!c.ozon.enabled());
        c.apply_env(|k| match k {
            "OBMEN_OZON_BASE_URL" => Some("http://127.0.0.1:9".into()),
            "OBMEN_OZON_CLIENT_ID" => Some("123".into()),
            "OBMEN_OZON_API_KEY" => Some("key".into()),
            "OBMEN_OZON_WAREHOUSE_ID" => Some("22142605386000".into()),
            "OBMEN_OZON_PRICE_TYPE" => Some("Розничная".into()),
            "OBMEN_OZON_OFFER_ID" => Some("id".into()),
            "OBMEN_OZON_ORDERS_POLL" => Some("*/5 * * * * *".into()),
            "OBMEN_OZON_STOCK_RESERVE" => Some("2".into()),
            "OBMEN_OZON_FILTER_GROUPS" => Some(r#"["Обувь"]"#.into()),
            _ => None,
        })
        .unwrap();
        let o = &c.ozon;
        assert!(o.enabled());
        assert_eq!(o.client_id.as_deref(), Some("123"));
        assert_eq!(o.warehouse_id, Some(22142605386000));
        assert_eq!(o.price_type.as_deref(), Some("Розничная"));
        assert_eq!(o.offer_id, "id");
        assert_eq!(o.orders_poll, "*/5 * * * * *");
        assert_eq!(o.stock_reserve, 2);
        assert_eq!(o.filter_groups, vec!["Обувь".to_string()]);
        let err = c
            .apply_env(|k| (k == "OBMEN_OZON_RPS").then(|| "fast".into()))
            .unwrap_err();
        assert!(err.to_string().contains("OBMEN_OZON_RPS"));
    }

    #[test]
    fn secrets_are_masked() {
        let mut c = Config::default();
        c.exchange.password = Some("secret".into());
        c.api.token = Some("tok".into());
        let text = toml::to_string(&c.masked()).unwrap();
        assert!(!text.contains("secret") && !text.contains("tok\""));
    }

    #[cfg(unix)]
    #[test]
    fn config_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("obmen.toml");
        let set = |mode: u32| {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        std::fs::write(&f, "[api]\ntoken = \"t0ken\"\n").unwrap();
        for mode in [0o600, 0o640, 0o400] {
            set(mode);
            assert!(Config::load(Some(&f)).is_ok(), "{mode:o}");
            let cfg = Config::load(Some(&f)).unwrap();
            assert_eq!(check_file_permissions(&f, &cfg).unwrap(), None, "{mode:o}");
        }
        for mode in [0o660, 0o606, 0o666, 0o622] {
            set(mode);
            let e = Config::load(Some(&f)).unwrap_err().to_string();
            assert!(e.contains("writable by group or others"), "{mode:o}: {e}");
            assert!(e.contains("chmod go-w"), "{e}");
        }
        set(0o644);
        let cfg = Config::load(Some(&f)).unwrap();
        let w = check_file_permissions(&f, &cfg)
            .unwrap()
            .expect("a warning");
        assert!(w.contains("readable by every local user"), "{w}");
        assert!(!w.contains("t0ken"), "{w}");
        // Without secrets a world-readable file is fine.
        std::fs::write(&f, "listen = \"127.0.0.1:1\"\n").unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!(check_file_permissions(&f, &cfg).unwrap(), None);
    }
}
