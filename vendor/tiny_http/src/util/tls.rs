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

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::TryFrom;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// A self-signed certificate for `localhost` (test data, made with openssl).
    const CERT: &str = include_str!("testdata/localhost.pem");
    const KEY: &str = include_str!("testdata/localhost.key");

    fn server_config() -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }

    /// A connected pair: the client's end and the server's accepted end.
    fn pair() -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Connection::from(server))
    }

    fn serve(
        server: Connection,
        timeout: Duration,
    ) -> std::thread::JoinHandle<Result<TlsSession, HandshakeFailure>> {
        std::thread::spawn(move || {
            handshake(
                server,
                Arc::new(Deadline::default()),
                Some(timeout),
                server_config(),
            )
        })
    }

    #[test]
    fn plain_http_gets_gos_answer() {
        let (mut client, server) = pair();
        let handshake = serve(server, Duration::from_secs(5));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, PLAIN_HTTP_ANSWER);
        assert_eq!(
            handshake.join().unwrap().err(),
            Some(HandshakeFailure::PlainHttp)
        );
    }

    #[test]
    fn a_handshake_that_never_finishes_ends_at_the_timeout() {
        let (mut client, server) = pair();
        let started = Instant::now();
        let handshake = serve(server, Duration::from_millis(300));
        // A record header promising a ClientHello that never comes.
        client.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
        assert_eq!(
            handshake.join().unwrap().err(),
            Some(HandshakeFailure::Timeout)
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{:?}",
            took
        );
        // Nothing at all, and garbage, end too.
        let (client, server) = pair();
        let handshake = serve(server, Duration::from_millis(200));
        assert_eq!(
            handshake.join().unwrap().err(),
            Some(HandshakeFailure::Timeout)
        );
        drop(client);
        let (mut client, server) = pair();
        let handshake = serve(server, Duration::from_secs(5));
        client.write_all(&[0x00, 0x01, 0x02]).unwrap();
        assert_eq!(
            handshake.join().unwrap().err(),
            Some(HandshakeFailure::Refused)
        );
    }

    #[test]
    fn a_real_client_completes_the_handshake_and_exchanges_data() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let (client, server) = pair();
        let handshake = serve(server, Duration::from_secs(5));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(CERT.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connection = rustls::ClientConnection::new(
            Arc::new(config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut client = rustls::StreamOwned::new(connection, client);
        client.write_all(b"ping").unwrap();
        client.flush().unwrap();
        let mut session = handshake.join().unwrap().unwrap();
        let mut got = [0u8; 4];
        session.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        session.write_all(b"pong").unwrap();
        session.flush().unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }
}
