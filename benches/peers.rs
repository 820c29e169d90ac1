//! `make bench`: the exporter beside the exporters people run instead — postgres_exporter (the
//! database), node_exporter (the host) — and beside the ceiling (a minimal tiny_http server
//! answering the same bytes from memory), all in one run against one throwaway PostgreSQL
//! cluster with the Fluxbase fixture loaded. Prints markdown for BENCHMARKS.md and draws
//! `benchmarks/latency.png`.

#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clients::{get_body, scrape_many};
use common::{Peer, Proc, Wrk, quantile, series_count, wrk};
use harness::{Exporter, read_response};
use postgres::{Cluster, free_port};

const CONNECTIONS: [usize; 3] = [1, 8, 64];
/// Rounds in which ours and the ceiling alternate, per cell.
const WRK_ROUNDS: u64 = 5;

/// `BENCH_QUICK=1` shortens every phase, to try the benchmark out; figures for BENCHMARKS.md
/// come from the full run.
fn wrk_seconds() -> u64 {
    if quick() { 2 } else { 10 }
}

fn scrapes() -> usize {
    if quick() { 1_000 } else { 10_000 }
}

fn idle_seconds() -> u64 {
    if quick() { 5 } else { 60 }
}

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}
const EVENT_LINES: usize = 5_000;
/// Prometheus' default scrape timeout: a scrape that takes longer is a failed scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let mut out = String::new();
    let cluster = Cluster::start(true);
    let database = cluster.database(true, &["pg_stat_statements"]);
    let url = database.url();
    let storage = storage_root();
    let log = common::scratch_dir("bench-peers-events").join("fluxbase.log");
    common::write_traffic(&log, EVENT_LINES);
    let log_path = log.to_str().expect("UTF-8 path").to_owned();
    let storage_path = storage.to_str().expect("UTF-8 path").to_owned();
    let ours_args = |database_url: &str| -> Vec<String> {
        [
            "--database.url",
            database_url,
            "--storage.path",
            &storage_path,
            "--events.file",
            &log_path,
            "--events.from-start",
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // --- The contenders.
    let args = ours_args(&url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours = Exporter::start(&args);
    let lines = format!("fluxbase_exporter_events_lines_total{{source=\"file:{log_path}\"}} ");
    let caught_up = |exporter: &Exporter| {
        wait_until(
            "the exporter read the events and checked the database",
            || {
                let metrics = exporter.get("/metrics").text();
                harness::sample_value(&metrics, &lines) == Some(EVENT_LINES as f64)
                    && exporter.get("/api/v1/monitoring/health").json()["services"]["database"]["status"]
                        == "healthy"
            },
        )
    };
    caught_up(&ours);
    let ours_body = ours.get("/metrics").body;
    let ours_series = series_count(&String::from_utf8_lossy(&ours_body));
    assert!(
        ours_series >= 500,
        "only {ours_series} series in our output"
    );

    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/{}?sslmode=disable",
        postgres::SUPERUSER_PASSWORD,
        database.port,
        database.name
    );
    let postgres_exporter = start_postgres_exporter(&dsn, "/metrics");
    let node_exporter = {
        let addr = loopback(free_port());
        Peer::start(
            "node_exporter",
            "prometheus-node-exporter",
            &[format!("--web.listen-address={addr}")],
            &[],
            addr,
            "/metrics",
        )
    };
    let ceiling = Ceiling::start(ours_body.clone());

    let series_of = |addr: SocketAddr| series_count(&get_body(addr, "/metrics"));
    let _ = writeln!(
        out,
        "## Scrapes: fluxbase-exporter beside postgres_exporter and node_exporter\n\n\
         One throwaway PostgreSQL 15 cluster with the Fluxbase fixture and pg_stat_statements; \
         the exporter also reads {EVENT_LINES} Fluxbase log lines and a storage root. Series per \
         scrape: fluxbase-exporter {ours_series} ({} bytes), postgres_exporter {}, \
         node_exporter {}. The ceiling is a minimal server on the same (patched) tiny_http with \
         the same 4 worker threads, answering the exporter's `/metrics` bytes from memory.\n",
        ours_body.len(),
        series_of(postgres_exporter.addr),
        series_of(node_exporter.addr)
    );

    let mut cost_md = String::new();
    // --- CPU per scrape and memory after 10,000 scrapes, as Prometheus asks (gzip), first, on
    // processes that have seen nothing else (the wrk runs below leave their own high-water
    // marks, reported at the end). The static
    // (musl) build, the one the container image ships, runs beside the others when given.
    let ours_static = std::env::var("FLUXBASE_EXPORTER_STATIC_BINARY")
        .ok()
        .map(|binary| {
            let mut args = ours_args(&url);
            args.extend(["--web.listen-address".to_owned(), "127.0.0.1:0".to_owned()]);
            let child = std::process::Command::new(binary)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start the static exporter");
            let exporter = Exporter::adopt(child);
            caught_up(&exporter);
            exporter
        });
    let mut contenders: Vec<(&str, SocketAddr, Proc)> = vec![
        ("fluxbase-exporter", ours.addr, Proc(ours.pid())),
        (
            "postgres_exporter",
            postgres_exporter.addr,
            postgres_exporter.proc(),
        ),
        ("node_exporter", node_exporter.addr, node_exporter.proc()),
    ];
    if let Some(exporter) = &ours_static {
        contenders.push((
            "fluxbase-exporter, static (musl)",
            exporter.addr,
            Proc(exporter.pid()),
        ));
    }
    let mut cost = Vec::new();
    for (name, addr, proc) in &contenders {
        let before = proc.cpu_seconds();
        let (done, took) = scrape_many(*addr, scrapes(), 8);
        let cpu = proc.cpu_seconds() - before;
        eprintln!("{name}: {done} scrapes in {took:?}, {cpu:.2} s CPU");
        cost.push((
            *name,
            1000.0 * cpu / done as f64,
            proc.rss_kib(),
            proc.peak_rss_kib(),
            proc.threads(),
            done,
        ));
    }
    let _ = writeln!(
        cost_md,
        "### CPU per scrape and memory after {} scrapes\n\nMeasured first, on processes that had served nothing but a few readiness checks: 8 keep-alive clients asking for gzip as Prometheus does; CPU is the exporter process's user + system time (10 ms ticks) over the scrapes. postgres_exporter also makes PostgreSQL run its queries on every scrape, which is not counted here; the exporter queries on its own interval, whatever the scrape rate.\n\n| exporter | CPU per scrape (ms) | RSS after (MiB) | peak RSS (MiB) | threads | vs fluxbase-exporter (CPU, RSS) |\n|---|---|---|---|---|---|",
        scrapes()
    );
    for row in &cost {
        let _ = writeln!(
            cost_md,
            "| {} | {:.4} | {:.1} | {:.1} | {} | {:.0}×, {:.1}× |",
            row.0,
            row.1,
            row.2 as f64 / 1024.0,
            row.3 as f64 / 1024.0,
            row.4,
            row.1 / cost[0].1,
            row.2 as f64 / cost[0].2 as f64,
        );
    }
    let _ = writeln!(
        cost_md,
        "\nGoals against postgres_exporter: RSS at most a third — **{:.1}×** less ({}); CPU per scrape at most a fiftieth — **{:.0}×** less ({}).",
        cost[1].2 as f64 / cost[0].2 as f64,
        verdict(cost[1].2 as f64 / cost[0].2 as f64 >= 3.0),
        cost[1].1 / cost[0].1,
        verdict(cost[1].1 / cost[0].1 >= 50.0),
    );
    if let Some(musl) = cost.get(3) {
        let _ = writeln!(
            cost_md,
            "The static build: RSS **{:.1}×** less ({}), CPU per scrape **{:.0}×** less ({}).",
            cost[1].2 as f64 / musl.2 as f64,
            verdict(cost[1].2 as f64 / musl.2 as f64 >= 3.0),
            cost[1].1 / musl.1,
            verdict(cost[1].1 / musl.1 >= 50.0),
        );
    }
    let _ = writeln!(cost_md);
    drop(ours_static);
    contenders.truncate(3);

    // --- Throughput and latency with wrk.
    let targets: [(&str, SocketAddr); 4] = [
        ("fluxbase-exporter", ours.addr),
        ("ceiling", ceiling.addr),
        ("postgres_exporter", postgres_exporter.addr),
        ("node_exporter", node_exporter.addr),
    ];
    // Ours and the ceiling alternate in short rounds, so that drift on a shared machine (other
    // tenants, frequency changes) falls on both alike; the peers, two orders of magnitude slower,
    // get one run each.
    let mut runs: Vec<Vec<Wrk>> = vec![Vec::new(); targets.len()];
    for connections in CONNECTIONS {
        let alternated = alternate(
            [ours.addr, ceiling.addr],
            connections,
            wrk_seconds(),
            WRK_ROUNDS,
        );
        for (i, result) in alternated.into_iter().enumerate() {
            eprintln!("{} at {connections} connections: {result:?}", targets[i].0);
            runs[i].push(result);
        }
        for (i, (name, addr)) in targets.iter().enumerate().skip(2) {
            let result = wrk(
                &format!("http://{addr}/metrics"),
                connections,
                wrk_seconds(),
                &[],
            );
            eprintln!("{name} at {connections} connections: {result:?}");
            runs[i].push(result);
        }
    }
    let _ = writeln!(
        out,
        "### Throughput and latency (`wrk --latency`, {} s per cell, no compression)\n\nOurs and the ceiling alternate in {WRK_ROUNDS} rounds of {} s each per cell (requests/s over all rounds, p50 and p99 the median of the rounds'), so that drift on a shared machine falls on both; each peer gets one {} s run.\n",
        wrk_seconds(),
        wrk_seconds() / WRK_ROUNDS,
        wrk_seconds()
    );
    let _ = writeln!(
        out,
        "| connections | ours req/s | ours p50 / p99 (ms) | ceiling req/s | ours / ceiling | postgres_exporter req/s | p50 / p99 (ms) | ours / postgres_exporter | node_exporter req/s | p50 / p99 (ms) | ours / node_exporter |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, connections) in CONNECTIONS.iter().enumerate() {
        let (o, c, p, n) = (runs[0][i], runs[1][i], runs[2][i], runs[3][i]);
        let _ = writeln!(
            out,
            "| {connections} | {:.0} | {:.3} / {:.3} | {:.0} | {:.0} % | {:.0} | {:.2} / {:.2} | {:.0}× | {:.0} | {:.2} / {:.2} | {:.0}× |",
            o.requests_per_second,
            o.p50_ms,
            o.p99_ms,
            c.requests_per_second,
            100.0 * o.requests_per_second / c.requests_per_second,
            p.requests_per_second,
            p.p50_ms,
            p.p99_ms,
            o.requests_per_second / p.requests_per_second,
            n.requests_per_second,
            n.p50_ms,
            n.p99_ms,
            o.requests_per_second / n.requests_per_second,
        );
    }
    let errors: Vec<String> = targets
        .iter()
        .zip(&runs)
        .map(|((name, _), row)| format!("{name} {}", row.iter().map(|r| r.errors).sum::<u64>()))
        .collect();
    let errors = errors.join(", ");
    let (o8, p8, c8) = (runs[0][1], runs[2][1], runs[1][1]);
    let _ = writeln!(
        out,
        "\nGoals at 8 connections: 50× postgres_exporter's requests/s — **{:.0}×** ({}); p99 under 5 ms — **{:.3} ms** ({}); at least 80 % of the ceiling — **{:.0} %** ({}). Errors or non-2xx answers over the three runs: {errors} (node_exporter answers 503 beyond `--web.max-requests`, 40 at once by default).\n",
        o8.requests_per_second / p8.requests_per_second,
        verdict(o8.requests_per_second / p8.requests_per_second >= 50.0),
        o8.p99_ms,
        verdict(o8.p99_ms < 5.0),
        100.0 * o8.requests_per_second / c8.requests_per_second,
        verdict(o8.requests_per_second / c8.requests_per_second >= 0.8),
    );
    let worst_p99 = runs[0].iter().map(|r| r.p99_ms).fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "Our p99 is under 5 ms at every concurrency: {} (worst {worst_p99:.3} ms).\n",
        verdict(worst_p99 < 5.0)
    );
    plot(&runs, &targets.map(|(name, _)| name));
    let _ = writeln!(
        out,
        "![latency against concurrency](benchmarks/latency.png)\n\n(`benchmarks/latency.png`: p50 solid, p99 dashed, log scales.)\n"
    );

    // --- Health while /metrics is hammered.
    let quiet = wrk(
        &format!("http://{}/api/v1/monitoring/health", ours.addr),
        1,
        5,
        &[],
    );
    let hammer = {
        let url = format!("http://{}/metrics", ours.addr);
        thread::spawn(move || wrk(&url, 8, wrk_seconds(), &[]))
    };
    thread::sleep(Duration::from_millis(200));
    let loaded = wrk(
        &format!("http://{}/api/v1/monitoring/health", ours.addr),
        1,
        wrk_seconds() - 1,
        &[],
    );
    let hammered = hammer.join().expect("wrk thread");
    let _ = writeln!(
        out,
        "### Health under load\n\n`/api/v1/monitoring/health` on one connection, alone and while `/metrics` takes {:.0} req/s on 8 others (the peers have no health endpoint to compare).\n\n| | p50 (ms) | p99 (ms) |\n|---|---|---|\n| health alone | {:.3} | {:.3} |\n| health while /metrics is hammered | {:.3} | {:.3} |\n",
        hammered.requests_per_second, quiet.p50_ms, quiet.p99_ms, loaded.p50_ms, loaded.p99_ms
    );

    out.push_str(&cost_md);

    // --- Idle: 60 s without a request, all three at once.
    let idle_before: Vec<f64> = contenders.iter().map(|c| c.2.cpu_seconds()).collect();
    thread::sleep(Duration::from_secs(idle_seconds()));
    let idle: Vec<f64> = contenders
        .iter()
        .zip(&idle_before)
        .map(|(c, before)| c.2.cpu_seconds() - before)
        .collect();

    // --- Cold start to the first 200 from /metrics, ten times each.
    let cold_ours = cold_start(|addr| {
        let mut args = ours_args(&url);
        args.extend(["--web.listen-address".to_owned(), addr.to_string()]);
        std::process::Command::new(harness::BINARY)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the exporter")
    });
    let cold_postgres = cold_start(|addr| {
        std::process::Command::new("prometheus-postgres-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .env("DATA_SOURCE_NAME", &dsn)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres_exporter")
    });
    let cold_node = cold_start(|addr| {
        std::process::Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start node_exporter")
    });
    let size = |path: &str| std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
    let ours_binary = std::env::var("FLUXBASE_EXPORTER_STATIC_BINARY").ok();
    let ours_size = ours_binary.as_deref().map(size).unwrap_or_default();
    let _ = writeln!(
        out,
        "### Start, size, threads, idle\n\n| | fluxbase-exporter | postgres_exporter | node_exporter | ratio (postgres_exporter / ours) |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| cold start to first 200 from /metrics (median of 10, ms) | {:.1} | {:.1} | {:.1} | {:.1}× |",
        ms(cold_ours),
        ms(cold_postgres),
        ms(cold_node),
        ms(cold_postgres) / ms(cold_ours)
    );
    let _ = writeln!(
        out,
        "| binary size (MiB) | {:.1} (static, musl) | {:.1} | {:.1} | {:.1}× |",
        ours_size as f64 / 1048576.0,
        size("/usr/bin/prometheus-postgres-exporter") as f64 / 1048576.0,
        size("/usr/bin/prometheus-node-exporter") as f64 / 1048576.0,
        size("/usr/bin/prometheus-postgres-exporter") as f64 / ours_size.max(1) as f64
    );
    let _ = writeln!(
        out,
        "| threads (after the scrapes) | {} | {} | {} | |",
        cost[0].4, cost[1].4, cost[2].4
    );
    let _ = writeln!(
        out,
        "| RSS at the end, after the wrk runs (MiB) | {:.1} | {:.1} | {:.1} | {:.1}× |",
        contenders[0].2.rss_kib() as f64 / 1024.0,
        contenders[1].2.rss_kib() as f64 / 1024.0,
        contenders[2].2.rss_kib() as f64 / 1024.0,
        contenders[1].2.rss_kib() as f64 / contenders[0].2.rss_kib() as f64,
    );
    let _ = writeln!(
        out,
        "| idle CPU over {} s (ms) | {:.0} | {:.0} | {:.0} | |",
        idle_seconds(),
        idle[0] * 1000.0,
        idle[1] * 1000.0,
        idle[2] * 1000.0
    );
    let _ = writeln!(
        out,
        "\nIdle, the exporter still does its work on its default intervals (database and storage checks every 15 s, the event file polled every 250 ms); the peers do nothing until scraped. Threads: the exporter's are its workers, 4 HTTP workers, tiny_http's accept thread and a few idle connection threads, r2d2's connect threads; Go peers show their runtime's OS threads.\n"
    );

    // --- Database down: stopped, then a port that accepts and never answers.
    cluster.stop_server();
    wait_until("the exporter saw the database down", || {
        ours.get("/api/v1/monitoring/health").status == 503
    });
    let ours_stopped = sequential(ours.addr, 200);
    // Each of postgres_exporter's answers waits out its own connection attempt: fewer of them.
    let postgres_stopped = sequential(postgres_exporter.addr, 20);
    let black_hole = BlackHole::start();
    let hole_url = format!(
        "postgres://postgres:x@127.0.0.1:{}/fluxbase?sslmode=disable",
        black_hole.port
    );
    let args = ours_args(&hole_url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours_hole = Exporter::start(&args);
    wait_until("the exporter saw the black hole", || {
        ours_hole.get("/api/v1/monitoring/health").status == 503
    });
    let ours_holed = sequential(ours_hole.addr, 200);
    let postgres_hole = start_postgres_exporter(
        &format!(
            "postgresql://postgres:x@127.0.0.1:{}/fluxbase?sslmode=disable",
            black_hole.port
        ),
        "/",
    );
    let postgres_holed = parallel_once(postgres_hole.addr, 5);
    let _ = writeln!(
        out,
        "### Database down\n\n`/metrics` latency with PostgreSQL stopped, and with the database address pointing at a port that accepts connections and never answers (a black hole). A scrape slower than {} s (Prometheus' default scrape timeout) counts as timed out.\n\n| exporter, fault | scrapes | p50 (ms) | p99 (ms) | max (ms) | timed out |\n|---|---|---|---|---|---|",
        SCRAPE_TIMEOUT.as_secs()
    );
    for (name, sample) in [
        ("fluxbase-exporter, stopped", &ours_stopped),
        ("postgres_exporter, stopped", &postgres_stopped),
        ("fluxbase-exporter, black hole", &ours_holed),
        ("postgres_exporter, black hole", &postgres_holed),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {} |",
            sample.count, sample.p50, sample.p99, sample.max, sample.timed_out
        );
    }
    let _ = writeln!(
        out,
        "\nThe exporter answers from what its workers published, so a dead database changes nothing for a scrape; postgres_exporter queries during the scrape and waits on the database with it."
    );

    drop(black_hole);
    print!("{out}");
}

