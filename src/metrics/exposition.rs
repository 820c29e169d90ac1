//! The Prometheus text format 0.0.4: escaping, number formatting and the line writer.
//!
//! Everything writes into one caller-owned buffer; nothing here allocates per sample.

use std::borrow::Cow;

use crate::catalog::FamilyDesc;

/// The `Content-Type` of an exposition in the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes families and samples into a reused byte buffer.
///
/// Callers write a family's [`header`](Exposition::header) once, then its samples; the writer
/// does not reorder anything.
pub struct Exposition<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Exposition<'a> {
    /// Appends to `out` (it is not cleared).
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Exposition { out }
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family.
    pub fn header(&mut self, desc: &FamilyDesc) {
        self.out.extend_from_slice(b"# HELP ");
        self.out.extend_from_slice(desc.name.as_bytes());
        self.out.push(b' ');
        self.out
            .extend_from_slice(escape_help(desc.help).as_bytes());
        self.out.extend_from_slice(b"\n# TYPE ");
        self.out.extend_from_slice(desc.name.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(desc.kind.as_str().as_bytes());
        self.out.push(b'\n');
    }

    /// Writes `name{labels} value` for an integer value. `labels` is pre-rendered label pairs
    /// (see [`write_label_pairs`]), empty for none.
    pub fn sample_u64(&mut self, name: &str, suffix: &str, labels: &str, value: u64) {
        self.series(name, suffix, labels, None);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.push(b'\n');
    }

    /// Writes `name{labels} value` for a float value.
    pub fn sample_f64(&mut self, name: &str, suffix: &str, labels: &str, value: f64) {
        self.series(name, suffix, labels, None);
        write_f64(self.out, value);
        self.out.push(b'\n');
    }

    /// Appends sample lines rendered earlier (by a worker, in this format) as they are.
    pub fn raw(&mut self, lines: &[u8]) {
        self.out.extend_from_slice(lines);
    }

    /// Writes one histogram bucket line: `name_bucket{labels,le="<le>"} count`.
    pub fn bucket(&mut self, name: &str, labels: &str, le: &str, count: u64) {
        self.series(name, "_bucket", labels, Some(le));
        self.out
            .extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
        self.out.push(b'\n');
    }

    fn series(&mut self, name: &str, suffix: &str, labels: &str, le: Option<&str>) {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(suffix.as_bytes());
        if !labels.is_empty() || le.is_some() {
            self.out.push(b'{');
            self.out.extend_from_slice(labels.as_bytes());
            if let Some(le) = le {
                if !labels.is_empty() {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(b"le=\"");
                self.out.extend_from_slice(le.as_bytes());
                self.out.push(b'"');
            }
            self.out.push(b'}');
        }
        self.out.push(b' ');
    }
}

/// Renders `name="value",...` with each value escaped, into `out` (appended).
///
/// The result is what a sample line carries between its braces; families use it as the key of
/// a series, so escaping happens once per series, not once per scrape.
pub fn write_label_pairs(out: &mut String, names: &[&str], values: &[&str]) {
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&escape_label_value(value));
        out.push('"');
    }
}

/// Escapes a label value: `\` as `\\`, `"` as `\"`, newline as `\n`. Borrows when nothing
/// needs escaping.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    // Fast path (a vectorised search): most values are plain identifiers or paths.
    if memchr::memchr3(b'\\', b'"', b'\n', value.as_bytes()).is_none() {
        return Cow::Borrowed(value);
    }
    escape(value, |b| matches!(b, b'\\' | b'"' | b'\n'))
}

/// Escapes HELP text: `\` as `\\` and newline as `\n` (quotes stay as they are).
pub fn escape_help(text: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'\\', b'\n', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    escape(text, |b| matches!(b, b'\\' | b'\n'))
}

/// The escaping itself, once a search found something to escape.
fn escape(text: &str, needs_escape: impl Fn(u8) -> bool) -> Cow<'_, str> {
    let mut escaped = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if needs_escape(b'"') => escaped.push_str("\\\""),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// Writes a float the way Prometheus reads it: `NaN`, `+Inf`, `-Inf`, integers without a
