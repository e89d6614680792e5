//! People: persons, the faces confirmed to them, suggestions, clusters of
//! unknown faces, and the template policy (GDPR Art. 9).
//!
//! Input: committed faces (from ingest), people's decisions (from the CLI and
//! later the console). Output: persons, face attributions and templates in
//! the store; answers to searches. Failure modes: unknown person or face,
//! decisions that contradict each other (named in [`PeopleError`]), store
//! errors.
//!
//! [`People`] keeps an in-memory index of every stored template (decrypted
//! once at start) and serialises every change to people state behind one
//! lock, so a template is never written after an opt-out purged its person.
//! The store stays the truth: the index is rebuilt from it at start and after
//! person-level operations (merge, split, undo, opt-out).
//!
//! Architecture Invariant: nothing becomes `Confirmed` without a person's
//! decision, except below `people.auto_confirm_distance` (off by default).
//! Architecture Invariant: a face's "not this person" and "not a face" are
//! never overridden by the matcher, a re-run of the engine or a restart.

pub mod cluster;
pub mod commands;
pub mod index;
pub mod matching;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::config::PeopleConfig;
use crate::domain::{
    Asset, AssetId, AssetStatus, Attribution, Face, FaceRef, Identity, Person, PersonId,
    PersonKind, Recognition, TemplateStatus,
};
use crate::pipeline::store::people::{ClusterSet, PeopleOp, PeopleWrite, Snapshot};
use crate::pipeline::store::{CommitOutcome, Store, StoreError, jobs::JobId};
use cluster::ClusterParams;
use index::{FaceIndex, Slot};
use matching::{FaceCandidates, Proposal};

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no person `{0}` (give the id from `consentry people list`, or the exact name)")]
    UnknownPerson(String),
    #[error("`{0}` matches more than one person; give the id from `consentry people list`")]
    AmbiguousName(String),
    #[error("no face {0} in the catalogue (faces are ASSET_ID:NO, see `consentry assets show`)")]
    UnknownFace(String),
    #[error("no cluster `{0}` (see `consentry clusters list`)")]
    UnknownCluster(String),
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, PeopleError>;

/// An asset and the numbers of some of its faces.
pub type AssetFaces = (AssetId, Vec<u32>);

/// The people service. Cheap to share (`Arc`).
pub struct People {
    store: Arc<Store>,
    config: PeopleConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every stored face template.
    all: FaceIndex,
    /// Confirmed faces of persons who have not opted out (the references).
    refs: FaceIndex,
    slot_of: HashMap<FaceRef, Slot>,
    face_of: HashMap<Slot, FaceRef>,
    created: HashMap<Slot, u64>,
    next_slot: Slot,
    ref_person: HashMap<Slot, PersonId>,
    suppress: Vec<(PersonId, Vec<f32>)>,
    persons: BTreeMap<PersonId, Person>,
    confirmed: BTreeMap<PersonId, BTreeSet<FaceRef>>,
    clusters: ClusterSet,
}

/// A person as listed, with counts.
#[derive(Debug, Clone, Serialize)]
pub struct PersonView {
    pub id: String,
    pub name: String,
    pub kind: PersonKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub recognition: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    pub confirmed_faces: usize,
    pub assets: usize,
    pub created_at: String,
}

/// One face found by a search.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub face: String,
    pub asset: String,
    pub distance: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_name: Option<String>,
}

/// One cluster of unknown faces.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClusterView {
    pub id: String,
    pub size: usize,
    pub faces: Vec<String>,
}

/// People at a glance, for `consentry status`.
#[derive(Debug, Clone, Serialize)]
pub struct PeopleStatus {
    /// Collections with recognition on (`*`: all); empty: off.
    pub recognition: Vec<String>,
    pub persons: usize,
    pub templates: usize,
    pub suppression_templates: usize,
    pub clusters: usize,
    pub template_retention_days: u64,
}

/// What a maintenance run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    pub purged_templates: usize,
    pub clusters: usize,
    pub clustered_faces: usize,
}

impl People {
    /// Loads persons, face attributions and every template (decrypted into memory).
    pub fn open(store: Arc<Store>, config: PeopleConfig) -> Result<People> {
        let people = People {
            store,
            config,
            state: Mutex::new(State::default()),
        };
        people.reload()?;
        Ok(people)
    }

    pub fn config(&self) -> &PeopleConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cluster_params(&self) -> ClusterParams {
        ClusterParams {
            max_distance: self.config.cluster_distance,
            min_faces: self.config.cluster_min_faces,
        }
    }

    /// Rebuilds the in-memory state from the store.
    pub fn reload(&self) -> Result<()> {
        let state = self.load()?;
        *self.lock() = state;
        Ok(())
    }

    /// The in-memory state as the store has it. Callers that changed the
    /// store under the lock assign it before they let go, so no other change
    /// slips in between.
    fn load(&self) -> Result<State> {
        let mut state = State::default();
        for person in self.store.persons() {
            let person = person?;
            state.persons.insert(person.id.clone(), person);
        }
        let mut confirmed_faces: HashMap<FaceRef, PersonId> = HashMap::new();
        for asset in self.store.assets() {
            let asset = asset?;
            for face in &asset.faces {
                if let Some(person) = face.attribution.confirmed() {
                    let face_ref = face.face_ref(&asset.id);
                    state
                        .confirmed
                        .entry(person.clone())
                        .or_default()
                        .insert(face_ref.clone());
                    confirmed_faces.insert(face_ref, person.clone());
                }
            }
        }
        for entry in self.store.face_templates() {
            let (face, template) = entry?;
            let slot = state.add_template(&face, template.created_ms, &template.embedding);
            if let Some(person) = confirmed_faces.get(&face) {
                state.make_reference(slot, person);
            }
        }
        state.suppress = self
            .store
            .suppression_templates()?
            .into_iter()
            .map(|(p, t)| (p, t.embedding))
            .collect();
        state.clusters = self.store.clusters()?;
        // A face whose template is gone (purged, or its photo erased) is in
        // no cluster.
        let gone: Vec<FaceRef> = state
            .clusters
            .clusters
            .iter()
            .flat_map(|c| c.members.iter())
            .filter(|f| !state.slot_of.contains_key(*f))
            .cloned()
            .collect();
        for face in &gone {
            state.remove_from_clusters(face);
        }
        Ok(state)
    }

