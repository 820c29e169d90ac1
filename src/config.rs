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
use crate::fluxbase_api::ApiSettings;
use crate::fluxbase_config::{FluxbaseConfig, Layered, SettingOrigin, StartupReport};
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

    /// Fluxbase's API base URL, whose GET /health is checked as the service `api` [default:
    /// built from Fluxbase's server.address (FLUXBASE_SERVER_ADDRESS or its file) when set].
    #[arg(
        long = "fluxbase.url",
        env = "FLUXBASE_EXPORTER_FLUXBASE_URL",
        value_name = "URL"
    )]
    pub fluxbase_url: Option<String>,

    /// Fluxbase's own YAML configuration file, read under its FLUXBASE_* environment; an empty
    /// value reads none [default: the first that exists of ./fluxbase.yaml, ./fluxbase.yml,
    /// ./config/fluxbase.yaml, ./config/fluxbase.yml, /etc/fluxbase/fluxbase.yaml,
    /// /etc/fluxbase/fluxbase.yml].
    #[arg(
        long = "fluxbase.config",
        env = "FLUXBASE_EXPORTER_FLUXBASE_CONFIG",
        value_name = "FILE"
    )]
    pub fluxbase_config: Option<String>,

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

    /// Elect one leader among exporters sharing the database (a PostgreSQL advisory lock): only
    /// it reads the database-wide figures and logging.entries. false: always lead, no lock.
    #[arg(
        long = "database.coordinate",
        env = "FLUXBASE_EXPORTER_DATABASE_COORDINATE",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub database_coordinate: bool,

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

    /// How long before its insert a logging.entries row may be stamped (Fluxbase's batching plus
    /// clock difference); each read reaches this far back.
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

    /// Fluxbase's own metrics endpoint, passed through for the families it counts itself
    /// [default: http://127.0.0.1:<FLUXBASE_METRICS_PORT or 9090><FLUXBASE_METRICS_PATH or
    /// /metrics> when any FLUXBASE_METRICS_* is set; else none].
    #[arg(
        long = "fluxbase.metrics-url",
        env = "FLUXBASE_EXPORTER_FLUXBASE_METRICS_URL",
        value_name = "URL"
    )]
    pub fluxbase_metrics_url: Option<String>,

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
    /// Fluxbase's API, checked as the service `api`; `None` when no URL is known.
    pub fluxbase_api: Option<ApiSettings>,
    /// Where each setting came from, and warnings, for the start-up log.
    pub startup: StartupReport,
    /// Fluxbase's own metrics endpoint; `None`: no upstream, every family is our own.
    pub fluxbase_metrics_url: Option<String>,
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
    ///
    /// Fluxbase's own settings (`FLUXBASE_*` but not `FLUXBASE_EXPORTER_*`) are looked up with
    /// Fluxbase's precedence: its environment, else its configuration file, else its defaults
    /// while a file is in use (`fluxbase_config`). Our flags beat all three.
    pub fn from_flags(
        flags: Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let fluxbase = FluxbaseConfig::load(flags.fluxbase_config.as_deref().map(Path::new), &cwd)
            .map_err(|err| ConfigError::new("--fluxbase.config", err.to_string()))?;
        let process_env = env;
        let layered = Layered::new(&fluxbase, process_env);
        // From here on every lookup of a Fluxbase setting goes through its layers.
        let env: &dyn Fn(&str) -> Option<String> = &|name| layered.get(name);
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
            coordinate: flags.database_coordinate,
            fluxbase_user: flags.database_fluxbase_user.as_deref(),
            aggregates_interval,
            check_timeout: checks.timeout,
            env,
        })
        .map_err(|err| ConfigError::new(&layered.describe(err.setting), err.message))?;
        let mut warnings = fluxbase.warnings().to_vec();
        let storage = storage_settings(&flags, env)?.map(|settings| {
            place_storage_root(settings, &flags, &fluxbase, &layered, &cwd, &mut warnings)
        });
        let events = events_config(&flags, database.is_some())?;
        let fluxbase_api = fluxbase_api(flags.fluxbase_url.as_deref(), &layered)?;
        if let Some(warning) = console_format_warning(&events, &layered) {
            warnings.push(warning);
        }
        let level = log_level(flags.log_level.as_deref(), env).map_err(|err| ConfigError {
            setting: layered.describe(&err.setting),
            ..err
        })?;
        let fluxbase_metrics_url =
            crate::upstream::metrics_url(flags.fluxbase_metrics_url.as_deref(), env)
                .map_err(|(setting, message)| ConfigError::new(setting, message))?;
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
            startup: startup_report(&flags, &fluxbase, &layered, process_env, warnings),
            storage,
            events,
            fluxbase_api,
            fluxbase_metrics_url,
        })
    }
}

