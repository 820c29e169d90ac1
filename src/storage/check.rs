//! The storage health check: the root exists, is a directory and can be listed (Fluxbase's own
//! check); a write/read/delete round trip in the exporter's hidden directory succeeds; and the
//! filesystem holding the root has room. Plain blocking calls: the worker runs them on a helper
//! with a deadline.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The exporter's own directory under the root. Fluxbase lists only directories whose names do
/// not start with a dot as buckets, so this one is never taken for a bucket, and the scan skips
/// it too.
pub const PROBE_DIR: &str = ".fluxbase-exporter";
const PROBE_FILE: &str = "probe";

/// Why the storage check failed, in plain words for the health message.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageFailure {
    Missing(PathBuf),
    NotADirectory(PathBuf),
    PermissionDenied {
        path: PathBuf,
        action: &'static str,
    },
    ReadOnly(PathBuf),
    DiskFull(PathBuf),
    ProbeMismatch(PathBuf),
    TimedOut(Duration),
    /// A check has been waiting on the filesystem for this long.
    StillWaiting(Duration),
    LowSpace {
        free_percent: f64,
        minimum_percent: f64,
    },
    Io {
        path: PathBuf,
        action: &'static str,
        error: String,
    },
}

impl StorageFailure {
    /// Classifies an I/O error of `action` on `path`.
    pub fn from_io(err: &io::Error, path: &Path, action: &'static str) -> Self {
        let path = path.to_path_buf();
        match err.kind() {
            io::ErrorKind::NotFound => StorageFailure::Missing(path),
            io::ErrorKind::NotADirectory => StorageFailure::NotADirectory(path),
            io::ErrorKind::PermissionDenied => StorageFailure::PermissionDenied { path, action },
            io::ErrorKind::ReadOnlyFilesystem => StorageFailure::ReadOnly(path),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StorageFailure::DiskFull(path)
            }
            _ => StorageFailure::Io {
                path,
                action,
                error: err.to_string(),
            },
        }
    }

    /// The health message.
    pub fn message(&self) -> String {
        match self {
            StorageFailure::Missing(path) => format!("missing: {} does not exist", path.display()),
            StorageFailure::NotADirectory(path) => format!("not a directory: {}", path.display()),
            StorageFailure::PermissionDenied { path, action } => {
                format!("permission denied: cannot {action} {}", path.display())
            }
            StorageFailure::ReadOnly(path) => {
                format!("read-only filesystem: cannot write {}", path.display())
            }
            StorageFailure::DiskFull(path) => format!("disk full: cannot write {}", path.display()),
            StorageFailure::ProbeMismatch(path) => format!(
                "the probe read back different bytes from {}",
                path.display()
            ),
            StorageFailure::TimedOut(after) => {
                format!(
                    "timed out: the filesystem did not answer within {}",
                    crate::duration::format(*after)
                )
            }
            StorageFailure::StillWaiting(waited) => format!(
                "timed out: the filesystem has not answered for {}s (a check is still waiting on it)",
                waited.as_secs()
            ),
            StorageFailure::LowSpace {
                free_percent,
                minimum_percent,
            } => {
                format!("low disk space: {free_percent:.1}% free, below {minimum_percent:.1}%")
            }
            StorageFailure::Io {
                path,
                action,
                error,
            } => format!("cannot {action} {}: {error}", path.display()),
        }
    }
}

/// Durations of the probe's operations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProbeTimes {
    pub write: Duration,
    pub read: Duration,
    pub delete: Duration,
}

/// Space of the filesystem holding the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub available: u64,
    pub total: u64,
}

/// What one check found.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    /// The whole check's wall time.
    pub latency: Duration,
    pub probe: Option<ProbeTimes>,
    pub space: Option<Space>,
}

/// The result of one check: what was found, or the first thing that failed. Probe times and
/// space are kept even when a later step fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub result: Result<(), StorageFailure>,
    pub findings: Findings,
}

/// Runs the check on `root`.
pub fn check(root: &Path, probe: bool) -> Outcome {
    let started = Instant::now();
    let mut findings = Findings {
        latency: Duration::ZERO,
        probe: None,
        space: None,
    };
    let result = list(root).and_then(|()| {
        if probe {
            findings.probe = Some(round_trip(root)?);
        }
        Ok(())
    });
    findings.space = space_of(root);
    findings.latency = started.elapsed();
    Outcome { result, findings }
}

/// The root exists, is a directory, and its entries can be read.
fn list(root: &Path) -> Result<(), StorageFailure> {
    let metadata = fs::metadata(root).map_err(|err| StorageFailure::from_io(&err, root, "read"))?;
    if !metadata.is_dir() {
        return Err(StorageFailure::NotADirectory(root.to_path_buf()));
    }
    let mut entries =
        fs::read_dir(root).map_err(|err| StorageFailure::from_io(&err, root, "list"))?;
    if let Some(Err(err)) = entries.next() {
        return Err(StorageFailure::from_io(&err, root, "list"));
    }
    Ok(())
}

