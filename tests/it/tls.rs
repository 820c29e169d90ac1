//! `--web.config.file` (TLS, basic auth, headers), the probes behind it, and
//! `--web.systemd-socket`: certificates made by openssl, hashes by htpasswd, real curl,
//! openssl s_client, node_exporter and Prometheus.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Exporter, TempDir, command, metric};

/// Runs a tool and returns its standard output; fails the test with its error output.
fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{program} is needed (scripts/ensure-test-tools): {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and a client
/// certificate it signed, all made by openssl in `dir`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
            ],
            dir,
        );
        let pki = Pki {
            dir: dir.to_owned(),
        };
        pki.issue("server", "/CN=localhost", "serverAuth");
        pki.issue("client", "/CN=prometheus", "clientAuth");
        pki
    }

    /// A new key and certificate `{name}.key`, `{name}.pem`, signed by the CA.
    fn issue(&self, name: &str, subject: &str, usage: &str) {
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                subject,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                &format!("extendedKeyUsage={usage}"),
            ],
            &self.dir,
        );
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }
}

/// A bcrypt hash of `password` made by htpasswd (cost 10, htpasswd's default).
fn htpasswd(password: &str) -> String {
    let line = run("htpasswd", &["-nbB", "", password], Path::new("."));
    line.trim().trim_start_matches(':').to_owned()
}

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse";

/// A web config for the PKI in `dir`, with basic auth, a header and `extra` TLS lines.
fn web_config(dir: &Path, hash: &str, extra: &str) -> PathBuf {
    let path = dir.join("web.yml");
    fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra}\
             basic_auth_users:\n  {USER}: {hash}\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    )
    .unwrap();
    path
}

/// An HTTPS client trusting the test CA, with the client certificate when `client_cert`.
fn agent(pki: &Pki, client_cert: bool) -> ureq::Agent {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
    let pem = |file: &str| fs::read(pki.dir.join(file)).unwrap();
    let certificates = |bytes: &[u8]| -> Vec<ureq::tls::Certificate<'static>> {
        ureq::tls::parse_pem(bytes)
            .filter_map(|item| match item.unwrap() {
                PemItem::Certificate(cert) => Some(cert),
                _ => None,
            })
            .collect()
    };
    let mut tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(certificates(&pem("ca.pem")))));
    if client_cert {
        let key = ureq::tls::parse_pem(&pem("client.key"))
            .find_map(|item| match item.unwrap() {
                PemItem::PrivateKey(key) => Some(key),
                _ => None,
            })
            .unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(
            &certificates(&pem("client.pem")),
            key,
        )));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(DEADLINE))
        .http_status_as_error(false)
        .proxy(None)
        .build();
    ureq::Agent::new_with_config(config)
}

/// `Authorization: Basic ...` for `user:password`.
fn basic(user: &str, password: &str) -> String {
    fluxbase_exporter::http::basic_auth::header(user, password)
}

