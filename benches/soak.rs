//! `make soak`: one exporter under steady load for 30 minutes (`SOAK_MINUTES`), on loopback:
//! scrapes, health calls, JSON metrics with a bearer token, and Fluxbase log lines appended
//! with rotations, against a throwaway PostgreSQL cluster. Resident memory, threads and open
//! files are sampled every 10 s; at the end, memory and threads must be within 10 % of their
//! value after warm-up, every request must have succeeded and every line written must have
//! been counted. Prints markdown for BENCHMARKS.md and draws `benchmarks/soak.png`.

mod common;
#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Proc;
use harness::{Exporter, read_response, sample_value};
use postgres::Cluster;

const TOKEN: &str = "soak-token-0123456789";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const ROTATE_EVERY: Duration = Duration::from_secs(120);
/// Event lines appended per second, in batches every 100 ms.
const LINES_PER_SECOND: u64 = 200;
/// One whole cycle of `common::append_log` (paths, methods, statuses and ids repeat together
/// every lcm(5, 7, 10,000) lines).
const BACKLOG: u64 = 70_000;

/// One reading of the exporter.
#[derive(Clone, Copy)]
struct Sample {
    minutes: f64,
    rss_kib: u64,
    threads: u64,
    fds: u64,
    cpu_seconds: f64,
}

#[derive(Default)]
struct Counts {
    scrapes: AtomicU64,
    health: AtomicU64,
    json: AtomicU64,
    failures: AtomicU64,
    lines: AtomicU64,
    rotations: AtomicU64,
}