/// Fluxbase's API: `--fluxbase.url`, else built from Fluxbase's `server.address` when its
/// environment or file sets it (or its default while a file is in use).
fn fluxbase_api(
    flag: Option<&str>,
    layered: &Layered<'_>,
) -> Result<Option<ApiSettings>, ConfigError> {
    if let Some(url) = flag.filter(|url| !url.trim().is_empty()) {
        return ApiSettings::from_url(url)
            .map(Some)
            .map_err(|message| ConfigError::new("--fluxbase.url", message));
    }
    const ADDRESS: &str = "FLUXBASE_SERVER_ADDRESS";
    match layered.answer(ADDRESS) {
        Some(answer) if !answer.value.trim().is_empty() => {
            ApiSettings::from_server_address(&answer.value)
                .map(Some)
                .map_err(|message| ConfigError::new(&layered.describe(ADDRESS), message))
        }
        _ => Ok(None),
    }
}

/// A relative storage root that came from Fluxbase's settings is relative to Fluxbase's working
/// directory. It is placed there when the file's place tells it; otherwise it is taken relative
/// to ours, with a warning saying so.
fn place_storage_root(
    mut settings: StorageSettings,
    flags: &Flags,
    fluxbase: &FluxbaseConfig,
    layered: &Layered<'_>,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> StorageSettings {
    if flags.storage_path.is_some() || settings.root.is_absolute() {
        return settings;
    }
    let relative = settings.root.clone();
    let below = relative.strip_prefix(".").unwrap_or(&relative);
    match (fluxbase.working_dir(), fluxbase.file()) {
        (Some(working_dir), _) => settings.root = working_dir.join(below),
        (None, Some(file)) => {
            settings.root = cwd.join(below);
            warnings.push(format!(
                "the storage root {} ({}) is relative to Fluxbase's working directory, which {} does not tell: checking {} instead; set --storage.path if Fluxbase runs elsewhere",
                relative.display(),
                layered.describe("FLUXBASE_STORAGE_LOCAL_PATH"),
                file.display(),
                settings.root.display()
            ));
        }
        // No file: as before, the path is taken as given (Fluxbase's environment is shared).
        (None, None) => {}
    }
    settings
}

/// A warning when Fluxbase's events are followed from a file but Fluxbase is set to write
/// console lines, which carry none of the JSON fields the events need.
fn console_format_warning(events: &EventsConfig, layered: &Layered<'_>) -> Option<String> {
    if events.files.is_empty() {
        return None;
    }
    const FORMAT: &str = "FLUXBASE_LOGGING_CONSOLE_FORMAT";
    let answer = layered.answer(FORMAT)?;
    if answer.value.trim().eq_ignore_ascii_case("json") {
        return None;
    }
    Some(format!(
        "--events.file follows Fluxbase's JSON log lines, but Fluxbase writes {:?} lines ({}): set logging.console_format: json (or FLUXBASE_LOGGING_CONSOLE_FORMAT=json) for Fluxbase",
        answer.value,
        layered.describe(FORMAT)
    ))
}

