//! Event ingestion end to end: a generated Fluxbase-shaped log (whose expected counters the
//! generator works out by itself) fed through a followed file with rotations, through standard
//! input, and through logging.entries.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{
    DEADLINE, Exporter, Sequence, TempDir, metric, samples, wait_for, wait_for_rounds,
};
use crate::postgres::Cluster;

/// What a generated log must produce: every series it touches, with its value.
#[derive(Default)]
struct Expected {
    series: BTreeMap<String, f64>,
    lines: u64,
    skipped: BTreeMap<&'static str, f64>,
}

impl Expected {
    fn add(&mut self, series: String, amount: f64) {
        *self.series.entry(series).or_default() += amount;
    }

    /// One HTTP request event: the three HTTP families.
    fn http(&mut self, method: &str, path: &str, class: &str, bytes: f64) {
        let labels = format!("{{method=\"{method}\",path=\"{path}\",status=\"{class}\"}}");
        self.add(format!("fluxbase_http_requests_total{labels}"), 1.0);
        self.add(
            format!("fluxbase_http_request_duration_seconds_count{labels}"),
            1.0,
        );
        self.add(
            format!("fluxbase_http_response_size_bytes_sum{labels}"),
            bytes,
        );
    }
}

const IP: &str = "203.0.113.50";
/// SHA-256("203.0.113.50")[..8] in hex, worked out with sha256sum, not with the exporter's code.
const IP_HASH: &str = "3b5cd36857cbc87d";

