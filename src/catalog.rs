//! The metric catalogue: every family the exporter can expose, declared once.
//!
//! **Invariant:** no other file spells a metric name. Workers and collectors refer to the
//! descriptors below; a test scans `src/` to keep it that way.
//!
//! The Fluxbase families copy `fluxbase.md` section 1 exactly (name, type, label names, buckets,
//! help). The exporter's own families are prefixed `fluxbase_exporter_`; the process families
//! follow the Prometheus client-library conventions.

/// The Prometheus metric type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word the text format uses on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Everything that is fixed about a metric family.
#[derive(Debug, PartialEq)]
pub struct FamilyDesc {
    pub name: &'static str,
    pub kind: Kind,
    /// Label names, in the order callers pass label values.
    pub labels: &'static [&'static str],
    /// Histogram upper bounds, ascending, without `+Inf`; empty for other kinds.
    pub buckets: &'static [f64],
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> FamilyDesc {
    FamilyDesc {
        name,
        kind: Kind::Counter,
        labels,
        buckets: &[],
        help,
    }
}

const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> FamilyDesc {
    FamilyDesc {
        name,
        kind: Kind::Gauge,
        labels,
        buckets: &[],
        help,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    help: &'static str,
) -> FamilyDesc {
    FamilyDesc {
        name,
        kind: Kind::Histogram,
        labels,
        buckets,
        help,
    }
}

// Fluxbase's bucket sets (fluxbase.md section 1).
const HTTP_B: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const DB_B: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const ST_B: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const SIZE_B: &[f64] = &[100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const JOB_B: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

// ---------------------------------------------------------------------------------------------
// Fluxbase's families (fluxbase.md section 1), in the reference's order.

pub const HTTP_REQUESTS_TOTAL: FamilyDesc = counter(
    "fluxbase_http_requests_total",
    &["method", "path", "status"],
    "Total number of HTTP requests (counted from Fluxbase's \"HTTP request\" log events; with debug \
     off Fluxbase does not log 2xx responses, so only 3xx-5xx are seen then)",
);
pub const HTTP_REQUEST_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_http_request_duration_seconds",
    &["method", "path", "status"],
    HTTP_B,
    "HTTP request latency in seconds (from Fluxbase's \"HTTP request\" log events; with debug off \
     Fluxbase does not log 2xx responses)",
);
pub const HTTP_REQUEST_SIZE_BYTES: FamilyDesc = histogram(
    "fluxbase_http_request_size_bytes",
    &["method", "path"],
    SIZE_B,
    "HTTP request size in bytes",
);
pub const HTTP_RESPONSE_SIZE_BYTES: FamilyDesc = histogram(
    "fluxbase_http_response_size_bytes",
    &["method", "path", "status"],
    SIZE_B,
    "HTTP response size in bytes (from Fluxbase's \"HTTP request\" log events; with debug off \
     Fluxbase does not log 2xx responses)",
);
pub const HTTP_REQUESTS_IN_FLIGHT: FamilyDesc = gauge(
    "fluxbase_http_requests_in_flight",
    &[],
    "Current number of HTTP requests being processed (cannot be known from outside Fluxbase: \
     never shown)",
);
pub const DB_QUERIES_TOTAL: FamilyDesc = counter(
    "fluxbase_db_queries_total",
    &["operation", "table"],
    "Total number of database queries",
);
pub const DB_QUERY_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_db_query_duration_seconds",
    &["operation", "table"],
    DB_B,
    "Database query latency in seconds (derived from pg_stat_statements: each statement's mean \
     execution time over a check interval, observed once per call in that interval)",
);
pub const DB_CONNECTIONS: FamilyDesc = gauge(
    "fluxbase_db_connections",
    &[],
    "Current number of database connections",
);
pub const DB_CONNECTIONS_IDLE: FamilyDesc = gauge(
    "fluxbase_db_connections_idle",
    &[],
    "Current number of idle database connections",
);
pub const DB_CONNECTIONS_MAX: FamilyDesc = gauge(
    "fluxbase_db_connections_max",
    &[],
    "Maximum number of database connections",
);
pub const REALTIME_CONNECTIONS: FamilyDesc = gauge(
    "fluxbase_realtime_connections",
    &[],
    "Current number of WebSocket connections",
);
pub const REALTIME_CHANNELS: FamilyDesc = gauge(
    "fluxbase_realtime_channels",
    &[],
    "Current number of active channels",
);
pub const REALTIME_SUBSCRIPTIONS: FamilyDesc = gauge(
    "fluxbase_realtime_subscriptions",
    &[],
    "Current number of subscriptions",
);
pub const REALTIME_MESSAGES_TOTAL: FamilyDesc = counter(
    "fluxbase_realtime_messages_total",
    &["channel_type"],
    "Total number of realtime messages sent",
);
pub const REALTIME_CONNECTION_ERRORS_TOTAL: FamilyDesc = counter(
    "fluxbase_realtime_connection_errors_total",
    &["error_type"],
    "Total number of WebSocket connection errors",
);
pub const STORAGE_BYTES_TOTAL: FamilyDesc = counter(
    "fluxbase_storage_bytes_total",
    &["operation", "bucket"],
    "Total number of bytes stored/retrieved (downloads that answered 2xx only, from Fluxbase's \
     storage API request logs; upload sizes are not logged)",
);
pub const STORAGE_OPERATIONS_TOTAL: FamilyDesc = counter(
    "fluxbase_storage_operations_total",
    &["operation", "bucket", "status"],
    "Total number of storage operations (from Fluxbase's storage API request logs; with debug off \
     successful ones are not logged)",
);
pub const STORAGE_OPERATION_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_storage_operation_duration_seconds",
    &["operation", "bucket"],
    ST_B,
    "Storage operation latency in seconds (from Fluxbase's storage API request logs)",
);
pub const AUTH_ATTEMPTS_TOTAL: FamilyDesc = counter(
    "fluxbase_auth_attempts_total",
    &["method", "result"],
    "Total number of authentication attempts (application users' password sign-ins, from \
     Fluxbase's login_success, login_failed and account_locked security events)",
);
pub const AUTH_SUCCESS_TOTAL: FamilyDesc = counter(
    "fluxbase_auth_success_total",
    &["method"],
    "Total number of successful authentications (from Fluxbase's login_success security events)",
);
pub const AUTH_FAILURE_TOTAL: FamilyDesc = counter(
    "fluxbase_auth_failure_total",
    &["method", "reason"],
    "Total number of failed authentications (from Fluxbase's login_failed security events, and \
     account_locked as invalid_password)",
);
pub const AUTH_TOKENS_ISSUED_TOTAL: FamilyDesc = counter(
    "fluxbase_auth_tokens_issued_total",
    &["token_type"],
    "Total number of auth tokens issued (an access and a refresh token per login_success \
     security event)",
);
pub const RATE_LIMIT_HITS_TOTAL: FamilyDesc = counter(
    "fluxbase_rate_limit_hits_total",
    &["limiter_type", "identifier"],
    "Total number of rate limit hits (from 429 responses and rate_limit_exceeded events in \
     Fluxbase's logs)",
);
pub const SYSTEM_UPTIME_SECONDS: FamilyDesc = gauge(
    "fluxbase_system_uptime_seconds",
    &[],
    "System uptime in seconds",
);
pub const JOBS_QUEUE_DEPTH: FamilyDesc = gauge(
    "fluxbase_jobs_queue_depth",
    &["namespace", "priority"],
    "Current number of jobs waiting in queue",
);
pub const JOBS_PROCESSING: FamilyDesc = gauge(
    "fluxbase_jobs_processing",
    &[],
    "Current number of jobs being processed",
);
pub const JOBS_COMPLETED_TOTAL: FamilyDesc = counter(
    "fluxbase_jobs_completed_total",
    &["namespace", "name"],
    "Total number of jobs completed successfully",
);
pub const JOBS_FAILED_TOTAL: FamilyDesc = counter(
    "fluxbase_jobs_failed_total",
    &["namespace", "name", "reason"],
    "Total number of jobs that failed",
);
pub const JOB_EXECUTION_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_job_execution_duration_seconds",
    &["namespace", "name"],
    JOB_B,
    "Job execution duration in seconds",
);
pub const JOB_WORKERS_ACTIVE: FamilyDesc = gauge(
    "fluxbase_job_workers_active",
    &[],
    "Current number of active job workers",
);
pub const JOB_WORKER_UTILIZATION: FamilyDesc = gauge(
    "fluxbase_job_worker_utilization",
    &[],
    "Job worker utilization (0.0-1.0)",
);

