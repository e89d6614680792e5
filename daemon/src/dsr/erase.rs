//! Art. 17 erasure of photos: the whole photo, or the person redacted out of
//! it when other people in it keep a legitimate use.
//!
//! Whole: the ledger entry first, then `Store::erase_asset` (data key
//! destroyed, blobs deleted, record replaced by a tombstone, templates purged).
//! Redact: the original is decoded, the person's faces pixelated, and the new
//! JPEG and thumbnails are stored under a *new* data key; the old key is
//! destroyed (`rotate_asset_key`), the old blobs deleted, the person's faces
//! and their templates removed, and the metadata's names and regions cleared.
//! Failure modes: store and decode errors (named); a redaction that cannot
//! read its original (a crash after the key rotation) falls back to erasing
//! the whole photo.

use serde::Serialize;

use super::ledger::{Ledger, LedgerEntry};
use crate::domain::{Asset, AssetId, BlobRef, FaceRef, PersonId, Thumbnail};
use crate::export::redact;
use crate::people::People;
use crate::pipeline::decode::{self, DecodeLimits};
use crate::pipeline::store::Store;
use crate::pipeline::thumbs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Redact where another person in the photo keeps a use, else erase.
    Auto,
    Whole,
    Redact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub asset: String,
    /// `erased` or `redacted`.
    pub how: &'static str,
    /// The person's faces removed (redaction).
    pub faces: Vec<u32>,
    pub templates_purged: usize,
    /// Set when a person's templates were erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

impl Erased {
    /// The audit event of a replayed erasure.
    pub fn replayed_entry(&self) -> crate::audit::Entry {
        let entry = match &self.person {
            Some(person) => {
                crate::audit::Entry::new("person.templates.erase", format!("person:{person}"))
            }
            None if self.how == "redacted" => {
                crate::audit::Entry::new("asset.redact", format!("asset:{}", self.asset))
            }
            None => crate::audit::Entry::new("asset.erase", format!("asset:{}", self.asset)),
        };
        entry.with("replayed", "erasure ledger")
    }
}

/// Faces in `asset` confirmed to persons other than `person`.
pub fn others_in(asset: &Asset, person: &PersonId) -> usize {
    asset
        .faces
        .iter()
        .filter(|f| f.attribution.confirmed().is_some_and(|p| p != person))
        .count()
}

/// Erases or redacts one photo for `person`, recording it in the ledger first.
pub fn erase_photo(
    store: &Store,
    ledger: &Ledger,
    asset: &Asset,
    person: &PersonId,
    mode: Mode,
    case: &str,
    thumbnail_sizes: &[u32],
) -> Result<Erased, String> {
    let faces: Vec<u32> = asset
        .faces
        .iter()
        .filter(|f| f.attribution.confirmed() == Some(person))
        .map(|f| f.no)
        .collect();
    let redact = match mode {
        Mode::Whole => false,
        Mode::Redact => true,
        Mode::Auto => others_in(asset, person) > 0,
    };
    if redact && faces.is_empty() {
        return Err(format!(
            "asset {}: no face in it is confirmed as this person; nothing to redact",
            asset.id
        ));
    }
    let at_ms = crate::clock::now_ms();
    let entry = if redact {
        LedgerEntry::Redact {
            asset: asset.id.clone(),
            faces: faces.clone(),
            at_ms,
            case: case.to_owned(),
        }
    } else {
        LedgerEntry::Erase {
            asset: asset.id.clone(),
            at_ms,
            case: case.to_owned(),
        }
    };
    ledger.append(&entry).map_err(|e| e.to_string())?;
    apply_to_photo(store, &entry, thumbnail_sizes)
}

/// Erases a person's biometric data, recorded in the ledger first.
pub fn forget_person(
    people: &People,
    ledger: &Ledger,
    person: &PersonId,
    case: &str,
) -> Result<usize, String> {
    ledger
        .append(&LedgerEntry::ForgetPerson {
            person: person.clone(),
            at_ms: crate::clock::now_ms(),
            case: case.to_owned(),
        })
        .map_err(|e| e.to_string())?;
    people.erase_biometrics(person).map_err(|e| e.to_string())
}

/// Carries out a ledger entry (again): idempotent.
pub fn apply(
    store: &Store,
    people: &People,
    entry: &LedgerEntry,
    thumbnail_sizes: &[u32],
) -> Result<Erased, String> {
    match entry {
        LedgerEntry::ForgetPerson { person, .. } => {
            let purged = people.erase_biometrics(person).map_err(|e| e.to_string())?;
            Ok(Erased {
                asset: String::new(),
                how: "templates erased",
                faces: vec![],
                templates_purged: purged,
                person: Some(person.to_string()),
            })
        }
        _ => apply_to_photo(store, entry, thumbnail_sizes),
    }
}

fn apply_to_photo(
    store: &Store,
    entry: &LedgerEntry,
    thumbnail_sizes: &[u32],
) -> Result<Erased, String> {
    match entry {
        LedgerEntry::ForgetPerson { .. } => Err("not a photo entry".into()),
        LedgerEntry::Erase { asset, case, .. } => whole(store, asset, case),
        LedgerEntry::Redact {
            asset, faces, case, ..
        } => {
            let Some(current) = store.asset(asset).map_err(|e| e.to_string())? else {
                return Ok(Erased {
                    asset: asset.to_string(),
                    how: "redacted",
                    faces: faces.clone(),
                    templates_purged: 0,
                    person: None,
                });
            };
            match redact_in_place(store, &current, faces, thumbnail_sizes) {
                Ok(done) => Ok(done),
                Err(err) => {
                    log::error!(target: "consentry::dsr", asset_id = asset.as_str(); "redaction failed ({err}); erasing the whole photo instead");
                    whole(store, asset, case)
                }
            }
        }
    }
}

