//! Faces: the stage after decode that the face-engine issue fills
//! (detect → landmarks → align → embed → match).
//!
//! Input: the upright [`DecodedImage`](super::decode::DecodedImage). Output:
//! the faces found (none yet). Today this stage is a declared seam only: no
//! faces are detected, and assets become `ready` without face records.

use super::decode::DecodedImage;

/// What the face stage found on one photo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaceOutcome {
    pub faces_found: usize,
}

/// A face stage the ingest worker calls after decoding.
pub trait FaceStage: Send + Sync {
    fn name(&self) -> &'static str;
    fn process(&self, image: &DecodedImage) -> Result<FaceOutcome, String>;
}

/// The stage as shipped until the face engine lands: does nothing.
pub struct NoFaceStage;

impl FaceStage for NoFaceStage {
    fn name(&self) -> &'static str {
        "none"
    }

    fn process(&self, _image: &DecodedImage) -> Result<FaceOutcome, String> {
        Ok(FaceOutcome::default())
    }
}
