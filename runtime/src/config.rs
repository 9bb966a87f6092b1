//! The one configuration struct of the server, where it comes from (the environment, then the
//! command line), and the secrets it loads or generates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::RngCore;
use sha2::{Digest, Sha256};

use maas_types::EnergyModel;

use crate::host::HostConfig;

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
    /// The executable that analyses uploaded models in a child process under a time and
    /// memory budget (`<program> analyze-model`); `maas serve` sets itself. Without one,
    /// uploads are analysed in process, under the model bounds alone.
    pub analyzer_program: Option<PathBuf>,
    /// How long the analysis of one uploaded model (out of process) or the compile of one
    /// component may take (`MAAS_ANALYSIS_TIMEOUT_S`).
    pub analysis_timeout: Duration,
    /// What the per-shape plans of all models may hold together, bytes (the least recently
    /// used goes first). Models optimized with their batch size open have one plan for every
    /// shape and are not counted here.
    pub plan_memory_bytes: u64,
    /// How long a client may send nothing of a request body it has not finished: a stalled
    /// body fails then (`400 invalid_request`) on every route, so it holds nothing for long.
    pub body_idle_timeout: Duration,
    /// How metered CPU time becomes energy and CO2e (`MAAS_WATTS_PER_CORE`,
    /// `MAAS_GRID_GCO2E_PER_KWH`).
    pub energy: EnergyModel,
    /// The log filter, in `tracing_subscriber::EnvFilter` syntax (`MAAS_LOG`). The server does not
    /// install a subscriber itself: the binary does, with this filter.
    pub log_filter: String,
    /// How log lines are written (`MAAS_LOG_FORMAT`): text for people, or one JSON object per
    /// line for a log pipeline.
    pub log_format: LogFormat,
    /// Threads one model run may use (`MAAS_INFERENCE_THREADS`, default 1): above one, tract
    /// splits a large matrix product over a shared pool of this many threads, which cuts the
    /// latency of a heavy model at low concurrency. Small products stay on one thread. For the
    /// whole process.
    pub inference_threads: usize,
}

/// How the server writes its log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Aligned text, for a terminal.
    #[default]
    Text,
    /// One JSON object per event, with the fields of the request's span (request id, tenant,
    /// function, status, duration, cold start).
    Json,
}

/// Every environment variable the server reads, with what it sets. [`Config::from_lookup`]
/// reads exactly these; the README names no others for the server.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("MAAS_LISTEN", "address to listen on (default 127.0.0.1:8080)"),
    ("MAAS_DATA", "data directory: sled records, chunk files, generated keys (default ./maas-data)"),
    ("MAAS_ADMIN_KEY", "the operator's key (default: generated into <data>/admin.key)"),
    ("MAAS_MASTER_KEY", "secret that encryption and key-hashing keys derive from (default: <data>/master.key)"),
    ("MAAS_LOG", "log filter (default info,wasmtime=warn,cranelift=warn)"),
    ("MAAS_LOG_FORMAT", "log lines as `text` (default) or `json`, one object per line"),
    ("MAAS_WATTS_PER_CORE", "power of one busy core in watts, for energy figures (default 3.5)"),
    ("MAAS_GRID_GCO2E_PER_KWH", "carbon intensity of the grid in gCO2e/kWh, for CO2e figures (default 475)"),
    (
        "MAAS_ANALYSIS_TIMEOUT_S",
        "how long analysing one uploaded model or compiling one component may take, in seconds (default 30)",
    ),
    (
        "MAAS_INFERENCE_THREADS",
        "threads one model run may split its large matrix products over, for the process (default 1)",
    ),
];

