//! The storage workers against real directories: figures against an independent count, and
//! every failure's verdict.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    DEADLINE, Exporter, Launch, Sequence, TempDir, metric, unprivileged_user, wait_for,
};

const FAST: &[&str] = &[
    "--check.interval",
    "200ms",
    "--check.timeout",
    "1s",
    "--storage.scan-interval",
    "300ms",
];

fn start(root: &Path, extra: &[&str]) -> Exporter {
    start_as(root, extra, &Launch::Plain)
}

fn start_as(root: &Path, extra: &[&str], launch: &Launch) -> Exporter {
    let root = root.to_str().unwrap().to_owned();
    let mut args = vec!["--storage.path", root.as_str()];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    Exporter::launch(&args, &[], launch)
}

/// Waits for the storage service to report `status` and returns its entry.
fn wait_for_storage(exporter: &Exporter, status: &str) -> serde_json::Value {
    let response = wait_for(exporter, "/api/v1/monitoring/health", status, |r| {
        r.json()["services"]["storage"]["status"] == status
    });
    response.json()["services"]["storage"].clone()
}

#[test]
fn figures_equal_an_independent_count_of_the_tree() {
    let dir = TempDir::new("storage-count");
    let root = &dir.path;
    let mut sequence = Sequence(0x2545_f491_4f6c_dd1d);
    // The test's own tally, kept while writing: bucket -> (objects, bytes).
    let mut expected = std::collections::BTreeMap::new();
    for bucket in ["avatars", "documents", "_transform_cache", "empty"] {
        fs::create_dir_all(root.join(bucket)).unwrap();
        expected.insert(bucket.to_owned(), (0u64, 0u64));
    }
    for i in 0..600 {
        let bucket = ["avatars", "documents", "_transform_cache"][(sequence.next() % 3) as usize];
        let depth = sequence.next() % 4;
        let mut path = root.join(bucket);
        for level in 0..depth {
            path = path.join(format!("d{level}-{}", sequence.next() % 3));
        }
        fs::create_dir_all(&path).unwrap();
        let size = (sequence.next() % 5000) as usize;
        fs::write(path.join(format!("object-{i}.bin")), vec![7u8; size]).unwrap();
        let tally = expected.get_mut(bucket).unwrap();
        tally.0 += 1;
        tally.1 += size as u64;
        if i % 7 == 0 {
            // Fluxbase's metadata sidecar: not an object.
            fs::write(
                path.join(format!("object-{i}.bin.meta")),
                "content-type=application/octet-stream\n",
            )
            .unwrap();
        }
    }
    // Not buckets: Fluxbase's hidden chunked-upload area, and a file at the root.
    fs::create_dir_all(root.join(".chunked/abc")).unwrap();
    fs::write(root.join(".chunked/abc/chunk_000001"), vec![0u8; 4096]).unwrap();
    fs::write(root.join("stray.txt"), "x").unwrap();
    // A symlink loop and a link to a file: never followed, never counted.
    std::os::unix::fs::symlink(root.join("avatars"), root.join("avatars/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("stray.txt"), root.join("documents/link.txt")).unwrap();

    let root_arg = root.to_str().unwrap();
    let mut args = vec!["--storage.path", root_arg];
    args.extend_from_slice(FAST);
    let exporter = Exporter::start_with_env(&args, &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "st")]);
    // The scan's success timestamp is recorded after its figures.
    let metrics = wait_for(&exporter, "/metrics", "a finished scan", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_check_last_success_timestamp_seconds{check=\"storage_scan\"}",
        )
        .is_some()
    })
    .text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_buckets{source=\"filesystem\"}"
        ),
        Some(expected.len() as f64)
    );
    for (bucket, (objects, bytes)) in &expected {
        let labels = format!("{{source=\"filesystem\",bucket=\"{bucket}\"}}");
        assert_eq!(
            metric(
                &metrics,
                &format!("fluxbase_exporter_storage_objects{labels}")
            ),
            Some(*objects as f64),
            "{bucket}"
        );
        assert_eq!(
            metric(
                &metrics,
                &format!("fluxbase_exporter_storage_bytes{labels}")
            ),
            Some(*bytes as f64),
            "{bucket}"
        );
    }
    assert!(
        !metrics.contains("bucket=\".chunked\"")
            && !metrics.contains("bucket=\".fluxbase-exporter\"")
    );
    assert!(
        metric(
            &metrics,
            "fluxbase_exporter_check_duration_seconds{check=\"storage_scan\"}"
        )
        .is_some()
    );
    assert!(
        metric(
            &metrics,
            "fluxbase_exporter_check_last_success_timestamp_seconds{check=\"storage_scan\"}"
        )
        .unwrap()
            > 1.7e9
    );

    let health = wait_for_storage(&exporter, "healthy");
    assert!(health["latency_ms"].as_f64().unwrap() >= 0.0, "{health}");
    let metrics = exporter.get("/metrics").text();
    assert!(metric(&metrics, "fluxbase_exporter_storage_filesystem_size_bytes").unwrap() > 0.0);
    assert!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_probe_duration_seconds_count{operation=\"write\"}"
        )
        .unwrap()
            >= 1.0
    );
    // The probe's own operations are not Fluxbase traffic.
    assert!(!metrics.contains("fluxbase_storage_operations_total{"));

    // Without a database, the JSON storage totals come from the scan.
    let json = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer st")],
        )
        .json();
    let storage = &json["storage"];
    let objects: u64 = expected.values().map(|(objects, _)| objects).sum();
    let bytes: u64 = expected.values().map(|(_, bytes)| bytes).sum();
    assert_eq!(storage["source"], "filesystem");
    assert_eq!(storage["total_buckets"], expected.len());
    assert_eq!(storage["total_files"], objects);
    assert!(
        (storage["total_size_gb"].as_f64().unwrap() - bytes as f64 / 1024f64.powi(3)).abs() < 1e-12
    );
}

