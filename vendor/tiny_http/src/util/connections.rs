//! Patched (fluxbase-exporter): what the server allows its connections, and the registry that
//! enforces it.
//!
//! Upstream tiny_http gives every accepted connection its own thread for as long as the client
//! keeps it open, with no limit and no timeout: a thousand idle connections are a thousand
//! threads, and a client that never finishes its request head holds its thread forever. Here
//! every connection is registered on accept; when the registry is full, the connection that has
//! waited longest for a request is closed to make room (only when every connection is busy
//! with a request is the newcomer refused with 503), and a [`Deadline`] bounds how long a
//! connection may wait for a request head. An evicted connection keeps its place until its
//! thread has let go of it, so the threads serving connections never outnumber the limit.

use std::convert::TryFrom;
use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::StatusCode;

/// Limits on connections and requests. The default is upstream tiny_http's behaviour: no limit.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections kept open at once. At the limit, the connection that has waited longest for
    /// a request is closed to make room; if every connection is busy, the newcomer gets 503.
    pub max_connections: usize,
    /// How long a connection may wait for the first byte of its next request (keep-alive idle
    /// time, and the time a fresh connection has to start its first request). It is closed
    /// silently after that.
    pub idle_timeout: Option<Duration>,
    /// How long a request head (and a body small enough to be read, see `max_body_bytes`) may
    /// take from its first byte to its last. Too slow: 408 and the connection closes.
    pub header_timeout: Option<Duration>,
    /// How long one write of a response may block.
    pub write_timeout: Option<Duration>,
    /// The longest request line answered; longer: 414 and the connection closes.
    pub max_request_line_bytes: usize,
    /// The most bytes of header lines answered; more: 431 and the connection closes.
    pub max_header_bytes: usize,
    /// `Some(n)`: a body of at most `n` bytes (by Content-Length, without `Expect`) is read
    /// before the request is handed out; any other body is never read, and the connection
    /// closes after the response. `None`: upstream's streaming bodies.
    pub max_body_bytes: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: usize::MAX,
            idle_timeout: None,
            header_timeout: None,
            write_timeout: None,
            max_request_line_bytes: usize::MAX,
            max_header_bytes: usize::MAX,
            max_body_bytes: None,
        }
    }
}

/// Something that happened to a connection, for the embedding program to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A connection was accepted and is being served.
    Opened,
    /// A served connection ended, however it ended.
    Closed,
    /// An idle connection was closed to make room for a new one.
    Evicted,
    /// A new connection was refused with 503: every open connection was busy.
    Refused,
    /// A connection was closed after waiting `idle_timeout` for a request.
    IdleTimeout,
    /// tiny_http answered a request itself and closed the connection: 400 (malformed or
    /// non-ASCII head), 408 (head too slow), 414, 417, 431 or 505.
    Rejected(StatusCode),
    /// `accept` failed (for instance, out of file descriptors); the server keeps accepting.
    AcceptFailed(ErrorKind),
    /// Patched (fluxbase-exporter): a TLS server's connection ended before its handshake
    /// completed.
    HandshakeFailed(crate::util::HandshakeFailure),
}

/// Receives [`ConnectionEvent`]s. Called on the server's own threads: keep it cheap and
/// non-blocking.
pub trait ConnectionObserver: Send + Sync {
    fn event(&self, event: ConnectionEvent);
}

/// Nanoseconds since the first call, plus one, so that 0 can mean "not set".
fn now_ticks() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

fn ticks_after(duration: Duration) -> u64 {
    now_ticks().saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
}

/// The instant by which the reads of a connection must be done, shared between the connection
/// thread (which sets it before each request head) and the read half of the socket (which
/// bounds every read by it).
///
/// `Relaxed` suffices: the value is written and read by the connection's own thread; when a
/// request hands the read half to another thread, that hand-off is a channel send, which
/// orders the store before the other thread's loads.
#[derive(Default, Debug)]
pub struct Deadline {
    at: AtomicU64,
}

