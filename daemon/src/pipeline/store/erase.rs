//! Erasure of one asset (GDPR Art. 17): its data key, blob files, record,
//! source index entries and face templates, leaving only a tombstone.
//!
//! Input: an asset id and an optional case reference (the erasure request it
//! answers). Output: an [`EraseOutcome`], and a [`Tombstone`] in
//! `consentry-tombstones` that records *that* an erasure happened, when, and
//! for which case; never what the photo was (no sources, metadata or faces).
//! Failure modes: I/O and sled errors, part-way through; erasure is
//! idempotent, so calling it again finishes the job.
//!
//! Order, chosen so that a crash at any point leaves nothing readable that the
//! next call does not remove:
//! 1. Destroy the data key in the asset key store ([`super::keystore`]):
//!    crypto-shredding. From here on every copy of the blobs (backups
//!    included) is ciphertext under a key that exists nowhere.
//! 2. Delete the original, sidecar and thumbnail blob files.
//! 3. One sled transaction removes the asset record and every
//!    `consentry-sources` entry that points at it, and writes the tombstone.
//!    Until this commits a crash leaves the record (without a key) in place,
//!    so a second call sees the asset and repeats 1–3.
//! 4. Purge the asset's face templates through the template vault
//!    ([`Store::purge_templates`]), which destroys the slot keys. Templates
//!    are found by the asset's key prefix in the template tree, so a second
//!    call after a crash here still finds them without the record.
//! 5. Flush.
//!
//! Concurrency: erasure holds the store's erase gate exclusively, and a commit
//! that creates an asset holds it shared and checks that the asset's data key
//! still exists; an ingest of the same bytes racing an erasure therefore fails
//! and is retried under a fresh key instead of committing blobs that no key
//! opens.
//!
//! What stays: sled's segment files may still hold the sealed asset record
//! (sealed under the catalogue key; since schema 2 it holds no data key) until
//! sled rewrites them. The tombstone's asset id is the BLAKE3 hash of the
//! original bytes: someone who holds the photo can tell that it was erased,
//! nothing more.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, TREE_SOURCES, unwrap_tx};
use crate::domain::{Asset, AssetId, FaceRef};

pub(super) const TREE_TOMBSTONES: &str = "consentry-tombstones";

/// The record that an asset was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub asset: AssetId,
    pub erased_at_ms: u64,
    /// The erasure request (case reference) it answered, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
}

/// What [`Store::erase_asset`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EraseOutcome {
    /// False when the asset record was already gone (erased before, or never
    /// there); the remaining steps ran all the same.
    pub erased: bool,
    /// Blob files removed (originals, sidecars, thumbnails).
    pub blobs_deleted: usize,
    /// Face templates purged from the template vault.
    pub templates_purged: usize,
}

impl Store {
    /// Erases an asset for good (see the module documentation for the order).
    /// Idempotent: a second call returns `erased: false`.
    pub fn erase_asset(
        &self,
        id: &AssetId,
        case: Option<&str>,
    ) -> Result<EraseOutcome, StoreError> {
        let _gate = self.erase_gate.write().unwrap_or_else(|e| e.into_inner());
        let mut outcome = EraseOutcome::default();
        let asset = self.asset(id)?;

        // 1. Crypto-shredding.
        self.destroy_asset_key(id)?;

        // 2. Blob files.
        if let Some(asset) = &asset {
            let blobs = asset
                .original
                .iter()
                .chain(&asset.sidecar)
                .chain(asset.thumbnails.iter().map(|t| &t.blob));
            for blob in blobs {
                if self.blobs.delete(blob)? {
                    outcome.blobs_deleted += 1;
                }
            }
        }

        // 3. Record, source index, tombstone: one transaction.
        if let Some(asset) = &asset {
            outcome.erased = self.remove_record(asset, case)?;
        }

        // 4. Face templates, by key prefix (the record may be gone already).
        let mut faces: Vec<FaceRef> = Vec::new();
        for entry in self.templates.scan_prefix(id.key_bytes()) {
            let (key, _) = entry?;
            if let Some(face) = FaceRef::from_key(&key).filter(|f| f.asset == *id) {
                faces.push(face);
            }
        }
        if !faces.is_empty() {
            outcome.templates_purged = self.purge_templates(&faces, &[])?;
        }

        // 5. Durability point.
        self.flush()?;
        if outcome.erased || outcome.blobs_deleted > 0 || outcome.templates_purged > 0 {
            log::info!(target: "consentry::store", asset_id = id.as_str(), erased = outcome.erased,
                blobs = outcome.blobs_deleted, templates = outcome.templates_purged;
                "asset erased");
        }
        Ok(outcome)
    }

    /// Step 3: false if the record vanished meanwhile.
    fn remove_record(&self, asset: &Asset, case: Option<&str>) -> Result<bool, StoreError> {
        let asset_key = asset.id.key_bytes();
        let tombstone = Tombstone {
            asset: asset.id.clone(),
            erased_at_ms: crate::clock::now_ms(),
            case: case.map(str::to_owned),
        };
        let sealed_tombstone = self.seal(TREE_TOMBSTONES, &asset_key, &tombstone)?;
        let source_keys: Vec<Vec<u8>> = asset.sources.iter().map(|s| self.source_key(s)).collect();
        let result = (&self.assets, &self.sources, &self.tombstones).transaction(
            |(assets, sources, tombstones)| {
                if assets.remove(asset_key.as_slice())?.is_none() {
                    return Ok(false);
                }
                for key in &source_keys {
                    let Some(raw) = sources.get(key.as_slice())? else {
                        continue;
                    };
                    // A later drop at the same path, size and time may point
                    // at other bytes; only entries for this asset go.
                    let target: AssetId = self
                        .unseal(TREE_SOURCES, key, &raw)
                        .map_err(ConflictableTransactionError::Abort)?;
                    if target == asset.id {
                        sources.remove(key.as_slice())?;
                    }
                }
                if tombstones.get(asset_key.as_slice())?.is_none() {
                    tombstones.insert(asset_key.as_slice(), sealed_tombstone.as_slice())?;
                }
                Ok(true)
            },
        );
        unwrap_tx(result)
    }

    /// The tombstone of an erased asset.
    pub fn tombstone(&self, id: &AssetId) -> Result<Option<Tombstone>, StoreError> {
        let key = id.key_bytes();
        self.tombstones
            .get(&key)?
            .map(|raw| self.unseal(TREE_TOMBSTONES, &key, &raw))
            .transpose()
    }

    /// Every tombstone, in asset id order.
    pub fn tombstones(&self) -> Result<Vec<Tombstone>, StoreError> {
        self.tombstones
            .iter()
            .map(|entry| {
                let (key, raw) = entry?;
                self.unseal(TREE_TOMBSTONES, &key, &raw)
            })
            .collect()
    }
}

impl Store {
    /// Records a drop of an erased photo's bytes as a known source, so a
    /// `keep` share does not offer it again; the asset stays erased.
    pub fn remember_erased_source(
        &self,
        source: &crate::domain::SourceRef,
        id: &AssetId,
    ) -> Result<(), StoreError> {
        let key = self.source_key(source);
        let sealed = self.seal(super::TREE_SOURCES, &key, id)?;
        self.sources.insert(key, sealed)?;
        self.db.flush()?;
        Ok(())
    }
}

impl Store {
    /// Holds off erasures, the key sweep and new-asset commits while a
    /// caller replaces an asset's content (a redaction).
    pub fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.erase_gate.write().unwrap_or_else(|e| e.into_inner())
    }
}
