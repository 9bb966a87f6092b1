//! The pure half of `maas top`: one scrape of the server's Prometheus text becomes a
//! [`Snapshot`] of per-function figures, and two snapshots an interval apart become one screen
//! of text ([`frame`]).
//!
//! Nothing here reads the clock, the network or the terminal (the caller passes the time and
//! the width), so a frame can be tested from hand-written expositions. It depends on
//! `prometheus-parse` and std only, and names nothing of the crate around it.
//!
//! Rates and quantiles are over the interval, from the difference of the two scrapes, as
//! Prometheus' `rate` and `histogram_quantile(q, rate(…_bucket))` compute them; cold starts,
//! errors and energy are totals since the server started.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_parse::{Labels, Sample, Scrape, Value};

/// `maas_function_warm{tenant,function}`: 1 while the function has an instance.
const WARM: &str = "maas_function_warm";
/// `maas_invocations_total{tenant,function,outcome}`.
const INVOCATIONS: &str = "maas_invocations_total";
/// `maas_invocations_rejected_total{tenant,function,reason}`: refused before running.
const REJECTED: &str = "maas_invocations_rejected_total";
/// The count of the cold start histogram: one observation per cold start.
const COLD_STARTS: &str = "maas_cold_start_duration_seconds_count";
/// The invocation duration histogram, as prometheus-parse names it when the exposition's
/// `# TYPE … histogram` line came first: it files the `_bucket` lines under the base name.
const DURATION: &str = "maas_invocation_duration_seconds";
/// The same histogram's buckets when no `# TYPE` line said it is one (they arrive as plain
/// samples with an `le` label).
const DURATION_BUCKET: &str = "maas_invocation_duration_seconds_bucket";
/// `maas_energy_joules_total{tenant,function}`.
const ENERGY: &str = "maas_energy_joules_total";

/// The only series `maas top` reads; the others (per tenant, per model, HTTP) are skipped.
const READ: [&str; 7] = [WARM, INVOCATIONS, REJECTED, COLD_STARTS, DURATION, DURATION_BUCKET, ENERGY];

/// The table's columns: title, and whether its cells are numbers (aligned right).
const COLUMNS: [(&str, bool); 9] = [
    ("TENANT", false),
    ("FUNCTION", false),
    ("STATE", false),
    ("REQ/S", true),
    ("P50", true),
    ("P99", true),
    ("COLD", true),
    ("ERRORS", true),
    ("ENERGY", true),
];

/// What one scrape says about every function, keyed by (tenant, function).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    functions: BTreeMap<(String, String), Figures>,
}

/// What one scrape says about one function: counters as the server totals them.
#[derive(Clone, Debug, Default, PartialEq)]
struct Figures {
    /// `maas_function_warm`; `None` without that gauge (host work such as `host:trust` has
    /// energy only), so the state shows as unknown rather than cold.
    warm: Option<bool>,
    /// Finished invocations, every outcome.
    invocations: f64,
    /// Invocations whose outcome was not `ok`.
    failed: f64,
    /// Invocations refused before they ran (auth, quota, rate, concurrency, budget).
    rejected: f64,
    /// Cold starts.
    cold_starts: f64,
    /// The invocation duration histogram: (upper bound in seconds, cumulative count), by bound.
    duration: Vec<(f64, f64)>,
    /// Energy attributed to the function, joules.
    energy_joules: f64,
}

