//! `maas`: the command line of the maas server (`maas serve`) and of its users (every other
//! subcommand, from `maas_sdk::cli`).

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
    client: maas_sdk::cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MAAS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data directory (the sled store and generated keys).
        #[arg(long, env = "MAAS_DATA", default_value = "./maas-data")]
        data: PathBuf,
    },
    #[command(flatten)]
    Client(maas_sdk::cli::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (listen, data) = match cli.command {
        Command::Serve { listen, data } => (listen, data),
        Command::Client(command) => std::process::exit(maas_sdk::cli::run(cli.client, command)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAAS_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    serve(listen, data)
}

fn serve(listen: SocketAddr, data: PathBuf) -> anyhow::Result<()> {
    let mut config = maas_runtime::Config::new(data);
    config.listen = listen;
    config.admin_key = std::env::var("MAAS_ADMIN_KEY").ok();
    config.master_key = std::env::var("MAAS_MASTER_KEY").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.max_blocking * 2 + 8)
        .build()?;
    runtime.block_on(async {
        let server = maas_runtime::Server::bind(config).await?;
        if let Some(path) = server.admin_key_file() {
            println!("admin key: {}", path.display());
        }
        println!("listening on http://{}", server.local_addr());
        server.run(maas_runtime::shutdown_signal()).await
    })
}
