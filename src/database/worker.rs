//! The database worker: every check interval it proves the database answers, counts Fluxbase's
//! connections and query activity, and, on a slower interval, reads the Fluxbase schema's
//! aggregates. It publishes families, health verdicts and a status for the JSON endpoints.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use r2d2::PooledConnection;

use super::failure::{Failure, Reason};
use super::leader::{Election, Leadership, Outcome, Role, Standing};
use super::pool::{DatabasePool, SessionManager};
use super::queries::{self, Activity, StatementKey};
use super::settings::DatabaseSettings;
use super::statements::StatementTracker;
use super::status::{DatabaseStatus, LiveReading, PoolStats, StorageTotals};
use crate::families::{ExporterFamilies, FluxbaseFamilies, StorageFamilies};
use crate::health::{CheckReport, HealthBoard, Status};
use crate::incremental::Window;
use crate::labels;
use crate::metrics::{Family, Gauge};
use crate::published::Published;
use crate::workers::Worker;

/// A job worker whose heartbeat is older than this is not active (Fluxbase's `jobs.worker_timeout`).
const JOB_WORKER_TIMEOUT_SECONDS: f64 = 30.0;
/// How far behind the newest finished job the next read starts (rows commit late).
const JOB_WINDOW_OVERLAP_SECONDS: f64 = 120.0;
/// Finished jobs read per round at most; the rest are read on the next round.
const JOB_BATCH: i64 = 5000;
/// The first retry after a failure; doubled each time, capped at the check interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

type Session = PooledConnection<SessionManager>;

/// What the worker needs besides its settings.
pub struct Outputs {
    pub fluxbase: Arc<FluxbaseFamilies>,
    pub exporter: Arc<ExporterFamilies>,
    pub health: Arc<HealthBoard>,
    pub status: Arc<Published<DatabaseStatus>>,
}

pub struct DatabaseWorker {
    settings: DatabaseSettings,
    target: String,
    pool: DatabasePool,
    interval: Duration,
    timeout: Duration,
    out: Outputs,
    statements: StatementTracker,
    /// `(operation, table)` of each statement seen; `None` for the exporter's own statements.
    statement_labels: HashMap<StatementKey, Option<(&'static str, String)>>,
    statements_state: String,
    /// Finishes already counted, by (job id, finish time in microseconds): a re-queued job that
    /// finishes again is a new finish.
    finished_jobs: Option<Window<(String, i64)>>,
    last_success: Option<Instant>,
    last_aggregates: Option<Instant>,
    failures_in_a_row: u32,
    pool_stats: PoolStats,
    /// The latest successful reading (kept, without its figures, after a failure).
    live: Option<LiveReading>,
    storage: Option<StorageTotals>,
    /// What failed in the latest round.
    error: Option<String>,
    /// Conditions already logged; a condition is logged again only after it cleared.
    logged: HashSet<String>,
    /// Who does the database-wide work (see `leader.rs`).
    election: Election,
    /// Whether the previous round led (the database-wide figures are withdrawn when it stops).
    leading: bool,
    /// Why the latest election round could not try the lock, if it could not.
    election_error: Option<String>,
    /// The election could not get a session: the round fails with this, without waiting again.
    unreachable: Option<Failure>,
}

impl DatabaseWorker {
    /// `pool` is built from `settings` and shared with the `logging.entries` reader.
    pub fn new(
        settings: DatabaseSettings,
        pool: DatabasePool,
        interval: Duration,
        timeout: Duration,
        out: Outputs,
    ) -> Self {
        let target = settings.target();
        // Fluxbase's configured pool size is known from its configuration, measured or not.
        out.fluxbase
            .db_connections_max
            .set(&[], f64::from(settings.fluxbase_max_connections));
        let worker = DatabaseWorker {
            pool_stats: PoolStats {
                max_conns: settings.pool_size,
                ..PoolStats::default()
            },
            settings,
            target,
            pool,
            interval,
            timeout,
            statements: StatementTracker::default(),
            statement_labels: HashMap::new(),
            statements_state: "unknown".to_owned(),
            finished_jobs: None,
            last_success: None,
            last_aggregates: None,
            failures_in_a_row: 0,
            live: None,
            storage: None,
            error: None,
            logged: HashSet::new(),
            election: Election::new(
                None,
                Arc::new(Leadership::new(false)),
                Arc::clone(&out.exporter),
                timeout,
            ),
            leading: true,
            election_error: None,
            unreachable: None,
            out,
        };
        worker.publish_status();
        worker
    }

