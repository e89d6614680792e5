//! Audit events and signed checkpoints in sled.
//!
//! Input: events already chained by `crate::audit` (sequence number, previous
//! hash, own hash). Output: `consentry-audit` (sequence number, big-endian u64
//! → sealed event) and `consentry-audit-checkpoints` (sequence number → signed
//! checkpoint, plain JSON: it holds only a hash and a signature). The head of
//! the chain (last sequence number and hash) is kept in the meta tree, written
//! in the same transaction as the event. Failure modes: sled errors, a
//! sequence number that is already taken (a second writer), values that fail
//! authentication (reported per event by [`Store::audit_raw_events`]).

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, unwrap_tx};

pub(super) const TREE_AUDIT: &str = "consentry-audit";
pub(super) const TREE_CHECKPOINTS: &str = "consentry-audit-checkpoints";
const KEY_HEAD: &[u8] = b"audit_head";

/// The last event of the chain, as the store last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

/// One stored event as read back: its key, and the event or why it could not
/// be read.
pub struct RawAuditEvent<T> {
    pub seq: u64,
    pub event: Result<T, String>,
}

impl Store {
    pub fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        self.meta
            .get(KEY_HEAD)?
            .map(|raw| {
                serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("audit head: {e}")))
            })
            .transpose()
    }

    /// Appends one event at `seq`, which must be free, and moves the head.
    pub fn audit_append<T: Serialize>(
        &self,
        seq: u64,
        hash: &str,
        event: &T,
    ) -> Result<(), StoreError> {
        let key = seq.to_be_bytes();
        let sealed = self.seal(TREE_AUDIT, &key, event)?;
        let head = serde_json::to_vec(&AuditHead {
            seq,
            hash: hash.to_owned(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        unwrap_tx((&self.audit, &self.meta).transaction(|(audit, meta)| {
            if audit.get(key)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::Corrupt(
                    format!("audit event {seq} already exists (two writers?)"),
                )));
            }
            audit.insert(&key, sealed.as_slice())?;
            meta.insert(KEY_HEAD, head.as_slice())?;
            Ok(())
        }))
    }

    /// Every stored event in key order, each opened on its own so one bad
    /// value does not hide the rest.
    pub fn audit_raw_events<T: serde::de::DeserializeOwned>(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<RawAuditEvent<T>, StoreError>> + '_ {
        self.audit
            .range(from_seq.to_be_bytes()..)
            .map(move |entry| {
                let (key, raw) = entry?;
                let seq = u64::from_be_bytes(
                    key.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("audit key length".into()))?,
                );
                let event = self
                    .unseal(TREE_AUDIT, &key, &raw)
                    .map_err(|e| e.to_string());
                Ok(RawAuditEvent { seq, event })
            })
    }

    pub fn audit_event_count(&self) -> usize {
        self.audit.len()
    }

    pub fn audit_put_checkpoint<T: Serialize>(
        &self,
        seq: u64,
        value: &T,
    ) -> Result<(), StoreError> {
        let raw = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audit_checkpoints.insert(seq.to_be_bytes(), raw)?;
        Ok(())
    }

    pub fn audit_checkpoints<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        self.audit_checkpoints
            .iter()
            .map(|entry| {
                let (_, raw) = entry?;
                serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("audit checkpoint: {e}")))
            })
            .collect()
    }

    /// Test hooks that play the attacker: raw access below the chain.
    #[cfg(test)]
    pub(crate) fn audit_tamper(&self) -> AuditTamper<'_> {
        AuditTamper { store: self }
    }
}

#[cfg(test)]
pub(crate) struct AuditTamper<'a> {
    store: &'a Store,
}

#[cfg(test)]
impl AuditTamper<'_> {
    pub fn raw(&self, seq: u64) -> Vec<u8> {
        self.store
            .audit
            .get(seq.to_be_bytes())
            .unwrap()
            .unwrap()
            .to_vec()
    }
    pub fn put_raw(&self, seq: u64, raw: &[u8]) {
        self.store.audit.insert(seq.to_be_bytes(), raw).unwrap();
    }
    pub fn remove(&self, seq: u64) {
        self.store.audit.remove(seq.to_be_bytes()).unwrap();
    }
    /// Re-seals a modified event, as someone holding the master key could.
    pub fn reseal<T: Serialize>(&self, seq: u64, event: &T) {
        let key = seq.to_be_bytes();
        let sealed = self.store.seal(TREE_AUDIT, &key, event).unwrap();
        self.store.audit.insert(key, sealed).unwrap();
    }
    pub fn open<T: serde::de::DeserializeOwned>(&self, seq: u64) -> T {
        let key = seq.to_be_bytes();
        self.store.unseal(TREE_AUDIT, &key, &self.raw(seq)).unwrap()
    }
    pub fn set_head(&self, seq: u64, hash: &str) {
        let head = serde_json::to_vec(&AuditHead {
            seq,
            hash: hash.to_owned(),
        })
        .unwrap();
        self.store.meta.insert(KEY_HEAD, head).unwrap();
    }
}

impl Store {
    /// A small value kept beside the chain (the last configuration digest).
    pub fn audit_note(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(format!("audit_note:{name}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn set_audit_note(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.meta
            .insert(format!("audit_note:{name}"), value.as_bytes())?;
        Ok(())
    }
}
