//! A strict parser of the Prometheus text format 0.0.4, for what Fluxbase's own metrics endpoint
//! (Go's `promhttp`) serves.
//!
//! Strict means: anything the format does not allow is an error naming the line, never a
//! guess. In particular a family's samples must be together and after its `# TYPE` line, a
//! series appears once, label values use only the `\\`, `\"` and `\n` escapes, histogram and
//! summary samples carry the suffixes and labels their type requires, and the last line ends
//! with a newline (a body cut short is an error, not a shorter exposition). Optional sample
//! timestamps are accepted and dropped (Go's client never writes them).

use std::fmt;

use rustc_hash::FxHashSet;

/// The type a `# TYPE` line declares (`untyped` when a family has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
            Type::Untyped => "untyped",
        }
    }

    fn from_word(word: &str) -> Option<Type> {
        Some(match word {
            "counter" => Type::Counter,
            "gauge" => Type::Gauge,
            "histogram" => Type::Histogram,
            "summary" => Type::Summary,
            "untyped" => Type::Untyped,
            _ => return None,
        })
    }
}

/// One sample line: its full name (with any `_bucket`/`_sum`/`_count` suffix), its labels in
/// the order written (values unescaped), and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A family: its name, type, HELP text (unescaped) and samples in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFamily {
    pub name: String,
    pub kind: Type,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// Why an exposition was refused: the 1-based line and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole exposition into its families, in the order they appear.
pub fn parse(body: &[u8]) -> Result<Vec<ParsedFamily>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|err| ParseError {
        line: 1 + body[..err.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        problem: "not UTF-8".to_owned(),
    })?;
    let mut parser = Parser::default();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let Some(end) = memchr::memchr(b'\n', rest.as_bytes()) else {
            return Err(ParseError {
                line: number,
                problem: "the last line does not end with a newline (cut short?)".to_owned(),
            });
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        parser.line(line).map_err(|problem| ParseError {
            line: number,
            problem,
        })?;
    }
    Ok(parser.families)
}

