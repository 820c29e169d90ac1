//! Scrape clients shared by the benchmarks that run the exporter (`peers`, `upstream`); they
//! read answers with the test harness's `read_response`, so only benches that include the
//! harness include this file.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::read_response;

/// The body of one `GET path` on a fresh connection.
pub fn get_body(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
    let response = read_response(&mut stream, true).expect("response");
    String::from_utf8_lossy(&response.body).into_owned()
}

/// `total` scrapes with gzip over `clients` keep-alive connections; how many were done and
/// how long they took (bounded at 10 minutes).
pub fn scrape_many(addr: SocketAddr, total: usize, clients: usize) -> (usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let next = Arc::clone(&next);
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let request =
                    b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n";
                let mut done = 0;
                while next.fetch_add(1, Ordering::Relaxed) < total
                    && started.elapsed() < Duration::from_secs(600)
                {
                    stream.write_all(request).expect("send");
                    let response = read_response(&mut stream, true).expect("response");
                    assert_eq!(response.status, 200);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let done = workers.into_iter().map(|w| w.join().expect("client")).sum();
    (done, started.elapsed())
}
