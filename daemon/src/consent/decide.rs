//! The usage decision: may this asset be used for purpose P on date D?
//!
//! One pure function, [`decide`], from the facts (the asset, its faces and
//! their persons, every consent, licence and restriction version) to allowed
//! or blocked with every reason as a stable [`Code`] and a sentence. No
//! store, no clock: the caller passes the date and the instant up to which
//! records count as known (`Question::known_at`).
//!
//! The rules, in order of the reasons given:
//! - The asset must be ready and not restricted.
//! - Every face blocks unless it is covered: confirmed to a person who is not
//!   restricted and has a consent that, on date D, is valid (from ≤ D ≤
//!   until, not withdrawn on or before D in the organisation's time zone),
//!   covers P, and was signed by a guardian if the person was a minor on the
//!   day it was signed. A face marked "not a face" or incidental, or smaller
//!   than `min_face_px`, does not block; the reasons say so.
//! - The licence (layered: collection, folder, the photo's own metadata,
//!   asset) must be valid on D and allow P; with no licence recorded, the
//!   decision blocks only when `require_licence` is set.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use super::model::{
    Consent, Licence, LicenceScope, LicenceTerms, Restriction, Signer, Subject, latest_known,
};
use crate::domain::{Asset, AssetStatus, Face, Person, PersonId, PersonKind};

/// The organisation's rules, from `[consent]` in the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub time_zone: TimeZone,
    /// Below this age a guardian must sign (GDPR Art. 8, UAVG art. 5: 16).
    pub guardian_age: i16,
    /// Faces whose box is smaller than this (shorter side, displayed pixels)
    /// do not block; 0 turns the rule off.
    pub min_face_px: u32,
    pub require_licence: bool,
    /// "Expiring soon" horizon, in days.
    pub expiring_days: i32,
    /// The purpose vocabulary.
    pub purposes: Vec<String>,
}

/// What is asked.
#[derive(Debug, Clone)]
pub struct Question<'a> {
    pub purpose: &'a str,
    pub date: Date,
    /// Records recorded at or after this instant are not known (see the
    /// module documentation of `model`).
    pub known_at: Timestamp,
}

/// Everything the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub asset: &'a Asset,
    pub persons: &'a BTreeMap<PersonId, Person>,
    /// Consent versions (of any persons; the function picks).
    pub consents: &'a [Consent],
    /// Licence versions (of any scopes; the function picks those that apply).
    pub licences: &'a [Licence],
    pub restrictions: &'a [Restriction],
}

/// A reason's stable code. Blocking codes make the decision "blocked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    // blocking
    AssetNotReady,
    AssetRestricted,
    MissingConsent,
    PersonRestricted,
    NoConsent,
    ConsentNotYetValid,
    ConsentExpired,
    ConsentWithdrawn,
    ConsentPurposeNotCovered,
    GuardianConsentMissing,
    LicenceMissing,
    LicenceNotYetValid,
    LicenceExpired,
    LicencePurposeNotCovered,
    // not blocking
    ConsentValid,
    ConsentExpiringSoon,
    ReconsentDue,
    FaceNotAFace,
    FaceIncidental,
    FaceBelowSize,
    NoFaces,
    LicenceValid,
    LicenceExpiringSoon,
    LicenceNotRecorded,
}