#[derive(Default)]
struct Parser {
    families: Vec<ParsedFamily>,
    /// Every family name seen so far (a family must not come back after another).
    seen: FxHashSet<String>,
    /// Whether the current (last) family already has a sample (its TYPE must come first).
    current_has_samples: bool,
    /// Whether the current family had a TYPE line.
    typed: bool,
    /// The series of the current family, to refuse a duplicate.
    series: FxHashSet<String>,
    key: String,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment);
        }
        self.sample(line)
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = split_token(comment);
        if keyword != "HELP" && keyword != "TYPE" {
            // Any other comment is allowed and ignored.
            return Ok(());
        }
        let (name, rest) = split_token(rest.trim_start_matches([' ', '\t']));
        if !is_metric_name(name) {
            return Err(format!("{keyword} names an invalid metric name {name:?}"));
        }
        let (has_samples, typed) = (self.current_has_samples, self.typed);
        let is_current = self.families.last().is_some_and(|f| f.name == name);
        let family = self.family_for_header(name)?;
        if keyword == "HELP" {
            if family.help.is_some() {
                return Err(format!("a second HELP for {name}"));
            }
            family.help = Some(unescape_help(rest.trim_start_matches([' ', '\t']))?);
            return Ok(());
        }
        let word = rest.trim_matches([' ', '\t']);
        let Some(kind) = Type::from_word(word) else {
            return Err(format!("unknown type {word:?} for {name}"));
        };
        if is_current && has_samples {
            return Err(format!("TYPE for {name} after its samples"));
        }
        if is_current && typed {
            return Err(format!("a second TYPE for {name}"));
        }
        family.kind = kind;
        self.typed = true;
        Ok(())
    }

    /// The family a HELP or TYPE line belongs to: the current one if it has that name, else a
    /// new one (refused if the name was seen before).
    fn family_for_header(&mut self, name: &str) -> Result<&mut ParsedFamily, String> {
        let is_current = self.families.last().is_some_and(|f| f.name == name);
        if !is_current {
            self.start_family(name, Type::Untyped)?;
        }
        self.families
            .last_mut()
            .ok_or_else(|| "no family".to_owned())
    }

    fn start_family(&mut self, name: &str, kind: Type) -> Result<(), String> {
        if !self.seen.insert(name.to_owned()) {
            return Err(format!(
                "{name} appears again after another family (a family's lines must be together)"
            ));
        }
        self.families.push(ParsedFamily {
            name: name.to_owned(),
            kind,
            help: None,
            samples: Vec::new(),
        });
        self.current_has_samples = false;
        self.typed = false;
        self.series.clear();
        Ok(())
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = parse_labels(after, &mut labels)?;
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (value, rest) = split_token(rest);
        if value.is_empty() {
            return Err(format!("{name} has no value"));
        }
        let value = parse_value(value).ok_or_else(|| format!("{name}: invalid value {value:?}"))?;
        let rest = rest.trim_start_matches([' ', '\t']);
        if !rest.is_empty() {
            let (timestamp, after) = split_token(rest);
            let digits = timestamp.strip_prefix('-').unwrap_or(timestamp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{name}: invalid timestamp {timestamp:?}"));
            }
            if !after.trim_matches([' ', '\t']).is_empty() {
                return Err(format!("{name}: unexpected text after the timestamp"));
            }
        }

        // Which family: the current one when the name (less a suffix its type allows)
        // matches, else a new untyped one.
        let belongs = self
            .families
            .last()
            .is_some_and(|family| sample_fits(family.kind, &family.name, name));
        if !belongs {
            self.start_family(name, Type::Untyped)?;
        }
        let Some(family) = self.families.last_mut() else {
            return Err("no family".to_owned());
        };
        check_sample_labels(family.kind, &family.name, name, &labels)?;
        self.key.clear();
        self.key.push_str(name);
        for (label, value) in &labels {
            self.key.push('\0');
            self.key.push_str(label);
            self.key.push('\0');
            self.key.push_str(value);
        }
        if !self.series.insert(self.key.clone()) {
            return Err(format!("duplicate series {name}"));
        }
        family.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
        self.current_has_samples = true;
        Ok(())
    }
}

/// Whether a sample named `sample` belongs to the family `family` of type `kind`.
fn sample_fits(kind: Type, family: &str, sample: &str) -> bool {
    match kind {
        Type::Histogram => sample
            .strip_prefix(family)
            .is_some_and(|suffix| matches!(suffix, "_bucket" | "_sum" | "_count")),
        Type::Summary => sample
            .strip_prefix(family)
            .is_some_and(|suffix| matches!(suffix, "" | "_sum" | "_count")),
        _ => sample == family,
    }
}

/// The labels a histogram's or summary's samples must (and must not) carry.
fn check_sample_labels(
    kind: Type,
    family: &str,
    sample: &str,
    labels: &[(String, String)],
) -> Result<(), String> {
    let has = |name: &str| labels.iter().find(|(label, _)| label == name);
    let suffix = &sample[family.len().min(sample.len())..];
    match (kind, suffix) {
        (Type::Histogram, "_bucket") => match has("le") {
            Some((_, bound)) if parse_value(bound).is_some_and(|b| !b.is_nan()) => Ok(()),
            Some((_, bound)) => Err(format!("{sample}: invalid le {bound:?}")),
            None => Err(format!("{sample} has no le label")),
        },
        (Type::Summary, "") => match has("quantile") {
            Some((_, q)) if parse_value(q).is_some_and(|q| (0.0..=1.0).contains(&q)) => Ok(()),
            Some((_, q)) => Err(format!("{sample}: invalid quantile {q:?}")),
            None => Err(format!("{sample} has no quantile label")),
        },
        (Type::Histogram, _) if has("le").is_some() => Err(format!("{sample} has an le label")),
        (Type::Summary, _) if has("quantile").is_some() => {
            Err(format!("{sample} has a quantile label"))
        }
        _ => Ok(()),
    }
}

