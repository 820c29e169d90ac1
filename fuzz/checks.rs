//! The properties `make fuzz` holds the exporter's untrusted-input handling to. Each check takes
//! arbitrary input and panics when a property fails (or when the code under test panics).
//!
//! One source for two drivers: the cargo-fuzz targets in `fuzz/fuzz_targets/` (libFuzzer,
//! coverage-guided, nightly) and the property tests in `tests/it/properties.rs` (proptest, any
//! toolchain), which also replay every input saved under `fuzz/regressions/`.

use std::sync::Arc;
use std::time::Instant;

use fluxbase_exporter::events::mapping::Ingest;
use fluxbase_exporter::events::parse::parse_line;
use fluxbase_exporter::families::{ExporterFamilies, FluxbaseFamilies};
use fluxbase_exporter::labels::{normalize_path, normalize_path_into};
use fluxbase_exporter::metrics::{Registry, Scrape, SeriesLimit, escape_help, escape_label_value};
use fluxbase_exporter::upstream::{self, Upstream, UpstreamStatus, parse};

/// A check over raw input, as a fuzzer hands it over.
pub type Check = fn(&[u8]);

/// The checks by name, for replaying saved inputs: the names are the fuzz targets'.
pub const TARGETS: [(&str, Check); 4] = [
    ("event_lines", event_lines),
    ("path_normalisation", path_normalisation_bytes),
    ("exposition_escaping", exposition_escaping_bytes),
    ("upstream_exposition", upstream_exposition),
];

/// Any bytes as a Fluxbase log: each line parsed and counted as the events worker does, then
/// every family rendered. Whatever the lines held, the exposition stays valid text format.
pub fn event_lines(data: &[u8]) {
    // A small series limit, so that the guard's refusals are exercised too.
    let limit = SeriesLimit::new(32);
    let fluxbase = Arc::new(FluxbaseFamilies::new(&limit, Instant::now()));
    let exporter = Arc::new(ExporterFamilies::new(&limit));
    let mut ingest = Ingest::new(Arc::clone(&fluxbase), Arc::clone(&exporter));
    for line in data.split(|&b| b == b'\n') {
        if let Ok(event) = parse_line(line) {
            ingest.count(&event, 0.0);
        }
    }
    let mut registry = Registry::new();
    registry.register(fluxbase);
    registry.register(exporter);
    registry.register(limit);
    let mut out = Vec::new();
    registry.render(&Scrape::now(), &mut out);
    let text = std::str::from_utf8(&out).expect("the exposition is UTF-8");
    check_exposition(text);
}

/// Any bytes as Fluxbase's metrics endpoint answer: the strict parser never panics; what it
/// accepts renders back (each sample re-written) to text it parses to the same samples; and
/// merged into the Fluxbase families, the exposition stays valid text format.
pub fn upstream_exposition(data: &[u8]) {
    let Ok(families) = parse::parse(data) else {
        return;
    };
    for family in &families {
        let mut text = format!("# TYPE {} {}\n", family.name, family.kind.as_str()).into_bytes();
        for sample in &family.samples {
            upstream::write_sample(&mut text, sample);
        }
        let again = parse::parse(&text)
            .unwrap_or_else(|err| panic!("{err} in {:?}", String::from_utf8_lossy(&text)));
        assert_eq!(again.len(), 1, "{:?}", String::from_utf8_lossy(&text));
        assert_eq!(again[0].samples.len(), family.samples.len());
        for (before, after) in family.samples.iter().zip(&again[0].samples) {
            assert_eq!(before.name, after.name);
            assert_eq!(before.labels, after.labels);
            assert!(
                before.value == after.value || (before.value.is_nan() && after.value.is_nan()),
                "{} became {}",
                before.value,
                after.value
            );
        }
    }
    let limit = SeriesLimit::new(32);
    let Ok(mut reading) = upstream::scrape::digest(&families, &limit, None) else {
        return;
    };
    let scrape = Scrape::now();
    reading.read_at = Some(scrape.instant);
    let source = Upstream::new(
        "http://127.0.0.1:9090/metrics".to_owned(),
        std::time::Duration::from_secs(15),
        std::time::Duration::from_secs(5),
    );
    source.latest.publish(UpstreamStatus {
        reading: Some(reading),
        error: None,
    });
    let fluxbase = Arc::new(FluxbaseFamilies::with_upstream(
        &limit,
        Instant::now(),
        Some(source),
    ));
    let mut registry = Registry::new();
    registry.register(fluxbase);
    registry.register(limit);
    let mut out = Vec::new();
    registry.render(&scrape, &mut out);
    let text = std::str::from_utf8(&out).expect("the exposition is UTF-8");
    check_exposition(text);
    // Each family once: what the exporter serves parses strictly too.
    parse::parse(text.as_bytes()).unwrap_or_else(|err| panic!("{err} in {text}"));
}

