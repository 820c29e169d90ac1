//! The reading position in `logging.entries`: a cursor on PostgreSQL transaction snapshots, so
//! that every committed row is counted exactly once however late it commits and however many
//! rows arrive, with memory that does not grow with the rate.
//!
//! # Why snapshots
//!
//! Fluxbase's writer stamps a row's `timestamp` when it parses the log line, gathers rows into
//! batches (100 rows, flushed at least every second) and inserts each batch in a transaction of
//! its own. Rows therefore become visible late and out of timestamp order, and no time-based
//! position can tell a late row from one already counted without remembering ids.
//!
//! Each round instead takes a *target* snapshot `T` (`pg_current_snapshot()`) and counts the
//! rows whose inserting transaction is visible in `T` but was not visible in the previous
//! target (the *seen* snapshot). A transaction becomes visible in exactly one target, so each
//! of its rows is counted in exactly one round. Nothing is remembered per row: the state is two
//! snapshots and a short history of when targets were taken.
//!
//! # The time bound, for the index
//!
//! The query also bounds `timestamp` from below (`since`), so that it is an index range scan on
//! `(category, timestamp)` and not a scan of the table. A row not yet seen belongs to a
//! transaction whose id is at least `seen.xmin`. Transaction ids are handed out in order, so if
//! a target taken at time `t` had `xmax <= seen.xmin`, every such transaction got its id after
//! `t`, and its rows were stamped no earlier than `t - slack`, where `slack` is the most a row's
//! `timestamp` may precede its insert (Fluxbase's batching, plus the clock difference between
//! Fluxbase's hosts and PostgreSQL; `--events.database-overlap`). A transaction that stays open
//! for long holds `seen.xmin`, and with it `since`, back, as it must.
//!
//! Within a round, rows are read in pages of timestamp ranges `[from, to)`, oldest first, up to
//! the newest timestamp that existed when `T` was taken; `from` is where a round that failed
//! part-way resumes, so a failure never counts a row twice.
//!
//! # Assumptions
//!
//! Rows are inserted by top-level transactions (snapshots list only those; Fluxbase's writer
//! uses one plain multi-row INSERT per batch) and are never updated in place.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// A snapshot of which transactions had finished, as `pg_current_snapshot()` prints it:
/// `xmin:xmax:xip,...` with 64-bit transaction ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The oldest transaction still running; every id below it had finished.
    pub xmin: u64,
    /// The first id not yet handed out; every id from it on had not started.
    pub xmax: u64,
    /// Ids between the two still running.
    pub xip: Vec<u64>,
}

impl Snapshot {
    /// Whether transaction `xid` had finished when the snapshot was taken (for a row that is
    /// visible at all: it committed).
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmax && !self.xip.contains(&xid)
    }

    /// `xmax`, and `xip`, as PostgreSQL `int8` values.
    pub fn xmax_i64(&self) -> i64 {
        i64::try_from(self.xmax).unwrap_or(i64::MAX)
    }

    pub fn xip_i64(&self) -> Vec<i64> {
        self.xip
            .iter()
            .map(|xid| i64::try_from(*xid).unwrap_or(i64::MAX))
            .collect()
    }
}

/// A snapshot's text that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSnapshot(pub String);

impl fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected snapshot {:?}", self.0)
    }
}

impl std::error::Error for BadSnapshot {}

impl FromStr for Snapshot {
    type Err = BadSnapshot;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadSnapshot(text.to_owned());
        let mut parts = text.split(':');
        let (Some(xmin), Some(xmax), Some(xip), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let xmin: u64 = xmin.parse().map_err(|_| bad())?;
        let xmax: u64 = xmax.parse().map_err(|_| bad())?;
        let xip = xip
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| id.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if xmin > xmax || xip.iter().any(|id| *id < xmin || *id >= xmax) {
            return Err(bad());
        }
        Ok(Snapshot { xmin, xmax, xip })
    }
}

/// The round under way: everything visible in `target` and not in the seen snapshot, with a
/// timestamp from `from` up to `newest`, is still to be counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    pub target: Snapshot,
    /// When the target was taken (server time, microseconds since the epoch).
    pub taken_at: i64,
    /// The first timestamp (microseconds) not yet read.
    pub from: i64,
    /// The newest timestamp in the table when the target was taken; `None`: no rows at all.
    pub newest: Option<i64>,
}

impl Round {
    /// Whether every range of the round has been read.
    pub fn done(&self) -> bool {
        self.newest.is_none_or(|newest| self.from > newest)
    }
}

/// History entries kept at most; past it the second oldest is dropped (the oldest stays, so
/// the bound only moves back, never forward past a row).
const MAX_HISTORY: usize = 4096;

