//! Whether an upload's cost depends on what the tenant already stores: the time of a small
//! model upload on a fresh tenant, then after the tenant holds 1,600 versions. The quota
//! checks read kept totals, so the two should be about the same (before, each upload scanned
//! every version: 9–22 ms fresh, 75–136 ms at 1,640 versions).
//!
//! Run: `cargo bench -p maas-tests --bench upload_versions` (about half a minute).

use std::time::Instant;

use maas_tests::bench::percentile;
use maas_tests::{TestServer, models};
use serde_json::json;

/// Versions the tenant holds before the second measurement.
const VERSIONS: usize = 1600;
/// Uploads timed at each point.
const SAMPLES: usize = 100;

fn main() {
    let server = TestServer::start();
    let admin = server.admin();
    let quota = json!({ "rate_per_second": 1e6, "max_storage_bytes": 1u64 << 34 });
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme", "quota": quota })).status, 201);
    let model = models::mlp(1);
    let timed = |name: &str| -> Vec<f64> {
        (0..SAMPLES)
            .map(|_| {
                let started = Instant::now();
                let r = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}"), &model);
                assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    };
    let mut fresh = timed("fresh");
    for _ in 0..VERSIONS - 2 * SAMPLES {
        assert_eq!(admin.put_bytes("/v1/tenants/acme/models/filler", &model).status, 201);
    }
    let mut full = timed("full");
    let held = admin.get("/v1/tenants/acme/models").json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["versions"].as_array().unwrap().len())
        .sum::<usize>();
    println!("model upload ({} bytes), {SAMPLES} uploads at each point:", model.len());
    println!(
        "  fresh tenant:              p50 {:>6.2} ms   p99 {:>6.2} ms",
        percentile(&mut fresh, 0.5),
        percentile(&mut fresh, 0.99)
    );
    println!(
        "  tenant holding {held} versions: p50 {:>6.2} ms   p99 {:>6.2} ms",
        percentile(&mut full, 0.5),
        percentile(&mut full, 0.99)
    );
    println!("  ratio of the p50s: {:.2}", percentile(&mut full, 0.5) / percentile(&mut fresh, 0.5));
}
