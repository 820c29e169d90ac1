//! Patched (fluxbase-exporter): the TLS handshake, run on the connection's own thread (never on
//! a thread that handles requests) and bounded by the header timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::util::refined_tcp_stream::{BoundedSocket, TlsSession};
use crate::util::Deadline;

/// Where a TLS server finds the configuration for each new connection; asked once per
/// handshake, so an embedder can rotate certificates without restarting the server.
pub trait TlsConfigSource: Send + Sync {
    /// The configuration for the next handshake.
    fn server_config(&self) -> Arc<rustls::ServerConfig>;
}

/// Why a connection ended before its handshake completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client sent nothing, or left, before the handshake began.
    NoHandshake,
    /// The handshake did not complete within the header timeout.
    Timeout,
    /// The client spoke plain HTTP; it was answered 400, as Go's net/http answers.
    PlainHttp,
    /// The handshake failed: no protocol version or cipher suite in common, a client
    /// certificate missing or not trusted, a malformed message, or an I/O error.
    Refused,
}

/// What Go's net/http answers a plain HTTP request on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// How long, and how much, the server reads and discards after its plain HTTP answer before
/// closing, so the close does not reset the connection under the answer.
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;

/// Runs the server side of a handshake on `stream` within `timeout` of now. The `deadline`
/// is the connection's (the same one later bounds request heads).
pub(crate) fn handshake(
    stream: Connection,
    deadline: Arc<Deadline>,
    timeout: Option<Duration>,
    config: Arc<rustls::ServerConfig>,
) -> Result<TlsSession, HandshakeFailure> {
    deadline.set(timeout);
    let mut socket = BoundedSocket::new(stream, Some(Arc::clone(&deadline)));
    let failure = |err: std::io::Error| {
        if err.kind() == ErrorKind::TimedOut {
            HandshakeFailure::Timeout
        } else {
            HandshakeFailure::Refused
        }
    };

    // The first byte tells a TLS client from a plain HTTP one (a method's first letter).
    let mut first = [0u8; 1];
    loop {
        match socket.read(&mut first) {
            Ok(0) => return Err(HandshakeFailure::NoHandshake),
            Ok(_) => break,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == ErrorKind::TimedOut => return Err(HandshakeFailure::Timeout),
            Err(_) => return Err(HandshakeFailure::NoHandshake),
        }
    }
    if first[0] != HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            answer_plain_http(&mut socket, &deadline);
            return Err(HandshakeFailure::PlainHttp);
        }
        return Err(HandshakeFailure::Refused);
    }

    let mut conn = rustls::ServerConnection::new(config).map_err(|_| HandshakeFailure::Refused)?;
    conn.read_tls(&mut &first[..]).map_err(failure)?;
    if conn.process_new_packets().is_err() {
        // Sends the alert rustls queued, best effort.
        conn.write_tls(&mut socket).ok();
        return Err(HandshakeFailure::Refused);
    }
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(failure)?;
    }
    // The server's last flight (and TLS 1.3 session tickets) go out now, not with the answer.
    while conn.wants_write() {
        conn.write_tls(&mut socket).map_err(failure)?;
    }
    Ok(rustls::StreamOwned::new(conn, socket))
}

/// Answers 400 in plain text, closes the write side, then discards the client's input for a
/// bounded time before the caller closes the connection.
fn answer_plain_http(socket: &mut BoundedSocket, deadline: &Deadline) {
    if socket.write_all(PLAIN_HTTP_ANSWER).is_err() {
        return;
    }
    socket.shutdown_write();
    deadline.set(Some(LINGER_TIME));
    let mut discard = [0u8; 4096];
    let mut total = 0;
    while total < LINGER_BYTES {
        match socket.read(&mut discard) {
            Ok(0) | Err(_) => break,
            Ok(read) => total += read,
        }
    }
}

impl BoundedSocket {
    fn shutdown_write(&self) {
        self.stream().shutdown(Shutdown::Write).ok();
    }
}
