//! Events into families: the one table of which event feeds which family. Every rule is a row
//! of the table below or a small function beside it, each with its test; the label values come
//! from Fluxbase's label and route rules in [`crate::labels`].
//!
//! | event | families |
//! |---|---|
//! | `HTTP request` | `fluxbase_http_requests_total`, `_request_duration_seconds`, `_response_size_bytes` |
//! | `HTTP request` on a storage object route | `fluxbase_storage_operations_total`, `_operation_duration_seconds`, `fluxbase_storage_bytes_total{operation="download"}` (2xx only) |
//! | `HTTP request` with status 429 | `fluxbase_rate_limit_hits_total` (limiter from the route) |
//! | `login_success` | `fluxbase_auth_attempts_total{result="success"}`, `fluxbase_auth_success_total`, `fluxbase_auth_tokens_issued_total{token_type="access"\|"refresh"}` |
//! | `login_failed` (not `tenant_mismatch`) | `fluxbase_auth_attempts_total{result="failure"}`, `fluxbase_auth_failure_total{reason}` |
//! | `account_locked` with `details.failed_attempts` | `fluxbase_auth_attempts_total{result="failure"}`, `fluxbase_auth_failure_total{reason="invalid_password"}` |
//! | any sign-in event with `details.dashboard: true` | nothing (Fluxbase counts application users only) |
//! | `rate_limit_exceeded` | `fluxbase_rate_limit_hits_total{limiter_type="auth_2fa"}`, unless the same request's 429 was counted |
//! | `Slow query detected` | `fluxbase_exporter_slow_queries_total{operation,table}` |

use std::collections::VecDeque;
use std::sync::Arc;

use super::parse::{Event, EventKind, HttpRequest, SecurityEvent};
use crate::families::{ExporterFamilies, FluxbaseFamilies};
use crate::labels::{self, StorageOperation, limiter_type, storage_operation};
use crate::metrics::{Counter, Histogram};

/// What an event was counted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Http,
    Security,
    SlowQuery,
    /// A valid event no family counts.
    Other,
}

impl Counted {
    pub fn as_str(self) -> &'static str {
        match self {
            Counted::Http => "http",
            Counted::Security => "security",
            Counted::SlowQuery => "slow_query",
            Counted::Other => "other",
        }
    }
}

/// Failure reasons Fluxbase's `fluxbase_auth_failure_total` uses; any other is `other`.
const FAILURE_REASONS: &[&str] = &[
    "user_not_found",
    "account_locked",
    "invalid_password",
    "email_not_verified",
];

/// `login_failed` events that are not sign-in attempts (Fluxbase logs a failed verification
/// e-mail at sign-up under that type): not counted.
const NOT_SIGN_IN_REASONS: &[&str] = &["failed_to_send_verification_email"];

/// `login_failed` reasons Fluxbase's own counters do not count: a user of another tenant.
const NOT_COUNTED_REASONS: &[&str] = &["tenant_mismatch"];

/// A 429 and a `rate_limit_exceeded` event this close in time (event times are whole seconds)
/// are the same request, counted once.
const SAME_REQUEST_SECONDS: f64 = 2.0;

/// The series one (method, path, status class) feeds, looked up once and kept.
struct HttpSeries {
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
    size: Arc<Histogram>,
}

/// The series one (operation, bucket, outcome) of storage feeds.
struct StorageSeries {
    operations: Arc<Counter>,
    duration: Arc<Histogram>,
    /// Downloads only.
    bytes: Option<Arc<Counter>>,
}

/// A series key: label values joined with NUL, each value's bounds kept so that the values can
/// be read back on a miss. One buffer serves every lookup (no allocation once it has grown).
#[derive(Default)]
struct Key {
    text: String,
    bounds: Vec<(usize, usize)>,
}

impl Key {
    /// Starts a new key.
    fn clear(&mut self) -> &mut Self {
        self.text.clear();
        self.bounds.clear();
        self
    }

    /// Appends one label value.
    fn push(&mut self, value: &str) -> &mut Self {
        self.push_with(|text| text.push_str(value))
    }

