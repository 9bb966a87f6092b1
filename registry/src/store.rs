//! Trees, key encoding and the one transactional write path.
//!
//! Every metadata write goes through [`Batch`] + [`Trees::apply`]: the caller holds the registry's write
//! lock, reads what it needs (scans are not possible inside a sled transaction), decides, and then commits
//! all its inserts and removals across trees in one transaction. Blob chunks are the only data written
//! outside that path (before the metadata that references them, and removed after it).

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::Transactional;

use crate::error::{Error, Result};

/// Separator between key parts. Names never contain it, and it sorts before every name character, so a
/// prefix scan over `tenant + SEP` neither leaks into `tenant-2` nor breaks name order.
pub(crate) const SEP: u8 = 0;

/// The store's trees, one per keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum T {
    /// Store-wide facts: schema version, master key check.
    Meta,
    /// tenant → `Tenant`.
    Tenants,
    /// key id → `KeyRecord`.
    Keys,
    /// tenant SEP key id → ().
    KeysByTenant,
    /// tenant SEP model SEP version (u32 BE) → `ModelVersion`.
    Models,
    /// tenant SEP model → last assigned version (u32 BE); kept after deletes so numbers are never reused.
    ModelSeq,
    /// tenant SEP digest → `ComponentRecord`.
    Components,
    /// tenant SEP digest SEP engine → `ArtifactRecord`.
    Artifacts,
    /// tenant SEP function → `FunctionRecord`.
    Functions,
    /// blob id (u64 BE) chunk index (u32 BE) → nonce ‖ ciphertext ‖ tag: where chunks were before
    /// they became files. Emptied at open by the blob module (`migrate_tree_chunks`); nothing writes it.
    Blobs,
    /// blob id (u64 BE) → owner description; a blob without an entry here is an orphan.
    BlobRefs,
    /// tenant SEP ... → usage counters (owned by the runtime's metering; cleared with the tenant).
    Usage,
    /// sequence number (u64 BE) → `AuditEntry`; kept when its tenant is deleted.
    Audit,
    /// tenant SEP model SEP version (u32 BE) → the latest fairness audit of that version (JSON).
    ModelAudits,
    /// tenant SEP model → `ModelCard`.
    Cards,
}

impl T {
    pub(crate) const ALL: [T; 15] = [
        T::Meta,
        T::Tenants,
        T::Keys,
        T::KeysByTenant,
        T::Models,
        T::ModelSeq,
        T::Components,
        T::Artifacts,
        T::Functions,
        T::Blobs,
        T::BlobRefs,
        T::Usage,
        T::Audit,
        T::ModelAudits,
        T::Cards,
    ];

    fn name(self) -> &'static str {
        match self {
            T::Meta => "meta",
            T::Tenants => "tenants",
            T::Keys => "keys",
            T::KeysByTenant => "keys_by_tenant",
            T::Models => "models",
            T::ModelSeq => "model_seq",
            T::Components => "components",
            T::Artifacts => "artifacts",
            T::Functions => "functions",
            T::Blobs => "blobs",
            T::BlobRefs => "blob_refs",
            T::Usage => "usage",
            T::Audit => "audit",
            T::ModelAudits => "model_audits",
            T::Cards => "cards",
        }
    }

    fn index(self) -> usize {
        T::ALL.iter().position(|t| *t == self).expect("listed")
    }
}

/// The opened trees, indexed by [`T`].
pub(crate) struct Trees {
    trees: Vec<sled::Tree>,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Self> {
        let trees = T::ALL.iter().map(|t| db.open_tree(t.name())).collect::<Result<Vec<_>, _>>()?;
        Ok(Trees { trees })
    }

    pub(crate) fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t.index()]
    }

    /// Reads and decodes one JSON record.
    pub(crate) fn get_json<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> Result<Option<V>> {
        match self.tree(t).get(key)? {
            Some(bytes) => Ok(Some(decode(t, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Decodes every JSON record whose key starts with `prefix`, in key order.
    pub(crate) fn scan_json<V: DeserializeOwned>(&self, t: T, prefix: &[u8]) -> Result<Vec<V>> {
        self.tree(t)
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv?;
                decode(t, &v)
            })
            .collect()
    }

    /// Every key that starts with `prefix`.
    pub(crate) fn scan_keys(&self, t: T, prefix: &[u8]) -> Result<Vec<sled::IVec>> {
        self.tree(t).scan_prefix(prefix).keys().collect::<Result<Vec<_>, _>>().map_err(Error::from)
    }

    /// Commits all of `batch` atomically, across trees.
    pub(crate) fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        trees.as_slice().transaction(|views| {
            for (t, key, value) in &batch.ops {
                let view = &views[t.index()];
                match value {
                    Some(v) => {
                        view.insert(key.as_slice(), v.as_slice())?;
                    }
                    None => {
                        view.remove(key.as_slice())?;
                    }
                }
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })?;
        Ok(())
    }
}

fn decode<V: DeserializeOwned>(t: T, bytes: &[u8]) -> Result<V> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("a record in tree {} does not decode: {e}", t.name())))
}

/// Inserts and removals to commit together.
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<(T, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub(crate) fn insert(&mut self, t: T, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((t, key.into(), Some(value.into())));
    }

    pub(crate) fn insert_json(&mut self, t: T, key: impl Into<Vec<u8>>, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("registry records always serialize");
        self.insert(t, key, bytes);
    }

    pub(crate) fn remove(&mut self, t: T, key: impl Into<Vec<u8>>) {
        self.ops.push((t, key.into(), None));
    }
}

/// Joins key parts with [`SEP`].
pub(crate) fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.extend_from_slice(p);
    }
    k
}

/// The prefix of every key that starts with these parts: the parts joined, plus a trailing [`SEP`].
pub(crate) fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(parts);
    k.push(SEP);
    k
}
