//! Configuration: command-line flags (each also read from an environment variable), validated
//! once into a [`Config`].

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::build_info;
use crate::database::DatabaseSettings;
use crate::database::settings;
use crate::duration;
use crate::healthcheck::ProbeSettings;
use crate::http::auth::BearerToken;
use crate::http::web_config::{self, WebSettings};
use crate::logging::LogFormat;
use crate::storage::StorageSettings;

/// The default listening port. Fluxbase uses 8080 (API) and 9090 (metrics), postgres_exporter
/// 9187 and node_exporter 9100; 9745 clashes with none of them.
pub const DEFAULT_PORT: u16 = 9745;

/// The environment variable holding the bearer token for `/api/v1/monitoring/metrics`. A token is
/// never accepted as a command-line value, where `ps` would show it.
pub const AUTH_TOKEN_ENV: &str = "FLUXBASE_EXPORTER_AUTH_TOKEN";

/// Paths the exporter serves besides the telemetry path.
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    "/health",
    "/livez",
    "/readyz",
    "/api/v1/monitoring/metrics",
    "/api/v1/monitoring/health",
];

/// The command line, as clap parses it.
#[derive(Debug, Parser)]
#[command(
    name = "fluxbase-exporter",
    version = build_info::VERSION_LINE,
    about = "Prometheus metrics, JSON system metrics and health checks for Fluxbase, measured from outside its process."
)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on: HOST:PORT, or :PORT for every IPv4 interface.
    #[arg(
        long = "web.listen-address",
        env = "FLUXBASE_EXPORTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDRESS",
        default_value = ":9745"
    )]
    pub web_listen_address: String,

    /// Path under which to expose Prometheus metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "FLUXBASE_EXPORTER_WEB_TELEMETRY_PATH",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub web_telemetry_path: String,

    /// File holding the bearer token that /api/v1/monitoring/metrics requires (or set
    /// FLUXBASE_EXPORTER_AUTH_TOKEN).
    #[arg(
        long = "web.auth-token-file",
        env = "FLUXBASE_EXPORTER_WEB_AUTH_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub web_auth_token_file: Option<PathBuf>,

    /// Number of HTTP worker threads.
    #[arg(
        long = "web.threads",
        env = "FLUXBASE_EXPORTER_WEB_THREADS",
        value_name = "N",
        default_value_t = 4
    )]
    pub web_threads: usize,

    /// Connections kept open at once. At the limit, the connection that has waited longest for
    /// a request is closed to make room; only when all are busy is a new one refused with 503.
    #[arg(
        long = "web.max-connections",
        env = "FLUXBASE_EXPORTER_WEB_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 128
    )]
    pub web_max_connections: usize,

    /// How long a connection may wait for its next request before it is closed.
    #[arg(
        long = "web.idle-timeout",
        env = "FLUXBASE_EXPORTER_WEB_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub web_idle_timeout: String,

    /// How long a request's head may take from its first byte to its last (then 408).
    #[arg(
        long = "web.header-timeout",
        env = "FLUXBASE_EXPORTER_WEB_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub web_header_timeout: String,

    /// How long writing a response may block on a client that does not read.
    #[arg(
        long = "web.write-timeout",
        env = "FLUXBASE_EXPORTER_WEB_WRITE_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub web_write_timeout: String,

    /// File in the Prometheus exporter-toolkit web config format: TLS, basic auth and response
    /// headers (re-read when it changes).
    #[arg(
        long = "web.config.file",
        env = "FLUXBASE_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Listen on the socket systemd passes (socket activation) instead of
    /// --web.listen-address.
    #[arg(
        long = "web.systemd-socket",
        env = "FLUXBASE_EXPORTER_WEB_SYSTEMD_SOCKET",
        default_value_t = false
    )]
    pub web_systemd_socket: bool,

    /// User name the healthcheck subcommand sends when --web.config.file asks for basic auth.
    #[arg(
        long = "healthcheck.username",
        env = "FLUXBASE_EXPORTER_HEALTHCHECK_USERNAME",
        value_name = "USER"
    )]
    pub healthcheck_username: Option<String>,

    /// File holding the password the healthcheck subcommand sends with --healthcheck.username.
    #[arg(
        long = "healthcheck.password-file",
        env = "FLUXBASE_EXPORTER_HEALTHCHECK_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub healthcheck_password_file: Option<PathBuf>,

    /// CA certificates the healthcheck subcommand verifies the server with [default: the
    /// certificate of --web.config.file itself, for a self-signed one].
    #[arg(
        long = "healthcheck.tls-ca-file",
        env = "FLUXBASE_EXPORTER_HEALTHCHECK_TLS_CA_FILE",
        value_name = "FILE"
    )]
    pub healthcheck_tls_ca_file: Option<PathBuf>,

    /// Client certificate the healthcheck subcommand and the systemd watchdog probe present
    /// when --web.config.file requires one.
    #[arg(
        long = "healthcheck.tls-cert-file",
        env = "FLUXBASE_EXPORTER_HEALTHCHECK_TLS_CERT_FILE",
        value_name = "FILE"
    )]
    pub healthcheck_tls_cert_file: Option<PathBuf>,

    /// Private key of --healthcheck.tls-cert-file.
    #[arg(
        long = "healthcheck.tls-key-file",
        env = "FLUXBASE_EXPORTER_HEALTHCHECK_TLS_KEY_FILE",
        value_name = "FILE"
    )]
    pub healthcheck_tls_key_file: Option<PathBuf>,

    /// Maximum number of series one labelled family may hold; further label sets are dropped
    /// and counted in fluxbase_exporter_series_dropped_total.
    #[arg(
        long = "metrics.max-series",
        env = "FLUXBASE_EXPORTER_METRICS_MAX_SERIES",
        value_name = "N",
        default_value_t = 1000
    )]
    pub metrics_max_series: usize,

    /// Only log messages with the given severity or above: error, warn, info, debug, trace
    /// [default: info, or debug when FLUXBASE_DEBUG=true].
    #[arg(
        long = "log.level",
        env = "FLUXBASE_EXPORTER_LOG_LEVEL",
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,

    /// PostgreSQL connection of the Fluxbase database: a postgres:// URL or a key=value string
    /// [default: built from FLUXBASE_DATABASE_* when any is set; else no database].
    #[arg(
        long = "database.url",
        env = "FLUXBASE_EXPORTER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// File holding the database password (replaces any password in the URL or
    /// FLUXBASE_DATABASE_PASSWORD).
    #[arg(
        long = "database.password-file",
        env = "FLUXBASE_EXPORTER_DATABASE_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub database_password_file: Option<PathBuf>,

    /// Connections the exporter's own pool may hold.
    #[arg(
        long = "database.pool-size",
        env = "FLUXBASE_EXPORTER_DATABASE_POOL_SIZE",
        value_name = "N",
        default_value_t = 2
    )]
    pub database_pool_size: u32,

    /// Count only this role's backends as Fluxbase's (connections, query activity).
    #[arg(
        long = "database.fluxbase-user",
        env = "FLUXBASE_EXPORTER_DATABASE_FLUXBASE_USER",
        value_name = "ROLE"
    )]
    pub database_fluxbase_user: Option<String>,

    /// How often the heavier Fluxbase schema aggregates (storage, auth, webhooks, jobs) run.
    #[arg(
        long = "database.aggregates-interval",
        env = "FLUXBASE_EXPORTER_DATABASE_AGGREGATES_INTERVAL",
        value_name = "DURATION",
        default_value = "60s"
    )]
    pub database_aggregates_interval: String,

    /// Fluxbase's local storage root [default: FLUXBASE_STORAGE_LOCAL_PATH, else ./storage;
    /// none when FLUXBASE_STORAGE_PROVIDER names another provider].
    #[arg(
        long = "storage.path",
        env = "FLUXBASE_EXPORTER_STORAGE_PATH",
        value_name = "DIR"
    )]
    pub storage_path: Option<PathBuf>,

    /// How often the storage root is walked to count buckets, objects and bytes.
    #[arg(
        long = "storage.scan-interval",
        env = "FLUXBASE_EXPORTER_STORAGE_SCAN_INTERVAL",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub storage_scan_interval: String,

    /// Write, read and delete a small file in <storage root>/.fluxbase-exporter on every check.
    #[arg(
        long = "storage.probe",
        env = "FLUXBASE_EXPORTER_STORAGE_PROBE",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub storage_probe: bool,

    /// Below this share of free space on the storage filesystem, storage is degraded.
    #[arg(
        long = "storage.min-free-ratio",
        env = "FLUXBASE_EXPORTER_STORAGE_MIN_FREE_RATIO",
        value_name = "RATIO",
        default_value_t = 0.05
    )]
    pub storage_min_free_ratio: f64,

    /// A JSON-lines log of Fluxbase to follow like tail -F (repeatable; - for standard input).
    #[arg(
        long = "events.file",
        env = "FLUXBASE_EXPORTER_EVENTS_FILE",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub events_file: Vec<String>,

    /// Read the event files from their beginning instead of their end.
    #[arg(long = "events.from-start", env = "FLUXBASE_EXPORTER_EVENTS_FROM_START", action = clap::ArgAction::SetTrue)]
    pub events_from_start: bool,

    /// Read Fluxbase's events from its logging.entries table (needs the database).
    #[arg(long = "events.database", env = "FLUXBASE_EXPORTER_EVENTS_DATABASE", action = clap::ArgAction::SetTrue)]
    pub events_database: bool,

    /// How far behind the newest logging.entries row each read starts, to catch rows written late.
    #[arg(
        long = "events.database-overlap",
        env = "FLUXBASE_EXPORTER_EVENTS_DATABASE_OVERLAP",
        value_name = "DURATION",
        default_value = "2m"
    )]
    pub events_database_overlap: String,

    /// How often followed files are checked for new lines.
    #[arg(
        long = "events.poll-interval",
        env = "FLUXBASE_EXPORTER_EVENTS_POLL_INTERVAL",
        value_name = "DURATION",
        default_value = "250ms"
    )]
    pub events_poll_interval: String,

    /// How often each check runs; a failed check is retried no later than this.
    #[arg(
        long = "check.interval",
        env = "FLUXBASE_EXPORTER_CHECK_INTERVAL",
        value_name = "DURATION",
        default_value = "15s"
    )]
    pub check_interval: String,

    /// How long one step of a check may take before it counts as failed.
    #[arg(
        long = "check.timeout",
        env = "FLUXBASE_EXPORTER_CHECK_TIMEOUT",
        value_name = "DURATION",
        default_value = "5s"
    )]
    pub check_timeout: String,

    /// Output format of log messages: json or logfmt.
    #[arg(
        long = "log.format",
        env = "FLUXBASE_EXPORTER_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "json"
    )]
    pub log_format: String,
}