/// Every Fluxbase family of `fluxbase.md` section 1, in its order.
pub const FLUXBASE: &[&FamilyDesc] = &[
    &HTTP_REQUESTS_TOTAL,
    &HTTP_REQUEST_DURATION_SECONDS,
    &HTTP_REQUEST_SIZE_BYTES,
    &HTTP_RESPONSE_SIZE_BYTES,
    &HTTP_REQUESTS_IN_FLIGHT,
    &DB_QUERIES_TOTAL,
    &DB_QUERY_DURATION_SECONDS,
    &DB_CONNECTIONS,
    &DB_CONNECTIONS_IDLE,
    &DB_CONNECTIONS_MAX,
    &REALTIME_CONNECTIONS,
    &REALTIME_CHANNELS,
    &REALTIME_SUBSCRIPTIONS,
    &REALTIME_MESSAGES_TOTAL,
    &REALTIME_CONNECTION_ERRORS_TOTAL,
    &STORAGE_BYTES_TOTAL,
    &STORAGE_OPERATIONS_TOTAL,
    &STORAGE_OPERATION_DURATION_SECONDS,
    &AUTH_ATTEMPTS_TOTAL,
    &AUTH_SUCCESS_TOTAL,
    &AUTH_FAILURE_TOTAL,
    &AUTH_TOKENS_ISSUED_TOTAL,
    &RATE_LIMIT_HITS_TOTAL,
    &SYSTEM_UPTIME_SECONDS,
    &JOBS_QUEUE_DEPTH,
    &JOBS_PROCESSING,
    &JOBS_COMPLETED_TOTAL,
    &JOBS_FAILED_TOTAL,
    &JOB_EXECUTION_DURATION_SECONDS,
    &JOB_WORKERS_ACTIVE,
    &JOB_WORKER_UTILIZATION,
];

