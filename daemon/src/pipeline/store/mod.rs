//! The store: the only module that touches sled, plus the encrypted blob files.
//!
//! Input: typed records ([`Asset`], queue jobs). Output: durable, sealed sled
//! entries and blob files under `store.data_dir`. Failure modes: a wrong or
//! missing master key (refused before anything is opened), sled and I/O
//! errors, and records that fail authentication ([`StoreError`]).
//!
//! Layout of `data_dir`:
//! - `keycheck`: the master key's public fingerprint, checked before sled opens.
//! - `catalogue/`: sled. Values are sealed with a key derived from the master
//!   key, so no plaintext personal data (paths, names, GPS) lands on disk.
//! - `blobs/`: encrypted originals, thumbnails and sidecars ([`blobs`]).
//! - `template-keys`: the slot keys of the face template vault ([`templates`]);
//!   rewritten atomically so a purged key is really gone.
//! - `asset-keys/`: each asset's data key, wrapped by the master key, in 256
//!   bucket files rewritten atomically so a destroyed key is really gone
//!   ([`keystore`]). Asset records hold no key (since schema 2).
//!
//! Erasure (GDPR Art. 17) is [`Store::erase_asset`] ([`erase`]): the data key
//! first, then blobs, record and templates, leaving a tombstone.
//!
//! Architecture Invariant: only this module opens sled. Multi-tree updates are
//! one sled transaction, followed by a flush at each durability point.

pub mod audit;
pub mod blobs;
pub mod crypto;
pub mod erase;
pub mod jobs;
pub mod keystore;
pub mod people;
pub mod records;
pub mod rights;
pub mod templates;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Serialize, de::DeserializeOwned};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::config::StoreConfig;
use crate::domain::{Asset, AssetId, AssetStatus, BlobRef, SourceRef};
use blobs::BlobStore;
use crypto::{CryptoError, KeySource, Keyring, SecretKey};

/// 1: asset records hold their wrapped data key. 2: data keys live in the
/// asset key store ([`keystore`]); records hold none.
pub const SCHEMA_VERSION: u32 = 2;

const TREE_META: &str = "consentry-meta";
const TREE_ASSETS: &str = "consentry-assets";
const TREE_SOURCES: &str = "consentry-sources";
const TREE_JOBS: &str = "consentry-jobs";
const TREE_JOB_STATE: &str = "consentry-job-state";
const TREE_JOB_BY_SOURCE: &str = "consentry-job-by-source";
const KEY_SCHEMA_VERSION: &[u8] = b"schema_version";
const KEYCHECK_FILE: &str = "keycheck";
/// Assets per import chunk (their keys are written together).
const IMPORT_CHUNK: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(
        "the master key ({source_desc}, fingerprint {found}) does not match this data directory {data_dir} \
         (expects fingerprint {expected}); restore the right key file. Nothing was changed"
    )]
    WrongKey {
        source_desc: String,
        found: String,
        expected: String,
        data_dir: PathBuf,
    },
    #[error(
        "data directory {0} holds a catalogue but no keycheck file; refusing to guess which key it was written with"
    )]
    MissingKeycheck(PathBuf),
    #[error("the catalogue in {path} is in use by another process (is consentryd running?)")]
    Locked { path: PathBuf },
    #[error(
        "{data_dir} belongs to user {owner}; as root this command would leave files there that \
         the service cannot read. Run it as that user (sudo -u {owner} consentry …), or start \
         consentryd and the command goes through it"
    )]
    ForeignOwner { data_dir: PathBuf, owner: String },
    #[error(
        "catalogue schema version {found} is newer than this program understands ({SCHEMA_VERSION}); upgrade consentry"
    )]
    SchemaTooNew { found: u32 },
    #[error("catalogue error: {0}")]
    Sled(#[from] sled::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt catalogue record: {0}")]
    Corrupt(String),
    #[error(
        "asset key file {path} is damaged ({detail}); restore the asset-keys folder from the \
         backup taken with the data directory"
    )]
    AssetKeys { path: PathBuf, detail: String },
    #[error(
        "asset {0} has no data key (erased, or its key file was lost); its blobs cannot be read"
    )]
    NoAssetKey(AssetId),
    #[error("{0}")]
    Import(String),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    assets: sled::Tree,
    sources: sled::Tree,
    jobs: sled::Tree,
    job_state: sled::Tree,
    job_by_source: sled::Tree,
    templates: sled::Tree,
    suppression: sled::Tree,
    persons: sled::Tree,
    people_ops: sled::Tree,
    cluster_sets: sled::Tree,
    consents: sled::Tree,
    licences: sled::Tree,
    restrictions: sled::Tree,
    reminders: sled::Tree,
    audit: sled::Tree,
    audit_checkpoints: sled::Tree,
    tombstones: sled::Tree,
    vault: templates::Vault,
    asset_keys: keystore::KeyStore,
    /// Held exclusively by an erasure and the key sweep, shared by a commit
    /// that creates an asset (which checks that its data key still exists).
    erase_gate: RwLock<()>,
    keys: Keyring,
    blobs: BlobStore,
    data_dir: PathBuf,
}