/// Subcommands besides serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Exit 0 when the exporter's health endpoint answers 2xx within 5 s, 1 otherwise (for a
    /// container's HEALTHCHECK, which has no curl).
    Healthcheck {
        /// The URL to ask [default: http://127.0.0.1:<port of --web.listen-address>/api/v1/monitoring/health].
        url: Option<String>,
    },
}

/// The validated configuration the exporter runs with.
#[derive(Debug)]
pub struct Config {
    pub web: WebConfig,
    pub log: LogConfig,
    /// The cardinality guard: series per labelled family.
    pub max_series: usize,
    pub checks: CheckConfig,
    /// `None`: no database is configured.
    pub database: Option<DatabaseSettings>,
    /// `None`: Fluxbase stores objects elsewhere (S3), so there is no local root to watch.
    pub storage: Option<StorageSettings>,
    pub events: EventsConfig,
}

/// Where Fluxbase's events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsConfig {
    pub files: Vec<EventFile>,
    pub from_start: bool,
    /// Read `logging.entries` (a database is configured whenever this is set).
    pub database: bool,
    pub database_overlap: Duration,
    pub poll_interval: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFile {
    Path(PathBuf),
    Stdin,
}

/// The pace and bound shared by every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct WebConfig {
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub threads: usize,
    /// Connections kept open at once (`--web.max-connections`).
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    /// `None`: the JSON metrics endpoint answers 403 saying how to configure a token.
    pub auth_token: Option<BearerToken>,
    /// `--web.config.file` and what it held at start-up.
    pub config_file: Option<(PathBuf, WebSettings)>,
    /// Serve on the socket systemd passed (`--web.systemd-socket`).
    pub systemd_socket: bool,
    /// How the systemd watchdog probe reaches the server.
    pub probe: ProbeSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub level: log::LevelFilter,
    pub format: LogFormat,
}

