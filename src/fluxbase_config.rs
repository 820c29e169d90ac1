//! Fluxbase's own configuration, read the way Fluxbase reads it: its YAML file (the first of its
//! search list, or `--fluxbase.config`) under its `FLUXBASE_*` environment, with its defaults
//! when a file is in use; and where each answer came from.
//!
//! Every consumer of Fluxbase's settings (database, storage root, `FLUXBASE_DEBUG`, the metrics
//! endpoint, the server address) asks one lookup by environment-variable name, so the file
//! serves them all without knowing of it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Fluxbase looks for its file, in its order (`internal/config/config.go`); the first that
/// exists is the one, even if it then does not parse.
pub const SEARCH_LIST: [&str; 6] = [
    "./fluxbase.yaml",
    "./fluxbase.yml",
    "./config/fluxbase.yaml",
    "./config/fluxbase.yml",
    "/etc/fluxbase/fluxbase.yaml",
    "/etc/fluxbase/fluxbase.yml",
];

/// The prefix of Fluxbase's variables (viper's `SetEnvPrefix("FLUXBASE")`).
const PREFIX: &str = "FLUXBASE_";
/// The prefix of the exporter's own variables, which are never Fluxbase's settings.
const EXPORTER_PREFIX: &str = "FLUXBASE_EXPORTER_";

/// A Fluxbase configuration file is a few KiB; anything larger is not one.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Fluxbase's defaults (`internal/config/config_defaults.go`) for the settings the exporter
/// reads, as (key, value). They apply only when a configuration file is in use: the file says
/// Fluxbase runs on this host, and then these are what it runs with where the file and the
/// environment are silent.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("server.address", ":8080"),
    ("database.host", "localhost"),
    ("database.port", "5432"),
    ("database.user", "postgres"),
    ("database.password", "postgres"),
    ("database.database", "fluxbase"),
    ("database.ssl_mode", "disable"),
    ("database.max_connections", "50"),
    ("storage.provider", "local"),
    ("storage.local_path", "./storage"),
    ("metrics.enabled", "true"),
    ("metrics.port", "9090"),
    ("metrics.path", "/metrics"),
    ("logging.console_format", "console"),
    ("debug", "false"),
];

/// The environment variable Fluxbase reads for a key: `FLUXBASE_` and the key upper-cased, with
/// `.` becoming `_` (viper's key replacer).
pub fn variable_name(key: &str) -> String {
    let mut name = String::with_capacity(PREFIX.len() + key.len());
    name.push_str(PREFIX);
    name.extend(key.chars().map(|c| {
        if c == '.' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    name
}

/// Where one answer came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The process environment (Fluxbase's variable, or any other name asked).
    Environment,
    /// Fluxbase's configuration file.
    File(PathBuf),
    /// Fluxbase's built-in default (only while a file is in use).
    FluxbaseDefault,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::FluxbaseDefault => f.write_str("Fluxbase default"),
        }
    }
}

/// One value of a setting and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub value: String,
    pub origin: Origin,
}

/// How the file in use was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// `--fluxbase.config`: it must be readable and parse.
    Flag,
    /// The first existing entry of [`SEARCH_LIST`]: when it cannot be used it is ignored with a
    /// warning, as Fluxbase itself does.
    Search,
}

/// Why a configuration file cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum FileError {
    Unreadable { path: PathBuf, error: String },
    TooLarge { path: PathBuf },
    NotYaml { path: PathBuf, error: String },
    NotAMapping { path: PathBuf },
}

impl FileError {
    /// A fixed word for the kind of failure.
    pub fn reason(&self) -> &'static str {
        match self {
            FileError::Unreadable { .. } => "unreadable",
            FileError::TooLarge { .. } => "too_large",
            FileError::NotYaml { .. } => "not_yaml",
            FileError::NotAMapping { .. } => "not_a_mapping",
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            FileError::TooLarge { path } => write!(
                f,
                "{} is larger than {} KiB, too large for a Fluxbase configuration file",
                path.display(),
                MAX_FILE_BYTES / 1024
            ),
            FileError::NotYaml { path, error } => {
                write!(f, "{} does not parse as YAML: {error}", path.display())
            }
            FileError::NotAMapping { path } => {
                write!(f, "{} does not hold a mapping of settings", path.display())
            }
        }
    }
}

