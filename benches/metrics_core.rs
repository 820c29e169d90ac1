//! `make bench`: the cost of the metrics core, beside the `prometheus` crate in the same run.
//!
//! Reports the median of several timed rounds (the machines are shared and noisy; the side-by-side
//! ratio is the figure to read, not the absolute one).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use fluxbase_exporter::catalog;
use fluxbase_exporter::metrics::{
    Collector, Counter, Exposition, Family, Histogram, Scrape, SeriesLimit,
};

const ROUNDS: usize = 7;

fn main() {
    println!("## Metrics core beside the prometheus crate\n\n{ROUNDS} rounds each, median.\n");
    println!("| measurement | ours | prometheus crate | ratio (theirs / ours) |");
    println!("|---|---|---|---|");

    let ours = median(|| observe_ours(5_000_000));
    let theirs = median(|| observe_prometheus(5_000_000));
    row("histogram observe, uncontended (ns/op)", ours, theirs);

    let ours = median(|| observe_ours_contended(2, 2_000_000));
    let theirs = median(|| observe_prometheus_contended(2, 2_000_000));
    row(
        "histogram observe, 2 threads on one series (ns/op per thread)",
        ours,
        theirs,
    );

    let ours = median(|| counter_inc_ours(10_000_000));
    let theirs = median(|| counter_inc_prometheus(10_000_000));
    row("counter inc, uncontended (ns/op)", ours, theirs);

    let counters = counter_family(1000);
    let mut buffer = Vec::new();
    let ours = median(|| render_us(&counters, &mut buffer));
    let theirs_registry = prometheus_counters(1000);
    let theirs = median(|| render_prometheus_us(&theirs_registry));
    row("render 1,000 counter series (µs)", ours, theirs);

    let histograms = histogram_family(1000);
    let ours = median(|| render_us(&histograms, &mut buffer));
    let theirs_registry = prometheus_histograms(1000);
    let theirs = median(|| render_prometheus_us(&theirs_registry));
    row(
        "render 1,000 histogram series, 12 buckets (µs)",
        ours,
        theirs,
    );

    let text_bytes = {
        buffer.clear();
        histograms.collect(&Scrape::now(), &mut Exposition::new(&mut buffer));
        buffer.len()
    };
    println!("\n(1,000 histogram series render to {text_bytes} bytes of text.)");
}

fn row(name: &str, ours: f64, theirs: f64) {
    println!(
        "| {name} | {ours:.2} | {theirs:.2} | {:.2} |",
        theirs / ours
    );
}

fn median(mut measure: impl FnMut() -> f64) -> f64 {
    measure(); // warm-up
    let mut samples: Vec<f64> = (0..ROUNDS).map(|_| measure()).collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn per_op_ns(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Durations spread over the buckets the way request latencies are: mostly small.
fn value(i: usize) -> f64 {
    [0.0007, 0.003, 0.004, 0.02, 0.04, 0.2, 0.8, 3.0][i & 7]
}

const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn observe_ours(ops: usize) -> f64 {
    let histogram = Histogram::new(HTTP_BUCKETS);
    let start = Instant::now();
    for i in 0..ops {
        black_box(&histogram).observe(black_box(value(i)));
    }
    per_op_ns(start.elapsed(), ops)
}

fn prometheus_histogram() -> prometheus::Histogram {
    prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("h", "h").buckets(HTTP_BUCKETS.to_vec()),
    )
    .expect("valid histogram")
}

fn observe_prometheus(ops: usize) -> f64 {
    let histogram = prometheus_histogram();
    let start = Instant::now();
    for i in 0..ops {
        black_box(&histogram).observe(black_box(value(i)));
    }
    per_op_ns(start.elapsed(), ops)
}

fn contended(threads: usize, ops: usize, observe: impl Fn(f64) + Send + Sync + 'static) -> f64 {
    let observe = Arc::new(observe);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let observe = Arc::clone(&observe);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..ops {
                    observe(black_box(value(i)));
                }
                start.elapsed()
            })
        })
        .collect();
    let slowest = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default();
    per_op_ns(slowest, ops)
}

