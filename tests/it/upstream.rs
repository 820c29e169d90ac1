//! Fluxbase's own metrics endpoint as upstream: a stand-in serving Fluxbase's recorded
//! exposition, a real Go handler (node_exporter), and a real Prometheus reading the merge.

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fluxbase_exporter::upstream::merge::{self, Origin};

use crate::harness::{
    DEADLINE, Exporter, TempDir, assert_mostly_within, metric, samples, wait_for,
};
use crate::standin::{Behaviour, FLUXBASE, StandIn};

/// The pace of these tests: a read every 500 ms, each bounded by 300 ms.
const INTERVAL: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_millis(300);

fn start(upstream: &str, extra: &[&str]) -> Exporter {
    let mut args = vec![
        "--fluxbase.metrics-url",
        upstream,
        "--check.interval",
        "500ms",
        "--check.timeout",
        "300ms",
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

/// The sample lines of the families the merge table passes through.
fn passed_through(text: &str) -> Vec<String> {
    samples(text)
        .into_iter()
        .filter(|line| {
            merge::TABLE.iter().any(|row| {
                row.with_upstream == Origin::PassThrough && family_of(line) == row.family.name
            })
        })
        .map(str::to_owned)
        .collect()
}

/// The family a sample line belongs to (histogram suffixes removed).
fn family_of(line: &str) -> &str {
    let name = line.split(['{', ' ']).next().unwrap_or_default();
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(family) = name.strip_suffix(suffix)
            && merge::row(family).is_some()
        {
            return family;
        }
    }
    name
}

/// `series value` pairs with the value parsed, so Go's `4.1933e+06` equals our `4193300`.
fn as_values(lines: &[String]) -> Vec<(String, f64)> {
    let mut values: Vec<(String, f64)> = lines
        .iter()
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    values
}

fn fluxbase_passed_through() -> Vec<(String, f64)> {
    as_values(&passed_through(FLUXBASE))
}

fn check_success(text: &str) -> Option<f64> {
    metric(
        text,
        "fluxbase_exporter_check_success{check=\"fluxbase_metrics\"}",
    )
}

fn wait_for_merge(exporter: &Exporter) -> String {
    wait_for(exporter, "/metrics", "Fluxbase's families", |response| {
        !passed_through(&response.text()).is_empty()
    })
    .text()
}

#[test]
fn fluxbases_families_pass_through_unchanged_and_the_rest_stay_ours() {
    let standin = StandIn::start(FLUXBASE);
    let exporter = start(&standin.url(), &[]);
    let text = wait_for_merge(&exporter);

    assert_eq!(as_values(&passed_through(&text)), fluxbase_passed_through());
    assert_eq!(fluxbase_passed_through().len(), 68);
    // Read with gzip, chunked, as Go serves it.
    let (requests, gzipped) = standin.requests();
    assert!(requests >= 1 && gzipped == requests, "{requests} {gzipped}");
    assert_eq!(check_success(&text), Some(1.0));
    // Fluxbase's zeros for the families we measure better are not shown, nor its stepped
    // uptime, nor its go_*, process_* or promhttp_* families.
    for line in samples(&text) {
        assert!(
            !line.starts_with("fluxbase_db_connections")
                && !line.starts_with("fluxbase_storage_operations_total")
                && !line.starts_with("go_")
                && !line.starts_with("promhttp_"),
            "{line}"
        );
    }
    let start_time = metric(&text, "process_start_time_seconds").unwrap();
    assert!(
        start_time > 1.77e9,
        "the exporter's own process: {start_time}"
    );
    // Fluxbase's uptime, from its process_start_time_seconds, exact at scrape time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let uptime = metric(&text, "fluxbase_system_uptime_seconds").unwrap();
    assert!(
        (uptime - (now - 1.76469e9)).abs() < 5.0,
        "uptime {uptime} at {now}"
    );
    // HELP and TYPE appear once per family: the exposition passes promtool.
    crate::promtool::check_metrics(text.as_bytes());

    // The JSON describes Fluxbase.
    drop(exporter);
    let exporter = Exporter::start_with_env(
        &[
            "--fluxbase.metrics-url",
            &standin.url(),
            "--check.interval",
            "500ms",
        ],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "upstream-token")],
    );
    let auth = [("Authorization", "Bearer upstream-token")];
    let deadline = Instant::now() + DEADLINE;
    let body = loop {
        let body = exporter
            .get_with("/api/v1/monitoring/metrics", &auth)
            .json();
        if body["go_version"].is_string() {
            break body;
        }
        assert!(Instant::now() < deadline, "no Go runtime keys: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(body["go_version"], "go1.24.4");
    assert_eq!(body["num_goroutines"], 87);
    assert_eq!(body["memory_alloc_mb"], 23);
    assert_eq!(body["memory_total_alloc_mb"], 9419);
    assert_eq!(body["memory_sys_mb"], 52);
    assert_eq!(body["num_gc"], 410);
    assert_eq!(body["gc_pause_ms"], 0.06);
    let uptime = body["uptime_seconds"].as_u64().unwrap() as f64;
    assert!((uptime - (now - 1.76469e9)).abs() < 30.0, "{uptime}");
    assert_eq!(body["realtime"]["total_connections"], 7);
    assert_eq!(body["realtime"]["active_channels"], 3);
    assert_eq!(body["realtime"]["total_subscriptions"], 11);
    assert_eq!(body["exporter"]["fluxbase_metrics"]["state"], "ok");
    assert!(body["exporter"]["num_threads"].as_u64().unwrap() > 1);
}

#[test]
fn events_fed_meanwhile_change_storage_operations_but_never_the_passed_through_families() {
    let dir = TempDir::new("upstream-events");
    let log = dir.path.join("fluxbase.log");
    fs::write(&log, "").unwrap();
    let standin = StandIn::start(FLUXBASE);
    let exporter = start(
        &standin.url(),
        &[
            "--events.file",
            log.to_str().unwrap(),
            "--events.poll-interval",
            "50ms",
        ],
    );
    wait_for_merge(&exporter);
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    for line in [
        r#"{"message":"HTTP request","method":"GET","path":"/api/v1/storage/avatars/a.png","status":404,"duration_ms":12,"ip":"10.0.0.1"}"#,
        r#"{"message":"HTTP request","method":"GET","path":"/api/v1/tables/users","status":500,"duration_ms":30}"#,
        r#"{"message":"HTTP request","method":"POST","path":"/api/v1/auth/signin","status":429,"ip":"10.0.0.2"}"#,
        r#"{"message":"Security event","component":"security","event_type":"login_failed","details":{"reason":"invalid_password"}}"#,
        r#"{"message":"Security event","component":"security","event_type":"login_success"}"#,
        r#"{"message":"Slow query detected","duration_ms":1500,"operation":"select","table":"users"}"#,
    ] {
        writeln!(file, "{line}").unwrap();
    }
    let text = wait_for(&exporter, "/metrics", "the storage operation", |response| {
        let text = response.text();
        text.contains("fluxbase_storage_operations_total{operation=\"download\",bucket=\"avatars\",status=\"error\"} 1\n")
            && text.contains("fluxbase_exporter_slow_queries_total{operation=\"select\",table=\"users\"} 1\n")
    })
    .text();
    // Fluxbase's own counts, exactly as it serves them: none of the events above is in them.
    assert_eq!(as_values(&passed_through(&text)), fluxbase_passed_through());
}

#[test]
fn a_fluxbase_restart_shows_as_an_ordinary_counter_reset() {
    let standin = StandIn::start(FLUXBASE);
    let exporter = start(&standin.url(), &[]);
    let series = "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/:table\",status=\"2xx\"}";
    assert_eq!(metric(&wait_for_merge(&exporter), series), Some(2000.0));
    standin.set_body(&FLUXBASE.replace("status=\"2xx\"} 2000\n", "status=\"2xx\"} 5\n"));
    wait_for(&exporter, "/metrics", "the reset counter", |response| {
        metric(&response.text(), series) == Some(5.0)
    });
}

/// Switches the stand-in to `behaviour` and asserts: the passed-through families are gone
/// within one interval plus the timeout, the check fails, `/metrics` stays fast meanwhile, and
/// they are back within an interval of the stand-in serving again.
fn fails_and_recovers(exporter: &Exporter, standin: &StandIn, behaviour: Behaviour) {
    wait_for_merge(exporter);
    let switched = Instant::now();
    standin.set(behaviour);
    let gone = wait_for(exporter, "/metrics", "the families to go", |response| {
        passed_through(&response.text()).is_empty()
    });
    let took = switched.elapsed();
    // Polled every 50 ms, plus one scrape's time.
    assert!(
        took <= INTERVAL + TIMEOUT + Duration::from_millis(150),
        "{behaviour:?}: families still shown {took:?} after the upstream failed"
    );
    let text = gone.text();
    for row in merge::TABLE
        .iter()
        .filter(|row| row.with_upstream != Origin::Own)
    {
        assert!(
            text.contains(&format!("# TYPE {} ", row.family.name)),
            "{behaviour:?}: {} lost its TYPE",
            row.family.name
        );
    }
    wait_for(exporter, "/metrics", "the failed check", |response| {
        check_success(&response.text()) == Some(0.0)
    });
    // A failing upstream never slows a scrape.
    assert_mostly_within(40, Duration::from_millis(50), || {
        assert_eq!(exporter.get("/metrics").status, 200);
    });
    let served = Instant::now();
    standin.set(Behaviour::Serve);
    let text = wait_for_merge(exporter);
    let took = served.elapsed();
    assert!(
        took <= INTERVAL + TIMEOUT + Duration::from_millis(150),
        "{behaviour:?}: recovered only after {took:?}"
    );
    assert_eq!(as_values(&passed_through(&text)), fluxbase_passed_through());
}

#[test]
fn an_upstream_that_hangs_refuses_errs_or_sends_garbage_fails_the_check_and_recovers() {
    let standin = StandIn::start(FLUXBASE);
    let exporter = start(&standin.url(), &[]);
    for behaviour in [
        Behaviour::BlackHole,
        Behaviour::Slow,
        Behaviour::Refuse,
        Behaviour::ServerError,
        Behaviour::Garbage,
        Behaviour::TruncatedGzip,
    ] {
        fails_and_recovers(&exporter, &standin, behaviour);
    }
    let logs = exporter.logs().join("\n");
    // The black hole and the slow body both end in the timeout.
    for reason in ["timeout", "refused", "http_status", "garbage", "truncated"] {
        assert!(
            logs.contains(&format!("\"reason\":\"{reason}\"")),
            "no {reason} in {logs}"
        );
    }
}

#[test]
fn a_type_clash_or_too_many_series_fails_the_check() {
    let standin = StandIn::start(&FLUXBASE.replace(
        "# TYPE fluxbase_http_requests_in_flight gauge",
        "# TYPE fluxbase_http_requests_in_flight counter",
    ));
    let exporter = start(&standin.url(), &[]);
    wait_for(&exporter, "/metrics", "the failed check", |response| {
        check_success(&response.text()) == Some(0.0)
    });
    assert!(
        exporter
            .logs()
            .join("\n")
            .contains("\"reason\":\"type_clash\"")
    );
    drop(exporter);

    // Four failure reasons where three series are allowed.
    standin.set_body(&FLUXBASE.replace(
        "fluxbase_auth_failure_total{method=\"password\",reason=\"user_not_found\"} 1\n",
        "fluxbase_auth_failure_total{method=\"password\",reason=\"user_not_found\"} 1\n\
         fluxbase_auth_failure_total{method=\"password\",reason=\"account_locked\"} 1\n\
         fluxbase_auth_failure_total{method=\"password\",reason=\"email_not_verified\"} 1\n",
    ));
    let exporter = start(&standin.url(), &["--metrics.max-series", "3"]);
    let text = wait_for(&exporter, "/metrics", "the refused series", |response| {
        let text = response.text();
        metric(
            &text,
            "fluxbase_exporter_series_dropped_total{family=\"fluxbase_auth_failure_total\"}",
        )
        .is_some_and(|dropped| dropped >= 1.0)
            && check_success(&text) == Some(0.0)
    })
    .text();
    assert!(
        exporter
            .logs()
            .join("\n")
            .contains("\"reason\":\"too_many_series\"")
    );
    assert!(passed_through(&text).is_empty());
}

#[test]
fn an_exposition_over_16_mib_once_decompressed_is_refused() {
    // 18 MiB of comments, a few KiB gzipped: the cap holds after decompression.
    let mut huge = FLUXBASE.to_owned();
    huge.push_str(&"# padding\n".repeat(18 * 1024 * 1024 / 10));
    let standin = StandIn::start(&huge);
    // A debug build decodes 16 MiB in well over the other tests' 300 ms.
    let exporter = Exporter::start(&[
        "--fluxbase.metrics-url",
        &standin.url(),
        "--check.timeout",
        "10s",
    ]);
    wait_for(&exporter, "/metrics", "the refused read", |response| {
        check_success(&response.text()) == Some(0.0)
    });
    assert!(
        exporter
            .logs()
            .join("\n")
            .contains("\"reason\":\"too_large\""),
        "{:?}",
        exporter.logs()
    );
}

#[test]
fn fluxbases_own_metrics_settings_locate_the_endpoint_and_bad_ones_exit_2() {
    let standin = StandIn::start(FLUXBASE);
    let port = standin.addr.port().to_string();
    let exporter = Exporter::start_with_env(
        &["--check.interval", "500ms"],
        &[
            ("FLUXBASE_METRICS_PORT", port.as_str()),
            ("FLUXBASE_METRICS_PATH", "/metrics"),
        ],
    );
    wait_for_merge(&exporter);
    drop(exporter);
    // Fluxbase's metrics switched off: no upstream, and the log says so.
    let exporter = Exporter::start_with_env(
        &[],
        &[
            ("FLUXBASE_METRICS_ENABLED", "false"),
            ("FLUXBASE_METRICS_PORT", port.as_str()),
        ],
    );
    assert!(
        exporter
            .logs()
            .iter()
            .any(|line| line.contains("every family is measured by the exporter")),
        "{:?}",
        exporter.logs()
    );
    assert!(check_success(&exporter.get("/metrics").text()).is_none());

    for (args, env, line) in [
        (
            vec!["--fluxbase.metrics-url", "ftp://fluxbase/metrics"],
            vec![],
            "invalid --fluxbase.metrics-url: \"ftp://fluxbase/metrics\" is not an http:// or https:// URL",
        ),
        (
            vec![],
            vec![("FLUXBASE_METRICS_PORT", "ninety")],
            "invalid FLUXBASE_METRICS_PORT: \"ninety\" is not a port number",
        ),
    ] {
        let output = crate::harness::command(&args, &env)
            .output()
            .expect("run the binary");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!("fluxbase-exporter: {line}\n")
        );
    }
}

