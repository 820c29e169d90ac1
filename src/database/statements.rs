//! Turns `pg_stat_statements` readings into activity since the previous reading, so that the
//! counters fed from them only ever go up: across `pg_stat_statements_reset()`, across a single
//! statement's reset, and across statements evicted from the view and later re-created.

use std::collections::HashMap;

use super::queries::{StatementCounts, StatementKey};

/// Activity of one statement between two readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activity {
    pub key: StatementKey,
    pub calls: u64,
    pub total_exec_ms: f64,
}

/// The previous reading of every statement.
#[derive(Debug, Default)]
pub struct StatementTracker {
    previous: HashMap<StatementKey, (i64, f64)>,
    /// When the whole view was last reset, as of the previous reading.
    reset_at: Option<f64>,
    /// Whether a first reading (the baseline) has been taken.
    baselined: bool,
}

impl StatementTracker {
    /// Forgets everything: the next reading is a new baseline (after the extension went away).
    pub fn clear(&mut self) {
        *self = StatementTracker::default();
    }

    /// Feeds one reading and returns the activity since the previous one.
    ///
    /// - The first reading is the baseline: calls made before the exporter looked are not
    ///   counted as if they had just happened.
    /// - A statement not seen before was created since the previous reading (new, or evicted
    ///   and re-created), so all of its calls are new.
    /// - A statement whose calls went down was reset on its own: its current calls are new.
    /// - When the whole view was reset (`reset_at` moved), every statement restarted from zero.
    ///
    /// What cannot be seen: a statement reset (or evicted and re-created) that climbed back
    /// above its previous count within one interval is under-counted by its previous count.
    pub fn update(&mut self, reading: &[StatementCounts], reset_at: Option<f64>) -> Vec<Activity> {
        let whole_view_reset = self.baselined && reset_at.is_some() && reset_at != self.reset_at;
        let mut activity = Vec::new();
        let mut current = HashMap::with_capacity(reading.len());
        for row in reading {
            current.insert(row.key, (row.calls, row.total_exec_ms));
            if !self.baselined {
                continue;
            }
            let (calls, total_exec_ms) = match self.previous.get(&row.key) {
                Some(&(calls, total)) if !whole_view_reset && row.calls >= calls => {
                    (row.calls - calls, (row.total_exec_ms - total).max(0.0))
                }
                _ => (row.calls, row.total_exec_ms.max(0.0)),
            };
            if calls > 0 {
                activity.push(Activity {
                    key: row.key,
                    calls: calls as u64,
                    total_exec_ms,
                });
            }
        }
        self.previous = current;
        self.reset_at = reset_at;
        self.baselined = true;
        activity
    }

    /// Whether `key` was in the previous reading.
    pub fn knows(&self, key: &StatementKey) -> bool {
        self.previous.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(queryid: i64, calls: i64, total_exec_ms: f64) -> StatementCounts {
        StatementCounts {
            key: StatementKey {
                userid: 10,
                queryid,
            },
            calls,
            total_exec_ms,
        }
    }

    fn calls(activity: &[Activity]) -> Vec<(i64, u64)> {
        let mut calls: Vec<_> = activity.iter().map(|a| (a.key.queryid, a.calls)).collect();
        calls.sort();
        calls
    }

    #[test]
    fn the_first_reading_is_a_baseline() {
        let mut tracker = StatementTracker::default();
        assert!(tracker.update(&[row(1, 100, 50.0)], None).is_empty());
        let activity = tracker.update(&[row(1, 130, 65.0)], None);
        assert_eq!(
            activity,
            [Activity {
                key: StatementKey {
                    userid: 10,
                    queryid: 1
                },
                calls: 30,
                total_exec_ms: 15.0
            }]
        );
    }

    #[test]
    fn new_and_recreated_statements_count_in_full() {
        let mut tracker = StatementTracker::default();
        tracker.update(&[row(1, 100, 1.0), row(2, 5, 1.0)], None);
        // 2 evicted, 3 new.
        assert_eq!(
            calls(&tracker.update(&[row(1, 101, 1.1), row(3, 7, 2.0)], None)),
            [(1, 1), (3, 7)]
        );
        // 2 comes back with a fresh count.
        assert_eq!(
            calls(&tracker.update(&[row(1, 101, 1.1), row(2, 4, 1.0), row(3, 7, 2.0)], None)),
            [(2, 4)]
        );
    }

    #[test]
    fn a_statement_reset_on_its_own_restarts_from_zero() {
        let mut tracker = StatementTracker::default();
        tracker.update(&[row(1, 100, 10.0)], None);
        assert_eq!(calls(&tracker.update(&[row(1, 3, 0.5)], None)), [(1, 3)]);
        assert_eq!(calls(&tracker.update(&[row(1, 8, 0.9)], None)), [(1, 5)]);
    }

    #[test]
    fn a_whole_view_reset_restarts_every_statement() {
        let mut tracker = StatementTracker::default();
        tracker.update(&[row(1, 100, 10.0), row(2, 50, 5.0)], Some(1000.0));
        // After the reset, statement 1 climbed above its old count: still counted from zero.
        let activity = tracker.update(&[row(1, 120, 12.0), row(2, 2, 0.1)], Some(2000.0));
        assert_eq!(calls(&activity), [(1, 120), (2, 2)]);
    }

    #[test]
    fn totals_over_any_sequence_never_decrease() {
        let mut tracker = StatementTracker::default();
        let readings: [&[StatementCounts]; 5] = [
            &[row(1, 10, 1.0)],
            &[row(1, 15, 1.5), row(2, 1, 0.1)],
            &[row(2, 1, 0.1)],
            &[row(1, 2, 0.2), row(2, 0, 0.0)],
            &[row(1, 2, 0.2), row(2, 9, 0.9)],
        ];
        let total: u64 = readings
            .iter()
            .flat_map(|reading| tracker.update(reading, None))
            .map(|a| a.calls)
            .sum();
        // 5 (1: 10->15) + 1 (2 new) + 2 (1 re-created) + 9 (2 reset to 0 then 9) = 17
        assert_eq!(total, 17);
    }
}
