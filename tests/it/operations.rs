//! The operations kit, each piece proven by the tool that consumes it: systemd-analyze for the
//! unit, a notify socket for the protocol, an empty root for the static binary, promtool for the
//! Prometheus files, the catalogue for the dashboard, and a real Prometheus end to end.

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fluxbase_exporter::catalog;

use crate::harness::{BINARY, DEADLINE, Exporter, TempDir, command};
use crate::promtool::promtool;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program} is needed (make test installs it): {err}"));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The unit as `make install PREFIX=<dir>` writes it, with the binary at `<dir>/bin`.
fn installed_unit(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy(BINARY, dir.join("bin/fluxbase-exporter")).unwrap();
    let unit = fs::read_to_string(repo("systemd/fluxbase-exporter.service")).unwrap();
    let path = dir.join("fluxbase-exporter.service");
    fs::write(&path, unit.replace("@PREFIX@", dir.to_str().unwrap())).unwrap();
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_its_exposure_is_ok() {
    let dir = TempDir::new("unit");
    let unit = installed_unit(&dir.path);
    let unit = unit.to_str().unwrap();
    let (ok, output) = run("systemd-analyze", &["verify", unit]);
    assert!(
        ok && output.trim().is_empty(),
        "systemd-analyze verify: {output}"
    );
    let (_, output) = run(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", unit],
    );
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{output}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(level <= 2.0, "exposure {level}: {line}");
    let unit_text = fs::read_to_string(unit).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/fluxbase/fluxbase.env",
        "LoadCredential=",
        "DynamicUser=yes",
        "MemoryMax=",
    ] {
        assert!(unit_text.contains(setting), "{setting}");
    }
}

#[test]
fn make_install_honours_prefix_and_destdir() {
    let dir = TempDir::new("install");
    let destdir = dir.path.to_str().unwrap();
    let output = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-s",
            "install",
            &format!("DESTDIR={destdir}"),
            "PREFIX=/usr",
            &format!("BINARY={BINARY}"),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path.join("usr/bin/fluxbase-exporter").is_file());
    assert!(
        dir.path
            .join("etc/fluxbase/fluxbase-exporter.env.example")
            .is_file()
    );
    let unit = fs::read_to_string(
        dir.path
            .join("usr/lib/systemd/system/fluxbase-exporter.service"),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/fluxbase-exporter\n"),
        "{unit}"
    );
    assert!(!unit.contains("@PREFIX@"));
}

