//! Fluxbase's log events (`fluxbase.md` section 5) from a JSON line or a `logging.entries` row,
//! into one borrowed [`Event`]. Strings are borrowed from the line unless they hold escapes.

use std::borrow::Cow;

use super::json::{self, Scalar};
use crate::timestamp;

/// One Fluxbase log event the exporter counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    /// The event's own time, in seconds since the epoch, when it carries one.
    pub time: Option<f64>,
    pub kind: EventKind<'a>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind<'a> {
    Http(HttpRequest<'a>),
    Security(SecurityEvent<'a>),
    SlowQuery {
        operation: Cow<'a, str>,
        table: Cow<'a, str>,
    },
    /// A valid Fluxbase event of a kind no family counts (startup, realtime, ...).
    Other,
}

/// `message: "HTTP request"`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest<'a> {
    pub method: Cow<'a, str>,
    /// The raw request path (Fluxbase logs `c.Path()`, without the query).
    pub path: Cow<'a, str>,
    pub status: i64,
    pub duration_ms: Option<f64>,
    pub response_bytes: Option<f64>,
    pub ip: Option<Cow<'a, str>>,
}

/// `message: "Security event" | "Security warning"`.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityEvent<'a> {
    pub event_type: Cow<'a, str>,
    pub reason: Option<Cow<'a, str>>,
    /// The login went through single sign-on (`details.sso`).
    pub sso: bool,
    /// A platform (admin dashboard) sign-in (`details.dashboard`), which Fluxbase's own auth
    /// counters leave out.
    pub dashboard: bool,
    /// `details.failed_attempts`: the wrong passwords in a row, this one included.
    pub failed_attempts: Option<f64>,
    pub ip: Option<Cow<'a, str>>,
}

/// Why a line is not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Not a JSON object: most likely Fluxbase's human console format.
    NotJson,
    /// Starts like JSON but does not parse (truncated, invalid UTF-8, ...).
    InvalidJson,
    /// An event the exporter counts, with a field missing or out of range.
    InvalidField,
    /// Longer than the exporter reads.
    TooLong,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotJson => "not_json",
            Skip::InvalidJson => "invalid_json",
            Skip::InvalidField => "invalid_field",
            Skip::TooLong => "too_long",
        }
    }
}

/// The keys of a zerolog line (or of a `logging.entries` row's `fields`) that matter here; the
/// rest are skipped without being built.
#[derive(Default)]
struct Fields<'a> {
    message: Option<Cow<'a, str>>,
    time: Option<Scalar<'a>>,
    method: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    status: Option<f64>,
    duration_ms: Option<f64>,
    response_bytes: Option<f64>,
    ip: Option<Cow<'a, str>>,
    ip_address: Option<Cow<'a, str>>,
    event_type: Option<Cow<'a, str>>,
    reason: Option<Cow<'a, str>>,
    sso: Option<bool>,
    dashboard: Option<bool>,
    failed_attempts: Option<f64>,
    operation: Option<Cow<'a, str>>,
    table: Option<Cow<'a, str>>,
}

/// Reads the keys that matter from one JSON object. A value of an unexpected type is treated
/// as absent (so `"status":"200"` is an event without a status).
fn read_fields(text: &[u8]) -> Result<Fields<'_>, Skip> {
    let mut fields = Fields::default();
    json::read_object(text, &mut |key, value| {
        match key {
            b"message" => fields.message = value.string()?,
            b"time" => fields.time = value.string_or_number()?,
            b"method" => fields.method = value.string()?,
            b"path" => fields.path = value.string()?,
            b"status" => fields.status = value.number()?,
            b"duration_ms" => fields.duration_ms = value.number()?,
            b"response_bytes" => fields.response_bytes = value.number()?,
            b"ip" => fields.ip = value.string()?,
            b"ip_address" => fields.ip_address = value.string()?,
            b"event_type" => fields.event_type = value.string()?,
            b"operation" => fields.operation = value.string()?,
            b"table" => fields.table = value.string()?,
            b"details" => {
                value.object(&mut |key, value| {
                    match key {
                        b"reason" => fields.reason = value.string()?,
                        b"sso" => fields.sso = value.boolean()?,
                        b"dashboard" => fields.dashboard = value.boolean()?,
                        b"failed_attempts" => fields.failed_attempts = value.number()?,
                        _ => value.skip()?,
                    }
                    Ok(())
                })?;
            }
            _ => value.skip()?,
        }
        Ok(())
    })
    .map_err(|_| Skip::InvalidJson)?;
    Ok(fields)
}

