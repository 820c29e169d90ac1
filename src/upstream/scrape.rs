//! The worker that reads Fluxbase's own metrics endpoint every check interval, and what it
//! makes of a read: the passed-through families pre-rendered, and the runtime figures of the
//! JSON body.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::merge::{self, Origin};
use super::parse::{self, ParsedFamily, Type};
use super::{CHECK, Reading, Runtime, Upstream, UpstreamStatus};
use crate::catalog::{self, Kind};
use crate::families::ExporterFamilies;
use crate::metrics::SeriesLimit;
use crate::workers::Worker;

/// The largest body read, after decompression: 16 MiB. Fluxbase's exposition is a few hundred
/// KiB even with thousands of series; a larger one is refused, not read further.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Why a read of the endpoint failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// Nothing listens there.
    Refused(String),
    /// No whole answer within the check timeout (a black hole, or a slow body).
    Timeout,
    /// The host name does not resolve.
    HostNotFound,
    /// An answer other than 200.
    Status(u16),
    /// More than [`MAX_BODY_BYTES`] after decompression.
    TooLarge,
    /// The body ended early or its encoding is broken (cut chunked body, truncated gzip).
    Truncated(String),
    /// The connection or the HTTP exchange failed otherwise.
    Transport(String),
    /// The body is not the text format.
    Garbage(parse::ParseError),
    /// A family of the merge table has another type than in our catalogue.
    TypeClash {
        family: String,
        served: Type,
        expected: Kind,
    },
    /// A passed-through family has more series than `--metrics.max-series`.
    TooManySeries { family: String, series: usize },
}

