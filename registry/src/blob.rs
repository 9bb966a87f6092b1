//! Chunked, encrypted blobs: model files, components, precompiled artifacts.
//!
//! A blob is a sequence of [`CHUNK_SIZE`] chunks (the last one shorter, or empty for an empty blob). Each
//! chunk is sealed on its own with ChaCha20-Poly1305 under the tenant's key, with a random nonce stored in
//! front of it and associated data binding the tenant, the blob id, the chunk index and a last-chunk
//! marker. The sha256 of the plaintext is computed while writing and checked again on every full read.
//!
//! Chunks are files, `chunks/<blob id, 16 hex digits>/<chunk index, 8 hex digits>` in the store's
//! directory, beside sled, which keeps only the records that reference them. sled 0.34 keeps what it
//! writes and reads resident whatever its `cache_capacity`: 120 MiB of 1 MiB values written left
//! 125 MiB of anonymous memory in a test program, and reading them all again after a reopen
//! added 61 MiB. Every model ever uploaded or woken would stay in the server's memory. Files
//! leave caching to the kernel's page cache, which gives it back under pressure. Stores from
//! before keep their chunks in the `blobs` tree until [`migrate_tree_chunks`] moves them at open.
//!
//! Life of a blob:
//! 1. [`Registry::blob_writer`] → [`BlobWriter::write`]… : full chunks are stored as soon as they are
//!    complete, so memory stays at one chunk whatever the upload size.
//! 2. [`BlobWriter::finish`] stores the last chunk and returns a [`BlobRef`]: the blob is *pending*, not
//!    visible to anyone. Dropping an unfinished writer (or [`BlobWriter::abort`]) removes its chunks.
//! 3. A commit ([`Registry::commit_model_version`], [`Registry::put_component`]) makes it visible in one
//!    transaction, or [`Registry::discard_blob`] removes it. A pending blob that is neither committed nor
//!    discarded before the process stops is an orphan, swept by the next [`Registry::open`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::TenantCipher;
use crate::error::{Error, Result};
use crate::store::T;
use crate::{Inner, Registry};

/// Plaintext bytes per chunk: 1 MiB.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Where a blob is and what it must hash to. Stored inside the records that own blobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// Unique in the store, never reused.
    pub id: u64,
    /// Lowercase hex sha256 of the plaintext.
    pub sha256: String,
    /// Plaintext length in bytes.
    pub size: u64,
    /// Number of chunks, at least 1.
    pub chunks: u32,
}

impl BlobRef {
    /// Checks the shape is possible: at least one chunk, and a size the chunk count can hold exactly.
    fn check_shape(&self) -> Result<()> {
        let chunk = CHUNK_SIZE as u64;
        let ok = self.chunks >= 1
            && self.size <= u64::from(self.chunks) * chunk
            && (self.chunks == 1 || self.size > u64::from(self.chunks - 1) * chunk);
        if ok {
            Ok(())
        } else {
            Err(Error::Corrupt(format!("blob {}: {} bytes cannot fill {} chunks", self.id, self.size, self.chunks)))
        }
    }
}

/// The directory holding blob `id`'s chunks.
pub(crate) fn blob_dir(inner: &Inner, id: u64) -> PathBuf {
    inner.chunks_dir.join(format!("{id:016x}"))
}

/// The file of chunk `index` of blob `id`.
pub(crate) fn chunk_path(inner: &Inner, id: u64, index: u32) -> PathBuf {
    blob_dir(inner, id).join(format!("{index:08x}"))
}

fn io_error(e: io::Error) -> Error {
    Error::Storage(sled::Error::Io(e))
}

/// Creates a directory of chunk files, readable by the server's user only.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Writes a chunk file (mode 0600) and makes its contents durable before the blob can be
/// committed.
fn write_chunk(path: &Path, sealed: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_error)?;
    file.write_all(sealed).map_err(io_error)?;
    file.sync_data().map_err(io_error)
}

