use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

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
}

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
        };

        let write = RefinedTcpStream {
            stream,
            close_read: false,
            close_write: true,
            deadline: None,
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
        let remaining = self
            .deadline
            .as_ref()
            .and_then(|deadline| deadline.remaining());
        match remaining {
            None => self.stream.read(buf),
            Some(left) if left.is_zero() => Err(timed_out()),
            Some(left) => {
                self.stream.set_read_timeout(Some(left))?;
                // A socket timeout shows as WouldBlock on Unix and TimedOut elsewhere.
                self.stream.read(buf).map_err(|err| match err.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => timed_out(),
                    _ => err,
                })
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
