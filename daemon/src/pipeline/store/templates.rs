//! The template vault: face templates (biometric data, GDPR Art. 9) kept
//! under keys that a purge really destroys.
//!
//! Input: 128-D templates keyed by face ([`FaceRef`]) or, for a person who
//! opted out of recognition, one suppression template keyed by [`PersonId`].
//! Output: encrypted sled values, and the slot keys in a file of their own.
//! Failure modes: a missing or damaged key file while templates exist (start-up
//! refuses, naming the file), sled and I/O errors, values that fail
//! authentication.
//!
//! Why a key file: sled is log-structured, so a removed or overwritten value
//! stays readable in its segment files until they are rewritten. A template is
//! therefore stored only encrypted, under the key of its *slot*; the slot keys
//! live in `template-keys` beside the catalogue, sealed under the master key
//! and replaced atomically (temporary file, fsync, rename, directory fsync).
//! Purging a template re-encrypts the other templates of its slot under a fresh
//! slot, then rewrites the key file without the old key: whatever sled still
//! holds of the purged value is ciphertext under a key that no longer exists.
//!
//! Layout: `consentry-templates` (face key → value) and
//! `consentry-suppression` (person id → value); a value is
//! `slot (u32 BE) ‖ created_ms (u64 BE) ‖ sealed f32 LE bytes`, the tree, key
//! and slot bound as associated data. At most [`SLOT_CAPACITY`] templates share
//! a slot, which bounds the work of a purge.
//!
//! Crash safety: new slot keys reach the key file before any value uses them;
//! old keys leave it only after the re-encrypted values are flushed. At start
//! a key that no value uses is dropped, which finishes an interrupted purge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use sled::Transactional;

use super::crypto::{self, Keyring, SecretKey};
use super::{Store, StoreError, record_context, unwrap_tx};
use crate::domain::{FaceRef, PersonId};

pub(super) const TREE_TEMPLATES: &str = "consentry-templates";
pub(super) const TREE_SUPPRESSION: &str = "consentry-suppression";
const KEY_FILE: &str = "template-keys";
const KEY_FILE_CONTEXT: &[u8] = b"consentry template key file v1";
/// Templates encrypted under one slot key.
pub const SLOT_CAPACITY: u32 = 256;
const HEADER_LEN: usize = 12;

/// The vault's in-memory side: slot keys and how many values use each.
pub(super) struct Vault {
    path: PathBuf,
    state: Mutex<VaultState>,
}

struct VaultState {
    keys: BTreeMap<u32, SecretKey>,
    counts: BTreeMap<u32, u32>,
    next_slot: u32,
    /// The slot new templates go to while it has room.
    current: Option<u32>,
}

/// A decrypted template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub created_ms: u64,
    pub embedding: Vec<f32>,
}