fn main() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let duration = Duration::from_secs_f64(minutes * 60.0);
    // Warm-up: a tenth of the run, at least a minute; the baseline is the minute after it.
    let warm_up = Duration::from_secs_f64((minutes * 6.0).max(60.0));
    let window = Duration::from_secs(60);

    let cluster = Cluster::start(true);
    let database = cluster.database(true, &["pg_stat_statements"]);
    let dir = common::scratch_dir("bench-soak");
    let storage = dir.join("storage");
    for bucket in ["avatars", "documents"] {
        fs::create_dir_all(storage.join(bucket)).expect("bucket");
        fs::write(storage.join(bucket).join("object"), b"soak").expect("object");
    }
    // The log starts with one whole cycle of the generator, read from the start: every series
    // the workload will ever make exists within seconds, so that growth after the warm-up can
    // only be a leak, not new label sets.
    let log = dir.join("fluxbase.log");
    common::write_log(&log, BACKLOG as usize);
    let token_file = dir.join("token");
    fs::write(&token_file, TOKEN).expect("token file");
    let url = database.url();
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--storage.path",
        storage.to_str().expect("UTF-8"),
        "--storage.scan-interval",
        "1m",
        "--events.file",
        log.to_str().expect("UTF-8"),
        "--events.from-start",
        "--web.auth-token-file",
        token_file.to_str().expect("UTF-8"),
        "--check.interval",
        "5s",
    ]);
    let addr = exporter.addr;
    let proc = Proc(exporter.pid());
    let counts = Arc::new(Counts::default());
    counts.lines.store(BACKLOG, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;

    let loads = vec![
        spawn_load(&stop, deadline, Duration::from_millis(100), {
            let counts = Arc::clone(&counts);
            let mut stream: Option<TcpStream> = None;
            let mut asked = 0u64;
            move || {
                // Kept alive, as Prometheus does, with a fresh connection every 100 scrapes.
                asked += 1;
                if asked.is_multiple_of(100) {
                    stream = None;
                }
                let ok = request(
                    &mut stream,
                    addr,
                    "GET /metrics HTTP/1.1\r\nHost: soak\r\nAccept-Encoding: gzip\r\n\r\n",
                );
                tally(&counts, &counts.scrapes, ok);
            }
        }),
        spawn_load(&stop, deadline, Duration::from_millis(200), {
            let counts = Arc::clone(&counts);
            let mut turn = 0u64;
            move || {
                turn += 1;
                let path = if turn.is_multiple_of(2) {
                    "/health"
                } else {
                    "/api/v1/monitoring/health"
                };
                let raw = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n");
                let ok = request(&mut None, addr, &raw);
                tally(&counts, &counts.health, ok);
            }
        }),
        spawn_load(&stop, deadline, Duration::from_secs(1), {
            let counts = Arc::clone(&counts);
            move || {
                let raw = format!(
                    "GET /api/v1/monitoring/metrics HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
                );
                let ok = request(&mut None, addr, &raw);
                tally(&counts, &counts.json, ok);
            }
        }),
        spawn_load(&stop, deadline, Duration::from_millis(100), {
            let counts = Arc::clone(&counts);
            let log = log.clone();
            let mut last_rotation = Instant::now();
            move || {
                if last_rotation.elapsed() >= ROTATE_EVERY {
                    rotate(&log);
                    counts.rotations.fetch_add(1, Ordering::Relaxed);
                    last_rotation = Instant::now();
                }
                let first = counts.lines.load(Ordering::Relaxed) as usize;
                let batch = (LINES_PER_SECOND / 10) as usize;
                let mut file = fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("open the log");
                let mut buffer = Vec::new();
                common::append_log(&mut buffer, first, batch);
                file.write_all(&buffer).expect("append to the log");
                counts.lines.fetch_add(batch as u64, Ordering::Relaxed);
            }
        }),
    ];

    let mut samples = Vec::new();
    while Instant::now() < deadline {
        samples.push(Sample {
            minutes: started.elapsed().as_secs_f64() / 60.0,
            rss_kib: proc.rss_kib(),
            threads: proc.threads(),
            fds: open_files(exporter.pid()),
            cpu_seconds: proc.cpu_seconds(),
        });
        let last = samples[samples.len() - 1];
        eprintln!(
            "{:5.1} min: {} KiB, {} threads, {} files, {} scrapes, {} lines",
            last.minutes,
            last.rss_kib,
            last.threads,
            last.fds,
            counts.scrapes.load(Ordering::Relaxed),
            counts.lines.load(Ordering::Relaxed)
        );
        thread::sleep(SAMPLE_EVERY.min(deadline.saturating_duration_since(Instant::now())));
    }
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        load.join().expect("load thread");
    }

    // Every line written was counted (the follower catches up within a few polls).
    let written = counts.lines.load(Ordering::Relaxed);
    let source = format!(
        "fluxbase_exporter_events_lines_total{{source=\"file:{}\"}} ",
        log.display()
    );
    let catch_up = Instant::now() + Duration::from_secs(30);
    let counted = loop {
        let counted = sample_value(&exporter.get("/metrics").text(), &source).unwrap_or(0.0);
        if counted as u64 >= written || Instant::now() > catch_up {
            break counted as u64;
        }
        thread::sleep(Duration::from_millis(200));
    };

    let in_window = |from: Duration| -> Vec<Sample> {
        let (from, to) = (
            from.as_secs_f64() / 60.0,
            (from + window).as_secs_f64() / 60.0,
        );
        samples
            .iter()
            .copied()
            .filter(|s| s.minutes >= from && s.minutes < to)
            .collect()
    };
    let baseline = in_window(warm_up);
    let end = in_window(duration.saturating_sub(window));
    let median = |samples: &[Sample], pick: fn(&Sample) -> f64| -> f64 {
        let mut values: Vec<f64> = samples.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    // What is watched, how it is read from a sample, and the change allowed (NaN: reported only).
    type Row = (&'static str, fn(&Sample) -> f64, f64);
    let rows: [Row; 3] = [
        ("resident memory (MiB)", |s| s.rss_kib as f64 / 1024.0, 0.10),
        ("threads", |s| s.threads as f64, 0.10),
        ("open files", |s| s.fds as f64, f64::NAN),
    ];
    let elapsed_minutes = started.elapsed().as_secs_f64() / 60.0;
    let cpu = samples.last().map(|s| s.cpu_seconds).unwrap_or_default()
        - samples.first().map(|s| s.cpu_seconds).unwrap_or_default();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Soak: {minutes} minutes of steady load\n\n`make soak` (`SOAK_MINUTES={minutes}`): one exporter against a throwaway PostgreSQL cluster, checks every 5 s, a storage scan every minute; on loopback, 10 scrapes/s (gzip, kept alive, reconnecting every 100), 5 health calls/s and 1 JSON metrics call/s (each on a new connection), and {LINES_PER_SECOND} Fluxbase log lines/s appended to a followed file (which starts with a backlog of {BACKLOG} lines, one whole cycle of the generator, so that every series exists before the warm-up ends) that is rotated (renamed and recreated) every {} minutes.\n",
        ROTATE_EVERY.as_secs() / 60
    );
    let _ = writeln!(
        out,
        "| | after warm-up (minutes {:.0}–{:.0}, median) | end (last minute, median) | change | limit |\n|---|---|---|---|---|",
        warm_up.as_secs_f64() / 60.0,
        (warm_up + window).as_secs_f64() / 60.0
    );
    let mut failures = Vec::new();
    for (name, pick, limit) in rows {
        let (before, after) = (median(&baseline, pick), median(&end, pick));
        let change = (after - before) / before;
        let within = limit.is_nan() || change.abs() <= limit;
        if !within {
            failures.push(format!("{name} went from {before:.1} to {after:.1}"));
        }
        let _ = writeln!(
            out,
            "| {name} | {before:.1} | {after:.1} | {:+.1} % | {} |",
            change * 100.0,
            if limit.is_nan() {
                "(watched)".to_owned()
            } else {
                format!(
                    "±{:.0} % — {}",
                    limit * 100.0,
                    if within { "met" } else { "not met" }
                )
            }
        );
    }
    let failed = counts.failures.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "\nOver {elapsed_minutes:.1} minutes: {} scrapes, {} health calls, {} JSON calls, {failed} failed; {written} lines written in {} rotations, {counted} counted; {cpu:.1} s of CPU ({:.2} % of one core).\n",
        counts.scrapes.load(Ordering::Relaxed),
        counts.health.load(Ordering::Relaxed),
        counts.json.load(Ordering::Relaxed),
        counts.rotations.load(Ordering::Relaxed),
        100.0 * cpu / (elapsed_minutes * 60.0)
    );
    plot(&samples);
    let _ = writeln!(
        out,
        "![resident memory and threads over the soak](benchmarks/soak.png)\n"
    );
    print!("{out}");

    if failed > 0 {
        failures.push(format!("{failed} requests failed"));
    }
    if counted != written {
        failures.push(format!("{written} lines written, {counted} counted"));
    }
    assert!(failures.is_empty(), "soak failed: {failures:?}");
}