/// Status, `WWW-Authenticate`, `X-Frame-Options` and body of `GET url`.
fn get(
    agent: &ureq::Agent,
    url: &str,
    authorizations: &[&str],
) -> Result<(u16, Option<String>, Option<String>, String), ureq::Error> {
    let mut request = agent.get(url);
    for authorization in authorizations {
        request = request.header("Authorization", *authorization);
    }
    let mut response = request.call()?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (challenge, frame) = (header("WWW-Authenticate"), header("X-Frame-Options"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string()?;
    Ok((status, challenge, frame, body))
}

fn url(exporter: &Exporter, path: &str) -> String {
    format!("https://localhost:{}{path}", exporter.addr.port())
}

#[test]
fn tls_with_basic_auth_serves_refuses_and_answers_plain_http_with_400() {
    let dir = TempDir::new("tls");
    let pki = Pki::new(&dir.path);
    let config = web_config(&dir.path, &htpasswd(PASSWORD), "");
    let exporter = Exporter::start_with_env(
        &["--web.config.file", config.to_str().unwrap()],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "bearer-secret")],
    );
    let agent = agent(&pki, false);
    let good = basic(USER, PASSWORD);

    let (status, _, frame, body) = get(&agent, &url(&exporter, "/livez"), &[&good]).unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(frame.as_deref(), Some("deny"));
    // A second, cached verification answers too.
    let (status, ..) = get(&agent, &url(&exporter, "/metrics"), &[&good]).unwrap();
    assert_eq!(status, 200);

    // Every endpoint needs the password: none, a wrong one, an unknown user.
    for path in [
        "/livez",
        "/metrics",
        "/health",
        "/api/v1/monitoring/health",
        "/nope",
    ] {
        for authorizations in [
            vec![],
            vec![basic(USER, "wrong")],
            vec![basic("nobody", PASSWORD)],
        ] {
            let authorizations: Vec<&str> = authorizations.iter().map(String::as_str).collect();
            let (status, challenge, frame, body) =
                get(&agent, &url(&exporter, path), &authorizations).unwrap();
            assert_eq!(status, 401, "{path} {authorizations:?}");
            assert_eq!(challenge.as_deref(), Some("Basic"));
            assert_eq!(frame.as_deref(), Some("deny"));
            assert_eq!(body, "Unauthorized\n");
        }
    }

    // The bearer token of the JSON endpoint still applies on top of basic auth.
    let json = url(&exporter, "/api/v1/monitoring/metrics");
    assert_eq!(get(&agent, &json, &[&good]).unwrap().0, 401);
    assert_eq!(get(&agent, &json, &[&good, "Bearer wrong"]).unwrap().0, 401);
    assert_eq!(
        get(&agent, &json, &[&good, "Bearer bearer-secret"])
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        get(&agent, &json, &["Bearer bearer-secret"]).unwrap().0,
        401
    );

    // Plain HTTP to the TLS port: Go's answer, then the connection closes.
    let mut plain = TcpStream::connect(exporter.addr).unwrap();
    plain.set_read_timeout(Some(DEADLINE)).unwrap();
    plain
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    // Counted once the server has let the connection go (after a short linger).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, _, _, metrics) = get(&agent, &url(&exporter, "/metrics"), &[&good]).unwrap();
        let dropped = metric(
            &metrics,
            "fluxbase_exporter_http_connections_dropped_total{reason=\"tls_handshake\"}",
        );
        if dropped >= Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{dropped:?}");
        thread::sleep(Duration::from_millis(50));
    }

    // The credentials never reach the logs.
    let logs = exporter.logs().join("\n");
    assert!(
        !logs.contains(PASSWORD) && !logs.contains(&good[6..]),
        "{logs}"
    );
}