    /// Coordinates this worker with the other exporters sharing the database (without it, the
    /// worker always leads, as with `--database.coordinate=false`).
    pub fn with_election(mut self, election: Election) -> Self {
        self.election = election;
        // Not leading until the first round has taken the lock.
        self.leading = false;
        self.publish_status();
        self
    }

    /// Takes a session from the pool, bounded by the check timeout.
    fn session(&mut self) -> Result<Session, Failure> {
        let asked = Instant::now();
        let session = self.pool.pool.get_timeout(self.timeout);
        let waited = asked.elapsed();
        self.pool_stats.acquire_count += 1;
        self.pool_stats.acquire_duration_ms += waited.as_millis() as u64;
        session.map_err(|_| {
            // The reason the pool could not open a session, as r2d2 saw it on its own thread;
            // a server that accepts and never answers produces none, only the wait.
            let since = self.last_success.unwrap_or(asked).min(asked);
            self.pool.failures.since(since).unwrap_or_else(|| {
                Failure::new(
                    Reason::Timeout,
                    format!(
                        "timed out after {:.1}s waiting for the server to answer",
                        waited.as_secs_f64()
                    ),
                )
            })
        })
    }

    /// The fast part of a round: liveness, connections, query activity.
    fn check(
        &mut self,
        session: &mut Session,
    ) -> Result<(Duration, Activity, Vec<String>), Failure> {
        let latency = ping(session, self.timeout)?;

        let mut problems = Vec::new();
        let activity =
            queries::activity(&mut session.client, self.settings.fluxbase_user.as_deref())
                .map_err(|err| Failure::from_postgres(&err))?;
        if let Err(problem) = self.measure_statements(session) {
            problems.push(problem);
        }
        Ok((latency, activity, problems))
    }

    /// Feeds the query families from `pg_stat_statements`, when it is there.
    fn measure_statements(&mut self, session: &mut Session) -> Result<(), String> {
        let client = &mut session.client;
        let schema = match queries::statements_schema(client) {
            Ok(Some(schema)) => schema,
            Ok(None) => {
                self.statements_unavailable("not installed");
                return Ok(());
            }
            Err(err) => {
                return Err(format!(
                    "pg_stat_statements: {}",
                    Failure::from_postgres(&err)
                ));
            }
        };
        let counts = match queries::statement_counts(
            client,
            &schema,
            self.settings.fluxbase_user.as_deref(),
        ) {
            Ok(counts) => counts,
            Err(err) => {
                let failure = Failure::from_postgres(&err);
                // Installed in the database but not preloaded into the server.
                if failure.message.contains("shared_preload_libraries") {
                    self.statements_unavailable(
                        "not loaded: add pg_stat_statements to shared_preload_libraries",
                    );
                    return Ok(());
                }
                return Err(format!("pg_stat_statements: {failure}"));
            }
        };
        let reset_at = queries::statements_reset_at(client, &schema);
        self.statements_state = "available".to_owned();
        self.clear_logged("statements");

        let activity = self.statements.update(&counts, reset_at);
        let unlabelled: Vec<StatementKey> = activity
            .iter()
            .map(|a| a.key)
            .filter(|key| !self.statement_labels.contains_key(key))
            .collect();
        if !unlabelled.is_empty() {
            let texts = queries::statement_texts(client, &schema, &unlabelled).map_err(|err| {
                format!("pg_stat_statements texts: {}", Failure::from_postgres(&err))
            })?;
            for (key, text) in texts {
                let labels = (!text.trim_start().starts_with(queries::MARKER))
                    .then(|| (labels::sql_operation(&text), labels::sql_table(&text)));
                self.statement_labels.insert(key, labels);
            }
        }
        for activity in activity {
            let Some(Some((operation, table))) = self.statement_labels.get(&activity.key) else {
                continue;
            };
            let values = [*operation, table.as_str()];
            self.out
                .fluxbase
                .db_queries_total
                .inc_by(&values, activity.calls);
            let mean_seconds = activity.total_exec_ms / 1000.0 / activity.calls as f64;
            self.out.fluxbase.db_query_duration_seconds.observe_many(
                &values,
                mean_seconds,
                activity.calls,
            );
        }
        // Forget labels of statements that left the view.
        let statements = &self.statements;
        self.statement_labels.retain(|key, _| statements.knows(key));
        Ok(())
    }