/// Where each setting came from: the file in use, the exporter's own flags that stand in for
/// Fluxbase's settings, then every Fluxbase setting that was read.
fn startup_report(
    flags: &Flags,
    fluxbase: &FluxbaseConfig,
    layered: &Layered<'_>,
    process_env: &dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
) -> StartupReport {
    // clap reads the variable only when the flag is absent: equal values mean the variable.
    let own = |setting: &str, variable: &str, given: &str, value: String| SettingOrigin {
        setting: setting.to_owned(),
        value,
        source: if process_env(variable).as_deref() == Some(given) {
            format!("environment {variable}")
        } else {
            "flag".to_owned()
        },
    };
    let mut origins = Vec::new();
    origins.push(match (&flags.fluxbase_config, fluxbase.file()) {
        (Some(given), _) => own(
            "--fluxbase.config",
            "FLUXBASE_EXPORTER_FLUXBASE_CONFIG",
            given,
            if given.is_empty() {
                "(none: the search is off)".to_owned()
            } else {
                given.clone()
            },
        ),
        (None, file) => SettingOrigin {
            setting: "--fluxbase.config".to_owned(),
            value: file.map_or_else(|| "(none found)".to_owned(), |f| f.display().to_string()),
            source: "Fluxbase's search list".to_owned(),
        },
    });
    if let Some(url) = &flags.database_url {
        origins.push(own(
            "--database.url",
            "FLUXBASE_EXPORTER_DATABASE_URL",
            url,
            "(hidden)".to_owned(),
        ));
    }
    if let Some(path) = &flags.database_password_file {
        let text = path.to_string_lossy();
        origins.push(own(
            "--database.password-file",
            "FLUXBASE_EXPORTER_DATABASE_PASSWORD_FILE",
            &text,
            text.to_string(),
        ));
    }
    if let Some(path) = &flags.storage_path {
        let text = path.to_string_lossy();
        origins.push(own(
            "--storage.path",
            "FLUXBASE_EXPORTER_STORAGE_PATH",
            &text,
            text.to_string(),
        ));
    }
    if let Some(url) = &flags.fluxbase_url {
        origins.push(own(
            "--fluxbase.url",
            "FLUXBASE_EXPORTER_FLUXBASE_URL",
            url,
            url.clone(),
        ));
    }
    if let Some(url) = &flags.fluxbase_metrics_url {
        origins.push(own(
            "--fluxbase.metrics-url",
            "FLUXBASE_EXPORTER_FLUXBASE_METRICS_URL",
            url,
            url.clone(),
        ));
    }
    // Every Fluxbase setting the exporter can take from Fluxbase, also those no consumer read
    // (Fluxbase's defaults, while a file is in use), except those our flags replace.
    for (key, _) in crate::fluxbase_config::DEFAULTS {
        let replaced = (flags.database_url.is_some()
            && key.starts_with("database.")
            && *key != "database.max_connections")
            || (flags.storage_path.is_some() && *key == "storage.local_path")
            || (flags.fluxbase_url.is_some() && *key == "server.address")
            || (flags.fluxbase_metrics_url.is_some() && key.starts_with("metrics."));
        if !replaced {
            layered.answer(&crate::fluxbase_config::variable_name(key));
        }
    }
    origins.extend(layered.origins());
    StartupReport { origins, warnings }
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
    // One path for each event: Fluxbase writes every log line to its console and to
    // logging.entries alike, so reading both would count every event twice.
    if flags.events_database && !files.is_empty() {
        return Err(ConfigError::new(
            "--events.database",
            "cannot be used with --events.file: the same Fluxbase events reach both, so every event would be counted twice; read logging.entries (one table for a whole fleet) or each replica's own log file, not both",
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

    /// Regression: a log file (or stdin) and logging.entries together counted every event
    /// twice.
    #[test]
    fn a_log_file_and_logging_entries_together_are_refused() {
        let url = ["--database.url", "postgres://u@127.0.0.1/db"];
        for file in ["/var/log/fluxbase.log", "-"] {
            let message = error(
                &[url[0], url[1], "--events.database", "--events.file", file],
                &[],
            );
            assert!(
                message.starts_with("invalid --events.database: cannot be used with --events.file: the same Fluxbase events reach both"),
                "{message}"
            );
        }
        let both = config(&[url[0], url[1], "--events.database"], &[]).unwrap();
        assert!(both.events.database && both.events.files.is_empty());
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

    /// A Fluxbase configuration file in its own directory, removed when dropped.
    struct FluxbaseFile {
        dir: PathBuf,
        path: PathBuf,
    }

    impl FluxbaseFile {
        fn new(name: &str, text: &str) -> FluxbaseFile {
            let dir =
                std::env::temp_dir().join(format!("fxe-config-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("fluxbase.yaml");
            std::fs::write(&path, text).unwrap();
            FluxbaseFile { dir, path }
        }

        fn arg(&self) -> &str {
            self.path.to_str().unwrap()
        }
    }

    impl Drop for FluxbaseFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const FILE: &str = "server:\n  address: \"0.0.0.0:8181\"\ndatabase:\n  host: file-db\n  port: 6000\n  user: file_user\n  password: file-secret\n  database: file_db\n  ssl_mode: disable\nstorage:\n  local_path: /srv/fluxbase/storage\ndebug: true\nlogging:\n  console_format: json\n";

    #[test]
    fn fluxbases_file_feeds_every_setting_its_environment_beats_it_and_flags_beat_both() {
        let file = FluxbaseFile::new("layers", FILE);
        let base = ["--fluxbase.config", file.arg()];
        let from_file = config(&base, &[]).unwrap();
        assert_eq!(
            from_file.database.as_ref().unwrap().target(),
            "file_user@file-db:6000/file_db"
        );
        assert_eq!(
            from_file.storage.as_ref().unwrap().root,
            PathBuf::from("/srv/fluxbase/storage")
        );
        assert_eq!(
            from_file.fluxbase_api.as_ref().unwrap().health_url,
            "http://127.0.0.1:8181/health"
        );
        assert_eq!(from_file.log.level, log::LevelFilter::Debug);
        assert!(
            from_file.startup.warnings.is_empty(),
            "{:?}",
            from_file.startup
        );

        // Fluxbase's environment beats its file, key by key.
        let env = [
            ("FLUXBASE_DATABASE_HOST", "env-db"),
            ("FLUXBASE_STORAGE_LOCAL_PATH", "/env/storage"),
            ("FLUXBASE_SERVER_ADDRESS", "fluxbase.internal:9000"),
            ("FLUXBASE_DEBUG", "false"),
        ];
        let from_env = config(&base, &env).unwrap();
        assert_eq!(
            from_env.database.as_ref().unwrap().target(),
            "file_user@env-db:6000/file_db"
        );
        assert_eq!(
            from_env.storage.as_ref().unwrap().root,
            PathBuf::from("/env/storage")
        );
        assert_eq!(
            from_env.fluxbase_api.as_ref().unwrap().base_url,
            "http://fluxbase.internal:9000"
        );
        assert_eq!(from_env.log.level, log::LevelFilter::Info);

        // Our flags beat both.
        let mut args = base.to_vec();
        args.extend([
            "--database.url",
            "postgres://flag@flag-db:7000/flag_db",
            "--storage.path",
            "/flag/storage",
            "--fluxbase.url",
            "http://flag:1234/",
            "--log.level",
            "warn",
        ]);
        let from_flags = config(&args, &env).unwrap();
        assert_eq!(
            from_flags.database.as_ref().unwrap().target(),
            "flag@flag-db:7000/flag_db"
        );
        assert_eq!(
            from_flags.storage.as_ref().unwrap().root,
            PathBuf::from("/flag/storage")
        );
        assert_eq!(
            from_flags.fluxbase_api.unwrap().health_url,
            "http://flag:1234/health"
        );
        assert_eq!(from_flags.log.level, log::LevelFilter::Warn);
    }

    #[test]
    fn the_start_up_report_says_where_each_setting_came_from_and_never_shows_a_password() {
        let file = FluxbaseFile::new("origins", FILE);
        let loaded = config(
            &["--fluxbase.config", file.arg()],
            &[("FLUXBASE_DATABASE_PORT", "6001")],
        )
        .unwrap();
        let lines: Vec<String> = loaded
            .startup
            .origins
            .iter()
            .map(|o| format!("{}={} ({})", o.setting, o.value, o.source))
            .collect();
        let from_file = format!("file {}", file.path.display());
        for expected in [
            format!("--fluxbase.config={} (flag)", file.path.display()),
            format!("database.host=file-db ({from_file})"),
            "FLUXBASE_DATABASE_PORT=6001 (environment FLUXBASE_DATABASE_PORT)".to_owned(),
            format!("database.password=(hidden) ({from_file})"),
            "database.max_connections=50 (Fluxbase default)".to_owned(),
            format!("server.address=0.0.0.0:8181 ({from_file})"),
            format!("debug=true ({from_file})"),
        ] {
            assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
        }
        let rendered = format!("{loaded:?}");
        assert!(!rendered.contains("file-secret"), "{rendered}");
    }

    #[test]
    fn a_relative_storage_path_from_a_file_elsewhere_is_placed_with_a_warning() {
        let file = FluxbaseFile::new("relative", "storage:\n  local_path: ./data\n");
        let loaded = config(&["--fluxbase.config", file.arg()], &[]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(loaded.storage.unwrap().root, cwd.join("data"));
        assert_eq!(
            loaded.startup.warnings,
            [format!(
                "the storage root ./data (storage.local_path (file {})) is relative to Fluxbase's working directory, which {} does not tell: checking {} instead; set --storage.path if Fluxbase runs elsewhere",
                file.path.display(),
                file.path.display(),
                cwd.join("data").display()
            )]
        );
        // Given as a flag, a relative path is the user's to place.
        let flagged = config(
            &["--fluxbase.config", file.arg(), "--storage.path", "rel"],
            &[],
        )
        .unwrap();
        assert_eq!(flagged.storage.unwrap().root, PathBuf::from("rel"));
        assert!(flagged.startup.warnings.is_empty());
    }

    #[test]
    fn a_file_that_cannot_be_used_names_itself() {
        let file = FluxbaseFile::new("broken", "database:\n  host: [x\n");
        let message = error(&["--fluxbase.config", file.arg()], &[]);
        assert!(
            message.starts_with(&format!(
                "invalid --fluxbase.config: {} does not parse as YAML: ",
                file.path.display()
            )),
            "{message}"
        );
        let bad_address = FluxbaseFile::new("address", "server:\n  address: \"8080\"\n");
        assert_eq!(
            error(&["--fluxbase.config", bad_address.arg()], &[]),
            format!(
                "invalid server.address (file {}): \"8080\" is not HOST:PORT or :PORT",
                bad_address.path.display()
            )
        );
        let bad_debug = FluxbaseFile::new("debug", "debug: sometimes\n");
        assert_eq!(
            error(&["--fluxbase.config", bad_debug.arg()], &[]),
            format!(
                "invalid debug (file {}): \"sometimes\" is not true or false",
                bad_debug.path.display()
            )
        );
        let bad_port = FluxbaseFile::new("port", "database:\n  port: many\n");
        assert!(
            error(&["--fluxbase.config", bad_port.arg()], &[]).starts_with(&format!(
                "invalid database.port (file {}): ",
                bad_port.path.display()
            )),
        );
        assert_eq!(
            error(&["--fluxbase.url", "localhost:8080"], &[]),
            "invalid --fluxbase.url: \"localhost:8080\" is not an http:// or https:// URL"
        );
    }

    #[test]
    fn the_api_url_comes_from_fluxbases_server_address() {
        assert!(config(&[], &[]).unwrap().fluxbase_api.is_none());
        assert_eq!(
            config(&[], &[("FLUXBASE_SERVER_ADDRESS", ":8080")])
                .unwrap()
                .fluxbase_api
                .unwrap()
                .health_url,
            "http://127.0.0.1:8080/health"
        );
        // With a file in use and no address in it, Fluxbase listens on its default.
        let file = FluxbaseFile::new("default-address", "debug: false\n");
        assert_eq!(
            config(&["--fluxbase.config", file.arg()], &[])
                .unwrap()
                .fluxbase_api
                .unwrap()
                .health_url,
            "http://127.0.0.1:8080/health"
        );
    }

    #[test]
    fn following_events_while_fluxbase_logs_console_lines_is_warned_about() {
        let console = FluxbaseFile::new("console", "storage:\n  local_path: /srv/storage\n");
        let loaded = config(
            &[
                "--fluxbase.config",
                console.arg(),
                "--events.file",
                "/var/log/fluxbase.log",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            loaded.startup.warnings,
            [
                "--events.file follows Fluxbase's JSON log lines, but Fluxbase writes \"console\" lines (logging.console_format (Fluxbase default)): set logging.console_format: json (or FLUXBASE_LOGGING_CONSOLE_FORMAT=json) for Fluxbase"
            ]
        );
        let json = config(
            &[
                "--fluxbase.config",
                console.arg(),
                "--events.file",
                "/var/log/fluxbase.log",
            ],
            &[("FLUXBASE_LOGGING_CONSOLE_FORMAT", "json")],
        )
        .unwrap();
        assert!(json.startup.warnings.is_empty());
        // Without any of Fluxbase's settings, nothing is known and nothing is said.
        let unknown = config(&["--events.file", "/var/log/fluxbase.log"], &[]).unwrap();
        assert!(unknown.startup.warnings.is_empty());
    }
}
