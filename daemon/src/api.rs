//! What the CLI (and later the web API) shows: serde views built from the
//! stored records, never the records themselves (wrapped keys and blob ids
//! stay inside the daemon).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::rfc3339;
use crate::domain::{Asset, Attribution, Face, FaceBox, FaceQuality, Identity, SourceRef};
use crate::pipeline::metadata::Metadata;
use crate::pipeline::store::CatalogueCounts;
use crate::pipeline::store::jobs::QueueSummary;
use crate::workers::WorkerStatus;

#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub collection: String,
    pub path: String,
    pub size: u64,
    pub mtime: String,
    pub ingested_at: String,
}

impl From<&SourceRef> for SourceView {
    fn from(source: &SourceRef) -> Self {
        SourceView {
            collection: source.collection.clone(),
            path: source.path.clone(),
            size: source.size,
            mtime: rfc3339(source.mtime_ms),
            ingested_at: rfc3339(source.ingested_at_ms),
        }
    }
}

/// One line of `consentry assets list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct AssetSummary {
    pub id: String,
    pub status: &'static str,
    pub collection: String,
    pub sources: Vec<SourceView>,
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub capture_time: Option<String>,
    pub reason: Option<String>,
    /// Faces found (0 until the face stage ran, and for quarantined files).
    pub faces: usize,
}

impl From<&Asset> for AssetSummary {
    fn from(asset: &Asset) -> Self {
        AssetSummary {
            id: asset.id.to_string(),
            status: asset.status.as_str(),
            collection: asset.collection.clone(),
            sources: asset.sources.iter().map(SourceView::from).collect(),
            format: asset.format.clone(),
            width: asset.width,
            height: asset.height,
            capture_time: capture_time_text(&asset.metadata),
            reason: asset.quarantine.as_ref().map(|q| q.reason.clone()),
            faces: asset.faces.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ThumbnailView {
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub mime: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineView {
    pub stage: String,
    pub code: String,
    pub reason: String,
    pub at: String,
}

/// `consentry assets show ID --json`.
#[derive(Debug, Clone, Serialize)]
pub struct AssetDetail {
    #[serde(flatten)]
    pub summary: AssetSummary,
    pub bytes: u64,
    pub mime: Option<String>,
    pub metadata: Metadata,
    pub has_sidecar: bool,
    pub thumbnails: Vec<ThumbnailView>,
    pub quarantine: Option<QuarantineView>,
    pub faces: Vec<FaceView>,
    pub created_at: String,
    pub updated_at: String,
}

/// One face, as `assets show --json` and `faces detect --json` print it.
/// Coordinates are pixels of the displayed (upright) image. The embedding is
/// printed only by `faces detect` (which stores nothing); a catalogue view
/// never carries a template.
#[derive(Debug, Clone, Serialize)]
pub struct FaceView {
    pub no: u32,
    #[serde(rename = "box")]
    pub bbox: FaceBox,
    pub score: f32,
    pub landmarks: Vec<[f32; 2]>,
    pub quality: FaceQuality,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    pub engine: String,
    pub template: &'static str,
    #[serde(flatten)]
    pub attribution: AttributionView,
    pub reviewed: bool,
}

/// Who a face is, for people to read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttributionView {
    /// `confirmed`, `suggested` or `unknown`; `not-a-face` for a face a person dismissed as such.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dismissed: bool,
}

impl From<&Attribution> for AttributionView {
    fn from(a: &Attribution) -> Self {
        let (state, person, distance) = match &a.identity {
            _ if a.not_a_face => ("not-a-face", None, None),
            Some(Identity::Confirmed {
                person, distance, ..
            }) => ("confirmed", Some(person.to_string()), *distance),
            Some(Identity::Suggested { person, distance }) => {
                ("suggested", Some(person.to_string()), Some(*distance))
            }
            None => ("unknown", None, None),
        };
        AttributionView {
            state,
            person,
            person_name: None,
            distance,
            rejected: a.rejected.iter().map(ToString::to_string).collect(),
            review: a.review.clone(),
            dismissed: a.dismissed,
        }
    }
}

impl FaceView {
    /// A catalogue view: no embedding.
    pub fn stored(face: &Face) -> FaceView {
        FaceView {
            no: face.no,
            bbox: face.bbox,
            score: face.score,
            landmarks: face.landmarks.clone(),
            quality: face.quality,
            embedding: None,
            engine: face.engine.clone(),
            template: face.template.as_str(),
            attribution: AttributionView::from(&face.attribution),
            reviewed: face.reviewed(),
        }
    }

    /// What `faces detect` prints: the engine's output, embedding included.
    pub fn detected(face: &Face) -> FaceView {
        FaceView {
            embedding: Some(face.embedding.clone()),
            ..FaceView::stored(face)
        }
    }
}

impl From<&Asset> for AssetDetail {
    fn from(asset: &Asset) -> Self {
        AssetDetail {
            summary: AssetSummary::from(asset),
            bytes: asset.bytes,
            mime: asset.mime.clone(),
            metadata: asset.metadata.clone(),
            has_sidecar: asset.sidecar.is_some(),
            thumbnails: asset
                .thumbnails
                .iter()
                .map(|t| ThumbnailView {
                    size: t.size,
                    width: t.width,
                    height: t.height,
                    mime: t.mime.clone(),
                })
                .collect(),
            quarantine: asset.quarantine.as_ref().map(|q| QuarantineView {
                stage: q.stage.clone(),
                code: q.code.clone(),
                reason: q.reason.clone(),
                at: rfc3339(q.at_ms),
            }),
            faces: asset.faces.iter().map(FaceView::stored).collect(),
            created_at: rfc3339(asset.created_at_ms),
            updated_at: rfc3339(asset.updated_at_ms),
        }
    }
}

pub fn capture_time_text(metadata: &Metadata) -> Option<String> {
    metadata.capture_time.as_ref().map(|t| match &t.offset {
        Some(offset) => format!("{}{offset}", t.local),
        None => t.local.clone(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareStatus {
    pub path: String,
    pub collection: String,
    pub after_ingest: String,
    pub available: bool,
    /// Assets per status whose first source is this share's collection.
    pub assets: BTreeMap<String, u64>,
}

/// `consentry status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub daemon_running: bool,
    pub queue: QueueSummary,
    pub assets: BTreeMap<String, u64>,
    pub collections: BTreeMap<String, BTreeMap<String, u64>>,
    pub shares: Vec<ShareStatus>,
    pub workers: Vec<WorkerStatus>,
    pub people: Option<crate::people::PeopleStatus>,
}

impl StatusReport {
    pub fn build(
        config: &crate::config::Config,
        counts: CatalogueCounts,
        queue: QueueSummary,
        workers: Vec<WorkerStatus>,
        daemon_running: bool,
    ) -> StatusReport {
        let shares = config
            .shares
            .iter()
            .map(|share| ShareStatus {
                path: share.path.display().to_string(),
                collection: share.collection.clone(),
                after_ingest: share.after_ingest.to_string(),
                available: share.path.is_dir(),
                assets: counts
                    .by_collection
                    .get(&share.collection)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        StatusReport {
            daemon_running,
            queue,
            assets: counts.by_status,
            collections: counts.by_collection,
            shares,
            workers,
            people: None,
        }
    }
}