/// Streams one blob into the store. Created by [`Registry::blob_writer`].
///
/// Dropping it before [`finish`](BlobWriter::finish) removes the chunks written so far. Also implements
/// [`std::io::Write`], so `std::io::copy` works.
pub struct BlobWriter {
    inner: Arc<Inner>,
    tenant: String,
    cipher: TenantCipher,
    id: u64,
    buf: Vec<u8>,
    hasher: Sha256,
    /// Chunks stored so far.
    stored: u32,
    size: u64,
    /// Set once the chunks are someone else's business (finished or removed).
    done: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("bytes_written", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    pub(crate) fn new(inner: &Arc<Inner>, tenant: &str) -> Result<Self> {
        Ok(BlobWriter {
            inner: inner.clone(),
            tenant: tenant.to_owned(),
            cipher: inner.crypto.tenant_cipher(tenant),
            id: inner.db.generate_id()?,
            buf: Vec::with_capacity(CHUNK_SIZE),
            hasher: Sha256::new(),
            stored: 0,
            size: 0,
            done: false,
        })
    }

    /// Appends bytes. Every chunk that fills up is encrypted and stored before this returns.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buf.len() == CHUNK_SIZE {
                // More data follows, so the full buffer is not the last chunk.
                self.store_chunk(false)?;
            }
            let take = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.hasher.update(&data[..take]);
            self.size += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    /// Bytes accepted so far (for enforcing size limits while streaming).
    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    fn store_chunk(&mut self, last: bool) -> Result<()> {
        let sealed = self.cipher.seal(self.id, self.stored, last, &self.buf);
        if self.stored == 0 {
            create_private_dir(&blob_dir(&self.inner, self.id)).map_err(io_error)?;
        }
        write_chunk(&chunk_path(&self.inner, self.id, self.stored), &sealed)?;
        self.buf.clear();
        self.stored = self.stored.checked_add(1).ok_or_else(|| Error::InvalidRequest("blob too large".into()))?;
        Ok(())
    }

    /// Stores the last chunk and returns the blob, not yet registered as pending.
    pub(crate) fn finish_unregistered(mut self) -> Result<BlobRef> {
        self.store_chunk(true)?;
        // The chunk files' names, and the blob's directory, are durable too before anything can
        // reference them.
        sync_dir(&blob_dir(&self.inner, self.id))?;
        sync_dir(&self.inner.chunks_dir)?;
        self.done = true;
        Ok(BlobRef {
            id: self.id,
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
            size: self.size,
            chunks: self.stored,
        })
    }

    /// Stores the last chunk and returns the blob, which stays invisible (pending) until a commit
    /// ([`Registry::commit_model_version`], [`Registry::put_component`]) or [`Registry::discard_blob`].
    pub fn finish(self) -> Result<BlobRef> {
        let inner = self.inner.clone();
        let tenant = self.tenant.clone();
        let blob = self.finish_unregistered()?;
        inner.pending().insert(blob.id, (tenant, blob.clone()));
        Ok(blob)
    }

    /// Removes the chunks written so far (what dropping does, with the error reported).
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        remove_blob_dir(&self.inner, self.id)
    }
}

impl io::Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BlobWriter::write(self, buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = remove_blob_dir(&self.inner, self.id)
        {
            tracing::warn!(blob = self.id, error = %e, "could not remove an abandoned blob's chunks; the next open sweeps them");
        }
    }
}

/// fsyncs a directory, so that the entries created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}

/// Removes every chunk of blob `id` (nothing there is fine).
fn remove_blob_dir(inner: &Inner, id: u64) -> Result<()> {
    match std::fs::remove_dir_all(blob_dir(inner, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(e)),
        _ => Ok(()),
    }
}

/// Removes a blob's chunks (after the records referencing it are gone).
pub(crate) fn remove_chunks(inner: &Inner, blob: &BlobRef) -> Result<()> {
    remove_blob_dir(inner, blob.id)
}

/// Removes the chunks of blobs whose records a committed transaction already removed. The operation has
/// succeeded at that point, so a failure here is logged, not returned: the next open sweeps the chunks.
///
/// sled makes the transaction durable only at its next flush, while a file removal can reach the
/// disk at once (another upload's fsync, the filesystem's journal): flush first, or a crash could
/// bring the records back without their chunks.
pub(crate) fn remove_unreferenced(inner: &Inner, blobs: impl IntoIterator<Item = BlobRef>) {
    let mut blobs = blobs.into_iter().peekable();
    if blobs.peek().is_none() {
        return;
    }
    if let Err(e) = inner.db.flush() {
        tracing::warn!(error = %e, "could not flush the deletion; the next open sweeps the deleted blobs' chunks");
        return;
    }
    for blob in blobs {
        if let Err(e) = remove_chunks(inner, &blob) {
            tracing::warn!(blob = blob.id, error = %e, "could not remove a deleted blob's chunks; the next open sweeps them");
        }
    }
}

