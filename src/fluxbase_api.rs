//! The health of Fluxbase's API: where it is (`--fluxbase.url`, else Fluxbase's
//! `server.address`), and the worker that asks its `GET /health` every check interval and
//! publishes the verdict as the `api` service.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::build_info;
use crate::families::ExporterFamilies;
use crate::health::{CheckReport, HealthBoard, Status};
use crate::workers::Worker;

/// The most of a `/health` answer that is read. Fluxbase's is under 100 bytes (a few hundred
/// with the admin-only `services` map); more is not Fluxbase.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// The check's name in `fluxbase_exporter_check_*{check}`.
pub const CHECK: &str = "api";

/// Where Fluxbase's API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// The base URL, without a trailing `/`.
    pub base_url: String,
    /// `<base_url>/health`, what the worker asks.
    pub health_url: String,
}

impl ApiSettings {
    /// Validates `--fluxbase.url`: `http://` or `https://`, a host, no query or fragment.
    pub fn from_url(text: &str) -> Result<ApiSettings, String> {
        let text = text.trim();
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
            .ok_or_else(|| format!("{text:?} is not an http:// or https:// URL"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.starts_with(':') {
            return Err(format!("{text:?} names no host"));
        }
        if authority.contains('@') {
            // Not echoed: the text holds a password.
            return Err(
                "holds credentials (user:password@); Fluxbase's /health needs none".to_owned(),
            );
        }
        if text.contains(['?', '#']) || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?} must be a plain base URL"));
        }
        Ok(ApiSettings::new(text.trim_end_matches('/')))
    }

    /// The URL of the API Fluxbase serves at `address`, its `server.address`: `:PORT` and
    /// `0.0.0.0:PORT` (every IPv4 interface) and `[::]:PORT` are asked on loopback, as Fluxbase
    /// itself calls its own API (`http://localhost` + the address); `HOST:PORT` as it is.
    pub fn from_server_address(address: &str) -> Result<ApiSettings, String> {
        let address = address.trim();
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{address:?} is not HOST:PORT or :PORT"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("{address:?} has no usable port"))?;
        let host = match host {
            "" | "0.0.0.0" => "127.0.0.1",
            "[::]" => "[::1]",
            host if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) => {
                return Err(format!(
                    "{address:?} is not HOST:PORT (an IPv6 host needs brackets)"
                ));
            }
            host if host
                .chars()
                .any(|c| c.is_whitespace() || "/?#@".contains(c)) =>
            {
                return Err(format!("{address:?} is not HOST:PORT"));
            }
            host => host,
        };
        Ok(ApiSettings::new(&format!("http://{host}:{port}")))
    }

    fn new(base_url: &str) -> ApiSettings {
        ApiSettings {
            base_url: base_url.to_owned(),
            health_url: format!("{base_url}/health"),
        }
    }
}

/// Why the API is not healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFailure {
    /// Fluxbase answered `{"status":"degraded"}` with 503: its own database ping failed.
    Degraded,
    Refused,
    TimedOut(Duration),
    /// Connecting, resolving or reading failed otherwise.
    Unreachable(String),
    /// An HTTP status Fluxbase's `/health` does not answer (or 503 without `degraded`).
    Status(u16),
    /// 200 or 503 with a body that is not Fluxbase's.
    UnexpectedBody {
        status: u16,
        excerpt: String,
    },
    TooLarge,
}

impl ApiFailure {
    /// A fixed word for the kind of failure.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiFailure::Degraded => "degraded",
            ApiFailure::Refused => "refused",
            ApiFailure::TimedOut(_) => "timeout",
            ApiFailure::Unreachable(_) => "unreachable",
            ApiFailure::Status(_) => "http_status",
            ApiFailure::UnexpectedBody { .. } => "unexpected_body",
            ApiFailure::TooLarge => "too_large",
        }
    }

    /// The service's status for this failure: degraded when Fluxbase says so, else unhealthy.
    pub fn status(&self) -> Status {
        match self {
            ApiFailure::Degraded => Status::Degraded,
            _ => Status::Unhealthy,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiFailure::Degraded => {
                f.write_str("Fluxbase answers degraded (503): its own database ping fails")
            }
            ApiFailure::Refused => {
                f.write_str("connection refused: nothing listens at Fluxbase's API address")
            }
            ApiFailure::TimedOut(after) => {
                write!(f, "no answer within {}", crate::duration::format(*after))
            }
            ApiFailure::Unreachable(why) => write!(f, "cannot reach Fluxbase's API: {why}"),
            ApiFailure::Status(status) => write!(f, "answered HTTP {status}"),
            ApiFailure::UnexpectedBody { status, excerpt } => write!(
                f,
                "answered HTTP {status} with a body that is not Fluxbase's health: {excerpt:?}"
            ),
            ApiFailure::TooLarge => write!(f, "answered more than {} KiB", MAX_BODY_BYTES / 1024),
        }
    }
}

