//! The one configuration struct of the server, and the secrets it loads or generates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::host::HostConfig;
use crate::metering::EnergyModel;

/// Everything `maas serve` can be told.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (`--listen` / `MAAS_LISTEN`).
    pub listen: SocketAddr,
    /// The sled directory (`--data` / `MAAS_DATA`).
    pub data_dir: PathBuf,
    /// The operator key (`MAAS_ADMIN_KEY`); generated into `<data>/admin.key` when unset.
    pub admin_key: Option<String>,
    /// Secret from which blob encryption and key-hashing keys derive (`MAAS_MASTER_KEY`);
    /// generated into `<data>/master.key` when unset.
    pub master_key: Option<String>,
    /// Sizing of the wasmtime host.
    pub host: HostConfig,
    /// How many wasm or inference jobs may be in flight on the blocking pool at once.
    ///
    /// Not just one per core: a job may wait without using the CPU (for its turn in a
    /// dynamic batch, say), and a batch can only be as large as the jobs in flight.
    pub max_blocking: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// How metered CPU time becomes energy and CO2e (`MAAS_WATTS_PER_CORE`,
    /// `MAAS_GRID_GCO2E_PER_KWH`).
    pub energy: EnergyModel,
}

impl Config {
    /// Defaults for a data directory: loopback listener, safe pool sizes.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            admin_key: None,
            master_key: None,
            host: HostConfig::default(),
            max_blocking: (cores * 8).max(32),
            shutdown_grace: Duration::from_secs(30),
            energy: EnergyModel::default(),
        }
    }
}

/// The secrets the server runs with.
pub(crate) struct Secrets {
    /// SHA-256 of the admin key; the key itself is not kept in memory.
    pub(crate) admin_key_hash: [u8; 32],
    /// Where a generated admin key was written, to tell the operator.
    pub(crate) admin_key_file: Option<PathBuf>,
    /// The master key.
    pub(crate) master_key: [u8; 32],
}

impl Secrets {
    /// Takes the keys from the config, or from (or newly into) files in the data directory.
    pub(crate) fn load(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let (admin, admin_key_file) = match &config.admin_key {
            Some(key) if !key.is_empty() => (key.clone(), None),
            _ => {
                let path = config.data_dir.join("admin.key");
                (read_or_generate(&path, "maas_admin_")?, Some(path))
            }
        };
        let master = match &config.master_key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => read_or_generate(&config.data_dir.join("master.key"), "")?,
        };
        Ok(Self {
            admin_key_hash: Sha256::digest(admin.as_bytes()).into(),
            admin_key_file,
            master_key: Sha256::digest(master.as_bytes()).into(),
        })
    }
}

/// Reads a secret file, or writes a new random one with mode 0600.
fn read_or_generate(path: &Path, prefix: &str) -> anyhow::Result<String> {
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(text.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", hex::encode(bytes));
    write_private(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
