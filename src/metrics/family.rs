//! Labelled families: series keyed by label values, under a cap on how many a family may hold.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::counter::Counter;
use super::exposition::{Exposition, format_f64, write_label_pairs};
use super::gauge::Gauge;
use super::histogram::Histogram;
use super::registry::{Collector, Scrape};
use crate::catalog::{self, FamilyDesc};

/// A metric type that a [`Family`] can hold.
pub trait Metric: Send + Sync + 'static {
    /// What all series of one family share, built once (a histogram's `le` texts).
    type Shared: Send + Sync;

    fn shared(desc: &'static FamilyDesc) -> Self::Shared;
    fn new(desc: &'static FamilyDesc) -> Self;
    /// Writes this series' sample lines; `labels` is its rendered label pairs.
    fn render(&self, shared: &Self::Shared, name: &str, labels: &str, out: &mut Exposition<'_>);
}

impl Metric for Counter {
    type Shared = ();
    fn shared(_: &'static FamilyDesc) {}
    fn new(_: &'static FamilyDesc) -> Self {
        Counter::new()
    }
    fn render(&self, _: &(), name: &str, labels: &str, out: &mut Exposition<'_>) {
        out.sample_u64(name, "", labels, self.get());
    }
}

impl Metric for Gauge {
    type Shared = ();
    fn shared(_: &'static FamilyDesc) {}
    fn new(_: &'static FamilyDesc) -> Self {
        Gauge::new()
    }
    fn render(&self, _: &(), name: &str, labels: &str, out: &mut Exposition<'_>) {
        out.sample_f64(name, "", labels, self.get());
    }
}

impl Metric for Histogram {
    type Shared = Box<[Box<str>]>;
    fn shared(desc: &'static FamilyDesc) -> Self::Shared {
        desc.buckets
            .iter()
            .map(|bound| format_f64(*bound).into_boxed_str())
            .collect()
    }
    fn new(desc: &'static FamilyDesc) -> Self {
        Histogram::new(desc.buckets)
    }
    fn render(&self, le: &Self::Shared, name: &str, labels: &str, out: &mut Exposition<'_>) {
        Histogram::render(self, name, labels, le, out);
    }
}

/// The cardinality guard shared by every family: how many series one family may hold, and how
/// many label sets each family refused. It renders `fluxbase_exporter_series_dropped_total`.
#[derive(Debug)]
pub struct SeriesLimit {
    max_series: usize,
    refusals: RwLock<Vec<Arc<Refusals>>>,
}

#[derive(Debug)]
struct Refusals {
    family: &'static str,
    /// Label sets refused so far. `Relaxed`: an independent counter.
    dropped: AtomicU64,
    /// Set by the first refusal so the warning is logged once. `Relaxed` with `swap`: only the
    /// one thread that flips it logs; nothing else is published through it.
    warned: AtomicBool,
}

impl SeriesLimit {
    /// A guard allowing `max_series` series per family.
    pub fn new(max_series: usize) -> Arc<Self> {
        Arc::new(SeriesLimit {
            max_series,
            refusals: RwLock::new(Vec::new()),
        })
    }

    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// Counts `count` label sets of `family` refused by something other than a [`Family`] (a
    /// passed-through family of Fluxbase's endpoint that is over the limit), in the same
    /// `fluxbase_exporter_series_dropped_total{family}` series, logging the first refusal once.
    pub fn refuse(&self, family: &'static str, count: u64) {
        let existing = self
            .refusals
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|refusals| refusals.family == family)
            .cloned();
        let refusals = existing.unwrap_or_else(|| self.register(family));
        refusals.dropped.fetch_add(count, Ordering::Relaxed);
        if !refusals.warned.swap(true, Ordering::Relaxed) {
            log::warn!(family = family, max_series = self.max_series; "series limit reached; further label sets of this family are dropped");
        }
    }

    fn register(&self, family: &'static str) -> Arc<Refusals> {
        let refusals = Arc::new(Refusals {
            family,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        });
        self.refusals
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&refusals));
        refusals
    }
}

impl Collector for SeriesLimit {
    fn collect(&self, _: &Scrape, out: &mut Exposition<'_>) {
        let desc = &catalog::EXPORTER_SERIES_DROPPED_TOTAL;
        out.header(desc);
        let mut labels = String::new();
        for refusals in self
            .refusals
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            labels.clear();
            write_label_pairs(&mut labels, desc.labels, &[refusals.family]);
            out.sample_u64(
                desc.name,
                "",
                &labels,
                refusals.dropped.load(Ordering::Relaxed),
            );
        }
    }
}

