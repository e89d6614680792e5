//! The Art. 30 record of processing activities, generated from the configuration.
//!
//! Input: the validated [`Config`] and a few runtime figures ([`RegisterFacts`]).
//! Output: a [`Register`], serialisable as JSON and printable as Markdown for
//! the DPO. [`build`] is pure: the caller adds the generation time.
//!
//! What the software knows (purposes, where recognition is on, retention of
//! templates, reminders, security measures) comes from the configuration; what
//! only the organisation knows comes from `[register]` ([`RegisterConfig`]).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::notify::SmtpSecurity;

/// The organisation's own entries in the register (`[register]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    /// The controller: the organisation's name and address.
    pub controller: String,
    /// How to reach the data-protection officer.
    pub dpo_contact: String,
    /// How long photos are kept (free text).
    pub photo_retention: String,
    /// How long the audit trail is kept (free text).
    pub audit_retention: String,
    /// Recipients outside the organisation (printers, press, agencies).
    pub recipients: Vec<String>,
    /// Transfers outside the EEA and their safeguards, or "none".
    pub transfers_outside_eea: String,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            controller: String::new(),
            dpo_contact: String::new(),
            photo_retention:
                "until the photo is erased or its collection is retired; reviewed yearly".to_owned(),
            audit_retention: "as long as the photo bank is in use; reviewed yearly".to_owned(),
            recipients: Vec::new(),
            transfers_outside_eea: "none".to_owned(),
        }
    }
}

/// Runtime figures the caller may add; zero or empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterFacts {
    /// Photos in the store.
    pub assets: u64,
    /// Persons in the catalogue.
    pub persons: u64,
    /// Face templates in the vault.
    pub templates: u64,
    /// The software version; empty: this build's.
    pub version: String,
}

/// The record of processing activities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub controller: String,
    pub dpo_contact: String,
    pub software: Software,
    pub figures: Figures,
    pub activities: Vec<Activity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: String,
}

/// The scale of the processing when the register was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub assets: u64,
    pub persons: u64,
    pub templates: u64,
}

/// One processing activity (Art. 30(1)(b)–(g)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Stable identifier: `photo-bank`, `face-recognition` or
    /// `face-detection`, `reminders`, `audit`.
    pub id: String,
    pub name: String,
    pub purposes: Vec<String>,
    pub data_subjects: Vec<String>,
    pub categories: Vec<String>,
    /// Art. 9 data; empty when there is none.
    pub special_categories: Vec<String>,
    pub legal_basis: Vec<String>,
    pub recipients: Vec<String>,
    pub transfers: String,
    pub retention: Vec<String>,
    pub security: Vec<String>,
    pub notes: Vec<String>,
}

