//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

// Patched (fluxbase-exporter): this crate is fluxbase-exporter's patched copy of tiny_http
// 0.12.0: see PATCHES.md. In short, a server built with
// `Server::from_listener_with` registers every connection, keeps at most
// `ConnectionLimits::max_connections` of them (closing the longest-idle one to make room),
// bounds how long it waits for request heads and how large they may be, never reads a body it
// was not asked to, keeps accepting after `accept` errors, and reports what it did to a
// `ConnectionObserver`. Upstream's TLS support is replaced: `Server::from_listener_tls` runs
// each rustls handshake on the connection's own thread, under the header timeout.

use std::error::Error;
use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::{Admission, Deadline, MessagesQueue, Registry};

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;
pub use util::{ConnectionEvent, ConnectionLimits, ConnectionObserver};
// Patched (fluxbase-exporter): TLS.
pub use rustls;
pub use util::{HandshakeFailure, TlsConfigSource};

mod client;
mod common;
mod connection;
mod request;
mod response;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, the accept thread stops
    close: Arc<AtomicBool>,

    // queue for requests received by child threads
    messages: Arc<MessagesQueue<Request>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // Patched (fluxbase-exporter): the open connections.
    registry: Arc<Registry>,
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
#[allow(dead_code)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// Patched (fluxbase-exporter): limits on connections and requests (the default has none, as upstream).
    pub limits: ConnectionLimits,

    /// Patched (fluxbase-exporter): told about every connection event.
    pub observer: Option<Arc<dyn ConnectionObserver>>,
}

