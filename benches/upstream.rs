//! `make bench`: the cost of passing Fluxbase's own metrics through. The strict parser's time
//! per MiB of exposition; CPU per scrape of the merged exposition (about 300 upstream series)
//! beside the same exporter without an upstream; and `/metrics` latency with the upstream up
//! against the upstream in a black hole.

#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/standin.rs"]
#[allow(dead_code)]
mod standin;

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use clients::{get_body, scrape_many};
use common::{Proc, quantile};
use fluxbase_exporter::metrics::SeriesLimit;
use fluxbase_exporter::upstream::{parse, scrape};
use harness::{Exporter, read_response};
use standin::{Behaviour, StandIn};

const ROUNDS: usize = 7;
/// Paths in the generated Fluxbase exposition: each a label set of the request counter and of
/// the two HTTP histograms, so 3 x 100 = 300 upstream series.
const PATHS: usize = 100;

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

fn scrapes() -> usize {
    if quick() { 1_000 } else { 10_000 }
}

fn latency_scrapes() -> usize {
    if quick() { 500 } else { 3_000 }
}

fn main() {
    let mut out = String::new();
    let _ = writeln!(out, "## Fluxbase's own metrics endpoint: parse and merge\n");

    // --- Parse time per MiB.
    let (body, series, lines) = fluxbase_exposition(PATHS);
    let mut big = String::new();
    let mut copies = 0;
    while big.len() < 4 * 1024 * 1024 {
        let (part, _, _) = fluxbase_exposition_named(PATHS, copies);
        big.push_str(&part);
        copies += 1;
    }
    let mib = big.len() as f64 / (1024.0 * 1024.0);
    let parse_ms = median(|| {
        let started = Instant::now();
        black_box(parse::parse(big.as_bytes()).expect("the generated exposition parses"));
        started.elapsed()
    })
    .as_secs_f64()
        * 1000.0;
    let limit = SeriesLimit::new(100_000);
    let families = parse::parse(body.as_bytes()).expect("parses");
    let digest_us = median(|| {
        let started = Instant::now();
        black_box(scrape::digest(&families, &limit, None).expect("digests"));
        started.elapsed()
    })
    .as_secs_f64()
        * 1e6;
    let one_read_us = median(|| {
        let started = Instant::now();
        let families = parse::parse(body.as_bytes()).expect("parses");
        black_box(scrape::digest(&families, &limit, None).expect("digests"));
        started.elapsed()
    })
    .as_secs_f64()
        * 1e6;
    let _ = writeln!(
        out,
        "The worker's side, on one thread, median of {ROUNDS} rounds. The exposition is Fluxbase's \
         families in Go's format with {PATHS} request paths ({series} passed-through series, \
         {lines} sample lines, {} KiB) plus its go_* and process_* families.\n\n\
         | measurement | figure |\n|---|---|\n\
         | strict parse ({mib:.1} MiB of exposition) | **{:.1} ms per MiB** |\n\
         | one read of the {} KiB exposition: parse + digest (pre-render the passed-through families) | {one_read_us:.0} µs (digest alone {digest_us:.0} µs) |\n",
        body.len() / 1024,
        parse_ms / mib,
        body.len() / 1024,
    );

    // --- CPU per scrape, with and without the upstream.
    let standin = StandIn::start(&body);
    let url = standin.url();
    let fast = ["--check.interval", "1s", "--check.timeout", "500ms"];
    let without = Exporter::start(&fast);
    let mut with_args = vec!["--fluxbase.metrics-url", url.as_str()];
    with_args.extend_from_slice(&fast);
    let with = Exporter::start(&with_args);
    let merged = wait_until_merged(&with);
    let merged_series = common::series_count(&merged);
    let plain_series = common::series_count(&get_body(without.addr, "/metrics"));
    let _ = writeln!(
        out,
        "### CPU per scrape of the merged exposition\n\n{} scrapes by 8 keep-alive clients asking for \
         gzip, as in the peers benchmark; CPU is the exporter process's user + system time. Both \
         exporters run with no database, storage root or event source, so the difference is the \
         upstream: {merged_series} sample lines per scrape with it, {plain_series} without.\n\n\
         | exporter | sample lines | CPU per scrape (ms) |\n|---|---|---|",
        scrapes()
    );
    for (name, exporter, count) in [
        ("without an upstream (today)", &without, plain_series),
        (
            "with Fluxbase's endpoint passed through",
            &with,
            merged_series,
        ),
    ] {
        let proc = Proc(exporter.pid());
        let before = proc.cpu_seconds();
        let (done, _) = scrape_many(exporter.addr, scrapes(), 8);
        let cpu = proc.cpu_seconds() - before;
        let _ = writeln!(
            out,
            "| {name} | {count} | {:.4} |",
            1000.0 * cpu / done as f64
        );
    }

    // --- Latency with the upstream up, then in a black hole.
    let up = sequential(with.addr, latency_scrapes());
    standin.set(Behaviour::BlackHole);
    // Let a read start and hang, and the last good reading go stale.
    thread::sleep(Duration::from_secs(2));
    let hole = sequential(with.addr, latency_scrapes());
    standin.set(Behaviour::Serve);
    let _ = writeln!(
        out,
        "\n### `/metrics` latency, upstream up against upstream in a black hole\n\n{} sequential \
         scrapes (no gzip) on one keep-alive connection in each state; in the second, Fluxbase's \
         endpoint accepts connections and never answers, so every read waits out the check \
         timeout, and the passed-through families show HELP and TYPE only (a smaller answer: \
         the goal is that it is not slower).\n\n| upstream | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|\n\
         | up | {:.3} | {:.3} | {:.3} |\n| black hole | {:.3} | {:.3} | {:.3} |",
        latency_scrapes(),
        up.0,
        up.1,
        up.2,
        hole.0,
        hole.1,
        hole.2
    );
    print!("{out}");
}

