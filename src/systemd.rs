//! systemd's notify protocol with std's Unix datagram socket (no libsystemd): `READY=1` once
//! listening, `STATUS=` lines, `WATCHDOG=1` while the HTTP workers answer, `STOPPING=1` at
//! shutdown.

use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixDatagram};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, after, select};

use crate::health::{self, HealthBoard};
use crate::healthcheck::{Probe, ProbeSettings, Purpose};

/// Where systemd listens for this service's notifications.
pub struct Notifier {
    socket: UnixDatagram,
    address: net::SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); `None` when the
    /// exporter does not run under `Type=notify`.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let target = target.to_str()?;
        let address = match target.strip_prefix('@') {
            Some(name) => net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
            None => net::SocketAddr::from_pathname(target).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, address })
    }

    /// Sends one notification; a failure is logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Err(err) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            log::debug!(error:% = err, message = message; "systemd notification not sent");
        }
    }
}

/// Half of `WATCHDOG_USEC`, when systemd asks for watchdog pings from this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str()?.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The thread that keeps systemd informed: every interval, a `STATUS=` line with the health
/// verdict and, when the watchdog is on, `WATCHDOG=1` if and only if the HTTP workers answer a
/// request to `/livez` within the interval. A wedged server therefore misses the watchdog.
/// Behind `--web.config.file`, the probe speaks TLS (with the `--healthcheck.tls-*` client
/// certificate when one is configured) and takes a 401 as an answer: it carries no
/// credentials, and a 401 is written by an HTTP worker like any other answer.
pub struct Watchdog {
    thread: JoinHandle<()>,
}

impl Watchdog {
    pub fn start(
        notifier: Arc<Notifier>,
        http: SocketAddr,
        health: Arc<HealthBoard>,
        stop: Receiver<()>,
        probe: &ProbeSettings,
    ) -> std::io::Result<Watchdog> {
        let watchdog = watchdog_interval();
        let interval = watchdog
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(100));
        // Half an interval at most, so that two pings are never further apart than one and a
        // half intervals (three quarters of WatchdogSec).
        let probe = Probe::new(probe, Purpose::Watchdog, interval / 2);
        if let Err(why) = &probe {
            log::error!(reason = why.as_str(); "the watchdog probe cannot be set up; watchdog pings are withheld");
        }
        let target = loopback(http);
        let thread = thread::Builder::new().name("systemd".to_owned()).spawn(move || {
            let mut answering = true;
            loop {
                let services = health.services(Instant::now());
                let overall = health::overall(services.iter().map(|(_, service)| service));
                let mut status = format!("STATUS=serving on {http}; {}", overall.as_str());
                for (name, service) in &services {
                    if let Some(message) = &service.message {
                        status.push_str(&format!("; {name}: {message}"));
                    }
                }
                notifier.send(&status);
                if watchdog.is_some() {
                    let answer = match &probe {
                        Ok(probe) => livez(probe, target),
                        Err(why) => Err(why.clone()),
                    };
                    match answer {
                        Ok(()) => {
                            notifier.send("WATCHDOG=1");
                            if !answering {
                                log::info!("the HTTP workers answer again; watchdog pings resume");
                            }
                            answering = true;
                        }
                        Err(why) => {
                            if answering {
                                log::warn!(reason = why.as_str(); "the HTTP workers did not answer; withholding the watchdog ping");
                            }
                            answering = false;
                        }
                    }
                }
                select! {
                    recv(stop) -> _ => break,
                    recv(after(interval)) -> _ => {}
                }
            }
        })?;
        Ok(Watchdog { thread })
    }

    pub fn join(self) {
        if self.thread.join().is_err() {
            log::error!("systemd notification thread panicked");
        }
    }
}

/// The address to reach a server bound to `bound` from this host.
fn loopback(bound: SocketAddr) -> SocketAddr {
    let mut target = bound;
    if bound.ip().is_unspecified() {
        target.set_ip(match bound {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

/// `GET /livez` answered by an HTTP worker: 200, or 401 behind basic auth.
fn livez(probe: &Probe, target: SocketAddr) -> Result<(), String> {
    let scheme = if probe.tls { "https" } else { "http" };
    match probe.status(&format!("{scheme}://{target}/livez"))? {
        200 | 401 => Ok(()),
        other => Err(format!("/livez answered {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        assert_eq!(
            loopback("0.0.0.0:9745".parse().unwrap()),
            "127.0.0.1:9745".parse().unwrap()
        );
        assert_eq!(
            loopback("[::]:9745".parse().unwrap()),
            "[::1]:9745".parse().unwrap()
        );
        assert_eq!(
            loopback("10.1.2.3:1".parse().unwrap()),
            "10.1.2.3:1".parse().unwrap()
        );
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let probe = Probe::new(
            &ProbeSettings::default(),
            Purpose::Watchdog,
            Duration::from_millis(500),
        )
        .unwrap();
        let err = livez(&probe, port).unwrap_err();
        assert!(err.starts_with("cannot connect to"), "{err}");
    }
}
