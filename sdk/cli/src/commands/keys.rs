//! `maas keys …` (admin or owner key).

use clap::{Subcommand, ValueEnum};

use super::output::{self, Table, out};
use super::{CliError, Ctx, Output};
use maas_sdk::Role;

/// Key subcommands.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key. Text output prints the secret alone on stdout (`KEY=$(maas keys create …)`);
    /// it is shown this once.
    Create {
        /// The tenant.
        tenant: String,
        /// What the key may do.
        #[arg(long, value_enum)]
        role: KeyRole,
        /// A note to recognise the key by.
        #[arg(long)]
        label: Option<String>,
    },
    /// List a tenant's keys (without secrets).
    List {
        /// The tenant.
        tenant: String,
    },
    /// Revoke a key at once.
    Revoke {
        /// The tenant.
        tenant: String,
        /// The key's id (16 hex digits, as `keys list` shows).
        id: String,
    },
}

/// A key's role.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyRole {
    /// Manages the tenant's models, components, functions and keys; may invoke.
    Owner,
    /// May only invoke the tenant's functions and OIP inference.
    Invoker,
}

impl From<KeyRole> for Role {
    fn from(r: KeyRole) -> Role {
        match r {
            KeyRole::Owner => Role::Owner,
            KeyRole::Invoker => Role::Invoker,
        }
    }
}

impl KeysCommand {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let client = &ctx.client;
        match self {
            KeysCommand::Create { tenant, role, label } => {
                let created = client.create_key(&tenant, role.into(), label.as_deref()).await?;
                match ctx.output {
                    Output::Json => output::json(&created),
                    Output::Text => {
                        out!("{}", created.key);
                        eprintln!(
                            "created {} key {} for tenant {}; the secret above is shown only once",
                            created.info.role.as_str(),
                            created.info.id,
                            created.info.tenant
                        );
                    }
                }
            }
            KeysCommand::List { tenant } => {
                let keys = client.keys(&tenant).await?;
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "keys": keys }));
                    return Ok(());
                }
                let mut table = Table::new(["ID", "ROLE", "LABEL", "CREATED"]);
                for k in &keys {
                    table.row([
                        k.id.clone(),
                        k.role.as_str().into(),
                        k.label.clone().unwrap_or_else(|| "-".into()),
                        k.created_at.clone(),
                    ]);
                }
                table.print();
            }
            KeysCommand::Revoke { tenant, id } => {
                client.revoke_key(&tenant, &id).await?;
                match ctx.output {
                    Output::Json => output::json(&serde_json::json!({ "revoked": id, "tenant": tenant })),
                    Output::Text => out!("revoked key {id} of tenant {tenant}"),
                }
            }
        }
        Ok(())
    }
}
