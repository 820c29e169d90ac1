//! `make bench`: the storage scan beside `du -s` on the same tree in the same run, and the
//! exporter's peak memory while scanning 100,000 and 1,000,000 files (it must not grow with
//! the number of files).

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fluxbase_exporter::storage::scan;
use harness::{Exporter, sample_value};

const ROUNDS: usize = 7;

fn main() {
    // 100,000 files in 1,000 directories, kept under target/ between runs (creating them on a
    // slow disk takes a minute).
    let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-storage-100k");
    ensure_tree(&tree, 1000, 100);

    let du = median(|| {
        let started = Instant::now();
        let status = Command::new("du")
            .arg("-s")
            .arg(&tree)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "du -s failed");
        started.elapsed()
    });
    let ours = median(|| {
        let started = Instant::now();
        let report = scan::scan(&tree, || true).expect("scan");
        assert_eq!(report.objects(), 100_000);
        started.elapsed()
    });
    println!(
        "## Storage scan beside du -s\n\n100,000 files in 1,000 directories ({ROUNDS} rounds each, median, warm cache).\n"
    );
    println!("| tool | time (ms) | ratio to du -s |");
    println!("|---|---|---|");
    println!("| du -s | {:.1} | 1.00 |", ms(du));
    println!(
        "| fluxbase-exporter scan | {:.1} | {:.2} |",
        ms(ours),
        ms(ours) / ms(du)
    );

    // Peak memory of the whole exporter scanning 100k and 1M files: flat, not per file.
    let big = in_memory_dir("bench-storage-1m");
    let created = Instant::now();
    ensure_tree(&big, 4000, 250);
    let creation = created.elapsed();
    let small_peak = peak_rss_scanning(&tree);
    let (big_peak, big_scan) = peak_rss_scanning_timed(&big);
    println!("\n### Exporter peak resident memory while scanning (VmHWM)\n");
    println!("| tree | peak RSS (KiB) | scan time |");
    println!("|---|---|---|");
    println!("| 100,000 files | {small_peak} | |");
    println!(
        "| 1,000,000 files | {big_peak} | {:.2} s |",
        big_scan.as_secs_f64()
    );
    println!(
        "\n(the 1,000,000-file tree was created in {:.1} s on {}; ratio of peaks {:.2})",
        creation.as_secs_f64(),
        big.display(),
        big_peak as f64 / small_peak as f64
    );
    let _ = fs::remove_dir_all(&big);
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(mut measure: impl FnMut() -> Duration) -> Duration {
    measure();
    let mut samples: Vec<Duration> = (0..ROUNDS).map(|_| measure()).collect();
    samples.sort();
    samples[ROUNDS / 2]
}

/// `dirs` directories of `files` empty-ish files each, spread over 10 buckets.
fn ensure_tree(root: &Path, dirs: usize, files: usize) {
    let marker = root.join(format!(".complete-{dirs}-{files}"));
    if marker.exists() {
        return;
    }
    let _ = fs::remove_dir_all(root);
    for d in 0..dirs {
        let dir = root
            .join(format!("bucket{}", d % 10))
            .join(format!("dir{d}"));
        fs::create_dir_all(&dir).expect("create bench dir");
        for f in 0..files {
            fs::write(dir.join(format!("object{f}")), [b'x'; 16]).expect("create bench file");
        }
    }
    fs::write(marker, "").expect("marker");
}

fn in_memory_dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        std::env::temp_dir().join(name)
    }
}

fn peak_rss_scanning(root: &Path) -> u64 {
    peak_rss_scanning_timed(root).0
}

/// Runs the exporter on `root` until its first scan is published; its peak RSS and the scan's
/// duration.
fn peak_rss_scanning_timed(root: &Path) -> (u64, Duration) {
    let root = root.to_str().expect("UTF-8 path");
    let exporter = Exporter::start(&[
        "--storage.path",
        root,
        "--storage.probe=false",
        "--storage.scan-interval",
        "1h",
    ]);
    let deadline = Instant::now() + Duration::from_secs(600);
    let duration = loop {
        let text = exporter.get("/metrics").text();
        if sample_value(
            &text,
            "fluxbase_exporter_check_success{check=\"storage_scan\"} ",
        ) == Some(1.0)
        {
            break sample_value(
                &text,
                "fluxbase_exporter_check_duration_seconds{check=\"storage_scan\"} ",
            )
            .unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "the scan never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = fs::read_to_string(format!("/proc/{}/status", exporter.pid())).expect("status");
    let peak = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    (peak, Duration::from_secs_f64(duration))
}
