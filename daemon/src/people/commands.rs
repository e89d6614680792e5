//! The people commands as the control protocol carries them: one
//! [`PeopleRequest`] in, JSON lines out. Shared by the daemon's socket and the
//! CLI's direct mode (through `control::answer`).
//!
//! Photos handed in (enrolment, search by photo) travel as hex in the
//! request, because the daemon's service user cannot read the operator's files.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{People, PeopleError};
use crate::domain::{AssetId, FaceRef, PersonKind, Recognition, SourceRef};
use crate::pipeline::decode;
use crate::pipeline::ingest::{Ingestor, SourceFile};
use crate::pipeline::store::crypto::{hex_decode, hex_encode};

/// A photo given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoUpload {
    /// The file name the operator gave (kept as the source path).
    pub name: String,
    pub hex: String,
}

impl PhotoUpload {
    pub fn read(path: &std::path::Path) -> std::io::Result<PhotoUpload> {
        Ok(PhotoUpload {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hex: hex_encode(&std::fs::read(path)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PeopleRequest {
    Add {
        name: String,
        kind: PersonKind,
        external_ref: Option<String>,
        notes: Option<String>,
        /// Reference photos (each stored in the enrolment collection).
        photos: Vec<PhotoUpload>,
        /// Reference faces already in the catalogue.
        faces: Vec<String>,
    },
    List {
        all: bool,
    },
    Show {
        person: String,
    },
    Merge {
        into: String,
        from: String,
    },
    Split {
        person: String,
        faces: Vec<String>,
        name: String,
    },
    Undo {
        seq: Option<u64>,
    },
    History,
    Recognition {
        person: String,
        recognition: Recognition,
    },
    Set {
        person: String,
        kind: Option<PersonKind>,
        born: Option<jiff::civil::Date>,
    },
    Incidental {
        face: String,
        incidental: bool,
    },
    Confirm {
        face: String,
        person: String,
    },
    Reject {
        face: String,
        person: Option<String>,
    },
    NotAFace {
        face: String,
    },
    Redetect {
        assets: Vec<String>,
    },
    ClustersList,
    ClustersName {
        cluster: String,
        person: String,
        kind: PersonKind,
    },
    ClustersDismiss {
        cluster: String,
    },
    Maintain,
    SearchPerson {
        person: String,
    },
    SearchPhoto {
        photo: PhotoUpload,
        limit: usize,
        max_distance: f32,
    },
    SearchFace {
        face: String,
        limit: usize,
        max_distance: f32,
    },
}

impl PeopleRequest {
    /// Whether answering needs the face engine.
    pub fn needs_engine(&self) -> bool {
        match self {
            PeopleRequest::Add { photos, .. } => !photos.is_empty(),
            PeopleRequest::Redetect { .. } | PeopleRequest::SearchPhoto { .. } => true,
            _ => false,
        }
    }
}

fn face_ref(text: &str) -> Result<FaceRef, String> {
    FaceRef::parse(text.trim()).ok_or_else(|| {
        format!("`{text}` is not a face; faces are ASSET_ID:NO (see `consentry assets show`)")
    })
}

fn line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    text.push('\n');
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

fn engine(ingestor: Option<&Ingestor>) -> Result<&Ingestor, String> {
    ingestor.ok_or_else(|| "this command needs the face engine, which is not loaded".to_owned())
}

/// Runs the engine on an uploaded photo: (width, height, faces).
pub fn detect(
    ingestor: &Ingestor,
    photo: &PhotoUpload,
) -> Result<Vec<crate::domain::Face>, String> {
    let bytes = hex_decode(&photo.hex).ok_or("the photo did not arrive intact")?;
    let image = decode::decode_upright(&bytes, ingestor.limits())
        .map_err(|e| format!("{}: {e}", photo.name))?;
    ingestor
        .faces()
        .process(&image)
        .map_err(|e| format!("{}: face engine: {e}", photo.name))
}

pub fn answer(
    request: &PeopleRequest,
    people: &People,
    ingestor: Option<&Ingestor>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let text = |e: PeopleError| e.to_string();
    match request {
        PeopleRequest::Add {
            name,
            kind,
            external_ref,
            notes,
            photos,
            faces,
        } => {
            let mut references = faces
                .iter()
                .map(|f| face_ref(f))
                .collect::<Result<Vec<_>, _>>()?;
            // Enrolment photos become assets of the enrolment collection first,
            // so a wrong one is refused before the person exists.
            for photo in photos {
                references.push(enrol_photo(people, engine(ingestor)?, photo)?);
            }
            let person = people
                .add_person(name, *kind, external_ref.clone(), notes.clone())
                .map_err(text)?;
            for face in &references {
                people.confirm(face, person.id.as_str()).map_err(text)?;
            }
            let (view, faces) = people.show(person.id.as_str()).map_err(text)?;
            line(out, &serde_json::json!({ "person": view, "faces": faces }))
        }
        PeopleRequest::List { all } => {
            for person in people.list(*all) {
                line(out, &person)?;
            }
            Ok(())
        }
        PeopleRequest::Show { person } => {
            let (view, faces) = people.show(person).map_err(text)?;
            line(out, &serde_json::json!({ "person": view, "faces": faces }))
        }
        PeopleRequest::Merge { into, from } => {
            let seq = people.merge(into, from).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "operation": seq, "merged": from, "into": into }),
            )
        }
        PeopleRequest::Split {
            person,
            faces,
            name,
        } => {
            let faces = faces
                .iter()
                .map(|f| face_ref(f))
                .collect::<Result<Vec<_>, _>>()?;
            let (seq, id) = people.split(person, &faces, name).map_err(text)?;
            line(out, &serde_json::json!({ "operation": seq, "person": id }))
        }
        PeopleRequest::Undo { seq } => {
            let undo = people.undo(*seq).map_err(text)?;
            line(out, &serde_json::json!({ "operation": undo }))
        }
        PeopleRequest::History => {
            for op in people.history().map_err(text)? {
                line(
                    out,
                    &serde_json::json!({
                        "operation": op.seq,
                        "kind": op.kind,
                        "summary": op.summary,
                        "at": crate::clock::rfc3339(op.at_ms),
                        "undone_by": op.undone_by,
                    }),
                )?;
            }
            Ok(())
        }
        PeopleRequest::Set { person, kind, born } => {
            let p = people.edit_person(person, *kind, *born).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "person": p.id.as_str(), "name": p.name, "kind": p.kind, "birth_date": p.birth_date }),
            )
        }
        PeopleRequest::Incidental { face, incidental } => {
            people
                .set_incidental(&face_ref(face)?, *incidental)
                .map_err(text)?;
            line(
                out,
                &serde_json::json!({ "face": face, "incidental": incidental }),
            )
        }
        PeopleRequest::Recognition {
            person,
            recognition,
        } => {
            let purged = people.set_recognition(person, *recognition).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "recognition": recognition.as_str(), "purged_templates": purged }),
            )
        }
        PeopleRequest::Confirm { face, person } => {
            let face = face_ref(face)?;
            people.confirm(&face, person).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "face": face.to_string(), "confirmed": person }),
            )
        }
        PeopleRequest::Reject { face, person } => {
            let face = face_ref(face)?;
            let rejected = people.reject(&face, person.as_deref()).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "face": face.to_string(), "rejected": rejected }),
            )
        }
        PeopleRequest::NotAFace { face } => {
            let face = face_ref(face)?;
            people.not_a_face(&face).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "face": face.to_string(), "not_a_face": true }),
            )
        }
        PeopleRequest::Redetect { assets } => {
            let ingestor = engine(ingestor)?;
            let ids: Vec<AssetId> = if assets.is_empty() {
                people
                    .store()
                    .assets()
                    .filter_map(Result::ok)
                    .filter(|a| a.original.is_some() && a.quarantine.is_none())
                    .map(|a| a.id)
                    .collect()
            } else {
                assets
                    .iter()
                    .map(|a| AssetId::parse(a).ok_or_else(|| format!("`{a}` is not an asset id")))
                    .collect::<Result<_, _>>()?
            };
            for id in ids {
                let store = people.store();
                let asset = store
                    .asset(&id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no asset {id}"))?;
                let blob = asset
                    .original
                    .as_ref()
                    .ok_or_else(|| format!("asset {id} has no stored original"))?;
                let bytes = store.read_blob(&asset, blob).map_err(|e| e.to_string())?;
                let image = decode::decode_upright(&bytes, ingestor.limits())
                    .map_err(|e| format!("asset {id}: {e}"))?;
                let faces = ingestor
                    .faces()
                    .process(&image)
                    .map_err(|e| format!("asset {id}: face engine: {e}"))?;
                let n = people.redetect(&id, faces).map_err(text)?;
                line(out, &serde_json::json!({ "asset": id, "faces": n }))?;
            }
            Ok(())
        }
        PeopleRequest::ClustersList => {
            for cluster in people.clusters() {
                line(out, &cluster)?;
            }
            Ok(())
        }
        PeopleRequest::ClustersName {
            cluster,
            person,
            kind,
        } => {
            let (id, confirmed) = people.name_cluster(cluster, person, *kind).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "cluster": cluster, "person": id, "confirmed": confirmed }),
            )
        }
        PeopleRequest::ClustersDismiss { cluster } => {
            let n = people.dismiss_cluster(cluster).map_err(text)?;
            line(
                out,
                &serde_json::json!({ "cluster": cluster, "dismissed": n }),
            )
        }
        PeopleRequest::Maintain => {
            let report = people.maintain(crate::clock::now_ms()).map_err(text)?;
            line(out, &report)
        }
        PeopleRequest::SearchPerson { person } => {
            let (person, assets) = people.assets_of(person).map_err(text)?;
            for (asset, faces) in assets {
                line(
                    out,
                    &serde_json::json!({
                        "asset": asset,
                        "faces": faces,
                        "person": person.id,
                        "person_name": person.name,
                    }),
                )?;
            }
            Ok(())
        }
        PeopleRequest::SearchPhoto {
            photo,
            limit,
            max_distance,
        } => {
            let faces = detect(engine(ingestor)?, photo)?;
            if faces.is_empty() {
                return Err(format!("{}: no face found in the photo", photo.name));
            }
            for face in &faces {
                for hit in people.similar(&face.embedding, *limit, *max_distance, None) {
                    line(
                        out,
                        &serde_json::json!({ "query_face": face.no, "query_box": face.bbox, "hit": hit }),
                    )?;
                }
            }
            Ok(())
        }
        PeopleRequest::SearchFace {
            face,
            limit,
            max_distance,
        } => {
            let face = face_ref(face)?;
            let template = people.template_of(&face).map_err(text)?;
            for hit in people.similar(&template, *limit, *max_distance, Some(&face)) {
                line(
                    out,
                    &serde_json::json!({ "query_face": face.to_string(), "hit": hit }),
                )?;
            }
            Ok(())
        }
    }
}

