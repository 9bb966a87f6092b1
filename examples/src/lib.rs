//! Runnable walk-throughs of maas, written with the Rust SDK ([`maas_sdk`]).
//!
//! Each walk-through is one async function taking the server's URL and the admin key, so that
//! it runs as a cargo example against any server and, in `tests/`, against a real server
//! started in process (which is how `cargo test --workspace` keeps them working):
//!
//! | example | function | shows |
//! |---|---|---|
//! | `quickstart` | [`quickstart`] | a tenant, an owner key, the seed ONNX model, `builtin:tensor`, an invocation |
//! | `custom_function` | [`custom_function`] | a WebAssembly component of your own (`functions/classify`): pre-processing, inference, top-3 labels |
//! | `tenant_admin` | [`tenant_admin`] | quotas, owner and invoker keys, what each may do, revocation, suspension, the audit trail |
//!
//! Run one against a server (`cargo run --release -p maas-cli -- serve` in another
//! shell):
//!
//! ```sh
//! export MAAS_URL=http://127.0.0.1:8080 MAAS_ADMIN_KEY=$(cat maas-data/admin.key)
//! cargo run -p maas-examples --example quickstart
//! ```
//!
//! Each run creates its own tenant (`quickstart-<random>`, ...) and leaves it there to look at;
//! `maas tenants delete <name>` removes it.

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};
use maas_sdk::{
    AuditQuery, Client, ComponentRef, Error, InferInput, InferRequest, Manifest, ModelInfo, QuotaPatch, Role,
    TenantInfo, Upload,
};
use serde::Deserialize;

/// The `classify` example component (`functions/classify`), built by this crate's build script.
pub fn classify_wasm() -> &'static [u8] {
    include_bytes!(concat!(env!("MAAS_EXAMPLES_GUEST_DIR"), "/maas_fn_classify.wasm"))
}

/// The template function users copy (`functions/template`), built by this crate's build script.
pub fn template_wasm() -> &'static [u8] {
    include_bytes!(concat!(env!("MAAS_EXAMPLES_GUEST_DIR"), "/maas_fn_template.wasm"))
}

/// The server URL and admin key for the cargo examples: `MAAS_URL` (default
/// `http://127.0.0.1:8080`) and `MAAS_ADMIN_KEY`, else the key a local server generated in
/// `./maas-data/admin.key`.
pub fn from_env() -> anyhow::Result<(String, String)> {
    let url = std::env::var("MAAS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = match std::env::var("MAAS_ADMIN_KEY") {
        Ok(key) => key,
        Err(_) => std::fs::read_to_string("maas-data/admin.key")
            .map(|k| k.trim().to_string())
            .context("set MAAS_ADMIN_KEY to the server's admin key (or run from the directory holding maas-data/)")?,
    };
    Ok((url, key))
}

/// A tenant name no earlier run used: `<prefix>-<8 hex digits>`.
pub fn fresh_tenant_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    // The std hasher is randomly keyed per process: enough to tell runs apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{prefix}-{:08x}", hasher.finish() as u32)
}

/// 100 reproducible features for the seed model's `[1, 100]` input.
pub fn sample_features() -> Vec<f32> {
    (0..100).map(|i| ((i * 37) % 100) as f32 / 100.0).collect()
}

/// Creates a tenant (a quota that lets the walk-through run quickly) and an owner key for it;
/// returns the tenant and a client holding the owner key.
async fn tenant_with_owner(admin: &Client, prefix: &str) -> anyhow::Result<(TenantInfo, Client)> {
    let name = fresh_tenant_name(prefix);
    let tenant = admin.create_tenant(&name, None).await.with_context(|| format!("creating tenant {name}"))?;
    let key = admin.create_key(&name, Role::Owner, Some("walk-through")).await.context("creating an owner key")?;
    Ok((tenant, admin.clone().with_key(key.key)))
}

/// What [`quickstart`] did.
#[derive(Debug)]
pub struct Quickstart {
    /// The tenant it created.
    pub tenant: String,
    /// The uploaded model version.
    pub model: ModelInfo,
    /// The 10 class probabilities the function returned.
    pub probabilities: Vec<f32>,
    /// Whether the first and the second call were cold starts.
    pub cold_starts: (bool, bool),
}