#[test]
fn an_empty_root_is_healthy_with_no_buckets() {
    let dir = TempDir::new("storage-empty");
    let exporter = start(&dir.path, &[]);
    wait_for_storage(&exporter, "healthy");
    let metrics = wait_for(&exporter, "/metrics", "a scan", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_storage_buckets{source=\"filesystem\"}",
        )
        .is_some()
    })
    .text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_buckets{source=\"filesystem\"}"
        ),
        Some(0.0)
    );
    assert_eq!(exporter.get("/health").json()["status"], "ok");
}

#[test]
fn a_missing_root_is_degraded_not_unhealthy() {
    let dir = TempDir::new("storage-missing");
    let missing = dir.path.join("not-there");
    let exporter = start(&missing, &[]);
    let health = wait_for_storage(&exporter, "degraded");
    assert_eq!(
        health["message"],
        format!("missing: {} does not exist", missing.display())
    );
    let api = exporter.get("/api/v1/monitoring/health");
    assert_eq!(
        (api.status, api.json()["status"].as_str()),
        (200, Some("degraded"))
    );
    let probe = exporter.get("/health");
    assert_eq!(
        (probe.status, probe.json()["status"].as_str()),
        (200, Some("degraded"))
    );
    // Created later, it recovers within a check interval or two.
    fs::create_dir_all(&missing).unwrap();
    wait_for_storage(&exporter, "healthy");
}

