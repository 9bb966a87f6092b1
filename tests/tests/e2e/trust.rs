//! Usage, energy and carbon metering, the daily energy budget, model cards, explanations and
//! fairness audits.

use maas_tests::{TestServer, models};
use serde_json::{Value, json};

use super::*;

/// An OIP request of `rows` seeded rows of 100 features for the `mlp_batch`-shaped models.
fn batch_request(rows: usize) -> Value {
    oip_request("input", &[rows, 100], &models::seeded_input(3, &[rows, 100]))
}

fn energy_uj(r: &maas_tests::Response) -> u64 {
    r.header("x-maas-energy-uj").expect("x-maas-energy-uj").parse().expect("a whole number of microjoules")
}

#[test]
fn usage_and_energy_grow_with_inference_work() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "small", &models::mlp_batch(1));
    upload(&admin, "acme", "large", &models::mlp_sized(1, models::LARGE_HIDDEN));
    for (f, m) in [("small", "small"), ("large", "large")] {
        let r = deploy(&admin, "acme", f, json!({ "component": "builtin:tensor", "models": { "model": m } }));
        assert_eq!(r.status, 201);
    }
    let request = batch_request(32);
    let calls = 6;
    let mut header_uj = [0u64; 2];
    for _ in 0..calls {
        for (i, f) in ["small", "large"].into_iter().enumerate() {
            let r = admin.post_json(&format!("/fn/acme/{f}"), &request);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert!(r.header("x-maas-model").is_some());
            header_uj[i] += energy_uj(&r);
        }
    }
    let usage = admin.get("/v1/tenants/acme/usage").json();
    assert_eq!(usage["invocations"], 2 * calls);
    assert_eq!(usage["cold_starts"], 2);
    assert_eq!(usage["errors"], 0);
    let small = &usage["functions"]["small"];
    let large = &usage["functions"]["large"];
    assert_eq!(small["invocations"], calls);
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    for v in [small, large, &usage] {
        assert!(f(v, "energy_joules") > 0.0 && f(v, "co2e_grams") > 0.0 && f(v, "cpu_seconds") > 0.0, "{v}");
        assert!(f(v, "inference_seconds") <= f(v, "cpu_seconds"), "{v}");
        // co2e is energy × the grid intensity (475 g/kWh by default).
        assert!((f(v, "co2e_grams") - f(v, "energy_joules") / 3.6e6 * 475.0).abs() < 1e-12, "{v}");
    }
    assert!((f(&usage, "energy_joules") - f(small, "energy_joules") - f(large, "energy_joules")).abs() < 1e-9);
    // The large model (≈ 20–35× the MLP's arithmetic) costs clearly more per call, in tract and
    // in total; thread CPU clocks do not count time spent waiting, so this holds on a busy host.
    assert!(f(large, "inference_seconds") > 5.0 * f(small, "inference_seconds"), "small {small} large {large}");
    assert!(f(large, "energy_joules") > 2.0 * f(small, "energy_joules"), "small {small} large {large}");
    // The headers add up to what usage reports (to the microjoule rounding of each call).
    let header_j = (header_uj[0] + header_uj[1]) as f64 / 1e6;
    assert!((header_j - f(&usage, "energy_joules")).abs() < 1e-5 * (2 * calls) as f64, "{header_j} vs {usage}");
    // One day bucket, today, holding it all.
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["invocations"], 2 * calls);
    assert_eq!(days[0]["date"].as_str().unwrap().len(), 10);
    assert!(usage["storage_bytes"].as_u64().unwrap() > 0);
    assert_eq!(usage["energy_model"]["watts_per_core"], 3.5);

    // More calls, more energy; an invoker key may not read usage.
    assert_eq!(admin.post_json("/fn/acme/small", &request).status, 200);
    let after = admin.get("/v1/tenants/acme/usage").json();
    assert_eq!(after["invocations"], 2 * calls + 1);
    assert!(f(&after, "energy_joules") > f(&usage, "energy_joules"));
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" })).json()["key"].clone();
    assert_eq!(server.client(key.as_str().unwrap()).get("/v1/tenants/acme/usage").status, 403);
}

