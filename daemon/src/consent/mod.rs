//! Consent, licences and the usage decision: may this photo be used for
//! purpose P on date D, and why (or why not)?
//!
//! - `model.rs`: the versioned records (consent, licence, restriction).
//! - `decide.rs`: the pure decision function and its reason codes.
//! - `reports.rs`: expiring, blocked and withdrawn reports; the reminder digest.
//! - `commands.rs`: the consent commands on the control socket.
//!
//! [`Rights`] is the service: it keeps every version in memory (thousands,
//! not millions), writes new versions through the store, and answers
//! decisions from the live state, so a withdrawal takes effect in the next
//! decision.

pub mod commands;
pub mod decide;
pub mod model;
pub mod reminders;
pub mod reports;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use jiff::civil::Date;

use crate::config::ConsentConfig;
use crate::domain::{Asset, AssetId, PersonId};
use crate::people::People;
use crate::pipeline::store::{Store, StoreError};
use decide::{Decision, Facts, Question, Rules};
use model::{
    Consent, ConsentId, DocumentRef, Licence, LicenceScope, LicenceTerms, Restriction, Signer,
    Subject, Withdrawal, latest_known,
};

#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    People(#[from] crate::people::PeopleError),
    #[error("no consent `{0}` (see `consentry consent list`)")]
    UnknownConsent(String),
    #[error("no asset {0}")]
    UnknownAsset(String),
    #[error("`{purpose}` is not a purpose; the purposes are: {known} (consent.purposes)")]
    UnknownPurpose { purpose: String, known: String },
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, RightsError>;

type Persons = std::collections::BTreeMap<PersonId, crate::domain::Person>;

/// A new consent as given by an operator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewConsent {
    pub person: String,
    pub signer: Signer,
    pub signed_on: Date,
    pub purposes: Vec<String>,
    pub recognition: bool,
    pub valid_from: Option<Date>,
    pub valid_until: Option<Date>,
    pub reference: Option<String>,
    pub notes: Option<String>,
}

/// An uploaded document: file name and bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
struct State {
    consents: Vec<Consent>,
    licences: Vec<Licence>,
    restrictions: Vec<Restriction>,
}

/// The rights service. Cheap to share (`Arc`).
pub struct Rights {
    /// Decisions made since start: [allowed, blocked] (for `/metrics`).
    pub decisions: [std::sync::atomic::AtomicU64; 2],
    store: Arc<Store>,
    config: ConsentConfig,
    rules: Rules,
    state: Mutex<State>,
}

