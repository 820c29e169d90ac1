//! A golden test of the binary's whole `/metrics`: the fixture database, a fixed event file read
//! from its start and a storage root with known contents, compared line by line with
//! `tests/fixtures/golden/metrics.prom` once every worker has published what they give.
//!
//! Values that move from run to run (uptime, durations, timestamps, the process's own figures,
//! the count of our own scrapes) are replaced by `<moves>`; everything else, names, help, types,
//! labels and every value the inputs decide, must match to the byte. `UPDATE_GOLDEN=1` rewrites
//! the file from the run instead of comparing (then read its diff before committing it).

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Exporter, TempDir, metric, wait_for};
use crate::postgres::Cluster;

/// The environment variable that turns the comparison into an update of the golden file.
const UPDATE: &str = "UPDATE_GOLDEN";

/// Families whose every sample moves between runs: the value of each of their samples
/// (`_bucket`, `_sum` and `_count` included) is replaced.
const MOVING_FAMILIES: &[&str] = &[
    // Timing: how long things took, and when.
    "fluxbase_exporter_check_duration_seconds",
    "fluxbase_exporter_check_last_success_timestamp_seconds",
    "fluxbase_exporter_storage_probe_duration_seconds",
    "fluxbase_exporter_http_request_duration_seconds",
    "fluxbase_exporter_http_requests_total",
    "fluxbase_system_uptime_seconds",
    // The cluster is shared with the other tests: its session counts move with them.
    "fluxbase_db_connections",
    "fluxbase_db_connections_idle",
    // The filesystem the storage root is on is the machine's.
    "fluxbase_exporter_storage_filesystem_available_bytes",
    "fluxbase_exporter_storage_filesystem_size_bytes",
    // Our own scrapes' connections open and close around the one that reads the gauge.
    "fluxbase_exporter_http_open_connections",
    // The process's own figures.
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
];

/// Single samples that move, where the rest of their family does not: the event lag's sum grows
/// with the clock, while the fixed events, stamped in January 2026, are all older than the
/// largest bucket (600 s), so every bucket but `+Inf` stays at zero.
const MOVING_SAMPLES: &[&str] = &["fluxbase_exporter_events_lag_seconds_sum"];

/// Label values that differ per build or per run, replaced wherever they appear.
fn moving_label_values(events: &Path) -> Vec<(String, &'static str)> {
    vec![
        (events.display().to_string(), "<events file>"),
        (
            format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "version=\"<version>\"",
        ),
    ]
}

