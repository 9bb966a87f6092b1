//! Tests against a real sled store in a temporary directory.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use maas_types::trust::MAX_CARD_FIELD;
use maas_types::{
    AuditEntry, ComponentRef, Datatype, FairnessReport, Limits, Manifest, ModelCard, ModelRef, Quota, QuotaPatch, Role,
    Signature, TensorSpec, Usage,
};

use crate::blob::{blob_dir, chunk_path};
use crate::store::{T, prefix};
use crate::*;

const KEY: [u8; 32] = [42; 32];
const MIB: usize = 1024 * 1024;

fn open() -> (TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path(), KEY).unwrap();
    (dir, reg)
}

fn reopen(dir: &Path, reg: Registry) -> Registry {
    reg.flush().unwrap();
    drop(reg);
    Registry::open(dir, KEY).unwrap()
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed).collect()
}

fn upload(reg: &Registry, tenant: &str, bytes: &[u8]) -> BlobRef {
    let mut w = reg.blob_writer(tenant).unwrap();
    // Odd-sized writes, to cross chunk boundaries mid-write.
    for part in bytes.chunks(300_001) {
        w.write(part).unwrap();
    }
    assert_eq!(w.bytes_written(), bytes.len() as u64);
    w.finish().unwrap()
}

fn spec(name: &str) -> TensorSpec {
    TensorSpec { name: name.into(), datatype: Datatype::Fp32, shape: vec![-1, 4] }
}

/// A fairness report with these figures.
fn audit_report(ratio: Option<f64>, parity: f64) -> FairnessReport {
    FairnessReport {
        groups: Default::default(),
        statistical_parity_difference: parity,
        disparate_impact_ratio: ratio,
        equal_opportunity_difference: None,
        average_odds_difference: None,
        passes_four_fifths_rule: ratio.is_some_and(|r| r >= 0.8),
        reference_group: "a".into(),
        audited_at: Some("t".into()),
        model: None,
        rows: None,
    }
}

fn model(reg: &Registry, tenant: &str, name: &str, bytes: &[u8]) -> Result<ModelVersion> {
    let blob = upload(reg, tenant, bytes);
    reg.commit_model_version(tenant, name, blob, Signature { inputs: vec![spec("x")], outputs: vec![spec("y")] }.into())
}

fn manifest(json: &str) -> Manifest {
    serde_json::from_str(json).unwrap()
}

/// Chunk files in the store.
fn chunks(reg: &Registry) -> usize {
    let blobs = std::fs::read_dir(&reg.inner.chunks_dir).unwrap();
    blobs.map(|b| std::fs::read_dir(b.unwrap().path()).unwrap().count()).sum()
}

/// Chunk files of blob `id`.
fn chunks_of(reg: &Registry, id: u64) -> usize {
    std::fs::read_dir(blob_dir(&reg.inner, id)).map_or(0, |files| files.count())
}

#[test]
fn registry_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Registry>();
    fn send<T: Send>() {}
    send::<BlobWriter>();
    send::<BlobReader>();
}

// ---------------------------------------------------------------- tenants

