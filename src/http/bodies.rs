//! The JSON bodies of Fluxbase's monitoring API (`fluxbase.md` section 3), in Fluxbase's key
//! order, filled only with what the exporter measured: a key it cannot know is left out.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::build_info;
use crate::database::DatabaseStatus;
use crate::events::sources;
use crate::health::{self, ServiceHealth, Status};
use crate::state::State;
use crate::timestamp::{self, Precision};

/// `GET /api/v1/monitoring/metrics`.
///
/// The exporter is not a Go program, so Go-runtime keys with no counterpart (`go_version`,
/// `memory_alloc_mb`, `memory_total_alloc_mb`, `num_gc`, `gc_pause_ms`) are absent. Where a
/// key has a counterpart it carries the exporter's measured value: `num_goroutines` is its
/// number of OS threads and `memory_sys_mb` its resident memory.
#[derive(Debug, Serialize)]
pub struct SystemMetrics {
    pub uptime_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_goroutines: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_sys_mb: Option<u64>,
    pub database: DatabaseBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageBody>,
    /// What produced this body: the exporter's build.
    pub exporter: ExporterInfo,
}

/// The database block: the exporter's own pool under Fluxbase's pool keys, then what the
/// server says, each under a name that says so.
#[derive(Debug, Default, Serialize)]
pub struct DatabaseBody {
    pub configured: bool,
    /// `leader` (this exporter does the database-wide work) or `follower` (another one does:
    /// the server figures below are absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Why nothing is measured, or what failed in the latest check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_connections: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_idle_connections: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_max_connections: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fluxbase_max_connections: Option<u32>,
    /// Whether the query metrics have a source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_stat_statements: Option<String>,
    /// When the figures above were read (RFC 3339); absent until a check succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

/// r2d2's view of the exporter's pool, in pgxpool's key names.
#[derive(Debug, Serialize)]
pub struct PoolBody {
    pub acquire_count: u64,
    pub acquired_conns: u32,
    pub idle_conns: u32,
    pub max_conns: u32,
    pub total_conns: u32,
    pub acquire_duration_ms: u64,
}

/// What can be known of realtime from outside: the change feed's listening sessions.
#[derive(Debug, Serialize)]
pub struct RealtimeBody {
    pub change_feed_listeners: i64,
    pub read_at: String,
}

/// Fluxbase's storage totals (GiB, base 1024), and where they came from.
#[derive(Debug, Serialize)]
pub struct StorageBody {
    pub total_buckets: u64,
    pub total_files: u64,
    pub total_size_gb: f64,
    pub source: &'static str,
    pub read_at: String,
}

impl StorageBody {
    fn new(
        buckets: u64,
        files: u64,
        bytes: u64,
        source: &'static str,
        read_at: SystemTime,
    ) -> Self {
        StorageBody {
            total_buckets: buckets,
            total_files: files,
            total_size_gb: bytes as f64 / 1024.0 / 1024.0 / 1024.0,
            source,
            read_at: timestamp::rfc3339(read_at, Precision::Seconds),
        }
    }
}

/// The message of the database block when no database is configured.
pub const NO_DATABASE: &str =
    "no database configured: set --database.url, or Fluxbase's FLUXBASE_DATABASE_* variables";

#[derive(Debug, Serialize)]
pub struct ExporterInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub rustc: &'static str,
    pub target: &'static str,
    /// The event sources feeding the log-derived families, and how each is doing; empty when
    /// none is configured (those families then stay empty).
    pub event_sources: Vec<serde_json::Value>,
}

impl SystemMetrics {
    pub fn from_state(state: &State, now: Instant) -> Self {
        let process = state.process.latest();
        let database = state.database.latest();
        let activity = database
            .live
            .and_then(|live| live.activity.map(|activity| (live.read_at, activity)));
        SystemMetrics {
            uptime_seconds: now.saturating_duration_since(state.started).as_secs(),
            num_goroutines: process.threads,
            // Fluxbase reports whole mebibytes (bytes / 1024 / 1024, truncated).
            memory_sys_mb: process.resident_bytes.map(|bytes| bytes / 1024 / 1024),
            database: DatabaseBody::from_status(&database),
            realtime: activity.map(|(read_at, activity)| RealtimeBody {
                change_feed_listeners: activity.listeners,
                read_at: timestamp::rfc3339(read_at, Precision::Seconds),
            }),
            // The database's figures win; the storage scan stands in when there are none.
            storage: match (database.storage, *state.storage_scan.latest()) {
                (Some(totals), _) => Some(StorageBody::new(
                    totals.buckets,
                    totals.objects,
                    totals.bytes,
                    "database",
                    totals.read_at,
                )),
                (None, Some(scan)) => Some(StorageBody::new(
                    scan.buckets,
                    scan.objects,
                    scan.bytes,
                    "filesystem",
                    scan.finished_at,
                )),
                (None, None) => None,
            },
            exporter: ExporterInfo {
                version: build_info::VERSION,
                revision: build_info::REVISION,
                rustc: build_info::RUSTC,
                target: build_info::TARGET,
                event_sources: state
                    .event_sources
                    .iter()
                    .map(|status| sources::describe(&status.latest()))
                    .collect(),
            },
        }
    }
}