    fn statements_unavailable(&mut self, why: &str) {
        if self.log_once("statements", why) {
            log::info!(
                reason = why;
                "pg_stat_statements is unavailable; fluxbase_db_queries_total and fluxbase_db_query_duration_seconds stay empty"
            );
        }
        self.statements_state = why.to_owned();
        self.statements.clear();
        self.statement_labels.clear();
    }

    /// The slow part: the Fluxbase schema's aggregates. Each part is independent: a missing
    /// schema or table leaves that part out (logged once) without failing the others.
    fn aggregates(&mut self, session: &mut Session) -> Vec<String> {
        let client = &mut session.client;
        let parts = [
            ("storage.buckets and storage.objects", self.storage(client)),
            (
                "auth.sessions",
                publish_count(
                    &self.out.exporter.database.auth_sessions_active,
                    queries::active_sessions(client),
                ),
            ),
            (
                "auth.users",
                publish_count(
                    &self.out.exporter.database.auth_users_locked,
                    queries::locked_users(client),
                ),
            ),
            ("auth.webhook_deliveries", self.webhook_deliveries(client)),
            ("jobs.queue", self.job_queue(client)),
            ("jobs.workers", self.job_workers(client)),
        ];
        let mut problems = Vec::new();
        for (part, result) in parts {
            match result {
                Ok(()) => self.clear_logged(part),
                Err(err) => {
                    let failure = Failure::from_postgres(&err);
                    if failure.reason == Reason::Missing || failure.reason == Reason::Permission {
                        if self.log_once(part, &failure.message) {
                            log::info!(part = part, reason = failure.message.as_str(); "Fluxbase schema part cannot be read; left out");
                        }
                    } else {
                        problems.push(format!("{part}: {failure}"));
                    }
                }
            }
        }
        problems
    }

    /// `storage.buckets` and `storage.objects`: buckets, objects and bytes, as `source="database"`.
    fn storage(&mut self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        let storage = &self.out.exporter.storage;
        let totals = publish_or_clear(
            queries::bucket_totals(client),
            |buckets| {
                storage.buckets.set(&[DATABASE], buckets.len() as f64);
                storage.objects.replace(
                    &[DATABASE],
                    buckets
                        .iter()
                        .map(|b| ([b.bucket.as_str()], b.objects as f64)),
                );
                storage.bytes.replace(
                    &[DATABASE],
                    buckets
                        .iter()
                        .map(|b| ([b.bucket.as_str()], b.bytes as f64)),
                );
                StorageTotals {
                    read_at: SystemTime::now(),
                    buckets: buckets.len() as u64,
                    objects: buckets.iter().map(|b| b.objects.max(0) as u64).sum(),
                    bytes: buckets.iter().map(|b| b.bytes.max(0) as u64).sum(),
                }
            },
            || clear_storage(storage),
        );
        self.storage = totals.as_ref().ok().copied();
        totals.map(drop)
    }

    /// `auth.webhook_deliveries`: deliveries by status.
    fn webhook_deliveries(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        let family = &self.out.exporter.database.webhook_deliveries;
        publish_or_clear(
            queries::webhook_deliveries(client),
            |rows| {
                family.replace(
                    &[],
                    rows.into_iter().map(|(status, n)| ([status], n as f64)),
                )
            },
            || family.clear(),
        )
    }

