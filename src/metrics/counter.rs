//! Counter: a monotonically increasing integer on one atomic.

use std::sync::atomic::{AtomicU64, Ordering};

/// A count that only goes up.
///
/// # Memory ordering
/// Every access is `Relaxed`. A counter is one independent value: no other memory is published
/// through it, and a reader needs only a value the counter really held, which atomicity gives.
/// Coherence of a single atomic also means successive reads never go backwards, so a scrape
/// never sees a counter decrease.
#[derive(Debug, Default)]
pub struct Counter {
    value: AtomicU64,
}

impl Counter {
    pub fn new() -> Self {
        Counter::default()
    }

    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`. (Wraps only after 2^64 increments: centuries at a billion a second.)
    pub fn inc_by(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_every_increment_across_threads() {
        let counter = Arc::new(Counter::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.inc();
                    }
                    counter.inc_by(5);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.get(), 4 * 10_005);
    }
}
