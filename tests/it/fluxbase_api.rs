//! Fluxbase's API health (the `api` service) against a stand-in Fluxbase answering `/health`
//! as Fluxbase does, and Fluxbase's own configuration file read with no flags at all.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use fluxbase_exporter::timestamp::{self, Precision};

use crate::harness::{
    DEADLINE, Exporter, HttpResponse, TempDir, assert_mostly_within, command, metric, wait_for,
};
use crate::postgres::{Cluster, SUPERUSER_PASSWORD};

/// How the stand-in answers `GET /health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200 `{"status":"ok","timestamp":...}`, Fluxbase with its database.
    Ok,
    /// 503 `{"status":"degraded","timestamp":...}`, Fluxbase whose database ping fails.
    Degraded,
    /// 500 with a text body (a crashing handler or a proxy in front).
    ServerError,
    /// 200 with bytes that are not Fluxbase's JSON.
    Garbage,
    /// Reads the request and never answers.
    BlackHole,
}

/// A stand-in for Fluxbase's API server on a loopback port: keep-alive HTTP/1.1 as Fiber
/// serves it, `/health` answered as `internal/api/server.go` answers it (keys in Go's map
/// order, the timestamp as Go's `time.Time` marshals: RFC 3339 with nanoseconds, trailing
/// zeros dropped, UTC).
struct StandIn {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    running: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl StandIn {
    fn start(mode: Mode) -> StandIn {
        StandIn::bind("127.0.0.1:0".parse().unwrap(), Arc::new(Mutex::new(mode)))
    }

