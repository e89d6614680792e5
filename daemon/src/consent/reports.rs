//! Reports over the rights records, and the reminder digest built from them.
//!
//! Every report reads the live records (withdrawals count at once). The
//! digest gives each item a stable key (`consent-expiring:ID:DATE`, ...), so
//! the reminder job can record what it sent and never send an item twice.

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use super::decide::{self, Code, Facts, Question};
use std::collections::HashMap;

use super::model::{Consent, Licence, LicenceScope, Signer, latest_known};
use super::{Result, Rights};
use crate::domain::{AssetId, AssetStatus, PersonId};
use crate::people::People;

/// A consent ending soon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpiringConsent {
    pub consent: String,
    pub person: String,
    pub person_name: String,
    pub valid_until: Date,
    pub days_left: i32,
    pub purposes: Vec<String>,
}

/// A licence (at some scope) ending soon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpiringLicence {
    pub scope: String,
    pub valid_until: Date,
    pub days_left: i32,
}

/// A minor with only guardian-signed consents who reaches the guardian age soon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComingOfAge {
    pub person: String,
    pub person_name: String,
    pub on: Date,
    pub consents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpiringReport {
    pub today: Date,
    pub days: i32,
    pub consents: Vec<ExpiringConsent>,
    pub licences: Vec<ExpiringLicence>,
    pub coming_of_age: Vec<ComingOfAge>,
}

/// A withdrawn consent and the photos it affects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithdrawnConsent {
    pub consent: String,
    pub person: String,
    pub person_name: String,
    pub withdrawn_at: Timestamp,
    pub reason: String,
    /// Assets with a face confirmed as the person.
    pub assets: Vec<String>,
}

/// An asset blocked for a purpose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedAsset {
    pub asset: String,
    pub collection: String,
    pub purpose: String,
    pub codes: Vec<Code>,
    pub reasons: Vec<String>,
}

fn days_between(from: Date, to: Date) -> i32 {
    from.until(to).map_or(0, |s| s.get_days())
}

impl Rights {
    pub fn expiring(&self, people: &People, days: i32, today: Date) -> ExpiringReport {
        let horizon = today.checked_add(days.days()).unwrap_or(Date::MAX);
        let persons = people.persons();
        let name = |id: &crate::domain::PersonId| {
            decide::resolve_person(&persons, id).map_or_else(|| id.0.clone(), |p| p.name.clone())
        };
        let tz = self.rules.time_zone.clone();
        let guardian_age = self.rules.guardian_age;
        self.with_records(|consents, licences, _| {
            let latest = latest_known(consents, Timestamp::MAX);
            let active: Vec<_> = latest
                .iter()
                .filter(|c| !c.withdrawn_by(today, &tz))
                .collect();
            let mut report = ExpiringReport {
                today,
                days,
                consents: active
                    .iter()
                    .filter_map(|c| {
                        let until = c.valid_until?;
                        (until >= today && until <= horizon).then(|| ExpiringConsent {
                            consent: c.id.0.clone(),
                            person: c.person.0.clone(),
                            person_name: name(&c.person),
                            valid_until: until,
                            days_left: days_between(today, until),
                            purposes: c.purposes.iter().cloned().collect(),
                        })
                    })
                    .collect(),
                licences: latest_known(licences, Timestamp::MAX)
                    .into_iter()
                    .filter_map(|l| {
                        let until = l.terms.valid_until?;
                        (until >= today && until <= horizon).then(|| ExpiringLicence {
                            scope: l.scope.key(),
                            valid_until: until,
                            days_left: days_between(today, until),
                        })
                    })
                    .collect(),
                coming_of_age: Vec::new(),
            };
            let mut by_person: std::collections::BTreeMap<_, Vec<String>> = Default::default();
            for c in &active {
                if matches!(c.signer, Signer::Guardian { .. }) {
                    by_person
                        .entry(c.person.clone())
                        .or_default()
                        .push(c.id.0.clone());
                }
            }
            for (pid, consents) in by_person {
                let Some(person) = decide::resolve_person(&persons, &pid) else {
                    continue;
                };
                let Some(birth) = person.birth_date else {
                    continue;
                };
                let Ok(on) = birth.checked_add(i32::from(guardian_age).years()) else {
                    continue;
                };
                // 29 February births come of age on 1 March in other years.
                let on = if (birth.month(), birth.day()) == (2, 29) && on.day() == 28 {
                    on.tomorrow().unwrap_or(on)
                } else {
                    on
                };
                if on >= today && on <= horizon {
                    report.coming_of_age.push(ComingOfAge {
                        person: person.id.0.clone(),
                        person_name: person.name.clone(),
                        on,
                        consents,
                    });
                }
            }
            report
                .consents
                .sort_by_key(|c| (c.valid_until, c.consent.clone()));
            report
                .licences
                .sort_by_key(|l| (l.valid_until, l.scope.clone()));
            report
        })
    }

