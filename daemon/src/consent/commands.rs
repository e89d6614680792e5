//! The consent, licence, decision, report and export commands as the control
//! protocol carries them: one [`RightsRequest`] in, JSON lines out. Shared by
//! the daemon's socket and the CLI's direct mode (through `control::answer`).
//! Files travel as hex both ways (the daemon's service user cannot read or
//! write the operator's files).

use std::io::Write;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::model::{Consent, LicenceScope, LicenceTerms, Subject};
use super::{NewConsent, Rights, RightsError, Upload};
use crate::config::RemindersConfig;
use crate::domain::AssetId;
use crate::people::People;
use crate::people::commands::PhotoUpload;
use crate::pipeline::store::crypto::{hex_decode, hex_encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RightsRequest {
    ConsentAdd {
        consent: Box<NewConsent>,
        document: Option<PhotoUpload>,
    },
    ConsentWithdraw {
        id: String,
        reason: String,
        at: Option<Timestamp>,
    },
    ConsentList {
        person: Option<String>,
        date: Option<Date>,
    },
    ConsentShow {
        id: String,
    },
    ConsentDocument {
        id: String,
    },
    LicenceSet {
        scope: LicenceScope,
        terms: Box<LicenceTerms>,
        document: Option<PhotoUpload>,
    },
    LicenceShow {
        asset: String,
    },
    Restrict {
        subject: String,
        person: bool,
        restricted: bool,
        reason: String,
    },
    Decide {
        asset: String,
        purpose: String,
        date: Option<Date>,
        as_of: Option<Timestamp>,
    },
    ReportExpiring {
        days: Option<i32>,
    },
    ReportBlocked {
        purpose: Option<String>,
        date: Option<Date>,
    },
    ReportWithdrawn {
        since: Option<Date>,
    },
    RemindersRun,
    Export {
        assets: Vec<String>,
        purpose: String,
        date: Option<Date>,
        xmp: bool,
        redact: bool,
    },
}

/// A consent as listed: the latest version and its state on a date.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    #[serde(flatten)]
    pub consent: Consent,
    pub person_name: String,
    /// On the date asked: valid, expiring-soon, expired, not-yet-valid, withdrawn.
    pub status: &'static str,
    pub status_on: Date,
}

/// One exported file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedFile {
    pub name: String,
    pub hex: String,
}

fn upload(u: Option<&PhotoUpload>) -> Result<Option<Upload>, String> {
    u.map(|u| {
        Ok(Upload {
            name: u.name.clone(),
            bytes: hex_decode(&u.hex).ok_or("the document upload is not hex")?,
        })
    })
    .transpose()
}

fn asset_id(text: &str) -> Result<AssetId, String> {
    AssetId::parse(text).ok_or_else(|| format!("`{text}` is not an asset id (64 hex digits)"))
}

pub fn status_on(rights: &Rights, c: &Consent, date: Date) -> &'static str {
    let rules = rights.rules();
    if c.withdrawn_by(date, &rules.time_zone) {
        "withdrawn"
    } else if date < c.valid_from {
        "not-yet-valid"
    } else if c.valid_until.is_some_and(|u| date > u) {
        "expired"
    } else if c
        .valid_until
        .zip(
            date.checked_add(jiff::Span::new().days(rules.expiring_days))
                .ok(),
        )
        .is_some_and(|(u, h)| u <= h)
    {
        "expiring-soon"
    } else {
        "valid"
    }
}