impl Vault {
    /// Loads the key file and reconciles it with the values in sled.
    pub(super) fn open(
        data_dir: &std::path::Path,
        keys: &Keyring,
        trees: [&sled::Tree; 2],
    ) -> Result<Vault, StoreError> {
        let path = data_dir.join(KEY_FILE);
        let (mut table, next_slot) = match std::fs::read(&path) {
            Ok(sealed) => {
                let (header, table) = keys.open_key_table(KEY_FILE_CONTEXT, &sealed)?;
                let next = header
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("{}: header", path.display())))?;
                (table, next)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if trees.iter().any(|t| !t.is_empty()) {
                    return Err(StoreError::Corrupt(format!(
                        "{} is missing but the catalogue holds face templates; restore it from the \
                         backup taken with the data directory, or run `consentry faces redetect --all` \
                         after deleting the templates",
                        path.display()
                    )));
                }
                (BTreeMap::new(), 0)
            }
            Err(err) => return Err(StoreError::io(&path, err)),
        };
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for tree in trees {
            for entry in tree.iter() {
                let (key, value) = entry?;
                let slot = header(&value)
                    .ok_or_else(|| StoreError::Corrupt(format!("template {key:?}")))?
                    .0;
                if !table.contains_key(&slot) {
                    return Err(StoreError::Corrupt(format!(
                        "a face template uses slot {slot}, which {} does not hold; restore the key \
                         file that belongs to this catalogue",
                        path.display()
                    )));
                }
                *counts.entry(slot).or_default() += 1;
            }
        }
        let unused: Vec<u32> = table
            .keys()
            .filter(|slot| !counts.contains_key(slot))
            .copied()
            .collect();
        let current = counts
            .iter()
            .next_back()
            .filter(|(_, n)| **n < SLOT_CAPACITY)
            .map(|(slot, _)| *slot);
        let vault = Vault {
            path,
            state: Mutex::new(VaultState {
                keys: BTreeMap::new(),
                counts,
                next_slot: next_slot.max(table.keys().next_back().map_or(0, |s| s + 1)),
                current,
            }),
        };
        for slot in &unused {
            table.remove(slot);
        }
        {
            let mut state = vault.state.lock().expect("vault lock");
            state.keys = table;
            if !unused.is_empty() {
                vault.write_key_file(keys, &state)?;
            }
        }
        Ok(vault)
    }

    fn write_key_file(&self, keys: &Keyring, state: &VaultState) -> Result<(), StoreError> {
        let sealed = keys.seal_key_table(
            KEY_FILE_CONTEXT,
            &state.next_slot.to_be_bytes(),
            &state.keys,
        )?;
        super::blobs::replace_file(&self.path, &self.path.with_extension("tmp"), &sealed)
    }

    /// A slot with room for `n` more templates (a new one, on disk, if needed).
    fn reserve(&self, keys: &Keyring, n: u32) -> Result<(u32, SecretKey), StoreError> {
        let mut state = self.state.lock().expect("vault lock");
        let room = |state: &VaultState, slot: u32| {
            state.counts.get(&slot).copied().unwrap_or(0) + n <= SLOT_CAPACITY.max(n)
        };
        let slot = match state.current {
            Some(slot) if room(&state, slot) => slot,
            _ => {
                let slot = state.next_slot;
                state.next_slot += 1;
                state.keys.insert(slot, SecretKey::random()?);
                self.write_key_file(keys, &state)?;
                state.current = Some(slot);
                slot
            }
        };
        *state.counts.entry(slot).or_default() += n;
        Ok((slot, state.keys[&slot].clone()))
    }

    fn key(&self, slot: u32) -> Option<SecretKey> {
        self.state
            .lock()
            .expect("vault lock")
            .keys
            .get(&slot)
            .cloned()
    }

    /// How many slot keys exist (for tests and status).
    pub(super) fn slot_count(&self) -> usize {
        self.state.lock().expect("vault lock").keys.len()
    }
}

fn header(value: &[u8]) -> Option<(u32, u64)> {
    let slot = u32::from_be_bytes(value.get(..4)?.try_into().ok()?);
    let created = u64::from_be_bytes(value.get(4..HEADER_LEN)?.try_into().ok()?);
    Some((slot, created))
}

fn aad(tree: &str, key: &[u8], slot: u32) -> Vec<u8> {
    let mut aad = record_context(tree, key);
    aad.extend_from_slice(&slot.to_be_bytes());
    aad
}