/// What committing an ingested file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new asset was created.
    Created,
    /// The bytes were already known; this drop was added as another source.
    AddedSource,
    /// The very same drop was committed before (a redone job).
    AlreadyCommitted,
}

/// Counts for `consentry status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogueCounts {
    pub by_status: BTreeMap<String, u64>,
    pub by_collection: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Root may open only a data directory root owns: a packaged store belongs
/// to the service user, and a file root created there would stop the service.
fn refuse_root_in_foreign_dir(data_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    match std::fs::metadata(data_dir) {
        Ok(meta) if meta.uid() != 0 => {
            let owner = nix::unistd::User::from_uid(meta.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| format!("#{}", meta.uid()), |user| user.name);
            Err(StoreError::ForeignOwner {
                data_dir: data_dir.to_owned(),
                owner,
            })
        }
        _ => Ok(()),
    }
}

impl Store {
    /// Loads the master key, checks it against the data directory, then opens
    /// the catalogue. A wrong key fails before sled or any file is touched.
    pub fn open(config: &StoreConfig) -> Result<(Store, KeySource), StoreError> {
        let (master, source) =
            crypto::load_master_key(&config.master_key_file, &config.master_key_credential)?;
        let store = Store::open_with_key(config, master, &source.to_string())?;
        Ok((store, source))
    }

