//! `maas`: the command line of the maas server (`maas serve`, from `maas-runtime`) and of its
//! users (every other subcommand, a client built on `maas-sdk`).

mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "maas",
    version,
    about = "Multi-tenant Model-as-a-Service: ONNX models behind sandboxed WebAssembly functions"
)]
struct Cli {
    #[command(flatten)]
    client: commands::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Its environment: MAAS_LISTEN, MAAS_DATA, MAAS_ADMIN_KEY, MAAS_MASTER_KEY,
    /// MAAS_LOG, MAAS_LOG_FORMAT, MAAS_WATTS_PER_CORE, MAAS_GRID_GCO2E_PER_KWH,
    /// MAAS_ANALYSIS_TIMEOUT_S, and for trace export the standard OTEL_EXPORTER_OTLP_ENDPOINT
    /// and OTEL_SERVICE_NAME (see the README).
    Serve {
        /// Address to listen on [default: MAAS_LISTEN, or 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory: the sled store, chunk files and generated keys [default: MAAS_DATA,
        /// or ./maas-data].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Analyse one model read on stdin, for a server (`maas serve` runs itself with it, under
    /// a time and memory budget, for every model upload).
    #[command(hide = true)]
    AnalyzeModel {
        /// The most bytes one tensor of the model may hold.
        #[arg(long)]
        max_tensor_bytes: u64,
        /// Declared input specs, `name:DATATYPE:d1,d2,…`.
        #[arg(long = "input")]
        inputs: Vec<maas_sdk::types::TensorSpec>,
    },
    #[command(flatten)]
    Client(commands::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen, data } => serve(listen, data),
        Command::AnalyzeModel { max_tensor_bytes, inputs } => {
            std::process::exit(maas_runtime::inference::analyze_stdin(max_tensor_bytes, &inputs))
        }
        Command::Client(command) => std::process::exit(commands::run(cli.client, command)),
    }
}

/// `maas serve`: the configuration from the environment, the flags over it, then the server
/// until SIGTERM or SIGINT.
fn serve(listen: Option<SocketAddr>, data: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = maas_runtime::Config::from_env()?;
    config.listen = listen.unwrap_or(config.listen);
    config.data_dir = data.unwrap_or(config.data_dir);
    // Uploaded models are analysed by this binary again, in a process of their own.
    config.analyzer_program = Some(std::env::current_exe()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.max_blocking * 2 + 8)
        .build()?;
    runtime.block_on(async {
        // Inside the runtime: the trace exporter sends on it.
        let telemetry = maas_runtime::Telemetry::init(&config)?;
        let server = maas_runtime::Server::bind(config).await?;
        if let Some(path) = server.admin_key_file() {
            println!("admin key: {}", path.display());
        }
        println!("listening on http://{}", server.local_addr());
        let served = server.run(maas_runtime::shutdown_signal()).await;
        telemetry.shutdown().await;
        served
    })
}
