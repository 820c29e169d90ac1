//! The health model: what each service check reported, and the verdicts the health endpoints
//! derive from it at request time.

use std::time::{Duration, Instant};

use crate::published::Published;

/// A service's or the whole system's health, in Fluxbase's words. Ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// What a worker found at its latest check of one service.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The verdict of the latest check.
    pub status: Status,
    /// How long the latest check took, when it got far enough to time something.
    pub latency: Option<Duration>,
    /// What failed, in words a user can act on (never a secret).
    pub message: Option<String>,
    /// When the latest check finished.
    pub checked_at: Instant,
    /// When a check last succeeded.
    pub last_success: Option<Instant>,
    /// How long without a success before the service is reported as `stale_status`, even if
    /// the latest published check was good (the worker may be stuck).
    pub stale_after: Duration,
    pub stale_status: Status,
}

/// One service's entry in a health body.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceHealth {
    pub status: Status,
    pub latency_ms: Option<f64>,
    pub message: Option<String>,
}

impl CheckReport {
    /// The verdict at `now`: the latest check's, unless no check has succeeded for
    /// `stale_after`, in which case the stale status with a message saying so.
    pub fn verdict(&self, now: Instant) -> ServiceHealth {
        let latency_ms = self.latency.map(|latency| latency.as_secs_f64() * 1000.0);
        let since_success = self
            .last_success
            .map(|at| now.saturating_duration_since(at));
        let stale = self.status == Status::Healthy
            && since_success.is_none_or(|elapsed| elapsed > self.stale_after);
        if stale {
            let seconds = since_success.unwrap_or_default().as_secs();
            return ServiceHealth {
                status: self.stale_status,
                latency_ms,
                message: Some(format!(
                    "no successful check for {seconds}s; the last result is stale"
                )),
            };
        }
        ServiceHealth {
            status: self.status,
            latency_ms,
            message: self.message.clone(),
        }
    }
}

/// The services Fluxbase's health endpoint reports, each published by its worker. `None` means
/// no worker checks that service (yet): it is left out of health bodies, never invented.
#[derive(Debug, Default)]
pub struct HealthBoard {
    pub database: Published<Option<CheckReport>>,
    pub realtime: Published<Option<CheckReport>>,
    pub storage: Published<Option<CheckReport>>,
    /// Fluxbase's API, as its own `GET /health` answers.
    pub api: Published<Option<CheckReport>>,
}

impl HealthBoard {
    /// The verdict of every checked service at `now`, in Fluxbase's order, then `api`.
    pub fn services(&self, now: Instant) -> Vec<(&'static str, ServiceHealth)> {
        [
            ("database", &self.database),
            ("realtime", &self.realtime),
            ("storage", &self.storage),
            ("api", &self.api),
        ]
        .into_iter()
        .filter_map(|(name, slot)| {
            slot.latest()
                .as_ref()
                .as_ref()
                .map(|report| (name, report.verdict(now)))
        })
        .collect()
    }
}

/// The overall status: the worst of the services (healthy when none is checked).
pub fn overall<'a>(services: impl IntoIterator<Item = &'a ServiceHealth>) -> Status {
    services
        .into_iter()
        .map(|service| service.status)
        .max()
        .unwrap_or(Status::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status, checked_at: Instant, last_success: Option<Instant>) -> CheckReport {
        CheckReport {
            status,
            latency: Some(Duration::from_micros(1500)),
            message: (status != Status::Healthy).then(|| "connection refused".to_owned()),
            checked_at,
            last_success,
            stale_after: Duration::from_secs(45),
            stale_status: Status::Unhealthy,
        }
    }

    #[test]
    fn a_fresh_success_is_healthy_with_its_latency() {
        let t0 = Instant::now();
        let verdict = report(Status::Healthy, t0, Some(t0)).verdict(t0 + Duration::from_secs(10));
        assert_eq!(
            verdict,
            ServiceHealth {
                status: Status::Healthy,
                latency_ms: Some(1.5),
                message: None
            }
        );
    }

    #[test]
    fn a_failure_keeps_its_status_and_message() {
        let t0 = Instant::now();
        let verdict = report(Status::Unhealthy, t0, None).verdict(t0);
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(verdict.message.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_good_result_older_than_the_stale_window_is_not_shown_as_fresh() {
        let t0 = Instant::now();
        let verdict = report(Status::Healthy, t0, Some(t0)).verdict(t0 + Duration::from_secs(46));
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(
            verdict.message.as_deref(),
            Some("no successful check for 46s; the last result is stale")
        );
    }

    #[test]
    fn overall_is_the_worst_service() {
        let healthy = ServiceHealth {
            status: Status::Healthy,
            latency_ms: None,
            message: None,
        };
        let degraded = ServiceHealth {
            status: Status::Degraded,
            ..healthy.clone()
        };
        let unhealthy = ServiceHealth {
            status: Status::Unhealthy,
            ..healthy.clone()
        };
        assert_eq!(overall([]), Status::Healthy);
        assert_eq!(overall([&healthy, &degraded]), Status::Degraded);
        assert_eq!(
            overall([&degraded, &unhealthy, &healthy]),
            Status::Unhealthy
        );
    }

    #[test]
    fn unchecked_services_are_left_out() {
        let board = HealthBoard::default();
        let t0 = Instant::now();
        assert!(board.services(t0).is_empty());
        board
            .storage
            .publish(Some(report(Status::Healthy, t0, Some(t0))));
        let names: Vec<_> = board
            .services(t0)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["storage"]);
    }
}