thread_local! {
    /// Scratch space for rendering a lookup key, so a lookup does not allocate.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The series of one family, keyed by their rendered label pairs.
///
/// A series is created on first use and then lives until removed, so a family that nothing has
/// fed renders its HELP and TYPE lines only: no value is ever shown that was not measured.
///
/// Observing an existing series takes no mutex: a lookup takes the read side of a
/// reader-writer lock (shared with other readers and with renders), and holders of the returned
/// `Arc` touch only the metric's atomics. Only creating or removing a series takes the write side.
pub struct Family<M: Metric> {
    desc: &'static FamilyDesc,
    shared: M::Shared,
    /// Key: the series' label pairs as they appear in the exposition (escaped once, on creation).
    /// A `BTreeMap` so that scrapes list series in a stable order.
    series: RwLock<BTreeMap<Box<str>, Arc<M>>>,
    limit: Arc<SeriesLimit>,
    refusals: Arc<Refusals>,
}

impl<M: Metric> Family<M> {
    pub fn new(desc: &'static FamilyDesc, limit: &Arc<SeriesLimit>) -> Self {
        Family {
            desc,
            shared: M::shared(desc),
            series: RwLock::new(BTreeMap::new()),
            limit: Arc::clone(limit),
            refusals: limit.register(desc.name),
        }
    }

    pub fn desc(&self) -> &'static FamilyDesc {
        self.desc
    }

    /// The series with these label values (in the order of the family's label names), created
    /// if needed. `None` when the family is full (the refusal is counted and logged once) or
    /// when the number of values does not match the family's labels (logged; a caller bug that
    /// must not take a scrape or a worker down).
    pub fn get_or_create(&self, values: &[&str]) -> Option<Arc<M>> {
        self.with_key(values, |key| {
            {
                let series = self.read();
                if let Some(series) = series.get(key) {
                    return Some(Arc::clone(series));
                }
                // Full: refuse without taking the write side (a label explosion must not
                // serialise every event on the lock).
                if series.len() >= self.limit.max_series {
                    drop(series);
                    self.refuse();
                    return None;
                }
            }
            let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(existing) = series.get(key) {
                return Some(Arc::clone(existing));
            }
            if series.len() >= self.limit.max_series {
                self.refuse();
                return None;
            }
            let created = Arc::new(M::new(self.desc));
            series.insert(key.into(), Arc::clone(&created));
            Some(created)
        })
        .flatten()
    }

    /// Runs `f` on the series with these label values, creating it if needed; `None` as for
    /// [`get_or_create`](Family::get_or_create).
    pub fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Option<R> {
        self.get_or_create(values).map(|series| f(&series))
    }

    /// Removes the series with these label values, if present.
    pub fn remove(&self, values: &[&str]) {
        self.with_key(values, |key| {
            self.series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        });
    }

    /// Removes every series: the family renders HELP and TYPE only until fed again.
    pub fn clear(&self) {
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The number of series held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label sets this family refused because it was full.
    pub fn dropped(&self) -> u64 {
        self.refusals.dropped.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Box<str>, Arc<M>>> {
        self.series.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_key<R>(&self, values: &[&str], f: impl FnOnce(&str) -> R) -> Option<R> {
        if values.len() != self.desc.labels.len() {
            log::error!(
                family = self.desc.name,
                expected = self.desc.labels.len(),
                got = values.len();
                "wrong number of label values; series ignored"
            );
            return None;
        }
        KEY.with(|key| match key.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                write_label_pairs(&mut key, self.desc.labels, values);
                Some(f(&key))
            }
            // Only reachable if `f` re-entered a family lookup on this thread; use a fresh buffer.
            Err(_) => {
                let mut key = String::new();
                write_label_pairs(&mut key, self.desc.labels, values);
                Some(f(&key))
            }
        })
    }

    fn refuse(&self) {
        self.refusals.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.refusals.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                family = self.desc.name,
                max_series = self.limit.max_series;
                "family is full; further label sets are dropped and counted in fluxbase_exporter_series_dropped_total"
            );
        }
    }
}