impl Snapshot {
    /// Reads the figures of every function from a Prometheus text exposition. Lines that are
    /// not samples of the series read here are skipped, so a text of another server version
    /// (or no exposition at all) gives fewer figures, never an error.
    pub fn parse(text: &str) -> Snapshot {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        // The parser fails only when reading a line fails, and these lines are in memory.
        let samples = Scrape::parse(lines).map(|scrape| scrape.samples).unwrap_or_default();
        let mut functions: BTreeMap<(String, String), Figures> = BTreeMap::new();
        for sample in &samples {
            if !READ.contains(&sample.metric.as_str()) {
                continue;
            }
            let (Some(tenant), Some(function)) = (sample.labels.get("tenant"), sample.labels.get("function")) else {
                continue;
            };
            let figures = functions.entry((tenant.to_owned(), function.to_owned())).or_default();
            figures.add(sample);
        }
        for figures in functions.values_mut() {
            figures.duration.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Snapshot { functions }
    }
}

impl Figures {
    /// Adds one sample of a series in [`READ`].
    fn add(&mut self, sample: &Sample) {
        if let Value::Histogram(buckets) = &sample.value {
            if sample.metric == DURATION {
                self.duration.extend(buckets.iter().map(|b| (b.less_than, b.count)));
            }
            return;
        }
        let Some(value) = scalar(&sample.value) else { return };
        match sample.metric.as_str() {
            WARM => self.warm = Some(value != 0.0),
            INVOCATIONS => {
                self.invocations += value;
                if sample.labels.get("outcome") != Some("ok") {
                    self.failed += value;
                }
            }
            REJECTED => self.rejected += value,
            COLD_STARTS => self.cold_starts += value,
            DURATION_BUCKET => {
                if let Some(bound) = upper_bound(&sample.labels) {
                    self.duration.push((bound, value));
                }
            }
            ENERGY => self.energy_joules += value,
            _ => {}
        }
    }
}

/// A sample's number. prometheus-parse types a sample by the `# TYPE` line of its exact name,
/// so the same counter may come as `Counter` (text 0.0.4) or `Untyped` (OpenMetrics, whose
/// `TYPE` line names the family without `_total`): both are read. NaN and infinities (never
/// sent for these series) are skipped rather than poison a sum.
fn scalar(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) if v.is_finite() => Some(*v),
        _ => None,
    }
}

/// The `le` label of an untyped bucket sample (`+Inf` included).
fn upper_bound(labels: &Labels) -> Option<f64> {
    labels.get("le")?.parse().ok()
}

/// How much a counter grew between two scrapes; a counter that went down was reset (the
/// server restarted), and then all of its current value is new, as in Prometheus' `rate`.
fn increase(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

/// The buckets of the observations made between two scrapes of a cumulative histogram: each
/// bucket's count now less its count before, or the counts now if any bucket went down (a reset).
fn interval_buckets(before: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let earlier =
        |bound: f64| before.iter().find(|(b, _)| b.total_cmp(&bound).is_eq()).map_or(0.0, |&(_, count)| count);
    let reset = now.iter().any(|&(bound, count)| count < earlier(bound));
    now.iter().map(|&(bound, count)| (bound, if reset { count } else { count - earlier(bound) })).collect()
}

/// The `q`-quantile (0 ≤ q ≤ 1) of the observations in cumulative `buckets` (upper bound,
/// count), sorted by bound and ending with `+Inf`, estimated as Prometheus'
/// `histogram_quantile` does: the bucket holding the rank, then linear interpolation inside it
/// (the first bucket starts at 0); a rank in the `+Inf` bucket gives the highest finite bound.
/// `None` without observations or without the `+Inf` bucket.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_bound, _) = buckets.last()?;
    if buckets.len() < 2 || last_bound != f64::INFINITY {
        return None;
    }
    // Cumulative counts cannot go down; ones that do (scraped mid-update) are lifted, as
    // Prometheus does.
    let mut counts = Vec::with_capacity(buckets.len());
    let mut highest = 0.0_f64;
    for &(_, count) in buckets {
        highest = highest.max(count);
        counts.push(highest);
    }
    let total = highest;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let b = counts.iter().position(|&count| count >= rank)?;
    if b == buckets.len() - 1 {
        return Some(buckets[b - 1].0);
    }
    let end = buckets[b].0;
    if b == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, below) = if b == 0 { (0.0, 0.0) } else { (buckets[b - 1].0, counts[b - 1]) };
    Some(start + (end - start) * (rank - below) / (counts[b] - below))
}