    pub fn open_with_key(
        config: &StoreConfig,
        master: SecretKey,
        source_desc: &str,
    ) -> Result<Store, StoreError> {
        let keys = Keyring::new(master);
        let data_dir = config.data_dir.clone();
        refuse_root_in_foreign_dir(&data_dir)?;
        let keycheck_path = data_dir.join(KEYCHECK_FILE);
        let catalogue_path = data_dir.join("catalogue");
        let fingerprint = keys.fingerprint();
        match std::fs::read_to_string(&keycheck_path) {
            Ok(text) => {
                let expected = text.trim().to_owned();
                if expected != fingerprint {
                    return Err(StoreError::WrongKey {
                        source_desc: source_desc.to_owned(),
                        found: fingerprint,
                        expected,
                        data_dir,
                    });
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if catalogue_path.exists() {
                    return Err(StoreError::MissingKeycheck(data_dir));
                }
                std::fs::create_dir_all(&data_dir).map_err(|e| StoreError::io(&data_dir, e))?;
                let tmp = data_dir.join("keycheck.tmp");
                let mut file = std::fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
                writeln!(file, "{fingerprint}")
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StoreError::io(&tmp, e))?;
                std::fs::rename(&tmp, &keycheck_path)
                    .map_err(|e| StoreError::io(&keycheck_path, e))?;
                blobs::sync_dir(&data_dir)?;
            }
            Err(err) => return Err(StoreError::io(&keycheck_path, err)),
        }
        let db = sled::Config::new()
            .path(&catalogue_path)
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(crate::clock::duration_ms(config.flush_every).max(1)))
            .open()
            .map_err(|err| match err {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked {
                        path: catalogue_path.clone(),
                    }
                }
                other => StoreError::Sled(other),
            })?;
        let template_tree = db.open_tree(templates::TREE_TEMPLATES)?;
        let suppression = db.open_tree(templates::TREE_SUPPRESSION)?;
        let vault = templates::Vault::open(&data_dir, &keys, [&template_tree, &suppression])?;
        let (asset_keys, asset_keys_existed) = keystore::KeyStore::open(&data_dir)?;
        let store = Store {
            templates: template_tree,
            suppression,
            vault,
            asset_keys,
            erase_gate: RwLock::new(()),
            tombstones: db.open_tree(erase::TREE_TOMBSTONES)?,
            persons: db.open_tree(people::TREE_PERSONS)?,
            people_ops: db.open_tree(people::TREE_OPS)?,
            cluster_sets: db.open_tree(people::TREE_CLUSTERS)?,
            consents: db.open_tree(rights::TREE_CONSENTS)?,
            licences: db.open_tree(rights::TREE_LICENCES)?,
            restrictions: db.open_tree(rights::TREE_RESTRICTIONS)?,
            reminders: db.open_tree(rights::TREE_REMINDERS)?,
            audit: db.open_tree(audit::TREE_AUDIT)?,
            audit_checkpoints: db.open_tree(audit::TREE_CHECKPOINTS)?,
            meta: db.open_tree(TREE_META)?,
            assets: db.open_tree(TREE_ASSETS)?,
            sources: db.open_tree(TREE_SOURCES)?,
            jobs: db.open_tree(TREE_JOBS)?,
            job_state: db.open_tree(TREE_JOB_STATE)?,
            job_by_source: db.open_tree(TREE_JOB_BY_SOURCE)?,
            blobs: BlobStore::open(data_dir.join("blobs"))?,
            db,
            keys,
            data_dir,
        };
        store.migrate(asset_keys_existed)?;
        Ok(store)
    }

    fn migrate(&self, asset_keys_existed: bool) -> Result<(), StoreError> {
        let found = match self.meta.get(KEY_SCHEMA_VERSION)? {
            None => None,
            Some(raw) => {
                let found: u32 = std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt("schema version".into()))?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew { found });
                }
                Some(found)
            }
        };
        if found.is_some_and(|v| v >= 2) && !asset_keys_existed && !self.assets.is_empty() {
            return Err(StoreError::AssetKeys {
                path: self.data_dir.join(keystore::DIR),
                detail: "missing, but the catalogue holds assets".into(),
            });
        }
        self.asset_keys.create_dir(&self.data_dir)?;
        match found {
            None => {}
            Some(1) => self.migrate_keys_out_of_records()?,
            Some(_) => return Ok(()),
        }
        self.meta
            .insert(KEY_SCHEMA_VERSION, SCHEMA_VERSION.to_string().as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Schema 1 → 2: every asset's wrapped data key moves from its record into
    /// the asset key store, and the record is rewritten without it. The keys
    /// are durable in their files before any record loses its copy, and a
    /// record that still holds a key is simply moved again, so an interrupted
    /// migration is finished by the next start.
    ///
    /// What this cannot undo: sled is log-structured, so its old segment files
    /// may still hold the sealed pre-migration records, wrapped key included,
    /// until sled rewrites those segments. Photos ingested before the migration
    /// are therefore only as erasable as they were under schema 1 (destroying
    /// the key file entry does not reach that stale copy); photos ingested
    /// afterwards never had their key in sled.
    fn migrate_keys_out_of_records(&self) -> Result<(), StoreError> {
        let mut moved: Vec<(AssetId, crypto::WrappedKey)> = Vec::new();
        let mut rewritten: Vec<(sled::IVec, Vec<u8>)> = Vec::new();
        for entry in self.assets.iter() {
            let (key, raw) = entry?;
            let mut asset: Asset = self.unseal(TREE_ASSETS, &key, &raw)?;
            if let Some(wrapped) = asset.key.take() {
                moved.push((asset.id.clone(), wrapped));
                rewritten.push((key.clone(), self.seal(TREE_ASSETS, &key, &asset)?));
            }
        }
        self.put_asset_keys(&moved)?;
        let mut batch = sled::Batch::default();
        for (key, sealed) in rewritten {
            batch.insert(key, sealed);
        }
        self.assets.apply_batch(batch)?;
        self.db.flush()?;
        if !moved.is_empty() {
            log::info!(target: "consentry::store", assets = moved.len();
                "catalogue schema 1 → 2: data keys moved into {}", self.data_dir.join(keystore::DIR).display());
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Durability point: everything written so far reaches the disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    // ---- sealed typed values -------------------------------------------------

    fn seal<T: Serialize>(&self, tree: &str, key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
        let plain = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(self.keys.seal_record(&record_context(tree, key), &plain)?)
    }

    fn unseal<T: DeserializeOwned>(
        &self,
        tree: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let plain = self.keys.open_record(&record_context(tree, key), sealed)?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("{tree}: {e}")))
    }

    // ---- assets --------------------------------------------------------------

    pub fn asset(&self, id: &AssetId) -> Result<Option<Asset>, StoreError> {
        let key = id.key_bytes();
        self.assets
            .get(&key)?
            .map(|raw| self.unseal(TREE_ASSETS, &key, &raw))
            .transpose()
    }

    /// Every asset, in id order.
    pub fn assets(&self) -> impl Iterator<Item = Result<Asset, StoreError>> + '_ {
        self.assets.iter().map(move |entry| {
            let (key, raw) = entry?;
            self.unseal(TREE_ASSETS, &key, &raw)
        })
    }

    /// Whether the catalogue answers a read (one key; for `/healthz`).
    pub fn healthy(&self) -> bool {
        self.meta.get(KEY_SCHEMA_VERSION).is_ok_and(|v| v.is_some())
    }

    pub fn asset_count(&self) -> usize {
        self.assets.len()
    }

    pub fn counts(&self) -> Result<CatalogueCounts, StoreError> {
        let mut counts = CatalogueCounts::default();
        for status in AssetStatus::ALL {
            counts.by_status.insert(status.as_str().to_owned(), 0);
        }
        for asset in self.assets() {
            let asset = asset?;
            *counts
                .by_status
                .entry(asset.status.as_str().to_owned())
                .or_default() += 1;
            *counts
                .by_collection
                .entry(asset.collection.clone())
                .or_default()
                .entry(asset.status.as_str().to_owned())
                .or_default() += 1;
        }
        Ok(counts)
    }

    fn source_key(&self, source: &SourceRef) -> Vec<u8> {
        self.keys
            .index_key(&[
                source.collection.as_bytes(),
                source.path.as_bytes(),
                &source.size.to_be_bytes(),
                &source.mtime_ms.to_be_bytes(),
            ])
            .to_vec()
    }

    /// The asset a drop was already committed as, if any (used for `keep` shares).
    pub fn asset_for_source(&self, source: &SourceRef) -> Result<Option<AssetId>, StoreError> {
        let key = self.source_key(source);
        self.sources
            .get(&key)?
            .map(|raw| self.unseal(TREE_SOURCES, &key, &raw))
            .transpose()
    }

    /// Adds `source` to the asset with this id if it exists. Used before doing any
    /// work for bytes that are already known.
    pub fn add_source_if_known(
        &self,
        id: &AssetId,
        source: &SourceRef,
        job: Option<jobs::JobId>,
    ) -> Result<Option<CommitOutcome>, StoreError> {
        if self.assets.get(id.key_bytes())?.is_none() {
            return Ok(None);
        }
        let outcome = self.commit_inner(None, source, id, job)?;
        Ok(Some(outcome))
    }

    /// Commits a freshly ingested asset (or, if the same bytes were committed
    /// meanwhile, adds its source to the existing one), records the drop in the
    /// source index and marks the job committed: one transaction, then a flush.
    /// On [`CommitOutcome::AddedSource`]/`AlreadyCommitted` the caller's new blobs
    /// are unreferenced and the caller deletes them.
    pub fn commit_asset(
        &self,
        asset: &Asset,
        job: Option<jobs::JobId>,
    ) -> Result<CommitOutcome, StoreError> {
        let source = asset
            .sources
            .first()
            .ok_or_else(|| StoreError::Corrupt("asset without source".into()))?;
        self.commit_inner(Some(asset), source, &asset.id, job)
    }

    fn commit_inner(
        &self,
        new_asset: Option<&Asset>,
        source: &SourceRef,
        id: &AssetId,
        job: Option<jobs::JobId>,
    ) -> Result<CommitOutcome, StoreError> {
        // An erasure (or the key sweep) may have destroyed the data key this
        // ingest encrypted its blobs under; such a commit must not create the
        // asset. The job fails and is retried under a fresh key.
        let _gate = self.erase_gate.read().unwrap_or_else(|e| e.into_inner());
        if new_asset.is_some() && self.wrapped_asset_key(id)?.is_none() {
            return Err(StoreError::NoAssetKey(id.clone()));
        }
        let asset_key = id.key_bytes();
        let source_key = self.source_key(source);
        let sealed_source_index = self.seal(TREE_SOURCES, &source_key, id)?;
        let templates: Vec<(crate::domain::FaceRef, &[f32])> = new_asset
            .iter()
            .flat_map(|a| &a.faces)
            .filter(|f| {
                f.template == crate::domain::TemplateStatus::Stored && !f.embedding.is_empty()
            })
            .map(|f| (f.face_ref(id), f.embedding.as_slice()))
            .collect();
        let sealed_templates = self.seal_face_templates(&templates, crate::clock::now_ms())?;
        let result = (
            &self.assets,
            &self.sources,
            &self.job_state,
            &self.templates,
        )
            .transaction(|(assets, sources, job_state, template_tree)| {
                let outcome = match assets.get(&asset_key)? {
                    None => {
                        let Some(asset) = new_asset else {
                            return Err(ConflictableTransactionError::Abort(StoreError::Corrupt(
                                format!("asset {id} vanished while adding a source"),
                            )));
                        };
                        let sealed = self
                            .seal(TREE_ASSETS, &asset_key, asset)
                            .map_err(ConflictableTransactionError::Abort)?;
                        assets.insert(asset_key.as_slice(), sealed)?;
                        for (key, value) in &sealed_templates {
                            template_tree.insert(key.as_slice(), value.as_slice())?;
                        }
                        CommitOutcome::Created
                    }
                    Some(raw) => {
                        let mut existing: Asset = self
                            .unseal(TREE_ASSETS, &asset_key, &raw)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if existing.sources.iter().any(|s| s.same_drop(source)) {
                            CommitOutcome::AlreadyCommitted
                        } else {
                            existing.sources.push(source.clone());
                            existing.updated_at_ms = crate::clock::now_ms();
                            let sealed = self
                                .seal(TREE_ASSETS, &asset_key, &existing)
                                .map_err(ConflictableTransactionError::Abort)?;
                            assets.insert(asset_key.as_slice(), sealed)?;
                            CommitOutcome::AddedSource
                        }
                    }
                };
                sources.insert(source_key.as_slice(), sealed_source_index.as_slice())?;
                if let Some(job_id) = job {
                    jobs::mark_committed_tx(job_state, job_id)?;
                }
                Ok(outcome)
            });
        let outcome = unwrap_tx(result)?;
        self.flush()?;
        Ok(outcome)
    }

    /// Reads and decrypts one blob of an asset, with its key from the asset
    /// key store.
    pub fn read_blob(&self, asset: &Asset, blob: &BlobRef) -> Result<Vec<u8>, StoreError> {
        let data_key = self
            .asset_key(&asset.id)?
            .ok_or_else(|| StoreError::NoAssetKey(asset.id.clone()))?;
        self.blobs.get(&data_key, blob)
    }

    /// Removes blob files and data keys left by a crash between writing them
    /// and committing their record ([`Store::sweep_asset_keys`]). Call at
    /// start-up, before workers run. Returns how many blob files went.
    pub fn remove_orphan_blobs(&self) -> Result<usize, StoreError> {
        let keys = self.sweep_asset_keys()?;
        if keys > 0 {
            log::info!(target: "consentry::store", keys = keys;
                "dropped {keys} data key(s) of assets an interrupted run never committed");
        }
        let mut referenced = HashSet::new();
        for asset in self.assets() {
            let asset = asset?;
            referenced.extend(asset.original.iter().map(|b| b.blob_id.clone()));
            referenced.extend(asset.sidecar.iter().map(|b| b.blob_id.clone()));
            referenced.extend(asset.thumbnails.iter().map(|t| t.blob.blob_id.clone()));
        }
        referenced.extend(self.document_blob_ids()?);
        self.blobs.remove_unreferenced(&referenced)
    }

    // ---- export / import -----------------------------------------------------

    /// Writes the whole catalogue as JSON lines: a header, then one line per
    /// record. Blobs stay where they are (they are referenced by id and remain
    /// encrypted), and so do their data keys: the dump holds none. To move a
    /// catalogue, copy `blobs/` and `asset-keys/` into the new data directory
    /// and import there with the same master key. Queued jobs are not exported
    /// (drops are rescanned).
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        let io = |e| StoreError::io(Path::new("<export>"), e);
        let header =
            serde_json::json!({ "type": "consentry-export", "schema_version": SCHEMA_VERSION });
        writeln!(out, "{header}").map_err(io)?;
        let mut n = 0;
        for asset in self.assets() {
            let mut asset = asset?;
            asset.key = None;
            let line = ExportLine::Asset(asset);
            serde_json::to_writer(&mut *out, &line)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.write_all(b"\n").map_err(io)?;
            n += 1;
        }
        out.flush().map_err(io)?;
        Ok(n)
    }

    /// Reads an export into this (empty) catalogue and rebuilds the indexes.
    /// Data keys come from the `asset-keys/` folder copied beside `blobs/`
    /// (see [`Store::export`]); a schema 1 dump still carries them in its
    /// records, and they move into the key store here (each checked against
    /// this master key), as in the schema migration.
    pub fn import(&self, input: &mut dyn BufRead) -> Result<u64, StoreError> {
        if !self.assets.is_empty() {
            return Err(StoreError::Import(
                "the catalogue is not empty; import only into a new data directory".into(),
            ));
        }
        let mut lines = input.lines().enumerate();
        let (_, header) = lines
            .next()
            .ok_or_else(|| StoreError::Import("empty export file".into()))?;
        let header: serde_json::Value =
            serde_json::from_str(&header.map_err(|e| StoreError::io(Path::new("<import>"), e))?)
                .map_err(|e| StoreError::Import(format!("line 1: {e}")))?;
        if header["type"] != "consentry-export" {
            return Err(StoreError::Import("line 1: not a consentry export".into()));
        }
        let version = header["schema_version"].as_u64().unwrap_or(u64::MAX);
        if version > u64::from(SCHEMA_VERSION) {
            return Err(StoreError::Import(format!(
                "export has schema version {version}, newer than {SCHEMA_VERSION}"
            )));
        }
        let mut n = 0;
        // Records go in chunks, each chunk's data keys (schema 1 dumps) first:
        // one key file rewrite per bucket and chunk, not per asset.
        let mut chunk: Vec<Asset> = Vec::new();
        let mut keys: Vec<(AssetId, crypto::WrappedKey)> = Vec::new();
        for (idx, line) in lines {
            let line = line.map_err(|e| StoreError::io(Path::new("<import>"), e))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: ExportLine = serde_json::from_str(&line)
                .map_err(|e| StoreError::Import(format!("line {}: {e}", idx + 1)))?;
            let ExportLine::Asset(mut asset) = record;
            if let Some(wrapped) = asset.key.take() {
                self.keys
                    .unwrap_data_key(asset.id.as_str(), &wrapped)
                    .map_err(|e| StoreError::Import(format!("line {}: {e}", idx + 1)))?;
                keys.push((asset.id.clone(), wrapped));
            } else if (asset.original.is_some()
                || asset.sidecar.is_some()
                || !asset.thumbnails.is_empty())
                && self.wrapped_asset_key(&asset.id)?.is_none()
            {
                return Err(StoreError::Import(format!(
                    "line {}: asset {} has no data key in {}; copy the asset-keys folder (with \
                     blobs) from the old data directory before importing",
                    idx + 1,
                    asset.id,
                    self.data_dir.join(keystore::DIR).display()
                )));
            }
            chunk.push(asset);
            if chunk.len() >= IMPORT_CHUNK {
                n += self.import_chunk(&mut chunk, &mut keys)?;
            }
        }
        n += self.import_chunk(&mut chunk, &mut keys)?;
        self.flush()?;
        Ok(n)
    }

    fn import_chunk(
        &self,
        chunk: &mut Vec<Asset>,
        keys: &mut Vec<(AssetId, crypto::WrappedKey)>,
    ) -> Result<u64, StoreError> {
        self.put_asset_keys(keys)?;
        keys.clear();
        for asset in chunk.iter() {
            let key = asset.id.key_bytes();
            self.assets
                .insert(&key, self.seal(TREE_ASSETS, &key, asset)?)?;
            for source in &asset.sources {
                let source_key = self.source_key(source);
                self.sources.insert(
                    &source_key,
                    self.seal(TREE_SOURCES, &source_key, &asset.id)?,
                )?;
            }
        }
        let n = chunk.len() as u64;
        chunk.clear();
        Ok(n)
    }
}

#[derive(Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ExportLine {
    Asset(Asset),
}

fn record_context(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut context = Vec::with_capacity(tree.len() + 1 + key.len());
    context.extend_from_slice(tree.as_bytes());
    context.push(0);
    context.extend_from_slice(key);
    context
}

fn unwrap_tx<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|err| match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => StoreError::Sled(err),
    })
}

/// Helper for transactional closures in submodules.
pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn tx_get_json<T: DeserializeOwned>(
    tree: &TransactionalTree,
    key: &[u8],
) -> TxResult<Option<T>> {
    tree.get(key)?
        .map(|raw| {
            serde_json::from_slice(&raw).map_err(|e| {
                ConflictableTransactionError::Abort(StoreError::Corrupt(e.to_string()))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests;