#[test]
fn tenant_crud() {
    let (_dir, reg) = open();
    let t = reg.create_tenant("acme", None).unwrap();
    assert_eq!(t.name, "acme");
    assert_eq!(t.quota, Quota::default());
    assert!(!t.suspended);
    assert!(humantime::parse_rfc3339(&t.created_at).is_ok(), "{}", t.created_at);

    assert!(matches!(reg.create_tenant("acme", None), Err(Error::Conflict(_))));
    assert!(matches!(reg.create_tenant("Acme", None), Err(Error::InvalidName(_))));
    let bad = QuotaPatch { rate_per_second: Some(0.0), ..Default::default() };
    assert!(
        matches!(reg.create_tenant("b", Some(bad)), Err(Error::InvalidRequest(m)) if m.contains("rate_per_second"))
    );
    assert!(reg.tenant("b").unwrap().is_none());

    let patch: QuotaPatch = serde_json::from_str(r#"{"max_models": 3}"#).unwrap();
    let b = reg.create_tenant("b", Some(patch)).unwrap();
    assert_eq!(b.quota.max_models, 3);
    assert_eq!(b.quota.max_functions, Quota::default().max_functions);
    assert!(serde_json::from_str::<QuotaPatch>(r#"{"max_modelz": 3}"#).is_err());

    assert_eq!(reg.tenants().unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme", "b"]);
    assert_eq!(reg.tenant("acme").unwrap().unwrap(), t);
    assert_eq!(reg.tenant("nope").unwrap(), None);
    assert_eq!(reg.tenant("NOT VALID\0").unwrap(), None);

    let u = reg
        .update_tenant("acme", Some(QuotaPatch { max_memory_mb: Some(128), ..Default::default() }), Some(true))
        .unwrap();
    assert!(u.suspended);
    assert_eq!(u.quota.max_memory_mb, 128);
    assert_eq!(u.created_at, t.created_at);
    let u = reg.update_tenant("acme", None, Some(false)).unwrap();
    assert!(!u.suspended && u.quota.max_memory_mb == 128);
    assert!(matches!(
        reg.update_tenant("acme", Some(QuotaPatch { max_memory_mb: Some(0), ..Default::default() }), None),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(reg.update_tenant("zzz", None, None), Err(Error::NotFound(_))));

    reg.delete_tenant("b").unwrap();
    assert!(matches!(reg.delete_tenant("b"), Err(Error::NotFound(_))));
    assert!(reg.tenant("b").unwrap().is_none());
    // Tenant-scoped calls on a missing tenant are NotFound.
    assert!(matches!(reg.models("b"), Err(Error::NotFound(_))));
    assert!(matches!(reg.blob_writer("b"), Err(Error::NotFound(_))));
    assert!(matches!(reg.function("b", "f"), Err(Error::NotFound(_))));
}

#[test]
fn quota_serde_uses_contract_field_names() {
    let v = serde_json::to_value(Quota::default()).unwrap();
    for f in [
        "max_model_bytes",
        "max_storage_bytes",
        "max_models",
        "max_functions",
        "max_concurrency",
        "rate_per_second",
        "max_memory_mb",
        "max_timeout_ms",
        "max_request_bytes",
    ] {
        assert!(v.get(f).is_some(), "{f}");
    }
    // Stored records missing newer fields still decode.
    let q: Quota = serde_json::from_str(r#"{"max_models": 7}"#).unwrap();
    assert_eq!(q.max_models, 7);
    assert_eq!(q.max_memory_mb, 512);
}

/// Fills tenant `t` with one of everything; returns its owner secret.
fn populate(reg: &Registry, t: &str) -> String {
    reg.create_tenant(t, None).unwrap();
    let (_, secret) = reg.create_key(t, Role::Owner, None).unwrap();
    reg.create_key(t, Role::Invoker, Some("app".into())).unwrap();
    model(reg, t, "m", &data(1500 * 1024, 1)).unwrap();
    model(reg, t, "m", &data(10, 2)).unwrap();
    model(reg, t, "other", &data(10, 3)).unwrap();
    let c = reg.put_component(t, upload(reg, t, b"\0asm component")).unwrap();
    reg.put_artifact(t, &c.digest, "engine-1", &data(MIB + 5, 4)).unwrap();
    reg.put_artifact(t, "builtin:tensor", "engine-1", b"precompiled").unwrap();
    reg.put_function(
        t,
        "f",
        manifest(&format!(r#"{{"component": "{}", "models": {{"a": "m@1", "b": "other"}}}}"#, c.digest)),
    )
    .unwrap();
    let one = Usage { invocations: 1, ..Default::default() };
    reg.add_usage(t, "2025-01-01", Some("f"), &one).unwrap();
    reg.add_usage(t, "2025-01-01", None, &one).unwrap();
    reg.put_card(t, "m", &ModelCard { description: Some("d".into()), ..Default::default() }).unwrap();
    reg.put_model_audit(t, "m", 1, &audit_report(Some(0.9), -0.05)).unwrap();
    secret
}

#[test]
fn delete_tenant_cascades_to_every_tree() {
    let (dir, reg) = open();
    let acme_secret = populate(&reg, "acme");
    // A tenant whose name extends the deleted one must be untouched.
    let neighbour_secret = populate(&reg, "acme-2");
    let neighbour_chunks = chunks(&reg) / 2;
    assert!(reg.authenticate(&acme_secret).unwrap().is_some());

    reg.delete_tenant("acme").unwrap();

    assert!(reg.authenticate(&acme_secret).unwrap().is_none());
    let p = prefix(&[b"acme"]);
    for t in T::ALL {
        let tree = reg.trees().tree(t);
        assert_eq!(tree.scan_prefix(&p).count(), 0, "{t:?} keeps acme keys");
        assert!(!tree.contains_key(b"acme").unwrap(), "{t:?}");
        for kv in tree.iter() {
            let (_, v) = kv.unwrap();
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&v) {
                assert_ne!(json.get("tenant").and_then(|t| t.as_str()), Some("acme"), "{t:?}");
            }
        }
    }
    // Only acme-2's blobs remain: every chunk belongs to a referenced blob.
    let refs = reg.trees().tree(T::BlobRefs);
    assert!(refs.iter().values().all(|v| {
        let v = v.unwrap();
        std::str::from_utf8(&v).unwrap().contains("acme-2/")
    }));
    assert_eq!(chunks(&reg), neighbour_chunks);

    // acme-2 still works, also after a reopen (nothing left for the sweep to find either).
    let reg = reopen(dir.path(), reg);
    assert_eq!(chunks(&reg), neighbour_chunks);
    assert_eq!(reg.authenticate(&neighbour_secret).unwrap().unwrap().tenant, "acme-2");
    assert_eq!(reg.keys("acme-2").unwrap().len(), 2);
    let m = reg.model_version("acme-2", "m", Some(1)).unwrap().unwrap();
    assert_eq!(reg.read_blob("acme-2", &m.blob).unwrap(), data(1500 * 1024, 1));
    assert_eq!(reg.functions("acme-2").unwrap().len(), 1);
    assert_eq!(reg.components("acme-2").unwrap().len(), 1);
    assert!(reg.tenant("acme").unwrap().is_none());
    // The name can be reused, starting empty.
    reg.create_tenant("acme", None).unwrap();
    assert!(reg.models("acme").unwrap().is_empty());
    assert!(reg.keys("acme").unwrap().is_empty());
}

// ---------------------------------------------------------------- keys

#[test]
fn keys_create_authenticate_revoke() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    reg.create_tenant("other", None).unwrap();
    let (owner, secret) = reg.create_key("acme", Role::Owner, Some("laptop".into())).unwrap();
    let (invoker, invoker_secret) = reg.create_key("acme", Role::Invoker, None).unwrap();
    let (foreign, _) = reg.create_key("other", Role::Owner, None).unwrap();

    assert_eq!(owner.id.len(), 16);
    assert!(secret.starts_with(&format!("maas_{}_", owner.id)));
    assert_eq!(secret.len(), "maas_".len() + 16 + 1 + 64);
    assert_eq!(reg.authenticate(&secret).unwrap(), Some(owner.clone()));
    assert_eq!(reg.authenticate(&invoker_secret).unwrap().unwrap().role, Role::Invoker);
    assert_eq!(serde_json::to_value(Role::Invoker).unwrap(), "invoker");
    assert_eq!(serde_json::to_value(Role::Owner).unwrap(), "owner");

    // Wrong secret for a real id: same length, last character changed.
    let mut wrong = secret.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    assert_eq!(reg.authenticate(&wrong).unwrap(), None);
    // Malformed secrets and unknown ids.
    for bad in [
        "",
        "maas_",
        "Bearer x",
        &secret[..secret.len() - 1],
        &format!("{secret}0"),
        &secret.to_uppercase(),
        &format!("maas_0000000000000000_{}", "0".repeat(64)),
    ] {
        assert_eq!(reg.authenticate(bad).unwrap(), None, "{bad:?}");
    }

    // Listing shows no secret or hash.
    let keys = reg.keys("acme").unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&owner) && keys.contains(&invoker));
    let json = serde_json::to_string(&keys).unwrap();
    assert!(!json.contains("hash") && !json.contains(&secret[22..]));
    // The stored record holds a hash, not the secret.
    let stored = reg.trees().tree(T::Keys).get(&owner.id).unwrap().unwrap();
    let stored = String::from_utf8(stored.to_vec()).unwrap();
    assert!(stored.contains("\"hash\"") && !stored.contains(&secret[22..]));

    // Cross-tenant revoke is refused and changes nothing.
    assert!(matches!(reg.revoke_key("acme", &foreign.id), Err(Error::NotFound(_))));
    assert!(matches!(reg.revoke_key("other", &owner.id), Err(Error::NotFound(_))));
    assert!(reg.authenticate(&secret).unwrap().is_some());
    assert_eq!(reg.keys("other").unwrap(), vec![foreign]);

    reg.revoke_key("acme", &owner.id).unwrap();
    assert_eq!(reg.authenticate(&secret).unwrap(), None);
    assert!(matches!(reg.revoke_key("acme", &owner.id), Err(Error::NotFound(_))));
    assert_eq!(reg.keys("acme").unwrap(), vec![invoker]);

    assert!(matches!(reg.create_key("acme", Role::Owner, Some("x".repeat(300))), Err(Error::InvalidRequest(_))));
    assert!(matches!(reg.create_key("acme", Role::Owner, Some("a\nb".into())), Err(Error::InvalidRequest(_))));
    assert!(matches!(reg.create_key("nope", Role::Owner, None), Err(Error::NotFound(_))));
}

#[test]
fn keys_depend_on_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path(), KEY).unwrap();
    reg.create_tenant("acme", None).unwrap();
    reg.flush().unwrap();
    drop(reg);
    assert!(matches!(Registry::open(dir.path(), [1; 32]), Err(Error::MasterKeyMismatch)));
    Registry::open(dir.path(), KEY).unwrap();
}

// ---------------------------------------------------------------- blobs

#[test]
fn blob_round_trip_over_several_chunks() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let bytes = data(5 * MIB / 2, 9);
    let blob = upload(&reg, "acme", &bytes);
    assert_eq!(blob.chunks, 3);
    assert_eq!(blob.size, bytes.len() as u64);
    assert_eq!(blob.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(chunks_of(&reg, blob.id), 3);
    assert_eq!(reg.read_blob("acme", &blob).unwrap(), bytes);

    let mut streamed = Vec::new();
    let mut reader = reg.blob_reader("acme", &blob).unwrap();
    let mut buf = [0u8; 70_000];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        streamed.extend_from_slice(&buf[..n]);
    }
    assert_eq!(streamed, bytes);

    // Exact multiples of the chunk size and the empty blob.
    for len in [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE, CHUNK_SIZE + 1] {
        let bytes = data(len, 3);
        let blob = upload(&reg, "acme", &bytes);
        assert_eq!(blob.chunks as usize, len.div_ceil(CHUNK_SIZE).max(1), "{len}");
        assert_eq!(reg.read_blob("acme", &blob).unwrap(), bytes, "{len}");
        let mut s = Vec::new();
        reg.blob_reader("acme", &blob).unwrap().read_to_end(&mut s).unwrap();
        assert_eq!(s, bytes);
    }

    // io::Write works too.
    let mut w = reg.blob_writer("acme").unwrap();
    std::io::copy(&mut &bytes[..], &mut w).unwrap();
    let b = w.finish().unwrap();
    assert_eq!(b.sha256, blob_sha(&bytes));
}

fn blob_sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assert_corrupt(reg: &Registry, tenant: &str, blob: &BlobRef) {
    assert!(matches!(reg.read_blob(tenant, blob), Err(Error::Corrupt(_))), "read_blob accepted a bad blob");
    let mut out = Vec::new();
    let err = reg
        .blob_reader(tenant, blob)
        .and_then(|mut r| r.read_to_end(&mut out).map_err(|e| Error::Corrupt(e.to_string())))
        .expect_err("blob_reader accepted a bad blob");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
}

#[test]
fn tampering_is_detected() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    reg.create_tenant("other", None).unwrap();
    let bytes = data(5 * MIB / 2, 1);
    let blob = upload(&reg, "acme", &bytes);
    let get = get_file;
    let insert = |k: &Path, v: Vec<u8>| std::fs::write(k, v).unwrap();

    // A flipped ciphertext byte in the middle chunk.
    let k = chunk_path(&reg.inner, blob.id, 1);
    let good = get(&k);
    let mut bad = good.to_vec();
    bad[5000] ^= 1;
    insert(&k, bad);
    assert_corrupt(&reg, "acme", &blob);
    // The streaming reader returns InvalidData wrapping Error::Corrupt.
    let mut r = reg.blob_reader("acme", &blob).unwrap();
    let e = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(e.get_ref().and_then(|e| e.downcast_ref::<Error>()), Some(Error::Corrupt(_))));
    insert(&k, good.clone());
    assert_eq!(reg.read_blob("acme", &blob).unwrap(), bytes);

    // Swapped chunks.
    let k0 = chunk_path(&reg.inner, blob.id, 0);
    let c0 = get(&k0);
    insert(&k0, good.clone());
    insert(&k, c0.clone());
    assert_corrupt(&reg, "acme", &blob);
    insert(&k0, c0);
    insert(&k, good);

    // Another tenant's key does not open it.
    assert_corrupt(&reg, "other", &blob);

    // Wrong digest or size in the metadata.
    let mut wrong = blob.clone();
    wrong.sha256 = blob_sha(b"something else");
    assert_corrupt(&reg, "acme", &wrong);
    let mut wrong = blob.clone();
    wrong.size -= 1;
    assert_corrupt(&reg, "acme", &wrong);

    // Truncation: the last chunk dropped...
    let k2 = chunk_path(&reg.inner, blob.id, 2);
    let last = get(&k2);
    std::fs::remove_file(&k2).unwrap();
    assert_corrupt(&reg, "acme", &blob);
    // ...even if the metadata is made to agree: chunk 1 was not sealed as the last one.
    let mut truncated = blob.clone();
    truncated.chunks = 2;
    truncated.size = 2 * CHUNK_SIZE as u64;
    truncated.sha256 = blob_sha(&bytes[..2 * CHUNK_SIZE]);
    assert_corrupt(&reg, "acme", &truncated);
    insert(&k2, last);
    assert_eq!(reg.read_blob("acme", &blob).unwrap(), bytes);
}

