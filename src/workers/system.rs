//! The system worker: samples the exporter's own process from `/proc` every second, so that
//! scrapes read a snapshot instead of the filesystem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Worker;
use crate::process::{ProcessReader, ProcessSnapshot};
use crate::published::Published;

/// How often the process figures are refreshed: often enough that `process_cpu_seconds_total`
/// is smooth at a 1 s scrape interval, and cheap (a few small `/proc` reads).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

pub struct SystemWorker {
    reader: ProcessReader,
    process: Arc<Published<ProcessSnapshot>>,
}

impl SystemWorker {
    pub fn new(process: Arc<Published<ProcessSnapshot>>) -> Self {
        SystemWorker {
            reader: ProcessReader::new(),
            process,
        }
    }
}

impl Worker for SystemWorker {
    fn name(&self) -> &'static str {
        "system"
    }

    fn run_once(&mut self, _: Instant) {
        self.process.publish(self.reader.read());
    }

    fn interval(&self) -> Duration {
        SAMPLE_INTERVAL
    }
}
