//! Coordination of a fleet: exporters that share a database elect one of themselves, the
//! leader, with a session-level advisory lock, and only the leader does the database-wide work
//! (`pg_stat_activity`, `pg_stat_statements`, the schema aggregates, `logging.entries`).
//!
//! The lock is `pg_try_advisory_lock(LOCK_KEY)`, held on a session of its own (one of the
//! `--database.pool-size` sessions). The database worker runs [`Election::round`] at the top of
//! every round: a leader proves its lock session still answers, a follower tries the lock
//! again. The lock is the server's: it goes with the session, so a leader that dies, or whose
//! session the server closes, frees it, and a follower takes it at its next round.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use sha2::{Digest, Sha256};

use super::failure::{Failure, Reason};
use super::pool::{DatabasePool, SessionManager};
use crate::families::ExporterFamilies;

/// The name the lock key is derived from: every exporter of every version agrees on it.
pub const LOCK_NAME: &str = "fluxbase-exporter";

/// The advisory lock key: the first eight bytes of SHA-256(`LOCK_NAME`), big-endian, as a
/// signed 64-bit integer. In `pg_locks` it shows as `locktype = 'advisory'`, `classid` its
/// high 32 bits, `objid` its low 32 bits, `objsubid = 1`.
pub fn lock_key() -> i64 {
    let digest = Sha256::digest(LOCK_NAME.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// This exporter's role, as the JSON's `database.role` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// Whether this exporter leads, shared by the database worker (which decides) and the
/// `logging.entries` reader (which asks, and checks on the server before it reads).
#[derive(Debug)]
pub struct Leadership {
    /// `--database.coordinate=false`: always the leader, no lock.
    always: bool,
    /// The backend pid of the session holding the lock while leading; 0 while following.
    /// `Relaxed` is enough: it is one independent value, and a reader that acts on a stale
    /// one is caught by [`Leadership::confirm`], which asks the server.
    lock_pid: AtomicI32,
    /// What the latest election round found, as a [`Standing`]. `Relaxed`: one independent
    /// value, read only to decide what a reader reports.
    standing: AtomicU8,
}

/// What the latest election round found, for the readers that only ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No round has run yet.
    Undecided = 0,
    Leads = 1,
    /// Another exporter holds the lock.
    Follows = 2,
    /// The lock could not be tried (the database is unreachable, or the statement failed).
    Unknown = 3,
}

impl Leadership {
    pub fn new(coordinate: bool) -> Self {
        Leadership {
            always: !coordinate,
            lock_pid: AtomicI32::new(0),
            standing: AtomicU8::new(Standing::Undecided as u8),
        }
    }

    /// What the latest election round found (without coordination: always `Leads`).
    pub fn standing(&self) -> Standing {
        if self.always {
            return Standing::Leads;
        }
        match self.standing.load(Ordering::Relaxed) {
            1 => Standing::Leads,
            2 => Standing::Follows,
            3 => Standing::Unknown,
            _ => Standing::Undecided,
        }
    }

    /// Whether this exporter led as of the database worker's latest round.
    pub fn leads(&self) -> bool {
        self.always || self.lock_pid.load(Ordering::Relaxed) != 0
    }

    /// Whether this exporter still holds the lock, asked of the server on `client` (any
    /// session): a leader whose lock session died since the database worker's latest round
    /// learns it here, before reading what the new leader reads. Without coordination, always
    /// `true` and no statement is run; an error answers `false`.
    pub fn confirm(&self, client: &mut postgres::Client) -> bool {
        if self.always {
            return true;
        }
        let pid = self.lock_pid.load(Ordering::Relaxed);
        if pid == 0 {
            return false;
        }
        client
            .query_one(
                "/* fluxbase-exporter */ SELECT EXISTS (SELECT 1 FROM pg_locks \
                 WHERE locktype = 'advisory' AND granted AND pid = $1)",
                &[&pid],
            )
            .is_ok_and(|row| row.get::<_, bool>(0))
    }

    /// [`Leadership::confirm`] on a session of `pool`, taken within `timeout`; no session is
    /// taken when the answer is known without one.
    pub fn confirm_on(&self, pool: &DatabasePool, timeout: Duration) -> bool {
        if self.always {
            return true;
        }
        if !self.leads() {
            return false;
        }
        pool.pool
            .get_timeout(timeout)
            .is_ok_and(|mut session| self.confirm(&mut session.client))
    }

    fn set(&self, lock_pid: i32) {
        self.lock_pid.store(lock_pid, Ordering::Relaxed);
    }
}

/// The election: the lock session while leading, and the pool it comes from.
pub struct Election {
    /// `None`: `--database.coordinate=false`.
    pool: Option<DatabasePool>,
    held: Option<PooledConnection<SessionManager>>,
    leadership: Arc<Leadership>,
    exporter: Arc<ExporterFamilies>,
    timeout: Duration,
    key: i64,
    /// Whether "following" was logged since this exporter last led or failed to try.
    following_logged: bool,
}

/// What a round of the election found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Leads (took the lock now, or its lock session still answers).
    Leads,
    /// Another session holds the lock.
    Follows,
    /// The lock statement failed: not leading.
    Failed(String),
    /// No session could be had within the check timeout: the database is unreachable (the
    /// worker reports this failure instead of waiting out the timeout a second time).
    Unreachable(Failure),
}

