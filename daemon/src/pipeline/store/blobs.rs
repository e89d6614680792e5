//! Encrypted blob files: originals, thumbnails and sidecars.
//!
//! Input: plaintext bytes and the asset's data key. Output: a [`BlobRef`] for a
//! file under `<data_dir>/blobs/<2 hex>/<blob id>`. Failure modes: I/O errors
//! (disk full, permissions) and, on read, authentication errors.
//!
//! Architecture Invariant: a blob file is complete or absent. It is written to
//! `blobs/tmp/`, fsynced, renamed into place and the folder fsynced, before any
//! record refers to it. Files in `tmp/` and blobs no record refers to are
//! leftovers of a crash and are removed at start-up.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::crypto::{self, SecretKey, hex_encode};
use crate::domain::BlobRef;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn open(root: PathBuf) -> Result<BlobStore, StoreError> {
        fs::create_dir_all(root.join("tmp")).map_err(|e| StoreError::io(&root, e))?;
        Ok(BlobStore { root })
    }

    fn path_of(&self, blob_id: &str) -> PathBuf {
        self.root.join(&blob_id[..2]).join(blob_id)
    }

    pub fn put(&self, data_key: &SecretKey, plain: &[u8]) -> Result<BlobRef, StoreError> {
        let mut raw_id = [0u8; 16];
        crypto::fill_random(&mut raw_id)?;
        let blob_id = hex_encode(&raw_id);
        let sealed = crypto::encrypt_blob(data_key, &raw_id, plain)?;
        let tmp = self.root.join("tmp").join(format!("{blob_id}.tmp"));
        let dest = self.path_of(&blob_id);
        let dest_dir = dest.parent().expect("blob path has a parent");
        fs::create_dir_all(dest_dir).map_err(|e| StoreError::io(dest_dir, e))?;
        let mut file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        file.write_all(&sealed)
            .map_err(|e| StoreError::io(&tmp, e))?;
        file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        sync_dir(dest_dir)?;
        Ok(BlobRef {
            blob_id,
            len: plain.len() as u64,
        })
    }

    pub fn get(&self, data_key: &SecretKey, blob: &BlobRef) -> Result<Vec<u8>, StoreError> {
        let raw_id: [u8; 16] = crypto::hex_decode(&blob.blob_id)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("invalid blob id {}", blob.blob_id)))?;
        let path = self.path_of(&blob.blob_id);
        let sealed = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let plain = crypto::decrypt_blob(data_key, &raw_id, &sealed)?;
        if plain.len() as u64 != blob.len {
            return Err(StoreError::Corrupt(format!(
                "blob {} has {} bytes, expected {}",
                blob.blob_id,
                plain.len(),
                blob.len
            )));
        }
        Ok(plain)
    }

    /// Removes a blob file; false if it was already gone.
    pub fn delete(&self, blob: &BlobRef) -> Result<bool, StoreError> {
        let path = self.path_of(&blob.blob_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Removes temp files and blobs that no record refers to. Call only while no
    /// writer runs (at start-up). Returns how many files were removed.
    pub fn remove_unreferenced(&self, referenced: &HashSet<String>) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.root).map_err(|e| StoreError::io(&self.root, e))? {
            let entry = entry.map_err(|e| StoreError::io(&self.root, e))?;
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let is_tmp = entry.file_name() == "tmp";
            for file in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
                let file = file.map_err(|e| StoreError::io(&dir, e))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if is_tmp || !referenced.contains(&name) {
                    fs::remove_file(file.path()).map_err(|e| StoreError::io(&file.path(), e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Replaces `path` with `bytes` atomically and durably: a 0600 temporary
/// file `tmp` beside it, fsync, rename, directory fsync. A crash leaves the
/// old file or the new one, never a mix.
pub fn replace_file(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| StoreError::io(tmp, e);
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    fs::rename(tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}
