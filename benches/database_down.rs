//! `make bench`: `/metrics` latency with the database up, stopped, and replaced by a port that
//! accepts and never answers, in one run against one throwaway cluster. Scrapes read published
//! state, so the three should be equal within noise.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use harness::{Exporter, read_response};
use postgres::Cluster;

const SCRAPES: usize = 2000;

fn main() {
    let cluster = Cluster::start(true);
    let database = cluster.database(true, &["pg_stat_statements"]);
    let url = database.url();
    let checks = [
        "--check.interval",
        "1s",
        "--check.timeout",
        "2s",
        "--database.aggregates-interval",
        "1s",
    ];
    let mut args = vec!["--database.url", url.as_str()];
    args.extend_from_slice(&checks);
    let exporter = Exporter::start(&args);
    wait_until(&exporter, 200);
    let up = measure(&exporter);

    cluster.stop_server();
    wait_until(&exporter, 503);
    let stopped = measure(&exporter);

    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = black_hole.local_addr().expect("address").port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        black_hole.set_nonblocking(true).expect("nonblocking");
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until && held.len() < 64 {
            if let Ok((stream, _)) = black_hole.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        held
    });
    let hole_url = format!("postgres://postgres:x@127.0.0.1:{port}/fluxbase?sslmode=disable");
    let mut args = vec!["--database.url", hole_url.as_str()];
    args.extend_from_slice(&checks);
    let hole_exporter = Exporter::start(&args);
    wait_until(&hole_exporter, 503);
    let hole = measure(&hole_exporter);
    drop(holder);

    println!(
        "# /metrics latency with the database up, stopped, and black-holed ({SCRAPES} sequential scrapes each)\n"
    );
    println!("| database | p50 (µs) | p99 (µs) | max (µs) | p99 vs up |");
    println!("|---|---|---|---|---|");
    for (name, sample) in [("up", &up), ("stopped", &stopped), ("black hole", &hole)] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2} |",
            sample.p50,
            sample.p99,
            sample.max,
            sample.p99 / up.p99
        );
    }
}

struct Latencies {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Sequential scrapes over one keep-alive connection.
fn measure(exporter: &Exporter) -> Latencies {
    let mut stream = TcpStream::connect(exporter.addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
    let mut micros = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        let asked = Instant::now();
        stream.write_all(request).expect("send");
        let response = read_response(&mut stream, true).expect("response");
        assert_eq!(response.status, 200);
        micros.push(asked.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    Latencies {
        p50: at(0.50),
        p99: at(0.99),
        max: micros[micros.len() - 1],
    }
}

fn wait_until(exporter: &Exporter, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while exporter.get("/api/v1/monitoring/health").status != status {
        assert!(Instant::now() < deadline, "health never became {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
