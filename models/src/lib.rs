//! Face networks for consentry, written with candle (detector, landmarks,
//! descriptor), one file per network.
//!
//! Empty until the face-engine issue lands. The daemon's pipeline already has the
//! seam that will call into it: `pipeline::faces::FaceStage`. This crate stays
//! pure compute: no filesystem, no tokio.