fn observe_ours_contended(threads: usize, ops: usize) -> f64 {
    let histogram = Arc::new(Histogram::new(HTTP_BUCKETS));
    contended(threads, ops, move |v| histogram.observe(v))
}

fn observe_prometheus_contended(threads: usize, ops: usize) -> f64 {
    let histogram = prometheus_histogram();
    contended(threads, ops, move |v| histogram.observe(v))
}

fn counter_inc_ours(ops: usize) -> f64 {
    let counter = Counter::new();
    let start = Instant::now();
    for _ in 0..ops {
        black_box(&counter).inc();
    }
    per_op_ns(start.elapsed(), ops)
}

fn counter_inc_prometheus(ops: usize) -> f64 {
    let counter = prometheus::IntCounter::new("c_total", "c").expect("valid counter");
    let start = Instant::now();
    for _ in 0..ops {
        black_box(&counter).inc();
    }
    per_op_ns(start.elapsed(), ops)
}

fn label_values(i: usize) -> [String; 3] {
    [
        "GET".to_owned(),
        format!("/api/v1/tables/t{i}/records/:id"),
        ["2xx", "4xx", "5xx"][i % 3].to_owned(),
    ]
}

fn counter_family(series: usize) -> Family<Counter> {
    let family = Family::new(&catalog::HTTP_REQUESTS_TOTAL, &SeriesLimit::new(series));
    for i in 0..series {
        let values = label_values(i);
        family.inc_by(&[&values[0], &values[1], &values[2]], i as u64);
    }
    family
}

fn histogram_family(series: usize) -> Family<Histogram> {
    let family = Family::new(
        &catalog::HTTP_REQUEST_DURATION_SECONDS,
        &SeriesLimit::new(series),
    );
    for i in 0..series {
        let values = label_values(i);
        for j in 0..8 {
            family.observe(&[&values[0], &values[1], &values[2]], value(i + j));
        }
    }
    family
}

fn render_us(family: &dyn Collector, buffer: &mut Vec<u8>) -> f64 {
    let start = Instant::now();
    for _ in 0..20 {
        buffer.clear();
        family.collect(&Scrape::now(), &mut Exposition::new(buffer));
        black_box(&buffer);
    }
    start.elapsed().as_secs_f64() * 1e6 / 20.0
}

fn prometheus_counters(series: usize) -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "fluxbase_http_requests_total",
            "Total number of HTTP requests",
        ),
        &["method", "path", "status"],
    )
    .expect("valid counter vec");
    for i in 0..series {
        let values = label_values(i);
        vec.with_label_values(&[&values[0], &values[1], &values[2]])
            .inc_by(i as u64);
    }
    registry.register(Box::new(vec)).expect("register");
    registry
}

fn prometheus_histograms(series: usize) -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let vec = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new(
            "fluxbase_http_request_duration_seconds",
            "HTTP request latency in seconds",
        )
        .buckets(HTTP_BUCKETS.to_vec()),
        &["method", "path", "status"],
    )
    .expect("valid histogram vec");
    for i in 0..series {
        let values = label_values(i);
        for j in 0..8 {
            vec.with_label_values(&[&values[0], &values[1], &values[2]])
                .observe(value(i + j));
        }
    }
    registry.register(Box::new(vec)).expect("register");
    registry
}

fn render_prometheus_us(registry: &prometheus::Registry) -> f64 {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut buffer = Vec::new();
    let start = Instant::now();
    for _ in 0..20 {
        buffer.clear();
        encoder
            .encode(&registry.gather(), &mut buffer)
            .expect("encode");
        black_box(&buffer);
    }
    start.elapsed().as_secs_f64() * 1e6 / 20.0
}
