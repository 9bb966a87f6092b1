//! Metrics for `/metrics` and `/v1/tenants/{t}/metrics`, kept with the Prometheus project's
//! client (`prometheus-client`) and written in its text format.
//!
//! Three kinds of figures:
//!
//! - **Recorded** as things happen, per function ([`FunctionSeries`]: invocations by outcome,
//!   refusals by reason, durations, queue waits, cold starts and their phases, energy) and per
//!   model version ([`ModelSeries`]: inference durations, batch sizes, plan builds and
//!   evictions). A series is made when its function or model is first used and kept until the
//!   registry forgets it, so every label value names something the registry holds; never a
//!   path, a request id or a key. The invocation path holds its function's series, so
//!   recording is a few atomic adds and histogram observations, with no lookup.
//! - **Read at scrape** ([`Gauges`]): warm functions, running instances, loaded models and
//!   their bytes, cached plans and their bytes, the pool's queue, the process's memory.
//! - **Per HTTP request**, by route pattern and status class.
//!
//! [`Metrics::render`] writes all of it, or one tenant's series only (every per-tenant series
//! carries a `tenant` label; the process-wide ones are left out of a tenant's view).

mod expose;

pub use expose::{FunctionGauge, Gauges, ModelGauge};

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Bucket bounds of every duration histogram, seconds: from 100 µs (a warm call of a small
/// model) to 10 s (a long cold start or inference).
const DURATION_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Bucket bounds of the batch-size histogram, rows.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// A counter of a float quantity (joules).
type FloatCounter = Counter<f64, AtomicU64>;

/// How an invocation that reached its function ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered (whatever the status it chose).
    Ok,
    /// The guest trapped.
    Trapped,
    /// The guest ran past its timeout.
    Timeout,
    /// The guest grew past its memory limit and trapped.
    MemoryLimit,
    /// Anything else: the cold start failed, the host could not run the guest, or the answer
    /// was one HTTP cannot carry.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 5] = [Outcome::Ok, Outcome::Trapped, Outcome::Timeout, Outcome::MemoryLimit, Outcome::Failed];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Trapped => "trapped",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Failed => "failed",
        }
    }
}

/// Why an invocation was refused before it reached its function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No valid key, or a key that may not call it.
    Auth,
    /// Over a quota other than rate, concurrency and energy: the body size, the tenant's bodies
    /// in memory, a suspended tenant.
    Quota,
    /// Over the tenant's (or an anonymous caller's) rate.
    Rate,
    /// The function's or the tenant's concurrency, queue full or wait expired.
    Concurrency,
    /// The tenant's daily energy budget.
    Budget,
}

impl Rejection {
    const ALL: [Rejection; 5] =
        [Rejection::Auth, Rejection::Quota, Rejection::Rate, Rejection::Concurrency, Rejection::Budget];

    fn label(self) -> &'static str {
        match self {
            Rejection::Auth => "auth",
            Rejection::Quota => "quota",
            Rejection::Rate => "rate",
            Rejection::Concurrency => "concurrency",
            Rejection::Budget => "budget",
        }
    }
}

/// Where an invocation waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// For a place among the function's and the tenant's concurrency.
    Admission,
    /// For a worker of the bounded pool.
    Pool,
}

/// The recorded figures of one function. Cheap to share: the invocation path holds it.
#[derive(Debug)]
pub struct FunctionSeries {
    outcomes: [Counter; 5],
    rejected: [Counter; 5],
    duration: Histogram,
    queue_admission: Histogram,
    queue_pool: Histogram,
    cold_start: Histogram,
    /// Component, models, first run.
    phases: [Histogram; 3],
    energy: FloatCounter,
}

impl Default for FunctionSeries {
    fn default() -> Self {
        Self {
            outcomes: Default::default(),
            rejected: Default::default(),
            duration: duration_histogram(),
            queue_admission: duration_histogram(),
            queue_pool: duration_histogram(),
            cold_start: duration_histogram(),
            phases: [duration_histogram(), duration_histogram(), duration_histogram()],
            energy: FloatCounter::default(),
        }
    }
}

impl FunctionSeries {
    /// An invocation that reached the function ended with `outcome`, `duration` after its
    /// request arrived.
    pub fn invoked(&self, outcome: Outcome, duration: Duration) {
        self.outcomes[outcome as usize].inc();
        self.duration.observe(duration.as_secs_f64());
    }

    /// An invocation was refused before it reached the function.
    pub fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].inc();
    }

    /// An invocation waited `wait` in `queue`.
    pub fn waited(&self, queue: Queue, wait: Duration) {
        let histogram = match queue {
            Queue::Admission => &self.queue_admission,
            Queue::Pool => &self.queue_pool,
        };
        histogram.observe(wait.as_secs_f64());
    }

    /// A cold start: its total, then its phases (component, models, first run).
    pub fn cold_start(&self, total: Duration, component: Duration, models: Duration, first_run: Duration) {
        self.cold_start.observe(total.as_secs_f64());
        for (histogram, phase) in self.phases.iter().zip([component, models, first_run]) {
            histogram.observe(phase.as_secs_f64());
        }
    }

    /// Energy an invocation took, joules.
    pub fn energy(&self, joules: f64) {
        self.energy.inc_by(joules);
    }
}

