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
