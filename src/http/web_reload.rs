//! Re-reads `--web.config.file` when it or a file it names changes, so that certificates
//! rotate and users change without a restart. A file that no longer loads keeps the last good
//! settings, and the error is logged once per change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::web_config::{self, WebSettings};
use crate::published::Published;
use crate::workers::Worker;

/// How often the files are looked at: one `stat` each per second.
const INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a file's content cheaply: size, modification time and inode (an atomic
/// rename changes the inode even within one clock tick).
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?, metadata.ino()))
}

/// The worker that watches the web config.
pub struct WebConfigWatcher {
    path: PathBuf,
    settings: Arc<Published<WebSettings>>,
    /// The files last looked at, and their stamps then.
    seen: Vec<(PathBuf, Stamp)>,
}

impl WebConfigWatcher {
    /// Watches the files behind `settings` (loaded from `path` at start-up).
    pub fn new(path: PathBuf, settings: Arc<Published<WebSettings>>) -> Self {
        let seen = stamps(&settings.latest().files);
        WebConfigWatcher {
            path,
            settings,
            seen,
        }
    }
}

fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    files
        .iter()
        .map(|file| (file.clone(), stamp(file)))
        .collect()
}

impl Worker for WebConfigWatcher {
    fn name(&self) -> &'static str {
        "web-config"
    }

    fn run_once(&mut self, _now: Instant) {
        // Taken before the load: a file that changes while it is read is read again next time.
        let now_seen = stamps(
            &self
                .seen
                .iter()
                .map(|(file, _)| file.clone())
                .collect::<Vec<_>>(),
        );
        if now_seen == self.seen {
            return;
        }
        let current = self.settings.latest();
        match web_config::load(&self.path) {
            Ok(mut settings) => {
                match (&current.tls, &settings.tls) {
                    (Some(_), None) => {
                        log::error!(file:% = self.path.display(); "--web.config.file no longer configures TLS; still serving TLS with the last certificate until a restart");
                        settings.tls = current.tls.clone();
                        settings.certificate_pem = current.certificate_pem.clone();
                    }
                    (None, Some(_)) => {
                        log::warn!(file:% = self.path.display(); "--web.config.file now configures TLS; plain HTTP is served until a restart");
                        settings.tls = None;
                    }
                    _ => {}
                }
                log::info!(file:% = self.path.display(), tls = settings.tls.is_some(), users = settings.users.len(); "web config reloaded");
                self.seen = settings
                    .files
                    .iter()
                    .map(
                        |file| match now_seen.iter().find(|(seen, _)| seen == file) {
                            Some(entry) => entry.clone(),
                            None => (file.clone(), stamp(file)),
                        },
                    )
                    .collect();
                self.settings.publish(settings);
            }
            Err(err) => {
                log::error!(file:% = self.path.display(), key = err.key.as_str(), reason = err.reason(), error:% = err; "cannot reload --web.config.file; keeping the last good settings");
                // Look again when any of the files changes once more.
                self.seen = now_seen;
            }
        }
    }

    fn interval(&self) -> Duration {
        INTERVAL
    }
}

/// The TLS configuration for each handshake: the latest one published.
pub struct PublishedTls {
    pub settings: Arc<Published<WebSettings>>,
    /// The configuration at start-up, in case a published one lacks TLS (it never should).
    pub initial: Arc<rustls::ServerConfig>,
}

impl tiny_http::TlsConfigSource for PublishedTls {
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.settings
            .latest()
            .tls
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.initial))
    }
}