/// Renders one screen: a header line (time, functions warm, total requests per second), a
/// blank line, then one row per function in `now`, by tenant then function.
///
/// `elapsed` is the time between the scrapes `before` and `now`; `at` is the time shown; each
/// line is cut to `width` characters when given (a terminal's width, so rows never wrap).
pub fn frame(before: &Snapshot, now: &Snapshot, elapsed: Duration, at: SystemTime, width: Option<usize>) -> String {
    let seconds = elapsed.as_secs_f64();
    let per_second = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
    let unseen = Figures::default();
    let mut rows = vec![COLUMNS.map(|(title, _)| title.to_owned())];
    let (mut warm, mut known, mut total_rate) = (0, 0, 0.0);
    for ((tenant, function), now) in &now.functions {
        // A function missing from the first scrape had no series yet: its counters were 0.
        let before = before.functions.get(&(tenant.clone(), function.clone())).unwrap_or(&unseen);
        let rate = per_second(increase(before.invocations, now.invocations));
        total_rate += rate;
        known += usize::from(now.warm.is_some());
        warm += usize::from(now.warm == Some(true));
        let interval = interval_buckets(&before.duration, &now.duration);
        let errors = now.failed + now.rejected;
        let new_errors = increase(before.failed, now.failed) + increase(before.rejected, now.rejected);
        rows.push([
            tenant.clone(),
            function.clone(),
            match now.warm {
                Some(true) => "warm",
                Some(false) => "cold",
                None => "-",
            }
            .to_owned(),
            format!("{rate:.1}"),
            millis(quantile(0.5, &interval)),
            millis(quantile(0.99, &interval)),
            with_new(now.cold_starts, increase(before.cold_starts, now.cold_starts)),
            with_new(errors, new_errors),
            format!("{} J", three_digits(now.energy_joules)),
        ]);
    }
    let mut text = format!(
        "maas top  {}  {warm}/{known} functions warm  {total_rate:.1} req/s  over {seconds:.1} s\n\n",
        clock(at)
    );
    text.push_str(&align(&rows));
    if now.functions.is_empty() {
        text.push_str("(no function has metrics yet)\n");
    }
    match width {
        Some(width) => {
            text.lines().map(|line| line.chars().take(width).collect::<String>().trim_end().to_owned() + "\n").collect()
        }
        None => text,
    }
}

/// Pads the cells into columns two spaces apart: text left, numbers right.
fn align(rows: &[[String; 9]]) -> String {
    let mut widths = [0; 9];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let width = widths[c];
            if COLUMNS[c].1 {
                line.push_str(&format!("{cell:>width$}  "));
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A total, with how much of it is new this interval: `5 (+2)`, or `5` when nothing is.
fn with_new(total: f64, new: f64) -> String {
    if new > 0.0 { format!("{total:.0} (+{new:.0})") } else { format!("{total:.0}") }
}

/// A duration in seconds as milliseconds (`3.75ms`, `22.0ms`, `245ms`), or `-` without one.
fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) => format!("{}ms", three_digits(seconds * 1000.0)),
        None => "-".to_owned(),
    }
}

