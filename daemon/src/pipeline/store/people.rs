//! The people side of the catalogue in sled: persons, the log of people
//! operations (for undo), the last clustering of unknown faces, and atomic
//! writes of face decisions into asset records.
//!
//! Input: typed records from `crate::people`. Output: sealed sled values.
//! Failure modes: sled errors, records that fail authentication, an asset or
//! face that vanished (reported, nothing written).
//!
//! Layout: `consentry-persons` (person id → sealed [`Person`]),
//! `consentry-people-ops` (sequence, big-endian → sealed [`PeopleOp`]),
//! `consentry-clusters` (one sealed [`ClusterSet`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, unwrap_tx};
use crate::domain::{Asset, AssetId, Attribution, FaceRef, Person, PersonId, TemplateStatus};

pub(super) const TREE_PERSONS: &str = "consentry-persons";
pub(super) const TREE_OPS: &str = "consentry-people-ops";
pub(super) const TREE_CLUSTERS: &str = "consentry-clusters";
const KEY_CLUSTERS: &[u8] = b"current";

/// A recorded change to persons (merge, split) and what it replaced, so it
/// can be undone exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeopleOp {
    pub seq: u64,
    /// `merge`, `split` or `undo`.
    pub kind: String,
    pub summary: String,
    pub at_ms: u64,
    pub before: Snapshot,
    pub after: Snapshot,
    #[serde(default)]
    pub undone_by: Option<u64>,
    #[serde(default)]
    pub undoes: Option<u64>,
}

/// The state of some persons (None: did not exist) and some faces' attributions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub persons: Vec<(PersonId, Option<Person>)>,
    pub faces: Vec<(FaceRef, Attribution)>,
}

/// The last full clustering of unknown faces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSet {
    pub computed_at_ms: u64,
    pub max_distance: f32,
    pub min_faces: usize,
    /// Each cluster's members and core faces, sorted; a cluster's id is its
    /// first member.
    pub clusters: Vec<crate::people::cluster::Cluster<FaceRef>>,
}

/// A face's new attribution, and its new template status if it changed.
pub type FaceChange = (FaceRef, Attribution, Option<TemplateStatus>);

/// One atomic write of people state.
#[derive(Debug, Default)]
pub struct PeopleWrite {
    pub persons: Vec<Person>,
    pub remove_persons: Vec<PersonId>,
    /// New attribution (and optionally template status) per face.
    pub faces: Vec<FaceChange>,
    /// Operations to insert or replace.
    pub ops: Vec<PeopleOp>,
}

impl Store {
    pub fn person(&self, id: &PersonId) -> Result<Option<Person>, StoreError> {
        let key = id.as_str().as_bytes();
        self.persons
            .get(key)?
            .map(|raw| self.unseal(TREE_PERSONS, key, &raw))
            .transpose()
    }