    /// Appends one label value that `write` appends to the key's text.
    fn push_with(&mut self, write: impl FnOnce(&mut String)) -> &mut Self {
        if !self.bounds.is_empty() {
            self.text.push('\0');
        }
        let start = self.text.len();
        write(&mut self.text);
        self.bounds.push((start, self.text.len()));
        self
    }

    /// The first `N` label values, in order (`""` past the last one pushed).
    fn values<const N: usize>(&self) -> [&str; N] {
        std::array::from_fn(|i| {
            self.bounds
                .get(i)
                .and_then(|&(start, end)| self.text.get(start..end))
                .unwrap_or_default()
        })
    }
}

/// The cache is rebuilt from scratch past this size (a safety net; the families are capped).
const MAX_CACHED_SERIES: usize = 20_000;

/// The series one label set feeds, looked up once and kept, by [`Key`], hashed with FxHash: one
/// hash lookup per event and no allocation once the series is known. Only series every family
/// accepted are kept, so a cache is no larger than the (capped) families; past
/// `MAX_CACHED_SERIES` it starts over.
struct SeriesCache<T> {
    index: rustc_hash::FxHashMap<String, usize>,
    series: Vec<T>,
}

impl<T> Default for SeriesCache<T> {
    fn default() -> Self {
        SeriesCache {
            index: rustc_hash::FxHashMap::default(),
            series: Vec::new(),
        }
    }
}

impl<T> SeriesCache<T> {
    /// The series of `key`, made by `create` on the first lookup. A label set `create` refuses
    /// (`None`: a family over its limit) is not kept: the next lookup asks again, and is counted
    /// as dropped again.
    fn get_or_create(&mut self, key: &Key, create: impl FnOnce(&Key) -> Option<T>) -> Option<&T> {
        let at = match self.index.get(key.text.as_str()) {
            Some(&at) => at,
            None => {
                let series = create(key)?;
                if self.series.len() >= MAX_CACHED_SERIES {
                    self.index.clear();
                    self.series.clear();
                }
                self.index.insert(key.text.clone(), self.series.len());
                self.series.push(series);
                self.series.len() - 1
            }
        };
        self.series.get(at)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.series.len()
    }
}

/// Counts events into the families. One per source: its caches and its memory of recent
/// rate-limit events are its own; the families are shared.
pub struct Ingest {
    fluxbase: Arc<FluxbaseFamilies>,
    exporter: Arc<ExporterFamilies>,
    /// Series by `method \0 path \0 class`.
    http: SeriesCache<HttpSeries>,
    /// Series by `operation \0 bucket \0 outcome`.
    storage: SeriesCache<StorageSeries>,
    /// Rate-limit counters by `limiter \0 client IP` (the IP is hashed once per new key).
    rate_limits: SeriesCache<Arc<Counter>>,
    key: Key,
    /// Recent 429s on 2FA routes and recent `rate_limit_exceeded` events, for de-duplication:
    /// (event time, client IP).
    recent_429s: VecDeque<(f64, Option<String>)>,
    recent_limit_events: VecDeque<(f64, Option<String>)>,
}

impl Ingest {
    pub fn new(fluxbase: Arc<FluxbaseFamilies>, exporter: Arc<ExporterFamilies>) -> Self {
        Ingest {
            fluxbase,
            exporter,
            http: SeriesCache::default(),
            storage: SeriesCache::default(),
            rate_limits: SeriesCache::default(),
            key: Key::default(),
            recent_429s: VecDeque::new(),
            recent_limit_events: VecDeque::new(),
        }
    }

    /// Counts one event. `now` (seconds since the epoch) stands in for an event without a time.
    pub fn count(&mut self, event: &Event<'_>, now: f64) -> Counted {
        let time = event.time.unwrap_or(now);
        match &event.kind {
            EventKind::Http(request) => {
                self.http_request(request, time);
                Counted::Http
            }
            EventKind::Security(security) => {
                self.security_event(security, time);
                Counted::Security
            }
            EventKind::SlowQuery { operation, table } => {
                self.exporter
                    .events
                    .slow_queries_total
                    .inc(&[operation, table]);
                Counted::SlowQuery
            }
            EventKind::Other => Counted::Other,
        }
    }

