//! `maas functions …` (owner key).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::output::{self, Table, out};
use super::{CliError, Ctx, Output, key_value};
use maas_sdk::{ComponentRef, FunctionInfo, Manifest, ModelRef, Upload};

/// Function subcommands.
#[derive(Subcommand, Debug)]
pub enum FunctionsCommand {
    /// Deploy (or redeploy) a function.
    ///
    /// The manifest comes from --manifest (a JSON file in the API's shape), changed by the
    /// other flags. COMPONENT is `builtin:tensor`, a `sha256:` digest, or the path of a `.wasm`
    /// file, which is uploaded first and deployed by its digest.
    Deploy(DeployArgs),
    /// List functions with their state.
    List {
        /// The tenant.
        tenant: String,
    },
    /// Show a function's manifest, URL and live status.
    Show {
        /// The tenant.
        tenant: String,
        /// The function.
        name: String,
    },
    /// Show a function's live status: cold or warm, instances, invocations, cold starts.
    Status {
        /// The tenant.
        tenant: String,
        /// The function.
        name: String,
    },
    /// Delete a function.
    Delete {
        /// The tenant.
        tenant: String,
        /// The function.
        name: String,
    },
}

/// `functions deploy` arguments.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The tenant.
    tenant: String,
    /// The function name.
    name: String,
    /// `builtin:tensor`, `sha256:<hex>` of an uploaded component, or a `.wasm` file to upload.
    component: Option<String>,
    /// A manifest JSON file to start from (`{"component", "models", "config", "limits", "scale", "public"}`).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// A model the function may call: `ALIAS=NAME` (latest version at wake-up) or `ALIAS=NAME@VERSION`.
    #[arg(long = "model", value_name = "ALIAS=MODEL", value_parser = key_value)]
    models: Vec<(String, String)>,
    /// A config value the function reads: `KEY=VALUE`.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    config: Vec<(String, String)>,
    /// Memory cap per instance, MiB.
    #[arg(long)]
    memory_mb: Option<u32>,
    /// Deadline per invocation, milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Concurrent invocations of this function.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Seconds without invocations before the function scales to zero.
    #[arg(long)]
    idle_timeout_s: Option<u64>,
    /// Anyone may invoke it, without a key.
    #[arg(long, conflicts_with = "private")]
    public: bool,
    /// Only keys of the tenant may invoke it (the default).
    #[arg(long)]
    private: bool,
}

impl FunctionsCommand {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let client = &ctx.client;
        match self {
            FunctionsCommand::Deploy(args) => deploy(ctx, args).await?,
            FunctionsCommand::List { tenant } => {
                let functions = client.functions(&tenant).await?;
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "functions": functions }));
                    return Ok(());
                }
                let mut table = Table::new(["NAME", "COMPONENT", "REVISION", "STATE", "INVOCATIONS", "URL"]);
                for f in &functions {
                    table.row([
                        f.name.clone(),
                        output::short_digest(&f.manifest.component.to_string()),
                        f.revision.to_string(),
                        f.status.state.to_string(),
                        f.status.invocations.to_string(),
                        f.url.clone(),
                    ]);
                }
                table.print();
            }
            FunctionsCommand::Show { tenant, name } => {
                let f = client.function(&tenant, &name).await?;
                match ctx.output {
                    Output::Json => output::json(&f),
                    Output::Text => show(&f),
                }
            }
            FunctionsCommand::Status { tenant, name } => {
                let f = client.function(&tenant, &name).await?;
                match ctx.output {
                    Output::Json => output::json(&f.status),
                    Output::Text => status(&f),
                }
            }
            FunctionsCommand::Delete { tenant, name } => {
                client.delete_function(&tenant, &name).await?;
                match ctx.output {
                    Output::Json => output::json(&serde_json::json!({ "deleted": name, "tenant": tenant })),
                    Output::Text => out!("deleted function {tenant}/{name}"),
                }
            }
        }
        Ok(())
    }
}