/// The reading position: the snapshot whose rows were all counted, the round under way, and
/// when earlier targets were taken.
#[derive(Debug)]
pub struct SnapshotCursor {
    seen: Snapshot,
    round: Option<Round>,
    /// `(xmax, taken at)` of each finished target, oldest first.
    history: VecDeque<(u64, i64)>,
    slack_micros: i64,
}

impl SnapshotCursor {
    /// Starts at `start`, taken at `taken_at` (microseconds): rows of transactions visible in
    /// it are never counted (they were there before the exporter); rows of transactions still
    /// running then are counted when they commit.
    pub fn new(start: Snapshot, taken_at: i64, slack_micros: i64) -> Self {
        let mut history = VecDeque::new();
        history.push_back((start.xmax, taken_at));
        SnapshotCursor {
            seen: start,
            round: None,
            history,
            slack_micros,
        }
    }

    /// The snapshot whose rows have all been counted.
    pub fn seen(&self) -> &Snapshot {
        &self.seen
    }

    /// The earliest timestamp (microseconds) a row not yet counted can carry.
    pub fn since(&self) -> i64 {
        // The latest target that had not handed out any id of a transaction not yet seen; with
        // none (transactions already running at the start), the start.
        let taken_at = self
            .history
            .iter()
            .rev()
            .find(|(xmax, _)| *xmax <= self.seen.xmin)
            .or(self.history.front())
            .map_or(0, |(_, taken_at)| *taken_at);
        taken_at.saturating_sub(self.slack_micros)
    }

    /// The round under way, if any.
    pub fn round(&self) -> Option<&Round> {
        self.round.as_ref()
    }

    /// Begins a round towards `target`, taken at `taken_at`, when the newest timestamp in the
    /// table was `newest`.
    pub fn begin(&mut self, target: Snapshot, taken_at: i64, newest: Option<i64>) {
        let from = self.since();
        self.round = Some(Round {
            target,
            taken_at,
            from,
            newest,
        });
    }

    /// Every row with a timestamp before `to` has been counted.
    pub fn read_up_to(&mut self, to: i64) {
        if let Some(round) = &mut self.round {
            round.from = round.from.max(to);
        }
    }

    /// Ends the round: its target becomes the seen snapshot.
    pub fn finish(&mut self) {
        let Some(round) = self.round.take() else {
            return;
        };
        self.history.push_back((round.target.xmax, round.taken_at));
        self.seen = round.target;
        // Entries older than the one `since` uses are never needed again.
        if let Some(keep) = self
            .history
            .iter()
            .rposition(|(xmax, _)| *xmax <= self.seen.xmin)
        {
            self.history.drain(..keep);
        }
        while self.history.len() > MAX_HISTORY {
            self.history.remove(1);
        }
    }

    /// Whether a row of transaction `xid` is counted in the round under way: what the SQL
    /// decides, for tests.
    pub fn counts(&self, xid: u64) -> bool {
        self.round
            .as_ref()
            .is_some_and(|round| round.target.sees(xid) && !self.seen.sees(xid))
    }