/// A setting that cannot be used, and why. Displays as one line naming the setting.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Validates parsed flags. `env` looks up the variables that are not flags
    /// (`FLUXBASE_EXPORTER_AUTH_TOKEN`, `FLUXBASE_DEBUG`); production passes the process
    /// environment, tests a map.
    pub fn from_flags(
        flags: Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let listen_address = parse_listen_address(&flags.web_listen_address)
            .map_err(|message| ConfigError::new("--web.listen-address", message))?;
        let telemetry_path = validate_telemetry_path(&flags.web_telemetry_path)
            .map_err(|message| ConfigError::new("--web.telemetry-path", message))?;
        if !(1..=256).contains(&flags.web_threads) {
            return Err(ConfigError::new(
                "--web.threads",
                "must be between 1 and 256",
            ));
        }
        if !(1..=65_536).contains(&flags.web_max_connections) {
            return Err(ConfigError::new(
                "--web.max-connections",
                "must be between 1 and 65536",
            ));
        }
        let idle_timeout = positive_duration("--web.idle-timeout", &flags.web_idle_timeout)?;
        let header_timeout = positive_duration("--web.header-timeout", &flags.web_header_timeout)?;
        let write_timeout = positive_duration("--web.write-timeout", &flags.web_write_timeout)?;
        if flags.metrics_max_series == 0 {
            return Err(ConfigError::new(
                "--metrics.max-series",
                "must be at least 1",
            ));
        }
        let auth_token = auth_token(flags.web_auth_token_file.as_deref(), env)?;
        let config_file = match &flags.web_config_file {
            Some(path) => Some((path.clone(), load_web_config(path)?)),
            None => None,
        };
        let probe = probe_settings(&flags);
        let checks = CheckConfig {
            interval: positive_duration("--check.interval", &flags.check_interval)?,
            timeout: positive_duration("--check.timeout", &flags.check_timeout)?,
        };
        let aggregates_interval = positive_duration(
            "--database.aggregates-interval",
            &flags.database_aggregates_interval,
        )?;
        let database = settings::resolve(&settings::Sources {
            url: flags.database_url.as_deref(),
            password_file: flags.database_password_file.as_deref(),
            pool_size: flags.database_pool_size,
            fluxbase_user: flags.database_fluxbase_user.as_deref(),
            aggregates_interval,
            check_timeout: checks.timeout,
            env,
        })
        .map_err(|err| ConfigError::new(err.setting, err.message))?;
        let storage = storage_settings(&flags, env)?;
        let events = events_config(&flags, database.is_some())?;
        let level = log_level(flags.log_level.as_deref(), env)?;
        let format = flags
            .log_format
            .parse::<LogFormat>()
            .map_err(|message| ConfigError::new("--log.format", message))?;
        Ok(Config {
            web: WebConfig {
                listen_address,
                telemetry_path,
                threads: flags.web_threads,
                max_connections: flags.web_max_connections,
                idle_timeout,
                header_timeout,
                write_timeout,
                auth_token,
                config_file,
                systemd_socket: flags.web_systemd_socket,
                probe,
            },
            log: LogConfig { level, format },
            max_series: flags.metrics_max_series,
            checks,
            database,
            storage,
            events,
        })
    }
}

