//! The server: one tiny_http listener, a fixed pool of worker threads that take requests from
//! it, and the dispatch loop that answers, compresses, counts and logs.
//!
//! tiny_http (our patched copy, `vendor/tiny_http`) reads requests on one thread per open
//! connection; those only parse heads, and there are at most `--web.max-connections` of them:
//! at the limit the connection that has waited longest for a request is closed to make room.
//! Heads are bounded in size and time, bodies are never read. All handling happens on our fixed
//! pool, so the work the process does for requests is bounded by `--web.threads`.
//!
//! With `--web.config.file`, the connection threads also run the TLS handshake (within the
//! header timeout), and the workers check basic auth before routing and add the configured
//! headers to every answer, refusals included.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use tiny_http::{
    ConnectionEvent, ConnectionLimits, ConnectionObserver, Header, Method, Request, Response,
    StatusCode,
};

use super::basic_auth::{self, BasicAuth};
use super::handlers::{self, Reply};
use super::web_config::WebSettings;
use super::web_reload::PublishedTls;
use crate::config::WebConfig;
use crate::published::Published;
use crate::state::State;

/// The longest request line answered; longer ones get 414 (from tiny_http).
const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// The most header bytes answered; more gets 431 (from tiny_http).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// No endpoint takes a body. A small one is read and ignored, keeping the connection; a
/// larger one is never read, and the connection closes after the answer.
const MAX_BODY_BYTES: usize = 8 * 1024;
/// Bodies shorter than this are sent as they are: gzip would save little and cost a pass.
const GZIP_MIN_BYTES: usize = 1024;
/// How much of a path the access log shows.
const LOGGED_PATH_BYTES: usize = 256;

/// How the server treats connections: `--web.*` settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub threads: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
}

/// The one place `--web.*` connection settings become the server's options.
impl From<&WebConfig> for Options {
    fn from(web: &WebConfig) -> Self {
        Options {
            threads: web.threads,
            max_connections: web.max_connections,
            idle_timeout: web.idle_timeout,
            header_timeout: web.header_timeout,
            write_timeout: web.write_timeout,
        }
    }
}

impl Options {
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            idle_timeout: Some(self.idle_timeout),
            header_timeout: Some(self.header_timeout),
            write_timeout: Some(self.write_timeout),
            max_request_line_bytes: MAX_REQUEST_LINE_BYTES,
            max_header_bytes: MAX_HEADER_BYTES,
            max_body_bytes: Some(MAX_BODY_BYTES),
        }
    }
}

/// Where the server listens.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address (`--web.listen-address`).
    Address(SocketAddr),
    /// A socket already listening, passed by systemd (`--web.systemd-socket`).
    Inherited(TcpListener),
}

/// A running HTTP server and its worker threads.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    /// Set once shutdown starts. `Release` on store and `Acquire` on load: a worker that sees it
    /// set also sees everything the shutdown path did before setting it (nothing, today, but the
    /// pairing costs nothing and keeps the flag safe to extend).
    quit: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Bind {
        address: SocketAddr,
        source: io::Error,
    },
    Spawn(io::Error),
    /// The socket systemd passed cannot be used.
    Inherited(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { address, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {address} (--web.listen-address): the address is already in use"
                )
            }
            StartError::Bind { address, source } => {
                write!(
                    f,
                    "cannot listen on {address} (--web.listen-address): {source}"
                )
            }
            StartError::Spawn(source) => write!(f, "cannot start an HTTP worker thread: {source}"),
            StartError::Inherited(source) => write!(
                f,
                "cannot listen on the socket systemd passed (--web.systemd-socket): {source}"
            ),
        }
    }
}

impl std::error::Error for StartError {}