/// Parses one JSON line.
pub fn parse_line(line: &[u8]) -> Result<Event<'_>, Skip> {
    let trimmed = line.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return Err(Skip::NotJson);
    }
    let mut fields = read_fields(trimmed)?;
    let time = match &fields.time {
        Some(Scalar::Number(seconds)) => Some(*seconds),
        Some(Scalar::String(text)) => timestamp::parse_rfc3339(text),
        None => None,
    };
    let message = fields.message.take();
    event(message.as_deref(), time, fields)
}

/// A `logging.entries` row: its columns, and its `fields` JSON (where the event's other keys
/// live). `category` is `http` or `security`.
pub struct Row<'a> {
    pub time: f64,
    pub message: &'a str,
    pub ip_address: Option<&'a str>,
    pub fields: &'a str,
}

pub fn parse_row<'a>(row: &Row<'a>) -> Result<Event<'a>, Skip> {
    let mut fields = read_fields(row.fields.as_bytes())?;
    // Fluxbase moves the client IP out of `fields` into its column (and `request_id` into
    // another, which no family needs: it is not read).
    if fields.ip.is_none() && fields.ip_address.is_none() {
        fields.ip_address = row.ip_address.map(Cow::Borrowed);
    }
    event(Some(row.message), Some(row.time), fields)
}

fn event<'a>(
    message: Option<&str>,
    time: Option<f64>,
    fields: Fields<'a>,
) -> Result<Event<'a>, Skip> {
    let kind = match message {
        Some("HTTP request") => EventKind::Http(http_request(fields)?),
        Some("Security event" | "Security warning") => EventKind::Security(SecurityEvent {
            event_type: fields.event_type.ok_or(Skip::InvalidField)?,
            reason: fields.reason,
            sso: fields.sso.unwrap_or(false),
            dashboard: fields.dashboard.unwrap_or(false),
            failed_attempts: fields.failed_attempts,
            ip: fields.ip_address.or(fields.ip),
        }),
        Some("Slow query detected") => EventKind::SlowQuery {
            operation: fields.operation.ok_or(Skip::InvalidField)?,
            table: fields.table.ok_or(Skip::InvalidField)?,
        },
        _ => EventKind::Other,
    };
    Ok(Event { time, kind })
}

