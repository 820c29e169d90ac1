//! Where the database is and how to reach it: `--database.url` (a URL or a key=value string), or
//! else Fluxbase's own `FLUXBASE_DATABASE_*` variables, so one environment file serves both.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;

use super::tls::SslMode;

/// The `application_name` of the exporter's sessions; its own backends are left out of the
/// connection counts by it.
pub const APPLICATION_NAME: &str = "fluxbase-exporter";

/// Fluxbase's default pool size (`database.max_connections`).
pub const FLUXBASE_DEFAULT_MAX_CONNECTIONS: u32 = 50;

/// Everything the database worker needs to connect, validated.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// Host, port, user, password, database; without `sslmode` and `sslrootcert`, which are here:
    pub postgres: postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// Connections the exporter's pool may hold.
    pub pool_size: u32,
    /// Whether exporters sharing the database elect a leader (`--database.coordinate`); when
    /// set, one of the `pool_size` sessions is the election's.
    pub coordinate: bool,
    /// Count only the backends of this role as Fluxbase's.
    pub fluxbase_user: Option<String>,
    /// Fluxbase's pool size, for `fluxbase_db_connections_max`.
    pub fluxbase_max_connections: u32,
    /// How often the heavier schema aggregates run.
    pub aggregates_interval: Duration,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password: only the redacted target.
        f.debug_struct("DatabaseSettings")
            .field("target", &self.target())
            .field("ssl_mode", &self.ssl_mode)
            .field("pool_size", &self.pool_size)
            .field("fluxbase_user", &self.fluxbase_user)
            .finish_non_exhaustive()
    }
}

impl DatabaseSettings {
    /// `user@host:port/database`, without the password: what logs and messages may show.
    pub fn target(&self) -> String {
        describe(&self.postgres)
    }
}

/// A connection setting that cannot be used: the setting's name and why.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingError {
    pub setting: &'static str,
    pub message: String,
}

impl SettingError {
    fn new(setting: &'static str, message: impl Into<String>) -> Self {
        SettingError {
            setting,
            message: message.into(),
        }
    }
}

/// The inputs of [`resolve`], straight from flags and the environment.
pub struct Sources<'a> {
    pub url: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub pool_size: u32,
    pub coordinate: bool,
    pub fluxbase_user: Option<&'a str>,
    pub aggregates_interval: Duration,
    pub check_timeout: Duration,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Fluxbase's variables that locate its database.
const FLUXBASE_VARIABLES: &[&str] = &[
    "FLUXBASE_DATABASE_HOST",
    "FLUXBASE_DATABASE_PORT",
    "FLUXBASE_DATABASE_USER",
    "FLUXBASE_DATABASE_PASSWORD",
    "FLUXBASE_DATABASE_DATABASE",
    "FLUXBASE_DATABASE_SSL_MODE",
];

/// The database settings, or `None` when neither `--database.url` nor any of Fluxbase's
/// database variables is set (the exporter then runs without a database).
pub fn resolve(sources: &Sources<'_>) -> Result<Option<DatabaseSettings>, SettingError> {
    let env = |name: &str| (sources.env)(name).filter(|value| !value.trim().is_empty());
    let (mut postgres, ssl_mode, root_cert) = match sources.url {
        Some(url) if !url.trim().is_empty() => parse_connection_string(url.trim())?,
        _ if FLUXBASE_VARIABLES.iter().any(|name| env(name).is_some()) => {
            from_fluxbase_variables(&env)?
        }
        _ => return Ok(None),
    };
    if let Some(path) = sources.password_file {
        postgres.password(read_password(path)?);
    }
    if sources.pool_size == 0 || sources.pool_size > 16 {
        return Err(SettingError::new(
            "--database.pool-size",
            "must be between 1 and 16",
        ));
    }
    if sources.coordinate && sources.pool_size < 2 {
        return Err(SettingError::new(
            "--database.pool-size",
            "must be at least 2 with --database.coordinate (one session holds the leader lock); set --database.coordinate=false to run on one session",
        ));
    }
    let fluxbase_max_connections = match env("FLUXBASE_DATABASE_MAX_CONNECTIONS") {
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                SettingError::new(
                    "FLUXBASE_DATABASE_MAX_CONNECTIONS",
                    format!("{text:?} is not a positive number"),
                )
            })?,
        None => FLUXBASE_DEFAULT_MAX_CONNECTIONS,
    };
    postgres
        .application_name(APPLICATION_NAME)
        .ssl_mode(ssl_mode.negotiation())
        .connect_timeout(sources.check_timeout)
        // Notice a dead peer or a dropped network: probe an idle connection after 10 s, and
        // give up on unacknowledged data after the check timeout.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(sources.check_timeout);
    Ok(Some(DatabaseSettings {
        postgres,
        ssl_mode,
        root_cert,
        pool_size: sources.pool_size,
        coordinate: sources.coordinate,
        fluxbase_user: sources
            .fluxbase_user
            .map(str::to_owned)
            .filter(|user| !user.is_empty()),
        fluxbase_max_connections,
        aggregates_interval: sources.aggregates_interval,
    }))
}