    /// `jobs.queue`: pending jobs by namespace and priority, running jobs, and the jobs that
    /// finished since the previous read. The queue's gauges stay when only the finishes fail.
    fn job_queue(&mut self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        let fluxbase = &self.out.fluxbase;
        let queued = publish_or_clear(
            queries::queued_jobs(client),
            |rows| {
                let running: i64 = rows
                    .iter()
                    .filter(|row| row.status == "running")
                    .map(|row| row.count)
                    .sum();
                fluxbase.jobs_queue_depth.replace(
                    &[],
                    rows.into_iter()
                        .filter(|row| row.status == "pending")
                        .map(|row| ([row.namespace, row.priority.to_string()], row.count as f64)),
                );
                fluxbase.jobs_processing.set(&[], running as f64);
            },
            || {
                fluxbase.jobs_queue_depth.clear();
                fluxbase.jobs_processing.clear();
            },
        );
        let finished = self.count_finished_jobs(client);
        queued.and(finished)
    }

    /// `jobs.workers`: active job workers and the share of their capacity in use.
    fn job_workers(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        let fluxbase = &self.out.fluxbase;
        publish_or_clear(
            queries::job_workers(client, JOB_WORKER_TIMEOUT_SECONDS),
            |workers| {
                fluxbase.job_workers_active.set(&[], workers.active as f64);
                if workers.capacity > 0 {
                    fluxbase
                        .job_worker_utilization
                        .set(&[], workers.running_jobs as f64 / workers.capacity as f64);
                } else {
                    // No active worker: utilisation is undefined, not 0.
                    fluxbase.job_worker_utilization.clear();
                }
            },
            || {
                fluxbase.job_workers_active.clear();
                fluxbase.job_worker_utilization.clear();
            },
        )
    }

    /// Counts jobs that finished since the previous read into the jobs counters and histogram:
    /// once per finish, so a job a user re-queued counts again when it finishes again.
    fn count_finished_jobs(
        &mut self,
        client: &mut postgres::Client,
    ) -> Result<(), postgres::Error> {
        let window = match &mut self.finished_jobs {
            Some(window) => window,
            // Start from now: jobs that finished before the exporter started are not news.
            None => self.finished_jobs.insert(Window::new(
                queries::server_now(client)?,
                JOB_WINDOW_OVERLAP_SECONDS,
            )),
        };
        let jobs = queries::finished_jobs(client, window.since(), JOB_BATCH)?;
        let fluxbase = &self.out.fluxbase;
        for job in jobs {
            let finish = (job.id.clone(), (job.finished_at * 1e6).round() as i64);
            if !window.admit(finish, job.finished_at) {
                continue;
            }
            let names = [job.namespace.as_str(), job.name.as_str()];
            if job.failed {
                let reason = if job.timed_out { "timeout" } else { "error" };
                fluxbase
                    .jobs_failed_total
                    .inc(&[names[0], names[1], reason]);
            } else {
                fluxbase.jobs_completed_total.inc(&names);
            }
            if let Some(seconds) = job.duration_seconds.filter(|s| *s >= 0.0) {
                fluxbase
                    .job_execution_duration_seconds
                    .observe(&names, seconds);
            }
        }
        window.prune();
        Ok(())
    }

    /// Publishes a successful round.
    fn succeed(&mut self, now: Instant, latency: Duration, activity: Activity) {
        let fluxbase = &self.out.fluxbase;
        let exporter = &self.out.exporter;
        fluxbase
            .db_connections
            .set(&[], activity.connections as f64);
        fluxbase.db_connections_idle.set(&[], activity.idle as f64);
        exporter
            .database
            .server_max_connections
            .set(&[], activity.server_max_connections as f64);
        exporter
            .database
            .realtime_listeners
            .set(&[], activity.listeners as f64);

        self.reachable(now, latency);
        let stale_after = self.stale_after();
        let listening = activity.listeners > 0;
        self.out.health.realtime.publish(Some(CheckReport {
            status: if listening { Status::Healthy } else { Status::Degraded },
            latency: None,
            message: (!listening).then(|| {
                "no database session is listening on fluxbase_changes: Fluxbase's realtime change feed is not running".to_owned()
            }),
            checked_at: now,
            last_success: Some(now),
            stale_after,
            stale_status: Status::Degraded,
        }));
        self.live = Some(LiveReading {
            read_at: SystemTime::now(),
            latency,
            activity: Some(activity),
        });
    }