impl Deadline {
    /// Reads must be done within `after` from now; `None` lifts the bound.
    pub(crate) fn set(&self, after: Option<Duration>) {
        let at = after.map_or(0, ticks_after);
        self.at.store(at, Ordering::Relaxed);
    }

    /// The time left, zero once passed, or `None` when there is no deadline.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self.at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_nanos(at.saturating_sub(now_ticks()))),
        }
    }
}

/// A connection's state word: `BUSY`, `EVICTED`, or the tick at which it started waiting for
/// a request, with `SERVED` set once the connection has brought a whole request. The
/// registry's eviction and the connection's own thread race on it with compare-and-swap, so a
/// connection is either evicted while idle or handed a request, never both.
const BUSY: u64 = 0;
const EVICTED: u64 = u64::MAX;
const SERVED: u64 = 1 << 62;

struct Entry {
    id: u64,
    /// Another handle to the socket, to shut it down from the accept thread.
    socket: Connection,
    state: Arc<AtomicU64>,
}

/// The open connections of one server.
pub(crate) struct Registry {
    limits: ConnectionLimits,
    observer: Option<Arc<dyn ConnectionObserver>>,
    entries: Mutex<Vec<Entry>>,
    /// Signalled whenever an entry leaves `entries`.
    released: Condvar,
    next_id: AtomicU64,
}

/// How long the accept thread waits for evicted connections to let go of their places before
/// it refuses the newcomer. Their threads are woken by the shutdown of their sockets, so this
/// is only reached on a starved machine.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// What [`Registry::admit`] decided.
pub(crate) enum Admission {
    Admitted(Ticket),
    /// Every connection is busy; the newcomer was answered 503 and closed.
    Refused,
}