/// The register for `config`; deterministic (no clock, no I/O).
pub fn build(config: &Config, facts: &RegisterFacts) -> Register {
    let version = if facts.version.is_empty() {
        env!("CARGO_PKG_VERSION").to_owned()
    } else {
        facts.version.clone()
    };
    let mut activities = vec![photo_bank(config), faces(config)];
    if config.reminders.smtp.is_some() || config.reminders.webhook.is_some() {
        activities.push(reminders(config));
    }
    activities.push(audit(config));
    Register {
        controller: config.register.controller.trim().to_owned(),
        dpo_contact: config.register.dpo_contact.trim().to_owned(),
        software: Software {
            name: "consentry".to_owned(),
            version,
        },
        figures: Figures {
            assets: facts.assets,
            persons: facts.persons,
            templates: facts.templates,
        },
        activities,
    }
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn transfers(config: &Config) -> String {
    let text = config.register.transfers_outside_eea.trim();
    if text.is_empty() { "none" } else { text }.to_owned()
}

fn audit_measure(config: &Config) -> String {
    format!(
        "Hash-chained audit log of every view, download, export, edit, face decision, \
         consent change and data-subject request; an Ed25519-signed checkpoint after every {} \
         events and at every stop",
        config.audit.checkpoint_every
    )
}

/// Which outbound connections there are, and how they are protected.
fn network_measure(config: &Config) -> String {
    let mut outbound = Vec::new();
    if let Some(smtp) = &config.reminders.smtp {
        outbound.push(match smtp.security {
            SmtpSecurity::None => "reminder mail to a relay on this machine".to_owned(),
            _ => "reminder mail over TLS".to_owned(),
        });
    }
    if config.reminders.webhook.is_some() {
        outbound.push("the reminder webhook (HTTPS, or HTTP to this machine only)".to_owned());
    }
    let outbound = if outbound.is_empty() {
        "none".to_owned()
    } else {
        outbound.join(", ")
    };
    format!(
        "Local processing: consentry itself sends no photo, face or template anywhere; face \
         models run on this machine; no cloud service, no telemetry. Outbound connections: \
         {outbound}"
    )
}

fn photo_bank(config: &Config) -> Activity {
    let reg = &config.register;
    let purposes = config.consent.purposes.clone();
    let mut legal_basis: Vec<String> = purposes
        .iter()
        .map(|p| format!("{p}: consent of each person shown, Art. 6(1)(a) (Art. 7)"))
        .collect();
    legal_basis.push(format!(
        "Persons under {}: consent given by a parent or guardian (Art. 8; UAVG art. 5)",
        config.consent.guardian_age
    ));
    legal_basis
        .push("Licences of photographers and rights holders: contract, Art. 6(1)(b)".to_owned());
    let mut recipients: Vec<String> = reg
        .recipients
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    recipients.push(format!(
        "Publication channels per purpose ({}), only for photos cleared for that purpose",
        purposes.join(", ")
    ));
    recipients.push("Staff of the controller with access to the collection".to_owned());
    let retention = if reg.photo_retention.trim().is_empty() {
        "not filled in (register.photo_retention)".to_owned()
    } else {
        reg.photo_retention.trim().to_owned()
    };
    Activity {
        id: "photo-bank".to_owned(),
        name: "Photo bank: storing and publishing photos".to_owned(),
        purposes,
        data_subjects: vec![
            "Staff, patients, pupils, citizens and other persons appearing in photos".to_owned(),
            format!(
                "Minors: below {} a parent or guardian signs; re-consent is asked at {}",
                config.consent.guardian_age, config.consent.guardian_age
            ),
            "Parents and guardians who sign consents".to_owned(),
            "Photographers and other rights holders".to_owned(),
        ],
        categories: strings([
            "Photos: images of persons (originals and thumbnails)",
            "Embedded metadata (EXIF, IPTC, XMP): capture time, camera, and GPS location if present",
            "Person records: name, kind (staff, patient, citizen, minor, other), external reference, date of birth where known, notes",
            "Consent records: signer (self or guardian), purposes, validity, withdrawal, and the signed documents",
            "Licences: rights holder, permitted purposes, validity",
        ]),
        special_categories: Vec::new(),
        legal_basis,
        recipients,
        transfers: transfers(config),
        retention: vec![
            retention,
            "Erased photos (Art. 17): their keys are destroyed at once; only the photo id stays, \
             in the erasure ledger"
                .to_owned(),
        ],
        security: vec![
            "Encryption at rest: every photo (original, thumbnails, sidecar) under its own random \
             256-bit key with XChaCha20-Poly1305; per-photo keys are stored only wrapped by the \
             master key"
                .to_owned(),
            "Master key kept apart from the data: a file readable by the service user only, or a \
             systemd credential"
                .to_owned(),
            "Catalogue records (file names, person names, GPS) sealed under a key derived from the \
             master key; index keys are keyed hashes, so the database holds no plaintext personal \
             data"
                .to_owned(),
            audit_measure(config),
            "Erasure by crypto-shredding: a photo's wrapped key is destroyed and its encrypted \
             files deleted; backups taken before still hold it until they expire, and an \
             erasure ledger kept outside the data folder re-applies every erasure after a \
             restore"
                .to_owned(),
            network_measure(config),
        ],
        notes: strings([
            "Photos are not biometric data unless processed to identify a person (Art. 4(14), \
             Recital 51); see the face activity. They may still reveal health (patients in a care \
             setting) or religion: assess this per collection",
        ]),
    }
}

/// Face recognition where it is switched on, else face detection only.
fn faces(config: &Config) -> Activity {
    let people = &config.people;
    let recognition: Vec<&str> = people
        .recognition
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if recognition.is_empty() {
        return face_detection(config);
    }
    let retention = human_duration(people.template_retention);
    let collections = if recognition.contains(&"*") {
        "all collections".to_owned()
    } else {
        let mut names: Vec<String> = recognition.iter().map(|c| format!("`{c}`")).collect();
        if !recognition.contains(&people.enrolment_collection.as_str()) {
            names.push(format!(
                "`{}` (reference photos)",
                people.enrolment_collection
            ));
        }
        format!("collections {}", names.join(", "))
    };
    let mut notes = vec![
        "A DPIA is required before recognition is used (Art. 35; AP DPIA list, item 17)".to_owned(),
    ];
    let oversight = if people.auto_confirm_distance > 0.0 {
        let line = format!(
            "Auto-confirmation is on: matches closer than {} are confirmed without a person's \
             review; other suggestions need a person's confirmation",
            people.auto_confirm_distance
        );
        notes.push(line.clone());
        line
    } else {
        "Human oversight: a suggestion names a person only after someone confirms it".to_owned()
    };
    Activity {
        id: "face-recognition".to_owned(),
        name: "Face recognition".to_owned(),
        purposes: strings([
            "Finding the persons in each photo, so that every use is checked against their consent",
            "Finding every photo of a person for a data-subject request (Art. 15–21)",
            "Keeping persons who opted out from being matched again",
        ]),
        data_subjects: vec![
            format!("Persons appearing in photos in {collections}"),
            "Persons enrolled with a reference photo".to_owned(),
        ],
        categories: strings([
            "Biometric templates: 128-D face embeddings, one per detected face",
            "Face positions in photos",
            "Links between faces and persons (suggested; confirmed by a person)",
            "Suppression templates: one per person who opted out",
        ]),
        special_categories: vec![format!(
            "Biometric data for uniquely identifying a natural person (Art. 9(1)): face \
             templates, in {collections}"
        )],
        legal_basis: strings([
            "Explicit consent, Art. 9(2)(a), given per person for recognition, separate from \
             consent to publish",
            "Consent, Art. 6(1)(a)",
        ]),
        recipients: strings(["None outside the controller: templates are never exported or sent"]),
        transfers: transfers(config),
        retention: vec![
            format!(
                "Templates of unknown faces, and of persons without recognition consent: deleted \
                 after {retention}"
            ),
            "Templates of persons with recognition consent: while that consent is valid".to_owned(),
            "Opt-out: all of the person's templates are deleted at once; one suppression \
             template keeps new photos of them from being matched or stored"
                .to_owned(),
        ],
        security: vec![
            "Templates encrypted in a vault of their own; deleting one destroys its key, so no \
             copy stays readable"
                .to_owned(),
            format!(
                "Recognition switched on per collection: {collections}; elsewhere no template is kept"
            ),
            oversight,
            audit_measure(config),
            network_measure(config),
        ],
        notes,
    }
}

fn face_detection(config: &Config) -> Activity {
    let people = &config.people;
    Activity {
        id: "face-detection".to_owned(),
        name: "Face detection (no recognition)".to_owned(),
        purposes: strings([
            "Flagging the faces in each photo, so that none is published without a consent check",
            "Blurring faces in redacted exports",
        ]),
        data_subjects: strings(["Persons appearing in photos"]),
        categories: strings([
            "Face positions (no biometric templates)",
            "Links between faces and persons, set by staff",
        ]),
        special_categories: Vec::new(),
        legal_basis: strings([
            "As for the photo bank, Art. 6(1)(a); detection serves the consent check \
             (Art. 5(2), 7(1))",
        ]),
        recipients: strings(["None outside the controller"]),
        transfers: transfers(config),
        retention: strings(["With the photo"]),
        security: vec![
            "Recognition is off in every collection: no face template is kept".to_owned(),
            network_measure(config),
        ],
        notes: vec![format!(
            "Reference photos handed in with `consentry people add --photo` go to collection \
             `{}`, whose faces are always recognised: their templates are biometric data \
             (Art. 9), kept for {} unless the person has recognition consent. Use it only with \
             the person's explicit consent",
            people.enrolment_collection,
            human_duration(people.template_retention)
        )],
    }
}

fn reminders(config: &Config) -> Activity {
    let mut recipients = Vec::new();
    let mut security = Vec::new();
    if let Some(smtp) = &config.reminders.smtp {
        recipients.extend(smtp.to.iter().map(|to| format!("Mail: {}", to.trim())));
        security.push(
            match smtp.security {
                SmtpSecurity::StartTls => {
                    "Mail over SMTP with STARTTLS; the server's certificate is checked"
                }
                SmtpSecurity::Tls => "Mail over SMTP with TLS; the server's certificate is checked",
                SmtpSecurity::None => {
                    "Mail to a relay on this machine only (no TLS needed on loopback)"
                }
            }
            .to_owned(),
        );
    }
    if let Some(webhook) = &config.reminders.webhook {
        let host = webhook
            .url
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_owned))
            .unwrap_or_else(|| "(unparsable URL)".to_owned());
        recipients.push(format!("Webhook at {host}"));
        security.push(
            "Webhook over HTTPS with the certificate checked (HTTP only to this machine)"
                .to_owned(),
        );
    }
    security
        .push("Each item is sent once; passwords are read from a file, never logged".to_owned());
    Activity {
        id: "reminders".to_owned(),
        name: "Reminders and notifications".to_owned(),
        purposes: vec![format!(
            "A daily digest for staff: consents and licences expiring within {} days, minors \
             reaching {}, and new withdrawals",
            config.consent.expiring_days, config.consent.guardian_age
        )],
        data_subjects: strings([
            "Persons whose consents expire or are withdrawn",
            "Rights holders whose licences expire",
        ]),
        categories: strings([
            "Digest of expiring consents: names of persons and consent ids, with dates",
            "Expiring licences: licence ids and rights holders, with dates",
        ]),
        special_categories: Vec::new(),
        legal_basis: strings([
            "Legal obligation, Art. 6(1)(c): keeping consent current and demonstrable \
             (Art. 5(2), 7(1))",
        ]),
        recipients,
        transfers: transfers(config),
        retention: strings([
            "consentry keeps only which items were sent; copies in mailboxes or at the webhook \
             follow the recipients' own retention",
        ]),
        security,
        notes: Vec::new(),
    }
}