/// Fluxbase's verdict from its `/health` answer: 200 with `{"status":"ok",...}` is healthy,
/// 503 with `{"status":"degraded",...}` is degraded, anything else is a failure.
pub fn classify(status: u16, body: &[u8]) -> Result<(), ApiFailure> {
    if status != 200 && status != 503 {
        return Err(ApiFailure::Status(status));
    }
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json.get("status")?.as_str().map(str::to_owned));
    match (status, said.as_deref()) {
        (200, Some("ok")) => Ok(()),
        (503, Some("degraded")) => Err(ApiFailure::Degraded),
        (503, Some(_)) => Err(ApiFailure::Status(503)),
        _ => Err(ApiFailure::UnexpectedBody {
            status,
            excerpt: excerpt(body),
        }),
    }
}

/// The first 60 bytes of a body, lossily as text, for a message.
fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(60);
    let mut text = String::from_utf8_lossy(&body[..end]).into_owned();
    if body.len() > end {
        text.push('…');
    }
    text
}

/// What the API worker publishes to.
#[derive(Clone)]
pub struct Outputs {
    pub exporter: Arc<ExporterFamilies>,
    pub health: Arc<HealthBoard>,
}

/// Asks Fluxbase's `/health` every check interval.
pub struct ApiWorker {
    settings: ApiSettings,
    agent: ureq::Agent,
    interval: Duration,
    timeout: Duration,
    out: Outputs,
    last_success: Option<Instant>,
    failing: Option<&'static str>,
}

impl ApiWorker {
    pub fn new(settings: ApiSettings, interval: Duration, timeout: Duration, out: Outputs) -> Self {
        let agent = ureq::Agent::config_builder()
            // One bound for the whole exchange: resolving, connecting, sending, the answer.
            .timeout_global(Some(timeout))
            // A status is an answer to classify, not an error.
            .http_status_as_error(false)
            // A redirect is not Fluxbase's /health answer.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // The API is asked directly; a proxy from the environment would answer for it.
            .proxy(None)
            .user_agent(format!("fluxbase-exporter/{}", build_info::VERSION))
            .build()
            .into();
        ApiWorker {
            settings,
            agent,
            interval,
            timeout,
            out,
            last_success: None,
            failing: None,
        }
    }

    /// One request, bounded by the check timeout.
    fn probe(&self) -> Result<(), ApiFailure> {
        let mut response = self
            .agent
            .get(&self.settings.health_url)
            .header("Accept", "application/json")
            .call()
            .map_err(|err| self.failure(err))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|err| self.failure(err))?;
        classify(status, &body)
    }

    fn failure(&self, err: ureq::Error) -> ApiFailure {
        match err {
            ureq::Error::Timeout(_) => ApiFailure::TimedOut(self.timeout),
            ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
                ApiFailure::Refused
            }
            ureq::Error::Io(io) if io.kind() == io::ErrorKind::TimedOut => {
                ApiFailure::TimedOut(self.timeout)
            }
            ureq::Error::BodyExceedsLimit(_) => ApiFailure::TooLarge,
            ureq::Error::HostNotFound => {
                ApiFailure::Unreachable("its host name does not resolve".to_owned())
            }
            other => ApiFailure::Unreachable(other.to_string()),
        }
    }

    fn publish(&mut self, now: Instant, latency: Duration, verdict: &Result<(), ApiFailure>) {
        match (verdict, self.failing) {
            (Ok(()), Some(_)) => {
                log::info!(url = self.settings.health_url.as_str(); "Fluxbase's API is healthy again")
            }
            (Err(failure), previous) if previous != Some(failure.reason()) => {
                log::warn!(url = self.settings.health_url.as_str(), reason = failure.reason(), message:% = failure; "Fluxbase's API is not healthy")
            }
            _ => {}
        }
        self.failing = verdict.as_ref().err().map(ApiFailure::reason);
        if verdict.is_ok() {
            self.last_success = Some(now);
        }
        self.out.health.api.publish(Some(CheckReport {
            status: verdict
                .as_ref()
                .map_or_else(ApiFailure::status, |()| Status::Healthy),
            latency: Some(latency),
            message: verdict.as_ref().err().map(ToString::to_string),
            checked_at: now,
            last_success: self.last_success,
            stale_after: self.interval * 3 + self.timeout,
            stale_status: Status::Unhealthy,
        }));
    }
}