/// Fluxbase's configuration file as the exporter found it.
#[derive(Debug, Default)]
pub struct FluxbaseConfig {
    /// The file in use, however it was chosen (also one that is ignored).
    file: Option<PathBuf>,
    /// The file's scalar settings by environment-variable name: (the key as the file spells it,
    /// the value as text). Empty when there is no usable file.
    values: HashMap<String, (String, String)>,
    /// Whether Fluxbase's defaults answer what the file and environment do not.
    defaults_apply: bool,
    /// Fluxbase's working directory, when the file's place tells it: a file at one of the
    /// relative search places of our working directory is found there by a Fluxbase started in
    /// the same directory.
    working_dir: Option<PathBuf>,
    /// What a user should know about the file (ignored, relative paths): one line each.
    warnings: Vec<String>,
}

impl FluxbaseConfig {
    /// Finds and reads Fluxbase's file: `explicit` when given (an empty path means none at
    /// all), else the first existing entry of the search list, relative entries taken from
    /// `cwd`.
    ///
    /// An explicit file that cannot be used is an error. A found one that cannot be used is
    /// ignored with a warning, as Fluxbase ignores it; Fluxbase's defaults still apply, since
    /// Fluxbase runs with them.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<FluxbaseConfig, FileError> {
        let (path, chosen) = match explicit {
            Some(path) if path.as_os_str().is_empty() => return Ok(FluxbaseConfig::default()),
            Some(path) => (path.to_path_buf(), Chosen::Flag),
            None => match search(cwd) {
                Some(path) => (path, Chosen::Search),
                None => return Ok(FluxbaseConfig::default()),
            },
        };
        let working_dir = working_dir_of(&path, cwd);
        let mut config = FluxbaseConfig {
            file: Some(path.clone()),
            values: HashMap::new(),
            defaults_apply: true,
            working_dir,
            warnings: Vec::new(),
        };
        match read(&path) {
            Ok(values) => config.values = values,
            Err(err) if chosen == Chosen::Search => config.warnings.push(format!(
                "ignoring Fluxbase's configuration file: {err}; Fluxbase ignores it too and runs on its environment and defaults (give --fluxbase.config to make this an error)"
            )),
            Err(err) => return Err(err),
        }
        Ok(config)
    }

    /// The file in use, if any (also one found but ignored).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Fluxbase's working directory when it is known (see [`FluxbaseConfig::load`]).
    pub fn working_dir(&self) -> Option<&Path> {
        self.working_dir.as_deref()
    }

    /// Warnings found while reading the file, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Fluxbase's answer for variable `name`, with its precedence: a non-empty environment
    /// value (viper ignores empty ones), else the file, else Fluxbase's default while a file is
    /// in use. A name that is not Fluxbase's (the exporter's own `FLUXBASE_EXPORTER_*`, or
    /// anything else) is answered by the environment alone, unchanged.
    pub fn answer(&self, env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<Answer> {
        let from_env = env(name);
        if !name.starts_with(PREFIX) || name.starts_with(EXPORTER_PREFIX) {
            return from_env.map(|value| Answer {
                value,
                origin: Origin::Environment,
            });
        }
        if let Some(value) = from_env.filter(|value| !value.is_empty()) {
            return Some(Answer {
                value,
                origin: Origin::Environment,
            });
        }
        if let (Some((_, value)), Some(file)) = (self.values.get(name), &self.file) {
            return Some(Answer {
                value: value.clone(),
                origin: Origin::File(file.clone()),
            });
        }
        if self.defaults_apply {
            return DEFAULTS
                .iter()
                .find(|(key, _)| variable_name(key) == name)
                .map(|(_, value)| Answer {
                    value: (*value).to_owned(),
                    origin: Origin::FluxbaseDefault,
                });
        }
        None
    }

    /// The name of a setting as a user would look for it: the file's key when the file or a
    /// default answered, else the variable.
    pub fn setting_name(&self, name: &str, origin: &Origin) -> String {
        match origin {
            Origin::Environment => name.to_owned(),
            Origin::File(_) => self
                .values
                .get(name)
                .map_or_else(|| name.to_owned(), |(key, _)| key.clone()),
            Origin::FluxbaseDefault => DEFAULTS
                .iter()
                .find(|(key, _)| variable_name(key) == name)
                .map_or_else(|| name.to_owned(), |(key, _)| (*key).to_owned()),
        }
    }
}