    /// Every person (merged ones included), in id order.
    pub fn persons(&self) -> impl Iterator<Item = Result<Person, StoreError>> + '_ {
        self.persons.iter().map(move |entry| {
            let (key, raw) = entry?;
            self.unseal(TREE_PERSONS, &key, &raw)
        })
    }

    /// The next operation sequence number (monotonic across restarts).
    pub fn next_op_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub fn people_op(&self, seq: u64) -> Result<Option<PeopleOp>, StoreError> {
        let key = seq.to_be_bytes();
        self.people_ops
            .get(key)?
            .map(|raw| self.unseal(TREE_OPS, &key, &raw))
            .transpose()
    }

    /// Every operation, oldest first.
    pub fn people_ops(&self) -> impl DoubleEndedIterator<Item = Result<PeopleOp, StoreError>> + '_ {
        self.people_ops.iter().map(move |entry| {
            let (key, raw) = entry?;
            self.unseal(TREE_OPS, &key, &raw)
        })
    }

    pub fn clusters(&self) -> Result<ClusterSet, StoreError> {
        Ok(self
            .cluster_sets
            .get(KEY_CLUSTERS)?
            .map(|raw| self.unseal(TREE_CLUSTERS, KEY_CLUSTERS, &raw))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_clusters(&self, set: &ClusterSet) -> Result<(), StoreError> {
        self.cluster_sets
            .insert(KEY_CLUSTERS, self.seal(TREE_CLUSTERS, KEY_CLUSTERS, set)?)?;
        self.flush()
    }

    /// Writes persons, face attributions and operations in one transaction,
    /// then flushes. Each touched asset is read inside the transaction, so a
    /// concurrent change to its other fields is never lost.
    pub fn write_people(&self, write: &PeopleWrite) -> Result<(), StoreError> {
        let mut by_asset: BTreeMap<&AssetId, Vec<&FaceChange>> = BTreeMap::new();
        for change in &write.faces {
            by_asset.entry(&change.0.asset).or_default().push(change);
        }
        let sealed_persons = write
            .persons
            .iter()
            .map(|p| {
                let key = p.id.as_str().as_bytes().to_vec();
                let value = self.seal(TREE_PERSONS, &key, p)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let sealed_ops = write
            .ops
            .iter()
            .map(|op| {
                let key = op.seq.to_be_bytes().to_vec();
                let value = self.seal(TREE_OPS, &key, op)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let now = crate::clock::now_ms();
        let result = (&self.assets, &self.persons, &self.people_ops).transaction(
            |(assets, persons, ops)| {
                for (asset_id, changes) in &by_asset {
                    let key = asset_id.key_bytes();
                    let raw = assets.get(&key)?.ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt(format!(
                            "asset {asset_id} is not in the catalogue"
                        )))
                    })?;
                    let mut asset: Asset = self
                        .unseal(super::TREE_ASSETS, &key, &raw)
                        .map_err(ConflictableTransactionError::Abort)?;
                    for (face_ref, attribution, template) in changes {
                        let face = asset
                            .faces
                            .iter_mut()
                            .find(|f| f.no == face_ref.no)
                            .ok_or_else(|| {
                                ConflictableTransactionError::Abort(StoreError::Corrupt(format!(
                                    "face {face_ref} is not in the catalogue"
                                )))
                            })?;
                        face.attribution = attribution.clone();
                        if let Some(status) = template {
                            face.template = *status;
                        }
                    }
                    asset.updated_at_ms = now;
                    let sealed = self
                        .seal(super::TREE_ASSETS, &key, &asset)
                        .map_err(ConflictableTransactionError::Abort)?;
                    assets.insert(key.as_slice(), sealed)?;
                }
                for (key, value) in &sealed_persons {
                    persons.insert(key.as_slice(), value.as_slice())?;
                }
                for id in &write.remove_persons {
                    persons.remove(id.as_str().as_bytes())?;
                }
                for (key, value) in &sealed_ops {
                    ops.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            },
        );
        unwrap_tx(result)?;
        self.flush()
    }

    /// Replaces an asset's faces after a re-run of the engine, storing the
    /// templates of faces marked [`TemplateStatus::Stored`]. The caller purged
    /// the old templates first.
    pub fn replace_faces(
        &self,
        id: &AssetId,
        faces: Vec<crate::domain::Face>,
    ) -> Result<(), StoreError> {
        let templates: Vec<(FaceRef, &[f32])> = faces
            .iter()
            .filter(|f| f.template == TemplateStatus::Stored && !f.embedding.is_empty())
            .map(|f| (f.face_ref(id), f.embedding.as_slice()))
            .collect();
        let sealed = self.seal_face_templates(&templates, crate::clock::now_ms())?;
        let key = id.key_bytes();
        let result = (&self.assets, &self.templates).transaction(|(assets, templates)| {
            let raw = assets.get(&key)?.ok_or_else(|| {
                ConflictableTransactionError::Abort(StoreError::Corrupt(format!(
                    "asset {id} is not in the catalogue"
                )))
            })?;
            let mut asset: Asset = self
                .unseal(super::TREE_ASSETS, &key, &raw)
                .map_err(ConflictableTransactionError::Abort)?;
            asset.faces = faces.clone();
            asset.updated_at_ms = crate::clock::now_ms();
            let value = self
                .seal(super::TREE_ASSETS, &key, &asset)
                .map_err(ConflictableTransactionError::Abort)?;
            assets.insert(key.as_slice(), value)?;
            for (k, v) in &sealed {
                templates.insert(k.as_slice(), v.as_slice())?;
            }
            Ok(())
        });
        unwrap_tx(result)?;
        self.flush()
    }
}