fn audit(config: &Config) -> Activity {
    let retention = if config.register.audit_retention.trim().is_empty() {
        "not filled in (register.audit_retention)".to_owned()
    } else {
        config.register.audit_retention.trim().to_owned()
    };
    Activity {
        id: "audit".to_owned(),
        name: "Audit trail and data-subject requests".to_owned(),
        purposes: strings([
            "Demonstrating compliance (Art. 5(2)): who viewed, downloaded, exported or changed \
             what, and when",
            "Handling data-subject requests (Art. 15–21) within the Art. 12(3) deadline",
            "Assessing a breach (Art. 33–34): which photos and persons were exposed",
        ]),
        data_subjects: strings([
            "Users of consentry (staff)",
            "Persons whose photos, consents and requests are recorded",
            "Persons who make data-subject requests",
        ]),
        categories: strings([
            "User names, actions, times and object ids (photo, person, consent); never photo content",
            "Data-subject requests: requester, kind, received and due dates, outcome",
            "Records that an erasure happened, without the erased content",
        ]),
        special_categories: Vec::new(),
        legal_basis: strings([
            "Legal obligation, Art. 6(1)(c): accountability (Art. 5(2)), records (Art. 30), \
             security (Art. 32), data-subject rights (Art. 12)",
        ]),
        recipients: strings([
            "The data-protection officer",
            "The supervisory authority, on request (Art. 31, 58)",
        ]),
        transfers: transfers(config),
        retention: vec![retention],
        security: vec![
            audit_measure(config),
            "The checkpoint signing key is kept apart from the data".to_owned(),
        ],
        notes: Vec::new(),
    }
}