async fn deploy(ctx: &Ctx, args: DeployArgs) -> Result<(), CliError> {
    let component = match &args.component {
        Some(component) => Some(resolve_component(ctx, &args.tenant, component).await?),
        None => None,
    };
    let mut manifest = match (&args.manifest, component) {
        (Some(path), component) => {
            let mut manifest = read_manifest(path)?;
            manifest.component = component.unwrap_or(manifest.component);
            manifest
        }
        (None, Some(component)) => Manifest::new(component),
        (None, None) => {
            return Err(CliError::Usage(
                "no component: give COMPONENT (builtin:tensor, sha256:<hex> or a .wasm file) or a --manifest with one"
                    .into(),
            ));
        }
    };
    for (alias, reference) in args.models {
        let reference: ModelRef =
            reference.parse().map_err(|e| CliError::Usage(format!("--model {alias}={reference}: {e}")))?;
        manifest.models.insert(alias, reference);
    }
    manifest.config.extend(args.config);
    if let Some(v) = args.memory_mb {
        manifest.limits.memory_mb = v;
    }
    if let Some(v) = args.timeout_ms {
        manifest.limits.timeout_ms = v;
    }
    if let Some(v) = args.max_concurrency {
        manifest.limits.max_concurrency = v;
    }
    if let Some(v) = args.idle_timeout_s {
        manifest.scale.idle_timeout_s = v;
    }
    if args.public {
        manifest.public = true;
    } else if args.private {
        manifest.public = false;
    }
    let deployment = ctx.client.deploy(&args.tenant, &args.name, &manifest).await?;
    match ctx.output {
        Output::Json => output::json(&deployment.function),
        Output::Text => {
            let f = &deployment.function;
            let how = if deployment.created { "deployed" } else { "redeployed" };
            out!("{how} {}/{} revision {} at {}", args.tenant, f.name, f.revision, f.url);
        }
    }
    Ok(())
}

fn read_manifest(path: &Path) -> Result<Manifest, CliError> {
    let text = std::fs::read(path).map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| CliError::Usage(format!("{} is not a valid manifest: {e}", path.display())))
}

/// `builtin:…` and `sha256:…` as they are; a file is uploaded and named by its digest.
async fn resolve_component(ctx: &Ctx, tenant: &str, component: &str) -> Result<ComponentRef, CliError> {
    if component.starts_with("builtin:") || component.starts_with("sha256:") {
        return component.parse().map_err(|e| CliError::Usage(format!("COMPONENT {component:?}: {e}")));
    }
    let path = Path::new(component);
    if !path.is_file() {
        return Err(CliError::Usage(format!(
            "COMPONENT {component:?} is not builtin:<name>, sha256:<hex> or an existing .wasm file"
        )));
    }
    let uploaded = ctx.client.upload_component(tenant, Upload::file(path).await?).await?;
    eprintln!("uploaded {} as {}", path.display(), uploaded.digest);
    uploaded
        .digest
        .parse()
        .map_err(|e| CliError::Usage(format!("the server named the upload {:?}: {e}", uploaded.digest)))
}

fn pairs<V: std::fmt::Display>(map: &std::collections::BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn show(f: &FunctionInfo) {
    let m = &f.manifest;
    output::fields(&[
        ("name", f.name.clone()),
        ("url", f.url.clone()),
        ("revision", f.revision.to_string()),
        ("component", m.component.to_string()),
        ("models", pairs(&m.models)),
        ("config", pairs(&m.config)),
        (
            "limits",
            format!(
                "memory {} MiB, timeout {} ms, concurrency {}",
                m.limits.memory_mb, m.limits.timeout_ms, m.limits.max_concurrency
            ),
        ),
        ("scale", format!("idle timeout {} s", m.scale.idle_timeout_s)),
        ("public", if m.public { "yes" } else { "no" }.into()),
        ("updated", f.updated_at.clone()),
    ]);
    status(f);
}

fn status(f: &FunctionInfo) {
    let s = &f.status;
    output::fields(&[
        ("state", s.state.to_string()),
        ("instances", s.instances.to_string()),
        ("invocations", s.invocations.to_string()),
        ("cold starts", s.cold_starts.to_string()),
        ("errors", s.errors.to_string()),
        ("last invoked", s.last_invoked_at.clone().unwrap_or_else(|| "never".into())),
    ]);
}