    // ---- ingest ----------------------------------------------------------------

    /// Commits a freshly ingested asset: decides each face's template status
    /// (recognition on for the collection? an opted-out person?) and its
    /// suggestion, then commits asset and templates in one transaction.
    pub fn commit_asset(&self, asset: &mut Asset, job: Option<JobId>) -> Result<CommitOutcome> {
        let mut state = self.lock();
        if asset.status == AssetStatus::Ready {
            self.prepare_faces(&state, &asset.collection, &mut asset.faces);
        }
        let outcome = self.store.commit_asset(asset, job)?;
        if outcome == CommitOutcome::Created {
            state.index_new_faces(&asset.id, &asset.faces, crate::clock::now_ms());
            let params = self.cluster_params();
            state.assign_to_clusters(&asset.id, &asset.faces, &params);
        }
        Ok(outcome)
    }

    /// Template status and proposals for faces that are about to be stored.
    /// Faces that carry a confirmed identity (re-detection) keep it.
    fn prepare_faces(&self, state: &State, collection: &str, faces: &mut [Face]) {
        let recognise = self.config.recognises(collection);
        for face in faces.iter_mut() {
            face.template = if face.embedding.is_empty() || face.attribution.not_a_face {
                TemplateStatus::None
            } else if !recognise {
                TemplateStatus::RecognitionOff
            } else if state.suppressed(&face.embedding, self.config.suggest_distance) {
                TemplateStatus::Suppressed
            } else if face
                .attribution
                .confirmed()
                .and_then(|p| state.persons.get(p))
                .is_some_and(|p| p.recognition == Recognition::OptedOut)
            {
                TemplateStatus::Purged
            } else {
                TemplateStatus::Stored
            };
        }
        let proposals = self.proposals(state, faces, |f| {
            (f.template == TemplateStatus::Stored).then_some(f.embedding.as_slice())
        });
        for (face, proposal) in faces.iter_mut().zip(proposals) {
            self.apply_proposal(&mut face.attribution, proposal);
        }
    }

    /// Proposals for all faces of one photo; `template` gives a face's
    /// template where it may be matched.
    fn proposals<'a>(
        &self,
        state: &State,
        faces: &'a [Face],
        template: impl Fn(&'a Face) -> Option<&'a [f32]>,
    ) -> Vec<Option<Proposal>> {
        let mut open = Vec::new();
        let mut confirmed = Vec::new();
        for face in faces {
            if let Some(person) = face.attribution.confirmed() {
                confirmed.push((face.no, person.clone()));
            }
        }
        let mut which = Vec::new();
        for (i, face) in faces.iter().enumerate() {
            if face.attribution.confirmed().is_some() || face.attribution.not_a_face {
                continue;
            }
            let Some(embedding) = template(face) else {
                continue;
            };
            open.push(FaceCandidates {
                no: face.no,
                candidates: state.candidates(
                    embedding,
                    self.config.suggest_distance,
                    &face.attribution.rejected,
                ),
            });
            which.push(i);
        }
        let mut out = vec![None; faces.len()];
        for (i, proposal) in which.into_iter().zip(matching::propose(&open, &confirmed)) {
            out[i] = Some(proposal);
        }
        out
    }

    fn apply_proposal(&self, attribution: &mut Attribution, proposal: Option<Proposal>) {
        let Some(proposal) = proposal else {
            return;
        };
        attribution.review = None;
        attribution.identity = match proposal {
            Proposal::None => None,
            Proposal::Suggest { person, distance } => {
                if self.config.auto_confirm_distance > 0.0
                    && distance < self.config.auto_confirm_distance
                {
                    Some(Identity::Confirmed {
                        person,
                        distance: Some(distance),
                        by: "auto".to_owned(),
                        at_ms: crate::clock::now_ms(),
                    })
                } else {
                    Some(Identity::Suggested { person, distance })
                }
            }
            Proposal::Review {
                person,
                distance,
                other,
            } => {
                attribution.review = Some(format!(
                    "resembles person {person} (distance {distance:.3}), who is closer on face {other} or confirmed there"
                ));
                None
            }
        };
    }

    /// Recomputes the suggestions of every unconfirmed face of these assets.
    fn rematch(&self, state: &State, assets: &BTreeSet<AssetId>) -> Result<()> {
        let mut write = PeopleWrite::default();
        for id in assets {
            let Some(asset) = self.store.asset(id)? else {
                continue;
            };
            let proposals = self.proposals(state, &asset.faces, |f| {
                state
                    .slot_of
                    .get(&f.face_ref(&asset.id))
                    .and_then(|s| state.all.get(*s))
            });
            for (face, proposal) in asset.faces.iter().zip(proposals) {
                let mut attribution = face.attribution.clone();
                if proposal.is_none() {
                    // Unmatchable now (no template): drop a stale suggestion.
                    if attribution.suggested().is_some() {
                        attribution.identity = None;
                    }
                } else {
                    self.apply_proposal(&mut attribution, proposal);
                }
                if attribution != face.attribution {
                    write
                        .faces
                        .push((face.face_ref(&asset.id), attribution, None));
                }
            }
        }
        if !write.faces.is_empty() {
            self.store.write_people(&write)?;
        }
        Ok(())
    }

    /// Assets with a face within the suggest distance of `embedding`.
    fn assets_near(&self, state: &State, embedding: &[f32]) -> BTreeSet<AssetId> {
        state
            .all
            .within(embedding, self.config.suggest_distance)
            .into_iter()
            .filter_map(|(slot, _)| state.face_of.get(&slot).map(|f| f.asset.clone()))
            .collect()
    }

    // ---- persons ---------------------------------------------------------------