/// Notifications received on a fake NOTIFY_SOCKET, with when they arrived.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(120) {
                if let Ok(read) = socket.recv(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        NotifySocket { path, messages }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    fn watchdogs_since(&self, since: Instant) -> usize {
        self.all()
            .iter()
            .filter(|(at, text)| *at >= since && text == "WATCHDOG=1")
            .count()
    }

    fn wait_for(&self, what: &str, found: impl Fn(&[(Instant, String)]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !found(&self.all()) {
            assert!(Instant::now() < deadline, "no {what}: {:?}", self.all());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn notify_sends_ready_watchdog_and_stopping_in_order_and_a_wedged_server_misses_the_watchdog() {
    let dir = TempDir::in_memory("notify");
    // A log whose events make /metrics some tens of megabytes: one reader that stops reading
    // then wedges the only HTTP worker on a full socket.
    let log = dir.path.join("events.log");
    let mut lines = String::new();
    for i in 0..8000 {
        lines.push_str(&format!(
            r#"{{"message":"HTTP request","method":"GET","path":"/api/v1/tables/t{i}x","status":200,"duration_ms":1,"response_bytes":1}}"#
        ));
        lines.push('\n');
    }
    fs::write(&log, lines).unwrap();
    let socket = NotifySocket::bind(&dir.path);
    let notify = socket.path.to_str().unwrap().to_owned();
    let log = log.to_str().unwrap().to_owned();
    let exporter = Exporter::start_with_env(
        &[
            "--web.threads",
            "1",
            "--metrics.max-series",
            "100000",
            "--events.file",
            &log,
            "--events.from-start",
        ],
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    socket.wait_for("READY=1", |m| m.iter().any(|(_, t)| t.contains("READY=1")));
    socket.wait_for("watchdog pings", |m| {
        m.iter().filter(|(_, t)| t == "WATCHDOG=1").count() >= 3
    });
    let first = socket.all();
    let ready = first
        .iter()
        .position(|(_, t)| t.contains("READY=1"))
        .unwrap();
    let first_ping = first.iter().position(|(_, t)| t == "WATCHDOG=1").unwrap();
    assert!(ready < first_ping, "READY before WATCHDOG: {first:?}");
    assert!(
        first[ready].1.contains("STATUS=serving on 127.0.0.1:"),
        "{first:?}"
    );
    assert!(
        first
            .iter()
            .any(|(_, t)| t.starts_with("STATUS=serving on")),
        "status lines"
    );

    // Wedge the single HTTP worker: ask for the large /metrics and never read it.
    let mut stuck = std::net::TcpStream::connect(exporter.addr).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while crate::harness::sample_value(
        &exporter.get("/metrics").text(),
        "fluxbase_exporter_events_lines_total",
    )
    .unwrap_or(0.0)
        < 8000.0
    {
        assert!(Instant::now() < deadline, "events never read");
        std::thread::sleep(Duration::from_millis(50));
    }
    stuck
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let wedged_since = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        socket.watchdogs_since(wedged_since),
        0,
        "a wedged server must miss the watchdog"
    );
    // Unwedged (the reader leaves), the pings resume.
    drop(stuck);
    socket.wait_for("pings after the wedge", |m| {
        m.iter()
            .any(|(at, t)| *at > wedged_since && t == "WATCHDOG=1")
    });

    let stopping_from = Instant::now();
    let (status, _) = exporter.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    socket.wait_for("STOPPING=1", |m| {
        m.iter().any(|(_, t)| t.contains("STOPPING=1"))
    });
    let all = socket.all();
    let stopping = all
        .iter()
        .position(|(_, t)| t.contains("STOPPING=1"))
        .unwrap();
    assert!(all[stopping].0 >= stopping_from);
    assert!(
        !all[stopping + 1..].iter().any(|(_, t)| t == "WATCHDOG=1"),
        "no ping after STOPPING: {all:?}"
    );
}

/// The static binary: from `make static` (passed in by `make test`), built here otherwise.
fn static_binary() -> PathBuf {
    if let Some(path) =
        std::env::var_os("FLUXBASE_EXPORTER_STATIC_BINARY").filter(|p| !p.is_empty())
    {
        return repo(path.to_str().unwrap());
    }
    let output = Command::new(repo("scripts/build-static"))
        .output()
        .expect("run scripts/build-static");
    assert!(
        output.status.success(),
        "make static failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    repo(String::from_utf8_lossy(&output.stdout).trim())
}

#[test]
fn the_static_binary_is_static_small_and_serves_from_an_empty_root() {
    let binary = static_binary();
    let (_, file) = run("file", &[binary.to_str().unwrap()]);
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    let (_, ldd) = run("ldd", &[binary.to_str().unwrap()]);
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "{ldd}"
    );
    let size = fs::metadata(&binary).unwrap().len();
    println!(
        "static binary: {} bytes ({:.2} MiB)",
        size,
        size as f64 / 1048576.0
    );
    // The budget: 6 MiB, still well under node_exporter's 10.4 MiB and postgres_exporter's. It
    // grew from 5 MiB when the exporter learned to serve TLS with basic auth, to read Fluxbase's
    // metrics endpoint and API over HTTP (ureq) and to read YAML (5.19 MiB then).
    assert!(size <= 6 * 1024 * 1024, "{size} bytes");

    // An empty root: nothing but the binary (no /etc, no /proc, no libc, no shell).
    let root = TempDir::new("empty-root");
    fs::copy(&binary, root.path.join("fluxbase-exporter")).unwrap();
    let root_path = root.path.to_str().unwrap();
    // Called by path: the environment is emptied for the child.
    let chroot = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot");
    let child = Command::new(chroot)
        .args([
            root_path,
            "/fluxbase-exporter",
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.probe=false",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chroot (the tests run as root here)");
    let exporter = Exporter::adopt(child);
    let metrics = exporter.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("# TYPE fluxbase_http_requests_total counter")
    );
    let url = format!(
        "http://127.0.0.1:{}/api/v1/monitoring/health",
        exporter.addr.port()
    );
    let check = Command::new(chroot)
        .args([root_path, "/fluxbase-exporter", "healthcheck", &url])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("healthy: "));
    // And it says so when nothing answers.
    drop(exporter);
    let check = Command::new(chroot)
        .args([root_path, "/fluxbase-exporter", "healthcheck", &url])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
}

#[test]
fn the_healthcheck_subcommand_follows_the_health_endpoint() {
    let exporter = Exporter::start(&[]);
    let url = format!(
        "http://127.0.0.1:{}/api/v1/monitoring/health",
        exporter.addr.port()
    );
    let output = command(&["healthcheck", &url], &[]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let missing = format!("http://127.0.0.1:{}/nope", exporter.addr.port());
    let output = command(&["healthcheck", &missing], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("unhealthy: {missing} answered 404")
    );
}

#[test]
fn prometheus_files_pass_promtool_and_every_alert_has_a_tested_runbook() {
    let promtool = promtool();
    for args in [
        vec!["check", "config", "deploy/prometheus.yml"],
        vec!["check", "rules", "deploy/alerts.yml"],
        vec!["test", "rules", "deploy/alerts.test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let alerts = fs::read_to_string(repo("deploy/alerts.yml")).unwrap();
    let tests = fs::read_to_string(repo("deploy/alerts.test.yml")).unwrap();
    let runbook = fs::read_to_string(repo("deploy/RUNBOOK.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.to_lowercase().replace(' ', "-"))
        .collect();
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 15);
    for name in &names {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} has no promtool test"
        );
    }
    for line in alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook: deploy/RUNBOOK.md#"))
    {
        assert!(
            anchors.iter().any(|a| a == line),
            "runbook anchor #{line} missing from RUNBOOK.md"
        );
    }
    for alert in [
        "HighErrorRate",
        "HighLatency",
        "ConnectionPoolExhausted",
        "HighAuthFailures",
        "FluxbaseDown",
        "ExporterDown",
        "CheckStale",
        "StorageDegraded",
        "LowDiskSpace",
    ] {
        assert!(names.contains(&alert), "{alert}");
    }
}

/// Metric names in a PromQL expression (identifiers followed by `{`, `[`, `)` or the end, not
/// functions, label names or keywords).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    let mut in_braces = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
        } else if c == b'{' {
            in_braces = true;
        } else if c == b'}' {
            in_braces = false;
        } else if (c.is_ascii_alphabetic() || c == b'_') && !in_braces {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().chars().next();
            let keyword = matches!(
                word,
                "by" | "without"
                    | "on"
                    | "ignoring"
                    | "group_left"
                    | "group_right"
                    | "and"
                    | "or"
                    | "unless"
            );
            if !keyword
                && next != Some('(')
                && (word.starts_with("fluxbase_")
                    || word.starts_with("process_")
                    || word == "up"
                    || word.contains(':'))
            {
                names.push(word.to_owned());
            }
            continue;
        }
        i += 1;
    }
    names
}

#[test]
fn every_metric_of_every_dashboard_panel_is_one_the_exporter_exposes() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo("deploy/grafana-dashboard.json")).unwrap())
            .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for title in [
        "Request Rate",
        "P95 Latency",
        "Error Rate",
        "DB Connections",
        "Realtime Connections",
        "Storage",
        "Auth Failures",
        "Rate-Limit Hits",
        "Exporter Health",
    ] {
        assert!(titles.contains(&title), "panel {title}");
    }
    let known: Vec<String> = catalog::all()
        .flat_map(|desc| {
            let mut names = vec![desc.name.to_owned()];
            if desc.kind == catalog::Kind::Histogram {
                names.extend(
                    ["_bucket", "_sum", "_count"].map(|suffix| format!("{}{suffix}", desc.name)),
                );
            }
            names
        })
        .chain(std::iter::once("up".to_owned()))
        .collect();
    // Panels may read deploy/recording-rules.yml's series; those rules read known metrics.
    let rules = fs::read_to_string(repo("deploy/recording-rules.yml")).unwrap();
    let recorded = crate::promtool::recorded_names();
    for expr in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
    {
        for name in metric_names(expr) {
            assert!(known.contains(&name), "recording rule {expr} uses {name}");
        }
    }
    let mut used = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            for name in names {
                if name.contains(':') {
                    assert!(recorded.contains(&name), "{name} is not a recording rule");
                    used += 1;
                    continue;
                }
                assert!(
                    known.contains(&name),
                    "panel {:?} uses {name}, which the exporter does not expose",
                    panel["title"]
                );
                used += 1;
            }
        }
    }
    assert!(used >= 20);
    assert_eq!(
        metric_names(r#"sum by (le) (rate(fluxbase_x_bucket{path="a"}[5m])) / up"#),
        ["fluxbase_x_bucket", "up"]
    );
    assert_eq!(
        metric_names(r#"sum by (le) (instance_le:fluxbase_x_bucket:rate5m{instance=~"$i"})"#),
        ["instance_le:fluxbase_x_bucket:rate5m"]
    );
}

#[test]
fn a_real_prometheus_scrapes_the_exporter_and_computes_rates_and_quantiles_from_it() {
    let dir = TempDir::new("prometheus");
    let log = dir.path.join("fluxbase.log");
    fs::write(&log, "").unwrap();
    let exporter = Exporter::start(&[
        "--events.file",
        log.to_str().unwrap(),
        "--events.poll-interval",
        "100ms",
    ]);
    let port = crate::postgres::free_port();
    let config = dir.path.join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: fluxbase-exporter\n    static_configs:\n      - targets: ['{}']\n",
            repo("deploy/alerts.yml").display(),
            exporter.addr
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
    let mut prometheus = Command::new(prometheus_binary)
        .args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.path.join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _stop = KillOnDrop(&mut prometheus);
    let api: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Prometheus' HTTP API; `None` until it listens, or when the result is empty.
    let get = |path: &str| -> Option<serde_json::Value> {
        let mut stream = std::net::TcpStream::connect(api).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .ok()?;
        serde_json::from_slice(&crate::harness::read_response(&mut stream, true)?.body).ok()
    };
    let query = |promql: &str| -> Option<f64> {
        let body = get(&format!("/api/v1/query?query={}", percent_encode(promql)))?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while query("up{job=\"fluxbase-exporter\"}") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the exporter"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 20 requests a second for 6 seconds, each 30 ms: 120 requests, all in the 25-50 ms bucket.
    let fed = 120;
    let started = Instant::now();
    for i in 0..fed {
        let line = format!(
            r#"{{"message":"HTTP request","method":"GET","path":"/api/v1/tables/users","status":500,"duration_ms":30,"response_bytes":10,"time":{}}}"#,
            1_700_000_000 + i
        );
        let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(file, "{line}").unwrap();
        let due = started + Duration::from_millis(50 * (i + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let series = "fluxbase_http_requests_total{path=\"/api/v1/tables/users\",status=\"5xx\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(series) != Some(fed as f64) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw all {fed} requests: {:?}",
            query(series)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let increase = query(&format!("increase({series}[30s])")).unwrap();
    assert!(
        (increase - fed as f64).abs() <= fed as f64 * 0.3,
        "increase over 30s: {increase}"
    );
    let rate = query(&format!("rate({series}[30s])")).unwrap();
    assert!(rate > 0.0, "rate: {rate}");
    let p95 = query("histogram_quantile(0.95, sum by (le) (rate(fluxbase_http_request_duration_seconds_bucket[30s])))").unwrap();
    // Linear interpolation inside (0.025, 0.05]: 0.025 + 0.95 * 0.025.
    assert!((p95 - 0.04875).abs() < 1e-6, "p95 {p95}");

    // The alert rules loaded and evaluate.
    let rules = get("/api/v1/rules").expect("the rules API");
    let mut groups: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            "fluxbase",
            "fluxbase-exporter",
            "fluxbase-performance-targets"
        ]
    );
    let deadline = Instant::now() + DEADLINE;
    while query("ALERTS{alertname=\"HighErrorRate\"}").is_none() {
        assert!(
            Instant::now() < deadline,
            "HighErrorRate never became pending"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
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
