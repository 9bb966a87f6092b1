//! The audit trail: who changed what, and when.
//!
//! The runtime appends one [`AuditEntry`] per successful administrative change (tenants, keys,
//! models, components, functions); the operator reads them newest first. Entries never hold
//! secrets, and they outlive the tenant they name: the trail is the operator's record. The
//! oldest entries beyond [`AUDIT_RETENTION`] are dropped so that the trail cannot grow without
//! bound.

use maas_types::AuditEntry;

use crate::Registry;
use crate::error::Result;
use crate::store::{Batch, T};

/// How many entries the trail keeps.
pub const AUDIT_RETENTION: usize = 100_000;

impl Registry {
    /// Appends `entry`, stamping its sequence number and time, and returns it as stored.
    pub fn append_audit(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        entry.seq = self.inner.db.generate_id()?;
        entry.at = crate::time::now();
        let mut batch = Batch::default();
        batch.insert_json(T::Audit, entry.seq.to_be_bytes(), &entry);
        self.trees().apply(&batch)?;
        // Trimming scans the tree, so it runs now and then rather than on every append.
        if entry.seq.is_multiple_of(1024) {
            self.trim_audit()?;
        }
        Ok(entry)
    }

    /// Up to `limit` entries, newest first, only those of `tenant` when given, only those older
    /// than `before` (a `seq`) when given.
    pub fn audit(&self, tenant: Option<&str>, before: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>> {
        let tree = self.trees().tree(T::Audit);
        let range = match before {
            Some(seq) => tree.range(..seq.to_be_bytes()),
            None => tree.range::<&[u8], _>(..),
        };
        let mut entries = Vec::new();
        for kv in range.rev() {
            if entries.len() >= limit {
                break;
            }
            let (_, v) = kv?;
            let entry: AuditEntry = serde_json::from_slice(&v)
                .map_err(|e| crate::Error::Corrupt(format!("an audit entry does not decode: {e}")))?;
            if tenant.is_none_or(|t| entry.tenant.as_deref() == Some(t)) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    fn trim_audit(&self) -> Result<()> {
        let tree = self.trees().tree(T::Audit);
        let excess = tree.len().saturating_sub(AUDIT_RETENTION);
        for key in tree.iter().keys().take(excess) {
            tree.remove(key?)?;
        }
        Ok(())
    }
}
