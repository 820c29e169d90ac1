//! `/metrics` through Prometheus' own linter.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::Exporter;

/// The promtool binary. `make test` installs it (Debian's prometheus package) when missing.
pub fn promtool() -> String {
    let candidates = ["promtool", "/usr/bin/promtool", "/usr/local/bin/promtool"];
    for candidate in candidates {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            return candidate.to_owned();
        }
    }
    panic!(
        "promtool not found: run `make test` (it installs Debian's prometheus package) or install promtool"
    );
}

/// Asserts that `promtool check metrics` accepts `exposition` without a lint message.
pub fn check_metrics(exposition: &[u8]) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(exposition).unwrap();
    let output = child.wait_with_output().unwrap();
    let messages = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed: {messages}");
    assert_eq!(messages.trim(), "", "promtool lint messages");
}

#[test]
fn promtool_check_metrics_is_clean() {
    let exporter = Exporter::start(&[]);
    // Feed the exporter's own families so they have samples too.
    for path in ["/", "/health", "/nope", "/api/v1/monitoring/health"] {
        exporter.get(path);
    }
    let text = exporter.get("/metrics").body;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let output = child.wait_with_output().unwrap();
    let messages = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed: {messages}");
    assert_eq!(messages.trim(), "", "promtool lint messages");
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs promtool with `args` in `dir`; panics with its output unless it succeeds.
fn promtool_passes(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana-dashboard.json")).unwrap())
        .unwrap()
}

/// Every `record:` name of `deploy/recording-rules.yml`.
pub fn recorded_names() -> Vec<String> {
    std::fs::read_to_string(repo("deploy/recording-rules.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn recording_rules_pass_promtool_and_each_is_tested_over_a_fleet_of_three() {
    let deploy = repo("deploy");
    promtool_passes(&deploy, &["check", "rules", "recording-rules.yml"]);
    promtool_passes(&deploy, &["test", "rules", "recording-rules.test.yml"]);
    let tests = std::fs::read_to_string(repo("deploy/recording-rules.test.yml")).unwrap();
    let names = recorded_names();
    assert_eq!(names.len(), 7);
    for name in &names {
        assert!(
            tests.contains(&format!("- expr: {name}\n"))
                || tests.contains(&format!("- expr: {name}{{")),
            "{name} has no promtool test"
        );
    }
    for instance in ["a:9745", "b:9745", "c:9745"] {
        assert!(tests.contains(instance), "the fleet lacks {instance}");
    }
    // Prometheus loads them beside the alerts.
    let config = std::fs::read_to_string(repo("deploy/prometheus.yml")).unwrap();
    assert!(config.contains("  - recording-rules.yml\n"));
}

/// The unit a query's result has, from its shape: what each panel's `unit` must be.
fn unit_class(expr: &str) -> &'static str {
    let name = expr.rsplit(['(', ' ']).next().unwrap_or(expr);
    if expr.starts_with("histogram_quantile(") || expr.starts_with("time() - ") {
        "seconds"
    } else if expr.contains(" / ") || expr.contains("_utilization") {
        "ratio"
    } else if expr.contains("rate(") || expr.contains(":rate5m") {
        "per second"
    } else if expr.starts_with("up{")
        || expr.contains("check_success")
        || expr.contains("database_leader")
    {
        "0 or 1"
    } else if expr.contains("_bytes") {
        "bytes"
    } else {
        assert!(!name.is_empty());
        "count"
    }
}

#[test]
fn every_dashboard_panel_has_the_one_unit_its_queries_have() {
    let dashboard = dashboard();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        let overrides = panel["fieldConfig"]["overrides"].as_array().unwrap();
        assert!(overrides.is_empty(), "{title}: one unit per panel");
        let classes: Vec<&str> = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| unit_class(t["expr"].as_str().unwrap()))
            .collect();
        assert!(
            classes.iter().all(|c| *c == classes[0]),
            "{title} mixes {classes:?} on one axis"
        );
        let allowed: &[&str] = match classes[0] {
            "seconds" => &["s"],
            "ratio" => &["percentunit"],
            "per second" => &["reqps", "ops"],
            "0 or 1" => &["bool"],
            "bytes" => &["bytes"],
            _ => &["short"],
        };
        assert!(
            allowed.contains(&unit),
            "{title}: unit {unit:?} for {} values",
            classes[0]
        );
        checked += 1;
    }
    assert!(checked >= 19);
    // The four panels the issue found wrong, each now in its own unit.
    for (title, unit) in [
        ("DB Query Latency", "s"),
        ("DB Queries", "ops"),
        ("Storage", "bytes"),
        ("Storage Free Space", "percentunit"),
        ("Storage Operations", "ops"),
        ("Storage Operation Latency", "s"),
        ("Exporter Health", "bool"),
        ("Check Age", "s"),
    ] {
        let panel = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("panel {title}"));
        assert_eq!(panel["fieldConfig"]["defaults"]["unit"], unit, "{title}");
    }
    let rate_limit = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Rate-Limit Hits")
        .unwrap();
    assert!(
        rate_limit["description"]
            .as_str()
            .unwrap()
            .contains("UNDERCOUNTS by 11-18%")
    );
    assert_eq!(unit_class("max(fluxbase_db_connections)"), "count");
}