/// The lookup the configuration is built with: Fluxbase's layers over the process environment,
/// remembering every Fluxbase setting it answered, in the order first asked.
pub struct Layered<'a> {
    fluxbase: &'a FluxbaseConfig,
    env: &'a dyn Fn(&str) -> Option<String>,
    answered: RefCell<Vec<(String, Answer)>>,
}

impl<'a> Layered<'a> {
    pub fn new(fluxbase: &'a FluxbaseConfig, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Layered {
            fluxbase,
            env,
            answered: RefCell::new(Vec::new()),
        }
    }

    /// The value for `name` (see [`FluxbaseConfig::answer`]); a Fluxbase setting is recorded.
    pub fn get(&self, name: &str) -> Option<String> {
        self.answer(name).map(|answer| answer.value)
    }

    /// The value for `name` and where it came from.
    pub fn answer(&self, name: &str) -> Option<Answer> {
        let answer = self.fluxbase.answer(self.env, name)?;
        if name.starts_with(PREFIX) && !name.starts_with(EXPORTER_PREFIX) {
            let mut answered = self.answered.borrow_mut();
            if !answered.iter().any(|(seen, _)| seen == name) {
                answered.push((name.to_owned(), answer.clone()));
            }
        }
        Some(answer)
    }

    /// A setting's name for an error or a log line: `server.address (file /etc/...)`, or the
    /// variable when the environment answered.
    pub fn describe(&self, name: &str) -> String {
        match self.fluxbase.answer(self.env, name) {
            Some(Answer {
                origin: Origin::Environment,
                ..
            })
            | None => name.to_owned(),
            Some(Answer { origin, .. }) => {
                format!("{} ({origin})", self.fluxbase.setting_name(name, &origin))
            }
        }
    }

    /// Every Fluxbase setting answered so far: (its name, value, origin), with the values of
    /// secrets replaced.
    pub fn origins(&self) -> Vec<SettingOrigin> {
        self.answered
            .borrow()
            .iter()
            .map(|(name, answer)| SettingOrigin {
                setting: self.fluxbase.setting_name(name, &answer.origin),
                value: if is_secret(name) {
                    "(hidden)".to_owned()
                } else {
                    answer.value.clone()
                },
                source: match &answer.origin {
                    Origin::Environment => format!("environment {name}"),
                    other => other.to_string(),
                },
            })
            .collect()
    }
}

/// Where one setting the exporter runs with came from, for the start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingOrigin {
    pub setting: String,
    /// The value, or `(hidden)` for a secret, `(set)` where the value is not worth showing.
    pub value: String,
    /// `flag`, `environment NAME`, `file PATH` or `Fluxbase default`.
    pub source: String,
}

/// What the start-up log says about the configuration: where each setting came from, and what
/// a user should fix (one line each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartupReport {
    pub origins: Vec<SettingOrigin>,
    pub warnings: Vec<String>,
}

impl StartupReport {
    /// Logs every origin at info and every warning at warn; called once, after the logger is
    /// installed.
    pub fn log(&self) {
        for origin in &self.origins {
            log::info!(
                setting = origin.setting.as_str(),
                value = origin.value.as_str(),
                source = origin.source.as_str();
                "configuration"
            );
        }
        for warning in &self.warnings {
            log::warn!("{warning}");
        }
    }
}

/// Whether a variable holds a secret whose value must never be logged.
pub fn is_secret(name: &str) -> bool {
    ["PASSWORD", "SECRET", "TOKEN", "KEY"]
        .iter()
        .any(|word| name.contains(word))
}

/// The first entry of the search list that exists (a directory counts, as Go's `os.Stat`
/// finds it; reading it then fails).
fn search(cwd: &Path) -> Option<PathBuf> {
    SEARCH_LIST
        .iter()
        .map(|entry| {
            let entry = Path::new(entry);
            match entry.strip_prefix(".") {
                Ok(relative) => cwd.join(relative),
                Err(_) => entry.to_path_buf(),
            }
        })
        .find(|path| std::fs::metadata(path).is_ok())
}

