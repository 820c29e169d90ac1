//! What the database worker last found, for the JSON endpoints. Every figure carries the time
//! it was read.

use std::time::{Duration, SystemTime};

use super::leader::Role;
use super::queries::Activity;

/// The database side as of the latest round.
#[derive(Clone, Debug, Default)]
pub struct DatabaseStatus {
    /// `false`: no database is configured and nothing below is measured.
    pub configured: bool,
    /// `user@host:port/database` (never the password).
    pub target: String,
    /// The exporter's own pool, in Fluxbase's pool vocabulary.
    pub pool: PoolStats,
    /// The latest successful round: when, and what it found.
    pub live: Option<LiveReading>,
    /// Fluxbase's configured pool size.
    pub fluxbase_max_connections: u32,
    /// Whether query metrics have a source: `available`, `not installed`, `not loaded: ...`.
    pub statements: String,
    /// Whether this exporter does the database-wide work (`None`: no database configured).
    pub role: Option<Role>,
    /// Bucket and object totals from `storage.objects`, when that table could be read.
    pub storage: Option<StorageTotals>,
    /// What failed in the latest round, if anything.
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct LiveReading {
    pub read_at: SystemTime,
    pub latency: Duration,
    pub activity: Option<Activity>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Times a session was taken from the pool.
    pub acquire_count: u64,
    /// Sessions in use now (by the worker, between rounds none).
    pub acquired_conns: u32,
    pub idle_conns: u32,
    pub max_conns: u32,
    pub total_conns: u32,
    /// Cumulative time spent waiting for a session, in milliseconds.
    pub acquire_duration_ms: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct StorageTotals {
    pub read_at: SystemTime,
    pub buckets: u64,
    pub objects: u64,
    pub bytes: u64,
}
