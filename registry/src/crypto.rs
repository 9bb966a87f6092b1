//! Key derivation, API key hashing and chunk encryption.
//!
//! From the 32-byte master key, HKDF-SHA256 (no salt) derives:
//! - per tenant, the blob key: info = `"maas blob key v1" ‖ tenant`;
//! - the API key hashing key: info = `"maas api key hash v1"`;
//! - a check value stored on first open, so a wrong master key is refused at open: info =
//!   `"maas master key check v1"`.
//!
//! Blob chunks are sealed with ChaCha20-Poly1305 under the tenant's blob key with a fresh random 96-bit nonce
//! per chunk, and associated data binding the tenant, the blob id, the chunk index and whether the chunk is
//! the last one (so dropping trailing chunks is detected even if the chunk count were tampered with).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const BLOB_KEY_INFO: &[u8] = b"maas blob key v1";
const API_KEY_HASH_INFO: &[u8] = b"maas api key hash v1";
const CHECK_INFO: &[u8] = b"maas master key check v1";
const CHUNK_AAD_TAG: &[u8] = b"maas blob chunk v1";
const NONCE_LEN: usize = 12;

/// Keys derived once from the master key.
pub(crate) struct Crypto {
    hkdf: Hkdf<Sha256>,
    api_key_hash_key: [u8; 32],
    check: [u8; 32],
}

impl Crypto {
    pub(crate) fn new(master_key: &[u8; 32]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, master_key);
        let mut api_key_hash_key = [0u8; 32];
        hkdf.expand(API_KEY_HASH_INFO, &mut api_key_hash_key).expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut check = [0u8; 32];
        hkdf.expand(CHECK_INFO, &mut check).expect("32 bytes is a valid HKDF-SHA256 output length");
        Crypto { hkdf, api_key_hash_key, check }
    }

    /// The value stored in the store's meta tree to recognise the master key (not the key itself).
    pub(crate) fn check_value(&self) -> [u8; 32] {
        self.check
    }

    /// The AEAD for one tenant's blobs.
    pub(crate) fn tenant_cipher(&self, tenant: &str) -> TenantCipher {
        let mut key = [0u8; 32];
        self.hkdf
            .expand_multi_info(&[BLOB_KEY_INFO, tenant.as_bytes()], &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        TenantCipher { aead: ChaCha20Poly1305::new(&Key::from(key)), tenant: tenant.to_owned() }
    }

    /// HMAC-SHA256 of an API key secret, keyed by the derived API key hashing key.
    pub(crate) fn hash_secret(&self, secret: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.api_key_hash_key).expect("HMAC takes keys of any length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Seals and opens one tenant's blob chunks.
pub(crate) struct TenantCipher {
    aead: ChaCha20Poly1305,
    tenant: String,
}

impl TenantCipher {
    fn aad(&self, blob: u64, index: u32, last: bool) -> Vec<u8> {
        let mut aad = Vec::with_capacity(CHUNK_AAD_TAG.len() + 4 + self.tenant.len() + 13);
        aad.extend_from_slice(CHUNK_AAD_TAG);
        aad.extend_from_slice(&(self.tenant.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.tenant.as_bytes());
        aad.extend_from_slice(&blob.to_be_bytes());
        aad.extend_from_slice(&index.to_be_bytes());
        aad.push(u8::from(last));
        aad
    }

    /// Encrypts a chunk: `nonce ‖ ciphertext ‖ tag`.
    pub(crate) fn seal(&self, blob: u64, index: u32, last: bool, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = self.aad(blob, index, last);
        let ciphertext = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("ChaCha20-Poly1305 encrypts any chunk up to 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts and authenticates a chunk; `None` if anything does not match.
    pub(crate) fn open(&self, blob: u64, index: u32, last: bool, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = self.aad(blob, index, last);
        self.aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).ok()
    }
}