    pub fn add_person(
        &self,
        name: &str,
        kind: PersonKind,
        external_ref: Option<String>,
        notes: Option<String>,
    ) -> Result<Person> {
        let name = name.trim();
        if name.is_empty() {
            return Err(PeopleError::Refused("a person needs a name".into()));
        }
        let now = crate::clock::now_ms();
        let person = Person {
            id: PersonId::random().map_err(StoreError::from)?,
            name: name.to_owned(),
            kind,
            external_ref,
            notes,
            recognition: Recognition::NoBasis,
            merged_into: None,
            birth_date: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let mut state = self.lock();
        self.store.write_people(&PeopleWrite {
            persons: vec![person.clone()],
            ..PeopleWrite::default()
        })?;
        state.persons.insert(person.id.clone(), person.clone());
        Ok(person)
    }

    /// Finds a person by id or exact (case-insensitive) name; merged persons
    /// resolve to the person they were merged into.
    pub fn resolve(&self, text: &str) -> Result<Person> {
        let state = self.lock();
        state.resolve(text)
    }

    pub fn status(&self) -> PeopleStatus {
        let state = self.lock();
        PeopleStatus {
            recognition: self.config.recognition.clone(),
            persons: state
                .persons
                .values()
                .filter(|p| p.merged_into.is_none())
                .count(),
            templates: state.all.len(),
            suppression_templates: state.suppress.len(),
            clusters: state.clusters.clusters.len(),
            template_retention_days: self.config.template_retention.as_secs() / 86_400,
        }
    }

    /// A person's name, by id.
    pub fn name_of(&self, id: &str) -> Option<String> {
        let state = self.lock();
        state
            .persons
            .get(&PersonId(id.to_owned()))
            .map(|p| p.name.clone())
    }

    /// Every person (merged ones included), for decisions.
    pub fn persons(&self) -> BTreeMap<PersonId, Person> {
        self.lock().persons.clone()
    }

    /// Changes a person's kind and/or date of birth (what decides whether a
    /// guardian must sign).
    pub fn edit_person(
        &self,
        person: &str,
        kind: Option<PersonKind>,
        birth_date: Option<jiff::civil::Date>,
    ) -> Result<Person> {
        let mut state = self.lock();
        let mut person = state.resolve(person)?;
        if let Some(kind) = kind {
            person.kind = kind;
        }
        if let Some(date) = birth_date {
            person.birth_date = Some(date);
        }
        person.updated_at_ms = crate::clock::now_ms();
        self.store.write_people(&PeopleWrite {
            persons: vec![person.clone()],
            ..PeopleWrite::default()
        })?;
        state.persons.insert(person.id.clone(), person.clone());
        Ok(person)
    }

    /// Follows the recognition basis that consents give (GDPR Art. 9): with a
    /// valid consent covering recognition the person becomes `allowed`;
    /// without one an `allowed` person falls back to `no-basis` and their
    /// templates are purged at once. An opt-out is never changed here.
    /// Returns the new state when it changed.
    pub fn follow_recognition_basis(
        &self,
        person: &PersonId,
        has_basis: bool,
    ) -> Result<Option<Recognition>> {
        let current = {
            let state = self.lock();
            match state.persons.get(person) {
                Some(p) => p.recognition,
                None => return Ok(None),
            }
        };
        let next = match (current, has_basis) {
            (Recognition::OptedOut, _) => return Ok(None),
            (Recognition::Allowed, true) | (Recognition::NoBasis, false) => return Ok(None),
            (_, true) => Recognition::Allowed,
            (_, false) => Recognition::NoBasis,
        };
        self.set_recognition(person.as_str(), next)?;
        if next == Recognition::NoBasis {
            let mut state = self.lock();
            let faces: Vec<FaceRef> = state
                .confirmed
                .get(person)
                .into_iter()
                .flatten()
                .filter(|f| state.slot_of.contains_key(f))
                .cloned()
                .collect();
            if !faces.is_empty() {
                self.store.purge_templates(&faces, &[])?;
                let mut write = PeopleWrite::default();
                for face in &faces {
                    let (_, current) = self.face(face)?;
                    write.faces.push((
                        face.clone(),
                        current.attribution,
                        Some(TemplateStatus::Purged),
                    ));
                }
                self.store.write_people(&write)?;
                *state = self.load()?;
            }
        }
        Ok(Some(next))
    }

    /// Marks a face as incidental (a background crowd) or clears the mark.
    pub fn set_incidental(&self, face: &FaceRef, incidental: bool) -> Result<()> {
        let _state = self.lock();
        let (_, current) = self.face(face)?;
        let mut attribution = current.attribution;
        attribution.incidental = incidental;
        self.store.write_people(&PeopleWrite {
            faces: vec![(face.clone(), attribution, None)],
            ..PeopleWrite::default()
        })?;
        Ok(())
    }

    pub fn list(&self, include_merged: bool) -> Vec<PersonView> {
        let state = self.lock();
        state
            .persons
            .values()
            .filter(|p| include_merged || p.merged_into.is_none())
            .map(|p| state.view(p))
            .collect()
    }

    pub fn show(&self, text: &str) -> Result<(PersonView, Vec<String>)> {
        let state = self.lock();
        let person = state.resolve(text)?;
        let faces = state
            .confirmed
            .get(&person.id)
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        Ok((state.view(&person), faces))
    }

    // ---- face decisions --------------------------------------------------------

    /// "This face is person P" (enrolment from a catalogue face, or review).
    pub fn confirm(&self, face: &FaceRef, person: &str) -> Result<()> {
        let mut state = self.lock();
        let person = state.resolve(person)?;
        let (_, current) = self.face(face)?;
        if current.attribution.not_a_face {
            return Err(PeopleError::Refused(format!(
                "face {face} was marked \"not a face\"; it cannot be a person"
            )));
        }
        // A person may confirm the same person twice in one photo (a collage,
        // a mirror, a poster); only the matcher never proposes that.
        let mut attribution = current.attribution.clone();
        let distance = attribution.suggested().map(|(_, d)| d);
        attribution.rejected.retain(|p| *p != person.id);
        attribution.review = None;
        attribution.dismissed = false;
        attribution.identity = Some(Identity::Confirmed {
            person: person.id.clone(),
            distance,
            by: "user".to_owned(),
            at_ms: crate::clock::now_ms(),
        });
        let mut template = None;
        if person.recognition == Recognition::OptedOut && current.template == TemplateStatus::Stored
        {
            // Honour the opt-out: the template of a face now known to be theirs goes.
            self.store
                .purge_templates(std::slice::from_ref(face), &[])?;
            state.remove_template(face);
            template = Some(TemplateStatus::Purged);
        }
        let previous = current.attribution.confirmed().cloned();
        self.store.write_people(&PeopleWrite {
            faces: vec![(face.clone(), attribution, template)],
            ..PeopleWrite::default()
        })?;
        if let Some(previous) = previous {
            state.unconfirm(face, &previous);
        }
        state.confirm(face, &person);
        state.remove_from_clusters(face);
        let mut affected: BTreeSet<AssetId> = BTreeSet::from([face.asset.clone()]);
        if let Some(embedding) = state.slot_of.get(face).and_then(|s| state.all.get(*s)) {
            affected.extend(self.assets_near(&state, embedding));
        }
        self.rematch(&state, &affected)
    }

    /// "Not this person": the face's current (or the given) person is
    /// rejected for good; the face is matched again without them.
    pub fn reject(&self, face: &FaceRef, person: Option<&str>) -> Result<PersonId> {
        let mut state = self.lock();
        let (_, current) = self.face(face)?;
        let person = match person {
            Some(text) => state.resolve(text)?.id,
            None => current
                .attribution
                .person()
                .cloned()
                .ok_or_else(|| {
                    PeopleError::Refused(format!(
                        "face {face} has no suggested or confirmed person; name the person to reject with --person"
                    ))
                })?,
        };
        let mut attribution = current.attribution.clone();
        if !attribution.rejected.contains(&person) {
            attribution.rejected.push(person.clone());
        }
        let was_confirmed = attribution.confirmed() == Some(&person);
        if attribution.person() == Some(&person) {
            attribution.identity = None;
        }
        attribution.review = None;
        self.store.write_people(&PeopleWrite {
            faces: vec![(face.clone(), attribution, None)],
            ..PeopleWrite::default()
        })?;
        let mut affected = BTreeSet::from([face.asset.clone()]);
        if was_confirmed {
            if let Some(embedding) = state.slot_of.get(face).and_then(|s| state.all.get(*s)) {
                affected.extend(self.assets_near(&state, embedding));
            }
            state.unconfirm(face, &person);
        }
        self.rematch(&state, &affected)?;
        Ok(person)
    }

    /// "Not a face": its template is purged; it is never matched or clustered.
    pub fn not_a_face(&self, face: &FaceRef) -> Result<()> {
        let mut state = self.lock();
        let (_, current) = self.face(face)?;
        let mut attribution = current.attribution.clone();
        let previous = attribution.confirmed().cloned();
        attribution.identity = None;
        attribution.not_a_face = true;
        attribution.review = None;
        let template = if current.template == TemplateStatus::Stored {
            self.store
                .purge_templates(std::slice::from_ref(face), &[])?;
            Some(TemplateStatus::Purged)
        } else {
            None
        };
        let near = state
            .slot_of
            .get(face)
            .and_then(|s| state.all.get(*s))
            .map(|e| self.assets_near(&state, e))
            .unwrap_or_default();
        self.store.write_people(&PeopleWrite {
            faces: vec![(face.clone(), attribution, template)],
            ..PeopleWrite::default()
        })?;
        if let Some(previous) = previous {
            state.unconfirm(face, &previous);
        }
        state.remove_template(face);
        state.remove_from_clusters(face);
        let mut affected = near;
        affected.insert(face.asset.clone());
        self.rematch(&state, &affected)
    }

    fn face(&self, face: &FaceRef) -> Result<(Asset, Face)> {
        let asset = self
            .store
            .asset(&face.asset)?
            .ok_or_else(|| PeopleError::UnknownFace(face.to_string()))?;
        let found = asset
            .faces
            .iter()
            .find(|f| f.no == face.no)
            .cloned()
            .ok_or_else(|| PeopleError::UnknownFace(face.to_string()))?;
        Ok((asset, found))
    }

    // ---- merge, split, undo ----------------------------------------------------

    /// Merges `from` into `into`: every face confirmed to, suggested as or
    /// rejected for `from` now refers to `into`. Recorded for undo.
    pub fn merge(&self, into: &str, from: &str) -> Result<u64> {
        let (mut state, op) = {
            let state = self.lock();
            let into = state.resolve(into)?;
            let from = state.resolve(from)?;
            if into.id == from.id {
                return Err(PeopleError::Refused(
                    "a person cannot be merged into themselves".into(),
                ));
            }
            if (into.recognition == Recognition::OptedOut)
                != (from.recognition == Recognition::OptedOut)
            {
                return Err(PeopleError::Refused(format!(
                    "only one of {} and {} opted out of recognition; settle that before merging",
                    into.name, from.name
                )));
            }
            let mut before = Snapshot::default();
            let mut after = Snapshot::default();
            let mut merged = from.clone();
            merged.merged_into = Some(into.id.clone());
            merged.updated_at_ms = crate::clock::now_ms();
            before.persons.push((from.id.clone(), Some(from.clone())));
            after.persons.push((from.id.clone(), Some(merged)));
            for asset in self.store.assets() {
                let asset = asset?;
                let has_into = asset
                    .faces
                    .iter()
                    .any(|f| f.attribution.confirmed() == Some(&into.id));
                for face in &asset.faces {
                    let a = &face.attribution;
                    let mentions = a.rejected.contains(&from.id) || a.person() == Some(&from.id);
                    if !mentions {
                        continue;
                    }
                    let mut new = a.clone();
                    for p in &mut new.rejected {
                        if *p == from.id {
                            *p = into.id.clone();
                        }
                    }
                    let mut seen = BTreeSet::new();
                    new.rejected.retain(|p| seen.insert(p.clone()));
                    match &mut new.identity {
                        Some(Identity::Confirmed { person, .. }) if *person == from.id => {
                            if has_into {
                                return Err(PeopleError::Refused(format!(
                                    "photo {} shows both {} and {} as confirmed faces; they are two people",
                                    asset.id, into.name, from.name
                                )));
                            }
                            *person = into.id.clone();
                        }
                        Some(Identity::Suggested { person, .. }) if *person == from.id => {
                            *person = into.id.clone();
                        }
                        _ => {}
                    }
                    if new.rejected.contains(&into.id) && new.confirmed() == Some(&into.id) {
                        new.rejected.retain(|p| *p != into.id);
                    }
                    before.faces.push((face.face_ref(&asset.id), a.clone()));
                    after.faces.push((face.face_ref(&asset.id), new));
                }
            }
            let op = PeopleOp {
                seq: self.store.next_op_seq()?,
                kind: "merge".into(),
                summary: format!(
                    "merged {} ({}) into {} ({})",
                    from.name, from.id, into.name, into.id
                ),
                at_ms: crate::clock::now_ms(),
                before,
                after,
                undone_by: None,
                undoes: None,
            };
            (state, op)
        };
        self.apply_op(&mut state, op)
    }

    /// Moves `faces` (confirmed to `person`) to a new person named `name`.
    pub fn split(&self, person: &str, faces: &[FaceRef], name: &str) -> Result<(u64, PersonId)> {
        let (mut state, op, new_id) = {
            let state = self.lock();
            let person = state.resolve(person)?;
            if faces.is_empty() {
                return Err(PeopleError::Refused(
                    "name the faces to split off with --face".into(),
                ));
            }
            let mut before = Snapshot::default();
            let mut after = Snapshot::default();
            let now = crate::clock::now_ms();
            let new_person = Person {
                id: PersonId::random().map_err(StoreError::from)?,
                name: name.trim().to_owned(),
                kind: person.kind,
                external_ref: None,
                notes: Some(format!("split from {} ({})", person.name, person.id)),
                recognition: person.recognition,
                merged_into: None,
                birth_date: None,
                created_at_ms: now,
                updated_at_ms: now,
            };
            if new_person.name.is_empty() {
                return Err(PeopleError::Refused(
                    "the new person needs a name (--name)".into(),
                ));
            }
            before.persons.push((new_person.id.clone(), None));
            after
                .persons
                .push((new_person.id.clone(), Some(new_person.clone())));
            for face in faces {
                let (_, current) = self.face(face)?;
                if current.attribution.confirmed() != Some(&person.id) {
                    return Err(PeopleError::Refused(format!(
                        "face {face} is not confirmed as {}; only their confirmed faces can be split off",
                        person.name
                    )));
                }
                let mut new = current.attribution.clone();
                if let Some(Identity::Confirmed { person: p, .. }) = &mut new.identity {
                    *p = new_person.id.clone();
                }
                before
                    .faces
                    .push((face.clone(), current.attribution.clone()));
                after.faces.push((face.clone(), new));
            }
            let op = PeopleOp {
                seq: self.store.next_op_seq()?,
                kind: "split".into(),
                summary: format!(
                    "split {} face(s) of {} ({}) off as {} ({})",
                    faces.len(),
                    person.name,
                    person.id,
                    new_person.name,
                    new_person.id
                ),
                at_ms: now,
                before,
                after,
                undone_by: None,
                undoes: None,
            };
            (state, op, new_person.id)
        };
        Ok((self.apply_op(&mut state, op)?, new_id))
    }

    /// Restores what operation `seq` changed, if nothing changed it since.
    pub fn undo(&self, seq: Option<u64>) -> Result<u64> {
        let (mut state, op) = {
            let state = self.lock();
            let target = match seq {
                Some(seq) => self
                    .store
                    .people_op(seq)?
                    .ok_or_else(|| PeopleError::Refused(format!("no operation {seq}")))?,
                None => {
                    let mut last = None;
                    for op in self.store.people_ops().rev() {
                        let op = op?;
                        if op.undone_by.is_none() && op.undoes.is_none() {
                            last = Some(op);
                            break;
                        }
                    }
                    last.ok_or_else(|| PeopleError::Refused("nothing to undo".into()))?
                }
            };
            if let Some(by) = target.undone_by {
                return Err(PeopleError::Refused(format!(
                    "operation {} was already undone (by {by})",
                    target.seq
                )));
            }
            if target.undoes.is_some() {
                return Err(PeopleError::Refused(
                    "an undo cannot itself be undone; redo the change instead".into(),
                ));
            }
            // Refuse if anything it touched changed since.
            for (id, expected) in &target.after.persons {
                if self.store.person(id)? != *expected {
                    return Err(PeopleError::Refused(format!(
                        "person {id} changed after operation {}; undo the later change first",
                        target.seq
                    )));
                }
            }
            for (face, expected) in &target.after.faces {
                let (_, current) = self.face(face)?;
                if current.attribution != *expected {
                    return Err(PeopleError::Refused(format!(
                        "face {face} changed after operation {}; undo the later change first",
                        target.seq
                    )));
                }
            }
            let op = PeopleOp {
                seq: self.store.next_op_seq()?,
                kind: "undo".into(),
                summary: format!("undid operation {}: {}", target.seq, target.summary),
                at_ms: crate::clock::now_ms(),
                before: target.after.clone(),
                after: target.before.clone(),
                undone_by: None,
                undoes: Some(target.seq),
            };
            (state, op)
        };
        self.apply_op(&mut state, op)
    }

    /// Writes an operation's "after" state and records it; the caller holds
    /// the lock from the check that built it to here.
    fn apply_op(&self, state: &mut State, op: PeopleOp) -> Result<u64> {
        let seq = op.seq;
        {
            let mut write = PeopleWrite::default();
            for (id, person) in &op.after.persons {
                match person {
                    Some(p) => write.persons.push(p.clone()),
                    None => write.remove_persons.push(id.clone()),
                }
            }
            for (face, attribution) in &op.after.faces {
                write.faces.push((face.clone(), attribution.clone(), None));
            }
            if let Some(undone) = op.undoes {
                let mut target = self
                    .store
                    .people_op(undone)?
                    .ok_or_else(|| PeopleError::Refused(format!("no operation {undone}")))?;
                target.undone_by = Some(seq);
                write.ops.push(target);
            }
            write.ops.push(op);
            self.store.write_people(&write)?;
        }
        *state = self.load()?;
        Ok(seq)
    }

    /// The operations log, newest first.
    pub fn history(&self) -> Result<Vec<PeopleOp>> {
        let mut ops = self
            .store
            .people_ops()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ops.reverse();
        Ok(ops)
    }

    // ---- recognition basis -----------------------------------------------------

    /// Sets a person's recognition basis. An opt-out deletes every template
    /// of the person (keeping one, re-encrypted, as a suppression template
    /// so new photos of them are neither matched nor stored) and cannot be undone.
    pub fn set_recognition(&self, person: &str, recognition: Recognition) -> Result<usize> {
        let mut state = self.lock();
        let mut person = state.resolve(person)?;
        if person.recognition == recognition {
            return Ok(0);
        }
        let mut purged = 0;
        let mut write = PeopleWrite::default();
        if recognition == Recognition::OptedOut {
            let faces: Vec<FaceRef> = state
                .confirmed
                .get(&person.id)
                .into_iter()
                .flatten()
                .filter(|f| state.slot_of.contains_key(f))
                .cloned()
                .collect();
            // The suppression template: the confirmed face most like the others.
            let suppression = state.medoid(&faces);
            if let Some(embedding) = &suppression {
                self.store.put_suppression_template(&person.id, embedding)?;
            }
            purged = self.store.purge_templates(&faces, &[])?;
            for face in &faces {
                let (_, current) = self.face(face)?;
                write.faces.push((
                    face.clone(),
                    current.attribution,
                    Some(TemplateStatus::Purged),
                ));
            }
            // Faces merely suggested as them lose the suggestion.
            for asset in self.store.assets() {
                let asset = asset?;
                for face in &asset.faces {
                    if face
                        .attribution
                        .suggested()
                        .is_some_and(|(p, _)| *p == person.id)
                    {
                        let mut a = face.attribution.clone();
                        a.identity = None;
                        write.faces.push((face.face_ref(&asset.id), a, None));
                    }
                }
            }
        }
        person.recognition = recognition;
        person.updated_at_ms = crate::clock::now_ms();
        write.persons.push(person);
        self.store.write_people(&write)?;
        *state = self.load()?;
        Ok(purged)
    }

    /// Art. 17 for a person's biometric data: every template of a face
    /// confirmed to or suggested as them, and their suppression template, are
    /// purged; suggestions of them are cleared; recognition becomes opted-out
    /// without a suppression template (nothing biometric of them remains).
    /// Returns how many templates were purged.
    pub fn erase_biometrics(&self, person: &PersonId) -> Result<usize> {
        let mut state = self.lock();
        let mut person = state.resolve(person.as_str())?;
        let mut faces = Vec::new();
        let mut write = PeopleWrite::default();
        for asset in self.store.assets() {
            let asset = asset?;
            for face in &asset.faces {
                let face_ref = face.face_ref(&asset.id);
                if face.attribution.confirmed() == Some(&person.id) {
                    faces.push(face_ref.clone());
                    write.faces.push((
                        face_ref,
                        face.attribution.clone(),
                        Some(TemplateStatus::Purged),
                    ));
                } else if face
                    .attribution
                    .suggested()
                    .is_some_and(|(p, _)| *p == person.id)
                {
                    faces.push(face_ref.clone());
                    let mut a = face.attribution.clone();
                    a.identity = None;
                    write
                        .faces
                        .push((face_ref, a, Some(TemplateStatus::Purged)));
                }
            }
        }
        let purged = self
            .store
            .purge_templates(&faces, std::slice::from_ref(&person.id))?;
        person.recognition = Recognition::OptedOut;
        person.updated_at_ms = crate::clock::now_ms();
        write.persons.push(person);
        self.store.write_people(&write)?;
        *state = self.load()?;
        Ok(purged)
    }

    // ---- maintenance -----------------------------------------------------------

    /// Purges templates past the retention period (unless confirmed to a
    /// person with a recognition basis) and re-clusters the unknown faces.
    pub fn maintain(&self, now_ms: u64) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        {
            let mut state = self.lock();
            let limit = now_ms.saturating_sub(
                u64::try_from(self.config.template_retention.as_millis()).unwrap_or(u64::MAX),
            );
            let mut expired = Vec::new();
            for (face, slot) in &state.slot_of {
                let created = state.created.get(slot).copied().unwrap_or(0);
                if created >= limit {
                    continue;
                }
                let kept = state.ref_person.get(slot).is_some_and(|p| {
                    state
                        .persons
                        .get(p)
                        .is_some_and(|p| p.recognition == Recognition::Allowed)
                });
                if !kept {
                    expired.push(face.clone());
                }
            }
            expired.sort();
            if !expired.is_empty() {
                report.purged_templates = self.store.purge_templates(&expired, &[])?;
                let mut write = PeopleWrite::default();
                for face in &expired {
                    if let Ok((_, current)) = self.face(face) {
                        let mut a = current.attribution;
                        if a.suggested().is_some() {
                            a.identity = None;
                        }
                        write
                            .faces
                            .push((face.clone(), a, Some(TemplateStatus::Purged)));
                    }
                }
                self.store.write_people(&write)?;
                log::info!(target: "consentry::people", purged = report.purged_templates; "purged face templates past the retention period");
                *state = self.load()?;
            }
        }
        let set = self.recluster()?;
        report.clusters = set.clusters.len();
        report.clustered_faces = set.clusters.iter().map(|c| c.members.len()).sum();
        Ok(report)
    }

