//! `make bench`: event ingestion throughput. Fluxbase HTTP request lines are parsed and counted
//! on one thread (the goal: 1,000,000 lines/s or more), beside Debian's mtail counting the same
//! file with an equivalent program, in the same run.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxbase_exporter::events::follow::{Follower, Piece};
use fluxbase_exporter::events::mapping::Ingest;
use fluxbase_exporter::events::parse;
use fluxbase_exporter::families::{ExporterFamilies, FluxbaseFamilies};
use fluxbase_exporter::metrics::SeriesLimit;
use harness::{Exporter, sample_value};

const LINES: usize = 1_000_000;

/// mtail's equivalent: the same counter by method, path and status, and the duration summed.
const MTAIL_PROGRAM: &str = r#"counter fluxbase_http_requests_total by method, path, status
counter fluxbase_http_request_duration_ms_sum by method, path, status
/"method":"(?P<method>[A-Z]+)","path":"(?P<path>[^"]*)","ip":"[^"]*","status":(?P<status>\d+),"duration_ms":(?P<duration>\d+)/ {
  fluxbase_http_requests_total[$method][$path][$status]++
  fluxbase_http_request_duration_ms_sum[$method][$path][$status] += $duration
}
"#;

fn main() {
    let dir = scratch_dir("bench-ingest");
    let log = dir.join("fluxbase.log");
    let bytes = write_log(&log, LINES);

    // In-process, one thread: follow (from the start), parse, count.
    let ours = median(3, || {
        let limit = SeriesLimit::new(1000);
        let fluxbase = Arc::new(FluxbaseFamilies::new(&limit, Instant::now()));
        let exporter = Arc::new(ExporterFamilies::new(&limit));
        let mut ingest = Ingest::new(Arc::clone(&fluxbase), exporter);
        let mut follower = Follower::new(log.clone(), true);
        let started = Instant::now();
        let mut lines = 0usize;
        follower
            .poll(&mut |piece| {
                if let Piece::Line(line) = piece
                    && let Ok(event) = parse::parse_line(line)
                {
                    ingest.count(&event, 0.0);
                    lines += 1;
                }
            })
            .expect("read the bench log");
        let took = started.elapsed();
        assert_eq!(lines, LINES);
        took
    });

    // The whole binary, from the start of the file to the last line counted.
    let path = log.to_str().expect("UTF-8 path").to_owned();
    let started = Instant::now();
    let exporter = Exporter::start(&[
        "--events.file",
        &path,
        "--events.from-start",
        "--events.poll-interval",
        "10ms",
    ]);
    let series = format!("fluxbase_exporter_events_lines_total{{source=\"file:{path}\"}} ");
    let deadline = Instant::now() + Duration::from_secs(300);
    while sample_value(&exporter.get("/metrics").text(), &series) != Some(LINES as f64) {
        assert!(
            Instant::now() < deadline,
            "the exporter never read the whole log"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let binary = started.elapsed();
    let cpu = process_cpu_seconds(exporter.pid());
    let peak = peak_rss_kib(exporter.pid());
    drop(exporter);

    // mtail, one shot over the same file.
    let progs = dir.join("progs");
    fs::create_dir_all(&progs).expect("progs dir");
    fs::write(progs.join("fluxbase.mtail"), MTAIL_PROGRAM).expect("mtail program");
    let mtail = median(3, || {
        let started = Instant::now();
        let output = Command::new("mtail")
            .args([
                "--one_shot",
                "--one_shot_format",
                "prometheus",
                "--logtostderr",
                "--progs",
            ])
            .arg(&progs)
            .arg("--logs")
            .arg(&log)
            .output()
            .expect("run mtail (make bench installs Debian's mtail)");
        assert!(
            output.status.success(),
            "mtail failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let counted: f64 = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with("fluxbase_http_requests_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(counted as usize, LINES, "mtail counted every line");
        started.elapsed()
    });

    let rate = |took: Duration| LINES as f64 / took.as_secs_f64();
    println!(
        "## Ingestion: fluxbase-exporter beside mtail\n\n{LINES} Fluxbase HTTP request lines ({:.0} MB) in one file, median of 3 runs each.\n",
        bytes as f64 / 1e6
    );
    println!("| reader | time (s) | lines/s | ratio to mtail |");
    println!("|---|---|---|---|");
    println!(
        "| fluxbase-exporter, one thread (follow, parse, count) | {:.3} | {:.0} | {:.1} |",
        ours.as_secs_f64(),
        rate(ours),
        rate(ours) / rate(mtail)
    );
    println!(
        "| fluxbase-exporter binary, start to last line counted | {:.3} | {:.0} | {:.1} |",
        binary.as_secs_f64(),
        rate(binary),
        rate(binary) / rate(mtail)
    );
    println!(
        "| mtail --one_shot, same file, equivalent program | {:.3} | {:.0} | 1.0 |",
        mtail.as_secs_f64(),
        rate(mtail)
    );
    if let (Some(cpu), Some(peak)) = (cpu, peak) {
        println!(
            "\n(the exporter binary used {cpu:.2} s of CPU and at most {peak} KiB of resident memory for the whole {:.0} MB file)",
            bytes as f64 / 1e6
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

fn median(rounds: usize, mut measure: impl FnMut() -> Duration) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds).map(|_| measure()).collect();
    samples.sort();
    samples[rounds / 2]
}

fn scratch_dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.join(name)
    } else {
        std::env::temp_dir().join(name)
    };
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `lines` HTTP request lines as Fluxbase logs them, with a realistic spread of methods,
/// paths (ids in them), statuses and durations. Returns the file's size.
fn write_log(path: &Path, lines: usize) -> u64 {
    let paths = [
        "/api/v1/tables/users/records/",
        "/api/v1/users/550e8400-e29b-41d4-a716-44665544",
        "/api/v1/storage/avatars/u/",
        "/api/v1/auth/signin",
        "/api/v1/tables/orders",
    ];
    let methods = ["GET", "GET", "GET", "POST", "DELETE"];
    let statuses = [200, 200, 201, 304, 404, 429, 500];
    let mut out = std::io::BufWriter::new(fs::File::create(path).expect("create bench log"));
    for i in 0..lines {
        let base = paths[i % paths.len()];
        let path = if base.ends_with('/') || base.ends_with("44665544") {
            format!("{base}{}", i % 10_000)
        } else {
            base.to_owned()
        };
        writeln!(
            out,
            r#"{{"level":"info","request_id":"{i:032x}","method":"{}","path":"{path}","ip":"10.0.{}.{}","status":{},"duration_ms":{},"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","protocol":"HTTP/1.1","response_bytes":{},"time":1705314600,"message":"HTTP request"}}"#,
            methods[i % methods.len()],
            (i / 256) % 256,
            i % 256,
            statuses[i % statuses.len()],
            i % 750,
            (i * 37) % 100_000
        )
        .expect("write bench log");
    }
    out.flush().expect("flush bench log");
    fs::metadata(path).map(|m| m.len()).unwrap_or_default()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