impl Code {
    pub fn blocking(self) -> bool {
        self < Code::ConsentValid
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::AssetNotReady => "asset_not_ready",
            Code::AssetRestricted => "asset_restricted",
            Code::MissingConsent => "missing_consent",
            Code::PersonRestricted => "person_restricted",
            Code::NoConsent => "no_consent",
            Code::ConsentNotYetValid => "consent_not_yet_valid",
            Code::ConsentExpired => "consent_expired",
            Code::ConsentWithdrawn => "consent_withdrawn",
            Code::ConsentPurposeNotCovered => "consent_purpose_not_covered",
            Code::GuardianConsentMissing => "guardian_consent_missing",
            Code::LicenceMissing => "licence_missing",
            Code::LicenceNotYetValid => "licence_not_yet_valid",
            Code::LicenceExpired => "licence_expired",
            Code::LicencePurposeNotCovered => "licence_purpose_not_covered",
            Code::ConsentValid => "consent_valid",
            Code::ConsentExpiringSoon => "consent_expiring_soon",
            Code::ReconsentDue => "reconsent_due",
            Code::FaceNotAFace => "face_not_a_face",
            Code::FaceIncidental => "face_incidental",
            Code::FaceBelowSize => "face_below_size",
            Code::NoFaces => "no_faces",
            Code::LicenceValid => "licence_valid",
            Code::LicenceExpiringSoon => "licence_expiring_soon",
            Code::LicenceNotRecorded => "licence_not_recorded",
        }
    }
}

/// One reason, with what it is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: Code,
    pub blocking: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faces: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

/// How one face came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaceOutcome {
    /// A person with a valid consent for the purpose.
    Covered,
    /// Does not count (not a face, incidental, below the size).
    Ignored,
    Blocking,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceVerdict {
    pub no: u32,
    pub outcome: FaceOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_name: Option<String>,
    /// The consent that covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

/// The IPTC/PLUS model release summary of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseSummary {
    /// `MR-NAP`, `MR-NON`, `MR-LMR` or `MR-UMR`.
    pub status: &'static str,
    /// Ids of the consents that cover the purpose on the date.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub asset: String,
    pub purpose: String,
    pub date: Date,
    pub as_of: Timestamp,
    pub allowed: bool,
    pub reasons: Vec<Reason>,
    pub faces: Vec<FaceVerdict>,
    /// The licence in effect (layered), when any is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<LicenceTerms>,
    /// Where the licence fields came from, general to specific.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licence_sources: Vec<String>,
    pub release: ReleaseSummary,
}

impl Decision {
    /// The distinct reason codes, for tests and reports.
    pub fn codes(&self) -> BTreeSet<Code> {
        self.reasons.iter().map(|r| r.code).collect()
    }

    pub fn blocking_codes(&self) -> BTreeSet<Code> {
        self.reasons
            .iter()
            .filter(|r| r.blocking)
            .map(|r| r.code)
            .collect()
    }
}

/// Age in whole years on `on` (a person born on 29 February has a birthday
/// on 1 March in other years: the later reading, so minors are protected a
/// day longer).
pub fn age_on(birth: Date, on: Date) -> i16 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Whether the person needs a guardian's signature on `on`.
pub fn is_minor(person: &Person, on: Date, guardian_age: i16) -> bool {
    match person.birth_date {
        Some(birth) => age_on(birth, on) < guardian_age,
        None => person.kind == PersonKind::Minor,
    }
}

/// The local date of an instant in the organisation's time zone.
pub fn local_date(at: Timestamp, tz: &TimeZone) -> Date {
    at.to_zoned(tz.clone()).date()
}

/// The first instant of the day after `date` in `tz`: records recorded
/// before it were known by the end of `date`.
pub fn end_of_day(date: Date, tz: &TimeZone) -> Timestamp {
    date.tomorrow()
        .ok()
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map_or(Timestamp::MAX, |z| z.timestamp())
}

/// Follows `merged_into` to the person who stands for `id` now.
pub fn resolve_person<'a>(
    persons: &'a BTreeMap<PersonId, Person>,
    id: &PersonId,
) -> Option<&'a Person> {
    let mut person = persons.get(id)?;
    for _ in 0..64 {
        match &person.merged_into {
            Some(next) => person = persons.get(next)?,
            None => return Some(person),
        }
    }
    Some(person)
}

