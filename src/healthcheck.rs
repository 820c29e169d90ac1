//! `fluxbase-exporter healthcheck [URL]`: asks a health endpoint, for a container's
//! HEALTHCHECK (a `FROM scratch` image has no curl).

use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::systemd;

/// How long the check waits for each of connecting, sending and the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `url` answered 2xx within the timeout, and one line saying what happened.
pub fn check(url: &str) -> (bool, String) {
    let outcome = parse_http_url(url).and_then(|(address, path)| {
        let target = address
            .to_socket_addrs()
            .map_err(|err| format!("cannot resolve {address}: {err}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        systemd::http_status(target, &path, TIMEOUT)
    });
    match outcome {
        Ok(status) if (200..300).contains(&status) => {
            (true, format!("healthy: {url} answered {status}"))
        }
        Ok(status) => (false, format!("unhealthy: {url} answered {status}")),
        Err(why) => (false, format!("unhealthy: {why}")),
    }
}

/// `http://host[:port][/path]` into `host:port` and the path.
fn parse_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok()
    });
    let address = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((address, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:9745/api/v1/monitoring/health"),
            Ok(("127.0.0.1:9745".into(), "/api/v1/monitoring/health".into()))
        );
        assert_eq!(
            parse_http_url("http://exporter"),
            Ok(("exporter:80".into(), "/".into()))
        );
        assert_eq!(
            parse_http_url("http://[::1]:9745/health"),
            Ok(("[::1]:9745".into(), "/health".into()))
        );
        assert!(
            parse_http_url("https://x/")
                .unwrap_err()
                .contains("not an http:// URL")
        );
        assert!(
            parse_http_url("http:///x")
                .unwrap_err()
                .contains("names no host")
        );
    }

    #[test]
    fn nothing_listening_is_unhealthy_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (healthy, line) = check(&format!("http://127.0.0.1:{port}/health"));
        assert!(!healthy);
        assert!(
            line.starts_with("unhealthy: cannot connect to 127.0.0.1:"),
            "{line}"
        );
    }
}
