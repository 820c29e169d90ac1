//! The storage side: Fluxbase's local storage root, checked every check interval (health,
//! probe, free space) and measured every scan interval (buckets, objects, bytes), without ever
//! letting a hung filesystem block a check or a scrape.

mod bounded;
pub mod check;
pub mod scan;
mod worker;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use worker::{Outputs, ScanWorker, StorageWorker};

/// Where the storage root is and how to watch it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageSettings {
    pub root: PathBuf,
    /// Write, read and delete a file in the exporter's hidden directory on every check.
    pub probe: bool,
    pub scan_interval: Duration,
    /// Below this share of free space the storage is degraded.
    pub min_free_ratio: f64,
}

/// The latest finished scan, for the JSON endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanTotals {
    pub finished_at: SystemTime,
    pub buckets: u64,
    pub objects: u64,
    pub bytes: u64,
}