/// Why one consent does or does not cover (purpose, date).
fn consent_failure(
    c: &Consent,
    person: &Person,
    q: &Question<'_>,
    rules: &Rules,
) -> Option<(Code, String)> {
    let id = &c.id;
    if let (Some(w), Some(effective)) = (&c.withdrawn, c.withdrawn_from(&rules.time_zone))
        && q.date >= effective
    {
        return Some((
            Code::ConsentWithdrawn,
            format!(
                "consent {id} was withdrawn on {effective} ({}): it no longer covers any use",
                w.reason
            ),
        ));
    }
    if q.date < c.valid_from {
        return Some((
            Code::ConsentNotYetValid,
            format!("consent {id} is valid only from {}", c.valid_from),
        ));
    }
    if let Some(until) = c.valid_until
        && q.date > until
    {
        return Some((
            Code::ConsentExpired,
            format!("consent {id} expired after {until}"),
        ));
    }
    if c.signer == Signer::Subject && is_minor(person, c.signed_on, rules.guardian_age) {
        let age = person
            .birth_date
            .map(|b| format!(" aged {}", age_on(b, c.signed_on)))
            .unwrap_or_default();
        return Some((
            Code::GuardianConsentMissing,
            format!(
                "consent {id} was signed on {} by {} themselves{age}; under {} a parent or guardian must sign",
                c.signed_on, person.name, rules.guardian_age
            ),
        ));
    }
    if !c.purposes.contains(q.purpose) {
        let covered: Vec<&str> = c.purposes.iter().map(String::as_str).collect();
        return Some((
            Code::ConsentPurposeNotCovered,
            format!(
                "consent {id} covers {} but not {}",
                if covered.is_empty() {
                    "no purpose".to_owned()
                } else {
                    covered.join(", ")
                },
                q.purpose
            ),
        ));
    }
    None
}

/// How a person came out: covering consent or the blocking reasons.
struct PersonResult {
    covering: Option<Consent>,
    reasons: Vec<(Code, String, Option<String>)>,
}

fn evaluate_person(
    person: &Person,
    consents: &[&Consent],
    restricted: Option<&Restriction>,
    q: &Question<'_>,
    rules: &Rules,
) -> PersonResult {
    let mut reasons = Vec::new();
    if let Some(r) = restricted {
        reasons.push((
            Code::PersonRestricted,
            format!(
                "{} is restricted ({}): no use until the restriction is lifted",
                person.name, r.reason
            ),
            None,
        ));
    }
    let mut covering: Vec<&Consent> = Vec::new();
    let mut failures = Vec::new();
    for c in consents {
        match consent_failure(c, person, q, rules) {
            None => covering.push(c),
            Some((code, message)) => failures.push((code, message, Some(c.id.0.clone()))),
        }
    }
    // The covering consent that lasts longest (open-ended first).
    covering.sort_by_key(|c| (c.valid_until.is_none(), c.valid_until, c.id.clone()));
    let best = covering.last().map(|c| (*c).clone());
    match &best {
        Some(c) => {
            let until = c
                .valid_until
                .map_or_else(|| "until withdrawn".to_owned(), |d| format!("until {d}"));
            let signer = match &c.signer {
                Signer::Subject => "signed by the person".to_owned(),
                Signer::Guardian { name } => format!("signed by guardian {name}"),
            };
            reasons.push((
                Code::ConsentValid,
                format!(
                    "{}: consent {} (version {}, {signer}) covers {} {until}",
                    person.name, c.id, c.version, q.purpose
                ),
                Some(c.id.0.clone()),
            ));
            if let Some(until) = c.valid_until
                && let Ok(horizon) = q.date.checked_add(rules.expiring_days.days())
                && until <= horizon
            {
                reasons.push((
                    Code::ConsentExpiringSoon,
                    format!(
                        "{}: consent {} ends on {until}, within {} days",
                        person.name, c.id, rules.expiring_days
                    ),
                    Some(c.id.0.clone()),
                ));
            }
            if matches!(c.signer, Signer::Guardian { .. })
                && person.birth_date.is_some()
                && !is_minor(person, q.date, rules.guardian_age)
            {
                reasons.push((
                    Code::ReconsentDue,
                    format!(
                        "{} is {} or older now and signed nothing themselves: ask them to confirm consent {} (a guardian signed it)",
                        person.name, rules.guardian_age, c.id
                    ),
                    Some(c.id.0.clone()),
                ));
            }
        }
        None if consents.is_empty() => reasons.push((
            Code::NoConsent,
            format!("{} has no consent on record", person.name),
            None,
        )),
        None => reasons.extend(failures),
    }
    PersonResult {
        covering: best,
        reasons,
    }
}