    /// Publishes a failed round: unhealthy, and no figure left standing as if just measured.
    fn fail(&mut self, now: Instant, failure: &Failure) {
        let message = format!("cannot reach {}: {}", self.target, failure.message);
        if self.failures_in_a_row == 0 {
            log::warn!(database = self.target.as_str(), reason = failure.reason.as_str(), error = failure.message.as_str(); "database check failed");
        }
        self.failures_in_a_row += 1;
        self.clear_measured();
        let stale_after = self.stale_after();
        self.out.health.database.publish(Some(CheckReport {
            status: Status::Unhealthy,
            latency: None,
            message: Some(message.clone()),
            checked_at: now,
            last_success: self.last_success,
            stale_after,
            stale_status: Status::Unhealthy,
        }));
        self.out.health.realtime.publish(Some(CheckReport {
            status: Status::Degraded,
            latency: None,
            message: Some(
                "cannot check Fluxbase's realtime change feed: the database is unreachable"
                    .to_owned(),
            ),
            checked_at: now,
            last_success: self.last_success,
            stale_after,
            stale_status: Status::Degraded,
        }));
        // The time of the last good reading stays; its figures do not (they are not current).
        self.live = self.live.map(|reading| LiveReading {
            activity: None,
            ..reading
        });
        self.error = Some(message);
    }

    /// Removes every gauge the database feeds (counters keep their totals).
    fn clear_measured(&mut self) {
        let fluxbase = &self.out.fluxbase;
        let exporter = &self.out.exporter;
        fluxbase.db_connections.clear();
        fluxbase.db_connections_idle.clear();
        fluxbase.jobs_queue_depth.clear();
        fluxbase.jobs_processing.clear();
        fluxbase.job_workers_active.clear();
        fluxbase.job_worker_utilization.clear();
        exporter.database.server_max_connections.clear();
        exporter.database.realtime_listeners.clear();
        exporter.database.auth_sessions_active.clear();
        exporter.database.auth_users_locked.clear();
        exporter.database.webhook_deliveries.clear();
        clear_storage(&exporter.storage);
        self.storage = None;
    }

    fn publish_status(&self) {
        let state = self.pool.pool.state();
        self.out.status.publish(DatabaseStatus {
            configured: true,
            target: self.target.clone(),
            pool: PoolStats {
                acquired_conns: state.connections - state.idle_connections,
                idle_conns: state.idle_connections,
                total_conns: state.connections,
                ..self.pool_stats
            },
            live: self.live,
            fluxbase_max_connections: self.settings.fluxbase_max_connections,
            statements: self.statements_state.clone(),
            role: Some(if self.leading {
                Role::Leader
            } else {
                Role::Follower
            }),
            storage: self.storage,
            error: self.error.clone(),
        });
    }

    /// A verdict older than this is stale: three check intervals plus the time a check may take.
    fn stale_after(&self) -> Duration {
        self.interval * 3 + self.timeout
    }

    fn log_once(&mut self, part: &str, condition: &str) -> bool {
        self.logged.insert(format!("{part}\u{0}{condition}"))
    }