/// Removes the chunks of every blob that no `blob_refs` entry claims, and anything else in the
/// chunks directory that is not a blob's. Returns how many blobs went. Only safe while no writer runs.
pub(crate) fn sweep_orphans(inner: &Inner) -> Result<usize> {
    let refs = inner.trees.tree(T::BlobRefs);
    let mut removed = 0;
    for entry in std::fs::read_dir(&inner.chunks_dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let id = name.to_str().filter(|n| n.len() == 16).and_then(|n| u64::from_str_radix(n, 16).ok());
        let claimed = match id {
            Some(id) => refs.contains_key(id.to_be_bytes())?,
            None => false,
        };
        if !claimed {
            let path = entry.path();
            let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            match gone {
                Ok(()) => removed += 1,
                // Garbage left in place keeps nothing from working; the next open tries again.
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove an orphan"),
            }
        }
    }
    Ok(removed)
}

/// Moves the chunks of a store written before chunk files (in the `blobs` tree, under keys
/// `blob id (u64 BE) ‖ chunk index (u32 BE)`) into files, then empties the tree. Each chunk is
/// written before the tree is cleared, so an interrupted migration is simply done again. Reading
/// the tree goes through sled, which keeps what it read resident: after a migration the server
/// holds memory on the order of the old store's size until its next restart.
pub(crate) fn migrate_tree_chunks(inner: &Inner) -> Result<usize> {
    let tree = inner.trees.tree(T::Blobs);
    let mut moved = 0;
    let mut dirs = std::collections::BTreeSet::new();
    for kv in tree.iter() {
        let (key, sealed) = kv?;
        let Ok(key) = <[u8; 12]>::try_from(key.as_ref()) else { continue };
        let id = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
        let index = u32::from_be_bytes(key[8..].try_into().expect("4 bytes"));
        if dirs.insert(id) {
            create_private_dir(&blob_dir(inner, id)).map_err(io_error)?;
        }
        write_chunk(&chunk_path(inner, id, index), &sealed)?;
        moved += 1;
    }
    for id in dirs {
        sync_dir(&blob_dir(inner, id))?;
    }
    if !tree.is_empty() {
        sync_dir(&inner.chunks_dir)?;
        tree.clear()?;
        tree.flush()?;
    }
    Ok(moved)
}

/// Decrypts and checks chunk `index` of `blob`.
fn load_chunk(inner: &Inner, cipher: &TenantCipher, blob: &BlobRef, index: u32) -> Result<Vec<u8>> {
    let last = index + 1 == blob.chunks;
    let sealed = match std::fs::read(chunk_path(inner, blob.id, index)) {
        Ok(sealed) => sealed,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Corrupt(format!("blob {} chunk {index} is missing", blob.id)));
        }
        Err(e) => return Err(io_error(e)),
    };
    let plain = cipher
        .open(blob.id, index, last, &sealed)
        .ok_or_else(|| Error::Corrupt(format!("blob {} chunk {index} failed authentication", blob.id)))?;
    if !last && plain.len() != CHUNK_SIZE {
        return Err(Error::Corrupt(format!("blob {} chunk {index} has {} bytes", blob.id, plain.len())));
    }
    Ok(plain)
}

fn check_digest(blob: &BlobRef, size: u64, hasher: Sha256) -> Result<()> {
    if size != blob.size {
        return Err(Error::Corrupt(format!("blob {} holds {size} bytes, expected {}", blob.id, blob.size)));
    }
    if hex::encode(hasher.finalize()) != blob.sha256 {
        return Err(Error::Corrupt(format!("blob {} sha256 mismatch", blob.id)));
    }
    Ok(())
}

/// Reads a blob chunk by chunk. Created by [`Registry::blob_reader`].
///
/// Each chunk is authenticated before any of its bytes are returned; the size and sha256 of the whole are
/// checked when the end is reached, where a mismatch is an error instead of EOF. Errors are
/// [`std::io::Error`]s of kind `InvalidData` (corruption) or `Other` (storage) wrapping an [`Error`]
/// (`err.get_ref().and_then(|e| e.downcast_ref::<maas_registry::Error>())`).
pub struct BlobReader {
    inner: Arc<Inner>,
    cipher: TenantCipher,
    blob: BlobRef,
    next: u32,
    buf: Vec<u8>,
    pos: usize,
    hasher: Option<Sha256>,
    total: u64,
    failed: Option<io::ErrorKind>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader").field("blob", &self.blob).field("next_chunk", &self.next).finish_non_exhaustive()
    }
}

