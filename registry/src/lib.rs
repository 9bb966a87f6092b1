//! The maas store: tenants, API keys, models, components and functions in [sled], their blobs in
//! encrypted chunk files beside it.
//!
//! This crate is the storage layer and nothing else: no HTTP, no WebAssembly, no inference. It owns quota
//! checks at commit time, the existence checks of what a manifest references, and encryption at rest. The
//! records it stores that also cross HTTP (tenants, quotas, keys, manifests, tensor specs, audit entries,
//! usage, cards, fairness reports) are the types of `maas-types`; the records here add what stays inside
//! (blob references, key hashes).
//!
//! # Using it
//!
//! 1. [`Registry::open`] the store once, with the 32-byte master key. Opening sweeps blob chunks that no
//!    committed record references (left by an upload that was interrupted by a crash).
//! 2. [`Registry::create_tenant`], then [`Registry::create_key`] hands out the secret once; on every request
//!    [`Registry::authenticate`] turns a bearer secret back into a [`KeyInfo`].
//! 3. Uploads stream into a [`BlobWriter`] (chunked, encrypted, hashed as it goes); [`BlobWriter::finish`]
//!    gives a [`BlobRef`] that is still invisible. [`Registry::commit_model_version`] or
//!    [`Registry::put_component`] makes it visible in one transaction, checking quotas; if the caller
//!    rejects the upload instead (say tract cannot load it), [`Registry::discard_blob`] removes it.
//! 4. [`Registry::put_function`] validates a [`Manifest`] against the tenant's quota and checks that the
//!    models and component it names exist.
//! 5. The runtime adds metering deltas with [`Registry::add_usage`] and reads them with [`Registry::usage`].
//!
//! ```
//! use maas_registry::Registry;
//! use maas_types::{ComponentRef, Datatype, Manifest, Role, Signature, TensorSpec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let registry = Registry::open(dir.path(), [7; 32])?;
//! registry.create_tenant("acme", None)?;
//! let (_info, secret) = registry.create_key("acme", Role::Owner, Some("ci".into()))?;
//! assert_eq!(registry.authenticate(&secret)?.unwrap().tenant, "acme");
//!
//! let mut upload = registry.blob_writer("acme")?;
//! upload.write(b"an onnx file")?;
//! let blob = upload.finish()?;
//! let spec = TensorSpec { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 4] };
//! let model = registry.commit_model_version("acme", "iris", blob, Signature { inputs: vec![spec.clone()], outputs: vec![spec] }.into())?;
//! assert_eq!(model.version, 1);
//! assert_eq!(registry.read_blob("acme", &model.blob)?, b"an onnx file");
//!
//! let mut manifest = Manifest::new(ComponentRef::TENSOR);
//! manifest.models.insert("model".into(), "iris".parse()?);
//! let (function, created) = registry.put_function("acme", "classify", manifest)?;
//! assert!(created && function.revision == 1);
//! # Ok(()) }
//! ```
//!
//! # Storage layout
//!
//! One sled tree per keyspace (`tenants`, `keys`, `keys_by_tenant`, `models`, `model_seq`, `components`,
//! `artifacts`, `functions`, `blob_refs`, `usage`, `meta`). Keys are `tenant 0x00 name ...`, with
//! big-endian integers where order matters (model versions, blob ids); values are JSON. Blob chunks are
//! files, `chunks/<blob id>/<chunk index>` in the store's directory (`src/blob.rs` says why not sled values).
//! They are written (and synced) first; the metadata that makes them visible (and the `blob_refs` entry
//! that keeps them from being swept) is committed last, in one transaction.
//!
//! # Concurrency and blocking
//!
//! [`Registry`] is a cheap `Clone` (an `Arc`), `Send + Sync`. Reads run concurrently; metadata writes are
//! serialised by one lock (they are rare and small: a deploy, a commit). Blob chunk writes do not take that
//! lock, so concurrent uploads stream in parallel.
//!
//! Two kinds of calls block differently:
//! - **Record calls** (tenants, keys, models' and functions' metadata, usage, audit) read and write sled,
//!   which keeps recent records in memory and writes to disk in the background: they take microseconds
//!   and do no I/O of their own, so async code may call them on its own threads (the runtime does, to
//!   authenticate and route without a thread hop).
//! - **Blob calls** ([`BlobWriter`], [`Registry::read_blob`], [`Registry::blob_reader`],
//!   [`Registry::put_artifact`], [`Registry::artifact`], the commits that finish an upload, and the deletes
//!   that remove chunk files: [`Registry::delete_tenant`], [`Registry::delete_model`],
//!   [`Registry::delete_component`]) and [`Registry::flush`] read, write, sync or remove files: call them on
//!   a blocking thread pool.