/// The exposition with what moves replaced: sample values of [`MOVING_FAMILIES`] and
/// [`MOVING_SAMPLES`], the build's
/// version, revision and compiler, and the event file's path.
fn normalise(exposition: &str, labels: &[(String, &'static str)]) -> String {
    let mut out = String::with_capacity(exposition.len());
    for line in exposition.lines() {
        let mut line = line.to_owned();
        for (value, placeholder) in labels {
            line = line.replace(value.as_str(), placeholder);
        }
        if line.starts_with("fluxbase_exporter_build_info{") {
            line = replace_label(&line, "revision");
            line = replace_label(&line, "rustc");
        }
        if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let moves = MOVING_FAMILIES.iter().any(|family| {
                name.strip_prefix(family)
                    .is_some_and(|rest| ["", "_bucket", "_sum", "_count"].contains(&rest))
            });
            if moves || MOVING_SAMPLES.contains(&name) {
                let value_start = line.rfind(' ').expect("a sample has a value") + 1;
                line.replace_range(value_start.., "<moves>");
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `line` with the value of label `name` replaced by `<name>`.
fn replace_label(line: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let Some(start) = line.find(&key).map(|at| at + key.len()) else {
        return line.to_owned();
    };
    let end = start + line[start..].find('"').expect("a closed label value");
    format!("{}<{name}>{}", &line[..start], &line[end..])
}

/// Compares `actual` with the golden file `name` under `tests/fixtures/golden/`, failing with a
/// line diff; with `UPDATE_GOLDEN` set, writes `actual` there instead.
#[track_caller]
fn check(actual: &str, name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name);
    if std::env::var_os(UPDATE).is_some() {
        fs::create_dir_all(path.parent().expect("a parent")).expect("create the golden folder");
        fs::write(&path, actual).expect("write the golden file");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run with {UPDATE}=1 to create it",
            path.display()
        )
    });
    if actual != expected {
        panic!(
            "{} differs (- golden, + this run; {UPDATE}=1 rewrites it):\n{}",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A unified-style diff of two texts by lines: `-` only in `old`, `+` only in `new`, two lines
/// of context around each change, `...` where unchanged lines are left out.
fn line_diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    // Longest common subsequence, from the ends, so the walk below goes forwards.
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut edits: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            edits.push((' ', old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            edits.push(('-', old[i]));
            i += 1;
        } else {
            edits.push(('+', new[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let near_change = |at: usize| {
        let from = at.saturating_sub(CONTEXT);
        let to = (at + CONTEXT + 1).min(edits.len());
        edits[from..to].iter().any(|(kind, _)| *kind != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (at, (kind, line)) in edits.iter().enumerate() {
        if near_change(at) {
            out.push_str(&format!("{kind} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("...\n");
            skipped = true;
        }
    }
    out
}

/// The storage root: two buckets with files of known sizes, and an empty one.
fn storage_root() -> TempDir {
    let root = TempDir::new("golden-storage");
    let files: [(&str, usize); 4] = [
        ("avatars/u/1.png", 100),
        ("avatars/u/2.png", 250),
        ("documents/a.pdf", 3000),
        ("documents/reports/2026.pdf", 48),
    ];
    for (path, size) in files {
        let path = root.path.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create a bucket folder");
        fs::write(&path, vec![b'x'; size]).expect("write an object");
    }
    fs::create_dir_all(root.path.join("empty")).expect("create the empty bucket");
    root
}

#[test]
fn the_whole_exposition_of_the_fixture_database_events_and_storage() {
    let database = Cluster::shared().database(true, &[]);
    let storage = storage_root();
    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events.jsonl");
    let event_lines = fs::read_to_string(&events)
        .expect("read the event fixture")
        .lines()
        .count() as f64;
    let url = database.url();
    let (events_arg, storage_arg) = (
        events.display().to_string(),
        storage.path.display().to_string(),
    );
    let mut args = vec![
        "--database.url",
        &url,
        "--storage.path",
        &storage_arg,
        "--events.file",
        &events_arg,
        "--events.from-start",
        "--events.poll-interval",
        "50ms",
    ];
    args.extend_from_slice(crate::database::FAST);
    let exporter = Exporter::start(&args);

    // Every worker has published what its first rounds give: each check has succeeded (a
    // check's success is recorded after every figure of its round), the event file has been
    // read to its end, and the storage scan has counted the buckets.
    let source = format!("file:{events_arg}");
    let checks = [
        "database".to_owned(),
        "database_aggregates".to_owned(),
        "storage".to_owned(),
        "storage_scan".to_owned(),
        format!("events:{source}"),
    ];
    let metrics = wait_for(&exporter, "/metrics", "every worker's first rounds", |r| {
        let text = r.text();
        checks.iter().all(|check| {
            metric(
                &text,
                &format!("fluxbase_exporter_check_success{{check=\"{check}\"}}"),
            ) == Some(1.0)
        }) && metric(
            &text,
            &format!("fluxbase_exporter_events_lines_total{{source=\"{source}\"}}"),
        ) == Some(event_lines)
            && metric(
                &text,
                "fluxbase_exporter_storage_objects{source=\"filesystem\",bucket=\"documents\"}",
            )
            .is_some()
    })
    .text();

    let labels = moving_label_values(&events);
    check(&normalise(&metrics, &labels), "metrics.prom");
}

#[test]
fn the_normalisation_replaces_what_moves_and_keeps_the_rest() {
    let labels = vec![("/tmp/x/events.jsonl".to_owned(), "<events file>")];
    let exposition = "\
# HELP fluxbase_system_uptime_seconds Uptime
fluxbase_system_uptime_seconds 12.5
fluxbase_system_uptime_seconds_extra 3
fluxbase_exporter_events_lines_total{source=\"file:/tmp/x/events.jsonl\"} 21
fluxbase_exporter_events_lag_seconds_bucket{le=\"+Inf\"} 4
fluxbase_exporter_events_lag_seconds_sum 4000.5
fluxbase_exporter_check_duration_seconds_count 2
fluxbase_exporter_build_info{version=\"0.1.0\",revision=\"abc123\",rustc=\"1.90.0\"} 1
";
    assert_eq!(
        normalise(exposition, &labels),
        "\
# HELP fluxbase_system_uptime_seconds Uptime
fluxbase_system_uptime_seconds <moves>
fluxbase_system_uptime_seconds_extra 3
fluxbase_exporter_events_lines_total{source=\"file:<events file>\"} 21
fluxbase_exporter_events_lag_seconds_bucket{le=\"+Inf\"} 4
fluxbase_exporter_events_lag_seconds_sum <moves>
fluxbase_exporter_check_duration_seconds_count <moves>
fluxbase_exporter_build_info{version=\"0.1.0\",revision=\"<revision>\",rustc=\"<rustc>\"} 1
"
    );
}

#[test]
fn the_diff_shows_changed_lines_with_context() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
    assert_eq!(
        line_diff(old, new),
        "...\n  c\n  d\n- e\n+ E\n  f\n  g\n  h\n+ i\n"
    );
}
