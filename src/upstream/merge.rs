//! The merge table: for every Fluxbase family, whether its samples come from Fluxbase's own
//! metrics endpoint (when one is configured) or from the exporter's own measurements.
//!
//! **This is the one place the merge is decided.** README's and ARCHITECTURE.md's merge tables
//! copy it (a docs test compares README's with [`markdown_table`]). The choice is fixed at
//! start-up: whether an upstream is configured decides each family's source for the life of
//! the process, and nothing switches while running.

use crate::catalog::{self, FamilyDesc};

/// Where a family's samples come from while an upstream is configured. Without an upstream,
/// every family is the exporter's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The exporter's own measurement (database, storage root, event sources).
    Own,
    /// Fluxbase's own samples, label sets and values unchanged. The event sources stop feeding
    /// the family, so nothing is counted twice.
    PassThrough,
    /// Fluxbase's own uptime: scrape time minus its `process_start_time_seconds`.
    UpstreamUptime,
}

/// One family of the table.
#[derive(Debug)]
pub struct Row {
    pub family: &'static FamilyDesc,
    pub with_upstream: Origin,
    /// Where the exporter's own figures come from (its source without an upstream, and with
    /// one for [`Origin::Own`]).
    pub own_source: &'static str,
    /// The HELP text of a passed-through family: the reference's, which is Fluxbase's own,
    /// plus where it comes from. Empty for the others (their catalogue HELP stays).
    pub help: &'static str,
}

const fn own(family: &'static FamilyDesc, own_source: &'static str) -> Row {
    Row {
        family,
        with_upstream: Origin::Own,
        own_source,
        help: "",
    }
}

const fn passed(family: &'static FamilyDesc, own_source: &'static str, help: &'static str) -> Row {
    Row {
        family,
        with_upstream: Origin::PassThrough,
        own_source,
        help,
    }
}

const LOGS: &str = "event sources (logs, `logging.entries`)";
const NOTHING: &str = "nothing outside Fluxbase knows it (HELP and TYPE only)";
const STATEMENTS: &str = "database (`pg_stat_statements`)";
const ACTIVITY: &str = "database (`pg_stat_activity`, Fluxbase's pool setting)";
const JOBS: &str = "database (`jobs.queue`, `jobs.workers`)";

