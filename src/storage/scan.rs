//! The storage scan: per bucket (a first-level directory whose name does not start with a dot,
//! as Fluxbase lists buckets) the number of objects and their bytes.
//!
//! Objects are regular files, except Fluxbase's `.meta` sidecars. Symlinks are not followed.
//! Entries that vanish mid-walk, unreadable directories and other I/O errors are counted by
//! kind and skipped. Memory does not grow with the number of files: the walk keeps one open
//! directory per level of depth and per-bucket sums, never a list of paths.

use std::collections::BTreeMap;
use std::fs::{self, ReadDir};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::check::{PROBE_DIR, StorageFailure};

/// Directories nested deeper than this under a bucket are not entered (counted as `too_deep`):
/// each level holds one open directory.
pub const MAX_DEPTH: usize = 128;

/// How a skipped entry went wrong; `as_str` is the `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScanError {
    /// Removed between being listed and being read.
    Vanished,
    Permission,
    TooDeep,
    Io,
}

impl ScanError {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanError::Vanished => "vanished",
            ScanError::Permission => "permission",
            ScanError::TooDeep => "too_deep",
            ScanError::Io => "io",
        }
    }

    fn of(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => ScanError::Vanished,
            io::ErrorKind::PermissionDenied => ScanError::Permission,
            _ => ScanError::Io,
        }
    }
}

/// One bucket's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketUsage {
    pub objects: u64,
    pub bytes: u64,
}

/// A finished scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanReport {
    /// Bucket name (lossily decoded if not UTF-8) to its totals.
    pub buckets: BTreeMap<String, BucketUsage>,
    pub errors: BTreeMap<ScanError, u64>,
    pub duration: Duration,
}

impl ScanReport {
    pub fn objects(&self) -> u64 {
        self.buckets.values().map(|bucket| bucket.objects).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.buckets.values().map(|bucket| bucket.bytes).sum()
    }

    fn skip(&mut self, error: ScanError) {
        *self.errors.entry(error).or_default() += 1;
    }
}

/// Why a scan stopped before the end.
#[derive(Debug, PartialEq)]
pub enum ScanStopped {
    /// The root itself cannot be listed.
    Root(StorageFailure),
    /// `keep_going` said stop (shutdown).
    Cancelled,
}

