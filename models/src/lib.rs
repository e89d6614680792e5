//! Face networks for consentry, written with candle (detector, landmarks,
//! descriptor), one file per network.
//!
//! - [`face_embedder`]: dlib's ResNet face descriptor (150×150 chip → 128-D);
//!   weights come from dlib's `.dat` through [`dlib_dat`].
//!
//! The daemon's pipeline calls into this crate through `pipeline::faces::FaceStage`.
//! This crate stays pure compute: no filesystem, no tokio.

pub mod dlib_dat;
pub mod face_embedder;

pub use dlib_dat::DatError;
pub use face_embedder::FaceEmbedder;