// ---------------------------------------------------------------------------------------------
// The exporter's own families.

/// Latency buckets for the exporter's own endpoints, which answer in well under a millisecond.
const EXPORTER_HTTP_B: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub const EXPORTER_BUILD_INFO: FamilyDesc = gauge(
    "fluxbase_exporter_build_info",
    &["version", "revision", "rustc"],
    "A metric with a constant '1' value labeled by the exporter's version, git revision and rustc version",
);
pub const EXPORTER_HTTP_REQUESTS_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_http_requests_total",
    &["handler", "code"],
    "Requests answered by the exporter's own HTTP endpoints, by handler and status code",
);
pub const EXPORTER_HTTP_REQUEST_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_exporter_http_request_duration_seconds",
    &["handler"],
    EXPORTER_HTTP_B,
    "Time the exporter took to produce the answer to a request to its own endpoints, in seconds",
);
pub const EXPORTER_HTTP_OPEN_CONNECTIONS: FamilyDesc = gauge(
    "fluxbase_exporter_http_open_connections",
    &[],
    "Connections open to the exporter's own HTTP server (at most --web.max-connections are kept)",
);
pub const EXPORTER_HTTP_CONNECTIONS_DROPPED_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_http_connections_dropped_total",
    &["reason"],
    "Connections the exporter's HTTP server closed on its own: evicted (the longest-idle, to make room at --web.max-connections), refused (503: every connection busy), idle_timeout (no request within --web.idle-timeout), tls_handshake (a TLS handshake that failed, or did not finish within --web.header-timeout; plain HTTP to the TLS port is answered 400 first)",
);
pub const EXPORTER_HTTP_ACCEPT_ERRORS_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_http_accept_errors_total",
    &[],
    "Failed accepts of new connections (such as running out of file descriptors); the server keeps accepting",
);
pub const EXPORTER_SERIES_DROPPED_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_series_dropped_total",
    &["family"],
    "Label sets not created because their family already held the maximum number of series (--metrics.max-series)",
);