#![deny(missing_docs)]

mod audit;
mod blob;
mod component;
mod crypto;
mod error;
mod function;
mod keys;
mod model;
mod store;
mod tenant;
mod time;
mod trust;
mod usage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use audit::AUDIT_RETENTION;
pub use blob::{BlobReader, BlobRef, BlobWriter, CHUNK_SIZE};
pub use component::ComponentRecord;
pub use error::{Error, Result};
pub use function::FunctionRecord;
pub use model::{ModelSummary, ModelVersion, UploadRoom};
pub use usage::UsageRecord;

use crypto::Crypto;
use store::{T, Trees};

/// The version of the on-disk layout this crate writes.
const SCHEMA_VERSION: u32 = 1;

/// The store. See the [crate docs](crate) for the call order.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    db: sled::Db,
    trees: Trees,
    crypto: Crypto,
    /// Serialises metadata writes: every check-then-commit happens under it.
    write: Mutex<()>,
    /// Finished blobs not yet committed nor discarded: id → (tenant, blob).
    pending: Mutex<HashMap<u64, (String, BlobRef)>>,
    /// Where blob chunks are files ([`blob`]): `chunks/` in the store's directory.
    chunks_dir: std::path::PathBuf,
    /// What each tenant stores, kept in step with every commit and delete (under the write
    /// lock) so that an upload's quota checks never scan the tenant's versions.
    totals: Mutex<HashMap<String, model::Totals>>,
}

impl Inner {
    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, (String, BlobRef)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn totals(&self) -> MutexGuard<'_, HashMap<String, model::Totals>> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// sled's page cache. sled holds only records (blob chunks are files), so a small cache costs
/// nothing measurable and keeps an idle server's memory near its baseline.
const CACHE_BYTES: u64 = 4 << 20;

/// Opens sled, waiting briefly for the file lock: a store that was just dropped in this
/// process releases it only when sled's background flusher notices (within its flush period).
fn open_db(path: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl Registry {
    /// Opens (or creates) the store at `path`.
    ///
    /// `master_key` derives, with HKDF-SHA256, the per-tenant blob encryption keys and the key of the
    /// HMAC-SHA256 under which API key secrets are stored. A store remembers a check value of the master key
    /// it was created with and refuses another one with [`Error::MasterKeyMismatch`].
    ///
    /// Opening sweeps orphan blob chunks: chunks of blobs that no committed record references.
    pub fn open(path: &Path, master_key: [u8; 32]) -> Result<Self> {
        let db = open_db(path)?;
        let trees = Trees::open(&db)?;
        let crypto = Crypto::new(&master_key);
        let meta = trees.tree(T::Meta);
        match meta.get(b"master_key_check")? {
            Some(stored) => {
                if !crypto::ct_eq(&stored, &crypto.check_value()) {
                    return Err(Error::MasterKeyMismatch);
                }
            }
            None => {
                meta.insert(b"master_key_check", &crypto.check_value())?;
                meta.insert(b"schema", &SCHEMA_VERSION.to_be_bytes())?;
                meta.flush()?;
            }
        }
        let chunks_dir = path.join("chunks");
        blob::create_private_dir(&chunks_dir).map_err(|e| Error::Storage(sled::Error::Io(e)))?;
        blob::sync_dir(path)?;
        let registry = Registry {
            inner: Arc::new(Inner {
                db,
                trees,
                crypto,
                write: Mutex::new(()),
                pending: Mutex::new(HashMap::new()),
                chunks_dir,
                totals: Mutex::new(HashMap::new()),
            }),
        };
        let moved = blob::migrate_tree_chunks(&registry.inner)?;
        if moved > 0 {
            tracing::info!(chunks = moved, "moved blob chunks from sled into files");
        }
        let swept = blob::sweep_orphans(&registry.inner)?;
        if swept > 0 {
            tracing::info!(blobs = swept, "swept orphan blobs");
        }
        Ok(registry)
    }

    /// Writes everything to disk. sled also flushes on its own every half second; call this before exit.
    pub fn flush(&self) -> Result<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
    }
}

#[cfg(test)]
mod tests;