/// A store from before chunk files, with its chunks in the `blobs` tree: the next open moves
/// them into files, empties the tree, and every blob reads back whole; the chunks of a blob no
/// record claims (an upload interrupted by the stop) are swept as any orphan's. Opening again
/// (an interrupted migration done twice) changes nothing.
#[test]
fn chunks_in_the_tree_move_to_files_at_open() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let bytes = data(5 * MIB / 2, 3);
    let version = model(&reg, "acme", "m", &bytes).unwrap();
    let empty = model(&reg, "acme", "e", b"").unwrap();
    let orphan = upload(&reg, "acme", &data(3 * MIB / 2, 4));
    // Put the store in the old layout: chunks as tree values under `id ‖ index`, no files.
    let tree = reg.trees().tree(T::Blobs);
    for blob in [&version.blob, &empty.blob, &orphan] {
        for index in 0..blob.chunks {
            let mut key = blob.id.to_be_bytes().to_vec();
            key.extend(index.to_be_bytes());
            tree.insert(key, get_file(&chunk_path(&reg.inner, blob.id, index))).unwrap();
        }
        std::fs::remove_dir_all(blob_dir(&reg.inner, blob.id)).unwrap();
    }
    assert_eq!((chunks(&reg), tree.len()), (0, 6));
    assert_corrupt(&reg, "acme", &version.blob);

    let reg = reopen(dir.path(), reg);
    assert_eq!((chunks(&reg), reg.trees().tree(T::Blobs).len()), (4, 0));
    assert_eq!(chunks_of(&reg, orphan.id), 0);
    assert_eq!(reg.read_blob("acme", &version.blob).unwrap(), bytes);
    assert_eq!(reg.read_blob("acme", &empty.blob).unwrap(), b"");

    let reg = reopen(dir.path(), reg);
    assert_eq!((chunks(&reg), reg.trees().tree(T::Blobs).len()), (4, 0));
    assert_eq!(reg.read_blob("acme", &version.blob).unwrap(), bytes);
}