pub const EXPORTER_CHECK_SUCCESS: FamilyDesc = gauge(
    "fluxbase_exporter_check_success",
    &["check"],
    "Whether the latest run of a check succeeded (1) or failed (0)",
);
pub const EXPORTER_CHECK_DURATION_SECONDS: FamilyDesc = gauge(
    "fluxbase_exporter_check_duration_seconds",
    &["check"],
    "How long the latest run of a check took, in seconds",
);
pub const EXPORTER_CHECK_LAST_SUCCESS_TIMESTAMP_SECONDS: FamilyDesc = gauge(
    "fluxbase_exporter_check_last_success_timestamp_seconds",
    &["check"],
    "When a check last succeeded, in seconds since the Unix epoch",
);
pub const EXPORTER_DB_SERVER_MAX_CONNECTIONS: FamilyDesc = gauge(
    "fluxbase_exporter_db_server_max_connections",
    &[],
    "The PostgreSQL server's max_connections setting",
);
pub const EXPORTER_DATABASE_LEADER: FamilyDesc = gauge(
    "fluxbase_exporter_database_leader",
    &[],
    "Whether this exporter leads the exporters sharing its database (1) and publishes the database-wide figures, or follows (0); always 1 with --database.coordinate=false",
);
pub const EXPORTER_REALTIME_LISTENERS: FamilyDesc = gauge(
    "fluxbase_exporter_realtime_listeners",
    &[],
    "Database sessions listening on Fluxbase's realtime change feed (LISTEN fluxbase_changes), from pg_stat_activity",
);
pub const EXPORTER_AUTH_SESSIONS_ACTIVE: FamilyDesc = gauge(
    "fluxbase_exporter_auth_sessions_active",
    &[],
    "Sessions in auth.sessions that have not expired",
);
pub const EXPORTER_AUTH_USERS_LOCKED: FamilyDesc = gauge(
    "fluxbase_exporter_auth_users_locked",
    &[],
    "Users in auth.users that are locked now",
);
pub const EXPORTER_WEBHOOK_DELIVERIES: FamilyDesc = gauge(
    "fluxbase_exporter_webhook_deliveries",
    &["status"],
    "Rows of auth.webhook_deliveries, by status",
);
pub const EXPORTER_STORAGE_BUCKETS: FamilyDesc = gauge(
    "fluxbase_exporter_storage_buckets",
    &["source"],
    "Storage buckets, as the database (storage.buckets) or the storage directory records them",
);
pub const EXPORTER_STORAGE_OBJECTS: FamilyDesc = gauge(
    "fluxbase_exporter_storage_objects",
    &["source", "bucket"],
    "Objects in a storage bucket, as the database (storage.objects with a size) or the storage directory records them",
);
pub const EXPORTER_STORAGE_BYTES: FamilyDesc = gauge(
    "fluxbase_exporter_storage_bytes",
    &["source", "bucket"],
    "Bytes of the objects in a storage bucket, as the database (storage.objects) or the storage directory records them",
);

/// Latency buckets for the storage probe's filesystem calls.
const PROBE_B: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub const EXPORTER_STORAGE_FILESYSTEM_AVAILABLE_BYTES: FamilyDesc = gauge(
    "fluxbase_exporter_storage_filesystem_available_bytes",
    &[],
    "Bytes available to unprivileged users on the filesystem holding the storage root",
);
pub const EXPORTER_STORAGE_FILESYSTEM_SIZE_BYTES: FamilyDesc = gauge(
    "fluxbase_exporter_storage_filesystem_size_bytes",
    &[],
    "Size in bytes of the filesystem holding the storage root",
);
pub const EXPORTER_STORAGE_PROBE_DURATION_SECONDS: FamilyDesc = histogram(
    "fluxbase_exporter_storage_probe_duration_seconds",
    &["operation"],
    PROBE_B,
    "Duration of the storage probe's own write, read and delete in the exporter's hidden directory, in seconds (not Fluxbase traffic)",
);
pub const EXPORTER_STORAGE_SCAN_ERRORS_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_storage_scan_errors_total",
    &["kind"],
    "Entries the storage scan skipped: vanished (removed mid-walk), permission, too_deep, io",
);

