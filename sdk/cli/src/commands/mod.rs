//! The client subcommands of the `maas` command line: thin clap structs whose `run` calls
//! [`Client`].
//!
//! `main` flattens [`GlobalArgs`] into the binary's top-level arguments and [`Command`] into
//! its subcommands, and hands every subcommand but `serve` to [`run`]:
//!
//! ```text
//! maas [--url URL] [--key KEY] [--output text|json] <command>
//!   tenants    create | list | show | update | suspend | unsuspend | delete   (admin key)
//!   keys       create | list | revoke                                        (admin or owner)
//!   models     upload | list | show | versions | delete                      (owner)
//!   components upload | list                                                 (owner)
//!   functions  deploy | list | show | status | delete                        (owner)
//!   invoke     TENANT FUNCTION [PATH] [--json TEXT | --body FILE|-] [-X METHOD] [-H 'K: V'] [-i]
//!   usage      TENANT
//!   audit      [--tenant T] [--limit N]                                      (admin)
//!   top        [TENANT] [--interval SECS] [--once]                           (owner or admin)
//! ```
//!
//! The server and key come from `--url` / `MAAS_URL` (default `http://127.0.0.1:8080`) and
//! `--key` / `MAAS_KEY`. Output is aligned text for people by default and JSON with
//! `--output json`. Exit codes: `0` success; `1` the server refused (its message and code go to
//! stderr), could not be reached, or a function answered with an error status; `2` a usage
//! error (bad arguments, an unreadable local file), nothing sent.

mod components;
mod functions;
mod invoke;
mod keys;
mod models;
mod output;
mod tenants;
mod top;

use clap::{Args, Subcommand, ValueEnum};

use maas_sdk::{Client, Error};

/// Options every client subcommand takes: where the server is, which key, which output.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "MAAS_URL",
        default_value = "http://127.0.0.1:8080",
        help_heading = "Client options"
    )]
    pub url: String,

    /// The API key: the admin key, or an owner or invoker key of a tenant.
    #[arg(long, global = true, env = "MAAS_KEY", hide_env_values = true, help_heading = "Client options")]
    pub key: Option<String>,

    /// Output format: aligned text for people, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text, help_heading = "Client options")]
    pub output: Output,
}

/// How results are printed on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and aligned text.
    Text,
    /// The API's JSON, pretty-printed.
    Json,
}

/// The client subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage tenants (admin key).
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Manage a tenant's API keys (admin or owner key).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Upload and inspect ONNX models (owner key).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Upload and list WebAssembly components (owner key).
    #[command(subcommand)]
    Components(components::ComponentsCommand),
    /// Deploy and inspect functions (owner key).
    #[command(subcommand)]
    Functions(functions::FunctionsCommand),
    /// Call a function: prints its answer's body (`-i`: status and headers too).
    Invoke(invoke::InvokeArgs),
    /// Watch functions live: state, requests/s, p50/p99, cold starts, errors, energy (an
    /// owner key with a TENANT, else the admin key).
    Top(top::TopArgs),
    /// Print a tenant's usage report (invocations, time, energy, storage) as JSON.
    Usage {
        /// The tenant.
        tenant: String,
    },
    /// Show the audit trail of administrative changes, newest first (admin key).
    Audit {
        /// Only changes to this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many entries (server default 100, maximum 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Only entries older than this sequence number (to page back).
        #[arg(long)]
        before: Option<u64>,
    },
}

/// Runs one client subcommand to completion on its own tokio runtime; prints errors to stderr
/// and returns the process exit code for `std::process::exit` (see the [module docs](self)).
pub fn run(global: GlobalArgs, command: Command) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(execute(global, command)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            if let CliError::Sdk(Error::Api(api)) = &e
                && api.code == "unauthenticated"
            {
                eprintln!("hint: pass a key with --key or the MAAS_KEY environment variable");
            }
            e.exit_code()
        }
    }
}

async fn execute(global: GlobalArgs, command: Command) -> Result<(), CliError> {
    let mut client = Client::new(&global.url)?;
    if let Some(key) = global.key.filter(|k| !k.is_empty()) {
        client = client.with_key(key);
    }
    let ctx = Ctx { client, output: global.output };
    match command {
        Command::Tenants(c) => c.run(&ctx).await,
        Command::Keys(c) => c.run(&ctx).await,
        Command::Models(c) => c.run(&ctx).await,
        Command::Components(c) => c.run(&ctx).await,
        Command::Functions(c) => c.run(&ctx).await,
        Command::Invoke(c) => c.run(&ctx).await,
        Command::Top(args) => top::run(&ctx, args).await,
        Command::Usage { tenant } => {
            output::json(&ctx.client.usage(&tenant).await?);
            Ok(())
        }
        Command::Audit { tenant, limit, before } => {
            let entries = ctx.client.audit(&maas_sdk::AuditQuery { tenant, limit, before }).await?;
            if ctx.output == Output::Json {
                output::json(&serde_json::json!({ "entries": entries }));
                return Ok(());
            }
            let mut table = output::Table::new(["SEQ", "AT", "ACTOR", "ACTION", "TENANT", "TARGET"]);
            for e in &entries {
                table.row([
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.tenant.clone().unwrap_or_else(|| "-".into()),
                    e.target.clone(),
                ]);
            }
            table.print();
            Ok(())
        }
    }
}

/// What a subcommand runs with.
pub(crate) struct Ctx {
    pub client: Client,
    pub output: Output,
}

/// Why a subcommand failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// From the client: the server's refusal, a connection failure, a local read.
    #[error(transparent)]
    Sdk(#[from] Error),
    /// Arguments that cannot make a request.
    #[error("{0}")]
    Usage(String),
    /// The request went through but the outcome is a failure (a function's error status).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Sdk(Error::InvalidArgument(_) | Error::Io { .. }) => 2,
            _ => 1,
        }
    }
}

/// Parses `KEY=VALUE` (for `--config`, `--model`).
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses a byte size: a number with an optional unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`,
/// or `K`, `M`, `G` for the binary ones), case-insensitive.
pub(crate) fn byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size (e.g. 1048576, 512MiB, 2GB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(byte_size("1024"), Ok(1024));
        assert_eq!(byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(byte_size("2gb"), Ok(2_000_000_000));
        assert_eq!(byte_size("3 K"), Ok(3072));
        assert!(byte_size("12 parsecs").is_err());
        assert!(byte_size("MiB").is_err());
    }

    #[test]
    fn key_values_parse() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("labels="), Ok(("labels".into(), String::new())));
        assert!(key_value("=x").is_err());
        assert!(key_value("novalue").is_err());
    }
}
