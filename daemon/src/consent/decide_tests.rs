//! The usage decision, table-driven: each case builds a small world (an
//! asset, its faces, persons, consent/licence/restriction versions), asks one
//! question, and states the outcome and the reason codes it expects.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::*;
use crate::consent::model::{ConsentId, LicenceTerms, Withdrawal};
use crate::domain::{
    AssetId, AssetStatus, Attribution, Face, FaceBox, FaceQuality, Identity, SourceRef,
    TemplateStatus,
};

const ALL: &[&str] = &[
    "internal",
    "intranet",
    "website",
    "social-media",
    "print",
    "press",
    "third-parties",
];

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn rules() -> Rules {
    Rules {
        time_zone: TimeZone::get("Europe/Amsterdam").unwrap(),
        guardian_age: 16,
        min_face_px: 0,
        require_licence: false,
        expiring_days: 30,
        purposes: ALL.iter().map(|s| (*s).to_owned()).collect(),
    }
}

struct World {
    asset: Asset,
    persons: BTreeMap<PersonId, Person>,
    consents: Vec<Consent>,
    licences: Vec<Licence>,
    restrictions: Vec<Restriction>,
    rules: Rules,
}

/// Records made "long ago" unless a case says otherwise.
const RECORDED: &str = "2020-01-01T00:00:00Z";

