//! Usage decision speed: `consent::decide::decide` over a synthetic
//! catalogue, as `consentry report blocked` runs it (every asset × every
//! purpose) and as one `consentry decide` does.
//!
//! The catalogue (seeded): 10 000 assets with 0–8 faces each (80 %
//! confirmed to one of 2 000 persons, 5 % incidental), one consent per
//! person with 1–3 versions (amended purposes, some withdrawn, some
//! expired), a collection licence and a licence on every tenth asset. The
//! decision reads every consent version each time (the rights service keeps
//! them in one list), so the figure includes that scan.
//!
//! Run: `cargo bench -p consentry-daemon --bench decide`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use consentry::consent::decide::{Facts, Question, Rules, decide};
use consentry::consent::model::{
    Consent, ConsentId, Licence, LicenceScope, LicenceTerms, Signer, Withdrawal,
};
use consentry::domain::{
    Asset, AssetId, AssetStatus, Attribution, Face, FaceBox, FaceQuality, Identity, Person,
    PersonId, PersonKind, SourceRef, TemplateStatus,
};
use jiff::Timestamp;
use jiff::civil::Date;

const ASSETS: usize = 10_000;
const PERSONS: usize = 2_000;
const PURPOSES: &[&str] = &[
    "internal",
    "intranet",
    "website",
    "social-media",
    "print",
    "press",
    "third-parties",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn face(no: u32, person: Option<PersonId>, incidental: bool) -> Face {
    Face {
        no,
        bbox: FaceBox {
            x: no as f32 * 150.0,
            y: 100.0,
            width: 120.0,
            height: 140.0,
        },
        landmarks: vec![],
        score: 0.99,
        quality: FaceQuality {
            score: 1.0,
            interocular_px: 50.0,
            sharpness: 100.0,
            yaw: 0.0,
            pitch: 0.0,
            roll_deg: 0.0,
        },
        embedding: vec![],
        engine: "bench".into(),
        detected_at_ms: 0,
        template: TemplateStatus::None,
        attribution: Attribution {
            identity: person.map(|person| Identity::Confirmed {
                person,
                distance: None,
                by: "user".into(),
                at_ms: 0,
            }),
            incidental,
            ..Attribution::default()
        },
    }
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let ts = |s: &str| s.parse::<Timestamp>().unwrap();
    let date = |s: &str| s.parse::<Date>().unwrap();
    let persons: BTreeMap<PersonId, Person> = (0..PERSONS)
        .map(|i| {
            let id = PersonId(format!("{i:016x}"));
            let person = Person {
                id: id.clone(),
                name: format!("Person {i}"),
                kind: if i % 10 == 0 {
                    PersonKind::Minor
                } else {
                    PersonKind::Staff
                },
                external_ref: None,
                notes: None,
                recognition: Default::default(),
                merged_into: None,
                birth_date: (i % 10 == 0).then(|| date("2012-05-01")),
                created_at_ms: 0,
                updated_at_ms: 0,
            };
            (id, person)
        })
        .collect();
    let mut consents = Vec::new();
    for (i, id) in persons.keys().enumerate() {
        let versions = 1 + rng.below(3) as u32;
        let mut c = Consent {
            id: ConsentId(format!("{i:016x}")),
            version: 1,
            person: id.clone(),
            signer: if i % 10 == 0 {
                Signer::Guardian {
                    name: "Guardian".into(),
                }
            } else {
                Signer::Subject
            },
            signed_on: date("2025-01-01"),
            purposes: PURPOSES[..1 + rng.below(7) as usize]
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            recognition: false,
            valid_from: date("2025-01-01"),
            valid_until: (i % 7 == 0).then(|| date("2026-03-31")),
            withdrawn: None,
            document: None,
            reference: None,
            notes: None,
            recorded_at: ts("2025-01-02T10:00:00Z"),
            recorded_by: "bench".into(),
            change: "recorded".into(),
        };
        consents.push(c.clone());
        for v in 2..=versions {
            c.version = v;
            c.recorded_at = ts("2025-06-01T10:00:00Z");
            if i % 13 == 0 && v == versions {
                c.withdrawn = Some(Withdrawal {
                    at: c.recorded_at,
                    reason: "bench".into(),
                });
            } else {
                c.purposes.insert("website".into());
            }
            consents.push(c.clone());
        }
    }
    let person_ids: Vec<PersonId> = persons.keys().cloned().collect();
    let assets: Vec<Asset> = (0..ASSETS)
        .map(|i| {
            let n = rng.below(9) as u32;
            Asset {
                id: AssetId::of_bytes(&(i as u64).to_le_bytes()),
                status: AssetStatus::Ready,
                collection: "comms".into(),
                sources: vec![SourceRef {
                    collection: "comms".into(),
                    path: format!("2026/batch-{}/img{i}.jpg", i % 50),
                    size: 1,
                    mtime_ms: 0,
                    ingested_at_ms: 0,
                }],
                bytes: 1,
                format: Some("JPEG".into()),
                mime: Some("image/jpeg".into()),
                width: Some(4000),
                height: Some(3000),
                metadata: Default::default(),
                original: None,
                sidecar: None,
                thumbnails: vec![],
                key: None,
                quarantine: None,
                faces: (1..=n)
                    .map(|no| {
                        let roll = rng.below(100);
                        let person = (roll < 80)
                            .then(|| person_ids[rng.below(PERSONS as u64) as usize].clone());
                        face(no, person, (80..85).contains(&roll))
                    })
                    .collect(),
                created_at_ms: 0,
                updated_at_ms: 0,
            }
        })
        .collect();
    let mut licences = vec![Licence {
        scope: LicenceScope::Collection {
            collection: "comms".into(),
        },
        version: 1,
        terms: LicenceTerms {
            copyright: Some("© Bench".into()),
            ..Default::default()
        },
        recorded_at: ts("2025-01-01T00:00:00Z"),
        recorded_by: "bench".into(),
    }];
    for a in assets.iter().step_by(10) {
        licences.push(Licence {
            scope: LicenceScope::Asset {
                asset: a.id.clone(),
            },
            version: 1,
            terms: LicenceTerms {
                valid_until: Some(date("2027-12-31")),
                ..Default::default()
            },
            recorded_at: ts("2025-01-01T00:00:00Z"),
            recorded_by: "bench".into(),
        });
    }
    let rules = Rules {
        time_zone: jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap(),
        guardian_age: 16,
        min_face_px: 0,
        require_licence: false,
        expiring_days: 30,
        purposes: PURPOSES.iter().map(|p| (*p).to_owned()).collect(),
    };
    println!(
        "catalogue: {ASSETS} assets, {} faces, {PERSONS} persons, {} consent versions, {} licences",
        assets.iter().map(|a| a.faces.len()).sum::<usize>(),
        consents.len(),
        licences.len()
    );
    let question = |purpose| Question {
        purpose,
        date: date("2026-11-23"),
        known_at: Timestamp::MAX,
    };
    // One decision at a time (as `consentry decide`), over a sample.
    let mut times = Vec::new();
    for a in assets.iter().step_by(20) {
        let facts = Facts {
            asset: a,
            persons: &persons,
            consents: &consents,
            licences: &licences,
            restrictions: &[],
        };
        let t = Instant::now();
        black_box(decide(&facts, &question("website"), &rules));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "one decision (website), {} assets: p50 {:.1} µs, p95 {:.1} µs, max {:.1} µs",
        times.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    // The blocked report: every asset × every purpose, one thread.
    let t = Instant::now();
    let mut blocked = 0usize;
    for a in &assets {
        let facts = Facts {
            asset: a,
            persons: &persons,
            consents: &consents,
            licences: &licences,
            restrictions: &[],
        };
        for p in PURPOSES {
            blocked += usize::from(!decide(&facts, &question(p), &rules).allowed);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let n = ASSETS * PURPOSES.len();
    println!(
        "blocked report: {n} decisions in {:.2} s = {:.0} decisions/s ({blocked} blocked)",
        secs,
        n as f64 / secs
    );
}
