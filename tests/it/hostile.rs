//! Hostile conditions: connection floods, malformed requests, slow clients and a flapping
//! database, against the real binary over real loopback sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Exporter, read_response, sample_value};
use crate::postgres::Cluster;

/// The exporter's threads by name, leaving out tiny_http's connection threads (one per open
/// connection, and a few idle ones for 5 s after): the threads the exporter owns.
fn owned_threads(exporter: &Exporter) -> std::collections::BTreeMap<String, usize> {
    let mut names = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", exporter.pid())).unwrap();
    for task in tasks.flatten() {
        let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        let name = name.trim().to_owned();
        if name != "http-conn" {
            *names.entry(name).or_default() += 1;
        }
    }
    names
}

/// The exporter's thread count, from /proc.
fn threads(exporter: &Exporter) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", exporter.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a Threads line")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Sends `raw` on a new connection and reads every response until the server closes it
/// (so every exchange here ends in a request that closes the connection).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<Answer> {
    let mut stream = connect(addr);
    // The server may answer and close before it has read everything (it reads and discards
    // the rest for a while): a failed write is not the test's concern, the answer is.
    let _ = stream.write_all(raw);
    let mut received = Vec::new();
    if let Err(err) = stream.read_to_end(&mut received) {
        // A reset after the answers arrived still leaves them to check.
        assert!(!received.is_empty(), "nothing received: {err}");
    }
    answers(&received)
}

/// One response of an exchange.
#[derive(Debug)]
struct Answer {
    status: u16,
    status_line: String,
    body: Vec<u8>,
}

/// Splits what a connection received into responses (each with a Content-Length, as every
/// response of this server has).
fn answers(mut raw: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status_line = head.lines().next().unwrap_or_default().to_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let body_start = end + 4;
        let body_end = (body_start + length).min(raw.len());
        answers.push(Answer {
            status,
            status_line,
            body: raw[body_start..body_end].to_vec(),
        });
        raw = &raw[body_end..];
    }
    answers
}