/// `rounds` alternating wrk runs against each address, `seconds` in all per address: requests/s
/// over all rounds, p50 and p99 the median of the rounds'.
fn alternate(addrs: [SocketAddr; 2], connections: usize, seconds: u64, rounds: u64) -> [Wrk; 2] {
    let each = (seconds / rounds).max(1);
    let mut all: [Vec<Wrk>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (addr, results) in addrs.iter().zip(all.iter_mut()) {
            results.push(wrk(
                &format!("http://{addr}/metrics"),
                connections,
                each,
                &[],
            ));
        }
    }
    all.map(|results| {
        let median = |pick: fn(&Wrk) -> f64| {
            let mut values: Vec<f64> = results.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let requests: u64 = results.iter().map(|r| r.requests).sum();
        Wrk {
            requests_per_second: requests as f64 / (each * rounds) as f64,
            p50_ms: median(|r| r.p50_ms),
            p99_ms: median(|r| r.p99_ms),
            requests,
            errors: results.iter().map(|r| r.errors).sum(),
        }
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// postgres_exporter on `dsn`, ready once `ready` answers 200 (its `/metrics` never answers
/// while the database is a black hole; its landing page does).
fn start_postgres_exporter(dsn: &str, ready: &str) -> Peer {
    let addr = loopback(free_port());
    Peer::start(
        "postgres_exporter",
        "prometheus-postgres-exporter",
        &[format!("--web.listen-address={addr}")],
        &[("DATA_SOURCE_NAME", dsn.to_owned())],
        addr,
        ready,
    )
}

/// Fluxbase's log of a small API's traffic: a dozen routes and outcomes, a few clients hitting
/// the rate limit, a login now and then. What a real deployment's `/metrics` carries is in
/// that order of variety (the cardinality guard caps anything wilder at 1,000 series a family).
/// A storage root with three buckets of small files, as Fluxbase lays them out.
fn storage_root() -> std::path::PathBuf {
    let root = common::scratch_dir("bench-peers-storage");
    for (bucket, files) in [("avatars", 40), ("documents", 25), ("empty", 0)] {
        let dir = root.join(bucket);
        std::fs::create_dir_all(&dir).expect("bucket");
        for i in 0..files {
            std::fs::write(dir.join(format!("object-{i}")), vec![b'x'; 100 + i * 10])
                .expect("object");
        }
    }
    root
}

/// Median time from spawn to the first 200 from `/metrics`, over ten fresh processes.
fn cold_start(mut spawn: impl FnMut(SocketAddr) -> std::process::Child) -> Duration {
    common::median_duration(10, || {
        let addr = loopback(free_port());
        let started = Instant::now();
        let mut child = spawn(addr);
        let took = common::wait_for_200(addr, "/metrics", Duration::from_secs(30))
            .map(|_| started.elapsed())
            .expect("a fresh process answered /metrics");
        let _ = child.kill();
        let _ = child.wait();
        took
    })
}

struct Latencies {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
    timed_out: usize,
}

fn summarize(mut millis: Vec<f64>, timed_out: usize) -> Latencies {
    millis.sort_by(f64::total_cmp);
    Latencies {
        count: millis.len() + timed_out,
        p50: quantile(&millis, 0.50),
        p99: quantile(&millis, 0.99),
        max: millis.last().copied().unwrap_or(f64::NAN),
        timed_out,
    }
}

/// `count` sequential scrapes on one keep-alive connection.
fn sequential(addr: SocketAddr, count: usize) -> Latencies {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .expect("timeout");
    let mut millis = Vec::with_capacity(count);
    let mut timed_out = 0;
    for _ in 0..count {
        let asked = Instant::now();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            .expect("send");
        match read_response(&mut stream, true) {
            Some(_) => millis.push(asked.elapsed().as_secs_f64() * 1000.0),
            None => {
                timed_out += 1;
                stream = TcpStream::connect(addr).expect("reconnect");
                stream
                    .set_read_timeout(Some(SCRAPE_TIMEOUT))
                    .expect("timeout");
            }
        }
    }
    summarize(millis, timed_out)
}

/// One scrape on each of `count` connections at once, each given the scrape timeout.
fn parallel_once(addr: SocketAddr, count: usize) -> Latencies {
    let scrapes: Vec<_> = (0..count)
        .map(|_| {
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(SCRAPE_TIMEOUT))
                    .expect("timeout");
                let asked = Instant::now();
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
                    .expect("send");
                read_response(&mut stream, true).map(|_| asked.elapsed().as_secs_f64() * 1000.0)
            })
        })
        .collect();
    let mut millis = Vec::new();
    let mut timed_out = 0;
    for scrape in scrapes {
        match scrape.join().expect("scrape thread") {
            Some(ms) if ms < SCRAPE_TIMEOUT.as_secs_f64() * 1000.0 => millis.push(ms),
            _ => timed_out += 1,
        }
    }
    summarize(millis, timed_out)
}

/// A port that accepts connections and never says a word.
struct BlackHole {
    port: u16,
    _thread: thread::JoinHandle<()>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            let until = Instant::now() + Duration::from_secs(300);
            while Instant::now() < until && held.len() < 256 {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        BlackHole {
            port,
            _thread: thread,
        }
    }
}

/// The ceiling: the same tiny_http, the same number of workers, the same bytes, no work.
struct Ceiling {
    addr: SocketAddr,
}

impl Ceiling {
    fn start(body: Vec<u8>) -> Ceiling {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .expect("nodelay");
        let server = Arc::new(tiny_http::Server::from_listener(listener).expect("serve"));
        let body: Arc<[u8]> = body.into();
        for _ in 0..4 {
            let server = Arc::clone(&server);
            let body = Arc::clone(&body);
            // Detached: they serve until the benchmark process exits.
            thread::spawn(move || {
                let content_type = tiny_http::Header::from_bytes(
                    "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .expect("header");
                while let Ok(request) = server.recv() {
                    let response = tiny_http::Response::new(
                        tiny_http::StatusCode(200),
                        vec![content_type.clone()],
                        &body[..],
                        Some(body.len()),
                        None,
                    )
                    .with_chunked_threshold(usize::MAX);
                    let _ = request.respond(response);
                }
            });
        }
        Ceiling { addr }
    }
}

/// `benchmarks/latency.png`: p50 and p99 against connections, for each target.
fn plot(runs: &[Vec<Wrk>], names: &[&str]) {
    let dir = common::results_dir();
    let mut data = String::from("# connections, then p50 and p99 (ms) of each target in turn\n");
    for (i, connections) in CONNECTIONS.iter().enumerate() {
        let _ = write!(data, "{connections}");
        for row in runs {
            let _ = write!(data, " {:.4} {:.4}", row[i].p50_ms, row[i].p99_ms);
        }
        data.push('\n');
    }
    std::fs::write(dir.join("latency.dat"), data).expect("write latency.dat");
    let colours = ["#1b9e77", "#7570b3", "#d95f02", "#e7298a"];
    let mut plots = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (p50, p99) = (2 + 2 * i, 3 + 2 * i);
        plots.push(format!(
            "'latency.dat' using 1:{p50} with linespoints lw 2 pt 7 lc rgb '{}' title '{name} p50'",
            colours[i]
        ));
        plots.push(format!(
            "'latency.dat' using 1:{p99} with linespoints lw 2 pt 7 dt 2 lc rgb '{}' title '{name} p99'",
            colours[i]
        ));
    }
    let script = format!(
        "set terminal pngcairo size 960,560 font 'sans,11'\n\
         set output '{}'\n\
         cd '{}'\n\
         set title '/metrics latency against concurrency (wrk, {seconds} s per point)'\n\
         set xlabel 'connections'\nset ylabel 'latency (ms)'\n\
         set logscale xy\nset xtics (1, 8, 64)\nset grid\nset key outside right\n\
         plot {}\n",
        dir.join("latency.png").display(),
        dir.display(),
        plots.join(", "),
        seconds = wrk_seconds(),
    );
    common::gnuplot(&script);
}
