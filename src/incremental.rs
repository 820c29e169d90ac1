//! Reading finished jobs from `jobs.queue`, where finishes commit late and out of order and many
//! share a timestamp: read from an overlap window behind the newest time seen, and remember the
//! keys already counted inside that window. The key is the finish (job id and finish time), so
//! a job that is re-queued and finishes again counts again.
//!
//! A row is counted exactly once if it becomes visible no later than `overlap` after the newest
//! row seen at that moment. A row that becomes visible later than that, with a time already
//! behind the window, is not seen at all (the window has moved past it). The window holds one
//! key per finish inside it, which for jobs (seconds to hours apart) stays small; the much
//! busier `logging.entries` is read through `events::cursor` instead, which remembers nothing
//! per row.

use std::collections::HashMap;
use std::hash::Hash;

/// The reading position in a table of timestamped rows.
#[derive(Debug)]
pub struct Window<K> {
    /// Rows at or before this time are never counted (where reading started).
    floor: f64,
    /// The newest row time seen, in seconds since the epoch.
    newest: f64,
    overlap: f64,
    /// Ids already counted, with their row times; pruned as the window moves.
    seen: HashMap<K, f64>,
}

impl<K: Hash + Eq> Window<K> {
    /// A window starting at `start` (seconds since the epoch): rows older than that are never
    /// counted.
    pub fn new(start: f64, overlap_seconds: f64) -> Self {
        Window {
            floor: start,
            newest: start,
            overlap: overlap_seconds,
            seen: HashMap::new(),
        }
    }

    /// Read rows with a time after this.
    pub fn since(&self) -> f64 {
        self.floor.max(self.newest - self.overlap)
    }

    /// Whether a row is new: not seen before and not older than the window's start. Records it.
    pub fn admit(&mut self, id: K, at: f64) -> bool {
        if at <= self.since() || self.seen.contains_key(&id) {
            return false;
        }
        self.seen.insert(id, at);
        if at > self.newest {
            self.newest = at;
        }
        true
    }

    /// Forgets ids that have left the window.
    pub fn prune(&mut self) {
        let since = self.since();
        self.seen.retain(|_, at| *at > since);
    }

    /// How many ids are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_counts_once_even_when_read_again() {
        let mut window = Window::new(100.0, 120.0);
        assert!(window.admit("a", 101.0));
        assert!(window.admit("b", 101.0), "same second, other id");
        assert!(!window.admit("a", 101.0));
        assert_eq!(window.since(), 100.0, "never before the start");
    }

    #[test]
    fn late_rows_inside_the_window_are_counted_later_than_newer_ones() {
        let mut window = Window::new(1000.0, 120.0);
        assert!(window.admit(1, 1100.0));
        // Committed late, with an older time, but within the overlap.
        assert!(window.admit(2, 1050.0));
        // Older than the window: lost (documented).
        assert!(!window.admit(3, 900.0));
    }

    #[test]
    fn rows_before_the_start_are_never_counted() {
        let mut window = Window::new(1000.0, 60.0);
        assert!(!window.admit(1, 999.0));
        assert!(!window.admit(2, 1000.0));
        assert!(window.admit(3, 1000.5));
    }

    #[test]
    fn pruning_keeps_only_ids_inside_the_window() {
        let mut window = Window::new(0.0, 10.0);
        for i in 0..100 {
            window.admit(i, f64::from(i) + 1.0);
        }
        window.prune();
        // newest = 100, since = 90: ids with time > 90 remain (91..=100).
        assert_eq!(window.remembered(), 10);
        assert!(!window.admit(95, 96.0), "still remembered");
    }
}