/// Fluxbase's working directory, if `path` is one of the relative search places of `cwd`.
fn working_dir_of(path: &Path, cwd: &Path) -> Option<PathBuf> {
    let file = std::fs::canonicalize(path).ok()?;
    let relative_places = SEARCH_LIST.iter().filter_map(|entry| {
        Path::new(entry)
            .strip_prefix(".")
            .ok()
            .map(|rest| cwd.join(rest))
    });
    for place in relative_places {
        if std::fs::canonicalize(&place).ok().as_deref() == Some(file.as_path()) {
            return Some(cwd.to_path_buf());
        }
    }
    None
}

/// Reads and flattens the file: every scalar leaf under its variable name.
fn read(path: &Path) -> Result<HashMap<String, (String, String)>, FileError> {
    let unreadable = |err: std::io::Error| FileError::Unreadable {
        path: path.to_path_buf(),
        error: err.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    flatten_text(&text).map_err(|err| match err {
        Flatten::NotYaml(error) => FileError::NotYaml {
            path: path.to_path_buf(),
            error,
        },
        Flatten::NotAMapping => FileError::NotAMapping {
            path: path.to_path_buf(),
        },
    })
}

enum Flatten {
    NotYaml(String),
    NotAMapping,
}

/// Parses YAML into an untyped value (unknown keys are fine) and flattens its mappings.
fn flatten_text(text: &str) -> Result<HashMap<String, (String, String)>, Flatten> {
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|err| Flatten::NotYaml(err.to_string()))?;
    let mut out = HashMap::new();
    match value {
        // An empty file is an empty configuration.
        serde_norway::Value::Null => {}
        serde_norway::Value::Mapping(mapping) => flatten_into(&mut out, "", &mapping),
        _ => return Err(Flatten::NotAMapping),
    }
    Ok(out)
}

fn flatten_into(
    out: &mut HashMap<String, (String, String)>,
    prefix: &str,
    mapping: &serde_norway::Mapping,
) {
    for (key, value) in mapping {
        let Some(key) = scalar_text(key) else {
            continue;
        };
        // Viper's keys are case-insensitive; it lower-cases them.
        let key = if prefix.is_empty() {
            key.to_ascii_lowercase()
        } else {
            format!("{prefix}.{}", key.to_ascii_lowercase())
        };
        let mut value = value;
        while let serde_norway::Value::Tagged(tagged) = value {
            value = &tagged.value;
        }
        match value {
            serde_norway::Value::Mapping(inner) => flatten_into(out, &key, inner),
            other => {
                if let Some(text) = scalar_text(other) {
                    out.insert(variable_name(&key), (key, text));
                }
            }
        }
    }
}

