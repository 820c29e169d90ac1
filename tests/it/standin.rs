//! A stand-in for Fluxbase's metrics endpoint: a real HTTP server on loopback that answers as
//! Go's `promhttp` does (gzip with chunked transfer encoding when asked, plain with a length
//! otherwise), and that can be told to misbehave.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;

/// The exposition Fluxbase serves, recorded in the Go client's format from the reference.
pub const FLUXBASE: &str = include_str!("../fixtures/fluxbase-metrics.prom");

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The exposition, as Go serves it.
    Serve,
    /// Accepts and never answers (until stopped).
    BlackHole,
    /// 200 with something that is not the text format.
    Garbage,
    /// 500.
    ServerError,
    /// Half of the gzip stream, then a well-formed end of the chunked body.
    TruncatedGzip,
    /// The listener is closed: connections are refused.
    Refuse,
    /// Answers at once, then sends the gzipped body a few bytes every 50 ms (for up to 30 s):
    /// the head is quick, the body never finishes within a check timeout.
    Slow,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    /// The exposition, and its gzip (made once per body, not per request).
    body: Mutex<(Vec<u8>, Vec<u8>)>,
    stop: AtomicBool,
    requests: AtomicUsize,
    gzip_requests: AtomicUsize,
}

pub struct StandIn {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    pub fn start(body: &str) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Serve),
            body: Mutex::new((body.as_bytes().to_vec(), gzip(body.as_bytes()))),
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            gzip_requests: AtomicUsize::new(0),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, addr, &shared))
        };
        StandIn {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    pub fn set_body(&self, body: &str) {
        *self.shared.body.lock().unwrap() = (body.as_bytes().to_vec(), gzip(body.as_bytes()));
    }

    /// Requests answered or held so far, and how many of them asked for gzip.
    pub fn requests(&self) -> (usize, usize) {
        (
            self.shared.requests.load(Ordering::SeqCst),
            self.shared.gzip_requests.load(Ordering::SeqCst),
        )
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: &Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    let mut connections = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let refuse = *shared.behaviour.lock().unwrap() == Behaviour::Refuse;
        if refuse {
            listener = None;
        } else if listener.is_none() {
            // std sets SO_REUSEADDR, so the same port binds again at once.
            if let Ok(reopened) = TcpListener::bind(addr) {
                reopened.set_nonblocking(true).unwrap();
                listener = Some(reopened);
            }
        }
        match listener.as_ref().map(TcpListener::accept) {
            Some(Ok((stream, _))) => {
                let shared = Arc::clone(shared);
                connections.push(thread::spawn(move || serve(stream, &shared)));
            }
            _ => thread::sleep(Duration::from_millis(5)),
        }
        connections.retain(|connection: &JoinHandle<()>| !connection.is_finished());
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let gzip = head
        .lines()
        .any(|line| line.starts_with("accept-encoding:") && line.contains("gzip"));
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if gzip {
        shared.gzip_requests.fetch_add(1, Ordering::SeqCst);
    }
    let behaviour = *shared.behaviour.lock().unwrap();
    let (body, gzipped) = shared.body.lock().unwrap().clone();
    let _ = match behaviour {
        Behaviour::Serve if gzip => chunked_gzip(&mut stream, gzipped, false),
        Behaviour::Serve => plain(&mut stream, "200 OK", &body),
        Behaviour::TruncatedGzip => chunked_gzip(&mut stream, gzipped, true),
        Behaviour::Slow => trickle(&mut stream, &gzipped, shared),
        Behaviour::Garbage => plain(
            &mut stream,
            "200 OK",
            b"<html><body>Bad Gateway</body></html>\n",
        ),
        Behaviour::ServerError => plain(
            &mut stream,
            "500 Internal Server Error",
            b"An error has occurred while serving metrics\n",
        ),
        Behaviour::BlackHole | Behaviour::Refuse => {
            // Hold the connection, answer nothing, until the stand-in stops or serves again.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !shared.stop.load(Ordering::SeqCst)
                && *shared.behaviour.lock().unwrap() == behaviour
                && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
    };
}

fn plain(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// As Go's net/http writes a gzipped promhttp answer: no length, chunked, in several chunks.
fn chunked_gzip(
    stream: &mut TcpStream,
    mut gzipped: Vec<u8>,
    truncate: bool,
) -> std::io::Result<()> {
    if truncate {
        gzipped.truncate(gzipped.len() / 2);
    }
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\
          Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
          Vary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    for chunk in gzipped.chunks(gzipped.len().div_ceil(3).max(1)) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        stream.write_all(chunk)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")
}

/// A chunked gzip answer whose chunks come 16 bytes every 50 ms, until the client gives up,
/// the stand-in is told otherwise, or 30 s pass.
fn trickle(stream: &mut TcpStream, gzipped: &[u8], shared: &Shared) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\
          Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for chunk in gzipped.chunks(16) {
        if shared.stop.load(Ordering::SeqCst)
            || *shared.behaviour.lock().unwrap() != Behaviour::Slow
            || Instant::now() > deadline
        {
            return Ok(());
        }
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        stream.write_all(chunk)?;
        stream.write_all(b"\r\n")?;
        thread::sleep(Duration::from_millis(50));
    }
    stream.write_all(b"0\r\n\r\n")
}
