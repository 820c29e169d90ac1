//! Golden tests: whole expositions compared as raw strings through one helper.

use std::sync::Arc;

use super::{Counter, Family, Gauge, Histogram, Registry, Scrape, SeriesLimit};
use crate::catalog::{FamilyDesc, Kind};

const REQUESTS: FamilyDesc = FamilyDesc {
    name: "golden_requests_total",
    kind: Kind::Counter,
    labels: &["path", "status"],
    buckets: &[],
    help: "Requests, by \"path\" \\ status\nsecond line",
};
const TEMPERATURE: FamilyDesc = FamilyDesc {
    name: "golden_temperature",
    kind: Kind::Gauge,
    labels: &["probe"],
    buckets: &[],
    help: "Temperature",
};
const LATENCY: FamilyDesc = FamilyDesc {
    name: "golden_latency_seconds",
    kind: Kind::Histogram,
    labels: &["route"],
    buckets: &[0.005, 0.25, 1.0, 2.5],
    help: "Latency",
};
const IDLE: FamilyDesc = FamilyDesc {
    name: "golden_idle",
    kind: Kind::Gauge,
    labels: &[],
    buckets: &[],
    help: "Never fed",
};

#[track_caller]
fn check(collectors: Vec<Arc<dyn super::Collector>>, expected: &str) {
    let mut registry = Registry::new();
    for collector in collectors {
        registry.register(collector);
    }
    let mut out = b"stale bytes from the previous scrape".to_vec();
    registry.render(&Scrape::now(), &mut out);
    let actual = String::from_utf8(out).expect("UTF-8 exposition");
    assert_eq!(
        actual, expected,
        "\n--- actual ---\n{actual}--- expected ---\n{expected}"
    );
}

#[test]
fn a_family_nothing_fed_has_help_and_type_only() {
    let idle: Family<Gauge> = Family::new(&IDLE, &SeriesLimit::new(10));
    check(
        vec![Arc::new(idle)],
        "# HELP golden_idle Never fed\n# TYPE golden_idle gauge\n",
    );
}

#[test]
fn label_values_escape_backslash_quote_and_newline_and_help_escapes_backslash_and_newline() {
    let requests: Family<Counter> = Family::new(&REQUESTS, &SeriesLimit::new(10));
    requests.inc_by(&["/a\\b", "2xx"], 3);
    requests.inc(&["/say \"hi\"\nbye", "5xx"]);
    check(
        vec![Arc::new(requests)],
        "# HELP golden_requests_total Requests, by \"path\" \\\\ status\\nsecond line\n\
         # TYPE golden_requests_total counter\n\
         golden_requests_total{path=\"/a\\\\b\",status=\"2xx\"} 3\n\
         golden_requests_total{path=\"/say \\\"hi\\\"\\nbye\",status=\"5xx\"} 1\n",
    );
}

#[test]
fn gauges_spell_nan_and_infinities_as_prometheus_does() {
    let temperature: Family<Gauge> = Family::new(&TEMPERATURE, &SeriesLimit::new(10));
    temperature.set(&["a"], f64::NAN);
    temperature.set(&["b"], f64::INFINITY);
    temperature.set(&["c"], f64::NEG_INFINITY);
    temperature.set(&["d"], -12.5);
    temperature.set(&["e"], 1e-9);
    check(
        vec![Arc::new(temperature)],
        "# HELP golden_temperature Temperature\n# TYPE golden_temperature gauge\n\
         golden_temperature{probe=\"a\"} NaN\ngolden_temperature{probe=\"b\"} +Inf\n\
         golden_temperature{probe=\"c\"} -Inf\ngolden_temperature{probe=\"d\"} -12.5\n\
         golden_temperature{probe=\"e\"} 1e-9\n",
    );
}

#[test]
fn histogram_buckets_ascend_are_cumulative_and_inf_equals_count() {
    let latency: Family<Histogram> = Family::new(&LATENCY, &SeriesLimit::new(10));
    for value in [0.001, 0.2, 0.25, 3.0, 7.5] {
        latency.observe(&["/x"], value);
    }
    check(
        vec![Arc::new(latency)],
        "# HELP golden_latency_seconds Latency\n# TYPE golden_latency_seconds histogram\n\
         golden_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n\
         golden_latency_seconds_bucket{route=\"/x\",le=\"0.25\"} 3\n\
         golden_latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n\
         golden_latency_seconds_bucket{route=\"/x\",le=\"2.5\"} 3\n\
         golden_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 5\n\
         golden_latency_seconds_sum{route=\"/x\"} 10.951\n\
         golden_latency_seconds_count{route=\"/x\"} 5\n",
    );
}

#[test]
fn families_render_in_registration_order_each_with_one_header() {
    let limit = SeriesLimit::new(10);
    let idle: Family<Gauge> = Family::new(&IDLE, &limit);
    let requests: Family<Counter> = Family::new(&REQUESTS, &limit);
    requests.inc(&["/", "2xx"]);
    requests.inc(&["/", "2xx"]);
    check(
        vec![Arc::new(requests), Arc::new(idle)],
        "# HELP golden_requests_total Requests, by \"path\" \\\\ status\\nsecond line\n\
         # TYPE golden_requests_total counter\n\
         golden_requests_total{path=\"/\",status=\"2xx\"} 2\n\
         # HELP golden_idle Never fed\n# TYPE golden_idle gauge\n",
    );
}

#[test]
fn series_dropped_by_a_full_family_are_counted_per_family() {
    let limit = SeriesLimit::new(1);
    let requests: Family<Counter> = Family::new(&REQUESTS, &limit);
    let idle: Family<Gauge> = Family::new(&IDLE, &limit);
    requests.inc(&["/kept", "2xx"]);
    requests.inc(&["/dropped", "2xx"]);
    requests.inc(&["/dropped-too", "4xx"]);
    check(
        vec![Arc::new(idle), limit],
        "# HELP golden_idle Never fed\n# TYPE golden_idle gauge\n\
         # HELP fluxbase_exporter_series_dropped_total Label sets not created because their family \
         already held the maximum number of series (--metrics.max-series)\n\
         # TYPE fluxbase_exporter_series_dropped_total counter\n\
         fluxbase_exporter_series_dropped_total{family=\"golden_requests_total\"} 2\n\
         fluxbase_exporter_series_dropped_total{family=\"golden_idle\"} 0\n",
    );
}