/// `30 days`, `12 hours`, `90 minutes`: the largest unit that divides exactly.
fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units: [(u128, &str); 4] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    let (n, unit) = units
        .iter()
        .find(|(size, _)| ms >= *size && ms.is_multiple_of(*size))
        .map_or((ms, "millisecond"), |(size, unit)| (ms / size, *unit));
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

impl Register {
    /// A Markdown document for the DPO. The caller may add the generation
    /// time after the title line.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# Record of processing activities (GDPR Art. 30)\n\n");
        let _ = writeln!(
            out,
            "- **Controller:** {}",
            filled(&self.controller, "register.controller")
        );
        let _ = writeln!(
            out,
            "- **Data-protection officer:** {}",
            filled(&self.dpo_contact, "register.dpo_contact")
        );
        let _ = writeln!(
            out,
            "- **Software:** {} {}",
            inline(&self.software.name),
            inline(&self.software.version)
        );
        let Figures {
            assets,
            persons,
            templates,
        } = self.figures;
        if assets + persons + templates > 0 {
            let _ = writeln!(
                out,
                "- **Scale:** {assets} photos, {persons} persons, {templates} face templates"
            );
        }
        for activity in &self.activities {
            let _ = write!(out, "\n## {}\n\n", inline(&activity.name));
            out.push_str("| | |\n| --- | --- |\n");
            let rows: [(&str, &[String]); 9] = [
                ("Purposes", &activity.purposes),
                ("Data subjects", &activity.data_subjects),
                ("Categories of personal data", &activity.categories),
                ("Special categories (Art. 9)", &activity.special_categories),
                ("Legal basis", &activity.legal_basis),
                ("Recipients", &activity.recipients),
                (
                    "Transfers outside the EEA",
                    std::slice::from_ref(&activity.transfers),
                ),
                ("Retention", &activity.retention),
                ("Security measures", &activity.security),
            ];
            for (label, items) in rows {
                let _ = writeln!(out, "| **{label}** | {} |", cell(items));
            }
            if !activity.notes.is_empty() {
                out.push('\n');
                for note in &activity.notes {
                    let _ = writeln!(out, "> {}", inline(note));
                }
            }
        }
        out
    }
}

