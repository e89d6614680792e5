//! Faces: the stage after decode (detect → landmarks → align → embed).
//!
//! Input: the upright [`DecodedImage`](super::decode::DecodedImage). Output:
//! the asset's [`Face`] records (box, landmarks, score, quality, embedding)
//! in displayed-image pixels. Failure modes: the engine failing on a photo
//! ([`FaceError`]); the ingest worker retries that like any transient error,
//! and quarantines the file only when its attempts run out. A photo without
//! faces is not an error.
//!
//! One inference thread ([`EngineStage`]) owns the engine. Ingest workers
//! hand it their decoded photos and wait; photos that arrive together are
//! run as one batch (the detector and the embedder are much faster per item
//! in batches), so two busy workers keep the CPU's cores full without each
//! running its own copy of the networks.

pub mod models;

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use consentry_models::face_engine::{FaceEngine, FoundFace};
use consentry_models::image::{RgbImage, RgbRef};
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::imgproc;

use super::decode::DecodedImage;
use crate::clock;
use crate::domain::{Attribution, Face, FaceBox, FaceQuality, TemplateStatus};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FaceError(pub String);

/// A face stage the ingest worker calls after decoding.
pub trait FaceStage: Send + Sync {
    /// The model set's name, stored with each face.
    fn engine(&self) -> &str;
    fn process(&self, image: &DecodedImage) -> Result<Vec<Face>, FaceError>;
}

/// Finds no faces; for tests of the stages before this one.
pub struct NoFaceStage;

impl FaceStage for NoFaceStage {
    fn engine(&self) -> &str {
        "none"
    }

    fn process(&self, _image: &DecodedImage) -> Result<Vec<Face>, FaceError> {
        Ok(Vec::new())
    }
}

/// Limits of one inference batch.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Photos per batch.
    pub max_photos: usize,
    /// How long the first photo waits for others to join its batch.
    pub linger: Duration,
}

type Reply = Result<Vec<FoundFace>, FaceError>;

struct Request {
    image: RgbImage,
    reply: Sender<Reply>,
}

/// The engine on its own thread, shared by all ingest workers.
pub struct EngineStage {
    engine_name: String,
    requests: Mutex<Sender<Request>>,
}

impl EngineStage {
    pub fn start(
        engine: FaceEngine,
        engine_name: String,
        batching: Batching,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("faces".into())
            .spawn(move || inference_loop(&engine, &rx, batching))?;
        Ok(EngineStage {
            engine_name,
            requests: Mutex::new(tx),
        })
    }
}

impl FaceStage for EngineStage {
    fn engine(&self) -> &str {
        &self.engine_name
    }

    fn process(&self, image: &DecodedImage) -> Result<Vec<Face>, FaceError> {
        let rgb = to_rgb(&image.pixels)?;
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .map_err(|_| FaceError("the face engine thread is gone".into()))?
            .send(Request { image: rgb, reply })
            .map_err(|_| FaceError("the face engine thread is gone".into()))?;
        let found = answer
            .recv()
            .map_err(|_| FaceError("the face engine thread stopped mid-photo".into()))??;
        Ok(to_records(
            found,
            image.reduction as f32,
            &self.engine_name,
            clock::now_ms(),
        ))
    }
}

fn inference_loop(engine: &FaceEngine, requests: &Receiver<Request>, batching: Batching) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + batching.linger;
        while batch.len() < batching.max_photos.max(1) {
            match requests.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let images: Vec<RgbRef<'_>> = batch.iter().map(|r| r.image.as_ref()).collect();
        // A panic in the engine fails this batch's photos, not the daemon.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| engine.analyse(&images)));
        match result {
            Ok(Ok(per_photo)) => {
                for (request, faces) in batch.iter().zip(per_photo) {
                    let _ = request.reply.send(Ok(faces));
                }
            }
            Ok(Err(err)) => fail_all(&batch, &format!("face engine failed: {err}")),
            Err(_) => fail_all(&batch, "face engine panicked"),
        }
    }
}

fn fail_all(batch: &[Request], message: &str) {
    log::error!(target: "consentry::faces", "{message} on a batch of {} photo(s)", batch.len());
    for request in batch {
        let _ = request.reply.send(Err(FaceError(message.to_owned())));
    }
}

/// OpenCV's BGR (or grey/BGRA) `Mat` as interleaved RGB.
pub fn to_rgb(pixels: &Mat) -> Result<RgbImage, FaceError> {
    let cv = |e: opencv::Error| FaceError(format!("cannot convert the decoded image: {e}"));
    let code = match pixels.channels() {
        1 => imgproc::COLOR_GRAY2RGB,
        3 => imgproc::COLOR_BGR2RGB,
        4 => imgproc::COLOR_BGRA2RGB,
        n => return Err(FaceError(format!("decoded image has {n} channels"))),
    };
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(pixels, &mut rgb, code).map_err(cv)?;
    let (w, h) = (rgb.cols() as usize, rgb.rows() as usize);
    let bytes = if rgb.is_continuous() {
        rgb.data_bytes().map_err(cv)?.to_vec()
    } else {
        rgb.try_clone()
            .map_err(cv)?
            .data_bytes()
            .map_err(cv)?
            .to_vec()
    };
    Ok(RgbImage::new(w, h, bytes))
}

/// Engine output → stored records, scaled from the decoded size to the
/// displayed size (a large JPEG may be decoded at 1/2, 1/4 or 1/8).
pub fn to_records(found: Vec<FoundFace>, scale: f32, engine: &str, now_ms: u64) -> Vec<Face> {
    found
        .into_iter()
        .enumerate()
        .map(|(no, f)| Face {
            no: no as u32,
            bbox: FaceBox {
                x: f.rect.x * scale,
                y: f.rect.y * scale,
                width: f.rect.width * scale,
                height: f.rect.height * scale,
            },
            landmarks: f
                .landmarks
                .iter()
                .map(|p| [p.x * scale, p.y * scale])
                .collect(),
            score: f.score,
            quality: FaceQuality {
                score: f.quality.score,
                interocular_px: f.quality.interocular_px * scale,
                sharpness: f.quality.sharpness,
                yaw: f.quality.yaw,
                pitch: f.quality.pitch,
                roll_deg: f.quality.roll_deg,
            },
            embedding: f.embedding,
            engine: engine.to_owned(),
            detected_at_ms: now_ms,
            template: TemplateStatus::None,
            attribution: Attribution::default(),
        })
        .collect()
}
