//! What the benchmarks share: a look at a process through /proc, wrk runs, percentiles, peer
//! processes, scratch directories and Fluxbase's log lines.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process as /proc shows it.
pub struct Proc(pub u32);

impl Proc {
    fn status_field(&self, name: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:").unwrap_or_default()
    }

    /// Peak resident memory, KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:").unwrap_or_default()
    }

    pub fn threads(&self) -> u64 {
        self.status_field("Threads:").unwrap_or_default()
    }

    /// User plus system CPU time so far, in seconds (clock ticks of 10 ms).
    pub fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.0)) else {
            return 0.0;
        };
        let Some(end) = stat.rfind(')') else {
            return 0.0;
        };
        let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        (ticks(11).unwrap_or_default() + ticks(12).unwrap_or_default()) / ticks_per_second()
    }
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A program started for the benchmark, killed when dropped.
pub struct Peer {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
}

impl Peer {
    /// Starts `program` and waits until `ready` answers 200 (at most a minute).
    pub fn start(
        name: &'static str,
        program: &str,
        args: &[String],
        env: &[(&str, String)],
        addr: SocketAddr,
        ready: &str,
    ) -> Peer {
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {program} (make bench installs it): {err}"));
        let peer = Peer { name, addr, child };
        wait_for_200(addr, ready, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{name} never answered {ready}"));
        peer
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn proc(&self) -> Proc {
        Proc(self.child.id())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `path` on `addr` until it answers 200; the time that took, or `None` after `limit`.
pub fn wait_for_200(addr: SocketAddr, path: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(200) = get_status(addr, path, Duration::from_secs(10)) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// One GET on a fresh connection; the status, or `None` when there was no answer in time.
pub fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut stream, &mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// What wrk measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wrk {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

/// Runs `wrk` against `url` with `connections` for `seconds`, with latency percentiles.
pub fn wrk(url: &str, connections: usize, seconds: u64, headers: &[&str]) -> Wrk {
    let threads = connections.clamp(1, 2).to_string();
    let mut command = Command::new("wrk");
    command
        .args(["-t", &threads, "-c", &connections.to_string()])
        .args([
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
        ]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (make bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    parse_wrk(&text)
}

fn parse_wrk(text: &str) -> Wrk {
    let mut result = Wrk::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(value)) => {
                result.requests_per_second = value.parse().unwrap_or_default();
            }
            (Some("50%"), Some(value)) => result.p50_ms = wrk_duration_ms(value),
            (Some("99%"), Some(value)) => result.p99_ms = wrk_duration_ms(value),
            (Some(count), Some("requests")) => result.requests = count.parse().unwrap_or_default(),
            (Some("Socket"), Some("errors:")) => {
                result.errors += line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum::<u64>();
            }
            (Some("Non-2xx"), _) => {
                result.errors += line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_default();
            }
            _ => {}
        }
    }
    result
}

/// wrk's durations: `123.00us`, `1.23ms`, `1.02s`, `2.00m`.
fn wrk_duration_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(f64::NAN);
    match &text[split..] {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

/// The `q` quantile of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

pub fn median_duration(rounds: usize, mut measure: impl FnMut() -> Duration) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds).map(|_| measure()).collect();
    samples.sort();
    samples[rounds / 2]
}

/// A fresh directory on tmpfs where there is one.
pub fn scratch_dir(name: &str) -> PathBuf {
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
pub fn write_log(path: &Path, lines: usize) -> u64 {
    let file = fs::File::create(path).expect("create bench log");
    let mut out = std::io::BufWriter::new(file);
    append_log(&mut out, 0, lines);
    out.flush().expect("flush bench log");
    fs::metadata(path).map(|m| m.len()).unwrap_or_default()
}

/// Writes lines `first..first + count` of the bench log to `out`.
pub fn append_log(out: &mut impl Write, first: usize, count: usize) {
    let paths = [
        "/api/v1/tables/users/records/",
        "/api/v1/users/550e8400-e29b-41d4-a716-44665544",
        "/api/v1/storage/avatars/u/",
        "/api/v1/auth/signin",
        "/api/v1/tables/orders",
    ];
    let methods = ["GET", "GET", "GET", "POST", "DELETE"];
    let statuses = [200, 200, 201, 304, 404, 429, 500];
    for i in first..first + count {
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
}

/// Writes `lines` HTTP request lines over twelve routes (a few hundred series once mapped), for
/// the scrape benchmarks.
pub fn write_traffic(path: &Path, lines: usize) {
    let routes = [
        ("GET", "/api/v1/tables/users/records/42", 200),
        ("GET", "/api/v1/tables/users/records/43", 404),
        ("GET", "/api/v1/tables/orders", 200),
        ("POST", "/api/v1/tables/orders", 201),
        ("POST", "/api/v1/tables/orders", 500),
        ("GET", "/api/v1/storage/avatars/u/7.png", 200),
        ("GET", "/api/v1/storage/avatars/u/8.png", 304),
        ("DELETE", "/api/v1/tables/orders/9", 204),
        ("POST", "/api/v1/auth/signin", 200),
        ("POST", "/api/v1/auth/signin", 401),
        ("GET", "/api/v1/tables/users/records/44", 429),
        ("PATCH", "/api/v1/tables/users/records/45", 200),
    ];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
    for i in 0..lines {
        let (method, route, status) = routes[i % routes.len()];
        let _ = writeln!(
            out,
            r#"{{"level":"info","request_id":"{i:032x}","method":"{method}","path":"{route}","ip":"10.0.0.{}","status":{status},"duration_ms":{},"user_agent":"Mozilla/5.0","protocol":"HTTP/1.1","response_bytes":{},"time":1705314600,"message":"HTTP request"}}"#,
            i % 3,
            (i * 7) % 900,
            (i * 37) % 60_000
        );
    }
    out.flush().expect("flush log");
}

/// Samples (non-comment lines) in an exposition.
pub fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count()
}

/// Where `make bench` keeps what it writes beside BENCHMARKS.md.
pub fn results_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks");
    fs::create_dir_all(&dir).expect("benchmarks directory");
    dir
}

/// Draws a PNG with gnuplot from a script (make bench installs gnuplot).
pub fn gnuplot(script: &str) {
    let mut child = Command::new("gnuplot")
        .stdin(Stdio::piped())
        .spawn()
        .expect("run gnuplot (make bench installs gnuplot-nox)");
    child
        .stdin
        .take()
        .expect("gnuplot stdin")
        .write_all(script.as_bytes())
        .expect("write the gnuplot script");
    assert!(child.wait().expect("gnuplot").success(), "gnuplot failed");
}