fn filled(text: &str, key: &str) -> String {
    if text.trim().is_empty() {
        format!("*not filled in (set `{key}`)*")
    } else {
        inline(text)
    }
}

/// Free text on one line: line breaks become ", ".
fn inline(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Items of a table cell, one per line; `|` escaped.
fn cell(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(|item| inline(item).replace('|', "\\|"))
        .collect::<Vec<_>>()
        .join("<br>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity<'a>(register: &'a Register, id: &str) -> &'a Activity {
        register
            .activities
            .iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("no activity {id}"))
    }

    fn all_text(activity: &Activity) -> String {
        serde_json::to_string(activity).unwrap()
    }

    fn with_reminders(toml: &str) -> Config {
        toml::from_str(toml).expect("test config parses")
    }

    #[test]
    fn recognition_off_is_detection_only() {
        let register = build(&Config::default(), &RegisterFacts::default());
        assert!(
            register
                .activities
                .iter()
                .all(|a| a.id != "face-recognition")
        );
        let faces = activity(&register, "face-detection");
        assert!(
            faces
                .categories
                .contains(&"Face positions (no biometric templates)".to_owned())
        );
        assert!(faces.special_categories.is_empty());
        for a in &register.activities {
            assert!(
                !a.categories
                    .iter()
                    .any(|c| c.contains("Biometric templates")),
                "{}",
                a.id
            );
            assert!(
                !a.legal_basis.iter().any(|b| b.contains("9(2)")),
                "{}",
                a.id
            );
        }
    }

    #[test]
    fn recognition_on_names_collections_and_retention() {
        let mut config = Config::default();
        config.people.recognition = vec!["staff".to_owned()];
        let register = build(&config, &RegisterFacts::default());
        assert!(register.activities.iter().all(|a| a.id != "face-detection"));
        let faces = activity(&register, "face-recognition");
        let text = all_text(faces);
        assert!(text.contains("`staff`"), "{text}");
        assert!(text.contains("`enrolment` (reference photos)"), "{text}");
        assert!(
            faces.retention.iter().any(|r| r.contains("after 30 days")),
            "{:?}",
            faces.retention
        );
        assert!(
            faces
                .categories
                .iter()
                .any(|c| c.contains("Biometric templates"))
        );
        assert!(faces.legal_basis.iter().any(|b| b.contains("Art. 9(2)(a)")));
        assert!(!faces.special_categories.is_empty());

        config.people.recognition = vec!["*".to_owned()];
        config.people.template_retention = Duration::from_secs(36 * 3600);
        let register = build(&config, &RegisterFacts::default());
        let text = all_text(activity(&register, "face-recognition"));
        assert!(text.contains("all collections"), "{text}");
        assert!(text.contains("36 hours"), "{text}");
        assert!(!text.contains("Auto-confirmation"), "{text}");

        config.people.auto_confirm_distance = 0.3;
        let register = build(&config, &RegisterFacts::default());
        let faces = activity(&register, "face-recognition");
        assert!(faces.security.iter().any(|s| s.contains("closer than 0.3")));
        assert!(
            !faces
                .security
                .iter()
                .any(|s| s.starts_with("Human oversight"))
        );
    }

    #[test]
    fn configured_purposes_and_entries_appear() {
        let mut config = Config::default();
        config.consent.purposes = vec!["annual-report".to_owned(), "newsletter".to_owned()];
        config.consent.guardian_age = 13;
        config.audit.checkpoint_every = 250;
        config.register.recipients = vec!["Print shop Example B.V.".to_owned()];
        config.register.photo_retention = "five years".to_owned();
        let register = build(&config, &RegisterFacts::default());
        let bank = activity(&register, "photo-bank");
        assert_eq!(bank.purposes, ["annual-report", "newsletter"]);
        assert!(bank.legal_basis[0].starts_with("annual-report: consent"));
        assert!(
            bank.recipients
                .contains(&"Print shop Example B.V.".to_owned())
        );
        assert_eq!(bank.retention[0], "five years");
        let text = all_text(bank);
        assert!(text.contains("below 13"), "{text}");
        assert!(text.contains("every 250 events"), "{text}");
        assert!(!text.contains("website"), "{text}");
    }

    #[test]
    fn reminder_recipients_only_when_configured() {
        let register = build(&Config::default(), &RegisterFacts::default());
        assert!(register.activities.iter().all(|a| a.id != "reminders"));
        assert!(
            !serde_json::to_string(&register)
                .unwrap()
                .contains("privacy@")
        );

        let config = with_reminders(
            "[reminders.smtp]\nhost = \"mail.example.org\"\nfrom = \"consentry@example.org\"\n\
             to = [\"privacy@example.org\", \"comms@example.org\"]\n\
             [reminders.webhook]\nurl = \"https://intranet.example.org/hooks/secret-token\"\n",
        );
        let register = build(&config, &RegisterFacts::default());
        let reminders = activity(&register, "reminders");
        assert_eq!(
            reminders.recipients,
            [
                "Mail: privacy@example.org",
                "Mail: comms@example.org",
                "Webhook at intranet.example.org"
            ]
        );
        let json = serde_json::to_string(&register).unwrap();
        assert!(!json.contains("secret-token"), "the URL path is left out");
        assert!(
            activity(&register, "photo-bank")
                .security
                .iter()
                .any(|s| s.contains("reminder mail over TLS"))
        );
    }

    #[test]
    fn markdown_has_every_activity_and_escapes_pipes() {
        let mut config = Config::default();
        config.register.recipients = vec!["Press | regional".to_owned()];
        config.register.controller = "Example Hospital\nMain Street 1".to_owned();
        let register = build(&config, &RegisterFacts::default());
        let md = register.to_markdown();
        assert!(md.starts_with("# Record of processing activities"));
        for a in &register.activities {
            assert!(md.contains(&format!("\n## {}\n", a.name)), "{}", a.name);
        }
        assert_eq!(register.activities.len(), 3);
        assert!(md.contains("Press \\| regional"), "{md}");
        assert!(md.contains("Example Hospital, Main Street 1"), "{md}");
        assert!(
            md.contains("not filled in (set `register.dpo_contact`)"),
            "{md}"
        );
        assert!(!md.contains("Scale"), "no figures given: {md}");
        let facts = RegisterFacts {
            assets: 5,
            ..RegisterFacts::default()
        };
        assert!(
            build(&config, &facts)
                .to_markdown()
                .contains("5 photos, 0 persons")
        );
        // Every table row has exactly three unescaped pipes.
        for line in md.lines().filter(|l| l.starts_with("| **")) {
            let pipes = line.replace("\\|", "").matches('|').count();
            assert_eq!(pipes, 3, "{line}");
        }
    }

    #[test]
    fn json_round_trip_keeps_field_names() {
        let mut config = Config::default();
        config.people.recognition = vec!["staff".to_owned()];
        config.register.controller = "Example".to_owned();
        let facts = RegisterFacts {
            assets: 12,
            persons: 3,
            templates: 7,
            version: "9.9.9".to_owned(),
        };
        let register = build(&config, &facts);
        let value = serde_json::to_value(&register).unwrap();
        assert_eq!(value["controller"], "Example");
        assert_eq!(value["dpo_contact"], "");
        assert_eq!(value["software"]["name"], "consentry");
        assert_eq!(value["software"]["version"], "9.9.9");
        assert_eq!(value["figures"]["templates"], 7);
        let first = value["activities"][0].as_object().unwrap();
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        for key in [
            "id",
            "name",
            "purposes",
            "data_subjects",
            "categories",
            "special_categories",
            "legal_basis",
            "recipients",
            "transfers",
            "retention",
            "security",
            "notes",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let back: Register = serde_json::from_value(value).unwrap();
        assert_eq!(back, register);
        assert_eq!(build(&config, &facts), register, "deterministic");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(human_duration(Duration::from_secs(86_400)), "1 day");
        assert_eq!(human_duration(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(
            human_duration(Duration::from_millis(1500)),
            "1500 milliseconds"
        );
    }
}