    fn clear_logged(&mut self, part: &str) {
        let prefix = format!("{part}\u{0}");
        self.logged.retain(|key| !key.starts_with(&prefix));
    }
}

/// The `source` label value of the storage series this worker feeds.
const DATABASE: &str = "database";

/// Withdraws the storage series this worker feeds (`source="database"`).
fn clear_storage(storage: &StorageFamilies) {
    for family in [&storage.buckets, &storage.objects, &storage.bytes] {
        family.clear_scope(&[DATABASE]);
    }
}

/// Publishes a schema part's reading with `publish`, or, when it could not be read, withdraws
/// what the part feeds with `clear`: a figure is either this round's or absent, never an older
/// round's shown as current. Returns what `publish` returned, or the error.
fn publish_or_clear<T, R, E>(
    read: Result<T, E>,
    publish: impl FnOnce(T) -> R,
    clear: impl FnOnce(),
) -> Result<R, E> {
    match read {
        Ok(reading) => Ok(publish(reading)),
        Err(err) => {
            clear();
            Err(err)
        }
    }
}

/// Publishes a part that is one count (`auth.sessions`: sessions not yet expired; `auth.users`:
/// users locked out) into its unlabelled gauge, or clears the gauge.
fn publish_count(
    family: &Family<Gauge>,
    read: Result<i64, postgres::Error>,
) -> Result<(), postgres::Error> {
    publish_or_clear(read, |n| family.set(&[], n as f64), || family.clear())
}

/// The liveness ping: a client-side-bounded check that the session answers, then a timed
/// `SELECT 1`. A session that failed either is discarded.
fn ping(session: &mut Session, timeout: Duration) -> Result<Duration, Failure> {
    // Bounded by the check timeout on the client side, so a server that stopped answering
    // fails the check instead of holding the worker.
    if let Err(err) = session.client.is_valid(timeout) {
        session.discard();
        return Err(Failure::from_postgres(&err));
    }
    let started = Instant::now();
    session
        .client
        .simple_query("/* fluxbase-exporter */ SELECT 1")
        .map_err(|err| {
            session.discard();
            Failure::from_postgres(&err)
        })?;
    Ok(started.elapsed())
}

/// Coordination of a fleet (see `leader.rs`): what a round does when this exporter follows.
impl DatabaseWorker {
    /// Runs a round of the election and says whether this round does the database-wide work.
    ///
    /// On giving up the lead, every database-wide figure is withdrawn at once (a former leader
    /// never shows stale ones) and the readings' starting points are forgotten, so that leading
    /// again starts as a freshly started exporter does: a new `pg_stat_statements` baseline,
    /// finished jobs from then on, the aggregates at once.
    fn lead(&mut self) -> bool {
        let outcome = self.election.round();
        let leads = outcome == Outcome::Leads;
        if outcome == Outcome::Follows {
            // Another exporter runs the aggregates: this one's check series would only age.
            // (When the lock could not be tried, e.g. the database is down, they stay.)
            self.out.exporter.checks.forget("database_aggregates");
        }
        (self.election_error, self.unreachable) = match outcome {
            Outcome::Failed(message) => (Some(message), None),
            Outcome::Unreachable(failure) => (None, Some(failure)),
            Outcome::Leads | Outcome::Follows => (None, None),
        };
        if self.leading && !leads {
            self.clear_measured();
            self.out.health.realtime.publish(None);
            self.statements = StatementTracker::default();
            self.finished_jobs = None;
            self.last_aggregates = None;
            self.live = self.live.map(|reading| LiveReading {
                activity: None,
                ..reading
            });
        }
        let changed = self.leading != leads;
        self.leading = leads;
        if changed {
            // `database.role` changes with the gauge, not at the end of the round.
            self.publish_status();
        }
        leads
    }

    /// The database answered the liveness ping: health `database` is healthy, and a recovery is
    /// logged once.
    fn reachable(&mut self, now: Instant, latency: Duration) {
        if self.failures_in_a_row > 0 {
            log::info!(database = self.target.as_str(); "database reachable again");
        }
        self.failures_in_a_row = 0;
        self.last_success = Some(now);
        self.out.health.database.publish(Some(CheckReport {
            status: Status::Healthy,
            latency: Some(latency),
            message: None,
            checked_at: now,
            last_success: Some(now),
            stale_after: self.stale_after(),
            stale_status: Status::Unhealthy,
        }));
    }

