//! The two storage workers: the check (every check interval, its filesystem calls on a helper
//! with a deadline) and the scan (every scan interval, on its own thread).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, TryRecvError};

use super::bounded::{Bounded, Unfinished};
use super::check::{self, Outcome, StorageFailure};
use super::scan::{self, ScanStopped};
use super::{ScanTotals, StorageSettings};
use crate::families::ExporterFamilies;
use crate::health::{CheckReport, HealthBoard, Status};
use crate::published::Published;
use crate::workers::Worker;

/// What the storage workers publish to.
#[derive(Clone)]
pub struct Outputs {
    pub exporter: Arc<ExporterFamilies>,
    pub health: Arc<HealthBoard>,
    pub scan: Arc<Published<Option<ScanTotals>>>,
}

/// How long shutdown waits for a stuck filesystem call before leaving it behind.
const HELPER_GRACE: Duration = Duration::from_millis(200);

/// Checks the storage root every check interval.
pub struct StorageWorker {
    settings: StorageSettings,
    interval: Duration,
    timeout: Duration,
    helper: Option<Bounded>,
    out: Outputs,
    last_success: Option<Instant>,
    failing: bool,
}

impl StorageWorker {
    pub fn new(
        settings: StorageSettings,
        interval: Duration,
        timeout: Duration,
        out: Outputs,
    ) -> std::io::Result<Self> {
        Ok(StorageWorker {
            settings,
            interval,
            timeout,
            helper: Some(Bounded::new("storage-fs")?),
            out,
            last_success: None,
            failing: false,
        })
    }

    /// Runs the check on the helper, bounded by the check timeout.
    fn check(&self) -> Result<Outcome, StorageFailure> {
        let Some(helper) = &self.helper else {
            return Err(StorageFailure::StillWaiting(Duration::ZERO));
        };
        let root = self.settings.root.clone();
        let probe = self.settings.probe;
        helper
            .run(self.timeout, move || check::check(&root, probe))
            .map_err(|unfinished| match unfinished {
                Unfinished::TimedOut => StorageFailure::TimedOut(self.timeout),
                Unfinished::StillBusy(waited) => StorageFailure::StillWaiting(waited),
                Unfinished::Gone => StorageFailure::Io {
                    path: self.settings.root.clone(),
                    action: "check",
                    error: "the filesystem helper thread stopped".to_owned(),
                },
            })
    }

    fn publish(&mut self, now: Instant, verdict: Result<Duration, StorageFailure>) {
        let (status, latency, message) = match &verdict {
            Ok(latency) => (Status::Healthy, Some(*latency), None),
            Err(failure) => (Status::Degraded, None, Some(failure.message())),
        };
        match &verdict {
            Ok(_) if self.failing => {
                log::info!(root:% = self.settings.root.display(); "storage check passes again")
            }
            Err(failure) if !self.failing => {
                log::warn!(root:% = self.settings.root.display(), reason = failure.message().as_str(); "storage check failed")
            }
            _ => {}
        }
        self.failing = verdict.is_err();
        if verdict.is_ok() {
            self.last_success = Some(now);
        }
        self.out.health.storage.publish(Some(CheckReport {
            status,
            latency,
            message,
            checked_at: now,
            last_success: self.last_success,
            stale_after: self.interval * 3 + self.timeout,
            // Fluxbase treats a storage failure as degraded, never unhealthy.
            stale_status: Status::Degraded,
        }));
    }
}

