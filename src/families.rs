//! The live families: one [`Family`] for every Fluxbase family of the catalogue, and the
//! exporter's own. Workers feed these; the registry renders them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::build_info;
use crate::catalog;
use crate::metrics::{
    Collector, Counter, Exposition, Family, Gauge, Histogram, Scrape, SeriesLimit,
};
use crate::upstream::{Upstream, merge};

/// Every family of `fluxbase.md` section 1. A family no worker feeds yet renders its HELP and
/// TYPE lines only.
pub struct FluxbaseFamilies {
    pub http_requests_total: Family<Counter>,
    pub http_request_duration_seconds: Family<Histogram>,
    pub http_request_size_bytes: Family<Histogram>,
    pub http_response_size_bytes: Family<Histogram>,
    pub http_requests_in_flight: Family<Gauge>,
    pub db_queries_total: Family<Counter>,
    pub db_query_duration_seconds: Family<Histogram>,
    pub db_connections: Family<Gauge>,
    pub db_connections_idle: Family<Gauge>,
    pub db_connections_max: Family<Gauge>,
    pub realtime_connections: Family<Gauge>,
    pub realtime_channels: Family<Gauge>,
    pub realtime_subscriptions: Family<Gauge>,
    pub realtime_messages_total: Family<Counter>,
    pub realtime_connection_errors_total: Family<Counter>,
    pub storage_bytes_total: Family<Counter>,
    pub storage_operations_total: Family<Counter>,
    pub storage_operation_duration_seconds: Family<Histogram>,
    pub auth_attempts_total: Family<Counter>,
    pub auth_success_total: Family<Counter>,
    pub auth_failure_total: Family<Counter>,
    pub auth_tokens_issued_total: Family<Counter>,
    pub rate_limit_hits_total: Family<Counter>,
    pub system_uptime_seconds: Uptime,
    pub jobs_queue_depth: Family<Gauge>,
    pub jobs_processing: Family<Gauge>,
    pub jobs_completed_total: Family<Counter>,
    pub jobs_failed_total: Family<Counter>,
    pub job_execution_duration_seconds: Family<Histogram>,
    pub job_workers_active: Family<Gauge>,
    pub job_worker_utilization: Family<Gauge>,
    /// Fluxbase's own metrics endpoint, when one is configured: the families the merge table
    /// passes through render from it, and the event sources stop feeding them. Fixed at
    /// start-up.
    upstream: Option<Arc<Upstream>>,
}

impl FluxbaseFamilies {
    /// `started` is the instant uptime counts from.
    pub fn new(limit: &Arc<SeriesLimit>, started: Instant) -> Self {
        FluxbaseFamilies::with_upstream(limit, started, None)
    }

