//! `--web.config.file`: the exporter-toolkit web configuration (TLS, basic auth, extra response
//! headers), read with the toolkit's keys, defaults and strictness, and turned into what the
//! server uses: a rustls configuration, the users' bcrypt hashes and the headers.
//!
//! Differences from the toolkit, each refused with a message rather than silently ignored:
//! rustls serves TLS 1.2 and 1.3 only (a `max_version` below TLS12 is an error), knows the
//! ECDHE AES-GCM and ChaCha20 suites only, and the P-256, P-384 and X25519 curves only;
//! `client_allowed_sans` and `rate_limit` are not implemented. `http_server_config.http2` is
//! accepted and has no effect: the exporter speaks HTTP/1.1.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;

/// The file as the toolkit reads it (`yaml.UnmarshalStrict`: an unknown key is an error).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: TlsFile,
    #[serde(default)]
    http_server_config: HttpFile,
    #[serde(default)]
    rate_limit: RateLimitFile,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TlsFile {
    cert: String,
    key: String,
    client_ca: String,
    cert_file: String,
    key_file: String,
    client_auth_type: String,
    client_ca_file: String,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    min_version: String,
    max_version: String,
    prefer_server_cipher_suites: bool,
    client_allowed_sans: Vec<String>,
}

impl Default for TlsFile {
    /// The toolkit's defaults: TLS 1.2 to 1.3, the server's cipher order.
    fn default() -> Self {
        TlsFile {
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            client_auth_type: String::new(),
            client_ca_file: String::new(),
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            min_version: "TLS12".to_owned(),
            max_version: "TLS13".to_owned(),
            prefer_server_cipher_suites: true,
            client_allowed_sans: Vec::new(),
        }
    }
}

