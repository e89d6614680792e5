//! Parity of the candle face embedder with dlib itself.
//!
//! Needs the weights (`CONSENTRY_DLIB_RESNET_DAT` = path to
//! `dlib_face_recognition_resnet_model_v1.dat`, e.g. from `models/fetch-weights`)
//! and the shared reference data (`shared/testdata/reference`, see its README).
//! Without them each test prints `SKIPPED: …` to stderr and passes, unless
//! `CONSENTRY_REQUIRE_TESTDATA=1`, in which case it fails.
//!
//! Speed figures: `cargo test --release -p consentry-models --test embedder_parity -- --nocapture`.

mod support;
use support::skip;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use consentry_models::dlib_dat;
use consentry_models::face_embedder::{DESCRIPTOR_LEN, FaceEmbedder, chip_to_tensor};
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::{imgcodecs, imgproc};

const WEIGHTS_ENV: &str = "CONSENTRY_DLIB_RESNET_DAT";
/// dlib's own output vs ours; the README expects about 1e-4.
const TOLERANCE: f32 = 1e-3;
const BATCH: usize = 16;

fn weights() -> Option<Vec<u8>> {
    let Some(path) = std::env::var_os(WEIGHTS_ENV) else {
        skip(&format!(
            "set {WEIGHTS_ENV} to the path of dlib_face_recognition_resnet_model_v1.dat \
             (PyPI face-recognition-models 0.3.0; models/fetch-weights extracts it)"
        ));
        return None;
    };
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}")))
}

fn reference_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/reference");
    if dir.join("dlib_reference.json").is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "reference data not found at {} (dlib_reference.json)",
            dir.display()
        ));
        None
    }
}

fn embedder(tensors: std::collections::HashMap<String, Tensor>) -> FaceEmbedder {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    FaceEmbedder::new(vb).expect("building the embedder from the parsed tensors")
}

/// One face of `dlib_reference.json`: chip file and dlib's descriptor.
struct Face {
    chip: PathBuf,
    descriptor: Vec<f32>,
}

fn reference_faces(dir: &Path) -> Vec<Face> {
    let text = std::fs::read_to_string(dir.join("dlib_reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let images = json["images"]
        .as_object()
        .expect("dlib_reference.json: `images` is an object");
    let mut faces = Vec::new();
    for (image, entry) in images {
        for face in entry["faces"].as_array().into_iter().flatten() {
            let chip = face["chip"]
                .as_str()
                .unwrap_or_else(|| panic!("{image}: face without `chip`"));
            let descriptor: Vec<f32> = face["descriptor"]
                .as_array()
                .unwrap_or_else(|| panic!("{image}: face without `descriptor`"))
                .iter()
                .map(|v| v.as_f64().expect("descriptor value") as f32)
                .collect();
            assert_eq!(descriptor.len(), DESCRIPTOR_LEN, "{image}: {chip}");
            faces.push(Face {
                chip: dir.join(chip),
                descriptor,
            });
        }
    }
    faces
}

/// Decodes a PNG chip to a `[1, 3, 150, 150]` RGB tensor.
fn load_chip(path: &Path) -> Tensor {
    let bgr = imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!bgr.empty(), "cannot decode {}", path.display());
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB).unwrap();
    let bytes = rgb.data_bytes().unwrap();
    chip_to_tensor(bytes, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn descriptors_match_dlib_on_every_reference_chip() {
    let (Some(dat), Some(dir)) = (weights(), reference_dir()) else {
        return;
    };
    let t0 = Instant::now();
    let tensors = dlib_dat::parse(&dat, &Device::Cpu).expect("parsing the .dat");
    println!("parsed .dat in {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    dlib_dat::check_tensors(&tensors).unwrap();
    let net = embedder(tensors);

    let faces = reference_faces(&dir);
    assert!(!faces.is_empty(), "dlib_reference.json lists no faces");
    let chips: Vec<Tensor> = faces.iter().map(|f| load_chip(&f.chip)).collect();

    let t0 = Instant::now();
    let mut ours: Vec<Vec<f32>> = Vec::with_capacity(faces.len());
    for batch in chips.chunks(BATCH) {
        let out = net.forward(&Tensor::cat(batch, 0).unwrap()).unwrap();
        ours.extend(out.to_vec2::<f32>().unwrap());
    }
    let batched = t0.elapsed().as_secs_f64();

    let (mut max, mut sum, mut worst) = (0f32, 0f64, 0usize);
    for (i, (face, got)) in faces.iter().zip(&ours).enumerate() {
        let face_max = face
            .descriptor
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        sum += face
            .descriptor
            .iter()
            .zip(got)
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum::<f64>();
        if face_max > max {
            (max, worst) = (face_max, i);
        }
    }
    let mean = sum / (faces.len() * DESCRIPTOR_LEN) as f64;
    println!(
        "dlib parity over {} chips: max abs {max:.3e} (worst {}), mean abs {mean:.3e}",
        faces.len(),
        faces[worst].chip.file_name().unwrap().to_string_lossy()
    );
    assert!(
        max <= TOLERANCE,
        "descriptor of {} differs from dlib by {max} (tolerance {TOLERANCE})",
        faces[worst].chip.display()
    );

    // Throughput (information only).
    let singles = chips.len().min(32);
    let t0 = Instant::now();
    for chip in &chips[..singles] {
        net.forward(chip).unwrap();
    }
    let single = t0.elapsed().as_secs_f64();
    println!(
        "speed: batch 1: {:.1} embeddings/s ({singles} chips); batch {BATCH}: {:.1} embeddings/s ({} chips)",
        singles as f64 / single,
        chips.len() as f64 / batched,
        chips.len()
    );
}

/// Removes the file when dropped, also if the test panics.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn safetensors_round_trip_is_identical() {
    let Some(dat) = weights() else {
        return;
    };
    let dev = Device::Cpu;
    let tensors = dlib_dat::parse(&dat, &dev).unwrap();
    let from_dat = embedder(tensors.clone());

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let file = TempFile(std::env::temp_dir().join(format!(
        "consentry-dlib-resnet-{}-{nanos}.safetensors",
        std::process::id()
    )));
    candle_core::safetensors::save(&tensors, &file.0).unwrap();
    let bytes = std::fs::read(&file.0).unwrap();
    let loaded = candle_core::safetensors::load_buffer(&bytes, &dev).unwrap();
    dlib_dat::check_tensors(&loaded).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).unwrap();
    let from_st = FaceEmbedder::new(vb).unwrap();

    // Deterministic pseudo-random chips in 0..=255.
    let pixels: Vec<f32> = (0..2 * 3 * 150 * 150u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as f32)
        .collect();
    let chips = Tensor::from_vec(pixels, (2, 3, 150, 150), &dev).unwrap();
    let a = from_dat.forward(&chips).unwrap();
    let b = from_st.forward(&chips).unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0, "safetensors round trip changed the outputs");
}

#[test]
fn truncated_real_file_is_rejected() {
    let Some(dat) = weights() else {
        return;
    };
    let cut = dat.len() / 2;
    let err = dlib_dat::parse(&dat[..cut], &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, dlib_dat::DatError::Truncated { len, .. } if len == cut),
        "{err}"
    );
    eprintln!("half a .dat: {err}");
}
