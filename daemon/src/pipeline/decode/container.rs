//! TEMPORARY stand-in, replaced by the container module.
use crate::pipeline::metadata::EmbeddedMetadata;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat { Jpeg, Png, Tiff, WebP, Heif, Avif }
impl ImageFormat { pub fn name(self) -> &'static str { "JPEG" } pub fn mime(self) -> &'static str { "image/jpeg" } }
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    #[error("empty file (0 bytes)")] Empty,
    #[error("not an image: {0}")] NotAnImage(String),
    #[error("unsupported image format: {0}")] Unsupported(String),
    #[error("truncated {format} file: {detail}")] Truncated { format: &'static str, detail: String },
    #[error("corrupt {format} file: {detail}")] Corrupt { format: &'static str, detail: String },
}
pub struct ContainerInfo { pub format: ImageFormat, pub width: u32, pub height: u32, pub quarter_turns: u8, pub metadata: EmbeddedMetadata }
pub fn inspect(bytes: &[u8]) -> Result<ContainerInfo, ContainerError> {
    if bytes.is_empty() { return Err(ContainerError::Empty) }
    let format = if bytes.starts_with(&[0xff,0xd8]) { ImageFormat::Jpeg } else if bytes.starts_with(b"\x89PNG") { ImageFormat::Png } else if bytes.len() > 12 && &bytes[4..8] == b"ftyp" { ImageFormat::Heif } else { return Err(ContainerError::NotAnImage("unknown".into())) };
    Ok(ContainerInfo { format, width: 0, height: 0, quarter_turns: 0, metadata: EmbeddedMetadata::default() })
}