#[test]
fn energy_budget_stops_one_tenant_and_not_another() {
    let server = TestServer::start();
    let admin = server.admin();
    for (name, quota) in [("frugal", json!({ "max_energy_joules_per_day": 1e-9 })), ("other", json!({}))] {
        assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": name, "quota": quota })).status, 201);
        upload(&admin, name, "mlp", &models::mlp_batch(1));
        deploy(&admin, name, "f", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } }));
    }
    let request = batch_request(4);
    // The first call starts within budget and spends it.
    assert_eq!(admin.post_json("/fn/frugal/f", &request).status, 200);
    let refused = admin.post_json("/fn/frugal/f", &request);
    assert_eq!((refused.status, refused.code().as_str()), (429, "rate_limited"));
    assert!(refused.json()["error"].as_str().unwrap().contains("energy budget"));
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    // OIP inference draws on the same budget.
    let key = admin.post_json("/v1/tenants/frugal/keys", &json!({ "role": "invoker" })).json()["key"].clone();
    let oip = server.client(key.as_str().unwrap()).post_json("/v2/models/mlp/infer", &request);
    assert_eq!(oip.status, 429);
    for _ in 0..3 {
        assert_eq!(admin.post_json("/fn/other/f", &request).status, 200);
    }
    // Raising the budget lets the tenant go on; removing it too.
    let r = admin.patch_json("/v1/tenants/frugal", &json!({ "quota": { "max_energy_joules_per_day": 1000.0 } }));
    assert_eq!(r.json()["quota"]["max_energy_joules_per_day"], 1000.0);
    assert_eq!(admin.post_json("/fn/frugal/f", &request).status, 200);
    let r = admin.patch_json("/v1/tenants/frugal", &json!({ "quota": { "max_energy_joules_per_day": null } }));
    assert_eq!(r.json()["quota"]["max_energy_joules_per_day"], Value::Null);
    assert_eq!(admin.post_json("/fn/frugal/f", &request).status, 200);
}