impl TlsFile {
    /// The toolkit's `IsEnabled`: any of these keys turns TLS on.
    fn enabled(&self) -> bool {
        !(self.cert_file.is_empty()
            && self.cert.is_empty()
            && self.key_file.is_empty()
            && self.key.is_empty()
            && self.client_ca_file.is_empty()
            && self.client_ca.is_empty()
            && self.client_auth_type.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HttpFile {
    http2: Option<bool>,
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RateLimitFile {
    burst: u64,
    interval: Option<String>,
}

/// The headers the toolkit lets a web config set, and the values it allows (none listed: any).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// What the server does with a valid web config file.
#[derive(Clone, Debug, Default)]
pub struct WebSettings {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name to bcrypt hash; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    /// Headers added to every answer.
    pub headers: Vec<(String, String)>,
    /// Files the settings were read from (the config file first), to notice changes.
    pub files: Vec<PathBuf>,
    /// The certificate chain served, for the probes to trust (PEM text).
    pub certificate_pem: Vec<u8>,
}

/// A web config file that cannot be used: the key at fault and why.
#[derive(Debug, PartialEq, Eq)]
pub struct WebConfigError {
    pub key: String,
    pub message: String,
}

impl WebConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        WebConfigError {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Why, as a fixed label value.
    pub fn reason(&self) -> &'static str {
        if self.key.is_empty() {
            "unreadable"
        } else if self.key.starts_with("tls_server_config") {
            "tls"
        } else if self.key.starts_with("basic_auth_users") {
            "basic_auth"
        } else {
            "invalid"
        }
    }
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for WebConfigError {}

/// Reads and validates the web config at `path`. Relative paths inside it are relative to its
/// directory, as in the toolkit.
pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
    let text = std::fs::read(path)
        .map_err(|err| WebConfigError::new("", format!("cannot read {}: {err}", path.display())))?;
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut settings = parse(&text, directory)?;
    settings.files.insert(0, path.to_owned());
    Ok(settings)
}

/// Validates the text of a web config; files it names are read relative to `directory`.
pub fn parse(text: &[u8], directory: &Path) -> Result<WebSettings, WebConfigError> {
    let file: File = if text.iter().all(u8::is_ascii_whitespace) {
        File::default()
    } else {
        serde_norway::from_slice(text).map_err(|err| yaml_error(&err.to_string()))?
    };
    let mut settings = WebSettings::default();

    for (user, hash) in &file.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(WebConfigError::new(
                &format!("basic_auth_users.{user}"),
                "is not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            ));
        }
    }
    settings.users = file.basic_auth_users;

    for (name, value) in &file.http_server_config.headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(known, _)| known == name) else {
            return Err(WebConfigError::new(
                &key,
                format!("HTTP header {name:?} can not be configured"),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(WebConfigError::new(
                &key,
                format!("{value:?} is not one of {allowed:?}"),
            ));
        }
        if tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).is_err() {
            return Err(WebConfigError::new(&key, "is not a valid header value"));
        }
        settings.headers.push((name.clone(), value.clone()));
    }

    if file
        .rate_limit
        .interval
        .as_deref()
        .is_some_and(|i| !i.is_empty() && i != "0s" && i != "0")
        || file.rate_limit.burst != 0
    {
        return Err(WebConfigError::new(
            "rate_limit",
            "is not supported by fluxbase-exporter (its connection and thread limits bound the load: --web.max-connections, --web.threads)",
        ));
    }

    let tls = &file.tls_server_config;
    if tls.enabled() {
        let (config, files, pem) = tls_config(tls, directory)?;
        settings.tls = Some(Arc::new(config));
        settings.files.extend(files);
        settings.certificate_pem = pem;
    }
    Ok(settings)
}

/// serde_norway's message, with the key it names pulled to the front.
fn yaml_error(message: &str) -> WebConfigError {
    // Messages read "tls_server_config: unknown field `x`, expected ..." for nested keys.
    if let Some((key, rest)) = message.split_once(": ")
        && !key.contains(' ')
    {
        return WebConfigError::new(key, rest);
    }
    let key = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field.to_owned())
        .unwrap_or_default();
    WebConfigError::new(&key, message)
}

/// How the server treats client certificates (`client_auth_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

fn client_auth(name: &str) -> Result<ClientAuth, WebConfigError> {
    Ok(match name {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(WebConfigError::new(
                "tls_server_config.client_auth_type",
                format!(
                    "{other:?} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            ));
        }
    })
}

/// A TLS version name as the toolkit spells it, as a number to order by.
fn version(key: &str, name: &str) -> Result<u16, WebConfigError> {
    match name {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(WebConfigError::new(
            key,
            format!("unknown TLS version {other:?} (TLS10, TLS11, TLS12 or TLS13)"),
        )),
    }
}

/// Builds the rustls configuration, and lists the files it read.
fn tls_config(
    tls: &TlsFile,
    directory: &Path,
) -> Result<(rustls::ServerConfig, Vec<PathBuf>, Vec<u8>), WebConfigError> {
    let mut files = Vec::new();
    let mut read = |key: &str, path: &str| -> Result<Vec<u8>, WebConfigError> {
        let path = directory.join(path);
        let bytes = std::fs::read(&path).map_err(|err| {
            WebConfigError::new(key, format!("cannot read {}: {err}", path.display()))
        })?;
        files.push(path);
        Ok(bytes)
    };
    // Both present before either is read, as the toolkit's `validateTLSPaths` checks.
    if tls.cert_file.is_empty() && tls.cert.is_empty() {
        return Err(WebConfigError::new(
            "tls_server_config",
            "missing one of cert or cert_file",
        ));
    }
    if tls.key_file.is_empty() && tls.key.is_empty() {
        return Err(WebConfigError::new(
            "tls_server_config",
            "missing one of key or key_file",
        ));
    }
    let cert_pem = if tls.cert_file.is_empty() {
        tls.cert.clone().into_bytes()
    } else {
        read("tls_server_config.cert_file", &tls.cert_file)?
    };
    let key_pem = if tls.key_file.is_empty() {
        tls.key.clone().into_bytes()
    } else {
        read("tls_server_config.key_file", &tls.key_file)?
    };
    let cert_key = if tls.cert_file.is_empty() {
        "tls_server_config.cert"
    } else {
        "tls_server_config.cert_file"
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|err| WebConfigError::new(cert_key, format!("not PEM certificates: {err}")))?;
    if chain.is_empty() {
        return Err(WebConfigError::new(cert_key, "holds no PEM certificate"));
    }
    let key_key = if tls.key_file.is_empty() {
        "tls_server_config.key"
    } else {
        "tls_server_config.key_file"
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|err| WebConfigError::new(key_key, format!("no PEM private key: {err}")))?;

    let ca_pem = if !tls.client_ca_file.is_empty() {
        Some((
            "tls_server_config.client_ca_file",
            read("tls_server_config.client_ca_file", &tls.client_ca_file)?,
        ))
    } else if !tls.client_ca.is_empty() {
        Some((
            "tls_server_config.client_ca",
            tls.client_ca.clone().into_bytes(),
        ))
    } else {
        None
    };
    let auth = client_auth(&tls.client_auth_type)?;
    if ca_pem.is_some() && auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::new(
            "tls_server_config.client_auth_type",
            "client CA's have been configured without a Client Auth Policy",
        ));
    }
    if !tls.client_allowed_sans.is_empty() {
        return Err(WebConfigError::new(
            "tls_server_config.client_allowed_sans",
            "is not supported by fluxbase-exporter",
        ));
    }

    let versions = versions(tls)?;
    let provider = provider(tls, &versions)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|err| WebConfigError::new("tls_server_config", err.to_string()))?;
    let builder = match auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => builder
            .with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            })),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some((ca_key, ca_pem)) = ca_pem else {
                return Err(WebConfigError::new(
                    "tls_server_config.client_ca_file",
                    format!(
                        "client_auth_type {} needs client_ca_file or client_ca",
                        tls.client_auth_type
                    ),
                ));
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                let cert = cert.map_err(|err| {
                    WebConfigError::new(ca_key, format!("not PEM certificates: {err}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|err| WebConfigError::new(ca_key, err.to_string()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|err| WebConfigError::new(ca_key, err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|err| {
        WebConfigError::new(key_key, format!("does not fit the certificate: {err}"))
    })?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    Ok((config, files, cert_pem))
}

/// The protocol versions between `min_version` and `max_version` that rustls serves.
fn versions(tls: &TlsFile) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    let min = version("tls_server_config.min_version", &tls.min_version)?;
    let max = version("tls_server_config.max_version", &tls.max_version)?;
    if max < 12 {
        return Err(WebConfigError::new(
            "tls_server_config.max_version",
            "rustls serves TLS 1.2 and 1.3 only",
        ));
    }
    if min > max {
        return Err(WebConfigError::new(
            "tls_server_config.min_version",
            "is above max_version",
        ));
    }
    let mut versions = Vec::new();
    if min <= 13 && max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 12 && max >= 12 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

/// ring's provider restricted to the configured cipher suites (TLS 1.2 only, as in Go: TLS 1.3
/// suites are not configurable) and curves, in the configured order, and to the suites of
/// `versions`.
fn provider(
    tls: &TlsFile,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<CryptoProvider>, WebConfigError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let tls12_suites: Vec<_> = provider
        .cipher_suites
        .iter()
        .filter(|suite| suite.tls13().is_none())
        .copied()
        .collect();
    if !tls.cipher_suites.is_empty() {
        // The TLS 1.3 suites stay, then the named TLS 1.2 ones in the order given.
        provider
            .cipher_suites
            .retain(|suite| suite.tls13().is_some());
        for name in &tls.cipher_suites {
            // Go spells ChaCha20 suites with and without the "_SHA256" tail.
            let wanted = match name.as_str() {
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
                    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
                }
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
                    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
                }
                other => other,
            };
            let suite = tls12_suites
                .iter()
                .find(|suite| format!("{:?}", suite.suite()) == wanted)
                .ok_or_else(|| {
                    let known: Vec<String> = tls12_suites
                        .iter()
                        .map(|suite| format!("{:?}", suite.suite()))
                        .collect();
                    WebConfigError::new(
                        "tls_server_config.cipher_suites",
                        format!(
                            "{name} is not a TLS 1.2 suite rustls can serve (it serves {})",
                            known.join(", ")
                        ),
                    )
                })?;
            provider.cipher_suites.push(*suite);
        }
    }
    // Only the suites of the versions served (rustls would skip the others anyway).
    provider
        .cipher_suites
        .retain(|suite| versions.contains(&suite.version()));
    if !tls.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &tls.curve_preferences {
            let wanted = match name.as_str() {
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP521" => {
                    return Err(WebConfigError::new(
                        "tls_server_config.curve_preferences",
                        "CurveP521 is not one rustls serves (CurveP256, CurveP384, X25519)",
                    ));
                }
                other => {
                    return Err(WebConfigError::new(
                        "tls_server_config.curve_preferences",
                        format!("unknown curve {other:?}"),
                    ));
                }
            };
            if let Some(group) = provider.kx_groups.iter().find(|g| g.name() == wanted) {
                groups.push(*group);
            }
        }
        provider.kx_groups = groups;
    }
    Ok(Arc::new(provider))
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and
/// required by the second), and the client must prove it holds its key, but the certificate
/// itself is not checked against any authority: Go's semantics for these modes.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` and its key (the patched tiny_http's test data).
    const CERT: &str = include_str!("../../vendor/tiny_http/src/util/testdata/localhost.pem");
    const KEY: &str = include_str!("../../vendor/tiny_http/src/util/testdata/localhost.key");

    /// `tls_server_config` with the test certificate inline, plus `extra` lines.
    fn tls(extra: &str) -> String {
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}{extra}",
            indent(CERT),
            indent(KEY)
        )
    }

    /// One line describing what a file amounts to, or its error.
    fn describe(text: &str) -> String {
        match parse(text.as_bytes(), Path::new("/nonexistent")) {
            Err(err) => format!("error {err}"),
            Ok(settings) => {
                let tls = match &settings.tls {
                    None => "plain".to_owned(),
                    Some(config) => {
                        let mut versions: Vec<String> = config
                            .crypto_provider()
                            .cipher_suites
                            .iter()
                            .map(|s| format!("{:?}", s.version().version))
                            .collect();
                        versions.dedup();
                        format!(
                            "tls {} suites {} groups {} server-order {}",
                            versions.join("+"),
                            config.crypto_provider().cipher_suites.len(),
                            config.crypto_provider().kx_groups.len(),
                            config.ignore_client_order
                        )
                    }
                };
                let users: Vec<&str> = settings.users.keys().map(String::as_str).collect();
                let headers: Vec<String> = settings
                    .headers
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                format!("{tls}; users {users:?}; headers {headers:?}")
            }
        }
    }

    #[track_caller]
    fn check(text: &str, expected: &str) {
        assert_eq!(describe(text), expected);
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        check("", "plain; users []; headers []");
        check("{}\n", "plain; users []; headers []");
    }

    #[test]
    fn the_toolkits_defaults_apply() {
        // TLS 1.2 and 1.3 (ring's three 1.3 suites, then its six 1.2 ones), every curve, the
        // server's order.
        check(
            &tls(""),
            "tls TLSv1_3+TLSv1_2 suites 9 groups 3 server-order true; users []; headers []",
        );
    }

    #[test]
    fn versions_suites_curves_and_order_are_honoured_or_refused() {
        check(
            &tls("  min_version: TLS13\n  prefer_server_cipher_suites: false\n"),
            "tls TLSv1_3 suites 3 groups 3 server-order false; users []; headers []",
        );
        check(
            &tls(
                "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [X25519]\n",
            ),
            "tls TLSv1_3+TLSv1_2 suites 5 groups 1 server-order true; users []; headers []",
        );
        check(
            &tls("  max_version: TLS11\n"),
            "error tls_server_config.max_version: rustls serves TLS 1.2 and 1.3 only",
        );
        check(
            &tls("  min_version: TLS13\n  max_version: TLS12\n"),
            "error tls_server_config.min_version: is above max_version",
        );
        check(
            &tls("  min_version: SSL3\n"),
            "error tls_server_config.min_version: unknown TLS version \"SSL3\" (TLS10, TLS11, TLS12 or TLS13)",
        );
        check(
            &tls("  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "error tls_server_config.cipher_suites: TLS_RSA_WITH_AES_128_CBC_SHA is not a TLS 1.2 suite rustls can serve (it serves TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)",
        );
        // Go ignores cipher_suites when TLS 1.2 is not served; so does this.
        check(
            &tls(
                "  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
            ),
            "tls TLSv1_3 suites 3 groups 3 server-order true; users []; headers []",
        );
        check(
            &tls("  max_version: TLS12\n"),
            "tls TLSv1_2 suites 6 groups 3 server-order true; users []; headers []",
        );
        check(
            &tls("  curve_preferences: [CurveP521]\n"),
            "error tls_server_config.curve_preferences: CurveP521 is not one rustls serves (CurveP256, CurveP384, X25519)",
        );
    }

    #[test]
    fn client_authentication_follows_the_toolkits_rules() {
        check(
            &tls("  client_auth_type: Sometimes\n"),
            "error tls_server_config.client_auth_type: \"Sometimes\" is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
        );
        let ca = CERT
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>();
        check(
            &tls(&format!("  client_ca: |\n{ca}")),
            "error tls_server_config.client_auth_type: client CA's have been configured without a Client Auth Policy",
        );
        check(
            &tls("  client_auth_type: RequireAndVerifyClientCert\n"),
            "error tls_server_config.client_ca_file: client_auth_type RequireAndVerifyClientCert needs client_ca_file or client_ca",
        );
        for mode in [
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ] {
            check(
                &tls(&format!("  client_auth_type: {mode}\n  client_ca: |\n{ca}")),
                "tls TLSv1_3+TLSv1_2 suites 9 groups 3 server-order true; users []; headers []",
            );
        }
        check(
            &tls("  client_allowed_sans: [a]\n"),
            "error tls_server_config.client_allowed_sans: is not supported by fluxbase-exporter",
        );
    }

    #[test]
    fn missing_or_mismatched_keys_and_files_are_named() {
        check(
            "tls_server_config:\n  cert_file: x.pem\n",
            "error tls_server_config: missing one of key or key_file",
        );
        check(
            "tls_server_config:\n  key_file: x.key\n",
            "error tls_server_config: missing one of cert or cert_file",
        );
        assert!(
            describe("tls_server_config:\n  cert_file: x.pem\n  key_file: x.key\n")
                .starts_with("error tls_server_config.cert_file: cannot read /nonexistent/x.pem: ")
        );
        check(
            &format!(
                "tls_server_config:\n  cert: \"not pem\"\n  key: |\n{}",
                KEY.lines()
                    .map(|l| format!("    {l}\n"))
                    .collect::<String>()
            ),
            "error tls_server_config.cert: holds no PEM certificate",
        );
    }

    #[test]
    fn unknown_keys_are_errors_as_in_the_toolkits_strict_unmarshalling() {
        for (text, key) in [
            ("tls_server_config:\n  cert_fil: x\n", "tls_server_config"),
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            ("http_server_config:\n  header: {}\n", "http_server_config"),
        ] {
            let error = parse(text.as_bytes(), Path::new("/")).unwrap_err();
            assert!(
                error.key == key || error.message.contains(key),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains("unknown field"), "{error}");
        }
    }

    #[test]
    fn users_need_bcrypt_hashes_and_headers_the_toolkits_list() {
        let hash = "$2y$04$Xq1Y9Gg0m8h3m3JwqfOT4uBNS1o.aF6B5aV0CwGJvFpYz8Vd3CkJe";
        check(
            &format!(
                "basic_auth_users:\n  alice: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n    Strict-Transport-Security: max-age=31536000\n"
            ),
            "plain; users [\"alice\"]; headers [\"Strict-Transport-Security=max-age=31536000\", \"X-Frame-Options=sameorigin\"]",
        );
        check(
            "basic_auth_users:\n  alice: secret\n",
            "error basic_auth_users.alice: is not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
        );
        check(
            "http_server_config:\n  headers:\n    Server: x\n",
            "error http_server_config.headers.Server: HTTP header \"Server\" can not be configured",
        );
        check(
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "error http_server_config.headers.X-Frame-Options: \"allow\" is not one of [\"deny\", \"sameorigin\"]",
        );
        check(
            "rate_limit:\n  burst: 10\n  interval: 1s\n",
            "error rate_limit: is not supported by fluxbase-exporter (its connection and thread limits bound the load: --web.max-connections, --web.threads)",
        );
        check(
            "http_server_config:\n  http2: false\n",
            "plain; users []; headers []",
        );
    }
}
