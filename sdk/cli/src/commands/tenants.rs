//! `maas tenants …` (admin key).

use clap::{Args, Subcommand};

use super::output::{self, Table, out};
use super::{CliError, Ctx, Output, byte_size};
use maas_sdk::{QuotaPatch, TenantInfo};

/// Tenant subcommands.
#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// Create a tenant, with the default quota changed by the flags given.
    Create {
        /// Name: lowercase letters, digits and `-`, at most 63 characters.
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// List tenants.
    List,
    /// Show a tenant's quota and usage.
    Show {
        /// The tenant.
        name: String,
    },
    /// Change quota fields of a tenant (only the flags given).
    Update {
        /// The tenant.
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Suspend a tenant: its keys get `403 forbidden` and its functions are not served.
    Suspend {
        /// The tenant.
        name: String,
    },
    /// Lift a tenant's suspension.
    Unsuspend {
        /// The tenant.
        name: String,
    },
    /// Delete a tenant with all its models, components, functions, keys and usage.
    Delete {
        /// The tenant.
        name: String,
    },
}

/// Quota flags; sizes take units (`512MiB`, `2GB`).
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Quota")]
pub struct QuotaArgs {
    /// Largest single model upload.
    #[arg(long, value_parser = byte_size)]
    max_model_bytes: Option<u64>,
    /// Total size of the tenant's models and components.
    #[arg(long, value_parser = byte_size)]
    max_storage_bytes: Option<u64>,
    /// Number of model names.
    #[arg(long)]
    max_models: Option<u64>,
    /// Number of functions.
    #[arg(long)]
    max_functions: Option<u64>,
    /// Concurrent invocations across the tenant's functions.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Sustained requests per second.
    #[arg(long)]
    rate_per_second: Option<f64>,
    /// Largest `limits.memory_mb` a function may ask for.
    #[arg(long)]
    max_memory_mb: Option<u32>,
    /// Largest `limits.timeout_ms` a function may ask for.
    #[arg(long)]
    max_timeout_ms: Option<u64>,
    /// Largest invocation request body.
    #[arg(long, value_parser = byte_size)]
    max_request_bytes: Option<u64>,
}

impl QuotaArgs {
    fn patch(self) -> Option<QuotaPatch> {
        let patch = QuotaPatch {
            max_model_bytes: self.max_model_bytes,
            max_storage_bytes: self.max_storage_bytes,
            max_models: self.max_models,
            max_functions: self.max_functions,
            max_concurrency: self.max_concurrency,
            rate_per_second: self.rate_per_second,
            max_memory_mb: self.max_memory_mb,
            max_timeout_ms: self.max_timeout_ms,
            max_request_bytes: self.max_request_bytes,
            ..QuotaPatch::default()
        };
        (patch != QuotaPatch::default()).then_some(patch)
    }
}

impl TenantsCommand {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let client = &ctx.client;
        match self {
            TenantsCommand::Create { name, quota } => {
                let tenant = client.create_tenant(&name, quota.patch()).await?;
                show(ctx, &tenant, Some("created"));
            }
            TenantsCommand::List => {
                let tenants = client.tenants().await?;
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "tenants": tenants }));
                    return Ok(());
                }
                let mut table = Table::new(["NAME", "SUSPENDED", "MODELS", "FUNCTIONS", "STORAGE", "CREATED"]);
                for info in &tenants {
                    let t = &info.tenant;
                    table.row([
                        t.name.clone(),
                        yes_no(t.suspended),
                        info.usage.models.to_string(),
                        info.usage.functions.to_string(),
                        output::bytes(info.usage.storage_bytes),
                        t.created_at.clone(),
                    ]);
                }
                table.print();
            }
            TenantsCommand::Show { name } => show(ctx, &client.tenant(&name).await?, None),
            TenantsCommand::Update { name, quota } => {
                let patch = quota.patch().ok_or_else(|| {
                    CliError::Usage("nothing to update: give at least one quota flag (see --help)".into())
                })?;
                show(ctx, &client.set_quota(&name, patch).await?, Some("updated"));
            }
            TenantsCommand::Suspend { name } => show(ctx, &client.set_suspended(&name, true).await?, Some("suspended")),
            TenantsCommand::Unsuspend { name } => {
                show(ctx, &client.set_suspended(&name, false).await?, Some("unsuspended"));
            }
            TenantsCommand::Delete { name } => {
                client.delete_tenant(&name).await?;
                match ctx.output {
                    Output::Json => output::json(&serde_json::json!({ "deleted": name })),
                    Output::Text => out!("deleted tenant {name}"),
                }
            }
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// A tenant as JSON, or as a block of fields after an optional `<what> tenant <name>` line.
fn show(ctx: &Ctx, info: &TenantInfo, what: Option<&str>) {
    if ctx.output == Output::Json {
        output::json(info);
        return;
    }
    let (t, usage) = (&info.tenant, &info.usage);
    if let Some(what) = what {
        out!("{what} tenant {}", t.name);
    }
    let q = &t.quota;
    output::fields(&[
        ("name", t.name.clone()),
        ("created", t.created_at.clone()),
        ("suspended", yes_no(t.suspended)),
        ("storage", format!("{} of {}", output::bytes(usage.storage_bytes), output::bytes(q.max_storage_bytes))),
        ("models", format!("{} of {}", usage.models, q.max_models)),
        ("functions", format!("{} of {}", usage.functions, q.max_functions)),
        ("max_model_bytes", output::bytes(q.max_model_bytes)),
        ("max_concurrency", q.max_concurrency.to_string()),
        ("rate_per_second", q.rate_per_second.to_string()),
        ("max_memory_mb", q.max_memory_mb.to_string()),
        ("max_timeout_ms", q.max_timeout_ms.to_string()),
        ("max_request_bytes", output::bytes(q.max_request_bytes)),
    ]);
}