    fn bind(addr: SocketAddr, mode: Arc<Mutex<Mode>>) -> StandIn {
        let listener = TcpListener::bind(addr).expect("bind the stand-in");
        let addr = listener.local_addr().unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let acceptor = {
            let mode = Arc::clone(&mode);
            let running = Arc::clone(&running);
            thread::spawn(move || {
                let mut connections = Vec::new();
                for stream in listener.incoming() {
                    if !running.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let mode = Arc::clone(&mode);
                    let running = Arc::clone(&running);
                    connections.push(thread::spawn(move || serve(stream, &mode, &running)));
                }
                // The listener closes here: new connections are refused, as when the
                // process is gone; open ones end as their threads see `running` drop.
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        StandIn {
            addr,
            mode,
            running,
            acceptor: Some(acceptor),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and closes every connection; returns what a restart on the same port
    /// needs.
    fn stop(mut self) -> (SocketAddr, Arc<Mutex<Mode>>) {
        self.shutdown();
        (self.addr, Arc::clone(&self.mode))
    }

    fn shutdown(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        // Wakes the acceptor, which then sees `running` false.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("stand-in acceptor");
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Answers requests on one connection until the client closes it or the stand-in stops.
fn serve(mut stream: TcpStream, mode: &Mutex<Mode>, running: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    while running.load(Ordering::Relaxed) && started.elapsed() < DEADLINE * 3 {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buffer[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let current = *mode.lock().unwrap();
            if current == Mode::BlackHole {
                // Swallows this and every later request on the connection.
                pending.clear();
                continue;
            }
            let answer = answer(&head, current);
            if stream.write_all(&answer).is_err() {
                return;
            }
        }
    }
}

/// The bytes Fluxbase's API sends for one request.
fn answer(head: &str, mode: Mode) -> Vec<u8> {
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let (status, content_type, body) = match (path, mode) {
        ("/health", Mode::Ok) => (
            "200 OK",
            "application/json; charset=utf-8",
            format!(r#"{{"status":"ok","timestamp":"{}"}}"#, go_time_now()),
        ),
        ("/health", Mode::Degraded) => (
            "503 Service Unavailable",
            "application/json; charset=utf-8",
            format!(r#"{{"status":"degraded","timestamp":"{}"}}"#, go_time_now()),
        ),
        ("/health", Mode::ServerError) => (
            "500 Internal Server Error",
            "text/plain; charset=utf-8",
            "Internal Server Error".to_owned(),
        ),
        ("/health", _) => (
            "200 OK",
            "text/html",
            "<html><body>It works!</body></html>".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "application/json; charset=utf-8",
            r#"{"error":"Cannot GET"}"#.to_owned(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nDate: Wed, 02 Dec 2026 17:21:00 GMT\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Now as Go's `time.Time` marshals to JSON: `2026-12-02T17:21:00.123456789Z`, trailing zeros
/// of the fraction dropped.
fn go_time_now() -> String {
    let now = SystemTime::now();
    let seconds = timestamp::rfc3339(now, Precision::Seconds);
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    match fraction {
        "" => seconds,
        fraction => format!("{}.{fraction}Z", seconds.trim_end_matches('Z')),
    }
}

const INTERVAL: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_millis(300);

fn start_exporter(url: &str) -> Exporter {
    Exporter::start(&[
        "--fluxbase.url",
        url,
        "--check.interval",
        "500ms",
        "--check.timeout",
        "300ms",
    ])
}

fn api(response: &HttpResponse) -> serde_json::Value {
    response.json()["services"]["api"].clone()
}

/// Waits until the `api` service shows `status`, and returns the monitoring health response.
fn wait_for_api(exporter: &Exporter, status: &str) -> HttpResponse {
    wait_for(
        exporter,
        "/api/v1/monitoring/health",
        &format!("api {status}"),
        |response| api(response)["status"] == status,
    )
}

/// How long the `api` service takes to show `status`, polled every 10 ms.
fn time_until_api(exporter: &Exporter, status: &str) -> Duration {
    let since = Instant::now();
    while api(&exporter.get("/api/v1/monitoring/health"))["status"] != status {
        assert!(since.elapsed() < DEADLINE, "api never became {status}");
        thread::sleep(Duration::from_millis(10));
    }
    since.elapsed()
}

#[test]
fn api_is_unhealthy_with_503_when_fluxbase_stops_and_recovers_within_an_interval() {
    let fluxbase = StandIn::start(Mode::Ok);
    let exporter = start_exporter(&fluxbase.url());
    let healthy = wait_for_api(&exporter, "healthy");
    assert_eq!(healthy.status, 200);
    let body = api(&healthy);
    assert!(
        body["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{body}"
    );
    assert!(body.get("message").is_none(), "{body}");
    let metrics = exporter.get("/metrics").text();
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_check_success{check=\"api\"}"),
        Some(1.0)
    );
    assert!(
        metric(
            &metrics,
            "fluxbase_exporter_check_last_success_timestamp_seconds{check=\"api\"}"
        )
        .is_some()
    );

    let (addr, mode) = fluxbase.stop();
    let down = wait_for_api(&exporter, "unhealthy");
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["status"], "unhealthy");
    assert_eq!(
        api(&down)["message"],
        "connection refused: nothing listens at Fluxbase's API address"
    );
    assert!(api(&down)["latency_ms"].as_f64().is_some());
    let probe = exporter.get("/health");
    assert_eq!(probe.status, 503);
    assert_eq!(probe.json()["status"], "degraded");
    let metrics = exporter.get("/metrics").text();
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_check_success{check=\"api\"}"),
        Some(0.0)
    );
    assert!(
        exporter
            .logs()
            .iter()
            .any(|line| line.contains("Fluxbase's API is not healthy") && line.contains("refused")),
        "{:#?}",
        exporter.logs()
    );

    // Fluxbase comes back on the same port: healthy within one interval (and one request).
    let _back = StandIn::bind(addr, mode);
    let recovered = time_until_api(&exporter, "healthy");
    assert!(
        recovered <= INTERVAL + TIMEOUT,
        "recovered after {recovered:?}"
    );
    assert_eq!(exporter.get("/api/v1/monitoring/health").status, 200);
    assert_eq!(exporter.get("/health").json()["status"], "ok");
}

#[test]
fn api_in_a_black_hole_times_out_without_slowing_scrapes_and_recovers() {
    let fluxbase = StandIn::start(Mode::Ok);
    let exporter = start_exporter(&fluxbase.url());
    wait_for_api(&exporter, "healthy");
    fluxbase.set(Mode::BlackHole);
    let down = wait_for_api(&exporter, "unhealthy");
    assert_eq!(down.status, 503);
    assert_eq!(api(&down)["message"], "no answer within 300ms");
    let latency = api(&down)["latency_ms"].as_f64().unwrap();
    assert!(
        (300.0..1300.0).contains(&latency),
        "a timed-out probe took {latency} ms"
    );
    // Scrapes and health answers come from memory while the probe waits out its timeout.
    assert_mostly_within(40, Duration::from_millis(100), || {
        assert_eq!(exporter.get("/metrics").status, 200);
    });
    fluxbase.set(Mode::Ok);
    let recovered = time_until_api(&exporter, "healthy");
    assert!(
        recovered <= INTERVAL + TIMEOUT,
        "recovered after {recovered:?}"
    );
}

#[test]
fn fluxbase_answering_degraded_is_degraded_and_anything_else_unhealthy() {
    let fluxbase = StandIn::start(Mode::Degraded);
    let exporter = start_exporter(&fluxbase.url());
    let degraded = wait_for_api(&exporter, "degraded");
    // Degraded is not down: 200, as Fluxbase answers its own monitoring health.
    assert_eq!(degraded.status, 200);
    assert_eq!(degraded.json()["status"], "degraded");
    assert_eq!(
        api(&degraded)["message"],
        "Fluxbase answers degraded (503): its own database ping fails"
    );
    let probe = exporter.get("/health");
    assert_eq!(
        (probe.status, probe.json()["status"].clone()),
        (200, "degraded".into())
    );
    assert_eq!(
        metric(
            &exporter.get("/metrics").text(),
            "fluxbase_exporter_check_success{check=\"api\"}"
        ),
        Some(0.0)
    );

    fluxbase.set(Mode::ServerError);
    let failed = wait_for_api(&exporter, "unhealthy");
    assert_eq!(failed.status, 503);
    assert_eq!(api(&failed)["message"], "answered HTTP 500");

    fluxbase.set(Mode::Garbage);
    let garbage = wait_for(
        &exporter,
        "/api/v1/monitoring/health",
        "the garbage verdict",
        |response| {
            api(response)["message"]
                .as_str()
                .is_some_and(|m| m.contains("not Fluxbase's health"))
        },
    );
    assert_eq!(garbage.status, 503);
    assert_eq!(
        api(&garbage)["message"],
        "answered HTTP 200 with a body that is not Fluxbase's health: \"<html><body>It works!</body></html>\""
    );

    fluxbase.set(Mode::Ok);
    wait_for_api(&exporter, "healthy");
}

/// Runs the binary until it exits; (exit code, stderr).
fn run_to_exit(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &std::path::Path,
) -> (Option<i32>, String) {
    let mut child = command(args, env)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start binary");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("binary did not exit for {args:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[test]
fn a_given_fluxbase_config_that_does_not_parse_exits_2_naming_it() {
    let dir = TempDir::new("bad-fluxbase-config");
    let file = dir.path.join("fluxbase.yaml");
    std::fs::write(&file, "database:\n  host: [unclosed\n").unwrap();
    let (code, stderr) = run_to_exit(
        &["--fluxbase.config", file.to_str().unwrap()],
        &[],
        &dir.path,
    );
    assert_eq!(code, Some(2), "{stderr}");
    let prefix = format!(
        "fluxbase-exporter: invalid --fluxbase.config: {} does not parse as YAML: ",
        file.display()
    );
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // The same file found in Fluxbase's search list is ignored, as Fluxbase ignores it.
    let child = command(
        &[],
        &[("FLUXBASE_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:0")],
    )
    .current_dir(&dir.path)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start binary");
    let exporter = Exporter::adopt(child);
    let warning = exporter
        .logs()
        .into_iter()
        .find(|line| line.contains("ignoring Fluxbase's configuration file"))
        .unwrap_or_else(|| panic!("no warning in {:#?}", exporter.logs()));
    assert!(warning.contains("\"level\":\"warn\""), "{warning}");
    assert!(
        warning.contains(&format!("{} does not parse as YAML", file.display())),
        "{warning}"
    );
}

#[test]
fn with_only_fluxbases_file_and_no_flags_it_finds_the_database_storage_api_and_metrics_port() {
    let cluster = Cluster::shared();
    let database = cluster.database(true, &["pg_stat_statements"]);
    let api = StandIn::start(Mode::Ok);
    // Fluxbase's metrics port, serving Fluxbase's exposition; only its port is in the file.
    let metrics = crate::standin::StandIn::start(crate::standin::FLUXBASE);
    let metrics_port = metrics.addr.port();
    let workdir = TempDir::new("fluxbase-host");
    std::fs::create_dir_all(workdir.path.join("data/storage")).unwrap();
    std::fs::create_dir_all(workdir.path.join("config")).unwrap();
    let file = workdir.path.join("config/fluxbase.yaml");
    std::fs::write(
        &file,
        format!(
            "# Fluxbase's own file, with keys the exporter does not know.\n\
             server:\n  address: \"{}\"\n  body_limit: 2097152\n\
             database:\n  host: 127.0.0.1\n  port: {}\n  user: postgres\n  password: \"{SUPERUSER_PASSWORD}\"\n  database: {}\n  ssl_mode: disable\n\
             storage:\n  provider: local\n  local_path: ./data/storage\n\
             metrics:\n  enabled: true\n  port: {metrics_port}\n\
             logging:\n  console_format: json\n\
             auth:\n  jwt_secret: not-for-the-exporter\n",
            api.addr, database.port, database.name
        ),
    )
    .unwrap();
    let child = command(
        &[],
        &[("FLUXBASE_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:0")],
    )
    .current_dir(&workdir.path)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start binary");
    let exporter = Exporter::adopt(child);
    let health = wait_for(
        &exporter,
        "/api/v1/monitoring/health",
        "database, storage and api all healthy",
        |response| {
            let services = &response.json()["services"];
            ["database", "storage", "api"]
                .iter()
                .all(|name| services[name]["status"] == "healthy")
        },
    );
    assert_eq!(health.status, 200);
    // The metrics URL is built from the file's port and Fluxbase's default path, and read.
    wait_for(
        &exporter,
        "/metrics",
        "Fluxbase's own metrics read",
        |response| {
            metric(
                &response.text(),
                "fluxbase_exporter_check_success{check=\"fluxbase_metrics\"}",
            ) == Some(1.0)
        },
    );
    assert!(metrics.requests().0 >= 1);

    let logs = exporter.logs();
    let configuration = |setting: &str| -> serde_json::Value {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "configuration" && line["setting"] == setting)
            .unwrap_or_else(|| panic!("no configuration line for {setting} in {logs:#?}"))
    };
    let from_file = format!("file {}", file.display());
    assert_eq!(
        configuration("--fluxbase.config")["value"],
        file.display().to_string()
    );
    assert_eq!(
        configuration("--fluxbase.config")["source"],
        "Fluxbase's search list"
    );
    assert_eq!(configuration("database.host")["source"], from_file);
    assert_eq!(configuration("database.password")["value"], "(hidden)");
    assert_eq!(
        configuration("storage.local_path")["value"],
        "./data/storage"
    );
    assert_eq!(
        configuration("server.address")["value"],
        api.addr.to_string()
    );
    assert_eq!(
        configuration("metrics.port")["value"],
        metrics_port.to_string()
    );
    assert_eq!(configuration("metrics.port")["source"], from_file);
    assert_eq!(configuration("metrics.path")["value"], "/metrics");
    assert_eq!(configuration("metrics.path")["source"], "Fluxbase default");
    assert_eq!(configuration("metrics.enabled")["value"], "true");
    let joined = logs.join("\n");
    assert!(
        !joined.contains(SUPERUSER_PASSWORD),
        "a password was logged"
    );
    assert!(!joined.contains("\"level\":\"warn\""), "{joined}");
    // The relative storage path is placed in Fluxbase's working directory, ours.
    assert!(
        logs.iter()
            .any(|line| line.contains("checking Fluxbase's storage root")
                && line.contains(&workdir.path.join("data/storage").display().to_string())),
        "{logs:#?}"
    );
}

#[test]
fn fluxbases_environment_beats_its_file_and_our_flag_beats_both() {
    let from_env = StandIn::start(Mode::Ok);
    let from_flag = StandIn::start(Mode::Degraded);
    // The file points at a port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = dead.local_addr().unwrap();
    drop(dead);
    let dir = TempDir::new("precedence");
    let file = dir.path.join("fluxbase.yaml");
    std::fs::write(&file, format!("server:\n  address: \"{dead_address}\"\n")).unwrap();
    let env_address = from_env.addr.to_string();
    let args = [
        "--fluxbase.config",
        file.to_str().unwrap(),
        "--check.interval",
        "500ms",
    ];

    let file_only = Exporter::start(&args);
    wait_for_api(&file_only, "unhealthy");
    drop(file_only);

    let env_wins = Exporter::start_with_env(&args, &[("FLUXBASE_SERVER_ADDRESS", &env_address)]);
    wait_for_api(&env_wins, "healthy");
    assert!(
        env_wins.logs().iter().any(
            |line| line.contains("\"setting\":\"FLUXBASE_SERVER_ADDRESS\"")
                && line.contains("\"source\":\"environment FLUXBASE_SERVER_ADDRESS\"")
        ),
        "{:#?}",
        env_wins.logs()
    );
    drop(env_wins);

    let mut with_flag = args.to_vec();
    let flag_url = from_flag.url();
    with_flag.extend(["--fluxbase.url", &flag_url]);
    let flag_wins =
        Exporter::start_with_env(&with_flag, &[("FLUXBASE_SERVER_ADDRESS", &env_address)]);
    wait_for_api(&flag_wins, "degraded");
    assert!(
        flag_wins
            .logs()
            .iter()
            .any(|line| line.contains("\"setting\":\"--fluxbase.url\"")
                && line.contains("\"source\":\"flag\"")),
        "{:#?}",
        flag_wins.logs()
    );
}
