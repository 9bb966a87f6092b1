//! The exposition: every series in the Prometheus text format, or one tenant's.
//!
//! A scrape builds a throwaway `prometheus_client` registry whose one collector writes the
//! recorded series and the [`Gauges`] read for this scrape, keeping only the tenant's series
//! when asked for one tenant. Writing the series straight from the tables keeps the view of a
//! tenant structural (no filtering of text), and lets series go with their function, model
//! or tenant.

use std::collections::BTreeMap;
use std::fmt::Error as FmtError;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{FunctionSeries, Metrics, ModelSeries, Outcome, Rejection};

/// Figures read at scrape time rather than recorded.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Every function the server holds a slot for.
    pub functions: Vec<FunctionGauge>,
    /// Every loaded model version.
    pub models: Vec<ModelGauge>,
    /// Jobs waiting for a worker of the bounded pool.
    pub pool_waiting: usize,
    /// Workers of the bounded pool running a job.
    pub pool_running: usize,
    /// The process's resident memory, bytes, where the OS tells it.
    pub resident_bytes: Option<u64>,
}

/// A function's state now.
#[derive(Clone, Debug)]
pub struct FunctionGauge {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub function: String,
    /// Whether it is warm.
    pub warm: bool,
    /// Invocations running now.
    pub instances: u32,
}

/// A loaded model version's memory now.
#[derive(Clone, Debug)]
pub struct ModelGauge {
    /// Its tenant.
    pub tenant: String,
    /// `name@version`.
    pub model: String,
    /// Bytes of its weights.
    pub bytes: u64,
    /// Plans it holds (its general plan and per-shape plans).
    pub plans: usize,
    /// Bytes of its per-shape plans (an estimate).
    pub plan_bytes: u64,
}

impl Metrics {
    /// The Prometheus text of every series, or of `tenant`'s only, with `gauges` read now.
    pub fn render(self: &Arc<Self>, gauges: Gauges, tenant: Option<&str>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition {
            metrics: self.clone(),
            gauges,
            tenant: tenant.map(str::to_string),
        }));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("writing to a String");
        text
    }
}

/// One scrape's view.
#[derive(Debug)]
struct Exposition {
    metrics: Arc<Metrics>,
    gauges: Gauges,
    tenant: Option<String>,
}

/// Writes one family: its descriptor, then each of its series.
fn family<'a, M: EncodeMetric + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, &'a M)>,
) -> Result<(), FmtError> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `tenant` and one more label.
fn labels<'a>(tenant: &'a str, key: &'static str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("tenant", tenant), (key, value)]
}

/// A gauge with one series per label set.
fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, i64)>,
) -> Result<(), FmtError> {
    let series: Vec<_> = series.into_iter().map(|(labels, v)| (labels, ConstGauge::new(v))).collect();
    family(encoder, name, help, MetricType::Gauge, series.iter().map(|(l, g)| (l.clone(), g)))
}