impl Registry {
    pub(crate) fn new(
        limits: ConnectionLimits,
        observer: Option<Arc<dyn ConnectionObserver>>,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            limits,
            observer,
            entries: Mutex::new(Vec::new()),
            released: Condvar::new(),
            next_id: AtomicU64::new(1),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    pub(crate) fn notify(&self, event: ConnectionEvent) {
        if let Some(observer) = &self.observer {
            observer.event(event);
        }
    }

    /// Registers a freshly accepted connection, closing the longest-idle one first when the
    /// registry is full.
    pub(crate) fn admit(self: &Arc<Self>, socket: &Connection) -> Admission {
        if let Some(timeout) = self.limits.write_timeout {
            // Best effort: without it, writes are merely unbounded, as upstream.
            socket.set_write_timeout(Some(timeout)).ok();
        }
        let handle = match socket.try_clone() {
            Ok(handle) => handle,
            Err(err) => {
                log::warn!("cannot register a new connection: {}", err);
                return Admission::Refused;
            }
        };
        let mut entries = self.lock_entries();
        let give_up = Instant::now() + RELEASE_WAIT;
        while entries.len() >= self.limits.max_connections {
            // Places already being given up come first; evict only when none is.
            let leaving = entries
                .iter()
                .any(|entry| entry.state.load(Ordering::Acquire) == EVICTED);
            if !leaving {
                if !Self::evict_longest_idle(&entries) {
                    drop(entries);
                    self.refuse(socket);
                    return Admission::Refused;
                }
                self.notify(ConnectionEvent::Evicted);
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(entries);
                self.refuse(socket);
                return Admission::Refused;
            }
            entries = self
                .released
                .wait_timeout(entries, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(AtomicU64::new(BUSY));
        entries.push(Entry {
            id,
            socket: handle,
            state: Arc::clone(&state),
        });
        drop(entries);
        self.notify(ConnectionEvent::Opened);
        Admission::Admitted(Ticket {
            registry: Arc::clone(self),
            id,
            state,
            served: false,
        })
    }

    fn lock_entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self, socket: &Connection) {
        refuse(socket);
        self.notify(ConnectionEvent::Refused);
    }

    /// Closes the connection that has waited longest for a request, if any is waiting:
    /// first among those that never brought a whole request (a flood of idle or half-sent
    /// connections), and only when there are none among the kept-alive ones (a scraper's
    /// connection survives the flood). Its entry stays until its thread drops the ticket.
    fn evict_longest_idle(entries: &[Entry]) -> bool {
        loop {
            // Ordered by the SERVED bit first, then by the time waiting started.
            let oldest = entries
                .iter()
                .enumerate()
                .filter_map(|(index, entry)| {
                    let since = entry.state.load(Ordering::Acquire);
                    (since != BUSY && since != EVICTED).then_some((index, since))
                })
                .min_by_key(|&(_, since)| since);
            let Some((index, since)) = oldest else {
                return false;
            };
            // AcqRel: wins the race against the connection's own `busy()`, below.
            let won = entries[index]
                .state
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if won {
                // Wakes the connection's thread out of its read; it then ends.
                entries[index].socket.shutdown(Shutdown::Both).ok();
                return true;
            }
            // The connection took a request meanwhile; look again.
        }
    }

    /// Closes every open connection (the server is going away).
    pub(crate) fn close_all(&self) {
        let entries = self.lock_entries();
        for entry in entries.iter() {
            entry.socket.shutdown(Shutdown::Both).ok();
        }
    }

    fn remove(&self, id: u64) {
        let mut entries = self.lock_entries();
        if let Some(index) = entries.iter().position(|entry| entry.id == id) {
            entries.swap_remove(index);
            self.released.notify_all();
        }
    }
}

/// Answers 503 on a connection that cannot be served, without blocking the accept thread.
fn refuse(socket: &Connection) {
    const BODY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n";
    socket
        .set_write_timeout(Some(Duration::from_millis(10)))
        .ok();
    let mut socket = match socket.try_clone() {
        Ok(socket) => socket,
        Err(_) => return,
    };
    socket.write_all(BODY).ok();
    socket.shutdown(Shutdown::Both).ok();
}

/// A connection's place in the registry; dropping it gives the place up.
pub(crate) struct Ticket {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<AtomicU64>,
    /// Whether the connection has brought a whole request (only its own thread looks).
    served: bool,
}

impl Ticket {
    /// The connection now waits for a request (and may be evicted to make room).
    pub(crate) fn idle(&self) {
        // Only the connection's own thread moves the state out of BUSY, so a plain store is
        // safe here; `Release` pairs with the evictor's `Acquire` load.
        if self.state.load(Ordering::Relaxed) == BUSY {
            let served = if self.served { SERVED } else { 0 };
            self.state
                .store(now_ticks().min(SERVED - 1) | served, Ordering::Release);
        }
    }

    /// The connection has a request. `false` when it was evicted first: the request must be
    /// dropped, the socket is already shut.
    pub(crate) fn busy(&mut self) -> bool {
        let since = self.state.load(Ordering::Acquire);
        if since == EVICTED {
            return false;
        }
        let won = since == BUSY
            || self
                .state
                .compare_exchange(since, BUSY, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        self.served |= won;
        won
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.remove(self.id);
        self.registry.notify(ConnectionEvent::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    fn pair(listener: &TcpListener) -> (TcpStream, Connection) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Connection::from(server))
    }

    fn registry(max: usize) -> Arc<Registry> {
        Registry::new(
            ConnectionLimits {
                max_connections: max,
                ..ConnectionLimits::default()
            },
            None,
        )
    }

    /// What a connection thread does while its connection waits for a request: it reads,
    /// and when the read ends (eviction shuts the socket) it lets go of its ticket. The answer
    /// is whether it was evicted.
    fn wait_for_request(mut ticket: Ticket, mut socket: Connection) -> thread::JoinHandle<bool> {
        ticket.idle();
        thread::spawn(move || {
            let mut byte = [0u8; 1];
            // Waits for a byte or the end of the stream; either is the answer.
            socket.read_exact(&mut byte).ok();
            !ticket.busy()
        })
    }

    fn admitted(registry: &Arc<Registry>, socket: &Connection) -> Ticket {
        match registry.admit(socket) {
            Admission::Admitted(ticket) => ticket,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn connections_that_brought_a_request_are_evicted_last() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = registry(2);
        let (_scraper_client, scraper) = pair(&listener);
        let mut scraper_ticket = admitted(&registry, &scraper);
        assert!(scraper_ticket.busy());
        scraper_ticket.idle();
        thread::sleep(Duration::from_millis(2));
        // A flood of connections that never send a request: each evicts the previous one.
        let mut flood = Vec::new();
        for _ in 0..5 {
            let (client, socket) = pair(&listener);
            let ticket = admitted(&registry, &socket);
            flood.push((client, wait_for_request(ticket, socket)));
        }
        assert!(scraper_ticket.busy(), "the kept-alive connection survives");
        let last = flood.pop().unwrap();
        for (_, thread) in flood {
            assert!(thread.join().unwrap(), "an idle newcomer was evicted");
        }
        drop(last.0);
        assert!(!last.1.join().unwrap(), "the last one was left alone");
    }

    #[test]
    fn a_full_registry_evicts_the_longest_idle_connection_and_waits_for_its_thread() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = registry(2);
        let (mut first_client, first) = pair(&listener);
        let (_second_client, second) = pair(&listener);
        let first_ticket = admitted(&registry, &first);
        let second_ticket = admitted(&registry, &second);
        let first_thread = wait_for_request(first_ticket, first);
        thread::sleep(Duration::from_millis(2));
        second_ticket.idle();

        let (_third_client, third) = pair(&listener);
        let _third_ticket = admitted(&registry, &third);
        let entries = registry.lock_entries();
        assert!(
            entries.len() == 2
                && entries
                    .iter()
                    .all(|entry| entry.state.load(Ordering::Acquire) != EVICTED),
            "admission waited for the evicted connection's thread to let go"
        );
        drop(entries);
        assert!(first_thread.join().unwrap(), "the longest idle is evicted");
        let mut buf = [0u8; 1];
        assert_eq!(
            first_client.read(&mut buf).unwrap(),
            0,
            "evicted socket is closed"
        );
    }

    #[test]
    fn an_evicted_connection_that_never_lets_go_means_a_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = registry(1);
        let (_client, first) = pair(&listener);
        // Idle, but no thread to notice the eviction and give the place up.
        let stuck = admitted(&registry, &first);
        stuck.idle();
        let (mut refused_client, refused) = pair(&listener);
        let asked = Instant::now();
        assert!(matches!(registry.admit(&refused), Admission::Refused));
        assert!(asked.elapsed() >= RELEASE_WAIT);
        let mut answer = String::new();
        refused_client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{}", answer);
    }

    #[test]
    fn a_registry_of_busy_connections_refuses_with_503() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = registry(1);
        let (_client, first) = pair(&listener);
        let mut ticket = admitted(&registry, &first);
        assert!(ticket.busy());
        let (mut refused_client, refused) = pair(&listener);
        assert!(matches!(registry.admit(&refused), Admission::Refused));
        let mut answer = String::new();
        refused_client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{}", answer);

        drop(ticket);
        let (_client, next) = pair(&listener);
        assert!(matches!(registry.admit(&next), Admission::Admitted(_)));
    }

    #[test]
    fn deadlines_count_down() {
        let deadline = Deadline::default();
        assert_eq!(deadline.remaining(), None);
        deadline.set(Some(Duration::from_secs(60)));
        let left = deadline.remaining().unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        deadline.set(Some(Duration::ZERO));
        assert_eq!(deadline.remaining(), Some(Duration::ZERO));
        deadline.set(None);
        assert_eq!(deadline.remaining(), None);
    }
}