/// The licence terms that apply to the asset, layered general to specific,
/// with the name of each layer used.
pub fn effective_licence(
    asset: &Asset,
    licences: &[Licence],
    known_at: Timestamp,
) -> (LicenceTerms, Vec<String>) {
    // Only the scopes that apply, before picking versions (most licences are
    // other assets').
    let relevant = licences.iter().filter(|l| licence_applies(&l.scope, asset));
    let mut layers: Vec<(u8, usize, String, LicenceTerms)> = Vec::new();
    for l in latest_known(relevant, known_at) {
        let rank = match &l.scope {
            LicenceScope::Collection { .. } => (0, 0),
            LicenceScope::Folder { folder, .. } => (1, folder.trim_matches('/').len()),
            LicenceScope::Asset { .. } => (3, 0),
        };
        layers.push((rank.0, rank.1, l.scope.key(), l.terms.clone()));
    }
    let embedded = metadata_licence(asset);
    if !embedded.is_empty() {
        layers.push((2, 0, "metadata".to_owned(), embedded));
    }
    layers.sort_by_key(|l| (l.0, l.1));
    let mut terms = LicenceTerms::default();
    let mut sources = Vec::new();
    for (_, _, name, layer) in layers {
        terms.overlay(&layer);
        sources.push(name);
    }
    (terms, sources)
}

/// Whether a licence scope covers the asset.
pub fn licence_applies(scope: &LicenceScope, asset: &Asset) -> bool {
    match scope {
        LicenceScope::Collection { collection } => *collection == asset.collection,
        LicenceScope::Folder { collection, folder } => {
            let prefix = folder.trim_matches('/');
            asset.sources.iter().any(|s| {
                let path = s.path.trim_start_matches('/');
                s.collection == *collection
                    && (prefix.is_empty()
                        || (path.starts_with(prefix)
                            && path.as_bytes().get(prefix.len()) == Some(&b'/')))
            })
        }
        LicenceScope::Asset { asset: id } => *id == asset.id,
    }
}

/// The licence the photo's own metadata states (PLUS, XMP rights, IPTC).
pub fn metadata_licence(asset: &Asset) -> LicenceTerms {
    let md = &asset.metadata;
    let date = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| t.get(..10))
            .and_then(|t| t.parse::<Date>().ok())
    };
    let join = |v: &[String]| (!v.is_empty()).then(|| v.join(", "));
    LicenceTerms {
        licensor: join(&md.licence.licensors),
        creator: join(&md.creator),
        copyright: md.copyright.clone(),
        terms: md.licence.usage_terms.clone(),
        purposes: None,
        territory: None,
        credit: md.credit.clone(),
        valid_from: date(&md.licence.license_start_date),
        valid_until: date(&md.licence.license_end_date),
        document: None,
    }
}

fn face_size_px(face: &Face) -> f32 {
    face.bbox.width.min(face.bbox.height)
}

fn restricted<'a>(restrictions: &[&'a Restriction], subject: &Subject) -> Option<&'a Restriction> {
    restrictions
        .iter()
        .find(|r| r.subject == *subject)
        .filter(|r| r.restricted)
        .copied()
}