#[test]
fn a_file_where_the_root_should_be_is_not_a_directory() {
    let dir = TempDir::new("storage-file");
    let file = dir.path.join("storage");
    fs::write(&file, "not a directory").unwrap();
    let exporter = start(&file, &[]);
    let health = wait_for_storage(&exporter, "degraded");
    assert_eq!(
        health["message"],
        format!("not a directory: {}", file.display())
    );
    let metrics = exporter.get("/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"storage\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn an_unreadable_bucket_is_counted_and_skipped_not_fatal() {
    let dir = TempDir::new("storage-perm");
    let root = &dir.path;
    fs::create_dir_all(root.join("open")).unwrap();
    fs::write(root.join("open/a"), vec![1u8; 10]).unwrap();
    fs::create_dir_all(root.join("closed/inner")).unwrap();
    fs::write(root.join("closed/inner/b"), vec![1u8; 20]).unwrap();
    // The exporter runs unprivileged (as nobody when the tests run as root): the root is its
    // own, the closed bucket is not readable by it.
    if let Some((uid, gid)) = unprivileged_user() {
        std::os::unix::fs::chown(root, Some(uid), Some(gid)).unwrap();
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let exporter = start_as(root, &[], &Launch::Unprivileged);
    let metrics = wait_for(&exporter, "/metrics", "a scan", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_storage_objects{source=\"filesystem\",bucket=\"open\"}",
        )
        .is_some()
    })
    .text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_objects{source=\"filesystem\",bucket=\"open\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_objects{source=\"filesystem\",bucket=\"closed\"}"
        ),
        Some(0.0)
    );
    assert!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_scan_errors_total{kind=\"permission\"}"
        )
        .unwrap()
            >= 1.0
    );
    wait_for_storage(&exporter, "healthy");
    fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_unwritable_root_fails_the_probe_but_listing_and_scanning_work() {
    let dir = TempDir::new("storage-unwritable");
    let root = &dir.path;
    fs::create_dir_all(root.join("bucket")).unwrap();
    fs::write(root.join("bucket/x"), "12345").unwrap();
    // Owned by root, not writable by the unprivileged exporter.
    fs::set_permissions(root, fs::Permissions::from_mode(0o555)).unwrap();
    let exporter = start_as(root, &[], &Launch::Unprivileged);
    let health = wait_for_storage(&exporter, "degraded");
    let message = health["message"].as_str().unwrap();
    assert!(
        message.starts_with("permission denied: cannot create ")
            && message.ends_with(".fluxbase-exporter"),
        "{message}"
    );
    wait_for(&exporter, "/metrics", "a scan", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_storage_bytes{source=\"filesystem\",bucket=\"bucket\"}",
        ) == Some(5.0)
    });
    // Without the probe, listing alone passes.
    let quiet = start_as(root, &["--storage.probe=false"], &Launch::Unprivileged);
    wait_for_storage(&quiet, "healthy");
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The setup of a storage root inside a private mount namespace.
fn in_namespace(script: String) -> Launch {
    let unshare = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status();
    assert!(
        unshare.is_ok_and(|status| status.success()),
        "these tests need `unshare --mount` (root or user namespaces) to build read-only and full filesystems"
    );
    Launch::InMountNamespace(script)
}

#[test]
fn a_read_only_filesystem_fails_the_probe_with_its_name() {
    let dir = TempDir::new("storage-ro");
    let root = &dir.path;
    fs::create_dir_all(root.join("bucket")).unwrap();
    fs::write(root.join("bucket/x"), "abc").unwrap();
    let path = root.display();
    let launch = in_namespace(format!(
        "mount --bind '{path}' '{path}'\nmount -o remount,ro,bind '{path}'"
    ));
    let exporter = start_as(root, &[], &launch);
    let health = wait_for_storage(&exporter, "degraded");
    assert_eq!(
        health["message"],
        format!("read-only filesystem: cannot write {path}/.fluxbase-exporter")
    );
    wait_for(&exporter, "/metrics", "a scan of the read-only root", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_storage_bytes{source=\"filesystem\",bucket=\"bucket\"}",
        ) == Some(3.0)
    });
}

