use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::{Shutdown, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{HTTPVersion, Method};
use crate::connection::Connection;
use crate::util::RefinedTcpStream;
use crate::util::{ConnectionEvent, ConnectionLimits, Deadline, Ticket};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// Patched (fluxbase-exporter): after answering an error itself, or a request whose body it did
/// not read, the server reads and discards what the client still sends, up to these bounds,
/// before closing: closing a socket with unread input sends a reset, which can destroy the
/// answer before the client reads it.
const LINGER_BYTES: usize = 2 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // Patched (fluxbase-exporter) from here on.
    /// The connection's place in the server's registry, and through it the limits.
    ticket: Option<Ticket>,
    /// Bounds the reads of the socket's read half.
    deadline: Arc<Deadline>,
    /// Another handle to the socket, to close its write half before lingering.
    control: Option<Connection>,
    /// Set when the last request left input unread: linger before closing.
    linger_before_close: bool,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    // Patched (fluxbase-exporter): the error itself is not used; the connection just ends.
    ReadIoError(#[allow(dead_code)] IoError),
    // Patched (fluxbase-exporter) from here on.
    /// No request started: the client closed, or sent nothing within the idle timeout.
    Idle {
        timed_out: bool,
    },
    /// The head did not arrive within the header timeout after its first byte.
    SlowHead,
    RequestLineTooLong,
    HeadersTooLarge(HTTPVersion),
    /// The registry closed this connection to make room while the head was arriving.
    Evicted,
}

/// Why a line could not be read.
enum LineError {
    Io(IoError),
    TooLong,
    NotAscii,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    ///
    /// Patched (fluxbase-exporter): `ticket` registers the connection with its server (and
    /// brings the server's limits), `deadline` is the one the read half obeys, `control` a
    /// spare handle to the socket.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        ticket: Option<Ticket>,
        deadline: Arc<Deadline>,
        control: Option<Connection>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        // Patched (fluxbase-exporter): `next_reader` and `next_writer` give their reader or writer
        // without an `Option` to unwrap.
        let first_header = source.next_reader();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            ticket,
            deadline,
            control,
            linger_before_close: false,
        }
    }

    fn limits(&self) -> ConnectionLimits {
        match &self.ticket {
            Some(ticket) => ticket.registry().limits().clone(),
            None => ConnectionLimits::default(),
        }
    }

    fn notify(&self, event: ConnectionEvent) {
        if let Some(ticket) = &self.ticket {
            ticket.registry().notify(event);
        }
    }

    /// Reads one byte of the head; `None` at end of stream.
    fn read_byte(&mut self) -> IoResult<Option<u8>> {
        // One byte at a time from the buffered reader underneath, as upstream read heads.
        let mut byte = [0u8; 1];
        loop {
            match self.next_header_source.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads the rest of a line that began with `first` (if given) up to `CRLF`, which is
    /// dropped. Patched (fluxbase-exporter): at most `max` bytes, and non-ASCII is its own
    /// error rather than an I/O error that closed the connection without an answer.
    fn read_line(&mut self, first: Option<u8>, max: usize) -> Result<AsciiString, LineError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;
        if let Some(byte) = first {
            buf.push(byte);
            prev_byte_was_cr = byte == b'\r';
        }

        loop {
            let byte = match self.read_byte().map_err(LineError::Io)? {
                Some(byte) => byte,
                None => {
                    let eof = IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF");
                    return Err(LineError::Io(eof));
                }
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                if buf.len() > max {
                    return Err(LineError::TooLong);
                }
                return AsciiString::from_ascii(buf).map_err(|_| LineError::NotAscii);
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
            // One byte of slack for a '\r' that the next byte may turn into a line end.
            if buf.len() > max.saturating_add(1) {
                return Err(LineError::TooLong);
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let limits = self.limits();

        // Patched (fluxbase-exporter): wait for the previous request to be answered (its
        // answer written, not only its body read: a client that pipelines and never reads must
        // not queue requests without end, nor be evicted while its answer is in flight), then
        // wait at most the idle timeout for the first byte of the next one, evictable
        // meanwhile, and at most the header timeout from there to the end of the head.
        self.wait_for_answers();
        self.next_header_source.wait_for_turn();
        if let Some(ticket) = &self.ticket {
            ticket.idle();
        }
        self.deadline.set(limits.idle_timeout);
        let first = match self.read_byte() {
            Ok(Some(byte)) => byte,
            Ok(None) => return Err(ReadError::Idle { timed_out: false }),
            Err(err) if err.kind() == ErrorKind::TimedOut => {
                return Err(ReadError::Idle { timed_out: true })
            }
            Err(_) => return Err(ReadError::Idle { timed_out: false }),
        };
        self.deadline.set(limits.header_timeout);

        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = match self.read_line(Some(first), limits.max_request_line_bytes) {
                    Ok(line) => line,
                    Err(LineError::TooLong) => return Err(ReadError::RequestLineTooLong),
                    Err(LineError::NotAscii) => return Err(ReadError::WrongRequestLine),
                    Err(LineError::Io(err)) => return Err(head_error(err)),
                };

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                let mut budget = limits.max_header_bytes;
                loop {
                    let line = match self.read_line(None, budget) {
                        Ok(line) => line,
                        Err(LineError::TooLong) => return Err(ReadError::HeadersTooLarge(version)),
                        Err(LineError::NotAscii) => return Err(ReadError::WrongHeader(version)),
                        Err(LineError::Io(err)) => return Err(head_error(err)),
                    };

                    if line.is_empty() {
                        break;
                    };
                    budget = budget.saturating_sub(line.len() + 2);
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        // Patched (fluxbase-exporter): `next_writer` and `next_reader`, nothing to unwrap.
        let writer = self.sink.next_writer();

        // follow-up for next potential request
        let mut data_source = self.source.next_reader();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            // Patched (fluxbase-exporter): a client gone before `peer_addr` has no address,
            // not a panic (upstream unwrapped).
            self.remote_addr.as_ref().ok().copied().flatten(),
            data_source,
            writer,
            limits.max_body_bytes,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => head_error(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        if let Some(ticket) = &mut self.ticket {
            if !ticket.busy() {
                return Err(ReadError::Evicted);
            }
        }

        // return the request
        Ok(request)
    }

    /// Answers `status` on behalf of the server (the connection closes after it).
    fn answer(&mut self, status: u16, version: HTTPVersion) {
        use crate::{Response, StatusCode};

        self.notify(ConnectionEvent::Rejected(StatusCode(status)));
        let mut writer = self.sink.next_writer();
        let response = Response::new_empty(StatusCode(status));
        // Flushed here: the linger that follows closes the socket's write half.
        if response
            .raw_print(&mut writer, version, &[], false, None)
            .is_ok()
        {
            writer.flush().ok();
        }
    }

    /// Patched (fluxbase-exporter): closes the write half once the last answer is out, then
    /// reads and discards the client's remaining input for a bounded time, so that the close
    /// does not reset the connection under the answer.
    /// Blocks until every answer given so far is written: a writer placed after them all
    /// flushes only once they are done (dropping it hands the turn on to the next answer).
    fn wait_for_answers(&mut self) {
        self.sink.next_writer().flush().ok();
    }

    fn linger(&mut self) {
        self.wait_for_answers();
        if let Some(control) = &self.control {
            control.shutdown(Shutdown::Write).ok();
        }
        self.deadline.set(Some(LINGER_TIME));
        let mut discard = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match self.next_header_source.read(&mut discard) {
                Ok(0) | Err(_) => break,
                Ok(read) => total += read,
            }
        }
    }
}

/// A read error while reading a head: a timeout there means a slow client (408).
fn head_error(err: IoError) -> ReadError {
    if err.kind() == ErrorKind::TimedOut {
        ReadError::SlowHead
    } else {
        ReadError::ReadIoError(err)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            if self.linger_before_close {
                self.linger_before_close = false;
                self.linger();
            }
            return None;
        }

        {
            // Patched (fluxbase-exporter): every answer the server gives itself closes the
            // connection after a linger (we don't know where the next request would start).
            let (status, version) = match self.read() {
                Err(ReadError::WrongRequestLine) => (400, HTTPVersion(1, 1)),
                Err(ReadError::WrongHeader(ver)) => (400, ver),
                Err(ReadError::RequestLineTooLong) => (414, HTTPVersion(1, 1)),
                Err(ReadError::HeadersTooLarge(ver)) => (431, ver),
                Err(ReadError::SlowHead) => (408, HTTPVersion(1, 1)),
                Err(ReadError::ExpectationFailed(ver)) => (417, ver),
                Err(ReadError::Idle { timed_out }) => {
                    if timed_out {
                        self.notify(ConnectionEvent::IdleTimeout);
                    }
                    return None;
                }
                Err(ReadError::Evicted) | Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => {
                    // checking HTTP version
                    // Patched (fluxbase-exporter): answered through the request's own writer
                    // (upstream wrote through a later writer, which waited forever for the
                    // request's), then the connection closes.
                    if *rq.http_version() > (1, 1) || *rq.http_version() < (1, 0) {
                        self.notify(ConnectionEvent::Rejected(StatusCode(505)));
                        let response = Response::from_string(
                            "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                        )
                        .with_status_code(StatusCode(505));
                        let mut writer = rq.into_writer();
                        if response
                            .raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None)
                            .is_ok()
                        {
                            writer.flush().ok();
                        }
                        drop(writer);
                        self.linger();
                        return None;
                    }

                    // updating the status of the connection
                    let connection_header = rq
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Connection"))
                        .map(|h| h.value.as_str());

                    let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

                    match lowercase {
                        Some(ref val) if val.contains("close") => self.no_more_requests = true,
                        Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                        Some(ref val)
                            if !val.contains("keep-alive")
                                && *rq.http_version() == HTTPVersion(1, 0) =>
                        {
                            self.no_more_requests = true
                        }
                        None if *rq.http_version() == HTTPVersion(1, 0) => {
                            self.no_more_requests = true
                        }
                        _ => (),
                    };

                    // Patched (fluxbase-exporter): a body the server did not read leaves the
                    // stream at an unknown place; answer this request, then close.
                    if rq.body_unread() {
                        self.no_more_requests = true;
                        self.linger_before_close = true;
                    }

                    // returning the request
                    return Some(rq);
                }
            };
            self.answer(status, version);
            self.linger();
            None
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