    /// As [`new`](FluxbaseFamilies::new), with Fluxbase's own endpoint as the source of the
    /// families `upstream::merge::TABLE` passes through (and of the uptime).
    pub fn with_upstream(
        limit: &Arc<SeriesLimit>,
        started: Instant,
        upstream: Option<Arc<Upstream>>,
    ) -> Self {
        use catalog::*;
        FluxbaseFamilies {
            http_requests_total: Family::new(&HTTP_REQUESTS_TOTAL, limit),
            http_request_duration_seconds: Family::new(&HTTP_REQUEST_DURATION_SECONDS, limit),
            http_request_size_bytes: Family::new(&HTTP_REQUEST_SIZE_BYTES, limit),
            http_response_size_bytes: Family::new(&HTTP_RESPONSE_SIZE_BYTES, limit),
            http_requests_in_flight: Family::new(&HTTP_REQUESTS_IN_FLIGHT, limit),
            db_queries_total: Family::new(&DB_QUERIES_TOTAL, limit),
            db_query_duration_seconds: Family::new(&DB_QUERY_DURATION_SECONDS, limit),
            db_connections: Family::new(&DB_CONNECTIONS, limit),
            db_connections_idle: Family::new(&DB_CONNECTIONS_IDLE, limit),
            db_connections_max: Family::new(&DB_CONNECTIONS_MAX, limit),
            realtime_connections: Family::new(&REALTIME_CONNECTIONS, limit),
            realtime_channels: Family::new(&REALTIME_CHANNELS, limit),
            realtime_subscriptions: Family::new(&REALTIME_SUBSCRIPTIONS, limit),
            realtime_messages_total: Family::new(&REALTIME_MESSAGES_TOTAL, limit),
            realtime_connection_errors_total: Family::new(&REALTIME_CONNECTION_ERRORS_TOTAL, limit),
            storage_bytes_total: Family::new(&STORAGE_BYTES_TOTAL, limit),
            storage_operations_total: Family::new(&STORAGE_OPERATIONS_TOTAL, limit),
            storage_operation_duration_seconds: Family::new(
                &STORAGE_OPERATION_DURATION_SECONDS,
                limit,
            ),
            auth_attempts_total: Family::new(&AUTH_ATTEMPTS_TOTAL, limit),
            auth_success_total: Family::new(&AUTH_SUCCESS_TOTAL, limit),
            auth_failure_total: Family::new(&AUTH_FAILURE_TOTAL, limit),
            auth_tokens_issued_total: Family::new(&AUTH_TOKENS_ISSUED_TOTAL, limit),
            rate_limit_hits_total: Family::new(&RATE_LIMIT_HITS_TOTAL, limit),
            system_uptime_seconds: Uptime { started },
            jobs_queue_depth: Family::new(&JOBS_QUEUE_DEPTH, limit),
            jobs_processing: Family::new(&JOBS_PROCESSING, limit),
            jobs_completed_total: Family::new(&JOBS_COMPLETED_TOTAL, limit),
            jobs_failed_total: Family::new(&JOBS_FAILED_TOTAL, limit),
            job_execution_duration_seconds: Family::new(&JOB_EXECUTION_DURATION_SECONDS, limit),
            job_workers_active: Family::new(&JOB_WORKERS_ACTIVE, limit),
            job_worker_utilization: Family::new(&JOB_WORKER_UTILIZATION, limit),
            upstream,
        }
    }

    /// Whether Fluxbase's own endpoint feeds the passed-through families (HTTP, realtime,
    /// auth, rate limits); the event sources then leave them alone.
    pub fn fed_from_upstream(&self) -> bool {
        self.upstream.is_some()
    }

    /// The families in catalogue order.
    fn in_order(&self) -> [&dyn Collector; 31] {
        [
            &self.http_requests_total,
            &self.http_request_duration_seconds,
            &self.http_request_size_bytes,
            &self.http_response_size_bytes,
            &self.http_requests_in_flight,
            &self.db_queries_total,
            &self.db_query_duration_seconds,
            &self.db_connections,
            &self.db_connections_idle,
            &self.db_connections_max,
            &self.realtime_connections,
            &self.realtime_channels,
            &self.realtime_subscriptions,
            &self.realtime_messages_total,
            &self.realtime_connection_errors_total,
            &self.storage_bytes_total,
            &self.storage_operations_total,
            &self.storage_operation_duration_seconds,
            &self.auth_attempts_total,
            &self.auth_success_total,
            &self.auth_failure_total,
            &self.auth_tokens_issued_total,
            &self.rate_limit_hits_total,
            &self.system_uptime_seconds,
            &self.jobs_queue_depth,
            &self.jobs_processing,
            &self.jobs_completed_total,
            &self.jobs_failed_total,
            &self.job_execution_duration_seconds,
            &self.job_workers_active,
            &self.job_worker_utilization,
        ]
    }
}

impl Collector for FluxbaseFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        let Some(upstream) = &self.upstream else {
            for family in self.in_order() {
                family.collect(scrape, out);
            }
            return;
        };
        // One snapshot for the whole scrape, so every passed-through family is of one read.
        let status = upstream.fresh(scrape.instant);
        for (index, (row, family)) in merge::TABLE.iter().zip(self.in_order()).enumerate() {
            match row.with_upstream {
                merge::Origin::Own => family.collect(scrape, out),
                merge::Origin::PassThrough | merge::Origin::UpstreamUptime => {
                    upstream.render(index, status.as_deref(), scrape, out);
                }
            }
        }
    }
}