    fn http_request(&mut self, request: &HttpRequest<'_>, time: f64) {
        // With Fluxbase's own endpoint configured, its HTTP and rate-limit families come from
        // there (upstream::merge): only the storage operation is counted here.
        if self.fluxbase.fed_from_upstream() {
            if let Some(storage) = storage_operation(&request.method, &request.path) {
                self.storage_operation(storage, request);
            }
            return;
        }
        let class = labels::status_class(request.status);
        self.key
            .clear()
            .push(&request.method)
            .push_with(|text| labels::normalize_path_into(&request.path, text))
            .push(class);
        let fluxbase = &self.fluxbase;
        let series = self.http.get_or_create(&self.key, |key| {
            let values = key.values::<3>();
            Some(HttpSeries {
                requests: fluxbase.http_requests_total.get_or_create(&values)?,
                duration: fluxbase
                    .http_request_duration_seconds
                    .get_or_create(&values)?,
                size: fluxbase.http_response_size_bytes.get_or_create(&values)?,
            })
        });
        if let Some(series) = series {
            series.requests.inc();
            if let Some(ms) = request.duration_ms {
                series.duration.observe(ms / 1000.0);
            }
            if let Some(bytes) = request.response_bytes {
                series.size.observe(bytes);
            }
        }
        if let Some(storage) = storage_operation(&request.method, &request.path) {
            self.storage_operation(storage, request);
        }
        if request.status == 429 {
            self.rate_limited(request, time);
        }
    }

    fn storage_operation(&mut self, storage: StorageOperation<'_>, request: &HttpRequest<'_>) {
        let outcome = if (200..300).contains(&request.status) {
            "success"
        } else {
            "error"
        };
        self.key
            .clear()
            .push(storage.operation)
            .push(storage.bucket)
            .push(outcome);
        let fluxbase = &self.fluxbase;
        let series = self.storage.get_or_create(&self.key, |key| {
            let values = key.values::<3>();
            let pair = [storage.operation, storage.bucket];
            Some(StorageSeries {
                operations: fluxbase.storage_operations_total.get_or_create(&values)?,
                duration: fluxbase
                    .storage_operation_duration_seconds
                    .get_or_create(&pair)?,
                // Only a download that answered 2xx retrieved bytes; another's `response_bytes`
                // is an error body.
                bytes: match (storage.operation, outcome) {
                    ("download", "success") => {
                        Some(fluxbase.storage_bytes_total.get_or_create(&pair)?)
                    }
                    _ => None,
                },
            })
        });
        if let Some(series) = series {
            series.operations.inc();
            if let Some(ms) = request.duration_ms {
                series.duration.observe(ms / 1000.0);
            }
            if let (Some(counter), Some(bytes)) = (&series.bytes, request.response_bytes) {
                counter.inc_by(bytes as u64);
            }
        }
    }

    fn rate_limited(&mut self, request: &HttpRequest<'_>, time: f64) {
        let limiter = limiter_type(&request.path);
        let ip = request.ip.as_deref();
        if limiter == "auth_2fa" {
            self.forget_before(time);
            // The same request's rate_limit_exceeded event may have been counted already.
            if take_match(&mut self.recent_limit_events, time, ip) {
                return;
            }
            self.recent_429s.push_back((time, ip.map(str::to_owned)));
        }
        self.rate_limit_hit(limiter, ip);
    }

    /// Counts one hit of `limiter` by the client at `ip`.
    fn rate_limit_hit(&mut self, limiter: &'static str, ip: Option<&str>) {
        self.key.clear().push(limiter).push(ip.unwrap_or(""));
        let fluxbase = &self.fluxbase;
        let counter = self.rate_limits.get_or_create(&self.key, |_| {
            fluxbase
                .rate_limit_hits_total
                .get_or_create(&[limiter, &identifier(ip)])
        });
        if let Some(counter) = counter {
            counter.inc();
        }
    }

