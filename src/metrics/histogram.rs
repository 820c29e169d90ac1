//! Histogram: fixed buckets, a lock-free `observe`, and a render that is always consistent.

use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::Exposition;

/// Observations counted into fixed buckets, with their sum.
///
/// Each bucket counts only the observations that fall into it (not cumulatively); the
/// cumulative counts, `+Inf` and `_count` are derived when rendering.
///
/// # Atomicity across renders
/// `observe` touches two atomics, one bucket and the sum, with `Relaxed` increments and no lock.
/// A render reads every bucket exactly once and derives both the `le="+Inf"` bucket and
/// `_count` from those same reads. So in every render, whatever observers do meanwhile:
///
/// - the cumulative buckets are non-decreasing (a running sum of non-negative reads),
/// - `le="+Inf"` equals `_count` (they are the same number),
/// - every figure is at least what an earlier render showed (each bucket only grows, and
///   coherence of one atomic means a later read never sees an older value).
///
/// `_sum` is read separately, so it may include or miss the observations in flight at that
/// moment (at most one per observing thread), as in the Go client. `Relaxed` suffices because
/// no reader relies on an order between two different atomics: the invariants above hold for
/// any interleaving.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending, without `+Inf`.
    bounds: &'static [f64],
    /// `buckets[i]` counts values in `(bounds[i-1], bounds[i]]`; the last one counts values above
    /// every bound.
    buckets: Box<[AtomicU64]>,
    /// The sum of observations, as f64 bits.
    sum_bits: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending, finite, without `+Inf`).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation. Values that are not finite are ignored: they have no bucket,
    /// and one would turn `_sum` into NaN or infinity for the life of the process. Callers that
    /// take values from outside validate them first and count what they skip.
    pub fn observe(&self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.buckets[self.bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The index of the bucket holding `value`. A linear scan: bucket lists are short and most
    /// observations land in the first few.
    fn bucket_of(&self, value: f64) -> usize {
        self.bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len())
    }

    /// Records `count` observations of the same value (a mean standing for `count` events).
    pub fn observe_many(&self, value: f64, count: u64) {
        if !value.is_finite() || count == 0 {
            return;
        }
        self.buckets[self.bucket_of(value)].fetch_add(count, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value * count as f64).to_bits())
            });
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }

    /// The upper bounds this histogram was built with.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of this series. `le` holds the text of
    /// each bound, in order (computed once per family).
    pub fn render(&self, name: &str, labels: &str, le: &[Box<str>], out: &mut Exposition<'_>) {
        let mut cumulative = 0u64;
        for (bucket, le) in self.buckets.iter().zip(le) {
            cumulative += bucket.load(Ordering::Relaxed);
            out.bucket(name, labels, le, cumulative);
        }
        if let Some(overflow) = self.buckets.last() {
            cumulative += overflow.load(Ordering::Relaxed);
        }
        out.bucket(name, labels, "+Inf", cumulative);
        out.sample_f64(name, "_sum", labels, self.sum());
        out.sample_u64(name, "_count", labels, cumulative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.1, 0.5, 1.0];

    fn le_texts() -> Vec<Box<str>> {
        BOUNDS
            .iter()
            .map(|b| super::super::exposition::format_f64(*b).into_boxed_str())
            .collect()
    }

    fn rendered(histogram: &Histogram, labels: &str) -> String {
        let mut out = Vec::new();
        histogram.render("h", labels, &le_texts(), &mut Exposition::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let histogram = Histogram::new(BOUNDS);
        for value in [0.1, 0.05, -3.0, 0.5, 0.7, 1.0, 7.0] {
            histogram.observe(value);
        }
        assert_eq!(
            rendered(&histogram, "a=\"b\""),
            "h_bucket{a=\"b\",le=\"0.1\"} 3\nh_bucket{a=\"b\",le=\"0.5\"} 4\n\
             h_bucket{a=\"b\",le=\"1\"} 6\nh_bucket{a=\"b\",le=\"+Inf\"} 7\n\
             h_sum{a=\"b\"} 6.35\nh_count{a=\"b\"} 7\n"
        );
    }

    /// Parses one rendered series into (cumulative bucket counts incl. +Inf, count).
    fn parse(text: &str) -> (Vec<u64>, u64) {
        let mut buckets = Vec::new();
        let mut count = None;
        for line in text.lines() {
            let value = line.rsplit(' ').next().unwrap();
            if line.starts_with("h_bucket") {
                buckets.push(value.parse().unwrap());
            } else if line.starts_with("h_count") {
                count = Some(value.parse().unwrap());
            }
        }
        (buckets, count.unwrap())
    }

    #[test]
    fn every_render_is_consistent_while_other_threads_observe() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;

        const OBSERVERS: usize = 4;
        // Observers run until the renders are done (bounded by this count in case they are not).
        const PER_OBSERVER: u64 = 50_000_000;
        let histogram = Arc::new(Histogram::new(BOUNDS));
        let stop = Arc::new(AtomicBool::new(false));
        let observers: Vec<_> = (0..OBSERVERS)
            .map(|t| {
                let histogram = Arc::clone(&histogram);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let values = [0.05, 0.3, 0.9, 4.0];
                    for i in 0..PER_OBSERVER {
                        if stop.load(Ordering::Relaxed) {
                            return i;
                        }
                        histogram.observe(values[(i as usize + t) % values.len()]);
                    }
                    PER_OBSERVER
                })
            })
            .collect();

        let le = le_texts();
        let mut previous = vec![0u64; BOUNDS.len() + 1];
        let mut out = Vec::new();
        let mut renders_while_observing = 0;
        for _ in 0..5_000 {
            out.clear();
            histogram.render("h", "", &le, &mut Exposition::new(&mut out));
            let (buckets, count) = parse(std::str::from_utf8(&out).unwrap());
            assert!(
                buckets.windows(2).all(|w| w[0] <= w[1]),
                "not cumulative: {buckets:?}"
            );
            assert_eq!(*buckets.last().unwrap(), count, "+Inf != _count");
            assert!(
                buckets
                    .iter()
                    .zip(&previous)
                    .all(|(now, before)| now >= before),
                "went backwards"
            );
            previous = buckets;
            renders_while_observing += usize::from(!observers.iter().all(|o| o.is_finished()));
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            renders_while_observing > 0,
            "no render overlapped the observers"
        );
        let observed: u64 = observers.into_iter().map(|o| o.join().unwrap()).sum();

        out.clear();
        histogram.render("h", "", &le, &mut Exposition::new(&mut out));
        let (buckets, count) = parse(std::str::from_utf8(&out).unwrap());
        assert_eq!(count, observed, "every observation is counted once");
        assert_eq!(*buckets.last().unwrap(), observed);
    }

    #[test]
    fn observe_many_counts_each_observation() {
        let histogram = Histogram::new(BOUNDS);
        histogram.observe_many(0.3, 4);
        histogram.observe_many(0.3, 0);
        histogram.observe_many(f64::NAN, 3);
        assert_eq!(histogram.count(), 4);
        assert!((histogram.sum() - 1.2).abs() < 1e-12);
        assert!(rendered(&histogram, "").contains("h_bucket{le=\"0.5\"} 4\n"));
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let histogram = Histogram::new(BOUNDS);
        histogram.observe(f64::NAN);
        histogram.observe(f64::INFINITY);
        histogram.observe(f64::NEG_INFINITY);
        histogram.observe(0.2);
        assert_eq!(histogram.count(), 1);
        assert_eq!(histogram.sum(), 0.2);
    }
}
