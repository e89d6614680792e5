//! The catalogue's words, as stored: [`Asset`], [`SourceRef`], [`Quarantine`],
//! [`Face`], [`Person`], and the human decisions about faces
//! ([`Attribution`]).
//!
//! These are the persisted records (serialised, then sealed by the store).
//! Face templates are not among them: they live only in the store's template
//! vault (`pipeline::store::templates`). Later issues add Consent, Licence
//! and Audit records here.

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
    /// Schema 1 only: the per-asset data key, wrapped by the master key. Since
    /// schema 2 data keys live in the asset key store
    /// (`pipeline::store::keystore`), where destroying one is real; this is
    /// always `None` for a stored record and read only by the migration and
    /// the import of an old dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<WrappedKey>,
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

/// One face on an asset. Its template (the embedding) is biometric data
/// (GDPR Art. 9): it is never part of this record. The engine hands it over in
/// `embedding`, and the store moves it into the template vault at commit,
/// encrypted under a key that a purge destroys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Stable within the asset: a re-run keeps every face's number where its
    /// box overlaps, and gives new detections numbers that were never used.
    pub no: u32,
    pub bbox: FaceBox,
    /// 68 points, iBUG order, displayed-image pixels.
    pub landmarks: Vec<[f32; 2]>,
    pub score: f32,
    pub quality: FaceQuality,
    /// Transient: dlib descriptor (128 values; same person below 0.6
    /// Euclidean) from the engine to the commit. Never serialised.
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// The model set that produced it (`models.json` `engine`).
    pub engine: String,
    pub detected_at_ms: u64,
    /// Whether a template of this face is kept, and if not, why.
    #[serde(default)]
    pub template: TemplateStatus,
    /// Who this face is, as far as people and the matcher have decided.
    #[serde(default)]
    pub attribution: Attribution,
}

impl Face {
    pub fn face_ref(&self, asset: &AssetId) -> FaceRef {
        FaceRef {
            asset: asset.clone(),
            no: self.no,
        }
    }

    /// A person decided something about this face; a re-run of the engine
    /// carries the decision over to the new detection at the same place.
    pub fn reviewed(&self) -> bool {
        self.attribution.reviewed()
    }
}

/// Whether a face's template is in the vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateStatus {
    /// Encrypted in the template vault.
    Stored,
    /// Recognition is off for the asset's collection: detected and flagged,
    /// no template kept.
    RecognitionOff,
    /// The face matched the suppression template of a person who opted out
    /// of recognition: neither matched nor kept.
    Suppressed,
    /// The template was deleted (retention period, opt-out, "not a face").
    Purged,
    /// No template was made (older records, or the engine gave none).
    #[default]
    None,
}

impl TemplateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Stored => "stored",
            TemplateStatus::RecognitionOff => "recognition-off",
            TemplateStatus::Suppressed => "suppressed",
            TemplateStatus::Purged => "purged",
            TemplateStatus::None => "none",
        }
    }
}

/// A face's link to a person and the decisions people made about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub identity: Option<Identity>,
    /// "Not this person": never suggested again for this face.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<PersonId>,
    /// "Not a face": no template, never suggested, never clustered.
    #[serde(default)]
    pub not_a_face: bool,
    /// Left out of clustering (its cluster was dismissed).
    #[serde(default)]
    pub dismissed: bool,
    /// Why the matcher wants a person to look at this face (e.g. it resembles
    /// a person already suggested for another face in the photo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// An editor marked the face as incidental (a background crowd): it does
    /// not block any usage decision, and the decision says so.
    #[serde(default)]
    pub incidental: bool,
}

impl Attribution {
    pub fn reviewed(&self) -> bool {
        matches!(self.identity, Some(Identity::Confirmed { .. }))
            || !self.rejected.is_empty()
            || self.not_a_face
            || self.dismissed
    }

    pub fn confirmed(&self) -> Option<&PersonId> {
        match &self.identity {
            Some(Identity::Confirmed { person, .. }) => Some(person),
            _ => None,
        }
    }