    fn security_event(&mut self, event: &SecurityEvent<'_>, time: f64) {
        // Every family a security event feeds (auth, rate limits) comes from Fluxbase's own
        // endpoint when one is configured.
        if self.fluxbase.fed_from_upstream() {
            return;
        }
        let fluxbase = &self.fluxbase;
        let method = if event.sso { "sso" } else { "password" };
        let sign_in = matches!(
            event.event_type.as_ref(),
            "login_success" | "login_failed" | "account_locked"
        );
        // Fluxbase's own auth counters count application users only, never the dashboard's.
        if sign_in && event.dashboard {
            return;
        }
        match event.event_type.as_ref() {
            "login_success" => {
                fluxbase.auth_attempts_total.inc(&[method, "success"]);
                fluxbase.auth_success_total.inc(&[method]);
                // A password sign-in issues an access and a refresh token, and Fluxbase counts
                // both at that moment (it never logs a token event of its own).
                if method == "password" {
                    fluxbase.auth_tokens_issued_total.inc(&["access"]);
                    fluxbase.auth_tokens_issued_total.inc(&["refresh"]);
                }
            }
            "login_failed" => {
                let reason = event.reason.as_deref().unwrap_or("");
                if NOT_SIGN_IN_REASONS.contains(&reason) || NOT_COUNTED_REASONS.contains(&reason) {
                    return;
                }
                let reason = if FAILURE_REASONS.contains(&reason) {
                    reason
                } else {
                    "other"
                };
                fluxbase.auth_attempts_total.inc(&[method, "failure"]);
                fluxbase.auth_failure_total.inc(&[method, reason]);
            }
            // From the 5th wrong password in a row Fluxbase logs this warning instead of
            // `login_failed`, and counts the attempt as a failure with reason `invalid_password`.
            // Without `failed_attempts` it is not a sign-in attempt.
            "account_locked" if event.failed_attempts.is_some() => {
                fluxbase.auth_attempts_total.inc(&[method, "failure"]);
                fluxbase
                    .auth_failure_total
                    .inc(&[method, "invalid_password"]);
            }
            "rate_limit_exceeded" => {
                let ip = event.ip.as_deref();
                self.forget_before(time);
                if take_match(&mut self.recent_429s, time, ip) {
                    return;
                }
                self.recent_limit_events
                    .push_back((time, ip.map(str::to_owned)));
                self.rate_limit_hit("auth_2fa", ip);
            }
            _ => {}
        }
    }

    /// Drops remembered rate-limit events too old to match anything arriving now.
    fn forget_before(&mut self, time: f64) {
        for recent in [&mut self.recent_429s, &mut self.recent_limit_events] {
            while recent
                .front()
                .is_some_and(|(at, _)| *at < time - SAME_REQUEST_SECONDS * 2.0)
            {
                recent.pop_front();
            }
            // Bounded whatever the times say (clock jumps, replays).
            while recent.len() > 1024 {
                recent.pop_front();
            }
        }
    }
}