impl HttpServer {
    /// Listens on `listen` and starts `options.threads` workers. With `web` (from
    /// `--web.config.file`), every answer carries its headers and needs its basic auth, and
    /// the server speaks TLS when the settings had TLS at start-up; the latest published
    /// settings apply to each new handshake and each request.
    pub fn start(
        listen: Listen,
        options: &Options,
        state: Arc<State>,
        web: Option<Arc<Published<WebSettings>>>,
    ) -> Result<Self, StartError> {
        let (listener, local_addr) = match listen {
            Listen::Address(address) => {
                let listener = TcpListener::bind(address)
                    .map_err(|source| StartError::Bind { address, source })?;
                let local_addr = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { address, source })?;
                (listener, local_addr)
            }
            Listen::Inherited(listener) => {
                let local_addr = listener.local_addr().map_err(StartError::Inherited)?;
                (listener, local_addr)
            }
        };
        let address = local_addr;
        // tiny_http writes a response's headers and body separately; with Nagle's algorithm the
        // last segment would wait for the client's delayed ACK (40 ms) on a kept-alive
        // connection. Accepted sockets inherit TCP_NODELAY from the listener.
        if let Err(err) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
            log::warn!(error:% = err; "cannot set TCP_NODELAY; kept-alive responses may be delayed");
        }
        state.exporter.http.server_started();
        let observer = Arc::new(ConnectionCounter {
            state: Arc::clone(&state),
        });
        let tls = web.as_ref().and_then(|settings| {
            let initial = settings.latest().tls.clone()?;
            let source: Arc<dyn tiny_http::TlsConfigSource> = Arc::new(PublishedTls {
                settings: Arc::clone(settings),
                initial,
            });
            Some(source)
        });
        let server =
            tiny_http::Server::from_listener_tls(listener, options.limits(), Some(observer), tls)
                .map_err(|err| StartError::Bind {
                address,
                source: io::Error::other(err.to_string()),
            })?;
        let guard = Arc::new(Guard {
            web,
            basic_auth: BasicAuth::default(),
        });
        let mut http = HttpServer {
            server: Arc::new(server),
            local_addr,
            quit: Arc::new(AtomicBool::new(false)),
            workers: Vec::with_capacity(options.threads),
        };
        for index in 0..options.threads {
            let server = Arc::clone(&http.server);
            let state = Arc::clone(&state);
            let quit = Arc::clone(&http.quit);
            let guard = Arc::clone(&guard);
            let spawned = thread::Builder::new()
                .name(format!("http-{index}"))
                .spawn(move || worker_loop(&server, &state, &guard, &quit));
            match spawned {
                Ok(worker) => http.workers.push(worker),
                Err(err) => {
                    http.shutdown();
                    return Err(StartError::Spawn(err));
                }
            }
        }
        Ok(http)
    }

    /// The address actually bound (the port is known here when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the workers once they have answered every request already received, joins them,
    /// then closes the listener and the connections still open.
    pub fn shutdown(mut self) {
        self.quit.store(true, Ordering::Release);
        // tiny_http's unblock wakes exactly one receiver, after the requests queued before it.
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                log::error!("HTTP worker thread panicked");
            }
        }
        // Dropping the last reference to the server closes the listening socket.
    }
}

/// Counts what tiny_http does to connections on its own.
struct ConnectionCounter {
    state: Arc<State>,
}

impl ConnectionObserver for ConnectionCounter {
    fn event(&self, event: ConnectionEvent) {
        let http = &self.state.exporter.http;
        match event {
            ConnectionEvent::Opened => http.open_connections.add(&[], 1.0),
            ConnectionEvent::Closed => http.open_connections.add(&[], -1.0),
            ConnectionEvent::Evicted => http.connections_dropped_total.inc(&["evicted"]),
            ConnectionEvent::Refused => http.connections_dropped_total.inc(&["refused"]),
            ConnectionEvent::IdleTimeout => http.connections_dropped_total.inc(&["idle_timeout"]),
            ConnectionEvent::Rejected(StatusCode(code)) => {
                let code = itoa::Buffer::new().format(code).to_owned();
                self.state
                    .exporter
                    .http_requests_total
                    .inc(&["other", &code]);
            }
            ConnectionEvent::AcceptFailed(_) => http.accept_errors_total.inc(&[]),
            ConnectionEvent::HandshakeFailed(_) => {
                http.connections_dropped_total.inc(&["tls_handshake"])
            }
        }
    }
}

/// What `--web.config.file` asks of every request: basic auth and extra headers.
struct Guard {
    web: Option<Arc<Published<WebSettings>>>,
    basic_auth: BasicAuth,
}

