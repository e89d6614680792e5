//! The asset key store: each asset's data key, wrapped by the master key, in
//! files whose rewrite really removes a key (GDPR Art. 17 erasure).
//!
//! Input: asset ids. Output: the asset's data key ([`SecretKey`]), created on
//! first use and durable before it is handed out; rotation and destruction
//! that leave the old wrapped key in no file. Failure modes: I/O errors
//! (disk full, permissions), a bucket file that fails to parse (refused with
//! [`StoreError::AssetKeys`], naming the file; nothing is rewritten), and a
//! wrapped key that fails authentication (wrong master key or tampering).
//!
//! Why not sled: sled is log-structured, so a removed or overwritten value
//! stays in its segment files until sled happens to rewrite them; a data key
//! deleted there could be recovered by anyone holding the master key. Here a
//! change writes a new file and renames it over the old one, so the old bytes
//! belong to no file once the call returns (as with the template vault's
//! `template-keys`). Freed disk blocks are outside what a program can promise
//! to overwrite (journals, SSD remapping); the key is wrapped, so what may
//! linger there is ciphertext under the master key.
//!
//! Layout: `<data_dir>/asset-keys/`, 256 bucket files named by the first byte
//! of the asset id in lowercase hex (`00` … `ff`). A bucket file is
//! - the magic `b"consentry asset keys v1\n"` (24 bytes), then
//! - zero or more entries of [`ENTRY_LEN`] bytes, sorted by id, no duplicates:
//!   the asset id's 32 raw bytes (the 64 hex digits decoded, see
//!   [`AssetId::key_bytes`]), then the wrapped key exactly as
//!   [`Keyring::new_data_key`](super::crypto::Keyring::new_data_key) makes
//!   it ([`WRAPPED_KEY_LEN`] bytes: format version 1, a 24-byte random nonce,
//!   the 32-byte key sealed with XChaCha20-Poly1305 under the master key with
//!   `consentry data key v1:<asset id in hex>` as associated data, the 16-byte
//!   tag).
//!
//! A bucket that has no file yet is empty; an emptied bucket keeps a file
//! holding only the magic. A schema 2 catalogue with assets but no
//! `asset-keys/` folder is refused at open.
//!
//! Crash safety: each change rewrites one bucket through `<bucket>.tmp` in the
//! same folder (write, fsync, rename, fsync the folder); leftover `.tmp` files
//! are removed when the store opens. A key is durable before
//! [`Store::asset_key_or_create`] returns it, so no blob is ever written under a
//! key that a crash could lose. A crash between creating a key and committing
//! the asset leaves a key without an asset; [`Store::sweep_asset_keys`] drops
//! those at start-up.
//!
//! Concurrency: one lock per bucket guards its cached contents (wrapped bytes;
//! keys are unwrapped on demand) and is held across check, create and write,
//! so two ingests of the same bytes get the same key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::crypto::{SecretKey, WrappedKey, hex_encode};
use super::{Store, StoreError};
use crate::domain::AssetId;

/// The folder under the data directory.
pub(super) const DIR: &str = "asset-keys";
const MAGIC: &[u8; 24] = b"consentry asset keys v1\n";
const ID_LEN: usize = 32;
/// Bytes of one wrapped data key: version (1), nonce (24), key (32), tag (16).
pub const WRAPPED_KEY_LEN: usize = 1 + 24 + 32 + 16;
/// Bytes of one entry in a bucket file: raw asset id, then the wrapped key.
pub const ENTRY_LEN: usize = ID_LEN + WRAPPED_KEY_LEN;
const BUCKETS: usize = 256;

type RawId = [u8; ID_LEN];
type Wrapped = [u8; WRAPPED_KEY_LEN];
type Bucket = BTreeMap<RawId, Wrapped>;

/// The key store's in-memory side: one lock and cache per bucket.
pub(super) struct KeyStore {
    dir: PathBuf,
    /// `None` until the bucket's file was read.
    buckets: Vec<Mutex<Option<Bucket>>>,
}