/// fraction, anything else in the shortest form that round-trips.
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    // 2^53: every integer below it is exactly representable, so the integer form is exact.
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
        out.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

/// [`write_f64`] into a new string; for text computed once, such as a bucket's `le`.
pub fn format_f64(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_f64(&mut out, value);
    // write_f64 only ever writes ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{FamilyDesc, Kind};
    use proptest::prelude::*;

    /// The inverse of [`escape_label_value`], as the Prometheus text parser reads a label value.
    pub(crate) fn unescape_label_value(escaped: &str) -> Option<String> {
        let mut out = String::with_capacity(escaped.len());
        let mut chars = escaped.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => match chars.next()? {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    _ => return None,
                },
                '"' | '\n' => return None,
                other => out.push(other),
            }
        }
        Some(out)
    }

    fn f(value: f64) -> String {
        format_f64(value)
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(42.0), "42");
        assert_eq!(f(-3.0), "-3");
        assert_eq!(f(0.005), "0.005");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(1e9), "1000000000");
        assert_eq!(f(1e300), "1e300");
        assert_eq!(f(1.5e-7), "1.5e-7");
    }

    #[test]
    fn floats_round_trip() {
        for value in [
            0.1,
            1.0 / 3.0,
            123456.789,
            9_007_199_254_740_993.0,
            -7.25e-12,
            f64::MAX,
        ] {
            assert_eq!(f(value).parse::<f64>().ok(), Some(value), "{value}");
        }
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert!(matches!(escape_label_value("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nnext"), r"line\nnext");
        assert_eq!(escape_label_value("tab\tstays"), "tab\tstays");
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        assert_eq!(escape_help(r#"say "hi" \ bye"#), r#"say "hi" \\ bye"#);
        assert_eq!(escape_help("two\nlines"), r"two\nlines");
    }

    #[test]
    fn label_pairs_join_with_commas() {
        let mut out = String::new();
        write_label_pairs(&mut out, &["method", "path"], &["GET", "/a\"b"]);
        assert_eq!(out, r#"method="GET",path="/a\"b""#);
    }

    #[test]
    fn sample_lines() {
        const DESC: FamilyDesc = FamilyDesc {
            name: "demo_total",
            kind: Kind::Counter,
            labels: &[],
            buckets: &[],
            help: "Line one\nline \\ two",
        };
        let mut out = Vec::new();
        let mut exposition = Exposition::new(&mut out);
        exposition.header(&DESC);
        exposition.sample_u64("demo_total", "", "", 7);
        exposition.sample_f64("demo", "_sum", "a=\"1\"", 0.25);
        exposition.bucket("demo", "", "+Inf", 3);
        exposition.bucket("demo", "a=\"1\"", "0.5", 2);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "# HELP demo_total Line one\\nline \\\\ two\n# TYPE demo_total counter\n\
             demo_total 7\ndemo_sum{a=\"1\"} 0.25\ndemo_bucket{le=\"+Inf\"} 3\n\
             demo_bucket{a=\"1\",le=\"0.5\"} 2\n"
        );
    }

    proptest! {
        #[test]
        fn label_value_escaping_round_trips(value in any::<String>()) {
            let escaped = escape_label_value(&value);
            prop_assert!(!escaped.contains('\n'));
            prop_assert_eq!(unescape_label_value(&escaped), Some(value));
        }

        #[test]
        fn label_value_escaping_round_trips_on_hostile_alphabet(value in "[\\\\\"\na-z]{0,40}") {
            prop_assert_eq!(unescape_label_value(&escape_label_value(&value)), Some(value));
        }

        #[test]
        fn help_escaping_never_leaves_a_newline(text in any::<String>()) {
            prop_assert!(!escape_help(&text).contains('\n'));
        }

        #[test]
        fn finite_floats_round_trip(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let parsed: f64 = format_f64(value).parse().unwrap();
            prop_assert!(parsed == value || (parsed == 0.0 && value == 0.0));
        }
    }
}