/// Every Fluxbase family, in the catalogue's order ([`catalog::FLUXBASE`]).
pub const TABLE: &[Row] = &[
    passed(
        &catalog::HTTP_REQUESTS_TOTAL,
        LOGS,
        "Total number of HTTP requests (Fluxbase's own count, from its metrics endpoint)",
    ),
    passed(
        &catalog::HTTP_REQUEST_DURATION_SECONDS,
        LOGS,
        "HTTP request latency in seconds (Fluxbase's own, from its metrics endpoint)",
    ),
    passed(
        &catalog::HTTP_REQUEST_SIZE_BYTES,
        NOTHING,
        "HTTP request size in bytes (Fluxbase's own, from its metrics endpoint)",
    ),
    passed(
        &catalog::HTTP_RESPONSE_SIZE_BYTES,
        LOGS,
        "HTTP response size in bytes (Fluxbase's own, from its metrics endpoint)",
    ),
    passed(
        &catalog::HTTP_REQUESTS_IN_FLIGHT,
        NOTHING,
        "Current number of HTTP requests being processed (Fluxbase's own, from its metrics \
         endpoint)",
    ),
    own(&catalog::DB_QUERIES_TOTAL, STATEMENTS),
    own(&catalog::DB_QUERY_DURATION_SECONDS, STATEMENTS),
    own(&catalog::DB_CONNECTIONS, ACTIVITY),
    own(&catalog::DB_CONNECTIONS_IDLE, ACTIVITY),
    own(&catalog::DB_CONNECTIONS_MAX, ACTIVITY),
    passed(
        &catalog::REALTIME_CONNECTIONS,
        NOTHING,
        "Current number of WebSocket connections (Fluxbase's own, from its metrics endpoint; \
         updated when a connection comes or goes)",
    ),
    passed(
        &catalog::REALTIME_CHANNELS,
        NOTHING,
        "Current number of active channels (Fluxbase's own, from its metrics endpoint; updated \
         when a connection comes or goes)",
    ),
    passed(
        &catalog::REALTIME_SUBSCRIPTIONS,
        NOTHING,
        "Current number of subscriptions (Fluxbase's own, from its metrics endpoint; updated \
         when a connection comes or goes)",
    ),
    passed(
        &catalog::REALTIME_MESSAGES_TOTAL,
        NOTHING,
        "Total number of realtime messages sent (Fluxbase's own count, from its metrics \
         endpoint)",
    ),
    passed(
        &catalog::REALTIME_CONNECTION_ERRORS_TOTAL,
        NOTHING,
        "Total number of WebSocket connection errors (Fluxbase's own count, from its metrics \
         endpoint)",
    ),
    own(&catalog::STORAGE_BYTES_TOTAL, LOGS),
    own(&catalog::STORAGE_OPERATIONS_TOTAL, LOGS),
    own(&catalog::STORAGE_OPERATION_DURATION_SECONDS, LOGS),
    passed(
        &catalog::AUTH_ATTEMPTS_TOTAL,
        LOGS,
        "Total number of authentication attempts (Fluxbase's own count, from its metrics \
         endpoint)",
    ),
    passed(
        &catalog::AUTH_SUCCESS_TOTAL,
        LOGS,
        "Total number of successful authentications (Fluxbase's own count, from its metrics \
         endpoint)",
    ),
    passed(
        &catalog::AUTH_FAILURE_TOTAL,
        LOGS,
        "Total number of failed authentications (Fluxbase's own count, from its metrics \
         endpoint)",
    ),
    passed(
        &catalog::AUTH_TOKENS_ISSUED_TOTAL,
        LOGS,
        "Total number of auth tokens issued (Fluxbase's own count, from its metrics endpoint: \
         access and refresh on each password sign-in)",
    ),
    passed(
        &catalog::RATE_LIMIT_HITS_TOTAL,
        LOGS,
        "Total number of rate limit hits (Fluxbase's own count, from its metrics endpoint)",
    ),
    Row {
        family: &catalog::SYSTEM_UPTIME_SECONDS,
        with_upstream: Origin::UpstreamUptime,
        own_source: "the exporter's own uptime (it cannot see Fluxbase's process)",
        help: "System uptime in seconds (Fluxbase's process, from its process_start_time_seconds, \
               exact at scrape time)",
    },
    own(&catalog::JOBS_QUEUE_DEPTH, JOBS),
    own(&catalog::JOBS_PROCESSING, JOBS),
    own(&catalog::JOBS_COMPLETED_TOTAL, JOBS),
    own(&catalog::JOBS_FAILED_TOTAL, JOBS),
    own(&catalog::JOB_EXECUTION_DURATION_SECONDS, JOBS),
    own(&catalog::JOB_WORKERS_ACTIVE, JOBS),
    own(&catalog::JOB_WORKER_UTILIZATION, JOBS),
];

/// The row of the family named `name`, with its index in [`TABLE`].
pub fn row(name: &str) -> Option<(usize, &'static Row)> {
    TABLE
        .iter()
        .enumerate()
        .find(|(_, row)| row.family.name == name)
}

/// The merge table as README shows it.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| family | without an upstream | with an upstream |\n|---|---|---|\n");
    for row in TABLE {
        let with = match row.with_upstream {
            Origin::Own => "the same",
            Origin::PassThrough => "**Fluxbase's endpoint**, passed through",
            Origin::UpstreamUptime => {
                "**Fluxbase's endpoint**: scrape time minus its `process_start_time_seconds`"
            }
        };
        table.push_str(&format!(
            "| `{}` | {} | {with} |\n",
            row.family.name, row.own_source
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_catalogue_in_order() {
        let names: Vec<&str> = TABLE.iter().map(|row| row.family.name).collect();
        let catalogue: Vec<&str> = catalog::FLUXBASE.iter().map(|desc| desc.name).collect();
        assert_eq!(names, catalogue);
    }

    #[test]
    fn passed_through_families_are_those_fluxbase_feeds_correctly() {
        let passed: Vec<&str> = TABLE
            .iter()
            .filter(|row| row.with_upstream == Origin::PassThrough)
            .map(|row| row.family.name)
            .collect();
        assert_eq!(passed.len(), 15, "{passed:?}");
        for name in &passed {
            assert!(
                name.starts_with("fluxbase_http_")
                    || name.starts_with("fluxbase_realtime_")
                    || name.starts_with("fluxbase_auth_")
                    || name.starts_with("fluxbase_rate_limit_"),
                "{name}"
            );
        }
        for row in TABLE {
            assert_eq!(
                row.help.is_empty(),
                row.with_upstream == Origin::Own,
                "{}",
                row.family.name
            );
        }
    }
}