impl KeyStore {
    /// Removes temporary files left by a crash; buckets are read on first
    /// use. Returns whether the folder existed (the store refuses a catalogue
    /// whose assets lost it); [`KeyStore::create_dir`] makes it.
    pub(super) fn open(data_dir: &Path) -> Result<(KeyStore, bool), StoreError> {
        let dir = data_dir.join(DIR);
        let existed = dir.is_dir();
        if existed {
            let mut removed = false;
            for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                    removed = true;
                }
            }
            if removed {
                super::blobs::sync_dir(&dir)?;
            }
        }
        let store = KeyStore {
            dir,
            buckets: (0..BUCKETS).map(|_| Mutex::new(None)).collect(),
        };
        Ok((store, existed))
    }

    /// Creates the folder (mode 0700) if it does not exist yet.
    pub(super) fn create_dir(&self, data_dir: &Path) -> Result<(), StoreError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, e))?;
        super::blobs::sync_dir(data_dir)
    }

    fn path_of(&self, bucket: u8) -> PathBuf {
        self.dir.join(format!("{bucket:02x}"))
    }

    /// Locks a bucket and loads it from its file if this is its first use.
    fn lock(&self, bucket: u8) -> Result<BucketGuard<'_>, StoreError> {
        // The cache changes only after a successful write, so a panic while
        // the lock was held left it consistent.
        let mut guard = self.buckets[usize::from(bucket)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.read_bucket(bucket)?);
        }
        Ok(BucketGuard {
            store: self,
            bucket,
            guard,
        })
    }

    fn read_bucket(&self, bucket: u8) -> Result<Bucket, StoreError> {
        let path = self.path_of(bucket);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Bucket::new()),
            Err(err) => return Err(StoreError::io(&path, err)),
        };
        parse_bucket(bucket, &raw).map_err(|detail| StoreError::AssetKeys { path, detail })
    }

    fn write_bucket(&self, bucket: u8, entries: &Bucket) -> Result<(), StoreError> {
        let path = self.path_of(bucket);
        let tmp = self.dir.join(format!("{bucket:02x}.tmp"));
        let mut bytes = Vec::with_capacity(MAGIC.len() + entries.len() * ENTRY_LEN);
        bytes.extend_from_slice(MAGIC);
        for (id, wrapped) in entries {
            bytes.extend_from_slice(id);
            bytes.extend_from_slice(wrapped);
        }
        super::blobs::replace_file(&path, &tmp, &bytes)
    }

    /// Stores many wrapped keys at once, one rewrite per bucket touched (the
    /// schema migration and the import of an old dump). An existing entry is
    /// replaced: the caller's key is the one its blobs were written under.
    pub(super) fn put_many(&self, keys: &[(AssetId, WrappedKey)]) -> Result<(), StoreError> {
        let mut by_bucket: BTreeMap<u8, Vec<(RawId, Wrapped)>> = BTreeMap::new();
        for (id, wrapped) in keys {
            let raw = raw_id(id)?;
            let wrapped = fixed_wrapped(id, &wrapped.0)?;
            by_bucket.entry(raw[0]).or_default().push((raw, wrapped));
        }
        for (bucket, entries) in by_bucket {
            let mut guard = self.lock(bucket)?;
            let mut next = guard.entries().clone();
            let mut changed = false;
            for (raw, wrapped) in entries {
                changed |= next.insert(raw, wrapped) != Some(wrapped);
            }
            if changed {
                guard.replace(next)?;
            }
        }
        Ok(())
    }
}

/// A locked, loaded bucket.
struct BucketGuard<'a> {
    store: &'a KeyStore,
    bucket: u8,
    guard: MutexGuard<'a, Option<Bucket>>,
}

impl BucketGuard<'_> {
    fn entries(&self) -> &Bucket {
        self.guard.as_ref().expect("bucket loaded by lock()")
    }

    /// Writes `next` durably, then makes it the cached contents.
    fn replace(&mut self, next: Bucket) -> Result<(), StoreError> {
        self.store.write_bucket(self.bucket, &next)?;
        *self.guard = Some(next);
        Ok(())
    }
}

fn parse_bucket(bucket: u8, raw: &[u8]) -> Result<Bucket, String> {
    let body = raw
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| "does not start with the asset key file magic".to_owned())?;
    if body.len() % ENTRY_LEN != 0 {
        return Err(format!(
            "{} bytes after the magic, not a multiple of the entry size {ENTRY_LEN}",
            body.len()
        ));
    }
    let mut entries = Bucket::new();
    let mut previous: Option<RawId> = None;
    for (idx, entry) in body.chunks_exact(ENTRY_LEN).enumerate() {
        let id: RawId = entry[..ID_LEN].try_into().expect("entry slice");
        let wrapped: Wrapped = entry[ID_LEN..].try_into().expect("entry slice");
        if id[0] != bucket {
            return Err(format!(
                "entry {idx} (asset {}) belongs in bucket {:02x}",
                hex_encode(&id),
                id[0]
            ));
        }
        if previous.is_some_and(|p| p >= id) {
            return Err(format!("entry {idx} is out of order or repeated"));
        }
        previous = Some(id);
        entries.insert(id, wrapped);
    }
    Ok(entries)
}

fn raw_id(id: &AssetId) -> Result<RawId, StoreError> {
    AssetId::parse(id.as_str())
        .and_then(|id| id.key_bytes().try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("invalid asset id {id:?}")))
}

fn fixed_wrapped(id: &AssetId, bytes: &[u8]) -> Result<Wrapped, StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "the wrapped data key of asset {id} has {} bytes, expected {WRAPPED_KEY_LEN}",
            bytes.len()
        ))
    })
}

impl Store {
    fn unwrap_asset_key(&self, id: &AssetId, wrapped: &Wrapped) -> Result<SecretKey, StoreError> {
        Ok(self
            .keys
            .unwrap_data_key(id.as_str(), &WrappedKey(wrapped.to_vec()))?)
    }

