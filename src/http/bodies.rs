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
use crate::upstream;

/// `GET /api/v1/monitoring/metrics`.
///
/// Fluxbase's keys describe Fluxbase: the runtime keys (`uptime_seconds` to `gc_pause_ms`) and
/// the realtime counts come from Fluxbase's own metrics endpoint, and are absent without one
/// (or while its latest read failed or is older than an interval plus the timeout); the
/// `database` block describes Fluxbase's sessions as `pg_stat_activity` shows them. The
/// exporter's own process and pool are under `exporter` only.
#[derive(Debug, Serialize)]
pub struct SystemMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_goroutines: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_alloc_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_total_alloc_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_sys_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_gc: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_pause_ms: Option<f64>,
    pub database: DatabaseBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageBody>,
    /// What produced this body: the exporter's build, process and pool.
    pub exporter: ExporterInfo,
}

/// The database block: Fluxbase's sessions as `pg_stat_activity` shows them, under Fluxbase's
/// pool keys, then what the server says, each under a name that says so.
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
    /// Fluxbase's sessions running a statement (`total_conns - idle_conns`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquired_conns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_conns: Option<i64>,
    /// Fluxbase's configured pool size (`database.max_connections`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_conns: Option<u32>,
    /// Client sessions on Fluxbase's database, the exporter's own left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_conns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_max_connections: Option<i64>,
    /// Whether the query metrics have a source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_stat_statements: Option<String>,
    /// When the figures above were read (RFC 3339); absent until a check succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

/// r2d2's view of the exporter's own pool, in pgxpool's key names.
#[derive(Debug, Serialize)]
pub struct PoolBody {
    pub acquire_count: u64,
    pub acquired_conns: u32,
    pub idle_conns: u32,
    pub max_conns: u32,
    pub total_conns: u32,
    pub acquire_duration_ms: u64,
}

/// Realtime: Fluxbase's own counts (from its metrics endpoint's realtime gauges), and the
/// change feed's listening sessions (from `pg_stat_activity`, read at `read_at`).
#[derive(Debug, Default, Serialize)]
pub struct RealtimeBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_channels: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_subscriptions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_feed_listeners: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
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
    /// Seconds since the exporter started.
    pub uptime_seconds: u64,
    /// The exporter's OS threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_threads: Option<u64>,
    /// The exporter's resident memory, whole MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_resident_mb: Option<u64>,
    /// The exporter's own database pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool: Option<PoolBody>,
    /// Fluxbase's metrics endpoint, when one is configured, and how its latest read went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fluxbase_metrics: Option<UpstreamBody>,
    /// The event sources feeding the log-derived families, and how each is doing; empty when
    /// none is configured (those families then stay empty).
    pub event_sources: Vec<serde_json::Value>,
}

