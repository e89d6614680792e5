//! The catalogue's words, as stored: [`Asset`], [`SourceRef`], [`Quarantine`].
//!
//! These are the persisted records (serialised, then sealed by the store).
//! Later issues add Face, Person, Consent, Licence and Audit records here.

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
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}