/// The storage root: the flag, else Fluxbase's own setting, else Fluxbase's default; none when
/// Fluxbase is configured for a provider other than the local one and no path was given.
fn storage_settings(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<StorageSettings>, ConfigError> {
    let scan_interval = positive_duration("--storage.scan-interval", &flags.storage_scan_interval)?;
    let ratio = flags.storage_min_free_ratio;
    if !(0.0..1.0).contains(&ratio) {
        return Err(ConfigError::new(
            "--storage.min-free-ratio",
            "must be at least 0 and below 1 (0.05 is 5%)",
        ));
    }
    let nonempty = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let root = match &flags.storage_path {
        Some(path) => path.clone(),
        None => {
            if let Some(provider) = nonempty("FLUXBASE_STORAGE_PROVIDER")
                && !provider.trim().eq_ignore_ascii_case("local")
            {
                return Ok(None);
            }
            nonempty("FLUXBASE_STORAGE_LOCAL_PATH")
                .map_or_else(|| PathBuf::from("./storage"), PathBuf::from)
        }
    };
    Ok(Some(StorageSettings {
        root,
        probe: flags.storage_probe,
        scan_interval,
        min_free_ratio: ratio,
    }))
}

fn events_config(flags: &Flags, have_database: bool) -> Result<EventsConfig, ConfigError> {
    let mut files = Vec::new();
    for file in flags
        .events_file
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    {
        let file = if file == "-" {
            EventFile::Stdin
        } else {
            EventFile::Path(PathBuf::from(file))
        };
        if files.contains(&file) {
            return Err(ConfigError::new(
                "--events.file",
                format!("{file:?} is given twice"),
            ));
        }
        files.push(file);
    }
    if flags.events_database && !have_database {
        return Err(ConfigError::new(
            "--events.database",
            "needs a database: set --database.url, or Fluxbase's FLUXBASE_DATABASE_* variables",
        ));
    }
    Ok(EventsConfig {
        files,
        from_start: flags.events_from_start,
        database: flags.events_database,
        database_overlap: positive_duration(
            "--events.database-overlap",
            &flags.events_database_overlap,
        )?,
        poll_interval: positive_duration("--events.poll-interval", &flags.events_poll_interval)?,
    })
}

/// A duration of at least a millisecond, written as Prometheus writes it.
fn positive_duration(setting: &str, text: &str) -> Result<Duration, ConfigError> {
    match duration::parse(text.trim()) {
        Ok(value) if value >= Duration::from_millis(1) => Ok(value),
        Ok(_) => Err(ConfigError::new(setting, "must be longer than 0")),
        Err(message) => Err(ConfigError::new(setting, message)),
    }
}

/// `:PORT` (every IPv4 interface, as Go exporters write it), `HOST:PORT` or `[V6]:PORT`.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let candidate = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    let mut addresses = candidate
        .to_socket_addrs()
        .map_err(|err| format!("{text:?} is not HOST:PORT or :PORT ({err})"))?;
    addresses
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn validate_telemetry_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!("{path:?} must start with / and name a path"));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{path:?} must be a plain path"));
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!("{path:?} is already served by another endpoint"));
    }
    Ok(path.to_owned())
}