/// How the latest read of Fluxbase's metrics endpoint went.
#[derive(Debug, Serialize)]
pub struct UpstreamBody {
    pub url: String,
    /// `ok` (a read no older than an interval plus the timeout), `failing` or `starting`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whole mebibytes, as Fluxbase reports memory (bytes / 1024 / 1024, truncated).
fn whole_mib(bytes: u64) -> u64 {
    bytes / 1024 / 1024
}

impl SystemMetrics {
    /// The body at `now` (monotonic, for ages) and `wall` (for uptimes).
    pub fn from_state(state: &State, now: Instant, wall: SystemTime) -> Self {
        let process = state.process.latest();
        let database = state.database.latest();
        // One snapshot for the whole body.
        let upstream_status = state
            .upstream
            .as_ref()
            .map(|upstream| (upstream, upstream.latest.latest()));
        let fresh = upstream_status
            .as_ref()
            .filter(|(upstream, status)| upstream.is_fresh(status, now))
            .map(|(_, status)| status);
        let runtime = fresh
            .and_then(|status| status.reading.as_ref())
            .map(|reading| &reading.runtime);
        let activity = database
            .live
            .and_then(|live| live.activity.map(|activity| (live.read_at, activity)));
        let realtime = RealtimeBody {
            total_connections: runtime.and_then(|r| r.realtime_connections),
            active_channels: runtime.and_then(|r| r.realtime_channels),
            total_subscriptions: runtime.and_then(|r| r.realtime_subscriptions),
            change_feed_listeners: activity.map(|(_, activity)| activity.listeners),
            read_at: activity.map(|(read_at, _)| timestamp::rfc3339(read_at, Precision::Seconds)),
        };
        let has_realtime = realtime.total_connections.is_some()
            || realtime.active_channels.is_some()
            || realtime.total_subscriptions.is_some()
            || realtime.change_feed_listeners.is_some();
        SystemMetrics {
            // Fluxbase truncates its uptime to whole seconds.
            uptime_seconds: runtime
                .and_then(|r| upstream::uptime_seconds(r.start_time_seconds, wall))
                .map(|seconds| seconds as u64),
            go_version: runtime.and_then(|r| r.go_version.clone()),
            num_goroutines: runtime.and_then(|r| r.goroutines),
            memory_alloc_mb: runtime.and_then(|r| r.alloc_bytes).map(whole_mib),
            memory_total_alloc_mb: runtime.and_then(|r| r.total_alloc_bytes).map(whole_mib),
            memory_sys_mb: runtime.and_then(|r| r.sys_bytes).map(whole_mib),
            num_gc: runtime.and_then(|r| r.num_gc),
            gc_pause_ms: runtime.and_then(|r| r.gc_pause_ms).map(round_ms),
            database: DatabaseBody::from_status(&database),
            realtime: has_realtime.then_some(realtime),
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
                uptime_seconds: now.saturating_duration_since(state.started).as_secs(),
                num_threads: process.threads,
                memory_resident_mb: process.resident_bytes.map(whole_mib),
                database_pool: database.configured.then(|| {
                    let pool = &database.pool;
                    PoolBody {
                        acquire_count: pool.acquire_count,
                        acquired_conns: pool.acquired_conns,
                        idle_conns: pool.idle_conns,
                        max_conns: pool.max_conns,
                        total_conns: pool.total_conns,
                        acquire_duration_ms: pool.acquire_duration_ms,
                    }
                }),
                fluxbase_metrics: upstream_status.as_ref().map(|(upstream, status)| {
                    let (state, message) = if fresh.is_some() {
                        ("ok", None)
                    } else if let Some(error) = &status.error {
                        ("failing", Some(error.clone()))
                    } else if status.reading.is_some() {
                        (
                            "failing",
                            Some(format!(
                                "no good read for more than {}s",
                                upstream.max_age.as_secs()
                            )),
                        )
                    } else {
                        ("starting", None)
                    };
                    UpstreamBody {
                        url: upstream.url.clone(),
                        state,
                        message,
                    }
                }),
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
        let activity = status.live.and_then(|live| live.activity);
        DatabaseBody {
            configured: true,
            role: status.role.map(|role| role.as_str()),
            message: status.error.clone(),
            acquired_conns: activity.map(|a| a.connections - a.idle),
            idle_conns: activity.map(|a| a.idle),
            max_conns: Some(status.fluxbase_max_connections),
            total_conns: activity.map(|a| a.connections),
            latency_ms: status
                .live
                .map(|live| round_ms(live.latency.as_secs_f64() * 1000.0)),
            server_max_connections: activity.map(|a| a.server_max_connections),
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
    /// Fluxbase's API, as its own `GET /health` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ServiceBody>,
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
                "api" => &mut body.api,
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

    /// A follower shows its ping, its role and Fluxbase's pool size, and none of the server's
    /// figures (the exporter's own pool is under `exporter`).
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
            "{\"configured\":true,\"role\":\"follower\",\"max_conns\":50,\"latency_ms\":1.25,\
             \"pg_stat_statements\":\"read by the leader\",\"read_at\":\"2023-11-14T22:13:20Z\"}",
        );
    }
}