impl Family<Counter> {
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    pub fn inc_by(&self, values: &[&str], n: u64) {
        self.with(values, |counter| counter.inc_by(n));
    }
}

impl Family<Gauge> {
    pub fn set(&self, values: &[&str], value: f64) {
        self.with(values, |gauge| gauge.set(value));
    }

    pub fn add(&self, values: &[&str], delta: f64) {
        self.with(values, |gauge| gauge.add(delta));
    }

    /// Makes the series whose first label values are `scope` exactly `readings` (each the rest
    /// of the label values and a value), in one step: a scrape sees the old set or the new one,
    /// never a mix. Series outside the scope are untouched; the cardinality guard applies.
    ///
    /// The readings are taken by value, in whatever form the caller has them (`[&str; 1]`,
    /// `[String; 2]`, `Vec<String>`, ...): a caller maps its rows straight into them.
    pub fn replace<V, S>(&self, scope: &[&str], readings: impl IntoIterator<Item = (V, f64)>)
    where
        V: AsRef<[S]>,
        S: AsRef<str>,
    {
        let in_scope = self.scope_filter(scope);
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let mut kept: BTreeMap<Box<str>, Arc<Gauge>> = BTreeMap::new();
        let outside = series.iter().filter(|(key, _)| !in_scope(key)).count();
        for (rest, value) in readings {
            let values: Vec<&str> = scope
                .iter()
                .copied()
                .chain(rest.as_ref().iter().map(AsRef::as_ref))
                .collect();
            if values.len() != self.desc.labels.len() {
                log::error!(family = self.desc.name; "wrong number of label values; series ignored");
                continue;
            }
            let mut key = String::new();
            write_label_pairs(&mut key, self.desc.labels, &values);
            let gauge = match series
                .remove(key.as_str())
                .or_else(|| kept.remove(key.as_str()))
            {
                Some(gauge) => gauge,
                None if outside + kept.len() >= self.limit.max_series => {
                    self.refuse();
                    continue;
                }
                None => Arc::new(Gauge::new()),
            };
            gauge.set(value);
            kept.insert(key.into_boxed_str(), gauge);
        }
        series.retain(|key, _| !in_scope(key));
        series.append(&mut kept);
    }

    /// Removes every series whose first label values are `scope` (every series, for an empty
    /// scope): what [`replace`](Family::replace) with no readings does.
    pub fn clear_scope(&self, scope: &[&str]) {
        let in_scope = self.scope_filter(scope);
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| !in_scope(key));
    }

    /// Whether a series key starts with the label pairs of `scope`.
    fn scope_filter(&self, scope: &[&str]) -> impl Fn(&str) -> bool + use<> {
        let scope_labels = &self.desc.labels[..scope.len().min(self.desc.labels.len())];
        let mut prefix = String::new();
        write_label_pairs(&mut prefix, scope_labels, scope);
        let everything = scope.is_empty();
        move |key: &str| {
            everything
                || key == prefix
                || (key.starts_with(&prefix) && key.as_bytes().get(prefix.len()) == Some(&b','))
        }
    }
}

