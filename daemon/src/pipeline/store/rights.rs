//! Rights records: consent, licence and restriction versions, the signed
//! documents, and the reminders already sent.
//!
//! Versions are append-only: a version is inserted only where none exists
//! (compare-and-swap), so a record is never edited in place. Keys are
//! `record key ‖ version (u32 BE)`, where the record key is a keyed hash
//! (licence scopes and restriction subjects name collections, folders and
//! persons); values are sealed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crypto::{SecretKey, WrappedKey};
use super::{Store, StoreError};
use crate::consent::model::{Consent, DocumentRef, Licence, Restriction, Versioned};

pub(super) const TREE_CONSENTS: &str = "consentry-consents";
pub(super) const TREE_LICENCES: &str = "consentry-licences";
pub(super) const TREE_RESTRICTIONS: &str = "consentry-restrictions";
pub(super) const TREE_REMINDERS: &str = "consentry-reminders";

/// What a reminder item looked like when it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SentReminder {
    pub item: String,
    pub sent_at_ms: u64,
    /// `mail`, `webhook` or both, comma-separated.
    pub via: String,
}

impl Store {
    fn version_key(&self, tree: &str, record: &str, version: u32) -> Vec<u8> {
        let mut key = self
            .keys
            .index_key(&[tree.as_bytes(), record.as_bytes()])
            .to_vec();
        key.extend_from_slice(&version.to_be_bytes());
        key
    }

    fn put_version<T: Versioned + Serialize>(
        &self,
        tree: &sled::Tree,
        name: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        let key = self.version_key(name, &record.record_key(), record.version());
        let sealed = self.seal(name, &key, record)?;
        tree.compare_and_swap(&key, None as Option<&[u8]>, Some(sealed))?
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "{name}: version {} of a record already exists (versions are never overwritten)",
                    record.version()
                ))
            })?;
        self.flush()
    }

    fn all_versions<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        name: &str,
    ) -> Result<Vec<T>, StoreError> {
        tree.iter()
            .map(|entry| {
                let (key, raw) = entry?;
                self.unseal(name, &key, &raw)
            })
            .collect()
    }

    pub fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        self.put_version(&self.consents, TREE_CONSENTS, consent)
    }

    pub fn consents(&self) -> Result<Vec<Consent>, StoreError> {
        self.all_versions(&self.consents, TREE_CONSENTS)
    }

    pub fn put_licence(&self, licence: &Licence) -> Result<(), StoreError> {
        self.put_version(&self.licences, TREE_LICENCES, licence)
    }

    pub fn licences(&self) -> Result<Vec<Licence>, StoreError> {
        self.all_versions(&self.licences, TREE_LICENCES)
    }

    pub fn put_restriction(&self, restriction: &Restriction) -> Result<(), StoreError> {
        self.put_version(&self.restrictions, TREE_RESTRICTIONS, restriction)
    }

    pub fn restrictions(&self) -> Result<Vec<Restriction>, StoreError> {
        self.all_versions(&self.restrictions, TREE_RESTRICTIONS)
    }

    /// Stores a signed document encrypted under a fresh data key wrapped by
    /// the master key (bound to `context`, e.g. the consent id).
    pub fn put_document(
        &self,
        context: &str,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<DocumentRef, StoreError> {
        let (data_key, key): (SecretKey, WrappedKey) =
            self.keys.new_data_key(&document_context(context))?;
        let blob = self.blobs.put(&data_key, bytes)?;
        Ok(DocumentRef {
            name: name.to_owned(),
            mime: mime.to_owned(),
            bytes: bytes.len() as u64,
            blake3: blake3::hash(bytes).to_hex().to_string(),
            blob,
            key,
        })
    }

    pub fn read_document(&self, context: &str, doc: &DocumentRef) -> Result<Vec<u8>, StoreError> {
        let data_key = self
            .keys
            .unwrap_data_key(&document_context(context), &doc.key)?;
        self.blobs.get(&data_key, &doc.blob)
    }

    /// Blob ids of every stored document (so orphan sweeps keep them).
    pub(super) fn document_blob_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for c in self.consents()? {
            ids.extend(c.document.map(|d| d.blob.blob_id));
        }
        for l in self.licences()? {
            ids.extend(l.terms.document.map(|d| d.blob.blob_id));
        }
        Ok(ids)
    }

    pub fn reminder_sent(&self, item: &str) -> Result<Option<SentReminder>, StoreError> {
        let key = self
            .keys
            .index_key(&[TREE_REMINDERS.as_bytes(), item.as_bytes()]);
        self.reminders
            .get(key)?
            .map(|raw| self.unseal(TREE_REMINDERS, &key, &raw))
            .transpose()
    }

    /// Records sent items, then flushes: a restart does not send them again.
    pub fn record_reminders(&self, sent: &[SentReminder]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for s in sent {
            let key = self
                .keys
                .index_key(&[TREE_REMINDERS.as_bytes(), s.item.as_bytes()]);
            batch.insert(&key[..], self.seal(TREE_REMINDERS, &key, s)?);
        }
        self.reminders.apply_batch(batch)?;
        self.flush()
    }
}

fn document_context(context: &str) -> String {
    format!("document:{context}")
}