fn auth_token(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<BearerToken>, ConfigError> {
    let from_env = env(AUTH_TOKEN_ENV).filter(|value| !value.is_empty());
    match (file, from_env) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "--web.auth-token-file",
            format!("set either --web.auth-token-file or {AUTH_TOKEN_ENV}, not both"),
        )),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|err| {
                ConfigError::new(
                    "--web.auth-token-file",
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            BearerToken::new(text.trim()).map(Some).ok_or_else(|| {
                ConfigError::new(
                    "--web.auth-token-file",
                    format!("{} holds no token", path.display()),
                )
            })
        }
        (None, Some(value)) => BearerToken::new(value.trim())
            .map(Some)
            .ok_or_else(|| ConfigError::new(AUTH_TOKEN_ENV, "holds only white space")),
        // systemd's LoadCredential=auth-token:... puts the token where only this service reads it.
        (None, None) => match env("CREDENTIALS_DIRECTORY") {
            Some(directory) => {
                let path = Path::new(&directory).join(CREDENTIAL_NAME);
                match std::fs::read_to_string(&path) {
                    Ok(text) => BearerToken::new(text.trim()).map(Some).ok_or_else(|| {
                        ConfigError::new(
                            "LoadCredential=auth-token",
                            format!("{} holds no token", path.display()),
                        )
                    }),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(err) => Err(ConfigError::new(
                        "LoadCredential=auth-token",
                        format!("cannot read {}: {err}", path.display()),
                    )),
                }
            }
            None => Ok(None),
        },
    }
}

/// The name of the systemd credential holding the bearer token.
pub const CREDENTIAL_NAME: &str = "auth-token";

/// Reads `--web.config.file`; an unusable file is a configuration error naming the key.
pub fn load_web_config(path: &Path) -> Result<WebSettings, ConfigError> {
    web_config::load(path)
        .map_err(|err| ConfigError::new("--web.config.file", format!("{}: {err}", path.display())))
}