#[test]
fn the_healthcheck_subcommand_speaks_tls_and_basic_auth_from_its_own_settings() {
    let dir = TempDir::new("tls-probe");
    let pki = Pki::new(&dir.path);
    let config = web_config(
        &dir.path,
        &htpasswd(PASSWORD),
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let password_file = dir.path.join("password");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let listen = exporter.addr.to_string();
    let healthcheck = |env: &[(&str, &str)]| {
        let mut all = vec![
            (
                "FLUXBASE_EXPORTER_WEB_CONFIG_FILE",
                config.to_str().unwrap(),
            ),
            ("FLUXBASE_EXPORTER_WEB_LISTEN_ADDRESS", listen.as_str()),
        ];
        all.extend_from_slice(env);
        let output = command(&["healthcheck"], &all).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    };
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let password = password_file.to_str().unwrap();
    let full = [
        ("FLUXBASE_EXPORTER_HEALTHCHECK_USERNAME", USER),
        ("FLUXBASE_EXPORTER_HEALTHCHECK_PASSWORD_FILE", password),
        ("FLUXBASE_EXPORTER_HEALTHCHECK_TLS_CA_FILE", ca.as_str()),
        ("FLUXBASE_EXPORTER_HEALTHCHECK_TLS_CERT_FILE", cert.as_str()),
        ("FLUXBASE_EXPORTER_HEALTHCHECK_TLS_KEY_FILE", key.as_str()),
    ];
    let (code, line) = healthcheck(&full);
    assert_eq!(code, Some(0), "{line}");
    assert!(line.starts_with("healthy: https://127.0.0.1:"), "{line}");

    // Without the password: 401, said plainly.
    let (code, line) = healthcheck(&full[2..]);
    assert_eq!(code, Some(1));
    assert!(line.contains("answered 401"), "{line}");
    // Without the client certificate: the handshake fails.
    let (code, line) = healthcheck(&full[..3]);
    assert_eq!(code, Some(1));
    assert!(line.starts_with("unhealthy: "), "{line}");
    // Without the CA, the probe trusts only the served certificate itself, which is not
    // self-signed here: refused, never sent the password unverified.
    let (code, line) = healthcheck(&[full[0], full[1], full[3], full[4]]);
    assert_eq!(code, Some(1));
    assert!(line.contains("certificate"), "{line}");
}

#[test]
fn client_certificates_and_tls_versions_are_enforced() {
    let dir = TempDir::new("tls-mtls");
    let pki = Pki::new(&dir.path);
    let config = web_config(
        &dir.path,
        &htpasswd(PASSWORD),
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\n",
    );
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let good = basic(USER, PASSWORD);
    let (status, ..) = get(&agent(&pki, true), &url(&exporter, "/livez"), &[&good]).unwrap();
    assert_eq!(status, 200);
    // No client certificate: no handshake, so no HTTP answer at all.
    assert!(get(&agent(&pki, false), &url(&exporter, "/livez"), &[&good]).is_err());

    let curl = |extra: &[&str]| {
        let mut args = vec![
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "--cacert",
        ];
        let ca = pki.path("ca.pem");
        let cert = pki.path("client.pem");
        let key = pki.path("client.key");
        let target = url(&exporter, "/livez");
        let user = format!("{USER}:{PASSWORD}");
        args.extend_from_slice(&[&ca, "--cert", &cert, "--key", &key, "-u", &user]);
        args.extend_from_slice(extra);
        args.push(&target);
        let output = Command::new("curl").args(&args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    assert_eq!(curl(&["--tlsv1.3"]), (Some(0), "200".to_owned()));
    // TLS 1.2 only: refused with min_version TLS13 (curl exit 35: SSL connect error).
    let (code, status) = curl(&["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(code, Some(35), "{status}");
}

/// The serial number of the certificate `addr` serves, through openssl s_client.
fn served_serial(addr: SocketAddr, pki: &Pki) -> String {
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
            &pki.path("ca.pem"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = client.wait();
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
    let pem = pki.dir.join("served.pem");
    fs::write(&pem, &text[start..end]).unwrap();
    run(
        "openssl",
        &["x509", "-noout", "-serial", "-in", pem.to_str().unwrap()],
        &pki.dir,
    )
    .trim()
    .to_owned()
}

#[test]
fn certificates_rotate_without_a_restart_and_a_broken_file_keeps_the_last_good_one() {
    let dir = TempDir::new("tls-rotate");
    let pki = Pki::new(&dir.path);
    let config = web_config(&dir.path, &htpasswd(PASSWORD), "");
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let before = served_serial(exporter.addr, &pki);

    pki.issue("server", "/CN=localhost", "serverAuth");
    let rotated = run(
        "openssl",
        &["x509", "-noout", "-serial", "-in", "server.pem"],
        &dir.path,
    )
    .trim()
    .to_owned();
    assert_ne!(before, rotated);
    let deadline = Instant::now() + DEADLINE;
    while served_serial(exporter.addr, &pki) != rotated {
        assert!(
            Instant::now() < deadline,
            "still serving {before} after the files were rewritten; logs: {:#?}",
            exporter.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }

    // A file that no longer parses: logged with the key, the last good settings stay.
    fs::write(&config, "tls_server_config:\n  cert_fil: server.pem\n").unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !exporter
        .logs()
        .iter()
        .any(|line| line.contains("cannot reload --web.config.file") && line.contains("cert_fil"))
    {
        assert!(Instant::now() < deadline, "{:#?}", exporter.logs());
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served_serial(exporter.addr, &pki), rotated);
    let good = basic(USER, PASSWORD);
    let (status, ..) = get(&agent(&pki, false), &url(&exporter, "/livez"), &[&good]).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn a_bad_web_config_at_start_up_exits_2_naming_the_key() {
    let dir = TempDir::new("tls-bad");
    Pki::new(&dir.path);
    for (text, named) in [
        ("tls_server_config:\n  cert_fil: server.pem\n", "cert_fil"),
        (
            "tls_server_config:\n  cert_file: server.pem\n",
            "missing one of key or key_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS14\n",
            "tls_server_config.min_version",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            "tls_server_config.cipher_suites",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: ca.key\n",
            "tls_server_config.key_file",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "basic_auth_users.alice",
        ),
        (
            "http_server_config:\n  headers:\n    Server: nginx\n",
            "http_server_config.headers.Server",
        ),
        (
            "tls_server_config:\n  client_auth_type: Sometimes\n",
            "tls_server_config",
        ),
    ] {
        let path = dir.path.join("web.yml");
        fs::write(&path, text).unwrap();
        let output = command(&["--web.config.file", path.to_str().unwrap()], &[])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("fluxbase-exporter: invalid --web.config.file: ")
                && stderr.contains(named),
            "{text}: {stderr}"
        );
    }
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_web_config_serves_node_exporter_and_the_exporter_and_prometheus_scrapes_both() {
    let dir = TempDir::new("tls-prometheus");
    Pki::new(&dir.path);
    let config = web_config(
        &dir.path,
        &htpasswd(PASSWORD),
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let node_port = crate::postgres::free_port();
    let node = KillOnDrop(
        Command::new("/usr/bin/prometheus-node-exporter")
            .args([
                &format!("--web.config.file={}", config.display()),
                &format!("--web.listen-address=127.0.0.1:{node_port}"),
                "--collector.disable-defaults",
                "--collector.time",
                "--collector.loadavg",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter is needed (scripts/ensure-test-tools)"),
    );
    fs::write(dir.path.join("password"), PASSWORD).unwrap();
    let job = |name: &str, port: u16| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: ca.pem\n      \
             cert_file: client.pem\n      key_file: client.key\n    basic_auth:\n      \
             username: {USER}\n      password_file: password\n    static_configs:\n      \
             - targets: ['localhost:{port}']\n"
        )
    };
    let prometheus_config = dir.path.join("prometheus.yml");
    fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
            job("fluxbase-exporter", exporter.addr.port()),
            job("node", node_port)
        ),
    )
    .unwrap();
    let port = crate::postgres::free_port();
    let prometheus = KillOnDrop(
        Command::new("prometheus")
            .args([
                &format!("--config.file={}", prometheus_config.display()),
                &format!("--storage.tsdb.path={}", dir.path.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .current_dir(&dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Prometheus is needed: make test installs Debian's prometheus package"),
    );
    let query = |promql: &str| -> Option<f64> {
        let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut stream = TcpStream::connect(api).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        stream
            .write_all(
                format!(
                    "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_slice(&crate::harness::read_response(&mut stream, true)?.body).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for (job, series) in [
        ("fluxbase-exporter", "fluxbase_exporter_build_info"),
        ("node", "node_time_seconds"),
    ] {
        while query(&format!("up{{job=\"{job}\"}}")) != Some(1.0)
            || query(&format!("count({series}{{job=\"{job}\"}})")) != Some(1.0)
        {
            assert!(
                Instant::now() < deadline,
                "Prometheus never scraped {job} over TLS with basic auth: up={:?}",
                query(&format!("up{{job=\"{job}\"}}"))
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
    drop(prometheus);
    drop(node);
}

/// How many file descriptors this process may open: the flood holds that many sockets.
fn open_files_limit() -> usize {
    fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

fn threads(pid: u32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a Threads line")
}

/// The first bytes of a TLS ClientHello record (type, version, a length of 512), and no more.
const HALF_HANDSHAKE: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];

#[test]
fn idle_tls_connections_and_unfinished_handshakes_neither_grow_threads_nor_hold_workers() {
    const CAP: usize = 64;
    let dir = TempDir::new("tls-hostile");
    let pki = Pki::new(&dir.path);
    let config = web_config(&dir.path, &htpasswd(PASSWORD), "");
    let cap = CAP.to_string();
    // One HTTP worker: if a handshake ran on it, health could not answer.
    let exporter = Exporter::start(&[
        "--web.config.file",
        config.to_str().unwrap(),
        "--web.max-connections",
        &cap,
        "--web.threads",
        "1",
        "--web.header-timeout",
        "2s",
    ]);
    let good = basic(USER, PASSWORD);
    let fresh = |path: &str| {
        let agent = agent(&pki, false);
        let asked = Instant::now();
        let mut request = agent.get(url(&exporter, path));
        request = request
            .header("Authorization", &good)
            .header("Connection", "close");
        let status = request.call().map(|r| r.status().as_u16());
        (status.ok(), asked.elapsed())
    };
    assert_eq!(fresh("/livez").0, Some(200));
    let baseline = threads(exporter.pid());

    // A handshake that never finishes is dropped at the header timeout.
    let mut stuck = TcpStream::connect(exporter.addr).unwrap();
    stuck.set_read_timeout(Some(DEADLINE)).unwrap();
    stuck.write_all(HALF_HANDSHAKE).unwrap();
    let started = Instant::now();
    // Meanwhile the only worker answers.
    let (status, took) = fresh("/livez");
    assert_eq!(status, Some(200));
    assert!(took < Duration::from_secs(2), "{took:?}");
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(6),
        "the unfinished handshake was held {held:?} (header timeout 2s)"
    );

    // 1,000 connections that never start a handshake, and 100 that stop half-way.
    assert!(
        open_files_limit() >= 1400,
        "this test holds 1,100 sockets; raise the open-files limit (ulimit -n)"
    );
    let mut flood = Vec::with_capacity(1100);
    for index in 0..1100 {
        let mut stream = TcpStream::connect_timeout(&exporter.addr, DEADLINE).unwrap();
        if index >= 1000 {
            let _ = stream.write_all(HALF_HANDSHAKE);
        }
        flood.push(stream);
    }
    let mut took = Vec::new();
    for _ in 0..20 {
        let (status, elapsed) = fresh("/health");
        assert!(matches!(status, Some(200 | 503)), "{status:?}");
        took.push(elapsed);
    }
    let during = threads(exporter.pid());
    took.sort();
    // A fresh connection's handshake included; on a shared machine nearly all within 500 ms,
    // none near a hang.
    let quick = took
        .iter()
        .filter(|t| **t < Duration::from_millis(500))
        .count();
    assert!(
        quick >= 18 && took[19] < Duration::from_secs(3),
        "health over fresh TLS connections under the flood: {took:?}"
    );
    assert!(
        during <= baseline + CAP + 8,
        "threads grew from {baseline} to {during} under the flood"
    );
    drop(flood);
}

#[test]
fn socket_activation_serves_on_the_socket_systemd_passes() {
    let dir = TempDir::new("tls-socket");
    let pki = Pki::new(&dir.path);
    let config = web_config(&dir.path, &htpasswd(PASSWORD), "");
    let port = crate::postgres::free_port();
    let child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{port}"),
            crate::harness::BINARY,
            "--web.systemd-socket",
            "--web.config.file",
            config.to_str().unwrap(),
        ])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate is needed (the systemd package)");
    // systemd-socket-activate starts the service on the first connection; this one waits in
    // the socket's backlog until the exporter accepts it.
    let good = basic(USER, PASSWORD);
    let target = format!("https://localhost:{port}/livez");
    let first = {
        let agent = agent(&pki, false);
        let good = good.clone();
        let target = target.clone();
        thread::spawn(move || {
            // Until systemd-socket-activate listens.
            let deadline = Instant::now() + DEADLINE;
            loop {
                let answer = agent.get(&target).header("Authorization", &good).call();
                match answer {
                    Ok(response) => return Some(response.status().as_u16()),
                    Err(_) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => return None,
                }
            }
        })
    };
    let exporter = Exporter::adopt(child);
    assert_eq!(exporter.addr.port(), port);
    assert_eq!(first.join().unwrap(), Some(200));
    let (status, ..) = get(&agent(&pki, false), &target, &[&good]).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn without_systemd_the_socket_flag_exits_with_a_clear_error() {
    let output = command(&["--web.systemd-socket"], &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--web.systemd-socket") && stderr.contains("LISTEN_FDS"),
        "{stderr}"
    );
}

#[test]
fn make_install_puts_the_socket_unit_beside_the_service_and_both_pass_systemd_analyze() {
    let dir = TempDir::new("socket-unit");
    let destdir = dir.path.to_str().unwrap();
    let prefix = dir.path.join("usr");
    let output = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-s",
            "install",
            &format!("DESTDIR={destdir}"),
            "PREFIX=/usr",
            &format!("BINARY={}", crate::harness::BINARY),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let units = prefix.join("lib/systemd/system");
    let socket = fs::read_to_string(units.join("fluxbase-exporter.socket")).unwrap();
    assert!(socket.contains("ListenStream=9745\n") && !socket.contains("@PREFIX@"));
    // Verified as installed under a prefix of their own, with the binary the service names.
    let verify = TempDir::new("socket-verify");
    fs::create_dir_all(verify.path.join("bin")).unwrap();
    fs::copy(
        crate::harness::BINARY,
        verify.path.join("bin/fluxbase-exporter"),
    )
    .unwrap();
    for unit in ["fluxbase-exporter.service", "fluxbase-exporter.socket"] {
        let text = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("systemd")
                .join(unit),
        )
        .unwrap();
        fs::write(
            verify.path.join(unit),
            text.replace("@PREFIX@", verify.path.to_str().unwrap()),
        )
        .unwrap();
    }
    let socket_unit = verify.path.join("fluxbase-exporter.socket");
    let output = Command::new("systemd-analyze")
        .args(["verify", socket_unit.to_str().unwrap()])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_tls_scrape_job_in_deploy_passes_promtool_with_its_files_in_place() {
    let dir = TempDir::new("tls-deploy");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["prometheus-tls.yml", "alerts.yml"] {
        fs::copy(repo.join("deploy").join(file), dir.path.join(file)).unwrap();
    }
    let files = dir.path.join("fluxbase-exporter");
    fs::create_dir_all(&files).unwrap();
    let pki = Pki::new(&files);
    fs::copy(pki.dir.join("ca.pem"), files.join("ca.crt")).unwrap();
    fs::copy(pki.dir.join("client.pem"), files.join("prometheus.crt")).unwrap();
    fs::copy(pki.dir.join("client.key"), files.join("prometheus.key")).unwrap();
    fs::write(files.join("password"), PASSWORD).unwrap();
    let output = Command::new(crate::promtool::promtool())
        .args(["check", "config", "prometheus-tls.yml"])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_watchdog_probe_pings_through_tls_client_certificates_and_basic_auth() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("tls-watchdog");
    let pki = Pki::new(&dir.path);
    let config = web_config(
        &dir.path,
        &htpasswd(PASSWORD),
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let path = dir.path.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let exporter = Exporter::start_with_env(
        &["--web.config.file", config.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("FLUXBASE_EXPORTER_HEALTHCHECK_TLS_CERT_FILE", cert.as_str()),
            ("FLUXBASE_EXPORTER_HEALTHCHECK_TLS_KEY_FILE", key.as_str()),
        ],
    );
    let mut pings = 0;
    let deadline = Instant::now() + DEADLINE;
    let mut buffer = [0u8; 4096];
    while pings < 3 {
        assert!(
            Instant::now() < deadline,
            "no watchdog pings; logs: {:#?}",
            exporter.logs()
        );
        let read = socket.recv(&mut buffer).expect("a notification");
        if &buffer[..read] == b"WATCHDOG=1" {
            pings += 1;
        }
    }
    assert!(
        !exporter
            .logs()
            .iter()
            .any(|line| line.contains("did not answer")),
        "{:#?}",
        exporter.logs()
    );
}