    /// The suggested or confirmed person.
    pub fn person(&self) -> Option<&PersonId> {
        match &self.identity {
            Some(Identity::Suggested { person, .. } | Identity::Confirmed { person, .. }) => {
                Some(person)
            }
            None => None,
        }
    }

    pub fn suggested(&self) -> Option<(&PersonId, f32)> {
        match &self.identity {
            Some(Identity::Suggested { person, distance }) => Some((person, *distance)),
            _ => None,
        }
    }

    /// The human decisions only: what a re-run of the engine carries over.
    pub fn decisions(&self) -> Attribution {
        Attribution {
            identity: self
                .identity
                .clone()
                .filter(|i| matches!(i, Identity::Confirmed { .. })),
            rejected: self.rejected.clone(),
            not_a_face: self.not_a_face,
            dismissed: self.dismissed,
            review: None,
            incidental: self.incidental,
        }
    }
}

/// Whose face it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Identity {
    /// The matcher's proposal; a person must confirm it.
    Suggested { person: PersonId, distance: f32 },
    /// A person (or the explicit auto-confirm threshold) decided.
    Confirmed {
        person: PersonId,
        /// Distance to the person's nearest reference when confirmed, if known.
        #[serde(default)]
        distance: Option<f32>,
        /// `user` for a person's decision, `auto` for the auto-confirm threshold.
        by: String,
        at_ms: u64,
    },
}

/// One face of one asset: `ASSET_ID:NO` in text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaceRef {
    pub asset: AssetId,
    pub no: u32,
}

impl FaceRef {
    pub fn parse(text: &str) -> Option<FaceRef> {
        let (asset, no) = text.rsplit_once(':')?;
        Some(FaceRef {
            asset: AssetId::parse(asset)?,
            no: no.parse().ok()?,
        })
    }

    /// Asset key bytes then the number, big-endian: faces of one asset sort together.
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut key = self.asset.key_bytes();
        key.extend_from_slice(&self.no.to_be_bytes());
        key
    }

    pub fn from_key(key: &[u8]) -> Option<FaceRef> {
        let (asset, no) = key.split_at_checked(key.len().checked_sub(4)?)?;
        Some(FaceRef {
            asset: AssetId(crate::pipeline::store::crypto::hex_encode(asset)),
            no: u32::from_be_bytes(no.try_into().ok()?),
        })
    }
}

impl std::fmt::Display for FaceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.asset, self.no)
    }
}

/// A random id (16 hex digits), never derived from personal data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub String);

impl PersonId {
    pub fn random() -> Result<PersonId, crate::pipeline::store::crypto::CryptoError> {
        let mut bytes = [0u8; 8];
        crate::pipeline::store::crypto::fill_random(&mut bytes)?;
        Ok(PersonId(crate::pipeline::store::crypto::hex_encode(&bytes)))
    }