impl Exposition {
    fn shows(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    fn process(&self, encoder: &mut DescriptorEncoder) -> Result<(), FmtError> {
        let m = &self.metrics;
        let requests = encoder.encode_descriptor(
            "maas_http_requests",
            "HTTP requests answered, by route pattern and status class.",
            None,
            MetricType::Counter,
        )?;
        m.requests.encode(requests)?;
        let durations = encoder.encode_descriptor(
            "maas_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route pattern.",
            None,
            MetricType::Histogram,
        )?;
        m.request_duration.encode(durations)?;
        let g = &self.gauges;
        gauges(
            encoder,
            "maas_pool_queue_depth",
            "Jobs waiting for a worker of the bounded pool.",
            [(vec![], g.pool_waiting as i64)],
        )?;
        gauges(
            encoder,
            "maas_pool_busy_workers",
            "Workers of the bounded pool running a job.",
            [(vec![], g.pool_running as i64)],
        )?;
        if let Some(bytes) = g.resident_bytes {
            gauges(
                encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                [(vec![], bytes as i64)],
            )?;
        }
        Ok(())
    }

    fn functions(&self, encoder: &mut DescriptorEncoder) -> Result<(), FmtError> {
        let table = self.metrics.functions.lock().expect("metrics lock").clone();
        let series: Vec<(&(String, String), &Arc<FunctionSeries>)> =
            table.iter().filter(|((t, _), _)| self.shows(t)).collect();
        let mut invocations = encoder.encode_descriptor(
            "maas_invocations",
            "Invocations that reached their function, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for ((t, f), s) in &series {
            for outcome in Outcome::ALL {
                let labels = [("tenant", t.as_str()), ("function", f.as_str()), ("outcome", outcome.label())];
                s.outcomes[outcome as usize].encode(invocations.encode_family(&labels)?)?;
            }
        }
        let mut rejected = encoder.encode_descriptor(
            "maas_invocations_rejected",
            "Invocations refused before they reached their function, by reason.",
            None,
            MetricType::Counter,
        )?;
        for ((t, f), s) in &series {
            for why in Rejection::ALL {
                let labels = [("tenant", t.as_str()), ("function", f.as_str()), ("reason", why.label())];
                s.rejected[why as usize].encode(rejected.encode_family(&labels)?)?;
            }
        }
        family(
            encoder,
            "maas_invocation_duration_seconds",
            "Time from an invocation's arrival to its answer, on the server.",
            MetricType::Histogram,
            series.iter().map(|((t, f), s)| (labels(t, "function", f), &s.duration)),
        )?;
        let mut queue = encoder.encode_descriptor(
            "maas_queue_wait_seconds",
            "Time an invocation waited: for a place among the concurrency (admission), for a pool worker (pool).",
            None,
            MetricType::Histogram,
        )?;
        for ((t, f), s) in &series {
            for (name, histogram) in [("admission", &s.queue_admission), ("pool", &s.queue_pool)] {
                let labels = [("tenant", t.as_str()), ("function", f.as_str()), ("queue", name)];
                histogram.encode(queue.encode_family(&labels)?)?;
            }
        }
        family(
            encoder,
            "maas_cold_start_duration_seconds",
            "Cold starts and their time, from the wake to the first answer's run.",
            MetricType::Histogram,
            series.iter().map(|((t, f), s)| (labels(t, "function", f), &s.cold_start)),
        )?;
        let mut phases = encoder.encode_descriptor(
            "maas_cold_start_phase_duration_seconds",
            "The phases of cold starts: component load, model load and optimize, first run.",
            None,
            MetricType::Histogram,
        )?;
        for ((t, f), s) in &series {
            for (name, histogram) in ["component", "models", "first_run"].into_iter().zip(&s.phases) {
                let labels = [("tenant", t.as_str()), ("function", f.as_str()), ("phase", name)];
                histogram.encode(phases.encode_family(&labels)?)?;
            }
        }
        let host_energy = self.metrics.host_energy.lock().expect("metrics lock").clone();
        let mut energy = encoder.encode_descriptor(
            "maas_energy_joules",
            "Energy of the CPU time spent, joules, by function (host:trust: explanations and audits).",
            None,
            MetricType::Counter,
        )?;
        for ((t, f), s) in &series {
            s.energy.encode(energy.encode_family(&[("tenant", t.as_str()), ("function", f.as_str())])?)?;
        }
        for (t, counter) in host_energy.iter().filter(|(t, _)| self.shows(t)) {
            counter.encode(energy.encode_family(&[("tenant", t.as_str()), ("function", super::HOST_WORK)])?)?;
        }
        Ok(())
    }

    fn function_gauges(&self, encoder: &mut DescriptorEncoder) -> Result<(), FmtError> {
        let functions: Vec<_> = self.gauges.functions.iter().filter(|g| self.shows(&g.tenant)).collect();
        gauges(
            encoder,
            "maas_function_warm",
            "1 when the function is warm, 0 when it is scaled to zero.",
            functions.iter().map(|g| (labels(&g.tenant, "function", &g.function), i64::from(g.warm))),
        )?;
        gauges(
            encoder,
            "maas_function_instances",
            "Instances of the function running now.",
            functions.iter().map(|g| (labels(&g.tenant, "function", &g.function), i64::from(g.instances))),
        )?;
        let mut per_tenant: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for g in &functions {
            let entry = per_tenant.entry(&g.tenant).or_default();
            entry.0 += i64::from(g.warm);
            entry.1 += i64::from(g.instances);
        }
        gauges(
            encoder,
            "maas_warm_functions",
            "Warm functions of the tenant.",
            per_tenant.iter().map(|(t, (warm, _))| (vec![("tenant", *t)], *warm)),
        )?;
        gauges(
            encoder,
            "maas_in_flight_invocations",
            "Invocations of the tenant running now.",
            per_tenant.iter().map(|(t, (_, running))| (vec![("tenant", *t)], *running)),
        )
    }

    fn models(&self, encoder: &mut DescriptorEncoder) -> Result<(), FmtError> {
        let table = self.metrics.models.lock().expect("metrics lock").clone();
        let series: Vec<(&(String, String), &ModelSeries)> = table.iter().filter(|((t, _), _)| self.shows(t)).collect();
        family(
            encoder,
            "maas_inference_duration_seconds",
            "Time of one inference call (in tract; with batching, the wait to gather its batch too).",
            MetricType::Histogram,
            series.iter().map(|((t, m), s)| (labels(t, "model", m), &s.inference)),
        )?;
        family(
            encoder,
            "maas_inference_batch_size",
            "Rows of each run of dynamic batching (one caller's, or several merged).",
            MetricType::Histogram,
            series.iter().map(|((t, m), s)| (labels(t, "model", m), &s.batch_size)),
        )?;
        family(
            encoder,
            "maas_plan_builds",
            "Plans optimized for the model version (one general plan, or one per input shapes).",
            MetricType::Counter,
            series.iter().map(|((t, m), s)| (labels(t, "model", m), &s.plan_builds)),
        )?;
        family(
            encoder,
            "maas_plan_evictions",
            "Per-shape plans of the model version pushed out by a bound (the model's, its tenant's, the process's).",
            MetricType::Counter,
            series.iter().map(|((t, m), s)| (labels(t, "model", m), &s.plan_evictions)),
        )?;
        let loaded: Vec<_> = self.gauges.models.iter().filter(|g| self.shows(&g.tenant)).collect();
        gauges(
            encoder,
            "maas_loaded_model_bytes",
            "Bytes of the weights of a loaded model version.",
            loaded.iter().map(|g| (labels(&g.tenant, "model", &g.model), g.bytes as i64)),
        )?;
        gauges(
            encoder,
            "maas_plans",
            "Plans a loaded model version holds.",
            loaded.iter().map(|g| (labels(&g.tenant, "model", &g.model), g.plans as i64)),
        )?;
        gauges(
            encoder,
            "maas_plan_bytes",
            "Bytes of a loaded model version's per-shape plans (an estimate).",
            loaded.iter().map(|g| (labels(&g.tenant, "model", &g.model), g.plan_bytes as i64)),
        )?;
        let mut per_tenant: BTreeMap<&str, i64> = BTreeMap::new();
        for g in &loaded {
            *per_tenant.entry(&g.tenant).or_default() += 1;
        }
        gauges(
            encoder,
            "maas_loaded_models",
            "Model versions of the tenant loaded by warm functions.",
            per_tenant.iter().map(|(t, n)| (vec![("tenant", *t)], *n)),
        )
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), FmtError> {
        if self.tenant.is_none() {
            self.process(&mut encoder)?;
        }
        self.functions(&mut encoder)?;
        self.function_gauges(&mut encoder)?;
        self.models(&mut encoder)
    }
}