impl Family<Histogram> {
    pub fn observe(&self, values: &[&str], value: f64) {
        self.with(values, |histogram| histogram.observe(value));
    }

    pub fn observe_many(&self, values: &[&str], value: f64, count: u64) {
        self.with(values, |histogram| histogram.observe_many(value, count));
    }
}

impl<M: Metric> Collector for Family<M> {
    fn collect(&self, _: &Scrape, out: &mut Exposition<'_>) {
        out.header(self.desc);
        for (labels, series) in self.read().iter() {
            series.render(&self.shared, self.desc.name, labels, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Kind;

    const REQUESTS: FamilyDesc = FamilyDesc {
        name: "demo_requests_total",
        kind: Kind::Counter,
        labels: &["method", "path"],
        buckets: &[],
        help: "Demo requests",
    };
    const LATENCY: FamilyDesc = FamilyDesc {
        name: "demo_latency_seconds",
        kind: Kind::Histogram,
        labels: &[],
        buckets: &[0.5, 1.0],
        help: "Demo latency",
    };
    const TEMPERATURE: FamilyDesc = FamilyDesc {
        name: "demo_temperature",
        kind: Kind::Gauge,
        labels: &[],
        buckets: &[],
        help: "Demo gauge",
    };

    fn render(collector: &dyn Collector) -> String {
        let mut out = Vec::new();
        collector.collect(&Scrape::now(), &mut Exposition::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    /// The sample lines of a render, without HELP and TYPE.
    fn samples(collector: &dyn Collector) -> Vec<String> {
        render(collector)
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn an_unfed_family_renders_help_and_type_only() {
        let family: Family<Gauge> = Family::new(&TEMPERATURE, &SeriesLimit::new(10));
        assert_eq!(
            render(&family),
            "# HELP demo_temperature Demo gauge\n# TYPE demo_temperature gauge\n"
        );
        family.set(&[], 21.5);
        assert!(render(&family).ends_with("\ndemo_temperature 21.5\n"));
        family.clear();
        assert!(render(&family).ends_with("gauge\n"));
    }

    #[test]
    fn series_are_keyed_by_label_values_and_listed_in_order() {
        let family: Family<Counter> = Family::new(&REQUESTS, &SeriesLimit::new(10));
        family.inc(&["POST", "/b"]);
        family.inc(&["GET", "/a\"quoted\""]);
        family.inc_by(&["POST", "/b"], 2);
        assert_eq!(
            render(&family),
            "# HELP demo_requests_total Demo requests\n# TYPE demo_requests_total counter\n\
             demo_requests_total{method=\"GET\",path=\"/a\\\"quoted\\\"\"} 1\n\
             demo_requests_total{method=\"POST\",path=\"/b\"} 3\n"
        );
        family.remove(&["POST", "/b"]);
        assert_eq!(family.len(), 1);
    }

    #[test]
    fn a_full_family_refuses_new_label_sets_and_counts_them() {
        let limit = SeriesLimit::new(2);
        let family: Family<Counter> = Family::new(&REQUESTS, &limit);
        family.inc(&["GET", "/1"]);
        family.inc(&["GET", "/2"]);
        family.inc(&["GET", "/3"]);
        family.inc(&["GET", "/4"]);
        // Existing series still count.
        family.inc(&["GET", "/1"]);
        assert_eq!(family.len(), 2);
        assert_eq!(family.dropped(), 2);
        assert!(render(limit.as_ref()).ends_with(
            "fluxbase_exporter_series_dropped_total{family=\"demo_requests_total\"} 2\n"
        ));
        assert!(render(&family).contains("path=\"/1\"} 2\n"));
    }

    const BY_SOURCE: FamilyDesc = FamilyDesc {
        name: "demo_objects",
        kind: Kind::Gauge,
        labels: &["source", "bucket"],
        buckets: &[],
        help: "Demo objects",
    };

    #[test]
    fn replace_swaps_the_series_of_one_scope_only() {
        let family: Family<Gauge> = Family::new(&BY_SOURCE, &SeriesLimit::new(10));
        family.replace(&["database"], [(["a"], 1.0), (["b"], 2.0)]);
        family.replace(&["filesystem"], [(["a"], 5.0)]);
        family.replace(&["database"], [(["b"], 3.0), (["c"], 4.0)]);
        assert_eq!(
            samples(&family),
            [
                "demo_objects{source=\"database\",bucket=\"b\"} 3",
                "demo_objects{source=\"database\",bucket=\"c\"} 4",
                "demo_objects{source=\"filesystem\",bucket=\"a\"} 5",
            ]
        );
        family.clear_scope(&["database"]);
        assert_eq!(family.len(), 1);
    }

    #[test]
    fn replace_respects_the_cardinality_guard() {
        let family: Family<Gauge> = Family::new(&BY_SOURCE, &SeriesLimit::new(3));
        family.replace(&["filesystem"], [(["x"], 1.0)]);
        family.replace(&["database"], [(["a"], 1.0), (["b"], 1.0), (["c"], 1.0)]);
        assert_eq!(family.len(), 3);
        assert_eq!(family.dropped(), 1);
    }

    #[test]
    fn replace_takes_owned_label_values_and_skips_readings_of_the_wrong_length() {
        let family: Family<Gauge> = Family::new(&BY_SOURCE, &SeriesLimit::new(10));
        let rows = [("b\"q".to_owned(), 2.0), ("a".to_owned(), 1.0)];
        family.replace(&["database"], rows.into_iter().map(|(name, n)| ([name], n)));
        family.replace(
            &["filesystem"],
            [
                (vec!["x".to_owned()], 1.0),
                (vec![], 9.0),
                (vec!["y".into(), "z".into()], 9.0),
            ],
        );
        assert_eq!(
            samples(&family),
            [
                "demo_objects{source=\"database\",bucket=\"a\"} 1",
                "demo_objects{source=\"database\",bucket=\"b\\\"q\"} 2",
                "demo_objects{source=\"filesystem\",bucket=\"x\"} 1",
            ]
        );
    }

    #[test]
    fn clear_scope_removes_that_scope_only_and_an_empty_scope_everything() {
        let family: Family<Gauge> = Family::new(&BY_SOURCE, &SeriesLimit::new(10));
        // A scope value that is a prefix of another's must not take the other with it.
        family.replace(&["data"], [(["a"], 1.0)]);
        family.replace(&["database"], [(["a"], 2.0), (["b"], 3.0)]);
        family.clear_scope(&["data"]);
        assert_eq!(family.len(), 2);
        family.clear_scope(&["filesystem"]);
        assert_eq!(family.len(), 2);
        family.clear_scope(&[]);
        assert!(family.is_empty());
    }

    #[test]
    fn a_wrong_number_of_label_values_is_ignored_not_a_panic() {
        let family: Family<Counter> = Family::new(&REQUESTS, &SeriesLimit::new(10));
        family.inc(&["GET"]);
        family.inc(&["GET", "/", "extra"]);
        assert!(family.is_empty());
    }

    #[test]
    fn histogram_families_render_le_texts_computed_once() {
        let family: Family<Histogram> = Family::new(&LATENCY, &SeriesLimit::new(10));
        family.observe(&[], 0.75);
        assert_eq!(
            render(&family),
            "# HELP demo_latency_seconds Demo latency\n# TYPE demo_latency_seconds histogram\n\
             demo_latency_seconds_bucket{le=\"0.5\"} 0\ndemo_latency_seconds_bucket{le=\"1\"} 1\n\
             demo_latency_seconds_bucket{le=\"+Inf\"} 1\ndemo_latency_seconds_sum 0.75\n\
             demo_latency_seconds_count 1\n"
        );
    }
}