/// Parses `name="value",...}` (the opening brace already consumed) into `labels`; returns
/// what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(label, _)| label == name) {
            return Err(format!("label {name} appears twice"));
        }
        rest = rest[name_end..].trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("label {name} has no ="))?
            .trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}'s value is not quoted"))?;
        let (value, after) = unescape_label_value(rest)?;
        labels.push((name.to_owned(), value));
        rest = after.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// Reads a label value up to its closing quote; returns it unescaped and what follows.
fn unescape_label_value(text: &str) -> Result<(String, &str), String> {
    let bytes = text.as_bytes();
    // Fast path: no escape before the closing quote.
    match memchr::memchr2(b'"', b'\\', bytes) {
        Some(end) if bytes[end] == b'"' => return Ok((text[..end].to_owned(), &text[end + 1..])),
        None => return Err("a label value has no closing quote".to_owned()),
        Some(_) => {}
    }
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(format!("invalid escape \\{other} in a label value"));
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err("a label value has no closing quote".to_owned())
}

/// Unescapes HELP text: `\\` and `\n` only.
fn unescape_help(text: &str) -> Result<String, String> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut help = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            help.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => help.push('\\'),
            Some('n') => help.push('\n'),
            Some(other) => return Err(format!("invalid escape \\{other} in HELP")),
            None => return Err("HELP ends with a lone backslash".to_owned()),
        }
    }
    Ok(help)
}

/// A sample value: a decimal or exponent float, `NaN`, `+Inf`, `-Inf` or `Inf`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => return Some(f64::NAN),
        "+Inf" | "Inf" => return Some(f64::INFINITY),
        "-Inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust's parser also takes "inf", "infinity" and "nan" in any case; the format does not.
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse().ok()
}

