//! The catalogue's words, as stored: [`Asset`], [`SourceRef`], [`Quarantine`],
//! [`Face`].
//!
//! These are the persisted records (serialised, then sealed by the store).
//! Later issues add Person, Consent, Licence and Audit records here.

use serde::{Deserialize, Serialize};

use crate::pipeline::metadata::Metadata;
use crate::pipeline::store::crypto::WrappedKey;

/// BLAKE3 of the original bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AssetId(pub String);

impl AssetId {
    pub fn of_bytes(bytes: &[u8]) -> AssetId {
        AssetId(blake3::hash(bytes).to_hex().to_string())
    }

    pub fn parse(text: &str) -> Option<AssetId> {
        let ok = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| AssetId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 raw bytes, used as the sled key.
    pub fn key_bytes(&self) -> Vec<u8> {
        crate::pipeline::store::crypto::hex_decode(&self.0)
            .unwrap_or_else(|| self.0.as_bytes().to_vec())
    }
}

impl std::fmt::Display for AssetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetStatus {
    /// Stored; later stages (faces) may still be running.
    Pending,
    Ready,
    Quarantined,
    Erased,
}

impl AssetStatus {
    pub const ALL: [AssetStatus; 4] = [
        AssetStatus::Pending,
        AssetStatus::Ready,
        AssetStatus::Quarantined,
        AssetStatus::Erased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Pending => "pending",
            AssetStatus::Ready => "ready",
            AssetStatus::Quarantined => "quarantined",
            AssetStatus::Erased => "erased",
        }
    }
}

/// Where one copy of an asset's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub collection: String,
    /// Path relative to the share root (or absolute, for one-shot `consentry ingest`).
    pub path: String,
    pub size: u64,
    pub mtime_ms: u64,
    pub ingested_at_ms: u64,
}

impl SourceRef {
    /// Two references are the same drop when everything but the ingest time matches.
    pub fn same_drop(&self, other: &SourceRef) -> bool {
        self.collection == other.collection
            && self.path == other.path
            && self.size == other.size
            && self.mtime_ms == other.mtime_ms
    }
}

/// An encrypted file in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// 32 hex digits; also the file name under `blobs/`.
    pub blob_id: String,
    /// Plaintext length.
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// The configured longest edge this thumbnail was made for.
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub mime: String,
    pub blob: BlobRef,
}

/// Why a file was not accepted, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Pipeline stage that refused it: read, sniff, limits, decode, metadata.
    pub stage: String,
    /// Stable kebab-case code, e.g. `not-an-image`, `truncated`, `too-many-pixels`.
    pub code: String,
    pub reason: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub status: AssetStatus,
    /// The collection of the first source; access is decided per collection.
    pub collection: String,
    pub sources: Vec<SourceRef>,
    pub bytes: u64,
    /// Format sniffed from the bytes (never from the extension), e.g. "JPEG".
    pub format: Option<String>,
    pub mime: Option<String>,
    /// Dimensions as displayed, after EXIF orientation / HEIF rotation.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub metadata: Metadata,
    /// None only for a file quarantined before it could be read (over the size limit);
    /// such a file is left on the share.
    pub original: Option<BlobRef>,
    pub sidecar: Option<BlobRef>,
    pub thumbnails: Vec<Thumbnail>,
    /// The per-asset data key, wrapped by the master key.
    pub key: WrappedKey,
    pub quarantine: Option<Quarantine>,
    /// Faces found on the displayed image (empty until the face stage ran).
    #[serde(default)]
    pub faces: Vec<Face>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A rectangle in pixels of the displayed (upright, full-resolution) image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl FaceBox {
    pub fn iou(&self, other: &FaceBox) -> f32 {
        let w = (self.x + self.width).min(other.x + other.width) - self.x.max(other.x);
        let h = (self.y + self.height).min(other.y + other.height) - self.y.max(other.y);
        if w <= 0.0 || h <= 0.0 {
            return 0.0;
        }
        let inter = w * h;
        inter / (self.width * self.height + other.width * other.height - inter)
    }
}