/// `fluxbase_system_uptime_seconds`, computed at scrape time from a monotonic clock, so it is
/// exact at every scrape (Fluxbase's own moves in 15 s steps and reads 0 for the first 15 s).
///
/// The exporter cannot see inside Fluxbase's process, so this is the uptime of the process that
/// serves the metrics: the exporter's.
pub struct Uptime {
    started: Instant,
}

impl Collector for Uptime {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        let desc = &catalog::SYSTEM_UPTIME_SECONDS;
        out.header(desc);
        let uptime = scrape.instant.saturating_duration_since(self.started);
        out.sample_f64(desc.name, "", "", uptime.as_secs_f64());
    }
}

/// The exporter's own families (besides the series-dropped counter, which the [`SeriesLimit`]
/// renders, and the process families).
pub struct ExporterFamilies {
    pub build_info: Family<Gauge>,
    pub http_requests_total: Family<Counter>,
    pub http_request_duration_seconds: Family<Histogram>,
    pub http: HttpFamilies,
    pub checks: CheckFamilies,
    pub database: DatabaseFamilies,
    pub storage: StorageFamilies,
    pub events: EventFamilies,
}

impl ExporterFamilies {
    pub fn new(limit: &Arc<SeriesLimit>) -> Self {
        use catalog::*;
        let families = ExporterFamilies {
            build_info: Family::new(&EXPORTER_BUILD_INFO, limit),
            http_requests_total: Family::new(&EXPORTER_HTTP_REQUESTS_TOTAL, limit),
            http_request_duration_seconds: Family::new(
                &EXPORTER_HTTP_REQUEST_DURATION_SECONDS,
                limit,
            ),
            http: HttpFamilies {
                open_connections: Family::new(&EXPORTER_HTTP_OPEN_CONNECTIONS, limit),
                connections_dropped_total: Family::new(
                    &EXPORTER_HTTP_CONNECTIONS_DROPPED_TOTAL,
                    limit,
                ),
                accept_errors_total: Family::new(&EXPORTER_HTTP_ACCEPT_ERRORS_TOTAL, limit),
            },
            checks: CheckFamilies {
                success: Family::new(&EXPORTER_CHECK_SUCCESS, limit),
                duration_seconds: Family::new(&EXPORTER_CHECK_DURATION_SECONDS, limit),
                last_success_timestamp_seconds: Family::new(
                    &EXPORTER_CHECK_LAST_SUCCESS_TIMESTAMP_SECONDS,
                    limit,
                ),
            },
            database: DatabaseFamilies {
                server_max_connections: Family::new(&EXPORTER_DB_SERVER_MAX_CONNECTIONS, limit),
                leader: Family::new(&EXPORTER_DATABASE_LEADER, limit),
                realtime_listeners: Family::new(&EXPORTER_REALTIME_LISTENERS, limit),
                auth_sessions_active: Family::new(&EXPORTER_AUTH_SESSIONS_ACTIVE, limit),
                auth_users_locked: Family::new(&EXPORTER_AUTH_USERS_LOCKED, limit),
                webhook_deliveries: Family::new(&EXPORTER_WEBHOOK_DELIVERIES, limit),
            },
            storage: StorageFamilies {
                buckets: Family::new(&EXPORTER_STORAGE_BUCKETS, limit),
                objects: Family::new(&EXPORTER_STORAGE_OBJECTS, limit),
                bytes: Family::new(&EXPORTER_STORAGE_BYTES, limit),
                filesystem_available_bytes: Family::new(
                    &EXPORTER_STORAGE_FILESYSTEM_AVAILABLE_BYTES,
                    limit,
                ),
                filesystem_size_bytes: Family::new(&EXPORTER_STORAGE_FILESYSTEM_SIZE_BYTES, limit),
                probe_duration_seconds: Family::new(
                    &EXPORTER_STORAGE_PROBE_DURATION_SECONDS,
                    limit,
                ),
                scan_errors_total: Family::new(&EXPORTER_STORAGE_SCAN_ERRORS_TOTAL, limit),
            },
            events: EventFamilies {
                slow_queries_total: Family::new(&EXPORTER_SLOW_QUERIES_TOTAL, limit),
                lines_total: Family::new(&EXPORTER_EVENTS_LINES_TOTAL, limit),
                parsed_total: Family::new(&EXPORTER_EVENTS_PARSED_TOTAL, limit),
                skipped_total: Family::new(&EXPORTER_EVENTS_SKIPPED_TOTAL, limit),
                lag_seconds: Family::new(&EXPORTER_EVENTS_LAG_SECONDS, limit),
                last_timestamp_seconds: Family::new(&EXPORTER_EVENTS_LAST_TIMESTAMP_SECONDS, limit),
            },
        };
        families.build_info.set(
            &[build_info::VERSION, build_info::REVISION, build_info::RUSTC],
            1.0,
        );
        families
    }
}

