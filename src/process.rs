//! The exporter's own process: sampled from `/proc` every second by its worker (`system`), so
//! that scrapes read a snapshot instead of the filesystem; rendered as the standard `process_*`
//! families and used by the JSON metrics body.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::{self, FamilyDesc};
use crate::metrics::{Collector, Exposition, Scrape};
use crate::published::Published;
use crate::workers::Worker;

/// Clock ticks per second in `/proc/<pid>/stat`. Linux fixes this at 100 for user space
/// (`USER_HZ`) on every architecture it ships for servers; the Prometheus Go client's procfs
/// reader makes the same assumption.
const USER_HZ: f64 = 100.0;

/// What `/proc` said about this process at one moment. A field is `None` where the platform
/// could not give it; it is then left out of `/metrics`, never shown as zero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSnapshot {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub threads: Option<u64>,
}

/// Reads [`ProcessSnapshot`]s of the current process.
#[derive(Debug)]
pub struct ProcessReader {
    proc_self: PathBuf,
    /// The start time never changes; it is read once.
    start_time_seconds: Option<f64>,
}

impl Default for ProcessReader {
    fn default() -> Self {
        ProcessReader::new()
    }
}

impl ProcessReader {
    pub fn new() -> Self {
        let proc_self = PathBuf::from("/proc/self");
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse_boot_time(&text));
        let start_ticks = fs::read_to_string(proc_self.join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
            .map(|stat| stat.start_ticks);
        let start_time_seconds = match (boot_time, start_ticks) {
            (Some(boot), Some(ticks)) => Some(boot as f64 + ticks as f64 / USER_HZ),
            _ => None,
        };
        ProcessReader {
            proc_self,
            start_time_seconds,
        }
    }

    /// Reads the current figures. Files that cannot be read leave their fields `None`.
    pub fn read(&self) -> ProcessSnapshot {
        let stat = fs::read_to_string(self.proc_self.join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t));
        let status = fs::read_to_string(self.proc_self.join("status"))
            .ok()
            .map(|t| parse_status(&t));
        let max_fds = fs::read_to_string(self.proc_self.join("limits"))
            .ok()
            .and_then(|t| parse_max_open_files(&t));
        let open_fds = fs::read_dir(self.proc_self.join("fd"))
            .ok()
            .map(|dir| dir.count() as u64);
        let status = status.unwrap_or_default();
        ProcessSnapshot {
            cpu_seconds: stat.map(|stat| (stat.user_ticks + stat.system_ticks) as f64 / USER_HZ),
            resident_bytes: status.resident_bytes,
            virtual_bytes: status.virtual_bytes,
            open_fds,
            max_fds,
            start_time_seconds: self.start_time_seconds,
            threads: status.threads,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    user_ticks: u64,
    system_ticks: u64,
    start_ticks: u64,
}

/// Fields of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // `fields[0]` is field 3 (state); field N is fields[N - 3].
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        start_ticks: field(22)?,
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Status {
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    threads: Option<u64>,
}

/// `VmRSS`, `VmSize` (in kB) and `Threads` from `/proc/<pid>/status`.
fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = value
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        match key {
            "VmRSS" => status.resident_bytes = number.map(|kb| kb * 1024),
            "VmSize" => status.virtual_bytes = number.map(|kb| kb * 1024),
            "Threads" => status.threads = number,
            _ => {}
        }
    }
    status
}

