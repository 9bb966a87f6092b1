use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use super::*;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The samples of `name` with label `key` = `value`.
fn values(scrape: &Scrape, name: &str, key: &str, value: &str) -> Vec<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get(key) == Some(value))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
        .collect()
}

fn gauges(tenants: &[&str]) -> Gauges {
    Gauges {
        functions: tenants
            .iter()
            .map(|t| FunctionGauge { tenant: t.to_string(), function: "f".into(), warm: true, instances: 2 })
            .collect(),
        models: tenants
            .iter()
            .map(|t| ModelGauge { tenant: t.to_string(), model: "m@1".into(), bytes: 10, plans: 1, plan_bytes: 0 })
            .collect(),
        pool_waiting: 3,
        pool_running: 1,
        resident_bytes: Some(1 << 20),
    }
}

#[test]
fn the_exposition_parses_with_every_family_labelled() {
    let metrics = Arc::new(Metrics::default());
    metrics.request("/fn/:tenant/:function", 200, Duration::from_micros(300));
    metrics.request("unmatched", 404, Duration::from_micros(20));
    let f = metrics.function("acme", "f");
    f.invoked(Outcome::Ok, Duration::from_micros(250));
    f.invoked(Outcome::Trapped, Duration::from_millis(2));
    f.rejected(Rejection::Rate);
    f.waited(Queue::Admission, Duration::from_micros(5));
    f.cold_start(
        Duration::from_millis(3),
        Duration::from_millis(1),
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    f.energy(0.5);
    let m = metrics.model("acme", "m@1");
    m.inferred(Duration::from_micros(6));
    m.plan_built();
    metrics.host_energy("acme", 0.25);

    let text = metrics.render(gauges(&["acme"]), None);
    let scrape = parse(&text);
    assert_eq!(values(&scrape, "maas_http_requests_total", "status", "2xx"), [1.0]);
    assert_eq!(values(&scrape, "maas_http_requests_total", "route", "unmatched"), [1.0]);
    assert_eq!(values(&scrape, "maas_invocations_total", "outcome", "ok"), [1.0]);
    assert_eq!(values(&scrape, "maas_invocations_total", "outcome", "trapped"), [1.0]);
    assert_eq!(values(&scrape, "maas_invocations_total", "outcome", "timeout"), [0.0]);
    assert_eq!(values(&scrape, "maas_invocations_rejected_total", "reason", "rate"), [1.0]);
    assert_eq!(values(&scrape, "maas_invocation_duration_seconds", "function", "f"), [2.0]);
    assert_eq!(values(&scrape, "maas_cold_start_phase_duration_seconds", "phase", "first_run"), [1.0]);
    assert_eq!(values(&scrape, "maas_energy_joules_total", "function", "f"), [0.5]);
    assert_eq!(values(&scrape, "maas_energy_joules_total", "function", HOST_WORK), [0.25]);
    assert_eq!(values(&scrape, "maas_inference_duration_seconds", "model", "m@1"), [1.0]);
    assert_eq!(values(&scrape, "maas_plan_builds_total", "model", "m@1"), [1.0]);
    assert_eq!(values(&scrape, "maas_warm_functions", "tenant", "acme"), [1.0]);
    assert_eq!(values(&scrape, "maas_in_flight_invocations", "tenant", "acme"), [2.0]);
    assert_eq!(values(&scrape, "maas_loaded_models", "tenant", "acme"), [1.0]);
    assert!(text.contains("maas_pool_queue_depth 3\n"), "{text}");
    assert!(text.contains("process_resident_memory_bytes 1048576\n"), "{text}");
    assert!(text.contains("# TYPE maas_invocation_duration_seconds histogram\n"), "{text}");
}

#[test]
fn a_tenants_view_has_only_its_series() {
    let metrics = Arc::new(Metrics::default());
    metrics.request("/fn/:tenant/:function", 200, Duration::from_micros(300));
    for tenant in ["acme", "umbrella"] {
        metrics.function(tenant, "f").invoked(Outcome::Ok, Duration::from_micros(250));
        metrics.model(tenant, "m@1").inferred(Duration::from_micros(6));
        metrics.host_energy(tenant, 1.0);
    }
    let text = metrics.render(gauges(&["acme", "umbrella"]), Some("acme"));
    assert!(!text.contains("umbrella"), "{text}");
    assert!(!text.contains("maas_http_requests_total"), "process-wide series are not a tenant's: {text}");
    let scrape = parse(&text);
    assert!(scrape.samples.iter().all(|s| s.labels.get("tenant") == Some("acme")), "{text}");
    assert_eq!(values(&scrape, "maas_invocations_total", "outcome", "ok"), [1.0]);
    assert_eq!(values(&scrape, "maas_function_warm", "function", "f"), [1.0]);
}

#[test]
fn series_go_with_their_function_model_and_tenant() {
    let metrics = Arc::new(Metrics::default());
    metrics.function("acme", "f").invoked(Outcome::Ok, Duration::ZERO);
    metrics.function("acme", "v2:m@1").invoked(Outcome::Ok, Duration::ZERO);
    metrics.function("acme", "v2:m@2").invoked(Outcome::Ok, Duration::ZERO);
    metrics.function("acme", "v2:mm@1").invoked(Outcome::Ok, Duration::ZERO);
    metrics.model("acme", "m@1").inferred(Duration::ZERO);
    metrics.model("acme", "m@2").inferred(Duration::ZERO);
    metrics.function("umbrella", "f").invoked(Outcome::Ok, Duration::ZERO);
    let shown = |metrics: &Arc<Metrics>| metrics.render(Gauges::default(), None);

    metrics.forget_model("acme", "m", Some(1));
    let text = shown(&metrics);
    assert!(!text.contains("m@1\"") || text.contains("mm@1"), "{text}");
    assert!(!text.contains("\"v2:m@1\"") && !text.contains("model=\"m@1\""), "{text}");
    assert!(text.contains("\"v2:m@2\"") && text.contains("\"v2:mm@1\""), "{text}");
    metrics.forget_model("acme", "m", None);
    let text = shown(&metrics);
    assert!(!text.contains("m@2"), "{text}");
    assert!(text.contains("\"v2:mm@1\""), "another model's series stay: {text}");
    metrics.forget_function("acme", "f");
    metrics.forget_tenant("umbrella");
    let text = shown(&metrics);
    assert!(!text.contains("function=\"f\""), "{text}");
    assert!(!text.contains("umbrella"), "{text}");
}
