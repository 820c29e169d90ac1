//! Runs the real binary on a free loopback port and talks HTTP to it over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_fluxbase-exporter");

/// How long anything in a test may take before the test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running exporter. Killed when dropped.
pub struct Exporter {
    child: Option<Child>,
    /// The working directory, with an empty `storage/` as Fluxbase's default layout has, so
    /// that the default `./storage` root is healthy unless a test says otherwise. Held for its
    /// removal on drop.
    _workdir: TempDir,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Builds the command for the binary with an environment free of the caller's Fluxbase and
/// exporter settings, so tests see only what they set.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLUXBASE_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
}

impl Exporter {
    /// Starts the exporter on 127.0.0.1 with a port the kernel picks, and waits for its
    /// "listening" log line.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Exporter::launch(args, env, &Launch::Plain)
    }

    /// Starts the exporter as `launch` says: plainly, as an unprivileged user, or after a shell
    /// script (run in a private mount namespace) has set the stage.
    pub fn launch(args: &[&str], env: &[(&str, &str)], launch: &Launch) -> Exporter {
        let mut all_args = vec!["--web.listen-address", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let workdir = TempDir::new("cwd");
        std::fs::create_dir_all(workdir.path.join("storage")).expect("create ./storage");
        let mut command = command(&all_args, env);
        match launch {
            Launch::Plain => {}
            Launch::Unprivileged => {
                if let Some((uid, gid)) = unprivileged_user() {
                    use std::os::unix::process::CommandExt;
                    command.uid(uid).gid(gid);
                }
            }
            Launch::InMountNamespace(setup) => {
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args(["--mount", "--propagation", "private", "sh", "-ec"])
                    .arg(format!("{setup}\nexec \"$0\" \"$@\""))
                    .arg(BINARY)
                    .args(&all_args);
                for (key, _) in std::env::vars() {
                    if key.starts_with("FLUXBASE_") {
                        wrapped.env_remove(key);
                    }
                }
                wrapped.envs(env.iter().copied());
                command = wrapped;
            }
        }
        let child = command
            .current_dir(&workdir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the exporter binary");
        Exporter::adopt_in(child, workdir)
    }

    /// Takes over an exporter a test spawned itself (with stderr piped), once it listens.
    pub fn adopt(child: Child) -> Exporter {
        Exporter::adopt_in(child, TempDir::new("adopted"))
    }

    fn adopt_in(mut child: Child, workdir: TempDir) -> Exporter {
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address) = std::sync::mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let address = listening_address(&line);
                    // Kept before the address is announced, so a test that got the address
                    // finds the line too.
                    logs.lock().unwrap().push(line);
                    if let Some(addr) = address {
                        let _ = address_sender.send(addr);
                    }
                }
            });
        }
        let addr = match address.recv_timeout(DEADLINE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not log its address; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        Exporter {
            child: Some(child),
            addr,
            logs,
            _workdir: workdir,
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", path, headers)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        send(self.addr, raw.as_bytes(), method != "HEAD")
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. "TERM") and waits for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, Duration) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let sent = Instant::now();
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, sent.elapsed());
            }
            if sent.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("exporter did not exit after SIGTERM within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How to start the exporter.
pub enum Launch {
    Plain,
    /// As `nobody` when the tests run as root (permissions mean nothing to root).
    Unprivileged,
    /// After this shell script, in a private mount namespace (for read-only and full
    /// filesystems). Needs root or user namespaces, as on the machines the tests run on.
    InMountNamespace(String),
}

/// The uid and gid of `nobody` when running as root; `None` when already unprivileged.
pub fn unprivileged_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    Some((65534, 65534))
}

/// The address in the "listening" log line, in either log format.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        if json["message"] != "listening" {
            return None;
        }
        return json["address"].as_str()?.parse().ok();
    }
    if !line.contains(" message=listening ") {
        return None;
    }
    line.split(' ')
        .find_map(|pair| pair.strip_prefix("address="))?
        .parse()
        .ok()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.text()))
    }
}

/// Sends `raw` bytes and reads one response (the connection is expected to close or to carry a
/// Content-Length).
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> HttpResponse {
    send(addr, raw, true)
}

fn send(addr: SocketAddr, raw: &[u8], with_body: bool) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(raw).expect("send request");
    read_response(&mut stream, with_body).expect("a response")
}

