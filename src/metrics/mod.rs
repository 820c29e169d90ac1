//! The metrics core: atomic counters, gauges and histograms, labelled families with a
//! cardinality guard, and the Prometheus text format they render into.

mod counter;
mod exposition;
mod family;
mod gauge;
#[cfg(test)]
mod golden;
mod histogram;
mod registry;

pub use counter::Counter;
pub use exposition::{
    CONTENT_TYPE, Exposition, escape_help, escape_label_value, format_f64, write_f64,
    write_label_pairs,
};
pub use family::{Family, Metric, SeriesLimit};
pub use gauge::Gauge;
pub use histogram::Histogram;
pub use registry::{Collector, Registry, Scrape};