impl Collector for ExporterFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        let families: [&dyn Collector; 8] = [
            &self.build_info,
            &self.http_requests_total,
            &self.http_request_duration_seconds,
            &self.http,
            &self.checks,
            &self.database,
            &self.storage,
            &self.events,
        ];
        for family in families {
            family.collect(scrape, out);
        }
    }
}

/// The exporter's HTTP server's connections, which the server itself reports.
pub struct HttpFamilies {
    pub open_connections: Family<Gauge>,
    pub connections_dropped_total: Family<Counter>,
    pub accept_errors_total: Family<Counter>,
}

impl HttpFamilies {
    /// The server is up: its series start at zero (so that `rate()` sees the first event).
    pub fn server_started(&self) {
        self.open_connections.add(&[], 0.0);
        self.accept_errors_total.inc_by(&[], 0);
        for reason in ["evicted", "refused", "idle_timeout", "tls_handshake"] {
            self.connections_dropped_total.inc_by(&[reason], 0);
        }
    }
}

impl Collector for HttpFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        self.open_connections.collect(scrape, out);
        self.connections_dropped_total.collect(scrape, out);
        self.accept_errors_total.collect(scrape, out);
    }
}

/// Per-check outcome families: `fluxbase_exporter_check_*{check}`.
pub struct CheckFamilies {
    pub success: Family<Gauge>,
    pub duration_seconds: Family<Gauge>,
    pub last_success_timestamp_seconds: Family<Gauge>,
}

impl CheckFamilies {
    /// Records one run of `check`, finished at `finished` (wall clock).
    /// Removes a check's series: it is not this exporter's to run now (another exporter leads).
    pub fn forget(&self, check: &str) {
        self.success.remove(&[check]);
        self.duration_seconds.remove(&[check]);
        self.last_success_timestamp_seconds.remove(&[check]);
    }

    pub fn record(&self, check: &str, succeeded: bool, took: Duration, finished: SystemTime) {
        self.success
            .set(&[check], if succeeded { 1.0 } else { 0.0 });
        self.duration_seconds.set(&[check], took.as_secs_f64());
        if succeeded {
            let at = finished
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.last_success_timestamp_seconds.set(&[check], at);
        }
    }
}

/// What the database worker measures beyond Fluxbase's own families.
pub struct DatabaseFamilies {
    pub server_max_connections: Family<Gauge>,
    /// 1 while this exporter leads, 0 while it follows (set by the election).
    pub leader: Family<Gauge>,
    pub realtime_listeners: Family<Gauge>,
    pub auth_sessions_active: Family<Gauge>,
    pub auth_users_locked: Family<Gauge>,
    pub webhook_deliveries: Family<Gauge>,
}