/// Parses `--database.url`: `postgres://...` or `host=... user=...`. The TLS settings that the
/// PostgreSQL client does not read itself (`sslmode` values beyond prefer/require, and
/// `sslrootcert`) are taken out and returned beside the rest.
fn parse_connection_string(
    text: &str,
) -> Result<(postgres::Config, SslMode, Option<PathBuf>), SettingError> {
    let (rest, ssl) = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        split_url(text)
    } else {
        split_key_values(text)?
    };
    // The client's own errors name the option, never the value, so they are safe to show.
    let postgres = postgres::Config::from_str(&rest)
        .map_err(|err| SettingError::new("--database.url", format!("cannot parse it: {err}")))?;
    if postgres.get_hosts().is_empty() {
        return Err(SettingError::new("--database.url", "names no host"));
    }
    // libpq's default is prefer.
    let ssl_mode = SslMode::parse(ssl.mode.as_deref().unwrap_or("prefer"))
        .map_err(|message| SettingError::new("--database.url", message))?;
    if let Some(unsupported) = ssl.unsupported {
        return Err(SettingError::new(
            "--database.url",
            format!("{unsupported} is not supported (client certificates are not implemented)"),
        ));
    }
    Ok((postgres, ssl_mode, ssl.root_cert.map(PathBuf::from)))
}

#[derive(Default)]
struct TlsParameters {
    mode: Option<String>,
    root_cert: Option<String>,
    unsupported: Option<&'static str>,
}

impl TlsParameters {
    /// Takes the parameter if it is one of ours; `false` when it belongs to the client.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" => self.unsupported = Some("sslcert"),
            "sslkey" => self.unsupported = Some("sslkey"),
            _ => return false,
        }
        true
    }
}

fn split_url(url: &str) -> (String, TlsParameters) {
    let mut ssl = TlsParameters::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), ssl);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            !ssl.take(&percent_decode(key), percent_decode(value))
        })
        .collect();
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, ssl)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a libpq key=value string, taking out our TLS parameters and re-quoting the rest.
fn split_key_values(text: &str) -> Result<(String, TlsParameters), SettingError> {
    let invalid = |why: &str| {
        SettingError::new(
            "--database.url",
            format!("is neither a postgres:// URL nor key=value pairs ({why})"),
        )
    };
    let mut ssl = TlsParameters::default();
    let mut rest = String::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid("a key without '='"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or_else(|| invalid("a dangling backslash"))?,
                    ),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(invalid("an unterminated quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(
                        chars
                            .next()
                            .ok_or_else(|| invalid("a dangling backslash"))?,
                    );
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(invalid("an empty key"));
        }
        if !ssl.take(&key, value.clone()) {
            if !rest.is_empty() {
                rest.push(' ');
            }
            rest.push_str(&key);
            rest.push_str("='");
            for c in value.chars() {
                if c == '\'' || c == '\\' {
                    rest.push('\\');
                }
                rest.push(c);
            }
            rest.push('\'');
        }
    }
    Ok((rest, ssl))
}

