use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::util::Deadline;

/// Wraps a connection, closing its read or write half when dropped.
///
/// Patched (fluxbase-exporter): the TLS variant is gone (the exporter does not serve TLS), and
/// the read half may carry a [`Deadline`]: every read from the socket is bounded by the time
/// left before it, so a client that sends a request head one byte at a time cannot hold the
/// connection's thread past the deadline.
pub struct RefinedTcpStream {
    stream: Connection,
    close_read: bool,
    close_write: bool,
    deadline: Option<Arc<Deadline>>,
    /// The socket's read timeout as last set (read half only), to skip setting it again.
    read_timeout: Option<Duration>,
}

/// How much longer than the time left a socket's read timeout may be before it is set again.
/// Kept-alive requests each start a new deadline of the same length; re-setting the timeout
/// for each would be a system call per request for nothing.
const TIMEOUT_SLACK: Duration = Duration::from_millis(100);

impl RefinedTcpStream {
    /// Splits a connection into its read half (which obeys `deadline`) and its write half.
    pub(crate) fn new(
        stream: Connection,
        deadline: Option<Arc<Deadline>>,
    ) -> IoResult<(RefinedTcpStream, RefinedTcpStream)> {
        let read = RefinedTcpStream {
            stream: stream.try_clone()?,
            close_read: true,
            close_write: false,
            deadline,
            read_timeout: None,
        };

        let write = RefinedTcpStream {
            stream,
            close_read: false,
            close_write: true,
            deadline: None,
            read_timeout: None,
        };

        Ok((read, write))
    }

    #[inline]
    pub(crate) fn secure(&self) -> bool {
        false
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
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

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