fn http_request(fields: Fields<'_>) -> Result<HttpRequest<'_>, Skip> {
    let status = fields
        .status
        .filter(|s| s.fract() == 0.0 && (0.0..=999.0).contains(s))
        .ok_or(Skip::InvalidField)?;
    // At most 2^53: every integer up to it is exact, and a byte count beyond it, added to a
    // u64 counter, could wrap it.
    let finite_non_negative = |value: Option<f64>| match value {
        Some(v) if (0.0..=9_007_199_254_740_992.0).contains(&v) => Ok(Some(v)),
        Some(_) => Err(Skip::InvalidField),
        None => Ok(None),
    };
    Ok(HttpRequest {
        method: fields
            .method
            .filter(|m| !m.is_empty())
            .ok_or(Skip::InvalidField)?,
        path: fields.path.ok_or(Skip::InvalidField)?,
        status: status as i64,
        duration_ms: finite_non_negative(fields.duration_ms)?,
        response_bytes: finite_non_negative(fields.response_bytes)?,
        ip: fields.ip.or(fields.ip_address),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(line: &str) -> HttpRequest<'_> {
        match parse_line(line.as_bytes()).unwrap().kind {
            EventKind::Http(request) => request,
            other => panic!("not an HTTP request: {other:?}"),
        }
    }

    #[test]
    fn http_requests_as_fluxbase_logs_them() {
        let line = r#"{"level":"warn","request_id":"r1","method":"GET","path":"/api/v1/tables/users/records/12","ip":"203.0.113.9","status":404,"duration_ms":3,"user_agent":"curl/8","protocol":"HTTP/1.1","response_bytes":120,"time":1705314600,"message":"HTTP request"}"#;
        let event = parse_line(line.as_bytes()).unwrap();
        assert_eq!(event.time, Some(1_705_314_600.0));
        let EventKind::Http(request) = event.kind else {
            panic!()
        };
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/api/v1/tables/users/records/12");
        assert_eq!(request.status, 404);
        assert_eq!(request.duration_ms, Some(3.0));
        assert_eq!(request.response_bytes, Some(120.0));
        assert_eq!(request.ip.as_deref(), Some("203.0.113.9"));
        assert!(
            matches!(request.path, Cow::Borrowed(_)),
            "no copy without escapes"
        );
    }

    #[test]
    fn the_page_form_with_rfc3339_time_and_float_duration() {
        let line = r#"{ "level": "info", "time": "2024-01-15T10:30:00Z", "message": "HTTP request", "method": "POST", "path": "/api/v1/tables/users", "status": 200, "duration_ms": 25.5 }"#;
        let event = parse_line(line.as_bytes()).unwrap();
        assert_eq!(event.time, Some(1_705_314_600.0));
        let EventKind::Http(request) = event.kind else {
            panic!()
        };
        assert_eq!((request.status, request.duration_ms), (200, Some(25.5)));
        assert_eq!(
            http(r#"{"message":"HTTP request","method":"GET","path":"/a\/b","status":200}"#).path,
            "/a/b"
        );
    }

    #[test]
    fn security_events_and_slow_queries() {
        let line = r#"{"level":"info","component":"security","security_event":"login_failed","event_type":"login_failed","email":"a@b.c","ip_address":"198.51.100.4","details":{"reason":"invalid_password","failed_attempts":2},"time":1705314600,"message":"Security event"}"#;
        let EventKind::Security(event) = parse_line(line.as_bytes()).unwrap().kind else {
            panic!()
        };
        assert_eq!(event.event_type, "login_failed");
        assert_eq!(event.reason.as_deref(), Some("invalid_password"));
        assert_eq!(event.ip.as_deref(), Some("198.51.100.4"));
        assert!(!event.sso);
        assert!(!event.dashboard);
        assert_eq!(event.failed_attempts, Some(2.0));
        let dashboard = r#"{"message":"Security event","event_type":"login_success","details":{"dashboard":true,"sso":true}}"#;
        let EventKind::Security(event) = parse_line(dashboard.as_bytes()).unwrap().kind else {
            panic!()
        };
        assert!(event.dashboard && event.sso);
        let slow = r#"{"level":"warn","duration_ms":1500,"operation":"select","table":"users","query":"SELECT ...","message":"Slow query detected"}"#;
        assert_eq!(
            parse_line(slow.as_bytes()).unwrap().kind,
            EventKind::SlowQuery {
                operation: Cow::Borrowed("select"),
                table: Cow::Borrowed("users")
            }
        );
        assert_eq!(
            parse_line(br#"{"level":"info","message":"Server started"}"#)
                .unwrap()
                .kind,
            EventKind::Other
        );
    }

    #[test]
    fn what_is_not_a_fluxbase_event_is_a_named_skip() {
        let cases: [(&[u8], Skip); 9] = [
            (b"10:30AM INF HTTP request method=GET path=/", Skip::NotJson),
            (b"", Skip::NotJson),
            (b"{\"message\":\"HTTP request\",", Skip::InvalidJson),
            (b"{\"message\":\"HTTP req\xff\"}", Skip::InvalidJson),
            (br#"{"message":"HTTP request","method":"GET","path":"/"}"#, Skip::InvalidField),
            (br#"{"message":"HTTP request","method":"GET","path":"/","status":"200"}"#, Skip::InvalidField),
            (br#"{"message":"HTTP request","method":"GET","path":"/","status":200.5}"#, Skip::InvalidField),
            (br#"{"message":"HTTP request","method":"GET","path":"/","status":200,"response_bytes":1e30}"#, Skip::InvalidField),
            (br#"{"message":"HTTP request","method":"GET","path":"/","status":200,"duration_ms":-1}"#, Skip::InvalidField),
        ];
        for (line, skip) in cases {
            assert_eq!(
                parse_line(line).map(|_| ()),
                Err(skip),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn rows_of_logging_entries_carry_their_columns() {
        let row = Row {
            time: 1_705_314_600.0,
            message: "HTTP request",
            ip_address: Some("192.0.2.1"),
            fields: r#"{"method":"DELETE","path":"/api/v1/storage/docs/a.pdf","status":204,"duration_ms":12,"response_bytes":0}"#,
        };
        let event = parse_row(&row).unwrap();
        assert_eq!(event.time, Some(1_705_314_600.0));
        let EventKind::Http(request) = event.kind else {
            panic!()
        };
        assert_eq!(request.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(request.status, 204);
    }
}