/// The quick start: a tenant, the seed 100→64→10 MLP, `builtin:tensor`, an invocation.
pub async fn quickstart(url: &str, admin_key: &str) -> anyhow::Result<Quickstart> {
    let admin = Client::new(url)?.with_key(admin_key);
    admin.health().await.with_context(|| format!("is a maas server running at {url}?"))?;

    // 1. A tenant and its owner key (the operator's job).
    let (tenant, owner) = tenant_with_owner(&admin, "quickstart").await?;
    let t = tenant.tenant.name.as_str();
    println!("1. created tenant {t} and an owner key");

    // 2. The model: an ONNX file streamed to the server (here the seed model's bytes; a file on
    //    disk is `Upload::file("mlp.onnx").await?`). The server checks that tract can load it.
    let model = owner.upload_model(t, "mlp", Upload::bytes(maas_fixtures::mlp(42))).await?;
    println!("2. uploaded model mlp version {} ({} bytes, sha256 {})", model.version, model.size_bytes, model.sha256);
    for spec in model.inputs.iter().chain(&model.outputs) {
        println!("     {} {} {:?}", spec.name, spec.datatype, spec.shape);
    }

    // 3. A function serving it with the built-in OIP JSON component: no code to write.
    let mut manifest = Manifest::new(ComponentRef::TENSOR);
    manifest.models.insert("model".into(), "mlp".parse()?);
    let deployed = owner.deploy(t, "mlp", &manifest).await?;
    println!("3. deployed function mlp (revision {}) at {}", deployed.function.revision, deployed.function.url);

    // 4. Invoke it with an Open Inference Protocol request: the first call wakes the function.
    let request = InferRequest::new(vec![InferInput::fp32("input", [1, 100], &sample_features())]);
    let first = owner.invoke_json(t, "mlp", &request).await?;
    let cold_first = first.cold_start() == Some(true);
    let duration = first.duration_us().unwrap_or_default();
    let response = first.infer_response()?;
    let output = response.output("output").context("the answer has no output named \"output\"")?;
    let probabilities = output.to_f32().context("the output is not numeric")?;
    println!("4. invoked it (cold start: {cold_first}, {duration} µs on the server):");
    for (class, p) in probabilities.iter().enumerate() {
        println!("     class {class}: {p:.4}");
    }
    let second = owner.invoke_json(t, "mlp", &request).await?.error_for_status()?;
    let cold_second = second.cold_start() == Some(true);
    println!("   again: cold start {cold_second}, {} µs", second.duration_us().unwrap_or_default());

    // 5. Its live status.
    let status = owner.function(t, "mlp").await?.status;
    println!(
        "5. function mlp is {}: {} invocations, {} cold start(s)",
        status.state, status.invocations, status.cold_starts
    );
    println!("   (remove the tenant with: maas tenants delete {t})");
    Ok(Quickstart { tenant: t.to_string(), model, probabilities, cold_starts: (cold_first, cold_second) })
}

/// One prediction of the `classify` component.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Prediction {
    /// The class label from the manifest's `labels` config.
    pub label: String,
    /// The class index.
    pub index: usize,
    /// Its probability.
    pub score: f32,
}

/// What [`custom_function`] did.
#[derive(Debug)]
pub struct CustomFunction {
    /// The tenant it created.
    pub tenant: String,
    /// The uploaded component's digest.
    pub digest: String,
    /// The top-3 predictions, best first.
    pub predictions: Vec<Prediction>,
}

/// Labels of the seed model's 10 classes, for the walk-through.
pub const LABELS: [&str; 10] = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"];

/// A custom function: the `classify` component takes `{"features": [...]}`, shapes the model's
/// input from its signature (pre-processing), runs the model, and answers the top-3 labels
/// with their probabilities (post-processing).
pub async fn custom_function(url: &str, admin_key: &str) -> anyhow::Result<CustomFunction> {
    let admin = Client::new(url)?.with_key(admin_key);
    let (tenant, owner) = tenant_with_owner(&admin, "custom").await?;
    let t = tenant.tenant.name.as_str();
    println!("1. created tenant {t} and an owner key");

    owner.upload_model(t, "mlp", Upload::bytes(maas_fixtures::mlp(42))).await?;
    println!("2. uploaded the seed model as mlp");

    // The component: built from functions/classify with
    // `cargo build --target wasm32-wasip2 --profile guest -p maas-fn-classify`.
    let component = owner.upload_component(t, Upload::bytes(classify_wasm())).await?;
    println!("3. uploaded the classify component: {} ({} bytes)", component.digest, component.size_bytes);

    // Its manifest names the model by the alias the code uses, and the config it reads.
    let mut manifest = Manifest::new(component.digest.parse()?);
    manifest.models.insert("model".into(), "mlp@1".parse()?);
    manifest.config = BTreeMap::from([("labels".into(), LABELS.join(",")), ("top_k".into(), "3".into())]);
    owner.deploy(t, "classify", &manifest).await?;
    println!("4. deployed function classify");

    let answer = owner
        .invoke_json(t, "classify", &serde_json::json!({ "features": sample_features() }))
        .await?
        .error_for_status()?;
    #[derive(Deserialize)]
    struct Answer {
        predictions: Vec<Prediction>,
    }
    let predictions = answer.json::<Answer>()?.predictions;
    println!("5. top 3:");
    for p in &predictions {
        println!("     {:<5} (class {}) {:.4}", p.label, p.index, p.score);
    }
    println!("   (remove the tenant with: maas tenants delete {t})");
    Ok(CustomFunction { tenant: t.to_string(), digest: component.digest, predictions })
}