/// Reads one response from `stream`: status line, headers, then (unless it answers a HEAD)
/// Content-Length bytes or everything to EOF.
pub fn read_response(stream: &mut TcpStream, with_body: bool) -> Option<HttpResponse> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut body = Vec::new();
    match length {
        _ if !with_body => {}
        _ if chunked => loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        },
        Some(length) => {
            body.resize(length, 0);
            reader.read_exact(&mut body).ok()?;
        }
        None => {
            reader.read_to_end(&mut body).ok()?;
        }
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A temporary directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), name)
    }

    /// A directory on tmpfs (`/dev/shm`) where there is one: creating tens of thousands of
    /// files there takes a fraction of a second instead of tens of seconds on a slow disk.
    pub fn in_memory(name: &str) -> TempDir {
        let shm = PathBuf::from("/dev/shm");
        let parent = if tempfile_probe(&shm) {
            shm
        } else {
            std::env::temp_dir()
        };
        TempDir::under(&parent, name)
    }

    fn under(parent: &std::path::Path, name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = parent.join(format!("fxe-it-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lines of an exposition that are samples (not comments).
pub fn samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect()
}

/// The value of the first sample whose name and labels start with `prefix`.
pub fn sample_value(text: &str, prefix: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Whether a directory can be created under `parent`.
fn tempfile_probe(parent: &std::path::Path) -> bool {
    let probe = parent.join(format!("fxe-probe-{}", std::process::id()));
    let created = std::fs::create_dir_all(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    created
}

/// Times `calls` calls of `call` and asserts that they answered from memory: nine in ten within
/// `bound`, none near a hang (3 s). One scheduling stall on a loaded machine is not a failure;
/// calls blocked behind a check (all of them slow) are.
pub fn assert_mostly_within(calls: usize, bound: Duration, mut call: impl FnMut()) {
    let mut took: Vec<Duration> = (0..calls)
        .map(|_| {
            let asked = std::time::Instant::now();
            call();
            asked.elapsed()
        })
        .collect();
    took.sort();
    let quick = took.iter().filter(|t| **t < bound).count();
    assert!(
        quick * 10 >= calls * 9 && took.last().is_none_or(|t| *t < Duration::from_secs(3)),
        "{quick} of {calls} within {bound:?}: {took:?}"
    );
}

/// The value of the sample whose name and labels are exactly `series` (`name{labels}`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    sample_value(text, &format!("{series} "))
}

/// Polls `path` until `ready` holds for the response, or fails after the deadline.
pub fn wait_for(
    exporter: &Exporter,
    path: &str,
    what: &str,
    ready: impl Fn(&HttpResponse) -> bool,
) -> HttpResponse {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let response = exporter.get(path);
        if ready(&response) {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last {path}: {}\nlogs: {:#?}",
            response.text(),
            exporter.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `check` has run at least `rounds` more times than before the call, and returns
/// the `/metrics` read after the last of them: what "nothing more happens" means, without a fixed
/// sleep that a loaded machine can outrun.
///
/// A round is seen as a change of the check's `fluxbase_exporter_check_duration_seconds` or
/// `fluxbase_exporter_check_last_success_timestamp_seconds` sample (every round sets the first;
/// a successful one the second, in nanoseconds of wall time). A round that fails in no time at
/// all changes neither, so wait on a check that succeeds or measures its failures. Polls faster
/// than the tests' check intervals; rounds run between two polls count as one, which only makes
/// the wait longer.
pub fn wait_for_rounds(exporter: &Exporter, check: &str, rounds: usize) -> String {
    let duration = format!("fluxbase_exporter_check_duration_seconds{{check=\"{check}\"}} ");
    let success =
        format!("fluxbase_exporter_check_last_success_timestamp_seconds{{check=\"{check}\"}} ");
    let marker = |text: &str| -> (Option<String>, Option<String>) {
        let line = |prefix: &str| {
            text.lines()
                .find(|line| line.starts_with(prefix))
                .map(str::to_owned)
        };
        (line(&duration), line(&success))
    };
    let deadline = Instant::now() + DEADLINE;
    let mut seen = marker(&exporter.get("/metrics").text());
    let mut counted = 0;
    loop {
        thread::sleep(Duration::from_millis(20));
        let text = exporter.get("/metrics").text();
        let now = marker(&text);
        if now.0.is_some() && now != seen {
            counted += 1;
            seen = now;
            if counted >= rounds {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {rounds} rounds of {check} ({counted} seen); last /metrics: {text}\nlogs: {:#?}",
            exporter.logs()
        );
    }
}

/// A deterministic pseudo-random sequence (xorshift), so generated inputs are the same on
/// every run.
pub struct Sequence(pub u64);

impl Sequence {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}
