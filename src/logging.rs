//! Log output: one JSON object (or logfmt line) per record on stderr, with the keys `level`,
//! `time` (RFC 3339, UTC), `message`, then the record's fields in the order given.

use std::fmt::Write as _;
use std::io::Write as _;
use std::str::FromStr;
use std::time::SystemTime;

use log::kv::{Key, Value, VisitSource};

use crate::timestamp::{self, Precision};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Logfmt,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "logfmt" => Ok(LogFormat::Logfmt),
            _ => Err(format!("{text:?} is not json or logfmt")),
        }
    }
}

/// Installs the process-wide logger. Our own records pass at `level`; dependencies' records
/// only at warn or above, whatever the level, so a debug run stays readable.
pub fn init(level: log::LevelFilter, format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level.min(log::LevelFilter::Warn))
        .filter_module("fluxbase_exporter", level)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let line = format_record(format, SystemTime::now(), record);
            buf.write_all(line.as_bytes())
        });
    // A second init (only possible in tests) keeps the first logger.
    let _ = builder.try_init();
}

/// One log line, newline included.
pub fn format_record(format: LogFormat, time: SystemTime, record: &log::Record<'_>) -> String {
    let mut line = String::with_capacity(160);
    let level = level_name(record.level());
    let mut time_text = String::with_capacity(24);
    timestamp::write_rfc3339(&mut time_text, time, Precision::Millis);
    let message = record.args().to_string();
    match format {
        LogFormat::Json => {
            line.push_str("{\"level\":\"");
            line.push_str(level);
            line.push_str("\",\"time\":\"");
            line.push_str(&time_text);
            line.push_str("\",\"message\":");
            push_json_string(&mut line, &message);
            let _ = record
                .key_values()
                .visit(&mut JsonFields { line: &mut line });
            line.push('}');
        }
        LogFormat::Logfmt => {
            line.push_str("level=");
            line.push_str(level);
            line.push_str(" time=");
            line.push_str(&time_text);
            line.push_str(" message=");
            push_logfmt_value(&mut line, &message);
            let _ = record
                .key_values()
                .visit(&mut LogfmtFields { line: &mut line });
        }
    }
    line.push('\n');
    line
}

/// Fluxbase's (zerolog's) level names.
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

struct JsonFields<'a> {
    line: &'a mut String,
}

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.line.push(',');
        push_json_string(self.line, key.as_str());
        self.line.push(':');
        if let Some(number) = value.to_u64() {
            let _ = write!(self.line, "{number}");
        } else if let Some(number) = value.to_i64() {
            let _ = write!(self.line, "{number}");
        } else if let Some(number) = value.to_f64().filter(|n| n.is_finite()) {
            let _ = write!(self.line, "{number}");
        } else if let Some(flag) = value.to_bool() {
            self.line.push_str(if flag { "true" } else { "false" });
        } else {
            push_json_string(self.line, &value.to_string());
        }
        Ok(())
    }
}

struct LogfmtFields<'a> {
    line: &'a mut String,
}

impl<'kvs> VisitSource<'kvs> for LogfmtFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.line.push(' ');
        self.line.push_str(key.as_str());
        self.line.push('=');
        push_logfmt_value(self.line, &value.to_string());
        Ok(())
    }
}

fn push_json_string(line: &mut String, text: &str) {
    // serde_json escapes exactly what JSON requires (quotes, backslashes, control characters).
    match serde_json::to_string(text) {
        Ok(quoted) => line.push_str(&quoted),
        Err(_) => line.push_str("\"\""),
    }
}

fn push_logfmt_value(line: &mut String, text: &str) {
    let needs_quotes = text.is_empty()
        || text
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control());
    if !needs_quotes {
        line.push_str(text);
        return;
    }
    line.push('"');
    for ch in text.chars() {
        match ch {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_705_314_600_250)
    }

    fn line(format: LogFormat, message: &str, fields: &[(&str, Value<'_>)]) -> String {
        let source: &dyn log::kv::Source = &fields;
        format_record(
            format,
            at(),
            &log::Record::builder()
                .level(log::Level::Info)
                .args(format_args!("{message}"))
                .key_values(source)
                .build(),
        )
    }

    #[test]
    fn json_lines_carry_level_time_message_then_fields() {
        let text = line(
            LogFormat::Json,
            "HTTP request",
            &[
                ("method", Value::from("GET")),
                ("status", Value::from(200u16)),
                ("duration_ms", Value::from(0.25f64)),
                ("path", Value::from("/a\"b")),
            ],
        );
        assert_eq!(
            text,
            "{\"level\":\"info\",\"time\":\"2024-01-15T10:30:00.250Z\",\"message\":\"HTTP request\",\
             \"method\":\"GET\",\"status\":200,\"duration_ms\":0.25,\"path\":\"/a\\\"b\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["path"], "/a\"b");
    }

    #[test]
    fn json_escapes_control_characters_in_messages() {
        let text = line(LogFormat::Json, "two\nlines\u{1}", &[]);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["message"], "two\nlines\u{1}");
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        let text = line(
            LogFormat::Logfmt,
            "listening",
            &[
                ("address", Value::from("127.0.0.1:9745")),
                ("note", Value::from("a \"b\"")),
            ],
        );
        assert_eq!(
            text,
            "level=info time=2024-01-15T10:30:00.250Z message=listening address=127.0.0.1:9745 note=\"a \\\"b\\\"\"\n"
        );
    }
}