/// The soft limit on open files from `/proc/<pid>/limits` (`None` when unlimited or absent).
fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` from `/proc/stat`: the boot time in seconds since the epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// How often the process figures are refreshed: often enough that `process_cpu_seconds_total`
/// is smooth at a 1 s scrape interval, and cheap (a few small `/proc` reads).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The `system` worker: publishes a [`ProcessSnapshot`] every [`SAMPLE_INTERVAL`].
pub struct SystemWorker {
    reader: ProcessReader,
    process: Arc<Published<ProcessSnapshot>>,
}

impl SystemWorker {
    pub fn new(process: Arc<Published<ProcessSnapshot>>) -> Self {
        SystemWorker {
            reader: ProcessReader::new(),
            process,
        }
    }
}

impl Worker for SystemWorker {
    fn name(&self) -> &'static str {
        "system"
    }

    fn run_once(&mut self, _: Instant) {
        self.process.publish(self.reader.read());
    }

    fn interval(&self) -> Duration {
        SAMPLE_INTERVAL
    }
}

/// Renders the `process_*` families from the latest published snapshot.
pub struct ProcessCollector {
    snapshot: Arc<Published<ProcessSnapshot>>,
}

impl ProcessCollector {
    pub fn new(snapshot: Arc<Published<ProcessSnapshot>>) -> Self {
        ProcessCollector { snapshot }
    }
}

impl Collector for ProcessCollector {
    fn collect(&self, _: &Scrape, out: &mut Exposition<'_>) {
        let snapshot = self.snapshot.latest();
        let as_f64 = |value: Option<u64>| value.map(|v| v as f64);
        let families: [(&FamilyDesc, Option<f64>); 7] = [
            (&catalog::PROCESS_CPU_SECONDS_TOTAL, snapshot.cpu_seconds),
            (
                &catalog::PROCESS_RESIDENT_MEMORY_BYTES,
                as_f64(snapshot.resident_bytes),
            ),
            (
                &catalog::PROCESS_VIRTUAL_MEMORY_BYTES,
                as_f64(snapshot.virtual_bytes),
            ),
            (&catalog::PROCESS_OPEN_FDS, as_f64(snapshot.open_fds)),
            (&catalog::PROCESS_MAX_FDS, as_f64(snapshot.max_fds)),
            (
                &catalog::PROCESS_START_TIME_SECONDS,
                snapshot.start_time_seconds,
            ),
            (&catalog::PROCESS_THREADS, as_f64(snapshot.threads)),
        ];
        for (desc, value) in families {
            out.header(desc);
            if let Some(value) = value {
                out.sample_f64(desc.name, "", "", value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (fluxbase (exp) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        250 75 0 0 20 0 6 0 987654 12345678 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                user_ticks: 250,
                system_ticks: 75,
                start_ticks: 987_654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn status_gives_memory_in_bytes_and_threads() {
        let text =
            "Name:\tfluxbase-export\nVmSize:\t   20480 kB\nVmRSS:\t    5120 kB\nThreads:\t7\n";
        assert_eq!(
            parse_status(text),
            Status {
                resident_bytes: Some(5 * 1024 * 1024),
                virtual_bytes: Some(20 * 1024 * 1024),
                threads: Some(7)
            }
        );
        assert_eq!(parse_status("nonsense"), Status::default());
    }

    #[test]
    fn limits_give_the_soft_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[test]
    fn boot_time_from_proc_stat() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn reads_this_process_on_linux() {
        let reader = ProcessReader::new();
        let snapshot = reader.read();
        if cfg!(target_os = "linux") {
            assert!(snapshot.resident_bytes.unwrap() > 0);
            assert!(snapshot.threads.unwrap() >= 1);
            assert!(snapshot.open_fds.unwrap() >= 3);
            let start = snapshot.start_time_seconds.unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            // Started at most a few minutes ago (this test binary), and not in the future.
            assert!(
                start <= now + 1.0 && now - start < 3600.0,
                "start {start}, now {now}"
            );
        }
    }

    #[test]
    fn unknown_fields_render_help_and_type_only() {
        let snapshot = Arc::new(Published::new(ProcessSnapshot {
            threads: Some(3),
            ..Default::default()
        }));
        let mut out = Vec::new();
        ProcessCollector::new(snapshot).collect(&Scrape::now(), &mut Exposition::new(&mut out));
        let text = String::from_utf8(out).unwrap();
        let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(samples, ["process_threads 3"]);
        assert_eq!(text.matches("# TYPE ").count(), 7);
    }
}