/// Fluxbase's variables, with Fluxbase's own defaults for those not set.
fn from_fluxbase_variables(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(postgres::Config, SslMode, Option<PathBuf>), SettingError> {
    let mut config = postgres::Config::new();
    config
        .host(
            env("FLUXBASE_DATABASE_HOST")
                .as_deref()
                .unwrap_or("localhost"),
        )
        .user(
            env("FLUXBASE_DATABASE_USER")
                .as_deref()
                .unwrap_or("postgres"),
        )
        .password(
            env("FLUXBASE_DATABASE_PASSWORD")
                .as_deref()
                .unwrap_or("postgres"),
        )
        .dbname(
            env("FLUXBASE_DATABASE_DATABASE")
                .as_deref()
                .unwrap_or("fluxbase"),
        );
    let port = match env("FLUXBASE_DATABASE_PORT") {
        Some(text) => text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| {
                SettingError::new(
                    "FLUXBASE_DATABASE_PORT",
                    format!("{text:?} is not a port number"),
                )
            })?,
        None => 5432,
    };
    config.port(port);
    let ssl_mode = SslMode::parse(
        env("FLUXBASE_DATABASE_SSL_MODE")
            .as_deref()
            .unwrap_or("disable"),
    )
    .map_err(|message| SettingError::new("FLUXBASE_DATABASE_SSL_MODE", message))?;
    Ok((config, ssl_mode, None))
}

fn read_password(path: &Path) -> Result<String, SettingError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        SettingError::new(
            "--database.password-file",
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    // Only the line ending is trimmed: a password may begin or end with spaces.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(SettingError::new(
            "--database.password-file",
            format!("{} holds no password", path.display()),
        ));
    }
    Ok(password.to_owned())
}