/// The accept loop's pause after a failed `accept`, doubling from the first to the last
/// (the same back-off Go's net/http uses): running out of file descriptors must neither kill
/// the loop nor spin it.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            limits: ConnectionLimits::default(),
            observer: None,
        })
    }

    /// Shortcut for a UNIX socket server at a specific path
    #[cfg(unix)]
    #[inline]
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            limits: ConnectionLimits::default(),
            observer: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener_with(listener, config.limits, config.observer)
    }

    /// Builds a new server using the specified TCP listener, without limits.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with(listener, ConnectionLimits::default(), None)
    }

    /// Patched (fluxbase-exporter): builds a new server on `listener` that enforces `limits` and reports to
    /// `observer`.
    pub fn from_listener_with<L: Into<Listener>>(
        listener: L,
        limits: ConnectionLimits,
        observer: Option<Arc<dyn ConnectionObserver>>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_tls(listener, limits, observer, None)
    }

    /// Patched (fluxbase-exporter): as [`Server::from_listener_with`], serving TLS when `tls`
    /// is given: each connection's handshake runs on its own connection thread within
    /// `limits.header_timeout`, with the configuration `tls` gives at that moment.
    pub fn from_listener_tls<L: Into<Listener>>(
        listener: L,
        limits: ConnectionLimits,
        observer: Option<Arc<dyn ConnectionObserver>>,
        tls: Option<Arc<dyn TlsConfigSource>>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        let bounded = limits.idle_timeout.is_some() || limits.header_timeout.is_some();
        let registry = Registry::new(limits, observer);

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        let inside_registry = registry.clone();
        thread::Builder::new()
            .name("http-accept".to_owned())
            .spawn(move || {
                // a tasks pool is used to dispatch the connections into threads
                let tasks_pool = util::TaskPool::new();
                let registry = inside_registry;
                let mut backoff = ACCEPT_BACKOFF_FIRST;

                log::debug!("Running accept thread");
                // `Acquire` pairs with the `Release` in `Drop for Server`.
                while !inside_close_trigger.load(Acquire) {
                    let sock = match server.accept() {
                        Ok((sock, _)) => sock,
                        Err(e) => {
                            registry.notify(ConnectionEvent::AcceptFailed(e.kind()));
                            log::warn!(
                                "Error accepting new client: {}; retrying in {:?}",
                                e,
                                backoff
                            );
                            thread::sleep(backoff);
                            backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                            continue;
                        }
                    };
                    backoff = ACCEPT_BACKOFF_FIRST;
                    // The connection `Drop for Server` makes to wake this thread up.
                    if inside_close_trigger.load(Acquire) {
                        break;
                    }

                    let ticket = match registry.admit(&sock) {
                        Admission::Admitted(ticket) => ticket,
                        Admission::Refused => continue,
                    };
                    // Patched (fluxbase-exporter): the socket is set up, and with TLS the
                    // handshake run, on the connection's own thread, so that neither a slow
                    // handshake nor a failed one holds up the accept loop or a worker.
                    let messages = inside_messages.clone();
                    let mut task = Some((sock, ticket, tls.clone()));
                    let spawned = tasks_pool.spawn(Box::new(move || {
                        if let Some((sock, ticket, tls)) = task.take() {
                            if let Some(client) = open_client(sock, ticket, bounded, tls) {
                                for rq in client {
                                    messages.push(rq);
                                }
                            }
                        }
                    }));
                    if let Err(e) = spawned {
                        // The task, and with it the connection, is dropped.
                        log::warn!("Cannot start a thread for a new client: {}", e);
                    }
                }
                log::debug!("Terminating accept thread");
            })?;

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            registry,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    ///
    /// Patched (fluxbase-exporter): the only error is an `unblock`; the accept loop never gives up.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(rq) => Ok(rq),
            None => Err(IoError::other("thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        Ok(self.messages.pop_timeout(timeout))
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        Ok(self.messages.try_pop())
    }

    /// Unblock one thread stuck in recv() or incoming_requests().
    ///
    /// This will cause `recv` to return an error.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// Patched (fluxbase-exporter): on a connection's own thread, splits the socket into its halves
/// (after the TLS handshake, when serving TLS) and wraps them into the connection's request
/// reader; `None` when the connection ends here (the ticket's drop reports it closed).
fn open_client(
    sock: Connection,
    mut ticket: util::Ticket,
    bounded: bool,
    tls: Option<Arc<dyn TlsConfigSource>>,
) -> Option<ClientConnection> {
    let deadline = Arc::new(Deadline::default());
    let control = sock.try_clone().ok();
    let halves = match tls {
        None => util::RefinedTcpStream::new(
            sock,
            if bounded {
                Some(deadline.clone())
            } else {
                None
            },
        ),
        Some(tls) => {
            // Evictable while the handshake is under way: a flood of connections that never
            // complete one must not keep a real client out.
            ticket.idle();
            let timeout = ticket.registry().limits().header_timeout;
            let handle = match sock.try_clone() {
                Ok(handle) => handle,
                Err(e) => {
                    log::warn!("Cannot serve a new client: {}", e);
                    return None;
                }
            };
            match util::handshake(sock, deadline.clone(), timeout, tls.server_config()) {
                // Busy again (unless evicted meanwhile), so that the wait for the first
                // request starts now, not at the accept.
                Ok(_) if !ticket.busy() => return None,
                Ok(session) => util::RefinedTcpStream::new_tls(session, handle),
                Err(failure) => {
                    ticket
                        .registry()
                        .notify(ConnectionEvent::HandshakeFailed(failure));
                    return None;
                }
            }
        }
    };
    match halves {
        Ok((read_closable, write_closable)) => Some(ClientConnection::new(
            write_closable,
            read_closable,
            Some(ticket),
            deadline,
            control,
        )),
        Err(e) => {
            log::warn!("Cannot serve a new client: {}", e);
            None
        }
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Patched (fluxbase-exporter): `Release`, paired with the accept loop's `Acquire`
        // (upstream: `Relaxed`).
        self.close.store(true, Release);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Patched (fluxbase-exporter): kept-alive connections end now rather than when their clients leave.
        self.registry.close_all();

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