fn to_io(e: Error) -> io::Error {
    let kind = match e {
        Error::Corrupt(_) => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl BlobReader {
    fn fill(&mut self) -> Result<()> {
        if self.next < self.blob.chunks {
            let plain = load_chunk(&self.inner, &self.cipher, &self.blob, self.next)?;
            self.next += 1;
            if let Some(h) = self.hasher.as_mut() {
                h.update(&plain);
            }
            self.total += plain.len() as u64;
            self.buf = plain;
            self.pos = 0;
        } else if let Some(h) = self.hasher.take() {
            check_digest(&self.blob, self.total, h)?;
        }
        Ok(())
    }
}

impl io::Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "blob read failed earlier"));
        }
        while self.pos == self.buf.len() {
            if self.next == self.blob.chunks && self.hasher.is_none() {
                return Ok(0);
            }
            if let Err(e) = self.fill() {
                let e = to_io(e);
                self.failed = Some(e.kind());
                return Err(e);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Registry {
    /// Starts a blob upload for `tenant`. [`Error::NotFound`] if the tenant does not exist.
    pub fn blob_writer(&self, tenant: &str) -> Result<BlobWriter> {
        self.require_tenant(tenant)?;
        BlobWriter::new(&self.inner, tenant)
    }

    /// Reads a whole blob of `tenant`, checking every chunk's tag, the size and the sha256
    /// ([`Error::Corrupt`] on any mismatch, including a blob of another tenant).
    pub fn read_blob(&self, tenant: &str, blob: &BlobRef) -> Result<Vec<u8>> {
        blob.check_shape()?;
        let cipher = self.inner.crypto.tenant_cipher(tenant);
        let cap = blob.size.min(u64::from(blob.chunks) * CHUNK_SIZE as u64);
        let mut out = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
        let mut hasher = Sha256::new();
        for i in 0..blob.chunks {
            let plain = load_chunk(&self.inner, &cipher, blob, i)?;
            hasher.update(&plain);
            out.extend_from_slice(&plain);
        }
        check_digest(blob, out.len() as u64, hasher)?;
        Ok(out)
    }

    /// A streaming reader over a blob of `tenant`; see [`BlobReader`] for when each check happens.
    pub fn blob_reader(&self, tenant: &str, blob: &BlobRef) -> Result<BlobReader> {
        blob.check_shape()?;
        Ok(BlobReader {
            inner: self.inner.clone(),
            cipher: self.inner.crypto.tenant_cipher(tenant),
            blob: blob.clone(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hasher: Some(Sha256::new()),
            total: 0,
            failed: None,
        })
    }

    /// Removes a finished blob that will not be committed (for instance a model file the runtime could not
    /// load). Idempotent: discarding an already discarded blob succeeds.
    ///
    /// [`Error::Conflict`] if the blob is committed: committed blobs go away with the record that owns
    /// them ([`Registry::delete_model`], [`Registry::delete_tenant`], ...).
    pub fn discard_blob(&self, blob: &BlobRef) -> Result<()> {
        let _w = self.inner.write_lock();
        if let Some((_, pending)) = self.inner.pending().remove(&blob.id) {
            return remove_chunks(&self.inner, &pending);
        }
        if self.trees().tree(T::BlobRefs).contains_key(blob.id.to_be_bytes())? {
            return Err(Error::Conflict(format!("blob {} is committed; delete its owner instead", blob.id)));
        }
        remove_chunks(&self.inner, blob)
    }

    /// Runs `commit` (under the write lock) with `blob`, which must be a pending blob of `tenant` exactly as
    /// [`BlobWriter::finish`] returned it. `commit` returns its result and whether it now references the
    /// blob. Either way the blob stops being pending; unless referenced, it is discarded (also on error).
    pub(crate) fn commit_pending<R>(
        &self,
        tenant: &str,
        blob: &BlobRef,
        commit: impl FnOnce() -> Result<(R, bool)>,
    ) -> Result<R> {
        let _w = self.inner.write_lock();
        let matches = matches!(
            self.inner.pending().get(&blob.id),
            Some((t, b)) if t == tenant && b == blob
        );
        if !matches {
            return Err(Error::InvalidRequest(format!(
                "blob {} is not an uncommitted upload of tenant {tenant:?}",
                blob.id
            )));
        }
        let result = commit();
        let (_, pending) =
            self.inner.pending().remove(&blob.id).expect("pending blobs only leave the map under the write lock");
        match result {
            Ok((r, true)) => Ok(r),
            Ok((r, false)) => {
                remove_chunks(&self.inner, &pending)?;
                Ok(r)
            }
            Err(e) => {
                if let Err(e2) = remove_chunks(&self.inner, &pending) {
                    tracing::warn!(blob = pending.id, error = %e2, "could not discard a rejected blob; the next open sweeps it");
                }
                Err(e)
            }
        }
    }
}