fn encrypt(
    tree: &str,
    key: &[u8],
    slot: u32,
    slot_key: &SecretKey,
    created_ms: u64,
    embedding: &[f32],
) -> Result<Vec<u8>, StoreError> {
    let plain = zeroize::Zeroizing::new(
        embedding
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let sealed = crypto::seal_with(slot_key, &plain, &aad(tree, key, slot))?;
    let mut value = Vec::with_capacity(HEADER_LEN + sealed.len());
    value.extend_from_slice(&slot.to_be_bytes());
    value.extend_from_slice(&created_ms.to_be_bytes());
    value.extend_from_slice(&sealed);
    Ok(value)
}

fn decrypt(
    tree: &str,
    key: &[u8],
    value: &[u8],
    slot_key: &SecretKey,
) -> Result<Template, StoreError> {
    let (slot, created_ms) =
        header(value).ok_or_else(|| StoreError::Corrupt("template header".into()))?;
    let plain = zeroize::Zeroizing::new(crypto::open_with(
        slot_key,
        &value[HEADER_LEN..],
        &aad(tree, key, slot),
        || "a face template".to_owned(),
    )?);
    if plain.len() % 4 != 0 {
        return Err(StoreError::Corrupt("template length".into()));
    }
    Ok(Template {
        created_ms,
        embedding: plain
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    })
}

/// Templates sealed for one commit: (tree key, value).
pub(crate) type SealedTemplates = Vec<(Vec<u8>, Vec<u8>)>;

impl Store {
    /// Encrypts face templates for a commit that follows at once.
    pub(crate) fn seal_face_templates(
        &self,
        templates: &[(FaceRef, &[f32])],
        created_ms: u64,
    ) -> Result<SealedTemplates, StoreError> {
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        let (slot, key) = self.vault.reserve(&self.keys, templates.len() as u32)?;
        templates
            .iter()
            .map(|(face, embedding)| {
                let tree_key = face.key_bytes();
                let value = encrypt(TREE_TEMPLATES, &tree_key, slot, &key, created_ms, embedding)?;
                Ok((tree_key, value))
            })
            .collect()
    }

    fn open_template(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<Template, StoreError> {
        let (slot, _) =
            header(value).ok_or_else(|| StoreError::Corrupt("template header".into()))?;
        let slot_key = self.vault.key(slot).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "a face template uses slot {slot}, which has no key"
            ))
        })?;
        decrypt(tree, key, value, &slot_key)
    }

    /// Every face template, decrypted, in face order.
    pub fn face_templates(
        &self,
    ) -> impl Iterator<Item = Result<(FaceRef, Template), StoreError>> + '_ {
        self.templates.iter().map(move |entry| {
            let (key, value) = entry?;
            let face = FaceRef::from_key(&key)
                .ok_or_else(|| StoreError::Corrupt("template key".into()))?;
            Ok((face, self.open_template(TREE_TEMPLATES, &key, &value)?))
        })
    }

    pub fn face_template(&self, face: &FaceRef) -> Result<Option<Template>, StoreError> {
        let key = face.key_bytes();
        self.templates
            .get(&key)?
            .map(|value| self.open_template(TREE_TEMPLATES, &key, &value))
            .transpose()
    }

    /// Stores the one suppression template of a person who opted out.
    pub fn put_suppression_template(
        &self,
        person: &PersonId,
        embedding: &[f32],
    ) -> Result<(), StoreError> {
        let (slot, key) = self.vault.reserve(&self.keys, 1)?;
        let tree_key = person.as_str().as_bytes();
        let value = encrypt(
            TREE_SUPPRESSION,
            tree_key,
            slot,
            &key,
            crate::clock::now_ms(),
            embedding,
        )?;
        self.suppression.insert(tree_key, value)?;
        self.flush()
    }

    pub fn suppression_templates(&self) -> Result<Vec<(PersonId, Template)>, StoreError> {
        self.suppression
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let person = PersonId(
                    String::from_utf8(key.to_vec())
                        .map_err(|_| StoreError::Corrupt("suppression key".into()))?,
                );
                Ok((person, self.open_template(TREE_SUPPRESSION, &key, &value)?))
            })
            .collect()
    }

    /// Deletes templates so that nothing readable remains: the other templates
    /// of their slots move to fresh slots, then the old slot keys are removed
    /// from the key file. Returns how many templates were deleted.
    pub fn purge_templates(
        &self,
        faces: &[FaceRef],
        suppression: &[PersonId],
    ) -> Result<usize, StoreError> {
        let doomed_faces: BTreeSet<Vec<u8>> = faces.iter().map(FaceRef::key_bytes).collect();
        let doomed_persons: BTreeSet<Vec<u8>> = suppression
            .iter()
            .map(|p| p.as_str().as_bytes().to_vec())
            .collect();
        let mut affected = BTreeSet::new();
        let mut purged = 0;
        for (tree, doomed) in [
            (&self.templates, &doomed_faces),
            (&self.suppression, &doomed_persons),
        ] {
            for key in doomed {
                if let Some(value) = tree.get(key)? {
                    affected.insert(header(&value).map_or(u32::MAX, |h| h.0));
                    purged += 1;
                }
            }
        }
        if affected.is_empty() {
            return Ok(0);
        }
        // Survivors of the affected slots, decrypted (zeroised on drop).
        let mut survivors: Vec<(&str, sled::IVec, Template)> = Vec::new();
        for (name, tree, doomed) in [
            (TREE_TEMPLATES, &self.templates, &doomed_faces),
            (TREE_SUPPRESSION, &self.suppression, &doomed_persons),
        ] {
            for entry in tree.iter() {
                let (key, value) = entry?;
                let slot = header(&value).map_or(u32::MAX, |h| h.0);
                if affected.contains(&slot) && !doomed.contains(key.as_ref()) {
                    let template = self.open_template(name, &key, &value)?;
                    survivors.push((name, key, template));
                }
            }
        }
        // 1. Fresh slots for the survivors reach the key file first.
        let mut fresh: Vec<(u32, SecretKey)> = Vec::new();
        {
            let mut state = self.vault.state.lock().expect("vault lock");
            for _ in 0..survivors.len().div_ceil(SLOT_CAPACITY as usize) {
                let slot = state.next_slot;
                state.next_slot += 1;
                let key = SecretKey::random()?;
                state.keys.insert(slot, key.clone());
                fresh.push((slot, key));
            }
            if state.current.is_some_and(|s| affected.contains(&s)) {
                state.current = None;
            }
            self.vault.write_key_file(&self.keys, &state)?;
        }
        // 2. Re-encrypt survivors, delete the doomed, in one transaction.
        let mut rewrites: Vec<(&str, sled::IVec, Vec<u8>)> = Vec::new();
        for (i, (name, key, template)) in survivors.iter().enumerate() {
            let (slot, slot_key) = &fresh[i / SLOT_CAPACITY as usize];
            let value = encrypt(
                name,
                key,
                *slot,
                slot_key,
                template.created_ms,
                &template.embedding,
            )?;
            rewrites.push((name, key.clone(), value));
        }
        drop(survivors);
        let result =
            (&self.templates, &self.suppression).transaction(|(templates, suppression)| {
                for key in &doomed_faces {
                    templates.remove(key.as_slice())?;
                }
                for key in &doomed_persons {
                    suppression.remove(key.as_slice())?;
                }
                for (name, key, value) in &rewrites {
                    let tree = if *name == TREE_TEMPLATES {
                        templates
                    } else {
                        suppression
                    };
                    tree.insert(key.as_ref(), value.as_slice())?;
                }
                Ok(())
            });
        unwrap_tx(result)?;
        self.flush()?;
        // 3. Only now do the old keys leave the key file.
        let mut state = self.vault.state.lock().expect("vault lock");
        for slot in &affected {
            state.keys.remove(slot);
            state.counts.remove(slot);
        }
        for (i, (slot, _)) in fresh.iter().enumerate() {
            let n = rewrites.len().saturating_sub(i * SLOT_CAPACITY as usize);
            state
                .counts
                .insert(*slot, n.min(SLOT_CAPACITY as usize) as u32);
        }
        self.vault.write_key_file(&self.keys, &state)?;
        Ok(purged)
    }

    /// Number of slot keys in the key file.
    pub fn template_slot_count(&self) -> usize {
        self.vault.slot_count()
    }

    /// The raw stored value of a face's template (tests show it cannot be
    /// opened after a purge).
    #[cfg(test)]
    pub(crate) fn raw_face_template(&self, face: &FaceRef) -> Option<Vec<u8>> {
        self.templates
            .get(face.key_bytes())
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    /// Tries every key that remains on a raw template value.
    #[cfg(test)]
    pub(crate) fn any_key_opens(&self, face: &FaceRef, value: &[u8]) -> bool {
        let state = self.vault.state.lock().expect("vault lock");
        let key = face.key_bytes();
        state.keys.iter().any(|(slot, slot_key)| {
            let mut relabelled = value.to_vec();
            relabelled[..4].copy_from_slice(&slot.to_be_bytes());
            decrypt(TREE_TEMPLATES, &key, &relabelled, slot_key).is_ok()
        })
    }
}