/// The log filter when `MAAS_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,wasmtime=warn,cranelift=warn";

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
            body_idle_timeout: Duration::from_secs(10),
            plan_memory_bytes: 1 << 30,
            analyzer_program: None,
            analysis_timeout: Duration::from_secs(30),
            energy: EnergyModel::default(),
            log_filter: DEFAULT_LOG_FILTER.to_string(),
            log_format: LogFormat::Text,
            inference_threads: 1,
        }
    }

    /// The configuration the process environment gives ([`ENV_VARS`]), defaults elsewhere.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `env` gives, `env` answering for each of [`ENV_VARS`]; an empty value
    /// counts as unset. A value that does not parse is an error naming the variable.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let mut config = Config::new(var("MAAS_DATA").unwrap_or_else(|| "./maas-data".into()));
        if let Some(listen) = var("MAAS_LISTEN") {
            config.listen = listen
                .trim()
                .parse()
                .with_context(|| format!("MAAS_LISTEN={listen:?} is not an address such as 127.0.0.1:8080"))?;
        }
        config.admin_key = var("MAAS_ADMIN_KEY");
        config.master_key = var("MAAS_MASTER_KEY");
        if let Some(filter) = var("MAAS_LOG") {
            config.log_filter = filter;
        }
        if let Some(format) = var("MAAS_LOG_FORMAT") {
            config.log_format = match format.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => bail!("MAAS_LOG_FORMAT={other:?} is neither `text` nor `json`"),
            };
        }
        let positive = |name: &str| -> anyhow::Result<Option<f64>> {
            let Some(text) = var(name) else { return Ok(None) };
            match text.trim().parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
                _ => bail!("{name}={text:?} is not a number ≥ 0"),
            }
        };
        if let Some(watts) = positive("MAAS_WATTS_PER_CORE")? {
            config.energy.watts_per_core = watts;
        }
        if let Some(intensity) = positive("MAAS_GRID_GCO2E_PER_KWH")? {
            config.energy.grid_gco2e_per_kwh = intensity;
        }
        if let Some(seconds) = positive("MAAS_ANALYSIS_TIMEOUT_S")? {
            config.analysis_timeout = Duration::from_secs_f64(seconds.max(0.001));
        }
        if let Some(text) = var("MAAS_INFERENCE_THREADS") {
            config.inference_threads = match text.trim().parse::<usize>() {
                Ok(n @ 1..=256) => n,
                _ => bail!("MAAS_INFERENCE_THREADS={text:?} is not a number of threads from 1 to 256"),
            };
        }
        Ok(config)
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

/// The shortest admin key accepted.
pub const MIN_ADMIN_KEY_LEN: usize = 24;

impl Secrets {
    /// Takes the keys from the config, or from (or newly into) files in the data directory,
    /// which is made private to the server's user. Weak keys and key files others may read
    /// are refused.
    pub(crate) fn load(config: &Config) -> anyhow::Result<Self> {
        create_private_dir(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let (admin, admin_key_file) = match &config.admin_key {
            Some(key) if !key.is_empty() => (key.clone(), None),
            _ => {
                let path = config.data_dir.join("admin.key");
                (read_or_generate(&path, "maas_admin_")?, Some(path))
            }
        };
        if admin.len() < MIN_ADMIN_KEY_LEN {
            bail!("the admin key (MAAS_ADMIN_KEY or admin.key) must be at least {MIN_ADMIN_KEY_LEN} characters");
        }
        let master = match &config.master_key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => read_or_generate(&config.data_dir.join("master.key"), "")?,
        };
        check_master_key(&master)?;
        Ok(Self {
            admin_key_hash: Sha256::digest(admin.as_bytes()).into(),
            admin_key_file,
            // The key is 32 random bytes (checked above), so one hash is as good as a KDF; it
            // is also what every earlier version derived, so stored data stays readable.
            master_key: Sha256::digest(master.as_bytes()).into(),
        })
    }
}

/// A master key must be 32 random bytes, written as 64 hex digits or in base64 (the generated
/// `master.key` is hex): a passphrase would make every tenant's encryption as weak as it is.
fn check_master_key(key: &str) -> anyhow::Result<()> {
    use base64::Engine;
    let key = key.trim();
    let bytes = hex::decode(key).ok().or_else(|| base64::engine::general_purpose::STANDARD.decode(key).ok());
    let Some(bytes) = bytes.filter(|b| b.len() == 32) else {
        bail!(
            "the master key (MAAS_MASTER_KEY or master.key) must be 32 random bytes as 64 hex digits or base64 \
             (e.g. `openssl rand -hex 32`)"
        );
    };
    // Random bytes have many distinct values; a pattern such as all zeros does not.
    let distinct = bytes.iter().collect::<std::collections::HashSet<_>>().len();
    if distinct < 12 {
        bail!("the master key (MAAS_MASTER_KEY or master.key) is not random: {distinct} distinct bytes of 32");
    }
    Ok(())
}