/// How usable a face is for matching (see `consentry_models::face_engine::Quality`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// 0..=1; below about 0.3 a match is unreliable and needs a person's review.
    pub score: f32,
    pub interocular_px: f32,
    pub sharpness: f32,
    pub yaw: f32,
    pub pitch: f32,
    pub roll_deg: f32,
}

/// One face on an asset. Its embedding is biometric data (GDPR Art. 9): it is
/// sealed with the record like every other value and never leaves the store
/// except through `faces detect`, which stores nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Stable within the asset: a re-run keeps reviewed faces' numbers and
    /// gives new detections numbers that were never used.
    pub no: u32,
    pub bbox: FaceBox,
    /// 68 points, iBUG order, displayed-image pixels.
    pub landmarks: Vec<[f32; 2]>,
    pub score: f32,
    pub quality: FaceQuality,
    /// dlib descriptor (128 values; same person below 0.6 Euclidean).
    pub embedding: Vec<f32>,
    /// The model set that produced it (`models.json` `engine`).
    pub engine: String,
    pub detected_at_ms: u64,
    /// Set when a person confirmed or corrected this face (people issue);
    /// a re-run of the engine never replaces a reviewed face.
    #[serde(default)]
    pub reviewed: bool,
}

/// The faces of an asset after the engine ran again (e.g. a new model
/// version): reviewed faces stay as they are, new detections that overlap a
/// reviewed face (IoU ≥ 0.5) are dropped as duplicates of it, every other
/// old face is replaced. New faces are numbered after the highest number
/// ever used on the asset, so a number never changes meaning.
pub fn merge_redetected(old: &[Face], new: Vec<Face>) -> Vec<Face> {
    let mut next = old.iter().map(|f| f.no + 1).max().unwrap_or(0);
    let mut out: Vec<Face> = old.iter().filter(|f| f.reviewed).cloned().collect();
    for mut face in new {
        if out
            .iter()
            .any(|kept| kept.reviewed && kept.bbox.iou(&face.bbox) >= 0.5)
        {
            continue;
        }
        face.no = next;
        next += 1;
        out.push(face);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(no: u32, x: f32, reviewed: bool) -> Face {
        Face {
            no,
            bbox: FaceBox {
                x,
                y: 0.0,
                width: 10.0,
                height: 10.0,
            },
            landmarks: vec![],
            score: 0.9,
            quality: FaceQuality {
                score: 1.0,
                interocular_px: 40.0,
                sharpness: 200.0,
                yaw: 0.0,
                pitch: 0.7,
                roll_deg: 0.0,
            },
            embedding: vec![0.0; 128],
            engine: if reviewed { "old".into() } else { "new".into() },
            detected_at_ms: 0,
            reviewed,
        }
    }

    #[test]
    fn redetection_keeps_reviewed_faces_and_never_reuses_numbers() {
        let old = vec![
            face(0, 0.0, true),
            face(1, 100.0, false),
            face(2, 200.0, false),
        ];
        let new = vec![
            face(0, 1.0, false),
            face(0, 300.0, false),
            face(0, 100.0, false),
        ];
        let merged = merge_redetected(&old, new);
        // The reviewed face stays; its duplicate is dropped; unreviewed old faces go.
        assert_eq!(merged.len(), 3);
        assert!(merged[0].reviewed && merged[0].no == 0 && merged[0].engine == "old");
        let nos: Vec<u32> = merged[1..].iter().map(|f| f.no).collect();
        assert_eq!(nos, vec![3, 4]);
        assert!(merged[1..].iter().all(|f| f.engine == "new" && !f.reviewed));
    }

    #[test]
    fn first_detection_numbers_from_zero() {
        let merged = merge_redetected(&[], vec![face(9, 0.0, false), face(9, 50.0, false)]);
        assert_eq!(merged.iter().map(|f| f.no).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn iou_of_boxes() {
        let a = FaceBox {
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&FaceBox { x: 20.0, ..a }), 0.0);
        assert!((a.iou(&FaceBox { x: 5.0, ..a }) - 1.0 / 3.0).abs() < 1e-6);
    }
}
