//! Data-subject requests (GDPR Art. 15–21): cases with deadlines, finding a
//! person's photos, the access package, erasure, restriction.
//!
//! Input: a [`Case`] opened for a person, and the officer's actions on it.
//! Output: case records in the store (every action logged on the case and as
//! an audit event), access packages (zip), erasures (`erase.rs`, recorded in
//! the ledger outside the data directory). Failure modes: an unknown person or
//! case, a closed case, store errors; each refused with a sentence.

pub mod case;
pub mod commands;
pub mod erase;
pub mod ledger;
pub mod package;

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use crate::audit::{Audit, Event};
use crate::consent::Rights;
use crate::domain::AssetId;
use crate::people::People;
use crate::pipeline::store::Store;
pub use case::{Case, Kind, Status};

/// Audit actions that mean a photo left the system, for Art. 15(1)(c) and
/// the Art. 19 notification list.
pub const RECIPIENT_ACTIONS: [&str; 4] = [
    "asset.download",
    "asset.export",
    "asset.share",
    "catalogue.export",
];

/// The next free case id for the year of `received`.
pub fn next_case_id(store: &Store, year: i16) -> Result<String, String> {
    let prefix = format!("DSR-{year}-");
    let taken = store
        .cases::<Case>()
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|c| c.id.strip_prefix(&prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    Ok(format!("{prefix}{:04}", taken + 1))
}

pub fn load(store: &Store, id: &str) -> Result<Case, String> {
    store
        .case::<Case>(id.trim())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no DSR case {id} (see `consentry dsr list --all`)"))
}

pub fn open_for_change(store: &Store, id: &str) -> Result<Case, String> {
    let case = load(store, id)?;
    if case.status == Status::Closed {
        return Err(format!("case {} is closed", case.id));
    }
    Ok(case)
}

/// Audit events in which photos of `assets` left the system.
pub fn recipients(audit: &Audit, assets: &BTreeSet<AssetId>) -> Result<Vec<Event>, String> {
    let objects: BTreeSet<String> = assets.iter().map(|a| format!("asset:{a}")).collect();
    Ok(audit
        .events_since(0)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| {
            RECIPIENT_ACTIONS.contains(&e.action.as_str())
                && e.outcome == crate::audit::Outcome::Ok
                && objects.contains(&e.object)
        })
        .collect())
}

/// Builds the access package for the case's person: their confirmed photos
/// (originals), sidecars naming only them, consents and documents, decisions
/// per purpose for `today`, and recipients from the audit log.
pub fn access_package(
    store: &Store,
    people: &People,
    rights: &Rights,
    audit: &Audit,
    case: &Case,
    contact: &str,
    today: Date,
) -> Result<(Vec<u8>, Vec<AssetId>), String> {
    use package::*;
    let (person, assets) = people.assets_of(&case.person).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    let mut consents = Vec::new();
    for c in rights.list(Some(&person.id)) {
        let document = match &c.document {
            Some(doc) => {
                let (_, bytes) = rights.document(c.id.as_str()).map_err(|e| e.to_string())?;
                let path = format!("documents/{}-{}", c.id.as_str(), safe_name(&doc.name));
                files.push(PackageFile {
                    path: path.clone(),
                    bytes,
                });
                Some(path)
            }
            None => None,
        };
        consents.push(ConsentInfo::from_consent(&c, document));
    }
    let purposes = rights.config().purposes.clone();
    let mut photos = Vec::new();
    let mut ids = Vec::new();
    for (id, nos) in &assets {
        let asset = store
            .asset(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("asset {id} vanished"))?;
        let Some(original) = &asset.original else {
            continue;
        };
        let bytes = store
            .read_blob(&asset, original)
            .map_err(|e| e.to_string())?;
        let ext = match asset.format.as_deref() {
            Some("PNG") => "png",
            Some("HEIF") => "heic",
            Some("TIFF") => "tif",
            Some("WEBP") => "webp",
            _ => "jpg",
        };
        let file = format!("photos/{id}.{ext}");
        files.push(PackageFile {
            path: file.clone(),
            bytes,
        });
        let faces: Vec<_> = asset.faces.iter().filter(|f| nos.contains(&f.no)).collect();
        let sidecar = crate::export::xmp::sidecar(&crate::export::xmp::SidecarInput {
            displayed_width: asset.width.unwrap_or(1),
            displayed_height: asset.height.unwrap_or(1),
            orientation: asset.metadata.orientation.unwrap_or(1),
            faces: faces
                .iter()
                .map(|f| crate::export::xmp::SidecarFace {
                    bbox: f.bbox,
                    name: Some(person.name.clone()),
                    region_id: format!("face-{}", f.no),
                })
                .collect(),
            persons_in_image: vec![person.name.clone()],
            model_release_status: None,
            model_release_ids: vec![],
            minor_model_age: None,
            other_constraints: None,
            rights: Default::default(),
        });
        let xmp = format!("xmp/{id}.xmp");
        files.push(PackageFile {
            path: xmp.clone(),
            bytes: sidecar.into_bytes(),
        });
        let mut decisions = Vec::new();
        for purpose in &purposes {
            let d = rights
                .decide(people, id, purpose, today, rights.default_known_at(today))
                .map_err(|e| e.to_string())?;
            decisions.push(DecisionInfo {
                purpose: purpose.clone(),
                date: today.to_string(),
                allowed: d.allowed,
                reasons: d
                    .reasons
                    .iter()
                    .map(|r| ReasonInfo {
                        code: r.code.as_str().to_owned(),
                        blocking: r.blocking,
                        message: r.message.clone(),
                    })
                    .collect(),
            });
        }
        photos.push(PhotoInfo {
            asset: id.to_string(),
            file,
            xmp: Some(xmp),
            collection: asset.collection.clone(),
            format: asset.format.clone(),
            width: asset.width,
            height: asset.height,
            taken_at: asset
                .metadata
                .capture_time
                .as_ref()
                .map(|t| t.local.clone()),
            ingested_at: crate::clock::rfc3339(asset.created_at_ms),
            faces: faces
                .iter()
                .map(|f| FaceInfo {
                    face: f.no,
                    bbox: FaceBoxInfo::from(f.bbox),
                    status: "confirmed".to_owned(),
                })
                .collect(),
            decisions,
        });
        ids.push(id.clone());
    }
    let id_set: BTreeSet<AssetId> = ids.iter().cloned().collect();
    let recipients = recipients(audit, &id_set)?
        .into_iter()
        .map(|e| RecipientInfo {
            at: e.at(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            asset: e.object.trim_start_matches("asset:").to_owned(),
            details: e.details.clone(),
        })
        .collect();
    let doc = PackageDocument {
        format: FORMAT.to_owned(),
        generated_at: jiff::Timestamp::now().to_string(),
        case: CaseInfo {
            id: case.id.clone(),
            kind: case.kind.as_str().to_owned(),
            received: case.received.to_string(),
            due: case.due.to_string(),
        },
        person: PersonInfo::from_person(&person),
        consents,
        photos,
        recipients,
        purposes,
        templates_included: false,
        notes: vec![
            "Face templates (biometric data) are not included.".to_owned(),
            "Photos are the originals as received; other people in them are not named.".to_owned(),
        ],
    };
    let mut out = std::io::Cursor::new(Vec::new());
    write_package(&mut out, &doc, contact, &files).map_err(|e| e.to_string())?;
    Ok((out.into_inner(), ids))
}

/// A file name safe inside the zip.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "document".to_owned()
    } else {
        cleaned
    }
}

/// Details for a case action.
pub fn details(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