    /// Consents withdrawn since `since` (a local date), newest first, with
    /// the photos each affects.
    pub fn withdrawn(&self, people: &People, since: Date) -> Result<Vec<WithdrawnConsent>> {
        let from = since
            .to_zoned(self.rules.time_zone.clone())
            .map_or(Timestamp::MIN, |z| z.timestamp());
        let persons = people.persons();
        let items: Vec<_> = self.with_records(|consents, _, _| {
            latest_known(consents, Timestamp::MAX)
                .into_iter()
                .filter_map(|c| {
                    let w = c.withdrawn.as_ref()?;
                    (w.at >= from).then(|| (c.id.0.clone(), c.person.clone(), w.clone()))
                })
                .collect()
        });
        let mut out = Vec::new();
        for (consent, person, w) in items {
            let resolved = decide::resolve_person(&persons, &person);
            let assets = match resolved {
                Some(p) => people
                    .assets_of(p.id.as_str())
                    .map(|(_, a)| a.into_iter().map(|(id, _)| id.0).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            out.push(WithdrawnConsent {
                consent,
                person: person.0.clone(),
                person_name: resolved.map_or_else(|| person.0.clone(), |p| p.name.clone()),
                withdrawn_at: w.at,
                reason: w.reason,
                assets,
            });
        }
        out.sort_by_key(|w| std::cmp::Reverse(w.withdrawn_at));
        Ok(out)
    }

    /// Every ready asset blocked for `purpose` (each purpose when `None`) on `date`.
    pub fn blocked(
        &self,
        people: &People,
        purpose: Option<&str>,
        date: Date,
    ) -> Result<Vec<BlockedAsset>> {
        let purposes: Vec<String> = match purpose {
            Some(p) => {
                self.check_purpose(p)?;
                vec![p.to_owned()]
            }
            None => self.config.purposes.clone(),
        };
        let persons = people.persons();
        let known_at = self.default_known_at(date);
        // Index the records once: consents by the person they stand for now,
        // asset licences by asset; each decision then sees only its own.
        let (by_person, general, by_asset, restrictions) =
            self.with_records(|consents, licences, restrictions| {
                let mut by_person: HashMap<PersonId, Vec<Consent>> = HashMap::new();
                for c in consents {
                    let owner = decide::resolve_person(&persons, &c.person)
                        .map_or_else(|| c.person.clone(), |p| p.id.clone());
                    by_person.entry(owner).or_default().push(c.clone());
                }
                let mut general = Vec::new();
                let mut by_asset: HashMap<AssetId, Vec<Licence>> = HashMap::new();
                for l in licences {
                    match &l.scope {
                        LicenceScope::Asset { asset } => {
                            by_asset.entry(asset.clone()).or_default().push(l.clone());
                        }
                        _ => general.push(l.clone()),
                    }
                }
                (by_person, general, by_asset, restrictions.to_vec())
            });
        let mut out = Vec::new();
        for asset in self.store.assets() {
            let asset = asset?;
            if asset.status != AssetStatus::Ready {
                continue;
            }
            let mut consents: Vec<Consent> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for face in &asset.faces {
                if let Some(p) = face
                    .attribution
                    .confirmed()
                    .and_then(|p| decide::resolve_person(&persons, p))
                    && seen.insert(p.id.clone())
                {
                    consents.extend(by_person.get(&p.id).into_iter().flatten().cloned());
                }
            }
            let mut licences = general.clone();
            licences.extend(by_asset.get(&asset.id).into_iter().flatten().cloned());
            let facts = Facts {
                asset: &asset,
                persons: &persons,
                consents: &consents,
                licences: &licences,
                restrictions: &restrictions,
            };
            for p in &purposes {
                let d = decide::decide(
                    &facts,
                    &Question {
                        purpose: p,
                        date,
                        known_at,
                    },
                    &self.rules,
                );
                if !d.allowed {
                    out.push(BlockedAsset {
                        asset: asset.id.0.clone(),
                        collection: asset.collection.clone(),
                        purpose: p.clone(),
                        codes: d.blocking_codes().into_iter().collect(),
                        reasons: d
                            .reasons
                            .iter()
                            .filter(|r| r.blocking)
                            .map(|r| r.message.clone())
                            .collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The reminder digest for `today`: what expires within the horizon and
    /// what was withdrawn (ever; the sent record keeps it from repeating).
    pub fn digest(&self, people: &People, today: Date) -> Result<Digest> {
        let expiring = self.expiring(people, self.config.expiring_days, today);
        let withdrawn = self.withdrawn(people, Date::MIN)?;
        let mut items = Vec::new();
        for c in &expiring.consents {
            items.push(DigestItem {
                key: format!("consent-expiring:{}:{}", c.consent, c.valid_until),
                kind: "consent_expiring",
                line: format!(
                    "Consent {} of {} ends on {} ({} days): renew it or stop using the photos for {}.",
                    c.consent,
                    c.person_name,
                    c.valid_until,
                    c.days_left,
                    c.purposes.join(", ")
                ),
                data: serde_json::to_value(c).unwrap_or_default(),
            });
        }
        for l in &expiring.licences {
            items.push(DigestItem {
                key: format!("licence-expiring:{}:{}", l.scope, l.valid_until),
                kind: "licence_expiring",
                line: format!(
                    "The licence for {} ends on {} ({} days).",
                    scope_words(&l.scope),
                    l.valid_until,
                    l.days_left
                ),
                data: serde_json::to_value(l).unwrap_or_default(),
            });
        }
        for m in &expiring.coming_of_age {
            items.push(DigestItem {
                key: format!("coming-of-age:{}:{}", m.person, m.on),
                kind: "reconsent_due",
                line: format!(
                    "{} turns {} on {}: only a guardian signed their consent; ask them to confirm it themselves.",
                    m.person_name, self.rules.guardian_age, m.on
                ),
                data: serde_json::to_value(m).unwrap_or_default(),
            });
        }
        for w in &withdrawn {
            items.push(DigestItem {
                key: format!("consent-withdrawn:{}", w.consent),
                kind: "consent_withdrawn",
                line: format!(
                    "{} withdrew consent {} on {} ({}); {} photo(s) are affected and blocked: {}.",
                    w.person_name,
                    w.consent,
                    decide::local_date(w.withdrawn_at, &self.rules.time_zone),
                    w.reason,
                    w.assets.len(),
                    if w.assets.is_empty() {
                        "none".to_owned()
                    } else {
                        w.assets.join(", ")
                    }
                ),
                data: serde_json::to_value(w).unwrap_or_default(),
            });
        }
        Ok(Digest { today, items })
    }
}

fn scope_words(key: &str) -> String {
    match key.split_once('/') {
        Some(("collection", c)) => format!("collection {c}"),
        Some(("folder", f)) => format!("folder {f}"),
        Some(("asset", a)) => format!("asset {a}"),
        _ => key.to_owned(),
    }
}

/// One thing a reminder tells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestItem {
    /// Stable identity: the same item is sent once.
    pub key: String,
    pub kind: &'static str,
    pub line: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub today: Date,
    pub items: Vec<DigestItem>,
}

impl Digest {
    /// The mail: subject and plain text.
    pub fn mail(&self) -> (String, String) {
        let subject = format!(
            "consentry: {} reminder(s) for {}",
            self.items.len(),
            self.today
        );
        let mut text = format!("Reminders from consentry for {}.\n\n", self.today);
        for (title, kinds) in [
            ("Withdrawn consents", &["consent_withdrawn"][..]),
            ("Consents expiring soon", &["consent_expiring"][..]),
            ("Minors coming of age", &["reconsent_due"][..]),
            ("Licences expiring soon", &["licence_expiring"][..]),
        ] {
            let lines: Vec<_> = self
                .items
                .iter()
                .filter(|i| kinds.contains(&i.kind))
                .collect();
            if lines.is_empty() {
                continue;
            }
            text.push_str(title);
            text.push_str(":\n");
            for i in lines {
                text.push_str("- ");
                text.push_str(&i.line);
                text.push('\n');
            }
            text.push('\n');
        }
        text.push_str("Check any photo with: consentry decide ASSET --purpose PURPOSE\n");
        (subject, text)
    }
}