#[test]
fn model_cards_merge_what_owners_write_with_facts() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let v1 = upload(&admin, "acme", "mlp", &models::mlp(1));
    let v2 = upload(&admin, "acme", "mlp", &models::mlp(2));
    let card = json!({
        "description": "Scores <b>loan</b> applications.",
        "intended_use": "Ranking for human review.",
        "license": "Apache-2.0",
    });
    let r = admin.put_json("/v1/tenants/acme/models/mlp/card", &card);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let doc = admin.get("/v1/tenants/acme/models/mlp/card").json();
    assert_eq!(doc["card"]["license"], "Apache-2.0");
    assert_eq!(doc["card"]["contact"], Value::Null);
    assert_eq!(doc["latest_version"], 2);
    assert_eq!(doc["versions"][0]["sha256"], v1["sha256"]);
    assert_eq!(doc["versions"][1]["sha256"], v2["sha256"]);
    assert_eq!(doc["versions"][1]["inputs"][0]["shape"], json!([1, 100]));
    assert_eq!(doc["versions"][1]["audit"], Value::Null);

    let md = admin.get("/v1/tenants/acme/models/mlp/card?format=md");
    assert_eq!(md.status, 200);
    assert!(md.header("content-type").unwrap().starts_with("text/markdown"));
    let md = String::from_utf8(md.body).unwrap();
    assert!(md.contains("# Model card: mlp"), "{md}");
    assert!(md.contains("## Intended use\n\nRanking for human review."), "{md}");
    assert!(md.contains(v2["sha256"].as_str().unwrap()), "{md}");
    let html = admin.get("/v1/tenants/acme/models/mlp/card?format=html");
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(html.body).unwrap();
    assert!(html.contains("Scores &lt;b&gt;loan&lt;/b&gt; applications.") && !html.contains("<b>loan"), "{html}");

    // Unknown fields, a missing model, and an unknown format are refused.
    let bad = admin.put_json("/v1/tenants/acme/models/mlp/card", &json!({ "colour": "red" }));
    assert_eq!((bad.status, bad.code().as_str()), (400, "invalid_request"));
    assert_eq!(admin.put_json("/v1/tenants/acme/models/nope/card", &card).status, 404);
    assert_eq!(admin.get("/v1/tenants/acme/models/mlp/card?format=pdf").status, 400);
    // The card goes with the model.
    assert_eq!(admin.delete("/v1/tenants/acme/models/mlp").status, 204);
    upload(&admin, "acme", "mlp", &models::mlp(3));
    assert_eq!(admin.get("/v1/tenants/acme/models/mlp/card").json()["card"]["license"], Value::Null);
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn explanations_of_a_linear_model_are_exact() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let (w, b) = ([1.5f32, -2.0, 0.25, 3.0], 0.5f32);
    upload(&admin, "acme", "lin", &models::linear(&w, b));
    let x = [2.0f32, 1.0, -4.0, 0.5];
    let input = json!([{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": x }]);
    let exact: Vec<f32> = w.iter().zip(&x).map(|(w, x)| w * x).collect();

    let r = admin.post_json("/v1/tenants/acme/models/lin/explain", &json!({ "inputs": input, "method": "occlusion" }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-maas-energy-uj").is_some());
    assert!(r.header("x-maas-model").unwrap().starts_with("lin@1 sha256:"));
    let e = r.json();
    assert_eq!(
        (e["method"].as_str(), e["output"].as_str(), e["target"].as_u64()),
        (Some("occlusion"), Some("y"), Some(0))
    );
    let prediction: f32 = exact.iter().sum::<f32>() + b;
    assert!((e["prediction"].as_f64().unwrap() as f32 - prediction).abs() < 1e-5, "{e}");
    assert!((e["baseline_prediction"].as_f64().unwrap() as f32 - b).abs() < 1e-6, "{e}");
    let attribution = &e["attributions"][0];
    assert_eq!((attribution["name"].as_str(), attribution["datatype"].as_str()), (Some("x"), Some("FP32")));
    assert_eq!(attribution["shape"], json!([1, 4]));
    let occlusion = f32s(&attribution["data"]);
    assert!(max_abs_diff(&occlusion, &exact) < 1e-6, "occlusion {occlusion:?} vs w·x {exact:?}");

    let r = admin.post_json(
        "/v1/tenants/acme/models/lin/versions/1/explain",
        &json!({ "inputs": input, "method": "kernel_shap", "samples": 400, "seed": 7 }),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let shap = f32s(&r.json()["attributions"][0]["data"]);
    assert!(max_abs_diff(&shap, &exact) < 1e-3, "kernel_shap {shap:?} vs w·x {exact:?}");

    // Past the caps, or with nonsense, a clear 400 before any work.
    for (body, words) in [
        (json!({ "inputs": input, "method": "kernel_shap", "samples": 10_000_000 }), "samples"),
        (json!({ "inputs": input, "method": "guess" }), "guess"),
        (json!({ "inputs": input, "method": "occlusion", "baseline": [1, 2] }), "baseline"),
        (json!({ "inputs": input, "method": "occlusion", "output": "nope" }), "nope"),
    ] {
        let r = admin.post_json("/v1/tenants/acme/models/lin/explain", &body);
        let message = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"), "{body}: {message}");
        assert!(message.contains(words), "{body}: {message}");
    }
    // Explanations are metered like invocations.
    let usage = admin.get("/v1/tenants/acme/usage").json();
    assert!(usage["direct_inference"]["invocations"].as_u64().unwrap() >= 2, "{usage}");
    assert!(usage["direct_inference"]["energy_joules"].as_f64().unwrap() > 0.0, "{usage}");
}

#[test]
fn kernel_shap_on_the_mlp_is_efficient() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp_batch(4));
    let x = models::seeded_input(11, &[1, 100]);
    let body = json!({
        "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": x }],
        "method": "kernel_shap", "baseline": "mean", "samples": 600, "seed": 3,
    });
    let r = admin.post_json("/v1/tenants/acme/models/mlp/explain", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    let sum: f64 = f32s(&e["attributions"][0]["data"]).iter().map(|a| f64::from(*a)).sum();
    let gap = e["prediction"].as_f64().unwrap() - e["baseline_prediction"].as_f64().unwrap();
    assert!((sum - gap).abs() < 1e-4, "attributions sum to {sum}, prediction − baseline is {gap}");
    // The target is the predicted class: the argmax of the model's output for x.
    let out = admin
        .post_json("/v1/tenants/acme/models/mlp/explain", &json!({ "inputs": body["inputs"], "method": "occlusion" }));
    assert_eq!(out.json()["target"], e["target"]);
    // The perturbed inputs ran as batches, not one by one.
    let rows: u64 = r.header("x-maas-rows-evaluated").unwrap().parse().unwrap();
    assert!(rows >= 600, "{rows} rows");
}

#[test]
fn image_explanations_render_as_png() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let (c, side) = (3, 16);
    let weights: Vec<f32> = (0..c * side * side).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect();
    upload(&admin, "acme", "img", &models::image_linear(c, side, &weights));
    let image: Vec<f32> = (0..c * side * side).map(|i| (i % 5) as f32 / 4.0).collect();
    let body = json!({
        "inputs": [{ "name": "image", "shape": [1, c, side, side], "datatype": "FP32", "data": image }],
        "method": "occlusion", "patch": 4,
    });
    let json = admin.post_json("/v1/tenants/acme/models/img/explain", &body).json();
    assert_eq!(json["attributions"][0]["shape"], json!([1, c, side, side]));
    // A patch's attribution is spread over its elements and sums to its occlusion effect, so
    // all attributions together are the whole score here (the model is linear).
    let total: f32 = f32s(&json["attributions"][0]["data"]).iter().sum();
    let score: f32 = weights.iter().zip(&image).map(|(w, x)| w * x).sum();
    assert!((total - score).abs() < 1e-3, "{total} vs {score}");

    let png = admin.send_with_headers(
        "POST",
        "/v1/tenants/acme/models/img/explain",
        &[("Accept", "image/png")],
        Some((body.to_string().as_bytes(), "application/json")),
    );
    assert_eq!(png.status, 200, "{}", String::from_utf8_lossy(&png.body));
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(&png.body[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk: width and height, big-endian, right after the signature and chunk header.
    let width = u32::from_be_bytes(png.body[16..20].try_into().unwrap()) as usize;
    let height = u32::from_be_bytes(png.body[20..24].try_into().unwrap()) as usize;
    assert_eq!(width, height);
    assert!(width >= side && width.is_multiple_of(side), "{width}×{height} for a {side}×{side} image");
}

/// Rows of the synthetic credit dataset: feature `x` in {0, 0.1, …, 0.9} for each of two groups,
/// and `g` = 1 for group "a". A label says whether `x ≥ 0.5` (who deserved approval).
fn credit_rows() -> Vec<(f32, &'static str)> {
    ["a", "b"].iter().flat_map(|g| (0..10).map(move |k| (k as f32 / 10.0, *g))).collect()
}

/// Fairness figures from the definitions (Fairlearn/AIF360): rates per group, differences and
/// ratios of the unprivileged group against the reference (the group with the higher selection
/// rate), from the decisions `score ≥ 0.5` where score = w_x·x + w_g·g.
fn reference_audit(w_g: f32) -> (f64, f64, f64, f64, f64, f64) {
    let rows = credit_rows();
    let rate = |g: &str, filter: &dyn Fn(f32) -> bool| {
        let picked: Vec<_> = rows.iter().filter(|(x, gg)| *gg == g && filter(*x)).collect();
        let selected = picked.iter().filter(|(x, gg)| x + w_g * f32::from(*gg == "a") >= 0.5).count();
        selected as f64 / picked.len() as f64
    };
    let (sel_a, sel_b) = (rate("a", &|_| true), rate("b", &|_| true));
    let (tpr_a, tpr_b) = (rate("a", &|x| x >= 0.5), rate("b", &|x| x >= 0.5));
    let (fpr_a, fpr_b) = (rate("a", &|x| x < 0.5), rate("b", &|x| x < 0.5));
    let (sel_ref, sel_un, tpr_ref, tpr_un, fpr_ref, fpr_un) = if sel_a >= sel_b {
        (sel_a, sel_b, tpr_a, tpr_b, fpr_a, fpr_b)
    } else {
        (sel_b, sel_a, tpr_b, tpr_a, fpr_b, fpr_a)
    };
    let spd = sel_un - sel_ref;
    let di = sel_un / sel_ref;
    let eod = tpr_un - tpr_ref;
    let aod = ((fpr_un - fpr_ref) + (tpr_un - tpr_ref)) / 2.0;
    (sel_a, sel_b, spd, di, eod, aod)
}

fn audit_request() -> Value {
    let rows = credit_rows();
    let data: Vec<[f32; 2]> = rows.iter().map(|(x, g)| [*x, f32::from(*g == "a")]).collect();
    json!({
        "inputs": [{ "name": "x", "shape": [rows.len(), 2], "datatype": "FP32", "data": data }],
        "groups": rows.iter().map(|(_, g)| *g).collect::<Vec<_>>(),
        "labels": rows.iter().map(|(x, _)| u8::from(*x >= 0.5)).collect::<Vec<_>>(),
        "favorable": { "threshold": 0.5 },
    })
}

#[test]
fn fairness_audits_match_the_definitions_and_gate_deploys() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    // Version 1 favours group "a" (+0.6 for g = 1); version 2 ignores the group.
    upload(&admin, "acme", "credit", &models::linear(&[1.0, 0.6], 0.0));
    upload(&admin, "acme", "credit", &models::linear(&[1.0, 0.0], 0.0));

    for (version, w_g) in [(1, 0.6f32), (2, 0.0)] {
        let r = admin.post_json(&format!("/v1/tenants/acme/models/credit/versions/{version}/audit"), &audit_request());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let a = r.json();
        let (sel_a, sel_b, spd, di, eod, aod) = reference_audit(w_g);
        let close = |k: &str, want: f64| {
            let got = a[k].as_f64().unwrap_or_else(|| panic!("{k} in {a}"));
            assert!((got - want).abs() < 1e-9, "v{version} {k}: {got} vs {want} ({a})");
        };
        assert_eq!(a["groups"]["a"]["count"], 10);
        assert!((a["groups"]["a"]["selection_rate"].as_f64().unwrap() - sel_a).abs() < 1e-9);
        assert!((a["groups"]["b"]["selection_rate"].as_f64().unwrap() - sel_b).abs() < 1e-9);
        close("statistical_parity_difference", spd);
        close("disparate_impact_ratio", di);
        close("equal_opportunity_difference", eod);
        close("average_odds_difference", aod);
        assert_eq!(a["passes_four_fifths_rule"], di >= 0.8);
        assert!(a["audited_at"].is_string());
    }
    // Version 1: half the selection rate for "b"; version 2: parity.
    assert_eq!(reference_audit(0.6).3, 0.5);
    assert_eq!(reference_audit(0.0).3, 1.0);

    // The latest audit is kept with its version and shown on the card.
    let card = admin.get("/v1/tenants/acme/models/credit/card").json();
    assert_eq!(card["versions"][0]["audit"]["disparate_impact_ratio"], 0.5);
    assert_eq!(card["versions"][1]["audit"]["disparate_impact_ratio"], 1.0);

    // The deploy gate: refused on the failing version with its figures, accepted on the other.
    let gated = |model: &str| json!({ "component": "builtin:tensor", "models": { "model": model }, "require_audit": { "min_disparate_impact": 0.8 } });
    let refused = deploy(&admin, "acme", "scorer", gated("credit@1"));
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "conflict"),
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let message = refused.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("0.5000") && message.contains("0.8"), "{message}");
    assert_eq!(admin.get("/v1/tenants/acme/functions/scorer").status, 404);
    assert_eq!(deploy(&admin, "acme", "scorer", gated("credit@2")).status, 201);
    assert_eq!(deploy(&admin, "acme", "scorer", gated("credit")).status, 200);
    // A model without any audit is refused too.
    upload(&admin, "acme", "fresh", &models::linear(&[1.0, 0.0], 0.0));
    assert_eq!(deploy(&admin, "acme", "other", gated("fresh")).status, 409);

    // Mismatched lengths are a clear 400.
    let mut bad = audit_request();
    bad["groups"] = json!(["a", "b"]);
    let r = admin.post_json("/v1/tenants/acme/models/credit/audit", &bad);
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"), "{}", String::from_utf8_lossy(&r.body));
}
