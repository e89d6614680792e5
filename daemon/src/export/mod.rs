//! Copies that leave the catalogue, for one purpose on one date:
//! - the photo itself: the original bytes when the decision allows the
//!   purpose; with `redact`, a new JPEG in which every face that blocks the
//!   purpose is irreversibly pixelated (`redact.rs`), so a photo with one
//!   non-consenting bystander can still be used;
//! - an XMP sidecar (`xmp.rs`): face regions with the names of covered
//!   persons only, model release status and ids, licence and copyright;
//! - the decision as JSON, the record of why the copy was allowed.
//!
//! An export is refused, with the reasons, when something other than faces
//! blocks (a licence, a restriction): redaction cannot fix those.

pub mod redact;
pub mod xmp;

use jiff::civil::Date;

use crate::consent::Rights;
use crate::consent::commands::ExportedFile;
use crate::consent::decide::{self, Decision, FaceOutcome};
use crate::domain::{AssetId, FaceBox};
use crate::people::People;
use crate::pipeline::decode::{self, DecodeLimits};
use crate::pipeline::store::crypto::hex_encode;

/// The blocking codes that redaction resolves (they are about faces).
fn face_code(code: decide::Code) -> bool {
    use decide::Code::*;
    matches!(
        code,
        MissingConsent
            | NoConsent
            | PersonRestricted
            | ConsentNotYetValid
            | ConsentExpired
            | ConsentWithdrawn
            | ConsentPurposeNotCovered
            | GuardianConsentMissing
    )
}

fn refuse(d: &Decision, why: &str) -> String {
    let reasons: Vec<&str> = d
        .reasons
        .iter()
        .filter(|r| r.blocking)
        .map(|r| r.message.as_str())
        .collect();
    format!(
        "asset {} may not be exported for {} on {}{why}: {}",
        d.asset,
        d.purpose,
        d.date,
        reasons.join("; ")
    )
}

/// PLUS minor model age code for the youngest covered person, when known.
fn minor_age_code(ages: &[i16]) -> Option<String> {
    let youngest = *ages.iter().min()?;
    Some(match youngest {
        ..=14 => "AG-U14".to_owned(),
        15..=24 => format!("AG-A{youngest}"),
        _ => "AG-A25".to_owned(),
    })
}