pub fn answer(
    request: &RightsRequest,
    rights: &Rights,
    people: &People,
    reminders: &RemindersConfig,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let e = |err: RightsError| err.to_string();
    let view = |c: Consent, date: Date| ConsentView {
        person_name: people.name_of(c.person.as_str()).unwrap_or_default(),
        status: status_on(rights, &c, date),
        status_on: date,
        consent: c,
    };
    match request {
        RightsRequest::ConsentAdd { consent, document } => {
            let c = rights
                .add_consent(people, consent, upload(document.as_ref())?, by)
                .map_err(e)?;
            let today = rights.today();
            line(out, &view(c, today))
        }
        RightsRequest::ConsentWithdraw { id, reason, at } => {
            let c = rights.withdraw(people, id, reason, *at, by).map_err(e)?;
            let affected = people
                .assets_of(c.person.as_str())
                .map(|(_, a)| a.into_iter().map(|(id, _)| id.0).collect::<Vec<_>>())
                .unwrap_or_default();
            let today = rights.today();
            line(
                out,
                &serde_json::json!({ "consent": view(c, today), "affected_assets": affected }),
            )
        }
        RightsRequest::ConsentList { person, date } => {
            let pid = person
                .as_deref()
                .map(|p| people.resolve(p).map(|p| p.id))
                .transpose()
                .map_err(|err| err.to_string())?;
            let date = date.unwrap_or_else(|| rights.today());
            for c in rights.list(pid.as_ref()) {
                line(out, &view(c, date))?;
            }
            Ok(())
        }
        RightsRequest::ConsentShow { id } => {
            let today = rights.today();
            for c in rights.history(id).map_err(e)? {
                line(out, &view(c, today))?;
            }
            Ok(())
        }
        RightsRequest::ConsentDocument { id } => {
            let (doc, bytes) = rights.document(id).map_err(e)?;
            line(
                out,
                &ExportedFile {
                    name: doc.name,
                    hex: hex_encode(&bytes),
                },
            )
        }
        RightsRequest::LicenceSet {
            scope,
            terms,
            document,
        } => {
            let l = rights
                .set_licence(
                    scope.clone(),
                    (**terms).clone(),
                    upload(document.as_ref())?,
                    by,
                )
                .map_err(e)?;
            line(out, &l)
        }
        RightsRequest::LicenceShow { asset } => {
            let (terms, sources) = rights.licence_of(&asset_id(asset)?).map_err(e)?;
            line(
                out,
                &serde_json::json!({ "asset": asset, "licence": terms, "sources": sources }),
            )
        }
        RightsRequest::Restrict {
            subject,
            person,
            restricted,
            reason,
        } => {
            let subject = if *person {
                Subject::Person(people.resolve(subject).map_err(|err| err.to_string())?.id)
            } else {
                Subject::Asset(asset_id(subject)?)
            };
            line(
                out,
                &rights
                    .restrict(subject, *restricted, reason, by)
                    .map_err(e)?,
            )
        }
        RightsRequest::Decide {
            asset,
            purpose,
            date,
            as_of,
        } => {
            let date = date.unwrap_or_else(|| rights.today());
            let known_at = as_of.unwrap_or_else(|| rights.default_known_at(date));
            let d = rights
                .decide(people, &asset_id(asset)?, purpose, date, known_at)
                .map_err(e)?;
            line(out, &d)
        }
        RightsRequest::ReportExpiring { days } => {
            let days = days.unwrap_or(rights.config().expiring_days);
            line(out, &rights.expiring(people, days, rights.today()))
        }
        RightsRequest::ReportBlocked { purpose, date } => {
            let date = date.unwrap_or_else(|| rights.today());
            for b in rights
                .blocked(people, purpose.as_deref(), date)
                .map_err(e)?
            {
                line(out, &b)?;
            }
            Ok(())
        }
        RightsRequest::ReportWithdrawn { since } => {
            let since = since.unwrap_or(Date::MIN);
            for w in rights.withdrawn(people, since).map_err(e)? {
                line(out, &w)?;
            }
            Ok(())
        }
        RightsRequest::RemindersRun => {
            let run =
                super::reminders::run(rights, people, reminders, rights.today()).map_err(e)?;
            line(out, &run)
        }
        RightsRequest::Export {
            assets,
            purpose,
            date,
            xmp,
            redact,
        } => {
            let date = date.unwrap_or_else(|| rights.today());
            for a in assets {
                let files = crate::export::export_asset(
                    rights,
                    people,
                    &asset_id(a)?,
                    purpose,
                    date,
                    *xmp,
                    *redact,
                )
                .map_err(|err| err.to_string())?;
                for f in files {
                    line(out, &f)?;
                }
            }
            Ok(())
        }
    }
}

fn line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    text.push('\n');
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}
