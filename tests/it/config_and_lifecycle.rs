//! Flags, exit codes, logs and shutdown of the real binary.

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::{DEADLINE, Exporter, command};

/// Runs the binary to completion and returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut child = command(args, env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start binary");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("binary did not exit for {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[track_caller]
fn check_config_error(args: &[&str], env: &[(&str, &str)], expected_line: &str) {
    let (code, _, stderr) = run(args, env);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr, format!("fluxbase-exporter: {expected_line}\n"));
}

#[test]
fn invalid_configuration_exits_2_with_one_line_naming_the_setting() {
    check_config_error(
        &["--nope"],
        &[],
        "unexpected argument '--nope' found (see --help)",
    );
    check_config_error(
        &["--web.listen-address", "not-an-address"],
        &[],
        "invalid --web.listen-address: \"not-an-address\" is not HOST:PORT or :PORT (invalid socket address)",
    );
    check_config_error(
        &["--web.auth-token-file", "/nonexistent/token"],
        &[],
        "invalid --web.auth-token-file: cannot read /nonexistent/token: No such file or directory (os error 2)",
    );
    check_config_error(
        &["--log.format", "xml"],
        &[],
        "invalid --log.format: \"xml\" is not json or logfmt",
    );
    check_config_error(
        &[],
        &[("FLUXBASE_EXPORTER_WEB_THREADS", "0")],
        "invalid --web.threads: must be between 1 and 256",
    );
    check_config_error(
        &[],
        &[("FLUXBASE_DEBUG", "maybe")],
        "invalid FLUXBASE_DEBUG: \"maybe\" is not true or false",
    );
}

/// One path for each event: a log file (or stdin) together with logging.entries would count
/// every event twice, and is refused.
#[test]
fn a_log_file_with_logging_entries_exits_2() {
    check_config_error(
        &["--events.database", "--events.file", "-"],
        &[(
            "FLUXBASE_EXPORTER_DATABASE_URL",
            "postgres://u@127.0.0.1:1/db",
        )],
        "invalid --events.database: cannot be used with --events.file: the same Fluxbase events reach both, so every event would be counted twice; read logging.entries (one table for a whole fleet) or each replica's own log file, not both",
    );
}

#[test]
fn flags_are_also_read_from_the_environment() {
    let exporter = Exporter::start_with_env(
        &[],
        &[("FLUXBASE_EXPORTER_WEB_TELEMETRY_PATH", "/from-env")],
    );
    assert_eq!(exporter.get("/from-env").status, 200);
}

#[test]
fn a_port_in_use_says_so() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = run(&["--web.listen-address", &address], &[]);
    assert_eq!(code, Some(1));
    let line: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(
        line["message"],
        format!("cannot listen on {address} (--web.listen-address): the address is already in use")
    );
}

#[test]
fn version_names_the_exporter_version_revision_rustc_and_target() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, Some(0));
    let line = stdout.trim();
    assert!(
        line.starts_with(&format!(
            "fluxbase-exporter {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{line}"
    );
    assert!(
        line.contains(", rustc ") && line.contains(", target "),
        "{line}"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_exporter_cleanly_within_two_seconds() {
    for signal in ["TERM", "INT"] {
        let exporter = Exporter::start(&[]);
        assert_eq!(exporter.get("/livez").status, 200);
        let (status, took) = exporter.stop_with(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(took < Duration::from_secs(2), "SIG{signal} took {took:?}");
    }
}

#[test]
fn logs_are_json_lines_with_level_time_message_first() {
    let exporter = Exporter::start(&[]);
    let line = exporter
        .logs()
        .into_iter()
        .find(|l| l.contains("listening"))
        .unwrap();
    assert!(
        line.starts_with("{\"level\":\"info\",\"time\":\""),
        "{line}"
    );
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    let time = json["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.len() == "2024-01-15T10:30:00.000Z".len(),
        "{time}"
    );
    assert_eq!(json["message"], "listening");
}

#[test]
fn logfmt_is_available() {
    let exporter = Exporter::start(&["--log.format", "logfmt", "--log.level", "debug"]);
    exporter.get("/health");
    let deadline = std::time::Instant::now() + DEADLINE;
    while !exporter
        .logs()
        .iter()
        .any(|l| l.contains("message=\"HTTP request\""))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no logfmt access line: {:?}",
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let access = exporter
        .logs()
        .into_iter()
        .find(|l| l.contains("message=\"HTTP request\""))
        .unwrap();
    assert!(access.starts_with("level=debug time="), "{access}");
    assert!(
        access.contains(" method=GET path=/health status=200 duration_ms="),
        "{access}"
    );
}
