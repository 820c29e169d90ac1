//! Where Fluxbase's own metrics endpoint is: `--fluxbase.metrics-url`, else built from
//! Fluxbase's `FLUXBASE_METRICS_*` settings.

/// Fluxbase's defaults (`fluxbase.md` section 7): `metrics.port` and `metrics.path`.
const DEFAULT_PORT: &str = "9090";
const DEFAULT_PATH: &str = "/metrics";

/// The URL of Fluxbase's metrics endpoint, or `None` when there is no upstream.
///
/// `flag` is `--fluxbase.metrics-url` (an empty value means none). Without it, the URL is
/// `http://127.0.0.1:<FLUXBASE_METRICS_PORT or 9090><FLUXBASE_METRICS_PATH or /metrics>` if
/// any of `FLUXBASE_METRICS_ENABLED`, `_PORT` or `_PATH` is set, and none otherwise (or when
/// `FLUXBASE_METRICS_ENABLED` is false). `env` is the lookup `Config::from_flags` got, so
/// whatever answers it (the environment, Fluxbase's own configuration file) is honoured.
///
/// Errors name the setting that is wrong, in one line.
pub fn metrics_url(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, (&'static str, String)> {
    if let Some(url) = flag.map(str::trim).filter(|url| !url.is_empty()) {
        return validate(url)
            .map(Some)
            .map_err(|message| ("--fluxbase.metrics-url", message));
    }
    let get = |name: &str| env(name).map(|value| value.trim().to_owned());
    let enabled = get("FLUXBASE_METRICS_ENABLED");
    let port = get("FLUXBASE_METRICS_PORT").filter(|port| !port.is_empty());
    let path = get("FLUXBASE_METRICS_PATH").filter(|path| !path.is_empty());
    if enabled.is_none() && port.is_none() && path.is_none() {
        return Ok(None);
    }
    if let Some(enabled) = &enabled {
        match enabled.to_ascii_lowercase().as_str() {
            // Viper's (Go's strconv.ParseBool) spellings.
            "false" | "0" | "f" => return Ok(None),
            "true" | "1" | "t" | "" => {}
            other => {
                return Err((
                    "FLUXBASE_METRICS_ENABLED",
                    format!("{other:?} is neither true nor false"),
                ));
            }
        }
    }
    let port = port.unwrap_or_else(|| DEFAULT_PORT.to_owned());
    if !port.parse::<u16>().is_ok_and(|port| port > 0) {
        return Err((
            "FLUXBASE_METRICS_PORT",
            format!("{port:?} is not a port number"),
        ));
    }
    let path = path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err((
            "FLUXBASE_METRICS_PATH",
            format!("{path:?} is not an absolute path"),
        ));
    }
    Ok(Some(format!("http://127.0.0.1:{port}{path}")))
}

/// An `http://` or `https://` URL with a host.
fn validate(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<Option<String>, String> {
        let env = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        metrics_url(flag, &env).map_err(|(setting, message)| format!("{setting}: {message}"))
    }

    #[test]
    fn no_flag_and_no_fluxbase_variable_means_no_upstream() {
        assert_eq!(url(None, &[]), Ok(None));
        assert_eq!(url(Some(" "), &[]), Ok(None));
    }

    #[test]
    fn the_flag_wins_over_fluxbase_variables() {
        assert_eq!(
            url(
                Some("https://fluxbase:9999/m"),
                &[("FLUXBASE_METRICS_PORT", "1")]
            ),
            Ok(Some("https://fluxbase:9999/m".to_owned()))
        );
    }

    #[test]
    fn any_fluxbase_metrics_variable_builds_the_url_with_defaults_for_the_rest() {
        assert_eq!(
            url(None, &[("FLUXBASE_METRICS_ENABLED", "true")]),
            Ok(Some("http://127.0.0.1:9090/metrics".to_owned()))
        );
        assert_eq!(
            url(None, &[("FLUXBASE_METRICS_PORT", "9191")]),
            Ok(Some("http://127.0.0.1:9191/metrics".to_owned()))
        );
        assert_eq!(
            url(None, &[("FLUXBASE_METRICS_PATH", "/internal/metrics")]),
            Ok(Some("http://127.0.0.1:9090/internal/metrics".to_owned()))
        );
    }

    #[test]
    fn metrics_disabled_in_fluxbase_means_no_upstream() {
        assert_eq!(
            url(
                None,
                &[
                    ("FLUXBASE_METRICS_ENABLED", "false"),
                    ("FLUXBASE_METRICS_PORT", "9191")
                ]
            ),
            Ok(None)
        );
    }

    #[test]
    fn bad_settings_name_themselves() {
        assert!(
            url(Some("ftp://x/"), &[])
                .unwrap_err()
                .starts_with("--fluxbase.metrics-url: ")
        );
        assert!(
            url(None, &[("FLUXBASE_METRICS_PORT", "http")])
                .unwrap_err()
                .starts_with("FLUXBASE_METRICS_PORT: ")
        );
        assert!(
            url(None, &[("FLUXBASE_METRICS_PATH", "metrics")])
                .unwrap_err()
                .starts_with("FLUXBASE_METRICS_PATH: ")
        );
        assert!(
            url(None, &[("FLUXBASE_METRICS_ENABLED", "maybe")])
                .unwrap_err()
                .starts_with("FLUXBASE_METRICS_ENABLED: ")
        );
    }
}