/// The decision. See the module documentation for the rules.
pub fn decide(facts: &Facts<'_>, q: &Question<'_>, rules: &Rules) -> Decision {
    let asset = facts.asset;
    let mut reasons: Vec<Reason> = Vec::new();
    let mut push = |code: Code,
                    message: String,
                    faces: Vec<u32>,
                    person: Option<String>,
                    consent: Option<String>| {
        reasons.push(Reason {
            code,
            blocking: code.blocking(),
            message,
            faces,
            person,
            consent,
        });
    };

    if asset.status != AssetStatus::Ready {
        push(
            Code::AssetNotReady,
            format!(
                "the asset is {}, not ready: only a fully ingested photo can be used",
                asset.status.as_str()
            ),
            vec![],
            None,
            None,
        );
    }
    let restrictions = latest_known(facts.restrictions, q.known_at);
    if let Some(r) = restricted(&restrictions, &Subject::Asset(asset.id.clone())) {
        push(
            Code::AssetRestricted,
            format!(
                "the photo is restricted ({}): no use until the restriction is lifted",
                r.reason
            ),
            vec![],
            None,
            None,
        );
    }

    // Faces → persons.
    let mut verdicts = Vec::new();
    let mut by_person: BTreeMap<PersonId, Vec<u32>> = BTreeMap::new();
    let mut relevant_faces = 0usize;
    for face in &asset.faces {
        let a = &face.attribution;
        let mut verdict = FaceVerdict {
            no: face.no,
            outcome: FaceOutcome::Ignored,
            person: None,
            person_name: None,
            consent: None,
        };
        if a.not_a_face {
            push(
                Code::FaceNotAFace,
                format!(
                    "face {} was marked \"not a face\": it does not count",
                    face.no
                ),
                vec![face.no],
                None,
                None,
            );
        } else if a.incidental {
            push(
                Code::FaceIncidental,
                format!(
                    "face {} was marked incidental (background): it does not block",
                    face.no
                ),
                vec![face.no],
                None,
                None,
            );
        } else if rules.min_face_px > 0 && face_size_px(face) < rules.min_face_px as f32 {
            push(
                Code::FaceBelowSize,
                format!(
                    "face {} is {:.0} px, smaller than consent.min_face_px = {}: it does not block",
                    face.no,
                    face_size_px(face),
                    rules.min_face_px
                ),
                vec![face.no],
                None,
                None,
            );
        } else {
            relevant_faces += 1;
            match a.confirmed().and_then(|p| resolve_person(facts.persons, p)) {
                Some(person) => {
                    verdict.person = Some(person.id.0.clone());
                    verdict.person_name = Some(person.name.clone());
                    by_person
                        .entry(person.id.clone())
                        .or_default()
                        .push(face.no);
                }
                None => {
                    verdict.outcome = FaceOutcome::Blocking;
                    let hint = a
                        .suggested()
                        .and_then(|(p, _)| resolve_person(facts.persons, p))
                        .map(|p| format!(" (suggested: {}, not confirmed)", p.name))
                        .unwrap_or_default();
                    push(
                        Code::MissingConsent,
                        format!(
                            "face {} is not identified{hint}: without a person there is no consent; confirm who it is, mark it incidental, or redact it",
                            face.no
                        ),
                        vec![face.no],
                        None,
                        None,
                    );
                }
            }
        }
        verdicts.push(verdict);
    }
    if asset.faces.is_empty() {
        push(
            Code::NoFaces,
            "no faces were found: no model release is needed".to_owned(),
            vec![],
            None,
            None,
        );
    }

    // Persons → consents.
    // Only the consents of persons on the photo (directly, or merged into
    // one of them), before picking versions.
    let mut on_photo: HashSet<&PersonId> = by_person.keys().collect();
    for p in facts.persons.values().filter(|p| p.merged_into.is_some()) {
        if resolve_person(facts.persons, &p.id).is_some_and(|r| by_person.contains_key(&r.id)) {
            on_photo.insert(&p.id);
        }
    }
    let known_consents = latest_known(
        facts
            .consents
            .iter()
            .filter(|c| on_photo.contains(&c.person)),
        q.known_at,
    );
    let mut covering_ids = BTreeSet::new();
    let mut unlimited = true;
    let mut any_covered = false;
    for (pid, faces) in &by_person {
        let Some(person) = facts.persons.get(pid) else {
            continue;
        };
        let consents: Vec<&Consent> = known_consents
            .iter()
            .filter(|c| resolve_person(facts.persons, &c.person).is_some_and(|p| p.id == *pid))
            .copied()
            .collect();
        let result = evaluate_person(
            person,
            &consents,
            restricted(&restrictions, &Subject::Person(pid.clone())),
            q,
            rules,
        );
        let blocked = result.reasons.iter().any(|r| r.0.blocking());
        for v in verdicts.iter_mut().filter(|v| faces.contains(&v.no)) {
            v.outcome = if blocked {
                FaceOutcome::Blocking
            } else {
                FaceOutcome::Covered
            };
            v.consent = result.covering.as_ref().map(|c| c.id.0.clone());
        }
        match &result.covering {
            Some(c) if !blocked => {
                any_covered = true;
                covering_ids.insert(c.id.0.clone());
                unlimited &= rules.purposes.iter().all(|p| c.purposes.contains(p));
            }
            _ => unlimited = false,
        }
        for (code, message, consent) in result.reasons {
            push(code, message, faces.clone(), Some(pid.0.clone()), consent);
        }
    }
    if verdicts.iter().any(|v| v.outcome == FaceOutcome::Blocking) {
        unlimited = false;
    }

    // Licence.
    let (terms, sources) = effective_licence(asset, facts.licences, q.known_at);
    if terms.is_empty() {
        if rules.require_licence {
            push(
                Code::LicenceMissing,
                "no licence is recorded for this photo, and consent.require_licence is on"
                    .to_owned(),
                vec![],
                None,
                None,
            );
        } else {
            push(
                Code::LicenceNotRecorded,
                "no licence is recorded: the photo is taken to be the organisation's own"
                    .to_owned(),
                vec![],
                None,
                None,
            );
        }
    } else {
        let mut licence_ok = true;
        if let Some(from) = terms.valid_from
            && q.date < from
        {
            licence_ok = false;
            push(
                Code::LicenceNotYetValid,
                format!("the licence is valid only from {from}"),
                vec![],
                None,
                None,
            );
        }
        if let Some(until) = terms.valid_until
            && q.date > until
        {
            licence_ok = false;
            push(
                Code::LicenceExpired,
                format!("the licence expired after {until}"),
                vec![],
                None,
                None,
            );
        }
        if let Some(purposes) = &terms.purposes
            && !purposes.contains(q.purpose)
        {
            licence_ok = false;
            let list: Vec<&str> = purposes.iter().map(String::as_str).collect();
            push(
                Code::LicencePurposeNotCovered,
                format!(
                    "the licence allows {} but not {}",
                    if list.is_empty() {
                        "no purpose".to_owned()
                    } else {
                        list.join(", ")
                    },
                    q.purpose
                ),
                vec![],
                None,
                None,
            );
        }
        if licence_ok {
            let until = terms.valid_until.map_or_else(
                || "without an end date".to_owned(),
                |d| format!("until {d}"),
            );
            push(
                Code::LicenceValid,
                format!(
                    "the licence ({}) allows {} {until}",
                    sources.join(" + "),
                    q.purpose
                ),
                vec![],
                None,
                None,
            );
            if let Some(until) = terms.valid_until
                && let Ok(horizon) = q.date.checked_add(rules.expiring_days.days())
                && until <= horizon
            {
                push(
                    Code::LicenceExpiringSoon,
                    format!(
                        "the licence ends on {until}, within {} days",
                        rules.expiring_days
                    ),
                    vec![],
                    None,
                    None,
                );
            }
        }
    }

    let allowed = !reasons.iter().any(|r| r.blocking);
    let status = if relevant_faces == 0 {
        "MR-NAP"
    } else if !any_covered {
        "MR-NON"
    } else if unlimited {
        "MR-UMR"
    } else {
        "MR-LMR"
    };
    Decision {
        asset: asset.id.as_str().to_owned(),
        purpose: q.purpose.to_owned(),
        date: q.date,
        as_of: q.known_at,
        allowed,
        reasons,
        faces: verdicts,
        licence: (!terms.is_empty()).then_some(terms),
        licence_sources: sources,
        release: ReleaseSummary {
            status,
            ids: covering_ids.into_iter().collect(),
        },
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