impl DatabaseBody {
    fn from_status(status: &DatabaseStatus) -> Self {
        if !status.configured {
            return DatabaseBody {
                configured: false,
                message: Some(NO_DATABASE.to_owned()),
                ..DatabaseBody::default()
            };
        }
        let pool = &status.pool;
        let activity = status.live.and_then(|live| live.activity);
        DatabaseBody {
            configured: true,
            role: status.role.map(|role| role.as_str()),
            message: status.error.clone(),
            pool: Some(PoolBody {
                acquire_count: pool.acquire_count,
                acquired_conns: pool.acquired_conns,
                idle_conns: pool.idle_conns,
                max_conns: pool.max_conns,
                total_conns: pool.total_conns,
                acquire_duration_ms: pool.acquire_duration_ms,
            }),
            latency_ms: status
                .live
                .map(|live| round_ms(live.latency.as_secs_f64() * 1000.0)),
            server_connections: activity.map(|a| a.connections),
            server_idle_connections: activity.map(|a| a.idle),
            server_max_connections: activity.map(|a| a.server_max_connections),
            fluxbase_max_connections: Some(status.fluxbase_max_connections),
            pg_stat_statements: Some(status.statements.clone()),
            read_at: status
                .live
                .map(|live| timestamp::rfc3339(live.read_at, Precision::Seconds)),
        }
    }
}

/// Milliseconds to microsecond resolution.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// `GET /api/v1/monitoring/health`: the overall status and one entry per checked service.
#[derive(Debug, Serialize)]
pub struct SystemHealth {
    pub status: &'static str,
    pub services: Services,
}

/// Fluxbase's services, in its order; a service no worker checks is left out.
#[derive(Debug, Default, Serialize)]
pub struct Services {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<ServiceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<ServiceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<ServiceBody>,
}

#[derive(Debug, Serialize)]
pub struct ServiceBody {
    pub status: &'static str,
    /// Milliseconds with microsecond resolution (Fluxbase truncates to whole milliseconds and
    /// then drops a 0, so a fast check shows no latency at all there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<ServiceHealth> for ServiceBody {
    fn from(service: ServiceHealth) -> Self {
        ServiceBody {
            status: service.status.as_str(),
            latency_ms: service.latency_ms.map(round_ms),
            message: service.message,
        }
    }
}

impl SystemHealth {
    /// The health of every checked service at `now`, and the overall status (the worst).
    pub fn from_state(state: &State, now: Instant) -> (Status, Self) {
        let services = state.health.services(now);
        let overall = health::overall(services.iter().map(|(_, service)| service));
        let mut body = Services::default();
        for (name, service) in services {
            let slot = match name {
                "database" => &mut body.database,
                "realtime" => &mut body.realtime,
                _ => &mut body.storage,
            };
            *slot = Some(service.into());
        }
        (
            overall,
            SystemHealth {
                status: overall.as_str(),
                services: body,
            },
        )
    }
}

/// `GET /health`, Fluxbase's public probe: `ok` when every checked service is healthy,
/// `degraded` otherwise.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub status: &'static str,
    pub timestamp: String,
}

impl Probe {
    pub fn new(overall: Status, now: SystemTime) -> Self {
        Probe {
            status: if overall == Status::Healthy {
                "ok"
            } else {
                "degraded"
            },
            timestamp: timestamp::rfc3339(now, Precision::Seconds),
        }
    }
}

/// `{"error": "..."}`, the body of every refusal.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
}

#[cfg(test)]
mod coordination_tests {
    use super::*;
    use crate::database::Role;
    use crate::database::status::{LiveReading, PoolStats};
    use std::time::{Duration, UNIX_EPOCH};

    #[track_caller]
    fn check(status: &DatabaseStatus, expected: &str) {
        let body = serde_json::to_string(&DatabaseBody::from_status(status)).unwrap();
        assert_eq!(body, expected);
    }

    /// A follower shows its own pool, ping and role, and none of the server's figures.
    #[test]
    fn a_follower_says_so_and_shows_no_server_figures() {
        let status = DatabaseStatus {
            configured: true,
            target: "exporter@db:5432/fluxbase".to_owned(),
            pool: PoolStats {
                acquire_count: 7,
                max_conns: 1,
                total_conns: 1,
                idle_conns: 1,
                ..PoolStats::default()
            },
            live: Some(LiveReading {
                read_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                latency: Duration::from_micros(1250),
                activity: None,
            }),
            fluxbase_max_connections: 50,
            statements: "read by the leader".to_owned(),
            role: Some(Role::Follower),
            storage: None,
            error: None,
        };
        check(
            &status,
            "{\"configured\":true,\"role\":\"follower\",\"acquire_count\":7,\"acquired_conns\":0,\
             \"idle_conns\":1,\"max_conns\":1,\"total_conns\":1,\"acquire_duration_ms\":0,\
             \"latency_ms\":1.25,\"fluxbase_max_connections\":50,\
             \"pg_stat_statements\":\"read by the leader\",\"read_at\":\"2023-11-14T22:13:20Z\"}",
        );
    }
}