fn get_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if contains(&std::fs::read(&p).unwrap(), needle) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn no_plaintext_on_disk() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let marker: &[u8; 32] = b"MAAS-PLAINTEXT-MARKER-7f3a9c1e!!";
    let control = "MAAS-CONFIG-VALUE-IS-NOT-SECRET";

    let mut file = data(3 * MIB / 2, 5);
    file[10..42].copy_from_slice(marker);
    file[CHUNK_SIZE + 7..CHUNK_SIZE + 39].copy_from_slice(marker);
    let m = model(&reg, "acme", "m", &file).unwrap();
    reg.put_artifact("acme", "builtin:tensor", "e", marker).unwrap();
    let (_, secret) = reg.create_key("acme", Role::Owner, None).unwrap();
    reg.put_function(
        "acme",
        "f",
        manifest(&format!(r#"{{"component": "builtin:tensor", "config": {{"k": "{control}"}}}}"#)),
    )
    .unwrap();
    reg.flush().unwrap();

    assert_eq!(files_containing(dir.path(), marker), Vec::<std::path::PathBuf>::new());
    let secret_part = secret.rsplit('_').next().unwrap();
    assert!(files_containing(dir.path(), secret_part.as_bytes()).is_empty());
    // The scan does see what is stored in the clear (manifests are not secret).
    assert!(!files_containing(dir.path(), control.as_bytes()).is_empty());
    assert_eq!(reg.read_blob("acme", &m.blob).unwrap(), file);
}

#[test]
fn dropped_or_aborted_writer_leaves_no_chunks() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let bytes = data(5 * MIB / 2, 7);

    let mut w = reg.blob_writer("acme").unwrap();
    w.write(&bytes).unwrap();
    assert_eq!(chunks(&reg), 2, "full chunks are stored while writing");
    drop(w);
    assert_eq!(chunks(&reg), 0);

    let mut w = reg.blob_writer("acme").unwrap();
    w.write(&bytes).unwrap();
    w.abort().unwrap();
    assert_eq!(chunks(&reg), 0);

    // A finished blob can be discarded, idempotently.
    let blob = upload(&reg, "acme", &bytes);
    assert_eq!(chunks(&reg), 3);
    reg.discard_blob(&blob).unwrap();
    assert_eq!(chunks(&reg), 0);
    reg.discard_blob(&blob).unwrap();
    // ...and is then no longer committable.
    assert!(matches!(
        reg.commit_model_version("acme", "m", blob, Signature::default().into()),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn orphan_sweep_on_open() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let kept = model(&reg, "acme", "m", &data(3 * MIB / 2, 1)).unwrap();
    let orphan = upload(&reg, "acme", &data(5 * MIB / 2, 2));
    assert_eq!(chunks(&reg), 2 + 3);

    let reg = reopen(dir.path(), reg);
    assert_eq!(chunks_of(&reg, orphan.id), 0);
    assert_eq!(chunks(&reg), 2);
    assert_eq!(reg.read_blob("acme", &kept.blob).unwrap(), data(3 * MIB / 2, 1));
    // The orphan is gone for good: it cannot be committed after the restart.
    assert!(matches!(
        reg.commit_model_version("acme", "n", orphan, Signature::default().into()),
        Err(Error::InvalidRequest(_))
    ));
    // New blob ids do not collide with old ones.
    let fresh = upload(&reg, "acme", b"x");
    assert!(fresh.id != kept.blob.id);
}

// ---------------------------------------------------------------- models

#[test]
fn model_versions_are_never_reused() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    for i in 1..=3u8 {
        let v = model(&reg, "acme", "m", &data(100, i)).unwrap();
        assert_eq!(v.version, u32::from(i));
        assert_eq!(v.sha256, blob_sha(&data(100, i)));
        assert_eq!(v.size_bytes, 100);
        assert_eq!(v.inputs, vec![spec("x")]);
    }
    assert_eq!(reg.model_version("acme", "m", None).unwrap().unwrap().version, 3);
    let v2 = reg.model_version("acme", "m", Some(2)).unwrap().unwrap();
    reg.delete_model("acme", "m", Some(2)).unwrap();
    assert_eq!(chunks_of(&reg, v2.blob.id), 0);
    assert!(reg.model_version("acme", "m", Some(2)).unwrap().is_none());
    assert!(matches!(reg.delete_model("acme", "m", Some(2)), Err(Error::NotFound(_))));
    assert_eq!(model(&reg, "acme", "m", b"4").unwrap().version, 4);

    reg.delete_model("acme", "m", Some(4)).unwrap();
    assert_eq!(reg.model_version("acme", "m", None).unwrap().unwrap().version, 3);
    let reg = reopen(dir.path(), reg);
    assert_eq!(model(&reg, "acme", "m", b"5").unwrap().version, 5);

    model(&reg, "acme", "a.model", b"a").unwrap();
    let list = reg.models("acme").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "a.model");
    assert_eq!(list[1].name, "m");
    assert_eq!(list[1].latest_version, 5);
    assert_eq!(list[1].versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 3, 5]);

    reg.delete_model("acme", "m", None).unwrap();
    assert!(reg.model_version("acme", "m", None).unwrap().is_none());
    assert!(matches!(reg.delete_model("acme", "m", None), Err(Error::NotFound(_))));
    assert_eq!(model(&reg, "acme", "m", b"6").unwrap().version, 6);
    assert_eq!(reg.storage_bytes("acme").unwrap(), 2);

    assert!(matches!(model(&reg, "acme", "Bad", b"x"), Err(Error::InvalidName(_))));
    assert!(reg.model_version("acme", "Bad", None).unwrap().is_none());
    assert!(matches!(reg.model_version("nope", "m", None), Err(Error::NotFound(_))));
}

