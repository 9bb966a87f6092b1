//! Process-wide counters for `/metrics`, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the server keeps since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests handled.
    pub requests: AtomicU64,
    /// Requests answered with a 4xx.
    pub client_errors: AtomicU64,
    /// Requests answered with a 5xx.
    pub server_errors: AtomicU64,
    /// Function invocations that reached a function (OIP inference included).
    pub invocations: AtomicU64,
    /// Cold starts.
    pub cold_starts: AtomicU64,
    /// Time spent in cold starts, microseconds.
    pub cold_start_us_total: AtomicU64,
    /// Time spent in tract, microseconds.
    pub inference_us_total: AtomicU64,
    /// Invocations whose inference ran in a batch with others.
    pub batched_invocations: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one answered request of `status`.
    pub fn request(&self, status: u16) {
        add(&self.requests, 1);
        match status {
            400..=499 => add(&self.client_errors, 1),
            500..=599 => add(&self.server_errors, 1),
            _ => {}
        }
    }

    /// The exposition, with the gauges `warm_functions`, `loaded_models` and the per-shape
    /// plans' bytes read now, and the plans their bounds pushed out.
    pub fn render(&self, warm_functions: usize, loaded_models: usize, plans: &crate::inference::PlanBudget) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP maas_requests_total HTTP requests handled.\n# TYPE maas_requests_total counter\nmaas_requests_total {}\n\
             # HELP maas_request_errors_total Requests answered with an error, by class.\n# TYPE maas_request_errors_total counter\n\
             maas_request_errors_total{{class=\"4xx\"}} {}\nmaas_request_errors_total{{class=\"5xx\"}} {}\n\
             # HELP maas_invocations_total Function invocations.\n# TYPE maas_invocations_total counter\nmaas_invocations_total {}\n\
             # HELP maas_cold_starts_total Cold starts.\n# TYPE maas_cold_starts_total counter\nmaas_cold_starts_total {}\n\
             # HELP maas_cold_start_seconds_total Time spent in cold starts.\n# TYPE maas_cold_start_seconds_total counter\nmaas_cold_start_seconds_total {}\n\
             # HELP maas_inference_seconds_total Time spent in tract.\n# TYPE maas_inference_seconds_total counter\nmaas_inference_seconds_total {}\n\
             # HELP maas_batched_invocations_total Invocations whose inference shared a batch with others.\n# TYPE maas_batched_invocations_total counter\nmaas_batched_invocations_total {}\n\
             # HELP maas_warm_functions Functions currently warm.\n# TYPE maas_warm_functions gauge\nmaas_warm_functions {}\n\
             # HELP maas_loaded_models Models currently loaded.\n# TYPE maas_loaded_models gauge\nmaas_loaded_models {}\n\
             # HELP maas_plan_bytes Bytes of per-shape plans held (an estimate).\n# TYPE maas_plan_bytes gauge\nmaas_plan_bytes {}\n\
             # HELP maas_plan_evictions_total Per-shape plans pushed out by a model's, a tenant's or the process's bound.\n\
             # TYPE maas_plan_evictions_total counter\nmaas_plan_evictions_total {}\n",
            get(&self.requests),
            get(&self.client_errors),
            get(&self.server_errors),
            get(&self.invocations),
            get(&self.cold_starts),
            get(&self.cold_start_us_total) as f64 / 1e6,
            get(&self.inference_us_total) as f64 / 1e6,
            get(&self.batched_invocations),
            warm_functions,
            loaded_models,
            plans.used(),
            plans.evictions(),
        )
    }
}