impl Worker for ApiWorker {
    fn name(&self) -> &'static str {
        "fluxbase-api"
    }

    fn run_once(&mut self, now: Instant) {
        let started = Instant::now();
        let verdict = self.probe();
        let took = started.elapsed();
        self.publish(now, took, &verdict);
        self.out
            .exporter
            .checks
            .record(CHECK, verdict.is_ok(), took, SystemTime::now());
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(status: u16, body: &str, expected: &str) {
        let rendered = match classify(status, body.as_bytes()) {
            Ok(()) => "healthy".to_owned(),
            Err(failure) => format!(
                "{} {}: {failure}",
                failure.status().as_str(),
                failure.reason()
            ),
        };
        assert_eq!(rendered, expected);
    }

    #[test]
    fn fluxbases_answers_are_classified() {
        check(
            200,
            r#"{"status":"ok","timestamp":"2026-12-02T17:21:00.123456789Z"}"#,
            "healthy",
        );
        // Admin callers also get a services map; the status decides.
        check(
            200,
            r#"{"services":{"database":true,"realtime":true},"status":"ok","timestamp":"2026-12-02T17:21:00Z"}"#,
            "healthy",
        );
        check(
            503,
            r#"{"status":"degraded","timestamp":"2026-12-02T17:21:00Z"}"#,
            "degraded degraded: Fluxbase answers degraded (503): its own database ping fails",
        );
    }

    #[test]
    fn anything_else_is_unhealthy_with_a_reason() {
        check(
            500,
            "Internal Server Error",
            "unhealthy http_status: answered HTTP 500",
        );
        check(302, "", "unhealthy http_status: answered HTTP 302");
        check(
            503,
            r#"{"status":"maintenance"}"#,
            "unhealthy http_status: answered HTTP 503",
        );
        check(
            200,
            "<html>nginx</html>",
            "unhealthy unexpected_body: answered HTTP 200 with a body that is not Fluxbase's health: \"<html>nginx</html>\"",
        );
        check(
            200,
            r#"{"status":"degraded"}"#,
            "unhealthy unexpected_body: answered HTTP 200 with a body that is not Fluxbase's health: \"{\\\"status\\\":\\\"degraded\\\"}\"",
        );
        check(
            200,
            "OK",
            "unhealthy unexpected_body: answered HTTP 200 with a body that is not Fluxbase's health: \"OK\"",
        );
        let long = "x".repeat(100);
        assert!(
            classify(200, long.as_bytes())
                .unwrap_err()
                .to_string()
                .ends_with(&format!("{}…\"", "x".repeat(60)))
        );
    }

    #[test]
    fn a_refused_probe_publishes_unhealthy_with_its_message() {
        // A port that was just free: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let out = Outputs {
            exporter: Arc::new(ExporterFamilies::new(&crate::metrics::SeriesLimit::new(10))),
            health: Arc::new(HealthBoard::default()),
        };
        let mut worker = ApiWorker::new(
            ApiSettings::from_url(&format!("http://{address}")).unwrap(),
            Duration::from_secs(15),
            Duration::from_secs(2),
            out.clone(),
        );
        let now = Instant::now();
        worker.run_once(now);
        let services = out.health.services(now);
        assert_eq!(services.len(), 1);
        let (name, verdict) = &services[0];
        assert_eq!(*name, "api");
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(
            verdict.message.as_deref(),
            Some("connection refused: nothing listens at Fluxbase's API address")
        );
        assert!(verdict.latency_ms.is_some());
        // Stale after three intervals and the timeout, never shown healthy meanwhile.
        let later = out.health.services(now + Duration::from_secs(60));
        assert_eq!(later[0].1.status, Status::Unhealthy);
    }

    #[test]
    fn server_addresses_become_urls_as_fluxbase_calls_itself() {
        let url = |address: &str| ApiSettings::from_server_address(address).map(|s| s.health_url);
        assert_eq!(url(":8080").unwrap(), "http://127.0.0.1:8080/health");
        assert_eq!(url("0.0.0.0:8081").unwrap(), "http://127.0.0.1:8081/health");
        assert_eq!(url("[::]:8082").unwrap(), "http://[::1]:8082/health");
        assert_eq!(url("[::1]:8083").unwrap(), "http://[::1]:8083/health");
        assert_eq!(
            url("api.internal:80").unwrap(),
            "http://api.internal:80/health"
        );
        assert_eq!(
            url(" 10.0.0.5:8080 ").unwrap(),
            "http://10.0.0.5:8080/health"
        );
        assert_eq!(
            url("8080").unwrap_err(),
            "\"8080\" is not HOST:PORT or :PORT"
        );
        assert_eq!(url(":http").unwrap_err(), "\":http\" has no usable port");
        assert_eq!(url(":0").unwrap_err(), "\":0\" has no usable port");
        assert_eq!(
            url("::1:8080").unwrap_err(),
            "\"::1:8080\" is not HOST:PORT (an IPv6 host needs brackets)"
        );
        assert_eq!(url("a/b:80").unwrap_err(), "\"a/b:80\" is not HOST:PORT");
    }

    #[test]
    fn base_urls_are_plain_http_or_https() {
        let url = |text: &str| ApiSettings::from_url(text).map(|s| s.health_url);
        assert_eq!(
            url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/health"
        );
        assert_eq!(
            url("https://fluxbase.example.com/base").unwrap(),
            "https://fluxbase.example.com/base/health"
        );
        assert_eq!(
            url("ftp://x").unwrap_err(),
            "\"ftp://x\" is not an http:// or https:// URL"
        );
        assert_eq!(url("http:///x").unwrap_err(), "\"http:///x\" names no host");
        assert_eq!(
            url("http://u:p@x").unwrap_err(),
            "holds credentials (user:password@); Fluxbase's /health needs none"
        );
        assert_eq!(
            url("http://x/?a=b").unwrap_err(),
            "\"http://x/?a=b\" must be a plain base URL"
        );
    }
}
