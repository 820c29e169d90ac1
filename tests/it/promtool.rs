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