impl World {
    fn new(faces: u32) -> World {
        let mut asset = Asset {
            id: AssetId::of_bytes(b"photo"),
            status: AssetStatus::Ready,
            collection: "comms".into(),
            sources: vec![SourceRef {
                collection: "comms".into(),
                path: "2026/open-day/img1.jpg".into(),
                size: 1,
                mtime_ms: 0,
                ingested_at_ms: 0,
            }],
            bytes: 1,
            format: Some("JPEG".into()),
            mime: Some("image/jpeg".into()),
            width: Some(2000),
            height: Some(1500),
            metadata: Default::default(),
            original: None,
            sidecar: None,
            thumbnails: vec![],
            key: None,
            quarantine: None,
            faces: vec![],
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        for no in 1..=faces {
            asset.faces.push(Face {
                no,
                bbox: FaceBox {
                    x: no as f32 * 300.0,
                    y: 100.0,
                    width: 200.0,
                    height: 220.0,
                },
                landmarks: vec![],
                score: 0.99,
                quality: FaceQuality {
                    score: 1.0,
                    interocular_px: 80.0,
                    sharpness: 100.0,
                    yaw: 0.0,
                    pitch: 0.0,
                    roll_deg: 0.0,
                },
                embedding: vec![],
                engine: "test".into(),
                detected_at_ms: 0,
                template: TemplateStatus::None,
                attribution: Attribution::default(),
            });
        }
        World {
            asset,
            persons: BTreeMap::new(),
            consents: vec![],
            licences: vec![],
            restrictions: vec![],
            rules: rules(),
        }
    }

    fn person(&mut self, name: &str, kind: PersonKind, born: Option<&str>) -> PersonId {
        let id = PersonId(format!("{:0>16}", self.persons.len() + 1));
        self.persons.insert(
            id.clone(),
            Person {
                id: id.clone(),
                name: name.into(),
                kind,
                external_ref: None,
                notes: None,
                recognition: Default::default(),
                merged_into: None,
                birth_date: born.map(date),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
        );
        id
    }

    fn adult(&mut self, name: &str) -> PersonId {
        self.person(name, PersonKind::Staff, None)
    }

    fn face(&mut self, no: u32) -> &mut Face {
        self.asset.faces.iter_mut().find(|f| f.no == no).unwrap()
    }

    fn confirm(&mut self, no: u32, person: &PersonId) {
        self.face(no).attribution.identity = Some(Identity::Confirmed {
            person: person.clone(),
            distance: None,
            by: "user".into(),
            at_ms: 0,
        });
    }

    /// A first version, signed by the person on `from`, recorded long ago.
    fn consent(
        &mut self,
        person: &PersonId,
        purposes: &[&str],
        from: &str,
        until: Option<&str>,
    ) -> ConsentId {
        let id = ConsentId(format!("c{:0>15}", self.consents.len() + 1));
        self.consents.push(Consent {
            id: id.clone(),
            version: 1,
            person: person.clone(),
            signer: Signer::Subject,
            signed_on: date(from),
            purposes: purposes.iter().map(|s| (*s).to_owned()).collect(),
            recognition: false,
            valid_from: date(from),
            valid_until: until.map(date),
            withdrawn: None,
            document: None,
            reference: None,
            notes: None,
            recorded_at: ts(RECORDED),
            recorded_by: "test".into(),
            change: "recorded".into(),
        });
        id
    }

    fn latest_mut(&mut self, id: &ConsentId) -> &mut Consent {
        self.consents
            .iter_mut()
            .filter(|c| c.id == *id)
            .max_by_key(|c| c.version)
            .unwrap()
    }

    /// A new version of consent `id`, changed by `edit`, recorded at `at`.
    fn amend(&mut self, id: &ConsentId, at: &str, edit: impl FnOnce(&mut Consent)) {
        let mut next = self.latest_mut(id).clone();
        next.version += 1;
        next.recorded_at = ts(at);
        edit(&mut next);
        self.consents.push(next);
    }

    fn withdraw(&mut self, id: &ConsentId, at: &str) {
        self.amend(id, at, |c| {
            c.withdrawn = Some(Withdrawal {
                at: ts(at),
                reason: "asked by phone".into(),
            });
        });
    }

    fn licence(&mut self, scope: LicenceScope, terms: LicenceTerms, at: &str) {
        let version = self.licences.iter().filter(|l| l.scope == scope).count() as u32 + 1;
        self.licences.push(Licence {
            scope,
            version,
            terms,
            recorded_at: ts(at),
            recorded_by: "test".into(),
        });
    }

    fn restrict(&mut self, subject: Subject, restricted: bool, at: &str) {
        let version = self
            .restrictions
            .iter()
            .filter(|r| r.subject == subject)
            .count() as u32
            + 1;
        self.restrictions.push(Restriction {
            subject,
            version,
            restricted,
            reason: "Art. 18 request".into(),
            recorded_at: ts(at),
            recorded_by: "test".into(),
        });
    }

    /// Asks with everything recorded so far known ("now").
    fn ask(&self, purpose: &str, on: &str) -> Decision {
        self.ask_known(purpose, on, Timestamp::MAX)
    }

    /// Asks as of the end of the day `on` in the rules' time zone.
    fn ask_as_of_then(&self, purpose: &str, on: &str) -> Decision {
        let known = end_of_day(date(on), &self.rules.time_zone);
        self.ask_known(purpose, on, known)
    }

    fn ask_known(&self, purpose: &str, on: &str, known_at: Timestamp) -> Decision {
        decide(
            &Facts {
                asset: &self.asset,
                persons: &self.persons,
                consents: &self.consents,
                licences: &self.licences,
                restrictions: &self.restrictions,
            },
            &Question {
                purpose,
                date: date(on),
                known_at,
            },
            &self.rules,
        )
    }
}

/// One adult on face 1 with a consent for `purposes` from..until.
fn one_adult(purposes: &[&str], from: &str, until: Option<&str>) -> (World, ConsentId) {
    let mut w = World::new(1);
    let anna = w.adult("Anna Jansen");
    w.confirm(1, &anna);
    let c = w.consent(&anna, purposes, from, until);
    (w, c)
}

/// A 15-year-old on 2026-06-14 who turns 16 on 2026-06-15.
fn teenager(w: &mut World) -> PersonId {
    let p = w.person("Sam de Vries", PersonKind::Minor, Some("2010-06-15"));
    w.confirm(1, &p);
    p
}

fn guardian(w: &mut World, id: &ConsentId) {
    let c = w.latest_mut(id);
    c.signer = Signer::Guardian {
        name: "Eva de Vries".into(),
    };
}

struct Case {
    name: &'static str,
    decision: Decision,
    allowed: bool,
    /// Exactly these blocking codes.
    blocking: &'static [Code],
    /// At least these non-blocking codes.
    info: &'static [Code],
}

fn case(
    name: &'static str,
    decision: Decision,
    allowed: bool,
    blocking: &'static [Code],
    info: &'static [Code],
) -> Case {
    Case {
        name,
        decision,
        allowed,
        blocking,
        info,
    }
}

fn cases() -> Vec<Case> {
    use Code::*;
    let mut out = Vec::new();

    // --- faces -----------------------------------------------------------
    {
        let w = World::new(0);
        out.push(case(
            "no faces, no licence",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[NoFaces, LicenceNotRecorded],
        ));
    }
    {
        let w = World::new(1);
        out.push(case(
            "one unidentified face",
            w.ask("website", "2026-05-01"),
            false,
            &[MissingConsent],
            &[],
        ));
    }
    {
        let mut w = World::new(1);
        let p = w.adult("Anna Jansen");
        w.face(1).attribution.identity = Some(Identity::Suggested {
            person: p,
            distance: 0.3,
        });
        let d = w.ask("website", "2026-05-01");
        assert!(
            d.reasons[0].message.contains("suggested: Anna Jansen"),
            "{:?}",
            d.reasons
        );
        out.push(case(
            "a suggestion is not an identification",
            d,
            false,
            &[MissingConsent],
            &[],
        ));
    }
    {
        let mut w = World::new(1);
        let p = w.adult("Anna Jansen");
        w.confirm(1, &p);
        out.push(case(
            "identified person without consent",
            w.ask("website", "2026-05-01"),
            false,
            &[NoConsent],
            &[],
        ));
    }
    {
        let mut w = World::new(1);
        w.face(1).attribution.incidental = true;
        out.push(case(
            "incidental face does not block",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[FaceIncidental],
        ));
    }
    {
        let mut w = World::new(1);
        w.face(1).attribution.not_a_face = true;
        out.push(case(
            "not a face does not block",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[FaceNotAFace],
        ));
    }
    {
        let mut w = World::new(1);
        w.face(1).bbox.width = 30.0;
        w.rules.min_face_px = 40;
        out.push(case(
            "face below the size rule",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[FaceBelowSize],
        ));
        w.rules.min_face_px = 0;
        out.push(case(
            "same small face, size rule off",
            w.ask("website", "2026-05-01"),
            false,
            &[MissingConsent],
            &[],
        ));
    }
    {
        let mut w = World::new(3);
        let a = w.adult("Anna Jansen");
        let b = w.adult("Bram Bakker");
        w.confirm(1, &a);
        w.confirm(2, &b);
        w.consent(&a, ALL, "2026-01-01", None);
        w.consent(&b, ALL, "2026-01-01", None);
        let d = w.ask("website", "2026-05-01");
        let blocking: Vec<_> = d
            .faces
            .iter()
            .filter(|f| f.outcome == FaceOutcome::Blocking)
            .map(|f| f.no)
            .collect();
        assert_eq!(blocking, vec![3], "only the third face blocks");
        out.push(case(
            "three faces, one missing consent",
            d,
            false,
            &[MissingConsent],
            &[ConsentValid],
        ));
    }
    {
        let mut w = World::new(2);
        let a = w.adult("Anna Jansen");
        let b = w.adult("Bram Bakker");
        w.confirm(1, &a);
        w.confirm(2, &b);
        w.consent(&a, ALL, "2026-01-01", None);
        out.push(case(
            "two persons, one without consent",
            w.ask("print", "2026-05-01"),
            false,
            &[NoConsent],
            &[ConsentValid],
        ));
    }

    // --- purposes and validity dates ----------------------------------
    {
        let (w, _) = one_adult(&["website"], "2026-01-01", None);
        out.push(case(
            "consent covers the purpose",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "consent does not cover the purpose",
            w.ask("social-media", "2026-05-01"),
            false,
            &[ConsentPurposeNotCovered],
            &[],
        ));
    }
    {
        let (w, _) = one_adult(&["intranet", "print"], "2026-01-01", None);
        out.push(case(
            "consent covering some purposes: print",
            w.ask("print", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "consent covering some purposes: website",
            w.ask("website", "2026-05-01"),
            false,
            &[ConsentPurposeNotCovered],
            &[],
        ));
    }
    {
        let (w, _) = one_adult(ALL, "2026-01-01", Some("2026-03-31"));
        out.push(case(
            "valid-until day itself is valid",
            w.ask("website", "2026-03-31"),
            true,
            &[],
            &[ConsentValid, ConsentExpiringSoon],
        ));
        out.push(case(
            "the day after valid-until is expired",
            w.ask("website", "2026-04-01"),
            false,
            &[ConsentExpired],
            &[],
        ));
    }
    {
        let (w, _) = one_adult(ALL, "2026-04-01", None);
        out.push(case(
            "valid-from day itself is valid",
            w.ask("website", "2026-04-01"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "the day before valid-from is not yet valid",
            w.ask("website", "2026-03-31"),
            false,
            &[ConsentNotYetValid],
            &[],
        ));
    }
    {
        let (w, _) = one_adult(ALL, "2027-01-01", Some("2028-02-29"));
        out.push(case(
            "leap day: valid until 29 February",
            w.ask("website", "2028-02-29"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "leap day: expired on 1 March",
            w.ask("website", "2028-03-01"),
            false,
            &[ConsentExpired],
            &[],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", Some("2026-03-31"));
        let anna = w.asset.faces[0].attribution.confirmed().unwrap().clone();
        w.consent(&anna, ALL, "2026-04-01", None);
        out.push(case(
            "an expired and a renewed consent",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
    }

    // --- withdrawal and time zones -------------------------------------
    {
        let (mut w, c) = one_adult(ALL, "2026-01-01", None);
        // 09:00 in Amsterdam (UTC+2 in May).
        w.withdraw(&c, "2026-05-10T07:00:00Z");
        out.push(case(
            "withdrawal effective the same day",
            w.ask("website", "2026-05-10"),
            false,
            &[ConsentWithdrawn],
            &[],
        ));
        out.push(case(
            "withdrawal does not reach back a day",
            w.ask("website", "2026-05-09"),
            true,
            &[],
            &[ConsentValid],
        ));
    }
    {
        let (mut w, c) = one_adult(ALL, "2026-01-01", None);
        // 23:30 UTC on the 9th is 01:30 on the 10th in Amsterdam.
        w.withdraw(&c, "2026-05-09T23:30:00Z");
        out.push(case(
            "time zone: withdrawal after local midnight counts for the next local day",
            w.ask("website", "2026-05-09"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "time zone: and blocks that local day",
            w.ask("website", "2026-05-10"),
            false,
            &[ConsentWithdrawn],
            &[],
        ));
        w.rules.time_zone = TimeZone::UTC;
        out.push(case(
            "time zone: the same instant in UTC blocks the 9th",
            w.ask("website", "2026-05-09"),
            false,
            &[ConsentWithdrawn],
            &[],
        ));
    }
    {
        let (mut w, c) = one_adult(ALL, "2026-01-01", Some("2026-03-29"));
        // valid until 29 March (the day summer time starts): 23:59 local is 21:59 UTC.
        w.withdraw(&c, "2026-03-29T22:30:00Z");
        out.push(case(
            "time zone: DST day, withdrawal after local midnight",
            w.ask("website", "2026-03-29"),
            true,
            &[],
            &[ConsentValid, ConsentExpiringSoon],
        ));
    }

    // --- decisions as of a past date ----------------------------------
    {
        let (mut w, c) = one_adult(ALL, "2026-01-01", None);
        w.withdraw(&c, "2026-06-01T10:00:00Z");
        out.push(case(
            "as of a past date: allowed before the withdrawal was recorded",
            w.ask_as_of_then("website", "2026-05-20"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "as of a past date: blocked after it",
            w.ask_as_of_then("website", "2026-06-02"),
            false,
            &[ConsentWithdrawn],
            &[],
        ));
    }
    {
        let mut w = World::new(1);
        let anna = w.adult("Anna Jansen");
        w.confirm(1, &anna);
        let c = w.consent(&anna, &["intranet"], "2026-01-01", None);
        w.latest_mut(&c).recorded_at = ts("2026-03-01T09:00:00Z");
        w.amend(&c, "2026-04-01T09:00:00Z", |c| {
            c.purposes.insert("website".into());
            c.change = "amended: website added".into();
        });
        out.push(case(
            "as of a past date: version 1 did not cover the website",
            w.ask_as_of_then("website", "2026-03-15"),
            false,
            &[ConsentPurposeNotCovered],
            &[],
        ));
        out.push(case(
            "as of a later date: version 2 does",
            w.ask_as_of_then("website", "2026-04-15"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "as of a date before any record: no consent",
            w.ask_as_of_then("website", "2026-02-01"),
            false,
            &[NoConsent],
            &[],
        ));
    }

    // --- minors ------------------------------------------------------------
    {
        let mut w = World::new(1);
        let p = w.person("Lotte", PersonKind::Minor, None);
        w.confirm(1, &p);
        let c = w.consent(&p, ALL, "2026-01-01", None);
        out.push(case(
            "minor signed herself: guardian consent missing",
            w.ask("website", "2026-05-01"),
            false,
            &[GuardianConsentMissing],
            &[],
        ));
        guardian(&mut w, &c);
        out.push(case(
            "minor with guardian consent",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
    }
    {
        let mut w = World::new(1);
        let p = teenager(&mut w);
        let c = w.consent(&p, ALL, "2026-01-01", None);
        guardian(&mut w, &c);
        let d = w.ask("website", "2026-06-14");
        assert!(!d.codes().contains(&ReconsentDue));
        out.push(case(
            "guardian consent, the day before turning 16",
            d,
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "guardian consent, on the 16th birthday: re-consent due",
            w.ask("website", "2026-06-15"),
            true,
            &[],
            &[ConsentValid, ReconsentDue],
        ));
    }
    {
        let mut w = World::new(1);
        let p = teenager(&mut w);
        w.consent(&p, ALL, "2026-06-14", None);
        out.push(case(
            "signed herself the day before turning 16",
            w.ask("website", "2026-07-01"),
            false,
            &[GuardianConsentMissing],
            &[],
        ));
        let mut w = World::new(1);
        let p = teenager(&mut w);
        w.consent(&p, ALL, "2026-06-15", None);
        out.push(case(
            "signed herself on the 16th birthday",
            w.ask("website", "2026-07-01"),
            true,
            &[],
            &[ConsentValid],
        ));
    }
    {
        let mut w = World::new(1);
        let p = w.person("Noor", PersonKind::Citizen, Some("2012-02-29"));
        w.confirm(1, &p);
        w.consent(&p, ALL, "2028-02-28", None);
        out.push(case(
            "born on a leap day: still 15 on 28 February",
            w.ask("website", "2028-03-10"),
            false,
            &[GuardianConsentMissing],
            &[],
        ));
    }

    // --- licences ----------------------------------------------------------
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.licence(
            LicenceScope::Asset {
                asset: w.asset.id.clone(),
            },
            LicenceTerms {
                licensor: Some("Studio Noord".into()),
                valid_until: Some(date("2026-04-30")),
                ..Default::default()
            },
            RECORDED,
        );
        out.push(case(
            "licence expired while consent valid",
            w.ask("website", "2026-05-01"),
            false,
            &[LicenceExpired],
            &[ConsentValid],
        ));
        out.push(case(
            "licence last day",
            w.ask("website", "2026-04-30"),
            true,
            &[],
            &[LicenceValid, LicenceExpiringSoon],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.licence(
            LicenceScope::Collection {
                collection: "comms".into(),
            },
            LicenceTerms {
                purposes: Some(
                    ["internal", "intranet", "website"]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect(),
                ),
                ..Default::default()
            },
            RECORDED,
        );
        out.push(case(
            "collection licence does not cover social media",
            w.ask("social-media", "2026-05-01"),
            false,
            &[LicencePurposeNotCovered],
            &[ConsentValid],
        ));
        w.licence(
            LicenceScope::Folder {
                collection: "comms".into(),
                folder: "2026/open-day".into(),
            },
            LicenceTerms {
                purposes: Some(ALL.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            },
            RECORDED,
        );
        let d = w.ask("social-media", "2026-05-01");
        assert_eq!(
            d.licence_sources,
            vec!["collection/comms", "folder/comms/2026/open-day"]
        );
        out.push(case(
            "folder (import batch) licence overrides the collection's",
            d,
            true,
            &[],
            &[LicenceValid],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.asset.metadata.licence.license_end_date = Some("2026-02-28".into());
        w.asset.metadata.licence.licensors = vec!["Agency X".into()];
        out.push(case(
            "licence end date from the photo's metadata",
            w.ask("website", "2026-05-01"),
            false,
            &[LicenceExpired],
            &[],
        ));
        w.licence(
            LicenceScope::Asset {
                asset: w.asset.id.clone(),
            },
            LicenceTerms {
                valid_until: Some(date("2027-12-31")),
                ..Default::default()
            },
            RECORDED,
        );
        let d = w.ask("website", "2026-05-01");
        assert_eq!(
            d.licence.as_ref().unwrap().licensor.as_deref(),
            Some("Agency X")
        );
        out.push(case(
            "an asset licence extends the metadata's, keeping its licensor",
            d,
            true,
            &[],
            &[LicenceValid],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.rules.require_licence = true;
        out.push(case(
            "licence required but none recorded",
            w.ask("website", "2026-05-01"),
            false,
            &[LicenceMissing],
            &[ConsentValid],
        ));
    }

    // --- restrictions, status, merges --------------------------------------
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.restrict(
            Subject::Asset(w.asset.id.clone()),
            true,
            "2026-04-01T10:00:00Z",
        );
        out.push(case(
            "asset restricted",
            w.ask("website", "2026-05-01"),
            false,
            &[AssetRestricted],
            &[],
        ));
        w.restrict(
            Subject::Asset(w.asset.id.clone()),
            false,
            "2026-04-20T10:00:00Z",
        );
        out.push(case(
            "asset restriction lifted",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
        out.push(case(
            "as of a past date: restricted then",
            w.ask_as_of_then("website", "2026-04-10"),
            false,
            &[AssetRestricted],
            &[],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        let anna = w.asset.faces[0].attribution.confirmed().unwrap().clone();
        w.restrict(Subject::Person(anna), true, RECORDED);
        out.push(case(
            "person restricted",
            w.ask("website", "2026-05-01"),
            false,
            &[PersonRestricted],
            &[],
        ));
    }
    {
        let (mut w, _) = one_adult(ALL, "2026-01-01", None);
        w.asset.status = AssetStatus::Quarantined;
        out.push(case(
            "quarantined asset",
            w.ask("website", "2026-05-01"),
            false,
            &[AssetNotReady],
            &[],
        ));
    }
    {
        let mut w = World::new(1);
        let old = w.adult("A. Jansen");
        let anna = w.adult("Anna Jansen");
        w.consent(&old, ALL, "2026-01-01", None);
        w.persons.get_mut(&old).unwrap().merged_into = Some(anna.clone());
        w.confirm(1, &anna);
        out.push(case(
            "consent of a merged person counts for the merged-into person",
            w.ask("website", "2026-05-01"),
            true,
            &[],
            &[ConsentValid],
        ));
    }
    out
}

#[test]
fn decision_table() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let d = &c.decision;
        let blocking = d.blocking_codes();
        let expected: BTreeSet<Code> = c.blocking.iter().copied().collect();
        let missing_info: Vec<_> = c.info.iter().filter(|i| !d.codes().contains(i)).collect();
        if d.allowed != c.allowed || blocking != expected || !missing_info.is_empty() {
            failures.push(format!(
                "{}: allowed {} (expected {}), blocking {:?} (expected {:?}), missing info {:?}\n  reasons: {:#?}",
                c.name, d.allowed, c.allowed, blocking, expected, missing_info, d.reasons
            ));
        }
        // Every reason reads as a sentence and its flag agrees with its code.
        for r in &d.reasons {
            assert!(
                !r.message.is_empty() && r.blocking == r.code.blocking(),
                "{}: {r:?}",
                c.name
            );
        }
        assert_eq!(
            d.allowed,
            !d.reasons.iter().any(|r| r.blocking),
            "{}",
            c.name
        );
    }
    println!("{} decision cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn release_status_follows_the_consents() {
    let w = World::new(0);
    assert_eq!(w.ask("website", "2026-05-01").release.status, "MR-NAP");
    let w = World::new(1);
    assert_eq!(w.ask("website", "2026-05-01").release.status, "MR-NON");
    let (w, c) = one_adult(ALL, "2026-01-01", None);
    let d = w.ask("website", "2026-05-01");
    assert_eq!(
        (d.release.status, d.release.ids.clone()),
        ("MR-UMR", vec![c.0.clone()])
    );
    let (w, _) = one_adult(&["website"], "2026-01-01", None);
    assert_eq!(w.ask("website", "2026-05-01").release.status, "MR-LMR");
}

#[test]
fn age_counts_whole_years_and_leap_birthdays_on_1_march() {
    assert_eq!(age_on(date("2010-06-15"), date("2026-06-14")), 15);
    assert_eq!(age_on(date("2010-06-15"), date("2026-06-15")), 16);
    assert_eq!(age_on(date("2012-02-29"), date("2027-02-28")), 14);
    assert_eq!(age_on(date("2012-02-29"), date("2027-03-01")), 15);
}