    /// Finished targets remembered.
    pub fn remembered(&self) -> usize {
        self.history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Snapshot {
        text.parse().unwrap()
    }

    #[test]
    fn snapshots_parse_as_postgresql_prints_them() {
        assert_eq!(
            snapshot("759:765:759,761"),
            Snapshot {
                xmin: 759,
                xmax: 765,
                xip: vec![759, 761]
            }
        );
        assert_eq!(snapshot("10:10:").xip, Vec::<u64>::new());
        for bad in ["", "1:2", "a:b:", "5:4:", "1:5:7", "1:5:0", "1:2:3:4"] {
            assert!(bad.parse::<Snapshot>().is_err(), "{bad}");
        }
        let s = snapshot("759:765:759,761");
        assert!(s.sees(758) && s.sees(760) && s.sees(764));
        assert!(!s.sees(759) && !s.sees(761) && !s.sees(765));
    }

    #[test]
    fn a_transaction_is_counted_in_exactly_the_round_that_first_sees_it() {
        // 100 runs at the start; 101 starts and commits; 100 commits later.
        let mut cursor = SnapshotCursor::new(snapshot("100:101:100"), 1_000, 0);
        cursor.begin(snapshot("100:102:100"), 2_000, Some(2_000));
        assert!(cursor.counts(101));
        assert!(!cursor.counts(100), "still running");
        assert!(!cursor.counts(99), "before the start");
        cursor.finish();
        cursor.begin(snapshot("102:102:"), 3_000, Some(3_000));
        assert!(cursor.counts(100), "committed late: counted now");
        assert!(!cursor.counts(101), "already counted");
        cursor.finish();
    }

    #[test]
    fn since_reaches_back_to_the_oldest_running_transaction() {
        let slack = 500;
        let mut cursor = SnapshotCursor::new(snapshot("50:50:"), 1_000, slack);
        assert_eq!(cursor.since(), 500);
        // Transaction 60 starts after the first target and stays open.
        cursor.begin(snapshot("55:55:"), 2_000, Some(2_000));
        cursor.finish();
        assert_eq!(cursor.since(), 2_000 - slack);
        cursor.begin(snapshot("60:70:60"), 3_000, Some(3_000));
        cursor.finish();
        // 60 is not seen yet: it got its id after the target taken at 2,000 (xmax 55 <= 60).
        assert_eq!(cursor.since(), 2_000 - slack);
        for round in 0..10 {
            cursor.begin(snapshot("60:80:60"), 4_000 + round, Some(4_000));
            cursor.finish();
            assert_eq!(cursor.since(), 2_000 - slack, "held back while 60 runs");
        }
        cursor.begin(snapshot("80:80:"), 5_000, Some(5_000));
        assert!(cursor.counts(60));
        cursor.finish();
        assert_eq!(cursor.since(), 5_000 - slack);
        assert_eq!(cursor.remembered(), 1, "history pruned");
    }

    #[test]
    fn a_round_resumes_where_it_stopped() {
        let mut cursor = SnapshotCursor::new(snapshot("1:1:"), 1_000, 100);
        cursor.begin(snapshot("5:5:"), 2_000, Some(1_900));
        assert_eq!(cursor.round().unwrap().from, 900);
        cursor.read_up_to(1_500);
        assert!(!cursor.round().unwrap().done());
        cursor.read_up_to(1_200);
        assert_eq!(cursor.round().unwrap().from, 1_500, "never backwards");
        cursor.read_up_to(1_901);
        assert!(cursor.round().unwrap().done());
        let empty = Round {
            target: snapshot("5:5:"),
            taken_at: 0,
            from: 0,
            newest: None,
        };
        assert!(empty.done());
    }

    #[test]
    fn history_stays_bounded_under_a_transaction_that_never_ends() {
        let mut cursor = SnapshotCursor::new(snapshot("10:10:"), 0, 0);
        cursor.begin(snapshot("10:11:10"), 1, Some(1));
        cursor.finish();
        for round in 0..(MAX_HISTORY as i64 + 100) {
            cursor.begin(snapshot("10:20:10"), 2 + round, Some(1));
            cursor.finish();
        }
        assert!(cursor.remembered() <= MAX_HISTORY);
        assert_eq!(cursor.since(), 0, "the oldest entry is kept");
    }

    /// Many writers commit in random order against rounds taken at random moments: every
    /// committed transaction is counted once, in the first round whose target sees it.
    #[test]
    fn every_committed_transaction_counts_exactly_once() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut next_xid = 100u64;
        let mut running: Vec<u64> = Vec::new();
        let mut committed: Vec<u64> = Vec::new();
        let snapshot_now = |next_xid: u64, running: &[u64]| {
            let mut xip = running.to_vec();
            xip.sort_unstable();
            Snapshot {
                xmin: xip.first().copied().unwrap_or(next_xid),
                xmax: next_xid,
                xip,
            }
        };
        let mut cursor = SnapshotCursor::new(snapshot_now(next_xid, &running), 0, 0);
        let mut counted = std::collections::HashMap::<u64, u32>::new();
        for step in 0..5_000 {
            match next() % 4 {
                0 | 1 => {
                    running.push(next_xid);
                    next_xid += 1;
                }
                2 if !running.is_empty() => {
                    let at = (next() as usize) % running.len();
                    committed.push(running.swap_remove(at));
                }
                _ => {
                    cursor.begin(snapshot_now(next_xid, &running), step, Some(step));
                    for xid in &committed {
                        if cursor.counts(*xid) {
                            *counted.entry(*xid).or_default() += 1;
                        }
                    }
                    cursor.finish();
                }
            }
        }
        // Commit the rest and take a last round.
        committed.append(&mut running);
        cursor.begin(snapshot_now(next_xid, &running), 10_000, Some(10_000));
        for xid in &committed {
            if cursor.counts(*xid) {
                *counted.entry(*xid).or_default() += 1;
            }
        }
        assert_eq!(counted.len(), committed.len(), "every commit counted");
        assert!(counted.values().all(|n| *n == 1), "none twice");
    }
}