impl Worker for StorageWorker {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn run_once(&mut self, now: Instant) {
        let started = Instant::now();
        let storage = &self.out.exporter.storage;
        let verdict = match self.check() {
            Ok(outcome) => {
                if let Some(times) = outcome.findings.probe {
                    storage
                        .probe_duration_seconds
                        .observe(&["write"], times.write.as_secs_f64());
                    storage
                        .probe_duration_seconds
                        .observe(&["read"], times.read.as_secs_f64());
                    storage
                        .probe_duration_seconds
                        .observe(&["delete"], times.delete.as_secs_f64());
                }
                let low_space = match outcome.findings.space {
                    Some(space) => {
                        storage
                            .filesystem_available_bytes
                            .set(&[], space.available as f64);
                        storage.filesystem_size_bytes.set(&[], space.total as f64);
                        let free = space.available as f64 / space.total as f64;
                        (free < self.settings.min_free_ratio).then_some(StorageFailure::LowSpace {
                            free_percent: free * 100.0,
                            minimum_percent: self.settings.min_free_ratio * 100.0,
                        })
                    }
                    None => {
                        storage.filesystem_available_bytes.clear();
                        storage.filesystem_size_bytes.clear();
                        None
                    }
                };
                let latency = outcome.findings.latency;
                outcome
                    .result
                    .and_then(|()| low_space.map_or(Ok(latency), Err))
            }
            Err(failure) => {
                // Not measured this time: no figure stands as if it were.
                storage.filesystem_available_bytes.clear();
                storage.filesystem_size_bytes.clear();
                Err(failure)
            }
        };
        let succeeded = verdict.is_ok();
        self.publish(now, verdict);
        self.out
            .exporter
            .checks
            .record("storage", succeeded, started.elapsed(), SystemTime::now());
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn stop(&mut self) {
        if let Some(helper) = self.helper.take() {
            helper.shutdown(HELPER_GRACE);
        }
    }
}

/// Measures the storage root every scan interval (and retries a failed scan every check
/// interval). Publishes only finished scans.
pub struct ScanWorker {
    settings: StorageSettings,
    retry_interval: Duration,
    out: Outputs,
    stop: Receiver<()>,
    failed: bool,
}

impl ScanWorker {
    /// `stop` disconnects at shutdown; a scan in progress then stops early.
    pub fn new(
        settings: StorageSettings,
        retry_interval: Duration,
        out: Outputs,
        stop: Receiver<()>,
    ) -> Self {
        ScanWorker {
            settings,
            retry_interval,
            out,
            stop,
            failed: false,
        }
    }
}

impl Worker for ScanWorker {
    fn name(&self) -> &'static str {
        "storage-scan"
    }

    fn run_once(&mut self, _: Instant) {
        let storage = &self.out.exporter.storage;
        let stop = &self.stop;
        let started = Instant::now();
        let outcome = scan::scan(&self.settings.root, || {
            matches!(stop.try_recv(), Err(TryRecvError::Empty))
        });
        match outcome {
            Ok(report) => {
                let buckets = &report.buckets;
                storage.buckets.set(&["filesystem"], buckets.len() as f64);
                storage.objects.replace(
                    &["filesystem"],
                    buckets
                        .iter()
                        .map(|(name, usage)| ([name.as_str()], usage.objects as f64)),
                );
                storage.bytes.replace(
                    &["filesystem"],
                    buckets
                        .iter()
                        .map(|(name, usage)| ([name.as_str()], usage.bytes as f64)),
                );
                for (kind, count) in &report.errors {
                    storage.scan_errors_total.inc_by(&[kind.as_str()], *count);
                }
                let finished_at = SystemTime::now();
                self.out.scan.publish(Some(ScanTotals {
                    finished_at,
                    buckets: report.buckets.len() as u64,
                    objects: report.objects(),
                    bytes: report.bytes(),
                }));
                self.out
                    .exporter
                    .checks
                    .record("storage_scan", true, report.duration, finished_at);
                if self.failed {
                    log::info!(root:% = self.settings.root.display(); "storage scan succeeds again");
                }
                self.failed = false;
            }
            Err(ScanStopped::Root(failure)) => {
                for family in [&storage.buckets, &storage.objects, &storage.bytes] {
                    family.clear_scope(&["filesystem"]);
                }
                self.out.scan.publish(None);
                self.out.exporter.checks.record(
                    "storage_scan",
                    false,
                    started.elapsed(),
                    SystemTime::now(),
                );
                if !self.failed {
                    log::warn!(reason = failure.message().as_str(); "storage scan cannot list the root");
                }
                self.failed = true;
            }
            Err(ScanStopped::Cancelled) => {}
        }
    }

    fn interval(&self) -> Duration {
        if self.failed {
            self.retry_interval
        } else {
            self.settings.scan_interval
        }
    }
}