/// Exports one asset for `purpose` on `date`.
pub fn export_asset(
    rights: &Rights,
    people: &People,
    id: &AssetId,
    purpose: &str,
    date: Date,
    with_xmp: bool,
    with_redaction: bool,
) -> Result<Vec<ExportedFile>, String> {
    let store = rights.store();
    let asset = store
        .asset(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no asset {}", id.as_str()))?;
    let d = rights
        .decide(people, id, purpose, date, rights.default_known_at(date))
        .map_err(|e| e.to_string())?;
    let other_blocks = d.reasons.iter().any(|r| r.blocking && !face_code(r.code));
    if other_blocks || (!d.allowed && !with_redaction) {
        return Err(refuse(
            &d,
            if other_blocks {
                ""
            } else {
                " (add --redact to blur the faces that block it)"
            },
        ));
    }
    let original = asset
        .original
        .as_ref()
        .ok_or("the asset has no stored original")?;
    let bytes = store
        .read_blob(&asset, original)
        .map_err(|e| e.to_string())?;
    let stem = format!("{}-{purpose}", &id.as_str()[..16]);
    let blocking: Vec<FaceBox> = asset
        .faces
        .iter()
        .filter(|f| {
            d.faces
                .iter()
                .any(|v| v.no == f.no && v.outcome == FaceOutcome::Blocking)
        })
        .map(|f| f.bbox)
        .collect();
    let mut files = Vec::new();
    let photo_name;
    if with_redaction && !blocking.is_empty() {
        let limits = DecodeLimits {
            max_pixels: u64::MAX,
            working_edge: u32::MAX,
        };
        let mut image = decode::decode_upright(&bytes, &limits)
            .map_err(|e| format!("cannot decode the original for redaction: {e}"))?;
        redact::redact(&mut image.pixels, &blocking).map_err(|e| e.to_string())?;
        let jpeg = redact::encode_jpeg(&image.pixels).map_err(|e| e.to_string())?;
        photo_name = format!("{stem}-redacted.jpg");
        files.push(ExportedFile {
            name: photo_name.clone(),
            hex: hex_encode(&jpeg),
        });
    } else {
        let ext = asset
            .sources
            .first()
            .and_then(|s| s.path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()))
            .unwrap_or_else(|| "jpg".to_owned());
        photo_name = format!("{stem}.{ext}");
        files.push(ExportedFile {
            name: photo_name.clone(),
            hex: hex_encode(&bytes),
        });
    }
    let redacted_copy = with_redaction && !blocking.is_empty();
    if with_xmp {
        let persons = people.persons();
        let mut faces = Vec::new();
        let mut names = Vec::new();
        let mut ages = Vec::new();
        for v in &d.faces {
            if v.outcome == FaceOutcome::Blocking {
                continue; // redacted (or the export was refused above)
            }
            let Some(face) = asset.faces.iter().find(|f| f.no == v.no) else {
                continue;
            };
            let name = (v.outcome == FaceOutcome::Covered)
                .then(|| v.person_name.clone())
                .flatten();
            if let Some(n) = &name
                && !names.contains(n)
            {
                names.push(n.clone());
            }
            if let Some(p) = v
                .person
                .as_ref()
                .and_then(|p| persons.get(&crate::domain::PersonId(p.clone())))
                && let Some(birth) = p.birth_date
            {
                ages.push(decide::age_on(birth, date));
            }
            faces.push(xmp::SidecarFace {
                bbox: face.bbox,
                name,
                region_id: format!("face-{}", face.no),
            });
        }
        let licence = d.licence.clone().unwrap_or_default();
        let (width, height) = (asset.width.unwrap_or(1), asset.height.unwrap_or(1));
        let input = xmp::SidecarInput {
            displayed_width: width,
            displayed_height: height,
            // A redacted copy is written upright; the original keeps its orientation.
            orientation: if redacted_copy { 1 } else { asset.metadata.orientation.unwrap_or(1) },
            faces,
            persons_in_image: names,
            model_release_status: Some(d.release.status.to_owned()),
            model_release_ids: d.release.ids.clone(),
            minor_model_age: minor_age_code(&ages).filter(|c| c != "AG-A25"),
            other_constraints: (d.release.status == "MR-LMR").then(|| {
                format!("Model releases cover {} on {} (checked by consentry); check again before other uses.", purpose, date)
            }),
            rights: xmp::SidecarRights {
                creators: licence.creator.iter().cloned().collect(),
                copyright: licence.copyright.clone(),
                credit: licence.credit.clone(),
                usage_terms: licence.terms.clone(),
                web_statement: asset.metadata.licence.web_statement.clone(),
                licensors: licence.licensor.iter().cloned().collect(),
                licence_start: licence.valid_from.map(|d| d.to_string()),
                licence_end: licence.valid_until.map(|d| d.to_string()),
                licence_id: asset.metadata.licence.license_id.clone(),
                territory: licence.territory.clone(),
            },
        };
        let text = xmp::sidecar(&input);
        let xmp_name = format!(
            "{}.xmp",
            photo_name
                .rsplit_once('.')
                .map_or(photo_name.as_str(), |(s, _)| s)
        );
        files.push(ExportedFile {
            name: xmp_name,
            hex: hex_encode(text.as_bytes()),
        });
    }
    let decision = serde_json::to_vec_pretty(&d).map_err(|e| e.to_string())?;
    files.push(ExportedFile {
        name: format!("{stem}.decision.json"),
        hex: hex_encode(&decision),
    });
    Ok(files)
}