/// node_exporter on a free loopback port with two cheap collectors; killed on drop.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl NodeExporter {
    fn start() -> NodeExporter {
        let port = crate::postgres::free_port();
        let child = Command::new("/usr/bin/prometheus-node-exporter")
            .args([
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--collector.disable-defaults",
                "--collector.loadavg",
                "--collector.time",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter: make test installs Debian's prometheus-node-exporter");
        NodeExporter { child, port }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_go_handler_fills_the_json_and_passes_nothing_else_through() {
    let node = NodeExporter::start();
    let url = format!("http://127.0.0.1:{}/metrics", node.port);
    let exporter = Exporter::start_with_env(
        &["--fluxbase.metrics-url", &url, "--check.interval", "500ms"],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "node-token")],
    );
    let auth = [("Authorization", "Bearer node-token")];
    let deadline = Instant::now() + DEADLINE;
    let body = loop {
        let body = exporter
            .get_with("/api/v1/monitoring/metrics", &auth)
            .json();
        if body["go_version"].is_string() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter never read: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body["go_version"].as_str().unwrap().starts_with("go1."));
    assert!(body["num_goroutines"].as_u64().unwrap() > 0);
    assert!(body["memory_sys_mb"].as_u64().unwrap() > 0);
    assert!(body["memory_alloc_mb"].is_u64());
    assert!(body["memory_total_alloc_mb"].is_u64());
    assert!(body["num_gc"].is_u64());
    // node_exporter started moments ago.
    assert!(body["uptime_seconds"].as_u64().unwrap() < 60, "{body}");
    assert!(body.get("realtime").is_none(), "{body}");

    let text = exporter.get("/metrics").text();
    assert_eq!(check_success(&text), Some(1.0));
    for line in samples(&text) {
        assert!(
            !line.starts_with("node_")
                && !line.starts_with("go_")
                && !line.starts_with("promhttp_"),
            "{line}"
        );
    }
    assert!(passed_through(&text).is_empty());
    // Its uptime is node_exporter's, shown exactly.
    assert!(metric(&text, "fluxbase_system_uptime_seconds").unwrap() < 60.0);
}

/// An exposition in Go's format in which `requests` GET requests have been served, each in
/// the 25-50 ms bucket.
fn busy_fluxbase(requests: u64) -> String {
    let mut text = String::from(
        "# HELP fluxbase_http_request_duration_seconds HTTP request latency in seconds\n\
         # TYPE fluxbase_http_request_duration_seconds histogram\n",
    );
    let labels = "method=\"GET\",path=\"/api/v1/tables/:table\",status=\"2xx\"";
    for (le, count) in [
        ("0.001", 0),
        ("0.005", 0),
        ("0.01", 0),
        ("0.025", 0),
        ("0.05", requests),
        ("0.1", requests),
        ("0.25", requests),
        ("0.5", requests),
        ("1", requests),
        ("2.5", requests),
        ("5", requests),
        ("10", requests),
        ("+Inf", requests),
    ] {
        text.push_str(&format!(
            "fluxbase_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
        ));
    }
    text.push_str(&format!(
        "fluxbase_http_request_duration_seconds_sum{{{labels}}} {}\n\
         fluxbase_http_request_duration_seconds_count{{{labels}}} {requests}\n\
         # HELP fluxbase_http_requests_total Total number of HTTP requests\n\
         # TYPE fluxbase_http_requests_total counter\n\
         fluxbase_http_requests_total{{{labels}}} {requests}\n",
        requests as f64 * 0.03
    ));
    text
}

#[test]
fn a_real_prometheus_computes_the_pages_request_rate_and_p95_from_fluxbases_own_families() {
    let standin = StandIn::start(&busy_fluxbase(0));
    let exporter = start(&standin.url(), &[]);
    let dir = TempDir::new("upstream-prometheus");
    let prometheus = Prometheus::start(&dir, exporter.addr);
    prometheus.wait_for_up();
    // 2xx requests, which Fluxbase does not log with debug off: 20 a second for 6 seconds.
    let started = Instant::now();
    for second in 1..=6u64 {
        standin.set_body(&busy_fluxbase(second * 20));
        let due = started + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let series = "fluxbase_http_requests_total{status=\"2xx\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.query(series) != Some(120.0) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw 120 requests: {:?}",
            prometheus.query(series)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The page's Request Rate panel.
    let rate = prometheus
        .query("sum(rate(fluxbase_http_requests_total[30s]))")
        .unwrap();
    assert!(rate > 0.0, "rate {rate}");
    // The page's P95 Latency panel: linear interpolation inside (0.025, 0.05].
    let p95 = prometheus
        .query("histogram_quantile(0.95, sum by (le) (rate(fluxbase_http_request_duration_seconds_bucket[30s])))")
        .unwrap();
    assert!((p95 - 0.04875).abs() < 1e-6, "p95 {p95}");
}

/// A real Prometheus scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    api: std::net::SocketAddr,
}

impl Prometheus {
    fn start(dir: &TempDir, target: std::net::SocketAddr) -> Prometheus {
        let port = crate::postgres::free_port();
        let config = dir.path.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fluxbase-exporter\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let binary = ["prometheus", "/usr/bin/prometheus"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("Prometheus is needed: make test installs Debian's prometheus package");
        let child = Command::new(binary)
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.path.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            api: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    /// The first value of an instant query; `None` until Prometheus answers with one.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut stream = std::net::TcpStream::connect(self.api).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        stream
            .write_all(
                format!(
                    "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_slice(&crate::harness::read_response(&mut stream, true)?.body).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    fn wait_for_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.query("up{job=\"fluxbase-exporter\"}") != Some(1.0) {
            assert!(
                Instant::now() < deadline,
                "Prometheus never scraped the exporter"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