fn worker_loop(server: &tiny_http::Server, state: &State, guard: &Guard, quit: &AtomicBool) {
    let mut buffers = Buffers::default();
    loop {
        match server.recv() {
            Ok(request) => serve(state, guard, request, &mut buffers),
            // Only `unblock` makes `recv` fail: this worker's turn to stop.
            Err(_) => {
                if !quit.load(Ordering::Acquire) {
                    log::error!("HTTP worker woken without a shutdown; stopping it");
                }
                break;
            }
        }
    }
}

/// Buffers a worker reuses from request to request.
#[derive(Default)]
struct Buffers {
    body: Vec<u8>,
    gzip: Vec<u8>,
    deflate: Deflate,
}

/// Answers one request: route, handle (a panic becomes a 500, not a lost worker), compress
/// when asked, respond, count, log.
fn serve(state: &State, guard: &Guard, request: Request, buffers: &mut Buffers) {
    let started = Instant::now();
    buffers.body.clear();
    let web = guard.web.as_ref().map(|web| web.latest());
    let verdict = web.as_ref().map_or(basic_auth::Verdict::Allowed, |web| {
        let authorizations = request
            .headers()
            .iter()
            .filter(|header| header.field.equiv("Authorization"))
            .map(|header| header.value.as_str());
        guard.basic_auth.check(&web.users, authorizations)
    });
    let (handler, reply) = if verdict == basic_auth::Verdict::Allowed {
        answer(state, &request, &mut buffers.body)
    } else {
        let path = request.url().split(['?', '#']).next().unwrap_or_default();
        let name = handlers::route(state, path).map_or("other", |route| route.name);
        let reply = if verdict == basic_auth::Verdict::Busy {
            handlers::auth_busy(&mut buffers.body)
        } else {
            handlers::unauthorized(&mut buffers.body)
        };
        (name, reply)
    };

    let compressible = buffers.body.len() >= GZIP_MIN_BYTES;
    let gzipped = compressible
        && accepts_gzip(&request)
        && buffers
            .deflate
            .gzip(&buffers.body, &mut buffers.gzip)
            .is_ok();
    let payload: &[u8] = if gzipped {
        &buffers.gzip
    } else {
        &buffers.body
    };

    let mut headers = Vec::with_capacity(4);
    push_header(&mut headers, "Content-Type", reply.content_type);
    if let Some(web) = &web {
        for (name, value) in &web.headers {
            push_header(&mut headers, name, value);
        }
    }
    if compressible {
        push_header(&mut headers, "Vary", "Accept-Encoding");
    }
    if gzipped {
        push_header(&mut headers, "Content-Encoding", "gzip");
    }
    if let Some((name, value)) = reply.header {
        push_header(&mut headers, name, value);
    }

    // Counted before the write, so that a client's next request already sees this one, and
    // timed up to here: the time to produce the answer, which the client's reading speed does
    // not distort.
    let elapsed = started.elapsed();
    let code = itoa::Buffer::new().format(reply.status).to_owned();
    state.exporter.http_requests_total.inc(&[handler, &code]);
    state
        .exporter
        .http_request_duration_seconds
        .observe(&[handler], elapsed.as_secs_f64());

    let method = request.method().clone();
    let path = logged_path(request.url());
    let response = Response::new(
        StatusCode(reply.status),
        headers,
        payload,
        Some(payload.len()),
        None,
    )
    // Always send Content-Length: the length is known, and clients need not handle chunks.
    .with_chunked_threshold(usize::MAX);
    if let Err(err) = request.respond(response) {
        log::debug!(error:% = err, path = path.as_str(); "could not write a response (the client left?)");
    }
    log::debug!(
        method:% = method,
        path = path.as_str(),
        status = reply.status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        bytes = payload.len();
        "HTTP request"
    );
}

/// The route's name and its reply, or a refusal under the name `other`.
fn answer(state: &State, request: &Request, body: &mut Vec<u8>) -> (&'static str, Reply) {
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let Some(route) = handlers::route(state, path) else {
        return ("other", handlers::not_found(body));
    };
    if !matches!(request.method(), Method::Get | Method::Head) {
        return (route.name, handlers::method_not_allowed(body));
    }
    match catch_unwind(AssertUnwindSafe(|| (route.handler)(state, request, body))) {
        Ok(reply) => (route.name, reply),
        Err(_) => {
            log::error!(handler = route.name; "handler panicked; answered 500");
            (route.name, handlers::internal_error(body))
        }
    }
}