fn path_normalisation_bytes(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data) {
        path_normalisation(path);
    }
}

/// The `path` label: `long_path` for a raw path over 200 bytes, else the same segments, each
/// kept or, when wholly digits or a UUID, `:id`; both functions agree; normalising twice
/// changes nothing.
pub fn path_normalisation(path: &str) {
    let normalized = normalize_path(path);
    let mut appended = String::from("prefix:");
    normalize_path_into(path, &mut appended);
    assert_eq!(&appended["prefix:".len()..], normalized, "{path:?}");
    if path.len() > 200 {
        assert_eq!(normalized, "long_path", "{path:?}");
        return;
    }
    let before: Vec<&str> = path.split('/').collect();
    let after: Vec<&str> = normalized.split('/').collect();
    assert_eq!(before.len(), after.len(), "{path:?} -> {normalized:?}");
    for (original, label) in before.iter().zip(&after) {
        let expected = if is_id(original) { ":id" } else { original };
        assert_eq!(*label, expected, "{path:?} -> {normalized:?}");
    }
    // The length rule reads the raw path, so `:id` for a one-digit segment can take a label
    // past 200 bytes (Fluxbase's rule, kept): normalising again is a no-op only below that.
    if normalized.len() <= 200 {
        assert_eq!(normalize_path(&normalized), normalized, "not idempotent");
    }
}

/// Independent of the exporter's own: wholly ASCII digits, or 8-4-4-4-12 hex digits.
fn is_id(segment: &str) -> bool {
    let digits = !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit());
    let groups: Vec<&str> = segment.split('-').collect();
    let uuid = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()));
    digits || uuid
}

fn exposition_escaping_bytes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        exposition_escaping(text);
    }
}

/// Label values and HELP text: escaped text holds no raw newline (nor, in a label value, a raw
/// quote), and reads back, as Prometheus' parser reads it, to exactly what was escaped.
pub fn exposition_escaping(text: &str) {
    let value = escape_label_value(text);
    assert!(!value.contains('\n'));
    assert_eq!(
        unescape(&value, true).as_deref(),
        Some(text),
        "label value {text:?}"
    );
    let help = escape_help(text);
    assert!(!help.contains('\n'));
    assert_eq!(
        unescape(&help, false).as_deref(),
        Some(text),
        "HELP {text:?}"
    );
}

/// The text format's unescaping: `\\`, `\n`, and in label values `\"`; a raw quote or newline
/// in a label value, or any other escape, is an error.
fn unescape(escaped: &str, label_value: bool) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                '"' if label_value => out.push('"'),
                // HELP keeps other backslashes literal, but the exporter never writes one.
                _ => return None,
            },
            '"' if label_value => return None,
            '\n' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

/// Every line of `text` is a `# HELP`, a `# TYPE`, or a sample `name{labels} value` whose
/// label values unescape cleanly.
pub fn check_exposition(text: &str) {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "ends with a newline"
    );
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "comment {line:?}"
            );
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        assert!(name_end > 0, "sample without a name: {line:?}");
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            rest = check_labels(labels).unwrap_or_else(|| panic!("bad label set: {line:?}"));
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(
            matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok(),
            "value {value:?} in {line:?}"
        );
    }
}

/// Reads `name="value",...}` and returns what follows the closing brace.
fn check_labels(mut rest: &str) -> Option<&str> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let name_end = rest.find('=')?;
        let name = &rest[..name_end];
        let valid_name = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid_name {
            return None;
        }
        rest = rest[name_end + 1..].strip_prefix('"')?;
        // The value ends at the first quote not escaped by a backslash.
        let mut escaped = false;
        let close = rest.char_indices().find_map(|(i, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes.then_some(i)
        })?;
        unescape(&rest[..close], true)?;
        rest = &rest[close + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}
