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
    /// Database URL (`OBMEN_DATABASE_URL`); default: `<data_dir>/obmen.db`.
    pub database_url: Option<String>,
    /// Language of user-facing text: `ru` (default) or `en` (`OBMEN_LANG`).
    pub lang: Lang,
    pub exchange: ExchangeConfig,
    pub api: ApiConfig,
    pub orders: OrdersConfig,
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
            lang: Lang::Ru,
            exchange: ExchangeConfig::default(),
            api: ApiConfig::default(),
            orders: OrdersConfig::default(),
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
                toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(|name| std::env::var(name).ok())?;
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
        if let Some(v) = nonempty("OBMEN_API_TOKEN") {
            self.api.token = Some(v);
        }
        if let Some(v) = nonempty("OBMEN_ORDERS_ENCODING") {
            self.orders.encoding = v;
        }
        if let Some(v) = nonempty("OBMEN_ORDERS_SCHEMA") {
            self.orders.schema = v;
        }
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

    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
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
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn secrets_are_masked() {
        let mut c = Config::default();
        c.exchange.password = Some("secret".into());
        c.api.token = Some("tok".into());
        let text = toml::to_string(&c.masked()).unwrap();
        assert!(!text.contains("secret") && !text.contains("tok\""));
    }
}