/// The one response to `raw`.
fn one(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut answers = exchange(addr, raw);
    assert_eq!(
        answers.len(),
        1,
        "one response expected to {:?}: {answers:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );
    answers.remove(0)
}

/// How many file descriptors this process may open: the flood holds that many sockets.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

const FLOOD_CAP: usize = 64;

#[test]
fn a_flood_of_idle_and_half_sent_connections_does_not_stop_health_or_grow_threads() {
    let cap = FLOOD_CAP.to_string();
    let exporter = Exporter::start(&["--web.max-connections", &cap]);
    // A scraper with a kept-alive connection that has completed a request.
    let mut scraper = connect(exporter.addr);
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut scraper, true).unwrap().status, 200);
    let baseline = threads(&exporter);

    // 1,000 connections that never send a byte, then 300 that stop half-way through a head.
    let budget = open_files_limit().saturating_sub(200);
    let (idle_count, half_count) = (1000.min(budget), 300.min(budget.saturating_sub(1000)));
    assert!(
        idle_count == 1000,
        "this test holds 1,300 sockets; raise the open-files limit (ulimit -n, now {})",
        open_files_limit()
    );
    let mut flood = Vec::with_capacity(idle_count + half_count);
    for _ in 0..idle_count {
        flood.push(connect(exporter.addr));
    }
    for _ in 0..half_count {
        let mut stream = connect(exporter.addr);
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .unwrap();
        flood.push(stream);
    }
    let during = threads(&exporter);

    // Health, on the kept-alive connection and on fresh ones, timed from an established
    // connection to the whole answer (a fresh connect may wait on the kernel's SYN handling).
    let mut took = Vec::new();
    for _ in 0..20 {
        let asked = Instant::now();
        scraper
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let response = read_response(&mut scraper, true).expect("kept-alive scraper answered");
        assert!(response.status == 200 || response.status == 503);
        took.push(asked.elapsed());

        let mut fresh = connect(exporter.addr);
        let asked = Instant::now();
        fresh
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let response = read_response(&mut fresh, true).expect("fresh connection answered");
        assert!(response.status == 200 || response.status == 503);
        took.push(asked.elapsed());
    }
    took.sort();
    let quick = took
        .iter()
        .filter(|t| **t < Duration::from_millis(100))
        .count();
    // Timing on a shared machine: nearly all within 100 ms, none anywhere near a hang.
    assert!(
        quick >= took.len() * 9 / 10 && took[took.len() - 1] < Duration::from_secs(2),
        "health answers under the flood: {took:?}"
    );

    // Threads: one per kept connection at most (an evicted connection keeps its place until its
    // thread has ended), plus the pool's few spare threads.
    assert!(
        during <= baseline + FLOOD_CAP + 8,
        "threads grew from {baseline} to {during} under the flood"
    );
    let metrics = crate::harness::raw_request(
        exporter.addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .text();
    let evicted = sample_value(
        &metrics,
        "fluxbase_exporter_http_connections_dropped_total{reason=\"evicted\"} ",
    )
    .unwrap();
    assert!(
        evicted >= (idle_count + half_count - FLOOD_CAP) as f64,
        "{evicted}"
    );
    let open = sample_value(&metrics, "fluxbase_exporter_http_open_connections ").unwrap();
    assert!(open <= (FLOOD_CAP + 8) as f64, "{open} connections open");

    // The flood leaves; the threads it caused leave too (idle pool threads exit after 5 s).
    drop(flood);
    let deadline = Instant::now() + DEADLINE;
    while threads(&exporter) > baseline + 4 {
        assert!(
            Instant::now() < deadline,
            "threads stayed at {} (baseline {baseline}) after the flood",
            threads(&exporter)
        );
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_trickling_head_gets_408_and_a_silent_connection_is_closed() {
    let exporter = Exporter::start(&[
        "--web.header-timeout",
        "500ms",
        "--web.idle-timeout",
        "700ms",
    ]);
    // One byte every 100 ms: each read is quick, the head as a whole is not.
    let mut trickle = connect(exporter.addr);
    let started = Instant::now();
    trickle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let writer = {
        let mut stream = trickle.try_clone().unwrap();
        thread::spawn(move || {
            for _ in 0..50 {
                if stream.write_all(b"X").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let response = read_response(&mut trickle, true).expect("an answer to the slow head");
    assert_eq!(response.status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    writer.join().unwrap();

    // Connected, then silent: closed after the idle timeout, without an answer.
    let mut silent = connect(exporter.addr);
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(read, 0, "closed without a word");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let metrics = exporter.get("/metrics").text();
    assert_eq!(
        sample_value(
            &metrics,
            "fluxbase_exporter_http_connections_dropped_total{reason=\"idle_timeout\"} "
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            &metrics,
            "fluxbase_exporter_http_requests_total{handler=\"other\",code=\"408\"} "
        ),
        Some(1.0)
    );
}

#[test]
fn malformed_and_unusual_requests_get_a_4xx_or_a_correct_answer() {
    let exporter = Exporter::start(&[]);
    let addr = exporter.addr;
    let status = |raw: &[u8]| one(addr, raw).status;

    // Oversized heads: refused by size, the rest of the input discarded, no hang.
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'h', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status(&huge), 431);
    let mut long_line = b"GET /".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 100_000));
    long_line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(status(&long_line), 414);

    // Paths: bytes that are not ASCII are a bad request; odd escapes are just unknown paths.
    assert_eq!(status(b"GET /metr\xffics HTTP/1.1\r\nHost: t\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\xc3\x28 HTTP/1.1\r\nHost: t\r\n\r\n"), 400);
    assert_eq!(
        status(b"GET /health\xe2\x82 HTTP/1.1\r\nHost: t\r\n\r\n"),
        400
    );
    for path in [
        "/metrics%zz",
        "/%ff%fe%00",
        "/%",
        "/metrics%2",
        "/..%2f..%2fetc/passwd",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(status(raw.as_bytes()), 404, "{path}");
    }
    assert_eq!(
        status(b"GET /metrics?%zz=%ff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        200
    );
    // A header value that is not ASCII.
    assert_eq!(
        status(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
        400
    );

    // Methods nobody uses, and ones nobody could.
    let absurd_method = format!(
        "{} /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "M".repeat(5000)
    );
    for raw in [
        b"FOOBAR /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".as_slice(),
        b"DELETE /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"TRACE /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"G\x01T /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        absurd_method.as_bytes(),
    ] {
        assert_eq!(
            status(raw),
            405,
            "{:?}",
            String::from_utf8_lossy(&raw[..12])
        );
    }
    for raw in [
        b"NOT A REQUEST\r\n\r\n".as_slice(),
        b"GET /livez\r\n\r\n",
        b"GET /livez HTTP/9.9\r\n\r\n",
        b"GET  /livez  HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        let code = status(raw);
        assert!((400..500).contains(&code), "{raw:?} got {code}");
    }
    // An HTTP/2 request line is an HTTP version this server does not speak.
    assert_eq!(status(b"GET /livez HTTP/2.0\r\n\r\n"), 505);

    // HTTP/1.0: answered in kind, then closed.
    let answer = one(addr, b"GET /livez HTTP/1.0\r\n\r\n");
    assert!(
        answer.status_line.starts_with("HTTP/1.0 200 "),
        "{answer:?}"
    );
    assert_eq!(answer.body, b"ok\n");

    // Pipelined requests: every one answered, in order.
    let answers = exchange(
        addr,
        b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let codes: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 404, 200, 200], "pipelined answers");
    assert_eq!(answers[3].body, b"ok\n");

    // A body on GET: a small one is read and ignored, and the connection goes on.
    let answers = exchange(
        addr,
        b"GET /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        answers.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200]
    );
    // A large, a chunked and an expected body are never read: answered, then closed.
    let mut large = b"GET /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n".to_vec();
    large.extend(std::iter::repeat_n(b'x', 1 << 20));
    assert_eq!(status(&large), 200);
    let absurd_length = b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
          Content-Length: 18446744073709551616\r\n\r\n";
    assert_eq!(status(absurd_length), 200);
    assert_eq!(
        status(
            b"GET /livez HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        200
    );
    assert_eq!(
        status(
            b"GET /livez HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        ),
        200
    );
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        405
    );

    // After all of it: still serving, nothing panicked, and the refusals were counted.
    assert_eq!(exporter.get("/livez").status, 200);
    let metrics = exporter.get("/metrics").text();
    assert!(
        !metrics.contains("code=\"500\""),
        "a handler failed:\n{metrics}"
    );
    for code in ["400", "414", "431", "505"] {
        let series =
            format!("fluxbase_exporter_http_requests_total{{handler=\"other\",code=\"{code}\"}} ");
        assert!(
            sample_value(&metrics, &series).unwrap_or(0.0) >= 1.0,
            "{series} not counted"
        );
    }
    assert!(
        !exporter.logs().iter().any(|l| l.contains("panicked")),
        "{:#?}",
        exporter.logs()
    );
}

/// The database goes down and up every few seconds for a minute while `/metrics` is scraped
/// 50 times a second: scrapes all succeed, the exporter never holds more sessions than its
/// pool, health follows the database, and no thread is left behind.
#[test]
fn a_flapping_database_for_a_minute_never_exceeds_the_pool_and_health_follows() {
    const POOL: usize = 2;
    const FLAPPING: Duration = Duration::from_secs(60);
    let cluster = Cluster::start(false);
    let database = cluster.database(true, &[]);
    let url = database.url();
    let pool = POOL.to_string();
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--database.pool-size",
        &pool,
        "--check.interval",
        "300ms",
        "--check.timeout",
        "2s",
        "--database.aggregates-interval",
        "300ms",
    ]);
    let database_health = |exporter: &Exporter| {
        let body = exporter.get("/api/v1/monitoring/health").json();
        body["services"]["database"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let wait_health = |exporter: &Exporter, want: &str| {
        let deadline = Instant::now() + DEADLINE;
        while database_health(exporter) != want {
            assert!(
                Instant::now() < deadline,
                "database health never became {want}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    wait_health(&exporter, "healthy");
    let threads_before = owned_threads(&exporter);

    // 50 scrapes a second on one kept-alive connection, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = Arc::clone(&stop);
        let addr = exporter.addr;
        thread::spawn(move || {
            let mut stream = connect(addr);
            let (mut ok, mut failed) = (0u32, Vec::new());
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed)
                && ok < 5_000
                && started.elapsed() < FLAPPING + DEADLINE * 2
            {
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                    .unwrap();
                match read_response(&mut stream, true) {
                    Some(response) if response.status == 200 => ok += 1,
                    Some(response) => failed.push(response.status),
                    None => {
                        failed.push(0);
                        stream = connect(addr);
                    }
                }
                thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };

    let sessions = |admin: &mut postgres::Client| -> usize {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fluxbase-exporter'",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0) as usize
    };
    let started = Instant::now();
    let (mut cycles, mut most_sessions) = (0, 0);
    while started.elapsed() < FLAPPING {
        // Up: sample the exporter's sessions while it checks and queries.
        let mut admin = database.connect();
        let up_until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < up_until {
            most_sessions = most_sessions.max(sessions(&mut admin));
            thread::sleep(Duration::from_millis(25));
        }
        drop(admin);
        cluster.stop_server();
        wait_health(&exporter, "unhealthy");
        thread::sleep(Duration::from_millis(700));
        cluster.start_server();
        wait_health(&exporter, "healthy");
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (scrapes, failed) = scraper.join().unwrap();

    assert!(
        cycles >= 5,
        "only {cycles} down-and-up cycles in {FLAPPING:?}"
    );
    assert!(
        (1..=POOL).contains(&most_sessions),
        "the exporter held {most_sessions} sessions; its pool is {POOL}"
    );
    assert!(failed.is_empty(), "scrapes failed: {failed:?}");
    assert!(scrapes > 1000, "only {scrapes} scrapes");
    // No thread left behind by all the reconnecting: the same threads as before, by name.
    let threads_after = owned_threads(&exporter);
    assert_eq!(
        threads_after, threads_before,
        "threads before and after {cycles} cycles"
    );
    assert!(
        exporter
            .logs()
            .iter()
            .any(|l| l.contains("database reachable again"))
    );
}
