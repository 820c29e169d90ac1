//! `fluxbase-exporter healthcheck [URL]`: asks a health endpoint, for a container's
//! HEALTHCHECK (a `FROM scratch` image has no curl); and the HTTP client both it and the
//! systemd watchdog probe use (ureq), which speaks TLS and basic auth when
//! `--web.config.file` asks for them.
//!
//! How the probes authenticate: the exporter-toolkit file holds only bcrypt hashes, so the
//! `healthcheck` subcommand takes its own credentials (`--healthcheck.username` and a password
//! file, never a password on the command line), verifies the server with
//! `--healthcheck.tls-ca-file` or, by default, with the certificate the web config serves (a
//! self-signed certificate naming the probed host), and presents `--healthcheck.tls-cert-file`
//! when client certificates are required. The watchdog probe only needs to know that an HTTP
//! worker answers: it sends no credentials, so it can take a 401 (which a worker writes) as
//! an answer, and since it sends no secret it does not verify the server's certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::http::basic_auth;
use crate::http::web_config;

/// How long the check waits for each of connecting, sending and the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What the probes need to reach the server through `--web.config.file`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeSettings {
    pub web_config_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Who is probing: the healthcheck verifies the server and sends credentials; the watchdog
/// does neither (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Healthcheck,
    Watchdog,
}

/// An HTTP(S) client set up for one purpose.
pub struct Probe {
    agent: ureq::Agent,
    authorization: Option<String>,
    /// Whether the server speaks TLS (from the web config).
    pub tls: bool,
}

impl Probe {
    /// Reads the web config and the probe's own files; `Err` says which one is unusable.
    pub fn new(
        settings: &ProbeSettings,
        purpose: Purpose,
        timeout: Duration,
    ) -> Result<Probe, String> {
        let web = match &settings.web_config_file {
            Some(path) => Some(
                web_config::load(path)
                    .map_err(|err| format!("--web.config.file {}: {err}", path.display()))?,
            ),
            None => None,
        };
        let tls_on = web.as_ref().is_some_and(|web| web.tls.is_some());
        let mut tls = TlsConfig::builder().provider(TlsProvider::Rustls);
        match purpose {
            Purpose::Watchdog => tls = tls.disable_verification(true),
            Purpose::Healthcheck => {
                let roots = match (&settings.ca_file, &web) {
                    (Some(path), _) => Some(certificates(
                        &read(path, "--healthcheck.tls-ca-file")?,
                        "--healthcheck.tls-ca-file",
                    )?),
                    (None, Some(web)) if web.tls.is_some() => Some(certificates(
                        &web.certificate_pem,
                        "--web.config.file certificate",
                    )?),
                    _ => None,
                };
                if let Some(roots) = roots {
                    tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
                }
            }
        }
        match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certificates(
                    &read(cert, "--healthcheck.tls-cert-file")?,
                    "--healthcheck.tls-cert-file",
                )?;
                let key = private_key(&read(key, "--healthcheck.tls-key-file")?)?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => {
                return Err(
                    "--healthcheck.tls-cert-file and --healthcheck.tls-key-file go together"
                        .to_owned(),
                );
            }
        }
        let authorization = match (purpose, &settings.username) {
            (Purpose::Healthcheck, Some(user)) => {
                let Some(path) = &settings.password_file else {
                    return Err(
                        "--healthcheck.username needs --healthcheck.password-file".to_owned()
                    );
                };
                let password = String::from_utf8(read(path, "--healthcheck.password-file")?)
                    .map_err(|_| {
                        format!(
                            "--healthcheck.password-file {} is not UTF-8",
                            path.display()
                        )
                    })?;
                let password = password.strip_suffix('\n').unwrap_or(&password);
                let password = password.strip_suffix('\r').unwrap_or(password);
                Some(basic_auth::header(user, password))
            }
            _ => None,
        };
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build();
        Ok(Probe {
            agent: ureq::Agent::new_with_config(config),
            authorization,
            tls: tls_on,
        })
    }

    /// The status code of `GET url`.
    pub fn status(&self, url: &str) -> Result<u16, String> {
        let mut request = self.agent.get(url).header("Connection", "close");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        match request.call() {
            Ok(response) => Ok(response.status().as_u16()),
            Err(err) => Err(describe(url, &err)),
        }
    }
}

/// One line for a failed request; never the credentials (ureq's errors do not carry headers).
fn describe(url: &str, err: &ureq::Error) -> String {
    let mut line = match err {
        ureq::Error::Io(io) => format!("cannot connect to {}: {io}", authority(url)),
        ureq::Error::ConnectionFailed => format!("cannot connect to {}", authority(url)),
        ureq::Error::Timeout(_) => format!("no answer from {} within the timeout", authority(url)),
        other => format!("{}: {other}", authority(url)),
    };
    // webpki's name for a self-signed certificate made with openssl's defaults (CA:TRUE)
    // trusted as a server's own certificate.
    if line.contains("CaUsedAsEndEntity") {
        line.push_str(
            " (the certificate says CA:TRUE: make it with basicConstraints=critical,CA:FALSE, or set --healthcheck.tls-ca-file)",
        );
    }
    line
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("{setting}: cannot read {}: {err}", path.display()))
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<Certificate<'static>>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let Ok(PemItem::Certificate(certificate)) = item {
            certificates.push(certificate);
        }
    }
    if certificates.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    Ok(certificates)
}

fn private_key(pem: &[u8]) -> Result<PrivateKey<'static>, String> {
    ureq::tls::parse_pem(pem)
        .find_map(|item| match item {
            Ok(PemItem::PrivateKey(key)) => Some(key),
            _ => None,
        })
        .ok_or_else(|| "--healthcheck.tls-key-file holds no PEM private key".to_owned())
}

/// Whether `url` answered 2xx within the timeout, and one line saying what happened.
pub fn check(url: &str, settings: &ProbeSettings) -> (bool, String) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return (
            false,
            format!("unhealthy: {url:?} is not an http:// or https:// URL"),
        );
    }
    let outcome =
        Probe::new(settings, Purpose::Healthcheck, TIMEOUT).and_then(|probe| probe.status(url));
    match outcome {
        Ok(status) if (200..300).contains(&status) => {
            (true, format!("healthy: {url} answered {status}"))
        }
        Ok(401) => (
            false,
            format!(
                "unhealthy: {url} answered 401 (basic auth: set --healthcheck.username and --healthcheck.password-file)"
            ),
        ),
        Ok(status) => (false, format!("unhealthy: {url} answered {status}")),
        Err(why) => (false, format!("unhealthy: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_asked() {
        let (healthy, line) = check("ftp://x/", &ProbeSettings::default());
        assert!(!healthy);
        assert!(line.contains("is not an http:// or https:// URL"), "{line}");
    }

    #[test]
    fn nothing_listening_is_unhealthy_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (healthy, line) = check(
            &format!("http://127.0.0.1:{port}/health"),
            &ProbeSettings::default(),
        );
        assert!(!healthy);
        assert!(
            line.starts_with("unhealthy: cannot connect to 127.0.0.1:"),
            "{line}"
        );
    }

    #[test]
    fn a_username_without_a_password_file_is_refused() {
        let settings = ProbeSettings {
            username: Some("prometheus".into()),
            ..ProbeSettings::default()
        };
        let err = Probe::new(&settings, Purpose::Healthcheck, TIMEOUT)
            .err()
            .unwrap();
        assert!(err.contains("--healthcheck.password-file"), "{err}");
    }
}
