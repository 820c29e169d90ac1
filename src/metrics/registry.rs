//! The registry: the ordered list of collectors that a scrape renders.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::exposition::Exposition;

/// The moment a scrape happens, passed to every collector so that figures computed at scrape
/// time (uptime, staleness) agree with each other and tests need no clock.
#[derive(Clone, Copy, Debug)]
pub struct Scrape {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Scrape {
    pub fn now() -> Self {
        Scrape {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Something that writes metric families into a scrape.
///
/// **Contract:** `collect` must not block on I/O. It reads atomics and snapshots that a worker
/// published; the worker does the I/O. Each family it writes gets one header, then its samples.
pub trait Collector: Send + Sync {
    fn collect(&self, scrape: &Scrape, out: &mut Exposition<'_>);
}

/// The collectors of one exporter, in the order they render. Built once at start-up and
/// immutable afterwards, so a scrape takes no lock to walk it.
#[derive(Default)]
pub struct Registry {
    collectors: Vec<Arc<dyn Collector>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a collector after those already registered.
    pub fn register(&mut self, collector: Arc<dyn Collector>) {
        self.collectors.push(collector);
    }

    /// Renders every collector into `out` (cleared first), as of `scrape`.
    pub fn render(&self, scrape: &Scrape, out: &mut Vec<u8>) {
        out.clear();
        let mut exposition = Exposition::new(out);
        for collector in &self.collectors {
            collector.collect(scrape, &mut exposition);
        }
    }
}
