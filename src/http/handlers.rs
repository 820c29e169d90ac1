//! The routes and their handlers: plain functions from the shared state and a request to a
//! reply whose body they write into the worker's reused buffer.

use std::time::{Instant, SystemTime};

use serde::Serialize;
use tiny_http::Request;

use super::auth::{self, Verdict};
use super::bodies::{ErrorBody, Probe, SystemHealth, SystemMetrics};
use crate::build_info;
use crate::health::Status;
use crate::metrics::{self, Scrape};
use crate::state::State;

/// A handler: reads the state, writes the body into `body` (empty on entry), returns the rest.
pub type Handler = fn(&State, &Request, &mut Vec<u8>) -> Reply;

/// Status and headers of an answer whose body is in the worker's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// One extra header, when the status calls for it (`WWW-Authenticate`, `Allow`).
    pub header: Option<(&'static str, &'static str)>,
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A route: its name (the `handler` label of the exporter's own metrics) and its handler.
#[derive(Clone, Copy)]
pub struct Route {
    pub name: &'static str,
    pub handler: Handler,
}

/// The route serving `path` (without its query), if any.
pub fn route(state: &State, path: &str) -> Option<Route> {
    let (name, handler): (&'static str, Handler) = match path {
        "/" => ("landing", landing),
        "/health" => ("health", health_probe),
        "/livez" => ("livez", livez),
        "/readyz" => ("readyz", readyz),
        "/api/v1/monitoring/metrics" => ("api_metrics", api_metrics),
        "/api/v1/monitoring/health" => ("api_health", api_health),
        _ if path == state.telemetry_path => ("metrics", metrics),
        _ => return None,
    };
    Some(Route { name, handler })
}

/// `GET /metrics`: every collector, rendered now.
fn metrics(state: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    state.registry.render(&Scrape::now(), body);
    Reply {
        status: 200,
        content_type: metrics::CONTENT_TYPE,
        header: None,
    }
}

/// `GET /health`: Fluxbase's public probe, 503 when a service is unhealthy.
fn health_probe(state: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    let (overall, _) = SystemHealth::from_state(state, Instant::now());
    json(
        body,
        status_code(overall),
        &Probe::new(overall, SystemTime::now()),
    )
}

/// `GET /api/v1/monitoring/health`: every checked service, 503 when one is unhealthy. Public,
/// as the Fluxbase page documents it (a Docker or Kubernetes probe has no token).
fn api_health(state: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    let (overall, health) = SystemHealth::from_state(state, Instant::now());
    json(body, status_code(overall), &health)
}

/// `GET /livez`: the process answers.
fn livez(_: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    body.extend_from_slice(b"ok\n");
    Reply {
        status: 200,
        content_type: TEXT,
        header: None,
    }
}

/// `GET /readyz`: the same verdict as `/health`, as a word.
fn readyz(state: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    let (overall, _) = SystemHealth::from_state(state, Instant::now());
    let word = if overall == Status::Healthy {
        "ok"
    } else {
        overall.as_str()
    };
    body.extend_from_slice(word.as_bytes());
    body.push(b'\n');
    Reply {
        status: status_code(overall),
        content_type: TEXT,
        header: None,
    }
}

/// `GET /api/v1/monitoring/metrics`: the JSON system metrics, behind the bearer token.
fn api_metrics(state: &State, request: &Request, body: &mut Vec<u8>) -> Reply {
    // With basic auth on (`--web.config.file`), the request carries two `Authorization`
    // headers: Basic for the server, Bearer for this endpoint. The Bearer one counts here.
    let mut authorizations = request
        .headers()
        .iter()
        .filter(|header| header.field.equiv("Authorization"))
        .map(|header| header.value.as_str());
    let first = authorizations.clone().next();
    let authorization = authorizations
        .find(|value| {
            value
                .trim_start()
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        })
        .or(first);
    match auth::check(state.auth_token.as_ref(), authorization) {
        Verdict::Allowed => json(
            body,
            200,
            &SystemMetrics::from_state(state, Instant::now(), SystemTime::now()),
        ),
        Verdict::NotConfigured => json(
            body,
            403,
            &ErrorBody {
                error: "no bearer token is configured for this endpoint: set --web.auth-token-file \
                        or FLUXBASE_EXPORTER_AUTH_TOKEN",
            },
        ),
        Verdict::Missing => Reply {
            header: Some(("WWW-Authenticate", "Bearer realm=\"fluxbase-exporter\"")),
            ..json(
                body,
                401,
                &ErrorBody {
                    error: "missing bearer token",
                },
            )
        },
        Verdict::Invalid => Reply {
            header: Some((
                "WWW-Authenticate",
                "Bearer realm=\"fluxbase-exporter\", error=\"invalid_token\"",
            )),
            ..json(
                body,
                401,
                &ErrorBody {
                    error: "invalid bearer token",
                },
            )
        },
    }
}

/// `GET /`: a small page linking every endpoint.
fn landing(state: &State, _: &Request, body: &mut Vec<u8>) -> Reply {
    let telemetry = html_escape(&state.telemetry_path);
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Fluxbase Exporter</title></head>\n\
         <body>\n<h1>Fluxbase Exporter</h1>\n\
         <p>Version {version} (revision {revision}, rustc {rustc})</p>\n<ul>\n\
         <li><a href=\"{telemetry}\">{telemetry}</a>: Prometheus metrics</li>\n\
         <li><a href=\"/api/v1/monitoring/health\">/api/v1/monitoring/health</a>: health of each Fluxbase service (JSON)</li>\n\
         <li><a href=\"/api/v1/monitoring/metrics\">/api/v1/monitoring/metrics</a>: system metrics (JSON, bearer token)</li>\n\
         <li><a href=\"/health\">/health</a>: public health probe</li>\n\
         <li><a href=\"/livez\">/livez</a>: the process answers</li>\n\
         <li><a href=\"/readyz\">/readyz</a>: ready (same verdict as /health)</li>\n\
         </ul>\n</body>\n</html>\n",
        version = build_info::VERSION,
        revision = build_info::REVISION,
        rustc = build_info::RUSTC,
    );
    body.extend_from_slice(page.as_bytes());
    Reply {
        status: 200,
        content_type: HTML,
        header: None,
    }
}