/// About three significant digits, never in exponent form: `0.80`, `14.7`, `1235`.
fn three_digits(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The time of day in UTC, `HH:MM:SS UTC` (std has no time zones).
fn clock(at: SystemTime) -> String {
    let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 12:34:56 UTC on 1 January 1970.
    fn noon() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(12 * 3600 + 34 * 60 + 56)
    }

    /// The first scrape, as the server prints it (Prometheus text 0.0.4 from
    /// prometheus-client): `acme/classify` and the OIP model `acme/v2:resnet@1` warm,
    /// `globex/echo` cold, and host work that has energy only.
    const BEFORE: &str = r#"# HELP maas_invocations_total Invocations that ran, by outcome.
# TYPE maas_invocations_total counter
maas_invocations_total{tenant="acme",function="classify",outcome="ok"} 100
maas_invocations_total{tenant="acme",function="classify",outcome="trapped"} 2
maas_invocations_total{tenant="acme",function="v2:resnet@1",outcome="ok"} 40
maas_invocations_total{tenant="globex",function="echo",outcome="ok"} 7
maas_invocations_total{tenant="globex",function="echo",outcome="timeout"} 1
# HELP maas_invocations_rejected_total Invocations refused before they ran, by reason.
# TYPE maas_invocations_rejected_total counter
maas_invocations_rejected_total{tenant="acme",function="classify",reason="rate"} 1
# HELP maas_invocation_duration_seconds Invocation time, arrival to answer.
# TYPE maas_invocation_duration_seconds histogram
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.00025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.001"} 5
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0025"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.005"} 80
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.01"} 95
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.025"} 100
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.05"} 101
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.1"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.25"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.5"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="1"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="2.5"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="5"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="10"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="+Inf"} 102
maas_invocation_duration_seconds_sum{tenant="acme",function="classify"} 0.4213
maas_invocation_duration_seconds_count{tenant="acme",function="classify"} 102
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.00025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.01"} 10
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.025"} 35
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.05"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.1"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.25"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.5"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="1"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="2.5"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="5"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="10"} 40
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="+Inf"} 40
maas_invocation_duration_seconds_sum{tenant="acme",function="v2:resnet@1"} 0.7
maas_invocation_duration_seconds_count{tenant="acme",function="v2:resnet@1"} 40
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.00025"} 3
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0005"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.001"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0025"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.005"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.01"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.025"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.05"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.1"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.25"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.5"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="1"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="2.5"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="5"} 8
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="10"} 8
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="+Inf"} 8
maas_invocation_duration_seconds_sum{tenant="globex",function="echo"} 5.0021
maas_invocation_duration_seconds_count{tenant="globex",function="echo"} 8
# HELP maas_cold_start_duration_seconds Cold starts: instantiation to ready.
# TYPE maas_cold_start_duration_seconds histogram
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="0.05"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="0.1"} 1
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="+Inf"} 1
maas_cold_start_duration_seconds_sum{tenant="acme",function="classify"} 0.08
maas_cold_start_duration_seconds_count{tenant="acme",function="classify"} 1
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.05"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.1"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="+Inf"} 1
maas_cold_start_duration_seconds_sum{tenant="acme",function="v2:resnet@1"} 0.31
maas_cold_start_duration_seconds_count{tenant="acme",function="v2:resnet@1"} 1
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="0.05"} 2
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="0.1"} 2
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="+Inf"} 2
maas_cold_start_duration_seconds_sum{tenant="globex",function="echo"} 0.04
maas_cold_start_duration_seconds_count{tenant="globex",function="echo"} 2
# HELP maas_function_warm 1 while the function has an instance.
# TYPE maas_function_warm gauge
maas_function_warm{tenant="acme",function="classify"} 1
maas_function_warm{tenant="acme",function="v2:resnet@1"} 1
maas_function_warm{tenant="globex",function="echo"} 0
# HELP maas_energy_joules_total Energy attributed, joules.
# TYPE maas_energy_joules_total counter
maas_energy_joules_total{tenant="acme",function="classify"} 12.5
maas_energy_joules_total{tenant="acme",function="v2:resnet@1"} 1100.25
maas_energy_joules_total{tenant="acme",function="host:trust"} 3.2
maas_energy_joules_total{tenant="globex",function="echo"} 0.8
# HELP maas_warm_functions Functions with an instance.
# TYPE maas_warm_functions gauge
maas_warm_functions{tenant="acme"} 2
maas_warm_functions{tenant="globex"} 0
# HELP maas_http_requests_total HTTP requests, by route and status class.
# TYPE maas_http_requests_total counter
maas_http_requests_total{route="/fn/:tenant/:function",status="2xx"} 147
# HELP process_resident_memory_bytes Resident memory.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 73400320
"#;

    /// Two seconds later: `classify` ran 40 more (one trapped, one more rejected), the model
    /// 10 more after a second cold start, `echo` nothing.
    const NOW: &str = r#"# HELP maas_invocations_total Invocations that ran, by outcome.