impl Election {
    /// `pool` is [`super::pool::build_lock`]'s (`None` without coordination).
    pub fn new(
        pool: Option<DatabasePool>,
        leadership: Arc<Leadership>,
        exporter: Arc<ExporterFamilies>,
        timeout: Duration,
    ) -> Self {
        Election {
            pool,
            held: None,
            leadership,
            exporter,
            timeout,
            key: lock_key(),
            following_logged: false,
        }
    }

    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// Once per database round, before any database-wide work: keeps or takes the lead.
    ///
    /// A leader proves that its lock session still answers (bounded by the check timeout on
    /// the client side); if it does not, the session is closed and the lead is given up at
    /// once. A follower tries `pg_try_advisory_lock` again, which never waits. Every step is
    /// bounded by the check timeout.
    pub fn round(&mut self) -> Outcome {
        let Some(pool) = &self.pool else {
            return self.publish(Outcome::Leads);
        };
        if let Some(held) = &mut self.held {
            match held.client.is_valid(self.timeout) {
                Ok(()) => return self.publish(Outcome::Leads),
                Err(err) => {
                    held.discard();
                    self.held = None;
                    let failure = Failure::from_postgres(&err);
                    log::warn!(reason = failure.reason.as_str(), error = failure.message.as_str(); "the session holding the leader lock broke; no longer leading");
                }
            }
        }
        let asked = Instant::now();
        let mut session = match pool.pool.get_timeout(self.timeout) {
            Ok(session) => session,
            Err(_) => {
                // The reason r2d2 saw on its own thread; a server that never answers gives none.
                let failure = pool.failures.since(asked).unwrap_or_else(|| {
                    Failure::new(
                        Reason::Timeout,
                        format!(
                            "timed out after {:.1}s waiting for the server to answer",
                            asked.elapsed().as_secs_f64()
                        ),
                    )
                });
                return self.publish(Outcome::Unreachable(failure));
            }
        };
        let tried = session.client.query_one(
            "/* fluxbase-exporter */ SELECT pg_try_advisory_lock($1), pg_backend_pid()",
            &[&self.key],
        );
        match tried {
            Ok(row) if row.get::<_, bool>(0) => {
                let pid: i32 = row.get(1);
                log::info!(lock_key = self.key, backend_pid = pid; "took the leader lock: this exporter does the database-wide work");
                // The server notices a vanished exporter (host down, network cut) within about
                // 25 s and frees the lock, instead of after the operating system's two hours.
                let _ = session.client.batch_execute(
                    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3",
                );
                self.leadership.set(pid);
                self.held = Some(session);
                self.publish(Outcome::Leads)
            }
            // The session goes back to the election's pool for the next try.
            Ok(_) => self.publish(Outcome::Follows),
            Err(err) => {
                session.discard();
                let failure = Failure::from_postgres(&err);
                self.publish(Outcome::Failed(format!("leader lock: {failure}")))
            }
        }
    }

    fn publish(&mut self, outcome: Outcome) -> Outcome {
        let leads = outcome == Outcome::Leads;
        if outcome == Outcome::Follows && !std::mem::replace(&mut self.following_logged, true) {
            log::info!(lock_key = self.key; "another exporter holds the leader lock: following (liveness and health only)");
        } else if outcome != Outcome::Follows {
            self.following_logged = false;
        }
        if !leads {
            self.leadership.set(0);
        }
        let standing = match outcome {
            Outcome::Leads => Standing::Leads,
            Outcome::Follows => Standing::Follows,
            Outcome::Failed(_) | Outcome::Unreachable(_) => Standing::Unknown,
        };
        self.leadership
            .standing
            .store(standing as u8, Ordering::Relaxed);
        self.exporter
            .database
            .leader
            .set(&[], if leads { 1.0 } else { 0.0 });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_is_the_documented_value() {
        // README and ARCHITECTURE.md give this number; DBAs look for it in pg_locks.
        assert_eq!(lock_key(), LOCK_KEY_DOCUMENTED);
    }

    const LOCK_KEY_DOCUMENTED: i64 = -5_000_505_657_677_385_799;

    #[test]
    fn without_coordination_the_exporter_always_leads_and_confirms_without_a_statement() {
        let leadership = Leadership::new(false);
        assert!(leadership.leads());
        leadership.set(0);
        assert!(leadership.leads());
    }

    #[test]
    fn with_coordination_it_follows_until_it_holds_the_lock() {
        let leadership = Leadership::new(true);
        assert!(!leadership.leads());
        leadership.set(4242);
        assert!(leadership.leads());
        leadership.set(0);
        assert!(!leadership.leads());
        assert_eq!(Role::Leader.as_str(), "leader");
        assert_eq!(Role::Follower.as_str(), "follower");
    }
}