/// The `--healthcheck.*` settings (and `--web.config.file`) the probes use.
pub fn probe_settings(flags: &Flags) -> ProbeSettings {
    ProbeSettings {
        web_config_file: flags.web_config_file.clone(),
        username: flags.healthcheck_username.clone(),
        password_file: flags.healthcheck_password_file.clone(),
        ca_file: flags.healthcheck_tls_ca_file.clone(),
        cert_file: flags.healthcheck_tls_cert_file.clone(),
        key_file: flags.healthcheck_tls_key_file.clone(),
    }
}

/// Where `healthcheck` asks when given no URL: the health endpoint at the configured listen
/// address (loopback when it listens on every address).
pub fn default_health_url(listen_address: &str, tls: bool) -> String {
    let mut target = parse_listen_address(listen_address)
        .unwrap_or_else(|_| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, DEFAULT_PORT)));
    if target.ip().is_unspecified() {
        target = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, target.port()));
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{target}/api/v1/monitoring/health")
}

fn log_level(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<log::LevelFilter, ConfigError> {
    if let Some(level) = flag {
        return match level.to_ascii_lowercase().as_str() {
            "error" => Ok(log::LevelFilter::Error),
            "warn" | "warning" => Ok(log::LevelFilter::Warn),
            "info" => Ok(log::LevelFilter::Info),
            "debug" => Ok(log::LevelFilter::Debug),
            "trace" => Ok(log::LevelFilter::Trace),
            _ => Err(ConfigError::new(
                "--log.level",
                format!("{level:?} is not one of error, warn, info, debug, trace"),
            )),
        };
    }
    // Fluxbase's own switch, read the way Go's strconv.ParseBool reads it.
    match env("FLUXBASE_DEBUG").as_deref().map(str::trim) {
        None | Some("") => Ok(log::LevelFilter::Info),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(log::LevelFilter::Debug),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(log::LevelFilter::Info),
        Some(other) => Err(ConfigError::new(
            "FLUXBASE_DEBUG",
            format!("{other:?} is not true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let flags =
            Flags::try_parse_from(std::iter::once("fluxbase-exporter").chain(args.iter().copied()))
                .expect("flags parse");
        Config::from_flags(flags, &|name| env.get(name).cloned())
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        config(args, env).unwrap_err().to_string()
    }

    #[test]
    fn defaults_serve_every_interface_on_the_default_port() {
        let config = config(&[], &[]).unwrap();
        assert_eq!(
            config.web.listen_address,
            SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
        );
        assert_eq!(config.web.telemetry_path, "/metrics");
        assert_eq!(config.web.threads, 4);
        assert!(config.web.auth_token.is_none());
        assert_eq!(config.max_series, 1000);
        assert_eq!(
            config.log,
            LogConfig {
                level: log::LevelFilter::Info,
                format: LogFormat::Json
            }
        );
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(
            parse_listen_address(":0").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 0))
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:9745").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9745))
        );
        assert_eq!(
            parse_listen_address("[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
        assert!(
            parse_listen_address("localhost:9745")
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert_eq!(
            error(&["--web.listen-address", "nonsense"], &[]),
            "invalid --web.listen-address: \"nonsense\" is not HOST:PORT or :PORT (invalid socket address)"
        );
        assert!(
            error(&["--web.listen-address", ":99999"], &[])
                .starts_with("invalid --web.listen-address: \":99999\"")
        );
    }

    #[test]
    fn telemetry_path_must_be_a_free_plain_path() {
        assert_eq!(
            config(&["--web.telemetry-path", "/prom"], &[])
                .unwrap()
                .web
                .telemetry_path,
            "/prom"
        );
        for bad in ["metrics", "/", "/health", "/a?b", "/a b"] {
            assert!(
                error(&["--web.telemetry-path", bad], &[])
                    .starts_with("invalid --web.telemetry-path: "),
                "{bad}"
            );
        }
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(
            error(&["--web.threads", "0"], &[]),
            "invalid --web.threads: must be between 1 and 256"
        );
        assert_eq!(
            error(&["--metrics.max-series", "0"], &[]),
            "invalid --metrics.max-series: must be at least 1"
        );
    }

    #[test]
    fn token_comes_from_a_file_or_the_environment_never_both() {
        let dir = std::env::temp_dir().join(format!("fxe-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.to_str().unwrap();

        let from_file = config(&["--web.auth-token-file", path], &[]).unwrap();
        assert!(from_file.web.auth_token.unwrap().matches(b"s3cret"));
        let from_env = config(&[], &[(AUTH_TOKEN_ENV, "envtoken")]).unwrap();
        assert!(from_env.web.auth_token.unwrap().matches(b"envtoken"));
        assert!(
            error(&["--web.auth-token-file", path], &[(AUTH_TOKEN_ENV, "x")]).contains("not both")
        );

        std::fs::write(&file, " \n").unwrap();
        assert!(error(&["--web.auth-token-file", path], &[]).ends_with("holds no token"));
        let missing = dir.join("missing");
        assert!(
            error(&["--web.auth-token-file", missing.to_str().unwrap()], &[])
                .starts_with("invalid --web.auth-token-file: cannot read ")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_systemd_credential_holds_the_token_when_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("fxe-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CREDENTIAL_NAME), "from-systemd\n").unwrap();
        let directory = dir.to_str().unwrap();
        let loaded = config(&[], &[("CREDENTIALS_DIRECTORY", directory)]).unwrap();
        assert!(loaded.web.auth_token.unwrap().matches(b"from-systemd"));
        // The environment variable wins over the credential.
        let both = config(
            &[],
            &[
                ("CREDENTIALS_DIRECTORY", directory),
                (AUTH_TOKEN_ENV, "env"),
            ],
        )
        .unwrap();
        assert!(both.web.auth_token.unwrap().matches(b"env"));
        std::fs::remove_file(dir.join(CREDENTIAL_NAME)).unwrap();
        assert!(
            config(&[], &[("CREDENTIALS_DIRECTORY", directory)])
                .unwrap()
                .web
                .auth_token
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_healthcheck_asks_the_configured_port() {
        assert_eq!(
            default_health_url(":9745", false),
            "http://127.0.0.1:9745/api/v1/monitoring/health"
        );
        assert_eq!(
            default_health_url("0.0.0.0:8000", false),
            "http://127.0.0.1:8000/api/v1/monitoring/health"
        );
        assert_eq!(
            default_health_url("[::]:7000", false),
            "http://127.0.0.1:7000/api/v1/monitoring/health"
        );
        assert_eq!(
            default_health_url(":9745", true),
            "https://127.0.0.1:9745/api/v1/monitoring/health"
        );
    }

    #[test]
    fn a_config_error_never_shows_the_token() {
        let rendered = format!(
            "{:?}",
            config(&[], &[(AUTH_TOKEN_ENV, "very-secret-token")]).unwrap()
        );
        assert!(!rendered.contains("very-secret-token"), "{rendered}");
    }

    #[test]
    fn log_level_from_flag_or_fluxbase_debug() {
        assert_eq!(
            config(&["--log.level", "DEBUG"], &[]).unwrap().log.level,
            log::LevelFilter::Debug
        );
        assert_eq!(
            config(&[], &[("FLUXBASE_DEBUG", "true")])
                .unwrap()
                .log
                .level,
            log::LevelFilter::Debug
        );
        assert_eq!(
            config(&[], &[("FLUXBASE_DEBUG", "false")])
                .unwrap()
                .log
                .level,
            log::LevelFilter::Info
        );
        assert_eq!(
            config(&["--log.level", "warn"], &[("FLUXBASE_DEBUG", "true")])
                .unwrap()
                .log
                .level,
            log::LevelFilter::Warn
        );
        assert_eq!(
            error(&[], &[("FLUXBASE_DEBUG", "yes")]),
            "invalid FLUXBASE_DEBUG: \"yes\" is not true or false"
        );
        assert!(error(&["--log.level", "loud"], &[]).starts_with("invalid --log.level: "));
        assert_eq!(
            config(&["--log.format", "logfmt"], &[]).unwrap().log.format,
            LogFormat::Logfmt
        );
        assert!(error(&["--log.format", "xml"], &[]).starts_with("invalid --log.format: "));
    }
}
