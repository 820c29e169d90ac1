//! The HTTP surface of the running binary: every endpoint, auth, compression, refusals.

use std::io::Read;

use fluxbase_exporter::catalog;

use crate::harness::{Exporter, TempDir, raw_request, sample_value, samples};

#[test]
fn metrics_show_every_family_of_the_catalogue_with_exact_help_and_type() {
    let exporter = Exporter::start(&[]);
    let response = exporter.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    assert!(text.ends_with('\n'));
    for desc in catalog::all() {
        let help = format!("# HELP {} {}\n", desc.name, desc.help);
        let kind = format!("# TYPE {} {}\n", desc.name, desc.kind.as_str());
        assert_eq!(text.matches(&help).count(), 1, "{}", desc.name);
        assert_eq!(text.matches(&kind).count(), 1, "{}", desc.name);
        assert!(
            text.find(&help) < text.find(&kind),
            "HELP before TYPE for {}",
            desc.name
        );
    }
}

#[test]
fn unfed_fluxbase_families_have_no_samples_and_fed_ones_do() {
    let exporter = Exporter::start(&[]);
    exporter.get("/health");
    let text = exporter.get("/metrics").text();
    for sample in samples(&text) {
        let name = sample.split(['{', ' ']).next().unwrap();
        let fluxbase = name.starts_with("fluxbase_") && !name.starts_with("fluxbase_exporter_");
        assert!(
            !fluxbase || name == "fluxbase_system_uptime_seconds",
            "invented value: {sample}"
        );
    }
    assert!(sample_value(&text, "fluxbase_system_uptime_seconds ").unwrap() >= 0.0);
    assert_eq!(
        sample_value(
            &text,
            "fluxbase_exporter_http_requests_total{handler=\"health\",code=\"200\"}"
        ),
        Some(1.0)
    );
    assert!(sample_value(&text, "fluxbase_exporter_build_info{").is_some());
    assert_eq!(
        sample_value(
            &text,
            "fluxbase_exporter_series_dropped_total{family=\"fluxbase_http_requests_total\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn process_metrics_come_from_proc() {
    let exporter = Exporter::start(&[]);
    // The system worker re-reads /proc every second. Once it has read the process after the
    // HTTP workers started, it counts at least 4 HTTP workers, the system worker, the signal
    // thread, main and tiny_http's accept thread.
    let deadline = std::time::Instant::now() + crate::harness::DEADLINE;
    let text = loop {
        let text = exporter.get("/metrics").text();
        if sample_value(&text, "process_threads ").is_some_and(|threads| threads >= 8.0) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process_threads never reached 8: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(sample_value(&text, "process_resident_memory_bytes ").unwrap() > 0.0);
    assert!(sample_value(&text, "process_open_fds ").unwrap() >= 3.0);
    let started = sample_value(&text, "process_start_time_seconds ").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - started).abs() < 120.0,
        "start time {started} vs now {now}"
    );
    for name in [
        "process_cpu_seconds_total ",
        "process_virtual_memory_bytes ",
        "process_max_fds ",
    ] {
        assert!(sample_value(&text, name).is_some(), "{name}");
    }
}

#[test]
fn metrics_are_gzipped_when_asked() {
    let exporter = Exporter::start(&[]);
    let plain = exporter.get("/metrics").text();
    let response = exporter.get_with("/metrics", &[("Accept-Encoding", "gzip, deflate")]);
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_string(&mut decoded)
        .unwrap();
    let families = |text: &str| text.lines().filter(|l| l.starts_with("# TYPE")).count();
    assert_eq!(families(&decoded), families(&plain));
    let refused = exporter.get_with("/metrics", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("Content-Encoding"), None);
}

#[test]
fn health_endpoints_are_public_and_healthy_with_nothing_configured() {
    // Nothing configured: no database, and Fluxbase's default ./storage (empty) in the
    // working directory.
    let exporter = Exporter::start(&[]);
    let deadline = std::time::Instant::now() + crate::harness::DEADLINE;
    while exporter.get("/api/v1/monitoring/health").json()["services"]
        .get("storage")
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the storage check never published"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let health = exporter.get("/health");
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2024-01-15T10:30:00Z".len(), "{timestamp}");
    let api = exporter.get("/api/v1/monitoring/health");
    assert_eq!(api.status, 200);
    let body = api.json();
    assert_eq!(body["status"], "healthy");
    assert!(
        body["services"].get("database").is_none(),
        "no database is configured: {body}"
    );
    assert_eq!(body["services"]["storage"]["status"], "healthy");
    assert_eq!(exporter.get("/livez").status, 200);
    assert_eq!(exporter.get("/readyz").text(), "ok\n");
}

#[test]
fn landing_page_links_every_endpoint() {
    let exporter = Exporter::start(&["--web.telemetry-path", "/prometheus"]);
    let page = exporter.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let text = page.text();
    for path in [
        "/prometheus",
        "/health",
        "/livez",
        "/readyz",
        "/api/v1/monitoring/metrics",
        "/api/v1/monitoring/health",
    ] {
        assert!(text.contains(&format!("href=\"{path}\"")), "{path}");
    }
    assert_eq!(exporter.get("/prometheus").status, 200);
    assert_eq!(exporter.get("/metrics").status, 404);
}

#[test]
fn api_metrics_without_a_configured_token_says_how_to_configure_one() {
    let exporter = Exporter::start(&[]);
    let response = exporter.get_with(
        "/api/v1/monitoring/metrics",
        &[("Authorization", "Bearer x")],
    );
    assert_eq!(response.status, 403);
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("--web.auth-token-file")
    );
}