/// The recorded figures of one model version. Detached (recorded nowhere) by default, for
/// models loaded outside a server.
#[derive(Clone, Debug)]
pub struct ModelSeries {
    inference: Histogram,
    batch_size: Histogram,
    plan_builds: Counter,
    plan_evictions: Counter,
}

impl Default for ModelSeries {
    fn default() -> Self {
        Self {
            inference: duration_histogram(),
            batch_size: Histogram::new(BATCH_BUCKETS),
            plan_builds: Counter::default(),
            plan_evictions: Counter::default(),
        }
    }
}

impl ModelSeries {
    /// One inference call took `duration` (with batching, the wait to gather its batch too).
    pub fn inferred(&self, duration: Duration) {
        self.inference.observe(duration.as_secs_f64());
    }

    /// A run of dynamic batching ran `rows` rows (one caller's, or several merged).
    pub fn batch(&self, rows: usize) {
        self.batch_size.observe(rows as f64);
    }

    /// A plan was built.
    pub fn plan_built(&self) {
        self.plan_builds.inc();
    }

    /// A plan was pushed out by a bound.
    pub fn plan_evicted(&self) {
        self.plan_evictions.inc();
    }
}

/// `(route pattern, status class)`.
type RouteStatus = [(&'static str, &'static str); 2];
/// `(route pattern)`.
type RouteOnly = [(&'static str, &'static str); 1];

/// Every series the server records. One per server.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RouteStatus, Counter>,
    request_duration: Family<RouteOnly, Histogram, fn() -> Histogram>,
    functions: Mutex<BTreeMap<(String, String), Arc<FunctionSeries>>>,
    models: Mutex<BTreeMap<(String, String), ModelSeries>>,
    /// Energy of model work in the host (explanations, audits), per tenant.
    host_energy: Mutex<BTreeMap<String, FloatCounter>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            functions: Mutex::default(),
            models: Mutex::default(),
            host_energy: Mutex::default(),
        }
    }
}

/// Whether `label` (`name@version`) is model `name`'s `version` (`None`: any version).
fn is_version(label: &str, name: &str, version: Option<u32>) -> bool {
    let Some(rest) = label.strip_prefix(name).and_then(|rest| rest.strip_prefix('@')) else { return false };
    version.is_none_or(|v| rest == v.to_string())
}

/// Whether `function` is the Open Inference Protocol endpoint (`v2:name@version`) of model
/// `name`'s `version` (`None`: any version).
pub fn is_endpoint(function: &str, name: &str, version: Option<u32>) -> bool {
    function.strip_prefix("v2:").is_some_and(|label| is_version(label, name, version))
}

/// The `function` label of energy spent on model work in the host rather than in a function
/// (`:` is not allowed in function names, so it never meets one).
pub const HOST_WORK: &str = "host:trust";

impl Metrics {
    /// Counts one HTTP request for `route` (the route's pattern, `unmatched` for none),
    /// answered with `status` after `duration`.
    pub fn request(&self, route: &'static str, status: u16, duration: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&[("route", route), ("status", class)]).inc();
        self.request_duration.get_or_create(&[("route", route)]).observe(duration.as_secs_f64());
    }

    /// The series of `tenant/function`, made on first use.
    pub fn function(&self, tenant: &str, function: &str) -> Arc<FunctionSeries> {
        let mut functions = self.functions.lock().expect("metrics lock");
        functions.entry((tenant.to_string(), function.to_string())).or_default().clone()
    }

    /// The series of model version `model` (`name@version`) of `tenant`, made on first use.
    pub fn model(&self, tenant: &str, model: &str) -> ModelSeries {
        let mut models = self.models.lock().expect("metrics lock");
        models.entry((tenant.to_string(), model.to_string())).or_default().clone()
    }

    /// Energy of model work `tenant` had done in the host, joules.
    pub fn host_energy(&self, tenant: &str, joules: f64) {
        self.host_energy.lock().expect("metrics lock").entry(tenant.to_string()).or_default().inc_by(joules);
    }

    /// The function is gone: its series go.
    pub fn forget_function(&self, tenant: &str, function: &str) {
        self.functions.lock().expect("metrics lock").remove(&(tenant.to_string(), function.to_string()));
    }

    /// Model `name`'s `version` (`None`: every version) is gone: its series go, and those of
    /// its Open Inference Protocol endpoint (the implicit function `v2:name@version`).
    pub fn forget_model(&self, tenant: &str, name: &str, version: Option<u32>) {
        let label = |m: &str| is_version(m, name, version);
        self.models.lock().expect("metrics lock").retain(|(t, m), _| t != tenant || !label(m));
        let endpoint = |f: &str| is_endpoint(f, name, version);
        self.functions.lock().expect("metrics lock").retain(|(t, f), _| t != tenant || !endpoint(f));
    }

    /// The tenant is gone: every series of it goes.
    pub fn forget_tenant(&self, tenant: &str) {
        self.functions.lock().expect("metrics lock").retain(|(t, _), _| t != tenant);
        self.models.lock().expect("metrics lock").retain(|(t, _), _| t != tenant);
        self.host_energy.lock().expect("metrics lock").remove(tenant);
    }
}

#[cfg(test)]
mod tests;