    /// A follower's round: its own liveness ping and `database` health, nothing database-wide
    /// (no `pg_stat_activity`, no `pg_stat_statements`, no aggregates, no `realtime` verdict
    /// while the database answers). Also the round of an exporter that could not try the lock,
    /// e.g. because the database is down: then it fails exactly as a leader's round does.
    fn follow(&mut self, now: Instant) {
        let started = Instant::now();
        let pinged = match self.unreachable.take() {
            Some(failure) => Err(failure),
            None => self
                .session()
                .and_then(|mut session| ping(&mut session, self.timeout)),
        };
        match pinged {
            // As for a leader: realtime cannot be checked by anyone while the database is
            // unreachable, and a lone exporter reports exactly what it did before coordination.
            Err(failure) => self.fail(now, &failure),
            Ok(latency) => {
                // The leader checks realtime.
                self.out.health.realtime.publish(None);
                self.statements_state = "read by the leader".to_owned();
                self.reachable(now, latency);
                self.live = Some(LiveReading {
                    read_at: SystemTime::now(),
                    latency,
                    activity: None,
                });
                self.error = self
                    .election_error
                    .as_ref()
                    .map(|message| format!("leader election: {message}"));
            }
        }
        let took = started.elapsed();
        let finished = SystemTime::now();
        let reachable = self.failures_in_a_row == 0;
        self.out
            .exporter
            .checks
            .record("database", reachable, took, finished);
        // Nobody is known to lead (the lock could not be tried) and the database does not answer:
        // the aggregates could not run here either, and a check that could not run has failed.
        // (While another exporter leads, their series are that exporter's and are gone here.)
        if !reachable && self.election.leadership().standing() != Standing::Follows {
            self.out
                .exporter
                .checks
                .record("database_aggregates", false, took, finished);
        }
        self.publish_status();
    }
}

impl Worker for DatabaseWorker {
    fn name(&self) -> &'static str {
        "database"
    }

    fn run_once(&mut self, now: Instant) {
        if !self.lead() {
            return self.follow(now);
        }
        let started = Instant::now();
        let outcome = self
            .session()
            .and_then(|mut session| self.check(&mut session).map(|found| (session, found)));
        match outcome {
            Err(failure) => {
                self.fail(now, &failure);
                let took = started.elapsed();
                let finished = SystemTime::now();
                self.out
                    .exporter
                    .checks
                    .record("database", false, took, finished);
                // The aggregates cannot be read either, and their gauges are gone: a check that
                // could not run has failed.
                self.out
                    .exporter
                    .checks
                    .record("database_aggregates", false, took, finished);
            }
            Ok((mut session, (latency, activity, mut problems))) => {
                self.succeed(now, latency, activity);
                self.out.exporter.checks.record(
                    "database",
                    problems.is_empty(),
                    started.elapsed(),
                    SystemTime::now(),
                );
                let due = self.last_aggregates.is_none_or(|at| {
                    now.saturating_duration_since(at) >= self.settings.aggregates_interval
                });
                if due {
                    let started = Instant::now();
                    let failed = self.aggregates(&mut session);
                    // A failure is retried on the next check interval, not the next aggregates one.
                    if failed.is_empty() {
                        self.last_aggregates = Some(now);
                    }
                    self.out.exporter.checks.record(
                        "database_aggregates",
                        failed.is_empty(),
                        started.elapsed(),
                        SystemTime::now(),
                    );
                    problems.extend(failed);
                }
                for problem in &problems {
                    log::warn!(error = problem.as_str(); "database measurement failed");
                }
                self.error = (!problems.is_empty()).then(|| problems.join("; "));
            }
        }
        self.publish_status();
    }

    fn interval(&self) -> Duration {
        if self.failures_in_a_row == 0 {
            return self.interval;
        }
        // Retry soon after a failure, backing off to the check interval.
        let doublings = (self.failures_in_a_row - 1).min(16);
        FIRST_RETRY
            .saturating_mul(1 << doublings)
            .min(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::publish_or_clear;
    use std::cell::Cell;

    #[test]
    fn publish_or_clear_publishes_a_reading_and_clears_on_a_failure() {
        let published = Cell::new(None);
        let cleared = Cell::new(false);
        let read: Result<u32, &str> = Ok(7);
        let result = publish_or_clear(
            read,
            |n| {
                published.set(Some(n));
                n * 2
            },
            || cleared.set(true),
        );
        assert_eq!(
            (result, published.get(), cleared.get()),
            (Ok(14), Some(7), false)
        );

        let published = Cell::new(None);
        let read: Result<u32, &str> = Err("relation \"jobs.queue\" does not exist");
        let result = publish_or_clear(read, |n| published.set(Some(n)), || cleared.set(true));
        assert_eq!(result, Err("relation \"jobs.queue\" does not exist"));
        assert_eq!((published.get(), cleared.get()), (None, true));
    }
}
