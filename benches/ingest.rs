//! `make bench`: event ingestion throughput. Fluxbase HTTP request lines are parsed and counted
//! on one thread (the goal: 1,000,000 lines/s or more), beside Debian's mtail counting the same
//! file with an equivalent program, in the same run.

mod common;
#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::fs;
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
    let dir = common::scratch_dir("bench-ingest");
    let log = dir.join("fluxbase.log");
    let bytes = common::write_log(&log, LINES);

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
    let process = common::Proc(exporter.pid());
    let (cpu, peak) = (process.cpu_seconds(), process.peak_rss_kib());
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
    println!(
        "\n(the exporter binary used {cpu:.2} s of CPU and at most {peak} KiB of resident memory for the whole {:.0} MB file)",
        bytes as f64 / 1e6
    );
    let _ = fs::remove_dir_all(&dir);
}

fn median(rounds: usize, mut measure: impl FnMut() -> Duration) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds).map(|_| measure()).collect();
    samples.sort();
    samples[rounds / 2]
}