/// Walks `root`. `keep_going` is asked every few thousand entries; when it says no, the scan
/// stops and nothing of it is reported (a partial figure is never published as final).
pub fn scan(root: &Path, mut keep_going: impl FnMut() -> bool) -> Result<ScanReport, ScanStopped> {
    let started = Instant::now();
    let mut report = ScanReport::default();
    let entries = fs::read_dir(root)
        .map_err(|err| ScanStopped::Root(StorageFailure::from_io(&err, root, "list")))?;
    let mut seen = 0u64;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                report.skip(ScanError::of(&err));
                continue;
            }
        };
        let name = entry.file_name();
        // Hidden directories (the exporter's probe, Fluxbase's .chunked uploads) and plain files
        // at the root are not buckets.
        if name.as_encoded_bytes().starts_with(b".") || name == PROBE_DIR {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => {}
            Ok(_) => continue,
            Err(err) => {
                report.skip(ScanError::of(&err));
                continue;
            }
        }
        let bucket = name.to_string_lossy().into_owned();
        let usage = walk_bucket(&entry.path(), &mut report, &mut seen, &mut keep_going)?;
        report.buckets.insert(bucket, usage);
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Sums the objects under one bucket directory, depth first, one open directory per level.
fn walk_bucket(
    bucket: &Path,
    report: &mut ScanReport,
    seen: &mut u64,
    keep_going: &mut impl FnMut() -> bool,
) -> Result<BucketUsage, ScanStopped> {
    let mut usage = BucketUsage::default();
    let mut stack: Vec<ReadDir> = match fs::read_dir(bucket) {
        Ok(entries) => vec![entries],
        Err(err) => {
            report.skip(ScanError::of(&err));
            return Ok(usage);
        }
    };
    while let Some(entries) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        *seen += 1;
        if seen.is_multiple_of(4096) && !keep_going() {
            return Err(ScanStopped::Cancelled);
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                report.skip(ScanError::of(&err));
                continue;
            }
        };
        // From the directory listing itself where the filesystem provides it: no extra call.
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(err) => {
                report.skip(ScanError::of(&err));
                continue;
            }
        };
        if kind.is_dir() {
            if stack.len() >= MAX_DEPTH {
                report.skip(ScanError::TooDeep);
                continue;
            }
            match fs::read_dir(entry.path()) {
                Ok(children) => stack.push(children),
                Err(err) => report.skip(ScanError::of(&err)),
            }
        } else if kind.is_file() {
            // Fluxbase's metadata sidecars are not objects (its own listing skips them).
            if entry.file_name().as_encoded_bytes().ends_with(b".meta") {
                continue;
            }
            // fstatat relative to the open directory: the cheapest way to a file's size.
            match entry.metadata() {
                Ok(metadata) => {
                    usage.objects += 1;
                    usage.bytes += metadata.len();
                }
                Err(err) => report.skip(ScanError::of(&err)),
            }
        }
        // Symlinks, sockets, FIFOs: not objects, and links are never followed.
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("fxe-scan-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        root
    }

    fn write(path: PathBuf, bytes: usize) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    #[test]
    fn counts_objects_and_bytes_per_bucket_like_fluxbase_lists_them() {
        let root = tree("count");
        write(root.join("avatars/a.png"), 100);
        write(root.join("avatars/deep/er/b.png"), 250);
        write(root.join("avatars/deep/er/b.png.meta"), 40);
        write(root.join("docs/c.pdf"), 0);
        fs::create_dir_all(root.join("empty")).unwrap();
        write(root.join(".chunked/0123/chunk_000001"), 999);
        write(root.join(PROBE_DIR).join("probe"), 10);
        write(root.join("stray-file-at-root"), 5);
        let report = scan(&root, || true).unwrap();
        let buckets: Vec<(&str, u64, u64)> = report
            .buckets
            .iter()
            .map(|(name, usage)| (name.as_str(), usage.objects, usage.bytes))
            .collect();
        assert_eq!(
            buckets,
            [("avatars", 2, 350), ("docs", 1, 0), ("empty", 0, 0)]
        );
        assert_eq!((report.objects(), report.bytes()), (3, 350));
        assert!(report.errors.is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn symlinks_are_not_followed_even_in_a_loop() {
        let root = tree("links");
        write(root.join("b/real.txt"), 7);
        std::os::unix::fs::symlink(root.join("b"), root.join("b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("b/real.txt"), root.join("b/link.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("b"), root.join("linked-bucket")).unwrap();
        let report = scan(&root, || true).unwrap();
        assert_eq!(report.buckets.len(), 1);
        assert_eq!(
            report.buckets["b"],
            BucketUsage {
                objects: 1,
                bytes: 7
            }
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_root_stops_the_scan_and_cancelling_reports_nothing() {
        let root = tree("stop");
        let missing = root.join("nope");
        assert_eq!(
            scan(&missing, || true),
            Err(ScanStopped::Root(StorageFailure::Missing(missing.clone())))
        );
        for i in 0..5000 {
            write(root.join(format!("b/{i}")), 1);
        }
        assert_eq!(scan(&root, || false), Err(ScanStopped::Cancelled));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn files_deleted_during_a_scan_are_counted_as_vanished_never_fatal() {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("fxe-scan-vanish-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in 0..40 {
            for f in 0..250 {
                write(root.join(format!("b{}/d{d}/{f}", d % 2)), 1);
            }
        }
        let deleter = {
            let root = root.clone();
            std::thread::spawn(move || {
                for d in (0..40).rev() {
                    let _ = fs::remove_dir_all(root.join(format!("b{}/d{d}", d % 2)));
                }
            })
        };
        let mut reports = Vec::new();
        while !deleter.is_finished() {
            reports.push(scan(&root, || true).expect("a scan survives files vanishing under it"));
        }
        deleter.join().unwrap();
        for report in &reports {
            assert!(report.objects() <= 10_000);
            let unexpected: Vec<_> = report
                .errors
                .keys()
                .filter(|kind| **kind != ScanError::Vanished)
                .collect();
            assert!(unexpected.is_empty(), "{:?}", report.errors);
        }
        let last = scan(&root, || true).unwrap();
        assert_eq!(last.objects(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn depth_is_bounded() {
        let root = tree("deep");
        let mut dir = root.join("b");
        for i in 0..MAX_DEPTH + 5 {
            dir = dir.join(format!("d{i}"));
        }
        write(dir.join("f"), 1);
        write(root.join("b/shallow"), 3);
        let report = scan(&root, || true).unwrap();
        assert_eq!(
            report.buckets["b"],
            BucketUsage {
                objects: 1,
                bytes: 3
            }
        );
        assert_eq!(report.errors.get(&ScanError::TooDeep), Some(&1));
        fs::remove_dir_all(&root).unwrap();
    }
}