/// A scalar as viper turns it into a string; `None` for null, sequences and mappings.
fn scalar_text(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(text) => Some(text.clone()),
        serde_norway::Value::Bool(flag) => Some(flag.to_string()),
        serde_norway::Value::Number(number) => Some(number.to_string()),
        serde_norway::Value::Tagged(tagged) => scalar_text(&tagged.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fxe-fluxbase-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[track_caller]
    fn check(config: &FluxbaseConfig, env: &[(&str, &str)], name: &str, expected: Option<&str>) {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let answer = config.answer(&|n| env.get(n).cloned(), name);
        let rendered = answer.map(|a| format!("{} from {}", a.value, a.origin));
        assert_eq!(rendered.as_deref(), expected);
    }

    #[test]
    fn variable_names_follow_vipers_replacer() {
        assert_eq!(
            variable_name("database.ssl_mode"),
            "FLUXBASE_DATABASE_SSL_MODE"
        );
        assert_eq!(variable_name("debug"), "FLUXBASE_DEBUG");
    }

    #[test]
    fn environment_beats_file_beats_default() {
        let dir = dir("precedence");
        let file = dir.join("fluxbase.yaml");
        std::fs::write(
            &file,
            "database:\n  host: db.internal\n  port: 6543\n  Ssl_Mode: require\nmetrics:\n  enabled: false\nunknown:\n  - a\n  - b\n",
        )
        .unwrap();
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        assert_eq!(config.file(), Some(file.as_path()));
        assert_eq!(config.working_dir(), Some(dir.as_path()));
        let from_file = format!("file {}", file.display());
        check(
            &config,
            &[],
            "FLUXBASE_DATABASE_HOST",
            Some(&format!("db.internal from {from_file}")),
        );
        check(
            &config,
            &[("FLUXBASE_DATABASE_HOST", "env.host")],
            "FLUXBASE_DATABASE_HOST",
            Some("env.host from environment"),
        );
        // An empty variable does not hide the file (viper ignores empty variables).
        check(
            &config,
            &[("FLUXBASE_DATABASE_HOST", "")],
            "FLUXBASE_DATABASE_HOST",
            Some(&format!("db.internal from {from_file}")),
        );
        check(
            &config,
            &[],
            "FLUXBASE_DATABASE_PORT",
            Some(&format!("6543 from {from_file}")),
        );
        check(
            &config,
            &[],
            "FLUXBASE_DATABASE_SSL_MODE",
            Some(&format!("require from {from_file}")),
        );
        check(
            &config,
            &[],
            "FLUXBASE_METRICS_ENABLED",
            Some(&format!("false from {from_file}")),
        );
        check(
            &config,
            &[],
            "FLUXBASE_METRICS_PORT",
            Some("9090 from Fluxbase default"),
        );
        check(
            &config,
            &[],
            "FLUXBASE_SERVER_ADDRESS",
            Some(":8080 from Fluxbase default"),
        );
        check(&config, &[], "FLUXBASE_UNKNOWN", None);
        // The exporter's own variables never come from Fluxbase's file.
        check(&config, &[], "FLUXBASE_EXPORTER_AUTH_TOKEN", None);
        check(
            &config,
            &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "")],
            "FLUXBASE_EXPORTER_AUTH_TOKEN",
            Some(" from environment"),
        );
        assert_eq!(
            config.setting_name("FLUXBASE_DATABASE_SSL_MODE", &Origin::File(file.clone())),
            "database.ssl_mode"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_file_only_the_environment_answers() {
        let dir = dir("none");
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        assert_eq!(config.file(), None);
        check(&config, &[], "FLUXBASE_SERVER_ADDRESS", None);
        check(
            &config,
            &[("FLUXBASE_SERVER_ADDRESS", ":9000")],
            "FLUXBASE_SERVER_ADDRESS",
            Some(":9000 from environment"),
        );
        // An empty path turns the search off.
        std::fs::write(dir.join("fluxbase.yaml"), "debug: true\n").unwrap();
        let off = FluxbaseConfig::load(Some(Path::new("")), &dir).unwrap();
        check(&off, &[], "FLUXBASE_DEBUG", None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_search_takes_the_first_existing_entry_in_fluxbases_order() {
        let dir = dir("order");
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join("config/fluxbase.yaml"), "debug: true\n").unwrap();
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        assert_eq!(
            config.file(),
            Some(dir.join("config/fluxbase.yaml").as_path())
        );
        assert_eq!(config.working_dir(), Some(dir.as_path()));
        std::fs::write(dir.join("fluxbase.yml"), "debug: false\n").unwrap();
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        assert_eq!(config.file(), Some(dir.join("fluxbase.yml").as_path()));
        check(
            &config,
            &[],
            "FLUXBASE_DEBUG",
            Some(&format!(
                "false from file {}",
                dir.join("fluxbase.yml").display()
            )),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_found_file_that_does_not_parse_is_ignored_with_a_warning_and_defaults_apply() {
        let dir = dir("broken");
        std::fs::write(dir.join("fluxbase.yaml"), "database: [unclosed\n").unwrap();
        // A later, valid entry is not consulted: Fluxbase stops at the first that exists.
        std::fs::write(dir.join("fluxbase.yml"), "debug: true\n").unwrap();
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        assert_eq!(config.warnings().len(), 1);
        let warning = &config.warnings()[0];
        assert!(
            warning.starts_with(&format!(
                "ignoring Fluxbase's configuration file: {} does not parse as YAML: ",
                dir.join("fluxbase.yaml").display()
            )),
            "{warning}"
        );
        check(
            &config,
            &[],
            "FLUXBASE_DEBUG",
            Some("false from Fluxbase default"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_explicit_file_that_cannot_be_used_is_an_error() {
        let dir = dir("explicit");
        let missing = dir.join("missing.yaml");
        let err = FluxbaseConfig::load(Some(&missing), &dir).unwrap_err();
        assert_eq!(err.reason(), "unreadable");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let list = dir.join("list.yaml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        assert_eq!(
            FluxbaseConfig::load(Some(&list), &dir).unwrap_err(),
            FileError::NotAMapping { path: list.clone() }
        );
        let tabs = dir.join("tabs.yaml");
        std::fs::write(&tabs, "database:\n\thost: x\n").unwrap();
        assert_eq!(
            FluxbaseConfig::load(Some(&tabs), &dir)
                .unwrap_err()
                .reason(),
            "not_yaml"
        );
        let huge = dir.join("huge.yaml");
        std::fs::write(&huge, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        assert_eq!(
            FluxbaseConfig::load(Some(&huge), &dir)
                .unwrap_err()
                .reason(),
            "too_large"
        );
        // A file given elsewhere does not say where Fluxbase runs.
        let elsewhere = dir.join("elsewhere.yaml");
        std::fs::write(&elsewhere, "").unwrap();
        let config = FluxbaseConfig::load(Some(&elsewhere), &dir).unwrap();
        assert_eq!(config.working_dir(), None);
        check(
            &config,
            &[],
            "FLUXBASE_STORAGE_LOCAL_PATH",
            Some("./storage from Fluxbase default"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scalars_read_as_viper_reads_them() {
        let Ok(values) = flatten_text(
            "a:\n  b: 1.5\n  c: yes-string\n  d: true\n  e: ~\n  f: !custom tagged\n  7: seven\n",
        ) else {
            panic!("parses");
        };
        let mut flat: Vec<_> = values
            .into_iter()
            .map(|(name, (key, value))| format!("{name} {key}={value}"))
            .collect();
        flat.sort();
        assert_eq!(
            flat,
            [
                "FLUXBASE_A_7 a.7=seven",
                "FLUXBASE_A_B a.b=1.5",
                "FLUXBASE_A_C a.c=yes-string",
                "FLUXBASE_A_D a.d=true",
                "FLUXBASE_A_F a.f=tagged",
            ]
        );
    }

    #[test]
    fn the_layered_lookup_records_origins_and_hides_secrets() {
        let dir = dir("origins");
        std::fs::write(
            dir.join("fluxbase.yaml"),
            "database:\n  password: s3cret\n  host: db\n",
        )
        .unwrap();
        let config = FluxbaseConfig::load(None, &dir).unwrap();
        let env = |name: &str| (name == "FLUXBASE_DATABASE_USER").then(|| "app".to_owned());
        let layered = Layered::new(&config, &env);
        assert_eq!(
            layered.get("FLUXBASE_DATABASE_PASSWORD").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            layered.get("FLUXBASE_DATABASE_USER").as_deref(),
            Some("app")
        );
        assert_eq!(
            layered.get("FLUXBASE_DATABASE_PORT").as_deref(),
            Some("5432")
        );
        assert_eq!(layered.get("FLUXBASE_DATABASE_HOST").as_deref(), Some("db"));
        assert_eq!(layered.get("FLUXBASE_DATABASE_HOST").as_deref(), Some("db"));
        assert_eq!(layered.get("HOME"), None);
        let file = format!("file {}", dir.join("fluxbase.yaml").display());
        let rendered: Vec<String> = layered
            .origins()
            .into_iter()
            .map(|o| format!("{}={} ({})", o.setting, o.value, o.source))
            .collect();
        assert_eq!(
            rendered,
            [
                format!("database.password=(hidden) ({file})"),
                "FLUXBASE_DATABASE_USER=app (environment FLUXBASE_DATABASE_USER)".to_owned(),
                "database.port=5432 (Fluxbase default)".to_owned(),
                format!("database.host=db ({file})"),
            ]
        );
        assert_eq!(
            layered.describe("FLUXBASE_DATABASE_HOST"),
            format!("database.host ({file})")
        );
        assert_eq!(
            layered.describe("FLUXBASE_DATABASE_USER"),
            "FLUXBASE_DATABASE_USER"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