fn median(mut measure: impl FnMut() -> Duration) -> Duration {
    let mut runs: Vec<Duration> = (0..ROUNDS).map(|_| measure()).collect();
    runs.sort();
    runs[ROUNDS / 2]
}

fn fluxbase_exposition(paths: usize) -> (String, usize, usize) {
    fluxbase_exposition_named(paths, 0)
}

/// Fluxbase's passed-through families with `paths` request paths (copy `copy` uses other
/// family names, so several copies form one valid, larger exposition), then Go's families
/// from the recorded exposition. Returns the text, its passed-through series and sample lines.
fn fluxbase_exposition_named(paths: usize, copy: usize) -> (String, usize, usize) {
    let prefix = if copy == 0 {
        String::new()
    } else {
        format!("copy{copy}_")
    };
    let mut text = String::new();
    let mut lines = 0;
    let path = |i: usize| format!("/api/v1/tables/table_{i}");
    let size_b = [
        "100", "1000", "10000", "100000", "1e+06", "1e+07", "1e+08", "1e+09", "+Inf",
    ];
    let http_b = [
        "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
        "+Inf",
    ];
    let _ = writeln!(
        text,
        "# HELP {prefix}fluxbase_http_request_duration_seconds HTTP request latency in seconds\n\
         # TYPE {prefix}fluxbase_http_request_duration_seconds histogram"
    );
    for i in 0..paths {
        let labels = format!("method=\"GET\",path=\"{}\",status=\"2xx\"", path(i));
        for (n, le) in http_b.iter().enumerate() {
            let _ = writeln!(
                text,
                "{prefix}fluxbase_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                (n as u64 + 1) * 37 + i as u64
            );
        }
        let _ = writeln!(
            text,
            "{prefix}fluxbase_http_request_duration_seconds_sum{{{labels}}} 12.345678\n\
             {prefix}fluxbase_http_request_duration_seconds_count{{{labels}}} {}",
            13 * 37 + i
        );
        lines += http_b.len() + 2;
    }
    let _ = writeln!(
        text,
        "# HELP {prefix}fluxbase_http_requests_total Total number of HTTP requests\n\
         # TYPE {prefix}fluxbase_http_requests_total counter"
    );
    for i in 0..paths {
        let _ = writeln!(
            text,
            "{prefix}fluxbase_http_requests_total{{method=\"GET\",path=\"{}\",status=\"2xx\"}} {}",
            path(i),
            13 * 37 + i
        );
        lines += 1;
    }
    let _ = writeln!(
        text,
        "# HELP {prefix}fluxbase_http_response_size_bytes HTTP response size in bytes\n\
         # TYPE {prefix}fluxbase_http_response_size_bytes histogram"
    );
    for i in 0..paths {
        let labels = format!("method=\"GET\",path=\"{}\",status=\"2xx\"", path(i));
        for (n, le) in size_b.iter().enumerate() {
            let _ = writeln!(
                text,
                "{prefix}fluxbase_http_response_size_bytes_bucket{{{labels},le=\"{le}\"}} {}",
                (n as u64 + 1) * 41 + i as u64
            );
        }
        let _ = writeln!(
            text,
            "{prefix}fluxbase_http_response_size_bytes_sum{{{labels}}} 4.1933e+06\n\
             {prefix}fluxbase_http_response_size_bytes_count{{{labels}}} {}",
            9 * 41 + i
        );
        lines += size_b.len() + 2;
    }
    if copy == 0 {
        // Go's and the process collector's families, as Fluxbase serves them.
        let go = standin::FLUXBASE
            .split("# HELP go_gc_duration_seconds")
            .nth(1)
            .expect("the recorded exposition has Go's families");
        text.push_str("# HELP go_gc_duration_seconds");
        text.push_str(go);
    }
    (text, 3 * paths, lines)
}

fn wait_until_merged(exporter: &Exporter) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = get_body(exporter.addr, "/metrics");
        if text
            .contains("fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/table_0\"")
        {
            return text;
        }
        assert!(Instant::now() < deadline, "the upstream was never merged");
        thread::sleep(Duration::from_millis(50));
    }
}

/// p50, p99 and max of `count` sequential scrapes on one keep-alive connection, in ms.
fn sequential(addr: SocketAddr, count: usize) -> (f64, f64, f64) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut millis = Vec::with_capacity(count);
    for _ in 0..count {
        let asked = Instant::now();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            .expect("send");
        read_response(&mut stream, true).expect("a response within 10 s");
        millis.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    (
        quantile(&millis, 0.50),
        quantile(&millis, 0.99),
        millis.last().copied().unwrap_or(f64::NAN),
    )
}
