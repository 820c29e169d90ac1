//! The exporter's connection pool: at most `--database.pool-size` sessions, each set up with
//! `application_name`, statement and lock timeouts below the check timeout.
//!
//! Connections are opened on r2d2's own threads, so a server that accepts TCP and never answers
//! blocks one of those threads, not the worker: the worker's wait is bounded by the check
//! timeout, and r2d2 never has more connections (open or opening) than the pool size.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use r2d2::{HandleError, ManageConnection, Pool};
use r2d2_postgres::PostgresConnectionManager;
use scheduled_thread_pool::ScheduledThreadPool;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::failure::Failure;
use super::settings::DatabaseSettings;
use super::tls;

/// One session of the pool.
pub struct Session {
    pub client: postgres::Client,
    broken: bool,
}

impl Session {
    /// Makes the pool close this session instead of reusing it (after an error that may have
    /// left it in an unknown state).
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

/// Opens sessions and decides whether one may be reused.
pub struct SessionManager {
    inner: PostgresConnectionManager<MakeRustlsConnect>,
    setup: String,
    timeout: Duration,
}

impl ManageConnection for SessionManager {
    type Connection = Session;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Session, postgres::Error> {
        let mut client = self.inner.connect()?;
        client.batch_execute(&self.setup)?;
        // Keep the exporter's own queries out of pg_stat_statements where the role may (a
        // superuser); elsewhere they are recognised by their leading comment.
        let _ = client.batch_execute("SET pg_stat_statements.track = 'none'");
        Ok(Session {
            client,
            broken: false,
        })
    }

    fn is_valid(&self, session: &mut Session) -> Result<(), postgres::Error> {
        session.client.is_valid(self.timeout)
    }

    fn has_broken(&self, session: &mut Session) -> bool {
        session.broken || session.client.is_closed()
    }
}

/// The latest failure to open a session, as r2d2 reports it from its own threads.
#[derive(Clone, Default)]
pub struct ConnectFailures {
    latest: Arc<Mutex<Option<(Instant, Failure)>>>,
}

impl ConnectFailures {
    /// The latest failure if it happened at or after `since`.
    pub fn since(&self, since: Instant) -> Option<Failure> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest
            .as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, failure)| failure.clone())
    }
}

#[derive(Debug)]
struct RecordFailures(ConnectFailures);

impl std::fmt::Debug for ConnectFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectFailures")
    }
}

impl HandleError<postgres::Error> for RecordFailures {
    fn handle_error(&self, error: postgres::Error) {
        let failure = Failure::from_postgres(&error);
        log::debug!(reason = failure.reason.as_str(), error = failure.message.as_str(); "database connection attempt failed");
        *self.0.latest.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), failure));
    }
}

/// The pool and what it reports about failed connection attempts. Cheap to clone: clones share
/// the same sessions (the database worker and the `logging.entries` reader use one pool).
#[derive(Clone)]
pub struct DatabasePool {
    pub pool: Pool<SessionManager>,
    pub failures: ConnectFailures,
}

/// Builds the pool without connecting: a database that is down at start-up is not fatal.
///
/// With `--database.coordinate` the pool holds one session fewer than `--database.pool-size`:
/// that one is the election's ([`build_lock`]), so the exporter never holds more than
/// `--database.pool-size` sessions in all.
pub fn build(settings: &DatabaseSettings, check_timeout: Duration) -> Result<DatabasePool, String> {
    let size = settings.pool_size - u32::from(settings.coordinate);
    build_sized(settings, check_timeout, size.max(1), "db-connect-{}")
}

/// The election's own pool of one session, which holds the leader lock while the exporter
/// leads; `None` without `--database.coordinate`. Opened on r2d2's thread like every session,
/// so a server that never answers blocks that thread, not the database worker.
pub fn build_lock(
    settings: &DatabaseSettings,
    check_timeout: Duration,
) -> Result<Option<DatabasePool>, String> {
    if !settings.coordinate {
        return Ok(None);
    }
    build_sized(settings, check_timeout, 1, "db-lock-connect-{}").map(Some)
}

fn build_sized(
    settings: &DatabaseSettings,
    check_timeout: Duration,
    size: u32,
    thread_names: &str,
) -> Result<DatabasePool, String> {
    let connector = tls::connector(settings.ssl_mode, settings.root_cert.as_deref())?;
    // Server-side limits below the check timeout, so a slow query is cancelled by the server
    // before the check gives up on it.
    let statement_timeout = check_timeout.mul_f64(0.8).max(Duration::from_millis(100));
    let lock_timeout = check_timeout.mul_f64(0.5).max(Duration::from_millis(50));
    let setup = format!(
        "SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {}",
        statement_timeout.as_millis(),
        lock_timeout.as_millis(),
        check_timeout.as_millis() * 2,
    );
    let failures = ConnectFailures::default();
    let threads = size as usize;
    let pool = Pool::builder()
        .max_size(size)
        // No idle connections are kept warm; one is opened when a check needs it and closed
        // after sitting idle for a few check intervals.
        .min_idle(Some(0))
        .idle_timeout(Some(Duration::from_secs(300)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .connection_timeout(check_timeout)
        // The liveness check is the first thing done with a session; a second test is waste.
        .test_on_check_out(false)
        .error_handler(Box::new(RecordFailures(failures.clone())))
        .thread_pool(Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(threads)
                .thread_name_pattern(thread_names)
                .build(),
        ))
        .build_unchecked(SessionManager {
            inner: PostgresConnectionManager::new(settings.postgres.clone(), connector),
            setup,
            timeout: check_timeout,
        });
    Ok(DatabasePool { pool, failures })
}
