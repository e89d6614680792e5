//! The converted model set: which safetensors files the daemon loads, where
//! each came from, and how to tell a damaged file from a good one.
//!
//! Input: raw registry files (tfjs manifests and shards, dlib's `.dat`) for
//! [`convert`]; the bytes of `models.json` and of each file for [`verify`].
//! Output: named f32 tensor maps ready for `safetensors`, and a
//! [`ModelsManifest`] recording package, version, file, SHA-256 and licence
//! of every source. Failure modes: a raw file that does not parse, a model
//! file whose digest differs from the manifest ([`WeightsError`]).
//!
//! Pure (no I/O): the converter binary and the daemon do the reading and
//! writing, so the rules for what counts as intact live in one place.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the manifest inside a models directory.
pub const MANIFEST_FILE: &str = "models.json";
/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// The networks the face engine needs, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FaceDetector,
    FaceLandmarks,
    FaceEmbedder,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::FaceDetector, Role::FaceLandmarks, Role::FaceEmbedder];

    /// The converted file for this role.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::FaceDetector => "face_detector.safetensors",
            Role::FaceLandmarks => "face_landmarks.safetensors",
            Role::FaceEmbedder => "face_embedder.safetensors",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Role::FaceDetector => "SSD-MobileNetV1 face detector (face-api)",
            Role::FaceLandmarks => "68-point face landmark net (face-api)",
            Role::FaceEmbedder => "dlib ResNet-29 face descriptor",
        }
    }
}

/// One registry file a model was converted from (written by `models/fetch-weights`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub sha256: String,
    pub package: String,
    pub version: String,
    pub registry: String,
    pub path_in_package: String,
    pub licence: String,
}

/// One converted safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    pub role: Role,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub sources: Vec<Source>,
}

/// `models.json`: the provenance of a models directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelsManifest {
    pub format: u32,
    /// Identifies the whole set; stored with every face it produced, so a
    /// later model version can tell which detections to redo.
    pub engine: String,
    pub files: Vec<ModelFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file} is damaged: its SHA-256 is {actual}, the manifest says {expected}")]
    Digest {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("the manifest lists no {} ({})", .0.file_name(), .0.describe())]
    Missing(Role),
}

impl ModelsManifest {
    pub fn parse(bytes: &[u8]) -> Result<ModelsManifest, WeightsError> {
        let manifest: ModelsManifest =
            serde_json::from_slice(bytes).map_err(|e| WeightsError::Invalid {
                file: MANIFEST_FILE.to_owned(),
                message: format!("not a models manifest: {e}"),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(WeightsError::Invalid {
                file: MANIFEST_FILE.to_owned(),
                message: format!(
                    "format {} is not the supported {MANIFEST_FORMAT}",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }

    pub fn file(&self, role: Role) -> Result<&ModelFile, WeightsError> {
        self.files
            .iter()
            .find(|f| f.role == role)
            .ok_or(WeightsError::Missing(role))
    }
}

/// Checks a model file's bytes against its manifest entry.
pub fn verify(entry: &ModelFile, bytes: &[u8]) -> Result<(), WeightsError> {
    let actual = sha256_hex(bytes);
    if actual != entry.sha256 {
        return Err(WeightsError::Digest {
            file: entry.file.clone(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Dequantises a face-api tfjs model into the tensor map its network file
/// loads (tfjs names, tfjs layout, f32).
pub fn convert_tfjs(
    file: &str,
    manifest_json: &[u8],
    shard: &[u8],
) -> Result<HashMap<String, Tensor>, WeightsError> {
    crate::tfjs::load(manifest_json, shard)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|e| WeightsError::Invalid {
            file: file.to_owned(),
            message: e.to_string(),
        })
}

/// Reads dlib's ResNet `.dat` into the folded tensor map `FaceEmbedder` loads.
pub fn convert_dlib(file: &str, dat: &[u8]) -> Result<HashMap<String, Tensor>, WeightsError> {
    crate::dlib_dat::parse(dat, &Device::Cpu).map_err(|e| WeightsError::Invalid {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ModelsManifest {
        ModelsManifest {
            format: MANIFEST_FORMAT,
            engine: "test".into(),
            files: vec![ModelFile {
                role: Role::FaceEmbedder,
                file: "face_embedder.safetensors".into(),
                sha256: sha256_hex(b"weights"),
                bytes: 7,
                sources: vec![],
            }],
        }
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_changed_byte_is_reported_with_both_digests() {
        let m = manifest();
        let entry = m.file(Role::FaceEmbedder).unwrap();
        verify(entry, b"weights").unwrap();
        let err = verify(entry, b"weightz").unwrap_err().to_string();
        assert!(
            err.contains("face_embedder.safetensors is damaged"),
            "{err}"
        );
        assert!(err.contains(&entry.sha256), "{err}");
    }

    #[test]
    fn manifest_round_trips_and_names_a_missing_role() {
        let m = manifest();
        let parsed = ModelsManifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(parsed, m);
        let err = parsed.file(Role::FaceDetector).unwrap_err().to_string();
        assert!(err.contains("face_detector.safetensors"), "{err}");
        let bad = ModelsManifest::parse(b"{\"format\": 9, \"engine\": \"x\", \"files\": []}");
        assert!(bad.unwrap_err().to_string().contains("format 9"));
    }
}
