//! `maas components …` (owner key).

use std::path::PathBuf;

use clap::Subcommand;

use super::output::{self, Table, out};
use super::{CliError, Ctx, Output};
use maas_sdk::Upload;

/// Component subcommands.
#[derive(Subcommand, Debug)]
pub enum ComponentsCommand {
    /// Upload a WebAssembly component (`.wasm`); prints its `sha256:` digest, which a
    /// function's manifest names.
    Upload {
        /// The tenant.
        tenant: String,
        /// The `.wasm` file.
        file: PathBuf,
    },
    /// List the tenant's components.
    List {
        /// The tenant.
        tenant: String,
    },
}

impl ComponentsCommand {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            ComponentsCommand::Upload { tenant, file } => {
                let component = ctx.client.upload_component(&tenant, Upload::file(&file).await?).await?;
                match ctx.output {
                    Output::Json => output::json(&component),
                    Output::Text => out!("{}", component.digest),
                }
            }
            ComponentsCommand::List { tenant } => {
                let components = ctx.client.components(&tenant).await?;
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "components": components }));
                    return Ok(());
                }
                let mut table = Table::new(["DIGEST", "SIZE", "CREATED"]);
                for c in &components {
                    table.row([c.digest.clone(), output::bytes(c.size_bytes), c.created_at.clone()]);
                }
                table.print();
            }
        }
        Ok(())
    }
}
