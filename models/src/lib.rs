//! Face networks for consentry, written with candle (detector, landmarks,
//! descriptor), one file per network, plus the plain-Rust pre- and
//! post-processing around them.
//!
//! - [`image`]: RGB image types, padding and tf-style bilinear resize.
//! - [`tfjs`]: reads face-api's tfjs weights manifests (uint8-quantised).
//! - [`weights`]: the converted model set (`models.json`): provenance and integrity.
//! - [`depthwise`]: a fast depthwise 3×3 convolution (CPU kernel).
//! - [`face_detector`]: SSD-MobileNetV1 face detector (face-api weights).
//! - [`face_landmarks`]: 68-point landmark net (face-api weights).
//! - [`align`]: dlib's 5-point similarity alignment to a 150×150 chip.
//! - [`face_engine`]: the whole engine, batched across photos.
//! - [`face_embedder`]: dlib's ResNet face descriptor (150×150 chip → 128-D);
//!   weights come from dlib's `.dat` through [`dlib_dat`].
//!
//! The daemon's pipeline calls into this crate through `pipeline::faces::FaceStage`.
//! This crate stays pure compute: no filesystem, no tokio.

pub mod align;
pub mod depthwise;
pub mod dlib_dat;
pub mod face_detector;
pub mod face_embedder;
pub mod face_engine;
pub mod face_landmarks;
pub mod image;
pub mod tfjs;
pub mod weights;

pub use dlib_dat::DatError;
pub use face_embedder::FaceEmbedder;
pub use image::{Point, Rect, RgbImage, RgbRef};