# TYPE maas_invocations_total counter
maas_invocations_total{tenant="acme",function="classify",outcome="ok"} 139
maas_invocations_total{tenant="acme",function="classify",outcome="trapped"} 3
maas_invocations_total{tenant="acme",function="v2:resnet@1",outcome="ok"} 50
maas_invocations_total{tenant="globex",function="echo",outcome="ok"} 7
maas_invocations_total{tenant="globex",function="echo",outcome="timeout"} 1
# HELP maas_invocations_rejected_total Invocations refused before they ran, by reason.
# TYPE maas_invocations_rejected_total counter
maas_invocations_rejected_total{tenant="acme",function="classify",reason="rate"} 2
# HELP maas_invocation_duration_seconds Invocation time, arrival to answer.
# TYPE maas_invocation_duration_seconds histogram
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.00025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.001"} 5
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.0025"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.005"} 110
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.01"} 133
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.025"} 140
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.05"} 141
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.1"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.25"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="0.5"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="1"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="2.5"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="5"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="10"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="classify",le="+Inf"} 142
maas_invocation_duration_seconds_sum{tenant="acme",function="classify"} 0.6002
maas_invocation_duration_seconds_count{tenant="acme",function="classify"} 142
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.00025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.001"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.0025"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.005"} 0
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.01"} 10
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.025"} 35
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.05"} 42
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.1"} 47
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.25"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.5"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="1"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="2.5"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="5"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="10"} 50
maas_invocation_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="+Inf"} 50
maas_invocation_duration_seconds_sum{tenant="acme",function="v2:resnet@1"} 1.55
maas_invocation_duration_seconds_count{tenant="acme",function="v2:resnet@1"} 50
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0001"} 0
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.00025"} 3
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0005"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.001"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.0025"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.005"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.01"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.025"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.05"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.1"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.25"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="0.5"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="1"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="2.5"} 7
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="5"} 8
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="10"} 8
maas_invocation_duration_seconds_bucket{tenant="globex",function="echo",le="+Inf"} 8
maas_invocation_duration_seconds_sum{tenant="globex",function="echo"} 5.0021
maas_invocation_duration_seconds_count{tenant="globex",function="echo"} 8
# HELP maas_cold_start_duration_seconds Cold starts: instantiation to ready.
# TYPE maas_cold_start_duration_seconds histogram
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="0.05"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="0.1"} 1
maas_cold_start_duration_seconds_bucket{tenant="acme",function="classify",le="+Inf"} 1
maas_cold_start_duration_seconds_sum{tenant="acme",function="classify"} 0.08
maas_cold_start_duration_seconds_count{tenant="acme",function="classify"} 1
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.05"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="0.1"} 0
maas_cold_start_duration_seconds_bucket{tenant="acme",function="v2:resnet@1",le="+Inf"} 2
maas_cold_start_duration_seconds_sum{tenant="acme",function="v2:resnet@1"} 0.6
maas_cold_start_duration_seconds_count{tenant="acme",function="v2:resnet@1"} 2
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="0.05"} 2
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="0.1"} 2
maas_cold_start_duration_seconds_bucket{tenant="globex",function="echo",le="+Inf"} 2
maas_cold_start_duration_seconds_sum{tenant="globex",function="echo"} 0.04
maas_cold_start_duration_seconds_count{tenant="globex",function="echo"} 2
# HELP maas_function_warm 1 while the function has an instance.
# TYPE maas_function_warm gauge
maas_function_warm{tenant="acme",function="classify"} 1
maas_function_warm{tenant="acme",function="v2:resnet@1"} 1
maas_function_warm{tenant="globex",function="echo"} 0
# HELP maas_energy_joules_total Energy attributed, joules.
# TYPE maas_energy_joules_total counter
maas_energy_joules_total{tenant="acme",function="classify"} 14.7
maas_energy_joules_total{tenant="acme",function="v2:resnet@1"} 1234.6
maas_energy_joules_total{tenant="acme",function="host:trust"} 4.0
maas_energy_joules_total{tenant="globex",function="echo"} 0.8
# HELP maas_warm_functions Functions with an instance.
# TYPE maas_warm_functions gauge
maas_warm_functions{tenant="acme"} 2
maas_warm_functions{tenant="globex"} 0
# HELP maas_http_requests_total HTTP requests, by route and status class.
# TYPE maas_http_requests_total counter
maas_http_requests_total{route="/fn/:tenant/:function",status="2xx"} 198
# HELP process_resident_memory_bytes Resident memory.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 74448896
"#;

    /// The rates are over the 2 s between the scrapes; classify's 40 new durations put p50 in
    /// (2.5 ms, 5 ms] (rank 20 of 40, 10 below, 20 inside: 3.75 ms) and p99 in (10 ms, 25 ms]
    /// (rank 39.6, 38 below, 2 inside: 22 ms); the model's 10 put p50 at 80 ms and p99 at
    /// 245 ms; echo had no requests, so no quantiles.
    #[test]
    fn renders_two_scrapes() {
        let text = frame(&Snapshot::parse(BEFORE), &Snapshot::parse(NOW), Duration::from_secs(2), noon(), None);
        let expected = "\
maas top  12:34:56 UTC  2/3 functions warm  25.0 req/s  over 2.0 s

TENANT  FUNCTION     STATE  REQ/S     P50     P99    COLD  ERRORS  ENERGY
acme    classify     warm    20.0  3.75ms  22.0ms       1  5 (+2)  14.7 J
acme    host:trust   -        0.0       -       -       0       0  4.00 J
acme    v2:resnet@1  warm     5.0  80.0ms   245ms  2 (+1)       0  1235 J
globex  echo         cold     0.0       -       -       2       1  0.80 J
";
        assert_eq!(text, expected);
    }

    #[test]
    fn no_traffic_in_the_interval_has_no_quantiles() {
        let same = Snapshot::parse(NOW);
        let text = frame(&same, &same, Duration::from_secs(1), noon(), None);
        let expected = "\
maas top  12:34:56 UTC  2/3 functions warm  0.0 req/s  over 1.0 s

TENANT  FUNCTION     STATE  REQ/S  P50  P99  COLD  ERRORS  ENERGY
acme    classify     warm     0.0    -    -     1       5  14.7 J
acme    host:trust   -        0.0    -    -     0       0  4.00 J
acme    v2:resnet@1  warm     0.0    -    -     2       0  1235 J
globex  echo         cold     0.0    -    -     2       1  0.80 J
";
        assert_eq!(text, expected);
    }

    #[test]
    fn reads_the_figures_of_a_scrape() {
        let snapshot = Snapshot::parse(BEFORE);
        let keys: Vec<(&str, &str)> = snapshot.functions.keys().map(|(t, f)| (t.as_str(), f.as_str())).collect();
        assert_eq!(keys, [("acme", "classify"), ("acme", "host:trust"), ("acme", "v2:resnet@1"), ("globex", "echo")]);
        let classify = &snapshot.functions[&("acme".to_owned(), "classify".to_owned())];
        assert_eq!(classify.warm, Some(true));
        assert_eq!((classify.invocations, classify.failed, classify.rejected), (102.0, 2.0, 1.0));
        assert_eq!(classify.cold_starts, 1.0);
        assert_eq!(classify.energy_joules, 12.5);
        // The `# TYPE … histogram` line made prometheus-parse gather the 17 `_bucket` lines
        // into one histogram (+Inf last); `_sum` and `_count` stay plain samples.
        assert_eq!(classify.duration.len(), 17);
        assert_eq!(classify.duration[3], (0.001, 5.0));
        assert_eq!(classify.duration[16], (f64::INFINITY, 102.0));
        let host = &snapshot.functions[&("acme".to_owned(), "host:trust".to_owned())];
        assert_eq!((host.warm, host.energy_joules, host.duration.len()), (None, 3.2, 0));
    }

    /// Without `# TYPE` lines, or in OpenMetrics form (whose `TYPE` line names a counter
    /// without `_total`, and which ends in `# EOF`), the same samples give the same figures.
    #[test]
    fn reads_untyped_and_openmetrics_text() {
        let typed = Snapshot::parse(BEFORE);
        let untyped: String = BEFORE.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        let untyped = Snapshot::parse(&untyped);
        assert_eq!(untyped.functions, typed.functions);
        let openmetrics = BEFORE
            .replace("# TYPE maas_invocations_total counter", "# TYPE maas_invocations counter")
            .replace("# TYPE maas_energy_joules_total counter", "# TYPE maas_energy_joules counter")
            + "# EOF\n";
        assert_eq!(Snapshot::parse(&openmetrics).functions, typed.functions);
    }

    #[test]
    fn a_restarted_server_counts_from_zero() {
        let restarted = "\
maas_invocations_total{tenant=\"acme\",function=\"classify\",outcome=\"ok\"} 4
maas_invocation_duration_seconds_bucket{tenant=\"acme\",function=\"classify\",le=\"0.001\"} 0
maas_invocation_duration_seconds_bucket{tenant=\"acme\",function=\"classify\",le=\"0.0025\"} 4
maas_invocation_duration_seconds_bucket{tenant=\"acme\",function=\"classify\",le=\"+Inf\"} 4
";
        let text = frame(&Snapshot::parse(BEFORE), &Snapshot::parse(restarted), Duration::from_secs(1), noon(), None);
        let row = text.lines().find(|l| l.contains("classify")).unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        // 4 new requests in 1 s, p50 at rank 2 of 4 in (1 ms, 2.5 ms]: 1.75 ms.
        assert_eq!(cells[..5], ["acme", "classify", "-", "4.0", "1.75ms"]);
    }

    /// 100 observations: 10 up to 1 ms, 40 more up to 2.5 ms, 40 more up to 5 ms, 9 more up
    /// to 10 ms and 1 above every bound.
    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let buckets = [(0.001, 10.0), (0.0025, 50.0), (0.005, 90.0), (0.01, 99.0), (f64::INFINITY, 100.0)];
        let close = |q: f64, expected: f64| {
            let got = quantile(q, &buckets).unwrap_or(f64::NAN);
            assert!((got - expected).abs() < 1e-12, "q={q}: {got} != {expected}");
        };
        close(0.05, 0.0005); // rank 5 of the first 10, which start at 0
        close(0.5, 0.0025); // rank 50: the top of (1 ms, 2.5 ms]
        close(0.7, 0.00375); // rank 70: 20 of the 40 in (2.5 ms, 5 ms]
        close(0.95, 0.005 + 0.005 * 5.0 / 9.0); // rank 95: 5 of the 9 in (5 ms, 10 ms]
        close(0.995, 0.01); // rank 99.5 is in +Inf: the highest finite bound
        assert_eq!(quantile(0.5, &[(0.001, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[(0.001, 3.0), (0.01, 3.0)]), None, "no +Inf bucket");
        assert_eq!(quantile(0.5, &[]), None);
    }

    #[test]
    fn an_empty_scrape_says_so_and_lines_fit_the_width() {
        let empty = Snapshot::parse("");
        let text = frame(&empty, &empty, Duration::from_secs(1), noon(), Some(20));
        assert_eq!(text, "maas top  12:34:56 U\n\nTENANT  FUNCTION  ST\n(no function has met\n");
    }
}