/// Storage totals by source: `database` (storage.objects) and `filesystem` (the storage root).
pub struct StorageFamilies {
    pub buckets: Family<Gauge>,
    pub objects: Family<Gauge>,
    pub bytes: Family<Gauge>,
    pub filesystem_available_bytes: Family<Gauge>,
    pub filesystem_size_bytes: Family<Gauge>,
    pub probe_duration_seconds: Family<Histogram>,
    pub scan_errors_total: Family<Counter>,
}

/// The event sources' families: what they read, counted and skipped.
pub struct EventFamilies {
    pub slow_queries_total: Family<Counter>,
    pub lines_total: Family<Counter>,
    pub parsed_total: Family<Counter>,
    pub skipped_total: Family<Counter>,
    pub lag_seconds: Family<Histogram>,
    pub last_timestamp_seconds: Family<Gauge>,
}

impl Collector for EventFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        self.slow_queries_total.collect(scrape, out);
        self.lines_total.collect(scrape, out);
        self.parsed_total.collect(scrape, out);
        self.skipped_total.collect(scrape, out);
        self.lag_seconds.collect(scrape, out);
        self.last_timestamp_seconds.collect(scrape, out);
    }
}

impl Collector for CheckFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        self.success.collect(scrape, out);
        self.duration_seconds.collect(scrape, out);
        self.last_success_timestamp_seconds.collect(scrape, out);
    }
}

impl Collector for DatabaseFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        self.server_max_connections.collect(scrape, out);
        self.leader.collect(scrape, out);
        self.realtime_listeners.collect(scrape, out);
        self.auth_sessions_active.collect(scrape, out);
        self.auth_users_locked.collect(scrape, out);
        self.webhook_deliveries.collect(scrape, out);
    }
}

impl Collector for StorageFamilies {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>) {
        self.buckets.collect(scrape, out);
        self.objects.collect(scrape, out);
        self.bytes.collect(scrape, out);
        self.filesystem_available_bytes.collect(scrape, out);
        self.filesystem_size_bytes.collect(scrape, out);
        self.probe_duration_seconds.collect(scrape, out);
        self.scan_errors_total.collect(scrape, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn render(collector: &dyn Collector, scrape: &Scrape) -> String {
        let mut out = Vec::new();
        collector.collect(scrape, &mut Exposition::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    fn type_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect()
    }

    #[test]
    fn renders_every_fluxbase_family_once_in_catalogue_order() {
        let families = FluxbaseFamilies::new(&SeriesLimit::new(10), Instant::now());
        let text = render(&families, &Scrape::now());
        let expected: Vec<String> = catalog::FLUXBASE
            .iter()
            .map(|desc| format!("{} {}", desc.name, desc.kind.as_str()))
            .collect();
        assert_eq!(type_lines(&text), expected);
        for desc in catalog::FLUXBASE {
            assert!(
                text.contains(&format!("# HELP {} {}\n", desc.name, desc.help)),
                "{}",
                desc.name
            );
        }
    }

    #[test]
    fn only_uptime_has_a_sample_before_any_worker_feeds_the_families() {
        let families = FluxbaseFamilies::new(&SeriesLimit::new(10), Instant::now());
        let text = render(&families, &Scrape::now());
        let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(samples.len(), 1, "{samples:?}");
        assert!(samples[0].starts_with("fluxbase_system_uptime_seconds "));
    }

    #[test]
    fn uptime_is_exact_at_scrape_time_not_stepped() {
        let started = Instant::now();
        let families = FluxbaseFamilies::new(&SeriesLimit::new(10), started);
        let scrape = Scrape {
            instant: started + Duration::from_millis(2_500),
            ..Scrape::now()
        };
        assert!(
            render(&families.system_uptime_seconds, &scrape)
                .ends_with("\nfluxbase_system_uptime_seconds 2.5\n")
        );
    }

    #[test]
    fn build_info_is_one_with_version_labels() {
        let families = ExporterFamilies::new(&SeriesLimit::new(10));
        let text = render(&families.build_info, &Scrape::now());
        assert!(text.contains(&format!(
            "fluxbase_exporter_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}} 1\n",
            build_info::VERSION,
            build_info::REVISION,
            build_info::RUSTC
        )));
    }
}