    /// The asset's data key; a new one, durable before this returns, if it had
    /// none. Two callers for the same id get the same key.
    pub fn asset_key_or_create(&self, id: &AssetId) -> Result<SecretKey, StoreError> {
        let raw = raw_id(id)?;
        let mut bucket = self.asset_keys.lock(raw[0])?;
        if let Some(wrapped) = bucket.entries().get(&raw) {
            return self.unwrap_asset_key(id, wrapped);
        }
        let (key, wrapped) = self.keys.new_data_key(id.as_str())?;
        let mut next = bucket.entries().clone();
        next.insert(raw, fixed_wrapped(id, &wrapped.0)?);
        bucket.replace(next)?;
        Ok(key)
    }

    /// The asset's data key, or None if it has none (never created, or
    /// destroyed by an erasure).
    pub fn asset_key(&self, id: &AssetId) -> Result<Option<SecretKey>, StoreError> {
        let raw = raw_id(id)?;
        let bucket = self.asset_keys.lock(raw[0])?;
        bucket
            .entries()
            .get(&raw)
            .map(|wrapped| self.unwrap_asset_key(id, wrapped))
            .transpose()
    }

    /// Replaces the asset's data key with a fresh one (creating one if it had
    /// none). When this returns the old wrapped key is in no file, so whatever
    /// was encrypted under it is unreadable: the caller re-encrypts what it
    /// wants to keep *before* rotating, holding the plaintext meanwhile.
    pub fn rotate_asset_key(&self, id: &AssetId) -> Result<SecretKey, StoreError> {
        let raw = raw_id(id)?;
        let mut bucket = self.asset_keys.lock(raw[0])?;
        let (key, wrapped) = self.keys.new_data_key(id.as_str())?;
        let mut next = bucket.entries().clone();
        next.insert(raw, fixed_wrapped(id, &wrapped.0)?);
        bucket.replace(next)?;
        Ok(key)
    }

    /// Destroys the asset's data key (crypto-shredding): every copy of its
    /// blobs, backups included, becomes unreadable. Returns false if there was
    /// no key.
    pub fn destroy_asset_key(&self, id: &AssetId) -> Result<bool, StoreError> {
        let raw = raw_id(id)?;
        let mut bucket = self.asset_keys.lock(raw[0])?;
        if !bucket.entries().contains_key(&raw) {
            return Ok(false);
        }
        let mut next = bucket.entries().clone();
        next.remove(&raw);
        bucket.replace(next)?;
        Ok(true)
    }

    /// The wrapped key as stored (tests look for these bytes on disk).
    pub fn wrapped_asset_key(&self, id: &AssetId) -> Result<Option<Vec<u8>>, StoreError> {
        let raw = raw_id(id)?;
        let bucket = self.asset_keys.lock(raw[0])?;
        Ok(bucket.entries().get(&raw).map(|w| w.to_vec()))
    }

    /// Drops the keys of assets that have no record: left by a crash between
    /// creating the key and committing the asset. Returns how many were
    /// dropped. Meant for start-up; an ingest running meanwhile is safe (its
    /// commit finds its key gone and fails, and the job is retried).
    pub fn sweep_asset_keys(&self) -> Result<usize, StoreError> {
        let _gate = self.erase_gate.write().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0;
        for bucket in 0..=u8::MAX {
            let mut guard = self.asset_keys.lock(bucket)?;
            let mut next = guard.entries().clone();
            let before = next.len();
            let mut error = None;
            next.retain(|id, _| match self.assets.contains_key(id) {
                Ok(known) => known,
                Err(err) => {
                    error.get_or_insert(err);
                    true
                }
            });
            if let Some(err) = error {
                return Err(err.into());
            }
            if next.len() != before {
                dropped += before - next.len();
                guard.replace(next)?;
            }
        }
        Ok(dropped)
    }

    /// Moves wrapped keys into the key store (the schema 1 → 2 migration and
    /// the import of a schema 1 dump).
    pub(super) fn put_asset_keys(&self, keys: &[(AssetId, WrappedKey)]) -> Result<(), StoreError> {
        self.asset_keys.put_many(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_key_length_matches_new_data_key() {
        let ring = super::super::crypto::Keyring::new(SecretKey::random().unwrap());
        let (_, wrapped) = ring.new_data_key(&"ab".repeat(32)).unwrap();
        assert_eq!(wrapped.0.len(), WRAPPED_KEY_LEN);
    }

    #[test]
    fn damaged_buckets_are_refused() {
        let id = [0x5a; ID_LEN];
        let mut good = MAGIC.to_vec();
        good.extend_from_slice(&id);
        good.extend_from_slice(&[1; WRAPPED_KEY_LEN]);
        assert_eq!(parse_bucket(0x5a, &good).unwrap().len(), 1);
        assert!(parse_bucket(0x5b, &good).unwrap_err().contains("bucket 5a"));
        assert!(parse_bucket(0x5a, &good[..good.len() - 1]).is_err());
        assert!(parse_bucket(0x5a, b"something else").is_err());
        let mut twice = good.clone();
        twice.extend_from_slice(&good[MAGIC.len()..]);
        assert!(parse_bucket(0x5a, &twice).unwrap_err().contains("order"));
        assert!(parse_bucket(0x00, MAGIC).unwrap().is_empty());
    }
}
