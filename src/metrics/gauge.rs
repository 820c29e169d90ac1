//! Gauge: a float that goes up and down, held as its bits in one atomic.

use std::sync::atomic::{AtomicU64, Ordering};

/// A value that can be set, raised and lowered.
///
/// # Memory ordering
/// Every access is `Relaxed`: a gauge is one independent value and publishes no other memory.
/// `add` is a compare-and-swap loop on the bits, so concurrent additions are never lost.
#[derive(Debug)]
pub struct Gauge {
    bits: AtomicU64,
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

impl Gauge {
    /// A gauge holding `0`.
    pub fn new() -> Self {
        Gauge {
            bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` (negative to lower it).
    pub fn add(&self, delta: f64) {
        // fetch_update retries until no other writer slipped in between the load and the swap.
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_and_get_keep_every_bit() {
        let gauge = Gauge::new();
        assert_eq!(gauge.get(), 0.0);
        for value in [1.5, -2.25, f64::INFINITY, 1e-300] {
            gauge.set(value);
            assert_eq!(gauge.get(), value);
        }
        gauge.set(f64::NAN);
        assert!(gauge.get().is_nan());
    }

    #[test]
    fn concurrent_adds_are_not_lost() {
        let gauge = Arc::new(Gauge::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let gauge = Arc::clone(&gauge);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        gauge.add(1.0);
                    }
                    for _ in 0..5_000 {
                        gauge.add(-1.0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(gauge.get(), 20_000.0);
    }
}