    /// Clusters all unknown faces from scratch (the result depends only on
    /// the faces, not on the order they arrived in) and stores the result.
    pub fn recluster(&self) -> Result<ClusterSet> {
        let mut state = self.lock();
        let mut unknown = BTreeSet::new();
        for asset in self.store.assets() {
            let asset = asset?;
            for face in &asset.faces {
                let a = &face.attribution;
                if a.identity.is_none() && !a.not_a_face && !a.dismissed {
                    unknown.insert(face.face_ref(&asset.id));
                }
            }
        }
        let points: Vec<(FaceRef, &[f32])> = unknown
            .into_iter()
            .filter_map(|f| {
                let e = state.slot_of.get(&f).and_then(|s| state.all.get(*s))?;
                Some((f, e))
            })
            .collect();
        let params = self.cluster_params();
        let clusters = cluster::cluster(&points, &params);
        let set = ClusterSet {
            computed_at_ms: crate::clock::now_ms(),
            max_distance: params.max_distance,
            min_faces: params.min_faces,
            clusters,
        };
        self.store.put_clusters(&set)?;
        state.clusters = set.clone();
        Ok(set)
    }

    pub fn clusters(&self) -> Vec<ClusterView> {
        let state = self.lock();
        state
            .clusters
            .clusters
            .iter()
            .map(|c| ClusterView {
                id: c.id().to_string(),
                size: c.members.len(),
                faces: c.members.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }

    fn cluster_members(&self, id: &str) -> Result<Vec<FaceRef>> {
        let state = self.lock();
        state
            .clusters
            .clusters
            .iter()
            .find(|c| c.id().to_string() == id)
            .map(|c| c.members.clone())
            .ok_or_else(|| PeopleError::UnknownCluster(id.to_owned()))
    }

    /// Names a cluster: its faces are confirmed as `person` (an existing
    /// person's id or name, or a new person with that name). Faces that
    /// rejected the person, or whose photo already shows them, are skipped.
    pub fn name_cluster(
        &self,
        id: &str,
        person: &str,
        kind: PersonKind,
    ) -> Result<(PersonId, usize)> {
        let members = self.cluster_members(id)?;
        let person = match self.resolve(person) {
            Ok(p) => p,
            Err(PeopleError::UnknownPerson(_)) => self.add_person(person, kind, None, None)?,
            Err(e) => return Err(e),
        };
        let mut confirmed = 0;
        for face in &members {
            match self.confirm(face, person.id.as_str()) {
                Ok(()) => confirmed += 1,
                Err(PeopleError::Refused(reason)) => {
                    log::info!(target: "consentry::people", face = face.to_string().as_str(); "not confirmed while naming a cluster: {reason}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((person.id, confirmed))
    }

    /// Dismisses a cluster: its faces stay unknown and are left out of clustering.
    pub fn dismiss_cluster(&self, id: &str) -> Result<usize> {
        let members = self.cluster_members(id)?;
        let mut state = self.lock();
        let mut write = PeopleWrite::default();
        for face in &members {
            let (_, current) = self.face(face)?;
            let mut a = current.attribution;
            a.dismissed = true;
            write.faces.push((face.clone(), a, None));
        }
        self.store.write_people(&write)?;
        for face in &members {
            state.remove_from_clusters(face);
        }
        Ok(members.len())
    }

    // ---- search ----------------------------------------------------------------

    /// Assets with a confirmed face of the person.
    pub fn assets_of(&self, person: &str) -> Result<(Person, Vec<AssetFaces>)> {
        let state = self.lock();
        let person = state.resolve(person)?;
        let mut by_asset: BTreeMap<AssetId, Vec<u32>> = BTreeMap::new();
        for face in state.confirmed.get(&person.id).into_iter().flatten() {
            by_asset
                .entry(face.asset.clone())
                .or_default()
                .push(face.no);
        }
        Ok((person, by_asset.into_iter().collect()))
    }

    /// Faces most like `embedding`, nearest first.
    pub fn similar(
        &self,
        embedding: &[f32],
        k: usize,
        max_distance: f32,
        exclude: Option<&FaceRef>,
    ) -> Vec<Hit> {
        let state = self.lock();
        let exclude = exclude.and_then(|f| state.slot_of.get(f)).copied();
        state
            .all
            .search_filtered(embedding, k, max_distance, |s| Some(s) != exclude)
            .into_iter()
            .filter_map(|(slot, distance)| {
                let face = state.face_of.get(&slot)?;
                let person = state
                    .ref_person
                    .get(&slot)
                    .and_then(|p| state.persons.get(p));
                Some(Hit {
                    face: face.to_string(),
                    asset: face.asset.to_string(),
                    distance,
                    person: person.map(|p| p.id.to_string()),
                    person_name: person.map(|p| p.name.clone()),
                })
            })
            .collect()
    }

    /// The stored template of a face, for a search from it.
    pub fn template_of(&self, face: &FaceRef) -> Result<Vec<f32>> {
        let state = self.lock();
        state
            .slot_of
            .get(face)
            .and_then(|s| state.all.get(*s))
            .map(<[f32]>::to_vec)
            .ok_or_else(|| {
                PeopleError::Refused(format!(
                    "face {face} has no stored template (recognition off, purged, or not a face)"
                ))
            })
    }

    /// Replaces an asset's faces with a fresh run of the engine, keeping every
    /// decision by box overlap; the old templates are purged first.
    pub fn redetect(&self, id: &AssetId, new_faces: Vec<Face>) -> Result<usize> {
        let mut state = self.lock();
        let asset = self
            .store
            .asset(id)?
            .ok_or_else(|| PeopleError::Refused(format!("no asset {id}")))?;
        let old: Vec<FaceRef> = asset
            .faces
            .iter()
            .filter(|f| f.template == TemplateStatus::Stored)
            .map(|f| f.face_ref(id))
            .collect();
        self.store.purge_templates(&old, &[])?;
        for face in &old {
            state.remove_template(face);
        }
        let mut merged = crate::domain::merge_redetected(&asset.faces, new_faces);
        // Kept old faces that were not paired have no new embedding.
        for face in &mut merged {
            if face.embedding.is_empty() && face.template == TemplateStatus::Stored {
                face.template = TemplateStatus::Purged;
            }
        }
        let fresh: Vec<bool> = merged.iter().map(|f| !f.embedding.is_empty()).collect();
        let mut fresh_faces: Vec<Face> = merged
            .iter()
            .filter(|f| !f.embedding.is_empty())
            .cloned()
            .collect();
        self.prepare_faces(&state, &asset.collection, &mut fresh_faces);
        let mut fresh_iter = fresh_faces.into_iter();
        let merged: Vec<Face> = merged
            .into_iter()
            .zip(fresh)
            .map(|(f, is_fresh)| {
                if is_fresh {
                    fresh_iter.next().unwrap_or(f)
                } else {
                    f
                }
            })
            .collect();
        let n = merged.len();
        self.store.replace_faces(id, merged.clone())?;
        // Bring the in-memory state up to date for this asset only (a
        // re-run over the whole catalogue must not reload it per photo).
        for face in &asset.faces {
            let face_ref = face.face_ref(id);
            if let Some(person) = face.attribution.confirmed() {
                state.unconfirm(&face_ref, person);
            }
            state.remove_from_clusters(&face_ref);
        }
        state.index_new_faces(id, &merged, crate::clock::now_ms());
        for face in &merged {
            if let Some(person) = face.attribution.confirmed() {
                let face_ref = face.face_ref(id);
                if let Some(person) = state.persons.get(person).cloned() {
                    state.confirm(&face_ref, &person);
                }
            }
        }
        Ok(n)
    }
}

impl State {
    fn add_template(&mut self, face: &FaceRef, created_ms: u64, embedding: &[f32]) -> Slot {
        if let Some(&slot) = self.slot_of.get(face) {
            self.all.insert(slot, embedding);
            self.created.insert(slot, created_ms);
            return slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.all.insert(slot, embedding);
        self.slot_of.insert(face.clone(), slot);
        self.face_of.insert(slot, face.clone());
        self.created.insert(slot, created_ms);
        slot
    }

    fn remove_template(&mut self, face: &FaceRef) {
        if let Some(slot) = self.slot_of.remove(face) {
            self.all.remove(slot);
            self.refs.remove(slot);
            self.face_of.remove(&slot);
            self.created.remove(&slot);
            self.ref_person.remove(&slot);
        }
    }

    fn make_reference(&mut self, slot: Slot, person: &PersonId) {
        let usable = self
            .persons
            .get(person)
            .is_some_and(|p| p.recognition != Recognition::OptedOut && p.merged_into.is_none());
        if let (true, Some(embedding)) = (usable, self.all.get(slot)) {
            let embedding = embedding.to_vec();
            self.refs.insert(slot, &embedding);
            self.ref_person.insert(slot, person.clone());
        }
    }

    fn confirm(&mut self, face: &FaceRef, person: &Person) {
        self.confirmed
            .entry(person.id.clone())
            .or_default()
            .insert(face.clone());
        if let Some(&slot) = self.slot_of.get(face) {
            self.make_reference(slot, &person.id);
        }
    }

    fn unconfirm(&mut self, face: &FaceRef, person: &PersonId) {
        if let Some(set) = self.confirmed.get_mut(person) {
            set.remove(face);
        }
        if let Some(&slot) = self.slot_of.get(face) {
            self.refs.remove(slot);
            self.ref_person.remove(&slot);
        }
    }

    fn index_new_faces(&mut self, id: &AssetId, faces: &[Face], now_ms: u64) {
        for face in faces {
            if face.template != TemplateStatus::Stored || face.embedding.is_empty() {
                continue;
            }
            let face_ref = face.face_ref(id);
            let slot = self.add_template(&face_ref, now_ms, &face.embedding);
            if let Some(person) = face.attribution.confirmed().cloned() {
                self.confirmed
                    .entry(person.clone())
                    .or_default()
                    .insert(face_ref);
                self.make_reference(slot, &person);
            }
        }
    }

    /// Incremental clustering between full runs: a new unknown face joins
    /// the cluster of its nearest core face, if one is close enough.
    fn assign_to_clusters(&mut self, id: &AssetId, faces: &[Face], params: &ClusterParams) {
        for face in faces {
            if face.template != TemplateStatus::Stored || face.attribution.identity.is_some() {
                continue;
            }
            let (all, slot_of) = (&self.all, &self.slot_of);
            let joined = cluster::assign(
                &self.clusters.clusters,
                &face.embedding,
                |f| slot_of.get(f).and_then(|s| all.get(*s)),
                params,
            );
            if let Some(i) = joined {
                let members = &mut self.clusters.clusters[i].members;
                members.push(face.face_ref(id));
                members.sort();
            }
        }
    }

    fn remove_from_clusters(&mut self, face: &FaceRef) {
        for cluster in &mut self.clusters.clusters {
            cluster.members.retain(|f| f != face);
            cluster.core.retain(|f| f != face);
        }
        self.clusters.clusters.retain(|c| !c.members.is_empty());
    }

    fn suppressed(&self, embedding: &[f32], threshold: f32) -> bool {
        self.suppress
            .iter()
            .any(|(_, s)| index::distance(s, embedding) < threshold)
    }

    /// Candidate persons for a template: the nearest reference of each
    /// person within `threshold`, except rejected persons.
    fn candidates(
        &self,
        embedding: &[f32],
        threshold: f32,
        rejected: &[PersonId],
    ) -> Vec<(PersonId, f32)> {
        let mut best: BTreeMap<PersonId, f32> = BTreeMap::new();
        for (slot, distance) in self.refs.within(embedding, threshold) {
            if distance >= threshold {
                continue;
            }
            let Some(person) = self.ref_person.get(&slot) else {
                continue;
            };
            if rejected.contains(person) {
                continue;
            }
            let entry = best.entry(person.clone()).or_insert(distance);
            *entry = entry.min(distance);
        }
        best.into_iter().collect()
    }

    /// The face whose template is closest to all the others (the most typical).
    fn medoid(&self, faces: &[FaceRef]) -> Option<Vec<f32>> {
        let templates: Vec<&[f32]> = faces
            .iter()
            .filter_map(|f| self.slot_of.get(f).and_then(|s| self.all.get(*s)))
            .collect();
        templates
            .iter()
            .min_by(|a, b| {
                let sum = |x: &[f32]| templates.iter().map(|t| index::distance(x, t)).sum::<f32>();
                sum(a).total_cmp(&sum(b))
            })
            .map(|t| t.to_vec())
    }

    fn resolve(&self, text: &str) -> Result<Person> {
        let text = text.trim();
        let found = match PersonId::parse(text).and_then(|id| self.persons.get(&id)) {
            Some(p) => p.clone(),
            None => {
                let matches: Vec<&Person> = self
                    .persons
                    .values()
                    .filter(|p| p.merged_into.is_none() && p.name.eq_ignore_ascii_case(text))
                    .collect();
                match matches.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(PeopleError::UnknownPerson(text.to_owned())),
                    _ => return Err(PeopleError::AmbiguousName(text.to_owned())),
                }
            }
        };
        // Follow merges to the surviving person.
        let mut person = found;
        let mut hops = 0;
        while let Some(into) = person.merged_into.clone() {
            hops += 1;
            match self.persons.get(&into) {
                Some(p) if hops < 64 => person = p.clone(),
                _ => break,
            }
        }
        Ok(person)
    }

    fn view(&self, p: &Person) -> PersonView {
        let faces = self.confirmed.get(&p.id);
        let assets: BTreeSet<&AssetId> = faces.into_iter().flatten().map(|f| &f.asset).collect();
        PersonView {
            id: p.id.to_string(),
            name: p.name.clone(),
            kind: p.kind,
            external_ref: p.external_ref.clone(),
            notes: p.notes.clone(),
            recognition: p.recognition.as_str(),
            merged_into: p.merged_into.as_ref().map(ToString::to_string),
            confirmed_faces: faces.map_or(0, BTreeSet::len),
            assets: assets.len(),
            created_at: crate::clock::rfc3339(p.created_at_ms),
        }
    }
}
