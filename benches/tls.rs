//! `make bench`: scrapes over TLS with basic auth, the exporter beside node_exporter, both
//! serving one exporter-toolkit web config in the same run: CPU per scrape on kept-alive
//! connections, and CPU per new connection (handshake, one small request, close).

mod common;
#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Proc, series_count};
use harness::Exporter;

const EVENT_LINES: usize = 5_000;
const CLIENTS: usize = 8;
const USER: &str = "prometheus";
const PASSWORD: &str = "bench-password";

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

/// Scrapes per exporter on kept-alive connections.
fn scrapes() -> usize {
    if quick() { 400 } else { 4_000 }
}

/// New connections per exporter.
fn connections() -> usize {
    if quick() { 200 } else { 1_000 }
}

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| panic!("{program} (make bench installs it): {err}"));
    assert!(
        output.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An https client trusting `cert`, sending basic auth; kept-alive unless told otherwise.
fn agent(cert: &Path) -> ureq::Agent {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let roots: Vec<_> = ureq::tls::parse_pem(&fs::read(cert).expect("certificate"))
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    let config = ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(roots)))
                .build(),
        )
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build();
    ureq::Agent::new_with_config(config)
}

fn authorization() -> String {
    fluxbase_exporter::http::basic_auth::header(USER, PASSWORD)
}

/// `total` GETs of `url` spread over `CLIENTS` threads, each with its own agent; `fresh` sends
/// `Connection: close` so that every request is a new connection (and handshake). The count
/// done and the time taken.
fn hammer(cert: &Path, url: &str, total: usize, fresh: bool) -> (usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = Arc::clone(&next);
            let agent = agent(cert);
            let url = url.to_owned();
            thread::spawn(move || {
                let authorization = authorization();
                let mut done = 0;
                while next.fetch_add(1, Ordering::Relaxed) < total
                    && started.elapsed() < Duration::from_secs(600)
                {
                    let mut request = agent.get(&url).header("Authorization", &authorization);
                    if fresh {
                        request = request.header("Connection", "close");
                    }
                    let mut response = request.call().expect("an answer");
                    assert_eq!(response.status().as_u16(), 200);
                    response.body_mut().read_to_vec().expect("a body");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let done = workers.into_iter().map(|w| w.join().expect("client")).sum();
    (done, started.elapsed())
}

fn main() {
    let dir = common::scratch_dir("bench-tls");
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
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
        &dir,
    );
    let hash = run("htpasswd", &["-nbB", "", PASSWORD], &dir);
    let hash = hash.trim().trim_start_matches(':');
    let config = dir.join("web.yml");
    fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  {USER}: {hash}\n"
        ),
    )
    .expect("web config");
    let cert = dir.join("server.pem");
    let log = dir.join("fluxbase.log");
    common::write_traffic(&log, EVENT_LINES);
    let storage = dir.join("storage");
    fs::create_dir_all(&storage).expect("storage root");

    let ours = Exporter::start(&[
        "--web.config.file",
        config.to_str().expect("UTF-8"),
        "--events.file",
        log.to_str().expect("UTF-8"),
        "--events.from-start",
        "--storage.path",
        storage.to_str().expect("UTF-8"),
    ]);
    let node_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut node = Command::new("prometheus-node-exporter")
        .args([
            format!("--web.config.file={}", config.display()),
            format!("--web.listen-address={node_addr}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter (make bench installs it)");
    let ours_url = |path: &str| format!("https://localhost:{}{path}", ours.addr.port());
    let node_url = |path: &str| format!("https://localhost:{}{path}", node_addr.port());

    // Ready: ours has read its events; node_exporter answers.
    let client = agent(&cert);
    let get = |url: &str| -> Option<String> {
        client
            .get(url)
            .header("Authorization", &authorization())
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ours_ready = get(&ours_url("/metrics")).is_some_and(|text| {
            text.lines().any(|line| {
                line.starts_with("fluxbase_exporter_events_lines_total{")
                    && line.ends_with(&format!(" {EVENT_LINES}"))
            })
        });
        if ours_ready && get(&node_url("/metrics")).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exporters never became ready"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let ours_series = series_count(&get(&ours_url("/metrics")).unwrap_or_default());
    let node_series = series_count(&get(&node_url("/metrics")).unwrap_or_default());

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Scrapes over TLS with basic auth: fluxbase-exporter beside node_exporter\n\n\
         Both serve one exporter-toolkit web config (`tls_server_config` with a P-256 certificate, \
         `basic_auth_users` with a bcrypt cost-10 hash) in the same run. The exporter reads \
         {EVENT_LINES} Fluxbase log lines and an empty storage root, no database: {ours_series} \
         series; node_exporter with its default collectors: {node_series} series. Clients: \
         {CLIENTS} threads of ureq (rustls), asking for gzip as Prometheus does, with basic auth \
         (both servers cache verified credentials, so bcrypt runs once). CPU is the server \
         process's user + system time (10 ms ticks).\n\n\
         | | fluxbase-exporter | node_exporter | ratio (node_exporter / ours) |\n|---|---|---|---|"
    );
    let node_proc = Proc(node.id());
    let ours_proc = Proc(ours.pid());
    let measure = |path: &str, total: usize, fresh: bool| -> [f64; 2] {
        let mut per = [0.0; 2];
        for (index, (proc, url)) in [
            (&ours_proc, ours_url(path)),
            (
                &node_proc,
                node_url(if path == "/livez" { "/" } else { path }),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let before = proc.cpu_seconds();
            let (done, took) = hammer(&cert, &url, total, fresh);
            let cpu = proc.cpu_seconds() - before;
            eprintln!("{url}: {done} requests in {took:?}, {cpu:.2} s CPU");
            per[index] = 1000.0 * cpu / done as f64;
        }
        per
    };
    let kept = measure("/metrics", scrapes(), false);
    let _ = writeln!(
        out,
        "| CPU per scrape, kept-alive TLS connections, {} scrapes (ms) | {:.4} | {:.4} | **{:.0}×** |",
        scrapes(),
        kept[0],
        kept[1],
        kept[1] / kept[0]
    );
    let fresh = measure("/livez", connections(), true);
    let _ = writeln!(
        out,
        "| CPU per new connection: TLS 1.3 handshake, one small request (ours `/livez`, node_exporter `/`), close; {} connections (ms) | {:.4} | {:.4} | **{:.0}×** |",
        connections(),
        fresh[0],
        fresh[1],
        fresh[1] / fresh[0]
    );
    let _ = writeln!(
        out,
        "\nGoal: CPU per scrape over TLS at least 20 times below node_exporter's — **{:.0}×** ({}).",
        kept[1] / kept[0],
        if kept[1] / kept[0] >= 20.0 {
            "met"
        } else {
            "not met"
        }
    );
    print!("{out}");
    let _ = node.kill();
    let _ = node.wait();
    let _ = fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
