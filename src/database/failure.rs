//! What went wrong talking to PostgreSQL, in words a user can act on and as a fixed reason.
//! Messages never hold a password: they come from the server (which never echoes one) or from
//! the kind of I/O failure.

use std::error::Error as _;
use std::fmt;
use std::io;

/// A classified database failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

/// Why a database step failed; `as_str` is usable as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Refused,
    Timeout,
    Auth,
    Tls,
    Dns,
    DatabaseMissing,
    TooManyConnections,
    ShuttingDown,
    /// A schema, table, column or function the query needs does not exist.
    Missing,
    Permission,
    Closed,
    Other,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::Auth => "auth",
            Reason::Tls => "tls",
            Reason::Dns => "dns",
            Reason::DatabaseMissing => "database_missing",
            Reason::TooManyConnections => "too_many_connections",
            Reason::ShuttingDown => "shutting_down",
            Reason::Missing => "missing",
            Reason::Permission => "permission",
            Reason::Closed => "closed",
            Reason::Other => "other",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }

    /// Classifies an error of the PostgreSQL client.
    pub fn from_postgres(err: &postgres::Error) -> Failure {
        if let Some(db) = err.as_db_error() {
            let reason = match db.code().code() {
                "28P01" | "28000" => Reason::Auth,
                "3D000" => Reason::DatabaseMissing,
                "53300" => Reason::TooManyConnections,
                "57014" => Reason::Timeout,
                "57P01" | "57P02" | "57P03" => Reason::ShuttingDown,
                "42P01" | "3F000" | "42703" | "42883" | "42704" => Reason::Missing,
                "42501" => Reason::Permission,
                _ => Reason::Other,
            };
            let message = match reason {
                Reason::Timeout => format!("timed out: {}", db.message()),
                _ => db.message().to_owned(),
            };
            return Failure::new(reason, message);
        }
        let text = err.to_string();
        if let Some(io_error) = io_source(err) {
            let reason = match io_error.kind() {
                io::ErrorKind::ConnectionRefused => Reason::Refused,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Reason::Timeout,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected => Reason::Closed,
                _ if text.contains("lookup address") => Reason::Dns,
                _ => Reason::Other,
            };
            let message = match reason {
                Reason::Refused => "connection refused".to_owned(),
                Reason::Timeout => "timed out".to_owned(),
                Reason::Closed => format!("connection closed by the server ({})", io_error.kind()),
                Reason::Dns => format!("cannot resolve the host: {io_error}"),
                _ => text,
            };
            return Failure::new(reason, message);
        }
        if text.contains("TLS") || text.contains("certificate") {
            let detail = err
                .source()
                .map(|source| source.to_string())
                .unwrap_or_default();
            let message = if detail.contains("does not support TLS") {
                "TLS is required (sslmode) but the server does not support it".to_owned()
            } else if detail.is_empty() {
                text
            } else {
                format!("TLS failed: {detail}")
            };
            return Failure::new(Reason::Tls, message);
        }
        if text.contains("timeout") || text.contains("timed out") {
            return Failure::new(Reason::Timeout, "timed out");
        }
        if err.is_closed() {
            return Failure::new(Reason::Closed, "connection closed");
        }
        Failure::new(Reason::Other, text)
    }
}

fn io_source(err: &postgres::Error) -> Option<&io::Error> {
    let mut source = err.source();
    while let Some(current) = source {
        if let Some(io_error) = current.downcast_ref::<io::Error>() {
            return Some(io_error);
        }
        source = current.source();
    }
    None
}
