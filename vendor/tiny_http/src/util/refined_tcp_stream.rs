use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::connection::Connection;
use crate::util::Deadline;

/// Patched (fluxbase-exporter): a TLS session over a bounded socket, shared by the read and
/// write halves of one connection.
pub(crate) type TlsSession = rustls::StreamOwned<rustls::ServerConnection, BoundedSocket>;

/// Wraps a connection, closing its read or write half when dropped.
///
/// Patched (fluxbase-exporter): the read half may carry a [`Deadline`]: every read from the
/// socket is bounded by the time left before it, so a client that sends a request head one
/// byte at a time cannot hold the connection's thread past the deadline. Upstream's TLS
/// variants (openssl, rustls) are replaced by one rustls variant whose handshake the
/// connection thread has already done (`util/tls.rs`); both halves share the session behind a
/// mutex. The connection thread reads the next head only once every answer is written
/// (`ClientConnection::wait_for_answers`), so the halves never wait on each other's lock
/// while blocked on the socket.
pub struct RefinedTcpStream {
    io: Transport,
    close_read: bool,
    close_write: bool,
}

/// Patched (fluxbase-exporter): what the bytes go through.
enum Transport {
    Plain(BoundedSocket),
    /// The session, and another handle to the socket it owns (to shut a half down and to ask
    /// the peer's address without taking the session's lock).
    Tls(Arc<Mutex<TlsSession>>, Connection),
}

/// Patched (fluxbase-exporter): a socket whose reads obey a [`Deadline`].
pub(crate) struct BoundedSocket {
    stream: Connection,
    deadline: Option<Arc<Deadline>>,
    /// The socket's read timeout as last set, to skip setting it again.
    read_timeout: Option<Duration>,
}

/// How much longer than the time left a socket's read timeout may be before it is set again.
/// Kept-alive requests each start a new deadline of the same length; re-setting the timeout
/// for each would be a system call per request for nothing.
const TIMEOUT_SLACK: Duration = Duration::from_millis(100);

impl BoundedSocket {
    pub(crate) fn new(stream: Connection, deadline: Option<Arc<Deadline>>) -> BoundedSocket {
        BoundedSocket {
            stream,
            deadline,
            read_timeout: None,
        }
    }

    pub(crate) fn stream(&self) -> &Connection {
        &self.stream
    }
}

impl RefinedTcpStream {
    /// Splits a connection into its read half (which obeys `deadline`) and its write half.
    pub(crate) fn new(
        stream: Connection,
        deadline: Option<Arc<Deadline>>,
    ) -> IoResult<(RefinedTcpStream, RefinedTcpStream)> {
        let read = RefinedTcpStream {
            io: Transport::Plain(BoundedSocket::new(stream.try_clone()?, deadline)),
            close_read: true,
            close_write: false,
        };

        let write = RefinedTcpStream {
            io: Transport::Plain(BoundedSocket::new(stream, None)),
            close_read: false,
            close_write: true,
        };

        Ok((read, write))
    }

    /// Patched (fluxbase-exporter): the two halves of a connection whose TLS handshake is
    /// done; `control` is another handle to its socket.
    pub(crate) fn new_tls(
        session: TlsSession,
        control: Connection,
    ) -> IoResult<(RefinedTcpStream, RefinedTcpStream)> {
        let session = Arc::new(Mutex::new(session));
        let read = RefinedTcpStream {
            io: Transport::Tls(Arc::clone(&session), control.try_clone()?),
            close_read: true,
            close_write: false,
        };
        let write = RefinedTcpStream {
            io: Transport::Tls(session, control),
            close_read: false,
            close_write: true,
        };
        Ok((read, write))
    }

    #[inline]
    pub(crate) fn secure(&self) -> bool {
        matches!(self.io, Transport::Tls(..))
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match &mut self.io {
            Transport::Plain(socket) => socket.stream.peer_addr(),
            Transport::Tls(_, control) => control.peer_addr(),
        }
    }

    /// The socket underneath, for what is not reading or writing.
    fn socket(&self) -> &Connection {
        match &self.io {
            Transport::Plain(socket) => socket.stream(),
            Transport::Tls(_, control) => control,
        }
    }
}

/// Patched (fluxbase-exporter): a poisoned lock is still usable (a panic elsewhere must not
/// take the connection's other half with it; the session's state is rustls's to keep sound).
fn lock(session: &Mutex<TlsSession>) -> MutexGuard<'_, TlsSession> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.socket().shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            // Patched (fluxbase-exporter): a TLS peer is told the stream ends (close_notify),
            // so that it can tell the end from a truncation.
            if let Transport::Tls(session, _) = &self.io {
                let mut session = lock(session);
                session.conn.send_close_notify();
                let session = &mut *session;
                while session.conn.wants_write() {
                    if session.conn.write_tls(&mut session.sock).is_err() {
                        break;
                    }
                }
            }
            self.socket().shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match &mut self.io {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(session, _) => lock(session).read(buf),
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match &mut self.io {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(session, _) => lock(session).write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match &mut self.io {
            Transport::Plain(socket) => socket.flush(),
            Transport::Tls(session, _) => lock(session).flush(),
        }
    }
}

impl Read for BoundedSocket {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            let remaining = self
                .deadline
                .as_ref()
                .and_then(|deadline| deadline.remaining());
            let left = match remaining {
                None => return self.stream.read(buf),
                Some(left) if left.is_zero() => return Err(timed_out()),
                Some(left) => left,
            };
            // A timeout longer than the time left (beyond the slack) would let a read overrun
            // the deadline; one shorter only costs a wake-up, handled below.
            let set = self
                .read_timeout
                .is_none_or(|current| current > left + TIMEOUT_SLACK);
            if set {
                self.stream.set_read_timeout(Some(left))?;
                self.read_timeout = Some(left);
            }
            // A socket timeout shows as WouldBlock on Unix and TimedOut elsewhere.
            match self.stream.read(buf) {
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // Timed out early by a shorter timeout set for an earlier deadline: set
                    // the right one and go on waiting.
                    if self.deadline.as_ref().and_then(|d| d.remaining()) > Some(TIMEOUT_SLACK)
                        && !set
                    {
                        self.read_timeout = None;
                        continue;
                    }
                    return Err(timed_out());
                }
                other => return other,
            }
        }
    }
}

fn timed_out() -> IoError {
    IoError::new(
        ErrorKind::TimedOut,
        "the client took too long to send a request",
    )
}

impl Write for BoundedSocket {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