#[test]
fn api_metrics_requires_the_bearer_token_from_a_file() {
    let dir = TempDir::new("token");
    let file = dir.path.join("token");
    std::fs::write(&file, "file-token-123\n").unwrap();
    let exporter = Exporter::start(&[
        "--web.auth-token-file",
        file.to_str().unwrap(),
        "--log.level",
        "debug",
    ]);
    check_bearer_auth(&exporter, "file-token-123");
}

#[test]
fn api_metrics_requires_the_bearer_token_from_the_environment() {
    let exporter = Exporter::start_with_env(
        &["--log.level", "debug"],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "env-token-456")],
    );
    check_bearer_auth(&exporter, "env-token-456");
}

fn check_bearer_auth(exporter: &Exporter, token: &str) {
    let missing = exporter.get("/api/v1/monitoring/metrics");
    assert_eq!(missing.status, 401);
    assert!(
        missing
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(missing.json()["error"], "missing bearer token");
    let prefix = &token[..token.len() - 1];
    let longer = format!("{token}0");
    let over_long = token.repeat(10_000 / token.len());
    for wrong in ["", "nope", prefix, longer.as_str(), over_long.as_str()] {
        let response = exporter.get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", &format!("Bearer {wrong}"))],
        );
        assert_eq!(response.status, 401, "token {wrong:?}");
    }
    // Another scheme, or the token without one, is not a bearer token at all.
    let basic = format!("Basic {token}");
    for header in ["Bearer", basic.as_str(), token] {
        let response =
            exporter.get_with("/api/v1/monitoring/metrics", &[("Authorization", header)]);
        assert_eq!(response.status, 401, "Authorization: {header}");
    }
    let ok = exporter.get_with(
        "/api/v1/monitoring/metrics",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(ok.status, 200);
    let body = ok.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // serde_json sorts keys when parsing; the order on the wire is checked in the unit tests.
    assert!(keys.contains(&"exporter"), "{keys:?}");
    // Without Fluxbase's metrics endpoint, no key describes the exporter as if it were Fluxbase.
    for key in [
        "uptime_seconds",
        "go_version",
        "num_goroutines",
        "memory_sys_mb",
    ] {
        assert!(!keys.contains(&key), "{key} in {keys:?}");
    }
    assert!(body["exporter"]["uptime_seconds"].is_u64(), "{body}");
    // The token never reaches the logs, even at debug level. Waits for a last request's
    // access line (each line is written right after its answer, so the earlier requests' lines
    // have had the whole of the later requests to arrive).
    exporter.get("/after-the-token-requests");
    let deadline = std::time::Instant::now() + crate::harness::DEADLINE;
    while !exporter
        .logs()
        .iter()
        .any(|line| line.contains("/after-the-token-requests"))
    {
        assert!(std::time::Instant::now() < deadline, "no access line");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let logs = exporter.logs().join("\n");
    assert!(logs.contains("HTTP request"), "debug access log expected");
    assert!(!logs.contains(token), "token leaked into logs");
    assert!(!logs.contains(prefix), "part of the token leaked into logs");
}

/// Regression: tiny_http writes headers and body apart; without TCP_NODELAY the body of every
/// scrape after the first on a kept-alive connection waited ~40 ms for a delayed ACK.
#[test]
fn keep_alive_scrapes_are_not_held_back_by_nagle() {
    use std::io::Write;
    let exporter = Exporter::start(&[]);
    let mut stream = std::net::TcpStream::connect(exporter.addr).unwrap();
    stream
        .set_read_timeout(Some(crate::harness::DEADLINE))
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..11 {
        let asked = std::time::Instant::now();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let response = crate::harness::read_response(&mut stream, true).unwrap();
        assert_eq!(response.status, 200);
        took.push(asked.elapsed());
    }
    took.sort();
    // The delayed-ACK stall is 40 ms on every scrape after the first; a healthy scrape takes
    // well under a millisecond. The third fastest, so that a loaded machine's stalls do not
    // count.
    assert!(took[2] < std::time::Duration::from_millis(30), "{took:?}");
}

#[test]
fn refusals_are_short_and_never_a_hang() {
    let exporter = Exporter::start(&[]);
    let not_found = exporter.get("/nope");
    assert_eq!(
        (not_found.status, not_found.text().as_str()),
        (404, "{\"error\":\"not found\"}\n")
    );
    let post = exporter.request("POST", "/metrics", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    let long_target = format!("/{}", "a".repeat(10_000));
    assert_eq!(exporter.get(&long_target).status, 414);
    let big_header = "b".repeat(20_000);
    assert_eq!(
        exporter
            .get_with("/metrics", &[("X-Big", &big_header)])
            .status,
        431
    );
    let garbage = raw_request(exporter.addr, b"NOT A REQUEST\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let head = exporter.request("HEAD", "/metrics", &[]);
    assert_eq!(head.status, 200);
    // The server still answers after all of that.
    assert_eq!(exporter.get("/livez").status, 200);
}