/// Runs `step` every `every` until stopped or past `deadline`.
fn spawn_load(
    stop: &Arc<AtomicBool>,
    deadline: Instant,
    every: Duration,
    mut step: impl FnMut() + Send + 'static,
) -> thread::JoinHandle<()> {
    let stop = Arc::clone(stop);
    thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            step();
            next += every;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

fn tally(counts: &Counts, counter: &AtomicU64, ok: bool) {
    counter.fetch_add(1, Ordering::Relaxed);
    if !ok {
        counts.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends `raw` on `stream` (connecting when there is none) and reads a 200; a kept-alive
/// connection the server closed is retried once on a new one.
fn request(stream: &mut Option<TcpStream>, addr: SocketAddr, raw: &str) -> bool {
    for _ in 0..2 {
        if stream.is_none() {
            let Ok(fresh) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
                return false;
            };
            let _ = fresh.set_read_timeout(Some(Duration::from_secs(10)));
            *stream = Some(fresh);
        }
        let Some(open) = stream.as_mut() else {
            return false;
        };
        if open.write_all(raw.as_bytes()).is_ok()
            && let Some(response) = read_response(open, true)
        {
            if raw.contains("Connection: close") {
                *stream = None;
            }
            return response.status == 200;
        }
        *stream = None;
    }
    false
}

/// logrotate's `create`: the file is renamed and a new one created in its place.
fn rotate(log: &Path) {
    let rotated = log.with_extension("log.1");
    let _ = fs::remove_file(&rotated);
    fs::rename(log, &rotated).expect("rotate the log");
    fs::write(log, b"").expect("recreate the log");
}

fn open_files(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as u64)
        .unwrap_or_default()
}

/// `benchmarks/soak.png`: resident memory and threads against time.
fn plot(samples: &[Sample]) {
    let dir = common::results_dir();
    let mut data = String::from("# minutes, RSS (MiB), threads, open files\n");
    for s in samples {
        let _ = writeln!(
            data,
            "{:.3} {:.3} {} {}",
            s.minutes,
            s.rss_kib as f64 / 1024.0,
            s.threads,
            s.fds
        );
    }
    fs::write(dir.join("soak.dat"), data).expect("write soak.dat");
    let script = format!(
        "set terminal pngcairo size 960,480 font 'sans,11'\n\
         set output '{}'\n\
         cd '{}'\n\
         set title 'Soak: resident memory and threads under steady load'\n\
         set xlabel 'minutes'\nset ylabel 'resident memory (MiB)'\nset y2label 'threads'\n\
         set yrange [0:*]\nset y2range [0:*]\nset ytics nomirror\nset y2tics\nset grid\n\
         set key bottom right\n\
         plot 'soak.dat' using 1:2 with lines lw 2 lc rgb '#1b9e77' title 'RSS (MiB)', \
              'soak.dat' using 1:3 axes x1y2 with steps lw 2 lc rgb '#d95f02' title 'threads'\n",
        dir.join("soak.png").display(),
        dir.display()
    );
    common::gnuplot(&script);
}