/// Generates `count` events of every kind plus garbage, returning the lines and what they must
/// produce. `time` is the events' own time.
fn generate(count: usize, seed: u64, time: u64) -> (Vec<Vec<u8>>, Expected) {
    let mut sequence = Sequence(seed);
    let mut expected = Expected::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let long_path = format!("/api/v1/tables/{}", "x".repeat(210));
    // (raw path, the path label Fluxbase gives it)
    let paths: Vec<(String, &str)> = vec![
        (
            "/api/v1/users/550e8400-e29b-41d4-a716-446655440000".into(),
            "/api/v1/users/:id",
        ),
        (
            "/api/v1/users/6BA7B810-9DAD-11D1-80B4-00C04FD430C8".into(),
            "/api/v1/users/:id",
        ),
        (
            "/api/v1/tables/users/records/12345".into(),
            "/api/v1/tables/users/records/:id",
        ),
        ("/api/v1/tables/users".into(), "/api/v1/tables/users"),
        ("/".into(), "/"),
        (long_path, "long_path"),
    ];
    let statuses: [(i64, &str); 8] = [
        (101, "unknown"),
        (200, "2xx"),
        (201, "2xx"),
        (302, "3xx"),
        (404, "4xx"),
        (422, "4xx"),
        (500, "5xx"),
        (503, "5xx"),
    ];
    for i in 0..count {
        match i % 10 {
            // Plain HTTP requests, integer or float durations.
            0..=4 => {
                let (raw, label) = sequence.pick(&paths).clone();
                let method = *sequence.pick(&["GET", "POST", "DELETE"]);
                let (status, class) = *sequence.pick(&statuses);
                let duration = if i % 2 == 0 {
                    format!("{}", sequence.next() % 900)
                } else {
                    format!("{}.5", sequence.next() % 900)
                };
                let bytes = sequence.next() % 100_000;
                lines.push(format!(
                    r#"{{"level":"info","request_id":"r{i}","method":"{method}","path":"{raw}","ip":"{IP}","status":{status},"duration_ms":{duration},"user_agent":"gen","protocol":"HTTP/1.1","response_bytes":{bytes},"time":{time},"message":"HTTP request"}}"#
                ).into_bytes());
                expected.http(method, label, class, bytes as f64);
            }
            // Storage operations.
            5 => {
                let (method, path, status, operation, bucket) = *sequence.pick(&[
                    (
                        "GET",
                        "/api/v1/storage/avatars/u/1.png",
                        200,
                        "download",
                        "avatars",
                    ),
                    (
                        "HEAD",
                        "/api/v1/storage/docs/a.pdf",
                        404,
                        "download",
                        "docs",
                    ),
                    (
                        "POST",
                        "/api/v1/storage/docs/new.pdf",
                        201,
                        "upload",
                        "docs",
                    ),
                    (
                        "POST",
                        "/api/v1/storage/docs/chunked/abc/complete",
                        500,
                        "upload",
                        "docs",
                    ),
                    (
                        "DELETE",
                        "/api/v1/storage/avatars/u/1.png",
                        204,
                        "delete",
                        "avatars",
                    ),
                ]);
                let bytes = 1000 + sequence.next() % 5000;
                lines.push(format!(
                    r#"{{"level":"info","method":"{method}","path":"{path}","ip":"{IP}","status":{status},"duration_ms":40,"response_bytes":{bytes},"time":{time},"message":"HTTP request"}}"#
                ).into_bytes());
                let class = if status < 300 {
                    "2xx"
                } else if status < 500 {
                    "4xx"
                } else {
                    "5xx"
                };
                expected.http(method, path, class, bytes as f64);
                let outcome = if (200..300).contains(&status) {
                    "success"
                } else {
                    "error"
                };
                expected.add(format!("fluxbase_storage_operations_total{{operation=\"{operation}\",bucket=\"{bucket}\",status=\"{outcome}\"}}"), 1.0);
                expected.add(format!("fluxbase_storage_operation_duration_seconds_count{{operation=\"{operation}\",bucket=\"{bucket}\"}}"), 1.0);
                // Only a 2xx download retrieved its bytes.
                if operation == "download" && outcome == "success" {
                    expected.add(format!("fluxbase_storage_bytes_total{{operation=\"download\",bucket=\"{bucket}\"}}"), bytes as f64);
                }
            }
            // Security events with each reason.
            6 => {
                let (event_type, reason) = *sequence.pick(&[
                    ("login_success", ""),
                    ("login_failed", "user_not_found"),
                    ("login_failed", "account_locked"),
                    ("login_failed", "invalid_password"),
                    ("login_failed", "email_not_verified"),
                    ("login_failed", "something_new"),
                    ("login_failed", "tenant_mismatch"),
                    ("account_locked", ""),
                    ("token_refresh", ""),
                ]);
                let details = if event_type == "account_locked" {
                    r#"{"failed_attempts":5}"#.to_owned()
                } else {
                    format!(r#"{{"reason":"{reason}"}}"#)
                };
                lines.push(format!(
                    r#"{{"level":"info","component":"security","security_event":"{event_type}","event_type":"{event_type}","ip_address":"{IP}","details":{details},"time":{time},"message":"Security event"}}"#
                ).into_bytes());
                match event_type {
                    "login_success" => {
                        expected.add(
                            "fluxbase_auth_attempts_total{method=\"password\",result=\"success\"}"
                                .into(),
                            1.0,
                        );
                        expected.add(
                            "fluxbase_auth_success_total{method=\"password\"}".into(),
                            1.0,
                        );
                        for token_type in ["access", "refresh"] {
                            expected.add(
                                format!(
                                    "fluxbase_auth_tokens_issued_total{{token_type=\"{token_type}\"}}"
                                ),
                                1.0,
                            );
                        }
                    }
                    // Fluxbase's own counter leaves other tenants' users out.
                    "login_failed" if reason == "tenant_mismatch" => {}
                    "login_failed" => {
                        let reason = if reason == "something_new" {
                            "other"
                        } else {
                            reason
                        };
                        expected.add(
                            "fluxbase_auth_attempts_total{method=\"password\",result=\"failure\"}"
                                .into(),
                            1.0,
                        );
                        expected.add(format!("fluxbase_auth_failure_total{{method=\"password\",reason=\"{reason}\"}}"), 1.0);
                    }
                    // The 5th wrong password in a row.
                    "account_locked" => {
                        expected.add(
                            "fluxbase_auth_attempts_total{method=\"password\",result=\"failure\"}"
                                .into(),
                            1.0,
                        );
                        expected.add(
                            "fluxbase_auth_failure_total{method=\"password\",reason=\"invalid_password\"}"
                                .into(),
                            1.0,
                        );
                    }
                    // Never emitted by Fluxbase: counts nothing.
                    _ => {}
                }
            }
            // Rate-limited requests.
            7 => {
                let (path, limiter) = *sequence.pick(&[
                    ("/api/v1/auth/signin", "auth_login"),
                    ("/api/v1/auth/signup", "auth_signup"),
                    ("/api/v1/auth/magiclink", "auth_magic_link"),
                    ("/api/v1/tables/users", "global"),
                ]);
                lines.push(format!(
                    r#"{{"level":"warn","method":"POST","path":"{path}","ip":"{IP}","status":429,"duration_ms":1,"response_bytes":60,"time":{time},"message":"HTTP request"}}"#
                ).into_bytes());
                expected.http("POST", path, "4xx", 60.0);
                expected.add(format!("fluxbase_rate_limit_hits_total{{limiter_type=\"{limiter}\",identifier=\"{IP_HASH}\"}}"), 1.0);
            }
            // Slow queries and events no family counts.
            8 => {
                if i % 20 == 8 {
                    lines.push(format!(r#"{{"level":"warn","duration_ms":1500,"operation":"select","table":"users","query":"SELECT 1","time":{time},"message":"Slow query detected"}}"#).into_bytes());
                    expected.add("fluxbase_exporter_slow_queries_total{operation=\"select\",table=\"users\"}".into(), 1.0);
                } else {
                    lines.push(format!(r#"{{"level":"info","time":{time},"message":"Realtime client connected"}}"#).into_bytes());
                }
            }
            // Garbage, each kind of skip.
            _ => {
                let (line, reason): (Vec<u8>, &str) = match (i / 10) % 4 {
                    0 => (b"10:30AM INF HTTP request method=GET path=/ status=200".to_vec(), "not_json"),
                    1 => (br#"{"message":"HTTP request","method":"GET""#.to_vec(), "invalid_json"),
                    2 => (b"{\"message\":\"HTTP request\",\"path\":\"/\xff\xfe\"}".to_vec(), "invalid_json"),
                    _ => (format!(r#"{{"message":"HTTP request","method":"GET","path":"/","time":{time}}}"#).into_bytes(), "invalid_field"),
                };
                lines.push(line);
                *expected.skipped.entry(reason).or_default() += 1.0;
            }
        }
    }
    expected.lines = lines.len() as u64;
    (lines, expected)
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn append(path: &Path, bytes: &[u8]) {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut text = Vec::new();
    for line in lines {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    append(path, &text);
}

/// Waits until the source has read `lines` lines, then checks every expected series exactly.
fn check(exporter: &Exporter, source: &str, expected: &Expected, extra_lines: u64) {
    let lines_series = format!("fluxbase_exporter_events_lines_total{{source=\"{source}\"}}");
    let want = (expected.lines + extra_lines) as f64;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = exporter.get("/metrics").text();
        if metric(&text, &lines_series) == Some(want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "read {:?} of {want} lines\n{:#?}",
            metric(&text, &lines_series),
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A fresh scrape: one rendered while the last line was being applied may have read the
    // fed families before it and the line count after it.
    let text = exporter.get("/metrics").text();
    for (series, amount) in &expected.series {
        let found = metric(&text, series);
        match found {
            Some(found) if (found - amount).abs() < 1e-6 => {}
            _ => panic!("{series}: expected {amount}, found {found:?}"),
        }
    }
    for (reason, amount) in &expected.skipped {
        let series = format!(
            "fluxbase_exporter_events_skipped_total{{source=\"{source}\",reason=\"{reason}\"}}"
        );
        assert_eq!(metric(&text, &series), Some(*amount), "{series}");
    }
    // Nothing counted that the generator did not produce.
    let counted = |prefix: &str| -> f64 {
        samples(&text)
            .iter()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let generated = |prefix: &str| -> f64 {
        expected
            .series
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    for prefix in [
        "fluxbase_http_requests_total{",
        "fluxbase_storage_operations_total{",
        "fluxbase_auth_attempts_total{",
        "fluxbase_rate_limit_hits_total{",
    ] {
        assert_eq!(counted(prefix), generated(prefix), "{prefix}");
    }
}

#[test]
fn the_hash_in_the_generator_is_sha256_of_the_ip() {
    let output = std::process::Command::new("sh")
        .args(["-c", &format!("printf '%s' '{IP}' | sha256sum")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with(IP_HASH));
}

#[test]
fn a_followed_log_counts_exactly_what_was_written_across_rotations() {
    let dir = TempDir::new("events-file");
    let log = dir.path.join("fluxbase.log");
    // Lines already in the file before the exporter starts are not replayed.
    write_lines(&log, &generate(50, 7, now_seconds()).0);
    let path = log.to_str().unwrap().to_owned();
    let exporter = Exporter::start_with_env(
        &["--events.file", &path, "--events.poll-interval", "50ms"],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "ev")],
    );
    // The follower takes the end of the file as its start on its first poll; write after it.
    wait_for_source_state(&exporter, "following");
    let source = format!("file:{path}");
    let time = now_seconds();
    let (first, mut expected) = generate(400, 11, time);
    write_lines(&log, &first);
    // A line split across two writes.
    let split = format!(
        r#"{{"message":"HTTP request","method":"PUT","path":"/split","status":200,"time":{time}}}"#
    );
    append(&log, &split.as_bytes()[..20]);
    // Polls that find half a line keep it until its end comes.
    wait_for_rounds(&exporter, &format!("events:{source}"), 2);
    append(&log, &split.as_bytes()[20..]);
    append(&log, b"\n");
    expected.add(
        "fluxbase_http_requests_total{method=\"PUT\",path=\"/split\",status=\"2xx\"}".into(),
        1.0,
    );
    expected.add(
        "fluxbase_http_response_size_bytes_count{method=\"PUT\",path=\"/split\",status=\"2xx\"}"
            .into(),
        0.0,
    );
    // A 10 MB line: skipped as too long, never held whole in memory.
    let mut huge = vec![b'x'; 10 * 1024 * 1024];
    huge.push(b'\n');
    append(&log, &huge);
    *expected.skipped.entry("too_long").or_default() += 1.0;
    check(&exporter, &source, &expected, 2);

    // Rotation by rename and create, in the middle of a run.
    let (second, second_expected) = generate(300, 13, time);
    write_lines(&log, &second[..150]);
    fs::rename(&log, dir.path.join("fluxbase.log.1")).unwrap();
    write_lines(&dir.path.join("fluxbase.log.1"), &second[150..200]);
    write_lines(&log, &second[200..]);
    merge(&mut expected, second_expected);
    check(&exporter, &source, &expected, 2);

    // Rotation by copy and truncate, after the exporter has read what was written (lines
    // written between its last read and the truncation are lost, as with any tail).
    let (before, before_expected) = generate(100, 17, time);
    write_lines(&log, &before);
    merge(&mut expected, before_expected);
    check(&exporter, &source, &expected, 2);
    fs::copy(&log, dir.path.join("fluxbase.log.2")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    let (after, after_expected) = generate(100, 18, time);
    write_lines(&log, &after);
    merge(&mut expected, after_expected);
    check(&exporter, &source, &expected, 2);

    // Deleted, then back.
    fs::remove_file(&log).unwrap();
    wait_for_rounds(&exporter, &format!("events:{source}"), 2);
    let (fourth, fourth_expected) = generate(100, 19, time);
    write_lines(&log, &fourth);
    merge(&mut expected, fourth_expected);
    check(&exporter, &source, &expected, 2);

    let hints = exporter
        .logs()
        .iter()
        .filter(|l| l.contains("FLUXBASE_LOGGING_CONSOLE_FORMAT=json"))
        .count();
    assert_eq!(hints, 1, "the console-format hint is logged once");
}

/// Waits until the first event source says `state` (the exporter runs with token `ev`).
fn wait_for_source_state(exporter: &Exporter, state: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let body = exporter
            .get_with(
                "/api/v1/monitoring/metrics",
                &[("Authorization", "Bearer ev")],
            )
            .json();
        if body["exporter"]["event_sources"][0]["state"] == state {
            return;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn merge(into: &mut Expected, from: Expected) {
    for (series, amount) in from.series {
        into.add(series, amount);
    }
    for (reason, amount) in from.skipped {
        *into.skipped.entry(reason).or_default() += amount;
    }
    into.lines += from.lines;
}

#[test]
fn a_missing_file_is_waited_for_and_read_from_its_start() {
    let dir = TempDir::new("events-missing");
    let log = dir.path.join("later.log");
    let path = log.to_str().unwrap().to_owned();
    let exporter = Exporter::start_with_env(
        &["--events.file", &path, "--events.poll-interval", "50ms"],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "ev")],
    );
    // Its first polls find no file.
    wait_for_rounds(&exporter, &format!("events:file:{path}"), 2);
    let json = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer ev")],
        )
        .json();
    let sources = json["exporter"]["event_sources"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["source"], format!("file:{path}"));
    assert_eq!(sources[0]["state"], "waiting for the file");
    // A source that cannot read its input says so as a check.
    let check_success = format!("fluxbase_exporter_check_success{{check=\"events:file:{path}\"}}");
    assert_eq!(
        metric(&exporter.get("/metrics").text(), &check_success),
        Some(0.0)
    );
    let (lines, expected) = generate(120, 23, now_seconds());
    write_lines(&log, &lines);
    check(&exporter, &format!("file:{path}"), &expected, 0);
    let json = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer ev")],
        )
        .json();
    assert_eq!(json["exporter"]["event_sources"][0]["state"], "following");
    assert_eq!(
        metric(&exporter.get("/metrics").text(), &check_success),
        Some(1.0)
    );
    assert!(
        json["exporter"]["event_sources"][0]["last_event_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn from_start_replays_the_file() {
    let dir = TempDir::new("events-replay");
    let log = dir.path.join("old.log");
    let (lines, expected) = generate(200, 29, now_seconds());
    write_lines(&log, &lines);
    let path = log.to_str().unwrap().to_owned();
    let exporter = Exporter::start(&["--events.file", &path, "--events.from-start"]);
    check(&exporter, &format!("file:{path}"), &expected, 0);
}

#[test]
fn standard_input_is_a_source() {
    use std::process::Stdio;
    let (lines, expected) = generate(150, 31, now_seconds());
    let mut child = crate::harness::command(
        &["--web.listen-address", "127.0.0.1:0", "--events.file", "-"],
        &[],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let exporter = crate::harness::Exporter::adopt(child);
    for line in &lines {
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    stdin.flush().unwrap();
    check(&exporter, "stdin", &expected, 0);
    let check_success = "fluxbase_exporter_check_success{check=\"events:stdin\"}";
    assert_eq!(
        metric(&exporter.get("/metrics").text(), check_success),
        Some(1.0)
    );
    // Standard input closed: nothing more can be read.
    drop(stdin);
    wait_for(&exporter, "/metrics", "the stdin check failing", |r| {
        metric(&r.text(), check_success) == Some(0.0)
    });
}

/// Inserts `rows` HTTP request rows as Fluxbase's writer does (one multi-row INSERT per batch,
/// `ip` in `ip_address`, `time` left inside `fields`), stamped `offset_seconds` after the
/// transaction's start, with `status`.
fn insert_http(
    client: &mut impl postgres::GenericClient,
    rows: i32,
    offset_seconds: f64,
    status: i32,
) {
    client
        .execute(
            "INSERT INTO logging.entries (\"timestamp\", category, level, message, request_id, ip_address, fields) \
             SELECT now() + make_interval(secs => $2) + n * interval '1 microsecond', 'http', 'warn', 'HTTP request', \
                    'req-' || n, '203.0.113.50', \
                    jsonb_build_object('method', 'GET', 'path', '/api/v1/tables/users/records/7', 'status', $3::int, \
                        'duration_ms', 12, 'response_bytes', 300, 'user_agent', 'curl/8', 'protocol', 'HTTP/1.1', \
                        'time', extract(epoch FROM now())::int8) \
             FROM generate_series(1, $1) n",
            &[&rows, &offset_seconds, &status],
        )
        .unwrap();
}

/// Waits until `series` reads `want` in the exporter's /metrics, and returns the text.
fn wait_metric(exporter: &Exporter, series: &str, want: f64) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = exporter.get("/metrics").text();
        if metric(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series}: {:?}, want {want}",
            metric(&text, series)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NOT_FOUND: &str = "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/users/records/:id\",status=\"4xx\"}";
const DATABASE_LINES: &str = "fluxbase_exporter_events_lines_total{source=\"database\"}";

fn start_reading_logging_entries(url: &str) -> Exporter {
    let exporter = Exporter::start_with_env(
        &[
            "--database.url",
            url,
            "--events.database",
            "--check.interval",
            "200ms",
            "--check.timeout",
            "3s",
        ],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "ev")],
    );
    // Wait until the reader has taken its starting point: its first round has succeeded.
    wait_for_source_state(&exporter, "following logging.entries");
    exporter
}

/// Rows committed late, in batches, out of order, by concurrent transactions: each counted
/// once, in the round that first sees its transaction; and a transaction that rolls back is
/// never counted.
#[test]
fn logging_entries_rows_count_once_even_committed_late_and_out_of_order() {
    let database = Cluster::shared().database(true, &[]);
    let exporter = start_reading_logging_entries(&database.url());
    let mut early = database.connect();
    let mut client = database.connect();
    let mut aborted = database.connect();

    // A batch stamped first but committed last, and one that rolls back.
    let mut late = early.transaction().unwrap();
    insert_http(&mut late, 100, 0.0, 404);
    let mut rolled_back = aborted.transaction().unwrap();
    insert_http(&mut rolled_back, 7, 0.0, 404);
    // Meanwhile, batches of 100 commit, stamped after the open batch.
    for _ in 0..5 {
        insert_http(&mut client, 100, 0.0, 404);
    }
    // Fifty rows sharing one timestamp, and a security event.
    client
        .execute(
            "INSERT INTO logging.entries (\"timestamp\", category, level, message, ip_address, fields) \
             SELECT now(), 'http', 'warn', 'HTTP request', '203.0.113.50', \
                    '{\"method\":\"GET\",\"path\":\"/api/v1/tables/users/records/7\",\"status\":404}' \
             FROM generate_series(1, 50)",
            &[],
        )
        .unwrap();
    wait_metric(&exporter, NOT_FOUND, 550.0);
    // Several rounds pass while the early batch is still open: nothing more, nothing twice.
    assert_eq!(
        metric(&wait_for_rounds(&exporter, "events:database", 3), NOT_FOUND),
        Some(550.0)
    );
    late.commit().unwrap();
    rolled_back.rollback().unwrap();
    wait_metric(&exporter, NOT_FOUND, 650.0);

    // A row stamped within the overlap before its insert is counted; one stamped long before
    // (10 minutes, more than --events.database-overlap) is behind every read: documented as
    // lost.
    insert_http(&mut client, 5, -30.0, 404);
    wait_metric(&exporter, NOT_FOUND, 655.0);
    insert_http(&mut client, 1, -600.0, 404);
    let text = wait_for_rounds(&exporter, "events:database", 3);
    assert_eq!(metric(&text, NOT_FOUND), Some(655.0));
    assert_eq!(metric(&text, DATABASE_LINES), Some(655.0));
    assert_eq!(
        metric(
            &text,
            "fluxbase_exporter_check_success{check=\"events:database\"}"
        ),
        Some(1.0)
    );
}

/// Regression: the reader stopped advancing once a category held 50,000 rows inside its
/// overlap window. 60,000 rows in 600 batches of 100, some transactions overlapping: every one
/// is counted, once.
#[test]
fn logging_entries_keep_up_with_a_burst_and_never_stall() {
    let database = Cluster::shared().database(true, &[]);
    let exporter = start_reading_logging_entries(&database.url());
    let mut client = database.connect();
    let mut other = database.connect();
    let mut open = other.transaction().unwrap();
    insert_http(&mut open, 100, 0.0, 500);
    for _ in 0..599 {
        insert_http(&mut client, 100, 0.0, 500);
    }
    open.commit().unwrap();
    let errors = "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/users/records/:id\",status=\"5xx\"}";
    wait_metric(&exporter, errors, 60_000.0);
    insert_http(&mut client, 100, 0.0, 500);
    let text = wait_metric(&exporter, errors, 60_100.0);
    assert_eq!(metric(&text, DATABASE_LINES), Some(60_100.0));
}

/// Slow queries live in category `system`, beside every other system line: only they are
/// read (filtered by the server), and they feed the slow-query counter.
#[test]
fn slow_queries_are_read_from_the_system_category() {
    let database = Cluster::shared().database(true, &[]);
    let exporter = start_reading_logging_entries(&database.url());
    let mut client = database.connect();
    client
        .batch_execute(
            "INSERT INTO logging.entries (category, level, message, fields) VALUES \
               ('system', 'warn', 'Slow query detected', '{\"duration_ms\":1500,\"operation\":\"select\",\"table\":\"users\",\"query\":\"SELECT * FROM users\"}'), \
               ('system', 'info', 'Server started', '{\"port\":8080}'), \
               ('system', 'info', 'Realtime client connected', '{}');",
        )
        .unwrap();
    let text = wait_metric(
        &exporter,
        "fluxbase_exporter_slow_queries_total{operation=\"select\",table=\"users\"}",
        1.0,
    );
    // The other system lines never left the server.
    assert_eq!(metric(&text, DATABASE_LINES), Some(1.0));
    assert_eq!(
        metric(
            &wait_for_rounds(&exporter, "events:database", 2),
            DATABASE_LINES
        ),
        Some(1.0)
    );
}

/// The fixture's log rows (tests/fixtures/fluxbase.sql) count as Fluxbase's own counters count
/// them: five wrong passwords are five `invalid_password` failures (the 5th logged as
/// `account_locked`), a password sign-in issues an access and a refresh token, dashboard
/// sign-ins and a `tenant_mismatch` are not counted, the slow query comes from `system`, and
/// only the download that answered 2xx adds bytes. The rows already there at the start are
/// not counted; replayed live, in two transactions committed out of order, they are.
#[test]
fn the_fixtures_events_count_as_fluxbase_counts_them() {
    let database = Cluster::shared().database(true, &[]);
    let exporter = start_reading_logging_entries(&database.url());
    let replay = |client: &mut postgres::Transaction<'_>, security: bool| {
        client
            .execute(
                "INSERT INTO logging.entries (\"timestamp\", category, level, message, component, user_id, ip_address, fields) \
                 SELECT now(), category, level, message, component, user_id, ip_address, fields FROM logging.entries \
                 WHERE \"timestamp\" < now() - interval '1 hour' AND (category = 'security') = $1",
                &[&security],
            )
            .unwrap();
    };
    let mut first = database.connect();
    let mut second = database.connect();
    let mut security = first.transaction().unwrap();
    replay(&mut security, true);
    let mut rest = second.transaction().unwrap();
    replay(&mut rest, false);
    rest.commit().unwrap();
    security.commit().unwrap();

    let expected = [
        (
            "fluxbase_auth_attempts_total{method=\"password\",result=\"failure\"}",
            5.0,
        ),
        (
            "fluxbase_auth_failure_total{method=\"password\",reason=\"invalid_password\"}",
            5.0,
        ),
        (
            "fluxbase_auth_attempts_total{method=\"password\",result=\"success\"}",
            1.0,
        ),
        ("fluxbase_auth_success_total{method=\"password\"}", 1.0),
        (
            "fluxbase_auth_tokens_issued_total{token_type=\"access\"}",
            1.0,
        ),
        (
            "fluxbase_auth_tokens_issued_total{token_type=\"refresh\"}",
            1.0,
        ),
        (
            "fluxbase_exporter_slow_queries_total{operation=\"select\",table=\"users\"}",
            1.0,
        ),
        (
            "fluxbase_storage_bytes_total{operation=\"download\",bucket=\"uploads\"}",
            2048.0,
        ),
        (
            "fluxbase_storage_operations_total{operation=\"download\",bucket=\"uploads\",status=\"error\"}",
            1.0,
        ),
        // 9 security rows (the first replay), the slow query and two requests; "Server
        // started" never leaves the server.
        (DATABASE_LINES, 12.0),
    ];
    let text = wait_metric(&exporter, DATABASE_LINES, 12.0);
    for (series, value) in expected {
        assert_eq!(metric(&text, series), Some(value), "{series}\n{text}");
    }
    let auth: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("fluxbase_auth_"))
        .collect();
    assert_eq!(auth.len(), 6, "nothing else is counted: {auth:#?}");
}