#[test]
fn commit_rejects_bad_specs_and_foreign_blobs() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    reg.create_tenant("other", None).unwrap();
    let before = chunks(&reg);

    let blob = upload(&reg, "acme", b"onnx");
    let bad = TensorSpec { name: String::new(), ..spec("x") };
    assert!(matches!(
        reg.commit_model_version("acme", "m", blob.clone(), Signature { inputs: vec![bad], outputs: vec![] }.into()),
        Err(Error::InvalidRequest(m)) if m.contains("name")
    ));
    // A rejected commit discarded the blob.
    assert_eq!(chunks(&reg), before);

    let blob = upload(&reg, "acme", b"onnx");
    let bad = TensorSpec { shape: vec![1, -2], ..spec("x") };
    assert!(
        reg.commit_model_version("acme", "m", blob, Signature { inputs: vec![bad], outputs: vec![] }.into()).is_err()
    );

    // Another tenant's pending blob, a forged ref, a double commit: refused, and the real upload survives.
    let blob = upload(&reg, "acme", b"onnx");
    assert!(matches!(
        reg.commit_model_version("other", "m", blob.clone(), Signature::default().into()),
        Err(Error::InvalidRequest(_))
    ));
    let mut forged = blob.clone();
    forged.size = 1;
    assert!(matches!(
        reg.commit_model_version("acme", "m", forged, Signature::default().into()),
        Err(Error::InvalidRequest(_))
    ));
    let v = reg.commit_model_version("acme", "m", blob.clone(), Signature::default().into()).unwrap();
    assert!(matches!(
        reg.commit_model_version("acme", "m2", blob.clone(), Signature::default().into()),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(reg.discard_blob(&blob), Err(Error::Conflict(_))));
    assert_eq!(reg.read_blob("acme", &v.blob).unwrap(), b"onnx");
}