fn whole(store: &Store, asset: &AssetId, case: &str) -> Result<Erased, String> {
    let outcome = store
        .erase_asset(asset, Some(case))
        .map_err(|e| e.to_string())?;
    Ok(Erased {
        asset: asset.to_string(),
        how: "erased",
        faces: vec![],
        templates_purged: outcome.templates_purged,
        person: None,
    })
}

fn redact_in_place(
    store: &Store,
    asset: &Asset,
    faces: &[u32],
    thumbnail_sizes: &[u32],
) -> Result<Erased, String> {
    let doomed: Vec<&crate::domain::Face> = asset
        .faces
        .iter()
        .filter(|f| faces.contains(&f.no))
        .collect();
    if doomed.is_empty() {
        // Already redacted (a replay).
        return Ok(Erased {
            asset: asset.id.to_string(),
            how: "redacted",
            faces: faces.to_vec(),
            templates_purged: 0,
            person: None,
        });
    }
    let original = asset
        .original
        .as_ref()
        .ok_or("the asset has no stored original")?;
    let bytes = store
        .read_blob(asset, original)
        .map_err(|e| e.to_string())?;
    let limits = DecodeLimits {
        max_pixels: u64::MAX,
        working_edge: u32::MAX,
    };
    let mut image = decode::decode_upright(&bytes, &limits).map_err(|e| e.to_string())?;
    let boxes: Vec<_> = doomed.iter().map(|f| f.bbox).collect();
    redact::redact(&mut image.pixels, &boxes).map_err(|e| e.to_string())?;
    let jpeg = redact::encode_jpeg(&image.pixels).map_err(|e| e.to_string())?;
    let thumbnails = thumbs::make_thumbnails(&image, thumbnail_sizes).map_err(|e| e.to_string())?;

    // No erasure or key sweep runs while the content is replaced.
    let _gate = store.exclusive();
    // From here on the old key is gone: the old blobs are unreadable.
    let key = store
        .rotate_asset_key(&asset.id)
        .map_err(|e| e.to_string())?;
    let mut updated = asset.clone();
    updated.original = Some(store.blobs().put(&key, &jpeg).map_err(|e| e.to_string())?);
    updated.sidecar = None;
    updated.thumbnails = thumbnails
        .iter()
        .map(|t| {
            Ok(Thumbnail {
                size: t.size,
                width: t.width,
                height: t.height,
                mime: thumbs::THUMBNAIL_MIME.to_owned(),
                blob: store
                    .blobs()
                    .put(&key, &t.jpeg)
                    .map_err(|e| e.to_string())?,
            })
        })
        .collect::<Result<_, String>>()?;
    updated.faces.retain(|f| !faces.contains(&f.no));
    updated.bytes = jpeg.len() as u64;
    updated.format = Some("JPEG".to_owned());
    updated.mime = Some("image/jpeg".to_owned());
    updated.metadata.orientation = None;
    updated.metadata.person_in_image.clear();
    updated.metadata.regions.clear();
    updated.updated_at_ms = crate::clock::now_ms();
    store
        .put_asset_record(&updated)
        .map_err(|e| e.to_string())?;

    let mut old: Vec<&BlobRef> = vec![original];
    old.extend(asset.sidecar.iter());
    old.extend(asset.thumbnails.iter().map(|t| &t.blob));
    for blob in old {
        store.blobs().delete(blob).map_err(|e| e.to_string())?;
    }
    let refs: Vec<FaceRef> = doomed.iter().map(|f| f.face_ref(&asset.id)).collect();
    let templates_purged = store
        .purge_templates(&refs, &[])
        .map_err(|e| e.to_string())?;
    Ok(Erased {
        asset: asset.id.to_string(),
        how: "redacted",
        faces: faces.to_vec(),
        templates_purged,
        person: None,
    })
}

/// Replays the whole ledger (at start and after a restore): every photo
/// erased or redacted after a backup was taken is erased again, and every
/// person whose templates were erased loses them again. Returns what it redid.
pub fn replay(
    store: &Store,
    people: &People,
    ledger: &Ledger,
    thumbnail_sizes: &[u32],
) -> Result<Vec<Erased>, String> {
    let entries = ledger.entries().map_err(|e| e.to_string())?;
    let mut redone = Vec::new();
    for entry in &entries {
        let Some(asset) = entry.asset() else { continue };
        let needed = match (entry, store.asset(asset).map_err(|e| e.to_string())?) {
            (_, None) => false,
            (LedgerEntry::Redact { faces, .. }, Some(a)) => {
                a.faces.iter().any(|f| faces.contains(&f.no))
            }
            (_, Some(_)) => true,
        };
        if needed {
            redone.push(apply_to_photo(store, entry, thumbnail_sizes)?);
        }
    }
    if !redone.is_empty() {
        people.reload().map_err(|e| e.to_string())?;
    }
    for entry in &entries {
        if let LedgerEntry::ForgetPerson { person, .. } = entry {
            let opted_out = people
                .persons()
                .get(person)
                .is_none_or(|p| p.recognition == crate::domain::Recognition::OptedOut);
            if !opted_out {
                redone.push(apply(store, people, entry, thumbnail_sizes)?);
            }
        }
    }
    if !redone.is_empty() {
        log::warn!(target: "consentry::dsr", count = redone.len(); "erased again what the erasure ledger lists (a restored backup?)");
    }
    Ok(redone)
}