    pub fn parse(text: &str) -> Option<PersonId> {
        (text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| PersonId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PersonKind {
    Staff,
    Patient,
    Citizen,
    Minor,
    Other,
}

/// The person-level basis for keeping face templates (GDPR Art. 9). The
/// consent issue sets it from consent records; until then an operator does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recognition {
    /// No recorded basis: confirmed faces are matched against, but their
    /// templates fall under the retention period like unknown faces.
    #[default]
    NoBasis,
    /// Recognition consent: confirmed templates are kept.
    Allowed,
    /// Opted out: every template deleted; one suppression template keeps new
    /// photos of the person from being matched or stored.
    OptedOut,
}

impl Recognition {
    pub fn as_str(self) -> &'static str {
        match self {
            Recognition::NoBasis => "no-basis",
            Recognition::Allowed => "allowed",
            Recognition::OptedOut => "opted-out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub kind: PersonKind,
    #[serde(default)]
    pub external_ref: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub recognition: Recognition,
    /// Set when this person was merged into another; the record stays so the
    /// merge can be undone.
    #[serde(default)]
    pub merged_into: Option<PersonId>,
    /// Date of birth, when known: decides whether a guardian must sign (see
    /// `consent.guardian_age`). Without it, `kind = minor` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<jiff::civil::Date>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// The faces of an asset after the engine ran again (e.g. a new model
/// version). Old and new faces are paired by box overlap (IoU ≥ 0.5, best
/// pairs first): a paired new face takes the old face's number and every
/// human decision (confirmed person, "not this person", "not a face",
/// dismissed); suggestions are recomputed. An old reviewed face with no new
/// partner stays as it was (a person said it is there). Other new faces get
/// numbers after the highest ever used, so a number never changes meaning.
pub fn merge_redetected(old: &[Face], new: Vec<Face>) -> Vec<Face> {
    let mut next = old.iter().map(|f| f.no + 1).max().unwrap_or(0);
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, o) in old.iter().enumerate() {
        for (j, n) in new.iter().enumerate() {
            let iou = o.bbox.iou(&n.bbox);
            if iou >= 0.5 {
                pairs.push((iou, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut old_used = vec![false; old.len()];
    let mut partner: Vec<Option<usize>> = vec![None; new.len()];
    for (_, i, j) in pairs {
        if !old_used[i] && partner[j].is_none() {
            old_used[i] = true;
            partner[j] = Some(i);
        }
    }
    let mut out: Vec<Face> = old
        .iter()
        .zip(&old_used)
        .filter(|(f, used)| !**used && f.reviewed())
        .map(|(f, _)| f.clone())
        .collect();
    for (mut face, partner) in new.into_iter().zip(partner) {
        match partner {
            Some(i) => {
                face.no = old[i].no;
                face.attribution = old[i].attribution.decisions();
            }
            None => {
                face.no = next;
                next += 1;
                face.attribution = Attribution::default();
            }
        }
        out.push(face);
    }
    out.sort_by_key(|f| f.no);
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
            template: TemplateStatus::Stored,
            attribution: Attribution {
                rejected: if reviewed {
                    vec![PersonId("00000000000000aa".into())]
                } else {
                    vec![]
                },
                ..Attribution::default()
            },
        }
    }

    #[test]
    fn redetection_carries_decisions_by_overlap_and_never_reuses_numbers() {
        let old = vec![
            face(0, 0.0, true),
            face(1, 100.0, false),
            face(2, 200.0, false),
            face(5, 500.0, true),
        ];
        let new = vec![
            face(0, 1.0, false),
            face(0, 300.0, false),
            face(0, 100.0, false),
        ];
        let merged = merge_redetected(&old, new);
        let summary: Vec<(u32, &str, bool)> = merged
            .iter()
            .map(|f| (f.no, f.engine.as_str(), f.reviewed()))
            .collect();
        // New faces at old places keep the numbers and the decisions; the
        // reviewed face with no new partner stays; the unpaired unreviewed
        // face at x=200 goes; the new face at x=300 gets a fresh number.
        assert_eq!(
            summary,
            vec![
                (0, "new", true),
                (1, "new", false),
                (5, "old", true),
                (6, "new", false)
            ]
        );
        assert_eq!(merged[0].attribution.rejected, old[0].attribution.rejected);
    }

    #[test]
    fn redetection_drops_suggestions_but_keeps_confirmations() {
        let mut old = face(0, 0.0, false);
        old.attribution.identity = Some(Identity::Suggested {
            person: PersonId("00000000000000aa".into()),
            distance: 0.4,
        });
        let merged = merge_redetected(&[old.clone()], vec![face(0, 0.0, false)]);
        assert_eq!(merged[0].attribution.identity, None);
        old.attribution.identity = Some(Identity::Confirmed {
            person: PersonId("00000000000000aa".into()),
            distance: None,
            by: "user".into(),
            at_ms: 1,
        });
        let merged = merge_redetected(&[old.clone()], vec![face(0, 0.0, false)]);
        assert_eq!(merged[0].attribution.identity, old.attribution.identity);
    }

    #[test]
    fn face_refs_round_trip() {
        let r = FaceRef {
            asset: AssetId("ab".repeat(32)),
            no: 7,
        };
        assert_eq!(FaceRef::parse(&r.to_string()), Some(r.clone()));
        assert_eq!(FaceRef::from_key(&r.key_bytes()), Some(r));
        assert_eq!(FaceRef::parse("nonsense:1"), None);
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