impl UpstreamError {
    /// A fixed word for logs and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Refused(_) => "refused",
            UpstreamError::Timeout => "timeout",
            UpstreamError::HostNotFound => "host_not_found",
            UpstreamError::Status(_) => "http_status",
            UpstreamError::TooLarge => "too_large",
            UpstreamError::Truncated(_) => "truncated",
            UpstreamError::Transport(_) => "transport",
            UpstreamError::Garbage(_) => "garbage",
            UpstreamError::TypeClash { .. } => "type_clash",
            UpstreamError::TooManySeries { .. } => "too_many_series",
        }
    }

    fn from_ureq(err: ureq::Error) -> Self {
        match err {
            ureq::Error::Timeout(_) => UpstreamError::Timeout,
            ureq::Error::HostNotFound => UpstreamError::HostNotFound,
            ureq::Error::BodyExceedsLimit(_) => UpstreamError::TooLarge,
            ureq::Error::StatusCode(code) => UpstreamError::Status(code),
            ureq::Error::ConnectionFailed => UpstreamError::Refused("connection failed".to_owned()),
            ureq::Error::Io(err) => match err.kind() {
                io::ErrorKind::ConnectionRefused => UpstreamError::Refused(err.to_string()),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => UpstreamError::Timeout,
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
                    UpstreamError::Truncated(err.to_string())
                }
                _ => UpstreamError::Transport(err.to_string()),
            },
            ureq::Error::Protocol(err) => UpstreamError::Truncated(err.to_string()),
            ureq::Error::Decompress(_, err) => UpstreamError::Truncated(err.to_string()),
            other => UpstreamError::Transport(other.to_string()),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Refused(detail) => write!(f, "connection refused ({detail})"),
            UpstreamError::Timeout => f.write_str("no whole answer within the check timeout"),
            UpstreamError::HostNotFound => f.write_str("the host name does not resolve"),
            UpstreamError::Status(code) => write!(f, "answered HTTP {code}"),
            UpstreamError::TooLarge => write!(
                f,
                "the exposition is larger than {} MiB",
                MAX_BODY_BYTES / 1024 / 1024
            ),
            UpstreamError::Truncated(detail) => write!(f, "the body was cut short ({detail})"),
            UpstreamError::Transport(detail) => write!(f, "request failed: {detail}"),
            UpstreamError::Garbage(err) => write!(f, "not the Prometheus text format: {err}"),
            UpstreamError::TypeClash {
                family,
                served,
                expected,
            } => write!(
                f,
                "{family} is served as a {} but is a {} in the catalogue",
                served.as_str(),
                expected.as_str()
            ),
            UpstreamError::TooManySeries { family, series } => write!(
                f,
                "{family} has {series} series, more than --metrics.max-series allows"
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Reads the endpoint every check interval and publishes what it found.
pub struct UpstreamWorker {
    agent: ureq::Agent,
    upstream: Arc<Upstream>,
    interval: Duration,
    limit: Arc<SeriesLimit>,
    exporter: Arc<ExporterFamilies>,
    /// The reason of the latest failure, to log a change once instead of every round.
    last_reason: Option<&'static str>,
    /// `go_gc_duration_seconds` `_count` and `_sum` at the previous good read.
    gc_totals: Option<(f64, f64)>,
}

impl UpstreamWorker {
    pub fn new(
        upstream: Arc<Upstream>,
        interval: Duration,
        timeout: Duration,
        limit: Arc<SeriesLimit>,
        exporter: Arc<ExporterFamilies>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            // The whole exchange, body included, within the check timeout.
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("fluxbase-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        UpstreamWorker {
            agent,
            upstream,
            interval,
            limit,
            exporter,
            last_reason: None,
            gc_totals: None,
        }
    }

    /// One GET of the endpoint (gzip asked for; ureq adds `Accept-Encoding: gzip` and decodes
    /// it, chunked or not), the body capped at [`MAX_BODY_BYTES`] after decoding.
    fn fetch(&self) -> Result<Vec<u8>, UpstreamError> {
        let mut response = self
            .agent
            .get(&self.upstream.url)
            .header("Accept", "text/plain;version=0.0.4")
            .call()
            .map_err(UpstreamError::from_ureq)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(UpstreamError::Status(status));
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(UpstreamError::from_ureq)
    }
}

impl Worker for UpstreamWorker {
    fn name(&self) -> &'static str {
        "upstream"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn run_once(&mut self, _now: Instant) {
        let started = Instant::now();
        let outcome = self.fetch().and_then(|body| {
            let families = parse::parse(&body).map_err(UpstreamError::Garbage)?;
            digest(&families, &self.limit, self.gc_totals)
        });
        let took = started.elapsed();
        self.exporter
            .checks
            .record(CHECK, outcome.is_ok(), took, SystemTime::now());
        match outcome {
            Ok(mut reading) => {
                if self.last_reason.take().is_some() {
                    log::info!(url = self.upstream.url.as_str(); "Fluxbase's metrics endpoint answers again");
                }
                self.gc_totals = reading.runtime.gc_totals;
                reading.read_at = Some(Instant::now());
                self.upstream.latest.publish(UpstreamStatus {
                    reading: Some(reading),
                    error: None,
                });
            }
            Err(err) => {
                if self.last_reason != Some(err.reason()) {
                    log::warn!(url = self.upstream.url.as_str(), reason = err.reason(), error:% = err; "cannot read Fluxbase's metrics endpoint");
                }
                self.last_reason = Some(err.reason());
                // Its families show HELP and TYPE only until the next good read.
                self.upstream.latest.publish(UpstreamStatus {
                    reading: None,
                    error: Some(err.to_string()),
                });
            }
        }
    }
}

/// What a parsed exposition gives: the passed-through families' samples, pre-rendered, and
/// the runtime figures. `previous_gc` is the GC totals of the previous good read.
///
/// Refuses an exposition in which a family of the merge table has another type than in our
/// catalogue, or a passed-through family has more series than the cardinality guard allows
/// (the refused series are counted in `fluxbase_exporter_series_dropped_total`).
pub fn digest(
    families: &[ParsedFamily],
    limit: &SeriesLimit,
    previous_gc: Option<(f64, f64)>,
) -> Result<Reading, UpstreamError> {
    let mut samples: Vec<Box<[u8]>> = vec![Box::default(); merge::TABLE.len()];
    let mut runtime = Runtime::default();
    let mut gc: (Option<f64>, Option<f64>) = (None, None);
    for family in families {
        if let Some((index, row)) = merge::row(&family.name) {
            if !type_matches(family.kind, row.family.kind) {
                return Err(UpstreamError::TypeClash {
                    family: family.name.clone(),
                    served: family.kind,
                    expected: row.family.kind,
                });
            }
            match row.with_upstream {
                Origin::PassThrough => {
                    let series = series_count(family);
                    if series > limit.max_series() {
                        limit.refuse(row.family.name, (series - limit.max_series()) as u64);
                        return Err(UpstreamError::TooManySeries {
                            family: family.name.clone(),
                            series,
                        });
                    }
                    let mut lines = Vec::with_capacity(family.samples.len() * 64);
                    for sample in &family.samples {
                        super::write_sample(&mut lines, sample);
                    }
                    samples[index] = lines.into_boxed_slice();
                    let value = single_value(family);
                    if family.name == catalog::REALTIME_CONNECTIONS.name {
                        runtime.realtime_connections = value.map(whole);
                    } else if family.name == catalog::REALTIME_CHANNELS.name {
                        runtime.realtime_channels = value.map(whole);
                    } else if family.name == catalog::REALTIME_SUBSCRIPTIONS.name {
                        runtime.realtime_subscriptions = value.map(whole);
                    }
                }
                Origin::Own | Origin::UpstreamUptime => {}
            }
            continue;
        }
        let name = family.name.as_str();
        if name == catalog::PROCESS_START_TIME_SECONDS.name {
            if !type_matches(family.kind, Kind::Gauge) {
                return Err(UpstreamError::TypeClash {
                    family: family.name.clone(),
                    served: family.kind,
                    expected: Kind::Gauge,
                });
            }
            runtime.start_time_seconds = single_value(family).filter(|v| v.is_finite());
        } else if name == catalog::UPSTREAM_GO_INFO {
            runtime.go_version = family
                .samples
                .first()
                .and_then(|sample| sample.label("version"))
                .map(str::to_owned);
        } else if name == catalog::UPSTREAM_GO_GOROUTINES {
            runtime.goroutines = single_value(family).map(whole);
        } else if name == catalog::UPSTREAM_GO_MEMSTATS_ALLOC_BYTES {
            runtime.alloc_bytes = single_value(family).map(whole);
        } else if name == catalog::UPSTREAM_GO_MEMSTATS_ALLOC_BYTES_TOTAL {
            runtime.total_alloc_bytes = single_value(family).map(whole);
        } else if name == catalog::UPSTREAM_GO_MEMSTATS_SYS_BYTES {
            runtime.sys_bytes = single_value(family).map(whole);
        } else if name == catalog::UPSTREAM_GO_GC_DURATION_SECONDS && family.kind == Type::Summary {
            for sample in &family.samples {
                match &sample.name[name.len()..] {
                    "_count" => gc.0 = Some(sample.value),
                    "_sum" => gc.1 = Some(sample.value),
                    _ => {}
                }
            }
        }
    }
    if let (Some(count), Some(sum)) = gc {
        runtime.num_gc = Some(whole(count));
        runtime.gc_totals = Some((count, sum));
        runtime.gc_pause_ms = gc_pause_ms((count, sum), previous_gc);
    }
    Ok(Reading {
        read_at: None,
        samples,
        runtime,
    })
}

/// The mean pause of the collections since the previous read, in milliseconds; the lifetime
/// mean when none ran since (or after a restart); `None` before the first collection.
///
/// Fluxbase's own JSON shows the single latest pause (`PauseNs` of the last cycle), which its
/// metrics do not carry; this is the closest figure they allow.
fn gc_pause_ms(now: (f64, f64), previous: Option<(f64, f64)>) -> Option<f64> {
    let (count, sum) = now;
    if let Some((previous_count, previous_sum)) = previous
        && count > previous_count
        && sum >= previous_sum
    {
        return Some((sum - previous_sum) / (count - previous_count) * 1000.0);
    }
    (count > 0.0).then(|| sum / count * 1000.0)
}

/// Whether a served type fits the catalogue's.
fn type_matches(served: Type, expected: Kind) -> bool {
    matches!(
        (served, expected),
        (Type::Counter, Kind::Counter)
            | (Type::Gauge, Kind::Gauge)
            | (Type::Histogram, Kind::Histogram)
    )
}

/// The number of series of a family: label sets, not sample lines (a histogram's buckets,
/// `_sum` and `_count` are one series).
fn series_count(family: &ParsedFamily) -> usize {
    match family.kind {
        Type::Histogram | Type::Summary => {
            let count = format!("{}_count", family.name);
            family
                .samples
                .iter()
                .filter(|sample| sample.name == count)
                .count()
        }
        _ => family.samples.len(),
    }
}

/// The value of an unlabelled family's one sample.
fn single_value(family: &ParsedFamily) -> Option<f64> {
    match family.samples.as_slice() {
        [sample] if sample.labels.is_empty() => Some(sample.value),
        _ => None,
    }
}

/// A count or byte figure as a whole number (negative and NaN as 0, as Go's conversion of a
/// float would not be relied on).
fn whole(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::FluxbaseFamilies;
    use crate::metrics::{Collector, Exposition, Scrape};
    use crate::upstream::UpstreamStatus;
    use std::time::UNIX_EPOCH;

    const FLUXBASE: &str = include_str!("../../tests/fixtures/fluxbase-metrics.prom");

    fn digest_text(text: &str, max_series: usize) -> Result<Reading, UpstreamError> {
        let families = parse::parse(text.as_bytes()).map_err(UpstreamError::Garbage)?;
        digest(&families, &SeriesLimit::new(max_series), None)
    }

    /// Renders the Fluxbase families with `reading` published `age` before the scrape.
    fn render(reading: Option<Reading>, age: Duration) -> String {
        let upstream = Upstream::new(
            "http://127.0.0.1:9090/metrics".to_owned(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        );
        let scrape = Scrape {
            instant: Instant::now() + Duration::from_secs(60),
            wall: UNIX_EPOCH + Duration::from_secs(1_764_690_100),
        };
        upstream.latest.publish(UpstreamStatus {
            reading: reading.map(|mut reading| {
                reading.read_at = Some(scrape.instant - age);
                reading
            }),
            error: None,
        });
        let families =
            FluxbaseFamilies::with_upstream(&SeriesLimit::new(100), Instant::now(), Some(upstream));
        families.http_requests_total.inc(&["GET", "/x", "2xx"]);
        families.db_queries_total.inc(&["select", "users"]);
        let mut out = Vec::new();
        families.collect(&scrape, &mut Exposition::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    fn samples_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| !line.starts_with('#') && line.starts_with(family))
            .collect()
    }

    /// Digests `input` and renders the rows of `names` from it, as a scrape 100 s after the
    /// upstream's process started; compares the whole text with `expected`.
    #[track_caller]
    fn check(input: &str, names: &[&str], expected: &str) {
        let upstream = Upstream::new(
            "http://127.0.0.1:9090/metrics".to_owned(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        );
        let scrape = Scrape {
            instant: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_millis(1_764_690_100_250),
        };
        let mut reading = digest_text(input, 100).unwrap_or_else(|err| panic!("{err}"));
        reading.read_at = Some(scrape.instant);
        upstream.latest.publish(UpstreamStatus {
            reading: Some(reading),
            error: None,
        });
        let status = upstream.fresh(scrape.instant);
        let mut out = Vec::new();
        let mut exposition = Exposition::new(&mut out);
        for name in names {
            let (index, _) = merge::row(name).unwrap();
            upstream.render(index, status.as_deref(), &scrape, &mut exposition);
        }
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn golden_passed_through_samples_keep_labels_and_values_with_our_headers() {
        let in_flight = catalog::HTTP_REQUESTS_IN_FLIGHT.name;
        let messages = catalog::REALTIME_MESSAGES_TOTAL.name;
        let uptime = catalog::SYSTEM_UPTIME_SECONDS.name;
        check(
            &format!(
                "# HELP {messages} Fluxbase's own words\n# TYPE {messages} counter\n\
                 {messages}{{channel_type=\"a\\\"b\\\\c\\nd\"}} 1.5e+06\n\
                 {messages}{{channel_type=\"broadcast\"}} 0\n\
                 # TYPE {in_flight} gauge\n{in_flight} 3\n\
                 # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.76469e+09\n"
            ),
            &[in_flight, messages, uptime],
            &format!(
                "# HELP {in_flight} {}\n# TYPE {in_flight} gauge\n{in_flight} 3\n\
                 # HELP {messages} {}\n# TYPE {messages} counter\n\
                 {messages}{{channel_type=\"a\\\"b\\\\c\\nd\"}} 1500000\n\
                 {messages}{{channel_type=\"broadcast\"}} 0\n\
                 # HELP {uptime} {}\n# TYPE {uptime} gauge\n{uptime} 100.25\n",
                merge::TABLE[4].help,
                merge::TABLE[13].help,
                merge::TABLE[23].help,
            ),
        );
    }

    #[test]
    fn golden_a_family_fluxbase_never_touched_is_help_and_type_only() {
        // The Go client does not print a vector with no children.
        let messages = catalog::REALTIME_MESSAGES_TOTAL.name;
        check(
            "",
            &[messages],
            &format!(
                "# HELP {messages} {}\n# TYPE {messages} counter\n",
                merge::TABLE[13].help
            ),
        );
    }

    #[test]
    fn passed_through_families_are_fluxbases_unchanged_and_ours_stay_ours() {
        let text = render(Some(digest_text(FLUXBASE, 100).unwrap()), Duration::ZERO);
        assert_eq!(
            samples_of(&text, catalog::HTTP_REQUESTS_TOTAL.name),
            [
                "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/:table\",status=\"2xx\"} 2000",
                "fluxbase_http_requests_total{method=\"POST\",path=\"/api/v1/auth/signin\",status=\"4xx\"} 4",
            ]
        );
        assert_eq!(
            samples_of(&text, catalog::HTTP_REQUESTS_IN_FLIGHT.name),
            ["fluxbase_http_requests_in_flight 3"]
        );
        assert!(text.contains(
            "fluxbase_http_response_size_bytes_bucket{method=\"GET\",path=\"/api/v1/tables/:table\",status=\"2xx\",le=\"1e+06\"} 2000\n"
        ));
        assert!(text.contains("fluxbase_http_response_size_bytes_sum{method=\"GET\",path=\"/api/v1/tables/:table\",status=\"2xx\"} 4193300\n"));
        assert_eq!(
            samples_of(&text, catalog::REALTIME_CONNECTIONS.name),
            ["fluxbase_realtime_connections 7"]
        );
        // Ours: the database families, not Fluxbase's zeros.
        assert_eq!(
            samples_of(&text, catalog::DB_QUERIES_TOTAL.name),
            ["fluxbase_db_queries_total{operation=\"select\",table=\"users\"} 1"]
        );
        assert!(samples_of(&text, catalog::DB_CONNECTIONS.name).is_empty());
        assert!(samples_of(&text, catalog::STORAGE_OPERATIONS_TOTAL.name).is_empty());
        // Fluxbase's uptime, exact at scrape time.
        assert_eq!(
            samples_of(&text, catalog::SYSTEM_UPTIME_SECONDS.name),
            ["fluxbase_system_uptime_seconds 100"]
        );
        // Nothing else of Fluxbase's.
        assert!(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .all(|line| line.starts_with("fluxbase_")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "# HELP fluxbase_http_requests_total {}\n# TYPE fluxbase_http_requests_total counter\n",
            merge::TABLE[0].help
        )));
    }

    #[test]
    fn a_failed_or_stale_upstream_shows_help_and_type_only() {
        for text in [
            render(None, Duration::ZERO),
            render(
                Some(digest_text(FLUXBASE, 100).unwrap()),
                Duration::from_secs(21),
            ),
        ] {
            for row in merge::TABLE
                .iter()
                .filter(|row| row.with_upstream != Origin::Own)
            {
                assert!(
                    samples_of(&text, row.family.name).is_empty(),
                    "{}",
                    row.family.name
                );
                assert!(text.contains(&format!("# TYPE {} ", row.family.name)));
            }
            // Even what the event sources fed is not shown: the family is Fluxbase's now.
            assert!(!text.contains("path=\"/x\""));
        }
        // Exactly one interval plus the timeout old is still shown.
        let text = render(
            Some(digest_text(FLUXBASE, 100).unwrap()),
            Duration::from_secs(20),
        );
        assert_eq!(
            samples_of(&text, catalog::HTTP_REQUESTS_IN_FLIGHT.name).len(),
            1
        );
    }

    #[test]
    fn runtime_figures_come_from_go_and_process_families() {
        let reading = digest_text(FLUXBASE, 100).unwrap();
        assert_eq!(
            reading.runtime,
            Runtime {
                start_time_seconds: Some(1_764_690_000.0),
                go_version: Some("go1.24.4".to_owned()),
                goroutines: Some(87),
                alloc_bytes: Some(24_593_184),
                total_alloc_bytes: Some(9_876_543_216),
                sys_bytes: Some(54_870_296),
                num_gc: Some(410),
                gc_pause_ms: Some(0.0246 / 410.0 * 1000.0),
                gc_totals: Some((410.0, 0.0246)),
                realtime_connections: Some(7),
                realtime_channels: Some(3),
                realtime_subscriptions: Some(11),
            }
        );
    }

    #[test]
    fn gc_pause_is_the_mean_since_the_previous_read() {
        assert_eq!(gc_pause_ms((12.0, 0.006), Some((10.0, 0.002))), Some(2.0));
        // No collection since: the lifetime mean.
        assert_eq!(gc_pause_ms((10.0, 0.002), Some((10.0, 0.002))), Some(0.2));
        // Fluxbase restarted (fewer collections than before): the lifetime mean.
        assert_eq!(gc_pause_ms((2.0, 0.002), Some((10.0, 0.002))), Some(1.0));
        assert_eq!(gc_pause_ms((0.0, 0.0), None), None);
    }

    #[test]
    fn a_type_clash_with_the_catalogue_fails_the_read() {
        let err = digest_text(
            "# TYPE fluxbase_http_requests_total gauge\nfluxbase_http_requests_total 1\n",
            100,
        )
        .err()
        .unwrap();
        assert_eq!(err.reason(), "type_clash");
        assert_eq!(
            err.to_string(),
            "fluxbase_http_requests_total is served as a gauge but is a counter in the catalogue"
        );
        // Untyped is a clash too; a family we measure ourselves is checked as well.
        assert_eq!(
            digest_text("fluxbase_realtime_channels 1\n", 100)
                .err()
                .unwrap()
                .reason(),
            "type_clash"
        );
        assert_eq!(
            digest_text(
                "# TYPE fluxbase_db_connections counter\nfluxbase_db_connections 1\n",
                100
            )
            .err()
            .unwrap()
            .reason(),
            "type_clash"
        );
    }

    #[test]
    fn too_many_series_fails_the_read_through_the_cardinality_guard() {
        let limit = SeriesLimit::new(1);
        let families = parse::parse(FLUXBASE.as_bytes()).unwrap();
        let err = digest(&families, &limit, None).err().unwrap();
        assert_eq!(err.reason(), "too_many_series");
        let mut out = Vec::new();
        limit.collect(&Scrape::now(), &mut Exposition::new(&mut out));
        assert!(String::from_utf8(out).unwrap().contains(
            "fluxbase_exporter_series_dropped_total{family=\"fluxbase_auth_attempts_total\"} 1\n"
        ));
        // Histogram series are label sets: 2 of the duration histogram pass a limit of 2.
        assert!(digest_text(FLUXBASE, 2).is_ok());
    }
}