#[test]
fn a_full_filesystem_is_degraded_as_disk_full() {
    let dir = TempDir::new("storage-full");
    let path = dir.path.display();
    let launch = in_namespace(format!(
        "mount -t tmpfs -o size=256k tmpfs '{path}'\nmkdir '{path}/bucket'\n\
         dd if=/dev/zero of='{path}/bucket/filler' bs=4k 2>/dev/null || true"
    ));
    let exporter = start_as(&dir.path, &[], &launch);
    let health = wait_for_storage(&exporter, "degraded");
    let message = health["message"].as_str().unwrap();
    assert!(
        message.starts_with("disk full: cannot write ")
            || message.starts_with("low disk space: 0.0% free"),
        "{message}"
    );
    let metrics = exporter.get("/metrics").text();
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_storage_filesystem_size_bytes"),
        Some(262144.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_filesystem_available_bytes"
        ),
        Some(0.0)
    );
}

#[test]
fn a_hung_filesystem_call_times_out_without_wedging_the_worker_or_scrapes() {
    let dir = TempDir::new("storage-hung");
    let root = &dir.path;
    let probe_dir = root.join(".fluxbase-exporter");
    fs::create_dir_all(&probe_dir).unwrap();
    // Opening a FIFO for writing blocks until a reader comes: a filesystem call that hangs.
    let fifo = probe_dir.join("probe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let exporter = start(root, &[]);
    wait_for_storage(&exporter, "degraded");
    let first = wait_for(&exporter, "/metrics", "the first failure", |_| {
        exporter
            .logs()
            .iter()
            .any(|l| l.contains("storage check failed"))
    });
    assert_eq!(first.status, 200);
    let failure = exporter
        .logs()
        .into_iter()
        .find(|l| l.contains("storage check failed"))
        .unwrap();
    assert!(
        failure.contains("timed out: the filesystem did not answer within 1s"),
        "{failure}"
    );
    // The next checks do not pile up behind the stuck call: they say so at once.
    let later = wait_for(
        &exporter,
        "/api/v1/monitoring/health",
        "a later check",
        |r| {
            let message = r.json()["services"]["storage"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            message.starts_with("timed out: the filesystem has not answered for ")
                && message.ends_with("(a check is still waiting on it)")
        },
    );
    assert_eq!(later.status, 200);
    crate::harness::assert_mostly_within(20, Duration::from_millis(900), || {
        assert_eq!(exporter.get("/metrics").status, 200);
    });
    // Release the stuck call: a reader and a writer join the FIFO, so the probe's write and its
    // read back both go through; once the probe has removed the FIFO, they leave.
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while fifo.exists() {
        assert!(
            Instant::now() < deadline,
            "the probe never finished with the FIFO"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop((reader, writer));
    wait_for_storage(&exporter, "healthy");
}

#[test]
fn health_answers_at_once_while_a_large_tree_is_scanned() {
    let dir = TempDir::in_memory("storage-large");
    let root = &dir.path;
    for d in 0..100 {
        let bucket_dir = root.join(format!("b{}", d % 4)).join(format!("d{d}"));
        fs::create_dir_all(&bucket_dir).unwrap();
        for f in 0..300 {
            fs::write(bucket_dir.join(format!("{f}")), b"").unwrap();
        }
    }
    // Scans run back to back: the health calls below overlap them.
    let root_arg = root.to_str().unwrap();
    let exporter = Exporter::start(&[
        "--storage.path",
        root_arg,
        "--check.interval",
        "200ms",
        "--storage.scan-interval",
        "1ms",
    ]);
    wait_for(&exporter, "/metrics", "a scan", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_storage_buckets{source=\"filesystem\"}",
        ) == Some(4.0)
    });
    crate::harness::assert_mostly_within(100, Duration::from_millis(500), || {
        assert_eq!(exporter.get("/api/v1/monitoring/health").status, 200);
    });
    let metrics = exporter.get("/metrics").text();
    let objects: f64 = (0..4)
        .map(|b| {
            metric(
                &metrics,
                &format!(
                    "fluxbase_exporter_storage_objects{{source=\"filesystem\",bucket=\"b{b}\"}}"
                ),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(objects, 30_000.0);
}