/// Removes and reports a remembered event of the same request: close in time, and from the same
/// client when both sides know it.
fn take_match(recent: &mut VecDeque<(f64, Option<String>)>, time: f64, ip: Option<&str>) -> bool {
    let found = recent.iter().position(|(at, other_ip)| {
        (at - time).abs() <= SAME_REQUEST_SECONDS
            && match (other_ip.as_deref(), ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    });
    found.map(|index| recent.remove(index)).is_some()
}

/// Fluxbase's identifier label: a hash of the client IP, never the IP; `unknown` without one.
fn identifier(ip: Option<&str>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), labels::rate_limit_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse::parse_line;
    use crate::metrics::{Collector, Exposition, Scrape, SeriesLimit};
    use std::time::Instant;

    #[test]
    fn a_key_gives_back_the_values_it_was_built_from() {
        let mut key = Key::default();
        key.clear()
            .push("GET")
            .push_with(|text| text.push_str("/a\0b"))
            .push("");
        assert_eq!(key.text, "GET\0/a\0b\0");
        assert_eq!(key.values::<3>(), ["GET", "/a\0b", ""]);
        assert_eq!(key.values::<4>(), ["GET", "/a\0b", "", ""]);
        key.clear().push("x");
        assert_eq!(key.values::<2>(), ["x", ""]);
    }

    #[test]
    fn the_series_cache_creates_once_and_keeps_no_refusal() {
        let mut cache = SeriesCache::<u32>::default();
        let mut key = Key::default();
        let mut created = 0;
        for _ in 0..3 {
            key.clear().push("a").push("b");
            let found = cache.get_or_create(&key, |key| {
                created += 1;
                assert_eq!(key.values::<2>(), ["a", "b"]);
                Some(7)
            });
            assert_eq!(found, Some(&7));
        }
        assert_eq!(created, 1);
        let mut asked = 0;
        for _ in 0..2 {
            key.clear().push("refused");
            let found = cache.get_or_create(&key, |_| {
                asked += 1;
                None
            });
            assert_eq!(found, None);
        }
        assert_eq!(asked, 2, "a refused label set is asked for again");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_series_cache_starts_over_when_full() {
        let mut cache = SeriesCache::<usize>::default();
        let mut key = Key::default();
        for i in 0..MAX_CACHED_SERIES {
            key.clear().push(&i.to_string());
            cache.get_or_create(&key, |_| Some(i));
        }
        assert_eq!(cache.len(), MAX_CACHED_SERIES);
        key.clear().push("one more");
        assert_eq!(cache.get_or_create(&key, |_| Some(0)), Some(&0));
        assert_eq!(cache.len(), 1);
        key.clear().push("5");
        assert_eq!(cache.get_or_create(&key, |_| Some(55)), Some(&55));
    }

    /// Fails naming every expected sample line that `samples` lacks.
    fn assert_contains<S: AsRef<str>>(samples: &[String], expected: &[S]) {
        let missing: Vec<&str> = expected
            .iter()
            .map(AsRef::as_ref)
            .filter(|line| !samples.iter().any(|sample| sample == line))
            .collect();
        assert!(missing.is_empty(), "missing {missing:#?}\nin {samples:#?}");
    }

    struct Fixture {
        fluxbase: Arc<FluxbaseFamilies>,
        exporter: Arc<ExporterFamilies>,
        ingest: Ingest,
    }

    impl Fixture {
        fn new() -> Self {
            let limit = SeriesLimit::new(100);
            let fluxbase = Arc::new(FluxbaseFamilies::new(&limit, Instant::now()));
            let exporter = Arc::new(ExporterFamilies::new(&limit));
            let ingest = Ingest::new(Arc::clone(&fluxbase), Arc::clone(&exporter));
            Fixture {
                fluxbase,
                exporter,
                ingest,
            }
        }

        fn feed(&mut self, lines: &[&str]) {
            for line in lines {
                let event = parse_line(line.as_bytes()).expect("a valid event");
                self.ingest.count(&event, 0.0);
            }
        }

        fn samples(&self) -> Vec<String> {
            let mut out = Vec::new();
            let mut exposition = Exposition::new(&mut out);
            self.fluxbase.collect(&Scrape::now(), &mut exposition);
            self.exporter
                .events
                .collect(&Scrape::now(), &mut exposition);
            String::from_utf8(out)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#') && !l.contains("uptime") && !l.contains("_bucket{"))
                .map(str::to_owned)
                .collect()
        }
    }

    #[test]
    fn http_requests_feed_the_http_families_with_fluxbase_labels() {
        let mut fixture = Fixture::new();
        fixture.feed(&[
            r#"{"message":"HTTP request","method":"GET","path":"/api/v1/users/550e8400-e29b-41d4-a716-446655440000","status":404,"duration_ms":5,"response_bytes":100}"#,
            r#"{"message":"HTTP request","method":"GET","path":"/api/v1/users/00000000-0000-0000-0000-00000000000A","status":410,"duration_ms":15,"response_bytes":50}"#,
            r#"{"message":"HTTP request","method":"POST","path":"/api/v1/tables/t/records/12","status":201,"duration_ms":2.5}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/users/:id\",status=\"4xx\"} 2",
                "fluxbase_http_requests_total{method=\"POST\",path=\"/api/v1/tables/t/records/:id\",status=\"2xx\"} 1",
                "fluxbase_http_request_duration_seconds_sum{method=\"GET\",path=\"/api/v1/users/:id\",status=\"4xx\"} 0.02",
                "fluxbase_http_request_duration_seconds_count{method=\"POST\",path=\"/api/v1/tables/t/records/:id\",status=\"2xx\"} 1",
                "fluxbase_http_response_size_bytes_sum{method=\"GET\",path=\"/api/v1/users/:id\",status=\"4xx\"} 150",
                "fluxbase_http_response_size_bytes_count{method=\"POST\",path=\"/api/v1/tables/t/records/:id\",status=\"2xx\"} 0",
            ],
        );
    }

    #[test]
    fn storage_requests_feed_the_storage_families() {
        let mut fixture = Fixture::new();
        fixture.feed(&[
            r#"{"message":"HTTP request","method":"GET","path":"/api/v1/storage/docs/a.pdf","status":200,"duration_ms":40,"response_bytes":2048}"#,
            r#"{"message":"HTTP request","method":"GET","path":"/api/v1/storage/docs/b.pdf","status":404,"duration_ms":3,"response_bytes":30}"#,
            r#"{"message":"HTTP request","method":"POST","path":"/api/v1/storage/docs/c.pdf","status":500,"duration_ms":100,"response_bytes":10}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                "fluxbase_storage_operations_total{operation=\"download\",bucket=\"docs\",status=\"success\"} 1",
                "fluxbase_storage_operations_total{operation=\"download\",bucket=\"docs\",status=\"error\"} 1",
                "fluxbase_storage_operations_total{operation=\"upload\",bucket=\"docs\",status=\"error\"} 1",
                // The 404's 30 bytes were an error body, not a retrieval.
                "fluxbase_storage_bytes_total{operation=\"download\",bucket=\"docs\"} 2048",
                "fluxbase_storage_operation_duration_seconds_count{operation=\"download\",bucket=\"docs\"} 2",
            ],
        );
        assert!(
            !samples
                .iter()
                .any(|s| s.starts_with("fluxbase_storage_bytes_total{operation=\"upload\"")),
            "upload sizes are not logged"
        );
    }

    #[test]
    fn security_events_feed_the_auth_families() {
        let mut fixture = Fixture::new();
        fixture.feed(&[
            r#"{"message":"Security event","event_type":"login_success"}"#,
            r#"{"message":"Security event","event_type":"login_success","details":{"sso":true}}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"invalid_password"}}"#,
            r#"{"message":"Security warning","event_type":"login_failed","details":{"reason":"account_locked"}}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"no_such_reason"}}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"failed_to_send_verification_email"}}"#,
            r#"{"message":"Security event","event_type":"token_refresh"}"#,
            r#"{"message":"Security warning","event_type":"account_locked"}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                "fluxbase_auth_attempts_total{method=\"password\",result=\"failure\"} 3",
                "fluxbase_auth_attempts_total{method=\"password\",result=\"success\"} 1",
                "fluxbase_auth_attempts_total{method=\"sso\",result=\"success\"} 1",
                "fluxbase_auth_success_total{method=\"password\"} 1",
                "fluxbase_auth_failure_total{method=\"password\",reason=\"account_locked\"} 1",
                "fluxbase_auth_failure_total{method=\"password\",reason=\"invalid_password\"} 1",
                "fluxbase_auth_failure_total{method=\"password\",reason=\"other\"} 1",
            ],
        );
    }

    /// Regression: the 5th wrong password in a row is logged as `account_locked`, not
    /// `login_failed`, and was not counted; Fluxbase counts it as `invalid_password`.
    #[test]
    fn five_wrong_passwords_are_five_failures() {
        let mut fixture = Fixture::new();
        for attempt in 1..=4 {
            let line = format!(
                r#"{{"message":"Security event","event_type":"login_failed","details":{{"reason":"invalid_password","failed_attempts":{attempt}}}}}"#
            );
            fixture.feed(&[&line]);
        }
        fixture.feed(&[
            r#"{"message":"Security warning","event_type":"account_locked","details":{"failed_attempts":5}}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                "fluxbase_auth_attempts_total{method=\"password\",result=\"failure\"} 5",
                "fluxbase_auth_failure_total{method=\"password\",reason=\"invalid_password\"} 5",
            ],
        );
    }

    /// Regression: `token_refresh` is never emitted; Fluxbase counts an access and a refresh
    /// token at each password sign-in.
    #[test]
    fn a_password_sign_in_issues_an_access_and_a_refresh_token() {
        let mut fixture = Fixture::new();
        fixture.feed(&[
            r#"{"message":"Security event","event_type":"login_success"}"#,
            r#"{"message":"Security event","event_type":"login_success"}"#,
            r#"{"message":"Security event","event_type":"token_refresh"}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                "fluxbase_auth_tokens_issued_total{token_type=\"access\"} 2",
                "fluxbase_auth_tokens_issued_total{token_type=\"refresh\"} 2",
            ],
        );
    }

    /// Regression: dashboard sign-ins and `tenant_mismatch` were counted; Fluxbase counts
    /// neither.
    #[test]
    fn dashboard_sign_ins_and_tenant_mismatches_are_not_counted() {
        let mut fixture = Fixture::new();
        fixture.feed(&[
            r#"{"message":"Security event","event_type":"login_success","details":{"dashboard":true}}"#,
            r#"{"message":"Security event","event_type":"login_success","details":{"dashboard":true,"sso":true}}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"invalid_password","dashboard":true}}"#,
            r#"{"message":"Security warning","event_type":"login_failed","details":{"reason":"account_locked","dashboard":true,"sso":true}}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"tenant_mismatch","user_tenant_id":"t1","request_tenant":"t2"}}"#,
        ]);
        let samples = fixture.samples();
        assert!(
            !samples.iter().any(|s| s.starts_with("fluxbase_auth_")),
            "{samples:#?}"
        );
    }

    #[test]
    fn a_429_and_its_rate_limit_event_count_once_in_either_order() {
        let mut fixture = Fixture::new();
        let ip = "203.0.113.7";
        let hash = labels::rate_limit_identifier(ip);
        fixture.feed(&[
            // Same request, event first then the 429.
            &format!(r#"{{"time":100,"message":"Security warning","event_type":"rate_limit_exceeded","ip_address":"{ip}"}}"#),
            &format!(r#"{{"time":100,"message":"HTTP request","method":"POST","path":"/api/v1/auth/2fa/verify","status":429,"ip":"{ip}"}}"#),
            // Same request, 429 first.
            &format!(r#"{{"time":200,"message":"HTTP request","method":"POST","path":"/api/v1/auth/2fa/verify","status":429,"ip":"{ip}"}}"#),
            r#"{"time":201,"message":"Security warning","event_type":"rate_limit_exceeded"}"#,
            // Far apart: two hits.
            &format!(r#"{{"time":300,"message":"HTTP request","method":"POST","path":"/api/v1/auth/2fa/verify","status":429,"ip":"{ip}"}}"#),
            &format!(r#"{{"time":400,"message":"Security warning","event_type":"rate_limit_exceeded","ip_address":"{ip}"}}"#),
            // Other limiters.
            &format!(r#"{{"time":500,"message":"HTTP request","method":"POST","path":"/api/v1/auth/signin","status":429,"ip":"{ip}"}}"#),
            r#"{"time":500,"message":"HTTP request","method":"GET","path":"/api/v1/tables/x","status":429}"#,
        ]);
        let samples = fixture.samples();
        assert_contains(
            &samples,
            &[
                format!(
                    "fluxbase_rate_limit_hits_total{{limiter_type=\"auth_2fa\",identifier=\"{hash}\"}} 4"
                ),
                format!(
                    "fluxbase_rate_limit_hits_total{{limiter_type=\"auth_login\",identifier=\"{hash}\"}} 1"
                ),
                "fluxbase_rate_limit_hits_total{limiter_type=\"global\",identifier=\"unknown\"} 1"
                    .to_owned(),
            ],
        );
        assert!(
            !samples.iter().any(|s| s.contains(ip)),
            "the raw IP never becomes a label"
        );
    }

    #[test]
    fn slow_queries_feed_the_exporter_counter() {
        let mut fixture = Fixture::new();
        fixture.feed(&[r#"{"message":"Slow query detected","operation":"select","table":"users","duration_ms":1500}"#]);
        assert!(
            fixture.samples().contains(
                &"fluxbase_exporter_slow_queries_total{operation=\"select\",table=\"users\"} 1"
                    .to_owned()
            )
        );
    }

    #[test]
    fn exploding_paths_stay_under_the_cardinality_guard() {
        let limit = SeriesLimit::new(10);
        let fluxbase = Arc::new(FluxbaseFamilies::new(&limit, Instant::now()));
        let exporter = Arc::new(ExporterFamilies::new(&limit));
        let mut ingest = Ingest::new(Arc::clone(&fluxbase), exporter);
        for i in 0..1000 {
            let line = format!(
                r#"{{"message":"HTTP request","method":"GET","path":"/api/v1/tables/t{i}x","status":200}}"#
            );
            ingest.count(&parse_line(line.as_bytes()).unwrap(), 0.0);
        }
        assert_eq!(fluxbase.http_requests_total.len(), 10);
        assert_eq!(fluxbase.http_requests_total.dropped(), 990);
    }

    #[test]
    fn with_fluxbases_endpoint_only_storage_operations_and_slow_queries_are_counted() {
        let limit = SeriesLimit::new(100);
        let upstream = crate::upstream::Upstream::new(
            "http://127.0.0.1:9090/metrics".to_owned(),
            std::time::Duration::from_secs(15),
            std::time::Duration::from_secs(5),
        );
        let fluxbase = Arc::new(FluxbaseFamilies::with_upstream(
            &limit,
            Instant::now(),
            Some(upstream),
        ));
        let exporter = Arc::new(ExporterFamilies::new(&limit));
        let mut ingest = Ingest::new(Arc::clone(&fluxbase), Arc::clone(&exporter));
        for line in [
            r#"{"message":"HTTP request","method":"GET","path":"/api/v1/storage/avatars/a.png","status":200,"duration_ms":5,"response_bytes":100}"#,
            r#"{"message":"HTTP request","method":"POST","path":"/api/v1/auth/signin","status":429,"ip":"10.0.0.1"}"#,
            r#"{"message":"Security event","event_type":"login_success"}"#,
            r#"{"message":"Security event","event_type":"login_failed","details":{"reason":"invalid_password"}}"#,
            r#"{"message":"Security event","event_type":"rate_limit_exceeded","ip_address":"10.0.0.2"}"#,
            r#"{"message":"Security event","event_type":"token_refresh"}"#,
            r#"{"message":"Slow query detected","duration_ms":1500,"operation":"select","table":"users"}"#,
        ] {
            let event = parse_line(line.as_bytes()).expect("a valid event");
            ingest.count(&event, 0.0);
        }
        assert_eq!(fluxbase.http_requests_total.len(), 0);
        assert_eq!(fluxbase.http_request_duration_seconds.len(), 0);
        assert_eq!(fluxbase.http_response_size_bytes.len(), 0);
        assert_eq!(fluxbase.rate_limit_hits_total.len(), 0);
        assert_eq!(fluxbase.auth_attempts_total.len(), 0);
        assert_eq!(fluxbase.auth_success_total.len(), 0);
        assert_eq!(fluxbase.auth_failure_total.len(), 0);
        assert_eq!(fluxbase.auth_tokens_issued_total.len(), 0);
        assert_eq!(fluxbase.storage_operations_total.len(), 1);
        assert_eq!(fluxbase.storage_bytes_total.len(), 1);
        assert_eq!(exporter.events.slow_queries_total.len(), 1);
    }
}
