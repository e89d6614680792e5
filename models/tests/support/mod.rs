//! What the parity tests share: visible skips, the shared test data, OpenCV
//! decoding to RGB, and face-api weights straight from the registry files.
//!
//! Each test binary includes this as `mod support;` and uses what it needs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use consentry_models::image::RgbImage;
use consentry_models::tfjs;
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::{imgcodecs, imgproc};

pub const REQUIRE_ENV: &str = "CONSENTRY_REQUIRE_TESTDATA";
/// The folder holding face-api's raw weights files (`models/fetch-weights`).
pub const FACEAPI_ENV: &str = "CONSENTRY_FACEAPI_DIR";

/// Skips the test (visibly) or, under `CONSENTRY_REQUIRE_TESTDATA=1`, fails it.
pub fn skip(why: &str) {
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{why} (required because {REQUIRE_ENV}=1)");
    }
    // Written to the stderr handle directly: libtest captures `eprintln!` of
    // passing tests, and a skip must stay visible.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// `shared/testdata` beside the checkout, if it holds `reference/<file>`.
pub fn testdata_dir(reference_file: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
    if dir.join("reference").join(reference_file).is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "reference data not found at {} (reference/{reference_file})",
            dir.display()
        ));
        None
    }
}

/// Decodes an image file to RGB (OpenCV applies the EXIF orientation, as the
/// references did; alpha is dropped).
pub fn load_rgb(path: &Path) -> RgbImage {
    let bgr = imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!bgr.empty(), "cannot decode {}", path.display());
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB).unwrap();
    let (w, h) = (rgb.cols() as usize, rgb.rows() as usize);
    RgbImage::new(w, h, rgb.data_bytes().unwrap().to_vec())
}

/// A `VarBuilder` over face-api's `<stem>.bin` + `<stem>-weights_manifest.json`
/// from `$CONSENTRY_FACEAPI_DIR`, or a visible skip.
pub fn faceapi_weights(stem: &str) -> Option<VarBuilder<'static>> {
    let Some(dir) = std::env::var_os(FACEAPI_ENV).map(PathBuf::from) else {
        skip(&format!(
            "set {FACEAPI_ENV} to the folder with {stem}.bin and {stem}-weights_manifest.json \
             (face-api 1.7.15 weights, e.g. target/models/raw)"
        ));
        return None;
    };
    let read = |name: String| {
        let path = dir.join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let manifest = read(format!("{stem}-weights_manifest.json"));
    let bin = read(format!("{stem}.bin"));
    let tensors: HashMap<String, Tensor> = tfjs::load(&manifest, &bin)
        .expect("decoding the tfjs weights")
        .into_iter()
        .collect();
    Some(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))
}
