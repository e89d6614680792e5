//! TEMPORARY stand-in, replaced by the metadata module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedMetadata { pub exif: Option<Vec<u8>>, pub xmp: Vec<Vec<u8>>, pub iptc_iim: Option<Vec<u8>> }
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metadata { pub orientation: Option<u16>, pub warnings: Vec<String>, pub capture_time: Option<CaptureTime> }
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaptureTime { pub local: String, pub offset: Option<String>, pub source: String }
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct MetadataError;
pub fn read(_e: &EmbeddedMetadata) -> Metadata { Metadata::default() }
pub fn apply_sidecar(_m: &mut Metadata, _x: &[u8]) -> Result<(), MetadataError> { Ok(()) }