/// Creates `dir` (and its parents) with mode 0700 when missing; an existing one is narrowed to
/// 0700: it holds the keys, the store and the model files.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Reads a secret file, or writes a new random one with mode 0600. An existing file that its
/// group or others may read is refused: the secret may have leaked.
fn read_or_generate(path: &Path, prefix: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} has mode {:o}: its group or others may read it. Make it private (chmod 600) after \
                 checking that the key did not leak, or replace it",
                path.display(),
                mode & 0o777
            );
        }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            ("MAAS_LISTEN", "0.0.0.0:9000"),
            ("MAAS_DATA", "/srv/maas"),
            ("MAAS_ADMIN_KEY", "an-admin-key"),
            ("MAAS_MASTER_KEY", "a-master-key"),
            ("MAAS_LOG", "debug"),
            ("MAAS_LOG_FORMAT", "json"),
            ("MAAS_WATTS_PER_CORE", "7.5"),
            ("MAAS_GRID_GCO2E_PER_KWH", "120"),
            ("MAAS_ANALYSIS_TIMEOUT_S", "2.5"),
            ("MAAS_INFERENCE_THREADS", "4"),
        ])
        .unwrap();
        let defaults = Config::new("./maas-data");
        assert_eq!(config.listen, "0.0.0.0:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/srv/maas"));
        assert_eq!(config.admin_key.as_deref(), Some("an-admin-key"));
        assert_eq!(config.master_key.as_deref(), Some("a-master-key"));
        assert_eq!(config.log_filter, "debug");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.energy.watts_per_core, 7.5);
        assert_eq!(config.energy.grid_gco2e_per_kwh, 120.0);
        assert_eq!(config.analysis_timeout, Duration::from_millis(2500));
        assert_eq!((config.inference_threads, defaults.inference_threads), (4, 1));
        // Each variable above moved its field off the default, so each one is read.
        assert_ne!(config.listen, defaults.listen);
        assert_ne!(config.energy, defaults.energy);
        assert_ne!(config.log_format, defaults.log_format);
        assert_eq!(ENV_VARS.len(), 10, "a variable added to ENV_VARS needs a line in this test");
    }

    #[test]
    fn unset_and_empty_mean_the_defaults() {
        let config = from(&[("MAAS_LOG", ""), ("MAAS_ADMIN_KEY", " ")]).unwrap();
        let defaults = Config::new("./maas-data");
        assert_eq!((config.listen, &config.data_dir), (defaults.listen, &defaults.data_dir));
        assert_eq!((config.admin_key, config.log_filter.as_str()), (None, DEFAULT_LOG_FILTER));
        assert_eq!(config.energy, EnergyModel::default());
        let format = from(&[("MAAS_LOG_FORMAT", "xml")]).unwrap_err().to_string();
        assert!(format.contains("MAAS_LOG_FORMAT"), "{format}");
    }

    #[test]
    fn weak_keys_and_readable_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let strong = "0f".repeat(4) + &hex::encode(*b"a random-looking key: 32 bytes!!")[8..];
        let with = |admin: Option<&str>, master: Option<&str>| {
            let mut config = Config::new(&data);
            config.admin_key = admin.map(str::to_string);
            config.master_key = master.map(str::to_string);
            Secrets::load(&config).map(|_| ()).map_err(|e| format!("{e:#}"))
        };
        let admin = "an-admin-key-long-enough-for-us";
        assert_eq!(with(Some(admin), Some(&strong)), Ok(()));
        // The data directory is private.
        assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        for weak in ["a-master-key", "00".repeat(32).as_str(), "abcd"] {
            assert!(with(Some(admin), Some(weak)).unwrap_err().contains("master key"), "{weak}");
        }
        assert!(with(Some("short"), Some(&strong)).unwrap_err().contains("at least 24"));
        // Generated files are 0600 and accepted; widened, they are refused.
        assert_eq!(with(None, None), Ok(()));
        let admin_file = data.join("admin.key");
        assert_eq!(std::fs::metadata(&admin_file).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&admin_file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(with(None, None).unwrap_err().contains("group or others may read it"));
        std::fs::set_permissions(&admin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let master_file = data.join("master.key");
        std::fs::set_permissions(&master_file, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(with(None, None).unwrap_err().contains("master.key has mode 604"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("MAAS_LISTEN", "localhost"),
            ("MAAS_WATTS_PER_CORE", "lots"),
            ("MAAS_GRID_GCO2E_PER_KWH", "-1"),
            ("MAAS_ANALYSIS_TIMEOUT_S", "soon"),
            ("MAAS_INFERENCE_THREADS", "0"),
            ("MAAS_INFERENCE_THREADS", "many"),
        ] {
            let err = format!("{:#}", from(&[(name, value)]).unwrap_err());
            assert!(err.contains(name), "{err}");
        }
    }
}