/// The text up to the next space or tab, and the rest (starting at that separator).
fn split_token(text: &str) -> (&str, &str) {
    let end = text.find([' ', '\t']).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and compares the families, one line each, with `expected`.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        let families = parse(input.as_bytes()).unwrap_or_else(|err| panic!("{err}"));
        let mut actual = String::new();
        for family in &families {
            actual.push_str(&format!(
                "{} {} help={:?}\n",
                family.name,
                family.kind.as_str(),
                family.help
            ));
            for sample in &family.samples {
                actual.push_str(&format!(
                    "  {} {:?} {}\n",
                    sample.name, sample.labels, sample.value
                ));
            }
        }
        assert_eq!(actual, expected);
    }

    #[track_caller]
    fn refuse(input: &str, line: usize, problem_contains: &str) {
        let err = parse(input.as_bytes()).expect_err("should be refused");
        assert_eq!(err.line, line, "{err}");
        assert!(err.problem.contains(problem_contains), "{err}");
    }

    #[test]
    fn parses_gos_text_format() {
        check(
            "# HELP a_total Requests \\\\ and\\nmore \"quoted\".\n\
             # TYPE a_total counter\n\
             a_total{code=\"200\",path=\"/x\\\"y\\\\z\\n\"} 1.5e+06\n\
             a_total{code=\"500\",path=\"\"} 0\n\
             # TYPE h histogram\n\
             h_bucket{le=\"0.5\"} 1\n\
             h_bucket{le=\"+Inf\"} 2\n\
             h_sum 1.25\n\
             h_count 2\n\
             # TYPE s summary\n\
             s{quantile=\"0.5\"} NaN\n\
             s_sum 0\n\
             s_count 0\n\
             \n\
             # a plain comment\n\
             untyped_one{a=\"b\",} -Inf 1700000000000\n",
            "a_total counter help=Some(\"Requests \\\\ and\\nmore \\\"quoted\\\".\")\n\
             \x20 a_total [(\"code\", \"200\"), (\"path\", \"/x\\\"y\\\\z\\n\")] 1500000\n\
             \x20 a_total [(\"code\", \"500\"), (\"path\", \"\")] 0\n\
             h histogram help=None\n\
             \x20 h_bucket [(\"le\", \"0.5\")] 1\n\
             \x20 h_bucket [(\"le\", \"+Inf\")] 2\n\
             \x20 h_sum [] 1.25\n\
             \x20 h_count [] 2\n\
             s summary help=None\n\
             \x20 s [(\"quantile\", \"0.5\")] NaN\n\
             \x20 s_sum [] 0\n\
             \x20 s_count [] 0\n\
             untyped_one untyped help=None\n\
             \x20 untyped_one [(\"a\", \"b\")] -inf\n",
        );
    }

    #[test]
    fn the_recorded_fluxbase_exposition_parses() {
        let body = include_str!("../../tests/fixtures/fluxbase-metrics.prom");
        let families = parse(body.as_bytes()).unwrap();
        assert_eq!(families.len(), 38);
        assert!(families.iter().all(|family| family.help.is_some()));
    }

    #[test]
    fn an_empty_body_has_no_families() {
        assert_eq!(parse(b""), Ok(Vec::new()));
    }

    #[test]
    fn a_body_cut_short_is_refused() {
        refuse("a 1\nb 2", 2, "newline");
    }

    #[test]
    fn garbage_is_refused_with_its_line() {
        refuse("<html>\n", 1, "invalid metric name");
        refuse("a 1\nb\n", 2, "no value");
        refuse("a one\n", 1, "invalid value");
        refuse("a inf\n", 1, "invalid value");
        refuse("a 1 2 3\n", 1, "after the timestamp");
        refuse("a 1 1.5\n", 1, "invalid timestamp");
        refuse("a{b=\"c} 1\n", 1, "closing quote");
        refuse("a{b=\"\\t\"} 1\n", 1, "invalid escape");
        refuse("a{b=c} 1\n", 1, "not quoted");
        refuse("a{b=\"1\",b=\"2\"} 1\n", 1, "twice");
        refuse("a{1b=\"1\"} 1\n", 1, "invalid label name");
        refuse("a{b=\"1\" c=\"2\"} 1\n", 1, "expected ,");
        refuse(
            &String::from_utf8_lossy(b"a 1\n\xff 2\n"),
            2,
            "invalid metric name",
        );
        assert_eq!(parse(b"a 1\n\xff 2\n").unwrap_err().problem, "not UTF-8");
        refuse("# HELP a x\\y\n", 1, "invalid escape");
        refuse("# TYPE a counterish\n", 1, "unknown type");
    }

    #[test]
    fn family_structure_is_enforced() {
        refuse("a 1\nb 1\na{x=\"1\"} 2\n", 3, "appears again");
        refuse("a 1\n# TYPE a counter\n", 2, "after its samples");
        refuse("# TYPE a counter\n# TYPE a gauge\n", 2, "second TYPE");
        refuse("# HELP a x\n# HELP a y\n", 2, "second HELP");
        refuse("a{x=\"1\"} 1\na{x=\"1\"} 2\n", 2, "duplicate series");
        refuse("# TYPE h histogram\nh_bucket 1\n", 2, "no le");
        refuse(
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            2,
            "invalid le",
        );
        refuse("# TYPE h histogram\nh_sum{le=\"1\"} 1\n", 2, "has an le");
        refuse("# TYPE s summary\ns 1\n", 2, "no quantile");
        refuse(
            "# TYPE s summary\ns{quantile=\"2\"} 1\n",
            2,
            "invalid quantile",
        );
        // A histogram has no sample under its bare name.
        refuse("# TYPE h histogram\nh 1\n", 2, "appears again");
    }
}