/// Whether `Accept-Encoding` accepts gzip (or `*`) with a non-zero quality.
fn accepts_gzip(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .filter(|header| header.field.equiv("Accept-Encoding"))
        .flat_map(|header| header.value.as_str().split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (name.eq_ignore_ascii_case("gzip") || name == "*") && quality > 0.0
        })
}

/// A worker's gzip encoder. The deflate state (a few hundred KiB) lives as long as the worker
/// and is reset per response: allocating and clearing it for every scrape cost more than
/// compressing. Writes RFC 1952 by hand around the raw deflate stream: a 10-byte header, the
/// stream, then the CRC-32 and length of the input.
struct Deflate {
    state: Compress,
}

impl Default for Deflate {
    fn default() -> Self {
        // The fastest level: scrapes are small and frequent; level 1 already shrinks the text
        // format by about 90%.
        Deflate {
            state: Compress::new_with_window_bits(Compression::fast(), false, WINDOW_BITS),
        }
    }
}

/// deflate's full 32 KiB window. A 4 KiB one saves about 0.5 MiB of resident memory over four
/// workers but costs a fifth more CPU per gzip scrape: the encoder slides its whole hash table
/// each time the input passes a window, sixteen times over a 65 KB body instead of once
/// (measured with perf; see BENCHMARKS.md).
const WINDOW_BITS: u8 = 15;

/// gzip's header: magic, deflate, no flags, no time, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Deflate {
    fn gzip(&mut self, body: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.state.reset();
        out.clear();
        out.extend_from_slice(&GZIP_HEADER);
        // Text compresses to a fraction; room for a quarter of the input to start with.
        out.reserve(body.len() / 4 + 64);
        loop {
            let consumed = usize::try_from(self.state.total_in()).unwrap_or(body.len());
            let status = self
                .state
                .compress_vec(
                    &body[consumed.min(body.len())..],
                    out,
                    FlushCompress::Finish,
                )
                .map_err(io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
            // Out of room: grow and go on.
            out.reserve(out.capacity().max(4096));
        }
        let mut crc = Crc::new();
        crc.update(body);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        Ok(())
    }
}

fn push_header(headers: &mut Vec<Header>, name: &str, value: &str) {
    if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        headers.push(header);
    }
}

/// The path of a request target, without its query (which may carry secrets), cut short.
fn logged_path(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut end = path.len().min(LOGGED_PATH_BYTES);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::TestRequest;

    fn with_accept_encoding(value: &str) -> Request {
        TestRequest::new()
            .with_header(Header::from_bytes("Accept-Encoding", value).unwrap())
            .into()
    }

    #[test]
    fn gzip_is_used_only_when_accepted_with_positive_quality() {
        assert!(accepts_gzip(&with_accept_encoding("gzip")));
        assert!(accepts_gzip(&with_accept_encoding("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&with_accept_encoding("*")));
        assert!(!accepts_gzip(&with_accept_encoding("gzip;q=0")));
        assert!(!accepts_gzip(&with_accept_encoding("br, identity")));
        assert!(!accepts_gzip(&TestRequest::new().into()));
    }

    #[test]
    fn gzip_round_trips_with_one_encoder_reused() {
        let mut deflate = Deflate::default();
        let mut out = Vec::new();
        let incompressible: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for body in [
            b"metric 1\n".repeat(500),
            Vec::new(),
            incompressible,
            b"metric 2\n".repeat(50_000),
        ] {
            deflate.gzip(&body, &mut out).unwrap();
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut decoded)
                .unwrap();
            assert_eq!(decoded, body);
        }
        deflate.gzip(&b"metric 1\n".repeat(500), &mut out).unwrap();
        assert!(out.len() < 500);
    }

    #[test]
    fn logged_paths_drop_the_query_and_stay_short() {
        assert_eq!(logged_path("/metrics?token=secret"), "/metrics");
        assert_eq!(logged_path(&format!("/{}", "é".repeat(300))).len(), 255);
    }
}