/// `user@host:port/database` from a client configuration, without the password.
pub fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{dbname}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One session holds the leader lock, so coordination needs a second one for the work.
    #[test]
    fn coordination_needs_a_pool_of_two_and_one_session_without_it() {
        let with = |pool_size: u32, coordinate: bool| {
            resolve(&Sources {
                url: Some("postgres://u@h/d"),
                password_file: None,
                pool_size,
                coordinate,
                fluxbase_user: None,
                aggregates_interval: Duration::from_secs(60),
                check_timeout: Duration::from_secs(5),
                env: &|_| None,
            })
            .map(|settings| settings.map(|s| (s.pool_size, s.coordinate)))
        };
        let err = with(1, true).unwrap_err();
        assert_eq!(err.setting, "--database.pool-size");
        assert!(
            err.message
                .starts_with("must be at least 2 with --database.coordinate")
        );
        assert_eq!(with(1, false).unwrap(), Some((1, false)));
        assert_eq!(with(2, true).unwrap(), Some((2, true)));
    }

    fn resolve_with(
        url: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Option<DatabaseSettings>, SettingError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&Sources {
            url,
            password_file: None,
            pool_size: 2,
            coordinate: true,
            fluxbase_user: None,
            aggregates_interval: Duration::from_secs(60),
            check_timeout: Duration::from_secs(5),
            env: &|name| vars.get(name).cloned(),
        })
    }

    fn settings(url: &str) -> DatabaseSettings {
        resolve_with(Some(url), &[]).unwrap().unwrap()
    }

    #[test]
    fn nothing_configured_means_no_database() {
        assert!(resolve_with(None, &[]).unwrap().is_none());
        assert!(
            resolve_with(Some(" "), &[("FLUXBASE_DATABASE_HOST", "")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn urls_keep_their_parts_and_lose_our_tls_parameters() {
        let db = settings(
            "postgres://fx:s%40cret@db.example:6543/fluxbase?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(db.target(), "fx@db.example:6543/fluxbase");
        assert_eq!(db.postgres.get_password(), Some(&b"s@cret"[..]));
        assert_eq!(db.ssl_mode, SslMode::VerifyFull);
        assert_eq!(db.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(db.postgres.get_application_name(), Some(APPLICATION_NAME));
        assert_eq!(settings("postgresql://u@h/d").ssl_mode, SslMode::Prefer);
    }

    #[test]
    fn key_value_strings_are_parsed_with_quotes() {
        let db = settings(
            "host=127.0.0.1 port = 5433 user=fx password='a \\'b\\' \\\\c' dbname=flux sslmode=disable",
        );
        assert_eq!(db.target(), "fx@127.0.0.1:5433/flux");
        assert_eq!(db.ssl_mode, SslMode::Disable);
        assert_eq!(db.postgres.get_password(), Some(&b"a 'b' \\c"[..]));
        let db = settings("host=h user=u password=plain\\ space dbname=d");
        assert_eq!(db.postgres.get_password(), Some(&b"plain space"[..]));
    }

    #[test]
    fn fluxbase_variables_fill_in_with_fluxbase_defaults() {
        let db = resolve_with(
            None,
            &[
                ("FLUXBASE_DATABASE_HOST", "pg"),
                ("FLUXBASE_DATABASE_PASSWORD", "pw"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(db.target(), "postgres@pg:5432/fluxbase");
        assert_eq!(db.postgres.get_password(), Some(&b"pw"[..]));
        assert_eq!(db.ssl_mode, SslMode::Disable);
        assert_eq!(db.fluxbase_max_connections, 50);
        let db = resolve_with(
            None,
            &[
                ("FLUXBASE_DATABASE_PORT", "6000"),
                ("FLUXBASE_DATABASE_SSL_MODE", "require"),
                ("FLUXBASE_DATABASE_MAX_CONNECTIONS", "20"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(db.target(), "postgres@localhost:6000/fluxbase");
        assert_eq!(db.ssl_mode, SslMode::Require);
        assert_eq!(db.fluxbase_max_connections, 20);
    }

    #[test]
    fn bad_settings_name_themselves_and_never_echo_a_password() {
        let err = resolve_with(Some("postgres://u:hunter2@h:notaport/d"), &[]).unwrap_err();
        assert_eq!(err.setting, "--database.url");
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        let err = resolve_with(Some("host=h password=hunter2 sslmode=sometimes"), &[]).unwrap_err();
        assert!(
            err.message.contains("\"sometimes\"") && !err.message.contains("hunter2"),
            "{}",
            err.message
        );
        let err = resolve_with(Some("host=h password='hunter2"), &[]).unwrap_err();
        assert!(err.message.contains("unterminated quote") && !err.message.contains("hunter2"));
        let err = resolve_with(None, &[("FLUXBASE_DATABASE_PORT", "x")]).unwrap_err();
        assert_eq!(
            err,
            SettingError::new("FLUXBASE_DATABASE_PORT", "\"x\" is not a port number")
        );
        let err = resolve_with(Some("postgres://h/d?sslcert=/c.pem"), &[]).unwrap_err();
        assert!(err.message.starts_with("sslcert is not supported"));
        let err = resolve_with(
            Some("postgres://h/d"),
            &[("FLUXBASE_DATABASE_MAX_CONNECTIONS", "0")],
        )
        .unwrap_err();
        assert_eq!(err.setting, "FLUXBASE_DATABASE_MAX_CONNECTIONS");
    }

    #[test]
    fn debug_output_has_no_password() {
        let db = settings("postgres://u:hunter2@h/d");
        assert!(!format!("{db:?}").contains("hunter2"));
    }

    #[test]
    fn a_password_file_sets_the_password() {
        let dir = std::env::temp_dir().join(format!("fxe-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, " spaced pass \n").unwrap();
        let db = resolve(&Sources {
            url: Some("postgres://u:old@h/d"),
            password_file: Some(&file),
            pool_size: 2,
            coordinate: true,
            fluxbase_user: Some("fluxbase"),
            aggregates_interval: Duration::from_secs(60),
            check_timeout: Duration::from_secs(5),
            env: &|_| None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(db.postgres.get_password(), Some(&b" spaced pass "[..]));
        assert_eq!(db.fluxbase_user.as_deref(), Some("fluxbase"));
        std::fs::write(&file, "\n").unwrap();
        let err = resolve(&Sources {
            url: Some("postgres://h/d"),
            password_file: Some(&file),
            pool_size: 2,
            coordinate: true,
            fluxbase_user: None,
            aggregates_interval: Duration::from_secs(60),
            check_timeout: Duration::from_secs(5),
            env: &|_| None,
        })
        .unwrap_err();
        assert!(err.message.ends_with("holds no password"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