/// How far behind an event's own time the exporter counted it.
const LAG_B: &[f64] = &[
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

pub const EXPORTER_SLOW_QUERIES_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_slow_queries_total",
    &["operation", "table"],
    "Queries Fluxbase logged as slow (\"Slow query detected\"), by operation and table",
);
pub const EXPORTER_EVENTS_LINES_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_events_lines_total",
    &["source"],
    "Lines (or logging.entries rows) read from an event source",
);
pub const EXPORTER_EVENTS_PARSED_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_events_parsed_total",
    &["source", "kind"],
    "Fluxbase events read, by kind: http, security and slow_query are counted into families, other is not",
);
pub const EXPORTER_EVENTS_SKIPPED_TOTAL: FamilyDesc = counter(
    "fluxbase_exporter_events_skipped_total",
    &["source", "reason"],
    "Lines not counted, by reason: not_json, invalid_json, invalid_field, too_long",
);
pub const EXPORTER_EVENTS_LAG_SECONDS: FamilyDesc = histogram(
    "fluxbase_exporter_events_lag_seconds",
    &["source"],
    LAG_B,
    "Time between an event's own timestamp and the moment the exporter counted it, in seconds",
);
pub const EXPORTER_EVENTS_LAST_TIMESTAMP_SECONDS: FamilyDesc = gauge(
    "fluxbase_exporter_events_last_timestamp_seconds",
    &["source"],
    "The own timestamp of the latest event read from a source, in seconds since the Unix epoch",
);

/// The exporter's own families.
pub const EXPORTER: &[&FamilyDesc] = &[
    &EXPORTER_BUILD_INFO,
    &EXPORTER_HTTP_REQUESTS_TOTAL,
    &EXPORTER_HTTP_REQUEST_DURATION_SECONDS,
    &EXPORTER_HTTP_OPEN_CONNECTIONS,
    &EXPORTER_HTTP_CONNECTIONS_DROPPED_TOTAL,
    &EXPORTER_HTTP_ACCEPT_ERRORS_TOTAL,
    &EXPORTER_SERIES_DROPPED_TOTAL,
    &EXPORTER_CHECK_SUCCESS,
    &EXPORTER_CHECK_DURATION_SECONDS,
    &EXPORTER_CHECK_LAST_SUCCESS_TIMESTAMP_SECONDS,
    &EXPORTER_DB_SERVER_MAX_CONNECTIONS,
    &EXPORTER_DATABASE_LEADER,
    &EXPORTER_REALTIME_LISTENERS,
    &EXPORTER_AUTH_SESSIONS_ACTIVE,
    &EXPORTER_AUTH_USERS_LOCKED,
    &EXPORTER_WEBHOOK_DELIVERIES,
    &EXPORTER_STORAGE_BUCKETS,
    &EXPORTER_STORAGE_OBJECTS,
    &EXPORTER_STORAGE_BYTES,
    &EXPORTER_STORAGE_FILESYSTEM_AVAILABLE_BYTES,
    &EXPORTER_STORAGE_FILESYSTEM_SIZE_BYTES,
    &EXPORTER_STORAGE_PROBE_DURATION_SECONDS,
    &EXPORTER_STORAGE_SCAN_ERRORS_TOTAL,
    &EXPORTER_SLOW_QUERIES_TOTAL,
    &EXPORTER_EVENTS_LINES_TOTAL,
    &EXPORTER_EVENTS_PARSED_TOTAL,
    &EXPORTER_EVENTS_SKIPPED_TOTAL,
    &EXPORTER_EVENTS_LAG_SECONDS,
    &EXPORTER_EVENTS_LAST_TIMESTAMP_SECONDS,
];

// ---------------------------------------------------------------------------------------------
// Process families, named and described as the Prometheus client libraries do.

pub const PROCESS_CPU_SECONDS_TOTAL: FamilyDesc = counter(
    "process_cpu_seconds_total",
    &[],
    "Total user and system CPU time spent in seconds.",
);
pub const PROCESS_RESIDENT_MEMORY_BYTES: FamilyDesc = gauge(
    "process_resident_memory_bytes",
    &[],
    "Resident memory size in bytes.",
);
pub const PROCESS_VIRTUAL_MEMORY_BYTES: FamilyDesc = gauge(
    "process_virtual_memory_bytes",
    &[],
    "Virtual memory size in bytes.",
);
pub const PROCESS_OPEN_FDS: FamilyDesc =
    gauge("process_open_fds", &[], "Number of open file descriptors.");