/// What [`tenant_admin`] observed.
#[derive(Debug)]
pub struct TenantAdmin {
    /// The tenant it created.
    pub tenant: String,
    /// The refusal an invoker key gets when it tries to upload a model.
    pub invoker_upload: maas_sdk::ApiError,
    /// The status of the invoker's invocation.
    pub invoker_invocation: u16,
    /// The refusal a revoked key gets.
    pub after_revocation: maas_sdk::ApiError,
    /// The refusal an owner key of a suspended tenant gets.
    pub while_suspended: maas_sdk::ApiError,
    /// The audit trail's actions for the tenant, newest first.
    pub audit_actions: Vec<String>,
}

/// Expects the server to refuse `result`; returns its refusal.
fn refusal<T>(result: Result<T, Error>, what: &str) -> anyhow::Result<maas_sdk::ApiError> {
    match result {
        Err(Error::Api(e)) => Ok(e),
        Err(e) => Err(anyhow::Error::new(e).context(what.to_string())),
        Ok(_) => bail!("{what}: the server allowed it"),
    }
}

/// Tenant administration: quotas, an owner and an invoker key, what each may do, revocation,
/// suspension and the audit trail.
pub async fn tenant_admin(url: &str, admin_key: &str) -> anyhow::Result<TenantAdmin> {
    let admin = Client::new(url)?.with_key(admin_key);

    // 1. The operator creates a tenant with its own limits.
    let name = fresh_tenant_name("team");
    let quota = QuotaPatch {
        max_models: Some(5),
        max_functions: Some(5),
        max_model_bytes: Some(64 << 20),
        max_concurrency: Some(4),
        ..QuotaPatch::default()
    };
    let tenant = admin.create_tenant(&name, Some(quota)).await?;
    let t = tenant.tenant.name.as_str();
    println!(
        "1. created tenant {t}: at most {} models of {} MiB, {} functions, {} concurrent calls",
        tenant.tenant.quota.max_models,
        tenant.tenant.quota.max_model_bytes >> 20,
        tenant.tenant.quota.max_functions,
        tenant.tenant.quota.max_concurrency
    );

    // 2. Two keys: an owner (manages the tenant) and an invoker (may only call).
    let owner_key = admin.create_key(t, Role::Owner, Some("platform team")).await?;
    let invoker_key = admin.create_key(t, Role::Invoker, Some("web frontend")).await?;
    let owner = admin.clone().with_key(owner_key.key.clone());
    let invoker = admin.clone().with_key(invoker_key.key.clone());
    println!("2. created keys: owner {} and invoker {}", owner_key.info.id, invoker_key.info.id);

    // 3. The owner uploads a model and deploys a function.
    owner.upload_model(t, "mlp", Upload::bytes(maas_fixtures::mlp(42))).await?;
    let mut manifest = Manifest::new(ComponentRef::TENSOR);
    manifest.models.insert("model".into(), "mlp".parse()?);
    owner.deploy(t, "mlp", &manifest).await?;
    println!("3. the owner uploaded model mlp and deployed function mlp");

    // 4. The invoker may not upload...
    let invoker_upload =
        refusal(invoker.upload_model(t, "other", Upload::bytes(maas_fixtures::mlp(1))).await, "invoker upload")?;
    println!("4. the invoker's upload: {} {}: {}", invoker_upload.status, invoker_upload.code, invoker_upload.message);

    // 5. ...but may invoke.
    let request = InferRequest::new(vec![InferInput::fp32("input", [1, 100], &sample_features())]);
    let answer = invoker.invoke_json(t, "mlp", &request).await?;
    println!("5. the invoker's invocation: HTTP {}", answer.status);
    let invoker_invocation = answer.status;
    answer.error_for_status()?;

    // 6. The owner lists the keys and revokes the invoker's: it stops working at once.
    let keys = owner.keys(t).await?;
    ensure!(keys.len() == 2, "expected 2 keys, found {}", keys.len());
    owner.revoke_key(t, &invoker_key.info.id).await?;
    let after_revocation =
        refusal(invoker.invoke_json(t, "mlp", &request).await?.error_for_status(), "invocation after revocation")?;
    println!("6. revoked the invoker key; it now gets {} {}", after_revocation.status, after_revocation.code);

    // 7. The operator suspends the tenant: its keys are refused until it is reinstated.
    admin.set_suspended(t, true).await?;
    let while_suspended = refusal(owner.models(t).await, "owner while suspended")?;
    println!(
        "7. suspended {t}: the owner gets {} {}: {}",
        while_suspended.status, while_suspended.code, while_suspended.message
    );
    admin.set_suspended(t, false).await?;
    owner.models(t).await.context("the owner after reinstatement")?;
    println!("   reinstated {t}: the owner's key works again");

    // 8. Every change is in the audit trail.
    let entries = admin.audit(&AuditQuery { tenant: Some(t.to_string()), limit: Some(100), before: None }).await?;
    println!("8. audit trail of {t}, newest first:");
    for e in &entries {
        println!("     #{:<6} {:<16} {:<18} by {}", e.seq, e.action, e.target, e.actor);
    }
    println!("   (remove the tenant with: maas tenants delete {t})");
    Ok(TenantAdmin {
        tenant: t.to_string(),
        invoker_upload,
        invoker_invocation,
        after_revocation,
        while_suspended,
        audit_actions: entries.into_iter().map(|e| e.action).collect(),
    })
}
