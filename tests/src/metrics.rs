//! Reading `/metrics` in tests and benches: the Prometheus text, parsed by a Prometheus text
//! parser (`prometheus-parse`), so that a test also checks that it parses.

use prometheus_parse::{Scrape, Value};

/// Parses Prometheus text; panics with the text when it does not parse.
pub fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The sum of the samples of `name` whose labels include every pair of `labels`. For a
/// histogram, its count of observations.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse(text)
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Whether any sample of `name` is there (with any labels).
pub fn has(text: &str, name: &str) -> bool {
    parse(text).samples.iter().any(|s| s.metric == name)
}