/// Writes a small file in the exporter's hidden directory, reads it back and deletes it.
fn round_trip(root: &Path) -> Result<ProbeTimes, StorageFailure> {
    let dir = root.join(PROBE_DIR);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(StorageFailure::from_io(&err, &dir, "create")),
    }
    let path = dir.join(PROBE_FILE);
    let payload = format!("fluxbase-exporter probe {}\n", std::process::id());

    let started = Instant::now();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|err| StorageFailure::from_io(&err, &path, "write"))?;
    file.write_all(payload.as_bytes())
        .map_err(|err| StorageFailure::from_io(&err, &path, "write"))?;
    drop(file);
    let write = started.elapsed();

    let started = Instant::now();
    let mut read_back = vec![0u8; payload.len()];
    fs::File::open(&path)
        .and_then(|mut file| file.read_exact(&mut read_back))
        .map_err(|err| StorageFailure::from_io(&err, &path, "read"))?;
    let read = started.elapsed();
    if read_back != payload.as_bytes() {
        return Err(StorageFailure::ProbeMismatch(path));
    }

    let started = Instant::now();
    fs::remove_file(&path).map_err(|err| StorageFailure::from_io(&err, &path, "delete"))?;
    Ok(ProbeTimes {
        write,
        read,
        delete: started.elapsed(),
    })
}

/// Available and total bytes of the filesystem holding the root, from `statvfs(2)` on the root
/// itself (`None` when the call fails or reports an empty filesystem).
///
/// Only the root's own filesystem is asked: listing every mount (as sysinfo did) ran `statvfs`
/// on each of them, so one hung NFS mount elsewhere on the host made the storage check time out.
/// A hung root still blocks this call, which is why the whole check runs on the bounded helper.
fn space_of(root: &Path) -> Option<Space> {
    let stat = rustix::fs::statvfs(root).ok()?;
    // `f_frsize` is the unit of the block counts (`f_bsize` is only the preferred I/O size).
    let unit = if stat.f_frsize > 0 {
        stat.f_frsize
    } else {
        stat.f_bsize
    };
    let total = stat.f_blocks.checked_mul(unit)?;
    let available = stat.f_bavail.checked_mul(unit)?;
    (total > 0).then_some(Space { available, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fxe-check-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_writable_directory_passes_with_probe_times_and_space() {
        let root = temp("ok");
        let outcome = check(&root, true);
        assert_eq!(outcome.result, Ok(()));
        assert!(outcome.findings.probe.is_some());
        let space = outcome
            .findings
            .space
            .expect("the filesystem of a temp dir");
        assert!(space.total > 0 && space.available <= space.total);
        assert!(
            !root.join(PROBE_DIR).join(PROBE_FILE).exists(),
            "the probe file is removed"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// The size is that of the root's own filesystem, as `stat -f` (coreutils) reads it: a
    /// tmpfs under /dev/shm has a size of its own, unlike its parent filesystem.
    #[test]
    fn space_is_the_roots_own_filesystem() {
        for dir in [std::env::temp_dir(), PathBuf::from("/dev/shm")] {
            if !dir.is_dir() {
                continue;
            }
            let out = std::process::Command::new("stat")
                .args(["-f", "-c", "%S %b"])
                .arg(&dir)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let mut words = text.split_whitespace().map(|w| w.parse::<u64>().unwrap());
            let expected = words.next().unwrap() * words.next().unwrap();
            let space = space_of(&dir).expect("statvfs of an existing directory");
            assert_eq!(space.total, expected, "{}", dir.display());
        }
        assert_eq!(space_of(Path::new("/nonexistent/fluxbase-exporter")), None);
    }

    #[test]
    fn missing_and_not_a_directory_are_named() {
        let root = temp("missing");
        let missing = root.join("nope");
        assert_eq!(
            check(&missing, true).result,
            Err(StorageFailure::Missing(missing.clone()))
        );
        let file = root.join("file");
        fs::write(&file, "x").unwrap();
        let failure = check(&file, true).result.unwrap_err();
        assert_eq!(failure, StorageFailure::NotADirectory(file.clone()));
        assert_eq!(
            failure.message(),
            format!("not a directory: {}", file.display())
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_the_probe_nothing_is_written() {
        let root = temp("noprobe");
        assert_eq!(check(&root, false).result, Ok(()));
        assert!(!root.join(PROBE_DIR).exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn messages_are_plain() {
        let path = Path::new("/srv/storage");
        let cases = [
            (
                io::ErrorKind::NotFound,
                "missing: /srv/storage does not exist",
            ),
            (
                io::ErrorKind::PermissionDenied,
                "permission denied: cannot list /srv/storage",
            ),
            (
                io::ErrorKind::ReadOnlyFilesystem,
                "read-only filesystem: cannot write /srv/storage",
            ),
            (
                io::ErrorKind::StorageFull,
                "disk full: cannot write /srv/storage",
            ),
        ];
        for (kind, message) in cases {
            assert_eq!(
                StorageFailure::from_io(&io::Error::from(kind), path, "list").message(),
                message
            );
        }
        assert_eq!(
            StorageFailure::TimedOut(Duration::from_secs(5)).message(),
            "timed out: the filesystem did not answer within 5s"
        );
        assert_eq!(
            StorageFailure::LowSpace {
                free_percent: 3.125,
                minimum_percent: 5.0
            }
            .message(),
            "low disk space: 3.1% free, below 5.0%"
        );
    }
}