/// Stores a reference photo as an asset of the enrolment collection and
/// returns its one face. A photo with no face or several faces is refused.
fn enrol_photo(
    people: &People,
    ingestor: &Ingestor,
    photo: &PhotoUpload,
) -> Result<FaceRef, String> {
    let bytes = hex_decode(&photo.hex).ok_or("the photo did not arrive intact")?;
    let source = SourceRef {
        collection: people.config().enrolment_collection.clone(),
        path: photo.name.clone(),
        size: bytes.len() as u64,
        mtime_ms: 0,
        ingested_at_ms: crate::clock::now_ms(),
    };
    let report = ingestor
        .ingest(
            SourceFile {
                source,
                path: std::path::PathBuf::from(&photo.name),
                bytes,
                sidecar: None,
            },
            None,
        )
        .map_err(|e| format!("{}: {e}", photo.name))?;
    if let Some(reason) = report.reason {
        return Err(format!(
            "{}: not usable as a reference photo: {reason}",
            photo.name
        ));
    }
    let asset = people
        .store()
        .asset(&report.asset_id)
        .map_err(|e| e.to_string())?
        .ok_or("the reference photo vanished")?;
    let usable: Vec<_> = asset
        .faces
        .iter()
        .filter(|f| !f.attribution.not_a_face)
        .collect();
    match usable.as_slice() {
        [one] => Ok(one.face_ref(&asset.id)),
        [] => Err(format!(
            "{}: no face found; use a photo where the face is clearly visible",
            photo.name
        )),
        many => Err(format!(
            "{}: {} faces found; use a photo of this person alone, or enrol a catalogue face \
             with --face {}:NO after `consentry assets show {}`",
            photo.name,
            many.len(),
            asset.id,
            asset.id
        )),
    }
}