/// A query's expected result: (labels, value) per series.
type Samples = &'static [(&'static str, f64)];

/// What each dashboard query gives over the fleet of `deploy/recording-rules.test.yml` (a
/// leads; b overlaps a's gauges as during a change of leader; c follows) plus the series below,
/// at 10 minutes: (panel title, refId, [(labels, value)]).
const FLEET_TRUTH: &[(&str, &str, Samples)] = &[
    (
        "Request Rate",
        "A",
        &[(r#"{status="2xx"}"#, 4.5), (r#"{status="5xx"}"#, 0.6)],
    ),
    (
        "Request Rate by Instance",
        "A",
        &[
            (r#"{instance="a:9745"}"#, 1.1),
            (r#"{instance="b:9745"}"#, 2.0),
            (r#"{instance="c:9745"}"#, 2.0),
        ],
    ),
    // 1/s under 100 ms on a, 3/s in (250 ms, 500 ms] on b: rank 3.8 of 4.
    ("P95 Latency", "A", &[("{}", 0.483_333_333_333_333_3)]),
    ("P95 Latency", "B", &[("{}", 0.496_666_666_666_666_7)]),
    ("Error Rate", "A", &[("{}", 0.117_647_058_823_529_41)]),
    // The leader's 30, not 30 + b's overlapping 30; pools: 25 per replica, three replicas.
    ("DB Connections", "A", &[("{}", 30.0)]),
    ("DB Connections", "B", &[("{}", 10.0)]),
    ("DB Connections", "C", &[("{}", 75.0)]),
    ("DB Connections", "D", &[("{}", 100.0)]),
    (
        "Realtime Connections",
        "A",
        &[
            (r#"{instance="a:9745"}"#, 10.0),
            (r#"{instance="b:9745"}"#, 20.0),
            (r#"{instance="c:9745"}"#, 5.0),
        ],
    ),
    ("Realtime Connections", "B", &[("{}", 2.0)]),
    // 10/s under 10 ms, 1/s in (10 ms, 50 ms]: rank 10.45 of 11, 28 ms (as Prometheus rounds it;
    // promtool compares exactly).
    ("DB Query Latency", "A", &[("{}", 0.027_999_999_999_999_97)]),
    (
        "DB Queries",
        "A",
        &[
            (r#"{operation="select"}"#, 10.0),
            (r#"{operation="insert"}"#, 1.0),
        ],
    ),
    // One shared volume seen by three exporters: 500 bytes, not 1500.
    ("Storage", "A", &[(r#"{bucket="x"}"#, 500.0)]),
    (
        "Storage Free Space",
        "A",
        &[
            (r#"{instance="a:9745",job="fluxbase-exporter"}"#, 0.1),
            (r#"{instance="b:9745",job="fluxbase-exporter"}"#, 0.2),
            (r#"{instance="c:9745",job="fluxbase-exporter"}"#, 0.3),
        ],
    ),
    (
        "Storage Operations",
        "A",
        &[
            (r#"{operation="upload",status="success"}"#, 2.0),
            (r#"{operation="download",status="error"}"#, 0.2),
        ],
    ),
    ("Storage Operation Latency", "A", &[("{}", 0.095)]),
    (
        "Auth Failures",
        "A",
        &[(r#"{reason="invalid_password"}"#, 3.0)],
    ),
    (
        "Auth Failures",
        "B",
        &[
            (r#"{result="failure"}"#, 3.0),
            (r#"{result="success"}"#, 0.5),
        ],
    ),
    (
        "Rate-Limit Hits",
        "A",
        &[
            (r#"{limiter_type="ip"}"#, 1.5),
            (r#"{limiter_type="user"}"#, 0.1),
        ],
    ),
    // a's 4 + 3 + 1, not b's overlapping 4 again.
    (
        "Jobs",
        "A",
        &[
            (r#"{namespace="default"}"#, 7.0),
            (r#"{namespace="other"}"#, 1.0),
        ],
    ),
    ("Jobs", "B", &[("{}", 2.0)]),
    ("Job Worker Utilisation", "A", &[("{}", 0.5)]),
    (
        "Exporter Health",
        "A",
        &[
            (r#"up{instance="a:9745",job="fluxbase-exporter"}"#, 1.0),
            (r#"up{instance="b:9745",job="fluxbase-exporter"}"#, 1.0),
            (r#"up{instance="c:9745",job="fluxbase-exporter"}"#, 1.0),
        ],
    ),
    (
        "Exporter Health",
        "B",
        &[
            (
                r#"fluxbase_exporter_check_success{check="database",instance="a:9745",job="fluxbase-exporter"}"#,
                1.0,
            ),
            (
                r#"fluxbase_exporter_check_success{check="storage",instance="b:9745",job="fluxbase-exporter"}"#,
                0.0,
            ),
        ],
    ),
    (
        "Check Age",
        "A",
        &[
            (
                r#"{check="database",instance="a:9745",job="fluxbase-exporter"}"#,
                5.0,
            ),
            (
                r#"{check="storage",instance="b:9745",job="fluxbase-exporter"}"#,
                540.0,
            ),
        ],
    ),
    (
        "Database Leader",
        "A",
        &[
            (
                r#"fluxbase_exporter_database_leader{instance="a:9745",job="fluxbase-exporter"}"#,
                1.0,
            ),
            (
                r#"fluxbase_exporter_database_leader{instance="b:9745",job="fluxbase-exporter"}"#,
                0.0,
            ),
            (
                r#"fluxbase_exporter_database_leader{instance="c:9745",job="fluxbase-exporter"}"#,
                0.0,
            ),
        ],
    ),
];

/// The fleet's series beyond the recording rules' test: gauges, the exporters' own series and
/// the families no recording rule reads.
const FLEET_GAUGES: &str = r#"
      - series: 'up{instance="a:9745",job="fluxbase-exporter"}'
        values: '1x20'
      - series: 'up{instance="b:9745",job="fluxbase-exporter"}'
        values: '1x20'
      - series: 'up{instance="c:9745",job="fluxbase-exporter"}'
        values: '1x20'
      - series: 'fluxbase_exporter_build_info{instance="a:9745",job="fluxbase-exporter",version="1",revision="r",rustc="1"}'
        values: '1x20'
      - series: 'fluxbase_exporter_build_info{instance="b:9745",job="fluxbase-exporter",version="1",revision="r",rustc="1"}'
        values: '1x20'
      - series: 'fluxbase_exporter_build_info{instance="c:9745",job="fluxbase-exporter",version="1",revision="r",rustc="1"}'
        values: '1x20'
      - series: 'fluxbase_exporter_database_leader{instance="a:9745",job="fluxbase-exporter"}'
        values: '1x20'
      - series: 'fluxbase_exporter_database_leader{instance="b:9745",job="fluxbase-exporter"}'
        values: '0x20'
      - series: 'fluxbase_exporter_database_leader{instance="c:9745",job="fluxbase-exporter"}'
        values: '0x20'
      - series: 'fluxbase_db_connections{instance="a:9745",job="fluxbase-exporter"}'
        values: '30x20'
      - series: 'fluxbase_db_connections{instance="b:9745",job="fluxbase-exporter"}'
        values: '30x20'
      - series: 'fluxbase_db_connections_idle{instance="a:9745",job="fluxbase-exporter"}'
        values: '10x20'
      - series: 'fluxbase_db_connections_max{instance="a:9745",job="fluxbase-exporter"}'
        values: '25x20'
      - series: 'fluxbase_db_connections_max{instance="b:9745",job="fluxbase-exporter"}'
        values: '25x20'
      - series: 'fluxbase_exporter_db_server_max_connections{instance="a:9745",job="fluxbase-exporter"}'
        values: '100x20'
      - series: 'fluxbase_realtime_connections{instance="a:9745",job="fluxbase-exporter"}'
        values: '10x20'
      - series: 'fluxbase_realtime_connections{instance="b:9745",job="fluxbase-exporter"}'
        values: '20x20'
      - series: 'fluxbase_realtime_connections{instance="c:9745",job="fluxbase-exporter"}'
        values: '5x20'
      - series: 'fluxbase_exporter_realtime_listeners{instance="a:9745",job="fluxbase-exporter"}'
        values: '2x20'
      - series: 'fluxbase_exporter_storage_bytes{instance="a:9745",job="fluxbase-exporter",source="filesystem",bucket="x"}'
        values: '500x20'
      - series: 'fluxbase_exporter_storage_bytes{instance="b:9745",job="fluxbase-exporter",source="filesystem",bucket="x"}'
        values: '500x20'
      - series: 'fluxbase_exporter_storage_bytes{instance="c:9745",job="fluxbase-exporter",source="filesystem",bucket="x"}'
        values: '500x20'
      - series: 'fluxbase_exporter_storage_bytes{instance="a:9745",job="fluxbase-exporter",source="database",bucket="x"}'
        values: '480x20'
      - series: 'fluxbase_exporter_storage_filesystem_available_bytes{instance="a:9745",job="fluxbase-exporter"}'
        values: '100x20'
      - series: 'fluxbase_exporter_storage_filesystem_available_bytes{instance="b:9745",job="fluxbase-exporter"}'
        values: '200x20'
      - series: 'fluxbase_exporter_storage_filesystem_available_bytes{instance="c:9745",job="fluxbase-exporter"}'
        values: '300x20'
      - series: 'fluxbase_exporter_storage_filesystem_size_bytes{instance="a:9745",job="fluxbase-exporter"}'
        values: '1000x20'
      - series: 'fluxbase_exporter_storage_filesystem_size_bytes{instance="b:9745",job="fluxbase-exporter"}'
        values: '1000x20'
      - series: 'fluxbase_exporter_storage_filesystem_size_bytes{instance="c:9745",job="fluxbase-exporter"}'
        values: '1000x20'
      - series: 'fluxbase_auth_failure_total{instance="a:9745",job="fluxbase-exporter",method="password",reason="invalid_password"}'
        values: '0+60x20'
      - series: 'fluxbase_auth_failure_total{instance="b:9745",job="fluxbase-exporter",method="password",reason="invalid_password"}'
        values: '0+120x20'
      - series: 'fluxbase_auth_attempts_total{instance="a:9745",job="fluxbase-exporter",method="password",result="failure"}'
        values: '0+60x20'
      - series: 'fluxbase_auth_attempts_total{instance="b:9745",job="fluxbase-exporter",method="password",result="failure"}'
        values: '0+120x20'
      - series: 'fluxbase_auth_attempts_total{instance="c:9745",job="fluxbase-exporter",method="password",result="success"}'
        values: '0+30x20'
      - series: 'fluxbase_jobs_queue_depth{instance="a:9745",job="fluxbase-exporter",namespace="default",priority="1"}'
        values: '4x20'
      - series: 'fluxbase_jobs_queue_depth{instance="a:9745",job="fluxbase-exporter",namespace="default",priority="2"}'
        values: '3x20'
      - series: 'fluxbase_jobs_queue_depth{instance="a:9745",job="fluxbase-exporter",namespace="other",priority="1"}'
        values: '1x20'
      - series: 'fluxbase_jobs_queue_depth{instance="b:9745",job="fluxbase-exporter",namespace="default",priority="1"}'
        values: '4x20'
      - series: 'fluxbase_jobs_processing{instance="a:9745",job="fluxbase-exporter"}'
        values: '2x20'
      - series: 'fluxbase_job_worker_utilization{instance="a:9745",job="fluxbase-exporter"}'
        values: '0.5x20'
      - series: 'fluxbase_exporter_check_success{check="database",instance="a:9745",job="fluxbase-exporter"}'
        values: '1x20'
      - series: 'fluxbase_exporter_check_success{check="storage",instance="b:9745",job="fluxbase-exporter"}'
        values: '0x20'
      - series: 'fluxbase_exporter_check_last_success_timestamp_seconds{check="database",instance="a:9745",job="fluxbase-exporter"}'
        values: '-5+60x20'
      - series: 'fluxbase_exporter_check_last_success_timestamp_seconds{check="storage",instance="b:9745",job="fluxbase-exporter"}'
        values: '60x20'
"#;

/// Single-quoted YAML.
fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[test]
fn the_dashboard_gives_the_truth_over_a_fleet_of_three_in_prometheus() {
    // Every query of every panel runs in Prometheus' own engine (promtool's rule tests), with
    // the recording rules loaded, over a fleet of three exporters, and must give FLEET_TRUTH.
    let recording_tests = std::fs::read_to_string(repo("deploy/recording-rules.test.yml")).unwrap();
    let start = recording_tests
        .find("    input_series:\n")
        .expect("input_series in recording-rules.test.yml");
    let end = recording_tests
        .find("    promql_expr_test:\n")
        .expect("promql_expr_test in recording-rules.test.yml");
    let mut file = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n{}{}    promql_expr_test:\n",
        repo("deploy/recording-rules.yml").display(),
        &recording_tests[start..end],
        FLEET_GAUGES
    );
    let dashboard = dashboard();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(variable["allValue"], ".*");
    assert_eq!(variable["includeAll"], true);
    let mut used = vec![false; FLEET_TRUTH.len()];
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        for target in panel["targets"].as_array().unwrap() {
            let ref_id = target["refId"].as_str().unwrap();
            let (index, (_, _, samples)) = FLEET_TRUTH
                .iter()
                .enumerate()
                .find(|(_, (t, r, _))| *t == title && *r == ref_id)
                .unwrap_or_else(|| panic!("no truth for {title} {ref_id}"));
            used[index] = true;
            // The dashboard with "All" instances selected.
            let expr = target["expr"].as_str().unwrap().replace("$instance", ".*");
            file.push_str(&format!(
                "      - expr: {}\n        eval_time: 10m\n        exp_samples:\n",
                yaml_quote(&expr)
            ));
            for (labels, value) in *samples {
                file.push_str(&format!(
                    "          - labels: {}\n            value: {value:?}\n",
                    yaml_quote(labels)
                ));
            }
        }
    }
    let unused: Vec<_> = FLEET_TRUTH
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(truth, _)| (truth.0, truth.1))
        .collect();
    assert!(unused.is_empty(), "no such panel query: {unused:?}");
    let dir = crate::harness::TempDir::new("dashboard-fleet");
    std::fs::write(dir.path.join("fleet.test.yml"), file).unwrap();
    promtool_passes(&dir.path, &["test", "rules", "fleet.test.yml"]);
}

/// A child process killed and reaped when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An instant query against the Prometheus at `api`: each series' labels and value; `None`
/// until Prometheus answers.
fn query(api: std::net::SocketAddr, promql: &str) -> Option<Vec<(serde_json::Value, f64)>> {
    let mut stream = std::net::TcpStream::connect(api).ok()?;
    stream
        .set_read_timeout(Some(crate::harness::DEADLINE))
        .ok()?;
    stream
        .write_all(
            format!(
                "GET /api/v1/query?query={} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
                percent_encode(promql)
            )
            .as_bytes(),
        )
        .ok()?;
    let body: serde_json::Value =
        serde_json::from_slice(&crate::harness::read_response(&mut stream, true)?.body).ok()?;
    assert_eq!(body["status"], "success", "{promql}: {body}");
    Some(
        body["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect(),
    )
}

#[test]
fn a_real_prometheus_over_three_exporters_gives_the_dashboards_per_instance_truth() {
    // Three exporters, each following its own replica's log, as sidecars do; a real Prometheus
    // scrapes them with the recording rules loaded; the dashboard's own expressions then give
    // the fed traffic's shape: a logs twice as fast as b and c, one request in four is a 500,
    // every request takes 30 ms.
    let dir = crate::harness::TempDir::new("fleet-prometheus");
    let logs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let log = dir.path.join(format!("{name}.log"));
            std::fs::write(&log, "").unwrap();
            log
        })
        .collect();
    let exporters: Vec<Exporter> = logs
        .iter()
        .map(|log| {
            Exporter::start(&[
                "--events.file",
                log.to_str().unwrap(),
                "--events.poll-interval",
                "100ms",
            ])
        })
        .collect();
    let port = crate::postgres::free_port();
    let targets: Vec<String> = exporters.iter().map(|e| format!("'{}'", e.addr)).collect();
    let config = dir.path.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: fluxbase-exporter\n    static_configs:\n      - targets: [{}]\n",
            repo("deploy/recording-rules.yml").display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let prometheus_binary = ["prometheus", "/usr/bin/prometheus"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Prometheus is needed: make test installs Debian's prometheus package");
    let _prometheus = Reaped(
        Command::new(prometheus_binary)
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.path.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = |api| query(api, "sum(up{job=\"fluxbase-exporter\"})");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while up(api).and_then(|r| r.first().map(|s| s.1)) != Some(3.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus never scraped all three exporters"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // 160 ticks of 50 ms: a writes two lines a tick, b and c one.
    let mut files: Vec<std::fs::File> = logs
        .iter()
        .map(|log| std::fs::OpenOptions::new().append(true).open(log).unwrap())
        .collect();
    let started = std::time::Instant::now();
    let mut written = [0u64; 3];
    for tick in 0..160u64 {
        for (i, file) in files.iter_mut().enumerate() {
            for _ in 0..if i == 0 { 2 } else { 1 } {
                let status = if written[i] % 4 == 3 { 500 } else { 200 };
                writeln!(
                    file,
                    r#"{{"message":"HTTP request","method":"GET","path":"/api/v1/tables/users","status":{status},"duration_ms":30,"response_bytes":10,"time":{}}}"#,
                    1_700_000_000 + written[i]
                )
                .unwrap();
                written[i] += 1;
            }
        }
        let due = started + std::time::Duration::from_millis(50 * (tick + 1));
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    }
    let total: u64 = written.iter().sum();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen =
            query(api, "sum(fluxbase_http_requests_total)").and_then(|r| r.first().map(|s| s.1));
        let recorded = query(api, "count(instance_status:fluxbase_http_requests:rate5m)")
            .and_then(|r| r.first().map(|s| s.1));
        if seen == Some(total as f64) && recorded == Some(6.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus saw {seen:?} of {total} requests, {recorded:?} recorded series"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let dashboard = dashboard();
    let expr = |title: &str, ref_id: &str, instance: &str| -> String {
        dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .and_then(|p| {
                p["targets"]
                    .as_array()?
                    .iter()
                    .find(|t| t["refId"] == ref_id)
            })
            .and_then(|t| t["expr"].as_str())
            .unwrap_or_else(|| panic!("{title} {ref_id}"))
            .replace("$instance", instance)
    };
    // Per instance, under each exporter's own address: a about twice b, c about b.
    let by_instance = query(api, &expr("Request Rate by Instance", "A", ".*")).unwrap();
    let rate_of = |addr: std::net::SocketAddr| -> f64 {
        by_instance
            .iter()
            .find(|(labels, _)| labels["instance"] == addr.to_string())
            .unwrap_or_else(|| panic!("no series for {addr}: {by_instance:?}"))
            .1
    };
    let (a, b, c) = (
        rate_of(exporters[0].addr),
        rate_of(exporters[1].addr),
        rate_of(exporters[2].addr),
    );
    assert_eq!(by_instance.len(), 3, "{by_instance:?}");
    assert!(b > 0.0, "{by_instance:?}");
    assert!((1.5..=2.5).contains(&(a / b)), "a/b = {}", a / b);
    assert!((0.75..=1.33).contains(&(c / b)), "c/b = {}", c / b);
    // The instance variable narrows it to one.
    let one = query(
        api,
        &expr(
            "Request Rate by Instance",
            "A",
            &exporters[1].addr.to_string(),
        ),
    )
    .unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    // Status classes over the fleet, and the 5xx ratio: one in four.
    let statuses = query(api, &expr("Request Rate", "A", ".*")).unwrap();
    let mut classes: Vec<String> = statuses
        .iter()
        .map(|(labels, _)| labels["status"].as_str().unwrap_or("").to_owned())
        .collect();
    classes.sort();
    assert_eq!(classes, ["2xx", "5xx"]);
    let ratio = query(api, &expr("Error Rate", "A", ".*")).unwrap()[0].1;
    assert!((ratio - 0.25).abs() < 0.05, "5xx ratio {ratio}");
    // Every request in (25 ms, 50 ms]: P95 and P99 by linear interpolation inside it.
    let p95 = query(api, &expr("P95 Latency", "A", ".*")).unwrap()[0].1;
    let p99 = query(api, &expr("P95 Latency", "B", ".*")).unwrap()[0].1;
    assert!((p95 - 0.04875).abs() < 1e-9, "p95 {p95}");
    assert!((p99 - 0.04975).abs() < 1e-9, "p99 {p99}");
    // Exporter Health: up for each of the three.
    let health = query(api, &expr("Exporter Health", "A", ".*")).unwrap();
    assert_eq!(health.len(), 3, "{health:?}");
    assert!(health.iter().all(|(_, v)| *v == 1.0), "{health:?}");
}
