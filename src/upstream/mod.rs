//! Fluxbase's own metrics endpoint: the worker that reads it (`scrape`), the strict text-format
//! parser (`parse`), the merge table (`merge`), where its URL comes from (`config`), and the
//! snapshot the handlers render from (this file).
//!
//! The worker parses and pre-renders; a scrape of `/metrics` only copies the latest snapshot's
//! bytes, after checking its age against `now`.

pub mod config;
pub mod merge;
pub mod parse;
pub mod scrape;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::catalog::{self, FamilyDesc};
use crate::metrics::{Exposition, Scrape, write_f64};
use crate::published::Published;

pub use config::metrics_url;
pub use scrape::{UpstreamError, UpstreamWorker};

/// The check's name in `fluxbase_exporter_check_*{check}`.
pub const CHECK: &str = "fluxbase_metrics";

/// What one good read of the endpoint produced.
#[derive(Debug, Default)]
pub struct Reading {
    /// When the read finished (its age is measured from here).
    pub read_at: Option<Instant>,
    /// The pre-rendered sample lines of each passed-through family, by index in
    /// [`merge::TABLE`] (empty for the others, and for a family Fluxbase did not serve).
    pub samples: Vec<Box<[u8]>>,
    /// Fluxbase's runtime and realtime figures, for the JSON body.
    pub runtime: Runtime,
}

/// What the JSON system metrics take from Fluxbase's `go_*`, `process_*` and realtime
/// families; each `None` when Fluxbase did not serve it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Runtime {
    /// `process_start_time_seconds`, seconds since the epoch.
    pub start_time_seconds: Option<f64>,
    pub go_version: Option<String>,
    pub goroutines: Option<u64>,
    pub alloc_bytes: Option<u64>,
    pub total_alloc_bytes: Option<u64>,
    pub sys_bytes: Option<u64>,
    pub num_gc: Option<u64>,
    /// Mean pause of the collections between the previous read and this one (lifetime mean
    /// when none ran in between), in milliseconds.
    pub gc_pause_ms: Option<f64>,
    /// `go_gc_duration_seconds`' `_count` and `_sum`, to compute the next read's mean pause.
    pub gc_totals: Option<(f64, f64)>,
    pub realtime_connections: Option<u64>,
    pub realtime_channels: Option<u64>,
    pub realtime_subscriptions: Option<u64>,
}

/// The state of the upstream, as the worker last published it.
#[derive(Debug, Default)]
pub struct UpstreamStatus {
    /// The latest good read; `None` before the first and after any failed one.
    pub reading: Option<Reading>,
    /// What failed in the latest read, in plain words.
    pub error: Option<String>,
}

/// Fluxbase's endpoint as the rest of the exporter sees it: the URL, the latest snapshot and
/// how old a snapshot may be before it is no longer shown.
#[derive(Debug)]
pub struct Upstream {
    pub url: String,
    /// One check interval plus the check timeout.
    pub max_age: Duration,
    pub latest: Published<UpstreamStatus>,
}

impl Upstream {
    pub fn new(url: String, interval: Duration, timeout: Duration) -> Arc<Self> {
        Arc::new(Upstream {
            url,
            max_age: interval + timeout,
            latest: Published::default(),
        })
    }

    /// The latest status, if it holds a reading no older than `max_age` at `now`.
    pub fn fresh(&self, now: Instant) -> Option<Arc<UpstreamStatus>> {
        let status = self.latest.latest();
        self.is_fresh(&status, now).then_some(status)
    }

    /// Whether `status` holds a reading no older than `max_age` at `now`.
    pub fn is_fresh(&self, status: &UpstreamStatus, now: Instant) -> bool {
        status
            .reading
            .as_ref()
            .and_then(|reading| reading.read_at)
            .is_some_and(|read_at| now.saturating_duration_since(read_at) <= self.max_age)
    }

    /// Writes the family of `merge::TABLE[index]` as Fluxbase served it: our catalogue's name
    /// and type, the reference's HELP, then the pre-rendered samples of a fresh reading (none
    /// when the reading is missing or too old).
    pub fn render(
        &self,
        index: usize,
        status: Option<&UpstreamStatus>,
        scrape: &Scrape,
        out: &mut Exposition<'_>,
    ) {
        let Some(row) = merge::TABLE.get(index) else {
            return;
        };
        out.header(&FamilyDesc {
            help: row.help,
            ..*row.family
        });
        let Some(reading) = status.and_then(|status| status.reading.as_ref()) else {
            return;
        };
        match row.with_upstream {
            merge::Origin::PassThrough => {
                if let Some(samples) = reading.samples.get(index) {
                    out.raw(samples);
                }
            }
            merge::Origin::UpstreamUptime => {
                if let Some(uptime) =
                    uptime_seconds(reading.runtime.start_time_seconds, scrape.wall)
                {
                    out.sample_f64(catalog::SYSTEM_UPTIME_SECONDS.name, "", "", uptime);
                }
            }
            merge::Origin::Own => {}
        }
    }
}

/// Seconds from `start` (seconds since the epoch) to `now`; `None` without a start time, and
/// never negative (a clock set back).
pub fn uptime_seconds(start: Option<f64>, now: SystemTime) -> Option<f64> {
    let start = start.filter(|start| start.is_finite())?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some((now - start).max(0.0))
}

/// Appends one sample line `name{labels} value` in the text format.
pub fn write_sample(out: &mut Vec<u8>, sample: &parse::Sample) {
    out.extend_from_slice(sample.name.as_bytes());
    if !sample.labels.is_empty() {
        out.push(b'{');
        for (i, (name, value)) in sample.labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"=\"");
            out.extend_from_slice(crate::metrics::escape_label_value(value).as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
    write_f64(out, sample.value);
    out.push(b'\n');
}