impl Rights {
    pub fn open(store: Arc<Store>, config: ConsentConfig) -> Result<Rights> {
        let rules = config.rules().map_err(RightsError::Refused)?;
        let state = State {
            consents: store.consents()?,
            licences: store.licences()?,
            restrictions: store.restrictions()?,
        };
        Ok(Rights {
            decisions: Default::default(),
            store,
            config,
            rules,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn config(&self) -> &ConsentConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Today in the organisation's time zone.
    pub fn today(&self) -> Date {
        decide::local_date(Timestamp::now(), &self.rules.time_zone)
    }

    pub fn check_purpose(&self, purpose: &str) -> Result<()> {
        if self.config.purposes.iter().any(|p| p == purpose) {
            Ok(())
        } else {
            Err(RightsError::UnknownPurpose {
                purpose: purpose.to_owned(),
                known: self.config.purposes.join(", "),
            })
        }
    }

    fn check_purposes(&self, purposes: &[String]) -> Result<BTreeSet<String>> {
        for p in purposes {
            self.check_purpose(p)?;
        }
        Ok(purposes.iter().cloned().collect())
    }

    // ---- consents --------------------------------------------------------------

    /// Records a new consent (version 1), with its signed document.
    pub fn add_consent(
        &self,
        people: &People,
        new: &NewConsent,
        document: Option<Upload>,
        by: &str,
    ) -> Result<Consent> {
        let person = people.resolve(&new.person)?;
        let purposes = self.check_purposes(&new.purposes)?;
        if purposes.is_empty() && !new.recognition {
            return Err(RightsError::Refused(
                "a consent must cover at least one purpose (--purpose) or recognition".into(),
            ));
        }
        if let Signer::Guardian { name } = &new.signer
            && name.trim().is_empty()
        {
            return Err(RightsError::Refused(
                "a guardian consent needs the guardian's name".into(),
            ));
        }
        let valid_from = new.valid_from.unwrap_or(new.signed_on);
        if let Some(until) = new.valid_until
            && until < valid_from
        {
            return Err(RightsError::Refused(format!(
                "valid until {until} is before valid from {valid_from}"
            )));
        }
        let id = ConsentId::random().map_err(StoreError::from)?;
        let document = document
            .map(|d| self.store_document(id.as_str(), d))
            .transpose()?;
        let consent = Consent {
            id,
            version: 1,
            person: person.id.clone(),
            signer: new.signer.clone(),
            signed_on: new.signed_on,
            purposes,
            recognition: new.recognition,
            valid_from,
            valid_until: new.valid_until,
            withdrawn: None,
            document,
            reference: new.reference.clone(),
            notes: new.notes.clone(),
            recorded_at: Timestamp::now(),
            recorded_by: by.to_owned(),
            change: "recorded".into(),
        };
        let mut state = self.lock();
        self.store.put_consent(&consent)?;
        state.consents.push(consent.clone());
        drop(state);
        self.follow_recognition(people, &person.id)?;
        Ok(consent)
    }

    fn store_document(&self, context: &str, upload: Upload) -> Result<DocumentRef> {
        let mime = sniff_document(&upload.bytes).ok_or_else(|| {
            RightsError::Refused(format!(
                "{}: a signed document must be a PDF, JPEG, PNG or TIFF scan",
                upload.name
            ))
        })?;
        Ok(self
            .store
            .put_document(context, &upload.name, mime, &upload.bytes)?)
    }

    /// The latest version of a consent.
    pub fn consent(&self, id: &str) -> Result<Consent> {
        let id = ConsentId::parse(id).ok_or_else(|| RightsError::UnknownConsent(id.to_owned()))?;
        self.lock()
            .consents
            .iter()
            .filter(|c| c.id == id)
            .max_by_key(|c| c.version)
            .cloned()
            .ok_or_else(|| RightsError::UnknownConsent(id.0.clone()))
    }

    /// Every version of a consent, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Consent>> {
        let latest = self.consent(id)?;
        let mut versions: Vec<Consent> = self
            .lock()
            .consents
            .iter()
            .filter(|c| c.id == latest.id)
            .cloned()
            .collect();
        versions.sort_by_key(|c| c.version);
        Ok(versions)
    }

    /// Withdraws a consent (a new version), effective `at` (default now).
    pub fn withdraw(
        &self,
        people: &People,
        id: &str,
        reason: &str,
        at: Option<Timestamp>,
        by: &str,
    ) -> Result<Consent> {
        if reason.trim().is_empty() {
            return Err(RightsError::Refused(
                "give the reason for the withdrawal (--reason)".into(),
            ));
        }
        let mut state = self.lock();
        let latest = state
            .consents
            .iter()
            .filter(|c| ConsentId::parse(id).is_some_and(|i| i == c.id))
            .max_by_key(|c| c.version)
            .cloned()
            .ok_or_else(|| RightsError::UnknownConsent(id.to_owned()))?;
        if let Some(w) = &latest.withdrawn {
            return Err(RightsError::Refused(format!(
                "consent {} was already withdrawn at {}",
                latest.id, w.at
            )));
        }
        let now = Timestamp::now();
        let mut next = latest.clone();
        next.version += 1;
        next.withdrawn = Some(Withdrawal {
            at: at.unwrap_or(now),
            reason: reason.trim().to_owned(),
        });
        next.recorded_at = now;
        next.recorded_by = by.to_owned();
        next.change = format!("withdrawn: {}", reason.trim());
        self.store.put_consent(&next)?;
        state.consents.push(next.clone());
        drop(state);
        self.follow_recognition(people, &next.person)?;
        Ok(next)
    }

    /// Latest versions of every consent (of one person, when given).
    pub fn list(&self, person: Option<&PersonId>) -> Vec<Consent> {
        let state = self.lock();
        latest_known(&state.consents, Timestamp::MAX)
            .into_iter()
            .filter(|c| person.is_none_or(|p| c.person == *p))
            .cloned()
            .collect()
    }

    pub fn document(&self, id: &str) -> Result<(DocumentRef, Vec<u8>)> {
        let consent = self.consent(id)?;
        let doc = consent.document.clone().ok_or_else(|| {
            RightsError::Refused(format!("consent {} has no document", consent.id))
        })?;
        let bytes = self.store.read_document(consent.id.as_str(), &doc)?;
        Ok((doc, bytes))
    }

    /// Whether a person has a consent covering recognition today.
    pub fn recognition_basis(&self, person: &PersonId, persons: &Persons) -> bool {
        let today = self.today();
        let state = self.lock();
        latest_known(&state.consents, Timestamp::MAX)
            .into_iter()
            .any(|c| {
                c.recognition
                    && decide::resolve_person(persons, &c.person).is_some_and(|p| p.id == *person)
                    && c.in_force_on(today, &self.rules.time_zone)
            })
    }

    /// Sets the person's recognition state from their consents. A person
    /// none of whose consents ever covered recognition is left as they are
    /// (a basis recorded by `people recognition` is not overruled by a
    /// publication-only consent).
    pub fn follow_recognition(&self, people: &People, person: &PersonId) -> Result<()> {
        self.follow_recognition_with(people, &people.persons(), person)
    }

    fn follow_recognition_with(
        &self,
        people: &People,
        persons: &Persons,
        person: &PersonId,
    ) -> Result<()> {
        let ever = self.lock().consents.iter().any(|c| {
            c.recognition
                && decide::resolve_person(persons, &c.person).is_some_and(|p| p.id == *person)
        });
        if !ever {
            return Ok(());
        }
        let has = self.recognition_basis(person, persons);
        if let Some(state) = people.follow_recognition_basis(person, has)? {
            log::info!(target: "consentry::consent", person = person.as_str(), recognition = state.as_str(); "recognition basis follows the consents");
        }
        Ok(())
    }

    /// Re-derives the recognition basis of every person with a consent that
    /// covers recognition (such consents expire by date).
    pub fn follow_all_recognition(&self, people: &People) -> Result<()> {
        let persons = people.persons();
        let owners: BTreeSet<PersonId> = self
            .lock()
            .consents
            .iter()
            .filter(|c| c.recognition)
            .filter_map(|c| decide::resolve_person(&persons, &c.person).map(|p| p.id.clone()))
            .collect();
        for p in owners {
            self.follow_recognition_with(people, &persons, &p)?;
        }
        Ok(())
    }

    // ---- licences and restrictions -----------------------------------------

    /// Records a new licence version at `scope`: the given fields over the
    /// previous version's.
    pub fn set_licence(
        &self,
        scope: LicenceScope,
        terms: LicenceTerms,
        document: Option<Upload>,
        by: &str,
    ) -> Result<Licence> {
        if let Some(purposes) = &terms.purposes {
            for p in purposes {
                self.check_purpose(p)?;
            }
        }
        if let LicenceScope::Asset { asset } = &scope
            && self.store.asset(asset)?.is_none()
        {
            return Err(RightsError::UnknownAsset(asset.as_str().to_owned()));
        }
        let mut state = self.lock();
        let previous = latest_known(&state.licences, Timestamp::MAX)
            .into_iter()
            .find(|l| l.scope == scope)
            .cloned();
        let mut merged = previous
            .as_ref()
            .map(|l| l.terms.clone())
            .unwrap_or_default();
        merged.overlay(&terms);
        if let Some(doc) = document {
            merged.document = Some(self.store_document(&format!("licence:{}", scope.key()), doc)?);
        }
        let licence = Licence {
            version: previous.map_or(1, |l| l.version + 1),
            scope,
            terms: merged,
            recorded_at: Timestamp::now(),
            recorded_by: by.to_owned(),
        };
        self.store.put_licence(&licence)?;
        state.licences.push(licence.clone());
        Ok(licence)
    }

    /// The licence in effect for an asset, and the scopes it came from.
    pub fn licence_of(&self, asset: &AssetId) -> Result<(LicenceTerms, Vec<String>)> {
        let asset = self
            .store
            .asset(asset)?
            .ok_or_else(|| RightsError::UnknownAsset(asset.as_str().to_owned()))?;
        let state = self.lock();
        Ok(decide::effective_licence(
            &asset,
            &state.licences,
            Timestamp::MAX,
        ))
    }

    /// Restricts (or lifts the restriction of) an asset or a person.
    pub fn restrict(
        &self,
        subject: Subject,
        restricted: bool,
        reason: &str,
        by: &str,
    ) -> Result<Restriction> {
        let mut state = self.lock();
        let version = state
            .restrictions
            .iter()
            .filter(|r| r.subject == subject)
            .map(|r| r.version)
            .max()
            .unwrap_or(0)
            + 1;
        let r = Restriction {
            subject,
            version,
            restricted,
            reason: reason.to_owned(),
            recorded_at: Timestamp::now(),
            recorded_by: by.to_owned(),
        };
        self.store.put_restriction(&r)?;
        state.restrictions.push(r.clone());
        Ok(r)
    }

    // ---- decisions ---------------------------------------------------------------

    /// The instant up to which records count for a decision on `date`: the
    /// end of that day for a past date (what was known then), now otherwise.
    pub fn default_known_at(&self, date: Date) -> Timestamp {
        decide::end_of_day(date, &self.rules.time_zone).min(Timestamp::now())
    }

    pub fn decide(
        &self,
        people: &People,
        asset: &AssetId,
        purpose: &str,
        date: Date,
        known_at: Timestamp,
    ) -> Result<Decision> {
        self.check_purpose(purpose)?;
        let asset = self
            .store
            .asset(asset)?
            .ok_or_else(|| RightsError::UnknownAsset(asset.as_str().to_owned()))?;
        Ok(self
            .decide_many(people, &asset, &[purpose], date, known_at)
            .remove(0))
    }

    /// The decision for every configured purpose on `date`, for a loaded
    /// asset (one lock, one read of the persons).
    pub fn decide_all(&self, people: &People, asset: &Asset, date: Date) -> Vec<Decision> {
        let purposes: Vec<&str> = self.config.purposes.iter().map(String::as_str).collect();
        self.decide_many(people, asset, &purposes, date, self.default_known_at(date))
    }

    fn decide_many(
        &self,
        people: &People,
        asset: &Asset,
        purposes: &[&str],
        date: Date,
        known_at: Timestamp,
    ) -> Vec<Decision> {
        use std::sync::atomic::Ordering;
        let persons = people.persons();
        let state = self.lock();
        let facts = Facts {
            asset,
            persons: &persons,
            consents: &state.consents,
            licences: &state.licences,
            restrictions: &state.restrictions,
        };
        purposes
            .iter()
            .map(|purpose| {
                let decision = decide::decide(
                    &facts,
                    &Question {
                        purpose,
                        date,
                        known_at,
                    },
                    &self.rules,
                );
                self.decisions[usize::from(!decision.allowed)].fetch_add(1, Ordering::Relaxed);
                decision
            })
            .collect()
    }

    /// Whether `subject` is restricted now (its latest restriction record).
    pub fn restricted(&self, subject: &Subject) -> bool {
        let state = self.lock();
        state
            .restrictions
            .iter()
            .filter(|r| &r.subject == subject)
            .max_by_key(|r| r.version)
            .is_some_and(|r| r.restricted)
    }

    /// Runs `f` with the records (for reports over many assets).
    fn with_records<T>(&self, f: impl FnOnce(&[Consent], &[Licence], &[Restriction]) -> T) -> T {
        let state = self.lock();
        f(&state.consents, &state.licences, &state.restrictions)
    }
}

/// The MIME type of a signed document, from its bytes.
fn sniff_document(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some("image/tiff")
    } else {
        None
    }
}
