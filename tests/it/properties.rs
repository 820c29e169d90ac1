//! Property tests over the checks `make fuzz` runs (`fuzz/checks.rs`), on any toolchain, and a
//! replay of every input saved under `fuzz/regressions/<target>/` (crashes the fuzzers found,
//! and hand-made hostile inputs). `PROPTEST_CASES` sets the number of cases (default 256);
//! `make fuzz` raises it when cargo-fuzz cannot run.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;

/// Text for a JSON string field: plain, hostile (quotes, backslashes, control characters,
/// non-ASCII), or id-like, so that labels, escaping and path normalisation all get exercised.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/_:.-]{0,30}",
        "\\PC{0,20}",
        any::<String>(),
        "(/([0-9]{1,4}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z]{1,6}|)){0,8}",
        "[\\\\\"\n\t\u{0}\u{7f}é𝄞]{0,12}",
    ]
}

/// A JSON number field: ordinary, huge, negative, fractional, or not a number at all.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..100_000).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        Just("1e309".to_owned()),
        Just("-0".to_owned()),
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?",
        field_text().prop_map(|text| json(&text)),
    ]
}

fn json(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// A Fluxbase HTTP request line with hostile fields.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), field_text()],
        field_text(),
        number(),
        number(),
        number(),
    )
        .prop_map(|(method, path, status, duration, bytes)| {
            format!(
                r#"{{"level":"info","method":{},"path":{},"ip":"203.0.113.5","status":{status},"duration_ms":{duration},"response_bytes":{bytes},"time":1700000000,"message":"HTTP request"}}"#,
                json(&method),
                json(&path)
            )
            .into_bytes()
        })
}

/// A Fluxbase security event line with hostile fields.
fn security() -> impl Strategy<Value = Vec<u8>> {
    (field_text(), field_text(), field_text()).prop_map(|(event, reason, ip)| {
        format!(
            r#"{{"level":"info","component":"security","security_event":{},"ip_address":{},"details":{{"reason":{}}},"time":1700000000,"message":"Security event"}}"#,
            json(&event),
            json(&ip),
            json(&reason)
        )
        .into_bytes()
    })
}

/// One log line: a request or security event, any bytes, or a valid line cut short or with
/// one byte changed.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![request(), security()];
    let damaged = (
        valid,
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mut line, at, byte, cut)| {
            let at = at
                .index(line.len().max(1))
                .min(line.len().saturating_sub(1));
            if cut {
                line.truncate(at);
            } else if let Some(b) = line.get_mut(at) {
                *b = byte;
            }
            line
        });
    prop_oneof![
        3 => request(),
        2 => security(),
        2 => damaged,
        1 => vec(any::<u8>(), 0..200),
    ]
}

/// A line of an exposition as Fluxbase's endpoint might serve it, or almost: headers and
/// samples of catalogue families (so the merge is exercised), Go's own, and random names,
/// with hostile label values and every kind of value.
fn exposition_line() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("fluxbase_http_requests_total".to_owned()),
        Just("fluxbase_http_request_duration_seconds".to_owned()),
        Just("fluxbase_http_requests_in_flight".to_owned()),
        Just("fluxbase_realtime_connections".to_owned()),
        Just("fluxbase_db_connections".to_owned()),
        Just("process_start_time_seconds".to_owned()),
        Just("go_gc_duration_seconds".to_owned()),
        "[a-z_]{1,6}",
    ];
    let kind = prop_oneof![
        Just("counter"),
        Just("gauge"),
        Just("histogram"),
        Just("summary"),
        Just("untyped"),
        Just("counterish"),
    ];
    let suffix = prop_oneof![Just(""), Just("_bucket"), Just("_sum"), Just("_count")];
    let label = (
        prop_oneof![
            Just("le".to_owned()),
            Just("quantile".to_owned()),
            Just("method".to_owned()),
            "[a-z_]{1,3}"
        ],
        prop_oneof![
            Just("+Inf".to_owned()),
            Just("0.5".to_owned()),
            field_text().prop_map(|text| text
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")),
            "[a-z\\\\\"]{0,4}",
        ],
    );
    let value = prop_oneof![
        Just("NaN".to_owned()),
        Just("+Inf".to_owned()),
        Just("-Inf".to_owned()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        (0u32..100_000).prop_map(|n| n.to_string()),
        "[0-9.e+-]{1,6}",
    ];
    prop_oneof![
        (name.clone(), kind).prop_map(|(name, kind)| format!("# TYPE {name} {kind}")),
        (name.clone(), field_text()).prop_map(|(name, help)| format!(
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        )),
        (
            name,
            suffix,
            vec(label, 0..3),
            value,
            proptest::option::of(-99i64..99)
        )
            .prop_map(|(name, suffix, labels, value, timestamp)| {
                let labels: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                let timestamp = timestamp.map(|t| format!(" {t}")).unwrap_or_default();
                format!("{name}{suffix}{labels} {value}{timestamp}")
            }),
        field_text(),
    ]
}

proptest! {
    #[test]
    fn any_event_log_renders_a_valid_exposition(lines in vec(line(), 0..40)) {
        checks::event_lines(&lines.join(&b'\n'));
    }

    #[test]
    fn path_labels_keep_segments_and_replace_only_ids(path in field_text()) {
        checks::path_normalisation(&path);
    }

    #[test]
    fn long_paths_become_long_path(path in "(/[0-9a-z]{0,12}){10,40}") {
        checks::path_normalisation(&path);
    }

    #[test]
    fn label_values_and_help_escape_and_read_back(text in field_text()) {
        checks::exposition_escaping(&text);
    }

    #[test]
    fn any_upstream_answer_parses_strictly_round_trips_and_merges_validly(
        lines in vec(exposition_line(), 0..30)
    ) {
        let mut text = lines.join("\n");
        text.push('\n');
        checks::upstream_exposition(text.as_bytes());
    }
}

#[test]
fn saved_fuzz_inputs_pass_their_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let input = std::fs::read(&path).expect("a saved input");
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{} fails {target}", path.display());
            replayed += 1;
        }
        assert!(
            replayed > 0,
            "no saved inputs for {target} in {}",
            dir.display()
        );
    }
}

#[test]
fn the_exposition_check_accepts_the_format_and_rejects_what_breaks_it() {
    checks::check_exposition(
        "# HELP a_total A \\\\ help.\n# TYPE a_total counter\na_total{b=\"q\\\"\\n\\\\\",c=\"\"} 1\na_total +Inf\n",
    );
    for broken in [
        "a{b=\"c} 1\n",
        "a{b=\"x\"y\"} 1\n",
        "a{b=\"\\x\"} 1\n",
        "a{1b=\"x\"} 1\n",
        "a 1 2\n",
        "a one\n",
        "{b=\"x\"} 1\n",
        "# EOF\n",
        "a 1",
    ] {
        let outcome = std::panic::catch_unwind(|| checks::check_exposition(broken));
        assert!(outcome.is_err(), "accepted {broken:?}");
    }
}