pub const PROCESS_MAX_FDS: FamilyDesc = gauge(
    "process_max_fds",
    &[],
    "Maximum number of open file descriptors.",
);
pub const PROCESS_START_TIME_SECONDS: FamilyDesc = gauge(
    "process_start_time_seconds",
    &[],
    "Start time of the process since unix epoch in seconds.",
);
pub const PROCESS_THREADS: FamilyDesc = gauge(
    "process_threads",
    &[],
    "Number of OS threads in the process.",
);

/// The process families.
pub const PROCESS: &[&FamilyDesc] = &[
    &PROCESS_CPU_SECONDS_TOTAL,
    &PROCESS_RESIDENT_MEMORY_BYTES,
    &PROCESS_VIRTUAL_MEMORY_BYTES,
    &PROCESS_OPEN_FDS,
    &PROCESS_MAX_FDS,
    &PROCESS_START_TIME_SECONDS,
    &PROCESS_THREADS,
];

// ---------------------------------------------------------------------------------------------
// Go runtime families read from Fluxbase's own metrics endpoint for the JSON system metrics
// (`upstream`), never re-exported. Fluxbase's `process_start_time_seconds` is read under the
// name of [`PROCESS_START_TIME_SECONDS`].

/// `go_info{version}`.
pub const UPSTREAM_GO_INFO: &str = "go_info";
pub const UPSTREAM_GO_GOROUTINES: &str = "go_goroutines";
pub const UPSTREAM_GO_MEMSTATS_ALLOC_BYTES: &str = "go_memstats_alloc_bytes";
pub const UPSTREAM_GO_MEMSTATS_ALLOC_BYTES_TOTAL: &str = "go_memstats_alloc_bytes_total";
pub const UPSTREAM_GO_MEMSTATS_SYS_BYTES: &str = "go_memstats_sys_bytes";
/// A summary: `_count` is the number of collections, `_sum` their total pause.
pub const UPSTREAM_GO_GC_DURATION_SECONDS: &str = "go_gc_duration_seconds";

/// Every family the exporter declares, Fluxbase's first.
pub fn all() -> impl Iterator<Item = &'static FamilyDesc> {
    FLUXBASE.iter().chain(EXPORTER).chain(PROCESS).copied()
}

/// The README's metric table, generated from the catalogue (a test keeps the README in step).
pub fn markdown_table() -> String {
    let mut table = String::from("| name | type | labels | help |\n|---|---|---|---|\n");
    for desc in all() {
        let labels = if desc.labels.is_empty() {
            "-".to_owned()
        } else {
            desc.labels.join(", ")
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            desc.name,
            desc.kind.as_str(),
            labels,
            desc.help
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for desc in all() {
            assert!(seen.insert(desc.name), "{} declared twice", desc.name);
            assert!(
                desc.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                desc.name
            );
            for label in desc.labels {
                assert!(
                    !label.starts_with("__") && *label != "le",
                    "{}: reserved label",
                    desc.name
                );
            }
        }
    }

    #[test]
    fn reference_section_one_has_31_families() {
        assert_eq!(FLUXBASE.len(), 31);
        assert!(
            FLUXBASE
                .iter()
                .all(|desc| desc.name.starts_with("fluxbase_"))
        );
    }

    #[test]
    fn buckets_are_strictly_ascending_and_only_on_histograms() {
        for desc in all() {
            match desc.kind {
                Kind::Histogram => {
                    assert!(!desc.buckets.is_empty(), "{}", desc.name);
                    assert!(
                        desc.buckets.windows(2).all(|w| w[0] < w[1]),
                        "{}",
                        desc.name
                    );
                    assert!(desc.buckets.iter().all(|b| b.is_finite()), "{}", desc.name);
                }
                _ => assert!(desc.buckets.is_empty(), "{}", desc.name),
            }
        }
    }

    #[test]
    fn counters_end_in_total() {
        for desc in all() {
            assert_eq!(
                desc.kind == Kind::Counter,
                desc.name.ends_with("_total"),
                "{}",
                desc.name
            );
        }
    }
}