/// 404 for a path no route serves.
pub fn not_found(body: &mut Vec<u8>) -> Reply {
    json(body, 404, &ErrorBody { error: "not found" })
}

/// 401 for a request without the basic auth `--web.config.file` asks for (the toolkit's answer:
/// `WWW-Authenticate: Basic`, "Unauthorized").
pub fn unauthorized(body: &mut Vec<u8>) -> Reply {
    body.clear();
    body.extend_from_slice(b"Unauthorized\n");
    Reply {
        status: 401,
        content_type: TEXT,
        header: Some(("WWW-Authenticate", "Basic")),
    }
}

/// 503 for credentials that could not be checked yet: bcrypt was busy with other requests (a
/// flood of guesses) for longer than a worker waits.
pub fn auth_busy(body: &mut Vec<u8>) -> Reply {
    body.clear();
    body.extend_from_slice(b"Service Unavailable\n");
    Reply {
        status: 503,
        content_type: TEXT,
        header: Some(("Retry-After", "1")),
    }
}

/// 405 for a method other than GET or HEAD.
pub fn method_not_allowed(body: &mut Vec<u8>) -> Reply {
    Reply {
        header: Some(("Allow", "GET, HEAD")),
        ..json(
            body,
            405,
            &ErrorBody {
                error: "method not allowed",
            },
        )
    }
}

/// 500 when a handler failed (a bug: logged by the dispatch loop).
pub fn internal_error(body: &mut Vec<u8>) -> Reply {
    body.clear();
    json(
        body,
        500,
        &ErrorBody {
            error: "internal error",
        },
    )
}

/// 200 unless the system is unhealthy (503), as Fluxbase answers its health endpoints.
fn status_code(overall: Status) -> u16 {
    if overall == Status::Unhealthy {
        503
    } else {
        200
    }
}

fn json(body: &mut Vec<u8>, status: u16, value: &impl Serialize) -> Reply {
    if serde_json::to_writer(&mut *body, value).is_err() {
        // Only reachable if a body type could fail to serialise; none of ours can.
        body.clear();
        body.extend_from_slice(b"{\"error\":\"internal error\"}");
        return Reply {
            status: 500,
            content_type: JSON,
            header: None,
        };
    }
    body.push(b'\n');
    Reply {
        status,
        content_type: JSON,
        header: None,
    }
}

fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::{DatabaseStatus, Leadership};
    use crate::families::{ExporterFamilies, FluxbaseFamilies};
    use crate::health::{CheckReport, HealthBoard};
    use crate::http::auth::BearerToken;
    use crate::metrics::{Registry, SeriesLimit};
    use crate::process::ProcessSnapshot;
    use crate::published::Published;
    use std::sync::Arc;
    use std::time::Duration;
    use tiny_http::{Header, TestRequest};

    fn state(token: Option<&str>) -> State {
        let limit = SeriesLimit::new(10);
        State {
            registry: Registry::new(),
            fluxbase: Arc::new(FluxbaseFamilies::new(&limit, Instant::now())),
            exporter: Arc::new(ExporterFamilies::new(&limit)),
            process: Arc::new(Published::new(ProcessSnapshot {
                threads: Some(9),
                resident_bytes: Some(5 * 1024 * 1024 + 1),
                ..Default::default()
            })),
            health: Arc::new(HealthBoard::default()),
            database: Arc::new(Published::new(DatabaseStatus::default())),
            leadership: Arc::new(Leadership::new(false)),
            storage_scan: Arc::new(Published::new(None)),
            event_sources: Vec::new(),
            upstream: None,
            limit,
            started: Instant::now(),
            auth_token: token.and_then(BearerToken::new),
            telemetry_path: "/metrics".to_owned(),
        }
    }

    fn call(state: &State, path: &str, headers: &[(&str, &str)]) -> (Reply, String) {
        let mut request = TestRequest::new().with_path(path);
        for (name, value) in headers {
            request = request.with_header(Header::from_bytes(*name, *value).unwrap());
        }
        let request: Request = request.into();
        let route = route(state, path).expect("route");
        let mut body = Vec::new();
        let reply = (route.handler)(state, &request, &mut body);
        (reply, String::from_utf8(body).unwrap())
    }

    #[track_caller]
    fn check(
        state: &State,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
        expected_body: &str,
    ) {
        let (reply, body) = call(state, path, headers);
        assert_eq!((reply.status, body.as_str()), (status, expected_body));
    }

    #[test]
    fn unknown_paths_have_no_route() {
        let state = state(None);
        assert!(route(&state, "/nope").is_none());
        assert!(route(&state, "/metrics/").is_none());
        assert_eq!(route(&state, "/metrics").unwrap().name, "metrics");
    }

    #[test]
    fn api_metrics_is_closed_without_a_configured_token() {
        check(
            &state(None),
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer whatever")],
            403,
            "{\"error\":\"no bearer token is configured for this endpoint: set --web.auth-token-file \
             or FLUXBASE_EXPORTER_AUTH_TOKEN\"}\n",
        );
    }

    #[test]
    fn api_metrics_refuses_missing_and_wrong_tokens_with_401() {
        let state = state(Some("t0ken"));
        let (reply, body) = call(&state, "/api/v1/monitoring/metrics", &[]);
        assert_eq!(
            (reply.status, body.as_str()),
            (401, "{\"error\":\"missing bearer token\"}\n")
        );
        assert_eq!(
            reply.header,
            Some(("WWW-Authenticate", "Bearer realm=\"fluxbase-exporter\""))
        );
        let (reply, body) = call(
            &state,
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer t0ke")],
        );
        assert_eq!(
            (reply.status, body.as_str()),
            (401, "{\"error\":\"invalid bearer token\"}\n")
        );
        assert!(reply.header.unwrap().1.contains("invalid_token"));
    }

    #[test]
    fn api_metrics_answers_with_what_was_measured_in_fluxbase_key_order() {
        let state = state(Some("t0ken"));
        let (reply, body) = call(
            &state,
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer t0ken")],
        );
        assert_eq!(reply.status, 200);
        let expected = format!(
            "{{\"database\":{{\"configured\":false,\
             \"message\":\"no database configured: set --database.url, or Fluxbase's FLUXBASE_DATABASE_* variables\"}},\
             \"exporter\":{{\"version\":\"{}\",\
             \"revision\":\"{}\",\"rustc\":\"{}\",\"target\":\"{}\",\"uptime_seconds\":0,\"num_threads\":9,\
             \"memory_resident_mb\":5,\"event_sources\":[]}}}}\n",
            build_info::VERSION,
            build_info::REVISION,
            build_info::RUSTC,
            build_info::TARGET
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn api_metrics_describes_fluxbase_from_its_own_endpoint() {
        use crate::upstream::{Reading, Runtime, Upstream, UpstreamStatus};
        let mut state = state(Some("t0ken"));
        let upstream = Upstream::new(
            "http://127.0.0.1:9090/metrics".to_owned(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        );
        let start = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - 3600.5;
        upstream.latest.publish(UpstreamStatus {
            reading: Some(Reading {
                read_at: Some(Instant::now()),
                samples: Vec::new(),
                runtime: Runtime {
                    start_time_seconds: Some(start),
                    go_version: Some("go1.24.4".to_owned()),
                    goroutines: Some(87),
                    alloc_bytes: Some(24_593_184),
                    total_alloc_bytes: Some(9_876_543_216),
                    sys_bytes: Some(54_870_296),
                    num_gc: Some(410),
                    gc_pause_ms: Some(0.06),
                    gc_totals: Some((410.0, 0.0246)),
                    realtime_connections: Some(7),
                    realtime_channels: Some(3),
                    realtime_subscriptions: Some(11),
                },
            }),
            error: None,
        });
        state.upstream = Some(upstream);
        let (reply, body) = call(
            &state,
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer t0ken")],
        );
        assert_eq!(reply.status, 200);
        assert!(
            body.starts_with(
                "{\"uptime_seconds\":3600,\"go_version\":\"go1.24.4\",\"num_goroutines\":87,\
                 \"memory_alloc_mb\":23,\"memory_total_alloc_mb\":9419,\"memory_sys_mb\":52,\"num_gc\":410,\
                 \"gc_pause_ms\":0.06,\"database\":{\"configured\":false,"
            ),
            "{body}"
        );
        assert!(
            body.contains(
                "\"realtime\":{\"total_connections\":7,\"active_channels\":3,\"total_subscriptions\":11},"
            ),
            "{body}"
        );
        assert!(
            body.contains("\"num_threads\":9,\"memory_resident_mb\":5,\"fluxbase_metrics\":{\"url\":\"http://127.0.0.1:9090/metrics\",\"state\":\"ok\"},"),
            "{body}"
        );
    }

    #[test]
    fn health_with_no_checked_service_is_healthy_and_lists_none() {
        let state = state(None);
        check(
            &state,
            "/api/v1/monitoring/health",
            &[],
            200,
            "{\"status\":\"healthy\",\"services\":{}}\n",
        );
        check(&state, "/readyz", &[], 200, "ok\n");
        check(&state, "/livez", &[], 200, "ok\n");
        let (reply, body) = call(&state, "/health", &[]);
        assert_eq!(reply.status, 200);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "ok");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn an_unhealthy_database_turns_every_health_endpoint_to_503() {
        let state = state(None);
        let now = Instant::now();
        state.health.database.publish(Some(CheckReport {
            status: Status::Unhealthy,
            latency: Some(Duration::from_micros(2_345_678)),
            message: Some("connection refused".to_owned()),
            checked_at: now,
            last_success: None,
            stale_after: Duration::from_secs(45),
            stale_status: Status::Unhealthy,
        }));
        check(
            &state,
            "/api/v1/monitoring/health",
            &[],
            503,
            "{\"status\":\"unhealthy\",\"services\":{\"database\":{\"status\":\"unhealthy\",\
             \"latency_ms\":2345.678,\"message\":\"connection refused\"}}}\n",
        );
        check(&state, "/readyz", &[], 503, "unhealthy\n");
        let (reply, body) = call(&state, "/health", &[]);
        assert_eq!(reply.status, 503);
        assert!(body.starts_with("{\"status\":\"degraded\",\"timestamp\":\""));
    }

    #[test]
    fn the_landing_page_links_every_endpoint() {
        let (reply, body) = call(&state(None), "/", &[]);
        assert_eq!(reply.content_type, HTML);
        for path in [
            "/metrics",
            "/health",
            "/livez",
            "/readyz",
            "/api/v1/monitoring/metrics",
            "/api/v1/monitoring/health",
        ] {
            assert!(body.contains(&format!("href=\"{path}\"")), "{path}");
        }
        assert!(body.contains(build_info::VERSION));
    }

    #[test]
    fn html_escaping() {
        assert_eq!(html_escape("/m<e>&\"'"), "/m&lt;e&gt;&amp;&quot;&#39;");
    }
}