#[test]
fn delete_model_conflicts_while_a_function_uses_it() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    for i in 1..=3 {
        model(&reg, "acme", "m", &[i]).unwrap();
    }
    reg.put_function("acme", "follows", manifest(r#"{"component": "builtin:tensor", "models": {"model": "m"}}"#))
        .unwrap();

    let e = reg.delete_model("acme", "m", None).unwrap_err();
    assert!(matches!(&e, Error::Conflict(m) if m.contains("\"follows\"")), "{e}");
    assert!(matches!(reg.delete_model("acme", "m", Some(3)), Err(Error::Conflict(_))));
    reg.delete_model("acme", "m", Some(1)).unwrap();

    reg.put_function("acme", "pinned", manifest(r#"{"component": "builtin:tensor", "models": {"model": "m@2"}}"#))
        .unwrap();
    reg.delete_function("acme", "follows").unwrap();
    let e = reg.delete_model("acme", "m", Some(2)).unwrap_err();
    assert!(matches!(&e, Error::Conflict(m) if m.contains("\"pinned\"")), "{e}");
    assert!(matches!(reg.delete_model("acme", "m", None), Err(Error::Conflict(_))));
    // The latest (3) is not pinned and nothing follows it any more.
    reg.delete_model("acme", "m", Some(3)).unwrap();

    reg.delete_function("acme", "pinned").unwrap();
    reg.delete_model("acme", "m", None).unwrap();
    assert!(reg.models("acme").unwrap().is_empty());
    assert_eq!(chunks(&reg), 0);
}

// ---------------------------------------------------------------- components and artifacts

#[test]
fn components_are_deduplicated() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    reg.create_tenant("other", None).unwrap();
    let bytes = data(MIB + 10, 3);

    let first = reg.put_component("acme", upload(&reg, "acme", &bytes)).unwrap();
    assert_eq!(first.digest, format!("sha256:{}", blob_sha(&bytes)));
    assert_eq!(first.size_bytes, bytes.len() as u64);
    assert_eq!(chunks(&reg), 2);
    let second = reg.put_component("acme", upload(&reg, "acme", &bytes)).unwrap();
    assert_eq!(second, first);
    assert_eq!(chunks(&reg), 2, "the duplicate upload was discarded");
    assert_eq!(reg.components("acme").unwrap(), vec![first.clone()]);
    assert_eq!(reg.storage_bytes("acme").unwrap(), bytes.len() as u64);

    // Per tenant: the other tenant gets its own copy under its own key.
    let theirs = reg.put_component("other", upload(&reg, "other", &bytes)).unwrap();
    assert_eq!(theirs.digest, first.digest);
    assert_ne!(theirs.blob.id, first.blob.id);

    assert_eq!(reg.component("acme", &first.digest).unwrap(), Some(first.clone()));
    assert_eq!(reg.component("acme", "sha256:nothex").unwrap(), None);
    assert_eq!(reg.read_blob("acme", &first.blob).unwrap(), bytes);
}

#[test]
fn artifacts_round_trip_and_follow_their_component() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let c = reg.put_component("acme", upload(&reg, "acme", b"wasm")).unwrap();
    assert_eq!(reg.artifact("acme", &c.digest, "e1").unwrap(), None);

    let compiled = data(3 * MIB / 2, 8);
    reg.put_artifact("acme", &c.digest, "e1", &compiled).unwrap();
    reg.put_artifact("acme", &c.digest, "e2", b"other engine").unwrap();
    assert_eq!(reg.artifact("acme", &c.digest, "e1").unwrap(), Some(compiled));
    // Replacing frees the old chunks.
    let before = chunks(&reg);
    reg.put_artifact("acme", &c.digest, "e1", b"small").unwrap();
    assert_eq!(chunks(&reg), before - 1);
    assert_eq!(reg.artifact("acme", &c.digest, "e1").unwrap().unwrap(), b"small");

    let missing = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(reg.put_artifact("acme", &missing, "e1", b"x"), Err(Error::NotFound(_))));
    assert!(matches!(reg.put_artifact("acme", "sha256:zz", "e1", b"x"), Err(Error::InvalidRequest(_))));
    assert!(matches!(reg.put_artifact("acme", &c.digest, "", b"x"), Err(Error::InvalidRequest(_))));
    reg.put_artifact("acme", "builtin:tensor", "e1", b"builtin").unwrap();

    // Deleting the component is refused while used, then takes its artifacts along.
    reg.put_function("acme", "f", manifest(&format!(r#"{{"component": "{}"}}"#, c.digest))).unwrap();
    assert!(matches!(reg.delete_component("acme", &c.digest), Err(Error::Conflict(_))));
    reg.delete_function("acme", "f").unwrap();
    reg.delete_component("acme", &c.digest).unwrap();
    assert_eq!(reg.artifact("acme", &c.digest, "e1").unwrap(), None);
    assert_eq!(reg.artifact("acme", &c.digest, "e2").unwrap(), None);
    assert_eq!(chunks(&reg), 1, "only the builtin artifact is left");
    assert!(matches!(reg.delete_component("acme", &c.digest), Err(Error::NotFound(_))));
}

// ---------------------------------------------------------------- functions

#[test]
fn function_revisions() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    model(&reg, "acme", "m", b"x").unwrap();
    let m = manifest(r#"{"component": "builtin:tensor", "models": {"model": "m"}}"#);
    assert_eq!(m.limits, Limits::default());
    assert_eq!(m.limits.memory_mb, 64);
    assert_eq!(m.limits.timeout_ms, 2000);
    assert_eq!(m.limits.max_concurrency, 8);
    assert_eq!(m.scale.idle_timeout_s, 60);
    assert!(!m.public);

    let (r1, created) = reg.put_function("acme", "f", m.clone()).unwrap();
    assert!(created);
    assert_eq!(r1.revision, 1);
    assert_eq!(r1.tenant, "acme");
    let mut m2 = m.clone();
    m2.public = true;
    let (r2, created) = reg.put_function("acme", "f", m2.clone()).unwrap();
    assert!(!created);
    assert_eq!(r2.revision, 2);
    assert_eq!(r2.created_at, r1.created_at);
    assert_eq!(r2.manifest, m2);

    let reg = reopen(dir.path(), reg);
    assert_eq!(reg.function("acme", "f").unwrap(), Some(r2.clone()));
    let (r3, _) = reg.put_function("acme", "f", m).unwrap();
    assert_eq!(r3.revision, 3);

    reg.create_tenant("beta", None).unwrap();
    reg.put_function("beta", "g", manifest(r#"{"component": "builtin:tensor"}"#)).unwrap();
    assert_eq!(reg.functions("acme").unwrap().len(), 1);
    let all = reg.all_functions().unwrap();
    assert_eq!(
        all.iter().map(|f| (f.tenant.as_str(), f.name.as_str())).collect::<Vec<_>>(),
        [("acme", "f"), ("beta", "g")]
    );

    reg.delete_function("acme", "f").unwrap();
    assert!(matches!(reg.delete_function("acme", "f"), Err(Error::NotFound(_))));
    assert_eq!(reg.function("acme", "f").unwrap(), None);
    let (again, created) = reg.put_function("acme", "f", manifest(r#"{"component": "builtin:tensor"}"#)).unwrap();
    assert!(created && again.revision == 1);
    assert!(matches!(
        reg.put_function("acme", "F", manifest(r#"{"component": "builtin:tensor"}"#)),
        Err(Error::InvalidName(_))
    ));
}

/// A manifest refused for `field`: when parsed (a malformed reference) or when deployed.
fn invalid(reg: &Registry, json: &str, field: &str) {
    let m = match serde_json::from_str::<Manifest>(json) {
        Ok(m) => m,
        Err(e) => return assert!(e.to_string().contains(field), "{json}: {e}"),
    };
    match reg.put_function("acme", "f", m) {
        Err(Error::InvalidManifest(msg)) => assert!(msg.contains(field), "{json}: {msg}"),
        other => panic!("{json}: {other:?}"),
    }
}

#[test]
fn manifest_validation() {
    let (_dir, reg) = open();
    reg.create_tenant(
        "acme",
        Some(QuotaPatch { max_memory_mb: Some(128), max_timeout_ms: Some(5000), ..Default::default() }),
    )
    .unwrap();
    model(&reg, "acme", "m", b"x").unwrap();

    // Strict parsing.
    for bad in [
        r#"{}"#,
        r#"{"component": "builtin:tensor", "extra": 1}"#,
        r#"{"component": "builtin:tensor", "limits": {"memory": 1}}"#,
        r#"{"component": "builtin:tensor", "scale": {"idle": 1}}"#,
        r#"{"component": "builtin:tensor", "limits": {"memory_mb": -1}}"#,
    ] {
        assert!(serde_json::from_str::<Manifest>(bad).is_err(), "{bad}");
    }

    invalid(&reg, r#"{"component": "builtin:nope"}"#, "component");
    invalid(&reg, r#"{"component": "tensor"}"#, "component");
    invalid(&reg, r#"{"component": "sha256:ABC"}"#, "component");
    invalid(&reg, &format!(r#"{{"component": "sha256:{}"}}"#, "A".repeat(64)), "component");
    invalid(&reg, &format!(r#"{{"component": "sha256:{}"}}"#, "a".repeat(64)), "not found");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"Bad": "m"}}"#, "alias");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "M"}}"#, "model reference \"M\"");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "m@0"}}"#, "model reference \"m@0\"");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "m@x"}}"#, "model reference \"m@x\"");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "m@"}}"#, "model reference \"m@\"");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "nope"}}"#, "models.a");
    invalid(&reg, r#"{"component": "builtin:tensor", "models": {"a": "m@2"}}"#, "version 2");
    invalid(&reg, r#"{"component": "builtin:tensor", "limits": {"memory_mb": 129}}"#, "limits.memory_mb");
    invalid(&reg, r#"{"component": "builtin:tensor", "limits": {"memory_mb": 0}}"#, "limits.memory_mb");
    invalid(&reg, r#"{"component": "builtin:tensor", "limits": {"timeout_ms": 5001}}"#, "limits.timeout_ms");
    invalid(&reg, r#"{"component": "builtin:tensor", "limits": {"max_concurrency": 0}}"#, "limits.max_concurrency");
    invalid(&reg, r#"{"component": "builtin:tensor", "scale": {"idle_timeout_s": 0}}"#, "scale.idle_timeout_s");
    invalid(&reg, r#"{"component": "builtin:tensor", "config": {"": "v"}}"#, "config");
    assert!(reg.functions("acme").unwrap().is_empty());

    // Edges that are fine.
    reg.put_function(
        "acme",
        "f",
        manifest(
            r#"{"component": "builtin:tensor", "models": {"model": "m@1", "b_2": "m"},
                "config": {"k": "v"}, "limits": {"memory_mb": 128, "timeout_ms": 5000, "max_concurrency": 1},
                "scale": {"idle_timeout_s": 1}, "public": true}"#,
        ),
    )
    .unwrap();

    let refs = reg.function("acme", "f").unwrap().unwrap().manifest.models;
    assert_eq!(refs["model"], ModelRef { name: "m".into(), version: Some(1) });
    assert_eq!(refs["b_2"].to_string(), "m");
    assert_eq!(refs["model"].to_string(), "m@1");
    assert_eq!(ComponentRef::parse("builtin:tensor").unwrap(), ComponentRef::TENSOR);
}

// ---------------------------------------------------------------- quotas

#[test]
fn quota_max_models() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", Some(QuotaPatch { max_models: Some(2), ..Default::default() })).unwrap();
    model(&reg, "acme", "a", b"1").unwrap();
    model(&reg, "acme", "b", b"1").unwrap();
    let before = chunks(&reg);
    assert!(matches!(model(&reg, "acme", "c", b"1"), Err(Error::QuotaExceeded(m)) if m.contains("max_models")));
    assert_eq!(chunks(&reg), before, "the refused blob was discarded");
    // More versions of an existing model are fine.
    assert_eq!(model(&reg, "acme", "a", b"2").unwrap().version, 2);
    // Deleting a model frees its slot.
    reg.delete_model("acme", "b", None).unwrap();
    model(&reg, "acme", "c", b"1").unwrap();
}

#[test]
fn quota_storage_and_model_bytes() {
    let (_dir, reg) = open();
    reg.create_tenant(
        "acme",
        Some(QuotaPatch { max_storage_bytes: Some(1000), max_model_bytes: Some(600), ..Default::default() }),
    )
    .unwrap();
    assert!(matches!(
        model(&reg, "acme", "big", &[0; 601]),
        Err(Error::QuotaExceeded(m)) if m.contains("max_model_bytes")
    ));
    model(&reg, "acme", "a", &[0; 600]).unwrap();
    assert!(matches!(
        model(&reg, "acme", "a", &[1; 401]),
        Err(Error::QuotaExceeded(m)) if m.contains("max_storage_bytes")
    ));
    // Components count too.
    assert!(matches!(reg.put_component("acme", upload(&reg, "acme", &[2; 401])), Err(Error::QuotaExceeded(_))));
    reg.put_component("acme", upload(&reg, "acme", &[2; 400])).unwrap();
    assert_eq!(reg.storage_bytes("acme").unwrap(), 1000);
    assert!(matches!(model(&reg, "acme", "b", &[3; 1]), Err(Error::QuotaExceeded(_))));
    // Only committed blobs are left.
    let committed: usize = 2;
    assert_eq!(chunks(&reg), committed);
    // Raising the quota lets it grow again.
    reg.update_tenant("acme", Some(QuotaPatch { max_storage_bytes: Some(2000), ..Default::default() }), None).unwrap();
    model(&reg, "acme", "b", &[3; 1]).unwrap();
}

#[test]
fn quota_max_functions() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", Some(QuotaPatch { max_functions: Some(1), ..Default::default() })).unwrap();
    let m = manifest(r#"{"component": "builtin:tensor"}"#);
    reg.put_function("acme", "f", m.clone()).unwrap();
    assert!(matches!(
        reg.put_function("acme", "g", m.clone()),
        Err(Error::QuotaExceeded(msg)) if msg.contains("max_functions")
    ));
    // Redeploying an existing function is not a new one.
    assert_eq!(reg.put_function("acme", "f", m.clone()).unwrap().0.revision, 2);
    reg.delete_function("acme", "f").unwrap();
    reg.put_function("acme", "g", m).unwrap();
}

// ---------------------------------------------------------------- persistence and concurrency

#[test]
fn reopen_keeps_everything() {
    let (dir, reg) = open();
    let secret = populate(&reg, "acme");
    let tenants = reg.tenants().unwrap();
    let keys = reg.keys("acme").unwrap();
    let models = reg.models("acme").unwrap();
    let components = reg.components("acme").unwrap();
    let functions = reg.all_functions().unwrap();
    let artifact = reg.artifact("acme", &components[0].digest, "engine-1").unwrap();
    let n = chunks(&reg);

    let reg = reopen(dir.path(), reg);
    assert_eq!(reg.tenants().unwrap(), tenants);
    assert_eq!(reg.keys("acme").unwrap(), keys);
    assert_eq!(reg.authenticate(&secret).unwrap().unwrap().tenant, "acme");
    assert_eq!(reg.models("acme").unwrap(), models);
    assert_eq!(reg.components("acme").unwrap(), components);
    assert_eq!(reg.all_functions().unwrap(), functions);
    assert_eq!(reg.artifact("acme", &components[0].digest, "engine-1").unwrap(), artifact);
    assert_eq!(chunks(&reg), n, "the sweep kept every committed chunk");
    for m in &models {
        for v in &m.versions {
            assert_eq!(reg.read_blob("acme", &v.blob).unwrap().len() as u64, v.size_bytes);
        }
    }
}

#[test]
fn concurrent_commits_get_distinct_versions() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                (0..5u8).map(|j| model(&reg, "acme", "m", &[i, j]).unwrap().version).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut versions: Vec<u32> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- usage

#[test]
fn usage_accumulates_per_day_and_function() {
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let delta = Usage {
        invocations: 2,
        errors: 1,
        cold_starts: 1,
        wall_seconds: 0.5,
        cpu_seconds: 0.25,
        inference_seconds: 0.125,
        energy_joules: 3.0,
    };
    reg.add_usage("acme", "2025-01-02", Some("f"), &delta).unwrap();
    reg.add_usage("acme", "2025-01-02", Some("f"), &delta).unwrap();
    reg.add_usage("acme", "2025-01-02", None, &delta).unwrap();
    reg.add_usage("acme", "2025-01-01", Some("g"), &delta).unwrap();

    let reg = reopen(dir.path(), reg);
    let rows = reg.usage("acme").unwrap();
    let keys: Vec<_> = rows.iter().map(|r| (r.day.as_str(), r.function.as_deref())).collect();
    assert_eq!(keys, [("2025-01-01", Some("g")), ("2025-01-02", None), ("2025-01-02", Some("f"))]);
    let mut twice = delta.clone();
    twice.add(&delta);
    assert_eq!(rows[2].usage, twice);
    assert_eq!(rows[2].usage.invocations, 4);

    for (day, f, d) in [
        ("2025-1-01", None, delta.clone()),
        ("2025-01-01", Some("F"), delta.clone()),
        ("2025-01-01", None, Usage { cpu_seconds: f64::NAN, ..Default::default() }),
        ("2025-01-01", None, Usage { energy_joules: -1.0, ..Default::default() }),
    ] {
        assert!(matches!(reg.add_usage("acme", day, f, &d), Err(Error::InvalidRequest(_))));
    }
    assert!(matches!(reg.add_usage("nope", "2025-01-01", None, &delta), Err(Error::NotFound(_))));
    reg.delete_tenant("acme").unwrap();
    reg.create_tenant("acme", None).unwrap();
    assert!(reg.usage("acme").unwrap().is_empty());
}

fn audit_entry(actor: &str, action: &str, tenant: Option<&str>, target: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: String::new(),
        actor: actor.into(),
        key_id: None,
        action: action.into(),
        tenant: tenant.map(Into::into),
        target: target.into(),
        detail: serde_json::json!({}),
    }
}

#[test]
fn audit_trail_is_newest_first_filtered_and_durable() {
    let (dir, reg) = open();
    let first = reg.append_audit(audit_entry("admin", "tenant.create", Some("acme"), "acme")).unwrap();
    reg.append_audit(audit_entry("admin", "tenant.create", Some("beta"), "beta")).unwrap();
    let third = reg.append_audit(audit_entry("owner:acme", "model.upload", Some("acme"), "mlp@1")).unwrap();
    assert!(first.seq < third.seq);
    assert!(!first.at.is_empty());

    let reg = reopen(dir.path(), reg);
    let all = reg.audit(None, None, 100).unwrap();
    let actions: Vec<_> = all.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
    assert_eq!(actions, [("model.upload", "mlp@1"), ("tenant.create", "beta"), ("tenant.create", "acme")]);
    assert_eq!(all[0], third);

    let acme = reg.audit(Some("acme"), None, 100).unwrap();
    assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), [third.seq, first.seq]);
    assert_eq!(reg.audit(None, None, 1).unwrap().len(), 1);
    let older = reg.audit(None, Some(third.seq), 100).unwrap();
    assert_eq!(older.len(), 2);
    assert!(older.iter().all(|e| e.seq < third.seq));

    // The trail outlives the tenant it names.
    reg.create_tenant("acme", None).unwrap();
    reg.delete_tenant("acme").unwrap();
    assert_eq!(reg.audit(Some("acme"), None, 100).unwrap().len(), 2);
}

#[test]
fn audit_gate_refuses_missing_or_failing_audits() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    model(&reg, "acme", "m", &data(10, 1)).unwrap();
    let gated = |min: f64| {
        manifest(&format!(
            r#"{{"component": "builtin:tensor", "models": {{"model": "m"}}, "require_audit": {{"min_disparate_impact": {min}}}}}"#
        ))
    };
    let Err(Error::Conflict(msg)) = reg.put_function("acme", "f", gated(0.8)) else { panic!("no audit: deployed") };
    assert!(msg.contains("no fairness audit"), "{msg}");
    let audit = audit_report(Some(0.5), -0.4);
    reg.put_model_audit("acme", "m", 1, &audit).unwrap();
    let Err(Error::Conflict(msg)) = reg.put_function("acme", "f", gated(0.8)) else {
        panic!("failing audit: deployed")
    };
    assert!(msg.contains("0.5000") && msg.contains("-0.4") && msg.contains("0.8"), "{msg}");
    assert!(reg.put_function("acme", "f", gated(0.5)).is_ok());
    // A new version has no audit of its own: the gate looks at the version the manifest names.
    model(&reg, "acme", "m", &data(10, 2)).unwrap();
    assert!(matches!(reg.put_function("acme", "g", gated(0.5)), Err(Error::Conflict(_))));
    assert!(reg.put_model_audit("acme", "m", 9, &audit).is_err());
}

#[test]
fn cards_and_audits_go_with_their_model() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let card = ModelCard { intended_use: Some("tests".into()), ..Default::default() };
    assert!(matches!(reg.put_card("acme", "m", &card), Err(Error::NotFound(_))));
    model(&reg, "acme", "m", &data(10, 1)).unwrap();
    model(&reg, "acme", "m", &data(10, 2)).unwrap();
    reg.put_card("acme", "m", &card).unwrap();
    let audit = audit_report(Some(1.0), 0.0);
    reg.put_model_audit("acme", "m", 1, &audit).unwrap();
    reg.put_model_audit("acme", "m", 2, &audit).unwrap();
    assert_eq!(reg.card("acme", "m").unwrap(), Some(card.clone()));

    reg.delete_model("acme", "m", Some(1)).unwrap();
    assert_eq!(reg.model_audit("acme", "m", 1).unwrap(), None);
    assert_eq!(reg.model_audit("acme", "m", 2).unwrap(), Some(audit));
    assert_eq!(reg.card("acme", "m").unwrap(), Some(card));
    reg.delete_model("acme", "m", Some(2)).unwrap();
    assert_eq!(reg.card("acme", "m").unwrap(), None);
    let long = ModelCard { license: Some("x".repeat(MAX_CARD_FIELD + 1)), ..Default::default() };
    assert!(matches!(reg.put_card("acme", "m", &long), Err(Error::InvalidRequest(_))));
}

#[test]
fn energy_budget_is_optional_and_can_be_removed() {
    let (_dir, reg) = open();
    let t = reg.create_tenant("acme", None).unwrap();
    assert_eq!(t.quota.max_energy_joules_per_day, None);
    let set: QuotaPatch = serde_json::from_str(r#"{"max_energy_joules_per_day": 5.5}"#).unwrap();
    let t = reg.update_tenant("acme", Some(set), None).unwrap();
    assert_eq!(t.quota.max_energy_joules_per_day, Some(5.5));
    let keep: QuotaPatch = serde_json::from_str(r#"{"max_models": 3}"#).unwrap();
    assert_eq!(reg.update_tenant("acme", Some(keep), None).unwrap().quota.max_energy_joules_per_day, Some(5.5));
    let clear: QuotaPatch = serde_json::from_str(r#"{"max_energy_joules_per_day": null}"#).unwrap();
    assert_eq!(reg.update_tenant("acme", Some(clear), None).unwrap().quota.max_energy_joules_per_day, None);
    let bad: QuotaPatch = serde_json::from_str(r#"{"max_energy_joules_per_day": -1}"#).unwrap();
    assert!(matches!(reg.update_tenant("acme", Some(bad), None), Err(Error::InvalidRequest(_))));
}

/// Model files are readable by the server's user only: chunk files 0600 in 0700 directories.
#[test]
fn chunk_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    upload(&reg, "acme", &data(3 * MIB, 1));
    let mut seen = 0;
    let mut stack = vec![dir.path().join("chunks")];
    while let Some(path) = stack.pop() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} chunk files");
}

/// The totals an upload's quota checks read are kept in step with commits and deletes: after
/// each change they equal a fresh count, so no upload needs to scan the tenant's versions.
#[test]
fn storage_totals_follow_every_change() {
    let (_dir, reg) = open();
    reg.create_tenant("acme", None).unwrap();
    let check = |reg: &Registry| {
        let _w = reg.inner.write_lock();
        let kept = reg.totals_locked("acme").unwrap();
        let counted = crate::model::Totals {
            storage_bytes: reg.storage_bytes("acme").unwrap(),
            models: reg.models("acme").unwrap().len() as u64,
        };
        assert_eq!(kept, counted);
    };
    check(&reg);
    model(&reg, "acme", "a", &data(1000, 1)).unwrap();
    model(&reg, "acme", "a", &data(2000, 2)).unwrap();
    model(&reg, "acme", "b", &data(3000, 3)).unwrap();
    check(&reg);
    let component = upload(&reg, "acme", &data(500, 4));
    let digest = reg.put_component("acme", component).unwrap().digest;
    check(&reg);
    reg.delete_model("acme", "a", Some(1)).unwrap();
    check(&reg);
    reg.delete_component("acme", &digest).unwrap();
    reg.delete_model("acme", "b", None).unwrap();
    check(&reg);
    model(&reg, "acme", "c", &data(100, 5)).unwrap();
    check(&reg);
    // A tenant deleted and created again starts from nothing.
    reg.delete_tenant("acme").unwrap();
    reg.create_tenant("acme", None).unwrap();
    check(&reg);
    assert_eq!(reg.storage_bytes("acme").unwrap(), 0);
}
