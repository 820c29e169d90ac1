//! The JSON bodies of Fluxbase's monitoring API (`fluxbase.md` section 3), in Fluxbase's key
//! order, filled only with what the exporter measured: a key it cannot know is left out.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::build_info;
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
    /// What produced this body: the exporter's build.
    pub exporter: ExporterInfo,
}

#[derive(Debug, Serialize)]
pub struct ExporterInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub rustc: &'static str,
    pub target: &'static str,
}

impl SystemMetrics {
    pub fn from_state(state: &State, now: Instant) -> Self {
        let process = state.process.latest();
        SystemMetrics {
            uptime_seconds: now.saturating_duration_since(state.started).as_secs(),
            num_goroutines: process.threads,
            // Fluxbase reports whole mebibytes (bytes / 1024 / 1024, truncated).
            memory_sys_mb: process.resident_bytes.map(|bytes| bytes / 1024 / 1024),
            exporter: ExporterInfo {
                version: build_info::VERSION,
                revision: build_info::REVISION,
                rustc: build_info::RUSTC,
                target: build_info::TARGET,
            },
        }
    }
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
            latency_ms: service.latency_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
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
