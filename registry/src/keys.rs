//! API keys, stored only as keyed hashes.
//!
//! A secret looks like `maas_<id>_<secret>`: `id` is 16 lowercase hex characters (8 random bytes) naming the
//! key record, `secret` is 64 lowercase hex characters (32 random bytes). The record keeps
//! HMAC-SHA256(api key hash key, whole secret); [`Registry::authenticate`] parses the id, loads the record
//! and compares hashes in constant time. Records are indexed by id (`keys`) and by tenant
//! (`keys_by_tenant`).

use maas_types::{KeyInfo, Role};
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::crypto::ct_eq;
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

const SECRET_PREFIX: &str = "maas_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 256;

/// The stored record.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    #[serde(flatten)]
    info: KeyInfo,
    /// Hex HMAC-SHA256 of the whole secret.
    hash: String,
}

/// Splits `maas_<16 hex>_<64 hex>` into its id, or `None` if it is not of that shape.
fn parse_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, tail) = rest.split_once('_')?;
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (id.len() == ID_LEN && tail.len() == SECRET_LEN && lower_hex(id) && lower_hex(tail)).then_some(id)
}

impl Registry {
    /// Creates an API key for `tenant`. Returns its info and the secret, which is not stored and cannot be
    /// shown again.
    ///
    /// [`Error::NotFound`] if the tenant does not exist; [`Error::InvalidRequest`] for a label longer than
    /// 256 bytes or with control characters.
    pub fn create_key(&self, tenant: &str, role: Role, label: Option<String>) -> Result<(KeyInfo, String)> {
        if let Some(l) = &label
            && (l.len() > MAX_LABEL_LEN || l.chars().any(char::is_control))
        {
            return Err(Error::InvalidRequest(format!(
                "label must be at most {MAX_LABEL_LEN} bytes without control characters"
            )));
        }
        let _w = self.inner.write_lock();
        self.require_tenant(tenant)?;
        let keys = self.trees().tree(T::Keys);
        let id = loop {
            let id = hex::encode(rand::random::<[u8; ID_LEN / 2]>());
            if !keys.contains_key(&id)? {
                break id;
            }
        };
        let secret = format!("{SECRET_PREFIX}{id}_{}", hex::encode(rand::random::<[u8; SECRET_LEN / 2]>()));
        let info = KeyInfo { id: id.clone(), tenant: tenant.to_owned(), role, label, created_at: crate::time::now() };
        let record = KeyRecord { info: info.clone(), hash: hex::encode(self.inner.crypto.hash_secret(&secret)) };
        let mut batch = Batch::default();
        batch.insert_json(T::Keys, id.as_bytes(), &record);
        batch.insert(T::KeysByTenant, key(&[tenant.as_bytes(), id.as_bytes()]), Vec::new());
        self.trees().apply(&batch)?;
        Ok((info, secret))
    }

    /// The key a bearer secret belongs to, or `None` for a malformed, unknown, revoked or wrong secret.
    ///
    /// The hash comparison is constant-time. Suspension is not checked here: the caller looks up the
    /// tenant.
    pub fn authenticate(&self, secret: &str) -> Result<Option<KeyInfo>> {
        let Some(id) = parse_id(secret) else {
            return Ok(None);
        };
        let Some(record) = self.trees().get_json::<KeyRecord>(T::Keys, id.as_bytes())? else {
            return Ok(None);
        };
        let Ok(stored) = hex::decode(&record.hash) else {
            return Err(Error::Corrupt(format!("key {id} has a malformed hash")));
        };
        let presented = self.inner.crypto.hash_secret(secret);
        Ok(ct_eq(&stored, &presented).then_some(record.info))
    }

    /// The tenant's keys, by id. [`Error::NotFound`] if the tenant does not exist.
    pub fn keys(&self, tenant: &str) -> Result<Vec<KeyInfo>> {
        self.require_tenant(tenant)?;
        let p = prefix(&[tenant.as_bytes()]);
        let mut out = Vec::new();
        for k in self.trees().scan_keys(T::KeysByTenant, &p)? {
            if let Some(r) = self.trees().get_json::<KeyRecord>(T::Keys, &k[p.len()..])? {
                out.push(r.info);
            }
        }
        Ok(out)
    }

    /// Revokes a key at once. [`Error::NotFound`] if the tenant or the key does not exist, or the key
    /// belongs to another tenant.
    pub fn revoke_key(&self, tenant: &str, id: &str) -> Result<()> {
        let _w = self.inner.write_lock();
        self.require_tenant(tenant)?;
        let index = key(&[tenant.as_bytes(), id.as_bytes()]);
        let record = self.trees().get_json::<KeyRecord>(T::Keys, id.as_bytes())?;
        match record {
            Some(r) if r.info.tenant == tenant => {
                let mut batch = Batch::default();
                batch.remove(T::Keys, id.as_bytes());
                batch.remove(T::KeysByTenant, index);
                self.trees().apply(&batch)
            }
            _ => Err(Error::NotFound(format!("key {id:?} not found in tenant {tenant:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn secret_shape() {
        let id = "0123456789abcdef";
        let tail = "a".repeat(64);
        assert_eq!(parse_id(&format!("maas_{id}_{tail}")), Some(id));
        for bad in [
            String::new(),
            format!("maas_{id}"),
            format!("maas_{id}_"),
            format!("maas_{id}_{}", "a".repeat(63)),
            format!("maas_{id}_{}", "a".repeat(65)),
            format!("maas_{}_{tail}", "0123456789ABCDEF"),
            format!("maas_{}_{tail}", "0123456789abcde"),
            format!("mass_{id}_{tail}"),
            format!("maas_{id}_{}", "g".repeat(64)),
            format!("maas_{id}_{tail}\n"),
        ] {
            assert_eq!(parse_id(&bad), None, "{bad:?}");
        }
    }
}
